//! Traffic shapes (steady, ramp, spike, bursts, steps) and the Poisson arrival process
//! that follows them, with a runtime multiplier for "traffic spike" injections.
//!
//! Time-varying rates use thinning (P. A. W. Lewis & G. S. Shedler, "Simulation of
//! nonhomogeneous Poisson processes by thinning", Naval Research Logistics Quarterly
//! 26(3), 1979) with a bound per segment of the shape, so a 100× spike does not cost 100×
//! random draws during the baseline.

use super::random::SimRng;
use super::time::{SimDuration, SimTime};

/// An arrival rate over time, in requests per second.
#[derive(Clone, Debug, PartialEq)]
pub enum TrafficShape {
    Steady {
        rate: f64,
    },
    /// Linear from `from` at `start` to `to` at `end`; constant outside.
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
    /// `peak` for the first `burst` of every `period`, `base` otherwise.
    Bursts {
        base: f64,
        peak: f64,
        period: SimDuration,
        burst: SimDuration,
    },
    /// Piecewise constant: rate `r` from each `(t, r)` on; zero before the first step.
    Steps(Vec<(SimTime, f64)>),
}

/// Why a traffic shape was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficError(pub String);

impl std::fmt::Display for TrafficError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_rate(field: &str, rate: f64) -> Result<(), TrafficError> {
    if rate.is_finite() && rate >= 0.0 {
        Ok(())
    } else {
        Err(TrafficError(format!(
            "{field} must be a finite rate ≥ 0 requests per second, got {rate}"
        )))
    }
}

impl TrafficShape {
    /// Checks rates are finite and non-negative, spans positive and steps sorted.
    pub fn validate(&self) -> Result<(), TrafficError> {
        match self {
            TrafficShape::Steady { rate } => check_rate("rate", *rate),
            TrafficShape::Ramp {
                from,
                to,
                start,
                end,
            } => {
                check_rate("from", *from)?;
                check_rate("to", *to)?;
                if end <= start {
                    return Err(TrafficError(format!(
                        "ramp end ({end}) must be after its start ({start})"
                    )));
                }
                Ok(())
            }
            TrafficShape::Spike { base, peak, .. } => {
                check_rate("base", *base)?;
                check_rate("peak", *peak)
            }
            TrafficShape::Bursts {
                base,
                peak,
                period,
                burst,
            } => {
                check_rate("base", *base)?;
                check_rate("peak", *peak)?;
                if *period == SimDuration::ZERO || burst > period {
                    return Err(TrafficError(format!(
                        "bursts need a period > 0 and a burst no longer than it, got period {period} and burst {burst}"
                    )));
                }
                Ok(())
            }
            TrafficShape::Steps(steps) => {
                for (_, rate) in steps {
                    check_rate("step rate", *rate)?;
                }
                if steps.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
                    return Err(TrafficError(
                        "steps must be in strictly increasing time order".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The rate at time `t`.
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
                    let done = (t - *start).as_secs_f64() / (*end - *start).as_secs_f64();
                    from + (to - from) * done
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
                if t.ticks() % period.ticks() < burst.ticks() {
                    *peak
                } else {
                    *base
                }
            }
            TrafficShape::Steps(steps) => {
                let index = steps.partition_point(|(start, _)| *start <= t);
                if index == 0 {
                    0.0
                } else {
                    steps[index - 1].1
                }
            }
        }
    }

    /// The highest rate over the segment of the shape that contains `t`, and where that
    /// segment ends (`SimTime::MAX` for the last one).
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
                } else if t < *end {
                    (from.max(*to), *end)
                } else {
                    (*to, SimTime::MAX)
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
                let period_start = t.ticks() - t.ticks() % period.ticks();
                let burst_end = period_start + burst.ticks();
                if t.ticks() < burst_end {
                    (*peak, SimTime::from_ticks(burst_end))
                } else {
                    (*base, SimTime::from_ticks(period_start + period.ticks()))
                }
            }
            TrafficShape::Steps(steps) => {
                let index = steps.partition_point(|(start, _)| *start <= t);
                let rate = if index == 0 { 0.0 } else { steps[index - 1].1 };
                let end = steps.get(index).map_or(SimTime::MAX, |(start, _)| *start);
                (rate, end)
            }
        }
    }
}

/// A Poisson arrival process following a [`TrafficShape`] times a runtime multiplier.
///
/// Memorylessness makes it valid to change the shape or multiplier at any time and simply
/// ask for the next arrival again from `now`: the caller cancels its pending arrival and
/// reschedules.
#[derive(Clone, Debug)]
pub struct PoissonArrivals {
    shape: TrafficShape,
    multiplier: f64,
    rng: SimRng,
}

impl PoissonArrivals {
    pub fn new(shape: TrafficShape, rng: SimRng) -> Self {
        PoissonArrivals {
            shape,
            multiplier: 1.0,
            rng,
        }
    }

    pub fn shape(&self) -> &TrafficShape {
        &self.shape
    }

    pub fn set_shape(&mut self, shape: TrafficShape) {
        self.shape = shape;
    }

    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// Scales every rate from now on (1.0 = as shaped; negative is treated as 0).
    pub fn set_multiplier(&mut self, multiplier: f64) {
        self.multiplier = multiplier.max(0.0);
    }

    /// The current rate at `t`, multiplier included.
    pub fn rate_at(&self, t: SimTime) -> f64 {
        self.shape.rate_at(t) * self.multiplier
    }

