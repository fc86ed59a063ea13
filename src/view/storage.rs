//! Progress in `localStorage`: read once at start (validated by `learning::progress`),
//! written after every answer. Storage that is missing or blocked (private mode, a
//! sandboxed iframe) just means progress lasts for this visit.

use crate::learning::progress::{self, Progress, STORAGE_KEY};

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The stored progress, and a notice if stored data had to be discarded.
pub fn load() -> (Progress, Option<String>) {
    let stored = storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten());
    progress::parse_stored(stored.as_deref())
}

pub fn save(progress: &Progress) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(STORAGE_KEY, &progress.to_json());
    }
}
