//! The serverless lesson reproduces what AWS documents for Lambda: a warm environment is
//! reused, an environment idle for keep-warm is shut down and the next request pays the
//! Init phase; concurrency never passes the limit and beyond it requests are throttled;
//! the scaling rate caps new environments per 10 s; provisioned environments never go
//! cold. Cost follows the pricing page (requests + GB-seconds, instance-hours for the
//! fleet), with a crossover: Lambda is cheaper at low load, the fleet at steady high load.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{CommandError, LessonCommand, LessonRun};
use patterns_playground::lessons::serverless::{
    simulation, Acquired, EnvState, EnvironmentPool, Throttle, PRICE_PER_GB_SECOND,
    PRICE_PER_REQUEST, PRICE_PROVISIONED_GB_SECOND, SPEC,
};
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::{SimDuration, SimTime};

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

fn run_to_end(assignments: &[&str], seed: u64) -> Box<dyn LessonRun> {
    let mut run = start(assignments, seed);
    run.run_until(secs(1800.0));
    run.check_conservation().unwrap();
    run
}

const KEEP: SimDuration = SimDuration::from_secs(300);

#[test]
fn an_environment_idle_less_than_keep_warm_is_reused_and_one_idle_longer_is_cold() {
    let mut pool = EnvironmentPool::new(10, KEEP, 0, 1000, SimTime::ZERO);
    assert_eq!(
        pool.acquire(secs(0.0)),
        Acquired::Cold(0),
        "first use is cold"
    );
    pool.initialized(0);
    pool.release(0, secs(1.0));
    // Idle for one microsecond less than keep-warm: reused.
    let almost = secs(1.0) + SimDuration::from_ticks(KEEP.ticks() - 1);
    assert_eq!(pool.acquire(almost), Acquired::Warm(0));
    pool.release(0, almost);
    assert_eq!(pool.next_expiry(), Some(almost + KEEP));
    // Idle for exactly keep-warm: shut down, so the next request is cold.
    let expired = almost + KEEP;
    assert_eq!(pool.acquire(expired), Acquired::Cold(0));
    assert_eq!(pool.take_reclaimed(), vec![(0, almost)]);
    assert_eq!(pool.cold_starts, 2);
    assert_eq!(pool.warm_starts, 1);
}

#[test]
fn concurrency_stops_at_the_limit_and_the_rest_is_throttled() {
    let mut pool = EnvironmentPool::new(3, KEEP, 0, 1000, SimTime::ZERO);
    for env in 0..3 {
        assert_eq!(pool.acquire(secs(0.0)), Acquired::Cold(env));
    }
    assert_eq!(
        pool.acquire(secs(0.0)),
        Acquired::Throttled(Throttle::Concurrency)
    );
    assert_eq!(pool.busy(), 3);
    assert_eq!(pool.peak_busy, 3);
    pool.release(1, secs(0.5));
    // A freed environment is warm and reused, not a new one.
    assert_eq!(pool.acquire(secs(0.6)), Acquired::Warm(1));
    assert_eq!(pool.environments(), 3);
    assert_eq!(pool.throttled, 1);
}

#[test]
fn the_most_recently_used_environment_is_reused_so_extra_ones_expire() {
    let mut pool = EnvironmentPool::new(10, KEEP, 0, 1000, SimTime::ZERO);
    for env in 0..3 {
        assert_eq!(pool.acquire(secs(0.0)), Acquired::Cold(env));
    }
    pool.release(2, secs(1.0));
    pool.release(0, secs(2.0));
    pool.release(1, secs(3.0));
    // One request every 100 s keeps reusing environment 1; 2 and 0 expire.
    for step in 0..6 {
        let t = secs(100.0 + 100.0 * step as f64);
        assert_eq!(pool.acquire(t), Acquired::Warm(1));
        pool.release(1, t + SimDuration::from_millis(200));
    }
    pool.expire(secs(700.0));
    assert_eq!(pool.state(0), EnvState::Off);
    assert_eq!(pool.state(2), EnvState::Off);
    assert_eq!(
        pool.take_reclaimed(),
        vec![(2, secs(1.0)), (0, secs(2.0))],
        "shut down oldest idle first, each after exactly keep-warm"
    );
    assert_eq!(pool.environments(), 1);
}

#[test]
fn the_scaling_rate_caps_new_environments_per_ten_seconds() {
    // 10 per 10 s: a bucket of 10 refilled at 1 per second.
    let mut pool = EnvironmentPool::new(1000, KEEP, 0, 10, SimTime::ZERO);
    for env in 0..10 {
        assert_eq!(pool.acquire(secs(0.0)), Acquired::Cold(env));
    }
    assert_eq!(
        pool.acquire(secs(0.5)),
        Acquired::Throttled(Throttle::ScalingRate)
    );
    assert_eq!(pool.acquire(secs(1.0)), Acquired::Cold(10));
    assert_eq!(
        pool.acquire(secs(1.5)),
        Acquired::Throttled(Throttle::ScalingRate)
    );
    assert_eq!(pool.throttled_by_rate, 2);
}

