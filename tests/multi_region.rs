//! The multi-region lesson reproduces what latency-based routing and asynchronous
//! cross-Region replicas imply: with latency routing Tokyo reads cost the in-Region round
//! trip instead of the trans-Pacific one while Virginia is unchanged; Tokyo writes pay the
//! cross-Region round trip in both modes; stale reads (read-your-writes violations) happen
//! only with lag, only at the replica, and only when the lag outlasts the reply's trip
//! back; losing Tokyo moves its users to Virginia after detection (threshold probes) plus
//! the TTL; losing the writer stops writes until promotion, which loses about lag × write
//! rate of acknowledged writes; a stalled replica falls behind one second per second and
//! catches up at the modelled speed; every request is accounted for and a seeded run
//! replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::multi_region::{
    simulation, MultiRegionModel, CATCH_UP_SPEED, SPEC, STALL, TOKYO, VIRGINIA,
};
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::{SimDuration, SimTime};

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn start(assignments: &[&str], seed: u64) -> Simulation<MultiRegionModel> {
    simulation(&params(assignments), Seed(seed))
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
    run.apply(&LessonCommand::Inject(id.into())).unwrap();
}

fn ran(assignments: &[&str], seed: u64, until: f64) -> Simulation<MultiRegionModel> {
    let mut run = start(assignments, seed);
    LessonRun::run_until(&mut run, secs(until));
    run.check_conservation().unwrap();
    run
}

fn node_state(run: &dyn LessonRun, key: &str) -> NodeState {
    let id = run.topology().find(key).unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 0);
    snapshot.nodes.iter().find(|n| n.node == id).unwrap().state
}

#[test]
fn latency_routing_serves_tokyo_reads_in_region_and_leaves_virginia_unchanged() {
    for seed in 1..=3 {
        for rtt in [120.0, 160.0, 220.0] {
            let rtt_set = format!("cross_region_rtt={rtt}");
            let latency = ran(&["routing=latency-based", &rtt_set], seed, 200.0);
            let single = ran(&["routing=single-region", &rtt_set], seed, 200.0);
            let tokyo_local = figure(&latency, "read_p50_tokyo_ms");
            let tokyo_remote = figure(&single, "read_p50_tokyo_ms");
            // In Region: 10 ms to the app, 2 ms to the database, ~3 ms of query.
            assert!(
                (10.0..25.0).contains(&tokyo_local),
                "Tokyo read p50 with latency routing: {tokyo_local} ms"
            );
            // Single Region: one trans-Pacific round trip + 2 ms + the query.
            assert!(
                tokyo_remote > rtt && tokyo_remote < rtt + 15.0,
                "Tokyo read p50 with single-region routing at RTT {rtt}: {tokyo_remote} ms"
            );
            // Virginia users are served by Virginia either way.
            let virginia = [
                figure(&latency, "read_p50_virginia_ms"),
                figure(&single, "read_p50_virginia_ms"),
            ];
            assert!((virginia[0] - virginia[1]).abs() < 1.0, "{virginia:?}");
            assert!(virginia[0] < 25.0);
            assert_eq!(figure(&single, "tokyo_users_on_virginia"), 100.0);
            assert_eq!(figure(&latency, "tokyo_users_on_virginia"), 0.0);
        }
    }
}

#[test]
fn tokyo_writes_pay_the_cross_region_round_trip_in_both_modes() {
    for seed in 1..=3 {
        for routing in ["routing=latency-based", "routing=single-region"] {
            let run = ran(&[routing], seed, 200.0);
            let tokyo = figure(&run, "write_p50_tokyo_ms");
            let virginia = figure(&run, "write_p50_virginia_ms");
            assert!(
                tokyo > 160.0 && tokyo < 190.0,
                "{routing}: Tokyo write p50 {tokyo} ms"
            );
            assert!(
                virginia < 30.0,
                "{routing}: Virginia write p50 {virginia} ms"
            );
        }
    }
    // Latency routing even adds the Tokyo hop: 10 + 160 + 6 vs 160 + 2 + 6.
    let latency = figure(
        &ran(&["routing=latency-based"], 1, 300.0),
        "write_p50_tokyo_ms",
    );
    let single = figure(
        &ran(&["routing=single-region"], 1, 300.0),
        "write_p50_tokyo_ms",
    );
    assert!(latency > single, "{latency} vs {single}");
}

#[test]
fn the_replica_trails_the_writer_by_the_configured_lag() {
    for lag in [0.0, 0.3, 1.0, 4.5] {
        let run = ran(
            &["routing=latency-based", &format!("replica_lag={lag}")],
            7,
            60.0,
        );
        let now = LessonRun::now(&run);
        let watermark = run.model.watermark(TOKYO, now);
        assert_eq!(now - watermark, SimDuration::from_secs_f64(lag));
        assert!((figure(&run, "replica_lag_s") - lag).abs() < 1e-9);
        // The writer's own "watermark" is never behind: it is not a replica.
        assert_eq!(run.model.writer(), Some(VIRGINIA));
    }
}

