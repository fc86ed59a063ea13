//! Sharing a lesson: copy a link that reproduces the run (parameters, seed, scheduled
//! failures, panels), build the iframe code for a course page, and download the run's
//! charts (SVG, PNG) and metrics (CSV, JSON).

use yew::prelude::*;

use crate::embed;
use crate::route::{LessonRoute, Origin, Panel, Presentation, Route};

use super::url;

/// A file the lesson page can produce from its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    ChartsSvg,
    ChartsPng,
    MetricsCsv,
    MetricsJson,
}

#[derive(Properties, PartialEq)]
pub struct ShareBarProps {
    pub route: LessonRoute,
    pub presentation: Presentation,
    pub title: &'static str,
    pub on_export: Callback<ExportKind>,
}

/// The embed dialog's choices.
#[derive(Clone, Debug, PartialEq)]
struct EmbedChoices {
    panels: Vec<Panel>,
    locked: bool,
    origin: String,
    height: u32,
}

const DEFAULT_EMBED_HEIGHT: u32 = 900;

#[function_component(ShareBar)]
pub fn share_bar(props: &ShareBarProps) -> Html {
    let status = use_state(|| None::<String>);
    let fallback_link = use_state(|| None::<String>);
    let embed_open = use_state(|| false);
    let choices = use_state(|| EmbedChoices {
        panels: Panel::ALL.to_vec(),
        locked: false,
        origin: String::new(),
        height: DEFAULT_EMBED_HEIGHT,
    });

    let link = url::absolute(&Route::Lesson(props.route.clone()), &props.presentation);
    let on_copy_link = {
        let status = status.clone();
        let fallback_link = fallback_link.clone();
        let link = link.clone();
        Callback::from(move |_: MouseEvent| {
            let status = status.clone();
            let fallback_link = fallback_link.clone();
            let shown = link.clone();
            super::export::copy(&link, move |copied| {
                if copied {
                    fallback_link.set(None);
                    status.set(Some(
                        "Link copied: it reopens this lesson with the same parameters, seed and failures.".to_owned(),
                    ));
                } else {
                    status.set(Some(
                        "The browser did not allow copying; copy the link below.".to_owned(),
                    ));
                    fallback_link.set(Some(shown));
                }
            });
        })
    };
    let on_toggle_embed = {
        let embed_open = embed_open.clone();
        Callback::from(move |_: MouseEvent| embed_open.set(!*embed_open))
    };
    let export_button = |kind: ExportKind, label: &'static str| {
        let onclick = props.on_export.reform(move |_: MouseEvent| kind);
        html! { <button type="button" data-export={format!("{kind:?}")} {onclick}>{ label }</button> }
    };

    let origin = Origin::parse(&choices.origin);
    let origin_problem = (!choices.origin.trim().is_empty())
        .then(|| origin.as_ref().err().cloned())
        .flatten();
    let embed_presentation = Presentation {
        embed: true,
        panels: choices.panels.clone(),
        locked: choices.locked,
        origins: origin.ok().into_iter().collect(),
    };
    let snippet = embed::iframe_snippet(
        &url::absolute(&Route::Lesson(props.route.clone()), &embed_presentation),
        props.title,
        choices.height,
    );
    let embed_dialog = embed_open.then(|| {
        let panel_boxes = Panel::ALL.into_iter().map(|panel| {
            let checked = choices.panels.contains(&panel);
            let onchange = {
                let choices = choices.clone();
                Callback::from(move |_: Event| {
                    let mut next = (*choices).clone();
                    if next.panels.contains(&panel) {
                        // At least one panel stays.
                        if next.panels.len() > 1 {
                            next.panels.retain(|p| *p != panel);
                        }
                    } else {
                        next.panels.push(panel);
                        next.panels.sort();
                    }
                    choices.set(next);
                })
            };
            html! {
                <label><input type="checkbox" data-panel={panel.key()} {checked} {onchange} />{ panel.key() }</label>
            }
        });
        let on_locked = {
            let choices = choices.clone();
            Callback::from(move |_: Event| {
                let mut next = (*choices).clone();
                next.locked = !next.locked;
                choices.set(next);
            })
        };
        let on_origin = {
            let choices = choices.clone();
            Callback::from(move |event: InputEvent| {
                let input: web_sys::HtmlInputElement = event.target_unchecked_into();
                let mut next = (*choices).clone();
                next.origin = input.value();
                choices.set(next);
            })
        };
        let on_height = {
            let choices = choices.clone();
            Callback::from(move |event: Event| {
                let input: web_sys::HtmlInputElement = event.target_unchecked_into();
                if let Ok(height) = input.value().trim().parse::<u32>() {
                    let mut next = (*choices).clone();
                    next.height = height.clamp(200, 4000);
                    choices.set(next);
                }
            })
        };
        let on_copy_code = {
            let status = status.clone();
            let snippet = snippet.clone();
            Callback::from(move |_: MouseEvent| {
                let status = status.clone();
                super::export::copy(&snippet, move |copied| {
                    status.set(Some(if copied {
                        "Embed code copied.".to_owned()
                    } else {
                        "The browser did not allow copying; select the code and copy it.".to_owned()
                    }));
                });
            })
        };
        html! {
            <section class="embed-dialog" aria-label="Embed this lesson">
                <h3>{ "Embed in a course page" }</h3>
                <fieldset>
                    <legend>{ "Panels shown" }</legend>
                    { for panel_boxes }
                </fieldset>
                <label><input type="checkbox" data-embed-locked="" checked={choices.locked} onchange={on_locked} />
                    { "Fix the parameters (learners can still play, inject failures and answer)" }</label>
                <label class="field">{ "Your course page's origin, to send commands and get scores (optional)" }
                    <input type="url" data-embed-origin="" placeholder="https://course.example" value={choices.origin.clone()} oninput={on_origin} />
                </label>
                if let Some(problem) = origin_problem {
                    <p class="notice" role="alert">{ problem }</p>
                }
                <label class="field">{ "Height in pixels" }
                    <input type="number" min="200" max="4000" step="50" value={choices.height.to_string()} onchange={on_height} />
                </label>
                <label class="field">{ "Embed code" }
                    <textarea readonly=true rows="4" data-embed-code="" value={snippet.clone()} />
                </label>
                <button type="button" onclick={on_copy_code}>{ "Copy embed code" }</button>
                <p class="hint">{ "Messages to the course page and the commands it can send are described in docs/EMBEDDING.md." }</p>
            </section>
        }
    });

    html! {
        <div class="share-bar">
            <div class="share-actions" role="group" aria-label="Share and export">
                <button type="button" data-share="link" onclick={on_copy_link}>{ "Copy link to this run" }</button>
                <button type="button" data-share="embed" aria-expanded={embed_open.to_string()} onclick={on_toggle_embed}>{ "Embed…" }</button>
                { export_button(ExportKind::ChartsSvg, "Charts SVG") }
                { export_button(ExportKind::ChartsPng, "Charts PNG") }
                { export_button(ExportKind::MetricsCsv, "Metrics CSV") }
                { export_button(ExportKind::MetricsJson, "Metrics JSON") }
            </div>
            <p class="share-status" role="status">{ (*status).clone().unwrap_or_default() }</p>
            if let Some(shown) = (*fallback_link).clone() {
                <input class="share-link" type="text" readonly=true aria-label="Link to this run" value={shown} />
            }
            { embed_dialog }
        </div>
    }
}
