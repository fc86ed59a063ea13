//! Reading and writing the page address: the only place the app touches
//! `window.location` and `history`. Parsing itself happens in `crate::route`.

use crate::route::{self, ParsedRoute, Presentation, Route};

/// The current address's query pairs, decoded.
pub fn current_pairs() -> Vec<(String, String)> {
    let Some(search) = web_sys::window().and_then(|w| w.location().search().ok()) else {
        return Vec::new();
    };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    let entries = js_sys::try_iter(&params.entries()).ok().flatten();
    for entry in entries.into_iter().flatten().flatten() {
        let pair = js_sys::Array::from(&entry);
        if let (Some(key), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
            pairs.push((key, value));
        }
    }
    pairs
}

/// Parses the current address.
pub fn current_route() -> ParsedRoute {
    let pairs = current_pairs();
    route::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The query string (with leading `?`, or empty) that reproduces `route` as presented.
pub fn query_for(route: &Route, presentation: &Presentation) -> String {
    let pairs = route::to_pairs(route, presentation);
    if pairs.is_empty() {
        return "?".to_owned();
    }
    let Ok(params) = web_sys::UrlSearchParams::new() else {
        return String::new();
    };
    for (key, value) in &pairs {
        params.append(key, value);
    }
    format!("?{}", String::from(params.to_string()))
}

/// Replaces the address bar's query with `route`'s, without reloading or adding history.
pub fn replace(route: &Route, presentation: &Presentation) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&query_for(route, presentation)),
        );
    }
}

/// Pushes `route` as a new history entry (navigation between pages).
pub fn push(route: &Route, presentation: &Presentation) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.push_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&query_for(route, presentation)),
        );
    }
}

/// The absolute address of `route` as presented: the page's own location (any host,
/// any sub-path) with the route's query. What Share copies and embed snippets use.
pub fn absolute(route: &Route, presentation: &Presentation) -> String {
    let location = web_sys::window().map(|w| w.location());
    let base = location
        .and_then(|l| Some(format!("{}{}", l.origin().ok()?, l.pathname().ok()?)))
        .unwrap_or_default();
    format!("{base}{}", query_for(route, presentation))
}
