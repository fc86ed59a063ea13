//! The sharding lesson reproduces what its sources say about consistent hashing (Karger
//! et al. 1997; DeCandia et al. 2007, Dynamo): adding an (n+1)-th shard moves about
//! 1/(n+1) of the keys on a ring but about n/(n+1) with modulo hashing; removing one moves
//! only the leaver's keys on a ring; the spread of ring shares shrinks about as 1/√V with
//! V virtual nodes (some 10 % at 100, 3 % at 1000); a hot key saturates exactly one shard
//! while the others keep their load; moved keys are fetched once each; requests are
//! conserved and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{CommandError, LessonCommand, LessonRun};
use patterns_playground::lessons::sharding::{self, key_hash, mix64, Partitioner, Ring, SPEC};
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

/// Share of `keys` keys whose owner differs between two partitioners.
fn moved_share(before: &Partitioner, after: &Partitioner, keys: u32) -> f64 {
    let moved = (0..keys)
        .filter(|&k| before.owner(k) != after.owner(k))
        .count();
    moved as f64 / f64::from(keys)
}

fn shards(n: u8) -> Vec<u8> {
    (0..n).collect()
}

#[test]
fn the_mixer_is_fixed_and_spreads_bits() {
    // Pinned values: the ring must never change between builds or platforms.
    assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
    assert_eq!(key_hash(1), mix64(1));
    assert_ne!(mix64(1), mix64(2));
    // Flipping one input bit flips about half the output bits (avalanche).
    let mut flips = 0u32;
    for x in 0..1000u64 {
        flips += (mix64(x) ^ mix64(x ^ 1)).count_ones();
    }
    let mean = f64::from(flips) / 1000.0;
    assert!((mean - 32.0).abs() < 1.0, "mean flipped bits {mean}");
}

#[test]
fn adding_a_shard_moves_one_in_n_plus_one_on_a_ring_and_most_keys_with_modulo() {
    let keys = 50_000;
    for n in [2u8, 4, 8, 12] {
        let ideal = 1.0 / f64::from(n + 1);
        let mut ring_total = 0.0;
        let seeds = 8;
        for salt in 0..seeds {
            let salt = mix64(salt);
            let before = Partitioner::new(true, shards(n), 200, salt);
            let after = Partitioner::new(true, shards(n + 1), 200, salt);
            let share = moved_share(&before, &after, keys);
            // Every moved key moved to the new shard, never between old ones.
            for k in 0..keys {
                if before.owner(k) != after.owner(k) {
                    assert_eq!(after.owner(k), n);
                }
            }
            assert!(
                (share - ideal).abs() < 0.35 * ideal,
                "n={n}: {share} vs {ideal}"
            );
            ring_total += share;
        }
        let mean = ring_total / seeds as f64;
        eprintln!("n={n}: ring moved {mean:.4} (ideal {ideal:.4})");
        assert!(
            (mean - ideal).abs() < 0.1 * ideal,
            "n={n}: mean {mean} vs {ideal}"
        );
        let modulo = moved_share(
            &Partitioner::new(false, shards(n), 1, 0),
            &Partitioner::new(false, shards(n + 1), 1, 0),
            keys,
        );
        let expected = f64::from(n) / f64::from(n + 1);
        eprintln!("n={n}: modulo moved {modulo:.4} (n/(n+1) = {expected:.4})");
        assert!(
            (modulo - expected).abs() < 0.02,
            "modulo n={n}: {modulo} vs {expected}"
        );
    }
}

#[test]
fn removing_a_shard_from_a_ring_moves_only_its_own_keys() {
    let keys = 20_000;
    let before = Partitioner::new(true, shards(5), 100, 42);
    let after = Partitioner::new(true, shards(4), 100, 42);
    for k in 0..keys {
        if before.owner(k) != 4 {
            assert_eq!(before.owner(k), after.owner(k), "key {k} moved needlessly");
        }
    }
    let share = moved_share(&before, &after, keys);
    assert!((share - 0.2).abs() < 0.07, "{share}");
}

