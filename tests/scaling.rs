//! The scaling lesson: target tracking holds average CPU near its target once warm,
//! warm-up delays capacity (no instance serves before it is warm), the scale-in cooldown
//! stops flapping, scale up pays a downtime at every resize and stops at the top size
//! (latency grows beyond it), a fleet sized for the peak costs more than target tracking
//! for similar latency, and a rolling replacement from a new image loses no request while
//! patching in place does. Plus cost = instance-hours × price, replay and conservation.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::lessons::scaling::{
    simulation, Phase, ScalingModel, CLIENT_TIMEOUT, HEALTH_DETECT, SPEC, STRATEGIES,
};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::time::{SimDuration, SimTime};

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn model(assignments: &[&str], seed: u64) -> Simulation<ScalingModel> {
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

fn inject(run: &mut dyn LessonRun, id: &str) -> Result<(), CommandError> {
    run.apply(&LessonCommand::Inject(id.into()))
}

/// Runs `assignments` to `until`, applying `(time, injection)` on the way.
fn run_with(
    assignments: &[&str],
    seed: u64,
    injections: &[(f64, &str)],
    until: f64,
) -> Simulation<ScalingModel> {
    let mut sim = model(assignments, seed);
    for &(at, id) in injections {
        sim.run_until(secs(at));
        inject(&mut sim, id).unwrap_or_else(|e| panic!("{id} at {at}: {e}"));
        sim.check_conservation().unwrap();
    }
    sim.run_until(secs(until));
    sim.check_conservation().unwrap();
    sim
}

#[test]
fn target_tracking_keeps_cpu_near_the_target_on_a_steady_load() {
    for (seed, target) in [(1, 50.0), (2, 50.0), (3, 70.0)] {
        let target_arg = format!("target_cpu={target}");
        // The group starts at 2 instances, far too few: it scales out, then holds.
        let mut sim = run_with(
            &["peak_rate=30", "trough_rate=30", &target_arg],
            seed,
            &[],
            1200.0,
        );
        let failed_early = sim.summary().failed;
        sim.run_until(secs(5400.0));
        // After the first scale-out has warmed up (the group starts at 2 instances).
        let late: Vec<f64> = sim
            .model
            .cpu_samples()
            .iter()
            .filter(|(t, _)| *t >= secs(1200.0))
            .map(|(_, cpu)| cpu * 100.0)
            .collect();
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        assert!(
            mean <= target + 2.0 && mean >= target - 12.0,
            "seed {seed}: mean CPU {mean:.1}% for a {target}% target"
        );
        assert_eq!(sim.summary().failed, failed_early, "seed {seed}");
    }
}

#[test]
fn warm_up_delays_capacity_no_instance_serves_before_it_is_warm() {
    for warmup in [60.0, 180.0, 300.0] {
        let arg = format!("warmup={warmup}");
        let sim = run_with(&[&arg], 4, &[(1500.0, "flash-spike")], 3600.0);
        let launched: Vec<_> = sim
            .model
            .launches()
            .iter()
            .filter(|record| record.launched > SimTime::ZERO)
            .collect();
        assert!(launched.len() >= 5, "the group scaled out: {launched:?}");
        for record in launched {
            if let Some(warm) = record.warm {
                assert_eq!(warm - record.launched, SimDuration::from_secs_f64(warmup));
            }
            if let Some(first) = record.first_served {
                let warm = record.warm.expect("served, so warm");
                assert!(first >= warm, "served at {first} before warm at {warm}");
            }
        }
    }
    // A longer warm-up leaves the spike unserved for longer.
    let failed = |warmup: &str| {
        let arg = format!("warmup={warmup}");
        run_with(&[&arg], 4, &[(1500.0, "flash-spike")], 3600.0)
            .summary()
            .failed
    };
    let (quick, slow) = (failed("30"), failed("300"));
    assert!(
        quick * 2 < slow,
        "warm-up 30 s: {quick} failed, 300 s: {slow}"
    );
}

/// Times the group reversed direction: a scale-in followed by a scale-out.
fn reversals(sim: &Simulation<ScalingModel>) -> usize {
    sim.model
        .scale_actions()
        .windows(2)
        .filter(|pair| pair[0].1 < 0 && pair[1].1 > 0)
        .count()
}

#[test]
fn the_scale_in_cooldown_prevents_flapping() {
    let mut without = 0;
    let mut with = 0;
    for seed in 1..=3 {
        // 15 req/s = 3.0 busy vCPUs: at a 50% target, right at the 3/4 instance boundary.
        let steady = ["peak_rate=15", "trough_rate=15", "warmup=60"];
        let flap = run_with(
            &[&steady[..], &["scale_in_cooldown=0"]].concat(),
            seed,
            &[],
            14_400.0,
        );
        let calm = run_with(
            &[&steady[..], &["scale_in_cooldown=1200"]].concat(),
            seed,
            &[],
            14_400.0,
        );
        without += reversals(&flap);
        with += reversals(&calm);
        assert!(
            flap.model.scale_actions().len() > calm.model.scale_actions().len(),
            "seed {seed}: {} vs {} actions",
            flap.model.scale_actions().len(),
            calm.model.scale_actions().len()
        );
    }
    assert!(
        without >= 3 * with.max(1),
        "reversals: {without} without cooldown, {with} with"
    );
}

#[test]
fn scale_up_has_downtime_at_every_resize_and_stops_at_the_top_size() {
    let assignments = ["strategy=scale-up"];
    let sim = run_with(&assignments, 1, &[], 3600.0);
    let resizes = sim.model.resizes().to_vec();
    // large (2 vCPUs) -> xlarge -> 2xlarge -> 4xlarge, the default top.
    assert_eq!(resizes.len(), 3, "{resizes:?}");
    assert_eq!(figure(&sim, "largest_vcpus"), 16.0);
    assert_eq!(figure(&sim, "resize_downtime_s"), 270.0);
    let mut failed_in_downtime = 0;
    for (index, &start) in resizes.iter().enumerate() {
        let mut probe = model(&assignments, 1);
        probe.run_until(SimTime::from_ticks(start.ticks() - 1_000));
        let before = probe.summary().failed;
        assert_eq!(probe.model.slots()[0], (Phase::InService, index));
        probe.run_until(start + SimDuration::from_secs(89));
        assert_eq!(probe.model.slots()[0].0, Phase::Resizing);
        let during = probe.summary().failed - before;
        // Every arrival of the 90 s downtime fails (at least a few req/s).
        assert!(during > 300, "resize {index}: {during} failed");
        failed_in_downtime += during;
        probe.run_until(start + SimDuration::from_secs(91));
        assert_eq!(probe.model.slots()[0], (Phase::InService, index + 1));
    }
    // Every error of the day comes from the resizes.
    let total = sim.summary().failed;
    assert!(
        total >= failed_in_downtime && total < failed_in_downtime + 400,
        "{total} failed, {failed_in_downtime} during the downtimes"
    );
    // Past the top size only latency grows: a flash spike at the peak finds no bigger size.
    let spiked = run_with(&assignments, 1, &[(1700.0, "flash-spike")], 3600.0);
    assert_eq!(spiked.model.resizes().len(), 3);
    assert!(spiked.summary().latency_p99 > 1.5, "{:?}", spiked.summary());
    assert!(
        spiked.summary().failed > total + 1000,
        "{:?}",
        spiked.summary()
    );
    // A lower ceiling: the peak itself saturates the 2xlarge.
    let low = run_with(&["strategy=scale-up", "top_size=2xlarge"], 1, &[], 3600.0);
    assert_eq!(low.model.resizes().len(), 2);
    assert_eq!(figure(&low, "largest_vcpus"), 8.0);
    assert!(low.summary().latency_p99 > 3.0 * sim.summary().latency_p99);
}

#[test]
fn a_fleet_sized_for_the_peak_costs_more_than_target_tracking_at_similar_latency() {
    for seed in 1..=3 {
        let fixed = run_with(&["strategy=fixed"], seed, &[], 3600.0);
        let tracking = run_with(&["strategy=target-tracking"], seed, &[], 3600.0);
        let (a, b) = (fixed.summary(), tracking.summary());
        assert_eq!(a.failed + b.failed, 0);
        assert!(
            (b.latency_p99 / a.latency_p99 - 1.0).abs() < 0.25,
            "p99 {} vs {}",
            a.latency_p99,
            b.latency_p99
        );
        let (cost_fixed, cost_tracking) = (
            figure(&fixed, "cost_per_day"),
            figure(&tracking, "cost_per_day"),
        );
        assert!(
            cost_fixed > 1.3 * cost_tracking,
            "fixed ${cost_fixed:.2} vs target tracking ${cost_tracking:.2}"
        );
        // Fixed is exactly 8 large instances for the whole run.
        assert!((figure(&fixed, "cost") - 8.0 * 0.096).abs() < 1e-9);
        assert!((cost_fixed - 8.0 * 0.096 * 24.0).abs() < 1e-6);
    }
}

#[test]
fn rolling_replacement_loses_no_request_and_patching_in_place_does() {
    for strategy in ["fixed", "target-tracking"] {
        let strategy = format!("strategy={strategy}");
        let rolling = run_with(
            &[&strategy, "deploy_mode=rolling"],
            2,
            &[(1200.0, "deploy")],
            3600.0,
        );
        assert_eq!(rolling.summary().failed, 0, "{strategy}");
        let took = figure(&rolling, "deploy_s");
        assert!(took >= 180.0, "{strategy}: deploy took {took}");
        assert_eq!(figure(&rolling, "outdated_instances"), 0.0);
        // It surged above the fleet size while new instances warmed.
        assert!(figure(&rolling, "peak_instances") > 8.0);

        let in_place = run_with(
            &[&strategy, "deploy_mode=in-place"],
            2,
            &[(1200.0, "deploy")],
            3600.0,
        );
        let failed = in_place.summary().failed;
        assert!(failed > 100, "{strategy}: in place lost {failed}");
        assert_eq!(figure(&in_place, "failed_during_deploy"), failed as f64);
    }
    // One instance patched in place is a full outage for the patch time.
    let base = run_with(&["strategy=scale-up"], 2, &[], 3600.0)
        .summary()
        .failed;
    let rolled = run_with(&["strategy=scale-up"], 2, &[(1500.0, "deploy")], 3600.0);
    assert_eq!(rolled.summary().failed, base);
    let patched = run_with(
        &["strategy=scale-up", "deploy_mode=in-place"],
        2,
        &[(1500.0, "deploy")],
        3600.0,
    );
    assert!(patched.summary().failed > base + 3000);
}

#[test]
fn patching_in_place_leaves_the_image_old_so_later_instances_drift() {
    let mut sim = run_with(&["deploy_mode=in-place"], 3, &[(300.0, "deploy")], 1000.0);
    let mut drifted = false;
    for t in (1000..2400).step_by(60) {
        sim.run_until(secs(t as f64));
        drifted |= figure(&sim, "outdated_instances") > 0.0 && figure(&sim, "deploy_s") > 0.0;
    }
    assert!(drifted, "scale-out after the patch launched the old image");
    // With a rolling deploy the launch template names the new image: no drift.
    let mut rolled = run_with(&["deploy_mode=rolling"], 3, &[(300.0, "deploy")], 1000.0);
    for t in (1000..2400).step_by(60) {
        rolled.run_until(secs(t as f64));
        assert_eq!(figure(&rolled, "outdated_instances"), 0.0);
    }
}

#[test]
fn a_group_replaces_a_killed_instance_but_a_lone_pet_waits_for_restore() {
    let mut sim = model(&["strategy=fixed"], 5);
    sim.run_until(secs(1200.0));
    inject(&mut sim, "kill-instance").unwrap();
    let down = sim
        .model
        .slots()
        .iter()
        .position(|(phase, _)| *phase == (Phase::Killed { detected: false }))
        .expect("one instance killed");
    sim.run_until(secs(1200.0) + HEALTH_DETECT + SimDuration::from_secs(10));
    assert_eq!(
        sim.model.slots()[down].0,
        Phase::Warming,
        "replaced in its slot"
    );
    sim.run_until(secs(1600.0));
    assert_eq!(sim.model.slots()[down].0, Phase::InService);
    let failed = sim.summary().failed;
    // Requests it held and those sent to it before the health check noticed.
    assert!(failed > 10 && failed < 200, "{failed}");
    assert!(matches!(
        inject(&mut sim, "restore"),
        Err(CommandError::NotApplicable { .. })
    ));

    let mut pet = model(&["strategy=scale-up"], 5);
    pet.run_until(secs(1500.0));
    assert!(matches!(
        inject(&mut pet, "restore"),
        Err(CommandError::NotApplicable { .. })
    ));
    inject(&mut pet, "kill-instance").unwrap();
    let before = pet.summary().failed;
    pet.run_until(secs(1800.0));
    let generated = pet.summary().generated;
    // Nothing replaces it: every request of the five minutes fails.
    assert_eq!(pet.summary().completed, {
        let mut probe = model(&["strategy=scale-up"], 5);
        probe.run_until(secs(1500.0));
        inject(&mut probe, "kill-instance").unwrap();
        probe.summary().completed
    });
    assert!(pet.summary().failed - before > 5000, "{generated}");
    assert!(matches!(
        inject(&mut pet, "kill-instance"),
        Err(CommandError::NotApplicable { .. })
    ));
    inject(&mut pet, "restore").unwrap();
    pet.run_until(secs(1800.0 + 91.0));
    assert_eq!(pet.model.slots()[0].0, Phase::InService);
}

#[test]
fn injections_refuse_when_they_do_not_apply() {
    let mut sim = model(&[], 1);
    sim.run_until(secs(100.0));
    inject(&mut sim, "flash-spike").unwrap();
    assert!(matches!(
        inject(&mut sim, "flash-spike"),
        Err(CommandError::NotApplicable { .. })
    ));
    inject(&mut sim, "deploy").unwrap();
    assert!(matches!(
        inject(&mut sim, "deploy"),
        Err(CommandError::NotApplicable { .. })
    ));
    assert!(matches!(
        inject(&mut sim, "meteor"),
        Err(CommandError::UnknownInjection { .. })
    ));
}

#[test]
fn requests_are_conserved_and_runs_replay_exactly() {
    for strategy in STRATEGIES {
        for seed in 1..=3u64 {
            let arg = format!("strategy={strategy}");
            let injections = [
                (400.0, "deploy"),
                (900.0, "kill-instance"),
                (1300.0, "flash-spike"),
                (1500.0, "restore"),
            ];
            let run = |()| {
                let mut sim = model(&[&arg, "deploy_mode=in-place"], seed);
                for (at, id) in injections {
                    sim.run_until(secs(at));
                    let _ = inject(&mut sim, id);
                    sim.check_conservation().unwrap();
                }
                sim.run_until(secs(2400.0));
                sim.check_conservation().unwrap();
                // No request outlives its client's timeout.
                assert!(sim.live_requests() < 10_000);
                fingerprint(&sim.summary()) + &format!("{:?}", sim.extra_figures())
            };
            assert_eq!(run(()), run(()), "{strategy} seed {seed}");
        }
    }
    let a = run_with(&[], 1, &[], 600.0).summary();
    let b = run_with(&[], 2, &[], 600.0).summary();
    assert_ne!(a, b);
    assert!(CLIENT_TIMEOUT.as_secs_f64() == 10.0);
}
