//! The bulkhead lesson reproduces what its sources describe (resilience4j Bulkhead,
//! Nygard's "Release It!"): with separate pools a slow dependency hurts only its own
//! requests (the healthy kind's outcomes equal a run without the slowdown, exactly, since
//! each kind draws from its own streams); with one shared pool the slow dependency's calls
//! hold every thread and the healthy kind fails too. Pool occupancy obeys Little's law,
//! permits never exceed the pool size, waits never exceed maxWaitDuration, every request
//! is accounted for, and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::bulkhead::{simulation, HOP, SPEC};
use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn start(assignments: &[&str], seed: u64) -> Box<dyn LessonRun> {
    SPEC.start(&params(assignments), Seed(seed))
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

fn inject(run: &mut dyn LessonRun, id: &str) {
    run.apply(&LessonCommand::Inject(id.into())).unwrap();
}

/// Runs to 60 s, slows recommendations (if `slow`), runs to `until`.
fn scenario(isolation: &str, slow: bool, seed: u64, until: f64) -> Box<dyn LessonRun> {
    let setting = format!("isolation={isolation}");
    let mut run = start(&[setting.as_str()], seed);
    run.run_until(secs(60.0));
    if slow {
        inject(run.as_mut(), "slow-recommendations");
    }
    run.run_until(secs(until));
    run.check_conservation().unwrap();
    run
}

const PAYMENT_FIGURES: [&str; 4] = [
    "payments_ok_pct",
    "payments_p99_ms",
    "payments_failed",
    "payments_busy_mean",
];

#[test]
fn with_bulkheads_the_healthy_kind_is_exactly_unaffected_and_the_slow_kind_degrades() {
    for seed in [1, 2, 3] {
        let baseline = scenario("bulkheads", false, seed, 300.0);
        let slowed = scenario("bulkheads", true, seed, 300.0);
        for key in PAYMENT_FIGURES {
            assert_eq!(
                figure(baseline.as_ref(), key),
                figure(slowed.as_ref(), key),
                "seed {seed}: {key} must not change when only recommendations slow down"
            );
        }
        assert!(figure(slowed.as_ref(), "payments_ok_pct") > 99.9);
        let recs_ok = figure(slowed.as_ref(), "recommendations_ok_pct");
        assert!(
            recs_ok < 40.0,
            "seed {seed}: the slow kind degrades: {recs_ok}% ok"
        );
        assert!(figure(baseline.as_ref(), "recommendations_ok_pct") > 99.5);
        assert_eq!(
            baseline.summary().generated,
            slowed.summary().generated,
            "same arrivals"
        );
    }
}

#[test]
fn with_a_shared_pool_the_healthy_kind_starves_too() {
    for seed in [1, 2, 3] {
        let baseline = scenario("shared", false, seed, 300.0);
        let slowed = scenario("shared", true, seed, 300.0);
        let bulkheads = scenario("bulkheads", true, seed, 300.0);
        let before = figure(baseline.as_ref(), "payments_ok_pct");
        let after = figure(slowed.as_ref(), "payments_ok_pct");
        assert!(before > 99.9, "seed {seed}: healthy baseline {before}%");
        // Over the 240 s after the slowdown payments mostly fail: whole-run share < 50 %.
        assert!(
            after < 50.0,
            "seed {seed}: payments starve in the shared pool: {after}% ok"
        );
        assert!(
            figure(slowed.as_ref(), "payments_failed")
                > 20.0 * (1.0 + figure(bulkheads.as_ref(), "payments_failed")),
            "failures rise sharply"
        );
        assert!(
            figure(slowed.as_ref(), "payments_p99_ms")
                > figure(bulkheads.as_ref(), "payments_p99_ms"),
            "payments that do get through waited for a thread"
        );
    }
}

/// L = λ W per kind, with W = 3 hops + the mean response time (the timeout is far above
/// the response times here, so it never cuts a call).
#[test]
fn busy_threads_obey_littles_law_when_not_saturated() {
    for (isolation, seed) in [("bulkheads", 7), ("shared", 8)] {
        let setting = format!("isolation={isolation}");
        let mut run = start(
            &[
                setting.as_str(),
                "payments_threads=30",
                "recommendations_threads=30",
                "payments_rate=50",
                "recommendations_rate=80",
                "payments_latency=200",
                "recommendations_latency=120",
                "call_timeout=60",
            ],
            seed,
        );
        run.run_until(secs(4000.0));
        run.check_conservation().unwrap();
        let expected = [
            50.0 * (3.0 * HOP.as_secs_f64() + 0.200),
            80.0 * (3.0 * HOP.as_secs_f64() + 0.120),
        ];
        for (kind, key) in ["payments_busy_mean", "recommendations_busy_mean"]
            .into_iter()
            .enumerate()
        {
            let measured = figure(run.as_ref(), key);
            let error = (measured - expected[kind]).abs() / expected[kind];
            assert!(
                error < 0.03,
                "{isolation}: {key} {measured:.3} vs λW {:.3}",
                expected[kind]
            );
        }
        assert_eq!(run.summary().rejected, 0, "not saturated");
    }
}

#[test]
fn permits_never_exceed_the_pool_size_and_waits_never_exceed_max_wait() {
    for (isolation, seed) in [("shared", 4), ("bulkheads", 5)] {
        let setting = format!("isolation={isolation}");
        let assignments = [
            setting.as_str(),
            "payments_threads=4",
            "recommendations_threads=6",
            "max_wait=250",
        ];
        let mut sim = simulation(&params(&assignments), Seed(seed));
        let mut snapshot = Snapshot::default();
        let mut t = 0.0;
        while t < 200.0 {
            t += 0.05;
            if (t - 40.0_f64).abs() < 0.01 {
                sim.apply(&LessonCommand::Inject("slow-recommendations".into()))
                    .unwrap();
            }
            sim.run_until(secs(t));
            sim.snapshot_into(&mut snapshot, 10_000);
            for view in &snapshot.nodes {
                assert!(view.busy <= view.capacity || view.capacity == 0);
            }
        }
        for (peak, size) in sim.model.pool_peaks() {
            assert!(peak <= size, "{isolation}: peak {peak} > size {size}");
            assert_eq!(peak, size, "{isolation}: the slowdown fills the pool");
        }
        let wait_max = sim.summary().wait_mean;
        assert!(wait_max <= 0.25);
        let longest = LessonRun::metrics(&sim).wait().max().unwrap().as_secs_f64();
        assert!(longest <= 0.25 + 1e-6, "{isolation}: waited {longest}s");
        sim.check_conservation().unwrap();
    }
}

#[test]
fn zero_max_wait_rejects_at_once_when_the_pool_is_full() {
    let mut run = start(&["isolation=bulkheads", "max_wait=0"], 3);
    run.run_until(secs(30.0));
    inject(run.as_mut(), "slow-payments");
    run.run_until(secs(120.0));
    run.check_conservation().unwrap();
    let summary = run.summary();
    assert!(summary.rejected > 1000, "{summary:?}");
    assert_eq!(
        run.metrics().wait().max().unwrap().ticks(),
        0,
        "nobody ever waits"
    );
    // Slowing payments now leaves recommendations exactly as in a run without it (with
    // no wait at all, a full pool turns away a few calls even when healthy: Erlang loss).
    let mut baseline = start(&["isolation=bulkheads", "max_wait=0"], 3);
    baseline.run_until(secs(120.0));
    for key in ["recommendations_ok_pct", "recommendations_p99_ms"] {
        assert_eq!(figure(run.as_ref(), key), figure(baseline.as_ref(), key));
    }
    assert!(figure(baseline.as_ref(), "recommendations_ok_pct") > 90.0);
    assert!(figure(run.as_ref(), "payments_ok_pct") < 50.0);
}

#[test]
fn states_follow_the_slowdown_and_the_saturation() {
    let mut run = start(&["isolation=shared"], 6);
    run.run_until(secs(30.0));
    inject(run.as_mut(), "slow-recommendations");
    let err = run
        .apply(&LessonCommand::Inject("slow-recommendations".into()))
        .unwrap_err();
    assert!(matches!(err, CommandError::NotApplicable { .. }));
    run.run_until(secs(60.0));
    let topology = run.topology().clone();
    let node = |key: &str| topology.find(key).unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 1000);
    let state = |snapshot: &Snapshot, key: &str| {
        snapshot
            .nodes
            .iter()
            .find(|view| view.node == node(key))
            .unwrap()
            .state
    };
    assert_eq!(state(&snapshot, "recommendations"), NodeState::Unhealthy);
    assert_eq!(state(&snapshot, "payments"), NodeState::Healthy);
    assert_eq!(state(&snapshot, "pool-shared"), NodeState::Unhealthy);
    let pool = snapshot
        .nodes
        .iter()
        .find(|view| view.node == node("pool-shared"))
        .unwrap();
    assert_eq!(pool.busy, pool.capacity, "saturated: every thread busy");
    inject(run.as_mut(), "restore");
    run.run_until(secs(90.0));
    run.snapshot_into(&mut snapshot, 1000);
    assert_eq!(state(&snapshot, "recommendations"), NodeState::Healthy);
    assert_eq!(state(&snapshot, "pool-shared"), NodeState::Healthy);
    let restore_again = run.apply(&LessonCommand::Inject("restore".into()));
    assert!(matches!(
        restore_again,
        Err(CommandError::NotApplicable { .. })
    ));
    // The log tells the story in order: injected, dependency unhealthy, pool saturated,
    // restored, dependency healthy, pool healthy.
    let changes: Vec<(u16, NodeState)> = run
        .log()
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node, to } => Some((node.0, to)),
            _ => None,
        })
        .collect();
    let rec = node("recommendations").0;
    let pool = node("pool-shared").0;
    assert_eq!(
        changes,
        [
            (rec, NodeState::Unhealthy),
            (pool, NodeState::Unhealthy),
            (rec, NodeState::Healthy),
            (pool, NodeState::Healthy)
        ]
    );
    run.check_conservation().unwrap();
}