#[test]
fn ring_spread_shrinks_about_as_one_over_root_v() {
    let spread = |vnodes: u32| {
        let rings = 12;
        (0..rings)
            .map(|salt| {
                Ring::new(&shards(8), vnodes, mix64(salt + 100)).ownership_spread(&shards(8))
            })
            .sum::<f64>()
            / rings as f64
    };
    let (s10, s100, s1000) = (spread(10), spread(100), spread(1000));
    eprintln!("ring spread: V=10 {s10:.1} %, V=100 {s100:.1} %, V=1000 {s1000:.1} %");
    // About 1/√V: 31.6 %, 10 %, 3.2 % (the mean of a sample std dev sits a little lower).
    assert!((20.0..40.0).contains(&s10), "V=10: {s10}");
    assert!((6.5..13.0).contains(&s100), "V=100: {s100}");
    assert!((2.0..4.2).contains(&s1000), "V=1000: {s1000}");
    let root10 = 10f64.sqrt();
    for (ratio, what) in [(s10 / s100, "10→100"), (s100 / s1000, "100→1000")] {
        assert!(
            (root10 / 1.6..root10 * 1.6).contains(&ratio),
            "{what}: ratio {ratio}, √10 = {root10}"
        );
    }
    // Shares always add up to the whole ring.
    let ring = Ring::new(&shards(8), 37, 9);
    let total: f64 = ring.ownership(&shards(8)).iter().sum();
    assert!((total - 1.0).abs() < 1e-9);
}

#[test]
fn the_keys_moved_figure_matches_the_map_change_and_each_moved_key_is_fetched_once() {
    for (partitioning, low, high) in [("consistent-hash", 12.0, 30.0), ("modulo", 75.0, 85.0)] {
        let set = [
            &format!("partitioning={partitioning}")[..],
            "resize_at=0",
            "zipf_s=0",
        ];
        let mut sim = sharding::simulation(&params(&set), Seed(3));
        sim.run_until(secs(20.0));
        let before = sim.model.partitioner().clone();
        assert_eq!(figure(&sim, "keys_moved_pct"), 0.0);
        inject(&mut sim, "add-shard");
        let after = sim.model.partitioner().clone();
        let expected = 100.0 * moved_share(&before, &after, 10_000);
        let moved = figure(&sim, "keys_moved_pct");
        assert!((moved - expected).abs() < 1e-9);
        assert!((low..high).contains(&moved), "{partitioning}: {moved}");
        assert_eq!(figure(&sim, "ideal_moved_pct"), 20.0);
        assert_eq!(figure(&sim, "shards"), 5.0);
        // With uniform keys at 1000 req/s for 100 s nearly every key is asked for again,
        // and each moved key is fetched exactly once.
        sim.run_until(secs(120.0));
        let fetched = figure(&sim, "key_fetches");
        let keys_moved = figure(&sim, "keys_moved");
        assert!(fetched <= keys_moved, "{fetched} > {keys_moved}");
        assert!(fetched > 0.95 * keys_moved, "{fetched} of {keys_moved}");
        sim.check_conservation().unwrap();
    }
}

#[test]
fn a_modulo_resize_costs_far_more_fetches_and_latency_than_a_ring_resize() {
    let run = |partitioning: &str| {
        let mut run = start(&[&format!("partitioning={partitioning}")[..]], 5);
        run.run_until(secs(120.0));
        run
    };
    let (ring, modulo) = (run("consistent-hash"), run("modulo"));
    let ring_fetches = figure(&*ring, "key_fetches");
    let modulo_fetches = figure(&*modulo, "key_fetches");
    assert!(
        modulo_fetches > 2.5 * ring_fetches,
        "{modulo_fetches} vs {ring_fetches}"
    );
    assert!(modulo.summary().latency_p95 > ring.summary().latency_p95);
    assert!(modulo.summary().rejected > ring.summary().rejected);
    // Without the resize neither rejects anything at the defaults.
    for partitioning in ["consistent-hash", "modulo"] {
        let mut calm = start(
            &[&format!("partitioning={partitioning}")[..], "resize_at=0"],
            5,
        );
        calm.run_until(secs(120.0));
        assert_eq!(calm.summary().rejected, 0);
        assert!(figure(&*calm, "max_util_pct") < 80.0);
    }
}

#[test]
fn a_hot_key_saturates_exactly_one_shard() {
    for partitioning in ["consistent-hash", "modulo"] {
        let mut sim = sharding::simulation(
            &params(&[&format!("partitioning={partitioning}")[..], "resize_at=0"]),
            Seed(7),
        );
        sim.run_until(secs(0.5));
        inject(&mut sim, "hot-key");
        let hot_shard = sim.model.partitioner().owner(sim.model.hot_item()) as usize;
        sim.run_until(secs(60.0));
        let utils = sim.model.utilisations(secs(60.0));
        for (slot, &util) in utils.iter().enumerate().take(4) {
            if slot == hot_shard {
                assert!(util > 0.95, "{partitioning}: hot shard at {util}");
            } else {
                assert!(
                    (0.4..0.8).contains(&util),
                    "{partitioning}: shard {slot} at {util}"
                );
            }
        }
        assert!(figure(&sim, "hottest_shard_share") > 45.0);
        assert!(
            sim.summary().rejected > 1000,
            "the hot shard's queue overflows"
        );
        // A second burst while one runs is refused; after it ends the load evens out.
        let refused = sim.apply(&LessonCommand::Inject("hot-key".into()));
        assert!(matches!(refused, Err(CommandError::NotApplicable { .. })));
        sim.check_conservation().unwrap();
    }
}

