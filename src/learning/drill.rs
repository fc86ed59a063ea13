//! The exam drill: short scenarios in the style of certification exam tips ("a
//! requirement → which pattern or service?"), mixed across lessons, each option with its
//! explanation and a link back to the lesson (or glossary term) that teaches it. Read from
//! `content/drill.json`; checked by tests.

use std::sync::OnceLock;

use serde::Deserialize;

use super::content::Choice;

/// One drill question: a single-choice scenario.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillQuestion {
    pub id: String,
    pub prompt: String,
    pub options: Vec<Choice>,
    /// The lesson that teaches the answer, if one exists yet.
    #[serde(default)]
    pub lesson: Option<String>,
    /// The glossary term behind the answer.
    #[serde(default)]
    pub term: Option<String>,
}

impl DrillQuestion {
    /// The index of the correct option (the file has exactly one; tests check).
    pub fn correct_index(&self) -> Option<usize> {
        self.options.iter().position(|option| option.correct)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillFile {
    questions: Vec<DrillQuestion>,
}

const FILE: &str = include_str!("../../content/drill.json");

/// Parses the drill file, naming the problem on error.
pub fn parse(text: &str) -> Result<Vec<DrillQuestion>, String> {
    let file: DrillFile =
        serde_json::from_str(text).map_err(|error| format!("content/drill.json: {error}"))?;
    Ok(file.questions)
}

/// Every drill question, in file order.
pub fn all() -> &'static [DrillQuestion] {
    static ALL: OnceLock<Vec<DrillQuestion>> = OnceLock::new();
    ALL.get_or_init(|| parse(FILE).unwrap_or_default())
}

/// A shuffled order of `count` question indices for one drill session (Fisher–Yates
/// driven by `random`, a function returning uniform numbers in [0, 1)).
pub fn session_order(count: usize, mut random: impl FnMut() -> f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..all().len()).collect();
    for i in (1..order.len()).rev() {
        let j = ((random() * (i + 1) as f64) as usize).min(i);
        order.swap(i, j);
    }
    order.truncate(count.min(order.len()));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_a_permutation_prefix() {
        let mut state = 0.37_f64;
        let order = session_order(usize::MAX, || {
            state = (state * 9301.0 + 0.49297).fract();
            state
        });
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..all().len()).collect::<Vec<_>>());
        assert_eq!(session_order(3, || 0.999_999).len(), 3.min(all().len()));
    }
}
