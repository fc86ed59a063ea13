//! The learner's progress, stored in the browser as versioned JSON. Parsed at the edge:
//! missing data starts fresh; corrupt or foreign data starts fresh *with a notice*;
//! nothing stored can crash the app.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bump when the stored shape changes (and add a migration or a reset notice).
pub const PROGRESS_VERSION: u32 = 1;

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
        }
    }

    /// Records an attempt.
    pub fn record(&mut self, lesson: &str, question: &str, correct: bool) {
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
        if answered == 0 {
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
}

/// Parses what storage held. Returns the progress to use and, when stored data had to be
/// discarded, a sentence saying so.
pub fn parse_stored(stored: Option<&str>) -> (Progress, Option<String>) {
    let Some(text) = stored.filter(|text| !text.trim().is_empty()) else {
        return (Progress::new(), None);
    };
    match serde_json::from_str::<Progress>(text) {
        Ok(progress) if progress.version == PROGRESS_VERSION => (progress, None),
        Ok(progress) => (
            Progress::new(),
            Some(format!(
                "Your saved progress was written by another version of the playground (format {}, this one reads {}), so it starts fresh.",
                progress.version, PROGRESS_VERSION
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
