//! The sessions lesson reproduces what its sources describe (ALB sticky sessions, session
//! state in ElastiCache / DynamoDB, Twelve-Factor "VI. Processes"): sessions are lost only
//! when they live in instance memory (exactly the sessions the lost instance held), a
//! stateless fleet loses only in-flight requests, the external store adds its read latency
//! to every request, sticky sessions with heavy users spread load unevenly, and a new
//! instance takes its share at once when stateless but only as old sessions end when
//! sticky (share 1 − e^(−t/L) of fair). Every request is accounted for, a seed replays
//! exactly, and both designs see the same users and requests on one seed.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::lessons::sessions::{simulation, SessionsModel, SPEC};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn sim(assignments: &[&str], seed: u64) -> Simulation<SessionsModel> {
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
    run.apply(&LessonCommand::Inject(id.into()))
        .unwrap_or_else(|error| panic!("{id}: {error}"));
}

/// A run that injects `id` at `at` seconds and runs on to `until`.
fn with_injection(store: &str, id: &str, seed: u64, at: f64, until: f64) -> Box<dyn LessonRun> {
    let setting = format!("session_store={store}");
    let mut run = SPEC.start(&params(&[setting.as_str()]), Seed(seed));
    run.run_until(secs(at));
    inject(run.as_mut(), id);
    run.run_until(secs(until));
    run.check_conservation().unwrap();
    run
}

#[test]
fn external_store_never_logs_anyone_out() {
    for seed in 1..=5 {
        for id in ["kill-instance", "scale-in"] {
            let run = with_injection("external", id, seed, 120.0, 400.0);
            assert_eq!(
                figure(run.as_ref(), "users_logged_out"),
                0.0,
                "{id}, seed {seed}"
            );
            let local = with_injection("local", id, seed, 120.0, 400.0);
            assert!(
                figure(local.as_ref(), "users_logged_out") > 50.0,
                "{id}, seed {seed}: local sessions are lost"
            );
        }
    }
}

#[test]
fn killing_an_instance_logs_out_exactly_the_sessions_it_held() {
    for seed in 1..=4 {
        let mut run = sim(&["session_store=local"], seed);
        run.run_until(secs(150.0));
        let target = run.model.kill_target().unwrap();
        let held = run.model.sessions_on(target);
        let in_flight = run.model.assigned_on(target);
        let before: u32 = (0..5).map(|i| run.model.sessions_on(i)).sum();
        let failed_before = run.metrics().counters().failed;
        assert!(held > 100, "about a third of ~540 users: {held}");
        inject(&mut run, "kill-instance");
        assert_eq!(run.model.instance_state(target), NodeState::Down);
        assert_eq!(run.model.sessions_on(target), 0);
        assert_eq!(figure(&run, "users_logged_out"), f64::from(held));
        let sum: u32 = (0..5).map(|i| run.model.sessions_on(i)).sum();
        assert_eq!(sum, before - held);
        assert_eq!(
            run.metrics().counters().failed - failed_before,
            u64::from(in_flight),
            "only the requests it held fail at once"
        );
        // The logged-out users log in again elsewhere, one request later each.
        let bound = |run: &Simulation<SessionsModel>| -> u32 {
            (0..5).map(|i| run.model.sessions_on(i)).sum()
        };
        let after_kill = bound(&run);
        run.run_until(secs(200.0));
        run.check_conservation().unwrap();
        assert!(bound(&run) > after_kill + held / 2, "they log in again");
        assert_eq!(figure(&run, "users_logged_out"), f64::from(held));
    }
}

#[test]
fn external_kill_fails_only_in_flight_requests() {
    for seed in 1..=4 {
        let mut run = sim(&["session_store=external"], seed);
        run.run_until(secs(150.0));
        let target = run.model.kill_target().unwrap();
        let in_flight = run.model.assigned_on(target);
        let logged_in = run.model.logged_in();
        inject(&mut run, "kill-instance");
        assert_eq!(run.metrics().counters().failed, u64::from(in_flight));
        assert_eq!(run.model.logged_in(), logged_in, "nobody is logged out");
        assert_eq!(figure(&run, "users_logged_out"), 0.0);
        run.check_conservation().unwrap();
    }
}

