//! The exam drill page: a mixed run of scenario questions across lessons, untimed or with
//! a countdown per question, each answer explained option by option with a link back to
//! the lesson (or glossary term) that teaches it, and a score with the missed questions
//! at the end. One `DrillState` + `DrillAction` reducer holds the session.

use std::rc::Rc;

use gloo::timers::callback::Interval;
use yew::prelude::*;

use crate::learning::drill::{self, DrillQuestion};
use crate::learning::glossary;
use crate::lessons;
use crate::route::{LessonRoute, Route};

use super::rich_text::RichText;

/// Seconds per question in timed mode.
pub const SECONDS_PER_QUESTION: u32 = 45;

/// How an answered question went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Right,
    Wrong,
    TimeUp,
}

/// One drill session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrillState {
    /// Question indices (into `drill::all()`) in this session's order; empty = not started.
    pub order: Vec<usize>,
    pub position: usize,
    pub chosen: Option<usize>,
    /// Set once the current question is checked (or its time ran out).
    pub outcome: Option<Outcome>,
    /// (question index, outcome) of every answered question.
    pub results: Vec<(usize, Outcome)>,
    pub timed: bool,
    pub seconds_left: u32,
}

pub enum DrillAction {
    Start { order: Vec<usize>, timed: bool },
    Choose(usize),
    Check,
    Tick,
    Next,
    Restart,
}

impl DrillState {
    fn current(&self) -> Option<&'static DrillQuestion> {
        self.order
            .get(self.position)
            .and_then(|&index| drill::all().get(index))
    }

    fn finished(&self) -> bool {
        !self.order.is_empty() && self.position >= self.order.len()
    }

    fn settle(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
            self.results.push((self.order[self.position], outcome));
        }
    }
}

impl Reducible for DrillState {
    type Action = DrillAction;

    fn reduce(self: Rc<Self>, action: DrillAction) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            DrillAction::Start { order, timed } => {
                next = DrillState {
                    order,
                    timed,
                    seconds_left: SECONDS_PER_QUESTION,
                    ..DrillState::default()
                };
            }
            DrillAction::Choose(option) if next.outcome.is_none() => next.chosen = Some(option),
            DrillAction::Choose(_) => return self,
            DrillAction::Check => {
                let (Some(question), Some(chosen)) = (next.current(), next.chosen) else {
                    return self;
                };
                let right = question.correct_index() == Some(chosen);
                next.settle(if right {
                    Outcome::Right
                } else {
                    Outcome::Wrong
                });
            }
            DrillAction::Tick => {
                if !next.timed || next.outcome.is_some() || next.current().is_none() {
                    return self;
                }
                next.seconds_left = next.seconds_left.saturating_sub(1);
                if next.seconds_left == 0 {
                    next.settle(Outcome::TimeUp);
                }
            }
            DrillAction::Next => {
                if next.outcome.is_none() {
                    return self;
                }
                next.position += 1;
                next.chosen = None;
                next.outcome = None;
                next.seconds_left = SECONDS_PER_QUESTION;
            }
            DrillAction::Restart => next = DrillState::default(),
        }
        Rc::new(next)
    }
}

#[derive(Properties, PartialEq)]
pub struct DrillPageProps {
    pub on_navigate: Callback<Route>,
}

/// Links from a question back to what teaches it.
fn learn_links(question: &DrillQuestion, on_navigate: &Callback<Route>) -> Html {
    let lesson = question
        .lesson
        .as_deref()
        .and_then(lessons::find)
        .map(|spec| {
            let route = Route::Lesson(LessonRoute::defaults(spec));
            let href = super::url::query_for(&route, &crate::route::Presentation::default());
            let onclick = on_navigate.reform(move |event: MouseEvent| {
                event.prevent_default();
                route.clone()
            });
            html! { <a class="learn-lesson" {href} {onclick}>{ format!("Lesson: {}", spec.title) }</a> }
        });
    let term = question
        .term
        .as_deref()
        .and_then(glossary::find)
        .map(|term| {
            html! {
                <a class="learn-term" href={format!("?page=glossary#term-{}", term.id)}>
                    { format!("Glossary: {}", term.term) }
                </a>
            }
        });
    html! {
        <p class="learn-links">{ "Learn it: " }{ for lesson }{ " " }{ for term }</p>
    }
}

