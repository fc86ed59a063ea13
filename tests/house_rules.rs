//! Tidy checks on the source tree: every module says what it is for, and the model side
//! never imports a web crate (ARCHITECTURE.md's invariants, enforced).
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn sources(relative: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let mut files = Vec::new();
    if root.is_dir() {
        rust_files(&root, &mut files);
    } else {
        files.push(root);
    }
    files.sort();
    files
}

#[test]
fn every_module_starts_with_a_doc_line() {
    let mut missing = Vec::new();
    for dir in ["src", "tests"] {
        for file in sources(dir) {
            let text = fs::read_to_string(&file).unwrap();
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("");
            if !first.starts_with("//!") {
                missing.push(file.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:?}"
    );
}

#[test]
fn the_model_side_never_imports_a_web_crate() {
    const WEB_CRATES: [&str; 5] = ["yew", "web_sys", "gloo", "wasm_bindgen", "js_sys"];
    let mut offenders = Vec::new();
    for place in [
        "src/sim",
        "src/lessons",
        "src/learning",
        "src/route.rs",
        "src/embed.rs",
        "src/runner.rs",
    ] {
        for file in sources(place) {
            let text = fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for web in WEB_CRATES {
                    let used = code.contains(&format!("use {web}"))
                        || code.contains(&format!("{web}::"))
                        || code.contains(&format!("extern crate {web}"));
                    if used {
                        offenders.push(format!(
                            "{}:{}: {}",
                            file.display(),
                            number + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "web crates on the model side:\n{}",
        offenders.join("\n")
    );
}
