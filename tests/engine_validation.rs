//! The engine checked against queueing theory: the `queueing-basics` model's measured mean
//! wait must match Erlang C (M/M/c) and Pollaczek–Khinchine (M/D/1) within 3%, and
//! Little's law must hold on the same runs.
//!
//! Statistical soundness: waits at ρ = 0.9 are strongly autocorrelated (one run of a
//! million customers has a 95% half-width near ±6%), so each case pools several
//! independent seeds of millions of customers and also asserts that the standard error
//! across seeds is below 1%: a 3% miss is then more than three standard errors, a real
//! discrepancy and not noise. Runs are seeded, so the outcome is identical every time.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::queueing_basics;
use patterns_playground::lessons::run::LessonRun;
use patterns_playground::sim::queueing_theory::{erlang_c, pollaczek_khinchine_wait};
use patterns_playground::sim::time::SimTime;

struct Replication {
    wait_mean: f64,
    sojourn_mean: f64,
    completed: u64,
    duration: f64,
    /// Time-averaged number waiting in line, from the queue-depth gauge.
    line_length_mean: f64,
}

fn replicate(assignments: &[&str], lambda: f64, customers: f64, seed: u64) -> Replication {
    let params =
        ParamValues::from_assignments(queueing_basics::SPEC.params, assignments.iter().copied())
            .unwrap();
    let mut sim = queueing_basics::simulation(&params, Seed(seed));
    let until = SimTime::from_secs_f64(customers / lambda);
    sim.run_until(until);
    sim.check_conservation().unwrap();
    let summary = sim.summary();
    assert_eq!(summary.rejected, 0, "queue capacity must not interfere");
    Replication {
        wait_mean: summary.wait_mean,
        sojourn_mean: summary.sojourn_mean,
        completed: summary.completed,
        duration: summary.duration,
        line_length_mean: queueing_basics::mean_line_length(&sim),
    }
}

/// Runs `seeds` replications and checks the pooled mean wait against `expected`.
fn check_wait(name: &str, assignments: &[&str], lambda: f64, expected: f64, customers: f64) {
    let seeds = 8;
    let runs: Vec<Replication> = (1..=seeds)
        .map(|seed| replicate(assignments, lambda, customers, seed))
        .collect();
    let waits: Vec<f64> = runs.iter().map(|run| run.wait_mean).collect();
    let mean = waits.iter().sum::<f64>() / seeds as f64;
    let variance = waits.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (seeds as f64 - 1.0);
    let standard_error = (variance / seeds as f64).sqrt();
    let relative_error = (mean - expected).abs() / expected;
    println!(
        "{name}: simulated Wq {mean:.5} vs theory {expected:.5} ({:+.2}%), standard error {:.2}%",
        (mean - expected) / expected * 100.0,
        standard_error / expected * 100.0
    );
    assert!(
        standard_error / expected < 0.01,
        "{name}: standard error {standard_error} too large for a sound 3% check"
    );
    assert!(
        relative_error < 0.03,
        "{name}: mean wait {mean} differs from theory {expected} by {:.2}%",
        relative_error * 100.0
    );

    for run in &runs {
        // Little's law on the line: time-average line length = arrival rate × mean wait.
        let measured_lambda = run.completed as f64 / run.duration;
        let little = measured_lambda * run.wait_mean;
        let gap = (run.line_length_mean - little).abs() / little;
        assert!(
            gap < 0.01,
            "{name}: Little's law: Lq {} vs λWq {little} ({:.2}% apart)",
            run.line_length_mean,
            gap * 100.0
        );
        assert!(run.sojourn_mean > run.wait_mean);
    }
}

#[test]
fn m_m_1_at_90_percent_matches_erlang_c() {
    let expected = erlang_c(1, 0.9, 1.0).unwrap().wait_mean;
    assert!((expected - 9.0).abs() < 1e-9);
    check_wait("M/M/1 ρ=0.9", &["arrival_rate=0.9"], 0.9, expected, 2.0e6);
}

#[test]
fn m_m_2_matches_erlang_c() {
    let expected = erlang_c(2, 1.8, 1.0).unwrap().wait_mean;
    check_wait(
        "M/M/2 λ=1.8",
        &["arrival_rate=1.8", "servers=2"],
        1.8,
        expected,
        2.0e6,
    );
}

#[test]
fn m_m_8_matches_erlang_c() {
    let expected = erlang_c(8, 7.2, 1.0).unwrap().wait_mean;
    check_wait(
        "M/M/8 λ=7.2",
        &["arrival_rate=7.2", "servers=8"],
        7.2,
        expected,
        2.0e6,
    );
}

#[test]
fn m_d_1_matches_pollaczek_khinchine() {
    let expected = pollaczek_khinchine_wait(0.9, 1.0, 0.0).unwrap();
    assert!((expected - 4.5).abs() < 1e-12);
    check_wait(
        "M/D/1 ρ=0.9",
        &["arrival_rate=0.9", "service_distribution=deterministic"],
        0.9,
        expected,
        1.0e6,
    );
}

#[test]
fn m_m_8_wait_probability_matches_erlang_c() {
    let params = ParamValues::from_assignments(
        queueing_basics::SPEC.params,
        ["arrival_rate=7.2", "servers=8"],
    )
    .unwrap();
    let mut sim = queueing_basics::simulation(&params, Seed(11));
    sim.run_until(SimTime::from_secs_f64(2.0e6 / 7.2));
    let waited = queueing_basics::fraction_that_waited(&sim);
    let expected = erlang_c(8, 7.2, 1.0).unwrap().wait_probability;
    assert!(
        (waited - expected).abs() < 0.01,
        "P(wait) simulated {waited} vs Erlang C {expected}"
    );
}
