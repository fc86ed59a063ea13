//! The circuit breaker state machine of resilience4j, as a pure type the lesson's model
//! (and its tests) drive call by call: ask for permission, then record the outcome.
//!
//! Semantics follow resilience4j's `CircuitBreakerConfig` documentation and its
//! `CircuitBreakerStateMachine` / `CircuitBreakerMetrics` implementation:
//! - **CLOSED**: every call is permitted; each finished call is recorded in a sliding
//!   window, either count-based (the last `window_size` calls) or time-based (calls that
//!   finished in the last `window_size` one-second buckets, the current one included).
//!   A call is *slow* when it took strictly longer than `slow_call_duration`; a failed
//!   call can be slow too. After each record, once the window holds at least
//!   `minimum_calls` calls (for a count-based window, `min(minimum_calls, window_size)`),
//!   the breaker opens if the failure rate OR the slow-call rate (both in percent of the
//!   calls in the window) is at or above its threshold.
//! - **OPEN**: calls are rejected at once (resilience4j's `CallNotPermittedException`)
//!   for `wait_in_open`. The first call asked for strictly after the wait moves the
//!   breaker to HALF_OPEN (the library default: `automaticTransitionFromOpenToHalfOpen`
//!   is off, so the transition happens lazily on that call) and is itself a trial call.
//! - **HALF_OPEN**: exactly `permitted_in_half_open` trial calls are permitted, the rest
//!   rejected. Outcomes go to a fresh count-based window of that size with minimum
//!   `min(minimum_calls, permitted_in_half_open)`: at or above a threshold → OPEN again;
//!   below both → CLOSED with an empty window.
//! - Outcomes recorded while OPEN (calls that started before it opened) change nothing:
//!   the open state's metrics are discarded on the way to HALF_OPEN.

use std::collections::VecDeque;

use crate::sim::time::{SimDuration, SimTime, TICKS_PER_SECOND};

/// The three states, as resilience4j names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::Open => "OPEN",
            BreakerState::HalfOpen => "HALF_OPEN",
        }
    }
}

/// How the CLOSED state's sliding window is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// The last `window_size` calls.
    CountBased,
    /// Calls that finished in the last `window_size` seconds.
    TimeBased,
}

/// The breaker's configuration, in resilience4j's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Percent of failed calls at or above which the breaker opens (library default 50).
    pub failure_rate_threshold: f64,
    /// Percent of slow calls at or above which the breaker opens (library default 100).
    pub slow_call_rate_threshold: f64,
    /// A call slower than this is slow (library default 60 s).
    pub slow_call_duration: SimDuration,
    pub window: WindowKind,
    /// Calls (count-based) or seconds (time-based); library default 100.
    pub window_size: u32,
    /// Calls the window must hold before a rate is computed (library default 100).
    pub minimum_calls: u32,
    /// How long OPEN rejects calls (library default 60 s).
    pub wait_in_open: SimDuration,
    /// Trial calls in HALF_OPEN (library default 10).
    pub permitted_in_half_open: u32,
}

/// Counts of one window (or one time bucket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub calls: u32,
    pub failed: u32,
    pub slow: u32,
}

impl WindowCounts {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failed += failed as u32;
        self.slow += slow as u32;
    }

    fn remove(&mut self, other: WindowCounts) {
        self.calls -= other.calls;
        self.failed -= other.failed;
        self.slow -= other.slow;
    }

    /// Failure rate in percent (0 for an empty window).
    pub fn failure_rate(&self) -> f64 {
        percent(self.failed, self.calls)
    }

    /// Slow-call rate in percent (0 for an empty window).
    pub fn slow_rate(&self) -> f64 {
        percent(self.slow, self.calls)
    }
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A sliding window of call outcomes with running totals.
#[derive(Clone, Debug)]
enum Window {
    /// The last `size` outcomes, oldest first.
    Count {
        size: u32,
        outcomes: VecDeque<WindowCounts>,
        totals: WindowCounts,
    },
    /// One bucket per second that had calls: (second since start, counts), oldest first.
    Time {
        seconds: u32,
        buckets: VecDeque<(u64, WindowCounts)>,
        totals: WindowCounts,
    },
}

impl Window {
    fn new(kind: WindowKind, size: u32) -> Self {
        match kind {
            WindowKind::CountBased => Window::Count {
                size: size.max(1),
                outcomes: VecDeque::new(),
                totals: WindowCounts::default(),
            },
            WindowKind::TimeBased => Window::Time {
                seconds: size.max(1),
                buckets: VecDeque::new(),
                totals: WindowCounts::default(),
            },
        }
    }

    fn record(&mut self, now: SimTime, failed: bool, slow: bool) {
        self.evict(now);
        match self {
            Window::Count {
                size,
                outcomes,
                totals,
            } => {
                if outcomes.len() as u32 == *size {
                    let oldest = outcomes.pop_front().expect("a full window is not empty");
                    totals.remove(oldest);
                }
                let mut one = WindowCounts::default();
                one.add(failed, slow);
                outcomes.push_back(one);
                totals.add(failed, slow);
            }
            Window::Time {
                buckets, totals, ..
            } => {
                let second = now.ticks() / TICKS_PER_SECOND;
                match buckets.back_mut() {
                    Some((last, counts)) if *last == second => counts.add(failed, slow),
                    _ => {
                        let mut counts = WindowCounts::default();
                        counts.add(failed, slow);
                        buckets.push_back((second, counts));
                    }
                }
                totals.add(failed, slow);
            }
        }
    }

