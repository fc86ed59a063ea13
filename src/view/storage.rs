//! Progress in `localStorage`: read once at start (validated by `learning::progress`;
//! unreadable data is set aside under its own key, never silently destroyed), written
//! after every answer, import and reset. Storage that is missing or blocked (private mode, a
//! sandboxed iframe) just means progress lasts for this visit.

use crate::learning::progress::{self, Progress, STORAGE_KEY};

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Where unreadable stored progress is kept, untouched, before the fresh start
/// overwrites the main key (so nothing is lost even then).
const UNREADABLE_KEY: &str = "patterns-playground/progress.unreadable";

/// The stored progress, and a notice if stored data had to be discarded.
pub fn load() -> (Progress, Option<String>) {
    let storage = storage();
    let stored = storage
        .as_ref()
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten());
    let (progress, notice) = progress::parse_stored(stored.as_deref());
    if let (Some(storage), Some(text), Some(_)) = (&storage, &stored, &notice) {
        let _ = storage.set_item(UNREADABLE_KEY, text);
    }
    (progress, notice)
}

pub fn save(progress: &Progress) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(STORAGE_KEY, &progress.to_json());
    }
}