#[function_component(DrillPage)]
pub fn drill_page(props: &DrillPageProps) -> Html {
    let state = use_reducer(DrillState::default);
    let count = use_state(|| 10usize);
    let timed = use_state(|| false);

    // The countdown runs only while a timed question is open.
    let ticking = state.timed && state.outcome.is_none() && state.current().is_some();
    {
        let dispatcher = state.dispatcher();
        use_effect_with((ticking, state.position), move |(ticking, _)| {
            let interval = ticking
                .then(|| Interval::new(1000, move || dispatcher.dispatch(DrillAction::Tick)));
            move || drop(interval)
        });
    }

    let home = props.on_navigate.reform(|event: MouseEvent| {
        event.prevent_default();
        Route::Home
    });
    let total = drill::all().len();

    let body = if state.order.is_empty() {
        let on_count = {
            let count = count.clone();
            Callback::from(move |event: Event| {
                let select: web_sys::HtmlSelectElement = event.target_unchecked_into();
                count.set(select.value().parse().unwrap_or(10));
            })
        };
        let on_timed = {
            let timed = timed.clone();
            Callback::from(move |_: Event| timed.set(!*timed))
        };
        let on_start = {
            let state = state.clone();
            let count = *count;
            let timed = *timed;
            Callback::from(move |_: MouseEvent| {
                let order = drill::session_order(count, js_sys::Math::random);
                state.dispatch(DrillAction::Start { order, timed });
            })
        };
        html! {
            <section class="drill-setup">
                <p>{ "Short scenarios in the style of the exam: read the requirement, pick the pattern or service. Every answer is explained, with a link to the lesson or term that teaches it." }</p>
                <label>{ "Questions " }
                    <select onchange={on_count}>
                        <option value="10" selected={*count == 10}>{ "10" }</option>
                        <option value={total.to_string()} selected={*count == total}>{ format!("all {total}") }</option>
                    </select>
                </label>
                <label class="drill-timed">
                    <input type="checkbox" checked={*timed} onchange={on_timed} />
                    { format!(" Timed: {SECONDS_PER_QUESTION} s per question") }
                </label>
                <button type="button" class="primary" onclick={on_start}>{ "Start the drill" }</button>
            </section>
        }
    } else if state.finished() {
        let right = state
            .results
            .iter()
            .filter(|(_, outcome)| *outcome == Outcome::Right)
            .count();
        let answered = state.results.len();
        let missed = state
            .results
            .iter()
            .filter(|(_, outcome)| *outcome != Outcome::Right)
            .filter_map(|(index, _)| drill::all().get(*index))
            .map(|question| {
                html! {
                    <li data-question={question.id.clone()}>
                        <RichText text={question.prompt.clone()} />
                        { learn_links(question, &props.on_navigate) }
                    </li>
                }
            });
        let again = {
            let state = state.clone();
            Callback::from(move |_: MouseEvent| state.dispatch(DrillAction::Restart))
        };
        html! {
            <section class="drill-done">
                <p class="drill-score" data-testid="drill-score">
                    { format!("{right} of {answered} right ({}%)", right * 100 / answered.max(1)) }
                </p>
                if right < answered {
                    <h2>{ "Worth another look" }</h2>
                    <ul class="drill-missed">{ for missed }</ul>
                }
                <button type="button" class="primary" onclick={again}>{ "Drill again" }</button>
            </section>
        }
    } else {
        let question = state.current().expect("running and not finished");
        let name = format!("drill-{}", question.id);
        let options = question.options.iter().enumerate().map(|(index, option)| {
            let onchange = {
                let state = state.clone();
                Callback::from(move |_: Event| state.dispatch(DrillAction::Choose(index)))
            };
            let verdict = state.outcome.map(|_| {
                let mark = if option.correct { "✓ Right answer" } else if state.chosen == Some(index) { "✗ Your answer" } else { "✗" };
                html! { <p class="why"><strong>{ format!("{mark}: ") }</strong><RichText text={option.why.clone()} /></p> }
            });
            html! {
                <li class={classes!(state.outcome.is_some().then_some(if option.correct { "correct" } else { "incorrect" }))}>
                    <label>
                        <input type="radio" name={name.clone()} checked={state.chosen == Some(index)}
                            disabled={state.outcome.is_some()} {onchange} />
                        <RichText text={option.text.clone()} />
                    </label>
                    { for verdict }
                </li>
            }
        });
        let on_check = {
            let state = state.clone();
            Callback::from(move |_: MouseEvent| state.dispatch(DrillAction::Check))
        };
        let on_next = {
            let state = state.clone();
            Callback::from(move |_: MouseEvent| state.dispatch(DrillAction::Next))
        };
        let last = state.position + 1 == state.order.len();
        let feedback = state.outcome.map(|outcome| {
            let text = match outcome {
                Outcome::Right => "Right.",
                Outcome::Wrong => "Not quite.",
                Outcome::TimeUp => "Time is up.",
            };
            html! {
                <div class="drill-feedback" role="status">
                    <p class={classes!("verdict", if outcome == Outcome::Right { "right" } else { "wrong" })}>{ text }</p>
                    { learn_links(question, &props.on_navigate) }
                    <button type="button" class="primary" onclick={on_next}>
                        { if last { "See your score" } else { "Next question" } }
                    </button>
                </div>
            }
        });
        html! {
            <section class="drill-question" data-question={question.id.clone()}>
                <p class="drill-progress">
                    { format!("Question {} of {}", state.position + 1, state.order.len()) }
                    if state.timed {
                        <span class="drill-timer" role="timer" aria-live="off">{ format!(" · {} s left", state.seconds_left) }</span>
                    }
                </p>
                <fieldset>
                    <legend><RichText text={question.prompt.clone()} /></legend>
                    <ul class="options">{ for options }</ul>
                </fieldset>
                if state.outcome.is_none() {
                    <button type="button" class="primary" onclick={on_check} disabled={state.chosen.is_none()}>{ "Check" }</button>
                }
                { for feedback }
            </section>
        }
    };

    html! {
        <main id="app-root" class="drill-page">
            <a href="?" onclick={home}>{ "← All lessons" }</a>
            <h1>{ "Exam drill" }</h1>
            { body }
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(timed: bool) -> Rc<DrillState> {
        Rc::new(DrillState::default()).reduce(DrillAction::Start {
            order: vec![0, 1],
            timed,
        })
    }

    #[test]
    fn checking_grades_against_the_single_correct_option() {
        let question = &drill::all()[0];
        let right = question.correct_index().unwrap();
        let state = started(false)
            .reduce(DrillAction::Choose(right))
            .reduce(DrillAction::Check);
        assert_eq!(state.outcome, Some(Outcome::Right));
        // A choice after checking changes nothing; Next moves on.
        let state = state.reduce(DrillAction::Choose((right + 1) % question.options.len()));
        assert_eq!(state.chosen, Some(right));
        let state = state.reduce(DrillAction::Next);
        assert_eq!((state.position, state.outcome), (1, None));
        let wrong = (drill::all()[1].correct_index().unwrap() + 1) % drill::all()[1].options.len();
        let state = state
            .reduce(DrillAction::Choose(wrong))
            .reduce(DrillAction::Check)
            .reduce(DrillAction::Next);
        assert!(state.finished());
        assert_eq!(state.results, [(0, Outcome::Right), (1, Outcome::Wrong)]);
    }

    #[test]
    fn the_countdown_ends_a_timed_question_only() {
        let mut state = started(true);
        for _ in 0..SECONDS_PER_QUESTION {
            state = state.reduce(DrillAction::Tick);
        }
        assert_eq!(state.outcome, Some(Outcome::TimeUp));
        assert_eq!(state.results, [(0, Outcome::TimeUp)]);
        let untimed = started(false).reduce(DrillAction::Tick);
        assert_eq!(untimed.seconds_left, SECONDS_PER_QUESTION);
        assert_eq!(untimed.outcome, None);
    }
}
