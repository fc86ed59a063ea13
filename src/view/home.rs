//! The home page: every lesson, grouped as in the course catalog, each a link that opens
//! it at its defaults.

use yew::prelude::*;

use crate::learning::content;
use crate::learning::progress::{LessonStatus, Progress};
use crate::lessons::{self, LessonGroup};
use crate::route::{LessonRoute, Route};

#[derive(Properties, PartialEq)]
pub struct HomeProps {
    pub on_navigate: Callback<Route>,
    pub progress: Progress,
}

/// The lesson's status in words (never colour alone).
fn status_text(progress: &Progress, lesson: &str) -> String {
    let Some(content) = content::for_lesson(lesson) else {
        return String::new();
    };
    let ids = content.questions.iter().map(|q| q.id.as_str());
    match progress.status(lesson, ids) {
        LessonStatus::NotStarted => "Not started".to_owned(),
        LessonStatus::InProgress { correct, total } => {
            format!("In progress: {correct} of {total} correct")
        }
        LessonStatus::Mastered => "✓ Mastered".to_owned(),
    }
}

const GROUPS: [(LessonGroup, &str); 5] = [
    (LessonGroup::Foundations, "Foundations"),
    (LessonGroup::Messaging, "Messaging"),
    (LessonGroup::TrafficAndCompute, "Traffic and compute"),
    (LessonGroup::Data, "Data"),
    (LessonGroup::Resilience, "Resilience"),
];

#[function_component(Home)]
pub fn home(props: &HomeProps) -> Html {
    let groups = GROUPS.iter().filter_map(|(group, heading)| {
        let members: Vec<_> = lessons::catalog()
            .iter()
            .filter(|lesson| lesson.group == *group)
            .collect();
        if members.is_empty() {
            return None;
        }
        let items = members.into_iter().map(|lesson| {
            let route = Route::Lesson(LessonRoute::defaults(lesson));
            let href = super::url::query_for(&route);
            let onclick = {
                let on_navigate = props.on_navigate.clone();
                Callback::from(move |event: MouseEvent| {
                    // Plain left clicks stay in the app; modified clicks open new tabs.
                    if !(event.ctrl_key() || event.meta_key() || event.shift_key()) {
                        event.prevent_default();
                        on_navigate.emit(route.clone());
                    }
                })
            };
            html! {
                <li class="lesson" data-lesson={lesson.id}>
                    <a class="lesson-title" {href} {onclick}>{ lesson.title }</a>
                    <code class="lesson-id">{ lesson.id }</code>
                    <p class="lesson-summary">{ lesson.summary }</p>
                    <p class="lesson-status" data-testid="lesson-status">{ status_text(&props.progress, lesson.id) }</p>
                </li>
            }
        });
        Some(html! {
            <section class="catalog-group" aria-labelledby={format!("group-{}", group.as_str())}>
                <h2 id={format!("group-{}", group.as_str())}>{ *heading }</h2>
                <ul class="lesson-list">{ for items }</ul>
            </section>
        })
    });
    html! {
        <main id="app-root" class="home">
            <h1>{ "Patterns Playground" }</h1>
            <p class="tagline">{ "Distributed design patterns as live, seeded simulations: turn the knobs, break things, and watch what happens." }</p>
            { for groups }
        </main>
    }
}
