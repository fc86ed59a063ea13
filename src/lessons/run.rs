//! The one interface the view and the headless runner drive every lesson through:
//! step the clock, read a snapshot and metrics, send a command. Object-safe, so the
//! catalog can hand out `Box<dyn LessonRun>` for any lesson.

use std::fmt;

use crate::sim::metrics::{RunMetrics, RunSummary};
use crate::sim::scheduler::{ChunkOutcome, Model, Scheduler, Simulation};
use crate::sim::snapshot::{EventLog, Figure, Notable, Snapshot};
use crate::sim::time::SimTime;
use crate::sim::topology::Topology;

use super::core::ModelCore;
use super::params::{Liveness, ParamError, ParamSpec, ParamValue, ParamValues};
use super::InjectionSpec;

/// A change the learner (or a host page, or a scenario) makes to a running lesson.
#[derive(Clone, Debug, PartialEq)]
pub enum LessonCommand {
    /// Trigger one of the lesson's declared failure injections by id.
    Inject(String),
    /// Change a `Live` parameter; the model applies it at the current time.
    SetParam { name: String, value: ParamValue },
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandError {
    UnknownInjection {
        id: String,
        known: Vec<&'static str>,
    },
    /// The parameter exists but cannot change mid-run: restart with the new value.
    NeedsRestart {
        name: String,
    },
    Param(ParamError),
    /// The injection is valid but has nothing to act on right now (no server left...).
    NotApplicable {
        reason: String,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnknownInjection { id, known } => write!(
                f,
                "unknown injection '{id}'; known injections: {}",
                known.join(", ")
            ),
            CommandError::NeedsRestart { name } => {
                write!(
                    f,
                    "parameter '{name}' changes the system's shape: restart the run to apply it"
                )
            }
            CommandError::Param(error) => error.fmt(f),
            CommandError::NotApplicable { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for CommandError {}

impl From<ParamError> for CommandError {
    fn from(error: ParamError) -> Self {
        CommandError::Param(error)
    }
}

/// A running lesson, as the view and runner see it.
pub trait LessonRun {
    /// Current simulated time.
    fn now(&self) -> SimTime;
    /// Handles every event due at or before `t` and moves the clock to `t`.
    fn run_until(&mut self, t: SimTime) -> u64;
    /// Like `run_until` but stops after `budget` events (chunked fast-forward).
    fn run_until_with_budget(&mut self, t: SimTime, budget: u64) -> ChunkOutcome;
    /// Handles at most `budget` events ("step").
    fn run_events(&mut self, budget: u64) -> u64;
    /// The time of the next pending event, if any.
    fn next_event_time(&mut self) -> Option<SimTime>;
    /// Events handled since the start.
    fn events_processed(&self) -> u64;
    /// The system's shape (stable for the whole run).
    fn topology(&self) -> &Topology;
    /// Writes the visible state into `snapshot`, reusing its allocations; at most
    /// `token_limit` request tokens.
    fn snapshot_into(&self, snapshot: &mut Snapshot, token_limit: usize);
    /// Counters, histograms and time series.
    fn metrics(&self) -> &RunMetrics;
    /// Notable events so far.
    fn log(&self) -> &EventLog;
    /// Requests currently in the system, counted by the model's own request table.
    fn live_requests(&self) -> u64;
    /// Applies a command at the current time.
    fn apply(&mut self, command: &LessonCommand) -> Result<(), CommandError>;

    /// Lesson-specific figures (cost, duplicates, dead letters...), in display order.
    fn extra_figures(&self) -> Vec<Figure>;

    /// The run's figures as the runner prints them.
    fn summary(&self) -> RunSummary {
        self.metrics().summary(self.now())
    }

    /// The conservation invariant: generated = completed + failed + rejected + dropped +
    /// in flight, where "in flight" is the model's live request count (not derived from
    /// the counters). `Err` describes the imbalance.
    fn check_conservation(&self) -> Result<(), String> {
        let counters = self.metrics().counters();
        let accounted = counters.completed
            + counters.failed
            + counters.rejected
            + counters.dropped
            + self.live_requests();
        if accounted == counters.generated {
            Ok(())
        } else {
            Err(format!(
                "conservation broken at {}: generated {} but completed {} + failed {} + \
                 rejected {} + dropped {} + in flight {} = {}",
                self.now(),
                counters.generated,
                counters.completed,
                counters.failed,
                counters.rejected,
                counters.dropped,
                self.live_requests(),
                accounted
            ))
        }
    }
}

/// What a lesson's model provides beyond handling events; [`Simulation`] of such a model
/// is a [`LessonRun`].
pub trait LessonModel: Model {
    fn topology(&self) -> &Topology;
    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize);
    /// The shared request table, metrics and log.
    fn core(&self) -> &ModelCore;
    fn metrics(&self) -> &RunMetrics {
        &self.core().metrics
    }
    fn log(&self) -> &EventLog {
        &self.core().log
    }
    /// Requests in the model's request table.
    fn live_requests(&self) -> u64 {
        self.core().requests.len() as u64
    }
    /// Lesson-specific figures; none by default.
    fn extra_figures(&self, _now: SimTime) -> Vec<Figure> {
        Vec::new()
    }
    fn apply(
        &mut self,
        command: &LessonCommand,
        scheduler: &mut Scheduler<Self::Event>,
    ) -> Result<(), CommandError>;
}

impl<M: LessonModel> LessonRun for Simulation<M> {
    fn now(&self) -> SimTime {
        Simulation::now(self)
    }
    fn run_until(&mut self, t: SimTime) -> u64 {
        Simulation::run_until(self, t)
    }
    fn run_until_with_budget(&mut self, t: SimTime, budget: u64) -> ChunkOutcome {
        Simulation::run_until_with_budget(self, t, budget)
    }
    fn run_events(&mut self, budget: u64) -> u64 {
        Simulation::run_events(self, budget)
    }
    fn next_event_time(&mut self) -> Option<SimTime> {
        self.scheduler.peek_time()
    }
    fn events_processed(&self) -> u64 {
        Simulation::events_processed(self)
    }
    fn topology(&self) -> &Topology {
        self.model.topology()
    }
    fn snapshot_into(&self, snapshot: &mut Snapshot, token_limit: usize) {
        self.model
            .snapshot_into(self.scheduler.now(), snapshot, token_limit)
    }
    fn metrics(&self) -> &RunMetrics {
        self.model.metrics()
    }
    fn log(&self) -> &EventLog {
        self.model.log()
    }
    fn live_requests(&self) -> u64 {
        self.model.live_requests()
    }
    fn extra_figures(&self) -> Vec<Figure> {
        self.model.extra_figures(self.scheduler.now())
    }
    fn apply(&mut self, command: &LessonCommand) -> Result<(), CommandError> {
        self.model.apply(command, &mut self.scheduler)
    }
}

/// A run's figures as one line of text with every float in its shortest exact form:
/// equal fingerprints mean bit-identical results (used to compare native and wasm runs).
pub fn fingerprint(summary: &RunSummary) -> String {
    serde_json::to_string(summary).expect("a summary always serialises")
}

/// The shared half of every model's `SetParam`: refuses unknown and restart-only
/// parameters, range-checks the value, stores it in `params` and logs the change. The
/// model then reacts to the returned parameter.
pub fn accept_live_param(
    params: &mut ParamValues,
    name: &str,
    value: ParamValue,
    now: SimTime,
    log: &mut EventLog,
) -> Result<&'static ParamSpec, CommandError> {
    let spec = params.spec(name)?;
    if spec.liveness == Liveness::Restart {
        return Err(CommandError::NeedsRestart {
            name: name.to_owned(),
        });
    }
    params.set(name, value)?;
    log.push(
        now,
        Notable::ParameterChanged {
            name: spec.name.to_owned(),
            value: value.to_string(),
        },
    );
    Ok(spec)
}

/// The refusal for an injection id a lesson does not declare.
pub fn unknown_injection(id: &str, injections: &[InjectionSpec]) -> CommandError {
    CommandError::UnknownInjection {
        id: id.to_owned(),
        known: injections.iter().map(|injection| injection.id).collect(),
    }
}
