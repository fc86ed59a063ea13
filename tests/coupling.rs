//! The coupling lesson reproduces what its sources describe (seed 004: tight coupling,
//! loose coupling through a load balancer, loose and asynchronous through a queue; SQS
//! visibility timeout; ELB health checks): a dead server ripples to the caller fully when
//! it is called directly, only for the detection gap through a load balancer, and not at
//! all through a queue; a slow database behind every server ripples through both
//! synchronous variants but only turns into backlog behind a queue, whose end-to-end times
//! include that backlog wait. Every request is accounted for and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::coupling::{
    HEALTHY_AFTER, HOP, SPEC, UNHEALTHY_AFTER, VISIBILITY_TIMEOUT,
};
use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::random::SimRng;
use patterns_playground::sim::requests::Place;
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
    run.apply(&LessonCommand::Inject(id.into())).unwrap();
}

/// `coupling` with `failure` injected at 120 s and restored at 240 s (none if empty), run
/// to `until`.
fn scenario(coupling: &str, failure: &str, seed: u64, until: f64) -> Box<dyn LessonRun> {
    let setting = format!("coupling={coupling}");
    let mut run = start(&[setting.as_str()], seed);
    if !failure.is_empty() {
        run.run_until(secs(120.0));
        inject(run.as_mut(), failure);
        run.run_until(secs(240.0));
        run.check_conservation().unwrap();
        inject(run.as_mut(), "restore");
    }
    run.run_until(secs(until));
    run.check_conservation().unwrap();
    run
}

#[test]
fn a_dead_server_ripples_fully_when_called_directly_partly_through_a_balancer_and_not_through_a_queue(
) {
    for seed in [1, 2, 3, 4] {
        let direct = scenario("direct", "kill-server", seed, 400.0);
        let balanced = scenario("load-balancer", "kill-server", seed, 400.0);
        let queued = scenario("queue", "kill-server", seed, 400.0);
        let errors = |run: &dyn LessonRun| figure(run, "caller_errors");
        let (d, b, q) = (
            errors(direct.as_ref()),
            errors(balanced.as_ref()),
            errors(queued.as_ref()),
        );
        assert!(
            d > 2.0 * b && b > 0.0,
            "seed {seed}: direct {d} > LB {b} > 0"
        );
        assert_eq!(
            q, 0.0,
            "seed {seed}: the queue's caller never sees the crash"
        );
        // Direct: every call pinned to the dead server fails for the whole outage:
        // about rate / servers × 120 s = 50 / 3 × 120 = 2000 (Poisson noise a few %).
        assert!((d - 2000.0).abs() < 200.0, "seed {seed}: direct errors {d}");
        // Through the balancer only until two failed checks (10-20 s) take it out, plus
        // the calls in progress there: at most 50 / 3 × 20 + a handful.
        assert!(
            b < 50.0 / 3.0 * 20.0 * 1.15 + 20.0,
            "seed {seed}: LB errors {b}"
        );
        for run in [&direct, &balanced, &queued] {
            assert_eq!(
                run.summary().generated,
                direct.summary().generated,
                "same arrivals"
            );
            assert_eq!(
                run.summary().failed as f64,
                errors(run.as_ref()),
                "every error is a failure"
            );
        }
        // The web tier turned unhealthy for the outage (direct) or the gap (LB) only.
        let unhealthy = |run: &dyn LessonRun| figure(run, "web_unhealthy_s");
        assert!(unhealthy(direct.as_ref()) >= 115.0, "seed {seed}");
        assert!(
            (5.0..=25.0).contains(&unhealthy(balanced.as_ref())),
            "seed {seed}"
        );
        assert_eq!(unhealthy(queued.as_ref()), 0.0);
        assert_eq!(figure(direct.as_ref(), "ripple_depth"), 2.0);
        assert_eq!(figure(queued.as_ref(), "ripple_depth"), 1.0);
    }
}