#[test]
fn stale_reads_need_lag_and_happen_only_at_the_replica() {
    for seed in 1..=4 {
        let none = ran(&["routing=latency-based", "replica_lag=0"], seed, 200.0);
        assert_eq!(figure(&none, "stale_reads"), 0.0, "no lag, no stale reads");
        let lagging = ran(&["routing=latency-based", "replica_lag=2"], seed, 200.0);
        let stale = figure(&lagging, "stale_reads");
        assert!(
            stale > 50.0,
            "seed {seed}: {stale} stale reads with 2 s lag"
        );
        // Only Tokyo users read a replica; Virginia users read the writer.
        assert_eq!(figure(&lagging, "stale_reads_tokyo"), stale);
        let single = ran(&["routing=single-region", "replica_lag=5"], seed, 200.0);
        assert_eq!(
            figure(&single, "stale_reads"),
            0.0,
            "everyone reads the writer"
        );
    }
}

#[test]
fn a_read_back_is_stale_only_when_the_lag_outlasts_the_replys_trip_back() {
    // A read-back reaches the Tokyo replica ~91 ms after the commit in Virginia (80 ms
    // back across the Pacific, 10 ms user round trip, 1 ms to the database).
    let share = |lag: &str| {
        let run = ran(
            &[
                "routing=latency-based",
                "read_back=1",
                "write_share=0.2",
                lag,
            ],
            3,
            200.0,
        );
        figure(&run, "stale_read_pct")
    };
    let short = share("replica_lag=0.06");
    let long = share("replica_lag=0.12");
    assert!(short < 1.0, "lag 60 ms: {short}% stale");
    assert!(long > 15.0, "lag 120 ms: {long}% stale");
    assert!(share("replica_lag=2") > long);
}

/// The detection time Route 53's threshold rule gives for a failure at `t`.
fn expected_detection(phase: SimDuration, interval: u64, threshold: u64, t: SimTime) -> f64 {
    let interval = SimDuration::from_secs(interval).ticks();
    let since_phase = t.ticks() - phase.ticks();
    let first = phase.ticks() + (since_phase / interval + 1) * interval;
    (first + (threshold - 1) * interval - t.ticks()) as f64 / 1e6
}

#[test]
fn losing_tokyo_moves_its_users_after_detection_plus_the_ttl() {
    for (seed, interval, threshold, ttl) in [(1, 10, 3, 60.0), (2, 30, 2, 20.0), (3, 10, 1, 0.0)] {
        let set = [
            "routing=latency-based".to_owned(),
            format!("check_interval={interval}"),
            format!("failure_threshold={threshold}"),
            format!("dns_ttl={ttl}"),
        ];
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        let mut run = start(&set, seed);
        let lost = secs(100.0);
        LessonRun::run_until(&mut run, lost);
        inject(&mut run, "lose-tokyo");
        assert_eq!(node_state(&run, "tokyo-app"), NodeState::Down);
        let detection = expected_detection(run.model.probe_phase(TOKYO), interval, threshold, lost);
        // Just before detection DNS still answers Tokyo to Tokyo users.
        LessonRun::run_until(
            &mut run,
            lost + SimDuration::from_secs_f64(detection - 0.001),
        );
        assert_eq!(run.model.dns_answers()[TOKYO], TOKYO);
        LessonRun::run_until(&mut run, lost + SimDuration::from_secs_f64(detection));
        assert_eq!(run.model.dns_answers()[TOKYO], VIRGINIA);
        assert_eq!(node_state(&run, "check-tokyo"), NodeState::Unhealthy);
        assert!((figure(&run, "detection_s") - detection).abs() < 1e-6);
        let reroute = figure(&run, "reroute_s");
        assert!(
            reroute >= detection && reroute <= detection + ttl + 0.021,
            "reroute {reroute} vs detection {detection} + TTL {ttl}"
        );
        if ttl > 0.0 {
            assert!(
                reroute > detection + 0.5 * ttl,
                "someone cached Tokyo just before the switch"
            );
        }
        // After the last cached Tokyo answer has expired, nothing fails any more.
        LessonRun::run_until(&mut run, lost + SimDuration::from_secs_f64(reroute + 0.5));
        let failed = run.summary().failed;
        assert!(failed > 0, "requests sent to the dead Region fail");
        LessonRun::run_until(&mut run, secs(400.0));
        assert_eq!(run.summary().failed, failed);
        run.check_conservation().unwrap();
    }
}

