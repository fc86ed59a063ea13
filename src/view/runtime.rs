//! A running lesson as the page holds it: the boxed `LessonRun`, the reusable snapshot,
//! and the frame-stepping rules (how far one animation frame advances simulated time,
//! and how much work one frame may do so the page never freezes).

use crate::lessons::params::{ParamKind, ParamValue};
use crate::lessons::run::{CommandError, LessonCommand, LessonRun};
use crate::route::LessonRoute;
use crate::sim::snapshot::Snapshot;
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
}

/// The other side of a comparison.
pub struct Partner {
    /// The compared parameter's value on this side.
    pub label: &'static str,
    pub run: Box<dyn LessonRun>,
    pub snapshot: Snapshot,
}

impl LessonRuntime {
    pub fn new(route: &LessonRoute) -> Self {
        let spec = route.spec();
        let run = spec.start(&route.params, route.seed);
        let mut runtime = LessonRuntime {
            route: route.clone(),
            run,
            snapshot: Snapshot::default(),
            horizon: SimTime::ZERO + spec.default_duration,
            partner: None,
        };
        runtime.refresh();
        runtime
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
        let now = self.run.now();
        if let Some(partner) = &mut self.partner {
            partner.run.run_until(now);
            partner
                .run
                .snapshot_into(&mut partner.snapshot, TOKEN_LIMIT);
        }
    }

    /// Advances by one frame of `real_seconds` at `speed`.
    pub fn play_frame(&mut self, real_seconds: f64, speed: f64) {
        let seconds = real_seconds.clamp(0.0, LONGEST_FRAME_SECONDS) * speed;
        let target = self.run.now() + SimDuration::from_secs_f64(seconds);
        self.run.run_until_with_budget(target, FRAME_EVENT_BUDGET);
        self.refresh();
    }

    /// One chunk of "run to end". Returns true once the horizon is reached.
    pub fn fast_forward_frame(&mut self) -> bool {
        let outcome = self
            .run
            .run_until_with_budget(self.horizon, FAST_FORWARD_BUDGET);
        self.refresh();
        outcome.reached || self.run.now() >= self.horizon
    }

    /// Handles exactly the next event ("step").
    pub fn step(&mut self) {
        self.run.run_events(1);
        self.refresh();
    }

    /// Applies a command to the run and, in a comparison, to the partner at the same
    /// simulated time (its own refusal, if any, is the same as the main run's).
    pub fn apply(&mut self, command: &LessonCommand) -> Result<(), CommandError> {
        let result = self.run.apply(command);
        if let Some(partner) = &mut self.partner {
            partner.run.run_until(self.run.now());
            let _ = partner.run.apply(command);
        }
        self.refresh();
        result
    }
}
