//! The headless runner behind `simulate`: raw command-line words are parsed once into a
//! validated [`RunnerCommand`], then executed into text for standard output.
//!
//! Architecture invariant: no web crates here; `bin/simulate.rs` only prints what this
//! returns and maps errors to exit codes.

use std::fmt::Write as _;

use serde::Serialize;

use crate::lessons::params::{ParamKind, ParamValues, Seed};
use crate::lessons::run::LessonCommand;
use crate::lessons::{self, LessonSpec};
use crate::sim::metrics::RunSummary;
use crate::sim::snapshot::Figure;
use crate::sim::time::SimTime;

/// The longest run the runner accepts, in simulated seconds (about 31 years).
pub const MAX_UNTIL_SECONDS: f64 = 1e9;

/// A validated request to the runner.
#[derive(Debug)]
pub enum RunnerCommand {
    Help,
    List,
    ListParams(&'static LessonSpec),
    Run(RunRequest),
}

/// A validated run: lesson, full parameter set, seed and horizon.
#[derive(Debug)]
pub struct RunRequest {
    pub lesson: &'static LessonSpec,
    pub params: ParamValues,
    pub seed: Seed,
    pub until: SimTime,
    /// Failures injected at given simulated times, in time order (ties keep their order
    /// on the command line).
    pub injections: Vec<(SimTime, &'static str)>,
    pub json: bool,
}

impl std::fmt::Debug for LessonSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LessonSpec").field("id", &self.id).finish()
    }
}

/// A usage error: the one-line message to print; the runner exits with code 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "\
usage: simulate --list
       simulate <lesson-id> --params
       simulate <lesson-id> [--set name=value]... [--seed N] [--until SECONDS] [--json]

Runs a lesson's simulation headless and prints its metrics (times in seconds).
  --list            print the lesson ids, one per line
  --params          list the lesson's parameters with ranges and defaults
  --set name=value  set a parameter (repeatable)
  --seed N          random seed, a whole number (default 1)
  --until SECONDS   simulated duration (default: the lesson's own)
  --inject T:ID     inject failure ID at T simulated seconds (repeatable; --params
                    lists the lesson's injections)
  --json            print one JSON object instead of a table";

/// Parses the words after the program name.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<RunnerCommand, UsageError> {
    let mut lesson_id: Option<&str> = None;
    let mut assignments: Vec<&str> = Vec::new();
    let mut seed: Option<&str> = None;
    let mut until: Option<&str> = None;
    let mut injections: Vec<&str> = Vec::new();
    let mut json = false;
    let mut list = false;
    let mut list_params = false;

    let mut words = args.iter().map(AsRef::as_ref);
    while let Some(word) = words.next() {
        let (flag, inline_value) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (word, None),
        };
        let mut value_of = |flag: &str| {
            inline_value
                .or_else(|| words.next())
                .ok_or_else(|| UsageError(format!("{flag} needs a value")))
        };
        match flag {
            "--help" | "-h" => return Ok(RunnerCommand::Help),
            "--list" => list = true,
            "--params" => list_params = true,
            "--json" => json = true,
            "--set" => assignments.push(value_of("--set")?),
            "--seed" => seed = Some(value_of("--seed")?),
            "--until" => until = Some(value_of("--until")?),
            "--inject" => injections.push(value_of("--inject")?),
            other if other.starts_with('-') => {
                return Err(UsageError(format!("unknown option '{other}' (try --help)")))
            }
            id => {
                if let Some(previous) = lesson_id {
                    return Err(UsageError(format!(
                        "one lesson at a time: got '{previous}' and '{id}'"
                    )));
                }
                lesson_id = Some(id);
            }
        }
    }

    if list {
        return Ok(RunnerCommand::List);
    }
    let Some(id) = lesson_id else {
        return Err(UsageError(
            "missing lesson id (simulate --list shows them)".into(),
        ));
    };
    let lesson = lessons::find(id).ok_or_else(|| {
        let known: Vec<&str> = lessons::catalog().iter().map(|l| l.id).collect();
        UsageError(format!(
            "unknown lesson '{id}'; known lessons: {}",
            known.join(", ")
        ))
    })?;
    if list_params {
        return Ok(RunnerCommand::ListParams(lesson));
    }
    let params = ParamValues::from_assignments(lesson.params, assignments)
        .map_err(|error| UsageError(error.to_string()))?;
    let seed = match seed {
        Some(raw) => Seed::parse(raw).map_err(UsageError)?,
        None => Seed(1),
    };
    let until = match until {
        Some(raw) => parse_until(raw)?,
        None => SimTime::ZERO + lesson.default_duration,
    };
    let mut injections = injections
        .into_iter()
        .map(|raw| parse_injection(lesson, raw, until))
        .collect::<Result<Vec<_>, _>>()?;
    injections.sort_by_key(|(at, _)| *at);
    Ok(RunnerCommand::Run(RunRequest {
        lesson,
        params,
        seed,
        until,
        injections,
        json,
    }))
}

