//! Seeded, portable randomness: one pinned generator per named stream, and every mapping
//! from random bits to numbers (uniform, exponential, normal, log-normal, Zipf) written
//! here, so a seed replays the same run on every build and platform, forever.
//!
//! The generator is xoshiro256++ (Blackman & Vigna, "Scrambled linear pseudorandom number
//! generators", ACM TOMS 2021) from `rand_xoshiro`; its state is expanded from
//! `seed ^ fnv1a64(stream)` with SplitMix64 (Steele, Lea & Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014). Transcendental functions come from
//! `libm`, not from the platform, so native and wasm agree bit for bit.

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::time::SimDuration;

/// FNV-1a, 64-bit (Fowler, Noll, Vo; offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a64(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// One step of SplitMix64: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded random stream.
#[derive(Clone, Debug)]
pub struct SimRng(Xoshiro256PlusPlus);

impl SimRng {
    /// The stream named `stream` of run seed `seed`. Different names give independent
    /// streams, so e.g. arrivals stay identical when a variant draws service times
    /// differently.
    pub fn new(seed: u64, stream: &str) -> Self {
        let mut state = seed ^ fnv1a64(stream);
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        SimRng(Xoshiro256PlusPlus::from_seed(bytes))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn uniform01(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    pub fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [low, high).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform01()
    }

    /// Uniform whole number in [0, n), without modulo bias (Lemire, "Fast random integer
    /// generation in an interval", ACM TOMACS 2019). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no valid answer");
        let mut product = self.next_u64() as u128 * n as u128;
        let mut low = product as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                product = self.next_u64() as u128 * n as u128;
                low = product as u64;
            }
        }
        (product >> 64) as u64
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform01() < p
    }

    /// Exponential with the given rate (mean 1/rate), by inversion: −ln(U)/rate.
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -libm::log(self.open01()) / rate
    }

    /// Standard normal by the Box–Muller transform (one value per two uniforms).
    pub fn standard_normal(&mut self) -> f64 {
        let radius = libm::sqrt(-2.0 * libm::log(self.open01()));
        let angle = 2.0 * std::f64::consts::PI * self.uniform01();
        radius * libm::cos(angle)
    }

    pub fn normal(&mut self, mean: f64, standard_deviation: f64) -> f64 {
        mean + standard_deviation * self.standard_normal()
    }

    /// Log-normal with arithmetic mean `mean` and coefficient of variation `cv`:
    /// σ² = ln(1 + cv²), μ = ln(mean) − σ²/2. `cv = 0` returns `mean` exactly.
    pub fn lognormal_mean_cv(&mut self, mean: f64, cv: f64) -> f64 {
        if cv <= 0.0 {
            return mean;
        }
        let sigma_squared = libm::log1p(cv * cv);
        let mu = libm::log(mean) - sigma_squared / 2.0;
        libm::exp(mu + libm::sqrt(sigma_squared) * self.standard_normal())
    }

    /// One element of a non-empty slice, uniformly.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How long one unit of work takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServiceTime {
    Exponential { mean: SimDuration },
    Deterministic(SimDuration),
    LogNormal { mean: SimDuration, cv: f64 },
    Uniform { low: SimDuration, high: SimDuration },
}

