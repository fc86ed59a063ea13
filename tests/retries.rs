//! The retries lesson reproduces its sources: the backoff formulas of the AWS
//! Architecture blog "Exponential Backoff and Jitter" (exact ranges, ceiling, decorrelated
//! bound); the blog's contention result (no jitter does the most work and takes longest,
//! full jitter the least work); metastable overload after a transient trigger with
//! retries and no budget, and recovery with a retry budget (AWS SDK retry quota; Brooker,
//! "What is Backoff For?": in an open system backoff alone does not reduce the work);
//! double charges without idempotency keys and none with them; conservation; replay.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::retries::backoff::{Backoff, Strategy};
use patterns_playground::lessons::retries::contention::contention_experiment;
use patterns_playground::lessons::retries::SPEC;
use patterns_playground::lessons::run::{CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::random::SimRng;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

fn start(assignments: &[&str], seed: u64) -> Box<dyn LessonRun> {
    let params = ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap();
    SPEC.start(&params, Seed(seed))
}

fn secs(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

fn figure(run: &dyn LessonRun, key: &str) -> f64 {
    run.extra_figures()
        .into_iter()
        .find(|figure| figure.key == key)
        .unwrap_or_else(|| panic!("no figure {key}"))
        .value
}

fn inject(run: &mut dyn LessonRun, id: &str) -> Result<(), CommandError> {
    run.apply(&LessonCommand::Inject(id.into()))
}

fn node_state(run: &dyn LessonRun, key: &str) -> NodeState {
    let node = run.topology().find(key).unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 0);
    snapshot
        .nodes
        .iter()
        .find(|n| n.node == node)
        .unwrap()
        .state
}

/// Completed calls between two times, by running the clock across the window.
fn completions_between(run: &mut dyn LessonRun, from: f64, to: f64) -> u64 {
    run.run_until(secs(from));
    let before = run.summary().completed;
    run.run_until(secs(to));
    run.summary().completed - before
}

// ---- Backoff formulas --------------------------------------------------------------

#[test]
fn the_ceiling_doubles_from_the_base_and_stops_at_the_cap() {
    let b = Backoff {
        strategy: Strategy::Exponential,
        base: 0.1,
        cap: 10.0,
    };
    assert_eq!(b.ceiling(0), 0.1);
    assert_eq!(b.ceiling(1), 0.2);
    assert_eq!(b.ceiling(2), 0.4);
    assert_eq!(b.ceiling(6), 6.4);
    assert_eq!(b.ceiling(7), 10.0, "12.8 is capped");
    assert_eq!(b.ceiling(1000), 10.0, "no overflow for huge attempt counts");
}

#[test]
fn each_strategy_draws_from_its_published_range() {
    let (base, cap) = (0.1, 10.0);
    let mut rng = SimRng::new(5, "backoff-test");
    for failures in 1..=9u32 {
        let v = f64::min(cap, base * 2f64.powi(failures as i32));
        for (strategy, low, high) in [
            (Strategy::Immediate, 0.0, 0.0),
            (Strategy::Exponential, v, v),
            (Strategy::FullJitter, 0.0, v),
            (Strategy::EqualJitter, v / 2.0, v),
        ] {
            let b = Backoff {
                strategy,
                base,
                cap,
            };
            assert_eq!(b.range(failures, base), Some((low, high)), "{strategy:?}");
            for _ in 0..200 {
                let sleep = b.sleep(failures, base, &mut rng).unwrap();
                assert!(
                    (low..=high).contains(&sleep),
                    "{strategy:?} after {failures}: {sleep} outside [{low}, {high}]"
                );
            }
        }
    }
    let none = Backoff {
        strategy: Strategy::NoRetry,
        base,
        cap,
    };
    assert_eq!(none.sleep(1, base, &mut rng), None);
    assert_eq!(none.range(1, base), None);
}

#[test]
fn jitter_spreads_sleeps_over_the_whole_range() {
    let v = 1.6; // base 0.1, four failures
    let mut rng = SimRng::new(8, "spread");
    let full = Backoff {
        strategy: Strategy::FullJitter,
        base: 0.1,
        cap: 10.0,
    };
    let equal = Backoff {
        strategy: Strategy::EqualJitter,
        ..full
    };
    let n = 20_000;
    let mean = |b: &Backoff, rng: &mut SimRng| {
        (0..n).map(|_| b.sleep(4, 0.1, rng).unwrap()).sum::<f64>() / n as f64
    };
    // U(0, v) has mean v/2; v/2 + U(0, v/2) has mean 3v/4.
    assert!((mean(&full, &mut rng) - v / 2.0).abs() < 0.02 * v);
    assert!((mean(&equal, &mut rng) - 0.75 * v).abs() < 0.02 * v);
}

#[test]
fn decorrelated_jitter_stays_between_base_and_three_times_the_previous_sleep() {
    let b = Backoff {
        strategy: Strategy::DecorrelatedJitter,
        base: 0.1,
        cap: 2.0,
    };
    let mut rng = SimRng::new(3, "decorrelated");
    let mut previous = b.base;
    let mut reached_cap = false;
    for failures in 1..=400u32 {
        let (low, high) = b.range(failures, previous).unwrap();
        assert_eq!(low, 0.1);
        assert_eq!(high, f64::min(2.0, 3.0 * previous));
        let sleep = b.sleep(failures, previous, &mut rng).unwrap();
        assert!(sleep >= b.base && sleep <= f64::min(b.cap, 3.0 * previous));
        reached_cap |= sleep == b.cap;
        previous = sleep;
    }
    assert!(reached_cap, "draws above the cap are clamped to it");
}

// ---- The blog's contention experiment ------------------------------------------------

#[test]
fn no_jitter_does_the_most_work_and_full_jitter_the_least_on_every_seed() {
    for seed in 1..=5 {
        let run = |s| contention_experiment(s, 50, seed);
        let exponential = run(Strategy::Exponential);
        let full = run(Strategy::FullJitter);
        let equal = run(Strategy::EqualJitter);
        let decorrelated = run(Strategy::DecorrelatedJitter);
        for result in [exponential, full, equal, decorrelated] {
            assert_eq!(result.succeeded, 50, "every client eventually writes");
        }
        for jittered in [full, equal, decorrelated] {
            assert!(
                exponential.total_calls > jittered.total_calls,
                "seed {seed}: no jitter {exponential:?} vs {jittered:?}"
            );
            assert!(
                exponential.completion_time.ticks() > jittered.completion_time.ticks() * 3,
                "seed {seed}: no jitter takes far longer"
            );
        }
        assert!(
            full.total_calls < equal.total_calls && full.total_calls < decorrelated.total_calls,
            "seed {seed}: full jitter does the least work: {full:?} {equal:?} {decorrelated:?}"
        );
    }
    // Without retries only the first writer succeeds.
    assert_eq!(contention_experiment(Strategy::NoRetry, 50, 1).succeeded, 1);
}

// ---- Metastable overload -----------------------------------------------------------

#[test]
fn without_a_trigger_immediate_retries_are_harmless() {
    let mut run = start(&["strategy=immediate", "slowdown_length=0"], 1);
    let done = completions_between(run.as_mut(), 100.0, 200.0);
    assert!(done > 9_000, "about 100 calls/s succeed: {done}");
    assert!(figure(run.as_ref(), "amplification") < 1.01);
    assert_eq!(figure(run.as_ref(), "recovered"), 1.0);
}

#[test]
fn immediate_retries_keep_the_server_overloaded_long_after_the_slowdown_ends() {
    for seed in [1, 2, 3] {
        // The scheduled trigger: ×10 slower from 60 s to 80 s.
        let mut run = start(&["strategy=immediate"], seed);
        run.run_until(secs(79.0));
        assert_eq!(node_state(run.as_ref(), "server"), NodeState::Unhealthy);
        run.run_until(secs(81.0));
        assert_eq!(node_state(run.as_ref(), "server"), NodeState::Healthy);
        // From 60 s to 140 s after the restore, almost nothing succeeds.
        let done = completions_between(run.as_mut(), 140.0, 220.0);
        assert!(
            done < 400,
            "seed {seed}: goodput stays near zero: {done} in 80 s"
        );
        let mut snapshot = Snapshot::default();
        run.snapshot_into(&mut snapshot, 0);
        let queue = run.topology().find("queue").unwrap();
        let queued = snapshot
            .nodes
            .iter()
            .find(|n| n.node == queue)
            .unwrap()
            .queued;
        assert!(queued > 300, "seed {seed}: the queue stays full: {queued}");
        let attempts = figure(run.as_ref(), "attempts");
        run.run_until(secs(230.0));
        let rate = (figure(run.as_ref(), "attempts") - attempts) / 10.0;
        assert!(
            rate > 250.0,
            "seed {seed}: retries keep the offered load high: {rate}/s"
        );
        assert_eq!(figure(run.as_ref(), "recovered"), 0.0);
        assert!(figure(run.as_ref(), "recovery_s") > 130.0);
        assert!(figure(run.as_ref(), "wasted_work") > 10_000.0);
        run.check_conservation().unwrap();
    }
}

#[test]
fn backoff_and_jitter_alone_do_not_end_the_storm_in_an_open_system() {
    for strategy in [
        "exponential",
        "full-jitter",
        "equal-jitter",
        "decorrelated-jitter",
    ] {
        let mut run = start(&[&format!("strategy={strategy}")], 1);
        let done = completions_between(run.as_mut(), 140.0, 220.0);
        assert!(done < 400, "{strategy}: {done}");
        assert!(figure(run.as_ref(), "amplification") > 2.0, "{strategy}");
    }
}

#[test]
fn full_jitter_with_a_retry_budget_recovers_quickly() {
    for seed in [1, 2, 3] {
        let mut run = start(&["strategy=full-jitter", "retry_budget=on"], seed);
        run.run_until(secs(79.0));
        assert_eq!(
            node_state(run.as_ref(), "budget"),
            NodeState::Open,
            "the slowdown empties the bucket"
        );
        let done = completions_between(run.as_mut(), 110.0, 200.0);
        assert!(done > 8_000, "seed {seed}: back to ~100 calls/s: {done}");
        assert_eq!(figure(run.as_ref(), "recovered"), 1.0);
        let recovery = figure(run.as_ref(), "recovery_s");
        assert!(recovery > 0.0 && recovery < 20.0, "seed {seed}: {recovery}");
        assert!(figure(run.as_ref(), "retries_denied") > 100.0);
        assert!(figure(run.as_ref(), "amplification") < 1.1);
        assert_eq!(node_state(run.as_ref(), "budget"), NodeState::Healthy);
        run.check_conservation().unwrap();
    }
}

#[test]
fn without_retries_the_server_recovers_but_calls_fail_during_the_trigger() {
    let mut run = start(&["strategy=none"], 2);
    run.run_until(secs(240.0));
    assert_eq!(figure(run.as_ref(), "recovered"), 1.0);
    assert_eq!(figure(run.as_ref(), "amplification"), 1.0);
    assert!(run.summary().failed > 500, "every timeout is final");
}

#[test]
fn the_retry_budget_follows_the_sdk_quota() {
    // Slow the server for good: every attempt times out, no success refills the bucket.
    let mut run = start(
        &[
            "strategy=immediate",
            "retry_budget=on",
            "budget_capacity=500",
            "slowdown_length=0",
        ],
        4,
    );
    run.run_until(secs(5.0));
    inject(run.as_mut(), "slow-server").unwrap();
    run.run_until(secs(60.0));
    let attempts = figure(run.as_ref(), "attempts");
    let calls = run.summary().generated as f64;
    // 500 tokens pay for at most 500 / 5 = 100 retries (fewer at 10 per timeout), plus
    // what successes before the bucket emptied gave back.
    let retries = attempts - calls;
    assert!(retries > 40.0 && retries < 150.0, "retries {retries}");
    assert!(run.log().entries().iter().any(|e| matches!(
        e.what,
        Notable::StateChanged {
            to: NodeState::Open,
            ..
        }
    )));
    run.check_conservation().unwrap();
}

// ---- Idempotency -------------------------------------------------------------------

#[test]
fn retries_double_charge_without_idempotency_keys_and_never_with_them() {
    let mut without = start(&["strategy=full-jitter", "retry_budget=on"], 7);
    let mut with = start(
        &[
            "strategy=full-jitter",
            "retry_budget=on",
            "idempotency_keys=on",
        ],
        7,
    );
    without.run_until(secs(240.0));
    with.run_until(secs(240.0));
    assert!(figure(without.as_ref(), "double_charges") > 0.0);
    assert_eq!(figure(with.as_ref(), "double_charges"), 0.0);
    // The server saw repeated attempts in both runs; with keys it answered them from the
    // stored result.
    assert!(with.summary().duplicated > 0);
    assert_eq!(
        without.summary().duplicated as f64,
        figure(without.as_ref(), "double_charges")
    );
}

#[test]
fn a_storm_without_keys_charges_thousands_twice() {
    let mut run = start(&["strategy=immediate"], 1);
    run.run_until(secs(240.0));
    assert!(figure(run.as_ref(), "double_charges") > 1_000.0);
    assert!(figure(run.as_ref(), "charged_but_failed") > 1_000.0);
}

// ---- Injections ---------------------------------------------------------------------

#[test]
fn an_outage_drops_the_queue_refuses_calls_and_restore_brings_the_server_back() {
    let mut run = start(&["strategy=none", "slowdown_length=0"], 3);
    run.run_until(secs(10.0));
    assert_eq!(
        inject(run.as_mut(), "restore"),
        Err(CommandError::NotApplicable {
            reason: "the server is neither slow nor down".into()
        })
    );
    inject(run.as_mut(), "outage").unwrap();
    assert_eq!(node_state(run.as_ref(), "server"), NodeState::Down);
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 0);
    let queue = run.topology().find("queue").unwrap();
    assert_eq!(
        snapshot
            .nodes
            .iter()
            .find(|n| n.node == queue)
            .unwrap()
            .queued,
        0
    );
    assert!(inject(run.as_mut(), "outage").is_err());
    let failed_before = run.summary().failed;
    run.run_until(secs(15.0));
    // ~500 calls in 5 s, all refused at once (no retries).
    assert!(run.summary().failed - failed_before > 400);
    assert_eq!(run.summary().completed, {
        let c = run.summary().completed;
        run.run_until(secs(15.5));
        assert_eq!(run.summary().completed, c, "nothing completes while down");
        c
    });
    inject(run.as_mut(), "restore").unwrap();
    assert_eq!(node_state(run.as_ref(), "server"), NodeState::Healthy);
    let done = completions_between(run.as_mut(), 16.0, 26.0);
    assert!(done > 900, "{done}");
    run.check_conservation().unwrap();
}

