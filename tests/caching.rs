//! The caching lesson reproduces what its sources describe: LRU is a stack algorithm (on
//! one trace, a bigger cache never hits less); more skewed (Zipf) traffic hits more;
//! cache-aside and read-through serve stale data after writes until the TTL runs out
//! (or not at all if the write deletes the cached copy), write-through never does;
//! write-back loses exactly its unflushed writes when the cache node crashes and nothing
//! otherwise; single-flight coalescing turns a hot key's stampede into one database read
//! per refill; requests are conserved and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::caching::{self, CacheStore, SPEC, STRATEGIES};
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::random::{SimRng, Zipf};
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn start(assignments: &[&str], seed: u64) -> Box<dyn LessonRun> {
    SPEC.start(&params(assignments), Seed(seed))
}

fn secs(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

fn figure(run: &dyn LessonRun, key: &str) -> f64 {
    run.extra_figures()
        .into_iter()
        .find(|figure| figure.key == key)
        .unwrap_or_else(|| panic!("no figure {key}"))
        .value
}

fn inject(run: &mut dyn LessonRun, id: &str) {
    run.apply(&LessonCommand::Inject(id.into()))
        .unwrap_or_else(|e| panic!("{id}: {e}"));
}

fn run_to(assignments: &[&str], seed: u64, until: f64) -> Box<dyn LessonRun> {
    let mut run = start(assignments, seed);
    run.run_until(secs(until));
    run.check_conservation().unwrap();
    run
}

/// Hits of an LRU cache of `size` entries over `trace` (no expiry; a miss fills).
fn lru_hits(trace: &[u32], items: usize, size: usize) -> u64 {
    let mut cache = CacheStore::new(items, size);
    let mut evicted = Vec::new();
    let mut hits = 0;
    for &item in trace {
        if cache.lookup(item, SimTime::ZERO).is_some() {
            hits += 1;
        } else {
            cache.put(item, 1, SimTime::MAX, false, &mut evicted);
        }
        assert!(cache.len() <= size);
    }
    assert!(evicted.is_empty(), "clean entries are never written back");
    hits
}

#[test]
fn lru_never_hits_less_with_a_bigger_cache_on_the_same_trace() {
    let items = 2000;
    let zipf = Zipf::new(items as u64, 0.9).unwrap();
    let mut rng = SimRng::new(7, "trace");
    let trace: Vec<u32> = (0..60_000).map(|_| zipf.sample(&mut rng) as u32).collect();
    let sizes = [0, 1, 10, 50, 100, 200, 400, 800, 1600, 2000];
    let hits: Vec<u64> = sizes
        .iter()
        .map(|&size| lru_hits(&trace, items, size))
        .collect();
    for pair in hits.windows(2) {
        assert!(pair[1] >= pair[0], "LRU inclusion broken: {hits:?}");
    }
    assert_eq!(hits[0], 0);
    // A cache that holds every item misses only the first request of each.
    let mut seen = vec![false; items];
    let distinct = trace
        .iter()
        .filter(|&&item| !std::mem::replace(&mut seen[item as usize], true))
        .count() as u64;
    assert_eq!(hits[sizes.len() - 1], trace.len() as u64 - distinct);
    assert!(
        hits[5] > hits[2] + 10_000,
        "growth is substantial: {hits:?}"
    );
}

#[test]
fn lru_evicts_the_least_recently_used_and_expires_lazily() {
    let mut cache = CacheStore::new(10, 2);
    let mut evicted = Vec::new();
    let t = secs(5.0);
    cache.put(1, 1, secs(10.0), false, &mut evicted);
    cache.put(2, 1, secs(10.0), false, &mut evicted);
    assert_eq!(cache.lookup(1, t), Some(1)); // 1 is now the most recent
    cache.put(3, 1, secs(10.0), false, &mut evicted);
    assert!(cache.peek(2).is_none(), "2 was least recently used");
    assert!(cache.peek(1).is_some() && cache.peek(3).is_some());
    assert_eq!(cache.evictions(), 1);
    // Expired at its time, removed when read.
    assert_eq!(cache.lookup(1, secs(10.0)), None);
    assert_eq!(cache.len(), 1);
    // A dirty (write-back) entry never expires and comes back out when evicted.
    cache.put(4, 7, secs(1.0), true, &mut evicted);
    cache.put(4, 8, secs(1.0), true, &mut evicted);
    assert_eq!(cache.lookup(4, secs(100.0)), Some(8));
    assert_eq!(cache.dirty(), vec![(4, 8, 2)]);
    cache.set_capacity(0, &mut evicted);
    assert_eq!(evicted, vec![(4, 8, 2)]);
    assert!(cache.is_empty());
}

#[test]
fn the_hit_ratio_rises_with_cache_size_and_with_skew() {
    let read_only = "write_fraction=0";
    let by_size: Vec<f64> = [50, 200, 500, 1000, 2000]
        .iter()
        .map(|size| {
            let size = format!("cache_size={size}");
            let run = run_to(&[read_only, "ttl=600", &size], 3, 120.0);
            figure(run.as_ref(), "hit_ratio")
        })
        .collect();
    for pair in by_size.windows(2) {
        assert!(pair[1] >= pair[0], "hit ratio by cache size: {by_size:?}");
    }
    assert!(by_size[4] > by_size[0] + 30.0, "{by_size:?}");
    let by_skew: Vec<f64> = [0.0, 0.5, 0.9, 1.2, 1.5]
        .iter()
        .map(|s| {
            let s = format!("zipf_s={s}");
            let run = run_to(&[read_only, &s], 3, 120.0);
            figure(run.as_ref(), "hit_ratio")
        })
        .collect();
    for pair in by_skew.windows(2) {
        assert!(pair[1] > pair[0], "hit ratio by skew: {by_skew:?}");
    }
    // Uniform keys: the hit ratio is about the cached share (500 of 2000), less the
    // misses while a cold cache fills and entries expire.
    assert!(by_skew[0] < 25.0 && by_skew[0] > 10.0, "{by_skew:?}");
    // The database does the rest: with no cache every read is a database read.
    let uncached = run_to(&[read_only, "cache_size=0", "request_rate=300"], 3, 60.0);
    assert_eq!(figure(uncached.as_ref(), "hit_ratio"), 0.0);
    let summary = uncached.summary();
    let db = figure(uncached.as_ref(), "db_ops_per_s") * 60.0;
    assert!(
        (db - summary.completed as f64).abs() <= 20.0,
        "{db} vs {summary:?}"
    );
}

#[test]
fn only_cache_aside_and_read_through_serve_stale_reads() {
    let stale = |strategy: &str, extra: &[&str]| {
        let strategy = format!("strategy={strategy}");
        let mut assignments = vec![strategy.as_str()];
        assignments.extend_from_slice(extra);
        let run = run_to(&assignments, 5, 120.0);
        figure(run.as_ref(), "stale_reads")
    };
    assert!(stale("cache-aside", &[]) > 1000.0);
    assert!(stale("read-through", &[]) > 1000.0);
    assert_eq!(stale("write-through", &[]), 0.0);
    assert_eq!(stale("write-back", &[]), 0.0);
    // No writes, nothing to be stale about.
    assert_eq!(stale("cache-aside", &["write_fraction=0"]), 0.0);
    // Deleting the cached copy on write (with version-checked fills) removes staleness.
    assert_eq!(stale("cache-aside", &["invalidate_on_write=on"]), 0.0);
    assert_eq!(stale("read-through", &["invalidate_on_write=on"]), 0.0);
    // A shorter TTL bounds how long a stale copy lives.
    assert!(stale("cache-aside", &["ttl=2"]) < 0.5 * stale("cache-aside", &["ttl=60"]));
    // Write-through stays exact under single-flight, a crash and an emptied cache too.
    let mut run = start(
        &["strategy=write-through", "stampede_guard=single-flight"],
        5,
    );
    run.run_until(secs(40.0));
    inject(run.as_mut(), "crash-cache");
    run.run_until(secs(80.0));
    inject(run.as_mut(), "flush-cache");
    run.run_until(secs(120.0));
    assert_eq!(figure(run.as_ref(), "stale_reads"), 0.0);
    assert_eq!(figure(run.as_ref(), "writes_lost"), 0.0);
}

#[test]
fn write_through_pays_both_round_trips_and_write_back_acknowledges_from_the_cache() {
    let latency = |strategy: &str| {
        let strategy = format!("strategy={strategy}");
        let run = run_to(&[&strategy, "write_fraction=0.1"], 2, 120.0);
        figure(run.as_ref(), "write_ms")
    };
    let (aside, through, back) = (
        latency("cache-aside"),
        latency("write-through"),
        latency("write-back"),
    );
    // Client hop 20 ms + database (2 + ~20 + 2 ms); write-through adds a cache round trip
    // (2 ms); write-back only the cache round trip.
    assert!(through > aside + 1.0, "{through} vs {aside}");
    assert!((back - 22.0).abs() < 0.5, "write-back write latency {back}");
    assert!(aside > 40.0, "{aside}");
}

#[test]
fn write_through_never_loses_an_acknowledged_write() {
    let mut sim = caching::simulation(
        &params(&["strategy=write-through", "write_fraction=0.3"]),
        Seed(8),
    );
    sim.run_until(secs(30.0));
    inject(&mut sim, "crash-cache");
    sim.run_until(secs(90.0));
    let model = &sim.model;
    for item in 0..2000 {
        assert!(
            model.db_version(item) >= model.acked_version(item),
            "item {item}"
        );
    }
    assert_eq!(figure(&sim, "writes_lost"), 0.0);
}

#[test]
fn write_back_loses_its_unflushed_writes_when_the_cache_crashes_and_only_then() {
    let assignments = ["strategy=write-back", "write_fraction=0.2"];
    // Between two flushes (every 5 s) the cache holds acknowledged writes the database
    // does not have.
    let mut sim = caching::simulation(&params(&assignments), Seed(4));
    sim.run_until(secs(62.5));
    let unflushed = sim.model.unflushed_writes();
    assert!(unflushed > 100, "{unflushed}");
    assert_eq!(figure(&sim, "unflushed_writes"), unflushed as f64);
    let behind = (0..2000)
        .filter(|&item| sim.model.db_version(item) < sim.model.acked_version(item))
        .count();
    assert!(behind > 0, "the database trails the acknowledged writes");
    inject(&mut sim, "crash-cache");
    assert_eq!(figure(&sim, "writes_lost"), unflushed as f64);
    assert_eq!(sim.model.unflushed_writes(), 0);
    sim.run_until(secs(120.0));
    sim.check_conservation().unwrap();
    assert_eq!(
        figure(&sim, "writes_lost"),
        unflushed as f64,
        "only the crash loses writes"
    );
    // Reads of the lost items now return the older database value: stale.
    assert!(figure(&sim, "stale_reads") > 0.0);

    // Without a crash nothing is lost; emptying the cache writes dirty entries back first.
    let mut run = start(&assignments, 4);
    run.run_until(secs(62.5));
    inject(run.as_mut(), "flush-cache");
    assert_eq!(figure(run.as_ref(), "unflushed_writes"), 0.0);
    run.run_until(secs(120.0));
    assert_eq!(figure(run.as_ref(), "writes_lost"), 0.0);
    assert_eq!(figure(run.as_ref(), "stale_reads"), 0.0);
    // Flushed exactly at a flush tick: nothing to lose.
    let mut sim = caching::simulation(
        &params(&["strategy=write-back", "write_fraction=0"]),
        Seed(4),
    );
    sim.run_until(secs(62.5));
    inject(&mut sim, "crash-cache");
    assert_eq!(figure(&sim, "writes_lost"), 0.0);
}

#[test]
fn write_back_batches_writes_into_fewer_database_operations() {
    let load = |strategy: &str| {
        let strategy = format!("strategy={strategy}");
        let run = run_to(
            &[&strategy, "write_fraction=0.5", "request_rate=300"],
            6,
            120.0,
        );
        figure(run.as_ref(), "db_ops_per_s")
    };
    let (aside, back) = (load("cache-aside"), load("write-back"));
    // Cache-aside: every write is a database operation (150/s); write-back: a few batches
    // per flush plus the evicted dirty entries.
    assert!(aside > 150.0, "{aside}");
    assert!(back < aside - 60.0, "{back} vs {aside}");
}

#[test]
fn single_flight_loads_an_expiring_hot_key_once_per_refill() {
    let burst = |guard: &str| {
        let guard = format!("stampede_guard={guard}");
        let mut run = start(&["write_fraction=0", "ttl=10", &guard], 9);
        run.run_until(secs(20.0));
        inject(run.as_mut(), "hot-key");
        assert!(matches!(
            run.apply(&LessonCommand::Inject("hot-key".into())),
            Err(CommandError::NotApplicable { .. })
        ));
        run.run_until(secs(90.0));
        run.check_conservation().unwrap();
        (
            figure(run.as_ref(), "hot_key_db_reads"),
            figure(run.as_ref(), "reads_per_refill"),
            figure(run.as_ref(), "peak_item_db_reads"),
        )
    };
    let (reads, per_refill, peak) = burst("none");
    // 1000 extra reads/s on one item: every read that arrives during a refill (about
    // 25 ms) also misses and reads the database. (The item's few ordinary Zipf reads
    // count too: each is a refill of its own.)
    assert!(per_refill > 8.0, "stampede: {per_refill} reads per refill");
    assert!(peak > 8.0, "{peak}");
    let (coalesced, one, one_peak) = burst("single-flight");
    assert_eq!(one, 1.0, "exactly one database read per refill");
    assert_eq!(one_peak, 1.0);
    // 60 s of burst with a 10 s TTL: the first fill plus one refill per expiry.
    assert!((6.0..=8.0).contains(&coalesced), "{coalesced}");
    assert!(reads > 5.0 * coalesced, "{reads} vs {coalesced}");
}

#[test]
fn crashing_the_cache_sends_every_read_to_the_database_until_it_restarts_empty() {
    let mut run = start(&["strategy=cache-aside"], 3);
    let ops_at = |run: &dyn LessonRun, t: f64| figure(run, "db_ops_per_s") * t;
    run.run_until(secs(90.0));
    let before = ops_at(run.as_ref(), 90.0);
    run.run_until(secs(100.0));
    let at_crash = ops_at(run.as_ref(), 100.0);
    let steady = at_crash - before;
    inject(run.as_mut(), "crash-cache");
    assert!(matches!(
        run.apply(&LessonCommand::Inject("crash-cache".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 10);
    let cache = run.topology().find("cache").unwrap();
    let view = snapshot.nodes.iter().find(|n| n.node == cache).unwrap();
    assert_eq!(view.state, NodeState::Down);
    assert_eq!(figure(run.as_ref(), "cache_entries"), 0.0);
    run.run_until(secs(110.0));
    let outage = ops_at(run.as_ref(), 110.0) - at_crash;
    assert!(
        outage > 1.8 * steady,
        "database load {steady} → {outage} per 10 s"
    );
    // The database (8 connections × 50/s = 400 ops/s) cannot take all 500 req/s: reads
    // wait for a connection and some time out.
    assert!(run.summary().failed > 0);
    run.run_until(secs(116.0));
    let log = run.log().entries();
    let states: Vec<(f64, NodeState)> = log
        .iter()
        .filter_map(|e| match e.what {
            Notable::StateChanged { node, to } if node == cache => Some((e.time.as_secs_f64(), to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![(100.0, NodeState::Down), (115.0, NodeState::Healthy)]
    );
    run.check_conservation().unwrap();
    // Read-through has no way around the cache: reads fail while it is down.
    let mut through = start(&["strategy=read-through"], 3);
    through.run_until(secs(100.0));
    assert_eq!(through.summary().failed, 0);
    inject(through.as_mut(), "crash-cache");
    through.run_until(secs(115.0));
    let failed = through.summary().failed as f64;
    assert!(failed > 0.8 * 475.0 * 15.0, "{failed}");
    through.check_conservation().unwrap();
}

#[test]
fn emptying_the_cache_drops_the_hit_ratio_until_it_refills() {
    let mut run = start(&["write_fraction=0"], 2);
    run.run_until(secs(60.0));
    assert!(matches!(
        start(&[], 2).apply(&LessonCommand::Inject("flush-cache".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    let hits_before = figure(run.as_ref(), "hit_ratio");
    assert_eq!(figure(run.as_ref(), "cache_entries"), 500.0, "full");
    inject(run.as_mut(), "flush-cache");
    assert_eq!(figure(run.as_ref(), "cache_entries"), 0.0);
    run.run_until(secs(61.0));
    assert!(figure(run.as_ref(), "hit_ratio") < hits_before);
}

#[test]
fn requests_are_conserved_and_a_seed_replays_exactly() {
    for (case, strategy) in STRATEGIES.iter().enumerate() {
        for guard in caching::GUARDS {
            let assignments = [
                format!("strategy={strategy}"),
                format!("stampede_guard={guard}"),
                "write_fraction=0.3".into(),
                "cache_size=100".into(),
            ];
            let assignments: Vec<&str> = assignments.iter().map(String::as_str).collect();
            let script = |seed: u64| {
                let mut run = start(&assignments, seed);
                let mut t = 0.0;
                for (at, id) in [
                    (10.0, "hot-key"),
                    (20.0, "crash-cache"),
                    (40.0, "flush-cache"),
                    (50.0, "crash-cache"),
                ] {
                    while t < at {
                        t += 0.5;
                        run.run_until(secs(t));
                        run.check_conservation().unwrap();
                    }
                    let _ = run.apply(&LessonCommand::Inject(id.into()));
                    run.check_conservation().unwrap();
                }
                run.apply(&LessonCommand::SetParam {
                    name: "cache_size".into(),
                    value: patterns_playground::lessons::params::ParamValue::Integer(10),
                })
                .unwrap();
                run.run_until(secs(80.0));
                run.check_conservation().unwrap();
                (run.summary(), run.extra_figures())
            };
            let seed = 11 + case as u64;
            assert_eq!(script(seed), script(seed), "{strategy} {guard}");
        }
    }
    // Same seed, same workload in every strategy: the sweep compares like with like.
    let generated: Vec<u64> = STRATEGIES
        .iter()
        .map(|s| {
            run_to(&[&format!("strategy={s}")], 1, 30.0)
                .summary()
                .generated
        })
        .collect();
    assert!(generated.windows(2).all(|w| w[0] == w[1]), "{generated:?}");
}
