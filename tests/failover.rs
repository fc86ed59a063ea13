//! The failover lesson reproduces what Route 53 health checks and DNS failover imply:
//! detection takes `threshold` probes after the failure (so between (threshold − 1) and
//! threshold intervals, exactly as the probe phase dictates); clients follow the new DNS
//! answer only once their cached answer's TTL has expired; recovery time grows with the
//! TTL and the threshold; active-active loses fewer requests than active-passive; a
//! survivor smaller than the whole load saturates and sheds; a cold standby adds its
//! start-up time; every request is accounted for and a seeded run replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::failover::{simulation, FailoverModel, SPEC};
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::{SimDuration, SimTime};

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn start(assignments: &[&str], seed: u64) -> Simulation<FailoverModel> {
    simulation(&params(assignments), Seed(seed))
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

/// Runs to `kill_at`, kills the primary, runs to `until`; returns the run.
fn killed(assignments: &[&str], seed: u64, kill_at: f64, until: f64) -> Simulation<FailoverModel> {
    let mut run = start(assignments, seed);
    LessonRun::run_until(&mut run, secs(kill_at));
    inject(&mut run, "kill-primary");
    LessonRun::run_until(&mut run, secs(until));
    run.check_conservation().unwrap();
    run
}

fn node_state(run: &dyn LessonRun, key: &str) -> NodeState {
    let id = run.topology().find(key).unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 0);
    snapshot.nodes.iter().find(|n| n.node == id).unwrap().state
}

/// First time `key` was logged entering `to`.
fn logged_state(run: &dyn LessonRun, key: &str, to: NodeState) -> Option<SimTime> {
    let id = run.topology().find(key).unwrap();
    run.log()
        .entries()
        .iter()
        .find_map(|entry| match entry.what {
            Notable::StateChanged { node, to: state } if node == id && state == to => {
                Some(entry.time)
            }
            _ => None,
        })
}

/// When the standby was first added to the DNS answer.
fn dns_added(run: &dyn LessonRun, key: &str) -> Option<SimTime> {
    let id = run.topology().find(key).unwrap();
    run.log()
        .entries()
        .iter()
        .find_map(|entry| match entry.what {
            Notable::NodeAdded { node } if node == id => Some(entry.time),
            _ => None,
        })
}

#[test]
fn detection_takes_threshold_probes_after_the_failure() {
    let kill = 100.0;
    for (interval, threshold) in [(10u64, 1i64), (10, 3), (30, 3), (10, 10), (30, 1)] {
        let interval_set = format!("check_interval={interval}");
        let threshold_set = format!("failure_threshold={threshold}");
        let run = killed(&[&interval_set, &threshold_set], 7, kill, 500.0);
        // The probe times are phase + k·interval; the first one after the kill starts the
        // streak, and the threshold-th consecutive failure marks the site unhealthy.
        let phase = run.model.probe_phase(0).ticks();
        let step = interval * 1_000_000;
        let kill_ticks = secs(kill).ticks();
        let first_after = phase + ((kill_ticks - phase) / step + 1) * step;
        let flagged = first_after + (threshold as u64 - 1) * step;
        let expected = (flagged - kill_ticks) as f64 / 1e6;
        let detection = figure(&run, "detection_s");
        assert_eq!(
            detection, expected,
            "interval {interval}, threshold {threshold}"
        );
        let i = interval as f64;
        let n = threshold as f64;
        assert!(detection > (n - 1.0) * i && detection <= n * i);
        assert_eq!(
            logged_state(&run, "check-primary", NodeState::Unhealthy),
            Some(SimTime::from_ticks(flagged))
        );
        // Warm standby: DNS answers the standby at the same instant.
        assert_eq!(
            dns_added(&run, "secondary"),
            Some(SimTime::from_ticks(flagged))
        );
    }
}

