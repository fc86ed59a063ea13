//! Timeline replay: a run rebuilt from its seed, parameters and command journal is
//! identical to the live run at the same point, for every lesson, even when frames
//! stopped on their event budget in the middle of simultaneous events.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::catalog;
use patterns_playground::lessons::journal::{replay, Journal};
use patterns_playground::lessons::params::{Liveness, ParamKind, ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, LessonCommand, LessonRun};
use patterns_playground::sim::random::SimRng;
use patterns_playground::sim::snapshot::Snapshot;
use patterns_playground::sim::time::SimTime;

/// Everything visible about a run at one instant.
/// A run's position (time, events handled) and everything visible there.
type Picture = (SimTime, u64, String, Snapshot, String);

fn picture(run: &dyn LessonRun) -> Picture {
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 10_000);
    (
        run.now(),
        run.events_processed(),
        fingerprint(&run.summary()),
        snapshot,
        format!("{:?}", run.log().entries()),
    )
}

/// A random live command for `params`' lesson: an injection or a live parameter change.
fn random_command(rng: &mut SimRng, params: &ParamValues) -> Option<LessonCommand> {
    let lesson = catalog()
        .iter()
        .find(|lesson| std::ptr::eq(lesson.params, params.schema()))?;
    let live: Vec<_> = lesson
        .params
        .iter()
        .filter(|spec| spec.liveness == Liveness::Live)
        .collect();
    if !lesson.injections.is_empty() && (live.is_empty() || rng.chance(0.6)) {
        return Some(LessonCommand::Inject(
            rng.pick(lesson.injections).id.to_owned(),
        ));
    }
    let spec = *rng.pick(&live);
    let value = match spec.kind {
        ParamKind::Number { min, max, .. } => {
            // Stay near the default so the run stays small.
            let default = spec.default_value();
            let ParamValue::Number(default) = default else {
                unreachable!()
            };
            ParamValue::Number((default * rng.uniform(0.5, 1.5)).clamp(min, max))
        }
        ParamKind::Integer { min, max, .. } => {
            ParamValue::Integer((min + rng.below((max - min).min(8) as u64 + 1) as i64).min(max))
        }
        ParamKind::Choice { options, .. } => ParamValue::Choice(rng.pick(options).to_owned()),
        ParamKind::Toggle { .. } => ParamValue::Toggle(rng.chance(0.5)),
    };
    Some(LessonCommand::SetParam {
        name: spec.name.to_owned(),
        value,
    })
}

#[test]
fn replay_from_the_journal_matches_the_live_run_for_every_lesson() {
    let mut rng = SimRng::new(77, "journal-test");
    for lesson in catalog() {
        for case in 0..4u64 {
            let params = lesson.default_params();
            let seed = Seed(100 + case);
            let mut live = lesson.start(&params, seed);
            let mut journal = Journal::default();
            let horizon = lesson.default_duration.as_secs_f64().min(600.0);
            let mut pictures = Vec::new();
            let mut t = 0.0;
            while t < horizon {
                t += rng.uniform(0.5, horizon / 8.0);
                // Small budgets stop frames mid-instant, as a busy page does.
                let _ = live.run_until_with_budget(SimTime::from_secs_f64(t), 1 + rng.below(400));
                if let Some(command) = random_command(&mut rng, &params) {
                    if live.apply(&command).is_ok() {
                        journal.record(live.as_ref(), command);
                        // A replay to a position applies every command recorded there, so
                        // a picture taken at the very same position before this command
                        // no longer describes that position.
                        let position = (live.now(), live.events_processed());
                        if pictures
                            .last()
                            .is_some_and(|last: &Picture| (last.0, last.1) == position)
                        {
                            pictures.pop();
                        }
                    }
                }
                if rng.chance(0.3) {
                    live.run_events(1 + rng.below(3));
                }
                pictures.push(picture(live.as_ref()));
            }
            assert!(
                journal.entries().len() >= 2,
                "{}: too few commands",
                lesson.id
            );
            for expected in pictures.iter().step_by(3).chain(pictures.last()) {
                let rebuilt = replay(lesson, &params, seed, &journal, expected.0);
                // A replay to time t stops after the last event at t; the live picture
                // may have been taken mid-instant, so compare at the same event count.
                let mut rebuilt = rebuilt;
                if rebuilt.events_processed() != expected.1 {
                    rebuilt = lesson.start(&params, seed);
                    let _ = journal.advance(rebuilt.as_mut(), expected.0, expected.1);
                }
                assert_eq!(
                    &picture(rebuilt.as_ref()),
                    expected,
                    "{} case {case}: replay differs at t = {}",
                    lesson.id,
                    expected.0
                );
            }
        }
    }
}

#[test]
fn seeking_back_then_playing_on_reapplies_the_future_commands() {
    for lesson in catalog() {
        let params = lesson.default_params();
        let seed = Seed(9);
        let mut live = lesson.start(&params, seed);
        let mut journal = Journal::default();
        for (index, injection) in lesson.injections.iter().enumerate() {
            live.run_until(SimTime::from_secs_f64(30.0 * (index + 1) as f64));
            let command = LessonCommand::Inject(injection.id.to_owned());
            if live.apply(&command).is_ok() {
                journal.record(live.as_ref(), command);
            }
        }
        let end = SimTime::from_secs_f64(30.0 * (lesson.injections.len() + 2) as f64);
        live.run_until(end);
        // Back to 10 s, then forward through every recorded injection.
        let mut scrubbed = replay(
            lesson,
            &params,
            seed,
            &journal,
            SimTime::from_secs_f64(10.0),
        );
        assert_eq!(scrubbed.now(), SimTime::from_secs_f64(10.0));
        let outcome = journal.advance(scrubbed.as_mut(), end, u64::MAX);
        assert!(outcome.reached);
        assert_eq!(
            picture(scrubbed.as_ref()),
            picture(live.as_ref()),
            "{}",
            lesson.id
        );
    }
}

#[test]
fn a_new_command_after_seeking_back_rewrites_the_future() {
    let lesson = &catalog()[0];
    let params = lesson.default_params();
    let mut live = lesson.start(&params, Seed(1));
    let mut journal = Journal::default();
    live.run_until(SimTime::from_secs_f64(50.0));
    let burst = LessonCommand::Inject(lesson.injections[0].id.to_owned());
    live.apply(&burst).unwrap();
    journal.record(live.as_ref(), burst.clone());
    live.run_until(SimTime::from_secs_f64(100.0));
    live.apply(&burst).unwrap();
    journal.record(live.as_ref(), burst.clone());
    let mut scrubbed = replay(
        lesson,
        &params,
        Seed(1),
        &journal,
        SimTime::from_secs_f64(70.0),
    );
    scrubbed.apply(&burst).unwrap();
    journal.record(scrubbed.as_ref(), burst);
    let times: Vec<u64> = journal
        .entries()
        .iter()
        .map(|entry| entry.at.as_secs_f64() as u64)
        .collect();
    assert_eq!(times, [50, 70]);
}