#[test]
fn rerouted_tokyo_users_read_across_the_pacific() {
    let mut run = start(&["routing=latency-based"], 4);
    LessonRun::run_until(&mut run, secs(1.0));
    inject(&mut run, "lose-tokyo");
    LessonRun::run_until(&mut run, secs(600.0));
    let tokyo = figure(&run, "read_p50_tokyo_ms");
    assert!(tokyo > 160.0 && tokyo < 180.0, "{tokyo}");
    assert!(figure(&run, "read_p50_virginia_ms") < 25.0);
    assert_eq!(figure(&run, "stale_reads"), 0.0, "no replica is serving");
    // Restoring Tokyo: its check passes again and DNS answers Tokyo again.
    inject(&mut run, "restore");
    LessonRun::run_until(&mut run, secs(700.0));
    assert_eq!(run.model.dns_answers(), [VIRGINIA, TOKYO]);
    // The replica resumes from where it stopped: ~600 s behind, it catches up at
    // (speed − 1) s per s, so it is still lagging 100 s later and caught up by 800 s.
    assert_eq!(node_state(&run, "tokyo-db"), NodeState::Unhealthy);
    LessonRun::run_until(&mut run, secs(800.0));
    assert_eq!(node_state(&run, "tokyo-db"), NodeState::Healthy);
    assert!((figure(&run, "replica_lag_s") - 1.0).abs() < 1e-6);
}

#[test]
fn losing_the_writer_stops_writes_until_the_replica_is_promoted() {
    let mut run = start(&["routing=latency-based", "promotion_time=60"], 5);
    LessonRun::run_until(&mut run, secs(60.0));
    inject(&mut run, "lose-virginia");
    assert_eq!(node_state(&run, "virginia-db"), NodeState::Down);
    LessonRun::run_until(&mut run, secs(100.0));
    let failed_writes = figure(&run, "failed_writes");
    assert!(
        failed_writes > 20.0,
        "writes fail everywhere: {failed_writes}"
    );
    // Tokyo's reads keep working: nothing sent to Tokyo fails.
    let failed_reads = figure(&run, "failed_reads");
    inject(&mut run, "promote");
    assert_eq!(node_state(&run, "tokyo-db"), NodeState::Starting);
    assert_eq!(run.model.writer(), None);
    LessonRun::run_until(&mut run, secs(159.9));
    assert!(figure(&run, "failed_writes") > failed_writes);
    assert!(figure(&run, "write_outage_s") > 99.0);
    LessonRun::run_until(&mut run, secs(160.0));
    assert_eq!(run.model.writer(), Some(TOKYO));
    assert_eq!(figure(&run, "write_outage_s"), 100.0);
    assert_eq!(figure(&run, "writer_is_tokyo"), 1.0);
    // Virginia users were rerouted to Tokyo long before (detection + TTL < 100 s): from
    // now on nothing fails, and Tokyo writes are local.
    LessonRun::run_until(&mut run, secs(160.5));
    let settled = run.summary().failed;
    LessonRun::run_until(&mut run, secs(400.0));
    assert_eq!(run.summary().failed, settled);
    assert!(figure(&run, "failed_reads") >= failed_reads);
    run.check_conservation().unwrap();
}

#[test]
fn a_promotion_loses_about_lag_times_write_rate_of_acknowledged_writes() {
    let lost = |lag: &str, seed| {
        let mut run = start(&["routing=latency-based", lag], seed);
        LessonRun::run_until(&mut run, secs(100.0));
        inject(&mut run, "lose-virginia");
        figure(&run, "writes_lost")
    };
    // Writes commit at about 40 req/s × 10% = 4/s.
    let mut total = [0.0; 2];
    for seed in 1..=6 {
        assert_eq!(lost("replica_lag=0", seed), 0.0);
        total[0] += lost("replica_lag=1", seed);
        total[1] += lost("replica_lag=4", seed);
    }
    let (one, four) = (total[0] / 6.0, total[1] / 6.0);
    assert!(
        (2.0..7.0).contains(&one),
        "lag 1 s: {one} writes lost on average"
    );
    assert!(
        (10.0..24.0).contains(&four),
        "lag 4 s: {four} writes lost on average"
    );
}

