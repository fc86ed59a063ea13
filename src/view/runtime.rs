//! A running lesson as the page holds it: the boxed `LessonRun`, the reusable snapshot,
//! and the frame-stepping rules (how far one animation frame advances simulated time,
//! and how much work one frame may do so the page never freezes).

use crate::lessons::journal::{replay, Journal};
use crate::lessons::params::{ParamKind, ParamValue, ParamValues};
use crate::lessons::run::{CommandError, LessonCommand, LessonRun};
use crate::route::{LessonRoute, Scheduled};
use crate::sim::snapshot::{LoggedEvent, Snapshot};
use crate::sim::time::{SimDuration, SimTime};

/// Most events one animation frame may handle while playing (keeps frames under ~10 ms
/// even at 100× on a busy lesson; the clock then lags rather than the page).
pub const FRAME_EVENT_BUDGET: u64 = 50_000;
/// Most events one frame may handle during "run to end" (about 20–40 ms of work).
pub const FAST_FORWARD_BUDGET: u64 = 400_000;
/// Most request tokens drawn.
pub const TOKEN_LIMIT: usize = 400;
/// A frame longer than this (tab in background, debugger) advances only this much.
const LONGEST_FRAME_SECONDS: f64 = 0.1;

/// How many earlier positions "step back" remembers.
const HISTORY_LIMIT: usize = 600;

/// Playback speeds offered, in simulated seconds per real second.
pub const SPEEDS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0];

pub struct LessonRuntime {
    pub route: LessonRoute,
    pub run: Box<dyn LessonRun>,
    pub snapshot: Snapshot,
    /// Where "run to end" stops: the lesson's default duration.
    pub horizon: SimTime,
    /// In a side-by-side comparison: the other variant, same seed, kept at the same
    /// simulated time and given the same commands.
    pub partner: Option<Partner>,
    /// The parameters the run started with (live changes are in the journal).
    pub start_params: ParamValues,
    /// Every accepted command, so any earlier instant can be rebuilt exactly.
    pub journal: Journal,
    /// Positions before recent steps and frames, newest last ("step back").
    history: Vec<SimTime>,
    /// The notable events of the furthest point this run reached (timeline markers;
    /// after a seek back they include the recorded future).
    pub markers: Vec<LoggedEvent>,
    /// Scheduled commands (from the link) the model refused, in words.
    pub schedule_problems: Vec<String>,
}

/// The other side of a comparison.
pub struct Partner {
    /// The compared parameter's value on this side.
    pub label: &'static str,
    pub run: Box<dyn LessonRun>,
    pub snapshot: Snapshot,
    params: ParamValues,
    /// Journal entries already applied to this side.
    applied: usize,
}

impl Partner {
    /// Moves this side to `t`, applying the journal's commands at their times. The
    /// journal's event counts belong to the main run, so this side goes by time alone.
    fn catch_up(&mut self, journal: &Journal, t: SimTime) {
        for entry in journal.entries().iter().skip(self.applied) {
            if entry.at > t {
                break;
            }
            self.run.run_until(entry.at);
            let _ = self.run.apply(&entry.command);
            self.applied += 1;
        }
        self.run.run_until(t);
    }
}

impl LessonRuntime {
    /// A run of `route` at time zero, with the route's schedule in its journal (the
    /// timeline shows what the schedule will do before it happens).
    pub fn new(route: &LessonRoute) -> Self {
        let spec = route.spec();
        let run = spec.start(&route.params, route.seed);
        let mut runtime = LessonRuntime {
            route: route.clone(),
            run,
            snapshot: Snapshot::default(),
            horizon: SimTime::ZERO + spec.default_duration,
            partner: None,
            start_params: route.params.clone(),
            journal: Journal::default(),
            history: Vec::new(),
            markers: Vec::new(),
            schedule_problems: Vec::new(),
        };
        if !route.schedule.is_empty() {
            let (journal, ahead, refusals) = Journal::from_schedule(
                spec,
                &route.params,
                route.seed,
                route
                    .schedule
                    .iter()
                    .map(|entry| (entry.at, &entry.command)),
            );
            runtime.run = journal.start(spec, &route.params, route.seed);
            runtime.journal = journal;
            runtime.markers = ahead.log().entries().to_vec();
            runtime.schedule_problems = refusals
                .into_iter()
                .map(|(at, problem)| {
                    format!(
                        "The link's command at {} s was not applied: {problem}.",
                        at.as_secs_f64()
                    )
                })
                .collect();
            runtime.sync_schedule();
        }
        runtime.refresh();
        runtime
    }

    /// The parameters in force now (the start values plus live changes so far).
    pub fn current_params(&self) -> ParamValues {
        self.journal.params_at(&self.start_params, self.run.now())
    }

    /// The route's schedule follows the journal, so the address always reproduces the run.
    fn sync_schedule(&mut self) {
        self.route.schedule = self
            .journal
            .commands()
            .map(|(at, command)| Scheduled {
                at,
                command: command.clone(),
            })
            .collect();
    }