#[test]
fn the_primary_goes_down_and_traffic_moves_to_the_standby() {
    let run = killed(&[], 3, 120.0, 600.0);
    assert_eq!(node_state(&run, "primary"), NodeState::Down);
    assert_eq!(node_state(&run, "primary-1"), NodeState::Down);
    assert_eq!(node_state(&run, "check-primary"), NodeState::Unhealthy);
    assert_eq!(node_state(&run, "secondary"), NodeState::Healthy);
    assert_eq!(run.model.dns_answers(), [false, true]);
    assert!(run
        .model
        .client_caches()
        .iter()
        .all(|cache| cache.site == 1));
    let rto = figure(&run, "rto_s");
    let detection = figure(&run, "detection_s");
    // RTO = detection + the remaining TTL of the last cache naming the dead site.
    assert!(
        rto > detection && rto <= detection + 60.0 + 0.1,
        "{rto} {detection}"
    );
    assert!(
        rto > detection + 50.0,
        "the last stale cache was renewed just before: {rto}"
    );
    assert!(figure(&run, "requests_lost") > 0.0);
    assert_eq!(figure(&run, "stale_clients"), 0.0);
    // Served again at the end: the last minute completed everything it took.
    let summary = run.summary();
    assert!(summary.completed as f64 > 0.85 * summary.generated as f64);
}

#[test]
fn no_client_reaches_the_new_site_before_its_cached_answer_expires() {
    for (mode, ttl) in [
        ("active-passive", 60),
        ("active-passive", 300),
        ("active-active", 120),
    ] {
        let mode_set = format!("mode={mode}");
        let ttl_set = format!("dns_ttl={ttl}");
        let mut run = start(&[&mode_set, &ttl_set], 11);
        LessonRun::run_until(&mut run, secs(60.0));
        inject(&mut run, "kill-primary");
        // Step to the DNS change.
        while run.model.dns_answers()[0] {
            LessonRun::run_events(&mut run, 1);
        }
        let changed = LessonRun::now(&run);
        let caches = run.model.client_caches().to_vec();
        run.model.record_arrivals(true);
        LessonRun::run_until(&mut run, changed + SimDuration::from_secs(ttl + 30));
        let trace = run.model.arrivals_at_sites();
        let mut moved = 0;
        for (client, cache) in caches.iter().enumerate() {
            if cache.site != 0 || cache.expires <= changed {
                continue;
            }
            let arrivals: Vec<_> = trace
                .iter()
                .filter(|(_, c, _)| *c == client as u32)
                .collect();
            for (at, _, site) in &arrivals {
                if *site == 1 {
                    assert!(
                        *at >= cache.expires,
                        "{mode}: client {client} reached AZ-b at {at} before its cache expired at {}",
                        cache.expires
                    );
                }
                if *at < cache.expires {
                    assert_eq!(*site, 0, "{mode}: until expiry the client uses its cache");
                }
            }
            if arrivals.iter().any(|(_, _, site)| *site == 1) {
                moved += 1;
            }
        }
        assert!(
            moved > 10,
            "{mode}: clients do move once their caches expire ({moved})"
        );
        run.check_conservation().unwrap();
    }
}

#[test]
fn recovery_time_grows_with_the_ttl_and_with_the_threshold() {
    for mode in ["active-passive", "active-active"] {
        let mode_set = format!("mode={mode}");
        let mut previous = 0.0;
        for ttl in [0, 10, 30, 60, 120, 300] {
            let ttl_set = format!("dns_ttl={ttl}");
            let run = killed(&[&mode_set, &ttl_set], 5, 100.0, 800.0);
            let rto = figure(&run, "rto_s");
            assert!(
                rto > previous,
                "{mode}: TTL {ttl} gives RTO {rto} after {previous}"
            );
            previous = rto;
        }
        let mut previous = 0.0;
        let mut lost_before = 0.0;
        for threshold in [1, 2, 3, 5, 10] {
            let threshold_set = format!("failure_threshold={threshold}");
            let run = killed(&[&mode_set, &threshold_set], 5, 100.0, 800.0);
            let rto = figure(&run, "rto_s");
            assert!(
                rto > previous,
                "{mode}: threshold {threshold} gives {rto} after {previous}"
            );
            let lost = figure(&run, "requests_lost");
            assert!(
                lost > lost_before,
                "{mode}: more loss with a slower verdict"
            );
            previous = rto;
            lost_before = lost;
        }
    }
    // TTL 0: clients ask DNS every time, so recovery is the detection itself.
    let run = killed(&["dns_ttl=0"], 5, 100.0, 400.0);
    assert!((figure(&run, "rto_s") - figure(&run, "detection_s")).abs() < 0.1);
}

