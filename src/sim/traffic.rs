//! Traffic shapes (steady, ramp, spike, bursts, steps) and the Poisson arrival process
//! that follows them, with a runtime multiplier for "traffic spike" injections.
//!
//! A steady shape is a homogeneous Poisson process: exactly one exponential draw per
//! arrival. Time-varying shapes are sampled by thinning (P. A. W. Lewis & G. S. Shedler,
//! "Simulation of nonhomogeneous Poisson processes by thinning", Naval Research Logistics
//! Quarterly 26(3), 1979) against a piecewise-constant bound: every shape splits time into
//! segments and reports, for a time `t`, the highest rate of the segment containing `t`
//! and where that segment ends ([`TrafficShape::segment_bound`]). A candidate that falls
//! past its segment's end is discarded and sampling restarts at the end with the next
//! segment's bound, which is exact because a Poisson process is memoryless. So a 100×
//! spike costs nothing extra during the baseline, and piecewise-constant shapes accept
//! every candidate without a second draw.
//!
//! Arrival times are whole ticks: each gap is rounded to the nearest tick with
//! [`SimDuration::from_secs_f64`]. Gaps of 0 ticks (ties) can happen; rates are capped at
//! [`MAX_RATE`] so that every call still moves time on with probability ≥ e^−½ ≈ 0.61.

use super::random::SimRng;
use super::time::{SimDuration, SimTime};

/// The highest rate, in requests per second, that a shape may ask for and that the
/// arrival process will ever use (with a multiplier, effective rates are capped here):
/// one arrival per tick on average.
///
/// Rounding each gap to the nearest tick makes the mean gap, for a true mean of `m` ticks,
/// `1/(2·sinh(1/(2m)))` ticks instead of `m`: the effective rate is higher by about
/// `1/(24m²)`, i.e. 4e-8 at 1 000/s, 4e-6 at 10 000/s, 4e-4 at 100 000/s and 4.2% at this
/// cap. Beyond it, time would advance ever more rarely (at 10⁷/s, only once per ~150
/// arrivals), so the cap is what keeps the process progressing.
pub const MAX_RATE: f64 = 1_000_000.0;

/// The number of equal pieces a ramp is split into for thinning: within a piece the bound
/// is the piece's higher end, so 16/17 ≈ 94% of the candidates of a ramp from or to zero
/// are accepted (more for other ramps), instead of 50% with one bound for the whole ramp.
const RAMP_PIECES: u64 = 16;

/// An arrival rate over time, in requests per second. Build one with the checked
/// constructors ([`TrafficShape::steady`] etc.) or check a literal with
/// [`TrafficShape::validate`]; [`PoissonArrivals`] refuses invalid shapes.
#[derive(Clone, Debug, PartialEq)]
pub enum TrafficShape {
    /// A constant `rate`.
    Steady { rate: f64 },
    /// `from` until `start`, then linear to `to` at `end`, then `to` (needs start < end).
    Ramp {
        from: f64,
        to: f64,
        start: SimTime,
        end: SimTime,
    },
    /// `base`, except `peak` during [start, start + duration).
    Spike {
        base: f64,
        peak: f64,
        start: SimTime,
        duration: SimDuration,
    },
    /// `peak` during the first `burst` of every `period` (periods start at t = 0 and at
    /// every multiple of `period`), `base` for the rest of it.
    Bursts {
        base: f64,
        peak: f64,
        period: SimDuration,
        burst: SimDuration,
    },
    /// Piecewise constant: rate `r_i` from time `t_i` until the next step's time; 0 before
    /// the first step (and forever for no steps). Times strictly increasing.
    Steps(Vec<(SimTime, f64)>),
}

/// Why a traffic shape or multiplier was refused: the field at fault and a sentence naming
/// it, the allowed range and the value given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficError {
    /// The offending field, e.g. `"peak"` or `"steps"`.
    pub field: &'static str,
    /// A complete sentence for people, e.g. "Spike peak must be a finite rate in
    /// [0, 1000000] requests per second, got NaN".
    pub message: String,
}

impl std::fmt::Display for TrafficError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TrafficError {}

fn check_rate(shape: &str, field: &'static str, rate: f64) -> Result<(), TrafficError> {
    if rate.is_finite() && (0.0..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(TrafficError {
            field,
            message: format!(
                "{shape} {field} must be a finite rate in [0, {MAX_RATE}] requests per second, got {rate}"
            ),
        })
    }
}

fn check_positive(
    shape: &str,
    field: &'static str,
    duration: SimDuration,
) -> Result<(), TrafficError> {
    if duration > SimDuration::ZERO {
        Ok(())
    } else {
        Err(TrafficError {
            field,
            message: format!("{shape} {field} must be longer than 0 s (at least 1 µs), got 0 s"),
        })
    }
}

