//! Failure-injection buttons for the lesson's declared injections.

use yew::prelude::*;

use crate::lessons::InjectionSpec;

#[derive(Properties, PartialEq)]
pub struct InjectionsProps {
    pub injections: &'static [InjectionSpec],
    pub on_inject: Callback<&'static str>,
}

#[function_component(Injections)]
pub fn injections(props: &InjectionsProps) -> Html {
    if props.injections.is_empty() {
        return html! {};
    }
    let buttons = props.injections.iter().map(|injection| {
        let onclick = props.on_inject.reform(move |_: MouseEvent| injection.id);
        html! {
            <button type="button" class="inject" data-injection={injection.id} title={injection.help} {onclick}>
                <span aria-hidden="true">{ "⚡ " }</span>{ injection.label }
            </button>
        }
    });
    html! {
        <div class="injections" role="group" aria-label="Inject failures and events">
            <h3>{ "Inject" }</h3>
            { for buttons }
        </div>
    }
}