#[test]
fn a_slow_database_ripples_through_both_synchronous_variants_but_only_fills_the_queue() {
    for seed in [1, 2, 3] {
        let baseline = scenario("queue", "", seed, 600.0);
        let queued = scenario("queue", "slow-database", seed, 600.0);
        // The caller's view is identical to a run without any failure: same errors, same
        // latency distribution (it only waits for the enqueue).
        for key in [
            "caller_errors",
            "caller_p99_s",
            "caller_error_pct",
            "web_unhealthy_s",
        ] {
            assert_eq!(
                figure(baseline.as_ref(), key),
                figure(queued.as_ref(), key),
                "seed {seed}: {key}"
            );
        }
        assert!(figure(queued.as_ref(), "caller_p99_s") <= 2.0 * HOP.as_secs_f64() + 1e-9);
        assert!(
            figure(queued.as_ref(), "backlog_peak") > 1000.0,
            "backlog grows"
        );
        assert_eq!(figure(queued.as_ref(), "backlog"), 0.0, "then drains");
        assert_eq!(queued.summary().failed + queued.summary().rejected, 0);
        for coupling in ["direct", "load-balancer"] {
            let run = scenario(coupling, "slow-database", seed, 600.0);
            assert!(
                figure(run.as_ref(), "caller_errors") > 1000.0,
                "seed {seed} {coupling}: timeouts and refusals reach the caller"
            );
            assert!(run.summary().rejected > 0, "the web tier's threads ran out");
            assert!(
                figure(run.as_ref(), "caller_p99_s") >= 1.99,
                "callers wait the timeout"
            );
            assert_eq!(figure(run.as_ref(), "ripple_depth"), 3.0, "{coupling}");
            assert!(
                figure(run.as_ref(), "wasted_calls") > 0.0,
                "servers work for nobody"
            );
            // Shallow health checks see a running server: nothing is taken out.
            assert!(!run
                .log()
                .entries()
                .iter()
                .any(|entry| matches!(entry.what, Notable::NodeRemoved { .. })));
        }
    }
}

#[test]
fn queue_end_to_end_times_include_the_backlog_wait_and_meet_batch_but_not_hard_deadlines() {
    let healthy = scenario("queue", "", 5, 600.0);
    let slowed = scenario("queue", "slow-database", 5, 600.0);
    let (h, s) = (healthy.summary(), slowed.summary());
    assert!(
        h.wait_mean < 0.01,
        "no backlog when healthy: {}",
        h.wait_mean
    );
    assert!(
        s.wait_mean > 5.0,
        "jobs waited in the queue: {}",
        s.wait_mean
    );
    // End to end = ack + backlog wait + processing: the mean sojourn exceeds the mean
    // wait by at least the healthy processing path.
    assert!(s.sojourn_mean > s.wait_mean + 0.5 * h.sojourn_mean);
    assert!(
        s.latency_p99 > 30.0,
        "the p99 job waited tens of seconds: {}",
        s.latency_p99
    );
    assert_eq!(figure(healthy.as_ref(), "within_hard_pct"), 100.0);
    assert!(figure(slowed.as_ref(), "within_hard_pct") < 80.0);
    assert_eq!(figure(slowed.as_ref(), "within_batch_pct"), 100.0);
    // Direct meets the hard deadline while nothing fails, and nothing else after.
    let direct = scenario("direct", "", 5, 600.0);
    assert_eq!(figure(direct.as_ref(), "within_hard_pct"), 100.0);
    let direct_slowed = scenario("direct", "slow-database", 5, 600.0);
    let hard = figure(direct_slowed.as_ref(), "within_hard_pct");
    let batch = figure(direct_slowed.as_ref(), "within_batch_pct");
    assert!(batch < 90.0, "failed jobs never finish: batch {batch}");
    assert!(hard <= batch);
}

#[test]
fn deadline_shares_count_failures_as_misses_and_match_the_counters() {
    let run = scenario("direct", "kill-server", 6, 400.0);
    let summary = run.summary();
    // No failure-free job is slow here, so every completed job met even the hard
    // deadline: the share is completed / (completed + failed).
    let expected = 100.0 * summary.completed as f64 / (summary.completed + summary.failed) as f64;
    for key in ["within_hard_pct", "within_soft_pct", "within_batch_pct"] {
        let value = figure(run.as_ref(), key);
        assert!(
            (value - expected).abs() < 1e-9,
            "{key}: {value} vs {expected}"
        );
    }
}

