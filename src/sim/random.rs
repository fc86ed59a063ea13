//! Seeded, portable randomness: one pinned generator per named stream, and every mapping
//! from random bits to numbers (uniform, integer, exponential, normal, log-normal, Zipf)
//! written out here, so that a seed replays the same run on every build and platform.
//!
//! Nothing here delegates a mapping to `rand`/`rand_distr`, whose algorithms may change
//! between versions. The bit generator is xoshiro256++ (D. Blackman & S. Vigna,
//! "Scrambled linear pseudorandom number generators", ACM TOMS 47(4), 2021) from
//! `rand_xoshiro`, whose output is fixed by that published algorithm. Its 256-bit state is
//! expanded here from `seed ^ fnv1a64(stream)` with SplitMix64 (G. L. Steele, D. Lea &
//! C. H. Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014), not with
//! `rand_core`'s `seed_from_u64`, whose expansion is not promised stable. Every
//! transcendental function (ln, exp, cos, log1p, expm1) comes from the pure-Rust `libm`
//! crate, never from the platform's maths library, so native and wasm32 runs agree bit
//! for bit. Golden tests below pin the exact outputs: if one of them changes, every shared
//! link replays a different run.

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::time::SimDuration;

/// 2^-53: the spacing of the 53-bit grid that [`SimRng::uniform01`] draws from.
const UNIT_53: f64 = 1.0 / (1u64 << 53) as f64;