#[test]
fn a_stalled_replica_falls_behind_and_catches_up() {
    let mut run = start(&["routing=latency-based", "replica_lag=1"], 2);
    LessonRun::run_until(&mut run, secs(50.0));
    inject(&mut run, "lag-spike");
    LessonRun::run_until(&mut run, secs(70.0));
    assert!((figure(&run, "replica_lag_s") - 21.0).abs() < 1e-6);
    assert_eq!(node_state(&run, "tokyo-db"), NodeState::Unhealthy);
    let stall = STALL.as_secs_f64();
    LessonRun::run_until(&mut run, secs(50.0 + stall));
    assert!((figure(&run, "replica_lag_s") - (1.0 + stall)).abs() < 1e-6);
    // Catching up at CATCH_UP_SPEED× real time: the backlog shrinks by (speed − 1) s per s.
    let catch_up = stall / (CATCH_UP_SPEED - 1) as f64;
    LessonRun::run_until(&mut run, secs(50.0 + stall + catch_up / 2.0));
    assert!((figure(&run, "replica_lag_s") - (1.0 + stall / 2.0)).abs() < 1e-6);
    LessonRun::run_until(&mut run, secs(50.0 + stall + catch_up + 1.0));
    assert!((figure(&run, "replica_lag_s") - 1.0).abs() < 1e-6);
    assert!((figure(&run, "max_replica_lag_s") - (1.0 + stall)).abs() < 0.001);
    assert_eq!(node_state(&run, "tokyo-db"), NodeState::Healthy);
    // The replica was logged as lagging and as caught up.
    let db = run.topology().find("tokyo-db").unwrap();
    let states: Vec<NodeState> = run
        .log()
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node, to } if node == db => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(states, [NodeState::Unhealthy, NodeState::Healthy]);
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let mut run = start(&["routing=latency-based"], 1);
    LessonRun::run_until(&mut run, secs(10.0));
    let refused = |run: &mut Simulation<MultiRegionModel>, id: &str| {
        matches!(
            run.apply(&LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        )
    };
    assert!(refused(&mut run, "promote"), "the writer is healthy");
    assert!(refused(&mut run, "restore"), "nothing to restore");
    inject(&mut run, "lose-tokyo");
    assert!(refused(&mut run, "lose-tokyo"));
    assert!(refused(&mut run, "lag-spike"), "no replica replicates");
    inject(&mut run, "restore");
    inject(&mut run, "lose-virginia");
    inject(&mut run, "promote");
    assert!(refused(&mut run, "promote"), "already promoting");
    assert!(matches!(
        run.apply(&LessonCommand::Inject("nonsense".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
    let mut single = start(&["routing=single-region"], 1);
    inject(&mut single, "lose-virginia");
    assert!(refused(&mut single, "promote"), "nobody is routed to Tokyo");
}

#[test]
fn conservation_holds_over_seeds_and_commands() {
    let scripts: [&[(f64, &str)]; 4] = [
        &[(20.0, "lose-tokyo"), (90.0, "restore")],
        &[
            (15.0, "lose-virginia"),
            (40.0, "promote"),
            (70.0, "restore"),
            (80.0, "lag-spike"),
        ],
        &[
            (10.0, "lag-spike"),
            (25.0, "lose-virginia"),
            (30.0, "lose-tokyo"),
            (60.0, "restore"),
        ],
        &[
            (5.0, "lose-virginia"),
            (6.0, "promote"),
            (8.0, "lose-tokyo"),
            (50.0, "restore"),
        ],
    ];
    for seed in 1..=4 {
        for routing in ["routing=latency-based", "routing=single-region"] {
            for script in scripts {
                let mut run = start(&[routing, "replica_lag=2"], seed);
                for &(at, id) in script {
                    LessonRun::run_until(&mut run, secs(at));
                    let _ = run.apply(&LessonCommand::Inject(id.into()));
                    run.check_conservation().unwrap();
                }
                LessonRun::run_until(&mut run, secs(150.0));
                run.check_conservation().unwrap();
            }
        }
    }
}

#[test]
fn a_seeded_run_replays_exactly() {
    let script = |seed| {
        let mut run = start(&["routing=latency-based"], seed);
        LessonRun::run_until(&mut run, secs(30.0));
        inject(&mut run, "lag-spike");
        run.apply(&LessonCommand::SetParam {
            name: "tokyo_rate".into(),
            value: patterns_playground::lessons::params::ParamValue::Number(40.0),
        })
        .unwrap();
        LessonRun::run_until(&mut run, secs(80.0));
        inject(&mut run, "lose-virginia");
        LessonRun::run_until(&mut run, secs(300.0));
        (
            fingerprint(&run.summary()),
            format!("{:?}", run.extra_figures()),
        )
    };
    assert_eq!(script(9), script(9));
    assert_ne!(script(9), script(10));
}

#[test]
fn a_default_run_is_quick() {
    let started = std::time::Instant::now();
    let mut run = SPEC.start(&SPEC.default_params(), Seed(1));
    run.run_until(SimTime::ZERO + SPEC.default_duration);
    run.check_conservation().unwrap();
    assert!(started.elapsed().as_secs_f64() < 1.0);
}
