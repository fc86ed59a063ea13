//! The disaster-recovery lesson reproduces the AWS DR whitepaper's ordering (RTO: backup &
//! restore > pilot light > warm standby > multi-site; cost the other way round), builds
//! each RTO from its phases (detection, restore or promotion, provisioning, DNS TTL),
//! counts the writes lost exactly (those committed after the newest copied backup or
//! replicated point), keeps RPO within a backup interval plus the copy time or at the
//! replication lag, and lets multi-site lose requests only until DNS has moved.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::disaster_recovery::{
    self, monthly_cost, simulation, DisasterRecoveryModel, Strategy, DB_PROMOTION, SPEC, STRATEGIES,
};
use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn start(assignments: &[&str], seed: u64) -> Box<dyn LessonRun> {
    SPEC.start(&params(assignments), Seed(seed))
}

fn model(assignments: &[&str], seed: u64) -> Simulation<DisasterRecoveryModel> {
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

fn strategy(word: &str) -> String {
    format!("strategy={word}")
}

/// Default parameters, one strategy, run to the lesson's end.
fn default_run(word: &str, seed: u64) -> Box<dyn LessonRun> {
    let mut run = start(&[&strategy(word)], seed);
    run.run_until(SimTime::ZERO + SPEC.default_duration);
    run.check_conservation().unwrap();
    run
}

#[test]
fn rto_falls_and_cost_rises_in_the_whitepapers_order() {
    let runs: Vec<_> = STRATEGIES.iter().map(|word| default_run(word, 1)).collect();
    let rto: Vec<f64> = runs
        .iter()
        .map(|run| figure(run.as_ref(), "rto_s"))
        .collect();
    let cost: Vec<f64> = runs
        .iter()
        .map(|run| figure(run.as_ref(), "monthly_cost"))
        .collect();
    let errors: Vec<u64> = runs.iter().map(|run| run.summary().failed).collect();
    for pair in rto.windows(2) {
        assert!(pair[0] > pair[1], "RTO must fall: {rto:?}");
    }
    for pair in cost.windows(2) {
        assert!(pair[0] < pair[1], "cost must rise: {cost:?}");
    }
    for pair in errors.windows(2) {
        assert!(pair[0] > pair[1], "user errors must fall: {errors:?}");
    }
    // The whitepaper's orders of magnitude: hours, tens of minutes, minutes, near zero.
    assert!(rto[0] >= 3600.0, "backup & restore takes hours: {}", rto[0]);
    assert!((600.0..3600.0).contains(&rto[1]), "pilot light: {}", rto[1]);
    assert!((60.0..600.0).contains(&rto[2]), "warm standby: {}", rto[2]);
    assert!(rto[3] <= 120.0, "multi-site: {}", rto[3]);
    // Same seed, same arrivals in every row.
    let generated: Vec<u64> = runs.iter().map(|run| run.summary().generated).collect();
    assert!(generated.windows(2).all(|pair| pair[0] == pair[1]));
}

#[test]
fn rto_is_the_sum_of_its_phases() {
    let (detection, provisioning, restore, ttl): (f64, f64, f64, f64) =
        (90.0, 900.0, 5400.0, 120.0);
    let promotion = DB_PROMOTION.as_secs_f64();
    let expected = [
        // Restore and provisioning run in parallel, then DNS moves.
        (
            "backup-restore",
            detection + restore.max(provisioning) + ttl,
            detection + restore.max(provisioning) + ttl,
        ),
        (
            "pilot-light",
            detection + provisioning.max(promotion) + ttl,
            detection + provisioning.max(promotion) + ttl,
        ),
        // The standby serves as soon as the replica is promoted; scaling up continues.
        (
            "warm-standby",
            detection + promotion + ttl,
            detection + provisioning,
        ),
        ("multi-site", detection + ttl, detection + ttl),
    ];
    for (word, rto, full) in expected {
        let mut run = start(
            &[
                &strategy(word),
                "detection_time=90",
                "provisioning_time=900",
                "restore_time=5400",
                "dns_ttl=120",
            ],
            3,
        );
        run.run_until(secs(18_000.0));
        assert_eq!(figure(run.as_ref(), "rto_s"), rto, "{word} RTO");
        assert_eq!(
            figure(run.as_ref(), "full_capacity_s"),
            full,
            "{word} full capacity"
        );
    }
}

/// (node key, state, seconds after the loss) of every state change, in order.
fn phases(run: &dyn LessonRun, lost_at: f64) -> Vec<(String, NodeState, f64)> {
    run.log()
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node, to } => Some((
                run.topology().node(node).key.clone(),
                to,
                entry.time.as_secs_f64() - lost_at,
            )),
            _ => None,
        })
        .collect()
}