#[test]
fn a_traffic_burst_alone_can_tip_immediate_retries_into_a_storm() {
    let mut run = start(&["strategy=immediate", "slowdown_length=0"], 2);
    run.run_until(secs(30.0));
    inject(run.as_mut(), "traffic-burst").unwrap();
    assert!(inject(run.as_mut(), "traffic-burst").is_err());
    let done = completions_between(run.as_mut(), 60.0, 120.0);
    assert!(done < 600, "still stuck a minute after the burst: {done}");
    let mut budget = start(
        &["strategy=immediate", "slowdown_length=0", "retry_budget=on"],
        2,
    );
    budget.run_until(secs(30.0));
    inject(budget.as_mut(), "traffic-burst").unwrap();
    let done = completions_between(budget.as_mut(), 60.0, 120.0);
    assert!(done > 5_000, "the budget lets it recover: {done}");
}

#[test]
fn live_changes_apply_at_once() {
    let mut run = start(&["strategy=immediate"], 1);
    run.run_until(secs(120.0));
    assert_eq!(figure(run.as_ref(), "recovered"), 0.0);
    // Switching the budget on in the middle of the storm ends it.
    run.apply(&LessonCommand::SetParam {
        name: "retry_budget".into(),
        value: patterns_playground::lessons::params::ParamValue::Toggle(true),
    })
    .unwrap();
    let done = completions_between(run.as_mut(), 150.0, 200.0);
    assert!(done > 4_000, "{done}");
    assert!(run
        .apply(&LessonCommand::SetParam {
            name: "slowdown_at".into(),
            value: patterns_playground::lessons::params::ParamValue::Number(10.0),
        })
        .is_err());
}