#[test]
fn the_balancer_takes_a_dead_server_out_after_failed_checks_and_back_after_passed_ones() {
    let interval = 10.0;
    let mut run = start(&["coupling=load-balancer"], 7);
    run.run_until(secs(125.0));
    inject(run.as_mut(), "kill-server");
    run.run_until(secs(300.0));
    inject(run.as_mut(), "restore");
    run.run_until(secs(400.0));
    let server = run.topology().find("server-1").unwrap();
    let at = |pick: fn(&Notable) -> bool| -> Vec<f64> {
        run.log()
            .entries()
            .iter()
            .filter(|entry| pick(&entry.what))
            .map(|entry| entry.time.as_secs_f64())
            .collect()
    };
    let states = |run: &dyn LessonRun| -> Vec<(f64, NodeState)> {
        run.log()
            .entries()
            .iter()
            .filter_map(|entry| match entry.what {
                Notable::StateChanged { node, to } if node == server => {
                    Some((entry.time.as_secs_f64(), to))
                }
                _ => None,
            })
            .collect()
    };
    // Down at the crash; running but out of rotation (starting) from the restore until
    // the fifth passed check; then healthy.
    assert_eq!(
        states(run.as_ref()),
        vec![
            (125.0, NodeState::Down),
            (300.0, NodeState::Starting),
            (300.0 + interval * HEALTHY_AFTER as f64, NodeState::Healthy)
        ]
    );
    let removed = at(|what| matches!(what, Notable::NodeRemoved { .. }));
    let added = at(|what| matches!(what, Notable::NodeAdded { .. }));
    // Checks at 130, 140: the second failure takes it out.
    assert_eq!(removed, vec![120.0 + interval * UNHEALTHY_AFTER as f64]);
    // Restored at 300; passes at 310..350: the fifth puts it back.
    assert_eq!(added, vec![300.0 + interval * HEALTHY_AFTER as f64]);
    run.check_conservation().unwrap();
}

#[test]
fn with_every_server_dead_the_balancer_fails_open_and_the_queue_keeps_accepting() {
    for coupling in ["load-balancer", "queue"] {
        let setting = format!("coupling={coupling}");
        let mut run = start(&[setting.as_str()], 8);
        run.run_until(secs(60.0));
        for _ in 0..3 {
            inject(run.as_mut(), "kill-server");
        }
        assert!(matches!(
            run.apply(&LessonCommand::Inject("kill-server".into())),
            Err(CommandError::NotApplicable { .. })
        ));
        let before = run.summary();
        run.run_until(secs(120.0));
        let after = run.summary();
        run.check_conservation().unwrap();
        if coupling == "queue" {
            assert_eq!(after.failed, 0);
            // Only results already on their way out at the crash still arrive.
            assert!(
                after.completed - before.completed < 10,
                "nothing is processed"
            );
            assert!(
                figure(run.as_ref(), "backlog") > 2500.0,
                "the backlog holds the jobs"
            );
        } else {
            // Every call is sent somewhere (fail open) and refused: all fail fast.
            assert!(after.completed - before.completed < 10);
            assert!(after.failed - before.failed > 2500);
        }
        inject(run.as_mut(), "restore");
        run.run_until(secs(400.0));
        run.check_conservation().unwrap();
        assert!(run.summary().completed > after.completed + 10_000);
    }
}

#[test]
fn a_dead_workers_messages_come_back_after_the_visibility_timeout_and_are_all_done() {
    let mut run = start(&["coupling=queue"], 9);
    run.run_until(secs(100.0));
    inject(run.as_mut(), "kill-server");
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 10_000);
    let server = run.topology().find("server-1").unwrap();
    let stuck: Vec<_> = snapshot
        .tokens
        .iter()
        .filter(|token| matches!(token.place, Place::InService { node, .. } if node == server))
        .map(|token| token.id)
        .collect();
    assert!(!stuck.is_empty(), "the dead worker held messages");
    // Two seconds before the visibility timeout (they were received well under that
    // before the crash) they are still stuck there…
    run.run_until(secs(98.0 + VISIBILITY_TIMEOUT.as_secs_f64()));
    run.snapshot_into(&mut snapshot, 10_000);
    for id in &stuck {
        let token = snapshot
            .tokens
            .iter()
            .find(|token| token.id == *id)
            .unwrap();
        assert!(matches!(token.place, Place::InService { node, .. } if node == server));
        assert_eq!(token.attempt, 1);
    }
    // …then received again (attempt 2) by a live worker…
    run.run_until(secs(
        100.0 + VISIBILITY_TIMEOUT.as_secs_f64() + 3.0 * HOP.as_secs_f64(),
    ));
    run.snapshot_into(&mut snapshot, 10_000);
    for id in &stuck {
        let token = snapshot
            .tokens
            .iter()
            .find(|token| token.id == *id)
            .unwrap();
        assert_eq!(token.attempt, 2);
        assert!(!matches!(token.place, Place::InService { node, .. } if node == server));
    }
    // …and done a moment later.
    run.run_until(secs(100.0 + VISIBILITY_TIMEOUT.as_secs_f64() + 5.0));
    run.snapshot_into(&mut snapshot, 10_000);
    for id in &stuck {
        assert!(!snapshot.tokens.iter().any(|token| token.id == *id));
    }
    assert_eq!(run.summary().failed, 0);
    run.check_conservation().unwrap();
}

