//! Fetches a lesson's narrative and quiz (`content/lessons/<id>.json`) when the lesson
//! opens, and shows a notice while it loads or if it cannot be loaded. The simulation does
//! not wait for it: the lesson is usable while its text arrives.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use yew::prelude::*;

use crate::learning::content::{self, LessonContent};

/// Where a lesson's content stands.
#[derive(Clone, Copy, PartialEq)]
pub enum ContentState {
    Ready(&'static LessonContent),
    Loading,
    /// The last attempt failed, with a reason in words.
    Failed(&'static str),
}

/// The content of `lesson` and a callback that tries the download again after a failure.
#[hook]
pub fn use_lesson_content(lesson: &'static str) -> (ContentState, Callback<()>) {
    // The failure (if any) of the latest attempt, by lesson; a render after a successful
    // download finds the content kept in `content`.
    let failure = use_state(|| None::<(&'static str, &'static str)>);
    let attempt = use_state(|| 0_u32);
    let loaded = use_state(|| 0_u32);
    {
        let failure = failure.clone();
        let loaded = loaded.clone();
        use_effect_with((lesson, *attempt), move |&(lesson, _)| {
            if content::for_lesson(lesson).is_none() {
                wasm_bindgen_futures::spawn_local(async move {
                    match fetch(lesson).await {
                        Ok(_) => {
                            failure.set(None);
                            loaded.set(*loaded + 1);
                        }
                        Err(reason) => failure.set(Some((lesson, reason))),
                    }
                });
            }
        });
    }
    let retry = {
        let failure = failure.clone();
        let attempt = attempt.clone();
        Callback::from(move |()| {
            failure.set(None);
            attempt.set(*attempt + 1);
        })
    };
    let state = match (content::for_lesson(lesson), *failure) {
        (Some(loaded), _) => ContentState::Ready(loaded),
        (None, Some((failed, reason))) if failed == lesson => ContentState::Failed(reason),
        (None, _) => ContentState::Loading,
    };
    (state, retry)
}

/// Downloads, parses and keeps one lesson's content.
async fn fetch(lesson: &'static str) -> Result<&'static LessonContent, &'static str> {
    const OFFLINE: &str = "The lesson's text could not be downloaded (are you offline?).";
    let entry = content::index(lesson).ok_or("This lesson has no text yet.")?;
    let window = web_sys::window().ok_or(OFFLINE)?;
    let response = JsFuture::from(window.fetch_with_str(&content::url(entry)))
        .await
        .map_err(|_| OFFLINE)?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| OFFLINE)?;
    if !response.ok() {
        return Err("The server did not send the lesson's text.");
    }
    let text = JsFuture::from(response.text().map_err(|_| OFFLINE)?)
        .await
        .map_err(|_| OFFLINE)?
        .as_string()
        .ok_or(OFFLINE)?;
    let parsed = content::parse(lesson, &text).map_err(|problem| {
        gloo::console::error!(problem);
        "The lesson's text arrived damaged."
    })?;
    Ok(content::keep(parsed))
}

#[derive(Properties, PartialEq)]
pub struct ContentNoticeProps {
    pub state: ContentState,
    pub on_retry: Callback<()>,
}

/// "Loading the lesson's text…" or the reason it failed, with a retry button.
#[function_component(ContentNotice)]
pub fn content_notice(props: &ContentNoticeProps) -> Html {
    match props.state {
        ContentState::Ready(_) => html! {},
        ContentState::Loading => html! {
            <p class="content-notice" role="status">{ "Loading the lesson's text and quiz…" }</p>
        },
        ContentState::Failed(reason) => {
            let on_retry = props.on_retry.reform(|_: MouseEvent| ());
            html! {
                <div class="content-notice notice" role="alert">
                    <p>{ reason }{ " The simulation works without it." }</p>
                    <button type="button" onclick={on_retry}>{ "Try again" }</button>
                </div>
            }
        }
    }
}
