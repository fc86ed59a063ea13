//! The CDN lesson reproduces what CloudFront's guide and RFC 9111 describe: an edge hit
//! costs only the user-to-edge round trip and never reaches the origin; the hit ratio
//! rises with the TTL and the cache size; fresh copies are served even after the origin
//! changed (stale), never with a zero TTL or without updates; an invalidation empties
//! every edge, stops the stale responses and sends a burst of misses to the origin; with
//! the origin down, edges keep serving what they hold (and expired copies with
//! stale-if-error) while without edges everything fails; simultaneous misses collapse
//! into one origin request; requests are conserved and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::cdn::{self, CdnModel, REGIONS, SPEC};
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn secs(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

fn sim(assignments: &[&str], seed: u64) -> Simulation<CdnModel> {
    cdn::simulation(&params(assignments), Seed(seed))
}

fn run_to(assignments: &[&str], seed: u64, until: f64) -> Simulation<CdnModel> {
    let mut run = sim(assignments, seed);
    LessonRun::run_until(&mut run, secs(until));
    run.check_conservation().unwrap();
    run
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

fn origin_state(run: &dyn LessonRun) -> NodeState {
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 0);
    let origin = run.topology().find("origin").unwrap();
    snapshot
        .nodes
        .iter()
        .find(|view| view.node == origin)
        .unwrap()
        .state
}

#[test]
fn the_topology_has_an_edge_per_region_only_when_edges_are_on() {
    let on = sim(&["edge=on"], 1);
    let off = sim(&["edge=off"], 1);
    for region in ["na", "eu", "ap", "sa"] {
        assert!(on.topology().find(&format!("users-{region}")).is_some());
        assert!(on.topology().find(&format!("edge-{region}")).is_some());
        assert!(off.topology().find(&format!("users-{region}")).is_some());
        assert!(off.topology().find(&format!("edge-{region}")).is_none());
    }
    assert!(on.topology().find("origin").is_some());
    assert_eq!(on.model.cached_per_edge(), vec![0, 0, 0, 0]);
    assert!(off.model.cached_per_edge().is_empty());
}

#[test]
fn a_hit_costs_the_edge_round_trip_and_a_far_region_saves_the_ocean() {
    let on = run_to(&["edge=on"], 3, 300.0);
    let off = run_to(&["edge=off"], 3, 300.0);
    // Same arrivals on both sides.
    assert_eq!(on.summary().generated, off.summary().generated);
    let keys = ["na", "eu", "ap", "sa"];
    for (region, key) in REGIONS.iter().zip(keys) {
        let p50_on = figure(&on, &format!("latency_p50_{key}_ms"));
        let p50_off = figure(&off, &format!("latency_p50_{key}_ms"));
        // Without edges every request crosses to the origin and is served there.
        assert!(
            p50_off >= region.origin_rtt_ms as f64,
            "{key}: p50 without edge {p50_off} ms below the origin round trip"
        );
        // With edges most requests hit: the median is the edge round trip (the
        // histogram's relative error is 1/64).
        let edge = region.edge_rtt_ms as f64;
        assert!(
            (p50_on - edge).abs() <= edge / 32.0,
            "{key}: p50 with edge {p50_on} ms, edge round trip {edge} ms"
        );
    }
    // Asia-Pacific: from about 170 ms + service to 15 ms.
    assert!(figure(&off, "latency_p50_ap_ms") > 170.0);
    assert!(figure(&on, "latency_p50_ap_ms") < 16.0);
}

#[test]
fn origin_load_falls_by_at_least_the_hit_ratio() {
    for seed in [1, 2, 3] {
        let on = run_to(&["edge=on"], seed, 300.0);
        let off = run_to(&["edge=off"], seed, 300.0);
        let hit = figure(&on, "hit_ratio") / 100.0;
        assert!(hit > 0.5, "hit ratio {hit}");
        let requests = on.summary().generated as f64;
        let origin_on = on.model.origin_requests() as f64;
        let origin_off = off.model.origin_requests() as f64;
        // Every origin request is a miss or a revalidation; collapsed misses add none.
        assert!(origin_on <= (1.0 - hit) * requests + 1.0);
        // Without edges the origin sees every request that has arrived there.
        assert!(origin_off >= requests - 50.0);
        assert!(origin_on <= (1.0 - hit) * origin_off + 50.0);
        assert!((figure(&on, "origin_offload_pct") / 100.0) >= hit - 1e-9);
        assert_eq!(figure(&off, "hit_ratio"), 0.0);
    }
}

#[test]
fn the_hit_ratio_rises_with_the_ttl_and_with_the_cache_size() {
    let mut previous = -1.0;
    for ttl in ["0", "5", "20", "60", "300", "3600"] {
        let run = run_to(&["update_rate=0", &format!("ttl={ttl}")], 4, 200.0);
        let hit = figure(&run, "hit_ratio");
        assert!(hit >= previous, "ttl {ttl}: hit ratio {hit} < {previous}");
        previous = hit;
    }
    assert!(previous > 60.0);
    let mut previous = -1.0;
    for size in ["0", "20", "100", "500", "1000", "2000"] {
        let run = run_to(&[&format!("cache_size={size}")], 4, 200.0);
        let hit = figure(&run, "hit_ratio");
        assert!(hit >= previous, "size {size}: hit ratio {hit} < {previous}");
        previous = hit;
    }
    // A zero TTL never hits; a zero-size cache never hits.
    assert_eq!(figure(&run_to(&["ttl=0"], 4, 60.0), "hit_ratio"), 0.0);
    assert_eq!(
        figure(&run_to(&["cache_size=0"], 4, 60.0), "hit_ratio"),
        0.0
    );
}

#[test]
fn revalidation_with_a_zero_ttl_saves_bytes_but_not_requests() {
    let run = run_to(&["ttl=0", "update_rate=0.5"], 5, 200.0);
    assert_eq!(figure(&run, "hit_ratio"), 0.0);
    // Held copies are revalidated: most answers are 304 Not Modified, without a body.
    assert!(figure(&run, "not_modified") > 1000.0);
    assert!(figure(&run, "bytes_offload_pct") > 30.0);
    assert!(figure(&run, "origin_offload_pct") < 10.0);
}

#[test]
fn stale_responses_need_updates_and_a_ttl_and_grow_with_the_ttl() {
    assert_eq!(
        run_to(&["ttl=0", "update_rate=5"], 6, 200.0)
            .model
            .stale_responses(),
        0
    );
    assert_eq!(
        run_to(&["ttl=3600", "update_rate=0"], 6, 200.0)
            .model
            .stale_responses(),
        0
    );
    let mut previous = 0;
    for ttl in ["5", "30", "120", "600"] {
        let stale = run_to(&[&format!("ttl={ttl}")], 6, 200.0)
            .model
            .stale_responses();
        assert!(stale > previous, "ttl {ttl}: {stale} stale ≤ {previous}");
        previous = stale;
    }
    // Without edges nothing is ever stale.
    assert_eq!(
        run_to(&["edge=off", "ttl=600"], 6, 200.0)
            .model
            .stale_responses(),
        0
    );
}

#[test]
fn invalidation_empties_every_edge_stops_staleness_and_bursts_the_origin() {
    let mut run = run_to(&["ttl=600", "update_rate=1"], 7, 150.0);
    let stale_before = run.model.stale_responses();
    let origin_before = run.model.origin_requests();
    LessonRun::run_until(&mut run, secs(155.0));
    let stale_growth_before = run.model.stale_responses() - stale_before;
    let origin_growth_before = run.model.origin_requests() - origin_before;
    assert!(
        stale_growth_before > 20,
        "stale growth {stale_growth_before}"
    );
    inject(&mut run, "invalidate");
    assert_eq!(run.model.cached_per_edge(), vec![0, 0, 0, 0]);
    let (stale_at, origin_at) = (run.model.stale_responses(), run.model.origin_requests());
    LessonRun::run_until(&mut run, secs(160.0));
    let stale_growth_after = run.model.stale_responses() - stale_at;
    let origin_growth_after = run.model.origin_requests() - origin_at;
    assert!(
        stale_growth_after * 5 < stale_growth_before,
        "stale growth {stale_growth_before} before, {stale_growth_after} after"
    );
    assert!(
        origin_growth_after > 2 * origin_growth_before,
        "origin requests {origin_growth_before} before, {origin_growth_after} after"
    );
    assert!(figure(&run, "peak_origin_rps") > 100.0);
    run.check_conservation().unwrap();
    assert!(run.log().entries().iter().any(|entry| matches!(
        &entry.what,
        Notable::Injected { injection } if injection == "invalidate"
    )));
}

#[test]
fn with_the_origin_down_edges_keep_serving_and_without_them_everything_fails() {
    let down_at = 120.0;
    let mut on = run_to(&["edge=on"], 8, down_at);
    let mut off = run_to(&["edge=off"], 8, down_at);
    let hits_before = on.model.hits();
    let (on_failed, off_failed) = (on.summary().failed, off.summary().failed);
    let off_completed = off.summary().completed;
    let off_in_flight = off.live_requests();
    inject(&mut on, "origin-down");
    inject(&mut off, "origin-down");
    assert_eq!(origin_state(&on), NodeState::Down);
    assert!(on.log().entries().iter().any(|entry| matches!(
        entry.what,
        Notable::StateChanged {
            to: NodeState::Down,
            ..
        }
    )));
    LessonRun::run_until(&mut on, secs(down_at + 60.0));
    LessonRun::run_until(&mut off, secs(down_at + 60.0));
    // Without edges nothing completes after the failure beyond what was on its way back.
    assert!(off.summary().completed <= off_completed + off_in_flight);
    let off_lost = off.summary().failed - off_failed;
    let on_lost = on.summary().failed - on_failed;
    assert!(off_lost > 8000, "{off_lost}");
    // With edges, cached objects keep being served: hits go on, far fewer failures.
    let hits_during = on.model.hits() - hits_before;
    assert!(hits_during > 1000, "{hits_during}");
    assert!(on.model.stale_if_error_responses() > 1000);
    assert!(on_lost * 2 < off_lost, "edge {on_lost}, no edge {off_lost}");
    // Without stale-if-error, expired copies are not served: more failures.
    let mut strict = run_to(&["serve_stale_on_error=off"], 8, down_at);
    let strict_failed = strict.summary().failed;
    inject(&mut strict, "origin-down");
    LessonRun::run_until(&mut strict, secs(down_at + 60.0));
    assert_eq!(strict.model.stale_if_error_responses(), 0);
    assert!(strict.summary().failed - strict_failed > on_lost);
    // Restore: the origin serves again and failures stop.
    inject(&mut on, "restore");
    assert_eq!(origin_state(&on), NodeState::Healthy);
    LessonRun::run_until(&mut on, secs(down_at + 62.0));
    let failed = on.summary().failed;
    LessonRun::run_until(&mut on, secs(down_at + 90.0));
    assert_eq!(on.summary().failed, failed);
    on.check_conservation().unwrap();
    off.check_conservation().unwrap();
}

#[test]
fn a_viral_object_misses_once_per_edge_then_hits() {
    let mut on = run_to(&["ttl=600"], 9, 60.0);
    let mut off = run_to(&["edge=off"], 9, 60.0);
    inject(&mut on, "viral-object");
    inject(&mut off, "viral-object");
    LessonRun::run_until(&mut on, secs(125.0));
    LessonRun::run_until(&mut off, secs(125.0));
    let fetched = figure(&on, "viral_origin_fetches");
    // One fetch per edge (collapsed misses wait for it), then hits until the TTL.
    assert_eq!(fetched, REGIONS.len() as f64);
    let viral = on.model.viral_item() as usize;
    for region in 0..REGIONS.len() {
        assert!(on
            .model
            .edge_cache(region)
            .unwrap()
            .peek(viral as u32)
            .is_some());
    }
    // Without edges every viral request goes to the origin: about 30% of 150 req/s.
    let direct = figure(&off, "viral_origin_fetches");
    assert!(direct > 2000.0, "{direct}");
    // A second burst while one is running is refused.
    inject(&mut on, "viral-object");
    assert!(matches!(
        on.apply(&LessonCommand::Inject("viral-object".into())),
        Err(CommandError::NotApplicable { .. })
    ));
}

#[test]
fn collapsing_turns_simultaneous_misses_into_one_origin_request() {
    // A zero TTL: every request needs the origin, so misses overlap constantly.
    let on = run_to(&["ttl=0", "request_rate=400", "zipf_s=1.2"], 10, 120.0);
    let off = run_to(
        &["ttl=0", "request_rate=400", "zipf_s=1.2", "coalesce=off"],
        10,
        120.0,
    );
    assert_eq!(figure(&off, "collapsed"), 0.0);
    let collapsed = figure(&on, "collapsed");
    assert!(collapsed > 1000.0, "{collapsed}");
    // With a zero TTL every lookup either collapses or goes to the origin, and both runs
    // see the same arrivals: each collapsed miss is one origin request saved (up to the
    // few requests still on their way at the end).
    let with = on.model.origin_requests() as f64 + collapsed;
    let without = off.model.origin_requests() as f64;
    assert!((with - without).abs() <= 50.0, "{with} vs {without}");
}

#[test]
fn without_edges_the_origin_saturates_and_with_them_it_copes() {
    let off = run_to(&["edge=off", "request_rate=300"], 11, 120.0);
    let on = run_to(&["edge=on", "request_rate=300"], 11, 120.0);
    // 4 servers × 1 / 20 ms = 200 req/s of capacity for 300 req/s: requests time out.
    assert!(off.summary().failed > 1000);
    assert!(figure(&off, "latency_p50_na_ms") > 1000.0);
    assert_eq!(on.summary().failed, 0);
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let mut off = sim(&["edge=off"], 1);
    LessonRun::run_until(&mut off, secs(10.0));
    let refused = |run: &mut dyn LessonRun, id: &str| {
        matches!(
            run.apply(&LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        )
    };
    assert!(refused(&mut off, "invalidate"));
    assert!(refused(&mut off, "restore"));
    let mut on = sim(&["edge=on"], 1);
    assert!(
        refused(&mut on, "invalidate"),
        "nothing cached at time zero"
    );
    LessonRun::run_until(&mut on, secs(10.0));
    inject(&mut on, "origin-down");
    assert!(refused(&mut on, "origin-down"));
    assert!(matches!(
        on.apply(&LessonCommand::Inject("meteor".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
}

#[test]
fn live_parameters_apply_at_once() {
    let mut run = run_to(&[], 12, 60.0);
    let set = |run: &mut Simulation<CdnModel>, name: &str, raw: &str| {
        let value = SPEC
            .params
            .iter()
            .find(|spec| spec.name == name)
            .unwrap()
            .parse(raw)
            .unwrap();
        run.apply(&LessonCommand::SetParam {
            name: name.into(),
            value,
        })
        .unwrap();
    };
    set(&mut run, "cache_size", "10");
    assert!(run.model.cached_per_edge().iter().all(|&held| held <= 10));
    set(&mut run, "request_rate", "500");
    let before = run.summary().generated;
    LessonRun::run_until(&mut run, secs(70.0));
    let rate = (run.summary().generated - before) as f64 / 10.0;
    assert!((400.0..600.0).contains(&rate), "{rate}");
    assert!(matches!(
        run.apply(&LessonCommand::SetParam {
            name: "edge".into(),
            value: SPEC.params[0].parse("off").unwrap(),
        }),
        Err(CommandError::NeedsRestart { .. })
    ));
    run.check_conservation().unwrap();
}

#[test]
fn requests_are_conserved_and_a_seed_replays_exactly() {
    let script = [
        (30.0, "viral-object"),
        (60.0, "invalidate"),
        (90.0, "origin-down"),
        (120.0, "restore"),
    ];
    for edge in ["on", "off"] {
        for seed in [1, 2, 3] {
            let play = || {
                let mut run = SPEC.start(&params(&[&format!("edge={edge}")]), Seed(seed));
                for (at, id) in script {
                    run.run_until(secs(at));
                    let _ = run.apply(&LessonCommand::Inject(id.into()));
                    run.check_conservation().unwrap();
                }
                run.run_until(secs(180.0));
                run.check_conservation().unwrap();
                (run.summary(), run.extra_figures())
            };
            assert_eq!(play(), play(), "edge={edge} seed {seed}");
        }
    }
}
