//! The event-routing lesson reproduces its sources' semantics (EventBridge event patterns
//! and retry policy, the broker pattern's added hop and bottleneck): every event goes to
//! exactly the targets whose enabled rules match (checked against order totals and plans
//! redrawn from the model's own random streams), content rules match only their
//! condition, unmatched events are counted; below the bus's throughput limit its backlog
//! stays small, above it the backlog grows by (offered − limit) per second and a full
//! buffer throttles the excess; every completed upload produces exactly one notification,
//! no sooner than the chain's fixed hop latencies plus its processing times allow; a down
//! target's deliveries are retried and dead-lettered while the other targets see nothing;
//! every request is accounted for and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::event_routing::{
    order_total, route, simulation, BusEvent, EventRoutingModel, EventType, BIG_ORDERS_RULE, CRM,
    FRAUD_CHECK, HOP, INDEXER, NOTIFIER, ORDERS, ORDER_TOTALS_STREAM, RULES, SIGNUP_PLANS_STREAM,
    SPEC, THUMBNAILER,
};
use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::random::SimRng;
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::SimTime;

type Run = Simulation<EventRoutingModel>;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn start(assignments: &[&str], seed: u64) -> Run {
    simulation(&params(assignments), Seed(seed))
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

fn inject(run: &mut Run, id: &str) {
    LessonRun::apply(run, &LessonCommand::Inject(id.into())).unwrap();
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

/// Stops every producer at `stop` and runs on to `until` so everything in flight ends.
fn drain(run: &mut Run, stop: f64, until: f64) {
    LessonRun::run_until(run, secs(stop));
    for rate in ["upload_rate", "order_rate", "signup_rate"] {
        set(run, rate, ParamValue::Number(0.0));
    }
    LessonRun::run_until(run, secs(until));
    run.check_conservation().unwrap();
}

/// Runs `script` (time, injection) then drains: producers stop at 200 s, run ends at 330 s.
fn scenario(assignments: &[&str], seed: u64, script: &[(f64, &str)]) -> Run {
    let mut run = start(assignments, seed);
    for &(at, id) in script {
        LessonRun::run_until(&mut run, secs(at));
        inject(&mut run, id);
    }
    drain(&mut run, 200.0, 330.0);
    assert_eq!(run.live_requests(), 0, "everything drained");
    run
}

fn order(total: f64) -> BusEvent {
    BusEvent {
        kind: EventType::OrderPlaced,
        total,
        pro: false,
    }
}

#[test]
fn rules_match_on_type_and_content() {
    let all = [true; 6];
    // An order always goes to Orders; to the fraud check only strictly above the threshold.
    assert_eq!(
        route(&order(100.0), 100.0, &all),
        [false, false, false, true, false, false]
    );
    assert_eq!(
        route(&order(100.01), 100.0, &all),
        [false, false, false, true, true, false]
    );
    assert_eq!(
        route(&order(5.0), 0.0, &all),
        [false, false, false, true, true, false]
    );
    // Sign-ups go to the CRM only on the pro plan; a free sign-up matches nothing.
    let signup = |pro| BusEvent {
        kind: EventType::UserSignedUp,
        total: 0.0,
        pro,
    };
    assert_eq!(
        route(&signup(true), 100.0, &all),
        [false, false, false, false, false, true]
    );
    assert_eq!(route(&signup(false), 100.0, &all), [false; 6]);
    // The content condition never matches another type, even with a matching field.
    let upload = BusEvent {
        kind: EventType::ImageUploaded,
        total: 500.0,
        pro: true,
    };
    assert_eq!(
        route(&upload, 100.0, &all),
        [true, false, false, false, false, false]
    );
    for (kind, target) in [
        (EventType::ThumbnailCreated, INDEXER),
        (EventType::ImageIndexed, NOTIFIER),
    ] {
        let event = BusEvent {
            kind,
            total: 0.0,
            pro: false,
        };
        let targets = route(&event, 100.0, &all);
        assert!(targets[target] && targets.iter().filter(|&&t| t).count() == 1);
    }
    // A disabled rule matches nothing; the others still do.
    let mut enabled = all;
    enabled[BIG_ORDERS_RULE] = false;
    assert_eq!(RULES[BIG_ORDERS_RULE].target, FRAUD_CHECK);
    assert_eq!(
        route(&order(500.0), 100.0, &enabled),
        [false, false, false, true, false, false]
    );
}

/// Redraws the k-th order total and sign-up plan from the model's streams.
fn expected_routing(seed: u64, orders: u64, signups: u64, threshold: f64, pro: f64) -> (u64, u64) {
    let mut totals = SimRng::new(seed, ORDER_TOTALS_STREAM);
    let big = (0..orders)
        .filter(|_| order_total(&mut totals) > threshold)
        .count() as u64;
    let mut plans = SimRng::new(seed, SIGNUP_PLANS_STREAM);
    let pros = (0..signups).filter(|_| plans.chance(pro)).count() as u64;
    (big, pros)
}

#[test]
fn every_event_reaches_exactly_the_targets_whose_rules_match() {
    for (seed, threshold) in [(1, 100.0), (2, 30.0), (3, 0.0), (4, 1000.0)] {
        let mut routed_by_mode = Vec::new();
        for routing in ["broker", "direct"] {
            let routing = format!("routing={routing}");
            let threshold_set = format!("fraud_threshold={threshold}");
            let run = scenario(&[routing.as_str(), threshold_set.as_str()], seed, &[]);
            let model = &run.model;
            let [uploads, orders, signups] = model.published();
            let (big, pros) = expected_routing(seed, orders, signups, threshold, 0.3);
            let routed = model.routed();
            assert!(orders > 1000 && uploads > 500 && signups > 300);
            assert_eq!(routed[ORDERS], orders, "every order reaches Orders");
            assert_eq!(
                routed[FRAUD_CHECK], big,
                "seed {seed}: orders above ${threshold}"
            );
            assert_eq!(routed[CRM], pros, "pro sign-ups only");
            assert_eq!(figure(&run, "unmatched") as u64, signups - pros);
            assert_eq!(routed[THUMBNAILER], uploads);
            // Drained and nothing failed: every delivery was processed exactly once.
            assert_eq!(model.processed(), routed);
            let summary = run.summary();
            assert_eq!(
                summary.generated,
                uploads + orders + signups + big,
                "a big order is two deliveries"
            );
            assert_eq!(summary.dropped, signups - pros);
            assert_eq!(summary.failed + summary.rejected, 0);
            routed_by_mode.push(routed);
        }
        if threshold == 0.0 {
            assert_eq!(routed_by_mode[0][FRAUD_CHECK], routed_by_mode[0][ORDERS]);
        }
        if threshold == 1000.0 {
            assert_eq!(routed_by_mode[0][FRAUD_CHECK], 0);
        }
        assert_eq!(
            routed_by_mode[0], routed_by_mode[1],
            "same events, same routing"
        );
    }
}

#[test]
fn a_threshold_change_applies_to_later_orders_only() {
    let mut run = start(&[], 5);
    LessonRun::run_until(&mut run, secs(100.0));
    let before = run.model.routed()[FRAUD_CHECK];
    let orders_before = run.model.published()[1];
    set(&mut run, "fraud_threshold", ParamValue::Number(0.0));
    drain(&mut run, 200.0, 260.0);
    let orders_after = run.model.published()[1] - orders_before;
    let fraud = run.model.routed()[FRAUD_CHECK];
    // Orders still waiting in the bus at 100 s meet the new threshold when routed.
    let in_flight_at_change = 20;
    assert!(fraud >= before + orders_after && fraud <= before + orders_after + in_flight_at_change);
}

/// Offered bus load without uploads (no chain events): orders + sign-ups.
fn bus_run(order_rate: f64, signup_rate: f64, buffer: i64, seed: u64) -> Run {
    let orders = format!("order_rate={order_rate}");
    let signups = format!("signup_rate={signup_rate}");
    let buffer = format!("bus_buffer={buffer}");
    start(
        &["upload_rate=0", "bus_limit=40", &orders, &signups, &buffer],
        seed,
    )
}

#[test]
fn below_the_limit_the_backlog_does_not_grow() {
    for seed in [1, 2, 3] {
        // 30 events/s offered to a 40 events/s bus (ρ = 0.75).
        let mut run = bus_run(20.0, 10.0, 10_000, seed);
        let mut samples = Vec::new();
        for t in [50.0, 100.0, 150.0, 200.0, 250.0, 300.0] {
            LessonRun::run_until(&mut run, secs(t));
            samples.push(run.model.backlog());
        }
        assert!(
            samples.iter().all(|&depth| depth < 30),
            "seed {seed}: {samples:?}"
        );
        assert!(figure(&run, "bus_backlog_peak") < 60.0);
        assert_eq!(figure(&run, "throttled"), 0.0);
        assert_eq!(
            run.log()
                .entries()
                .iter()
                .filter(|e| matches!(
                    e.what,
                    Notable::StateChanged {
                        to: NodeState::Unhealthy,
                        ..
                    }
                ))
                .count(),
            0,
            "the bus never falls a second behind"
        );
    }
}

#[test]
fn above_the_limit_the_backlog_grows_by_offered_minus_limit() {
    for (seed, orders, signups) in [(1, 30.0, 30.0), (2, 50.0, 10.0), (3, 40.0, 30.0)] {
        let mut run = bus_run(orders, signups, 100_000, seed);
        LessonRun::run_until(&mut run, secs(50.0));
        let early = run.model.backlog() as f64;
        LessonRun::run_until(&mut run, secs(250.0));
        let late = run.model.backlog() as f64;
        let slope = (late - early) / 200.0;
        let expected = orders + signups - 40.0;
        assert!(
            (slope - expected).abs() / expected < 0.1,
            "seed {seed}: backlog grew {slope:.2}/s, expected {expected}/s"
        );
        // Waiting time for the newest event ≈ backlog / limit: the bus is marked unhealthy.
        assert!(run.log().entries().iter().any(|e| matches!(
            e.what,
            Notable::StateChanged {
                to: NodeState::Unhealthy,
                ..
            }
        )));
        assert!(run.summary().wait_mean > 10.0);
        run.check_conservation().unwrap();
    }
}

#[test]
fn a_full_buffer_throttles_the_excess() {
    let mut run = bus_run(30.0, 30.0, 200, 4);
    LessonRun::run_until(&mut run, secs(200.0));
    assert_eq!(run.model.backlog(), 200);
    let throttled = figure(&run, "throttled");
    // (60 − 40)/s × 200 s minus the 200 buffered, within Poisson noise.
    assert!((throttled - 3800.0).abs() < 300.0, "throttled {throttled}");
    assert_eq!(run.summary().rejected as f64, throttled);
    run.check_conservation().unwrap();
}

#[test]
fn the_broker_hop_adds_latency_and_a_direct_call_adds_none() {
    for seed in [1, 2] {
        let broker = scenario(&[], seed, &[]);
        let slow_bus = scenario(&["bus_latency=250"], seed, &[]);
        let direct = scenario(&["routing=direct"], seed, &[]);
        // At least one hop to the bus + routing (1/40 s) + the bus latency; within 1/64.
        let floor = (HOP.as_secs_f64() + 1.0 / 40.0 + 0.05) * 1000.0;
        let p50 = figure(&broker, "hop_added_p50_ms");
        assert!(
            p50 >= floor * (1.0 - 1.0 / 64.0) && p50 < floor + 30.0,
            "p50 {p50}"
        );
        let slow_p50 = figure(&slow_bus, "hop_added_p50_ms");
        assert!((slow_p50 - p50 - 200.0).abs() < 12.0, "{slow_p50} vs {p50}");
        assert_eq!(figure(&direct, "hop_added_p50_ms"), 0.0);
        assert_eq!(figure(&direct, "hop_added_p99_ms"), 0.0);
        assert_eq!(figure(&direct, "bus_backlog_peak"), 0.0);
        // The chain pays the bus three times.
        let extra = figure(&broker, "chain_p50") - figure(&direct, "chain_p50");
        assert!(extra > 3.0 * (floor - 10.0) / 1000.0, "chain extra {extra}");
    }
}

#[test]
fn every_completed_upload_produces_exactly_one_notification() {
    for (routing, seed) in [("broker", 1), ("broker", 2), ("direct", 3)] {
        let setting = format!("routing={routing}");
        let run = scenario(&[setting.as_str()], seed, &[(100.0, "burst")]);
        let model = &run.model;
        let uploads = model.published()[0];
        let processed = model.processed();
        assert_eq!(processed[THUMBNAILER], uploads);
        assert_eq!(processed[INDEXER], uploads);
        assert_eq!(processed[NOTIFIER], uploads, "one notify per upload");
        let check = model.chain_check();
        assert_eq!(check.completed, uploads);
        assert_eq!(figure(&run, "chains_completed") as u64, uploads);
        // latency = fixed latencies + processing + waits, never less.
        assert!(check.min_slack >= 0.0, "{check:?}");
        let fixed = match routing {
            "broker" => 3.0 * (2.0 * HOP.as_secs_f64() + 1.0 / 40.0 + 0.05),
            _ => 3.0 * HOP.as_secs_f64(),
        };
        assert!((check.fixed_min - fixed).abs() < 1e-5, "{check:?}");
        assert!((check.fixed_max - fixed).abs() < 1e-5, "{check:?}");
        // The processing means alone are 0.35 s; p50 sits above fixed + most of that.
        assert!(figure(&run, "chain_p50") > fixed + 0.25);
    }
}

#[test]
fn a_burst_above_capacity_backs_the_bus_up_and_slows_every_chain_step() {
    for seed in [1, 2, 3] {
        let calm = scenario(&[], seed, &[]);
        let burst = scenario(&[], seed, &[(60.0, "burst")]);
        let direct = scenario(&["routing=direct"], seed, &[(60.0, "burst")]);
        // 4 × 15 events/s + chain events ≈ 68/s offered to 40/s for 20 s.
        let peak = figure(&burst, "bus_backlog_peak");
        assert!(peak > 350.0 && peak < 750.0, "seed {seed}: peak {peak}");
        assert!(figure(&burst, "chain_p99") > 10.0 * figure(&calm, "chain_p99"));
        assert!(figure(&burst, "hop_added_p99_ms") > 5000.0);
        assert_eq!(figure(&direct, "bus_backlog_peak"), 0.0);
        assert!(figure(&direct, "chain_p99") < 2.0 * figure(&calm, "chain_p99"));
        assert_eq!(
            figure(&burst, "throttled"),
            0.0,
            "the default buffer holds it"
        );
    }
}

#[test]
fn a_down_target_is_retried_then_dead_lettered_and_the_others_never_notice() {
    for seed in [1, 2] {
        let baseline = scenario(&[], seed, &[]);
        let failed = scenario(&[], seed, &[(60.0, "target-down")]);
        let (b, f) = (&baseline.model, &failed.model);
        assert_eq!(f.published(), b.published(), "same events");
        for target in [THUMBNAILER, ORDERS, FRAUD_CHECK, CRM] {
            assert_eq!(
                f.processed()[target],
                b.processed()[target],
                "target {target}"
            );
        }
        // The indexer got no new work after 60 s; every thumbnail event routed to it was
        // either processed or, after 60 s of retries, dead-lettered.
        let routed = f.routed()[INDEXER];
        let dead = figure(&failed, "dead_letters") as u64;
        assert!(dead > 500, "seed {seed}: dead letters {dead}");
        assert_eq!(f.processed()[INDEXER] + dead, routed);
        assert!(figure(&failed, "retries") > dead as f64 * 3.0);
        assert_eq!(failed.summary().failed, dead);
        assert_eq!(figure(&failed, "events_lost"), 0.0);
        let notified = f.processed()[NOTIFIER];
        assert_eq!(notified, f.processed()[INDEXER]);
        assert!(failed.log().entries().iter().any(|e| matches!(
            e.what,
            Notable::StateChanged {
                to: NodeState::Down,
                ..
            }
        )));

        // Without a DLQ the same deliveries are simply lost.
        let no_dlq = scenario(&["dlq=off"], seed, &[(60.0, "target-down")]);
        assert_eq!(figure(&no_dlq, "dead_letters"), 0.0);
        assert_eq!(figure(&no_dlq, "events_lost") as u64, dead);
    }
}

#[test]
fn a_target_back_within_the_event_age_loses_nothing() {
    let run = scenario(&[], 7, &[(60.0, "target-down"), (90.0, "target-up")]);
    let model = &run.model;
    assert_eq!(model.processed()[NOTIFIER], model.published()[0]);
    assert_eq!(figure(&run, "dead_letters"), 0.0);
    assert!(figure(&run, "retries") > 50.0);
    // Chains that met the outage waited out retries: seconds instead of under one.
    assert!(figure(&run, "chain_p99") > 5.0);
    assert!(model.chain_check().min_slack >= 0.0);
}

#[test]
fn a_direct_call_to_a_down_target_fails_at_once_without_retries() {
    let run = scenario(
        &["routing=direct", "failing_target=fraud-check"],
        8,
        &[(60.0, "target-down")],
    );
    let baseline = scenario(&["routing=direct"], 8, &[]);
    let lost = figure(&run, "events_lost");
    assert!(lost > 50.0);
    assert_eq!(figure(&run, "retries"), 0.0);
    assert_eq!(figure(&run, "dead_letters"), 0.0);
    assert_eq!(run.summary().failed as f64, lost);
    assert_eq!(
        run.model.processed()[ORDERS],
        baseline.model.processed()[ORDERS]
    );
}

#[test]
fn disabling_a_rule_silently_stops_its_deliveries() {
    let baseline = scenario(&[], 9, &[]);
    let run = scenario(&[], 9, &[(60.0, "disable-rule"), (120.0, "enable-rule")]);
    let missing = baseline.model.routed()[FRAUD_CHECK] - run.model.routed()[FRAUD_CHECK];
    assert!(missing > 50);
    assert_eq!(figure(&run, "big_orders_unchecked") as u64, missing);
    assert_eq!(run.model.routed()[ORDERS], baseline.model.routed()[ORDERS]);
    let summary = run.summary();
    assert_eq!(summary.failed + summary.rejected, 0, "nobody sees an error");
    let fraud = run.topology().find("fraud-check").unwrap();
    let changes: Vec<NodeState> = run
        .log()
        .entries()
        .iter()
        .filter_map(|e| match e.what {
            Notable::StateChanged { node, to } if node == fraud => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [NodeState::Off, NodeState::Healthy]);
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let mut run = start(&[], 1);
    LessonRun::run_until(&mut run, secs(10.0));
    let refuse = |run: &mut Run, id: &str| {
        assert!(matches!(
            LessonRun::apply(run, &LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        ));
    };
    refuse(&mut run, "target-up");
    refuse(&mut run, "enable-rule");
    inject(&mut run, "target-down");
    refuse(&mut run, "target-down");
    inject(&mut run, "burst");
    refuse(&mut run, "burst");
    let mut direct = start(&["routing=direct"], 1);
    refuse(&mut direct, "disable-rule");
    assert!(matches!(
        LessonRun::apply(&mut run, &LessonCommand::Inject("nope".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
}

#[test]
fn requests_are_conserved_and_a_seed_replays_exactly() {
    let session = |seed: u64| {
        let mut run = start(&["bus_buffer=300", "failing_target=notifier"], seed);
        for (at, id) in [
            (20.0, "burst"),
            (30.0, "target-down"),
            (45.0, "disable-rule"),
            (70.0, "target-up"),
            (80.0, "enable-rule"),
        ] {
            LessonRun::run_until(&mut run, secs(at));
            run.check_conservation().unwrap();
            inject(&mut run, id);
            run.check_conservation().unwrap();
        }
        set(&mut run, "bus_limit", ParamValue::Number(25.0));
        set(&mut run, "target_workers", ParamValue::Integer(1));
        LessonRun::run_until(&mut run, secs(150.0));
        run.check_conservation().unwrap();
        let figures: Vec<(String, f64)> = LessonRun::extra_figures(&run)
            .into_iter()
            .map(|f| (f.key.to_owned(), f.value))
            .collect();
        (fingerprint(&run.summary()), figures)
    };
    for seed in [1, 2, 3] {
        assert_eq!(session(seed), session(seed));
    }
    assert_ne!(session(1).0, session(2).0);
}
