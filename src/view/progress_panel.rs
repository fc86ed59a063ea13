//! The learner's progress tools on the course map: export to a JSON file, import one
//! (validated by `learning::progress::parse_import`, merged so nothing is lost; a bad
//! file leaves everything as it was and says why), and reset with a confirmation step.

use gloo::file::callbacks::{read_as_text, FileReader};
use gloo::file::File;
use yew::prelude::*;

use crate::learning::progress::{self, Progress};

#[derive(Properties, PartialEq)]
pub struct ProgressPanelProps {
    pub progress: Progress,
    /// Replaces the progress (the app stores it).
    pub on_replace: Callback<Progress>,
}

/// "1 answer", "3 answers".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[function_component(ProgressPanel)]
pub fn progress_panel(props: &ProgressPanelProps) -> Html {
    let message = use_state(|| None::<(bool, String)>);
    let confirming_reset = use_state(|| false);
    // Keeps the file read alive until it finishes.
    let reader = use_mut_ref(|| None::<FileReader>);

    let on_export = {
        let progress = props.progress.clone();
        let message = message.clone();
        Callback::from(move |_: MouseEvent| {
            let result = super::export::download(
                "patterns-playground-progress.json",
                "application/json",
                &progress.to_export(),
            );
            message.set(Some(match result {
                Ok(()) => (
                    true,
                    format!(
                        "Exported {} to patterns-playground-progress.json.",
                        count(progress.answer_count(), "answer")
                    ),
                ),
                Err(problem) => (false, format!("Could not export: {problem}.")),
            }));
        })
    };

    let on_import = {
        let progress = props.progress.clone();
        let on_replace = props.on_replace.clone();
        let message = message.clone();
        let reader = reader.clone();
        Callback::from(move |event: Event| {
            let input: web_sys::HtmlInputElement = event.target_unchecked_into();
            let Some(file) = input.files().and_then(|files| files.get(0)) else {
                return;
            };
            input.set_value("");
            let file = File::from(file);
            if file.size() as usize > progress::MAX_IMPORT_BYTES {
                message.set(Some((
                    false,
                    "That file is too large to be a progress export; nothing was changed.".into(),
                )));
                return;
            }
            let progress = progress.clone();
            let on_replace = on_replace.clone();
            let message = message.clone();
            let task = read_as_text(&file, move |result| {
                let outcome = result
                    .map_err(|_| "The file could not be read.".to_owned())
                    .and_then(|text| progress::parse_import(&text));
                match outcome {
                    Ok(imported) => {
                        let mut merged = progress.clone();
                        merged.merge(&imported);
                        message.set(Some((
                            true,
                            format!(
                                "Imported {} from {}, merged with this browser's progress.",
                                count(imported.answer_count(), "answer"),
                                count(imported.lessons.len(), "lesson")
                            ),
                        )));
                        on_replace.emit(merged);
                    }
                    Err(problem) => {
                        message.set(Some((false, format!("{problem} Nothing was changed."))))
                    }
                }
            });
            *reader.borrow_mut() = Some(task);
        })
    };

    let on_reset = {
        let confirming_reset = confirming_reset.clone();
        Callback::from(move |_: MouseEvent| confirming_reset.set(true))
    };
    let on_confirm_reset = {
        let confirming_reset = confirming_reset.clone();
        let on_replace = props.on_replace.clone();
        let message = message.clone();
        Callback::from(move |_: MouseEvent| {
            confirming_reset.set(false);
            on_replace.emit(Progress::new());
            message.set(Some((
                true,
                "Progress reset: every lesson is not started again.".into(),
            )));
        })
    };
    let on_cancel_reset = {
        let confirming_reset = confirming_reset.clone();
        Callback::from(move |_: MouseEvent| confirming_reset.set(false))
    };

    html! {
        <section class="progress-panel" aria-labelledby="progress-tools">
            <h2 id="progress-tools">{ "Your progress" }</h2>
            <p class="progress-note">{ "Kept in this browser only. Export it to move to another device, then import it there." }</p>
            <div class="progress-actions">
                <button type="button" onclick={on_export}>{ "Export progress" }</button>
                <label class="import-button">
                    { "Import progress…" }
                    <input type="file" accept="application/json,.json" onchange={on_import} data-testid="import-progress" />
                </label>
                if *confirming_reset {
                    <span class="reset-confirm" role="group" aria-label="Confirm reset">
                        { "Forget every answer? " }
                        <button type="button" class="danger" onclick={on_confirm_reset}>{ "Yes, reset" }</button>
                        <button type="button" onclick={on_cancel_reset}>{ "Cancel" }</button>
                    </span>
                } else {
                    <button type="button" onclick={on_reset}>{ "Reset progress" }</button>
                }
            </div>
            if let Some((ok, text)) = &*message {
                <p class={classes!("progress-message", if *ok { "ok" } else { "problem" })} role={if *ok { "status" } else { "alert" }}>{ text.clone() }</p>
            }
        </section>
    }
}