/// FNV-1a, 64-bit, over the UTF-8 bytes of `text` (G. Fowler, L. C. Noll, K.-P. Vo; offset
/// basis 0xcbf29ce484222325, prime 0x100000001b3, as published at
/// <http://www.isthe.com/chongo/tech/comp/fnv/>). Stable forever: stream names are hashed
/// with it.
pub fn fnv1a64(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// One step of SplitMix64 (Steele, Lea & Flood 2014; the constants of Vigna's reference
/// `splitmix64.c`): advances `state` by the golden-ratio increment and returns the mixed
/// output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The top 53 bits of `word` on the grid {0, 2^-53, …, 1 − 2^-53}.
#[inline]
fn closed_open_unit(word: u64) -> f64 {
    (word >> 11) as f64 * UNIT_53
}

/// The top 53 bits of `word`, plus one, on the grid {2^-53, …, 1}.
#[inline]
fn open_closed_unit(word: u64) -> f64 {
    ((word >> 11) + 1) as f64 * UNIT_53
}

/// A seeded stream of random numbers: xoshiro256++ plus the fixed mappings below.
///
/// Promise: for a given `(seed, stream)` every method returns the same values in the same
/// order on every platform and build, forever (pinned by golden tests). Each method
/// documents how many 64-bit words it consumes, so call sequences stay reproducible.
/// Equality compares generator states: equal streams produce equal futures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRng(Xoshiro256PlusPlus);

impl SimRng {
    /// The stream named `stream` of run seed `seed`.
    ///
    /// The xoshiro256++ state is four successive SplitMix64 outputs (stored little-endian,
    /// the order `from_seed` reads them) started from `seed ^ fnv1a64(stream)`. Different
    /// names give streams that are, for simulation purposes, independent, so arrivals stay
    /// identical when a variant changes how service times are drawn. (SplitMix64's output
    /// function is a bijection, so the state is never all zero.)
    pub fn new(seed: u64, stream: &str) -> Self {
        let mut state = seed ^ fnv1a64(stream);
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        SimRng(Xoshiro256PlusPlus::from_seed(bytes))
    }

    /// The next raw 64-bit output of xoshiro256++ (one word).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform on the grid {0, 2^-53, …, 1 − 2^-53} ⊂ [0, 1): the top 53 bits of one word
    /// times 2^-53. Never returns 1.0.
    #[inline]
    pub fn uniform01(&mut self) -> f64 {
        closed_open_unit(self.next_u64())
    }

    /// Uniform on the grid {2^-53, …, 1} ⊂ (0, 1] (one word): never 0, so its logarithm is
    /// always finite.
    #[inline]
    pub fn open01(&mut self) -> f64 {
        open_closed_unit(self.next_u64())
    }

    /// `low + (high − low)·u` with `u` from [`uniform01`](Self::uniform01) (one word): uniform
    /// in [low, high) for `low < high`; floating-point rounding of the sum can, rarely,
    /// give exactly `high`. Returns `low` when `low == high`.
    #[inline]
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform01()
    }

    /// A whole number uniform in [0, n), with no modulo bias, by Lemire's multiply-shift
    /// with rejection (D. Lemire, "Fast random integer generation in an interval", ACM
    /// TOMACS 29(1), 2019). Consumes one word, plus one per rejection (probability below
    /// n/2^64 each).
    ///
    /// # Panics
    /// If `n == 0` (there is no whole number in [0, 0)).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SimRng::below(0): the range [0, 0) is empty");
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        if (product as u64) < n {
            // 2^64 mod n: the number of low words that would over-represent some outputs.
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (product >> 64) as u64
    }

    /// True with probability `p`: `uniform01() < p` (always one word). `p ≤ 0` (or NaN)
    /// is never true, `p ≥ 1` always.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform01() < p
    }

    /// Exponential with the given rate (mean `1/rate`; seconds when `rate` is per second),
    /// by inversion: `−ln(U)/rate` with `U` from [`open01`](Self::open01) (one word), so
    /// the result is finite and ≥ 0 for every `rate > 0`. Largest possible value:
    /// 53·ln 2/rate ≈ 36.7/rate.
    #[inline]
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -libm::log(self.open01()) / rate
    }

    /// A standard normal value by the Box–Muller transform (G. E. P. Box & M. E. Muller,
    /// "A note on the generation of random normal deviates", Ann. Math. Statist. 29, 1958):
    /// `sqrt(−2 ln U1)·cos(2π U2)` with `U1` from `open01` then `U2` from `uniform01`. Two
    /// words per value; the sine partner is deliberately not cached, so a value depends
    /// only on the two words drawn for it.
    pub fn standard_normal(&mut self) -> f64 {
        let radius = libm::sqrt(-2.0 * libm::log(self.open01()));
        let angle = 2.0 * core::f64::consts::PI * self.uniform01();
        radius * libm::cos(angle)
    }

    /// Normal with the given mean and standard deviation: `mean + sd·standard_normal()`
    /// (two words).
    pub fn normal(&mut self, mean: f64, standard_deviation: f64) -> f64 {
        mean + standard_deviation * self.standard_normal()
    }

    /// Log-normal with arithmetic mean `mean` (> 0) and coefficient of variation `cv`
    /// (standard deviation / mean): `exp(μ + σZ)` with σ² = ln(1 + cv²) (computed as
    /// `log1p(cv²)`), μ = ln(mean) − σ²/2 and `Z` from
    /// [`standard_normal`](Self::standard_normal) (two words). `cv ≤ 0` returns `mean`
    /// exactly and draws nothing.
    pub fn lognormal_mean_cv(&mut self, mean: f64, cv: f64) -> f64 {
        if cv <= 0.0 {
            return mean;
        }
        let sigma_squared = libm::log1p(cv * cv);
        let mu = libm::log(mean) - 0.5 * sigma_squared;
        libm::exp(mu + libm::sqrt(sigma_squared) * self.standard_normal())
    }

    /// One element of `items`, uniformly, via [`below`](Self::below).
    ///
    /// # Panics
    /// If `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        assert!(!items.is_empty(), "SimRng::pick from an empty slice");
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How long one unit of work takes (a service-time distribution).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServiceTime {
    /// Exponential with the given mean (memoryless; M/M/c queues).
    Exponential { mean: SimDuration },
    /// Always exactly this long (M/D/c queues).
    Deterministic(SimDuration),
    /// Log-normal with this arithmetic mean and coefficient of variation (≥ 0).
    LogNormal { mean: SimDuration, cv: f64 },
    /// Uniform between `low` and `high` (`low ≤ high`).
    Uniform { low: SimDuration, high: SimDuration },
}