#[test]
fn in_the_bulkhead_variant_only_the_slow_kinds_pool_saturates() {
    let mut run = start(&["isolation=bulkheads"], 6);
    run.run_until(secs(30.0));
    inject(run.as_mut(), "slow-recommendations");
    run.run_until(secs(90.0));
    let topology = run.topology().clone();
    let saturated: Vec<&str> = run
        .log()
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged {
                node,
                to: NodeState::Unhealthy,
            } => Some(topology.node(node).key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(saturated, ["recommendations", "pool-recommendations"]);
}

#[test]
fn live_changes_apply_at_once_and_keep_conservation() {
    let mut run = start(&["isolation=bulkheads", "max_wait=500"], 11);
    run.run_until(secs(20.0));
    inject(run.as_mut(), "slow-recommendations");
    run.run_until(secs(40.0));
    let before = figure(run.as_ref(), "recommendations_failed");
    // More recommendation threads: the waiting calls get them at once.
    run.apply(&LessonCommand::SetParam {
        name: "recommendations_threads".into(),
        value: ParamValue::Integer(100),
    })
    .unwrap();
    run.check_conservation().unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 1000);
    let waiting = run.topology().find("wait-recommendations").unwrap();
    let view = snapshot.nodes.iter().find(|v| v.node == waiting).unwrap();
    assert_eq!(view.queued, 0, "waiting calls were handed the new threads");
    run.run_until(secs(100.0));
    let after = figure(run.as_ref(), "recommendations_failed");
    // 20 s of slowness failed `before` calls; with 100 threads holding calls for about
    // 2 s each, about 50 of the 60 calls a second now get a thread: the failure rate per
    // second falls to well under half.
    let rate_before = before / 20.0;
    let rate_after = (after - before) / 60.0;
    assert!(
        rate_after < 0.5 * rate_before,
        "{rate_before}/s → {rate_after}/s"
    );
    // Lowering a pool below its use lets the held permits finish; no new grants meanwhile.
    for (name, value) in [
        ("payments_threads", ParamValue::Integer(1)),
        ("payments_rate", ParamValue::Number(0.0)),
        ("max_wait", ParamValue::Number(0.0)),
        ("call_timeout", ParamValue::Number(0.5)),
    ] {
        run.apply(&LessonCommand::SetParam {
            name: name.into(),
            value,
        })
        .unwrap();
        run.check_conservation().unwrap();
    }
    let generated = run.summary().generated;
    run.run_until(secs(160.0));
    run.check_conservation().unwrap();
    assert!(figure(run.as_ref(), "recommendations_ok_pct") < 100.0);
    assert!(run.summary().generated > generated);
    assert!(matches!(
        run.apply(&LessonCommand::SetParam {
            name: "isolation".into(),
            value: ParamValue::Choice("shared"),
        }),
        Err(CommandError::NeedsRestart { .. })
    ));
}

