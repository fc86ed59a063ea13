//! The `simulate` binary as a course author uses it: listing, parameters, JSON runs, and
//! one-line errors with exit code 2 for every kind of bad input.
#![cfg(not(target_arch = "wasm32"))]

use std::process::{Command, Output};

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simulate"))
        .args(args)
        .output()
        .expect("simulate binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn list_prints_lesson_ids_one_per_line() {
    let output = simulate(&["--list"]);
    assert!(output.status.success());
    assert!(stdout(&output)
        .lines()
        .any(|line| line == "queueing-basics"));
}

#[test]
fn params_lists_every_parameter_with_range_and_default() {
    let output = simulate(&["queueing-basics", "--params"]);
    assert!(output.status.success());
    let text = stdout(&output);
    for expected in [
        "arrival_rate  number 0.01..1000  default 0.9",
        "service_rate  number 0.01..1000  default 1",
        "servers  integer 1..64  default 1",
        "service_distribution  one of exponential|deterministic|lognormal  default exponential",
    ] {
        assert!(text.contains(expected), "missing '{expected}' in:\n{text}");
    }
}

#[test]
fn json_run_has_every_documented_key_and_balances() {
    let output = simulate(&[
        "queueing-basics",
        "--set",
        "arrival_rate=1.8",
        "--set=servers=2",
        "--seed",
        "7",
        "--until=2000",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    for key in [
        "generated",
        "completed",
        "failed",
        "rejected",
        "dropped",
        "duplicated",
        "in_flight",
        "throughput",
        "latency_p50",
        "latency_p95",
        "latency_p99",
        "wait_mean",
        "sojourn_mean",
    ] {
        assert!(report.get(key).is_some(), "missing key {key} in {report}");
    }
    assert_eq!(report["lesson"], "queueing-basics");
    assert_eq!(report["seed"], 7);
    assert_eq!(report["params"]["servers"], 2);
    assert_eq!(report["params"]["arrival_rate"], 1.8);
    let count = |key: &str| report[key].as_u64().unwrap();
    assert_eq!(
        count("generated"),
        count("completed")
            + count("failed")
            + count("rejected")
            + count("dropped")
            + count("in_flight")
    );
    // About 1.8 arrivals per second over 2000 s.
    assert!((3300..=3900).contains(&count("generated")), "{report}");
}

#[test]
fn same_command_prints_the_same_bytes() {
    let args = [
        "queueing-basics",
        "--seed",
        "99",
        "--until",
        "500",
        "--json",
    ];
    assert_eq!(stdout(&simulate(&args)), stdout(&simulate(&args)));
}

#[test]
fn injections_run_at_their_times_and_refusals_are_reported() {
    let plain = simulate(&["circuit-breaker", "--set", "incident=none", "--json"]);
    let injected = simulate(&[
        "circuit-breaker",
        "--set",
        "incident=none",
        "--inject",
        "100:dependency-recovers",
        "--inject=60:dependency-hangs",
        "--json",
    ]);
    assert!(injected.status.success(), "{}", stderr(&injected));
    let plain: serde_json::Value = serde_json::from_str(&stdout(&plain)).unwrap();
    let report: serde_json::Value = serde_json::from_str(&stdout(&injected)).unwrap();
    assert_eq!(plain["figures"]["breaker_opened"], 0.0);
    assert!(report["figures"]["breaker_opened"].as_f64().unwrap() >= 1.0);
    // Sorted by time: the hang at 60 s, then the recovery at 100 s; both applied.
    let outcomes = report["injections"].as_array().unwrap();
    assert_eq!(outcomes[0]["id"], "dependency-hangs");
    assert_eq!(outcomes[1]["at"], 100.0);
    assert!(outcomes.iter().all(|o| o["applied"] == true));
    // A refusal (already healthy) is reported, not fatal.
    let refused = simulate(&[
        "circuit-breaker",
        "--set",
        "incident=none",
        "--inject",
        "5:dependency-recovers",
    ]);
    assert!(refused.status.success());
    assert!(stdout(&refused)
        .contains("inject dependency-recovers at 5 s: refused: the dependency is already healthy"));
}

#[test]
fn bad_input_gets_one_line_and_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["no-such-lesson"], "unknown lesson 'no-such-lesson'; known lessons: queueing-basics"),
        (
            &["queueing-basics", "--set", "colour=red"],
            "unknown parameter 'colour'; known parameters: arrival_rate, service_rate, servers",
        ),
        (
            &["queueing-basics", "--set", "servers=0"],
            "parameter 'servers' must be a whole number from 1 to 64, got 0",
        ),
        (
            &["queueing-basics", "--set", "arrival_rate=fast"],
            "parameter 'arrival_rate' must be a number from 0.01 to 1000, got 'fast'",
        ),
        (
            &["queueing-basics", "--set", "service_distribution=gamma"],
            "parameter 'service_distribution' must be one of exponential, deterministic, lognormal, got 'gamma'",
        ),
        (&["queueing-basics", "--seed", "-3"], "seed must be a whole number"),
        (&["queueing-basics", "--until", "0"], "--until must be a number of seconds greater than 0"),
        (&["queueing-basics", "--until", "soon"], "--until must be a number of seconds"),
        (&["queueing-basics", "--seed"], "--seed needs a value"),
        (&["queueing-basics", "--frobnicate"], "unknown option '--frobnicate'"),
        (&["queueing-basics", "--inject", "lose-server"], "--inject takes SECONDS:ID"),
        (
            &["queueing-basics", "--inject", "10:meteor"],
            "unknown injection 'meteor' for queueing-basics; known injections: burst, lose-server",
        ),
        (&["queueing-basics", "--inject", "-5:burst"], "--inject time must be seconds >= 0"),
        (
            &["queueing-basics", "--until", "100", "--inject", "200:burst"],
            "--inject at 200 s is after the end of the run (100 s)",
        ),
        (&[], "missing lesson id"),
    ];
    for (args, expected) in cases {
        let output = simulate(args);
        assert_eq!(output.status.code(), Some(2), "args {args:?}");
        let message = stderr(&output);
        assert_eq!(
            message.lines().count(),
            1,
            "one line for {args:?}: {message}"
        );
        assert!(
            message.contains(expected),
            "args {args:?}: expected '{expected}' in '{message}'"
        );
        assert!(stdout(&output).is_empty());
    }
}