// ---- Invariants -----------------------------------------------------------------------

#[test]
fn every_call_is_accounted_for_under_injections_on_several_seeds() {
    for seed in 1..=6 {
        for strategy in ["none", "immediate", "decorrelated-jitter"] {
            let mut run = start(&[&format!("strategy={strategy}"), "retry_budget=on"], seed);
            let script = [
                (20.0, "outage"),
                (25.0, "restore"),
                (30.0, "traffic-burst"),
                (90.0, "slow-server"),
                (100.0, "outage"),
                (104.0, "restore"),
            ];
            for (at, id) in script {
                run.run_until(secs(at));
                run.check_conservation().unwrap();
                let _ = inject(run.as_mut(), id);
                run.check_conservation().unwrap();
            }
            run.run_until(secs(160.0));
            run.check_conservation().unwrap();
            let amplification = figure(run.as_ref(), "amplification");
            assert!((1.0..=3.0).contains(&amplification), "at most max_attempts");
        }
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let run = |seed| {
        let mut run = start(&["strategy=decorrelated-jitter", "retry_budget=on"], seed);
        run.run_until(secs(50.0));
        inject(run.as_mut(), "outage").unwrap();
        run.run_until(secs(55.0));
        inject(run.as_mut(), "restore").unwrap();
        run.run_until(secs(200.0));
        (run.summary(), run.extra_figures())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0);
}