#[test]
fn injections_refuse_when_nothing_applies() {
    let mut run = start(&[], 1);
    let refused = |run: &mut Box<dyn LessonRun>, id: &str| {
        matches!(
            run.apply(&LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        )
    };
    assert!(refused(&mut run, "restore"));
    inject(run.as_mut(), "slow-database");
    assert!(refused(&mut run, "slow-database"));
    inject(run.as_mut(), "restore");
    assert!(refused(&mut run, "restore"));
    assert!(matches!(
        run.apply(&LessonCommand::Inject("explode".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
    assert!(matches!(
        run.apply(&LessonCommand::SetParam {
            name: "coupling".into(),
            value: ParamValue::Choice("queue")
        }),
        Err(CommandError::NeedsRestart { .. })
    ));
}

#[test]
fn the_scheduled_failure_equals_injecting_it_by_hand() {
    for coupling in ["direct", "load-balancer", "queue"] {
        let setting = format!("coupling={coupling}");
        let mut scheduled = start(&[setting.as_str(), "scheduled_failure=slow-database"], 11);
        scheduled.run_until(secs(600.0));
        let by_hand = scenario(coupling, "slow-database", 11, 600.0);
        assert_eq!(
            fingerprint(&scheduled.summary()),
            fingerprint(&by_hand.summary())
        );
        assert_eq!(scheduled.extra_figures(), by_hand.extra_figures());
    }
}

#[test]
fn conservation_holds_under_random_commands_in_every_variant() {
    let mut rng = SimRng::new(2026, "coupling-commands");
    for coupling in ["direct", "load-balancer", "queue"] {
        for seed in 0..6 {
            let setting = format!("coupling={coupling}");
            let mut run = start(&[setting.as_str(), "rate=80", "threads=3"], seed);
            let mut t = 0.0;
            while t < 400.0 {
                t += rng.uniform(1.0, 30.0);
                run.run_until(secs(t));
                run.check_conservation()
                    .unwrap_or_else(|e| panic!("{coupling} seed {seed}: {e}"));
                let command = match rng.below(6) {
                    0 => LessonCommand::Inject("kill-server".into()),
                    1 => LessonCommand::Inject("slow-database".into()),
                    2 | 3 => LessonCommand::Inject("restore".into()),
                    4 => LessonCommand::SetParam {
                        name: "threads".into(),
                        value: ParamValue::Integer(1 + rng.below(8) as i64),
                    },
                    _ => LessonCommand::SetParam {
                        name: "call_timeout".into(),
                        value: ParamValue::Number(rng.uniform(0.1, 5.0)),
                    },
                };
                let _ = run.apply(&command);
                run.check_conservation().unwrap();
                let mut snapshot = Snapshot::default();
                run.snapshot_into(&mut snapshot, 100_000);
                assert_eq!(snapshot.tokens.len() as u64, run.live_requests());
            }
        }
    }
}

#[test]
fn a_seed_replays_exactly_and_another_seed_differs() {
    let session = |seed: u64| {
        let run = scenario("load-balancer", "kill-server", seed, 500.0);
        (
            fingerprint(&run.summary()),
            format!("{:?}", run.extra_figures()),
            format!("{:?}", run.log().entries()),
        )
    };
    assert_eq!(session(12), session(12));
    assert_ne!(session(12).0, session(13).0);
}