    /// A fresh run of `route`, comparing side by side if `comparing`.
    pub fn rebuilt(route: &LessonRoute, comparing: bool) -> Self {
        let mut runtime = LessonRuntime::new(route);
        if comparing {
            runtime.set_comparing(true);
        }
        runtime
    }

    /// Starts (or stops) a side-by-side comparison: the partner is the same lesson and
    /// seed with the lesson's compared parameter set to its next option, from time zero;
    /// the main run restarts too so both share every arrival.
    pub fn set_comparing(&mut self, on: bool) {
        let spec = self.route.spec();
        let partner = on.then(|| {
            let name = spec.compare?;
            let ParamKind::Choice { options, .. } = self.route.params.spec(name).ok()?.kind else {
                return None;
            };
            let current = self.route.params.choice(name);
            let other = *options.iter().find(|option| **option != current)?;
            let mut params = self.route.params.clone();
            params.set(name, ParamValue::Choice(other)).ok()?;
            Some(Partner {
                label: other,
                run: spec.start(&params, self.route.seed),
                snapshot: Snapshot::default(),
                params,
                applied: 0,
            })
        });
        *self = LessonRuntime {
            partner: partner.flatten(),
            ..LessonRuntime::new(&self.route)
        };
        self.refresh();
    }

    /// Re-reads the snapshots from the models, keeping the partner at the same time.
    pub fn refresh(&mut self) {
        self.run.snapshot_into(&mut self.snapshot, TOKEN_LIMIT);
        // The log only grows and a replay reproduces it, so a longer log extends the
        // markers.
        let log = self.run.log().entries();
        if log.len() > self.markers.len() {
            self.markers.extend_from_slice(&log[self.markers.len()..]);
        }
        let now = self.run.now();
        if let Some(partner) = &mut self.partner {
            partner.catch_up(&self.journal, now);
            partner
                .run
                .snapshot_into(&mut partner.snapshot, TOKEN_LIMIT);
        }
    }

    /// Advances by one frame of `real_seconds` at `speed`, applying journalled commands
    /// on the way (after a seek back, the recorded future plays again).
    pub fn play_frame(&mut self, real_seconds: f64, speed: f64) {
        let seconds = real_seconds.clamp(0.0, LONGEST_FRAME_SECONDS) * speed;
        let target = self.run.now() + SimDuration::from_secs_f64(seconds);
        self.remember();
        self.journal
            .advance(self.run.as_mut(), target, FRAME_EVENT_BUDGET);
        self.refresh();
    }

    /// One chunk of "run to end". Returns true once the horizon is reached.
    pub fn fast_forward_frame(&mut self) -> bool {
        self.remember();
        let outcome = self
            .journal
            .advance(self.run.as_mut(), self.horizon, FAST_FORWARD_BUDGET);
        self.refresh();
        outcome.reached || self.run.now() >= self.horizon
    }

    /// Handles exactly the next event ("step"), or the next journalled command if one
    /// comes first.
    pub fn step(&mut self) {
        self.remember();
        match self.run.next_event_time() {
            Some(next) => {
                self.journal.advance(self.run.as_mut(), next, 1);
            }
            None => {
                self.run.run_events(1);
            }
        }
        self.refresh();
    }

    /// Whether "step back" has somewhere to go.
    pub fn can_step_back(&self) -> bool {
        !self.history.is_empty()
    }

    /// Goes back to where the run was before the last step or frame.
    pub fn step_back(&mut self) {
        if let Some(previous) = self.history.pop() {
            self.rebuild_at(previous);
        }
    }

    /// Shows the run exactly as it was (or will be, with the recorded commands) at `t`:
    /// rebuilt from the seed, the start parameters and the journal.
    pub fn seek(&mut self, t: SimTime) {
        let t = t.min(self.horizon);
        if t == self.run.now() {
            return;
        }
        self.remember();
        if t > self.run.now() {
            self.journal.advance(self.run.as_mut(), t, u64::MAX);
            self.refresh();
        } else {
            self.rebuild_at(t);
        }
    }

    fn rebuild_at(&mut self, t: SimTime) {
        let spec = self.route.spec();
        self.run = replay(spec, &self.start_params, self.route.seed, &self.journal, t);
        if let Some(partner) = &mut self.partner {
            partner.run = spec.start(&partner.params, self.route.seed);
            partner.applied = 0;
            partner.catch_up(&self.journal, t);
        }
        self.refresh();
    }

    fn remember(&mut self) {
        let now = self.run.now();
        if self.history.last() != Some(&now) {
            if self.history.len() == HISTORY_LIMIT {
                self.history.remove(0);
            }
            self.history.push(now);
        }
    }

    /// Applies a command to the run and records it in the journal; in a comparison the
    /// partner gets it at the same simulated time (its own refusal, if any, is the same
    /// as the main run's).
    pub fn apply(&mut self, command: &LessonCommand) -> Result<(), CommandError> {
        let result = self.run.apply(command);
        if result.is_ok() {
            self.journal.record(self.run.as_ref(), command.clone());
            // The recorded future is gone; so are its markers.
            self.markers = self.run.log().entries().to_vec();
            self.sync_schedule();
        }
        // The partner picks the command up from the journal in `refresh`.
        self.refresh();
        result
    }
}
