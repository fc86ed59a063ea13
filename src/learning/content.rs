//! Lesson narrative and quiz questions, written as JSON files in `content/lessons/` (one
//! per lesson, compiled in with `include_str!`), parsed once into typed content. Prose
//! never lives in Rust string literals.

use std::sync::OnceLock;

use serde::Deserialize;

/// A heading with its paragraphs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub heading: String,
    pub paragraphs: Vec<String>,
}

/// A guided "try this" step: one click sets parameters and/or injects a failure, then a
/// question asks what the learner saw.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryStep {
    pub text: String,
    /// `name=value` assignments applied to the lesson.
    #[serde(default)]
    pub set: Vec<String>,
    /// An injection id to trigger after the parameters are set and the run is playing.
    #[serde(default)]
    pub inject: Option<String>,
    pub ask: String,
}

/// One option of a choice question, with the explanation shown once answered.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub text: String,
    pub correct: bool,
    pub why: String,
}

/// One option of a prediction: a range of the measured metric, `[min, max)`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeOption {
    pub text: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

impl RangeOption {
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value < max)
    }
}

/// The exact run a prediction is graded against.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub set: Vec<String>,
    pub seed: u64,
    /// Simulated seconds.
    pub until: f64,
    /// Failures injected during the run, in time order.
    #[serde(default)]
    pub inject: Vec<ScheduledInjection>,
}

/// An injection at a simulated time (seconds), as in `{"at": 120, "id": "kill-primary"}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledInjection {
    pub at: f64,
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum QuestionKind {
    /// Exactly one correct option.
    Single { options: Vec<Choice> },
    /// One or more correct options; all must be chosen.
    Multiple { options: Vec<Choice> },
    /// A number within `tolerance` of `answer`.
    Numeric {
        answer: f64,
        tolerance: f64,
        unit: String,
        why: String,
    },
    /// The learner commits to a range; the scenario runs and the range that holds the
    /// measured `metric` is the right one.
    Predict {
        scenario: Scenario,
        metric: String,
        options: Vec<RangeOption>,
        why: String,
    },
}

/// (No `deny_unknown_fields` here: serde cannot combine it with `flatten`; the kinds
/// themselves refuse unknown fields.)
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Question {
    pub id: String,
    pub prompt: String,
    #[serde(flatten)]
    pub kind: QuestionKind,
}

/// Everything a lesson says besides its model.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonContent {
    pub lesson: String,
    pub sections: Vec<Section>,
    pub try_this: Vec<TryStep>,
    pub exam_tips: Vec<String>,
    pub questions: Vec<Question>,
    /// What a learner might type to find this lesson besides its title: other names of
    /// the pattern, AWS services, and problems in plain words ("my database is too
    /// slow"). The course map's search looks here.
    #[serde(default)]
    pub search_terms: Vec<String>,
}

/// The content files, by lesson id. Adding a lesson's content is adding a line here and a
/// file under content/lessons/.
const FILES: &[(&str, &str)] = &[
    (
        "queueing-basics",
        include_str!("../../content/lessons/queueing-basics.json"),
    ),
    (
        "queue-load-leveling",
        include_str!("../../content/lessons/queue-load-leveling.json"),
    ),
    (
        "circuit-breaker",
        include_str!("../../content/lessons/circuit-breaker.json"),
    ),
    (
        "retries",
        include_str!("../../content/lessons/retries.json"),
    ),
    (
        "failover",
        include_str!("../../content/lessons/failover.json"),
    ),
    (
        "disaster-recovery",
        include_str!("../../content/lessons/disaster-recovery.json"),
    ),
    (
        "serverless",
        include_str!("../../content/lessons/serverless.json"),
    ),
    (
        "rate-limiting",
        include_str!("../../content/lessons/rate-limiting.json"),
    ),
    (
        "bulkhead",
        include_str!("../../content/lessons/bulkhead.json"),
    ),
    (
        "pub-sub",
        include_str!("../../content/lessons/pub-sub.json"),
    ),
    (
        "coupling",
        include_str!("../../content/lessons/coupling.json"),
    ),
    (
        "event-routing",
        include_str!("../../content/lessons/event-routing.json"),
    ),
    ("saga", include_str!("../../content/lessons/saga.json")),
    ("cqrs", include_str!("../../content/lessons/cqrs.json")),
    (
        "caching",
        include_str!("../../content/lessons/caching.json"),
    ),
    (
        "sharding",
        include_str!("../../content/lessons/sharding.json"),
    ),
];

/// Parses one content file, naming the file and the problem on error.
pub fn parse(id: &str, text: &str) -> Result<LessonContent, String> {
    let content: LessonContent = serde_json::from_str(text)
        .map_err(|error| format!("content/lessons/{id}.json: {error}"))?;
    if content.lesson != id {
        return Err(format!(
            "content/lessons/{id}.json says it is for lesson '{}'",
            content.lesson
        ));
    }
    Ok(content)
}

/// The parsed content of every lesson that has some (files are checked by tests, so a
/// broken file is a build-time failure, never a learner's problem).
pub fn all() -> &'static [LessonContent] {
    static ALL: OnceLock<Vec<LessonContent>> = OnceLock::new();
    ALL.get_or_init(|| {
        FILES
            .iter()
            .filter_map(|(id, text)| parse(id, text).ok())
            .collect()
    })
}

/// A lesson's content, if it has any.
pub fn for_lesson(id: &str) -> Option<&'static LessonContent> {
    all().iter().find(|content| content.lesson == id)
}

/// Every file with its parse result (for tests).
pub fn check_all() -> Vec<Result<LessonContent, String>> {
    FILES.iter().map(|(id, text)| parse(id, text)).collect()
}
