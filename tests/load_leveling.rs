//! The queue-based load leveling lesson reproduces what its sources describe: a queue
//! absorbs a spike that a direct call turns into timeouts; SQS visibility timeouts
//! redeliver a crashed worker's message; poison messages end in the dead-letter queue
//! after maxReceiveCount receives; a too-short visibility timeout causes duplicate
//! deliveries whose double effects idempotent consumers remove; the group scales out on
//! backlog per instance and back in afterwards.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::load_leveling::SPEC;
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{LessonCommand, LessonRun};
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::SimTime;

fn start(assignments: &[&str], seed: u64) -> Box<dyn LessonRun> {
    let params = ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap();
    SPEC.start(&params, Seed(seed))
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

#[test]
fn a_queue_absorbs_the_spike_that_a_direct_call_turns_into_timeouts() {
    let mut queued = start(&["coupling=queue"], 4);
    let mut direct = start(&["coupling=direct"], 4);
    queued.run_until(secs(900.0));
    direct.run_until(secs(900.0));
    queued.check_conservation().unwrap();
    direct.check_conservation().unwrap();
    let (q, d) = (queued.summary(), direct.summary());
    assert_eq!(q.generated, d.generated, "same seed, same arrivals");
    assert_eq!(q.failed, 0, "nothing lost with the queue");
    assert!(
        d.failed as f64 > 0.2 * d.generated as f64,
        "direct calls time out during the spike: {d:?}"
    );
    // The producer is acknowledged by the queue after one network hop; a direct caller
    // waits for the worker, up to its timeout.
    assert!(figure(queued.as_ref(), "producer_p99") < 0.2);
    assert!(figure(direct.as_ref(), "producer_p99") > 4.0);
}

#[test]
fn a_crashed_workers_message_comes_back_after_the_visibility_timeout() {
    let mut run = start(
        &[
            "base_rate=0.2",
            "spike_multiplier=1",
            "processing_time=20",
            "autoscaling=off",
            "workers_min=2",
            "launch_delay=5",
        ],
        2,
    );
    // Run until some worker is busy.
    let mut t = 0.0;
    let busy_worker = loop {
        t += 1.0;
        run.run_until(secs(t));
        let mut snapshot = Default::default();
        run.snapshot_into(&mut snapshot, 100);
        if let Some(view) = snapshot.nodes.iter().find(|n| n.busy > 0) {
            break view.node;
        }
        assert!(t < 300.0, "no worker ever got busy");
    };
    let crash_time = t;
    run.apply(&LessonCommand::Inject("crash-worker".into()))
        .unwrap();
    let crashed = run.log().entries().iter().any(|e| {
        matches!(e.what, Notable::StateChanged { node, to: NodeState::Down } if node == busy_worker)
    });
    assert!(crashed, "the busy worker went down");
    let completed_before = run.summary().completed;
    // The message is not deleted; it stays invisible until 30 s after it was received
    // (at most one second before the crash), then is received again as attempt 2.
    let mut redelivered_at = None;
    let mut snapshot = Default::default();
    while t < crash_time + 200.0 {
        t += 0.5;
        run.run_until(secs(t));
        run.snapshot_into(&mut snapshot, 100);
        if redelivered_at.is_none() && snapshot.tokens.iter().any(|token| token.attempt == 2) {
            redelivered_at = Some(t);
        }
    }
    let redelivered_at = redelivered_at.expect("the message was delivered again");
    assert!(
        redelivered_at >= crash_time + 29.0,
        "not before the visibility timeout: crash {crash_time}, redelivered {redelivered_at}"
    );
    run.check_conservation().unwrap();
    assert_eq!(run.summary().failed, 0, "the crash lost no job");
    assert!(run.summary().completed > completed_before);
    // The group replaced the crashed worker.
    assert!(run.log().entries().iter().any(|e| {
        matches!(
            e.what,
            Notable::StateChanged {
                to: NodeState::Healthy,
                ..
            }
        )
    }));
}

#[test]
fn poison_messages_reach_the_dead_letter_queue_after_max_receives() {
    let mut run = start(
        &[
            "poison_fraction=0.5",
            "base_rate=0.5",
            "spike_multiplier=1",
            "visibility_timeout=10",
            "max_receive_count=3",
            "processing_time=0.5",
        ],
        9,
    );
    run.run_until(secs(600.0));
    run.check_conservation().unwrap();
    let summary = run.summary();
    let dead = figure(run.as_ref(), "dead_letters");
    assert_eq!(
        dead as u64, summary.failed,
        "every failure is a dead letter"
    );
    let share = dead / summary.generated as f64;
    // About half the jobs are poison; the last ~40 s of them are still being retried.
    assert!((0.4..0.55).contains(&share), "dead-letter share {share}");
    // A poison message takes max_receive_count × visibility timeout to get there.
    assert!(summary.latency_p99 < 5.0, "healthy jobs are unaffected");
}

#[test]
fn a_short_visibility_timeout_duplicates_and_idempotency_removes_double_effects() {
    let settings = [
        "visibility_timeout=2",
        "processing_time=3",
        "max_receive_count=10",
        "spike_multiplier=1",
        "base_rate=1",
    ];
    let mut plain = start(&settings, 5);
    let mut idempotent_settings = settings.to_vec();
    idempotent_settings.push("idempotent=on");
    let mut idempotent = start(&idempotent_settings, 5);
    plain.run_until(secs(600.0));
    idempotent.run_until(secs(600.0));
    let plain_duplicates = plain.summary().duplicated;
    assert!(
        plain_duplicates > 50,
        "duplicate deliveries: {plain_duplicates}"
    );
    assert!(figure(plain.as_ref(), "double_effects") > 50.0);
    assert!(
        idempotent.summary().duplicated > 50,
        "still delivered twice..."
    );
    assert_eq!(
        figure(idempotent.as_ref(), "double_effects"),
        0.0,
        "...but applied once"
    );
}

#[test]
fn the_group_scales_out_on_backlog_and_back_in_after_the_spike() {
    let mut run = start(&["coupling=queue"], 4);
    let workers = |run: &dyn LessonRun| -> usize {
        let mut snapshot = Default::default();
        run.snapshot_into(&mut snapshot, 0);
        snapshot
            .nodes
            .iter()
            .filter(|n| {
                matches!(n.state, NodeState::Healthy | NodeState::Starting) && n.node.0 >= 4
            })
            .count()
    };
    run.run_until(secs(110.0));
    let before = workers(run.as_ref());
    assert!(before <= 3, "near the minimum before the spike: {before}");
    run.run_until(secs(260.0));
    let peak = workers(run.as_ref());
    assert!(peak >= 4, "scaled out during the spike: {peak}");
    run.run_until(secs(900.0));
    assert_eq!(
        workers(run.as_ref()),
        2,
        "back to the minimum after the backlog drains"
    );
    let cost = figure(run.as_ref(), "cost");
    let hours = figure(run.as_ref(), "worker_hours");
    assert!(
        hours > 2.0 * 900.0 / 3600.0,
        "more than the minimum's worker-hours"
    );
    assert!((cost - hours * 0.10).abs() < 1e-9);
}

#[test]
fn injections_and_live_changes_keep_requests_accounted_for() {
    let mut run = start(&["coupling=queue", "poison_fraction=0.05"], 12);
    for (at, injection) in [
        (50.0, "traffic-spike"),
        (100.0, "slow-workers"),
        (150.0, "crash-worker"),
    ] {
        run.run_until(secs(at));
        run.apply(&LessonCommand::Inject(injection.into())).unwrap();
        run.check_conservation().unwrap();
    }
    run.run_until(secs(900.0));
    run.check_conservation().unwrap();
}