/// The ramp's rate `offset` ticks into a ramp `length` ticks long. Monotone in `offset`,
/// so a piece's rates lie between those at its ends.
fn ramp_rate(from: f64, to: f64, offset: u64, length: u64) -> f64 {
    from + (to - from) * (offset as f64 / length as f64)
}

impl TrafficShape {
    /// A constant rate; `rate` in [0, MAX_RATE].
    pub fn steady(rate: f64) -> Result<TrafficShape, TrafficError> {
        let shape = TrafficShape::Steady { rate };
        shape.validate().map(|()| shape)
    }

    /// A linear ramp from `from` at `start` to `to` at `end`; rates in [0, MAX_RATE],
    /// `start < end`.
    pub fn ramp(
        from: f64,
        to: f64,
        start: SimTime,
        end: SimTime,
    ) -> Result<TrafficShape, TrafficError> {
        let shape = TrafficShape::Ramp {
            from,
            to,
            start,
            end,
        };
        shape.validate().map(|()| shape)
    }

    /// `peak` during [start, start + duration), `base` otherwise; rates in [0, MAX_RATE],
    /// `duration > 0`.
    pub fn spike(
        base: f64,
        peak: f64,
        start: SimTime,
        duration: SimDuration,
    ) -> Result<TrafficShape, TrafficError> {
        let shape = TrafficShape::Spike {
            base,
            peak,
            start,
            duration,
        };
        shape.validate().map(|()| shape)
    }

    /// `peak` for the first `burst` of every `period`, `base` otherwise; rates in
    /// [0, MAX_RATE], `period > 0`, `0 < burst ≤ period`.
    pub fn bursts(
        base: f64,
        peak: f64,
        period: SimDuration,
        burst: SimDuration,
    ) -> Result<TrafficShape, TrafficError> {
        let shape = TrafficShape::Bursts {
            base,
            peak,
            period,
            burst,
        };
        shape.validate().map(|()| shape)
    }

    /// Piecewise-constant steps `(from time, rate)`; rates in [0, MAX_RATE], times
    /// strictly increasing. No steps means no traffic.
    pub fn steps(steps: Vec<(SimTime, f64)>) -> Result<TrafficShape, TrafficError> {
        let shape = TrafficShape::Steps(steps);
        shape.validate().map(|()| shape)
    }