impl ServiceTime {
    /// One duration, rounded to the nearest tick.
    ///
    /// Exponential: `mean_ticks · (−ln U)` with `U` from `open01` (one word; computed in
    /// ticks, so there is no division on this hot path). Deterministic: the value, no draw.
    /// LogNormal: [`SimRng::lognormal_mean_cv`] in seconds (two words; none when cv = 0).
    /// Uniform: [`SimRng::uniform`] in seconds (one word).
    #[inline]
    pub fn sample(&self, rng: &mut SimRng) -> SimDuration {
        match *self {
            ServiceTime::Exponential { mean } => {
                let ticks = mean.ticks() as f64 * -libm::log(rng.open01());
                // Round half up, as SimDuration::from_secs_f64 does; `as` saturates.
                SimDuration::from_ticks((ticks + 0.5) as u64)
            }
            ServiceTime::Deterministic(value) => value,
            ServiceTime::LogNormal { mean, cv } => {
                SimDuration::from_secs_f64(rng.lognormal_mean_cv(mean.as_secs_f64(), cv))
            }
            ServiceTime::Uniform { low, high } => {
                SimDuration::from_secs_f64(rng.uniform(low.as_secs_f64(), high.as_secs_f64()))
            }
        }
    }

    /// The distribution's mean (for Uniform, the midpoint, rounded down to a tick).
    pub fn mean(&self) -> SimDuration {
        match *self {
            ServiceTime::Exponential { mean }
            | ServiceTime::Deterministic(mean)
            | ServiceTime::LogNormal { mean, .. } => mean,
            ServiceTime::Uniform { low, high } => {
                let sum = u128::from(low.ticks()) + u128::from(high.ticks());
                SimDuration::from_ticks((sum / 2) as u64)
            }
        }
    }

    /// The same distribution with every duration multiplied by `factor` (a slow-down
    /// injection), each rounded to the nearest tick: the mean is multiplied by `factor`
    /// and the shape (the log-normal's cv) is kept. A negative or NaN `factor` gives zero
    /// durations.
    pub fn scaled(&self, factor: f64) -> ServiceTime {
        let scale = |d: SimDuration| {
            let ticks = d.ticks() as f64 * factor;
            // NaN and negatives fail the comparison and become 0; `as` saturates.
            SimDuration::from_ticks(if ticks > 0.0 { (ticks + 0.5) as u64 } else { 0 })
        };
        match *self {
            ServiceTime::Exponential { mean } => ServiceTime::Exponential { mean: scale(mean) },
            ServiceTime::Deterministic(value) => ServiceTime::Deterministic(scale(value)),
            ServiceTime::LogNormal { mean, cv } => ServiceTime::LogNormal {
                mean: scale(mean),
                cv,
            },
            ServiceTime::Uniform { low, high } => ServiceTime::Uniform {
                low: scale(low),
                high: scale(high),
            },
        }
    }
}

/// Why [`Zipf::new`] refused its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum ZipfError {
    /// `n` was 0: there must be at least one rank.
    NoRanks,
    /// The exponent was negative, infinite or NaN.
    BadExponent(f64),
}

impl std::fmt::Display for ZipfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZipfError::NoRanks => f.write_str("Zipf n must be at least 1 (got 0)"),
            ZipfError::BadExponent(s) => {
                write!(f, "Zipf exponent s must be a finite number ≥ 0 (got {s})")
            }
        }
    }
}

impl std::error::Error for ZipfError {}

/// Zipf's law over ranks 0..n, rank 0 the most popular: P(rank = k) ∝ 1/(k + 1)^s.
///
/// Sampled by rejection-inversion (W. Hörmann & G. Derflinger, "Rejection-inversion to
/// generate variates from monotone discrete distributions", ACM TOMACS 6(3), 1996), with
/// the integral of the hat function taken as H(x) = (x^(1−s) − 1)/(1 − s), which has the
/// limit ln x at s = 1, so one formula covers every s > 0 (the variant used by Apache
/// Commons RNG's `RejectionInversionZipfSampler`). H and its inverse are evaluated with
/// `expm1(y)/y` and `log1p(y)/y`, switching to their Taylor series for |y| ≤ 1e-8, so s = 1
/// and s near 1 lose no accuracy. O(1) memory and O(1) expected time: the expected number
/// of attempts per sample is bounded independently of n. s = 0 is the uniform
/// distribution and uses [`SimRng::below`] directly, exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Zipf {
    n: u64,
    s: f64,
    /// H(1.5) − 1: the lower end of the inversion interval (u ranges over (this, H(n+½)]).
    h_integral_x1: f64,
    /// H(n + ½): the upper end.
    h_integral_n: f64,
    /// The squeeze 2 − H⁻¹(H(2.5) − h(2)): `k − x ≤ squeeze` accepts without evaluating H.
    squeeze: f64,
}