#[test]
fn provisioned_environments_are_used_first_and_never_go_cold() {
    let mut pool = EnvironmentPool::new(10, KEEP, 2, 1000, SimTime::ZERO);
    assert_eq!(pool.idle(), 2);
    assert_eq!(pool.acquire(secs(0.0)), Acquired::Warm(0));
    assert_eq!(pool.acquire(secs(0.0)), Acquired::Warm(1));
    assert_eq!(pool.acquire(secs(0.0)), Acquired::Cold(2), "spill-over");
    pool.release(2, secs(1.0));
    pool.release(0, secs(1.0));
    pool.release(1, secs(1.0));
    // A day later the on-demand environment is gone, the provisioned ones are not.
    assert_eq!(pool.acquire(secs(86_400.0)), Acquired::Warm(0));
    assert_eq!(pool.state(1), EnvState::Idle { since: secs(1.0) });
    assert_eq!(pool.state(2), EnvState::Off);
}

/// Client → Lambda service, service → environment, environment → client.
const HOPS: SimDuration = SimDuration::from_millis(45);

#[test]
fn every_cold_start_happens_with_no_warm_environment_free_and_adds_exactly_init() {
    for (profile, seed) in [("spiky", 1), ("medium", 2), ("low", 3)] {
        let mut sim = simulation(
            &params(&[
                &format!("profile={profile}"),
                "keep_warm=60",
                "init_duration=0.8",
            ]),
            Seed(seed),
        );
        sim.model.enable_trace();
        LessonRun::run_until(&mut sim, secs(1800.0));
        sim.check_conservation().unwrap();
        let (invocations, reclaims) = sim.model.trace();
        let cold: Vec<_> = invocations.iter().filter(|i| i.cold).collect();
        assert!(!cold.is_empty() && !reclaims.is_empty(), "{profile}");
        for invocation in &cold {
            assert_eq!(
                invocation.idle_before, 0,
                "{profile}: a cold start while a warm environment was free: {invocation:?}"
            );
        }
        for reclaim in reclaims {
            assert_eq!(
                reclaim.idle_for,
                SimDuration::from_secs(60),
                "{profile}: shut down after exactly keep-warm idle: {reclaim:?}"
            );
        }
        // Lambda never queues: latency = network + (Init if cold) + handler time.
        let init = SimDuration::from_secs_f64(0.8);
        for invocation in invocations {
            let Some(latency) = invocation.latency else {
                continue;
            };
            let expected = HOPS
                + invocation.work
                + if invocation.cold {
                    init
                } else {
                    SimDuration::ZERO
                };
            assert_eq!(latency, expected, "{profile}: {invocation:?}");
        }
    }
}

#[test]
fn with_keep_warm_longer_than_the_run_cold_starts_equal_the_peak_concurrency() {
    for seed in 1..4 {
        let run = run_to_end(&["profile=spiky", "keep_warm=3600"], seed);
        assert_eq!(
            figure(run.as_ref(), "cold_starts"),
            figure(run.as_ref(), "peak_concurrency"),
            "every environment is created once, when all existing ones are busy"
        );
    }
}

#[test]
fn concurrency_never_exceeds_the_limit_and_a_burst_above_it_is_throttled() {
    let mut sim = simulation(
        &params(&["profile=medium", "concurrency_limit=20"]),
        Seed(5),
    );
    let mut t = 0.0;
    let mut injected = false;
    while t < 600.0 {
        t += 0.05;
        LessonRun::run_until(&mut sim, secs(t));
        if !injected && t >= 200.0 {
            sim.apply(&LessonCommand::Inject("burst".into())).unwrap();
            injected = true;
        }
        assert!(sim.model.pool().busy() <= 20, "at {t}");
    }
    sim.check_conservation().unwrap();
    assert_eq!(figure(&sim, "peak_concurrency"), 20.0);
    let throttled = figure(&sim, "throttled");
    assert!(throttled > 100.0, "{throttled}");
    // Throttled requests come back as 429: counted as rejected, never completed.
    LessonRun::run_until(&mut sim, secs(601.0));
    assert_eq!(sim.summary().rejected as f64, figure(&sim, "throttled"));
}

#[test]
fn no_throttles_when_the_limit_is_above_peak_demand() {
    for seed in 1..5 {
        for profile in ["low", "medium", "spiky"] {
            let run = run_to_end(
                &[&format!("profile={profile}"), "concurrency_limit=1000"],
                seed,
            );
            assert_eq!(figure(run.as_ref(), "throttled"), 0.0, "{profile} {seed}");
            assert_eq!(run.summary().rejected, 0);
            assert!(figure(run.as_ref(), "peak_concurrency") < 1000.0);
        }
    }
}

