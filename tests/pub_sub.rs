//! The pub/sub lesson reproduces what its sources describe: a topic with one queue per
//! subscriber (SNS to SQS fan-out) delivers every message to every subscription exactly
//! once when nothing fails; one shared queue with competing consumers processes each
//! message exactly once in total; a consumer that crashes mid-message leaves the message
//! hidden until the visibility timeout and it is delivered again (at least once); a slow
//! subscriber backs up only its own queue; a subscriber added mid-run gets exactly the
//! messages published from then on, without any change to the producer.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::pub_sub::{simulation, PubSubModel, ServiceStats, SPEC};
use patterns_playground::lessons::run::{fingerprint, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

type Run = Simulation<PubSubModel>;

fn start(assignments: &[&str], seed: u64) -> Run {
    let params = ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap();
    simulation(&params, Seed(seed))
}

fn secs(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

fn figure(run: &Run, key: &str) -> f64 {
    LessonRun::extra_figures(run)
        .into_iter()
        .find(|figure| figure.key == key)
        .unwrap_or_else(|| panic!("no figure {key}"))
        .value
}

fn stats(run: &Run, service: &str) -> ServiceStats {
    run.model.service_stats(service).unwrap()
}

fn set(run: &mut Run, name: &str, value: ParamValue) {
    LessonRun::apply(
        run,
        &LessonCommand::SetParam {
            name: name.into(),
            value,
        },
    )
    .unwrap();
}

fn inject(run: &mut Run, id: &str) {
    LessonRun::apply(run, &LessonCommand::Inject(id.into())).unwrap();
}

/// Runs to `publish_until`, stops the producer, and lets every queue drain.
fn drained(run: &mut Run, publish_until: f64) {
    LessonRun::run_until(run, secs(publish_until));
    set(run, "publish_rate", ParamValue::Number(0.0));
    LessonRun::run_until(run, secs(publish_until + 200.0));
    run.check_conservation().unwrap();
    assert_eq!(run.live_requests(), 0, "drained: nothing left in flight");
}

fn state_changes(run: &Run, key: &str) -> Vec<NodeState> {
    let node = run.topology().find(key).unwrap();
    run.log()
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node: n, to } if n == node => Some(to),
            _ => None,
        })
        .collect()
}

#[test]
fn fan_out_delivers_every_message_to_every_subscription_exactly_once() {
    for seed in 1..=4 {
        let mut run = start(&["delivery=fan-out"], seed);
        drained(&mut run, 240.0);
        let published = run.model.published();
        assert!(published > 400, "about 2 per second: {published}");
        for service in ["email", "thumbnail", "analytics"] {
            let s = stats(&run, service);
            assert_eq!(s.deliveries, published, "{service}, seed {seed}");
            assert_eq!(s.first_deliveries, published, "{service}, seed {seed}");
            assert_eq!(s.processed, published, "{service}, seed {seed}");
            assert_eq!(s.processing_runs, published, "{service}, seed {seed}");
        }
        assert_eq!(
            stats(&run, "audit"),
            ServiceStats::default(),
            "not subscribed"
        );
        let summary = run.summary();
        assert_eq!(
            summary.generated,
            3 * published,
            "one copy per subscription"
        );
        assert_eq!(summary.completed, 3 * published);
        assert_eq!(summary.duplicated, 0);
        assert_eq!(figure(&run, "duplicates"), 0.0);
        assert_eq!(figure(&run, "fan_out_factor"), 3.0);
        assert_eq!(figure(&run, "deliveries_email"), published as f64);
    }
}