#[test]
fn active_active_loses_fewer_requests_than_active_passive() {
    for seed in 1..=5 {
        let passive = killed(&["mode=active-passive"], seed, 150.0, 600.0);
        let active = killed(&["mode=active-active"], seed, 150.0, 600.0);
        assert_eq!(
            passive.summary().generated,
            active.summary().generated,
            "same arrivals"
        );
        let (lost_p, lost_a) = (
            figure(&passive, "requests_lost"),
            figure(&active, "requests_lost"),
        );
        // Only the clients that were on AZ-a (about half) are hit in active-active.
        assert!(
            lost_a < 0.75 * lost_p && lost_a > 0.25 * lost_p,
            "seed {seed}: active-active lost {lost_a}, active-passive {lost_p}"
        );
        assert_eq!(
            active.summary().rejected,
            0,
            "the survivor has room for everyone"
        );
    }
}

#[test]
fn a_survivor_smaller_than_the_load_saturates_and_sheds() {
    // 2 servers × 20 req/s = 40 req/s per site; 60 req/s in total fits two sites only.
    let mut run = start(&["mode=active-active", "load=60"], 9);
    LessonRun::run_until(&mut run, secs(120.0));
    let before = run.summary();
    assert_eq!(before.rejected, 0, "two sites carry 60 req/s at 75% each");
    assert!((figure(&run, "load_ratio") - 0.75).abs() < 1e-9);
    inject(&mut run, "kill-primary");
    LessonRun::run_until(&mut run, secs(600.0));
    run.check_conservation().unwrap();
    let after = run.summary();
    assert!((figure(&run, "load_ratio") - 1.5).abs() < 1e-9);
    // The survivor serves at most its capacity and sheds the rest once its queue is full.
    let shed = after.rejected as f64;
    assert!(shed > 0.2 * 60.0 * 300.0, "shed {shed}");
    assert!(after.latency_p99 > 3.0, "queueing delay grows: {after:?}");
    let mut snapshot = Snapshot::default();
    LessonRun::snapshot_into(&run, &mut snapshot, 0);
    let survivor = LessonRun::topology(&run).find("secondary-queue").unwrap();
    let queued = snapshot
        .nodes
        .iter()
        .find(|n| n.node == survivor)
        .unwrap()
        .queued;
    assert!(
        queued > 150,
        "the survivor's queue is near its limit of 200: {queued}"
    );
    // With enough capacity per site the same failure sheds nothing.
    let roomy = killed(
        &["mode=active-active", "load=60", "server_capacity=40"],
        9,
        120.0,
        600.0,
    );
    assert_eq!(roomy.summary().rejected, 0);
}

#[test]
fn a_cold_standby_adds_its_start_up_time() {
    let warm = killed(&["standby=warm"], 4, 100.0, 900.0);
    let cold = killed(&["standby=cold", "boot_time=120"], 4, 100.0, 900.0);
    assert_eq!(node_state(&cold, "secondary"), NodeState::Healthy);
    let detected = logged_state(&cold, "check-primary", NodeState::Unhealthy).unwrap();
    let starting = logged_state(&cold, "secondary-1", NodeState::Starting).unwrap();
    let ready = logged_state(&cold, "secondary-1", NodeState::Healthy).unwrap();
    assert_eq!(
        starting, detected,
        "the standby is started when the primary is declared unhealthy"
    );
    assert_eq!(ready - starting, SimDuration::from_secs(120));
    // DNS answers the standby only after its own check passes threshold probes.
    let added = dns_added(&cold, "secondary").unwrap();
    let healthy_check = logged_state(&cold, "check-secondary", NodeState::Healthy).unwrap();
    assert_eq!(added, healthy_check);
    let gap = (added - ready).as_secs_f64();
    assert!(gap > 20.0 && gap <= 30.0, "three probes 10 s apart: {gap}");
    let extra = figure(&cold, "rto_s") - figure(&warm, "rto_s");
    assert!(extra > 120.0 && extra < 160.0, "boot + re-check: {extra}");
    assert!(figure(&cold, "requests_lost") > 2.0 * figure(&warm, "requests_lost"));
}