impl Zipf {
    /// A Zipf distribution over `n ≥ 1` ranks with exponent `s` (finite, ≥ 0; 0 is
    /// uniform, ~1 is the classic web-popularity law).
    pub fn new(n: u64, s: f64) -> Result<Zipf, ZipfError> {
        if n == 0 {
            return Err(ZipfError::NoRanks);
        }
        if !(s.is_finite() && s >= 0.0) {
            return Err(ZipfError::BadExponent(s));
        }
        let h_integral_x1 = h_integral(1.5, s) - 1.0;
        let h_integral_n = h_integral(n as f64 + 0.5, s);
        let squeeze = 2.0 - h_integral_inverse(h_integral(2.5, s) - h(2.0, s), s);
        Ok(Zipf {
            n,
            s,
            h_integral_x1,
            h_integral_n,
            squeeze,
        })
    }

    /// The number of ranks.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The exponent.
    pub fn exponent(&self) -> f64 {
        self.s
    }

    /// A rank in 0..n. For s > 0: one word per attempt (uniform01), and attempts repeat
    /// until one is accepted; for s = 0: [`SimRng::below`].
    pub fn sample(&self, rng: &mut SimRng) -> u64 {
        if self.s == 0.0 {
            return rng.below(self.n);
        }
        loop {
            // u is uniform in (H(1.5) − 1, H(n + ½)].
            let u = self.h_integral_n + rng.uniform01() * (self.h_integral_x1 - self.h_integral_n);
            let x = h_integral_inverse(u, self.s);
            // Round to the nearest rank (1-based here), clamped against rounding error.
            let k = ((x + 0.5) as u64).clamp(1, self.n);
            let kf = k as f64;
            // Accept if inside the squeeze, or under h(k) in the rejection test. For k = 1
            // the test always passes (u > H(1.5) − h(1)), so rank 0 needs one attempt.
            if kf - x <= self.squeeze || u >= h_integral(kf + 0.5, self.s) - h(kf, self.s) {
                return k - 1;
            }
        }
    }
}

/// H(x) = (x^(1−s) − 1)/(1 − s), continuous through s = 1 where it is ln x: computed as
/// `helper_expm1((1 − s)·ln x)·ln x`.
fn h_integral(x: f64, s: f64) -> f64 {
    let log_x = libm::log(x);
    helper_expm1((1.0 - s) * log_x) * log_x
}

/// The hat function h(x) = x^(−s), as exp(−s·ln x).
fn h(x: f64, s: f64) -> f64 {
    libm::exp(-s * libm::log(x))
}

/// The inverse of H: exp(helper_log1p(y(1 − s))·y), with y(1 − s) kept ≥ −1 against
/// rounding (it is > −1 in exact arithmetic on the interval sampled).
fn h_integral_inverse(y: f64, s: f64) -> f64 {
    let t = (y * (1.0 - s)).max(-1.0);
    libm::exp(helper_log1p(t) * y)
}

