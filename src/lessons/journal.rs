//! The commands a learner gave a run, stamped with where the run was, so the run can be
//! rebuilt exactly at any earlier time (timeline scrubbing, step back, shared links):
//! same seed + same parameters + same journal = the same run, event for event.
//!
//! Each entry records the simulated time *and* the number of events handled when the
//! command was applied. The count matters when a frame stopped on its event budget in
//! the middle of several events due at the same instant: replaying "up to time t" would
//! handle all of them before the command, the live run did not.

use crate::sim::time::SimTime;

use super::params::{ParamValues, Seed};
use super::run::{CommandError, LessonCommand, LessonRun};
use super::LessonSpec;

/// One command with the run's position when it was applied.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub at: SimTime,
    /// Events handled before the command.
    pub after_events: u64,
    pub command: LessonCommand,
}

/// Accepted commands in the order they were applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Journal {
    entries: Vec<JournalEntry>,
}

impl Journal {
    pub fn entries(&self) -> &[JournalEntry] {
        &self.entries
    }

    /// Records a command just applied to `run`. Entries later than the run's position
    /// (left over from before a seek back) are dropped first: a new command rewrites the
    /// future.
    pub fn record(&mut self, run: &dyn LessonRun, command: LessonCommand) {
        let events = run.events_processed();
        self.entries.retain(|entry| entry.after_events <= events);
        self.entries.push(JournalEntry {
            at: run.now(),
            after_events: events,
            command,
        });
    }

    /// Advances `run` to `until` (handling at most `budget` events), applying the
    /// journal's commands that fall on the way at exactly the positions they were first
    /// applied. Commands at or before the run's current position count as applied.
    /// Every command was accepted when it was recorded, so the same run accepts it again;
    /// should a model ever refuse, the run carries on without it.
    pub fn advance(&self, run: &mut dyn LessonRun, until: SimTime, budget: u64) -> AdvanceOutcome {
        let mut handled = 0;
        let start_events = run.events_processed();
        let start_time = run.now();
        for entry in &self.entries {
            let pending = entry.after_events > start_events
                || (entry.after_events == start_events && entry.at > start_time);
            if !pending || entry.at > until {
                continue;
            }
            if !reach(run, entry, budget.saturating_sub(handled), &mut handled) {
                return AdvanceOutcome {
                    events: handled,
                    reached: false,
                };
            }
            let _ = run.apply(&entry.command);
        }
        let outcome = run.run_until_with_budget(until, budget.saturating_sub(handled));
        AdvanceOutcome {
            events: handled + outcome.events,
            reached: outcome.reached,
        }
    }

    /// The journal of a run that applies `schedule` (time, command) in order: runs the
    /// lesson to each time and records what the model accepts. A shared link's schedule
    /// becomes the same journal the author's clicks made, so opening the link replays the
    /// author's run (a command issued between two events of the same microsecond replays
    /// after all of them). Returns the journal, the run at the last scheduled time (its
    /// log shows what the schedule will do) and each refusal with its time and command.
    pub fn from_schedule<'a>(
        spec: &LessonSpec,
        params: &ParamValues,
        seed: Seed,
        schedule: impl IntoIterator<Item = (SimTime, &'a LessonCommand)>,
    ) -> (Journal, Box<dyn LessonRun>, Vec<(SimTime, CommandError)>) {
        let mut run = spec.start(params, seed);
        let mut journal = Journal::default();
        let mut refusals = Vec::new();
        for (at, command) in schedule {
            // A command at time zero applies before any event, as a click before Play
            // does.
            if at > run.now() {
                run.run_until(at);
            }
            match run.apply(command) {
                Ok(()) => journal.record(run.as_ref(), command.clone()),
                Err(problem) => refusals.push((at, problem)),
            }
        }
        (journal, run, refusals)
    }

    /// A fresh run at time zero with the commands recorded at its very start (time zero,
    /// no event handled yet) already applied: `advance` treats a position the run has
    /// reached as done, so those must be applied here.
    pub fn start(&self, spec: &LessonSpec, params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
        let mut run = spec.start(params, seed);
        for entry in &self.entries {
            if entry.after_events != 0 || entry.at != SimTime::ZERO {
                break;
            }
            let _ = run.apply(&entry.command);
        }
        run
    }

    /// The recorded commands with their times, as a link's schedule carries them.
    pub fn commands(&self) -> impl Iterator<Item = (SimTime, &LessonCommand)> + '_ {
        self.entries.iter().map(|entry| (entry.at, &entry.command))
    }

    /// Keeps only the entries at or before `t` (used when a run is rebuilt without its
    /// future).
    pub fn truncate_after(&mut self, t: SimTime) {
        self.entries.retain(|entry| entry.at <= t);
    }

    /// The parameters in force at `t`: `initial` with every journalled `SetParam` up to
    /// `t` applied (for the controls after a seek).
    pub fn params_at(&self, initial: &ParamValues, t: SimTime) -> ParamValues {
        let mut params = initial.clone();
        for entry in self.entries.iter().filter(|entry| entry.at <= t) {
            if let LessonCommand::SetParam { name, value } = &entry.command {
                let _ = params.set(name, *value);
            }
        }
        params
    }
}

/// How far [`Journal::advance`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvanceOutcome {
    pub events: u64,
    pub reached: bool,
}

/// Moves `run` to the entry's position (its event count, then its time). False if the
/// budget ran out first.
fn reach(run: &mut dyn LessonRun, entry: &JournalEntry, budget: u64, handled: &mut u64) -> bool {
    let mut budget = budget;
    while run.events_processed() < entry.after_events {
        if budget == 0 {
            return false;
        }
        let wanted = (entry.after_events - run.events_processed()).min(budget);
        let outcome = run.run_until_with_budget(entry.at, wanted);
        *handled += outcome.events;
        budget -= outcome.events;
        if outcome.events == 0 && !outcome.reached {
            return false;
        }
        if outcome.reached && run.events_processed() < entry.after_events {
            // Fewer events before `at` than recorded: the journal belongs to another run.
            break;
        }
    }
    if run.now() < entry.at {
        // Every event up to `at` is handled; only the clock moves.
        run.run_until(entry.at);
    }
    true
}

/// Rebuilds `spec`'s run from its start parameters and seed at time `t`, applying the
/// journal on the way: the run is identical to the live run when it was at `t`.
pub fn replay(
    spec: &LessonSpec,
    params: &ParamValues,
    seed: Seed,
    journal: &Journal,
    t: SimTime,
) -> Box<dyn LessonRun> {
    let mut run = journal.start(spec, params, seed);
    journal.advance(run.as_mut(), t, u64::MAX);
    run
}
