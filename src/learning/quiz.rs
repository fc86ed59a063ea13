//! Grading. Choice and numeric questions are graded against their content; predictions
//! are graded against the simulation: the scenario runs and the option whose range holds
//! the measured value is the right one. No prediction has a stored answer key.

use crate::lessons;
use crate::lessons::params::{ParamValues, Seed};
use crate::lessons::run::{LessonCommand, LessonRun};
use crate::sim::time::SimTime;

use super::content::{Question, QuestionKind, Scenario};

/// What the learner answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Indices of the chosen options (one for single choice and predictions).
    Options(Vec<usize>),
    Number(f64),
}

/// The verdict on one answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Grade {
    pub correct: bool,
    /// For predictions: the value the simulation produced and the option that held it.
    pub observed: Option<Observation>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub metric: String,
    pub value: f64,
    pub right_option: Option<usize>,
}

/// A named quantity of a finished run: the summary's fields, `failed_fraction`, or a
/// lesson figure by key.
pub fn metric_value(run: &dyn LessonRun, metric: &str) -> Option<f64> {
    let summary = run.summary();
    let value = match metric {
        "generated" => summary.generated as f64,
        "completed" => summary.completed as f64,
        "failed" => summary.failed as f64,
        "rejected" => summary.rejected as f64,
        "dropped" => summary.dropped as f64,
        "duplicated" => summary.duplicated as f64,
        "in_flight" => summary.in_flight as f64,
        "throughput" => summary.throughput,
        "latency_p50" => summary.latency_p50,
        "latency_p95" => summary.latency_p95,
        "latency_p99" => summary.latency_p99,
        "wait_mean" => summary.wait_mean,
        "sojourn_mean" => summary.sojourn_mean,
        "failed_fraction" => {
            if summary.generated == 0 {
                0.0
            } else {
                summary.failed as f64 / summary.generated as f64
            }
        }
        other => {
            return run
                .extra_figures()
                .into_iter()
                .find(|figure| figure.key == other)
                .map(|figure| figure.value)
        }
    };
    Some(value)
}

/// Runs a prediction's scenario headless and measures `metric`.
pub fn observe(lesson: &str, scenario: &Scenario, metric: &str) -> Result<f64, String> {
    let spec = lessons::find(lesson).ok_or_else(|| format!("unknown lesson '{lesson}'"))?;
    let params =
        ParamValues::from_assignments(spec.params, scenario.set.iter().map(String::as_str))
            .map_err(|error| error.to_string())?;
    let mut run = spec.start(&params, Seed(scenario.seed));
    let mut last = 0.0;
    for injection in &scenario.inject {
        if !(injection.at >= last && injection.at <= scenario.until) {
            return Err(format!(
                "injection '{}' at {} s is out of order or after the end ({} s)",
                injection.id, injection.at, scenario.until
            ));
        }
        last = injection.at;
        run.run_until(SimTime::from_secs_f64(injection.at));
        run.apply(&LessonCommand::Inject(injection.id.clone()))
            .map_err(|error| {
                format!(
                    "injection '{}' at {} s: {error}",
                    injection.id, injection.at
                )
            })?;
    }
    run.run_until(SimTime::from_secs_f64(scenario.until));
    metric_value(run.as_ref(), metric).ok_or_else(|| format!("unknown metric '{metric}'"))
}

/// Grades `answer` to `question` of `lesson`.
pub fn grade(lesson: &str, question: &Question, answer: &Answer) -> Result<Grade, String> {
    let plain = |correct| Grade {
        correct,
        observed: None,
    };
    match (&question.kind, answer) {
        (QuestionKind::Single { options }, Answer::Options(chosen)) => Ok(plain(
            chosen.len() == 1 && options.get(chosen[0]).is_some_and(|option| option.correct),
        )),
        (QuestionKind::Multiple { options }, Answer::Options(chosen)) => {
            let right: Vec<usize> = (0..options.len()).filter(|&i| options[i].correct).collect();
            let mut chosen = chosen.clone();
            chosen.sort_unstable();
            chosen.dedup();
            Ok(plain(chosen == right))
        }
        (
            QuestionKind::Numeric {
                answer: expected,
                tolerance,
                ..
            },
            Answer::Number(value),
        ) => Ok(plain(
            value.is_finite() && (value - expected).abs() <= *tolerance,
        )),
        (
            QuestionKind::Predict {
                scenario,
                metric,
                options,
                ..
            },
            Answer::Options(chosen),
        ) => {
            let value = observe(lesson, scenario, metric)?;
            let right_option = options.iter().position(|option| option.contains(value));
            Ok(Grade {
                correct: chosen.len() == 1 && Some(chosen[0]) == right_option,
                observed: Some(Observation {
                    metric: metric.clone(),
                    value,
                    right_option,
                }),
            })
        }
        _ => Err(format!(
            "question '{}' cannot take that kind of answer",
            question.id
        )),
    }
}
