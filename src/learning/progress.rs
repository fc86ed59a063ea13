//! The learner's progress, stored in the browser as versioned JSON. Parsed at the edge:
//! missing data starts fresh; older formats are migrated; corrupt or foreign data starts
//! fresh *with a notice*; nothing stored can crash the app.
//!
//! Formats: 1 = answers by lesson and question; 2 (current) adds the lessons the learner
//! has opened (`visited`), so a lesson read but not yet quizzed shows as in progress.
//! Format 1 migrates to 2 with every lesson that has answers counted as visited.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Bump when the stored shape changes (and add a migration or a reset notice).
pub const PROGRESS_VERSION: u32 = 2;

/// The storage key (namespaced so host pages' own keys never clash).
pub const STORAGE_KEY: &str = "patterns-playground/progress";

/// One question's record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRecord {
    /// Whether the latest attempt was right.
    pub correct: bool,
    pub attempts: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub version: u32,
    /// By lesson id, then question id.
    pub lessons: BTreeMap<String, BTreeMap<String, AnswerRecord>>,
    /// Lessons the learner has opened.
    pub visited: BTreeSet<String>,
}

/// Format 1, as stored before `visited` existed (read only, to migrate).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressV1 {
    #[allow(dead_code)]
    version: u32,
    lessons: BTreeMap<String, BTreeMap<String, AnswerRecord>>,
}

impl From<ProgressV1> for Progress {
    fn from(old: ProgressV1) -> Self {
        Progress {
            version: PROGRESS_VERSION,
            visited: old.lessons.keys().cloned().collect(),
            lessons: old.lessons,
        }
    }
}

/// Reads stored or exported JSON of any known format into the current one. `Err` says
/// why it is not progress (`None` version: not ours at all).
fn read_any_format(value: serde_json::Value) -> Result<Progress, ReadError> {
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    match version {
        Some(1) => serde_json::from_value::<ProgressV1>(value)
            .map(Progress::from)
            .map_err(|error| ReadError::Damaged(error.to_string())),
        Some(version) if version == u64::from(PROGRESS_VERSION) => {
            serde_json::from_value::<Progress>(value)
                .map_err(|error| ReadError::Damaged(error.to_string()))
        }
        Some(version) if version > u64::from(PROGRESS_VERSION) => Err(ReadError::Newer(version)),
        _ => Err(ReadError::NoVersion),
    }
}

enum ReadError {
    Damaged(String),
    Newer(u64),
    NoVersion,
}