    /// Checks every rate is finite and in [0, MAX_RATE], every span that needs one is
    /// positive (ramp `start < end`, spike `duration`, bursts `period` and `burst`, with
    /// `burst ≤ period`) and steps are in strictly increasing time order. The error names
    /// the first field at fault.
    pub fn validate(&self) -> Result<(), TrafficError> {
        match self {
            TrafficShape::Steady { rate } => check_rate("Steady", "rate", *rate),
            TrafficShape::Ramp {
                from,
                to,
                start,
                end,
            } => {
                check_rate("Ramp", "from", *from)?;
                check_rate("Ramp", "to", *to)?;
                if end <= start {
                    return Err(TrafficError {
                        field: "end",
                        message: format!(
                            "Ramp end must be later than its start ({start}), got {end}"
                        ),
                    });
                }
                Ok(())
            }
            TrafficShape::Spike {
                base,
                peak,
                duration,
                ..
            } => {
                check_rate("Spike", "base", *base)?;
                check_rate("Spike", "peak", *peak)?;
                check_positive("Spike", "duration", *duration)
            }
            TrafficShape::Bursts {
                base,
                peak,
                period,
                burst,
            } => {
                check_rate("Bursts", "base", *base)?;
                check_rate("Bursts", "peak", *peak)?;
                check_positive("Bursts", "period", *period)?;
                check_positive("Bursts", "burst", *burst)?;
                if burst > period {
                    return Err(TrafficError {
                        field: "burst",
                        message: format!(
                            "Bursts burst must be at most the period ({period}), got {burst}"
                        ),
                    });
                }
                Ok(())
            }
            TrafficShape::Steps(steps) => {
                for (index, (_, rate)) in steps.iter().enumerate() {
                    check_rate("Steps", "steps", *rate).map_err(|_| TrafficError {
                        field: "steps",
                        message: format!(
                            "Steps rate of step {index} must be a finite rate in [0, {MAX_RATE}] requests per second, got {rate}"
                        ),
                    })?;
                }
                for (index, pair) in steps.windows(2).enumerate() {
                    if pair[1].0 <= pair[0].0 {
                        return Err(TrafficError {
                            field: "steps",
                            message: format!(
                                "Steps times must be strictly increasing, but step {} starts at {} and step {} at {}",
                                index,
                                pair[0].0,
                                index + 1,
                                pair[1].0
                            ),
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// The rate at time `t`, in requests per second. For a shape that fails
    /// [`validate`](Self::validate) the answer is unspecified (but this never panics).
    pub fn rate_at(&self, t: SimTime) -> f64 {
        match self {
            TrafficShape::Steady { rate } => *rate,
            TrafficShape::Ramp {
                from,
                to,
                start,
                end,
            } => {
                if t <= *start {
                    *from
                } else if t >= *end {
                    *to
                } else {
                    ramp_rate(*from, *to, (t - *start).ticks(), (*end - *start).ticks())
                }
            }
            TrafficShape::Spike {
                base,
                peak,
                start,
                duration,
            } => {
                if t >= *start && t < *start + *duration {
                    *peak
                } else {
                    *base
                }
            }
            TrafficShape::Bursts {
                base,
                peak,
                period,
                burst,
            } => {
                if t.ticks() % period.ticks().max(1) < burst.ticks() {
                    *peak
                } else {
                    *base
                }
            }
            TrafficShape::Steps(steps) => {
                let index = steps.partition_point(|(from, _)| *from <= t);
                if index == 0 {
                    0.0
                } else {
                    steps[index - 1].1
                }
            }
        }
    }

    /// The segment of the shape that contains `t`, as `(max_rate, segment_end)`.
    ///
    /// Promises, for a valid shape: `rate_at(t') ≤ max_rate` for every `t'` in
    /// [t, segment_end); `segment_end > t` unless `t` is `SimTime::MAX`; the last segment
    /// ends at `SimTime::MAX`. Segments: Steady, one; Ramp, before / 16 equal pieces /
    /// after; Spike, before / during / after; Bursts, each burst and each gap, forever,
    /// except that Bursts whose rates are all zero is one segment `(0.0, SimTime::MAX)`;
    /// Steps, before the first / each step. So from any `t` on, a rate that stays zero is
    /// seen as such after finitely many segments. For a shape that fails
    /// [`validate`](Self::validate) the answer is unspecified (but this never panics).
    pub fn segment_bound(&self, t: SimTime) -> (f64, SimTime) {
        match self {
            TrafficShape::Steady { rate } => (*rate, SimTime::MAX),
            TrafficShape::Ramp {
                from,
                to,
                start,
                end,
            } => {
                if t < *start {
                    (*from, *start)
                } else if t >= *end {
                    (*to, SimTime::MAX)
                } else {
                    let length = (*end - *start).ticks();
                    let piece = length.div_ceil(RAMP_PIECES);
                    let offset = (t - *start).ticks();
                    let piece_start = offset - offset % piece;
                    let piece_end = piece_start.saturating_add(piece).min(length);
                    let bound = ramp_rate(*from, *to, piece_start, length)
                        .max(ramp_rate(*from, *to, piece_end, length));
                    (bound, *start + SimDuration::from_ticks(piece_end))
                }
            }
            TrafficShape::Spike {
                base,
                peak,
                start,
                duration,
            } => {
                let stop = *start + *duration;
                if t < *start {
                    (*base, *start)
                } else if t < stop {
                    (*peak, stop)
                } else {
                    (*base, SimTime::MAX)
                }
            }
            TrafficShape::Bursts {
                base,
                peak,
                period,
                burst,
            } => {
                let (period, burst) = (period.ticks().max(1), burst.ticks());
                let peak_matters = *peak > 0.0 && burst > 0;
                let base_matters = *base > 0.0 && burst < period;
                if !peak_matters && !base_matters {
                    return (0.0, SimTime::MAX);
                }
                let period_start = t.ticks() - t.ticks() % period;
                let burst_end = period_start.saturating_add(burst);
                if t.ticks() < burst_end {
                    (*peak, SimTime::from_ticks(burst_end))
                } else {
                    (
                        *base,
                        SimTime::from_ticks(period_start.saturating_add(period)),
                    )
                }
            }
            TrafficShape::Steps(steps) => {
                let index = steps.partition_point(|(from, _)| *from <= t);
                let rate = if index == 0 { 0.0 } else { steps[index - 1].1 };
                let end = steps.get(index).map_or(SimTime::MAX, |(from, _)| *from);
                (rate, end)
            }
        }
    }
}

/// A Poisson arrival process whose rate at time `t` is `shape.rate_at(t) × multiplier`
/// (capped at [`MAX_RATE`]), drawing from its own [`SimRng`] stream.
///
/// **Use.** Ask for the first arrival with `next_after(SimTime::ZERO)`, then for each next
/// one with `next_after(previous_arrival)`.
///
/// **Changing the rate mid-run.** [`set_multiplier`](Self::set_multiplier) (a "traffic
/// spike" injection sets e.g. 3.0) and [`set_shape`](Self::set_shape) affect only draws
/// made afterwards. To apply a change at once, discard the pending arrival (cancel its
/// timer) and call `next_after(now)`. This is exact, not an approximation: a Poisson
/// process has independent increments, so the wait from `now` to the next arrival does
/// not depend on when the previous one came (memorylessness), and the discarded draw
/// constrains nothing.
#[derive(Clone, Debug)]
pub struct PoissonArrivals {
    shape: TrafficShape,
    multiplier: f64,
    rng: SimRng,
    /// `Some(effective rate)` when the shape is steady: the hot path needs no match and no
    /// thinning.
    steady_rate: Option<f64>,
}

impl PoissonArrivals {
    /// Arrivals following `shape`, multiplier 1, drawing from `rng` (conventionally
    /// `SimRng::new(seed, "arrivals")`).
    ///
    /// # Panics
    /// If `shape` fails [`TrafficShape::validate`]; use [`try_new`](Self::try_new) for
    /// shapes built from user input.
    pub fn new(shape: TrafficShape, rng: SimRng) -> Self {
        Self::try_new(shape, rng).unwrap_or_else(|error| panic!("invalid traffic: {error}"))
    }

    /// Like [`new`](Self::new), but returns the validation error instead of panicking.
    pub fn try_new(shape: TrafficShape, rng: SimRng) -> Result<Self, TrafficError> {
        shape.validate()?;
        let mut arrivals = PoissonArrivals {
            shape,
            multiplier: 1.0,
            rng,
            steady_rate: None,
        };
        arrivals.refresh_steady_rate();
        Ok(arrivals)
    }

    /// The shape being followed.
    pub fn shape(&self) -> &TrafficShape {
        &self.shape
    }

    /// Follows `shape` from the next draw on (see the type's notes on changing the rate).
    ///
    /// # Panics
    /// If `shape` fails [`TrafficShape::validate`]; see
    /// [`try_set_shape`](Self::try_set_shape).
    pub fn set_shape(&mut self, shape: TrafficShape) {
        self.try_set_shape(shape)
            .unwrap_or_else(|error| panic!("invalid traffic: {error}"));
    }

    /// Like [`set_shape`](Self::set_shape), but returns the validation error (keeping the
    /// old shape) instead of panicking.
    pub fn try_set_shape(&mut self, shape: TrafficShape) -> Result<(), TrafficError> {
        shape.validate()?;
        self.shape = shape;
        self.refresh_steady_rate();
        Ok(())
    }

    /// The current multiplier (1.0 = as shaped).
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// Scales every rate by `multiplier` (finite, ≥ 0; 0 stops arrivals) from the next
    /// draw on; effective rates are capped at [`MAX_RATE`]. Refuses other values, keeping
    /// the old multiplier.
    pub fn set_multiplier(&mut self, multiplier: f64) -> Result<(), TrafficError> {
        if !(multiplier.is_finite() && multiplier >= 0.0) {
            return Err(TrafficError {
                field: "multiplier",
                message: format!(
                    "traffic multiplier must be a finite number ≥ 0, got {multiplier}"
                ),
            });
        }
        self.multiplier = multiplier;
        self.refresh_steady_rate();
        Ok(())
    }

    /// The effective rate at `t`: the shape's rate times the multiplier, capped at
    /// [`MAX_RATE`].
    pub fn rate_at(&self, t: SimTime) -> f64 {
        self.effective(self.shape.rate_at(t))
    }

    /// The next arrival at or after `now`: `now` plus the first arrival time of the
    /// process restarted at `now` (by memorylessness, the same law whether or not `now`
    /// is the previous arrival), rounded to a whole tick. It can equal `now` (a tie) but
    /// moves on with probability ≥ 0.61 per call. `None` if the rate is zero from `now`
    /// for the rest of time, or if the next arrival would not come before `SimTime::MAX`.
    ///
    /// Steady shapes: exactly one exponential draw (one word) per call. Other shapes:
    /// thinning with per-segment bounds; piecewise-constant shapes use one word per
    /// candidate (every candidate inside a segment is accepted) plus one per segment end
    /// crossed; ramps add an acceptance draw per candidate. The cost of a call thus grows
    /// with the number of segments it crosses: a Bursts shape with a mean rate far below
    /// one arrival per period crosses two segments per empty period.
    #[inline]
    pub fn next_after(&mut self, now: SimTime) -> Option<SimTime> {
        match self.steady_rate {
            Some(rate) if rate > 0.0 => {
                let at = now + SimDuration::from_secs_f64(self.rng.exponential(rate));
                (at < SimTime::MAX).then_some(at)
            }
            Some(_) => None,
            None => self.thinned_after(now),
        }
    }

    /// Lewis–Shedler thinning with the shape's piecewise bound.
    fn thinned_after(&mut self, now: SimTime) -> Option<SimTime> {
        if self.multiplier == 0.0 {
            return None;
        }
        let mut t = now;
        loop {
            if t == SimTime::MAX {
                return None;
            }
            let (raw_bound, segment_end) = self.shape.segment_bound(t);
            debug_assert!(segment_end > t, "segments must move time on");
            let bound = self.effective(raw_bound);
            if bound <= 0.0 {
                if segment_end == SimTime::MAX {
                    return None;
                }
                t = segment_end;
                continue;
            }
            let candidate = t + SimDuration::from_secs_f64(self.rng.exponential(bound));
            if candidate >= segment_end {
                // No candidate in this segment: restart at its end (memorylessness). For
                // the last segment this means past SimTime::MAX, so the loop ends.
                t = segment_end;
                continue;
            }
            let rate = self.effective(self.shape.rate_at(candidate));
            if rate >= bound || self.rng.uniform01() * bound < rate {
                return Some(candidate);
            }
            t = candidate;
        }
    }

    fn effective(&self, rate: f64) -> f64 {
        (rate * self.multiplier).min(MAX_RATE)
    }

    fn refresh_steady_rate(&mut self) {
        self.steady_rate = match self.shape {
            TrafficShape::Steady { rate } => Some(self.effective(rate)),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_secs(seconds)
    }

    /// Every arrival of `arrivals` before `until`, each asked for from the previous one.
    fn arrivals_until(arrivals: &mut PoissonArrivals, from: SimTime, until: SimTime) -> Vec<u64> {
        let mut times = Vec::new();
        let mut t = from;
        while let Some(next) = arrivals.next_after(t) {
            assert!(next >= t, "time went backwards");
            if next >= until {
                break;
            }
            times.push(next.ticks());
            t = next;
        }
        times
    }

    fn count_in(times: &[u64], from: SimTime, to: SimTime) -> u64 {
        times
            .iter()
            .filter(|&&t| t >= from.ticks() && t < to.ticks())
            .count() as u64
    }

    fn run(shape: TrafficShape, seed: u64, until: SimTime) -> Vec<u64> {
        let mut arrivals = PoissonArrivals::new(shape, SimRng::new(seed, "arrivals"));
        arrivals_until(&mut arrivals, SimTime::ZERO, until)
    }

    /// A Poisson count with mean `expected` has standard deviation sqrt(expected); the
    /// observed count must be within 5 of them.
    fn assert_poisson_count(observed: u64, expected: f64, what: &str) {
        let tolerance = 5.0 * expected.sqrt();
        assert!(
            (observed as f64 - expected).abs() <= tolerance,
            "{what}: observed {observed}, expected {expected} ± {tolerance}"
        );
    }

    #[test]
    fn steady_arrivals_come_at_the_rate() {
        let times = run(TrafficShape::steady(50.0).unwrap(), 1, secs(2000));
        assert_poisson_count(times.len() as u64, 100_000.0, "steady 50/s for 2000 s");
        // Halves are independent Poisson counts too.
        assert_poisson_count(
            count_in(&times, secs(0), secs(1000)),
            50_000.0,
            "first half",
        );
        assert_poisson_count(
            count_in(&times, secs(1000), secs(2000)),
            50_000.0,
            "second half",
        );
    }

    #[test]
    fn steady_arrivals_are_one_exponential_draw_each() {
        let rate = 7.2;
        let mut arrivals =
            PoissonArrivals::new(TrafficShape::steady(rate).unwrap(), SimRng::new(3, "a"));
        let mut reference = SimRng::new(3, "a");
        let mut t = SimTime::ZERO;
        for _ in 0..10_000 {
            let expected = t + SimDuration::from_secs_f64(reference.exponential(rate));
            t = arrivals.next_after(t).unwrap();
            assert_eq!(t, expected);
        }
        assert_eq!(arrivals.rng, reference);
    }

    /// Pins the arrival mapping: if this changes, every share link's run changes.
    #[test]
    fn golden_first_arrivals_for_seed_7() {
        let first_five = |seed| {
            let mut arrivals = PoissonArrivals::new(
                TrafficShape::Steady { rate: 10.0 },
                SimRng::new(seed, "arrivals"),
            );
            let mut t = SimTime::ZERO;
            (0..5)
                .map(|_| {
                    t = arrivals.next_after(t).unwrap();
                    t.ticks()
                })
                .collect::<Vec<u64>>()
        };
        assert_eq!(first_five(7), first_five(7));
        // Also reproduced by an independent Python re-implementation of the whole chain.
        assert_eq!(first_five(7), [265_057, 382_055, 478_485, 891_378, 959_623]);
        assert_ne!(first_five(8), first_five(7));
    }

    #[test]
    fn seeded_runs_replay_identically_for_every_shape() {
        let shapes = [
            TrafficShape::ramp(2.0, 40.0, secs(10), secs(60)).unwrap(),
            TrafficShape::spike(5.0, 80.0, secs(20), SimDuration::from_secs(10)).unwrap(),
            TrafficShape::bursts(
                1.0,
                50.0,
                SimDuration::from_secs(7),
                SimDuration::from_secs(2),
            )
            .unwrap(),
            TrafficShape::steps(vec![(secs(5), 10.0), (secs(30), 3.0)]).unwrap(),
        ];
        for shape in shapes {
            let first = run(shape.clone(), 11, secs(100));
            assert!(!first.is_empty());
            assert_eq!(first, run(shape.clone(), 11, secs(100)), "{shape:?}");
            assert_ne!(first, run(shape.clone(), 12, secs(100)), "{shape:?}");
        }
    }

    #[test]
    fn a_spike_raises_the_rate_only_while_it_lasts() {
        let spike =
            TrafficShape::spike(10.0, 200.0, secs(100), SimDuration::from_secs(50)).unwrap();
        let times = run(spike, 2, secs(400));
        assert_poisson_count(count_in(&times, secs(0), secs(100)), 1000.0, "before");
        assert_poisson_count(count_in(&times, secs(100), secs(150)), 10_000.0, "during");
        assert_poisson_count(count_in(&times, secs(150), secs(400)), 2500.0, "after");
    }

    #[test]
    fn piecewise_bounds_cost_one_word_per_arrival_plus_one_per_boundary() {
        // A 100× spike: the baseline must not pay for it. Before the spike every candidate
        // is accepted with no second draw; the first candidate past the spike's start is
        // thrown away (one word), and the first candidate inside the spike is accepted.
        let spike =
            TrafficShape::spike(10.0, 1000.0, secs(500), SimDuration::from_secs(1)).unwrap();
        let mut arrivals = PoissonArrivals::new(spike, SimRng::new(4, "arrivals"));
        let mut reference = SimRng::new(4, "arrivals");
        let baseline = arrivals_until(&mut arrivals.clone(), SimTime::ZERO, secs(500)).len();
        let mut t = SimTime::ZERO;
        for _ in 0..=baseline {
            t = arrivals.next_after(t).unwrap();
        }
        assert!(
            t >= secs(500),
            "the last call returned the first spike arrival"
        );
        for _ in 0..baseline + 2 {
            reference.next_u64();
        }
        assert_eq!(arrivals.rng, reference, "{baseline} baseline arrivals");
    }

    #[test]
    fn a_ramp_delivers_its_integral() {
        // Up: ∫₀¹⁰⁰ t dt = 5000 in the ramp, then 100/s for 50 s.
        let up = TrafficShape::ramp(0.0, 100.0, secs(0), secs(100)).unwrap();
        let times = run(up, 3, secs(150));
        assert_poisson_count(count_in(&times, secs(0), secs(100)), 5000.0, "up, ramp");
        assert_poisson_count(count_in(&times, secs(0), secs(50)), 1250.0, "up, 1st half");
        assert_poisson_count(count_in(&times, secs(100), secs(150)), 5000.0, "up, after");
        // Down, starting late: 30/s for 20 s, then ∫ from 30 to 6 over 40 s = 720, then 6/s.
        let down = TrafficShape::ramp(30.0, 6.0, secs(20), secs(60)).unwrap();
        let times = run(down, 4, secs(160));
        assert_poisson_count(count_in(&times, secs(0), secs(20)), 600.0, "down, before");
        assert_poisson_count(count_in(&times, secs(20), secs(60)), 720.0, "down, ramp");
        assert_poisson_count(count_in(&times, secs(60), secs(160)), 600.0, "down, after");
        // Long and large, to check the pieces add up: ∫ 1→1000 over 100 s = 50 050.
        let steep = TrafficShape::ramp(1.0, 1000.0, secs(0), secs(100)).unwrap();
        let times = run(steep, 5, secs(100));
        assert_poisson_count(times.len() as u64, 50_050.0, "steep ramp");
    }

    #[test]
    fn bursts_repeat_every_period() {
        let bursts = TrafficShape::bursts(
            5.0,
            100.0,
            SimDuration::from_secs(10),
            SimDuration::from_secs(2),
        )
        .unwrap();
        let times = run(bursts, 4, secs(1000));
        // Per period: 2 s × 100 + 8 s × 5 = 240; 100 periods.
        assert_poisson_count(times.len() as u64, 24_000.0, "all");
        let in_bursts = times
            .iter()
            .filter(|&&t| t % 10_000_000 < 2_000_000)
            .count();
        assert_poisson_count(in_bursts as u64, 20_000.0, "in bursts");
        assert_poisson_count((times.len() - in_bursts) as u64, 4_000.0, "between");
    }

    #[test]
    fn steps_switch_rates_and_can_stop() {
        let steps =
            TrafficShape::steps(vec![(secs(10), 20.0), (secs(60), 0.0), (secs(80), 40.0)]).unwrap();
        let times = run(steps.clone(), 5, secs(100));
        assert_eq!(
            count_in(&times, secs(0), secs(10)),
            0,
            "zero before the first"
        );
        assert_poisson_count(count_in(&times, secs(10), secs(60)), 1000.0, "20/s");
        assert_eq!(count_in(&times, secs(60), secs(80)), 0, "the zero step");
        assert_poisson_count(count_in(&times, secs(80), secs(100)), 800.0, "40/s");
        assert_eq!(steps.rate_at(secs(60)), 0.0);
        assert_eq!(
            steps.rate_at(SimTime::from_ticks(secs(60).ticks() - 1)),
            20.0
        );
    }

    #[test]
    fn the_multiplier_scales_the_rate_from_then_on() {
        for shape in [
            TrafficShape::steady(10.0).unwrap(),
            TrafficShape::steps(vec![(secs(0), 10.0)]).unwrap(),
        ] {
            let mut arrivals = PoissonArrivals::new(shape, SimRng::new(6, "arrivals"));
            let before = arrivals_until(&mut arrivals, SimTime::ZERO, secs(1000));
            assert_poisson_count(before.len() as u64, 10_000.0, "before");
            // The injection: the pending arrival (past 1000 s) is dropped and the caller
            // asks again from now.
            arrivals.set_multiplier(2.0).unwrap();
            assert_eq!(arrivals.rate_at(secs(1000)), 20.0);
            let after = arrivals_until(&mut arrivals, secs(1000), secs(2000));
            assert_poisson_count(after.len() as u64, 20_000.0, "after");
            assert!(after[0] >= secs(1000).ticks());
        }
    }

    #[test]
    fn zero_rates_for_the_rest_of_time_give_none() {
        let never = |shape: TrafficShape, from: SimTime| {
            PoissonArrivals::new(shape, SimRng::new(1, "arrivals")).next_after(from)
        };
        assert_eq!(never(TrafficShape::steady(0.0).unwrap(), secs(0)), None);
        assert_eq!(never(TrafficShape::steps(vec![]).unwrap(), secs(0)), None);
        let stops = TrafficShape::steps(vec![(secs(10), 20.0), (secs(60), 0.0)]).unwrap();
        assert_eq!(never(stops, secs(60)), None);
        let ramp_down = TrafficShape::ramp(5.0, 0.0, secs(0), secs(10)).unwrap();
        assert_eq!(never(ramp_down, secs(10)), None);
        let spike_only = TrafficShape::spike(0.0, 9.0, secs(5), SimDuration::from_secs(1)).unwrap();
        assert_eq!(never(spike_only, secs(6)), None);
        let silent_bursts = TrafficShape::bursts(
            0.0,
            0.0,
            SimDuration::from_millis(1),
            SimDuration::from_ticks(1),
        )
        .unwrap();
        assert_eq!(never(silent_bursts, secs(0)), None);
        // A multiplier of 0 stops every shape, including periodic ones, at once.
        let mut bursts = PoissonArrivals::new(
            TrafficShape::bursts(
                3.0,
                30.0,
                SimDuration::from_millis(1),
                SimDuration::from_ticks(100),
            )
            .unwrap(),
            SimRng::new(1, "arrivals"),
        );
        assert!(bursts.next_after(secs(0)).is_some());
        bursts.set_multiplier(0.0).unwrap();
        assert_eq!(bursts.next_after(secs(0)), None);
        assert_eq!(
            never(TrafficShape::steady(5.0).unwrap(), SimTime::MAX),
            None
        );
    }

    #[test]
    fn the_rate_cap_keeps_time_moving_with_a_known_bias() {
        // At MAX_RATE the true mean gap is 1 tick; rounded to the nearest tick its mean is
        // 1/(2 sinh ½) = 0.959517 ticks and its sd under 1 tick. Over 1M arrivals the end
        // time is 959 517 ± 5000 (5 sd); unrounded it would be 1 000 000.
        let mut arrivals = PoissonArrivals::new(
            TrafficShape::steady(MAX_RATE).unwrap(),
            SimRng::new(9, "arrivals"),
        );
        arrivals.set_multiplier(1000.0).unwrap();
        assert_eq!(arrivals.rate_at(secs(0)), MAX_RATE, "capped");
        let mut t = SimTime::ZERO;
        let mut ties = 0u32;
        for _ in 0..1_000_000 {
            let next = arrivals.next_after(t).unwrap();
            ties += u32::from(next == t);
            t = next;
        }
        let expected = 1e6 / (2.0 * 0.5f64.sinh());
        assert!(
            (t.ticks() as f64 - expected).abs() < 5000.0,
            "{} ticks, expected {expected}",
            t.ticks()
        );
        // P(tie) = 1 − e^−½ = 0.3935; sd of the count 489; allow 5.
        assert!(ties.abs_diff(393_469) < 2445, "{ties} ties");
    }

    #[test]
    fn segment_bounds_bound_the_rate_and_move_on() {
        let shapes = [
            TrafficShape::steady(3.0).unwrap(),
            TrafficShape::ramp(2.0, 40.0, secs(10), secs(60)).unwrap(),
            TrafficShape::ramp(40.0, 0.0, secs(10), SimTime::from_ticks(10_000_007)).unwrap(),
            TrafficShape::ramp(0.1, 0.3, secs(0), SimTime::from_ticks(3)).unwrap(),
            TrafficShape::spike(5.0, 80.0, secs(20), SimDuration::from_secs(10)).unwrap(),
            TrafficShape::bursts(
                1.0,
                50.0,
                SimDuration::from_secs(7),
                SimDuration::from_secs(2),
            )
            .unwrap(),
            TrafficShape::bursts(
                0.0,
                50.0,
                SimDuration::from_secs(7),
                SimDuration::from_secs(7),
            )
            .unwrap(),
            TrafficShape::steps(vec![(secs(5), 10.0), (secs(30), 3.0)]).unwrap(),
        ];
        let mut rng = SimRng::new(2, "probe");
        for shape in &shapes {
            for _ in 0..2000 {
                let t = SimTime::from_ticks(rng.below(80_000_000));
                let (bound, end) = shape.segment_bound(t);
                assert!(end > t, "{shape:?} at {t}");
                let span = (end.ticks().min(90_000_000) - t.ticks()).max(1);
                for probe in [0, 1, span / 2, span - 1]
                    .into_iter()
                    .chain((0..8).map(|_| rng.below(span)))
                {
                    let at = SimTime::from_ticks(t.ticks() + probe);
                    assert!(
                        shape.rate_at(at) <= bound,
                        "{shape:?}: rate {} at {at} above bound {bound} from {t}",
                        shape.rate_at(at)
                    );
                }
            }
        }
    }

    #[test]
    fn invalid_shapes_and_multipliers_are_explained() {
        let error = TrafficShape::steady(-1.0).unwrap_err();
        assert_eq!(error.field, "rate");
        assert!(error.message.contains("[0, 1000000]"), "{error}");
        assert!(TrafficShape::steady(f64::NAN).is_err());
        assert!(TrafficShape::steady(f64::INFINITY).is_err());
        assert!(TrafficShape::steady(MAX_RATE * 2.0).is_err());
        assert_eq!(
            TrafficShape::spike(1.0, f64::NAN, secs(1), SimDuration::from_secs(1))
                .unwrap_err()
                .field,
            "peak"
        );
        assert_eq!(
            TrafficShape::spike(1.0, 2.0, secs(1), SimDuration::ZERO)
                .unwrap_err()
                .field,
            "duration"
        );
        assert_eq!(
            TrafficShape::ramp(1.0, 2.0, secs(5), secs(5))
                .unwrap_err()
                .field,
            "end"
        );
        assert_eq!(
            TrafficShape::ramp(-1.0, 2.0, secs(5), secs(6))
                .unwrap_err()
                .field,
            "from"
        );
        let bursts = |period, burst| {
            TrafficShape::bursts(1.0, 2.0, period, burst).map_err(|error| error.field)
        };
        assert_eq!(bursts(SimDuration::ZERO, SimDuration::ZERO), Err("period"));
        assert_eq!(
            bursts(SimDuration::from_secs(1), SimDuration::ZERO),
            Err("burst")
        );
        assert_eq!(
            bursts(SimDuration::from_secs(1), SimDuration::from_secs(2)),
            Err("burst")
        );
        let unsorted = TrafficShape::steps(vec![(secs(5), 1.0), (secs(4), 2.0)]).unwrap_err();
        assert_eq!(unsorted.field, "steps");
        assert!(
            unsorted.message.contains("strictly increasing"),
            "{unsorted}"
        );
        assert!(TrafficShape::steps(vec![(secs(5), 1.0), (secs(5), 2.0)]).is_err());
        let negative = TrafficShape::steps(vec![(secs(5), 1.0), (secs(6), -2.0)]).unwrap_err();
        assert!(negative.message.contains("step 1"), "{negative}");

        let bad = TrafficShape::Steady { rate: -3.0 };
        assert!(PoissonArrivals::try_new(bad.clone(), SimRng::new(1, "a")).is_err());
        let mut arrivals =
            PoissonArrivals::new(TrafficShape::steady(1.0).unwrap(), SimRng::new(1, "a"));
        assert!(arrivals.try_set_shape(bad).is_err());
        assert_eq!(arrivals.shape(), &TrafficShape::Steady { rate: 1.0 });
        for multiplier in [-1.0, f64::NAN, f64::INFINITY] {
            let error = arrivals.set_multiplier(multiplier).unwrap_err();
            assert_eq!(error.field, "multiplier");
        }
        assert_eq!(arrivals.multiplier(), 1.0);
    }

    #[test]
    #[should_panic(expected = "invalid traffic: Steady rate must be")]
    fn new_refuses_an_invalid_shape() {
        PoissonArrivals::new(TrafficShape::Steady { rate: f64::NAN }, SimRng::new(1, "a"));
    }
}
