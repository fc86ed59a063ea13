//! The microservices lesson reproduces the trade its sources describe (Fowler and Lewis,
//! "Microservices"; Deutsch's fallacies of distributed computing): a leaking or slow
//! feature takes every page of the monolith down with it but only its own service in the
//! split version, while the split version pays exactly k × hop latency per page with k
//! calls between services and sees a partial failure with probability 1 − (1 − p)^k. Out of
//! memory crashes happen at exactly ⌈(limit − start) / leak⌉ leaking executions, and
//! never without the injection. Every request is accounted for and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::microservices::{
    simulation, MicroservicesModel, DOWN_TIME, FEATURES, HOPS, PAGES, SHARES, SPEC,
};
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::{SimDuration, SimTime};

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
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

/// Runs `assignments` on `seed`, injecting `(at, id)` in order, to `until`.
fn scenario(
    assignments: &[&str],
    seed: u64,
    injections: &[(f64, &str)],
    until: f64,
) -> Simulation<MicroservicesModel> {
    let mut run = simulation(&params(assignments), Seed(seed));
    for &(at, id) in injections {
        LessonRun::run_until(&mut run, secs(at));
        inject(&mut run, id);
        run.check_conservation().unwrap();
    }
    LessonRun::run_until(&mut run, secs(until));
    run.check_conservation().unwrap();
    run
}

const PAGE_FIGURES: [&str; 3] = [
    "catalog_success_pct",
    "cart_success_pct",
    "checkout_success_pct",
];

#[test]
fn a_memory_leak_takes_every_monolith_page_down_but_only_recommendations_in_microservices() {
    for seed in [1, 2, 3, 4] {
        let leak = [(30.0, "memory-leak")];
        let mono = scenario(&["architecture=monolith"], seed, &leak, 300.0);
        let micro = scenario(&["architecture=microservices"], seed, &leak, 300.0);
        assert!(
            figure(&mono, "oom_crashes") >= 6.0,
            "seed {seed}: the monolith crash-loops"
        );
        assert!(
            figure(&micro, "oom_crashes") >= 6.0,
            "seed {seed}: so do recommendations"
        );
        for key in PAGE_FIGURES {
            let (m, s) = (figure(&mono, key), figure(&micro, key));
            assert!(m < 90.0, "seed {seed}: monolith {key} = {m}%");
            assert!(s > 99.0, "seed {seed}: microservices {key} = {s}%");
            assert!(s - m > 10.0, "seed {seed}: {key} well apart: {m}% vs {s}%");
        }
        // The split version pays with degraded pages instead of failed ones.
        assert_eq!(figure(&mono, "degraded"), 0.0);
        assert!(figure(&micro, "recommendations_shown_pct") < 90.0);
        // Only recommendations processes ever crash in microservices.
        let model = &micro.model;
        let recs = model.processes_of(1);
        assert!(model
            .crashes()
            .iter()
            .all(|crash| recs.contains(&crash.instance)));
    }
}

#[test]
fn a_slow_path_saturates_the_shared_monolith_but_only_its_own_service() {
    for seed in [1, 2, 3] {
        let slow = [(30.0, "slow-path")];
        let mono = scenario(&["architecture=monolith"], seed, &slow, 300.0);
        let micro = scenario(
            &["architecture=microservices", "hop_failure_pct=0"],
            seed,
            &slow,
            300.0,
        );
        // Cart pages never touch recommendations, yet in the monolith they queue behind
        // the slow executions for threads and time out.
        assert!(figure(&mono, "cart_success_pct") < 90.0);
        assert!(figure(&mono, "checkout_success_pct") < 70.0);
        assert!(figure(&mono, "latency_p50_ms") > 1000.0);
        for key in PAGE_FIGURES {
            assert_eq!(figure(&micro, key), 100.0, "seed {seed}: {key}");
        }
        assert!(figure(&micro, "recommendations_shown_pct") < 30.0);
        // The catalog waits at most its 250 ms timeout for recommendations.
        assert!(figure(&micro, "latency_p99_ms") < 450.0);
        let saturated = |run: &Simulation<MicroservicesModel>, key: &str| {
            let node = run.topology().find(key).unwrap();
            run.log().entries().iter().any(|entry| {
                entry.what
                    == Notable::StateChanged {
                        node,
                        to: NodeState::Unhealthy,
                    }
            })
        };
        assert!(saturated(&mono, "monolith-1"));
        assert!(saturated(&micro, "recommendations"));
        for key in ["catalog", "cart", "checkout", "payments"] {
            assert!(!saturated(&micro, key), "seed {seed}: {key} stays healthy");
        }
    }
}

