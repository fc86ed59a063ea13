//! The replication lesson reproduces what its sources describe (Amazon RDS User Guide,
//! "Working with DB instance read replicas" and "Multi-AZ deployments"; Terry et al.,
//! "Session guarantees for weakly consistent replicated data", PDIS 1994): asynchronous
//! replicas trail the primary by the replica lag, so reads can be stale exactly when the
//! lag is above zero; a synchronous write is acknowledged only once every replica has it,
//! so it costs the replica round trip and a failover loses nothing, while an asynchronous
//! failover loses about write rate × lag acknowledged writes; read-your-writes routing
//! removes the violations; a replica is promoted after the detection delay. Every request
//! is accounted for and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::replication::{
    simulation, ReplicationModel, Role, PROMOTION, REJOIN, SLOW_GROWTH, SPEC,
};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn sim(assignments: &[&str], seed: u64) -> Simulation<ReplicationModel> {
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

/// Runs `assignments` to `until` with `(time, injection)` pairs applied on the way.
fn scenario(
    assignments: &[&str],
    seed: u64,
    injections: &[(f64, &str)],
    until: f64,
) -> Simulation<ReplicationModel> {
    let mut run = sim(assignments, seed);
    for &(at, id) in injections {
        LessonRun::run_until(&mut run, secs(at));
        inject(&mut run, id);
    }
    LessonRun::run_until(&mut run, secs(until));
    run.check_conservation().unwrap();
    run
}

#[test]
fn reads_are_stale_only_when_replicas_lag() {
    for seed in [1, 2, 3] {
        // Asynchronous with zero lag: a replica applies a write the instant the primary
        // commits it, before the write is even acknowledged, so no read can miss it.
        let zero = scenario(&["replica_lag=0"], seed, &[(60.0, "kill-primary")], 150.0);
        assert_eq!(
            figure(&zero, "stale_reads"),
            0.0,
            "seed {seed}: async, lag 0"
        );
        assert_eq!(figure(&zero, "ryw_violations"), 0.0);
        assert_eq!(figure(&zero, "max_replica_lag_s"), 0.0);
        assert_eq!(figure(&zero, "lost_writes"), 0.0);
        // Synchronous: acknowledged only after every replica applied it.
        let sync = scenario(&["replication=synchronous"], seed, &[], 150.0);
        assert_eq!(figure(&sync, "stale_reads"), 0.0, "seed {seed}: sync");
        assert_eq!(figure(&sync, "ryw_violations"), 0.0);
        // Asynchronous with the default 500 ms lag: stale reads and violations.
        let lagging = scenario(&[], seed, &[], 150.0);
        let stale = figure(&lagging, "stale_reads");
        let violations = figure(&lagging, "ryw_violations");
        assert!(stale > 100.0, "seed {seed}: {stale} stale reads");
        assert!(violations > 100.0 && violations <= stale);
        // About 30% of reads read the client's own key; its last write is under 0.5 s old
        // with probability 1 − e^(−0.5) ≈ 0.39 (one write/s per client): ≈ 12% of reads.
        let share = violations / lagging.model.reads() as f64;
        assert!((0.08..0.16).contains(&share), "seed {seed}: share {share}");
    }
}

#[test]
fn replicas_never_run_ahead_and_sync_replicas_hold_every_acknowledged_write() {
    for sync in [false, true] {
        let mode = if sync {
            "replication=synchronous"
        } else {
            "replication=asynchronous"
        };
        let mut run = sim(&[mode, "keys=200"], 5);
        let (mut checked, mut behind) = (0, 0);
        for step in 1..=1200 {
            LessonRun::run_until(&mut run, secs(step as f64 * 0.05));
            let m = &run.model;
            for key in 0..200 {
                let primary = m.version_at(0, key);
                assert!(m.acked_version(key) <= primary);
                for db in 1..=2 {
                    let version = m.version_at(db, key);
                    assert!(version <= primary, "a replica ran ahead");
                    if sync {
                        assert!(
                            version >= m.acked_version(key),
                            "sync replica misses an ack"
                        );
                    } else if version < m.acked_version(key) {
                        behind += 1;
                    }
                    checked += 1;
                }
            }
            // Applied in log order: the applied LSN never passes the primary's.
            assert!(m.applied_lsn(1) <= m.last_lsn() && m.applied_lsn(2) <= m.last_lsn());
        }
        assert!(checked > 400_000);
        assert_eq!(behind > 0, !sync, "async replicas trail the primary");
    }
}

#[test]
fn replica_lag_follows_the_parameter() {
    for (lag_ms, seed) in [(500.0, 1), (2000.0, 2)] {
        let run = scenario(&[&format!("replica_lag={lag_ms}")], seed, &[], 120.0);
        let lag = figure(&run, "max_replica_lag_s");
        // Each entry is applied lag × U(0.9, 1.1) after its commit, in order.
        assert!(
            lag >= 0.9 * lag_ms / 1000.0 && lag <= 1.15 * lag_ms / 1000.0,
            "lag {lag} for {lag_ms} ms"
        );
        let now = run.now();
        for db in 1..=2 {
            assert!(run.model.lag(db, now).as_secs_f64() <= 1.1 * lag_ms / 1000.0);
        }
    }
    // Synchronous replicas lag by at most about the one-way trip.
    let sync = scenario(
        &["replication=synchronous", "replica_rtt=40"],
        1,
        &[],
        120.0,
    );
    assert!(figure(&sync, "max_replica_lag_s") < 0.1);
}

#[test]
fn synchronous_writes_cost_about_the_replica_round_trip() {
    for (rtt, seed) in [(20.0, 1), (100.0, 2), (200.0, 3)] {
        let rtt_set = format!("replica_rtt={rtt}");
        let async_run = scenario(&[&rtt_set], seed, &[], 120.0);
        let sync = scenario(&[&rtt_set, "replication=synchronous"], seed, &[], 120.0);
        let p50 = figure(&sync, "write_p50_ms") - figure(&async_run, "write_p50_ms");
        let p99 = figure(&sync, "write_p99_ms") - figure(&async_run, "write_p99_ms");
        // Out: half the trip × (0.8 + Exp(mean 0.2)), to the slower of two replicas; back:
        // half the trip. The median extra is about the round trip, the tail a bit more.
        assert!(
            p50 >= rtt && p50 <= 1.2 * rtt + 3.0,
            "rtt {rtt}: p50 +{p50}"
        );
        assert!(
            p99 >= rtt && p99 <= 1.7 * rtt + 5.0,
            "rtt {rtt}: p99 +{p99}"
        );
        // Asynchronous writes do not depend on the round trip at all.
        let other = scenario(&["replica_rtt=0"], seed, &[], 120.0);
        assert_eq!(
            figure(&other, "write_p99_ms"),
            figure(&async_run, "write_p99_ms")
        );
    }
}

#[test]
fn an_async_failover_loses_about_write_rate_times_lag_and_a_sync_one_nothing() {
    let mut ratios = Vec::new();
    for seed in [1, 2, 3, 4] {
        for (lag_ms, rate) in [(1000.0, 50.0), (2000.0, 50.0), (4000.0, 25.0)] {
            let set = [
                format!("replica_lag={lag_ms}"),
                format!("write_rate={rate}"),
            ];
            let set: Vec<&str> = set.iter().map(String::as_str).collect();
            let run = scenario(&set, seed, &[(60.0, "kill-primary")], 100.0);
            let lost = figure(&run, "lost_writes");
            let expected = rate * lag_ms / 1000.0;
            assert!(
                lost >= 0.7 * expected && lost <= 1.3 * expected,
                "seed {seed}, lag {lag_ms}: lost {lost}, expected about {expected}"
            );
            ratios.push(lost / expected);
        }
        let sync = scenario(
            &["replication=synchronous"],
            seed,
            &[(60.0, "kill-primary")],
            100.0,
        );
        assert_eq!(figure(&sync, "lost_writes"), 0.0, "seed {seed}: sync");
        // Writes the dead primary had not acknowledged fail instead (the client knows).
        assert!(figure(&sync, "writes_failed") > 0.0);
        // After the failover the new primary serves writes again, no reads are stale.
        assert_eq!(figure(&sync, "stale_reads"), 0.0);
    }
    // On average the best replica misses the last lag's worth of writes (a little more:
    // in-order replay waits for the slowest of the jittered entries before it).
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    assert!((0.85..1.15).contains(&mean), "mean ratio {mean}");
}

#[test]
fn the_most_up_to_date_replica_is_promoted_after_the_detection_delay() {
    let mut run = sim(&["detection_delay=8", "replicas=3"], 3);
    LessonRun::run_until(&mut run, secs(40.0));
    inject(&mut run, "kill-primary");
    assert_eq!(run.model.state(0), NodeState::Down);
    LessonRun::run_until(&mut run, secs(47.9));
    assert!((1..=3).all(|db| run.model.state(db) == NodeState::Healthy));
    let best = (1..=3)
        .max_by_key(|&db| (run.model.applied_lsn(db), std::cmp::Reverse(db)))
        .unwrap();
    LessonRun::run_until(&mut run, secs(48.0));
    assert_eq!(run.model.state(best), NodeState::Starting);
    assert_eq!(run.model.primary(), 0, "not primary before promotion ends");
    let promoted_at = 48.0 + PROMOTION.as_secs_f64();
    LessonRun::run_until(&mut run, secs(promoted_at - 0.01));
    assert_eq!(run.model.state(best), NodeState::Starting);
    LessonRun::run_until(&mut run, secs(promoted_at));
    assert_eq!(run.model.primary(), best);
    assert_eq!(run.model.role(best), Role::Primary);
    assert_eq!(run.model.state(best), NodeState::Healthy);
    assert_eq!(
        figure(&run, "time_to_promote_s"),
        8.0 + PROMOTION.as_secs_f64()
    );
    // Writes fail while no primary is up, and succeed again afterwards.
    let failed = figure(&run, "writes_failed");
    assert!(failed > 0.0);
    let completed = run.metrics().counters().completed;
    LessonRun::run_until(&mut run, secs(promoted_at + 20.0));
    assert_eq!(figure(&run, "writes_failed"), failed);
    assert!(run.metrics().counters().completed > completed + 1000);
    // The log tells the story: primary down, replica starting, replica healthy.
    let node = |key: &str| run.topology().find(key).unwrap();
    let changes: Vec<(f64, _, NodeState)> = run
        .log()
        .entries()
        .iter()
        .filter_map(|e| match e.what {
            Notable::StateChanged { node, to } => Some((e.time.as_secs_f64(), node, to)),
            _ => None,
        })
        .collect();
    let promoted = node(&format!("replica-{best}"));
    assert_eq!(
        changes,
        vec![
            (40.0, node("primary"), NodeState::Down),
            (48.0, promoted, NodeState::Starting),
            (promoted_at, promoted, NodeState::Healthy),
        ]
    );
    // Restore rebuilds the old primary as a replica.
    inject(&mut run, "restore");
    assert_eq!(run.model.state(0), NodeState::Starting);
    LessonRun::run_until(&mut run, secs(promoted_at + 20.0 + REJOIN.as_secs_f64()));
    assert_eq!(run.model.state(0), NodeState::Healthy);
    assert_eq!(run.model.role(0), Role::Replica);
    run.check_conservation().unwrap();
}

#[test]
fn read_your_writes_routing_removes_the_violations() {
    for seed in [1, 2, 3] {
        let plain = scenario(&[], seed, &[], 150.0);
        let routed = scenario(&["read_your_writes=true"], seed, &[], 150.0);
        assert!(figure(&plain, "ryw_violations") > 100.0);
        assert_eq!(figure(&plain, "reads_to_primary"), 0.0);
        assert_eq!(figure(&routed, "ryw_violations"), 0.0, "seed {seed}");
        // It sends the reads the replicas cannot answer to the primary...
        let to_primary = figure(&routed, "reads_to_primary");
        assert!(to_primary >= figure(&plain, "ryw_violations") * 0.8);
        // ...and other clients can still read stale data (it is a per-session promise).
        assert!(figure(&routed, "stale_reads") > 0.0);
        assert!(figure(&routed, "stale_reads") < figure(&plain, "stale_reads"));
    }
    // Switched on mid-run, the count stops growing at once.
    let mut run = sim(&[], 4);
    LessonRun::run_until(&mut run, secs(60.0));
    run.apply(&LessonCommand::SetParam {
        name: "read_your_writes".into(),
        value: ParamValue::Toggle(true),
    })
    .unwrap();
    // Reads already on their way keep their replica: let them finish.
    LessonRun::run_until(&mut run, secs(61.0));
    let before = figure(&run, "ryw_violations");
    assert!(before > 0.0);
    LessonRun::run_until(&mut run, secs(150.0));
    assert_eq!(figure(&run, "ryw_violations"), before);
}

#[test]
fn a_slow_replica_falls_behind_and_under_sync_slows_every_write() {
    let mut run = sim(&[], 1);
    LessonRun::run_until(&mut run, secs(30.0));
    inject(&mut run, "slow-replica");
    assert_eq!(run.model.state(1), NodeState::Unhealthy);
    LessonRun::run_until(&mut run, secs(50.0));
    // Lag grows by SLOW_GROWTH s per s on top of the normal 0.5 s.
    let lag = run.model.lag(1, run.now()).as_secs_f64();
    let expected = 0.5 + SLOW_GROWTH * 20.0;
    assert!(
        (lag - expected).abs() < 0.4,
        "lag {lag}, expected {expected}"
    );
    assert!(run.model.lag(2, run.now()).as_secs_f64() < 0.6);
    inject(&mut run, "restore");
    assert_eq!(run.model.state(1), NodeState::Healthy);
    LessonRun::run_until(&mut run, secs(51.0));
    assert!(run.model.lag(1, run.now()).as_secs_f64() < 0.6);

    let quiet = scenario(&["replication=synchronous"], 1, &[], 60.0);
    let slow = scenario(
        &["replication=synchronous"],
        1,
        &[(30.0, "slow-replica")],
        60.0,
    );
    assert!(figure(&slow, "write_p99_ms") > 10.0 * figure(&quiet, "write_p99_ms"));
    assert_eq!(figure(&slow, "stale_reads"), 0.0);
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let refused = |run: &mut dyn LessonRun, id: &str| {
        matches!(
            run.apply(&LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        )
    };
    let mut run = SPEC.start(&params(&["replicas=1"]), Seed(1));
    assert!(refused(run.as_mut(), "restore"));
    inject(run.as_mut(), "slow-replica");
    assert!(refused(run.as_mut(), "slow-replica"));
    inject(run.as_mut(), "restore");
    inject(run.as_mut(), "kill-primary");
    assert!(refused(run.as_mut(), "kill-primary"));
    assert!(refused(run.as_mut(), "restore"));
    run.run_until(secs(20.0));
    // One replica, now the primary: nothing left to promote.
    assert!(refused(run.as_mut(), "kill-primary"));
    assert!(matches!(
        run.apply(&LessonCommand::Inject("kill-everything".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
    assert!(matches!(
        run.apply(&LessonCommand::SetParam {
            name: "replicas".into(),
            value: ParamValue::Integer(3)
        }),
        Err(CommandError::NeedsRestart { .. })
    ));
}

#[test]
fn every_request_is_accounted_for_and_a_seed_replays_exactly() {
    let session = |seed: u64, mode: &str| {
        let mut run = SPEC.start(&params(&[mode, "replicas=3"]), Seed(seed));
        let steps: [(f64, LessonCommand); 7] = [
            (10.0, LessonCommand::Inject("slow-replica".into())),
            (
                20.0,
                LessonCommand::SetParam {
                    name: "write_rate".into(),
                    value: ParamValue::Number(120.0),
                },
            ),
            (30.0, LessonCommand::Inject("kill-primary".into())),
            (
                35.0,
                LessonCommand::SetParam {
                    name: "read_your_writes".into(),
                    value: ParamValue::Toggle(true),
                },
            ),
            (60.0, LessonCommand::Inject("restore".into())),
            (62.0, LessonCommand::Inject("restore".into())),
            (90.0, LessonCommand::Inject("kill-primary".into())),
        ];
        for (at, command) in steps {
            run.run_until(secs(at));
            run.check_conservation().unwrap();
            run.apply(&command).unwrap();
            run.check_conservation().unwrap();
        }
        run.run_until(secs(150.0));
        run.check_conservation().unwrap();
        let figures: Vec<String> = run
            .extra_figures()
            .iter()
            .map(|f| format!("{}={}", f.key, f.value))
            .collect();
        (
            fingerprint(&run.summary()),
            figures,
            run.log().entries().len(),
        )
    };
    for mode in ["replication=asynchronous", "replication=synchronous"] {
        for seed in [1, 2, 3, 4] {
            assert_eq!(
                session(seed, mode),
                session(seed, mode),
                "seed {seed} replays"
            );
        }
    }
    assert_ne!(
        session(1, "replication=asynchronous").0,
        session(2, "replication=asynchronous").0
    );
}
