//! The circuit breaker lesson: resilience4j's state machine rule by rule (window minimum,
//! thresholds, sliding, time buckets, open wait, half-open trials, slow calls), and the
//! lesson's model against the behaviour it teaches (threads exhausted without a breaker,
//! fast fallbacks with one, recovery through HALF_OPEN), with conservation and replay.

use patterns_playground::lessons::circuit_breaker::breaker::{
    BreakerConfig, BreakerState, CircuitBreaker, Permission, WindowKind,
};
use patterns_playground::lessons::circuit_breaker::{self, simulation, CircuitBreakerModel};
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::{SimDuration, SimTime};

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_rate_threshold: 50.0,
        slow_call_rate_threshold: 100.0,
        slow_call_duration: SimDuration::from_secs(60),
        window: WindowKind::CountBased,
        window_size: 20,
        minimum_calls: 10,
        wait_in_open: SimDuration::from_secs(10),
        permitted_in_half_open: 5,
    }
}

fn at(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

const FAST: SimDuration = SimDuration::from_millis(50);

/// Records `outcomes` (true = failed) one per millisecond from `start`; returns the index
/// of the call whose record changed the state, if any.
fn feed(breaker: &mut CircuitBreaker, start: f64, outcomes: &[bool]) -> Option<usize> {
    let mut changed = None;
    for (index, &failed) in outcomes.iter().enumerate() {
        let now = at(start + index as f64 * 0.001);
        assert_eq!(breaker.try_acquire(now).0, Permission::Permitted);
        if breaker.record(now, failed, FAST).is_some() && changed.is_none() {
            changed = Some(index);
        }
    }
    changed
}

#[test]
fn no_rate_is_computed_below_the_minimum_number_of_calls() {
    let mut breaker = CircuitBreaker::new(config());
    assert_eq!(feed(&mut breaker, 0.0, &[true; 9]), None);
    assert_eq!(breaker.state(), BreakerState::Closed);
    // The tenth failure makes the window big enough: 100% >= 50%.
    let transition = breaker.record(at(1.0), true, FAST).expect("opens");
    assert_eq!(transition.from, BreakerState::Closed);
    assert_eq!(transition.to, BreakerState::Open);
    assert_eq!(transition.counts.calls, 10);
    assert_eq!(transition.counts.failed, 10);
}

#[test]
fn the_failure_threshold_is_inclusive() {
    // 5 failures out of 10 = 50% opens at the tenth call...
    let mut breaker = CircuitBreaker::new(config());
    let outcomes = [
        false, true, false, true, false, true, false, true, false, true,
    ];
    assert_eq!(feed(&mut breaker, 0.0, &outcomes), Some(9));
    // ... 4 out of 10 does not.
    let mut breaker = CircuitBreaker::new(config());
    let outcomes = [
        false, true, false, true, false, true, false, true, false, false,
    ];
    assert_eq!(feed(&mut breaker, 0.0, &outcomes), None);
    assert_eq!(breaker.window_counts(at(1.0)).failure_rate(), 40.0);
}

#[test]
fn a_count_window_smaller_than_the_minimum_lowers_the_minimum() {
    // resilience4j: minimumNumberOfCalls = min(minimumNumberOfCalls, slidingWindowSize).
    let mut breaker = CircuitBreaker::new(BreakerConfig {
        window_size: 5,
        ..config()
    });
    assert_eq!(feed(&mut breaker, 0.0, &[true; 5]), Some(4));
}

#[test]
fn the_count_window_slides_over_the_last_n_calls() {
    let mut breaker = CircuitBreaker::new(BreakerConfig {
        window_size: 4,
        minimum_calls: 4,
        ..config()
    });
    // S S S F -> 25%; then F -> window S S F F = 50% -> open at index 4.
    assert_eq!(
        feed(&mut breaker, 0.0, &[false, false, false, true, true]),
        Some(4)
    );
    // A long run of failures long ago does not count once it slid out.
    let mut breaker = CircuitBreaker::new(BreakerConfig {
        window_size: 4,
        minimum_calls: 4,
        failure_rate_threshold: 75.0,
        ..config()
    });
    assert_eq!(feed(&mut breaker, 0.0, &[true, true, false, false]), None);
    assert_eq!(breaker.window_counts(at(1.0)).failed, 2);
    assert_eq!(feed(&mut breaker, 1.0, &[false, false]), None);
    assert_eq!(breaker.window_counts(at(2.0)).failed, 0);
}

#[test]
fn a_time_window_counts_only_the_last_n_seconds() {
    let time = BreakerConfig {
        window: WindowKind::TimeBased,
        window_size: 10,
        minimum_calls: 3,
        ..config()
    };
    // Failures at 0 s and 5 s, then at 11 s: the bucket of second 0 slid out (it covers
    // seconds 2..=11), so only two calls are in the window: below the minimum.
    let mut breaker = CircuitBreaker::new(time);
    for second in [0.0, 5.0, 11.0] {
        assert!(breaker.record(at(second), true, FAST).is_none());
    }
    assert_eq!(breaker.window_counts(at(11.0)).calls, 2);
    assert_eq!(breaker.window_counts(at(15.9)).calls, 1);
    assert_eq!(breaker.window_counts(at(21.0)).calls, 0);
    // Three failures within ten seconds open it.
    let mut breaker = CircuitBreaker::new(time);
    assert!(breaker.record(at(0.0), true, FAST).is_none());
    assert!(breaker.record(at(5.0), true, FAST).is_none());
    let transition = breaker.record(at(9.9), true, FAST).expect("opens");
    assert_eq!(transition.to, BreakerState::Open);
}

#[test]
fn open_rejects_for_the_wait_then_the_next_call_is_a_half_open_trial() {
    let mut breaker = CircuitBreaker::new(config());
    feed(&mut breaker, 0.0, &[true; 10]);
    assert_eq!(breaker.state(), BreakerState::Open);
    let opened = at(0.009);
    assert_eq!(
        breaker.open_until(),
        Some(opened + SimDuration::from_secs(10))
    );
    assert_eq!(breaker.try_acquire(at(5.0)), (Permission::Rejected, None));
    // Exactly at the end of the wait it still rejects (the library checks "is after").
    assert_eq!(
        breaker.try_acquire(opened + SimDuration::from_secs(10)).0,
        Permission::Rejected
    );
    let (permission, transition) =
        breaker.try_acquire(opened + SimDuration::from_secs(10) + SimDuration::from_ticks(1));
    assert_eq!(permission, Permission::Permitted);
    let transition = transition.expect("moves to half-open");
    assert_eq!(
        (transition.from, transition.to),
        (BreakerState::Open, BreakerState::HalfOpen)
    );
}

fn half_open() -> CircuitBreaker {
    let mut breaker = CircuitBreaker::new(config());
    feed(&mut breaker, 0.0, &[true; 10]);
    let (permission, _) = breaker.try_acquire(at(20.0));
    assert_eq!(permission, Permission::Permitted);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker
}

#[test]
fn half_open_permits_exactly_the_trial_calls_then_closes_on_success() {
    let mut breaker = half_open();
    // One trial was taken by the transition; four more are permitted, then none.
    for _ in 0..4 {
        assert_eq!(breaker.try_acquire(at(20.1)).0, Permission::Permitted);
    }
    assert_eq!(breaker.try_acquire(at(20.1)).0, Permission::Rejected);
    // One failure in five trials is 20% < 50%: decided at the fifth record, closed.
    assert!(breaker.record(at(20.2), true, FAST).is_none());
    for _ in 0..3 {
        assert!(breaker.record(at(20.2), false, FAST).is_none());
    }
    let transition = breaker.record(at(20.3), false, FAST).expect("decides");
    assert_eq!(
        (transition.from, transition.to),
        (BreakerState::HalfOpen, BreakerState::Closed)
    );
    assert_eq!(transition.counts.calls, 5);
    // Closed again with an empty window: nine new failures do not open it.
    assert_eq!(breaker.window_counts(at(20.3)).calls, 0);
    assert_eq!(feed(&mut breaker, 21.0, &[true; 9]), None);
}

#[test]
fn half_open_reopens_when_the_trials_fail() {
    let mut breaker = half_open();
    for _ in 0..4 {
        breaker.try_acquire(at(20.1));
    }
    let outcomes = [true, true, true, false, false];
    let mut last = None;
    for failed in outcomes {
        last = breaker.record(at(20.5), failed, FAST).or(last);
    }
    let transition = last.expect("decides");
    assert_eq!(transition.to, BreakerState::Open);
    assert_eq!(
        breaker.open_until(),
        Some(at(20.5) + SimDuration::from_secs(10))
    );
}

#[test]
fn outcomes_recorded_while_open_change_nothing() {
    let mut breaker = CircuitBreaker::new(config());
    feed(&mut breaker, 0.0, &[true; 10]);
    for _ in 0..50 {
        assert!(breaker.record(at(1.0), false, FAST).is_none());
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn slow_calls_open_the_breaker_without_a_single_failure() {
    let mut breaker = CircuitBreaker::new(BreakerConfig {
        slow_call_rate_threshold: 50.0,
        slow_call_duration: SimDuration::from_secs(1),
        ..config()
    });
    // Exactly the slow duration is not slow; longer is.
    for _ in 0..10 {
        assert!(breaker
            .record(at(1.0), false, SimDuration::from_secs(1))
            .is_none());
    }
    assert_eq!(breaker.window_counts(at(1.0)).slow, 0);
    // Ten slow successes make 10 of 20 = 50% slow.
    let mut opened = None;
    for index in 0..10 {
        let slow = SimDuration::from_secs(1) + SimDuration::from_ticks(1);
        if breaker.record(at(2.0), false, slow).is_some() {
            opened.get_or_insert(index);
        }
    }
    assert_eq!(opened, Some(9));
    assert_eq!(breaker.state(), BreakerState::Open);
}

// The lesson's model.

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(circuit_breaker::SPEC.params, assignments.iter().copied())
        .expect("valid parameters")
}

fn run(assignments: &[&str], seed: u64, until: f64) -> Simulation<CircuitBreakerModel> {
    let mut sim = simulation(&params(assignments), Seed(seed));
    sim.run_until(at(until));
    sim
}

fn figure(sim: &Simulation<CircuitBreakerModel>, key: &str) -> f64 {
    LessonRun::extra_figures(sim)
        .into_iter()
        .find(|figure| figure.key == key)
        .unwrap_or_else(|| panic!("figure {key}"))
        .value
}

/// (time in s, state) of every breaker transition in the log.
fn breaker_transitions(sim: &Simulation<CircuitBreakerModel>) -> Vec<(f64, NodeState)> {
    let breaker = LessonRun::topology(sim)
        .find("breaker")
        .expect("breaker node");
    LessonRun::log(sim)
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node, to } if node == breaker => {
                Some((entry.time.as_secs_f64(), to))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn without_a_breaker_a_hanging_dependency_exhausts_the_threads() {
    for seed in [1, 2, 3] {
        let guarded = run(&["protection=breaker"], seed, 300.0);
        let bare = run(&["protection=none"], seed, 300.0);
        let (guarded_summary, bare_summary) = (guarded.summary(), bare.summary());
        assert_eq!(
            guarded_summary.generated, bare_summary.generated,
            "same arrivals"
        );
        // The incident lasts 120 s: without a breaker the pool is full nearly all of it.
        assert!(figure(&bare, "threads_exhausted_s") > 110.0);
        assert!(figure(&guarded, "threads_exhausted_s") < 10.0);
        // Users: slow errors without it, fast fallbacks with it.
        assert!(bare_summary.failed > 10 * guarded_summary.failed);
        assert!(guarded_summary.rejected as f64 > 0.8 * 20.0 * 120.0 * 0.9);
        assert!(figure(&bare, "answer_mean_s") > 3.0 * figure(&guarded, "answer_mean_s"));
        // The dependency is spared: roughly 8 calls/s (16 threads / 2 s) reach it
        // without the breaker during the hang, only trial calls with it.
        let spared = figure(&bare, "dependency_calls") - figure(&guarded, "dependency_calls");
        assert!(spared > 800.0, "spared {spared}");
    }
}

#[test]
fn the_breaker_opens_after_the_first_timeouts_and_closes_after_the_recovery() {
    let sim = run(&[], 1, 300.0);
    let transitions = breaker_transitions(&sim);
    let (first_time, first_state) = transitions[0];
    assert_eq!(first_state, NodeState::Open);
    // The hang starts at 60 s; calls time out after 2 s; ten failures open it.
    assert!((62.0..63.5).contains(&first_time), "opened at {first_time}");
    // Every OPEN is followed by HALF_OPEN, every HALF_OPEN by OPEN or CLOSED.
    for pair in transitions.windows(2) {
        match (pair[0].1, pair[1].1) {
            (NodeState::Open, NodeState::HalfOpen)
            | (NodeState::HalfOpen, NodeState::Open)
            | (NodeState::HalfOpen, NodeState::Healthy)
            | (NodeState::Healthy, NodeState::Open) => {}
            other => panic!("impossible transition {other:?}"),
        }
        if pair[0].1 == NodeState::Open {
            // The first call after the 10 s wait moves it to HALF_OPEN.
            let waited = pair[1].0 - pair[0].0;
            assert!((10.0..10.5).contains(&waited), "waited {waited}");
        }
    }
    // The dependency recovers at 180 s; the next trials succeed and close it.
    let (last_time, last_state) = *transitions.last().unwrap();
    assert_eq!(last_state, NodeState::Healthy);
    assert!((180.0..195.0).contains(&last_time), "closed at {last_time}");
    assert_eq!(sim.model.state(), Some(BreakerState::Closed));
}

#[test]
fn a_slow_dependency_trips_only_a_breaker_that_watches_slow_calls() {
    // The library default slow-call duration (60 s) never sees 1.5 s calls as slow.
    let default = run(&["incident=slow"], 1, 300.0);
    assert_eq!(figure(&default, "breaker_opened"), 0.0);
    assert!(figure(&default, "threads_exhausted_s") > 100.0);
    let watching = run(
        &["incident=slow", "slow_duration=1", "slow_threshold=50"],
        1,
        300.0,
    );
    assert!(figure(&watching, "breaker_opened") >= 1.0);
    assert!(figure(&watching, "threads_exhausted_s") < 10.0);
}

#[test]
fn against_fast_failures_the_breaker_mostly_spares_the_dependency() {
    let guarded = run(&["incident=fail"], 2, 300.0);
    let bare = run(&["incident=fail", "protection=none"], 2, 300.0);
    assert!(figure(&guarded, "dependency_calls") < 0.7 * figure(&bare, "dependency_calls"));
    // Errors are fast either way: no thread exhaustion in either run.
    assert_eq!(figure(&bare, "threads_exhausted_s"), 0.0);
}

#[test]
fn injections_change_the_dependency_and_refuse_no_ops() {
    let mut sim = run(&["incident=none"], 4, 30.0);
    let recover = LessonCommand::Inject("dependency-recovers".into());
    assert!(
        LessonRun::apply(&mut sim, &recover).is_err(),
        "already healthy"
    );
    LessonRun::apply(&mut sim, &LessonCommand::Inject("dependency-fails".into())).unwrap();
    LessonRun::run_until(&mut sim, at(60.0));
    assert!(figure(&sim, "breaker_opened") >= 1.0);
    LessonRun::apply(&mut sim, &recover).unwrap();
    LessonRun::run_until(&mut sim, at(90.0));
    assert_eq!(sim.model.state(), Some(BreakerState::Closed));
    assert!(LessonRun::apply(&mut sim, &LessonCommand::Inject("no-such".into())).is_err());
}

#[test]
fn every_request_is_accounted_for_at_every_instant() {
    for seed in 1..=4 {
        for protection in ["breaker", "none"] {
            for incident in ["hang", "fail", "slow"] {
                let mut sim = simulation(
                    &params(&[
                        &format!("protection={protection}"),
                        &format!("incident={incident}"),
                        "incident_start=20",
                        "incident_length=40",
                    ]),
                    Seed(seed),
                );
                for step in 1..=40 {
                    LessonRun::run_until(&mut sim, at(step as f64 * 2.5));
                    sim.check_conservation().unwrap();
                }
            }
        }
    }
}

#[test]
fn the_same_seed_replays_identically() {
    let a = run(&["window_type=time", "window_size=5"], 9, 300.0);
    let b = run(&["window_type=time", "window_size=5"], 9, 300.0);
    assert_eq!(fingerprint(&a.summary()), fingerprint(&b.summary()));
    assert_eq!(LessonRun::log(&a), LessonRun::log(&b));
    assert_eq!(LessonRun::extra_figures(&a), LessonRun::extra_figures(&b));
}