/// With nothing failing and no lost calls, a page with k calls between services takes
/// exactly k × hop latency longer than the same page (same CPU draws) in the monolith, so
/// the per-kind medians differ by k × hop and the means by the mean network time.
#[test]
fn microservices_pay_hops_times_hop_latency() {
    for (seed, hop) in [(1, 5.0), (2, 2.0), (3, 20.0)] {
        let hop_setting = format!("hop_latency={hop}");
        let mono = scenario(&["architecture=monolith"], seed, &[], 120.0);
        let micro = scenario(
            &[
                "architecture=microservices",
                "hop_failure_pct=0",
                hop_setting.as_str(),
            ],
            seed,
            &[],
            120.0,
        );
        for (kind, name) in PAGES.iter().enumerate() {
            let expected = HOPS[kind] as f64 * hop;
            let diff = (micro.model.page_p50(kind) - mono.model.page_p50(kind)) * 1000.0;
            // Latency histograms have ~1.6 % buckets: allow 2 % of a ~100 ms median.
            let tolerance = 2.0 + 0.02 * expected;
            assert!(
                (diff - expected).abs() < tolerance,
                "seed {seed}, hop {hop} ms, {name} page: p50 difference {diff:.2} ms, expected {expected}"
            );
        }
        let mean_hops: f64 = SHARES.iter().zip(HOPS).map(|(s, k)| s * k as f64).sum();
        let network = figure(&micro, "network_ms_mean");
        assert!(
            (network - mean_hops * hop).abs() < 0.05 * mean_hops * hop,
            "network {network} vs {}",
            mean_hops * hop
        );
        let sojourn = (micro.summary().sojourn_mean - mono.summary().sojourn_mean) * 1000.0;
        assert!(
            (sojourn - network).abs() < 0.2,
            "mean latency difference {sojourn} ms equals the mean network time {network} ms"
        );
        assert_eq!(figure(&mono, "network_ms_mean"), 0.0);
        assert_eq!(figure(&mono, "partial_failures"), 0.0);
        assert_eq!(figure(&micro, "partial_failures"), 0.0);
    }
}

/// P(partial failure) = Σ share_kind × (1 − (1 − p)^k); the observed share of pages with a
/// failed call must be within 4 binomial standard deviations.
#[test]
fn partial_failures_follow_one_minus_one_minus_p_to_the_k() {
    for (seed, pct) in [(1, 2.0), (2, 5.0), (3, 15.0)] {
        let setting = format!("hop_failure_pct={pct}");
        let run = scenario(
            &["architecture=microservices", setting.as_str()],
            seed,
            &[],
            300.0,
        );
        let p: f64 = pct / 100.0;
        let expected: f64 = SHARES
            .iter()
            .zip(HOPS)
            .map(|(share, k)| share * (1.0 - (1.0 - p).powi(k as i32)))
            .sum();
        let summary = run.summary();
        let ended = (summary.completed + summary.failed) as f64;
        let observed = figure(&run, "partial_failures") / ended;
        let sd = (expected * (1.0 - expected) / ended).sqrt();
        assert!(
            (observed - expected).abs() < 4.0 * sd,
            "p = {p}: observed {observed:.4}, expected {expected:.4} ± {:.4}",
            4.0 * sd
        );
        assert!(
            (figure(&run, "partial_failure_pct") / 100.0 - observed).abs() < 1e-12,
            "the figure is the same share"
        );
        // Lost recommendations only degrade; lost cart or payments calls fail checkouts:
        // checkout succeeds with probability (1 − p)^2.
        assert_eq!(figure(&run, "catalog_success_pct"), 100.0);
        let checkout = figure(&run, "checkout_success_pct") / 100.0;
        let want = (1.0 - p).powi(2);
        let n = ended * SHARES[2];
        assert!(
            (checkout - want).abs() < 4.0 * (want * (1.0 - want) / n).sqrt(),
            "checkout {checkout} vs {want}"
        );
    }
}

