//! Same seed + same parameters + same commands = the same run: replay, chunking, golden
//! figures shared with the browser test, and the conservation invariant under random
//! parameters and injections.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, LessonCommand, LessonRun};
use patterns_playground::lessons::{catalog, queueing_basics};
use patterns_playground::sim::random::SimRng;
use patterns_playground::sim::snapshot::Snapshot;
use patterns_playground::sim::time::{SimDuration, SimTime};

fn secs(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

#[test]
fn determinism_golden() {
    let params = ParamValues::from_assignments(
        queueing_basics::SPEC.params,
        [
            "arrival_rate=1.8",
            "servers=2",
            "service_distribution=lognormal",
            "service_cv=1.5",
        ],
    )
    .unwrap();
    let mut run = queueing_basics::simulation(&params, Seed(2024));
    run.run_until(secs(5000.0));
    let golden = include_str!("golden/queueing-basics-seed-2024.txt");
    assert_eq!(fingerprint(&LessonRun::summary(&run)), golden);
}

/// A scripted session: the same commands at the same simulated times.
fn scripted_session(seed: u64, chunk_budget: Option<u64>) -> (String, Vec<String>) {
    let lesson = &queueing_basics::SPEC;
    let params =
        ParamValues::from_assignments(lesson.params, ["arrival_rate=3.5", "servers=4"]).unwrap();
    let mut run = lesson.start(&params, Seed(seed));
    let script: [(f64, LessonCommand); 4] = [
        (100.0, LessonCommand::Inject("burst".into())),
        (200.0, LessonCommand::Inject("lose-server".into())),
        (
            300.0,
            LessonCommand::SetParam {
                name: "arrival_rate".into(),
                value: ParamValue::Number(2.0),
            },
        ),
        (400.0, LessonCommand::Inject("restore-server".into())),
    ];
    for (at, command) in script {
        match chunk_budget {
            None => {
                run.run_until(secs(at));
            }
            Some(budget) => while !run.run_until_with_budget(secs(at), budget).reached {},
        }
        run.apply(&command).unwrap();
    }
    run.run_until(secs(600.0));
    run.check_conservation().unwrap();
    let log = run
        .log()
        .entries()
        .iter()
        .map(|entry| format!("{:?}", entry))
        .collect();
    (fingerprint(&run.summary()), log)
}

#[test]
fn a_scripted_session_replays_identically() {
    assert_eq!(scripted_session(5, None), scripted_session(5, None));
}

#[test]
fn chunked_fast_forward_gives_the_same_run() {
    assert_eq!(scripted_session(6, None), scripted_session(6, Some(97)));
}

#[test]
fn different_seeds_give_different_runs() {
    assert_ne!(scripted_session(7, None).0, scripted_session(8, None).0);
}

#[test]
fn every_lesson_conserves_requests_under_random_parameters_and_injections() {
    let mut rng = SimRng::new(31337, "property-test");
    for lesson in catalog() {
        for case in 0..40 {
            let mut params = ParamValues::defaults(lesson.params);
            for spec in lesson.params {
                let value = match spec.kind {
                    patterns_playground::lessons::params::ParamKind::Number {
                        min, max, ..
                    } => {
                        // Log-uniform over the range keeps small rates common.
                        let low = min.max(1e-3);
                        ParamValue::Number(
                            (low * (max / low).powf(rng.uniform01())).clamp(min, max),
                        )
                    }
                    patterns_playground::lessons::params::ParamKind::Integer {
                        min, max, ..
                    } => {
                        let span = (max - min).min(16) as u64;
                        ParamValue::Integer(min + rng.below(span + 1) as i64)
                    }
                    patterns_playground::lessons::params::ParamKind::Choice { options, .. } => {
                        ParamValue::Choice(options[rng.below(options.len() as u64) as usize])
                    }
                    patterns_playground::lessons::params::ParamKind::Toggle { .. } => {
                        ParamValue::Toggle(rng.chance(0.5))
                    }
                };
                params.set(spec.name, value).unwrap();
            }
            let mut run = lesson.start(&params, Seed(case));
            // Bound the work: roughly 20k arrivals whatever the rates.
            let horizon = 200.0;
            let mut t = 0.0;
            while t < horizon {
                t += rng.uniform(1.0, 20.0);
                let mut chunks = 0;
                while !run.run_until_with_budget(secs(t), 5_000).reached {
                    chunks += 1;
                    if chunks > 20 {
                        break;
                    }
                }
                run.check_conservation()
                    .unwrap_or_else(|e| panic!("{} case {case} ({params:?}): {e}", lesson.id));
                if !lesson.injections.is_empty() && rng.chance(0.5) {
                    let injection = rng.pick(lesson.injections);
                    // Some injections may not apply (nothing to restore): that is fine.
                    let _ = run.apply(&LessonCommand::Inject(injection.id.into()));
                }
                let mut snapshot = Snapshot::default();
                run.snapshot_into(&mut snapshot, 50);
                assert!(snapshot.tokens.len() <= 50);
                assert_eq!(
                    snapshot.tokens.len() as u64 + snapshot.tokens_omitted,
                    run.live_requests()
                );
            }
        }
    }
}

#[test]
fn a_snapshot_shows_queued_and_in_service_tokens() {
    let params = ParamValues::from_assignments(
        queueing_basics::SPEC.params,
        ["arrival_rate=5", "servers=2", "service_rate=1"],
    )
    .unwrap();
    let mut run = queueing_basics::SPEC.start(&params, Seed(3));
    run.run_until(SimTime::ZERO + SimDuration::from_secs(60));
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 10_000);
    let topology = run.topology();
    let queue = topology.find("queue").unwrap();
    let queue_view = snapshot.nodes.iter().find(|n| n.node == queue).unwrap();
    assert!(
        queue_view.queued > 100,
        "overloaded queue should be long: {queue_view:?}"
    );
    let busy: u32 = snapshot.nodes.iter().map(|n| n.busy).sum();
    assert_eq!(busy, 2);
    assert_eq!(
        snapshot.tokens.len() as u64,
        queue_view.queued as u64 + busy as u64
    );
}