#[test]
fn scale_in_loses_the_sessions_still_alive_when_the_drain_ends() {
    // No drain: every session on the instance is lost at once.
    let mut run = sim(&["session_store=local", "drain_timeout=0"], 3);
    run.run_until(secs(100.0));
    let target = 2; // the highest-numbered instance in rotation
    let held = run.model.sessions_on(target);
    inject(&mut run, "scale-in");
    assert_eq!(figure(&run, "users_logged_out"), f64::from(held));
    assert_eq!(run.model.instance_state(target), NodeState::Off);

    // A 30 s drain: the instance keeps its pinned users and takes no new ones; sessions
    // end at rate 1/L, so about e^(-30/180) of them are still there when it stops.
    let mut total_held = 0.0;
    let mut total_lost = 0.0;
    for seed in 1..=6 {
        let mut run = sim(&["session_store=local", "drain_timeout=30"], seed);
        run.run_until(secs(100.0));
        let held = run.model.sessions_on(target);
        inject(&mut run, "scale-in");
        assert_eq!(run.model.instance_state(target), NodeState::Draining);
        run.run_until(secs(129.999_999));
        let alive = run.model.sessions_on(target);
        assert!(alive <= held, "a draining instance gets no new sessions");
        run.run_until(secs(130.0));
        assert_eq!(run.model.instance_state(target), NodeState::Off);
        assert_eq!(figure(&run, "users_logged_out"), f64::from(alive));
        total_held += f64::from(held);
        total_lost += f64::from(alive);
        run.check_conservation().unwrap();
    }
    let expected = (-30.0f64 / 180.0).exp();
    let share = total_lost / total_held;
    assert!(
        (share - expected).abs() < 0.05,
        "lost share {share}, expected {expected}"
    );

    // A drain longer than every session: it stops early, when its last user has left.
    let mut run = sim(&["session_store=local", "drain_timeout=3600"], 1);
    run.run_until(secs(100.0));
    inject(&mut run, "scale-in");
    run.run_until(secs(3000.0));
    assert_eq!(run.model.instance_state(target), NodeState::Off);
    assert_eq!(figure(&run, "users_logged_out"), 0.0);
    run.check_conservation().unwrap();
}

#[test]
fn the_store_read_adds_its_latency_to_every_request() {
    // Light load and no heavy users, so queueing does not blur the difference.
    for (latency, seed) in [(5.0f64, 1), (20.0, 2), (1.0, 3)] {
        let setting = format!("store_latency={latency}");
        let common = ["heavy_fraction=0", "threads=32", setting.as_str()];
        let mut local = SPEC.start(
            &params(&[&["session_store=local"], &common[..]].concat()),
            Seed(seed),
        );
        let mut external = SPEC.start(
            &params(&[&["session_store=external"], &common[..]].concat()),
            Seed(seed),
        );
        local.run_until(secs(300.0));
        external.run_until(secs(300.0));
        let difference = (external.summary().latency_p50 - local.summary().latency_p50) * 1000.0;
        let tolerance = (0.1 * latency).max(1.0);
        assert!(
            (difference - latency).abs() < tolerance,
            "p50 difference {difference} ms for a {latency} ms store"
        );
        assert!((figure(external.as_ref(), "store_read_ms") - latency).abs() < 1e-3);
        assert_eq!(figure(local.as_ref(), "store_read_ms"), 0.0);
    }
}

#[test]
fn a_slow_store_slows_every_request_down() {
    let assignments = ["session_store=external", "heavy_fraction=0", "threads=32"];
    let mut normal = SPEC.start(&params(&assignments), Seed(4));
    normal.run_until(secs(300.0));
    let mut run = SPEC.start(&params(&assignments), Seed(4));
    inject(run.as_mut(), "store-slow");
    run.run_until(secs(300.0));
    // Every read takes 5 ms × 10 instead of 5 ms: every request 45 ms later.
    let difference = (run.summary().latency_p50 - normal.summary().latency_p50) * 1000.0;
    assert!(
        (difference - 45.0).abs() < 4.5,
        "p50 difference {difference} ms"
    );
    inject(run.as_mut(), "restore");
    let log = run.log().entries();
    let store = run.topology().find("store").unwrap();
    let store_states: Vec<NodeState> = log
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node, to } if node == store => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(store_states, [NodeState::Unhealthy, NodeState::Healthy]);
}

#[test]
fn sticky_sessions_with_heavy_users_spread_load_unevenly() {
    for seed in 1..=5 {
        let sticky = {
            let mut run = SPEC.start(&params(&["session_store=local"]), Seed(seed));
            run.run_until(secs(600.0));
            figure(run.as_ref(), "load_imbalance")
        };
        let stateless = {
            let mut run = SPEC.start(&params(&["session_store=external"]), Seed(seed));
            run.run_until(secs(600.0));
            figure(run.as_ref(), "load_imbalance")
        };
        let sticky_light = {
            let mut run = SPEC.start(
                &params(&["session_store=local", "heavy_fraction=0"]),
                Seed(seed),
            );
            run.run_until(secs(600.0));
            figure(run.as_ref(), "load_imbalance")
        };
        assert!(stateless < 1.01, "round robin is even: {stateless}");
        assert!(sticky > 1.1, "seed {seed}: sticky imbalance {sticky}");
        assert!(
            sticky > sticky_light + 0.05,
            "heavy users make it worse: {sticky} vs {sticky_light}"
        );
    }
}