/// One process, leak injected at time zero: it crashes at exactly the leaking execution
/// that brings its memory to the limit, restarts with fresh memory, crashes again after
/// ⌈(limit − base) / leak⌉ executions, and is down for 2 s then starting for restart_time.
#[test]
fn an_oom_crash_happens_exactly_when_memory_reaches_the_limit() {
    for (architecture, leak, limit) in [
        ("monolith", 0.5, 512),
        ("microservices", 0.75, 256),
        ("monolith", 1.3, 1024),
    ] {
        let assignments = [
            format!("architecture={architecture}"),
            "instances=1".to_owned(),
            format!("leak_per_request={leak}"),
            format!("memory_limit={limit}"),
            "restart_time=10".to_owned(),
        ];
        let assignments: Vec<&str> = assignments.iter().map(String::as_str).collect();
        let mut run = simulation(&params(&assignments), Seed(9));
        let recs = run.model.processes_of(1)[0];
        let (start, limit_kb) = run.model.memory_kb(recs);
        inject(&mut run, "memory-leak");
        LessonRun::run_until(&mut run, secs(300.0));
        run.check_conservation().unwrap();
        let leak_kb = (leak * 1024.0_f64).round() as u64;
        let crashes = run.model.crashes().to_vec();
        assert!(crashes.len() >= 2, "{architecture}: {crashes:?}");
        assert_eq!(crashes[0].start_kb, start);
        for crash in &crashes {
            assert_eq!(crash.instance, recs);
            assert_eq!(
                crash.served,
                (limit_kb - crash.start_kb).div_ceil(leak_kb),
                "{architecture}: crash after exactly ⌈(limit − start) / leak⌉ leaking requests"
            );
            assert!(crash.start_kb + (crash.served - 1) * leak_kb < limit_kb);
        }
        assert_eq!(crashes[1].start_kb, limit_kb / 2, "a restart starts fresh");
        // Down for 2 s, then starting for restart_time, then healthy.
        let key = if architecture == "monolith" {
            "monolith-1"
        } else {
            "recommendations"
        };
        let node = run.topology().find(key).unwrap();
        let changes: Vec<(SimTime, NodeState)> = run
            .log()
            .entries()
            .iter()
            .filter_map(|entry| match entry.what {
                Notable::StateChanged { node: n, to } if n == node => Some((entry.time, to)),
                _ => None,
            })
            .collect();
        let first = crashes[0].at;
        let after: Vec<(SimTime, NodeState)> = changes
            .into_iter()
            .filter(|(t, _)| *t >= first)
            .take(3)
            .collect();
        assert_eq!(
            after,
            vec![
                (first, NodeState::Down),
                (first + DOWN_TIME, NodeState::Starting),
                (
                    first + DOWN_TIME + SimDuration::from_secs(10),
                    NodeState::Healthy
                ),
            ],
            "{architecture}"
        );
    }
}

