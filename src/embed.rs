//! The embedding contract with course pages: the iframe snippet, commands a host page
//! may send (parsed and validated here), and the messages the app sends back (ready,
//! resize, quiz-answered, lesson-complete, error), scores shaped like xAPI statements.
//! No web crates: the view posts and receives the JSON; docs/EMBEDDING.md documents it.
//!
//! Sources: PhET's postMessage conventions (a `ready` message on load, errors reported to
//! the host) and the xAPI specification 1.0.3 (statement = verb + object + result; the
//! ADL verbs `answered` and `completed`; `result.score` with `raw`, `min`, `max`, `scaled`
//! in -1..1). Messages carry no personal data: no actor, no names, no identifiers of the
//! learner. An LMS bridge adds its own actor before forwarding a statement.

use serde_json::{json, Map, Value};

use crate::lessons::params::{ParamValue, ParamValues};
use crate::lessons::LessonSpec;

/// Every message the app sends carries `source: SOURCE`, and every command it accepts
/// must carry `target: SOURCE`, so hosts and the app can tell them from other traffic.
pub const SOURCE: &str = "patterns-playground";
/// The message format's version (in every outgoing message).
pub const PROTOCOL_VERSION: u32 = 1;

/// The ADL verb for a question answered.
pub const VERB_ANSWERED: &str = "http://adlnet.gov/expapi/verbs/answered";
/// The ADL verb for a lesson whose questions are all answered.
pub const VERB_COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";

/// The `<iframe>` a course author pastes into a page: full width, a fixed starting height
/// (the host can follow `resize` messages), lazy loading, a title for screen readers.
pub fn iframe_snippet(url: &str, title: &str, height: u32) -> String {
    format!(
        "<iframe src=\"{}\" title=\"{} (Patterns Playground)\" width=\"100%\" height=\"{height}\" style=\"border: 0; max-width: 100%;\" loading=\"lazy\" allow=\"clipboard-write\"></iframe>",
        escape_attribute(url),
        escape_attribute(title),
    )
}

/// Escapes text for a double-quoted HTML attribute.
pub fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A command from the host page, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum HostCommand {
    Play,
    Pause,
    /// Back to time zero with no scheduled commands.
    Reset,
    /// One of the lesson's failure injections, by id (checked against the lesson by the
    /// page, which knows which lesson is open).
    Inject(String),
    /// Parameter values as the host wrote them (numbers, words, booleans), checked
    /// against the open lesson with [`validate_params`].
    SetParams(Vec<(String, String)>),
    /// Forget every recorded answer.
    ResetProgress,
}

/// What to do with an incoming message.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Command(HostCommand),
    /// Addressed to the app but malformed: ignored, reported once on the console.
    Malformed(String),
    /// Not addressed to the app (other scripts' messages): ignored silently.
    NotForUs,
}

/// Reads a message's data (already decoded from JSON).
pub fn parse_command(data: &Value) -> Incoming {
    let Some(object) = data.as_object() else {
        return Incoming::NotForUs;
    };
    if object.get("target").and_then(Value::as_str) != Some(SOURCE) {
        return Incoming::NotForUs;
    }
    let Some(command) = object.get("command").and_then(Value::as_str) else {
        return Incoming::Malformed("a command message needs a \"command\" string".to_owned());
    };
    let parsed = match command {
        "play" => HostCommand::Play,
        "pause" => HostCommand::Pause,
        "reset" => HostCommand::Reset,
        "reset-progress" => HostCommand::ResetProgress,
        "inject" => match object.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && id.len() <= 64 => HostCommand::Inject(id.to_owned()),
            _ => {
                return Incoming::Malformed(
                    "\"inject\" needs an \"id\" naming one of the lesson's failures".to_owned(),
                )
            }
        },
        "set-params" => {
            let Some(params) = object.get("params").and_then(Value::as_object) else {
                return Incoming::Malformed(
                    "\"set-params\" needs a \"params\" object of name: value".to_owned(),
                );
            };
            let mut pairs = Vec::new();
            for (name, value) in params {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(true) => "on".to_owned(),
                    Value::Bool(false) => "off".to_owned(),
                    _ => {
                        return Incoming::Malformed(format!(
                            "the value of \"{name}\" must be a number, a word or true/false"
                        ))
                    }
                };
                pairs.push((name.clone(), text));
            }
            HostCommand::SetParams(pairs)
        }
        other => return Incoming::Malformed(format!("unknown command \"{other}\"")),
    };
    Incoming::Command(parsed)
}