impl ServiceTime {
    pub fn sample(&self, rng: &mut SimRng) -> SimDuration {
        match *self {
            ServiceTime::Exponential { mean } => {
                // In ticks directly: no division on this hot path.
                let ticks = mean.ticks() as f64 * -libm::log(rng.open01());
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

    pub fn mean(&self) -> SimDuration {
        match *self {
            ServiceTime::Exponential { mean }
            | ServiceTime::Deterministic(mean)
            | ServiceTime::LogNormal { mean, .. } => mean,
            ServiceTime::Uniform { low, high } => {
                SimDuration::from_ticks(low.ticks() / 2 + high.ticks() / 2)
            }
        }
    }

    /// The same shape with every duration multiplied by `factor` (a slow-down injection).
    pub fn scaled(&self, factor: f64) -> ServiceTime {
        let scale = |d: SimDuration| SimDuration::from_secs_f64(d.as_secs_f64() * factor);
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

/// Why a Zipf distribution could not be built.
#[derive(Clone, Debug, PartialEq)]
pub struct ZipfError(pub String);

impl std::fmt::Display for ZipfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Zipf over ranks 0..n (rank 0 most popular): P(k) ∝ 1/(k+1)^s.
///
/// Sampled by rejection-inversion (W. Hörmann & G. Derflinger, "Rejection-inversion to
/// generate variates from monotone discrete distributions", ACM TOMACS 6(3), 1996), the
/// method of Apache Commons RNG's `RejectionInversionZipfSampler`: O(1) memory, O(1)
/// expected time, exact for every s ≥ 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Zipf {
    n: u64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    pub fn new(n: u64, exponent: f64) -> Result<Zipf, ZipfError> {
        if n == 0 {
            return Err(ZipfError("Zipf needs at least one key (n ≥ 1)".into()));
        }
        if !(exponent.is_finite() && exponent >= 0.0) {
            return Err(ZipfError(format!(
                "Zipf exponent must be a finite number ≥ 0, got {exponent}"
            )));
        }
        let mut zipf = Zipf {
            n,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        zipf.h_integral_x1 = zipf.h_integral(1.5) - 1.0;
        zipf.h_integral_n = zipf.h_integral(n as f64 + 0.5);
        zipf.s = 2.0 - zipf.h_integral_inverse(zipf.h_integral(2.5) - zipf.h(2.0));
        Ok(zipf)
    }

    pub fn keys(&self) -> u64 {
        self.n
    }

    /// A rank in 0..n.
    pub fn sample(&self, rng: &mut SimRng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.uniform01() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let mut k = (x + 0.5) as u64;
            k = k.clamp(1, self.n);
            let kf = k as f64;
            if kf - x <= self.s || u >= self.h_integral(kf + 0.5) - self.h(kf) {
                return k - 1;
            }
        }
    }

    /// H(x) = ∫ h, with h(x) = x^−s: (x^(1−s) − 1)/(1−s), continuous through s = 1.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = libm::log(x);
        helper2((1.0 - self.exponent) * log_x) * log_x
    }

    fn h(&self, x: f64) -> f64 {
        libm::exp(-self.exponent * libm::log(x))
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let mut t = x * (1.0 - self.exponent);
        if t < -1.0 {
            // Guards against rounding pushing the argument outside the domain.
            t = -1.0;
        }
        libm::exp(helper1(t) * x)
    }
}

/// ln(1 + x)/x, with its series near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        libm::log1p(x) / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x − 1)/x, with its series near 0.
fn helper2(x: f64) -> f64 {
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
    }

    #[test]
    fn streams_and_seeds_are_independent() {
        let first = |seed, stream| SimRng::new(seed, stream).next_u64();
        assert_ne!(first(42, "arrivals"), first(42, "service"));
        assert_ne!(first(42, "arrivals"), first(43, "arrivals"));
    }

    /// Pins the algorithm: if any of these change, every share link's run changes.
    #[test]
    fn golden_values_for_seed_42_arrivals() {
        let mut rng = SimRng::new(42, "arrivals");
        let words: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let exp_bits = rng.exponential(2.0).to_bits();
        let lognormal_bits = rng.lognormal_mean_cv(1.0, 0.5).to_bits();
        assert_eq!(
            (words, exp_bits, lognormal_bits),
            (
                GOLDEN_WORDS.to_vec(),
                GOLDEN_EXP_BITS,
                GOLDEN_LOGNORMAL_BITS
            )
        );
    }
    const GOLDEN_WORDS: [u64; 3] = [
        10266871625073011064,
        13492960174643469289,
        6077065364415705241,
    ];
    const GOLDEN_EXP_BITS: u64 = 4580168743866681114;
    const GOLDEN_LOGNORMAL_BITS: u64 = 4604479554580390069;

    #[test]
    fn unit_intervals_respect_their_open_ends() {
        let mut rng = SimRng::new(1, "bounds");
        for _ in 0..100_000 {
            let closed_open = rng.uniform01();
            assert!((0.0..1.0).contains(&closed_open));
            let open_closed = rng.open01();
            assert!(open_closed > 0.0 && open_closed <= 1.0);
        }
    }

    #[test]
    fn below_is_unbiased() {
        // n = 3·2^62 makes plain modulo visibly biased toward small values (two thirds of
        // outputs would land in the lower half); Lemire's method is not.
        let n = 3u64 << 62;
        let mut rng = SimRng::new(5, "below");
        let samples = 200_000;
        let lower_half = (0..samples).filter(|_| rng.below(n) < n / 2).count();
        let fraction = lower_half as f64 / samples as f64;
        // Standard error of a fair coin at 200k samples is 0.0011; allow 5 of them.
        assert!((fraction - 0.5).abs() < 0.0056, "fraction {fraction}");
        let mut small = SimRng::new(6, "below");
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[small.below(6) as usize] += 1;
        }
        for count in counts {
            assert!((9_500..=10_500).contains(&count), "{counts:?}");
        }
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
        let (mean, variance) = mean_and_variance(&values);
        // Standard error of the mean: 0.25/1000; tolerance 5 standard errors.
        assert!((mean - 0.25).abs() < 5.0 * 0.25 / 1000.0, "mean {mean}");
        assert!(
            (variance - 0.0625).abs() / 0.0625 < 0.02,
            "variance {variance}"
        );
    }

    #[test]
    fn lognormal_has_the_requested_mean_and_cv() {
        let mut rng = SimRng::new(10, "lognormal");
        let values: Vec<f64> = (0..1_000_000)
            .map(|_| rng.lognormal_mean_cv(2.0, 0.5))
            .collect();
        let (mean, variance) = mean_and_variance(&values);
        assert!((mean - 2.0).abs() < 5.0 * 1.0 / 1000.0, "mean {mean}");
        let cv = variance.sqrt() / mean;
        assert!((cv - 0.5).abs() < 0.01, "cv {cv}");
        assert_eq!(rng.lognormal_mean_cv(3.0, 0.0), 3.0);
    }

    #[test]
    fn service_times_sample_around_their_mean() {
        let mut rng = SimRng::new(3, "service");
        let mean = SimDuration::from_millis(200);
        for service in [
            ServiceTime::Exponential { mean },
            ServiceTime::Deterministic(mean),
            ServiceTime::LogNormal { mean, cv: 2.0 },
            ServiceTime::Uniform {
                low: SimDuration::from_millis(100),
                high: SimDuration::from_millis(300),
            },
        ] {
            assert_eq!(service.mean(), mean);
            let total: u64 = (0..200_000).map(|_| service.sample(&mut rng).ticks()).sum();
            let sampled = total as f64 / 200_000.0 / 1e6;
            assert!((sampled - 0.2).abs() < 0.01, "{service:?}: {sampled}");
        }
        assert_eq!(
            ServiceTime::Deterministic(mean).scaled(3.0),
            ServiceTime::Deterministic(SimDuration::from_millis(600))
        );
    }

    fn zipf_pmf(n: u64, s: f64) -> Vec<f64> {
        let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        weights.iter().map(|w| w / total).collect()
    }

    #[test]
    fn zipf_matches_its_exact_distribution() {
        for n in [1u64, 10, 1000] {
            for s in [0.0, 0.5, 0.99, 1.0, 1.2, 2.0] {
                let zipf = Zipf::new(n, s).unwrap();
                let mut rng = SimRng::new(77, "zipf");
                let samples = 200_000usize;
                let mut counts = vec![0u32; n as usize];
                for _ in 0..samples {
                    let rank = zipf.sample(&mut rng);
                    assert!(rank < n);
                    counts[rank as usize] += 1;
                }
                let pmf = zipf_pmf(n, s);
                for rank in 0..(n as usize).min(10) {
                    let expected = pmf[rank];
                    let observed = counts[rank] as f64 / samples as f64;
                    let standard_error = (expected * (1.0 - expected) / samples as f64).sqrt();
                    assert!(
                        (observed - expected).abs() <= 5.0 * standard_error + 1e-12,
                        "n={n} s={s} rank {rank}: observed {observed}, expected {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn zipf_rejects_bad_parameters() {
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(10, -0.5).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
    }

    #[test]
    fn fnv1a_matches_published_test_vectors() {
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64("foobar"), 0x8594_4171_f739_67e8);
    }
}