#[test]
fn cold_starts_inflate_concurrency_so_a_burst_throttles_before_the_pool_is_warm() {
    // A 10× burst on 25 req/s needs 250 × 0.2 s = 50 warm environments, under the
    // limit of 100; but while they initialise (1 s) arrivals pile up, so the burst
    // briefly needs far more than 100 and is throttled.
    let mut run = start(&["profile=medium"], 3);
    run.run_until(secs(300.0));
    assert_eq!(figure(run.as_ref(), "throttled"), 0.0);
    run.apply(&LessonCommand::Inject("burst".into())).unwrap();
    run.run_until(secs(302.0));
    let early = figure(run.as_ref(), "throttled");
    assert!(early > 0.0, "throttled in the first seconds of the burst");
    run.run_until(secs(320.0));
    let late = figure(run.as_ref(), "throttled");
    assert!(
        late - early < early,
        "once warm, the pool serves the burst: {early} then {late}"
    );
    // Nothing queues in the fleet's sense: latency p99 stays near warm latency + init.
    run.run_until(secs(900.0));
    run.check_conservation().unwrap();
}

#[test]
fn lambda_costs_requests_plus_gb_seconds_and_the_fleet_instance_hours() {
    let run = run_to_end(&["profile=low", "memory_mb=1024"], 7);
    let summary = run.summary();
    let invocations = summary.completed + summary.in_flight;
    let gb_seconds = figure(run.as_ref(), "billed_usage");
    let expected = invocations as f64 * PRICE_PER_REQUEST + gb_seconds * PRICE_PER_GB_SECOND;
    let cost = figure(run.as_ref(), "run_cost_cents") / 100.0;
    assert!(
        (cost - expected).abs() < 2.0 * PRICE_PER_REQUEST + 1e-12,
        "{cost} vs {expected}"
    );
    // Billed time: handler time (rounded up to 1 ms) plus Init for cold starts, at 1 GB,
    // which is every completed request's latency minus the network hops.
    let served_seconds = (summary.sojourn_mean - 0.045) * summary.completed as f64;
    assert!(
        (gb_seconds - served_seconds).abs() < 0.001 * invocations as f64 + 1.0,
        "{gb_seconds} vs {served_seconds}"
    );

    let fleet = run_to_end(&["platform=fleet", "instances=3", "instance_price=0.1"], 7);
    let fleet_cost = figure(fleet.as_ref(), "run_cost_cents") / 100.0;
    assert!((fleet_cost - 3.0 * 0.1 * 0.5).abs() < 1e-9, "{fleet_cost}");
    assert!((figure(fleet.as_ref(), "cost_per_month") - 3.0 * 0.1 * 720.0).abs() < 1e-6);
}

#[test]
fn provisioned_concurrency_is_billed_by_the_hour_and_removes_cold_starts_it_covers() {
    let on_demand = run_to_end(&["profile=low"], 2);
    let provisioned = run_to_end(&["profile=low", "provisioned=5"], 2);
    assert!(figure(on_demand.as_ref(), "cold_starts") > 0.0);
    assert_eq!(figure(provisioned.as_ref(), "cold_starts"), 0.0);
    let extra = figure(provisioned.as_ref(), "run_cost_cents") / 100.0;
    let hourly_part = 5.0 * 0.5 * 1800.0 * PRICE_PROVISIONED_GB_SECOND;
    assert!(extra > hourly_part, "{extra} ≥ {hourly_part}");
    assert!(
        figure(provisioned.as_ref(), "cost_per_month")
            > 10.0 * figure(on_demand.as_ref(), "cost_per_month"),
        "at low load, paying for idle warm capacity dominates"
    );
}

#[test]
fn lambda_is_cheaper_at_low_load_and_the_fleet_at_steady_high_load() {
    let cost = |platform: &str, profile: &str, scale: f64| {
        let run = run_to_end(
            &[
                &format!("platform={platform}"),
                &format!("profile={profile}"),
                &format!("load_scale={scale}"),
            ],
            4,
        );
        figure(run.as_ref(), "cost_per_month")
    };
    let fleet = cost("fleet", "medium", 1.0);
    assert!(cost("lambda", "low", 1.0) * 10.0 < fleet);
    assert!(cost("lambda", "spiky", 1.0) * 3.0 < cost("fleet", "spiky", 1.0));
    assert!(cost("lambda", "medium", 1.0) > 1.5 * fleet);
    // The crossover: somewhere between 0.3× and 0.7× of the medium load.
    assert!(cost("lambda", "medium", 0.3) < fleet);
    assert!(cost("lambda", "medium", 0.7) > fleet);
}