/// Checks host-sent parameter values against the open lesson: all of them valid, or
/// none applied (with the first problem in words).
pub fn validate_params(
    params: &ParamValues,
    pairs: &[(String, String)],
) -> Result<Vec<(&'static str, ParamValue)>, String> {
    pairs
        .iter()
        .map(|(name, text)| {
            let spec = params.spec(name).map_err(|problem| problem.to_string())?;
            let value = spec.parse(text).map_err(|problem| problem.to_string())?;
            Ok((spec.name, value))
        })
        .collect()
}

/// An outgoing message: `{source, version, type, ...fields}`.
pub fn message(kind: &str, fields: Value) -> Value {
    let mut object = Map::new();
    object.insert("source".to_owned(), json!(SOURCE));
    object.insert("version".to_owned(), json!(PROTOCOL_VERSION));
    object.insert("type".to_owned(), json!(kind));
    if let Value::Object(extra) = fields {
        object.extend(extra);
    }
    Value::Object(object)
}

/// `ready`: the lesson (or page) is on screen and listening.
pub fn ready(spec: Option<&LessonSpec>, params: Option<&ParamValues>) -> Value {
    let params: Map<String, Value> = params
        .map(|values| {
            values
                .iter()
                .map(|(spec, value)| (spec.name.to_owned(), json!(value.to_string())))
                .collect()
        })
        .unwrap_or_default();
    message(
        "ready",
        json!({
            "lesson": spec.map(|spec| spec.id),
            "injections": spec.map(|spec| spec.injections.iter().map(|i| i.id).collect::<Vec<_>>()),
            "params": params,
        }),
    )
}

/// `resize`: the page's content height in CSS pixels.
pub fn resize(height: u32) -> Value {
    message("resize", json!({ "height": height }))
}

/// `error`: something the host asked for or the page met went wrong, in words.
pub fn error(text: &str) -> Value {
    message("error", json!({ "message": text }))
}

fn score(raw: usize, max: usize) -> Value {
    let scaled = if max == 0 {
        0.0
    } else {
        raw as f64 / max as f64
    };
    json!({ "raw": raw, "min": 0, "max": max, "scaled": scaled })
}

fn activity(id: String, name: &str, kind: &str) -> Value {
    json!({
        "objectType": "Activity",
        "id": id,
        "definition": {
            "name": { "en": name },
            "type": kind,
        },
    })
}

/// `quiz-answered`: one answer, as an xAPI statement without an actor. `lesson_url` is
/// the lesson's address (the activity id); the question's id is its fragment.
pub fn quiz_answered(
    spec: &LessonSpec,
    lesson_url: &str,
    question_id: &str,
    prompt: &str,
    correct: bool,
) -> Value {
    let statement = json!({
        "verb": { "id": VERB_ANSWERED, "display": { "en": "answered" } },
        "object": activity(
            format!("{lesson_url}#question-{question_id}"),
            prompt,
            "http://adlnet.gov/expapi/activities/cmi.interaction",
        ),
        "result": { "success": correct, "score": score(usize::from(correct), 1) },
        "context": { "contextActivities": { "parent": [activity(lesson_url.to_owned(), spec.title, "http://adlnet.gov/expapi/activities/lesson")] } },
    });
    message(
        "quiz-answered",
        json!({ "lesson": spec.id, "question": question_id, "correct": correct, "statement": statement }),
    )
}

/// `lesson-complete`: every question of the lesson has an answer; `correct` of `total`
/// are right now. Sent again whenever a retry changes the score.
pub fn lesson_complete(spec: &LessonSpec, lesson_url: &str, correct: usize, total: usize) -> Value {
    let statement = json!({
        "verb": { "id": VERB_COMPLETED, "display": { "en": "completed" } },
        "object": activity(lesson_url.to_owned(), spec.title, "http://adlnet.gov/expapi/activities/lesson"),
        "result": { "completion": true, "success": correct == total, "score": score(correct, total) },
    });
    message(
        "lesson-complete",
        json!({ "lesson": spec.id, "score": score(correct, total), "statement": statement }),
    )
}
