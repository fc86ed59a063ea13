//! Transport controls: play/pause (Space), step, speed, reset, run to end, seed, and the
//! simulated clock.

use yew::prelude::*;

use super::runtime::SPEEDS;

#[derive(Properties, PartialEq)]
pub struct TransportProps {
    pub playing: bool,
    pub fast_forwarding: bool,
    pub speed: f64,
    /// Simulated seconds so far.
    pub time: f64,
    pub horizon: f64,
    pub seed: u64,
    pub on_toggle: Callback<()>,
    pub on_step: Callback<()>,
    pub on_reset: Callback<()>,
    pub on_run_to_end: Callback<()>,
    pub on_speed: Callback<f64>,
    /// Raw text typed as a seed; the page validates it.
    pub on_seed: Callback<String>,
}

#[function_component(Transport)]
pub fn transport(props: &TransportProps) -> Html {
    let toggle = props.on_toggle.reform(|_: MouseEvent| ());
    let step = props.on_step.reform(|_: MouseEvent| ());
    let reset = props.on_reset.reform(|_: MouseEvent| ());
    let run_to_end = props.on_run_to_end.reform(|_: MouseEvent| ());
    let on_speed = props.on_speed.reform(|event: Event| {
        let select: web_sys::HtmlSelectElement = event.target_unchecked_into();
        select.value().parse::<f64>().unwrap_or(1.0)
    });
    let on_seed = props.on_seed.reform(|event: Event| {
        let input: web_sys::HtmlInputElement = event.target_unchecked_into();
        input.value()
    });
    let play_label = if props.playing { "Pause" } else { "Play" };
    let speeds = SPEEDS.iter().map(|speed| {
        html! {
            <option value={speed.to_string()} selected={(*speed - props.speed).abs() < 1e-9}>
                { format!("{speed}×") }
            </option>
        }
    });
    html! {
        <div class="transport" role="group" aria-label="Simulation controls">
            <button type="button" class="play" onclick={toggle} aria-pressed={props.playing.to_string()}
                aria-keyshortcuts="Space" disabled={props.fast_forwarding}>
                <span aria-hidden="true">{ if props.playing { "⏸ " } else { "▶ " } }</span>{ play_label }
            </button>
            <button type="button" onclick={step} disabled={props.playing || props.fast_forwarding}>{ "Step" }</button>
            <button type="button" onclick={reset}>{ "Reset" }</button>
            <button type="button" onclick={run_to_end} disabled={props.fast_forwarding}>
                { format!("Run to {} s", props.horizon) }
            </button>
            <label class="speed">{ "Speed " }
                <select onchange={on_speed}>{ for speeds }</select>
            </label>
            <label class="seed">{ "Seed " }
                <input type="text" inputmode="numeric" value={props.seed.to_string()} onchange={on_seed} size="8" />
            </label>
            <output class="clock" aria-label="Simulated time">{ format!("t = {:.1} s", props.time) }</output>
        </div>
    }
}
