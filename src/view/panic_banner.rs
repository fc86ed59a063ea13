//! A panic must never leave a dead page: the hook logs the panic and puts a banner with a
//! reload button straight into the DOM (Yew's own state may be unusable by then).

use std::panic;

/// Installs the hook. Call once, before the app renders.
pub fn install() {
    panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        gloo::console::error!(format!("Patterns Playground crashed: {message}"));
        show_banner(&message);
    }));
}

/// Writes the banner for `message` at the top of the page (also used by tests).
pub fn show_banner(message: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(banner) = document.create_element("div") else {
        return;
    };
    banner.set_id("error-banner");
    banner.set_class_name("error-banner");
    let _ = banner.set_attribute("role", "alert");
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    banner.set_inner_html(&format!(
        "<p><strong>Something went wrong and this page stopped.</strong> \
         Reloading starts the lesson again from its link.</p>\
         <p><button type=\"button\" onclick=\"location.reload()\">Reload the page</button></p>\
         <details><summary>Technical details</summary><pre>{escaped}</pre></details>"
    ));
    if let Some(body) = document.body() {
        let _ = body.prepend_with_node_1(&banner);
    }
}
