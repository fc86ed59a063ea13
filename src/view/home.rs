//! The home page (course map): every lesson, grouped as in the course catalog and
//! numbered in the suggested order, with its status and score, overall progress, and a
//! search box that finds lessons by pattern, AWS service or problem in plain words.

use yew::prelude::*;

use crate::learning::progress::{LessonStatus, Progress};
use crate::learning::{content, search};
use crate::lessons::{self, LessonGroup};
use crate::route::{LessonRoute, Route};

use super::progress_panel::ProgressPanel;

#[derive(Properties, PartialEq)]
pub struct HomeProps {
    pub on_navigate: Callback<Route>,
    pub progress: Progress,
    pub on_replace_progress: Callback<Progress>,
}

/// The lesson's status in words (never colour alone).
fn status_text(progress: &Progress, lesson: &str) -> String {
    let Some(entry) = content::index(lesson) else {
        return String::new();
    };
    match progress.status(lesson, entry.questions.iter().copied()) {
        LessonStatus::NotStarted => "Not started".to_owned(),
        LessonStatus::InProgress { correct, total } => {
            let missed = entry
                .questions
                .iter()
                .filter(|id| progress.answer(lesson, id).is_some_and(|a| !a.correct))
                .count();
            if missed > 0 {
                format!("In progress: {correct} of {total} correct · {missed} to review")
            } else {
                format!("In progress: {correct} of {total} correct")
            }
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

/// What the search looks through for one lesson.
fn haystack(lesson: &lessons::LessonSpec) -> Vec<&'static str> {
    let mut texts = vec![
        lesson.title,
        lesson.summary,
        lesson.id,
        lesson.group.as_str(),
    ];
    if let Some(entry) = content::index(lesson.id) {
        texts.extend(entry.search_terms);
    }
    texts
}

/// "2 of 3 lessons mastered · 14 of 20 questions answered correctly".
fn overall_progress(progress: &Progress) -> String {
    let (mut mastered, mut lessons, mut correct, mut questions) = (0, 0, 0, 0);
    for lesson in lessons::catalog() {
        let Some(entry) = content::index(lesson.id) else {
            continue;
        };
        lessons += 1;
        questions += entry.questions.len();
        correct += entry
            .questions
            .iter()
            .filter(|id| progress.answer(lesson.id, id).is_some_and(|a| a.correct))
            .count();
        if progress.status(lesson.id, entry.questions.iter().copied()) == LessonStatus::Mastered {
            mastered += 1;
        }
    }
    format!(
        "{mastered} of {lessons} lessons mastered · {correct} of {questions} questions answered correctly"
    )
}

#[function_component(Home)]
pub fn home(props: &HomeProps) -> Html {
    let query = use_state(String::new);
    let on_search = {
        let query = query.clone();
        Callback::from(move |event: InputEvent| {
            let input: web_sys::HtmlInputElement = event.target_unchecked_into();
            query.set(input.value());
        })
    };
    let wanted = search::query_words(&query);
    let shown: Vec<(usize, &'static lessons::LessonSpec)> = lessons::catalog()
        .iter()
        .enumerate()
        .filter(|(_, lesson)| search::matches(&wanted, &haystack(lesson)))
        .collect();
    let groups = GROUPS.iter().filter_map(|(group, heading)| {
        let members: Vec<_> = shown
            .iter()
            .filter(|(_, lesson)| lesson.group == *group)
            .collect();
        if members.is_empty() {
            return None;
        }
        let items = members.into_iter().map(|&(index, lesson)| {
            let route = Route::Lesson(LessonRoute::defaults(lesson));
            let href = super::url::query_for(&route, &crate::route::Presentation::default());
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
                    <div class="lesson-heading">
                        <span class="lesson-number" aria-label={format!("Lesson {} in the suggested order", index + 1)}>{ format!("{}.", index + 1) }</span>
                        <a class="lesson-title" {href} {onclick}>{ lesson.title }</a>
                    </div>
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
            <nav class="site-nav" aria-label="Study tools">
                <a href="?page=drill" onclick={props.on_navigate.reform(|event: MouseEvent| { event.prevent_default(); Route::Drill })}>{ "Exam drill" }</a>
                <a href="?page=glossary" onclick={props.on_navigate.reform(|event: MouseEvent| { event.prevent_default(); Route::Glossary })}>{ "Glossary" }</a>
            </nav>
            <p class="overall-progress" data-testid="overall-progress">{ overall_progress(&props.progress) }</p>
            <div class="lesson-search" role="search">
                <label for="lesson-search">{ "Find a lesson by pattern, AWS service or problem" }</label>
                <input id="lesson-search" type="search" value={(*query).clone()} oninput={on_search}
                    placeholder="e.g. circuit breaker, SQS, traffic spikes" autocomplete="off" />
                <p class="search-count" aria-live="polite">{
                    if query.trim().is_empty() {
                        String::new()
                    } else if shown.is_empty() {
                        format!("No lesson matches \"{}\". Try a pattern name, an AWS service or fewer words.", query.trim())
                    } else {
                        format!("{} of {} lessons match.", shown.len(), lessons::catalog().len())
                    }
                }</p>
            </div>
            { for groups }
            <ProgressPanel progress={props.progress.clone()} on_replace={props.on_replace_progress.clone()} />
        </main>
    }
}
