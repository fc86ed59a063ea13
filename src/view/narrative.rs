//! The lesson's story from its content file: the problem, how it works, when to use it,
//! the AWS services, "try this" steps that set the scene in one click, and exam tips.

use yew::prelude::*;

use crate::learning::content::LessonContent;

use super::rich_text::RichText;

#[derive(Properties, PartialEq)]
pub struct NarrativeProps {
    pub content: &'static LessonContent,
    /// The index of the "try this" step to set up.
    pub on_try: Callback<usize>,
}

#[function_component(Narrative)]
pub fn narrative(props: &NarrativeProps) -> Html {
    let sections = props.content.sections.iter().map(|section| {
        let paragraphs = section
            .paragraphs
            .iter()
            .map(|text| html! { <p><RichText text={text.clone()} /></p> });
        html! {
            <section class="narrative-section">
                <h2>{ section.heading.clone() }</h2>
                { for paragraphs }
            </section>
        }
    });
    let steps = props.content.try_this.iter().enumerate().map(|(index, step)| {
        let onclick = props.on_try.reform(move |_: MouseEvent| index);
        html! {
            <li class="try-step" data-step={index.to_string()}>
                <p><RichText text={step.text.clone()} /></p>
                <button type="button" {onclick}>{ "Set it up" }</button>
                <p class="try-ask"><strong>{ "Then ask yourself: " }</strong><RichText text={step.ask.clone()} /></p>
            </li>
        }
    });
    let tips = props
        .content
        .exam_tips
        .iter()
        .map(|tip| html! { <li><RichText text={tip.clone()} /></li> });
    html! {
        <div class="narrative">
            { for sections }
            <section class="narrative-section try-this">
                <h2>{ "Try this" }</h2>
                <ol>{ for steps }</ol>
            </section>
            <section class="narrative-section exam-tips">
                <h2>{ "Exam tips" }</h2>
                <ul>{ for tips }</ul>
            </section>
        </div>
    }
}
