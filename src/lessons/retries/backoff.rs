//! The retry strategies of the `retries` lesson as a small pure type: how long a client
//! sleeps before its next attempt, after the formulas of the AWS Architecture blog
//! "Exponential Backoff and Jitter" (Marc Brooker, 2015).
//!
//! With `failures` = failed attempts so far (1 before the first retry), as in the blog's
//! published simulator:
//! - ceiling `v = min(cap, base · 2^failures)`;
//! - exponential (no jitter): `sleep = v`;
//! - equal jitter: `sleep = v/2 + U(0, v/2)`;
//! - full jitter: `sleep = U(0, v)`;
//! - decorrelated jitter: `sleep = min(cap, U(base, 3 · previous_sleep))`, with the
//!   previous sleep starting at `base`;
//! - immediate: `sleep = 0` (retry at once); no retry: the first failure is final.

use crate::sim::random::SimRng;

/// How a client retries a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    /// The first failure is final.
    NoRetry,
    /// Retry at once, no sleep.
    Immediate,
    /// Exponential backoff without jitter: sleep exactly `v`.
    Exponential,
    /// Sleep `U(0, v)`.
    FullJitter,
    /// Sleep `v/2 + U(0, v/2)`.
    EqualJitter,
    /// Sleep `min(cap, U(base, 3 · previous))`.
    DecorrelatedJitter,
}

impl Strategy {
    /// Every strategy, in the order the lesson lists them.
    pub const ALL: [Strategy; 6] = [
        Strategy::NoRetry,
        Strategy::Immediate,
        Strategy::Exponential,
        Strategy::FullJitter,
        Strategy::EqualJitter,
        Strategy::DecorrelatedJitter,
    ];

    /// The word used for the `strategy` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::NoRetry => "none",
            Strategy::Immediate => "immediate",
            Strategy::Exponential => "exponential",
            Strategy::FullJitter => "full-jitter",
            Strategy::EqualJitter => "equal-jitter",
            Strategy::DecorrelatedJitter => "decorrelated-jitter",
        }
    }

    /// The strategy named by a `strategy` parameter word.
    pub fn from_word(word: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// Whether a failed attempt is ever retried.
    pub fn retries(self) -> bool {
        self != Strategy::NoRetry
    }
}

/// A strategy with its base and cap (in seconds, or any one unit used consistently).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub strategy: Strategy,
    pub base: f64,
    pub cap: f64,
}

impl Backoff {
    /// The exponential ceiling `v = min(cap, base · 2^failures)` (exact: a power of two
    /// scales the mantissa's exponent only).
    pub fn ceiling(&self, failures: u32) -> f64 {
        let exponent = failures.min(2000) as i32;
        self.cap.min(libm::ldexp(self.base, exponent))
    }

    /// The interval the sleep after `failures` failed attempts is drawn from, `(low,
    /// high)` (equal for the deterministic strategies); `previous` is the last sleep of
    /// this call (`base` before the first retry), used by decorrelated jitter only.
    /// `None` when the strategy does not retry.
    pub fn range(&self, failures: u32, previous: f64) -> Option<(f64, f64)> {
        let v = self.ceiling(failures);
        match self.strategy {
            Strategy::NoRetry => None,
            Strategy::Immediate => Some((0.0, 0.0)),
            Strategy::Exponential => Some((v, v)),
            Strategy::FullJitter => Some((0.0, v)),
            Strategy::EqualJitter => Some((v / 2.0, v)),
            Strategy::DecorrelatedJitter => {
                let high = 3.0 * previous.max(self.base);
                Some((self.cap.min(self.base), self.cap.min(high)))
            }
        }
    }

    /// The sleep before the next attempt after `failures` failed attempts (see
    /// [`Backoff::range`] for `previous`). Jittered strategies draw one word from `rng`;
    /// the others draw nothing. `None` when the strategy does not retry.
    pub fn sleep(&self, failures: u32, previous: f64, rng: &mut SimRng) -> Option<f64> {
        let v = self.ceiling(failures);
        Some(match self.strategy {
            Strategy::NoRetry => return None,
            Strategy::Immediate => 0.0,
            Strategy::Exponential => v,
            Strategy::FullJitter => rng.uniform(0.0, v),
            Strategy::EqualJitter => v / 2.0 + rng.uniform(0.0, v / 2.0),
            Strategy::DecorrelatedJitter => self
                .cap
                .min(rng.uniform(self.base, 3.0 * previous.max(self.base))),
        })
    }
}