#[test]
fn restoring_the_primary_fails_back_without_losses() {
    let mut run = killed(&["boot_time=30"], 6, 60.0, 300.0);
    let lost = figure(&run, "requests_lost");
    inject(&mut run, "restore-primary");
    assert_eq!(node_state(&run, "primary"), NodeState::Starting);
    LessonRun::run_until(&mut run, secs(700.0));
    run.check_conservation().unwrap();
    assert_eq!(node_state(&run, "primary"), NodeState::Healthy);
    assert_eq!(node_state(&run, "check-primary"), NodeState::Healthy);
    assert_eq!(
        run.model.dns_answers(),
        [true, false],
        "failover routing fails back"
    );
    assert!(run.model.client_caches().iter().all(|c| c.site == 0));
    assert_eq!(
        figure(&run, "requests_lost"),
        lost,
        "both sites serve during failback"
    );
    // Nothing left to restore now.
    assert!(matches!(
        run.apply(&LessonCommand::Inject("restore-primary".into())),
        Err(CommandError::NotApplicable { .. })
    ));
}

#[test]
fn one_crashed_server_keeps_the_site_healthy_two_fail_it_over() {
    let mut run = start(&[], 8);
    LessonRun::run_until(&mut run, secs(60.0));
    inject(&mut run, "kill-server");
    LessonRun::run_until(&mut run, secs(200.0));
    assert_eq!(node_state(&run, "primary-1"), NodeState::Down);
    assert_eq!(node_state(&run, "primary"), NodeState::Healthy);
    assert_eq!(run.model.dns_answers(), [true, false]);
    assert_eq!(
        figure(&run, "rto_s"),
        0.0,
        "no outage: the other server serves"
    );
    inject(&mut run, "kill-server");
    assert_eq!(node_state(&run, "primary"), NodeState::Unhealthy);
    LessonRun::run_until(&mut run, secs(500.0));
    assert_eq!(run.model.dns_answers(), [false, true]);
    assert!(figure(&run, "rto_s") > 0.0);
    run.check_conservation().unwrap();
}

#[test]
fn the_primary_cannot_die_twice() {
    let mut run = killed(&[], 2, 10.0, 20.0);
    assert!(matches!(
        run.apply(&LessonCommand::Inject("kill-primary".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    assert!(matches!(
        run.apply(&LessonCommand::Inject("unplug".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
}

#[test]
fn conservation_holds_over_seeds_and_commands() {
    let script = [
        "kill-server",
        "kill-primary",
        "restore-primary",
        "kill-server",
        "kill-primary",
    ];
    for seed in 0..6 {
        for mode in ["active-passive", "active-active"] {
            for standby in ["warm", "cold"] {
                let mut run = start(
                    &[
                        &format!("mode={mode}"),
                        &format!("standby={standby}"),
                        "load=80",
                    ],
                    seed,
                );
                for (index, id) in script.iter().enumerate() {
                    LessonRun::run_until(&mut run, secs(40.0 + 70.0 * index as f64));
                    let _ = run.apply(&LessonCommand::Inject((*id).into()));
                    run.check_conservation().unwrap();
                }
                LessonRun::run_until(&mut run, secs(500.0));
                run.check_conservation().unwrap();
            }
        }
    }
}

#[test]
fn a_seeded_run_replays_exactly() {
    let session = |seed: u64| {
        let mut run = start(&["mode=active-active", "dns_ttl=30"], seed);
        LessonRun::run_until(&mut run, secs(90.0));
        inject(&mut run, "kill-primary");
        LessonRun::run_until(&mut run, secs(300.0));
        inject(&mut run, "restore-primary");
        LessonRun::run_until(&mut run, secs(600.0));
        let figures: Vec<String> = run
            .extra_figures()
            .iter()
            .map(|f| format!("{}={}", f.key, f.value))
            .collect();
        let log: Vec<String> = run
            .log()
            .entries()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        (fingerprint(&run.summary()), figures, log)
    };
    assert_eq!(session(12), session(12));
    assert_ne!(session(12).0, session(13).0);
}

#[test]
fn a_default_run_is_quick() {
    let started = std::time::Instant::now();
    let run = killed(&[], 1, 120.0, 600.0);
    assert!(run.summary().generated > 15_000);
    assert!(started.elapsed().as_secs_f64() < 2.0);
}