#[test]
fn point_to_point_processes_each_message_exactly_once_in_total() {
    for seed in 1..=4 {
        let mut run = start(&["delivery=point-to-point"], seed);
        drained(&mut run, 240.0);
        let published = run.model.published();
        let services = ["email", "thumbnail", "analytics"].map(|s| stats(&run, s));
        let processed: u64 = services.iter().map(|s| s.processed).sum();
        let deliveries: u64 = services.iter().map(|s| s.deliveries).sum();
        assert_eq!(
            processed, published,
            "each message processed once, seed {seed}"
        );
        assert_eq!(deliveries, published, "and delivered once, seed {seed}");
        for s in services {
            // Competing consumers split the messages: each service sees about a third.
            let share = s.processed as f64 / published as f64;
            assert!((0.25..0.42).contains(&share), "share {share}, seed {seed}");
        }
        let summary = run.summary();
        assert_eq!(summary.generated, published, "one copy per message");
        assert_eq!(summary.duplicated, 0);
        assert_eq!(figure(&run, "fan_out_factor"), 1.0);
    }
}

#[test]
fn both_variants_see_the_same_publications_on_one_seed() {
    let mut fan_out = start(&["delivery=fan-out"], 11);
    let mut p2p = start(&["delivery=point-to-point"], 11);
    LessonRun::run_until(&mut fan_out, secs(300.0));
    LessonRun::run_until(&mut p2p, secs(300.0));
    assert_eq!(fan_out.model.published(), p2p.model.published());
    assert!(fan_out.model.published() > 500);
}

#[test]
fn a_crashed_consumer_gets_its_messages_again_after_the_visibility_timeout() {
    for seed in 1..=3 {
        // The crash waits until the consumers hold messages; the load is light, so the
        // queue has caught up by the time the held messages become visible again.
        let mut run = start(&[], seed);
        let mut t = 30.0;
        let held = loop {
            LessonRun::run_until(&mut run, secs(t));
            let mut snapshot = Snapshot::default();
            LessonRun::snapshot_into(&run, &mut snapshot, 0);
            let node = run.topology().find("thumbnail").unwrap();
            let busy = snapshot.nodes.iter().find(|n| n.node == node).unwrap().busy;
            if busy > 0 {
                break busy as u64;
            }
            t += 0.5;
            assert!(t < 200.0, "the thumbnail consumer never got busy");
        };
        let crash = t;
        inject(&mut run, "crash-consumer");
        assert_eq!(state_changes(&run, "thumbnail"), [NodeState::Down]);
        // Nothing is delivered again before the visibility timeout (30 s after a receive
        // that happened at most one processing time before the crash).
        let mut redelivered_at = None;
        while t < crash + 60.0 {
            t += 0.25;
            LessonRun::run_until(&mut run, secs(t));
            if redelivered_at.is_none() && run.summary().duplicated > 0 {
                redelivered_at = Some(t);
            }
        }
        let redelivered_at = redelivered_at.expect("the held messages came back");
        assert!(
            (crash + 20.0..crash + 30.5).contains(&redelivered_at),
            "crash {crash}, redelivered {redelivered_at}"
        );
        // Restarted after 10 s (the default restart time).
        assert_eq!(
            state_changes(&run, "thumbnail"),
            [NodeState::Down, NodeState::Healthy]
        );
        drained(&mut run, 240.0);
        let published = run.model.published();
        let thumbnail = stats(&run, "thumbnail");
        // At least once: every message reached the subscription, some of them twice.
        assert_eq!(thumbnail.first_deliveries, published);
        assert_eq!(thumbnail.processed, published, "nothing lost");
        assert_eq!(thumbnail.deliveries, published + held, "seed {seed}");
        assert_eq!(figure(&run, "duplicates"), held as f64);
        assert_eq!(run.summary().duplicated, held);
        // The other subscriptions never noticed.
        for service in ["email", "analytics"] {
            assert_eq!(stats(&run, service).deliveries, published, "{service}");
        }
        assert_eq!(run.summary().failed, 0);
    }
}