#[test]
fn at_spiky_load_lambdas_p99_is_set_by_cold_starts() {
    for seed in 1..4 {
        let lambda = run_to_end(&["profile=spiky"], seed);
        let fleet = run_to_end(&["profile=spiky", "platform=fleet"], seed);
        let p99 = lambda.summary().latency_p99;
        assert!(p99 > 1.0, "p99 {p99} includes the 1 s Init");
        assert!(figure(lambda.as_ref(), "cold_start_share") > 1.0);
        assert!(figure(lambda.as_ref(), "warm_p99") < 0.7);
        assert!(fleet.summary().latency_p99 < 0.7);
        assert_eq!(lambda.summary().generated, fleet.summary().generated);
        // At medium load cold starts are too rare to reach the p99.
        let medium = run_to_end(&["profile=medium"], seed);
        assert!(medium.summary().latency_p99 < 0.7);
    }
}

#[test]
fn going_quiet_for_longer_than_keep_warm_shuts_every_environment_down() {
    let mut sim = simulation(&params(&["profile=medium", "keep_warm=120"]), Seed(6));
    LessonRun::run_until(&mut sim, secs(300.0));
    assert!(sim.model.pool().environments() > 3);
    let cold_before = figure(&sim, "cold_starts");
    sim.apply(&LessonCommand::Inject("idle".into())).unwrap();
    LessonRun::run_until(&mut sim, secs(300.0 + 125.0));
    assert_eq!(sim.model.pool().environments(), 0, "all shut down");
    let env_1 = sim.topology().find("env-1").unwrap();
    assert!(sim
        .log()
        .entries()
        .iter()
        .any(|entry| entry.time > secs(300.0)
            && entry.what
                == Notable::StateChanged {
                    node: env_1,
                    to: NodeState::Off
                }));
    // Traffic resumes after keep-warm + 60 s, and every environment starts cold again.
    LessonRun::run_until(&mut sim, secs(600.0));
    sim.check_conservation().unwrap();
    assert!(figure(&sim, "cold_starts") >= cold_before + 3.0);
    // The fleet does not care.
    let mut fleet = start(&["profile=medium", "platform=fleet"], 6);
    fleet.run_until(secs(300.0));
    fleet.apply(&LessonCommand::Inject("idle".into())).unwrap();
    fleet.run_until(secs(1800.0));
    assert!(fleet.summary().latency_p99 < 0.7);
}

#[test]
fn restore_ends_a_burst_and_is_refused_when_nothing_to_end() {
    let mut run = start(&["profile=medium"], 1);
    run.run_until(secs(10.0));
    assert!(matches!(
        run.apply(&LessonCommand::Inject("restore".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    assert!(matches!(
        run.apply(&LessonCommand::Inject("meltdown".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
    run.apply(&LessonCommand::Inject("burst".into())).unwrap();
    run.run_until(secs(11.0));
    run.apply(&LessonCommand::Inject("restore".into())).unwrap();
    let at_restore = run.summary().generated;
    run.run_until(secs(21.0));
    let rate = (run.summary().generated - at_restore) as f64 / 10.0;
    assert!(rate < 40.0, "back to about 25 req/s, got {rate}");
}

#[test]
fn conservation_holds_under_commands_and_replays_are_identical() {
    let commands = [
        (100.0, LessonCommand::Inject("burst".into())),
        (
            150.0,
            LessonCommand::SetParam {
                name: "concurrency_limit".into(),
                value: ParamValue::Integer(15),
            },
        ),
        (
            200.0,
            LessonCommand::SetParam {
                name: "keep_warm".into(),
                value: ParamValue::Number(30.0),
            },
        ),
        (260.0, LessonCommand::Inject("idle".into())),
        (
            300.0,
            LessonCommand::SetParam {
                name: "memory_mb".into(),
                value: ParamValue::Integer(2048),
            },
        ),
        (320.0, LessonCommand::Inject("restore".into())),
        (
            330.0,
            LessonCommand::SetParam {
                name: "slots".into(),
                value: ParamValue::Integer(2),
            },
        ),
        (
            340.0,
            LessonCommand::SetParam {
                name: "profile".into(),
                value: ParamValue::Choice("medium"),
            },
        ),
    ];
    for platform in ["lambda", "fleet"] {
        for seed in 1..4 {
            let go = || {
                let mut run = start(&[&format!("platform={platform}"), "provisioned=3"], seed);
                for (at, command) in &commands {
                    run.run_until(secs(*at));
                    run.apply(command).unwrap();
                    run.check_conservation().unwrap();
                }
                run.run_until(secs(900.0));
                run.check_conservation().unwrap();
                (run.summary(), run.extra_figures())
            };
            assert_eq!(go(), go(), "{platform} seed {seed}");
        }
    }
}
