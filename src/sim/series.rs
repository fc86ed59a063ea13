//! Whole-run time series for live charts, in bounded memory: at most `capacity` points;
//! when the run outgrows them, adjacent pairs merge and the point width doubles. Counts
//! merge exactly, latency histograms merge exactly, gauges keep last / max / time-weighted
//! mean.

use super::histogram::{LatencyHistogram, COMPACT};
use super::time::{SimDuration, SimTime};

/// One gauge's statistics over one point. Gauges are whole numbers (requests waiting,
/// servers busy, workers running); their time integrals are kept in value·ticks as f64:
/// exact up to 2^53, never divided on the hot path, and identical on every platform
/// (plain IEEE multiply and add; wasm has no native 128-bit multiply).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaugeStat {
    /// Value at the end of the point (or now, for the open point).
    pub last: i64,
    /// Highest value held during the point.
    pub max: i64,
    /// ∫ value dt over the part of the point already closed, in value·ticks.
    area: f64,
}

/// Counts of what happened to requests during one point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointCounts {
    pub generated: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl PointCounts {
    fn add(&mut self, other: &PointCounts) {
        self.generated += other.generated;
        self.completed += other.completed;
        self.failed += other.failed;
        self.rejected += other.rejected;
        self.dropped += other.dropped;
        self.duplicated += other.duplicated;
    }
}

/// One chart point: [start, start + width).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoint {
    pub start: SimTime,
    pub counts: PointCounts,
    /// Latencies of requests completed during the point.
    pub latency: LatencyHistogram,
    gauges: Vec<GaugeStat>,
}

/// Which count to add to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountKind {
    Generated,
    Completed,
    Failed,
    Rejected,
    Dropped,
    Duplicated,
}

#[derive(Clone, Copy, Debug)]
struct GaugeNow {
    value: i64,
    since: SimTime,
    /// ∫ value dt from time zero to `since` in value·ticks, over the whole run.
    total_area: f64,
}

/// The series. Recording times must never decrease.
#[derive(Clone, Debug)]
pub struct TimeSeries {
    width: SimDuration,
    capacity: usize,
    points: Vec<SeriesPoint>,
    gauges: Vec<GaugeNow>,
    /// Cached start and end of the last point, in ticks (the hot path's bounds check).
    last_start_ticks: u64,
    open_end_ticks: u64,
}

impl TimeSeries {
    /// `capacity` ≥ 2 points of initial width `min_width` (> 0), with `gauge_count` gauges
    /// all starting at 0.
    pub fn new(capacity: usize, min_width: SimDuration, gauge_count: usize) -> Self {
        assert!(capacity >= 2, "a series needs room for at least two points");
        assert!(
            min_width > SimDuration::ZERO,
            "points need a positive width"
        );
        TimeSeries {
            width: min_width,
            capacity: capacity & !1,
            points: Vec::new(),
            gauges: vec![
                GaugeNow {
                    value: 0,
                    since: SimTime::ZERO,
                    total_area: 0.0,
                };
                gauge_count
            ],
            last_start_ticks: 0,
            open_end_ticks: 0,
        }
    }