#[test]
fn conservation_holds_over_seeds_and_injections() {
    for seed in 1..=6 {
        for isolation in ["shared", "bulkheads"] {
            let setting = format!("isolation={isolation}");
            let mut run = start(&[setting.as_str(), "payments_threads=5"], seed);
            for (at, id) in [
                (10.0, "slow-payments"),
                (25.0, "slow-recommendations"),
                (50.0, "restore"),
            ] {
                run.run_until(secs(at));
                run.check_conservation().unwrap();
                inject(run.as_mut(), id);
                run.check_conservation().unwrap();
            }
            run.run_until(secs(120.0));
            run.check_conservation().unwrap();
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let a = scenario("shared", true, 21, 200.0);
    let b = scenario("shared", true, 21, 200.0);
    assert_eq!(fingerprint(&a.summary()), fingerprint(&b.summary()));
    assert_eq!(a.extra_figures(), b.extra_figures());
    assert_eq!(a.events_processed(), b.events_processed());
    let c = scenario("shared", true, 22, 200.0);
    assert_ne!(fingerprint(&a.summary()), fingerprint(&c.summary()));
}

#[test]
fn print_the_lesson_figures() {
    // Not an assertion: the numbers quoted in docs/models/bulkhead.md and the content.
    for isolation in ["shared", "bulkheads"] {
        for slow in [false, true] {
            let run = scenario(isolation, slow, 1, 300.0);
            let figures: Vec<String> = run
                .extra_figures()
                .iter()
                .map(|f| format!("{}={:.2}", f.key, f.value))
                .collect();
            println!(
                "{isolation} slow={slow}: failed {} rejected {} p99 {:.3} | {}",
                run.summary().failed,
                run.summary().rejected,
                run.summary().latency_p99,
                figures.join(" ")
            );
        }
    }
}

/// Erlang's loss formula B(c, a), by the recurrence B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)).
fn erlang_b(servers: u32, offered: f64) -> f64 {
    (1..=servers).fold(1.0, |b, k| offered * b / (k as f64 + offered * b))
}

/// With max_wait = 0 a pool is an M/G/c/c loss system: the share of calls turned away is
/// Erlang B at the offered load a = λ × E[hold], whatever the hold-time distribution.
#[test]
fn with_no_wait_the_rejected_share_matches_erlangs_loss_formula() {
    let mut run = start(
        &[
            "isolation=bulkheads",
            "max_wait=0",
            "payments_threads=6",
            "payments_rate=40",
            "payments_latency=100",
            "recommendations_rate=0",
        ],
        12,
    );
    run.run_until(secs(6000.0));
    run.check_conservation().unwrap();
    let offered = 40.0 * (3.0 * HOP.as_secs_f64() + 0.100);
    let expected = erlang_b(6, offered);
    let measured = 1.0 - figure(run.as_ref(), "payments_ok_pct") / 100.0;
    assert!(
        (measured - expected).abs() / expected < 0.05,
        "rejected share {measured:.4} vs Erlang B {expected:.4}"
    );
}
