//! The `rate-limiting` lesson's own chart: goodput against offered load for each
//! load-shedding option, measured by running the learner's current server settings at
//! seven offered loads (rate limits off, every client an equal share), with the ideal
//! line min(offered, capacity) for reference. Without shedding the curve collapses past
//! capacity; with shedding it stays near capacity.

use yew::prelude::*;

use crate::lessons::params::{ParamValues, Seed};
use crate::lessons::rate_limiting::{goodput_point, server_capacity, SHEDDING_OPTIONS};

/// Offered loads measured, as multiples of the server's capacity.
const LOADS: [f64; 7] = [0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0];
const W: f64 = 420.0;
const H: f64 = 230.0;
/// Axes: offered load up to this multiple of capacity, goodput up to 1.2 × capacity.
const MAX_LOAD: f64 = 3.2;
const MAX_GOODPUT: f64 = 1.2;

#[derive(Properties, PartialEq)]
pub struct GoodputChartProps {
    pub params: ParamValues,
    pub seed: Seed,
}

fn x(load: f64) -> f64 {
    40.0 + (load / MAX_LOAD).min(1.0) * (W - 55.0)
}

fn y(goodput: f64) -> f64 {
    H - 30.0 - (goodput / MAX_GOODPUT).min(1.0) * (H - 50.0)
}

/// (shedding option, [(offered ÷ capacity, goodput ÷ capacity)]).
type Curves = Vec<(&'static str, Vec<(f64, f64)>)>;

#[function_component(GoodputChart)]
pub fn goodput_chart(props: &GoodputChartProps) -> Html {
    let curves = use_state(Curves::new);
    // Curves belong to one server setting: clear them when it changes.
    {
        let curves = curves.clone();
        let key = (
            props.params.integer("workers"),
            props.params.number("service_time").to_bits(),
            props.params.number("client_timeout").to_bits(),
            props.params.integer("shed_queue_limit"),
            props.params.number("latency_target").to_bits(),
        );
        use_effect_with(key, move |_| curves.set(Vec::new()));
    }
    let measure = {
        let curves = curves.clone();
        let params = props.params.clone();
        let seed = props.seed;
        Callback::from(move |_: MouseEvent| {
            let capacity = server_capacity(&params);
            let measured = SHEDDING_OPTIONS
                .iter()
                .map(|&shedding| {
                    let points = LOADS
                        .iter()
                        .filter_map(|&load| goodput_point(&params, load, shedding, seed))
                        .map(|(offered, goodput)| (offered / capacity, goodput / capacity))
                        .collect();
                    (shedding, points)
                })
                .collect();
            curves.set(measured);
        })
    };
    let ideal = format!(
        "{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0),
        x(MAX_LOAD),
        y(1.0)
    );
    let lines = curves.iter().enumerate().map(|(index, (shedding, points))| {
        let path: Vec<String> = points
            .iter()
            .map(|(load, goodput)| format!("{:.1},{:.1}", x(*load), y(*goodput)))
            .collect();
        let marks = points.iter().map(|(load, goodput)| {
            let (cx, cy) = (x(*load), y(*goodput));
            // Shape per option, so the lines differ without colour.
            match index {
                0 => html! { <circle cx={format!("{cx:.1}")} cy={format!("{cy:.1}")} r="4" /> },
                1 => html! { <rect x={format!("{:.1}", cx - 4.0)} y={format!("{:.1}", cy - 4.0)} width="8" height="8" /> },
                _ => html! { <polygon points={format!("{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}", cx, cy - 5.0, cx - 5.0, cy + 4.0, cx + 5.0, cy + 4.0)} /> },
            }
        });
        html! {
            <g class={classes!("goodput-curve", format!("curve-{index}"))} data-shedding={*shedding}>
                <polyline points={path.join(" ")} />
                { for marks }
            </g>
        }
    });
    let listed = curves.iter().map(|(shedding, points)| {
        let values: Vec<String> = points
            .iter()
            .map(|(load, goodput)| format!("{:.0}% offered → {:.0}% goodput", load * 100.0, goodput * 100.0))
            .collect();
        html! { <li data-shedding={*shedding}><strong>{ format!("{shedding}: ") }</strong>{ values.join("; ") }</li> }
    });
    let legend = SHEDDING_OPTIONS
        .iter()
        .enumerate()
        .map(|(index, shedding)| {
            let glyph = ["●", "■", "▲"][index];
            html! { <li class={format!("curve-{index}")}>{ format!("{glyph} {shedding}") }</li> }
        });
    html! {
        <section class="goodput-chart" aria-labelledby="goodput-heading">
            <h2 id="goodput-heading">{ "Goodput against offered load" }</h2>
            <p>{ format!(
                "Each point is a 4-minute run of this server ({:.0} req/s capacity) at a steady offered load, rate limits off. Dashed: the ideal, everything up to capacity.",
                server_capacity(&props.params)
            ) }</p>
            <svg viewBox={format!("0 0 {W} {H}")} role="img"
                aria-label="Goodput against offered load for each shedding option; the measured values are listed below">
                <line class="axis" x1="40" y1={(H - 30.0).to_string()} x2={(W - 10.0).to_string()} y2={(H - 30.0).to_string()} />
                <line class="axis" x1="40" y1="15" x2="40" y2={(H - 30.0).to_string()} />
                <text x={x(1.0).to_string()} y={(H - 12.0).to_string()} text-anchor="middle">{ "capacity" }</text>
                <text x={(W - 10.0).to_string()} y={(H - 12.0).to_string()} text-anchor="end">{ format!("{MAX_LOAD}× offered") }</text>
                <text x="44" y={(y(1.0) - 4.0).to_string()}>{ "100% goodput" }</text>
                <polyline class="ideal" points={ideal} />
                { for lines }
            </svg>
            <ul class="goodput-legend">{ for legend }</ul>
            <button type="button" onclick={measure}>{ "Measure the curves (21 runs)" }</button>
            <ul class="measured-list">{ for listed }</ul>
        </section>
    }
}
