//! Streaming latency histogram with log-spaced buckets (HDR-style): constant memory,
//! O(1) recording, percentiles within a known relative error, exact count, sum, min, max.
//!
//! Values below 2^p get a bucket each; every power of two above is split into 2^p equal
//! sub-buckets, so any recorded value lies within a relative 2^−p of its bucket's
//! representative. p = 6 (1.6%) for whole-run figures, p = 3 (12.5%) per chart point.
//! (G. Tene, HdrHistogram, uses the same layout.)

use super::time::SimDuration;

/// Sub-bucket bits for whole-run percentiles: within 1/64 ≈ 1.6%.
pub const PRECISE: u32 = 6;
/// Sub-bucket bits for per-point chart percentiles: within 1/8 = 12.5%.
pub const COMPACT: u32 = 3;

/// A histogram of durations (in ticks).
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyHistogram {
    sub_bits: u32,
    /// Counts per bucket, grown lazily up to the highest bucket seen.
    buckets: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl LatencyHistogram {
    /// An empty histogram whose relative error is at most 2^−`sub_bits` (1 ≤ bits ≤ 10).
    pub fn new(sub_bits: u32) -> Self {
        assert!((1..=10).contains(&sub_bits), "sub_bits must be 1..=10");
        LatencyHistogram {
            sub_bits,
            buckets: Vec::new(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    #[inline(always)]
    fn bucket_of(&self, value: u64) -> usize {
        let sub = 1u64 << self.sub_bits;
        if value < sub {
            value as usize
        } else {
            let exponent = 63 - value.leading_zeros();
            let group = (exponent - self.sub_bits + 1) as u64;
            (group * sub + ((value >> (exponent - self.sub_bits)) - sub)) as usize
        }
    }

    /// The smallest value that lands in `bucket`.
    fn bucket_low(&self, bucket: usize) -> u64 {
        let sub = 1u64 << self.sub_bits;
        let bucket = bucket as u64;
        if bucket < sub {
            bucket
        } else {
            let group = bucket / sub;
            let offset = bucket % sub;
            (sub + offset) << (group - 1)
        }
    }

    /// The middle of `bucket`'s value range.
    fn bucket_middle(&self, bucket: usize) -> u64 {
        let low = self.bucket_low(bucket);
        let next = if bucket >= self.bucket_of(u64::MAX) {
            u64::MAX
        } else {
            self.bucket_low(bucket + 1)
        };
        low + (next - low) / 2
    }

    /// Records one duration.
    #[inline(always)]
    pub fn record(&mut self, duration: SimDuration) {
        let value = duration.ticks();
        let bucket = self.bucket_of(value);
        match self.buckets.get_mut(bucket) {
            Some(count) => *count += 1,
            None => self.grow_to(bucket),
        }
        self.count += 1;
        self.sum += value as u128;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Grows the bucket array to hold `bucket` and counts one value there.
    #[cold]
    #[inline(never)]
    fn grow_to(&mut self, bucket: usize) {
        self.buckets.resize(bucket + 1, 0);
        self.buckets[bucket] = 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact sum of every recorded value, in ticks.
    pub fn sum_ticks(&self) -> u128 {
        self.sum
    }

    /// Exact mean in seconds, or `None` when empty.
    pub fn mean_secs(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64 / 1e6)
    }

    pub fn min(&self) -> Option<SimDuration> {
        (self.count > 0).then(|| SimDuration::from_ticks(self.min))
    }

    pub fn max(&self) -> Option<SimDuration> {
        (self.count > 0).then(|| SimDuration::from_ticks(self.max))
    }

    /// How many recorded values were exactly zero (e.g. requests that never waited).
    pub fn zero_count(&self) -> u64 {
        self.buckets.first().copied().unwrap_or(0)
    }

    /// The `q`-quantile (0 ≤ q ≤ 1): the representative of the bucket holding the
    /// ⌈q·count⌉-th smallest value, clamped to [min, max]. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<SimDuration> {
        if self.count == 0 {
            return None;
        }
        if q <= 0.0 {
            return self.min();
        }
        if q >= 1.0 {
            return self.max();
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bucket, &count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let value = self.bucket_middle(bucket).clamp(self.min, self.max);
                return Some(SimDuration::from_ticks(value));
            }
        }
        self.max()
    }

    /// The quantile in seconds, 0.0 when empty (for summaries and charts).
    pub fn quantile_secs(&self, q: f64) -> f64 {
        self.quantile(q).map_or(0.0, SimDuration::as_secs_f64)
    }

    /// Adds every value recorded in `other` (same precision required).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        assert_eq!(
            self.sub_bits, other.sub_bits,
            "merging histograms of different precision"
        );
        if other.buckets.len() > self.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Forgets every value, keeping the allocation.
    pub fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|count| *count = 0);
        self.count = 0;
        self.sum = 0;
        self.min = u64::MAX;
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(value: u64) -> SimDuration {
        SimDuration::from_ticks(value)
    }

    /// A small deterministic generator for test data (xorshift64).
    fn values(count: usize, mut state: u64, map: impl Fn(u64) -> u64) -> Vec<u64> {
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                map(state)
            })
            .collect()
    }

    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_are_within_the_stated_relative_error() {
        let uniform = values(100_000, 1, |x| x % 1_000_000);
        let heavy = values(100_000, 2, |x| {
            let exponent = x % 30;
            (1u64 << exponent) + (x >> 40) % (1u64 << exponent)
        });
        for (name, data) in [("uniform", uniform), ("heavy-tailed", heavy)] {
            for bits in [PRECISE, COMPACT] {
                let mut histogram = LatencyHistogram::new(bits);
                for &value in &data {
                    histogram.record(ticks(value));
                }
                let mut sorted = data.clone();
                sorted.sort_unstable();
                let tolerance = 1.0 / (1u64 << bits) as f64;
                for q in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999] {
                    let exact = exact_quantile(&sorted, q) as f64;
                    let estimate = histogram.quantile(q).unwrap().ticks() as f64;
                    let error = (estimate - exact).abs() / exact.max(1.0);
                    assert!(
                        error <= tolerance,
                        "{name} bits={bits} q={q}: estimate {estimate} exact {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn count_sum_min_max_are_exact() {
        let mut histogram = LatencyHistogram::new(PRECISE);
        for value in [5, 1_000, 77, 123_456_789] {
            histogram.record(ticks(value));
        }
        assert_eq!(histogram.count(), 4);
        assert_eq!(histogram.sum_ticks(), 5 + 1_000 + 77 + 123_456_789);
        assert_eq!(histogram.min(), Some(ticks(5)));
        assert_eq!(histogram.max(), Some(ticks(123_456_789)));
        assert_eq!(histogram.quantile(0.0), Some(ticks(5)));
        assert_eq!(histogram.quantile(1.0), Some(ticks(123_456_789)));
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let data = values(10_000, 3, |x| x % 50_000_000);
        let (left, right) = data.split_at(4_000);
        let mut whole = LatencyHistogram::new(COMPACT);
        let mut a = LatencyHistogram::new(COMPACT);
        let mut b = LatencyHistogram::new(COMPACT);
        data.iter().for_each(|&v| whole.record(ticks(v)));
        left.iter().for_each(|&v| a.record(ticks(v)));
        right.iter().for_each(|&v| b.record(ticks(v)));
        a.merge(&b);
        assert_eq!(a, whole);
    }

    #[test]
    fn empty_histograms_have_no_quantiles() {
        let histogram = LatencyHistogram::new(PRECISE);
        assert_eq!(histogram.quantile(0.5), None);
        assert_eq!(histogram.mean_secs(), None);
        assert_eq!(histogram.quantile_secs(0.99), 0.0);
    }

    #[test]
    fn boundary_values_land_in_their_own_buckets() {
        let mut histogram = LatencyHistogram::new(PRECISE);
        for value in [0, 1, 63, 64, 65, 127, 128, u64::MAX] {
            histogram.record(ticks(value));
            let bucket = histogram.bucket_of(value);
            assert!(histogram.bucket_low(bucket) <= value, "value {value}");
        }
        assert_eq!(histogram.zero_count(), 1);
        assert_eq!(histogram.bucket_of(63) + 1, histogram.bucket_of(64));
        assert_eq!(histogram.quantile(1.0), Some(ticks(u64::MAX)));
        // Memory is bounded by the bucket count for the largest possible value.
        assert!(histogram.buckets.len() <= 58 * 64 + 64);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut histogram = LatencyHistogram::new(COMPACT);
        histogram.record(ticks(10));
        histogram.clear();
        assert_eq!(histogram.count(), 0);
        assert_eq!(histogram.quantile(0.5), None);
    }
}