#[test]
fn nothing_crashes_without_the_injection() {
    for seed in [1, 2, 3] {
        for architecture in ["monolith", "microservices"] {
            let setting = format!("architecture={architecture}");
            let before = simulation(&params(&[setting.as_str()]), Seed(seed));
            let count = FEATURES.len();
            let memory: Vec<_> = (0..count)
                .flat_map(|f| before.model.processes_of(f))
                .map(|i| before.model.memory_kb(i))
                .collect();
            // Even a slow path and heavy load crash nothing without the leak.
            let run = scenario(
                &[setting.as_str(), "arrival_rate=250"],
                seed,
                &[(20.0, "slow-path")],
                300.0,
            );
            assert_eq!(figure(&run, "oom_crashes"), 0.0);
            assert!(run.model.crashes().is_empty());
            let after: Vec<_> = (0..count)
                .flat_map(|f| run.model.processes_of(f))
                .map(|i| run.model.memory_kb(i))
                .collect();
            assert_eq!(memory, after, "memory never grows without the leak");
            assert!(!run.log().entries().iter().any(|entry| matches!(
                entry.what,
                Notable::StateChanged {
                    to: NodeState::Down | NodeState::Starting,
                    ..
                }
            )));
        }
    }
}

#[test]
fn the_fix_stops_the_crashes_and_the_slowness() {
    let run = scenario(
        &["architecture=monolith"],
        5,
        &[
            (10.0, "memory-leak"),
            (10.0, "slow-path"),
            (120.0, "restore"),
        ],
        300.0,
    );
    let crashes_by_fix = run
        .model
        .crashes()
        .iter()
        .filter(|crash| crash.at <= secs(120.0))
        .count();
    assert!(crashes_by_fix >= 1);
    assert_eq!(
        run.model.crashes().len(),
        crashes_by_fix,
        "no crash after the fix"
    );
    // Once restarted and drained, pages are fast again.
    let mut tail = simulation(&params(&["architecture=monolith"]), Seed(5));
    LessonRun::run_until(&mut tail, secs(10.0));
    inject(&mut tail, "slow-path");
    LessonRun::run_until(&mut tail, secs(60.0));
    inject(&mut tail, "restore");
    let failed_at_fix = tail.summary().failed;
    LessonRun::run_until(&mut tail, secs(90.0));
    let failed_soon = tail.summary().failed;
    LessonRun::run_until(&mut tail, secs(300.0));
    assert_eq!(
        tail.summary().failed,
        failed_soon,
        "after the backlog drains nothing fails"
    );
    assert!(failed_soon >= failed_at_fix);
}

#[test]
fn injections_that_do_not_apply_are_refused() {
    let mut run = simulation(&params(&[]), Seed(1));
    let refused = |run: &mut Simulation<MicroservicesModel>, id: &str| {
        matches!(
            run.apply(&LessonCommand::Inject(id.into())),
            Err(CommandError::NotApplicable { .. })
        )
    };
    assert!(refused(&mut run, "restore"));
    inject(&mut run, "memory-leak");
    assert!(refused(&mut run, "memory-leak"));
    inject(&mut run, "slow-path");
    assert!(refused(&mut run, "slow-path"));
    inject(&mut run, "restore");
    assert!(refused(&mut run, "restore"));
    assert!(matches!(
        run.apply(&LessonCommand::Inject("meteor".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
}

#[test]
fn requests_are_conserved_and_a_seed_replays_exactly() {
    for seed in [1, 2, 3, 4] {
        for architecture in ["monolith", "microservices"] {
            let setting = format!("architecture={architecture}");
            let run_once = || {
                let mut run = simulation(
                    &params(&[setting.as_str(), "hop_failure_pct=3", "leak_per_request=2"]),
                    Seed(seed),
                );
                let mut t = 0.0;
                for (at, id) in [
                    (15.0, "memory-leak"),
                    (40.0, "slow-path"),
                    (90.0, "restore"),
                ] {
                    while t < at {
                        t += 0.5;
                        LessonRun::run_until(&mut run, secs(t));
                        run.check_conservation().unwrap();
                    }
                    inject(&mut run, id);
                    run.check_conservation().unwrap();
                }
                LessonRun::run_until(&mut run, secs(200.0));
                run.check_conservation().unwrap();
                let figures: Vec<String> = run
                    .extra_figures()
                    .iter()
                    .map(|f| format!("{}={}", f.key, f.value))
                    .collect();
                (fingerprint(&run.summary()), figures)
            };
            assert_eq!(run_once(), run_once(), "seed {seed} {architecture}");
        }
    }
}
