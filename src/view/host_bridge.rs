//! The bridge to a host page when the app runs in an iframe: posts the embedding
//! contract's messages (`crate::embed`) to the parent window, follows the content height
//! for `resize`, and receives commands, accepted only from the origins the link trusts.
//! Malformed or untrusted messages are ignored and reported once on the console.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::Value;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::embed::{self, HostCommand, Incoming};
use crate::route::Origin;

/// Whether the page is inside a frame (only then is there a host to talk to).
pub fn embedded() -> bool {
    let window = gloo::utils::window();
    match window.parent() {
        Ok(Some(parent)) => !js_sys::Object::is(&parent, &window),
        _ => false,
    }
}

/// Posts `message` to the host page: to each trusted origin, or to any origin when the
/// link trusts none (messages carry no personal data).
pub fn post(message: &Value, origins: &[Origin]) {
    if !embedded() {
        return;
    }
    let Ok(Some(parent)) = gloo::utils::window().parent() else {
        return;
    };
    let Ok(data) = js_sys::JSON::parse(&message.to_string()) else {
        return;
    };
    if origins.is_empty() {
        let _ = parent.post_message(&data, "*");
    } else {
        for origin in origins {
            let _ = parent.post_message(&data, origin.as_str());
        }
    }
}

/// Listens for host commands; `on_command` gets the valid ones from trusted origins.
pub fn listen(
    origins: Vec<Origin>,
    on_command: impl Fn(HostCommand) + 'static,
) -> gloo::events::EventListener {
    let reported_foreign = Cell::new(false);
    let reported_malformed = Cell::new(false);
    gloo::events::EventListener::new(&gloo::utils::window(), "message", move |event| {
        let Some(event) = event.dyn_ref::<web_sys::MessageEvent>() else {
            return;
        };
        let data = js_sys::JSON::stringify(&event.data())
            .ok()
            .and_then(|text| text.as_string())
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .unwrap_or(Value::Null);
        let incoming = embed::parse_command(&data);
        if incoming == Incoming::NotForUs {
            return;
        }
        let origin = event.origin();
        let trusted = Origin::parse(&origin).is_ok_and(|origin| origins.contains(&origin));
        if !trusted {
            if !reported_foreign.replace(true) {
                gloo::console::warn!(format!(
                    "Patterns Playground ignored a command from {origin}: add it to the link's origins= to accept its commands. (Reported once.)"
                ));
            }
            return;
        }
        match incoming {
            Incoming::Command(command) => on_command(command),
            Incoming::Malformed(problem) => {
                if !reported_malformed.replace(true) {
                    gloo::console::warn!(format!(
                        "Patterns Playground ignored a malformed command: {problem}. (Reported once.)"
                    ));
                }
            }
            Incoming::NotForUs => {}
        }
    })
}

/// Posts `resize` whenever the content's height changes. Dropping the returned value
/// stops it.
pub struct HeightWatcher {
    observer: web_sys::ResizeObserver,
    _callback: Closure<dyn FnMut(JsValue)>,
}

impl Drop for HeightWatcher {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

pub fn watch_height(origins: Vec<Origin>) -> Option<HeightWatcher> {
    if !embedded() {
        return None;
    }
    let root = gloo::utils::document().document_element()?;
    let last = Rc::new(Cell::new(0u32));
    let measured = root.clone();
    let callback = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        let height = measured.get_bounding_client_rect().height().ceil().max(0.0) as u32;
        if height != last.replace(height) {
            post(&embed::resize(height), &origins);
        }
    });
    let observer = web_sys::ResizeObserver::new(callback.as_ref().unchecked_ref()).ok()?;
    observer.observe(&root);
    Some(HeightWatcher {
        observer,
        _callback: callback,
    })
}
