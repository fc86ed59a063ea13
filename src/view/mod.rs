//! The Yew view: app shell, routing and components (one per file). Reads lessons only
//! through the catalog, `LessonRun` and snapshots; never mutates a model except through
//! `LessonCommand` and the stepping calls.

mod breaker_diagram;
mod charts;
mod drill_page;
mod figures;
mod glossary_page;
mod goodput_chart;
mod home;
mod injections;
mod lesson_page;
mod narration;
mod narrative;
pub mod panic_banner;
mod param_controls;
mod progress_panel;
mod quiz;
mod rich_text;
mod runtime;
mod storage;
mod sweep_table;
mod timeline;
mod topology_view;
mod transport;
mod url;
mod utilisation_chart;

use yew::prelude::*;

use crate::route::{ParsedRoute, Route};
use home::Home;
use lesson_page::LessonPage;

/// The app root: reads the address once, then keeps route and address in step.
#[function_component(App)]
pub fn app() -> Html {
    let initial = use_memo((), |_| url::current_route());
    let stored = use_memo((), |_| storage::load());
    let route = use_state(|| initial.route.clone());
    let notices = use_state(|| {
        let mut notices = initial.notices.clone();
        notices.extend(stored.1.clone());
        notices
    });
    let progress = use_state(|| stored.0.clone());
    let on_replace_progress = {
        let progress = progress.clone();
        Callback::from(move |next: crate::learning::progress::Progress| {
            storage::save(&next);
            progress.set(next);
        })
    };
    let on_answer = {
        let progress = progress.clone();
        Callback::from(move |(lesson, question, correct): (String, String, bool)| {
            let mut next = (*progress).clone();
            next.record(&lesson, &question, correct);
            storage::save(&next);
            progress.set(next);
        })
    };

    // Back/forward buttons: re-read the address.
    {
        let route = route.clone();
        let notices = notices.clone();
        use_effect_with((), move |_| {
            let listener =
                gloo::events::EventListener::new(&gloo::utils::window(), "popstate", move |_| {
                    let ParsedRoute {
                        route: parsed,
                        notices: problems,
                    } = url::current_route();
                    route.set(parsed);
                    notices.set(problems);
                });
            move || drop(listener)
        });
    }

    let on_navigate = {
        let route = route.clone();
        let notices = notices.clone();
        Callback::from(move |next: Route| {
            url::push(&next);
            notices.set(Vec::new());
            route.set(next);
            gloo::utils::window().scroll_to_with_x_and_y(0.0, 0.0);
        })
    };

    let notice_banner = (!notices.is_empty()).then(|| {
        let dismiss = {
            let notices = notices.clone();
            Callback::from(move |_: MouseEvent| notices.set(Vec::new()))
        };
        let lines = notices
            .iter()
            .map(|line| html! { <li>{ line.clone() }</li> });
        html! {
            <div class="url-notice" role="status">
                <ul>{ for lines }</ul>
                <button type="button" onclick={dismiss}>{ "Dismiss" }</button>
            </div>
        }
    });

    let page = match &*route {
        Route::Home => {
            html! {
                <Home on_navigate={on_navigate.clone()} progress={(*progress).clone()}
                    on_replace_progress={on_replace_progress.clone()} />
            }
        }
        Route::Glossary => {
            html! { <glossary_page::GlossaryPage on_navigate={on_navigate.clone()} /> }
        }
        Route::Drill => {
            html! { <drill_page::DrillPage on_navigate={on_navigate.clone()} /> }
        }
        Route::Lesson(lesson) => {
            let on_route_change = {
                let route = route.clone();
                Callback::from(move |next: crate::route::LessonRoute| {
                    let next = Route::Lesson(next);
                    url::replace(&next);
                    route.set(next);
                })
            };
            let on_home = on_navigate.reform(|_| Route::Home);
            html! {
                <LessonPage route={lesson.clone()} {on_route_change} {on_home}
                    progress={(*progress).clone()} on_answer={on_answer.clone()} />
            }
        }
    };
    html! {
        <>
            { notice_banner }
            { page }
        </>
    }
}

/// Installs the panic banner and mounts the app on the document body.
pub fn start() {
    panic_banner::install();
    yew::Renderer::<App>::new().render();
}
