//! Build script: indexes the lesson content files (`content/lessons/*.json`) so the app
//! knows every lesson's question ids and search terms without compiling the prose in.
//! The site fetches a lesson's full content on demand; native builds (tests, tools)
//! compile every file in, listed here so adding a lesson's content needs no code change.

use std::fmt::Write as _;
use std::path::Path;

/// The few fields the course map needs from a content file.
#[derive(serde::Deserialize)]
struct IndexedContent {
    lesson: String,
    questions: Vec<IndexedQuestion>,
    #[serde(default)]
    search_terms: Vec<String>,
}

#[derive(serde::Deserialize)]
struct IndexedQuestion {
    id: String,
}

/// FNV-1a 64 of the file, used as a cache-busting version in the fetch URL.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("content/lessons");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("content/lessons exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();

    let mut index = String::from("/// Every content file: id, version, question ids, search terms.\npub static INDEX: &[LessonIndex] = &[\n");
    let mut embedded = String::from(
        "/// Every content file's text, compiled in (native builds only).\n#[cfg(not(target_arch = \"wasm32\"))]\nconst FILES: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let id = path.file_stem().unwrap().to_str().expect("UTF-8 file name");
        let text = std::fs::read_to_string(path).expect("readable content file");
        // A file that does not parse is reported by `tests/content.rs` with a precise
        // message; here it is indexed as empty so the build itself never fails on prose.
        let parsed: Option<IndexedContent> = serde_json::from_str(&text).ok();
        let (questions, terms) = parsed
            .filter(|content| content.lesson == id)
            .map(|content| {
                let questions: Vec<String> = content.questions.into_iter().map(|q| q.id).collect();
                (questions, content.search_terms)
            })
            .unwrap_or_default();
        writeln!(
            index,
            "    LessonIndex {{ lesson: {id:?}, version: \"{:016x}\", questions: &{questions:?}, search_terms: &{terms:?} }},",
            fnv1a(text.as_bytes())
        )
        .unwrap();
        writeln!(
            embedded,
            "    ({id:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    index.push_str("];\n");
    embedded.push_str("];\n");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("content_index.rs");
    std::fs::write(out, index + &embedded).expect("writable OUT_DIR");
}
