//! Parameter controls generated from a lesson's schema: sliders with a number box for
//! numbers, a list for choices, a checkbox for toggles. Text is validated by the schema;
//! a refused value shows its reason beside the control and changes nothing.

use yew::prelude::*;

use crate::lessons::params::{Liveness, ParamKind, ParamSpec, ParamValue, ParamValues};

#[derive(Properties, PartialEq)]
pub struct ParamControlsProps {
    pub params: ParamValues,
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
        <fieldset class="param-controls">
            <legend>{ "Parameters" }</legend>
            { for controls }
        </fieldset>
    }
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
            html! {
                <span class="number-control">
                    <input type="range" min={min.to_string()} max={max.to_string()} step={step.to_string()}
                        value={current.clone()} onchange={on_input_change.clone()}
                        aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
                    <input type="number" id={format!("{id}-input")} min={min.to_string()} max={max.to_string()}
                        step="any" value={current} onchange={on_input_change}
                        aria-labelledby={id.clone()} aria-describedby={help_id.clone()} />
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
            { unit }
            <p class="param-help" id={help_id}>{ spec.help }</p>
            { error_view }
        </div>
    }
}
