//! "Compare every option": runs the lesson once per option of its sweep parameter on the
//! current seed and parameters (headless, to the run's end) and shows the results as a
//! table, the current option's row marked.

use std::rc::Rc;

use gloo::render::{request_animation_frame, AnimationFrame};
use yew::prelude::*;

use crate::lessons::params::{ParamValues, Seed};
use crate::lessons::sweep::{sweep, SweepRow};
use crate::sim::time::SimTime;

use super::figures::format_figure;

#[derive(Properties, PartialEq)]
pub struct SweepTableProps {
    /// The lesson's id.
    pub lesson: &'static str,
    /// The choice parameter swept.
    pub parameter: &'static str,
    pub params: ParamValues,
    pub seed: Seed,
    /// Simulated seconds each row runs.
    pub until: f64,
}

#[function_component(SweepTable)]
pub fn sweep_table(props: &SweepTableProps) -> Html {
    let rows = use_state(|| None::<Rc<Vec<SweepRow>>>);
    let running = use_state_eq(|| false);
    let pending = use_mut_ref(|| None::<AnimationFrame>);

    // Other parameters or another seed make the table stale.
    {
        let rows = rows.clone();
        use_effect_with((props.params.clone(), props.seed), move |_| {
            rows.set(None);
        });
    }

    let on_run = {
        let rows = rows.clone();
        let running = running.clone();
        let pending = pending.clone();
        let spec = crate::lessons::find(props.lesson);
        let parameter = props.parameter;
        let params = props.params.clone();
        let seed = props.seed;
        let until = SimTime::from_secs_f64(props.until);
        Callback::from(move |_: MouseEvent| {
            running.set(true);
            let rows = rows.clone();
            let running = running.clone();
            let params = params.clone();
            // Let "Running…" paint before the work starts.
            *pending.borrow_mut() = Some(request_animation_frame(move |_| {
                let result = spec.and_then(|spec| sweep(spec, &params, parameter, seed, until));
                rows.set(result.map(Rc::new));
                running.set(false);
            }));
        })
    };

    let name = props.parameter.replace('_', " ");
    let current = props.params.get(props.parameter).to_string();
    let table = (*rows).as_ref().map(|rows| {
        let figure_labels: Vec<(&'static str, &'static str)> = rows
            .first()
            .map(|row| row.figures.iter().map(|f| (f.key, f.label)).collect())
            .unwrap_or_default();
        let head = figure_labels
            .iter()
            .map(|(_, label)| html! { <th scope="col">{ *label }</th> });
        let body = rows.iter().map(|row| {
            let is_current = row.option == current;
            let cells = row.figures.iter().map(|figure| {
                html! { <td data-figure={figure.key} data-value={figure.value.to_string()}>{ format_figure(figure) }</td> }
            });
            html! {
                <tr class={classes!(is_current.then_some("current"))} data-option={row.option}>
                    <th scope="row">{ row.option }{ if is_current { " (now)" } else { "" } }</th>
                    <td>{ row.summary.completed }</td>
                    <td>{ row.summary.failed + row.summary.rejected + row.summary.dropped }</td>
                    <td>{ format!("{:.2} s", row.summary.latency_p99) }</td>
                    { for cells }
                </tr>
            }
        });
        html! {
            <div class="table-scroll">
                <table class="sweep">
                    <caption>{ format!("Every {name} on seed {}, run to {} s", props.seed.0, props.until) }</caption>
                    <thead><tr>
                        <th scope="col">{ name.clone() }</th>
                        <th scope="col">{ "Completed" }</th>
                        <th scope="col">{ "Failed or rejected" }</th>
                        <th scope="col">{ "p99 latency" }</th>
                        { for head }
                    </tr></thead>
                    <tbody>{ for body }</tbody>
                </table>
            </div>
        }
    });
    html! {
        <section class="sweep-panel" aria-label={format!("Compare every {name}")} aria-busy={running.to_string()}>
            <button type="button" class="sweep-run" onclick={on_run} disabled={*running}>
                { if *running { format!("Running every {name}…") } else { format!("Compare every {name} on this seed") } }
            </button>
            { table }
        </section>
    }
}
