//! The Yew view: app shell and components. Reads the model only through snapshots.

use yew::prelude::*;

#[function_component(App)]
fn app() -> Html {
    html! { <main><h1>{ "Patterns Playground" }</h1><ul><li>{ "queueing-basics" }</li></ul></main> }
}

/// Mounts the app on the document body.
pub fn start() {
    yew::Renderer::<App>::new().render();
}