    /// Current width of every point.
    pub fn bucket_width(&self) -> SimDuration {
        self.width
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn points(&self) -> &[SeriesPoint] {
        &self.points
    }

    /// Adds one to a count at time `t`.
    #[inline]
    pub fn count(&mut self, t: SimTime, kind: CountKind) {
        let counts = &mut self.point_at(t).counts;
        match kind {
            CountKind::Generated => counts.generated += 1,
            CountKind::Completed => counts.completed += 1,
            CountKind::Failed => counts.failed += 1,
            CountKind::Rejected => counts.rejected += 1,
            CountKind::Dropped => counts.dropped += 1,
            CountKind::Duplicated => counts.duplicated += 1,
        }
    }

    /// Records a completion at `t` with its latency.
    #[inline]
    pub fn completed(&mut self, t: SimTime, latency: SimDuration) {
        let point = self.point_at(t);
        point.counts.completed += 1;
        point.latency.record(latency);
    }

    /// Sets gauge `gauge` to `value` from time `t` on.
    #[inline(always)]
    pub fn set_gauge(&mut self, gauge: usize, t: SimTime, value: i64) {
        let state = &mut self.gauges[gauge];
        if state.value == value {
            return;
        }
        // Hot path: the gauge's last change and `t` both fall in the last point.
        if t.ticks() < self.open_end_ticks && state.since.ticks() >= self.last_start_ticks {
            let area = state.value as f64 * (t - state.since).ticks() as f64;
            state.total_area += area;
            state.since = t;
            state.value = value;
            let last = self.points.len() - 1;
            let stat = &mut self.points[last].gauges[gauge];
            stat.area += area;
            stat.last = value;
            stat.max = stat.max.max(value);
        } else {
            self.set_gauge_across_points(gauge, t, value);
        }
    }

    #[cold]
    #[inline(never)]
    fn set_gauge_across_points(&mut self, gauge: usize, t: SimTime, value: i64) {
        if t.ticks() >= self.open_end_ticks {
            self.ensure_points(self.index_of(t));
        }
        self.close_area(gauge, t);
        self.gauges[gauge].value = value;
        let stat = &mut self.point_at(t).gauges[gauge];
        stat.last = value;
        stat.max = stat.max.max(value);
    }

    /// Adds the current value's area from its `since` up to `t` into the points it
    /// spans, then moves `since` to `t`.
    fn close_area(&mut self, gauge: usize, t: SimTime) {
        let GaugeNow { value, since, .. } = self.gauges[gauge];
        let elapsed = (t - since).ticks();
        if elapsed > 0 && value != 0 && since.ticks() >= self.last_start_ticks {
            // Common case: the whole span lies in the last point.
            let last = self.points.len() - 1;
            self.points[last].gauges[gauge].area += value as f64 * elapsed as f64;
        } else if elapsed > 0 && value != 0 {
            let mut cursor = since;
            let mut index = self.index_of(since);
            while cursor < t {
                let point_end = self.points[index].start + self.width;
                let segment_end = point_end.min(t);
                self.points[index].gauges[gauge].area +=
                    value as f64 * (segment_end - cursor).ticks() as f64;
                cursor = segment_end;
                index += 1;
            }
        }
        let state = &mut self.gauges[gauge];
        state.total_area += value as f64 * elapsed as f64;
        state.since = t;
    }

    /// Time-weighted mean of `gauge` over point `index`, counting the open part up to
    /// `now` at the current value.
    pub fn gauge_mean(&self, index: usize, gauge: usize, now: SimTime) -> f64 {
        let point = &self.points[index];
        let start = point.start;
        let end = (start + self.width).min(now.max(start));
        let span = (end - start).ticks();
        let state = self.gauges[gauge];
        let open_from = state.since.max(start);
        let open = if end > open_from {
            state.value as f64 * (end - open_from).ticks() as f64
        } else {
            0.0
        };
        if span > 0 {
            (point.gauges[gauge].area + open) / span as f64
        } else {
            point.gauges[gauge].last as f64
        }
    }

    /// Last and max of `gauge` over point `index`.
    pub fn gauge_stat(&self, index: usize, gauge: usize) -> GaugeStat {
        self.points[index].gauges[gauge]
    }

    /// Time-weighted mean of `gauge` over the whole run [0, now): exact, unaffected by
    /// point merging (Little's law checks use it).
    pub fn gauge_run_mean(&self, gauge: usize, now: SimTime) -> f64 {
        let state = self.gauges[gauge];
        let area = state.total_area + state.value as f64 * (now - state.since).ticks() as f64;
        if now.ticks() > 0 {
            area / now.ticks() as f64
        } else {
            state.value as f64
        }
    }

    fn index_of(&self, t: SimTime) -> usize {
        (t.ticks() / self.width.ticks()) as usize
    }

    /// The end of the last point: times below it (and not before it, since times never
    /// decrease) land in the last point without a division.
    fn open_end(&self) -> SimTime {
        SimTime::from_ticks(self.points.len() as u64 * self.width.ticks())
    }

    #[inline]
    fn point_at(&mut self, t: SimTime) -> &mut SeriesPoint {
        if t.ticks() >= self.open_end_ticks {
            self.ensure_points(self.index_of(t));
        }
        let index = if t.ticks() >= self.last_start_ticks {
            self.points.len() - 1
        } else {
            self.index_of(t)
        };
        &mut self.points[index]
    }

    /// Makes sure the point for index `index` exists, halving resolution as needed.
    fn ensure_points(&mut self, mut index: usize) {
        while index >= self.capacity {
            self.merge_pairs();
            index /= 2;
        }
        while self.points.len() <= index {
            let start = SimTime::from_ticks(self.points.len() as u64 * self.width.ticks());
            let gauges = self
                .gauges
                .iter()
                .map(|g| GaugeStat {
                    last: g.value,
                    max: g.value,
                    area: 0.0,
                })
                .collect();
            self.points.push(SeriesPoint {
                start,
                counts: PointCounts::default(),
                latency: LatencyHistogram::new(COMPACT),
                gauges,
            });
        }
        self.open_end_ticks = self.open_end().ticks();
        self.last_start_ticks = self.open_end_ticks - self.width.ticks();
    }

    fn merge_pairs(&mut self) {
        let old = std::mem::take(&mut self.points);
        let mut merged = Vec::with_capacity(self.capacity);
        let mut pairs = old.into_iter();
        while let Some(mut first) = pairs.next() {
            if let Some(second) = pairs.next() {
                first.counts.add(&second.counts);
                first.latency.merge(&second.latency);
                for (mine, theirs) in first.gauges.iter_mut().zip(&second.gauges) {
                    mine.last = theirs.last;
                    mine.max = mine.max.max(theirs.max);
                    mine.area += theirs.area;
                }
            }
            merged.push(first);
        }
        self.points = merged;
        self.width = SimDuration::from_ticks(self.width.ticks() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: f64) -> SimTime {
        SimTime::from_secs_f64(seconds)
    }

    #[test]
    fn an_hour_at_1000_per_second_stays_within_capacity_and_loses_nothing() {
        let mut series = TimeSeries::new(240, SimDuration::from_millis(100), 1);
        let mut total = 0u64;
        for i in 0..3_600_000u64 {
            let t = SimTime::from_ticks(i * 1000);
            series.count(t, CountKind::Generated);
            series.completed(t, SimDuration::from_millis(5 + i % 50));
            if i % 1000 == 0 {
                series.set_gauge(0, t, (i % 7) as i64);
            }
            total += 1;
        }
        assert!(series.len() <= 240, "{} points", series.len());
        let generated: u64 = series.points().iter().map(|p| p.counts.generated).sum();
        let completed: u64 = series.points().iter().map(|p| p.latency.count()).sum();
        assert_eq!(generated, total);
        assert_eq!(completed, total);
        // 100 ms doubled until 240 points cover an hour: 25.6 s per point.
        assert_eq!(series.bucket_width(), SimDuration::from_millis(25_600));
    }

    #[test]
    fn width_doubles_exactly_when_the_capacity_is_exceeded() {
        let mut series = TimeSeries::new(4, SimDuration::from_secs(1), 0);
        series.count(secs(3.5), CountKind::Failed);
        assert_eq!(series.bucket_width(), SimDuration::from_secs(1));
        assert_eq!(series.len(), 4);
        series.count(secs(4.0), CountKind::Failed);
        assert_eq!(series.bucket_width(), SimDuration::from_secs(2));
        assert_eq!(series.len(), 3);
        let failed: Vec<u64> = series.points().iter().map(|p| p.counts.failed).collect();
        assert_eq!(failed, [0, 1, 1]);
    }

    #[test]
    fn gauge_time_weighted_mean_is_exact() {
        let mut series = TimeSeries::new(8, SimDuration::from_secs(10), 1);
        series.set_gauge(0, secs(0.0), 2);
        series.set_gauge(0, secs(3.0), 6);
        series.count(secs(10.0), CountKind::Generated);
        // 2 for 30% of the first point and 6 for 70% of it.
        assert!((series.gauge_mean(0, 0, secs(10.0)) - 4.8).abs() < 1e-12);
        let stat = series.gauge_stat(0, 0);
        assert_eq!((stat.last, stat.max), (6, 6));
        // The second point carries 6 without any change.
        assert!((series.gauge_mean(1, 0, secs(15.0)) - 6.0).abs() < 1e-12);
        assert!((series.gauge_run_mean(0, secs(20.0)) - (6.0 + 102.0) / 20.0).abs() < 1e-12);
    }

    #[test]
    fn merged_gauges_keep_later_last_max_and_weighted_mean() {
        let mut series = TimeSeries::new(2, SimDuration::from_secs(1), 1);
        series.set_gauge(0, secs(0.0), 4);
        series.set_gauge(0, secs(1.0), 1);
        series.set_gauge(0, secs(2.0), 0); // forces a merge: [0, 2) and [2, 4)
        assert_eq!(series.bucket_width(), SimDuration::from_secs(2));
        let stat = series.gauge_stat(0, 0);
        assert_eq!((stat.last, stat.max), (1, 4));
        assert!((series.gauge_mean(0, 0, secs(2.0)) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn gaps_between_events_become_empty_points() {
        let mut series = TimeSeries::new(100, SimDuration::from_secs(1), 1);
        series.set_gauge(0, secs(0.5), 3);
        series.count(secs(5.5), CountKind::Rejected);
        assert_eq!(series.len(), 6);
        for point in &series.points()[1..5] {
            assert_eq!(point.counts, PointCounts::default());
            assert_eq!(point.gauges[0].last, 3);
        }
        assert_eq!(series.points()[5].counts.rejected, 1);
    }
}