    /// The next arrival at or after `now`, or `None` if no more ever come. A steady shape
    /// costs exactly one exponential draw per arrival.
    pub fn next_after(&mut self, now: SimTime) -> Option<SimTime> {
        if let TrafficShape::Steady { rate } = self.shape {
            let rate = rate * self.multiplier;
            if rate <= 0.0 {
                return None;
            }
            return Some(now + SimDuration::from_secs_f64(self.rng.exponential(rate)));
        }
        let mut t = now;
        loop {
            let (bound, segment_end) = self.shape.segment_bound(t);
            let bound = bound * self.multiplier;
            if bound <= 0.0 {
                if segment_end == SimTime::MAX {
                    return None;
                }
                t = segment_end;
                continue;
            }
            let candidate = t + SimDuration::from_secs_f64(self.rng.exponential(bound));
            if candidate >= segment_end {
                // Past this segment: restart from its end (valid by memorylessness).
                t = segment_end;
                continue;
            }
            let accept = self.rate_at(candidate) / bound;
            if accept >= 1.0 || self.rng.uniform01() < accept {
                return Some(candidate);
            }
            t = candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_secs(seconds)
    }

    fn count_between(shape: TrafficShape, from: SimTime, to: SimTime, seed: u64) -> u64 {
        let mut arrivals = PoissonArrivals::new(shape, SimRng::new(seed, "arrivals"));
        let mut t = SimTime::ZERO;
        let mut count = 0;
        while let Some(next) = arrivals.next_after(t) {
            if next >= to {
                break;
            }
            if next >= from {
                count += 1;
            }
            t = next;
        }
        count
    }

    /// |observed − expected| within 5 standard errors of a Poisson count.
    fn assert_poisson_count(observed: u64, expected: f64) {
        let tolerance = 5.0 * expected.sqrt();
        assert!(
            (observed as f64 - expected).abs() <= tolerance,
            "observed {observed}, expected {expected} ± {tolerance}"
        );
    }

    #[test]
    fn steady_arrivals_come_at_the_rate() {
        let n = count_between(TrafficShape::Steady { rate: 50.0 }, secs(0), secs(2000), 1);
        assert_poisson_count(n, 100_000.0);
    }

    #[test]
    fn a_spike_raises_the_rate_only_while_it_lasts() {
        let spike = TrafficShape::Spike {
            base: 10.0,
            peak: 200.0,
            start: secs(100),
            duration: SimDuration::from_secs(50),
        };
        assert_poisson_count(count_between(spike.clone(), secs(0), secs(100), 2), 1000.0);
        assert_poisson_count(
            count_between(spike.clone(), secs(100), secs(150), 2),
            10_000.0,
        );
        assert_poisson_count(count_between(spike, secs(150), secs(400), 2), 2500.0);
    }

    #[test]
    fn a_ramp_delivers_its_integral() {
        let ramp = TrafficShape::Ramp {
            from: 0.0,
            to: 100.0,
            start: secs(0),
            end: secs(100),
        };
        // ∫ 0→100 of t dt over 100 s = 5000, then 100/s for 50 s.
        assert_poisson_count(count_between(ramp.clone(), secs(0), secs(100), 3), 5000.0);
        assert_poisson_count(count_between(ramp, secs(100), secs(150), 3), 5000.0);
    }

    #[test]
    fn bursts_repeat_every_period() {
        let bursts = TrafficShape::Bursts {
            base: 5.0,
            peak: 100.0,
            period: SimDuration::from_secs(10),
            burst: SimDuration::from_secs(2),
        };
        // Per period: 2 s × 100 + 8 s × 5 = 240; 100 periods.
        assert_poisson_count(count_between(bursts, secs(0), secs(1000), 4), 24_000.0);
    }

    #[test]
    fn steps_switch_rates_and_can_stop() {
        let steps = TrafficShape::Steps(vec![(secs(10), 20.0), (secs(60), 0.0)]);
        assert_poisson_count(count_between(steps.clone(), secs(0), secs(100), 5), 1000.0);
        let mut arrivals = PoissonArrivals::new(steps, SimRng::new(5, "arrivals"));
        assert_eq!(
            arrivals.next_after(secs(60)),
            None,
            "zero forever after the last step"
        );
    }

    #[test]
    fn the_multiplier_scales_the_rate_from_then_on() {
        let mut arrivals =
            PoissonArrivals::new(TrafficShape::Steady { rate: 10.0 }, SimRng::new(6, "a"));
        arrivals.set_multiplier(2.0);
        let mut t = SimTime::ZERO;
        let mut count = 0;
        while let Some(next) = arrivals.next_after(t) {
            if next >= secs(1000) {
                break;
            }
            count += 1;
            t = next;
        }
        assert_poisson_count(count, 20_000.0);
        arrivals.set_multiplier(0.0);
        assert_eq!(arrivals.next_after(t), None);
    }

    #[test]
    fn replays_identically_and_pins_the_first_arrivals() {
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
        assert_eq!(first_five(7), GOLDEN_FIRST_FIVE);
    }
    const GOLDEN_FIRST_FIVE: [u64; 5] = [265057, 382055, 478485, 891378, 959623];

    #[test]
    fn invalid_shapes_are_explained() {
        assert!(TrafficShape::Steady { rate: -1.0 }.validate().is_err());
        assert!(TrafficShape::Steady { rate: f64::NAN }.validate().is_err());
        assert!(TrafficShape::Steps(vec![(secs(5), 1.0), (secs(5), 2.0)])
            .validate()
            .unwrap_err()
            .0
            .contains("increasing"));
        assert!(TrafficShape::Ramp {
            from: 1.0,
            to: 2.0,
            start: secs(5),
            end: secs(5)
        }
        .validate()
        .is_err());
        assert!(TrafficShape::Steady { rate: 3.0 }.validate().is_ok());
    }
}
