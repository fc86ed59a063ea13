//! Per-run metrics every lesson model owns: counters, whole-run latency and wait
//! histograms, gauges and the chart time series, plus the `RunSummary` the runner prints.

use serde::Serialize;

use super::histogram::{LatencyHistogram, PRECISE};
use super::series::{CountKind, TimeSeries};
use super::time::{SimDuration, SimTime};

/// What happened to requests, counted over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub generated: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    pub dropped: u64,
    /// Extra deliveries of a request already delivered (not a separate request).
    pub duplicated: u64,
}

/// Index of a gauge declared in [`MetricsConfig::gauges`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaugeId(pub usize);

/// How a run's metrics are set up.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Most points the chart series keeps.
    pub series_capacity: usize,
    /// Width of a chart point before the series starts merging.
    pub series_min_width: SimDuration,
    /// Names of the gauges (queue depth, busy servers, workers...), in `GaugeId` order.
    pub gauges: Vec<&'static str>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            series_capacity: 240,
            series_min_width: SimDuration::from_millis(250),
            gauges: Vec::new(),
        }
    }
}

/// The figures of a run, as `simulate --json` prints them (times in seconds).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub generated: u64,
    pub completed: u64,
    pub failed: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub in_flight: u64,
    /// Simulated seconds covered.
    pub duration: f64,
    /// Completed requests per simulated second.
    pub throughput: f64,
    pub latency_p50: f64,
    pub latency_p95: f64,
    pub latency_p99: f64,
    /// Mean time a request waited in a queue before service (zero waits included).
    pub wait_mean: f64,
    /// Mean time in system of completed requests.
    pub sojourn_mean: f64,
}

/// Counters, histograms and the chart series of one run.
#[derive(Clone, Debug)]
pub struct RunMetrics {
    counters: Counters,
    latency: LatencyHistogram,
    wait: LatencyHistogram,
    series: TimeSeries,
    gauge_names: Vec<&'static str>,
}

impl RunMetrics {
    pub fn new(config: MetricsConfig) -> Self {
        RunMetrics {
            counters: Counters::default(),
            latency: LatencyHistogram::new(PRECISE),
            wait: LatencyHistogram::new(PRECISE),
            series: TimeSeries::new(
                config.series_capacity,
                config.series_min_width,
                config.gauges.len(),
            ),
            gauge_names: config.gauges,
        }
    }

    /// The id of a declared gauge.
    pub fn gauge_id(&self, name: &str) -> Option<GaugeId> {
        self.gauge_names
            .iter()
            .position(|gauge| *gauge == name)
            .map(GaugeId)
    }

    pub fn gauge_names(&self) -> &[&'static str] {
        &self.gauge_names
    }

    #[inline]
    pub fn generated(&mut self, t: SimTime) {
        self.counters.generated += 1;
        self.series.count(t, CountKind::Generated);
    }

    /// A request finished successfully after `latency` in the system.
    #[inline]
    pub fn completed(&mut self, t: SimTime, latency: SimDuration) {
        self.counters.completed += 1;
        self.latency.record(latency);
        self.series.completed(t, latency);
    }

    pub fn failed(&mut self, t: SimTime) {
        self.counters.failed += 1;
        self.series.count(t, CountKind::Failed);
    }

    pub fn rejected(&mut self, t: SimTime) {
        self.counters.rejected += 1;
        self.series.count(t, CountKind::Rejected);
    }

    pub fn dropped(&mut self, t: SimTime) {
        self.counters.dropped += 1;
        self.series.count(t, CountKind::Dropped);
    }

    pub fn duplicated(&mut self, t: SimTime) {
        self.counters.duplicated += 1;
        self.series.count(t, CountKind::Duplicated);
    }

    /// A request waited `wait` in a queue before service started (record zero waits too).
    #[inline]
    pub fn waited(&mut self, wait: SimDuration) {
        self.wait.record(wait);
    }

    #[inline]
    pub fn set_gauge(&mut self, gauge: GaugeId, t: SimTime, value: i64) {
        self.series.set_gauge(gauge.0, t, value);
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// generated − completed − failed − rejected − dropped. Models check it against their
    /// own live-request count: that equality is the conservation invariant.
    pub fn in_flight(&self) -> u64 {
        let c = self.counters;
        c.generated
            .saturating_sub(c.completed + c.failed + c.rejected + c.dropped)
    }

    /// Time in system of completed requests.
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }

    /// Time spent waiting in queues.
    pub fn wait(&self) -> &LatencyHistogram {
        &self.wait
    }

    pub fn series(&self) -> &TimeSeries {
        &self.series
    }

    /// The run's figures up to `now`.
    pub fn summary(&self, now: SimTime) -> RunSummary {
        let c = self.counters;
        let duration = now.as_secs_f64();
        RunSummary {
            generated: c.generated,
            completed: c.completed,
            failed: c.failed,
            rejected: c.rejected,
            dropped: c.dropped,
            duplicated: c.duplicated,
            in_flight: self.in_flight(),
            duration,
            throughput: if duration > 0.0 {
                c.completed as f64 / duration
            } else {
                0.0
            },
            latency_p50: self.latency.quantile_secs(0.50),
            latency_p95: self.latency.quantile_secs(0.95),
            latency_p99: self.latency.quantile_secs(0.99),
            wait_mean: self.wait.mean_secs().unwrap_or(0.0),
            sojourn_mean: self.latency.mean_secs().unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_secs(seconds)
    }

    #[test]
    fn summary_of_a_hand_made_run() {
        let mut metrics = RunMetrics::new(MetricsConfig::default());
        for _ in 0..6 {
            metrics.generated(secs(0));
        }
        metrics.completed(secs(1), SimDuration::from_secs(1));
        metrics.completed(secs(2), SimDuration::from_secs(3));
        metrics.failed(secs(3));
        metrics.rejected(secs(3));
        metrics.dropped(secs(3));
        metrics.duplicated(secs(3));
        metrics.waited(SimDuration::ZERO);
        metrics.waited(SimDuration::from_secs(2));
        let summary = metrics.summary(secs(4));
        assert_eq!(summary.generated, 6);
        assert_eq!(summary.in_flight, 1);
        assert_eq!(summary.throughput, 0.5);
        assert_eq!(summary.sojourn_mean, 2.0);
        assert_eq!(summary.wait_mean, 1.0);
        // Percentiles are within the precise histogram's 1/64 relative error.
        assert!((summary.latency_p99 - 3.0).abs() <= 3.0 / 64.0);
        assert_eq!(summary.duration, 4.0);
    }

    #[test]
    fn json_uses_the_documented_field_names() {
        let metrics = RunMetrics::new(MetricsConfig::default());
        let json = serde_json::to_value(metrics.summary(SimTime::ZERO)).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "generated",
            "completed",
            "failed",
            "rejected",
            "dropped",
            "duplicated",
            "in_flight",
            "throughput",
            "latency_p50",
            "latency_p95",
            "latency_p99",
            "wait_mean",
            "sojourn_mean",
        ] {
            assert!(keys.contains(&key), "missing {key}");
        }
        assert_eq!(json["throughput"], 0.0);
    }

    #[test]
    fn gauges_are_found_by_name() {
        let metrics = RunMetrics::new(MetricsConfig {
            gauges: vec!["queue_depth", "workers"],
            ..MetricsConfig::default()
        });
        assert_eq!(metrics.gauge_id("workers"), Some(GaugeId(1)));
        assert_eq!(metrics.gauge_id("nope"), None);
    }
}
