//! The CQRS lesson reproduces what its sources describe (Greg Young's and Martin Fowler's
//! "CQRS", AWS Prescriptive Guidance "CQRS pattern"): a read model fed by events lags the
//! write model, so a read can miss a write the command side already accepted, exactly
//! when that entity has unapplied events and never when the projection is inline or the
//! model is single; the projector applies every event once, in commit order; after a
//! pause it catches up in about backlog / (projector rate − write rate); the read side
//! scales without changing the write side at all; in a single model reads and writes
//! contend. Every request is accounted for and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::cqrs::{simulation, CqrsModel, SPEC};
use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn sim(assignments: &[&str], seed: u64) -> Simulation<CqrsModel> {
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

fn set(run: &mut dyn LessonRun, name: &str, value: ParamValue) {
    run.apply(&LessonCommand::SetParam {
        name: name.into(),
        value,
    })
    .unwrap();
}

/// Runs `assignments` to `until` with `(time, injection)` pairs applied on the way.
fn scenario(
    assignments: &[&str],
    seed: u64,
    injections: &[(f64, &str)],
    until: f64,
) -> Simulation<CqrsModel> {
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
fn reads_go_stale_only_when_the_projection_lags() {
    for seed in [1, 2, 3] {
        // Inline projection: the write transaction updates the read model, lag is zero.
        let inline = scenario(
            &["projection=inline"],
            seed,
            &[(60.0, "write-burst")],
            200.0,
        );
        assert_eq!(figure(&inline, "stale_reads"), 0.0, "seed {seed}: inline");
        assert_eq!(figure(&inline, "max_lag_s"), 0.0);
        assert_eq!(inline.model.event_counts(), (0, 0));
        // One database: a read always sees every committed write.
        let single = scenario(&["model=single"], seed, &[(60.0, "write-burst")], 200.0);
        assert_eq!(figure(&single, "stale_reads"), 0.0, "seed {seed}: single");
        // Asynchronous projection: a little lag, a few stale reads...
        let steady = scenario(&[], seed, &[], 200.0);
        let steady_pct = figure(&steady, "stale_read_pct");
        assert!(figure(&steady, "stale_reads") > 0.0, "seed {seed}");
        assert!(figure(&steady, "max_lag_s") < 1.0);
        // ...and many more while the projector is paused.
        let paused = scenario(
            &[],
            seed,
            &[(60.0, "pause-projector"), (120.0, "resume-projector")],
            200.0,
        );
        let paused_pct = figure(&paused, "stale_read_pct");
        assert!(
            paused_pct > 4.0 * steady_pct,
            "seed {seed}: paused {paused_pct}% vs steady {steady_pct}%"
        );
        assert!(figure(&paused, "max_lag_s") >= 59.0);
    }
}

#[test]
fn a_read_is_stale_exactly_when_its_entity_has_unapplied_writes() {
    let mut run = sim(&["entities=50", "fresh_read_share=0.5"], 7);
    let (mut stale_seen, mut fresh_seen) = (0, 0);
    let mut last_stale = 0.0;
    let (mut paused, mut resumed) = (false, false);
    let mut previous = None;
    while run.now() < secs(90.0) {
        if !paused && run.now() >= secs(30.0) {
            inject(&mut run, "pause-projector");
            paused = true;
        }
        if !resumed && run.now() >= secs(50.0) {
            inject(&mut run, "resume-projector");
            resumed = true;
        }
        run.step();
        let read = run.model.last_read();
        if read == previous {
            continue;
        }
        previous = read;
        let read = read.unwrap();
        assert_eq!(read.at, run.now());
        let stale = figure(&run, "stale_reads");
        let (accepted, applied) = run.model.entity_versions(read.entity);
        assert!(applied <= accepted, "the read model never runs ahead");
        assert_eq!(
            read.stale,
            applied < accepted,
            "at {}: entity {} accepted {accepted} applied {applied}",
            run.now(),
            read.entity
        );
        if read.stale {
            stale_seen += 1;
            assert_eq!(stale, last_stale + 1.0, "every stale read is counted once");
            assert!(run.model.unapplied_events() > 0);
            assert!(run.model.lag(run.now()).ticks() > 0, "stale needs lag");
        } else {
            fresh_seen += 1;
            assert_eq!(stale, last_stale);
        }
        last_stale = stale;
    }
    assert!(
        stale_seen > 100 && fresh_seen > 100,
        "{stale_seen} stale, {fresh_seen} fresh"
    );
    run.check_conservation().unwrap();
}

#[test]
fn the_projector_applies_every_event_once_in_commit_order() {
    let mut run = sim(&["entities=200"], 11);
    let mut committed = Vec::new();
    let mut next_to_apply = 0;
    let script: [(f64, LessonCommand); 6] = [
        (20.0, LessonCommand::Inject("pause-projector".into())),
        (40.0, LessonCommand::Inject("write-burst".into())),
        (
            50.0,
            LessonCommand::SetParam {
                name: "event_delay".into(),
                value: ParamValue::Number(1500.0),
            },
        ),
        (55.0, LessonCommand::Inject("resume-projector".into())),
        (
            70.0,
            LessonCommand::SetParam {
                name: "projector_rate".into(),
                value: ParamValue::Number(200.0),
            },
        ),
        (
            100.0,
            LessonCommand::SetParam {
                name: "write_rate".into(),
                value: ParamValue::Number(0.0),
            },
        ),
    ];
    let mut script = script.into_iter().peekable();
    let (mut appended, mut applied) = (0, 0);
    while run.now() < secs(200.0) {
        if let Some((at, _)) = script.peek() {
            if run.now() >= secs(*at) {
                let (_, command) = script.next().unwrap();
                run.apply(&command).unwrap();
            }
        }
        if !run.step() {
            break;
        }
        let (now_appended, now_applied) = run.model.event_counts();
        if now_appended > appended {
            assert_eq!(now_appended, appended + 1, "one commit per event");
            committed.push(run.model.last_appended().unwrap());
            appended = now_appended;
        }
        if now_applied > applied {
            assert_eq!(now_applied, applied + 1, "one apply per event");
            assert_eq!(
                run.model.last_applied().unwrap(),
                committed[next_to_apply],
                "applied out of commit order"
            );
            next_to_apply += 1;
            applied = now_applied;
        }
    }
    assert!(committed.len() > 3000, "{} events", committed.len());
    assert_eq!(next_to_apply, committed.len(), "every event applied");
    assert_eq!(run.model.unapplied_events(), 0);
    for entity in 0..200 {
        let (accepted, applied) = run.model.entity_versions(entity);
        assert_eq!(
            accepted, applied,
            "entity {entity}: applied exactly once each"
        );
    }
    for (index, event) in committed.iter().enumerate() {
        assert_eq!(event.seq, index as u64 + 1);
    }
}

#[test]
fn after_a_pause_the_projection_catches_up_in_backlog_over_rate_difference() {
    for (seed, projector_rate) in [(1, 50.0), (2, 50.0), (3, 80.0), (4, 35.0)] {
        let rate = format!("projector_rate={projector_rate}");
        let mut run = sim(&[rate.as_str()], seed);
        LessonRun::run_until(&mut run, secs(60.0));
        inject(&mut run, "pause-projector");
        assert_eq!(run.model.projector_state(), NodeState::Down);
        LessonRun::run_until(&mut run, secs(120.0));
        let backlog = run.model.unapplied_events() as f64;
        assert!(
            (1000.0..1400.0).contains(&backlog),
            "20 writes/s for 60 s: {backlog}"
        );
        inject(&mut run, "resume-projector");
        assert_eq!(run.model.projector_state(), NodeState::Unhealthy);
        LessonRun::run_until(&mut run, secs(400.0));
        run.check_conservation().unwrap();
        let (catch_up, count) = run.model.catch_up();
        assert_eq!(count, 1, "seed {seed}: one catch-up");
        let measured = catch_up.unwrap().as_secs_f64();
        let expected = backlog / (projector_rate - 20.0);
        assert!(
            (measured - expected).abs() < 0.12 * expected,
            "seed {seed}: caught up in {measured} s, expected about {expected} s"
        );
        assert_eq!(figure(&run, "catch_up_s"), measured);
        assert_eq!(run.model.projector_state(), NodeState::Healthy);
        assert!(
            run.model.unapplied_events() < 10,
            "only events still in delivery"
        );
        // The log tells the story: paused, lagging, caught up.
        let projector = run.topology().find("projector").unwrap();
        let states: Vec<NodeState> = run
            .log()
            .entries()
            .iter()
            .filter_map(|entry| match entry.what {
                Notable::StateChanged { node, to } if node == projector => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(
            states,
            [NodeState::Down, NodeState::Unhealthy, NodeState::Healthy]
        );
    }
}

#[test]
fn a_write_burst_outruns_the_projector_which_then_catches_up() {
    for seed in [5, 6, 7] {
        let mut run = sim(&[], seed);
        LessonRun::run_until(&mut run, secs(60.0));
        inject(&mut run, "write-burst");
        LessonRun::run_until(&mut run, secs(80.0));
        assert_eq!(run.model.projector_state(), NodeState::Unhealthy);
        LessonRun::run_until(&mut run, secs(90.0));
        let backlog = run.model.unapplied_events() as f64;
        // 100 writes/s against 50 applied/s for 30 s.
        assert!(
            (1200.0..1800.0).contains(&backlog),
            "seed {seed}: {backlog}"
        );
        LessonRun::run_until(&mut run, secs(300.0));
        let measured = figure(&run, "catch_up_s");
        let expected = backlog / (50.0 - 20.0);
        assert!(
            (measured - expected).abs() < 0.12 * expected,
            "seed {seed}: {measured} s vs {expected} s"
        );
        assert_eq!(run.model.projector_state(), NodeState::Healthy);
        assert!(figure(&run, "max_lag_s") > 20.0);
    }
}

#[test]
fn more_read_replicas_cut_read_latency_and_leave_the_write_side_exactly_alone() {
    for seed in [1, 2] {
        let two = scenario(&["replicas=2"], seed, &[(60.0, "read-spike")], 200.0);
        let three = scenario(&["replicas=3"], seed, &[(60.0, "read-spike")], 200.0);
        let (read_two, read_three) = (figure(&two, "read_p99_ms"), figure(&three, "read_p99_ms"));
        assert!(
            read_two > 500.0,
            "two replicas saturate in the spike: {read_two}"
        );
        assert!(read_three < 100.0, "three do not: {read_three}");
        assert!(figure(&two, "reads_refused") > 0.0);
        assert_eq!(figure(&three, "reads_refused"), 0.0);
        // Writes use their own store and streams: not one number changes.
        for key in ["write_p99_ms", "writes_refused"] {
            assert_eq!(figure(&two, key), figure(&three, key), "seed {seed}: {key}");
        }
        assert_eq!(two.model.event_counts(), three.model.event_counts());
    }
}

#[test]
fn replicas_start_before_serving_and_drain_before_going_off() {
    let mut run = sim(&["replicas=1", "read_rate=300"], 3);
    LessonRun::run_until(&mut run, secs(30.0));
    assert_eq!(
        run.model.replica_states(),
        [NodeState::Healthy, NodeState::Off, NodeState::Off]
    );
    set(&mut run, "replicas", ParamValue::Integer(3));
    assert_eq!(
        run.model.replica_states(),
        [NodeState::Healthy, NodeState::Starting, NodeState::Starting]
    );
    LessonRun::run_until(&mut run, secs(39.9));
    assert_eq!(run.model.replica_states()[1], NodeState::Starting);
    LessonRun::run_until(&mut run, secs(40.1));
    assert_eq!(run.model.replica_states()[1], NodeState::Healthy);
    LessonRun::run_until(&mut run, secs(60.0));
    set(&mut run, "replicas", ParamValue::Integer(1));
    let states = run.model.replica_states();
    assert!(states[1] == NodeState::Draining || states[1] == NodeState::Off);
    LessonRun::run_until(&mut run, secs(61.0));
    assert_eq!(
        run.model.replica_states(),
        [NodeState::Healthy, NodeState::Off, NodeState::Off]
    );
    // A replica asked for and cancelled while starting never serves.
    set(&mut run, "replicas", ParamValue::Integer(2));
    set(&mut run, "replicas", ParamValue::Integer(1));
    LessonRun::run_until(&mut run, secs(80.0));
    assert_eq!(run.model.replica_states()[1], NodeState::Off);
    run.check_conservation().unwrap();
    assert_eq!(
        figure(&run, "reads_refused"),
        0.0,
        "no read lost while scaling"
    );
}

#[test]
fn in_one_database_reads_slow_writes_down_and_a_read_spike_refuses_writes() {
    for seed in [1, 2, 3] {
        let light = scenario(&["model=single", "read_rate=200"], seed, &[], 200.0);
        let heavy = scenario(&["model=single", "read_rate=450"], seed, &[], 200.0);
        let (w_light, w_heavy) = (
            figure(&light, "write_p99_ms"),
            figure(&heavy, "write_p99_ms"),
        );
        assert!(
            w_heavy > w_light + 20.0,
            "seed {seed}: {w_light} -> {w_heavy}"
        );
        assert!(figure(&heavy, "read_p99_ms") > figure(&light, "read_p99_ms") + 20.0);
        // With CQRS the same read load leaves writes exactly as they were.
        let cqrs_light = scenario(&["read_rate=200"], seed, &[], 200.0);
        let cqrs_heavy = scenario(&["read_rate=450"], seed, &[], 200.0);
        assert_eq!(
            figure(&cqrs_light, "write_p99_ms"),
            figure(&cqrs_heavy, "write_p99_ms")
        );
        // A read spike: the single database refuses writes, the write store does not.
        let single = scenario(&["model=single"], seed, &[(60.0, "read-spike")], 200.0);
        let cqrs = scenario(&[], seed, &[(60.0, "read-spike")], 200.0);
        assert!(figure(&single, "writes_refused") > 100.0, "seed {seed}");
        assert_eq!(figure(&cqrs, "writes_refused"), 0.0);
        assert!(figure(&single, "write_p99_ms") > 5.0 * figure(&cqrs, "write_p99_ms"));
    }
}

#[test]
fn inline_projection_trades_lag_for_slower_writes() {
    for seed in [1, 2] {
        let async_run = scenario(&[], seed, &[], 200.0);
        let inline = scenario(&["projection=inline"], seed, &[], 200.0);
        assert!(figure(&inline, "write_p99_ms") > figure(&async_run, "write_p99_ms"));
        assert_eq!(figure(&inline, "stale_reads"), 0.0);
    }
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let refused = |run: &mut dyn LessonRun, id: &str| {
        matches!(
            run.apply(&LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        )
    };
    let mut single = SPEC.start(&params(&["model=single"]), Seed(1));
    assert!(refused(single.as_mut(), "pause-projector"));
    let mut inline = SPEC.start(&params(&["projection=inline"]), Seed(1));
    assert!(refused(inline.as_mut(), "pause-projector"));
    let mut run = SPEC.start(&params(&[]), Seed(1));
    assert!(refused(run.as_mut(), "resume-projector"));
    inject(run.as_mut(), "pause-projector");
    assert!(refused(run.as_mut(), "pause-projector"));
    inject(run.as_mut(), "write-burst");
    assert!(refused(run.as_mut(), "write-burst"));
    run.run_until(secs(31.0));
    inject(run.as_mut(), "write-burst");
    assert!(matches!(
        run.apply(&LessonCommand::Inject("kill-everything".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
    assert!(matches!(
        run.apply(&LessonCommand::SetParam {
            name: "entities".into(),
            value: ParamValue::Integer(10)
        }),
        Err(CommandError::NeedsRestart { .. })
    ));
}

#[test]
fn every_request_is_accounted_for_and_a_seed_replays_exactly() {
    let session = |seed: u64| {
        let mut run = SPEC.start(&params(&["read_rate=700", "replicas=1"]), Seed(seed));
        let steps: [(f64, LessonCommand); 5] = [
            (20.0, LessonCommand::Inject("read-spike".into())),
            (
                30.0,
                LessonCommand::SetParam {
                    name: "replicas".into(),
                    value: ParamValue::Integer(3),
                },
            ),
            (50.0, LessonCommand::Inject("pause-projector".into())),
            (80.0, LessonCommand::Inject("resume-projector".into())),
            (
                90.0,
                LessonCommand::SetParam {
                    name: "replicas".into(),
                    value: ParamValue::Integer(2),
                },
            ),
        ];
        for (at, command) in steps {
            run.run_until(secs(at));
            run.check_conservation().unwrap();
            run.apply(&command).unwrap();
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
    for seed in [1, 2, 3, 4] {
        assert_eq!(session(seed), session(seed), "seed {seed} replays");
    }
    assert_ne!(session(1).0, session(2).0);
}
