//! Live charts drawn as SVG polylines from the run's bounded time series: throughput and
//! errors, latency p50/p99, and each gauge. Every chart has a text alternative (its
//! latest values in words).

use yew::prelude::*;

use crate::sim::histogram::{LatencyHistogram, COMPACT};
use crate::sim::metrics::RunMetrics;
use crate::sim::time::SimTime;

/// One line of a chart: `(time in s, value)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartLine {
    pub label: &'static str,
    /// CSS class: also picks the dash pattern, so lines differ by more than colour.
    pub class: &'static str,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChartData {
    pub key: String,
    pub title: String,
    pub unit: &'static str,
    pub lines: Vec<ChartLine>,
}

/// Gauge names as chart titles.
fn gauge_title(name: &str) -> String {
    match name {
        "queue_depth" => "Requests waiting".to_owned(),
        "busy_servers" => "Busy servers".to_owned(),
        other => other.replace('_', " "),
    }
}

/// Most points a chart draws; finer series points are combined into display buckets.
const DISPLAY_POINTS: usize = 60;
/// Shortest display bucket, in seconds: shorter ones make counts too spiky to read.
const SHORTEST_DISPLAY_BUCKET: f64 = 1.0;

/// The standard charts for a run at `now`.
pub fn chart_data(metrics: &RunMetrics, now: SimTime) -> Vec<ChartData> {
    let series = metrics.series();
    let width = series.bucket_width().as_secs_f64();
    let points = series.points();
    let now_seconds = now.as_secs_f64();
    let per_bucket = points
        .len()
        .div_ceil(DISPLAY_POINTS)
        .max((SHORTEST_DISPLAY_BUCKET / width).ceil() as usize)
        .max(1);
    let mut throughput = Vec::new();
    let mut errors = Vec::new();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let gauge_count = metrics.gauge_names().len();
    let mut gauges: Vec<Vec<(f64, f64)>> = vec![Vec::new(); gauge_count];
    for (bucket, chunk) in points.chunks(per_bucket).enumerate() {
        let start = chunk[0].start.as_secs_f64();
        // The last bucket covers only the time elapsed in it.
        let seconds = (now_seconds - start).clamp(1e-9, width * chunk.len() as f64);
        let middle = start + seconds / 2.0;
        let mut completed = 0;
        let mut lost = 0;
        let mut latency = LatencyHistogram::new(COMPACT);
        for point in chunk {
            completed += point.counts.completed;
            lost += point.counts.failed + point.counts.rejected + point.counts.dropped;
            latency.merge(&point.latency);
        }
        throughput.push((middle, completed as f64 / seconds));
        errors.push((middle, lost as f64 / seconds));
        if latency.count() > 0 {
            p50.push((middle, latency.quantile_secs(0.5)));
            p99.push((middle, latency.quantile_secs(0.99)));
        }
        for (gauge, line) in gauges.iter_mut().enumerate() {
            let first = bucket * per_bucket;
            let mut weighted = 0.0;
            let mut total = 0.0;
            for (offset, point) in chunk.iter().enumerate() {
                let index = first + offset;
                let point_start = point.start.as_secs_f64();
                let span = (now_seconds - point_start).clamp(0.0, width);
                weighted += series.gauge_mean(index, gauge, now) * span;
                total += span;
            }
            if total > 0.0 {
                line.push((middle, weighted / total));
            }
        }
    }
    let mut charts = vec![
        ChartData {
            key: "throughput".into(),
            title: "Throughput and errors".into(),
            unit: "req/s",
            lines: vec![
                ChartLine {
                    label: "completed",
                    class: "line-a",
                    points: throughput,
                },
                ChartLine {
                    label: "failed, rejected or dropped",
                    class: "line-b",
                    points: errors,
                },
            ],
        },
        ChartData {
            key: "latency".into(),
            title: "Latency".into(),
            unit: "s",
            lines: vec![
                ChartLine {
                    label: "p50",
                    class: "line-a",
                    points: p50,
                },
                ChartLine {
                    label: "p99",
                    class: "line-b",
                    points: p99,
                },
            ],
        },
    ];
    for (name, values) in metrics.gauge_names().iter().zip(gauges) {
        charts.push(ChartData {
            key: (*name).to_owned(),
            title: gauge_title(name),
            unit: "",
            lines: vec![ChartLine {
                label: "time-weighted mean",
                class: "line-a",
                points: values,
            }],
        });
    }
    charts
}

#[derive(Properties, PartialEq)]
pub struct ChartsProps {
    pub charts: Vec<ChartData>,
}

const W: f64 = 300.0;
const H: f64 = 120.0;

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[function_component(Charts)]
pub fn charts(props: &ChartsProps) -> Html {
    let charts = props.charts.iter().map(|chart| {
        let all = chart.lines.iter().flat_map(|line| line.points.iter());
        let (mut t_max, mut v_max) = (1e-9f64, 1e-9f64);
        for (t, v) in all {
            t_max = t_max.max(*t);
            v_max = v_max.max(*v);
        }
        let v_max = v_max * 1.1;
        let lines = chart.lines.iter().map(|line| {
            let path: Vec<String> = line
                .points
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", t / t_max * W, H - v / v_max * H))
                .collect();
            html! { <polyline class={classes!("chart-line", line.class)} points={path.join(" ")} /> }
        });
        let summary: Vec<String> = chart
            .lines
            .iter()
            .map(|line| match line.points.last() {
                Some((_, v)) => format!("{} {} {}", line.label, format_value(*v), chart.unit),
                None => format!("{} not yet measured", line.label),
            })
            .collect();
        let legend = chart.lines.iter().map(|line| {
            html! { <li><svg class="swatch" viewBox="0 0 24 8" aria-hidden="true"><line class={classes!("chart-line", line.class)} x1="0" y1="4" x2="24" y2="4" /></svg>{ line.label }</li> }
        });
        html! {
            <figure class="chart" data-chart={chart.key.clone()}>
                <figcaption>
                    <strong>{ chart.title.clone() }</strong>
                    <span class="chart-latest">{ format!(" — latest: {}", summary.join("; ")) }</span>
                </figcaption>
                <svg viewBox={format!("0 0 {W} {H}")} preserveAspectRatio="none" aria-hidden="true">
                    <line class="axis" x1="0" y1={H.to_string()} x2={W.to_string()} y2={H.to_string()} />
                    { for lines }
                </svg>
                <div class="chart-scale" aria-hidden="true">
                    <span>{ format!("max {} {}", format_value(v_max), chart.unit) }</span>
                    <span>{ format!("{:.0} s", t_max) }</span>
                </div>
                <ul class="legend">{ for legend }</ul>
            </figure>
        }
    });
    html! { <section class="charts" aria-label="Live charts">{ for charts }</section> }
}