/// ln(1 + x)/x, by its Taylor series 1 − x/2 + x²/3 − x³/4 for |x| ≤ 1e-8 (where the
/// division would lose accuracy and is 0/0 at x = 0).
fn helper_log1p(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        libm::log1p(x) / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x − 1)/x, by its Taylor series 1 + x/2 + x²/6 + x³/24 for |x| ≤ 1e-8.
fn helper_expm1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        libm::expm1(x) / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_stream_replay_identically() {
        let mut a = SimRng::new(42, "arrivals");
        let mut b = SimRng::new(42, "arrivals");
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = a.clone();
        for _ in 0..1000 {
            assert_eq!(a.exponential(3.0).to_bits(), c.exponential(3.0).to_bits());
            assert_eq!(
                a.lognormal_mean_cv(1.0, 2.0).to_bits(),
                c.lognormal_mean_cv(1.0, 2.0).to_bits()
            );
        }
    }

    #[test]
    fn streams_and_seeds_are_independent() {
        let first_words = |seed, stream| {
            let mut rng = SimRng::new(seed, stream);
            [rng.next_u64(), rng.next_u64(), rng.next_u64()]
        };
        let base = first_words(42, "arrivals");
        for (seed, stream) in [
            (42, "service"),
            (42, "failures"),
            (43, "arrivals"),
            (42, ""),
        ] {
            let other = first_words(seed, stream);
            for word in other {
                assert!(!base.contains(&word), "{seed}/{stream} overlaps");
            }
        }
    }

    /// Pins every algorithm choice: FNV-1a stream hashing, SplitMix64 expansion,
    /// xoshiro256++, and the exponential, normal, log-normal, uniform and integer
    /// mappings. If this fails, every share link's run has changed.
    #[test]
    fn golden_values_for_seed_42_arrivals() {
        let mut rng = SimRng::new(42, "arrivals");
        let words = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        assert_eq!(
            words,
            [
                10_266_871_625_073_011_064,
                13_492_960_174_643_469_289,
                6_077_065_364_415_705_241
            ]
        );
        let exponentials = [rng.exponential(2.0), rng.exponential(0.5)].map(f64::to_bits);
        assert_eq!(exponentials, GOLDEN_EXPONENTIAL_BITS);
        let lognormals = [
            rng.lognormal_mean_cv(1.0, 0.5),
            rng.lognormal_mean_cv(0.2, 2.0),
        ]
        .map(f64::to_bits);
        assert_eq!(lognormals, GOLDEN_LOGNORMAL_BITS);
        assert_eq!(rng.standard_normal().to_bits(), GOLDEN_NORMAL_BITS);
        assert_eq!(rng.uniform01().to_bits(), GOLDEN_UNIFORM01_BITS);
        assert_eq!(rng.below(1000), GOLDEN_BELOW_1000);
        let mean = SimDuration::from_millis(200);
        let services = [
            ServiceTime::Exponential { mean }.sample(&mut rng).ticks(),
            ServiceTime::LogNormal { mean, cv: 1.5 }
                .sample(&mut rng)
                .ticks(),
        ];
        assert_eq!(services, GOLDEN_SERVICE_TICKS);
    }
    // Cross-checked against an independent Python re-implementation of the whole chain;
    // there, glibc's log/exp put the second log-normal one ulp away, the very difference
    // that routing everything through `libm` keeps out of our runs.
    /// 0.015652487841470643 and 0.30363569603082224.
    const GOLDEN_EXPONENTIAL_BITS: [u64; 2] =
        [4_580_168_743_866_681_114, 4_599_141_434_347_909_089];
    /// 0.7127405165851625 and 0.07375894778468323.
    const GOLDEN_LOGNORMAL_BITS: [u64; 2] = [4_604_595_015_395_086_001, 4_589_979_312_979_298_356];
    /// −0.8563383955060017.
    const GOLDEN_NORMAL_BITS: u64 = 13_829_260_466_957_859_979;
    /// 0.21964733408352244.
    const GOLDEN_UNIFORM01_BITS: u64 = 4_597_081_649_505_987_220;
    const GOLDEN_BELOW_1000: u64 = 67;
    const GOLDEN_SERVICE_TICKS: [u64; 2] = [29_982, 15_473];

    #[test]
    fn fnv1a_matches_published_test_vectors() {
        // From the FNV reference test suite (test_fnv.c, FNV-1a 64).
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // splitmix64.c seeded with 1234567 (the sequence quoted by many ports).
        let mut state = 1_234_567u64;
        let outputs: Vec<u64> = (0..5).map(|_| splitmix64(&mut state)).collect();
        assert_eq!(
            outputs,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821
            ]
        );
    }

    #[test]
    fn xoshiro_reads_the_seed_little_endian_like_the_reference() {
        // State {1, 2, 3, 4}: xoshiro256plusplus.c's first output is rotl(1 + 4, 23) + 1.
        let mut bytes = [0u8; 32];
        for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&(i as u64 + 1).to_le_bytes());
        }
        let mut rng = SimRng(Xoshiro256PlusPlus::from_seed(bytes));
        assert_eq!(rng.next_u64(), 41_943_041);
    }

    #[test]
    fn unit_intervals_respect_their_open_ends() {
        let mut rng = SimRng::new(1, "bounds");
        for _ in 0..200_000 {
            let closed_open = rng.uniform01();
            assert!((0.0..1.0).contains(&closed_open));
            let open_closed = rng.open01();
            assert!(open_closed > 0.0 && open_closed <= 1.0);
        }
        // The extreme words map to the extreme grid points.
        assert_eq!(closed_open_unit(u64::MAX), 1.0 - UNIT_53);
        assert_eq!(closed_open_unit(0), 0.0);
        assert_eq!(open_closed_unit(u64::MAX), 1.0);
        assert_eq!(open_closed_unit(0), UNIT_53);
    }

    #[test]
    fn below_has_no_modulo_or_rounding_bias() {
        // n = 3·2^62 exposes both classic mistakes at 200k samples:
        // - `x % n` puts 62.5% of outputs in the lower half instead of 50%;
        // - multiply-shift without rejection returns multiples of 3 half the time
        //   instead of a third.
        // Standard errors: sqrt(0.25/200k) = 0.0011 and sqrt((2/9)/200k) = 0.0011; the
        // tolerance is 5 of them (0.0056), far below the 0.125 and 0.167 biases.
        let n = 3u64 << 62;
        let samples = 200_000;
        let mut rng = SimRng::new(5, "below");
        let (mut lower_half, mut multiple_of_three) = (0u32, 0u32);
        for _ in 0..samples {
            let x = rng.below(n);
            assert!(x < n);
            lower_half += u32::from(x < n / 2);
            multiple_of_three += u32::from(x % 3 == 0);
        }
        let lower = f64::from(lower_half) / f64::from(samples);
        let threes = f64::from(multiple_of_three) / f64::from(samples);
        assert!((lower - 0.5).abs() < 0.0056, "lower half {lower}");
        assert!(
            (threes - 1.0 / 3.0).abs() < 0.0056,
            "multiples of 3 {threes}"
        );

        // Small n: each of 6 counts is Binomial(60k, 1/6), sd = 91.3; allow 5 sd.
        let mut small = SimRng::new(6, "below");
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[small.below(6) as usize] += 1;
        }
        for count in counts {
            assert!(count.abs_diff(10_000) <= 456, "{counts:?}");
        }
        assert_eq!(small.below(1), 0);
    }

    #[test]
    fn pick_and_chance_behave() {
        let mut rng = SimRng::new(8, "pick");
        let items = ["a", "b", "c"];
        for _ in 0..100 {
            assert!(items.contains(rng.pick(&items)));
        }
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
        // Binomial(100k, 0.3): sd = 145; allow 5 sd.
        let hits = (0..100_000).filter(|_| rng.chance(0.3)).count();
        assert!(hits.abs_diff(30_000) <= 725, "{hits}");
    }

    fn mean_and_variance(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, variance)
    }

    #[test]
    fn exponential_has_the_right_mean_and_variance() {
        let mut rng = SimRng::new(9, "exp");
        let values: Vec<f64> = (0..1_000_000).map(|_| rng.exponential(4.0)).collect();
        assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0));
        let (mean, variance) = mean_and_variance(&values);
        // Mean 1/4, standard error 0.25/sqrt(1e6) = 2.5e-4; allow 5.
        assert!((mean - 0.25).abs() < 5.0 * 2.5e-4, "mean {mean}");
        // Variance 1/16; the sample variance of an exponential has relative standard
        // error sqrt(8/n) = 0.0028 (fourth central moment 9/λ⁴); allow 5.
        assert!(
            (variance / 0.0625 - 1.0).abs() < 5.0 * 0.0028,
            "variance {variance}"
        );
    }

    #[test]
    fn standard_normal_has_mean_zero_and_variance_one() {
        let mut rng = SimRng::new(11, "normal");
        let values: Vec<f64> = (0..1_000_000).map(|_| rng.standard_normal()).collect();
        let (mean, variance) = mean_and_variance(&values);
        // Standard errors: 1/1000 for the mean, sqrt(2/n) = 0.0014 for the variance.
        assert!(mean.abs() < 5.0 * 0.001, "mean {mean}");
        assert!((variance - 1.0).abs() < 5.0 * 0.0014, "variance {variance}");
        let shifted = rng.normal(10.0, 0.0);
        assert_eq!(shifted, 10.0);
    }

    #[test]
    fn lognormal_has_the_requested_mean_and_cv() {
        let mut rng = SimRng::new(10, "lognormal");
        let values: Vec<f64> = (0..1_000_000)
            .map(|_| rng.lognormal_mean_cv(2.0, 0.5))
            .collect();
        let (mean, variance) = mean_and_variance(&values);
        // sd = 1, so the mean's standard error is 1e-3; allow 5.
        assert!((mean - 2.0).abs() < 5.0 * 1e-3, "mean {mean}");
        // With σ² = ln 1.25 the excess kurtosis is 5.03, so the sample variance has
        // relative standard error sqrt(7.03/n) = 0.00265, the sample sd half that, and
        // the cv about 0.5·sqrt(0.00133² + 0.0005²) = 0.00071; allow 5 (0.0036).
        let cv = variance.sqrt() / mean;
        assert!((cv - 0.5).abs() < 0.0036, "cv {cv}");
        let mut untouched = rng.clone();
        assert_eq!(rng.lognormal_mean_cv(3.0, 0.0), 3.0);
        assert_eq!(rng.next_u64(), untouched.next_u64(), "cv = 0 draws nothing");
    }

    #[test]
    fn service_times_sample_around_their_mean() {
        let mut rng = SimRng::new(3, "service");
        let mean = SimDuration::from_millis(200);
        // (distribution, standard deviation in seconds)
        let cases = [
            (ServiceTime::Exponential { mean }, 0.2),
            (ServiceTime::Deterministic(mean), 0.0),
            (ServiceTime::LogNormal { mean, cv: 2.0 }, 0.4),
            (
                ServiceTime::Uniform {
                    low: SimDuration::from_millis(100),
                    high: SimDuration::from_millis(300),
                },
                0.2 / 12f64.sqrt(),
            ),
        ];
        let samples = 400_000;
        for (service, sd) in cases {
            assert_eq!(service.mean(), mean);
            let total: u64 = (0..samples).map(|_| service.sample(&mut rng).ticks()).sum();
            let sampled = total as f64 / samples as f64 / 1e6;
            // 5 standard errors, plus half a tick of rounding.
            let tolerance = 5.0 * sd / (samples as f64).sqrt() + 1e-6;
            assert!(
                (sampled - 0.2).abs() <= tolerance,
                "{service:?}: {sampled} vs 0.2 ± {tolerance}"
            );
        }
    }

    #[test]
    fn scaling_multiplies_the_mean_and_keeps_the_shape() {
        let mean = SimDuration::from_millis(200);
        assert_eq!(
            ServiceTime::Deterministic(mean).scaled(3.0),
            ServiceTime::Deterministic(SimDuration::from_millis(600))
        );
        assert_eq!(
            ServiceTime::LogNormal { mean, cv: 1.5 }.scaled(2.5),
            ServiceTime::LogNormal {
                mean: SimDuration::from_millis(500),
                cv: 1.5
            }
        );
        let uniform = ServiceTime::Uniform {
            low: SimDuration::from_ticks(1),
            high: SimDuration::from_ticks(4),
        };
        assert_eq!(uniform.mean(), SimDuration::from_ticks(2));
        assert_eq!(
            uniform.scaled(2.0).mean(),
            SimDuration::from_ticks(5),
            "2·(1+4)/2, rounded down"
        );
        assert_eq!(
            ServiceTime::Exponential { mean }.scaled(f64::NAN).mean(),
            SimDuration::ZERO
        );
        assert_eq!(
            ServiceTime::Exponential { mean }.scaled(-1.0).mean(),
            SimDuration::ZERO
        );
    }

    /// The exact pmf: P(rank k) = (k+1)^−s / Σ_j j^−s.
    fn zipf_pmf(n: u64, s: f64) -> Vec<f64> {
        let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        weights.iter().map(|w| w / total).collect()
    }

    /// The chi-square quantile by the Wilson–Hilferty approximation (accurate to well
    /// under 1% at these degrees of freedom and tail).
    fn chi_square_quantile(degrees: f64, z: f64) -> f64 {
        let a = 2.0 / (9.0 * degrees);
        degrees * (1.0 - a + z * a.sqrt()).powi(3)
    }

    #[test]
    fn zipf_matches_its_exact_distribution() {
        let samples = 200_000usize;
        for n in [1u64, 10, 1000] {
            for s in [0.0, 0.5, 0.99, 1.0, 1.2, 2.0] {
                let zipf = Zipf::new(n, s).unwrap();
                let mut rng = SimRng::new(77, "zipf");
                let mut counts = vec![0u64; n as usize];
                for _ in 0..samples {
                    let rank = zipf.sample(&mut rng);
                    assert!(rank < n, "n={n} s={s}: rank {rank}");
                    counts[rank as usize] += 1;
                }
                let pmf = zipf_pmf(n, s);
                if n == 1 {
                    assert_eq!(counts[0], samples as u64);
                    continue;
                }
                // Top ranks one by one: within 5 binomial standard errors.
                for rank in 0..(n as usize).min(10) {
                    let expected = pmf[rank];
                    let observed = counts[rank] as f64 / samples as f64;
                    let standard_error = (expected * (1.0 - expected) / samples as f64).sqrt();
                    assert!(
                        (observed - expected).abs() <= 5.0 * standard_error,
                        "n={n} s={s} rank {rank}: observed {observed}, expected {expected}"
                    );
                }
                // Whole distribution: Pearson chi-square over ranks with an expected count
                // of at least 5, the rest pooled into one tail bin, against the upper
                // 1e-6 quantile (z = 4.753), so a correct sampler fails about once in a
                // million seeds while a wrong tail or off-by-one shows up clearly.
                let mut statistic = 0.0;
                let mut bins = 0usize;
                let (mut tail_expected, mut tail_observed) = (0.0, 0.0);
                for (p, &count) in pmf.iter().zip(&counts) {
                    let expected = p * samples as f64;
                    if expected >= 5.0 {
                        statistic += (count as f64 - expected).powi(2) / expected;
                        bins += 1;
                    } else {
                        tail_expected += expected;
                        tail_observed += count as f64;
                    }
                }
                if tail_expected > 0.0 {
                    statistic += (tail_observed - tail_expected).powi(2) / tail_expected;
                    bins += 1;
                }
                let limit = chi_square_quantile((bins - 1) as f64, 4.753);
                assert!(
                    statistic <= limit,
                    "n={n} s={s}: chi-square {statistic:.1} over {bins} bins, limit {limit:.1}"
                );
            }
        }
    }

    #[test]
    fn zipf_helpers_are_continuous_through_their_series() {
        for x in [1e-8, 1.000_001e-8, -1e-8, -1.000_001e-8, 0.0] {
            let direct_log = if x == 0.0 { 1.0 } else { libm::log1p(x) / x };
            let direct_exp = if x == 0.0 { 1.0 } else { libm::expm1(x) / x };
            assert!((helper_log1p(x) - direct_log).abs() < 1e-15, "{x}");
            assert!((helper_expm1(x) - direct_exp).abs() < 1e-15, "{x}");
        }
        // s = 1 and s next to it give nearly the same H, and H⁻¹ inverts H.
        for s in [1.0f64, 1.0 - 1e-12, 1.0 + 1e-12, 0.5, 2.0] {
            for x in [1.5, 2.5, 10.5, 1000.5] {
                if (s - 1.0).abs() < 1e-9 {
                    // H(x) → ln x as s → 1; the error is about |1 − s|·ln²x/2.
                    assert!(
                        (h_integral(x, s) - libm::log(x)).abs() < 1e-10,
                        "s={s} x={x}"
                    );
                }
                let back = h_integral_inverse(h_integral(x, s), s);
                assert!((back - x).abs() < 1e-9 * x, "s={s} x={x}: {back}");
            }
        }
        assert_eq!(h_integral(7.0, 1.0), libm::log(7.0));
    }

    #[test]
    fn zipf_rejects_bad_parameters() {
        assert_eq!(Zipf::new(0, 1.0), Err(ZipfError::NoRanks));
        assert!(matches!(
            Zipf::new(10, -0.5),
            Err(ZipfError::BadExponent(_))
        ));
        assert!(Zipf::new(10, f64::NAN).is_err());
        assert!(Zipf::new(10, f64::INFINITY).is_err());
        let message = Zipf::new(10, -0.5).unwrap_err().to_string();
        assert!(
            message.contains("exponent s") && message.contains("≥ 0"),
            "{message}"
        );
        let zipf = Zipf::new(u64::MAX, 1.1).unwrap();
        let mut rng = SimRng::new(1, "zipf-huge");
        for _ in 0..1000 {
            zipf.sample(&mut rng);
        }
        assert_eq!((zipf.n(), zipf.exponent()), (u64::MAX, 1.1));
    }
}