#[test]
fn a_new_instance_takes_its_share_at_once_only_when_stateless() {
    for seed in 1..=4 {
        let external = with_injection("external", "scale-out", seed, 120.0, 150.0);
        assert_eq!(figure(external.as_ref(), "fair_share_time"), 0.0);
        assert!(figure(external.as_ref(), "new_instance_share_pct") > 95.0);

        let sticky = with_injection("local", "scale-out", seed, 120.0, 150.0);
        assert!(figure(sticky.as_ref(), "new_instance_share_pct") < 50.0);
        assert!(
            figure(sticky.as_ref(), "fair_share_time") >= 30.0,
            "still counting"
        );
    }
    // Sticky: the new instance holds (1 − e^(−t/L)) of its fair share of sessions after
    // t seconds; at t = L that is 63 %. Averaged over seeds.
    let mut ratio_sum = 0.0;
    for seed in 1..=6 {
        let mut run = sim(&["session_store=local"], seed);
        run.run_until(secs(120.0));
        inject(&mut run, "scale-out");
        run.run_until(secs(300.0));
        let new = f64::from(run.model.sessions_on(3));
        let all: f64 = (0..4).map(|i| f64::from(run.model.sessions_on(i))).sum();
        ratio_sum += new / (all / 4.0);
    }
    let ratio = ratio_sum / 6.0;
    let expected = 1.0 - (-1.0f64).exp();
    assert!(
        (ratio - expected).abs() < 0.08,
        "share {ratio}, expected {expected}"
    );
}

#[test]
fn both_designs_see_the_same_users_and_requests() {
    for seed in 1..=3 {
        let mut local = SPEC.start(&params(&["session_store=local"]), Seed(seed));
        let mut external = SPEC.start(&params(&["session_store=external"]), Seed(seed));
        local.run_until(secs(300.0));
        external.run_until(secs(300.0));
        assert_eq!(local.summary().generated, external.summary().generated);
        assert_eq!(
            figure(local.as_ref(), "logged_in_users"),
            figure(external.as_ref(), "logged_in_users")
        );
    }
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let mut local = sim(&["session_store=local"], 1);
    local.run_until(secs(10.0));
    let refused = |run: &mut dyn LessonRun, id: &str| {
        matches!(
            run.apply(&LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        )
    };
    assert!(
        refused(&mut local, "store-slow"),
        "no store with local sessions"
    );
    assert!(refused(&mut local, "restore"), "nothing to restore");
    inject(&mut local, "scale-out");
    inject(&mut local, "scale-out");
    assert!(refused(&mut local, "scale-out"), "no free slot");
    inject(&mut local, "kill-instance");
    inject(&mut local, "kill-instance");
    inject(&mut local, "kill-instance");
    inject(&mut local, "kill-instance");
    assert!(
        refused(&mut local, "kill-instance"),
        "the last instance stays"
    );
    assert!(refused(&mut local, "scale-in"), "the last instance stays");
    inject(&mut local, "restore");
    assert!(matches!(
        local.apply(&LessonCommand::Inject("nope".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
    local.run_until(secs(60.0));
    local.check_conservation().unwrap();

    let mut external = sim(&["session_store=external"], 1);
    external.run_until(secs(10.0));
    inject(&mut external, "store-slow");
    assert!(refused(&mut external, "store-slow"), "already slow");
}

#[test]
fn every_request_is_accounted_for_under_commands() {
    let ids = [
        "kill-instance",
        "scale-out",
        "scale-in",
        "store-slow",
        "restore",
    ];
    for store in ["local", "external"] {
        for seed in 1..=3 {
            let setting = format!("session_store={store}");
            let mut run = SPEC.start(&params(&[setting.as_str(), "drain_timeout=20"]), Seed(seed));
            let mut snapshot = Snapshot::default();
            for step in 0..60u64 {
                run.run_until(secs(step as f64 * 7.0 + 3.0));
                let id = ids[(step as usize * 3 + seed as usize) % ids.len()];
                let _ = run.apply(&LessonCommand::Inject(id.into()));
                run.check_conservation().unwrap();
                run.snapshot_into(&mut snapshot, 500);
                let counters = run.metrics().counters();
                assert_eq!(
                    counters.generated,
                    counters.completed + counters.failed + counters.rejected + run.live_requests()
                );
            }
            run.run_until(secs(600.0));
            run.check_conservation().unwrap();
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    for store in ["local", "external"] {
        let setting = format!("session_store={store}");
        let run_once = || {
            let mut run = SPEC.start(&params(&[setting.as_str()]), Seed(9));
            run.run_until(secs(100.0));
            inject(run.as_mut(), "kill-instance");
            run.run_until(secs(200.0));
            inject(run.as_mut(), "restore");
            run.run_until(secs(300.0));
            (
                fingerprint(&run.summary()),
                format!("{:?}", run.extra_figures()),
                run.log().entries().len(),
            )
        };
        assert_eq!(run_once(), run_once());
    }
}

#[test]
fn a_default_run_is_fast() {
    let mut run = SPEC.start(&SPEC.default_params(), Seed(1));
    let started = std::time::Instant::now();
    run.run_until(SimTime::ZERO + SPEC.default_duration);
    assert!(started.elapsed().as_secs_f64() < 2.0);
    run.check_conservation().unwrap();
}
