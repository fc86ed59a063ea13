//! Parameter controls generated from a lesson's schema: sliders with a number box for
//! numbers, a list for choices, a checkbox for toggles. Text is validated by the schema;
//! a refused value shows its reason beside the control and changes nothing.

use yew::prelude::*;

use crate::lessons::params::{Liveness, ParamKind, ParamSpec, ParamValue, ParamValues};

#[derive(Properties, PartialEq)]
pub struct ParamControlsProps {
    pub params: ParamValues,
    /// Shown but not changeable (an embedding course fixed them).
    #[prop_or_default]
    pub locked: bool,
    /// A validated new value for one parameter.
    pub on_change: Callback<(&'static str, ParamValue)>,
}

#[function_component(ParamControls)]
pub fn param_controls(props: &ParamControlsProps) -> Html {
    let errors = use_state(Vec::<(&'static str, String)>::new);
    let controls = props.params.iter().map(|(spec, value)| {
        let error = errors
            .iter()
            .find(|(name, _)| *name == spec.name)
            .map(|(_, message)| message.clone());
        let on_text = {
            let on_change = props.on_change.clone();
            let errors = errors.clone();
            let spec: &'static ParamSpec = spec;
            Callback::from(move |text: String| {
                let mut remaining: Vec<_> = errors
                    .iter()
                    .filter(|(name, _)| *name != spec.name)
                    .cloned()
                    .collect();
                match spec.parse(&text) {
                    Ok(value) => on_change.emit((spec.name, value)),
                    Err(problem) => remaining.push((spec.name, problem.to_string())),
                }
                errors.set(remaining);
            })
        };
        control(spec, value, on_text, error)
    });
    html! {
        <fieldset class="param-controls" disabled={props.locked}>
            <legend>{ if props.locked { "Parameters (fixed for this page)" } else { "Parameters" } }</legend>
            { for controls }
        </fieldset>
    }
}

/// Slider positions of a logarithmic slider.
const LOG_STEPS: f64 = 1000.0;

/// `Some(max / min)` when the range spans two decades or more (and starts above zero).
fn log_scale(min: f64, max: f64) -> Option<f64> {
    (min > 0.0 && max / min >= 100.0).then_some(max / min)
}

/// `value` written with three significant figures ("0.0123", "4.56", "789").
fn three_figures(value: f64) -> String {
    if value <= 0.0 {
        return "0".to_owned();
    }
    let decimals = (2.0 - libm::floor(libm::log10(value))).max(0.0) as usize;
    format!("{value:.decimals$}")
}

fn input_text(event: Event) -> String {
    let input: web_sys::HtmlInputElement = event.target_unchecked_into();
    if input.type_() == "checkbox" {
        if input.checked() { "on" } else { "off" }.to_owned()
    } else {
        input.value()
    }
}

fn control(
    spec: &'static ParamSpec,
    value: ParamValue,
    on_text: Callback<String>,
    error: Option<String>,
) -> Html {
    let id = format!("param-{}", spec.name);
    let help_id = format!("{id}-help");
    let unit = (!spec.unit.is_empty()).then(|| html! { <span class="unit">{ spec.unit }</span> });
    let restart_note = (spec.liveness == Liveness::Restart)
        .then(|| html! { <span class="restart-note">{ " (restarts the run)" }</span> });
    let on_input_change = on_text.reform(input_text);
    let widget = match spec.kind {
        ParamKind::Number { min, max, step, .. } => {
            let current = value.to_string();
            // Wide ranges (0.01 to 1000) get a logarithmic slider so every decade is
            // reachable; the number box stays exact.
            let slider = match log_scale(min, max) {
                Some(ratio) => {
                    let number = if let ParamValue::Number(v) = value {
                        v
                    } else {
                        min
                    };
                    let position = (libm::log(number / min) / libm::log(ratio) * LOG_STEPS).round();
                    let on_slide = on_text.reform(move |event: Event| {
                        let input: web_sys::HtmlInputElement = event.target_unchecked_into();
                        let position: f64 = input.value().parse().unwrap_or(0.0);
                        three_figures(min * libm::pow(ratio, position / LOG_STEPS))
                    });
                    html! {
                        <input type="range" min="0" max={LOG_STEPS.to_string()} step="1"
                            value={position.to_string()} onchange={on_slide}
                            aria-valuetext={format!("{current} {}", spec.unit)}
                            aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
                    }
                }
                None => html! {
                    <input type="range" min={min.to_string()} max={max.to_string()} step={step.to_string()}
                        value={current.clone()} onchange={on_input_change.clone()}
                        aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
                },
            };
            html! {
                <span class="number-control">
                    { slider }
                    <input type="number" id={format!("{id}-input")} min={min.to_string()} max={max.to_string()}
                        step="any" value={current} onchange={on_input_change}
                        aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
                    { unit.clone() }
                </span>
            }
        }
        ParamKind::Integer { min, max, .. } => {
            let current = value.to_string();
            html! {
                <span class="number-control">
                    <input type="range" min={min.to_string()} max={max.to_string()} step="1"
                        value={current.clone()} onchange={on_input_change.clone()}
                        aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
                    <input type="number" id={format!("{id}-input")} min={min.to_string()} max={max.to_string()}
                        step="1" value={current} onchange={on_input_change}
                        aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
                    { unit.clone() }
                </span>
            }
        }
        ParamKind::Choice { options, .. } => {
            let on_select = on_text.reform(|event: Event| {
                let select: web_sys::HtmlSelectElement = event.target_unchecked_into();
                select.value()
            });
            let choices = options.iter().map(|option| {
                let selected = value == ParamValue::Choice(option);
                html! { <option value={*option} {selected}>{ *option }</option> }
            });
            html! {
                <select id={format!("{id}-input")} onchange={on_select}
                    aria-labelledby={id.clone()} aria-describedby={help_id.clone()}>
                    { for choices }
                </select>
            }
        }
        ParamKind::Toggle { .. } => html! {
            <input type="checkbox" id={format!("{id}-input")} checked={value == ParamValue::Toggle(true)}
                onchange={on_input_change} aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
        },
    };
    let error_view =
        error.map(|message| html! { <p class="param-error" role="alert">{ message }</p> });
    html! {
        <div class="param" data-param={spec.name}>
            <label id={id.clone()} for={format!("{id}-input")}>{ spec.label }{ restart_note }</label>
            { widget }
            <p class="param-help" id={help_id}>{ spec.help }</p>
            { error_view }
        </div>
    }
}