#[test]
fn removing_a_shard_drains_it_then_turns_it_off_and_adding_reuses_a_slot() {
    let mut sim = sharding::simulation(&params(&["resize_at=0"]), Seed(11));
    sim.run_until(secs(10.0));
    inject(&mut sim, "remove-shard");
    assert_eq!(figure(&sim, "shards"), 3.0);
    let removed = LessonRun::topology(&sim).find("shard-4").unwrap();
    sim.run_until(secs(12.0));
    let mut snapshot = Snapshot::default();
    sim.snapshot_into(&mut snapshot, 100);
    let view = snapshot.nodes.iter().find(|v| v.node == removed).unwrap();
    assert_eq!(view.state, NodeState::Off);
    let states: Vec<NodeState> = sim
        .log()
        .entries()
        .iter()
        .filter_map(|e| match e.what {
            Notable::StateChanged { node, to } if node == removed => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(states, [NodeState::Draining, NodeState::Off]);
    let moved = figure(&sim, "keys_moved_pct");
    assert!((10.0..45.0).contains(&moved), "{moved}");
    assert_eq!(figure(&sim, "ideal_moved_pct"), 25.0);
    // Slots: 4 shards + 2 spare; add three, the fourth add has no slot left.
    for _ in 0..3 {
        inject(&mut sim, "add-shard");
    }
    assert_eq!(figure(&sim, "shards"), 6.0);
    let refused = sim.apply(&LessonCommand::Inject("add-shard".into()));
    assert!(matches!(refused, Err(CommandError::NotApplicable { .. })));
    sim.run_until(secs(30.0));
    sim.check_conservation().unwrap();
    // Down to one shard, then no further.
    for _ in 0..5 {
        inject(&mut sim, "remove-shard");
    }
    assert!(sim
        .apply(&LessonCommand::Inject("remove-shard".into()))
        .is_err());
    sim.run_until(secs(40.0));
    sim.check_conservation().unwrap();
}

#[test]
fn more_virtual_nodes_even_out_the_measured_load() {
    let spread = |vnodes: &str| {
        (1..=4)
            .map(|seed| {
                let mut run = start(&[vnodes, "zipf_s=0", "resize_at=0", "shards=8"], seed);
                run.run_until(secs(60.0));
                figure(&*run, "keyspace_spread_pct")
            })
            .sum::<f64>()
            / 4.0
    };
    let (few, many) = (spread("vnodes=1"), spread("vnodes=500"));
    assert!(few > 40.0, "one point per shard: {few}");
    assert!(many < 8.0, "500 points per shard: {many}");
    let mut run = start(&["vnodes=1000", "zipf_s=0", "resize_at=0", "shards=8"], 2);
    run.run_until(secs(60.0));
    // Measured load follows the ring share (plus Poisson noise of ~ 2.8 %).
    assert!(figure(&*run, "load_spread_pct") < 8.0);
}

#[test]
fn conservation_holds_under_commands_over_several_seeds() {
    for seed in 1..=4 {
        let mut run = start(&["zipf_s=1.1"], seed);
        run.run_until(secs(5.0));
        inject(&mut *run, "hot-key");
        for (t, id) in [
            (15.0, "add-shard"),
            (30.0, "remove-shard"),
            (45.0, "remove-shard"),
        ] {
            run.run_until(secs(t));
            run.check_conservation().unwrap();
            inject(&mut *run, id);
            run.check_conservation().unwrap();
        }
        run.apply(&LessonCommand::SetParam {
            name: "workers".into(),
            value: patterns_playground::lessons::params::ParamValue::Integer(2),
        })
        .unwrap();
        run.run_until(secs(90.0));
        run.check_conservation().unwrap();
        let refused = run.apply(&LessonCommand::SetParam {
            name: "vnodes".into(),
            value: patterns_playground::lessons::params::ParamValue::Integer(10),
        });
        assert!(matches!(refused, Err(CommandError::NeedsRestart { .. })));
    }
}

#[test]
fn a_seed_replays_exactly() {
    let go = |seed| {
        let mut run = start(&["partitioning=modulo", "zipf_s=0.9"], seed);
        run.run_until(secs(20.0));
        inject(&mut *run, "hot-key");
        run.run_until(secs(90.0));
        (
            serde_json::to_string(&run.summary()).unwrap(),
            format!("{:?}", run.extra_figures()),
        )
    };
    assert_eq!(go(4), go(4));
    assert_ne!(go(4), go(5));
}