/// `T:ID`: a known injection of `lesson` at `T` seconds, within the run.
fn parse_injection(
    lesson: &'static LessonSpec,
    raw: &str,
    until: SimTime,
) -> Result<(SimTime, &'static str), UsageError> {
    let (at, id) = raw.split_once(':').ok_or_else(|| {
        UsageError(format!(
            "--inject takes SECONDS:ID (for example 60:{}), got '{raw}'",
            lesson.injections.first().map_or("lose-server", |i| i.id)
        ))
    })?;
    let spec = lesson.injection(id.trim()).ok_or_else(|| {
        let known: Vec<&str> = lesson.injections.iter().map(|i| i.id).collect();
        UsageError(format!(
            "unknown injection '{}' for {}; known injections: {}",
            id.trim(),
            lesson.id,
            known.join(", ")
        ))
    })?;
    let seconds: f64 = at
        .trim()
        .parse()
        .ok()
        .filter(|seconds: &f64| seconds.is_finite() && *seconds >= 0.0)
        .ok_or_else(|| UsageError(format!("--inject time must be seconds >= 0, got '{at}'")))?;
    let at = SimTime::from_secs_f64(seconds);
    if at > until {
        return Err(UsageError(format!(
            "--inject at {seconds} s is after the end of the run ({} s)",
            until.as_secs_f64()
        )));
    }
    Ok((at, spec.id))
}

fn parse_until(raw: &str) -> Result<SimTime, UsageError> {
    let explain = || {
        UsageError(format!(
            "--until must be a number of seconds greater than 0 and at most {MAX_UNTIL_SECONDS}, got '{raw}'"
        ))
    };
    let seconds: f64 = raw.trim().parse().map_err(|_| explain())?;
    if !(seconds > 0.0 && seconds <= MAX_UNTIL_SECONDS) {
        return Err(explain());
    }
    Ok(SimTime::from_secs_f64(seconds))
}

/// Executes a command and returns what to print. `Err` is an internal failure (a broken
/// invariant), not a usage error.
pub fn execute(command: &RunnerCommand) -> Result<String, String> {
    match command {
        RunnerCommand::Help => Ok(format!("{USAGE}\n")),
        RunnerCommand::List => Ok(lessons::catalog()
            .iter()
            .map(|lesson| format!("{}\n", lesson.id))
            .collect()),
        RunnerCommand::ListParams(lesson) => Ok(describe_params(lesson)),
        RunnerCommand::Run(request) => run(request),
    }
}

fn describe_params(lesson: &LessonSpec) -> String {
    let mut out = String::new();
    for injection in lesson.injections {
        let _ = writeln!(out, "inject {}  {}", injection.id, injection.help);
    }
    for spec in lesson.params {
        let range = match spec.kind {
            ParamKind::Number { min, max, .. } => format!("number {min}..{max}"),
            ParamKind::Integer { min, max, .. } => format!("integer {min}..{max}"),
            ParamKind::Choice { options, .. } => format!("one of {}", options.join("|")),
            ParamKind::Toggle { .. } => "on|off".to_owned(),
        };
        let unit = if spec.unit.is_empty() {
            String::new()
        } else {
            format!(" [{}]", spec.unit)
        };
        let _ = writeln!(
            out,
            "{}  {range}  default {}{unit}  {}",
            spec.name,
            spec.default_value(),
            spec.help
        );
    }
    out
}

/// The JSON object `simulate --json` prints.
#[derive(Serialize)]
struct RunReport<'a> {
    lesson: &'static str,
    seed: u64,
    until: f64,
    params: &'a ParamValues,
    events: u64,
    #[serde(flatten)]
    summary: &'a RunSummary,
    /// Lesson-specific figures (cost, dead letters...), by key.
    figures: FigureMap,
    /// What happened to each `--inject`.
    injections: &'a [InjectionOutcome],
}

/// One `--inject` as it went: applied, or refused by the model with its reason.
#[derive(Serialize)]
struct InjectionOutcome {
    at: f64,
    id: &'static str,
    applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

/// Lesson figures as a JSON object `{key: value}` in display order.
struct FigureMap(Vec<Figure>);

impl Serialize for FigureMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for figure in &self.0 {
            map.serialize_entry(figure.key, &figure.value)?;
        }
        map.end()
    }
}

fn run(request: &RunRequest) -> Result<String, String> {
    let mut run = request.lesson.start(&request.params, request.seed);
    let mut outcomes = Vec::new();
    for &(at, id) in &request.injections {
        run.run_until(at);
        let result = run.apply(&LessonCommand::Inject(id.to_owned()));
        run.check_conservation()?;
        outcomes.push(InjectionOutcome {
            at: at.as_secs_f64(),
            id,
            applied: result.is_ok(),
            refused: result.err().map(|error| error.to_string()),
        });
    }
    run.run_until(request.until);
    run.check_conservation()?;
    let summary = run.summary();
    if request.json {
        let report = RunReport {
            lesson: request.lesson.id,
            seed: request.seed.0,
            until: request.until.as_secs_f64(),
            params: &request.params,
            events: run.events_processed(),
            summary: &summary,
            figures: FigureMap(run.extra_figures()),
            injections: &outcomes,
        };
        let mut text = serde_json::to_string(&report).map_err(|error| error.to_string())?;
        text.push('\n');
        Ok(text)
    } else {
        let value = serde_json::to_value(&summary).map_err(|error| error.to_string())?;
        let mut out = format!(
            "{} (seed {}, {} simulated seconds, {} events)\n",
            request.lesson.id,
            request.seed,
            request.until.as_secs_f64(),
            run.events_processed()
        );
        if let serde_json::Value::Object(fields) = value {
            for (name, field) in fields {
                let _ = writeln!(out, "  {name:<14} {field}");
            }
        }
        for figure in run.extra_figures() {
            let _ = writeln!(out, "  {:<14} {} {}", figure.key, figure.value, figure.unit);
        }
        for outcome in &outcomes {
            let what = match &outcome.refused {
                None => "applied".to_owned(),
                Some(reason) => format!("refused: {reason}"),
            };
            let _ = writeln!(out, "  inject {} at {} s: {what}", outcome.id, outcome.at);
        }
        Ok(out)
    }
}
