//! The `queueing-basics` lesson's own chart: mean wait against utilisation, with the
//! queueing-theory curve for the current servers and service distribution, filled with
//! points the learner measures by running the simulation.

use yew::prelude::*;

use crate::lessons::params::{ParamValue, ParamValues, Seed};
use crate::lessons::queueing_basics::{measure_point, theory_curve, utilisation};

/// Arrivals simulated per measured point: enough for a steady mean, quick to run.
const CUSTOMERS_PER_POINT: f64 = 50_000.0;
const UTILISATIONS: [f64; 8] = [0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95];
/// The chart's vertical range, in mean service times.
const MAX_WAIT: f64 = 20.0;
const W: f64 = 400.0;
const H: f64 = 220.0;

#[derive(Properties, PartialEq)]
pub struct UtilisationChartProps {
    pub params: ParamValues,
    pub seed: Seed,
}

fn x(rho: f64) -> f64 {
    30.0 + rho * (W - 40.0)
}

fn y(wait: f64) -> f64 {
    H - 25.0 - (wait.min(MAX_WAIT) / MAX_WAIT) * (H - 40.0)
}

#[function_component(UtilisationChart)]
pub fn utilisation_chart(props: &UtilisationChartProps) -> Html {
    let points = use_state(Vec::<(f64, f64)>::new);
    // Points belong to one servers/distribution setting: clear them when it changes.
    {
        let points = points.clone();
        let key = (
            props.params.integer("servers"),
            props.params.choice("service_distribution"),
            props.params.number("service_cv").to_bits(),
        );
        use_effect_with(key, move |_| points.set(Vec::new()));
    }
    let add_current = {
        let points = points.clone();
        let params = props.params.clone();
        let seed = props.seed;
        Callback::from(move |_: MouseEvent| {
            if utilisation(&params) >= 1.0 {
                return;
            }
            let mut next = (*points).clone();
            next.push(measure_point(&params, seed, CUSTOMERS_PER_POINT));
            points.set(next);
        })
    };
    let fill = {
        let points = points.clone();
        let params = props.params.clone();
        let seed = props.seed;
        Callback::from(move |_: MouseEvent| {
            let capacity = params.integer("servers") as f64 * params.number("service_rate");
            let measured = UTILISATIONS
                .iter()
                .filter_map(|rho| {
                    let mut at = params.clone();
                    at.set("arrival_rate", ParamValue::Number(rho * capacity))
                        .ok()?;
                    Some(measure_point(&at, seed, CUSTOMERS_PER_POINT))
                })
                .collect();
            points.set(measured);
        })
    };
    let curve: Vec<String> = theory_curve(&props.params)
        .into_iter()
        .filter(|(_, wait)| *wait <= MAX_WAIT * 1.05)
        .map(|(rho, wait)| format!("{:.1},{:.1}", x(rho), y(wait)))
        .collect();
    let dots = points.iter().map(|(rho, wait)| {
        html! {
            <g>
                <rect class="measured" x={format!("{:.1}", x(*rho) - 4.0)} y={format!("{:.1}", y(*wait) - 4.0)} width="8" height="8" />
            </g>
        }
    });
    let listed = points.iter().map(|(rho, wait)| {
        html! { <li>{ format!("utilisation {:.0}%: mean wait {:.2} × service time", rho * 100.0, wait) }</li> }
    });
    let current = utilisation(&props.params);
    let can_add = current < 1.0;
    html! {
        <section class="utilisation-chart" aria-labelledby="utilisation-heading">
            <h2 id="utilisation-heading">{ "Waiting against utilisation" }</h2>
            <p>{ format!(
                "Line: queueing theory for {} server(s) and {} service. Squares: what the simulation measured.",
                props.params.integer("servers"),
                props.params.choice("service_distribution")
            ) }</p>
            <svg viewBox={format!("0 0 {W} {H}")} role="img"
                aria-label="Mean wait in service times against utilisation; the measured points are listed below">
                <line class="axis" x1="30" y1={(H - 25.0).to_string()} x2={(W - 10.0).to_string()} y2={(H - 25.0).to_string()} />
                <line class="axis" x1="30" y1="15" x2="30" y2={(H - 25.0).to_string()} />
                <text x="30" y={(H - 8.0).to_string()}>{ "0%" }</text>
                <text x={(W - 10.0).to_string()} y={(H - 8.0).to_string()} text-anchor="end">{ "100% busy" }</text>
                <text x="34" y="14">{ format!("{MAX_WAIT:.0}× service time") }</text>
                <polyline class="chart-line line-a theory" points={curve.join(" ")} />
                { for dots }
            </svg>
            <div class="utilisation-actions">
                <button type="button" onclick={add_current} disabled={!can_add}>
                    { format!("Measure this setting ({:.0}% busy)", current * 100.0) }
                </button>
                <button type="button" onclick={fill}>{ "Measure 8 utilisations" }</button>
            </div>
            <ul class="measured-list">{ for listed }</ul>
        </section>
    }
}