/// Where a lesson stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LessonStatus {
    NotStarted,
    InProgress { correct: usize, total: usize },
    Mastered,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            version: PROGRESS_VERSION,
            lessons: BTreeMap::new(),
            visited: BTreeSet::new(),
        }
    }

    /// Records that the learner opened `lesson`; false if it was already recorded.
    pub fn visit(&mut self, lesson: &str) -> bool {
        self.visited.insert(lesson.to_owned())
    }

    /// Records an attempt.
    pub fn record(&mut self, lesson: &str, question: &str, correct: bool) {
        self.visited.insert(lesson.to_owned());
        let entry = self
            .lessons
            .entry(lesson.to_owned())
            .or_default()
            .entry(question.to_owned())
            .or_default();
        entry.correct = correct;
        entry.attempts = entry.attempts.saturating_add(1);
    }

    pub fn answer(&self, lesson: &str, question: &str) -> Option<AnswerRecord> {
        self.lessons.get(lesson)?.get(question).copied()
    }

    /// Status of a lesson with `questions` question ids.
    pub fn status<'a>(
        &self,
        lesson: &str,
        questions: impl IntoIterator<Item = &'a str>,
    ) -> LessonStatus {
        let ids: Vec<&str> = questions.into_iter().collect();
        let answered = ids
            .iter()
            .filter(|id| self.answer(lesson, id).is_some())
            .count();
        let correct = ids
            .iter()
            .filter(|id| self.answer(lesson, id).is_some_and(|record| record.correct))
            .count();
        if answered == 0 && !self.visited.contains(lesson) {
            LessonStatus::NotStarted
        } else if correct == ids.len() {
            LessonStatus::Mastered
        } else {
            LessonStatus::InProgress {
                correct,
                total: ids.len(),
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("progress always serialises")
    }

    /// The export file's text: the stored format, indented for people.
    pub fn to_export(&self) -> String {
        serde_json::to_string_pretty(self).expect("progress always serialises")
    }

    /// Answers recorded, over all lessons.
    pub fn answer_count(&self) -> usize {
        self.lessons.values().map(BTreeMap::len).sum()
    }

    /// Adds `other`'s records to these. Where both have a question, the record with more
    /// attempts wins (it has seen everything the other has), and on a tie `other`'s.
    pub fn merge(&mut self, other: &Progress) {
        self.visited.extend(other.visited.iter().cloned());
        for (lesson, answers) in &other.lessons {
            let mine = self.lessons.entry(lesson.clone()).or_default();
            for (question, record) in answers {
                let keep_mine = mine
                    .get(question)
                    .is_some_and(|existing| existing.attempts > record.attempts);
                if !keep_mine {
                    mine.insert(question.clone(), *record);
                }
            }
        }
    }
}

/// The largest export file accepted (a real one is a few kilobytes).
pub const MAX_IMPORT_BYTES: usize = 1 << 20;

/// Reads an exported progress file. Anything that is not exactly an export of this
/// format is refused with a sentence saying why; the caller keeps its progress then.
pub fn parse_import(text: &str) -> Result<Progress, String> {
    if text.len() > MAX_IMPORT_BYTES {
        return Err(format!(
            "That file is too large to be a progress export ({} KB; exports are a few KB).",
            text.len() / 1024
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        "That file is not a progress export from Patterns Playground: it is not JSON.".to_owned()
    })?;
    read_any_format(value).map_err(|error| match error {
        ReadError::Newer(version) => format!(
            "That file was exported by a newer version of the playground (format {version}; this one reads {PROGRESS_VERSION}). Open the newer version to import it."
        ),
        ReadError::NoVersion => "That file is not a progress export from Patterns Playground: it has no format version this version knows.".to_owned(),
        ReadError::Damaged(error) => {
            format!("That file is not a progress export from Patterns Playground ({error}).")
        }
    })
}

/// Parses what storage held. Returns the progress to use and, when stored data had to be
/// discarded, a sentence saying so.
pub fn parse_stored(stored: Option<&str>) -> (Progress, Option<String>) {
    let Some(text) = stored.filter(|text| !text.trim().is_empty()) else {
        return (Progress::new(), None);
    };
    let value = serde_json::from_str::<serde_json::Value>(text);
    match value.map_err(|error| ReadError::Damaged(error.to_string())).and_then(read_any_format) {
        Ok(progress) => (progress, None),
        Err(ReadError::Newer(version)) => (
            Progress::new(),
            Some(format!(
                "Your saved progress was written by a newer version of the playground (format {version}, this one reads {PROGRESS_VERSION}), so it starts fresh here; the saved copy is kept aside.",
            )),
        ),
        Err(_) => (
            Progress::new(),
            Some("Your saved progress could not be read (it may be damaged), so it starts fresh.".to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_stored_starts_fresh_silently() {
        assert_eq!(parse_stored(None), (Progress::new(), None));
        assert_eq!(parse_stored(Some("  ")), (Progress::new(), None));
    }

    #[test]
    fn progress_round_trips() {
        let mut progress = Progress::new();
        progress.record("queueing-basics", "hockey-stick", false);
        progress.record("queueing-basics", "hockey-stick", true);
        let (again, notice) = parse_stored(Some(&progress.to_json()));
        assert_eq!(notice, None);
        assert_eq!(again, progress);
        assert_eq!(
            again.answer("queueing-basics", "hockey-stick"),
            Some(AnswerRecord {
                correct: true,
                attempts: 2
            })
        );
    }

    #[test]
    fn corrupt_or_foreign_data_resets_with_a_notice() {
        for bad in [
            "{not json",
            "[]",
            "{\"version\":1,\"lessons\":{\"x\":{\"q\":{\"correct\":\"yes\",\"attempts\":1}}}}",
            "{\"version\":1,\"lessons\":{},\"extra\":true}",
        ] {
            let (progress, notice) = parse_stored(Some(bad));
            assert_eq!(progress, Progress::new(), "{bad}");
            assert!(notice.unwrap().contains("could not be read"), "{bad}");
        }
        let (progress, notice) = parse_stored(Some("{\"version\":99,\"lessons\":{}}"));
        assert_eq!(progress, Progress::new());
        assert!(notice.unwrap().contains("format 99"));
    }

    #[test]
    fn format_1_migrates_to_the_current_format() {
        let v1 = r#"{"version":1,"lessons":{"failover":{"q1":{"correct":true,"attempts":2}},"retries":{}}}"#;
        let (progress, notice) = parse_stored(Some(v1));
        assert_eq!(notice, None);
        assert_eq!(progress.version, PROGRESS_VERSION);
        assert_eq!(
            progress.answer("failover", "q1"),
            Some(AnswerRecord {
                correct: true,
                attempts: 2
            })
        );
        let visited: Vec<&str> = progress.visited.iter().map(String::as_str).collect();
        assert_eq!(visited, ["failover", "retries"]);
        // An old export imports too, and the migrated progress saves in the new format.
        assert_eq!(parse_import(v1).unwrap(), progress);
        assert!(progress.to_json().contains("\"version\":2"));
        assert_eq!(parse_stored(Some(&progress.to_json())).0, progress);
    }

    #[test]
    fn an_opened_lesson_is_in_progress_and_merges_keep_every_visit() {
        let mut progress = Progress::new();
        assert_eq!(progress.status("l", ["a"]), LessonStatus::NotStarted);
        assert!(progress.visit("l"));
        assert!(!progress.visit("l"));
        assert_eq!(
            progress.status("l", ["a"]),
            LessonStatus::InProgress {
                correct: 0,
                total: 1
            }
        );
        let mut other = Progress::new();
        other.visit("m");
        other.merge(&progress);
        assert!(other.visited.contains("l") && other.visited.contains("m"));
    }

    #[test]
    fn an_export_imports_back_and_merges_by_attempts() {
        let mut laptop = Progress::new();
        laptop.record("l", "a", false);
        laptop.record("l", "a", true);
        laptop.record("l", "b", false);
        let imported = parse_import(&laptop.to_export()).unwrap();
        assert_eq!(imported, laptop);

        let mut phone = Progress::new();
        phone.record("l", "b", true);
        phone.record("l", "b", true);
        phone.record("l", "b", true);
        phone.record("m", "c", true);
        phone.merge(&imported);
        // a: only on the laptop; b: the phone's three attempts beat the laptop's one.
        assert_eq!(
            phone.answer("l", "a"),
            Some(AnswerRecord {
                correct: true,
                attempts: 2
            })
        );
        assert_eq!(
            phone.answer("l", "b"),
            Some(AnswerRecord {
                correct: true,
                attempts: 3
            })
        );
        assert_eq!(phone.answer("m", "c").map(|r| r.attempts), Some(1));
        assert_eq!(phone.answer_count(), 3);
    }

    #[test]
    fn foreign_or_newer_files_are_refused_with_a_reason() {
        let cases = [
            ("not json at all", "not JSON"),
            ("{\"name\": \"my notes\"}", "no format version"),
            ("{\"version\": 7, \"lessons\": {}}", "newer version"),
            ("{\"version\": 1, \"lessons\": {}, \"theme\": \"dark\"}", "unknown field"),
            ("{\"version\": 2, \"lessons\": {}, \"visited\": [], \"theme\": \"dark\"}", "unknown field"),
            ("{\"version\": 2, \"lessons\": {}}", "missing field"),
            ("{\"version\": 1, \"lessons\": {\"l\": {\"q\": {\"correct\": 1, \"attempts\": 1}}}}", "not a progress export"),
        ];
        for (text, reason) in cases {
            let error = parse_import(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
        let huge = format!(
            "{{\"version\": 1, \"pad\": \"{}\"}}",
            "x".repeat(MAX_IMPORT_BYTES)
        );
        assert!(parse_import(&huge).unwrap_err().contains("too large"));
    }

    #[test]
    fn status_moves_from_not_started_to_mastered() {
        let mut progress = Progress::new();
        let questions = ["a", "b"];
        assert_eq!(progress.status("l", questions), LessonStatus::NotStarted);
        progress.record("l", "a", true);
        assert_eq!(
            progress.status("l", questions),
            LessonStatus::InProgress {
                correct: 1,
                total: 2
            }
        );
        progress.record("l", "b", true);
        assert_eq!(progress.status("l", questions), LessonStatus::Mastered);
    }
}
