//! The Yew view: app shell, routing and components (one per file). Reads lessons only
//! through the catalog, `LessonRun` and snapshots; never mutates a model except through
//! `LessonCommand` and the stepping calls.

mod breaker_diagram;
mod charts;
mod drill_page;
mod export;
mod figures;
mod glossary_page;
mod goodput_chart;
mod home;
mod host_bridge;
mod injections;
mod lesson_content;
mod lesson_page;
mod narration;
mod narrative;
pub mod panic_banner;
mod param_controls;
mod progress_panel;
mod quiz;
mod rich_text;
mod runtime;
mod share_bar;
mod shortcuts;
mod storage;
mod sweep_table;
mod timeline;
mod topology_view;
mod transport;
mod url;
mod utilisation_chart;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use yew::prelude::*;

use crate::embed::{self, HostCommand};
use crate::learning::content;
use crate::learning::progress::Progress;
use crate::lessons;
use crate::route::{LessonRoute, ParsedRoute, Presentation, Route};
use home::Home;
use lesson_page::LessonPage;

/// The app root: reads the address once, then keeps route and address in step.
#[function_component(App)]
pub fn app() -> Html {
    let initial = use_memo((), |_| url::current_route());
    let stored = use_memo((), |_| storage::load());
    let route = use_state(|| initial.route.clone());
    let presentation = use_state(|| initial.presentation.clone());
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
        let presentation = presentation.clone();
        Callback::from(move |(lesson, question, correct): (String, String, bool)| {
            let mut next = (*progress).clone();
            let before = completion(&next, &lesson);
            next.record(&lesson, &question, correct);
            storage::save(&next);
            report_answer(
                &next,
                before,
                &lesson,
                &question,
                correct,
                &presentation.origins,
            );
            progress.set(next);
        })
    };

    // Opening a lesson counts as starting it.
    {
        let progress = progress.clone();
        use_effect_with((*route).clone(), move |route| {
            if let Route::Lesson(lesson) = route {
                let mut next = (*progress).clone();
                if next.visit(lesson.lesson) {
                    storage::save(&next);
                    progress.set(next);
                }
            }
        });
    }

    // Commands from a host page: progress ones are handled here, lesson ones queue for
    // the lesson page (which owns the run) and a tick tells it to look.
    let host_inbox = use_mut_ref(VecDeque::<HostCommand>::new);
    let host_count = use_mut_ref(|| 0u64);
    let host_tick = use_state_eq(|| 0u64);
    {
        let progress = progress.clone();
        let host_inbox = host_inbox.clone();
        let host_tick = host_tick.clone();
        use_effect_with(presentation.origins.clone(), move |origins| {
            let listener = host_bridge::listen(origins.clone(), move |command| match command {
                HostCommand::ResetProgress => {
                    let fresh = Progress::new();
                    storage::save(&fresh);
                    progress.set(fresh);
                }
                lesson_command => {
                    host_inbox.borrow_mut().push_back(lesson_command);
                    let mut count = host_count.borrow_mut();
                    *count += 1;
                    host_tick.set(*count);
                }
            });
            let watcher = host_bridge::watch_height(origins.clone());
            move || {
                drop(listener);
                drop(watcher);
            }
        });
    }
    // Tell the host the app is ready (once, after the first render).
    {
        let route = (*route).clone();
        let origins = presentation.origins.clone();
        use_effect_with((), move |_| {
            let message = match &route {
                Route::Lesson(lesson) => embed::ready(Some(lesson.spec()), Some(&lesson.params)),
                _ => embed::ready(None, None),
            };
            host_bridge::post(&message, &origins);
        });
    }

    // Back/forward buttons: re-read the address.
    {
        let route = route.clone();
        let notices = notices.clone();
        let presentation = presentation.clone();
        use_effect_with((), move |_| {
            let listener =
                gloo::events::EventListener::new(&gloo::utils::window(), "popstate", move |_| {
                    let ParsedRoute {
                        route: parsed,
                        presentation: shown,
                        notices: problems,
                    } = url::current_route();
                    route.set(parsed);
                    presentation.set(shown);
                    notices.set(problems);
                });
            move || drop(listener)
        });
    }

    let on_navigate = {
        let route = route.clone();
        let notices = notices.clone();
        let presentation = presentation.clone();
        Callback::from(move |next: Route| {
            url::push(&next, &presentation);
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
                let presentation = presentation.clone();
                Callback::from(move |next: crate::route::LessonRoute| {
                    let next = Route::Lesson(next);
                    url::replace(&next, &presentation);
                    route.set(next);
                })
            };
            let on_home = on_navigate.reform(|_| Route::Home);
            html! {
                <LessonPage route={lesson.clone()} presentation={(*presentation).clone()}
                    host_inbox={HostInbox(host_inbox.clone())} host_tick={*host_tick}
                    {on_route_change} {on_home}
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

/// Host commands waiting for the lesson page (compared by identity: one inbox per app).
#[derive(Clone)]
pub struct HostInbox(pub Rc<RefCell<VecDeque<HostCommand>>>);

impl PartialEq for HostInbox {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// `Some((correct, total))` once every question of `lesson` has an answer.
fn completion(progress: &Progress, lesson: &str) -> Option<(usize, usize)> {
    let questions = content::index(lesson)?.questions;
    let mut correct = 0;
    for question in questions {
        correct += usize::from(progress.answer(lesson, question)?.correct);
    }
    Some((correct, questions.len()))
}

/// Tells a host page about an answer, and about the lesson's completion when this answer
/// completes it or changes its score.
fn report_answer(
    progress: &Progress,
    before: Option<(usize, usize)>,
    lesson: &str,
    question: &str,
    correct: bool,
    origins: &[crate::route::Origin],
) {
    let (Some(spec), Some(lesson_content)) = (lessons::find(lesson), content::for_lesson(lesson))
    else {
        return;
    };
    let lesson_url = url::absolute(
        &Route::Lesson(LessonRoute::defaults(spec)),
        &Presentation::default(),
    );
    let prompt = lesson_content
        .questions
        .iter()
        .find(|q| q.id == question)
        .map_or(question, |q| q.prompt.as_str());
    host_bridge::post(
        &embed::quiz_answered(spec, &lesson_url, question, prompt, correct),
        origins,
    );
    let after = completion(progress, lesson);
    if let Some((right, total)) = after.filter(|_| after != before) {
        host_bridge::post(
            &embed::lesson_complete(spec, &lesson_url, right, total),
            origins,
        );
    }
}

/// Installs the panic banner and mounts the app on the document body.
pub fn start() {
    panic_banner::install();
    yew::Renderer::<App>::new().render();
}