    /// Drops time buckets that slid out of the window at `now` (count windows: nothing).
    fn evict(&mut self, now: SimTime) {
        if let Window::Time {
            seconds,
            buckets,
            totals,
        } = self
        {
            let second = now.ticks() / TICKS_PER_SECOND;
            while let Some(&(oldest, counts)) = buckets.front() {
                if oldest + u64::from(*seconds) <= second {
                    buckets.pop_front();
                    totals.remove(counts);
                } else {
                    break;
                }
            }
        }
    }

    fn totals(&self) -> WindowCounts {
        match self {
            Window::Count { totals, .. } | Window::Time { totals, .. } => *totals,
        }
    }
}

/// What the breaker answered when asked to let a call through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Permitted,
    /// Rejected without calling (OPEN, or HALF_OPEN with no trial calls left).
    Rejected,
}

/// A change of state and why it happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub at: SimTime,
    /// The window's counts that decided it (empty for OPEN → HALF_OPEN).
    pub counts: WindowCounts,
}

/// A circuit breaker in one state with its window.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    window: Window,
    /// The minimum calls of the current window.
    minimum_calls: u32,
    opened_at: SimTime,
    half_open_permits_left: u32,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        let mut breaker = CircuitBreaker {
            config,
            state: BreakerState::Closed,
            window: Window::new(config.window, config.window_size),
            minimum_calls: 0,
            opened_at: SimTime::ZERO,
            half_open_permits_left: 0,
        };
        breaker.minimum_calls = breaker.closed_minimum();
        breaker
    }

    fn closed_minimum(&self) -> u32 {
        match self.config.window {
            WindowKind::CountBased => self.config.minimum_calls.min(self.config.window_size),
            WindowKind::TimeBased => self.config.minimum_calls,
        }
        .max(1)
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The counts of the current state's window as of `now` (time buckets that slid out
    /// are not counted).
    pub fn window_counts(&self, now: SimTime) -> WindowCounts {
        let mut window = self.window.clone();
        window.evict(now);
        window.totals()
    }

    /// When an OPEN breaker starts letting a trial call through (None unless OPEN).
    pub fn open_until(&self) -> Option<SimTime> {
        (self.state == BreakerState::Open).then(|| self.opened_at + self.config.wait_in_open)
    }

    /// Asks to let one call through at `now`. May move OPEN → HALF_OPEN (returned).
    pub fn try_acquire(&mut self, now: SimTime) -> (Permission, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Permission::Permitted, None),
            BreakerState::Open => {
                if now > self.opened_at + self.config.wait_in_open {
                    let transition = self.enter(BreakerState::HalfOpen, now);
                    let (permission, _) = self.try_acquire(now);
                    (permission, Some(transition))
                } else {
                    (Permission::Rejected, None)
                }
            }
            BreakerState::HalfOpen => {
                if self.half_open_permits_left > 0 {
                    self.half_open_permits_left -= 1;
                    (Permission::Permitted, None)
                } else {
                    (Permission::Rejected, None)
                }
            }
        }
    }

    /// Records a permitted call's outcome at `now`; `duration` is how long it took. May
    /// move CLOSED → OPEN, HALF_OPEN → OPEN or HALF_OPEN → CLOSED (returned).
    pub fn record(
        &mut self,
        now: SimTime,
        failed: bool,
        duration: SimDuration,
    ) -> Option<Transition> {
        if self.state == BreakerState::Open {
            return None;
        }
        let slow = duration > self.config.slow_call_duration;
        self.window.record(now, failed, slow);
        let counts = self.window.totals();
        if counts.calls < self.minimum_calls {
            return None;
        }
        let exceeded = counts.failure_rate() >= self.config.failure_rate_threshold
            || counts.slow_rate() >= self.config.slow_call_rate_threshold;
        let mut transition = if exceeded {
            Some(self.enter(BreakerState::Open, now))
        } else if self.state == BreakerState::HalfOpen {
            Some(self.enter(BreakerState::Closed, now))
        } else {
            None
        };
        if let Some(transition) = transition.as_mut() {
            transition.counts = counts;
        }
        transition
    }

    fn enter(&mut self, to: BreakerState, now: SimTime) -> Transition {
        let from = self.state;
        self.state = to;
        match to {
            BreakerState::Closed => {
                self.window = Window::new(self.config.window, self.config.window_size);
                self.minimum_calls = self.closed_minimum();
            }
            BreakerState::Open => self.opened_at = now,
            BreakerState::HalfOpen => {
                let permitted = self.config.permitted_in_half_open.max(1);
                self.window = Window::new(WindowKind::CountBased, permitted);
                self.minimum_calls = self.config.minimum_calls.min(permitted).max(1);
                self.half_open_permits_left = permitted;
            }
        }
        Transition {
            from,
            to,
            at: now,
            counts: WindowCounts::default(),
        }
    }
}