#[test]
fn a_visibility_timeout_shorter_than_processing_duplicates_deliveries() {
    let mut run = start(
        &[
            "processing_time=3",
            "visibility_timeout=2",
            "consumers=8",
            "publish_rate=0.5",
        ],
        3,
    );
    drained(&mut run, 200.0);
    let published = run.model.published();
    let email = stats(&run, "email");
    assert_eq!(email.first_deliveries, published);
    assert_eq!(email.processed, published);
    assert!(email.deliveries > published + published / 2, "{email:?}");
    // Copies received again while the first consumer was still working get processed
    // twice: the effect of at-least-once delivery on a consumer that is not idempotent.
    assert!(email.processing_runs > published, "{email:?}");
    run.check_conservation().unwrap();
}

#[test]
fn a_slow_subscriber_backs_up_only_its_own_queue() {
    for seed in 1..=3 {
        let mut run = start(&["delivery=fan-out"], seed);
        LessonRun::run_until(&mut run, secs(60.0));
        inject(&mut run, "slow-analytics");
        assert_eq!(state_changes(&run, "analytics"), [NodeState::Unhealthy]);
        let mut previous = 0.0;
        for t in [120.0, 180.0, 240.0] {
            LessonRun::run_until(&mut run, secs(t));
            let analytics = figure(&run, "backlog_analytics");
            // 2 msg/s arrive; two consumers at 10 × 0.4 s serve 0.5 msg/s.
            assert!(
                analytics > previous + 40.0,
                "analytics backlog grows: {analytics} at {t} s (before {previous}), seed {seed}"
            );
            previous = analytics;
            for other in ["backlog_email", "backlog_thumbnail"] {
                assert!(
                    figure(&run, other) <= 8.0,
                    "{other} stays near 0 at {t} s: {}",
                    figure(&run, other)
                );
            }
        }
        assert!(
            (180.0..360.0).contains(&previous),
            "1.5 msg/s × 180 s: {previous}"
        );
        assert_eq!(figure(&run, "backlog_max"), previous);
        // Restored, the analytics consumers work the backlog off (5 msg/s vs 2 msg/s).
        inject(&mut run, "restore");
        LessonRun::run_until(&mut run, secs(420.0));
        assert!(figure(&run, "backlog_analytics") <= 8.0);
        run.check_conservation().unwrap();
    }
}

#[test]
fn with_competing_consumers_a_slow_service_just_takes_fewer_messages() {
    let mut run = start(&["delivery=point-to-point"], 2);
    LessonRun::run_until(&mut run, secs(60.0));
    let before = ["email", "analytics"].map(|s| stats(&run, s).deliveries);
    inject(&mut run, "slow-analytics");
    LessonRun::run_until(&mut run, secs(240.0));
    assert!(
        figure(&run, "backlog_max") <= 8.0,
        "the shared queue keeps up"
    );
    let email = stats(&run, "email").deliveries - before[0];
    let analytics = stats(&run, "analytics").deliveries - before[1];
    assert!(
        (analytics as f64) < 0.8 * email as f64,
        "analytics {analytics} vs email {email}"
    );
}

#[test]
fn a_subscriber_added_mid_run_gets_the_messages_published_from_then_on() {
    for seed in 1..=3 {
        let mut run = start(&["delivery=fan-out"], seed);
        LessonRun::run_until(&mut run, secs(100.0));
        let before = run.model.published();
        assert_eq!(state_changes(&run, "queue-audit"), []);
        set(&mut run, "subscribers", ParamValue::Integer(4));
        assert_eq!(state_changes(&run, "queue-audit"), [NodeState::Healthy]);
        assert_eq!(state_changes(&run, "audit"), [NodeState::Healthy]);
        drained(&mut run, 240.0);
        let published = run.model.published();
        let audit = stats(&run, "audit");
        assert_eq!(audit.first_deliveries, published - before, "seed {seed}");
        assert_eq!(audit.processed, published - before);
        // Everyone else still gets everything: the producer did not change.
        assert_eq!(stats(&run, "email").deliveries, published);
        assert_eq!(
            figure(&run, "deliveries_audit"),
            (published - before) as f64
        );
    }
}