/// A node key, the state it changes to, seconds after the loss.
type Phase = (&'static str, NodeState, f64);

#[test]
fn each_recovery_phase_is_a_state_change_on_the_timeline() {
    use NodeState::*;
    let lost_at = 8400.0;
    let owned = |list: &[(&str, NodeState, f64)]| -> Vec<(String, NodeState, f64)> {
        list.iter()
            .map(|&(key, state, at)| (key.to_owned(), state, at))
            .collect()
    };
    let lost = [("primary-app", Down, 0.0), ("primary-db", Down, 0.0)];
    let declared = ("health-check", Unhealthy, 60.0);
    let cases: [(&str, Vec<Phase>); 4] = [
        (
            "backup-restore",
            vec![
                declared,
                ("dr-db", Starting, 60.0),  // restoring from backup
                ("dr-app", Starting, 60.0), // launching the fleet
                ("dr-app", Healthy, 660.0),
                ("dr-db", Healthy, 7260.0),
                ("dns", Draining, 7260.0), // DNS switched
                ("dns", Healthy, 7320.0),  // serving again
            ],
        ),
        (
            "pilot-light",
            vec![
                declared,
                ("dr-db", Starting, 60.0), // promoting the replica
                ("dr-app", Starting, 60.0),
                ("dr-db", Healthy, 120.0),
                ("dr-app", Healthy, 660.0),
                ("dns", Draining, 660.0),
                ("dns", Healthy, 720.0),
            ],
        ),
        (
            "warm-standby",
            vec![
                declared,
                ("dr-db", Starting, 60.0),
                ("dr-app", Starting, 60.0), // scaling up while serving
                ("dr-db", Healthy, 120.0),
                ("dns", Draining, 120.0),
                ("dns", Healthy, 180.0),
                ("dr-app", Healthy, 660.0), // standby scaled up
            ],
        ),
        (
            "multi-site",
            vec![declared, ("dns", Draining, 60.0), ("dns", Healthy, 120.0)],
        ),
    ];
    for (word, after) in cases {
        let run = default_run(word, 2);
        let mut expected = owned(&lost);
        expected.extend(owned(&after));
        assert_eq!(phases(run.as_ref(), lost_at), expected, "{word}");
    }
}

/// Primary commits of an undisturbed run (same seed, no loss) at each time: identical to
/// the disturbed run's up to the loss, because the arrivals and routing are the same.
fn commits_without_loss(assignments: &[&str], seed: u64, times: &[f64]) -> Vec<u64> {
    let mut all = assignments.to_vec();
    all.push("scheduled_failure=off");
    let mut sim = model(&all, seed);
    times
        .iter()
        .map(|&t| {
            sim.run_until(secs(t));
            sim.model.primary_commits()
        })
        .collect()
}

#[test]
fn writes_lost_are_exactly_those_after_the_newest_replicated_point() {
    for (word, lag, seed, loss) in [
        ("pilot-light", 10.0, 1, 8400.0),
        ("warm-standby", 60.0, 2, 5000.5),
        ("warm-standby", 300.0, 3, 7777.0),
        ("multi-site", 120.0, 4, 6000.0),
        ("pilot-light", 0.0, 5, 4000.0),
    ] {
        let assignments = [
            strategy(word),
            format!("replication_lag={lag}"),
            format!("failure_time={loss}"),
        ];
        let assignments: Vec<&str> = assignments.iter().map(String::as_str).collect();
        let mut run = start(&assignments, seed);
        run.run_until(secs(loss + 1.0));
        let lost = figure(run.as_ref(), "writes_lost") as u64;
        let commits = commits_without_loss(&assignments, seed, &[loss - lag, loss]);
        assert_eq!(
            lost,
            commits[1] - commits[0],
            "{word} lag {lag} seed {seed}"
        );
        assert_eq!(figure(run.as_ref(), "rpo_s"), lag, "RPO is the lag");
        if lag >= 60.0 {
            assert!(lost > 0, "a long lag loses writes");
        }
        if lag == 0.0 {
            assert_eq!(lost, 0, "synchronous-like replication loses nothing");
        }
    }
}

#[test]
fn backup_and_restore_loses_the_writes_after_the_newest_copied_backup() {
    for (interval, copy, loss, seed) in [
        (3600.0, 600.0, 8400.0, 1),  // newest copied backup: 7200
        (3600.0, 600.0, 7500.0, 2),  // the 7200 backup is still copying: 3600
        (1800.0, 0.0, 9000.5, 3),    // taken and copied at once: 9000
        (7200.0, 1200.0, 5000.0, 4), // no backup yet: everything is lost
        (900.0, 1500.0, 10_000.0, 5),
    ] {
        let assignments = [
            "strategy=backup-restore".to_owned(),
            format!("backup_interval={interval}"),
            format!("backup_copy_time={copy}"),
            format!("failure_time={loss}"),
        ];
        let assignments: Vec<&str> = assignments.iter().map(String::as_str).collect();
        let mut run = start(&assignments, seed);
        run.run_until(secs(loss + 1.0));
        // The newest backup whose copy finished by the loss.
        let mut point = 0.0;
        let mut k = 1.0;
        while k * interval + copy <= loss {
            point = k * interval;
            k += 1.0;
        }
        let commits = commits_without_loss(&assignments, seed, &[point, loss]);
        let lost = figure(run.as_ref(), "writes_lost") as u64;
        assert_eq!(
            lost,
            commits[1] - commits[0],
            "interval {interval} loss {loss}"
        );
        let rpo = figure(run.as_ref(), "rpo_s");
        assert_eq!(rpo, loss - point);
        if point > 0.0 {
            assert!(rpo <= interval + copy, "RPO {rpo} within interval + copy");
        }
    }
}

#[test]
fn before_a_loss_the_rpo_figure_shows_the_current_exposure() {
    let mut run = start(&["strategy=backup-restore", "scheduled_failure=off"], 1);
    run.run_until(secs(7000.0));
    // Newest copied backup: taken at 3600 (copied at 4200).
    assert_eq!(figure(run.as_ref(), "rpo_s"), 3400.0);
    assert_eq!(figure(run.as_ref(), "writes_lost"), 0.0);
    assert_eq!(figure(run.as_ref(), "rto_s"), 0.0);
    let mut replicated = start(&["strategy=pilot-light", "scheduled_failure=off"], 1);
    replicated.run_until(secs(7000.0));
    assert_eq!(figure(replicated.as_ref(), "rpo_s"), 10.0);
}

#[test]
fn multi_site_loses_requests_only_until_dns_has_moved() {
    let (loss, detection, ttl) = (6000.0, 60.0, 60.0);
    let mut run = start(&["strategy=multi-site", "failure_time=6000"], 7);
    run.run_until(secs(loss - 0.001));
    assert_eq!(run.summary().failed, 0, "no errors before the loss");
    run.run_until(secs(loss + detection + ttl + 0.5));
    let during = run.summary().failed;
    run.run_until(secs(18_000.0));
    assert_eq!(
        run.summary().failed,
        during,
        "no request fails once every cached answer expired"
    );
    // Half of 2 req/s goes to the lost region until detection, then a share falling
    // linearly to zero over the TTL: 0.5 × 2 × (60 + 30) = 90 expected, plus the few
    // requests in the region at the loss.
    assert!(
        (40..=160).contains(&during),
        "errors during the outage: {during}"
    );
    run.check_conservation().unwrap();
}

#[test]
fn a_small_warm_standby_serves_at_reduced_capacity_until_scaled_up() {
    let mut small = start(&["strategy=warm-standby", "standby_size=0.125"], 8);
    let mut full = start(&["strategy=warm-standby", "standby_size=1"], 8);
    let switched = 8400.0 + 60.0 + DB_PROMOTION.as_secs_f64() + 60.0;
    for run in [&mut small, &mut full] {
        run.run_until(secs(switched));
    }
    let (small_at_switch, full_at_switch) = (small.summary().failed, full.summary().failed);
    for run in [&mut small, &mut full] {
        run.run_until(secs(18_000.0));
    }
    // One instance for 2 req/s of 2 s requests: most requests time out until the fleet
    // is scaled up; a full-size standby loses nothing once DNS has moved.
    assert!(small.summary().failed - small_at_switch > 300);
    assert_eq!(full.summary().failed, full_at_switch);
    assert_eq!(
        figure(full.as_ref(), "full_capacity_s"),
        figure(full.as_ref(), "rto_s")
    );
    assert!(figure(small.as_ref(), "monthly_cost") < figure(full.as_ref(), "monthly_cost"));
}

#[test]
fn monthly_cost_follows_the_documented_unit_prices() {
    // Backups: 500 GB × $0.05; replica: $0.50/h × 730 h + 500 GB × $0.10; instances
    // $0.10/h × 730 h; changed data 0.5 writes/s × 4 kB × 730 h = 5.256 GB × $0.02.
    let transfer = 5.256 * 0.02;
    let cases = [
        (Strategy::BackupRestore, 25.0 + transfer),
        (Strategy::PilotLight, 365.0 + 50.0 + transfer),
        (Strategy::WarmStandby, 415.0 + 2.0 * 73.0 + transfer),
        (Strategy::MultiSite, 415.0 + 8.0 * 73.0 + transfer),
    ];
    for (strategy, expected) in cases {
        let cost = monthly_cost(strategy, 0.25, 0.5);
        assert!((cost - expected).abs() < 1e-9, "{strategy:?}: {cost}");
    }
    assert_eq!(disaster_recovery::standby_instances(0.25), 2);
    assert_eq!(disaster_recovery::standby_instances(0.0), 0);
}

#[test]
fn the_region_back_before_the_declaration_loses_nothing() {
    let mut run = start(
        &[
            "strategy=pilot-light",
            "scheduled_failure=off",
            "detection_time=600",
        ],
        9,
    );
    run.run_until(secs(3000.0));
    run.apply(&LessonCommand::Inject("lose-region".into()))
        .unwrap();
    assert!(figure(run.as_ref(), "writes_lost") > 0.0, "writes at risk");
    let refused = run.apply(&LessonCommand::Inject("lose-region".into()));
    assert!(matches!(refused, Err(CommandError::NotApplicable { .. })));
    run.run_until(secs(3300.0));
    run.apply(&LessonCommand::Inject("restore-region".into()))
        .unwrap();
    assert_eq!(figure(run.as_ref(), "writes_lost"), 0.0);
    assert_eq!(figure(run.as_ref(), "rto_s"), 300.0);
    let failed = run.summary().failed;
    run.run_until(secs(6000.0));
    assert_eq!(run.summary().failed, failed, "serving normally again");
    // No recovery ran: the declaration was called off.
    assert!(!run.log().entries().iter().any(|entry| matches!(
        entry.what,
        Notable::StateChanged {
            to: NodeState::Unhealthy,
            ..
        }
    )));
    run.check_conservation().unwrap();
}

#[test]
fn the_region_back_after_the_declaration_stays_fenced_while_dr_takes_over() {
    let mut run = start(&["strategy=warm-standby", "scheduled_failure=off"], 10);
    run.run_until(secs(3000.0));
    run.apply(&LessonCommand::Inject("lose-region".into()))
        .unwrap();
    run.run_until(secs(3100.0)); // declared at 3060
    run.apply(&LessonCommand::Inject("restore-region".into()))
        .unwrap();
    let mut snapshot = Default::default();
    run.snapshot_into(&mut snapshot, 100);
    let primary = run.topology().find("primary-app").unwrap();
    let state = snapshot
        .nodes
        .iter()
        .find(|n| n.node == primary)
        .unwrap()
        .state;
    assert_eq!(state, NodeState::Off, "fenced, not serving");
    let refused = run.apply(&LessonCommand::Inject("restore-region".into()));
    assert!(matches!(refused, Err(CommandError::NotApplicable { .. })));
    run.run_until(secs(9000.0));
    assert_eq!(figure(run.as_ref(), "rto_s"), 180.0, "failover completed");
    assert!(figure(run.as_ref(), "writes_lost") > 0.0);
    run.check_conservation().unwrap();
}

#[test]
fn requests_are_conserved_under_commands_on_several_seeds() {
    for word in STRATEGIES {
        for seed in 0..4 {
            let mut run = start(&[&strategy(word), "scheduled_failure=off"], seed);
            let script = [
                (1000.0, "lose-region"),
                (1030.0, "restore-region"),
                (2000.0, "lose-region"),
                (2500.0, "restore-region"),
                (2600.0, "lose-region"),
            ];
            for (at, id) in script {
                run.run_until(secs(at));
                run.check_conservation().unwrap();
                let _ = run.apply(&LessonCommand::Inject(id.into()));
                run.check_conservation().unwrap();
            }
            run.apply(&LessonCommand::SetParam {
                name: "write_rate".into(),
                value: ParamValue::Number(2.0),
            })
            .unwrap();
            run.run_until(secs(12_000.0));
            run.check_conservation()
                .unwrap_or_else(|e| panic!("{word} seed {seed}: {e}"));
            let s = run.summary();
            assert_eq!(
                s.generated,
                s.completed + s.failed + run.live_requests(),
                "{word}"
            );
        }
    }
}

#[test]
fn a_seeded_run_replays_identically() {
    let session = |seed: u64| {
        let mut run = start(&["strategy=warm-standby", "scheduled_failure=off"], seed);
        run.run_until(secs(2000.0));
        run.apply(&LessonCommand::Inject("lose-region".into()))
            .unwrap();
        run.run_until(secs(9000.0));
        let log: Vec<String> = run
            .log()
            .entries()
            .iter()
            .map(|entry| format!("{entry:?}"))
            .collect();
        (
            fingerprint(&run.summary()),
            log,
            format!("{:?}", run.extra_figures()),
        )
    };
    assert_eq!(session(11), session(11));
    assert_ne!(session(11).0, session(12).0);
}

#[test]
fn a_default_run_is_fast() {
    let started = std::time::Instant::now();
    let run = default_run("multi-site", 1);
    assert!(
        run.events_processed() < 400_000,
        "{}",
        run.events_processed()
    );
    // Generous for debug builds; a release build takes a few tens of milliseconds.
    assert!(started.elapsed().as_secs_f64() < 5.0);
}

#[test]
fn the_sweep_table_has_one_row_per_strategy_in_the_whitepapers_order() {
    use patterns_playground::lessons::sweep::sweep;
    let parameter = SPEC.sweep.expect("the lesson sweeps its strategies");
    let until = SimTime::ZERO + SPEC.default_duration;
    let rows = sweep(&SPEC, &SPEC.default_params(), parameter, Seed(1), until).unwrap();
    let options: Vec<&str> = rows.iter().map(|row| row.option).collect();
    assert_eq!(options, STRATEGIES);
    let value = |row: &patterns_playground::lessons::sweep::SweepRow, key: &str| {
        row.figures.iter().find(|f| f.key == key).unwrap().value
    };
    let rto: Vec<f64> = rows.iter().map(|row| value(row, "rto_s")).collect();
    assert_eq!(rto, [7320.0, 720.0, 180.0, 120.0]);
    for pair in rows.windows(2) {
        assert!(value(&pair[0], "monthly_cost") < value(&pair[1], "monthly_cost"));
        assert!(value(&pair[0], "writes_lost") >= value(&pair[1], "writes_lost"));
    }
}
