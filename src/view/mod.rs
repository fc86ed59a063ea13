//! The Yew view: app shell and components. Reads lessons only through the catalog and
//! `LessonRun` snapshots; never mutates a model except through `LessonCommand`.

use yew::prelude::*;

use crate::lessons;

/// The app root: for now, the catalog of lessons by group.
#[function_component(App)]
pub fn app() -> Html {
    let lessons = lessons::catalog().iter().map(|lesson| {
        html! {
            <li class="lesson" data-lesson={lesson.id}>
                <span class="lesson-group">{ lesson.group.as_str() }</span>
                <strong class="lesson-title">{ lesson.title }</strong>
                <code class="lesson-id">{ lesson.id }</code>
                <p class="lesson-summary">{ lesson.summary }</p>
            </li>
        }
    });
    html! {
        <main id="app-root">
            <h1>{ "Patterns Playground" }</h1>
            <p>{ "Distributed design patterns as live, seeded simulations." }</p>
            <ul class="lesson-list">{ for lessons }</ul>
        </main>
    }
}

/// Mounts the app on the document body.
pub fn start() {
    yew::Renderer::<App>::new().render();
}