#[test]
fn an_unsubscribed_queue_drains_and_then_goes_off() {
    let mut run = start(&["delivery=fan-out"], 5);
    LessonRun::run_until(&mut run, secs(30.0));
    inject(&mut run, "slow-analytics");
    LessonRun::run_until(&mut run, secs(90.0));
    let published_then = run.model.published();
    assert!(figure(&run, "backlog_analytics") > 40.0);
    set(&mut run, "subscribers", ParamValue::Integer(2));
    assert_eq!(
        state_changes(&run, "queue-analytics").last(),
        Some(&NodeState::Draining)
    );
    inject(&mut run, "restore");
    LessonRun::run_until(&mut run, secs(300.0));
    assert_eq!(figure(&run, "backlog_analytics"), 0.0);
    assert_eq!(
        state_changes(&run, "queue-analytics").last(),
        Some(&NodeState::Off)
    );
    assert_eq!(
        state_changes(&run, "analytics").last(),
        Some(&NodeState::Off)
    );
    // It processed its backlog but nothing published after it left.
    let analytics = stats(&run, "analytics");
    assert!(analytics.processed <= published_then);
    assert!(run.model.published() > published_then + 300);
    run.check_conservation().unwrap();
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let mut run = start(&["subscribers=1"], 1);
    LessonRun::run_until(&mut run, secs(10.0));
    for id in ["slow-analytics", "crash-consumer", "restore"] {
        assert!(
            LessonRun::apply(&mut run, &LessonCommand::Inject(id.into())).is_err(),
            "{id} with only e-mail subscribed"
        );
    }
    let mut run = start(&[], 1);
    LessonRun::run_until(&mut run, secs(10.0));
    inject(&mut run, "crash-consumer");
    assert!(LessonRun::apply(&mut run, &LessonCommand::Inject("crash-consumer".into())).is_err());
    inject(&mut run, "slow-analytics");
    assert!(LessonRun::apply(&mut run, &LessonCommand::Inject("slow-analytics".into())).is_err());
}

/// A scripted session with every kind of command.
fn session(delivery: &str, seed: u64) -> (String, String, Vec<String>) {
    let params =
        ParamValues::from_assignments(SPEC.params, [format!("delivery={delivery}").as_str()])
            .unwrap();
    let mut run = SPEC.start(&params, Seed(seed));
    let script = [
        (40.0, LessonCommand::Inject("slow-analytics".into())),
        (70.0, LessonCommand::Inject("crash-consumer".into())),
        (
            90.0,
            LessonCommand::SetParam {
                name: "subscribers".into(),
                value: ParamValue::Integer(4),
            },
        ),
        (
            120.0,
            LessonCommand::SetParam {
                name: "consumers".into(),
                value: ParamValue::Integer(1),
            },
        ),
        (
            150.0,
            LessonCommand::SetParam {
                name: "publish_rate".into(),
                value: ParamValue::Number(6.0),
            },
        ),
        (
            180.0,
            LessonCommand::SetParam {
                name: "subscribers".into(),
                value: ParamValue::Integer(1),
            },
        ),
        (200.0, LessonCommand::Inject("restore".into())),
    ];
    for (at, command) in script {
        while run.now() < secs(at) {
            let next = (run.now() + patterns_playground::sim::time::SimDuration::from_secs(3))
                .min(secs(at));
            run.run_until(next);
            run.check_conservation().unwrap();
        }
        run.apply(&command).unwrap();
        run.check_conservation().unwrap();
    }
    run.run_until(secs(300.0));
    run.check_conservation().unwrap();
    let figures = format!("{:?}", run.extra_figures());
    let log = run
        .log()
        .entries()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    (fingerprint(&run.summary()), figures, log)
}

#[test]
fn requests_are_conserved_and_a_seeded_session_replays_identically() {
    for delivery in ["fan-out", "point-to-point"] {
        for seed in 1..=5 {
            let first = session(delivery, seed);
            assert_eq!(first, session(delivery, seed), "{delivery} seed {seed}");
        }
        assert_ne!(session(delivery, 1).0, session(delivery, 2).0);
    }
}
