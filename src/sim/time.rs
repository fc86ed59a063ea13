//! Simulated time as integer ticks (1 tick = 1 microsecond), so runs never drift with
//! floating-point rounding and equal times compare exactly.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// Ticks per simulated second.
pub const TICKS_PER_SECOND: u64 = 1_000_000;

/// A point in simulated time, counted in ticks (microseconds) since the run started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(u64);

/// A span of simulated time in ticks (microseconds). Never negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(u64);

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// A time later than any run reaches; used as "no deadline".
    pub const MAX: SimTime = SimTime(u64::MAX);

    pub const fn from_ticks(ticks: u64) -> Self {
        SimTime(ticks)
    }

    pub const fn ticks(self) -> u64 {
        self.0
    }

    /// Rounds to the nearest tick; negative or NaN seconds become zero.
    pub fn from_secs_f64(seconds: f64) -> Self {
        SimTime(seconds_to_ticks(seconds))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TICKS_PER_SECOND as f64
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration(0);

    pub const fn from_ticks(ticks: u64) -> Self {
        SimDuration(ticks)
    }

    pub const fn from_secs(seconds: u64) -> Self {
        SimDuration(seconds * TICKS_PER_SECOND)
    }

    pub const fn from_millis(millis: u64) -> Self {
        SimDuration(millis * (TICKS_PER_SECOND / 1000))
    }

    /// Rounds to the nearest tick; negative or NaN seconds become zero, huge values saturate.
    pub fn from_secs_f64(seconds: f64) -> Self {
        SimDuration(seconds_to_ticks(seconds))
    }

    pub const fn ticks(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TICKS_PER_SECOND as f64
    }
}

fn seconds_to_ticks(seconds: f64) -> u64 {
    if seconds.is_nan() || seconds <= 0.0 {
        return 0;
    }
    // Round half up by adding 0.5: identical on every target, and unlike `f64::round`
    // (a library call on baseline x86_64) it compiles to two instructions. `as`
    // saturates at u64::MAX for values too large.
    (seconds * TICKS_PER_SECOND as f64 + 0.5) as u64
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    /// Saturates at `SimTime::MAX` rather than wrapping.
    fn add(self, rhs: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, rhs: SimDuration) {
        *self = *self + rhs;
    }
}

impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    /// Saturates at zero: a duration is never negative.
    fn sub(self, rhs: SimTime) -> SimDuration {
        self.saturating_since(rhs)
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, rhs: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(rhs.0))
    }
}

impl serde::Serialize for SimTime {
    /// As seconds (a JSON number), the unit every report uses.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_secs_f64())
    }
}

impl serde::Serialize for SimDuration {
    /// As seconds (a JSON number).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_secs_f64())
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_trip_to_the_nearest_microsecond() {
        assert_eq!(SimTime::from_secs_f64(1.5).ticks(), 1_500_000);
        assert_eq!(SimDuration::from_secs_f64(0.000_000_6).ticks(), 1);
        assert_eq!(SimDuration::from_secs_f64(2.25).as_secs_f64(), 2.25);
    }

    #[test]
    fn negative_nan_and_huge_inputs_are_clamped() {
        assert_eq!(SimDuration::from_secs_f64(-3.0), SimDuration::ZERO);
        assert_eq!(SimDuration::from_secs_f64(f64::NAN), SimDuration::ZERO);
        assert_eq!(SimDuration::from_secs_f64(1e300).ticks(), u64::MAX);
        assert_eq!(SimTime::MAX + SimDuration::from_secs(1), SimTime::MAX);
    }

    #[test]
    fn durations_between_times_never_go_negative() {
        let early = SimTime::from_ticks(5);
        let late = SimTime::from_ticks(9);
        assert_eq!(late - early, SimDuration::from_ticks(4));
        assert_eq!(early - late, SimDuration::ZERO);
    }
}
