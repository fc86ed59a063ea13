//! The checkpoint quiz: one card per question (single, multiple, numeric, predict),
//! answers graded by `learning::quiz` (predictions by running the scenario), feedback in
//! words with an explanation, retries allowed, progress reported upward.

use yew::prelude::*;

use crate::learning::content::{Question, QuestionKind};
use crate::learning::progress::AnswerRecord;
use crate::learning::quiz::{grade, Answer, Grade};

use super::rich_text::RichText;

#[derive(Properties, PartialEq)]
pub struct QuizProps {
    pub lesson: &'static str,
    pub questions: &'static [Question],
    /// Stored records, by question index.
    pub records: Vec<Option<AnswerRecord>>,
    /// (question id, correct)
    pub on_answer: Callback<(String, bool)>,
}

#[function_component(Quiz)]
pub fn quiz(props: &QuizProps) -> Html {
    let correct = props.records.iter().flatten().filter(|r| r.correct).count();
    // Review mode: the questions missed when it was opened stay listed while they are
    // retried, so feedback does not vanish the moment an answer turns right.
    let review = use_state(|| None::<Vec<String>>);
    let missed: Vec<String> = props
        .questions
        .iter()
        .zip(&props.records)
        .filter(|(_, record)| record.is_some_and(|r| !r.correct))
        .map(|(question, _)| question.id.clone())
        .collect();
    let shown = |question: &Question| review.as_ref().is_none_or(|ids| ids.contains(&question.id));
    // Cards outside the review are hidden, not removed, so every card keeps its state.
    let cards = props.questions.iter().enumerate().map(|(index, question)| {
        html! {
            <QuestionCard
                key={question.id.clone()}
                lesson={props.lesson}
                {question}
                number={index + 1}
                record={props.records.get(index).copied().flatten()}
                on_answer={props.on_answer.clone()}
                hidden={!shown(question)}
            />
        }
    });
    let review_bar = match &*review {
        Some(ids) => {
            let fixed = ids.len() - ids.iter().filter(|id| missed.contains(id)).count();
            let leave = {
                let review = review.clone();
                Callback::from(move |_: MouseEvent| review.set(None))
            };
            html! {
                <p class="review-bar" role="status">
                    { format!("Reviewing {} missed question{}: {fixed} now right. ", ids.len(), if ids.len() == 1 { "" } else { "s" }) }
                    <button type="button" onclick={leave}>{ "Show all questions" }</button>
                </p>
            }
        }
        None if !missed.is_empty() => {
            let enter = {
                let review = review.clone();
                let missed = missed.clone();
                Callback::from(move |_: MouseEvent| review.set(Some(missed.clone())))
            };
            html! {
                <p class="review-bar">
                    <button type="button" onclick={enter} data-testid="review-missed">
                        { format!("Review the {} you missed", missed.len()) }
                    </button>
                </p>
            }
        }
        None => html! {},
    };
    html! {
        <section class="quiz" aria-labelledby="quiz-heading">
            <h2 id="quiz-heading">{ "Check yourself" }</h2>
            <p class="quiz-score" data-testid="quiz-score">
                { format!("{correct} of {} answered correctly", props.questions.len()) }
            </p>
            { review_bar }
            { for cards }
        </section>
    }
}

#[derive(Properties, PartialEq)]
struct QuestionCardProps {
    /// Outside the current review: kept mounted but not shown.
    #[prop_or_default]
    hidden: bool,
    lesson: &'static str,
    question: &'static Question,
    number: usize,
    record: Option<AnswerRecord>,
    on_answer: Callback<(String, bool)>,
}

