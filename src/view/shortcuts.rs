//! Keyboard shortcuts of the lesson page: the key map (one place, so the help dialog and
//! the handler never disagree) and the help dialog that lists them.

use yew::prelude::*;

/// What a key does on the lesson page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortcut {
    TogglePlay,
    Step,
    StepBack,
    Reset,
    RunToEnd,
    Slower,
    Faster,
    /// The n-th (0-based) failure injection of the lesson.
    Inject(usize),
    Help,
    CloseHelp,
}

/// The keys, as shown in the help dialog, with what they do.
pub const KEYS: &[(&str, &str)] = &[
    ("Space", "Play or pause"),
    (".", "Step: handle the next event"),
    (",", "Step back"),
    ("[ and ]", "Slower and faster"),
    ("E", "Run to the end"),
    ("R", "Reset (clears scheduled failures)"),
    ("1 to 9", "Inject the lesson's first, second, ... failure"),
    ("?", "Show these shortcuts"),
    ("Esc", "Close this dialog"),
];

/// Maps a `KeyboardEvent.key` value to its shortcut. Keys typed into form fields and
/// keys with Ctrl, Alt or Meta never reach here (the page filters them).
pub fn shortcut_for(key: &str) -> Option<Shortcut> {
    Some(match key {
        " " => Shortcut::TogglePlay,
        "." => Shortcut::Step,
        "," => Shortcut::StepBack,
        "[" => Shortcut::Slower,
        "]" => Shortcut::Faster,
        "e" | "E" => Shortcut::RunToEnd,
        "r" | "R" => Shortcut::Reset,
        "?" => Shortcut::Help,
        "Escape" => Shortcut::CloseHelp,
        digit if digit.len() == 1 && ('1'..='9').contains(&digit.chars().next()?) => {
            Shortcut::Inject(usize::from(digit.as_bytes()[0] - b'1'))
        }
        _ => return None,
    })
}

#[derive(Properties, PartialEq)]
pub struct ShortcutsHelpProps {
    /// The lesson's injection labels, in key order.
    pub injections: Vec<&'static str>,
    pub on_close: Callback<()>,
}

/// A modal dialog listing the shortcuts; focus goes to its Close button, Esc closes it.
#[function_component(ShortcutsHelp)]
pub fn shortcuts_help(props: &ShortcutsHelpProps) -> Html {
    let close_ref = use_node_ref();
    {
        let close_ref = close_ref.clone();
        use_effect_with((), move |_| {
            if let Some(button) = close_ref.cast::<web_sys::HtmlElement>() {
                let _ = button.focus();
            }
        });
    }
    let rows = KEYS.iter().map(|(key, what)| {
        html! { <tr><th scope="row"><kbd>{ *key }</kbd></th><td>{ *what }</td></tr> }
    });
    let injections = props
        .injections
        .iter()
        .enumerate()
        .take(9)
        .map(|(index, label)| {
            html! { <li><kbd>{ index + 1 }</kbd>{ " " }{ *label }</li> }
        });
    let on_close = props.on_close.reform(|_: MouseEvent| ());
    html! {
        <div class="dialog-backdrop">
            <div class="shortcuts-help" role="dialog" aria-modal="true" aria-labelledby="shortcuts-title">
                <h2 id="shortcuts-title">{ "Keyboard shortcuts" }</h2>
                <table>
                    <tbody>{ for rows }</tbody>
                </table>
                if !props.injections.is_empty() {
                    <h3>{ "This lesson's failures" }</h3>
                    <ul class="shortcut-injections">{ for injections }</ul>
                }
                <p>{ "Tab and Shift+Tab move between every control; Enter or Space presses the focused one." }</p>
                <button type="button" ref={close_ref} onclick={on_close}>{ "Close" }</button>
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_shortcuts() {
        assert_eq!(shortcut_for(" "), Some(Shortcut::TogglePlay));
        assert_eq!(shortcut_for("1"), Some(Shortcut::Inject(0)));
        assert_eq!(shortcut_for("9"), Some(Shortcut::Inject(8)));
        assert_eq!(shortcut_for("0"), None);
        assert_eq!(shortcut_for("E"), Some(Shortcut::RunToEnd));
        assert_eq!(shortcut_for("x"), None);
        assert_eq!(shortcut_for("10"), None);
    }
}
