//! The master-worker lesson reproduces the MapReduce master's failure handling (Dean and
//! Ghemawat 2004, section 3.3): a crashed worker is noticed by its missing heartbeats,
//! between (missed − 1) and missed intervals after the crash, and its task is re-run on
//! another worker so every job still completes; while the master is down nothing moves
//! and new jobs are refused. Every task is accounted for and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::master_worker::{simulation, MasterWorkerModel, SPEC};
use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::time::SimTime;

fn secs(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

fn start(assignments: &[&str], seed: u64) -> Simulation<MasterWorkerModel> {
    let params = ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap();
    simulation(&params, Seed(seed))
}

fn figure(run: &dyn LessonRun, key: &str) -> f64 {
    run.extra_figures()
        .into_iter()
        .find(|figure| figure.key == key)
        .unwrap_or_else(|| panic!("no figure {key}"))
        .value
}

fn inject(sim: &mut Simulation<MasterWorkerModel>, id: &str) {
    sim.apply(&LessonCommand::Inject(id.into())).unwrap();
    sim.check_conservation().unwrap();
}

fn run_to(sim: &mut Simulation<MasterWorkerModel>, seconds: f64) {
    LessonRun::run_until(sim, secs(seconds));
    sim.check_conservation().unwrap();
}

#[test]
fn a_crash_is_noticed_within_the_heartbeat_window_and_its_task_re_runs() {
    for (heartbeat, missed) in [(1.0, 3), (2.0, 3), (0.5, 5), (5.0, 2)] {
        for crash in [25.0, 25.3, 26.9] {
            let h = format!("heartbeat={heartbeat}");
            let m = format!("missed_limit={missed}");
            let mut sim = start(&[&h, &m], 4);
            run_to(&mut sim, crash);
            inject(&mut sim, "kill-worker");
            run_to(&mut sim, 200.0);
            let detections = sim.model.detection_times();
            assert_eq!(detections.len(), 1);
            let took = detections[0].as_secs_f64();
            let (low, high) = ((missed - 1) as f64 * heartbeat, missed as f64 * heartbeat);
            assert!(
                took > low - 1e-9 && took <= high + 1e-9,
                "heartbeat {heartbeat} s, missed {missed}, crash at {crash}: noticed after {took} s"
            );
            assert_eq!(
                figure(&sim, "tasks_reassigned"),
                1.0,
                "the busy worker's task re-runs"
            );
            // Every job submitted long enough before the end has finished.
            for (submitted, remaining) in sim.model.jobs() {
                if submitted.as_secs_f64() < 160.0 {
                    assert_eq!(remaining, 0, "job at {submitted:?} finished");
                }
            }
        }
    }
}

#[test]
fn the_exact_detection_time_on_a_heartbeat_tick() {
    // Pings at whole seconds; a crash at 25 s misses those at 26, 27 and 28 s.
    let mut sim = start(&[], 1);
    run_to(&mut sim, 25.0);
    inject(&mut sim, "kill-worker");
    run_to(&mut sim, 60.0);
    assert_eq!(figure(&sim, "detection_s"), 3.0);
    assert!(figure(&sim, "work_lost_s") > 0.0);
}

#[test]
fn a_job_takes_about_its_work_divided_by_the_workers() {
    // 24 tasks × 2 s on 6 workers: at least 8 s of work per worker, plus the tail.
    let mut sim = start(&[], 2);
    run_to(&mut sim, 120.0);
    assert_eq!(figure(&sim, "jobs_done"), 6.0);
    let median = figure(&sim, "job_p50_s");
    assert!((7.0..=12.0).contains(&median), "median job {median} s");
    let mut fewer = start(&["workers=3"], 2);
    run_to(&mut fewer, 120.0);
    let slower = figure(&fewer, "job_p50_s");
    assert!(
        slower > 1.7 * median,
        "half the workers: {slower} s vs {median} s"
    );
}

#[test]
fn while_the_master_is_down_nothing_moves_and_new_jobs_are_refused() {
    let mut sim = start(&[], 3);
    run_to(&mut sim, 25.0);
    inject(&mut sim, "kill-master");
    let completed = sim.metrics().counters().completed;
    run_to(&mut sim, 55.0);
    assert_eq!(
        sim.metrics().counters().completed,
        completed,
        "no result reported"
    );
    assert_eq!(
        figure(&sim, "tasks_refused"),
        24.0,
        "the job at 40 s is refused"
    );
    assert!(matches!(
        sim.apply(&LessonCommand::Inject("kill-master".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    inject(&mut sim, "restore");
    run_to(&mut sim, 120.0);
    assert!(sim.metrics().counters().completed > completed);
    // The interrupted job (submitted at 20 s) finished after the restore.
    let jobs = sim.model.jobs();
    assert_eq!(jobs[1].1, 0);
    assert!(figure(&sim, "job_max_s") > 55.0 - 20.0);
}

#[test]
fn a_straggler_lengthens_every_job() {
    let mut healthy = start(&[], 5);
    run_to(&mut healthy, 120.0);
    let mut slowed = start(&[], 5);
    run_to(&mut slowed, 1.0);
    inject(&mut slowed, "slow-worker");
    run_to(&mut slowed, 120.0);
    assert!(figure(&slowed, "job_max_s") > figure(&healthy, "job_max_s") + 2.0);
    inject(&mut slowed, "restore");
    assert!(matches!(
        slowed.apply(&LessonCommand::Inject("restore".into())),
        Err(CommandError::NotApplicable { .. })
    ));
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let mut sim = start(&[], seed);
        run_to(&mut sim, 30.0);
        inject(&mut sim, "kill-worker");
        run_to(&mut sim, 90.0);
        (fingerprint(&sim.summary()), sim.extra_figures())
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7).0, run(8).0);
}