#[function_component(QuestionCard)]
fn question_card(props: &QuestionCardProps) -> Html {
    let question = props.question;
    let chosen = use_state(Vec::<usize>::new);
    let number_text = use_state(String::new);
    let result = use_state(|| None::<Result<Grade, String>>);
    let name = format!("q-{}", question.id);

    let toggle = |index: usize, single: bool| {
        let chosen = chosen.clone();
        Callback::from(move |_: Event| {
            let mut next = if single {
                Vec::new()
            } else {
                (*chosen).clone()
            };
            if let Some(at) = next.iter().position(|&i| i == index) {
                next.remove(at);
            } else {
                next.push(index);
            }
            chosen.set(next);
        })
    };

    let inputs = match &question.kind {
        QuestionKind::Single { options } | QuestionKind::Multiple { options } => {
            let single = matches!(question.kind, QuestionKind::Single { .. });
            let kind = if single { "radio" } else { "checkbox" };
            let items = options.iter().enumerate().map(|(index, option)| {
                html! {
                    <li>
                        <label>
                            <input type={kind} name={name.clone()} checked={chosen.contains(&index)}
                                onchange={toggle(index, single)} />
                            <RichText text={option.text.clone()} />
                        </label>
                    </li>
                }
            });
            html! { <ul class="options">{ for items }</ul> }
        }
        QuestionKind::Predict { options, .. } => {
            let items = options.iter().enumerate().map(|(index, option)| {
                html! {
                    <li>
                        <label>
                            <input type="radio" name={name.clone()} checked={chosen.contains(&index)}
                                onchange={toggle(index, true)} />
                            <RichText text={option.text.clone()} />
                        </label>
                    </li>
                }
            });
            html! { <ul class="options">{ for items }</ul> }
        }
        QuestionKind::Numeric { unit, .. } => {
            let oninput = {
                let number_text = number_text.clone();
                Callback::from(move |event: InputEvent| {
                    let input: web_sys::HtmlInputElement = event.target_unchecked_into();
                    number_text.set(input.value());
                })
            };
            html! {
                <label class="numeric-answer">{ "Your answer " }
                    <input type="text" inputmode="decimal" value={(*number_text).clone()} {oninput} />
                    { format!(" {unit}") }
                </label>
            }
        }
    };

    let on_submit = {
        let chosen = chosen.clone();
        let number_text = number_text.clone();
        let result = result.clone();
        let on_answer = props.on_answer.clone();
        let lesson = props.lesson;
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let answer = match question.kind {
                QuestionKind::Numeric { .. } => {
                    match number_text.trim().replace(',', ".").parse::<f64>() {
                        Ok(value) if value.is_finite() => Answer::Number(value),
                        _ => {
                            result.set(Some(Err("Type a number, for example 12.5.".to_owned())));
                            return;
                        }
                    }
                }
                _ if chosen.is_empty() => {
                    result.set(Some(Err("Choose an answer first.".to_owned())));
                    return;
                }
                _ => Answer::Options((*chosen).clone()),
            };
            let graded = grade(lesson, question, &answer);
            if let Ok(grade) = &graded {
                on_answer.emit((question.id.clone(), grade.correct));
            }
            result.set(Some(graded));
        })
    };
    let on_retry = {
        let result = result.clone();
        let chosen = chosen.clone();
        Callback::from(move |_: MouseEvent| {
            result.set(None);
            chosen.set(Vec::new());
        })
    };

    let feedback = match &*result {
        None => html! {},
        Some(Err(problem)) => {
            html! { <p class="feedback invalid" role="alert">{ problem.clone() }</p> }
        }
        Some(Ok(grade)) => {
            let verdict = if grade.correct {
                "✓ Correct."
            } else {
                "✗ Not quite."
            };
            let explanations: Vec<String> = match &question.kind {
                QuestionKind::Single { options } | QuestionKind::Multiple { options } => options
                    .iter()
                    .enumerate()
                    .filter(|(index, option)| chosen.contains(index) || option.correct)
                    .map(|(_, option)| {
                        let mark = if option.correct { "Right" } else { "Wrong" };
                        format!("{mark}: “{}” — {}", option.text, option.why)
                    })
                    .collect(),
                QuestionKind::Numeric {
                    answer, unit, why, ..
                } => {
                    vec![format!("The answer is {answer} {unit}. {why}")]
                }
                QuestionKind::Predict { options, why, .. } => {
                    let mut lines = Vec::new();
                    if let Some(observed) = &grade.observed {
                        let right = observed
                            .right_option
                            .and_then(|index| options.get(index))
                            .map(|option| format!(" — “{}”", option.text))
                            .unwrap_or_default();
                        lines.push(format!(
                            "The simulation ran this exact scenario and measured {} = {:.3}{right}.",
                            observed.metric.replace('_', " "),
                            observed.value
                        ));
                    }
                    lines.push(why.clone());
                    lines
                }
            };
            let class = if grade.correct {
                "feedback correct"
            } else {
                "feedback wrong"
            };
            html! {
                <div class={class} role="status">
                    <p><strong>{ verdict }</strong></p>
                    { for explanations.into_iter().map(|line| html! { <p><RichText text={line} /></p> }) }
                    <button type="button" onclick={on_retry}>{ "Try again" }</button>
                </div>
            }
        }
    };
    let kind_label = match question.kind {
        QuestionKind::Single { .. } => "Choose one",
        QuestionKind::Multiple { .. } => "Choose all that apply",
        QuestionKind::Numeric { .. } => "Estimate",
        QuestionKind::Predict { .. } => "Predict, then observe",
    };
    let history = props.record.map(|record| {
        let status = if record.correct { "answered correctly" } else { "not yet right" };
        html! { <span class="question-history">{ format!(" — {status} ({} attempts)", record.attempts) }</span> }
    });
    let submit_label = if matches!(question.kind, QuestionKind::Predict { .. }) {
        "Commit and run"
    } else {
        "Check"
    };
    html! {
        <form class="question" data-question={question.id.clone()} onsubmit={on_submit} hidden={props.hidden}>
            <fieldset>
                <legend>
                    <span class="question-kind">{ format!("{}. {kind_label}", props.number) }</span>
                    { history }
                    <span class="question-prompt"><RichText text={question.prompt.clone()} /></span>
                </legend>
                { inputs }
                <button type="submit" disabled={matches!(&*result, Some(Ok(_)))}>{ submit_label }</button>
                { feedback }
            </fieldset>
        </form>
    }
}
