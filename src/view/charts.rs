//! Live charts drawn as SVG polylines from the run's bounded time series: throughput and
//! errors, latency p50/p99, and each gauge. Every chart has a text alternative (its
//! latest values in words).

use yew::prelude::*;

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

/// The standard charts for a run at `now`.
pub fn chart_data(metrics: &RunMetrics, now: SimTime) -> Vec<ChartData> {
    let series = metrics.series();
    let width = series.bucket_width().as_secs_f64();
    let points = series.points();
    // The open point covers only the time elapsed in it.
    let span = |start: f64| (now.as_secs_f64() - start).clamp(1e-9, width);
    let mut throughput = Vec::with_capacity(points.len());
    let mut errors = Vec::with_capacity(points.len());
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for point in points {
        let start = point.start.as_secs_f64();
        let seconds = span(start);
        let middle = start + seconds / 2.0;
        let counts = point.counts;
        throughput.push((middle, counts.completed as f64 / seconds));
        errors.push((
            middle,
            (counts.failed + counts.rejected + counts.dropped) as f64 / seconds,
        ));
        if point.latency.count() > 0 {
            p50.push((middle, point.latency.quantile_secs(0.5)));
            p99.push((middle, point.latency.quantile_secs(0.99)));
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
    for (gauge, name) in metrics.gauge_names().iter().enumerate() {
        let values = (0..points.len())
            .map(|index| {
                let start = points[index].start.as_secs_f64();
                (
                    start + span(start) / 2.0,
                    series.gauge_mean(index, gauge, now),
                )
            })
            .collect();
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
