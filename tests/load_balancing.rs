//! The load-balancing lesson reproduces what Elastic Load Balancing target-group health
//! checks and routing algorithms imply, and Mitzenmacher's power-of-two result: a crashed
//! target leaves rotation exactly `unhealthy_threshold` probes after the crash and returns
//! `healthy_threshold` passed probes after the restore; a target out of rotation gets no
//! new requests; with every target unhealthy the load balancer fails open; least
//! outstanding routes around a slow server where round robin does not; two random choices
//! beat one on unequal servers; layer-4 balancing per connection skews the load; every
//! request is accounted for and a seeded run replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::load_balancing::{simulation, LoadBalancingModel, SPEC};
use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[&str]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap()
}

fn start(assignments: &[&str], seed: u64) -> Simulation<LoadBalancingModel> {
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

fn node_state(run: &dyn LessonRun, key: &str) -> NodeState {
    let id = run.topology().find(key).unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 0);
    snapshot.nodes.iter().find(|n| n.node == id).unwrap().state
}

/// Times `key` was logged entering `to`.
fn logged(run: &dyn LessonRun, key: &str, to: NodeState) -> Vec<SimTime> {
    let id = run.topology().find(key).unwrap();
    run.log()
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node, to: state } if node == id && state == to => {
                Some(entry.time)
            }
            _ => None,
        })
        .collect()
}

/// The first probe of `server` strictly after `t`.
fn next_probe(run: &Simulation<LoadBalancingModel>, server: usize, interval: f64, t: f64) -> f64 {
    let phase = run.model.probe_phase(server).as_secs_f64();
    let k = ((t - phase) / interval).floor() + 1.0;
    let probe = phase + k.max(0.0) * interval;
    assert!(probe > t && probe - interval <= t + 1e-9);
    probe
}

#[test]
fn detection_takes_exactly_the_unhealthy_threshold_of_probes_after_the_crash() {
    for (interval, threshold) in [(5.0, 2), (10.0, 3), (30.0, 2), (7.0, 5)] {
        for seed in 1..=4 {
            let set = [
                format!("check_interval={interval}"),
                format!("unhealthy_threshold={threshold}"),
            ];
            let set: Vec<&str> = set.iter().map(String::as_str).collect();
            let mut run = start(&set, seed);
            let kill_at = 61.3 + seed as f64;
            LessonRun::run_until(&mut run, secs(kill_at));
            inject(&mut run, "kill-server");
            assert_eq!(node_state(&run, "server-1"), NodeState::Down);
            assert!(run.model.in_rotation(0), "not detected yet");
            LessonRun::run_until(&mut run, secs(kill_at + interval * threshold as f64 + 1.0));
            assert!(!run.model.in_rotation(0));
            assert_eq!(node_state(&run, "target-1"), NodeState::Draining);
            let expected = next_probe(&run, 0, interval, kill_at)
                + (threshold - 1) as f64 * interval
                - kill_at;
            let detection = figure(&run, "detection_s");
            assert!(
                (detection - expected).abs() < 1e-5,
                "interval {interval} threshold {threshold} seed {seed}: {detection} vs {expected}"
            );
            // Between (T − 1) and T intervals, as the probe phase dictates.
            assert!(detection > (threshold - 1) as f64 * interval);
            assert!(detection <= threshold as f64 * interval);
            let out = logged(&run, "target-1", NodeState::Draining);
            assert_eq!(out.len(), 1);
            assert!((out[0].as_secs_f64() - kill_at - detection).abs() < 1e-5);
            run.check_conservation().unwrap();
        }
    }
}

#[test]
fn a_restored_server_returns_after_the_healthy_threshold_of_passed_probes() {
    for (interval, healthy) in [(5.0, 5), (10.0, 2), (20.0, 3)] {
        for seed in 1..=3 {
            let set = [
                format!("check_interval={interval}"),
                format!("healthy_threshold={healthy}"),
            ];
            let set: Vec<&str> = set.iter().map(String::as_str).collect();
            let mut run = start(&set, seed);
            LessonRun::run_until(&mut run, secs(30.0));
            inject(&mut run, "kill-server");
            let restore_at = 30.0 + 3.0 * interval + 0.7;
            LessonRun::run_until(&mut run, secs(restore_at));
            assert!(!run.model.in_rotation(0));
            inject(&mut run, "restore");
            assert_eq!(node_state(&run, "server-1"), NodeState::Healthy);
            // Up but not yet trusted: still out of rotation, gets nothing new.
            LessonRun::run_until(&mut run, secs(restore_at + (healthy - 1) as f64 * interval));
            assert!(!run.model.in_rotation(0));
            LessonRun::run_until(&mut run, secs(restore_at + (healthy + 1) as f64 * interval));
            assert!(run.model.in_rotation(0));
            // The probe's answer takes its 5 ms of work on an idle full-speed server.
            let expected =
                next_probe(&run, 0, interval, restore_at) + (healthy - 1) as f64 * interval + 0.005
                    - restore_at;
            let back = figure(&run, "return_s");
            assert!(
                (back - expected).abs() < 1e-5,
                "interval {interval} healthy {healthy} seed {seed}: {back} vs {expected}"
            );
            assert_eq!(logged(&run, "target-1", NodeState::Healthy).len(), 1);
            run.check_conservation().unwrap();
        }
    }
}

#[test]
fn a_target_out_of_rotation_gets_no_new_requests() {
    for algorithm in ["round-robin", "random", "least-outstanding", "power-of-two"] {
        let set = [format!("algorithm={algorithm}")];
        let mut run = start(&[set[0].as_str()], 7);
        LessonRun::run_until(&mut run, secs(40.0));
        inject(&mut run, "kill-server");
        LessonRun::run_until(&mut run, secs(55.0));
        assert!(!run.model.in_rotation(0));
        let routed = run.model.routed()[0];
        let others: Vec<u64> = run.model.routed()[1..].to_vec();
        inject(&mut run, "restore");
        // Restored at once, but its target needs five passed probes (at least 20 s).
        LessonRun::run_until(&mut run, secs(74.0));
        assert!(!run.model.in_rotation(0));
        assert_eq!(run.model.routed()[0], routed, "{algorithm}");
        for (now, before) in run.model.routed()[1..].iter().zip(&others) {
            assert!(now > before, "{algorithm}: the others take the traffic");
        }
        LessonRun::run_until(&mut run, secs(120.0));
        assert!(run.model.in_rotation(0));
        assert!(
            run.model.routed()[0] > routed,
            "{algorithm}: back in rotation"
        );
        assert_eq!(
            run.summary().failed as f64,
            figure(&run, "errors_during_detection")
        );
        run.check_conservation().unwrap();
    }
}

#[test]
fn with_every_check_failing_the_load_balancer_fails_open_and_keeps_serving() {
    let mut run = start(&[], 3);
    LessonRun::run_until(&mut run, secs(60.0));
    inject(&mut run, "fail-checks");
    // Every target fails two probes 5 s apart: within 10 s all are out.
    LessonRun::run_until(&mut run, secs(70.5));
    assert!(run.model.failing_open());
    assert_eq!(figure(&run, "targets_in_rotation"), 0.0);
    assert_eq!(node_state(&run, "lb"), NodeState::Unhealthy);
    for target in 1..=5 {
        assert_eq!(
            node_state(&run, &format!("target-{target}")),
            NodeState::Draining
        );
    }
    let fail_open_at = logged(&run, "lb", NodeState::Unhealthy);
    assert_eq!(fail_open_at.len(), 1);
    let before = run.model.routed();
    LessonRun::run_until(&mut run, secs(150.0));
    // Failing open: every target still gets requests, and they succeed.
    for (now, then) in run.model.routed().iter().zip(&before) {
        assert!(
            now - then > 500,
            "every target gets its share: {now} vs {then}"
        );
    }
    assert_eq!(run.summary().failed, 0);
    assert_eq!(run.summary().rejected, 0);
    inject(&mut run, "restore");
    LessonRun::run_until(&mut run, secs(180.0));
    assert!(!run.model.failing_open());
    assert_eq!(node_state(&run, "lb"), NodeState::Healthy);
    let back = logged(&run, "lb", NodeState::Healthy)[0];
    let open = (back - fail_open_at[0]).as_secs_f64();
    assert!((figure(&run, "fail_open_s") - open).abs() < 1e-6);
    // Back after the first target passes five probes: 20 to 25 s after the restore.
    assert!(
        back.as_secs_f64() > 170.0 && back.as_secs_f64() <= 175.1,
        "{back}"
    );
    run.check_conservation().unwrap();
}

#[test]
fn with_every_server_crashed_the_load_balancer_fails_open_and_everything_fails() {
    let mut run = start(&[], 5);
    LessonRun::run_until(&mut run, secs(30.0));
    for _ in 0..5 {
        inject(&mut run, "kill-server");
    }
    assert!(matches!(
        run.apply(&LessonCommand::Inject("kill-server".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    LessonRun::run_until(&mut run, secs(45.0));
    assert!(run.model.failing_open());
    let failed = run.summary().failed;
    LessonRun::run_until(&mut run, secs(60.0));
    assert!(run.summary().failed > failed + 900, "nothing can answer");
    run.check_conservation().unwrap();
}

fn p99(assignments: &[&str], seed: u64, injection: Option<(f64, &str)>) -> f64 {
    let mut run = start(assignments, seed);
    if let Some((at, id)) = injection {
        LessonRun::run_until(&mut run, secs(at));
        inject(&mut run, id);
    }
    LessonRun::run_until(&mut run, secs(300.0));
    run.check_conservation().unwrap();
    run.summary().latency_p99
}

#[test]
fn two_random_choices_beat_one_on_unequal_servers() {
    for seed in 1..=5 {
        let random = p99(&["algorithm=random"], seed, None);
        let two = p99(&["algorithm=power-of-two"], seed, None);
        assert!(
            two < random,
            "seed {seed}: power of two {two} vs random {random}"
        );
        // The gap widens with the load (Mitzenmacher: exponentially in the queue length).
        let random = p99(&["algorithm=random", "load=90"], seed, None);
        let two = p99(&["algorithm=power-of-two", "load=90"], seed, None);
        assert!(
            two < 0.75 * random,
            "seed {seed} at 90 req/s: {two} vs {random}"
        );
    }
}

#[test]
fn least_outstanding_routes_around_a_slow_server_and_round_robin_does_not() {
    for seed in 1..=5 {
        let rr = p99(
            &["algorithm=round-robin"],
            seed,
            Some((30.0, "slow-server")),
        );
        let lor = p99(
            &["algorithm=least-outstanding"],
            seed,
            Some((30.0, "slow-server")),
        );
        assert!(
            lor < 0.5 * rr,
            "seed {seed}: least outstanding {lor} vs round robin {rr}"
        );
        let p2c = p99(
            &["algorithm=power-of-two"],
            seed,
            Some((30.0, "slow-server")),
        );
        assert!(
            p2c < 0.5 * rr,
            "seed {seed}: power of two {p2c} vs round robin {rr}"
        );
    }
    // Round robin keeps sending the slow server its equal share until its checks time
    // out; least outstanding sends it fewer from the start.
    let mut rr = start(&["algorithm=round-robin", "speed_spread=0"], 1);
    let mut lor = start(&["algorithm=least-outstanding", "speed_spread=0"], 1);
    for run in [&mut rr, &mut lor] {
        LessonRun::run_until(run, secs(30.0));
        inject(run, "slow-server");
        LessonRun::run_until(run, secs(34.0));
    }
    assert_eq!(node_state(&rr, "server-1"), NodeState::Unhealthy);
    let share = |run: &Simulation<LoadBalancingModel>| {
        let routed = run.model.routed();
        routed[0] as f64 / routed.iter().sum::<u64>() as f64
    };
    assert!(share(&lor) < share(&rr));
    assert!(rr.model.outstanding()[0] > 3 * lor.model.outstanding()[0].max(1));
}

#[test]
fn least_outstanding_pours_requests_into_a_crashed_server_until_it_is_detected() {
    // A crashed server answers every request at once with an error, so it always has the
    // fewest outstanding: least outstanding sends it more than its share until the health
    // check takes it out.
    for seed in 1..=3 {
        let errors = |algorithm: &str| {
            let set = format!("algorithm={algorithm}");
            let mut run = start(&[set.as_str()], seed);
            LessonRun::run_until(&mut run, secs(60.0));
            inject(&mut run, "kill-server");
            LessonRun::run_until(&mut run, secs(120.0));
            figure(&run, "errors_during_detection")
        };
        let (rr, lor) = (errors("round-robin"), errors("least-outstanding"));
        assert!(lor > 1.5 * rr, "seed {seed}: {lor} vs {rr}");
    }
}

#[test]
fn round_robin_shares_are_equal_and_layer_4_skews_them() {
    let shares = |layer: &str| {
        let set = format!("layer={layer}");
        let mut run = start(&["speed_spread=0", set.as_str()], 2);
        LessonRun::run_until(&mut run, secs(300.0));
        (1..=5)
            .map(|i| figure(&run, &format!("share_server_{i}")))
            .collect::<Vec<f64>>()
    };
    let l7 = shares("layer-7");
    for share in &l7 {
        assert!((share - 20.0).abs() < 0.01, "{l7:?}");
    }
    let l4 = shares("layer-4");
    let max = l4.iter().cloned().fold(0.0, f64::max);
    let min = l4.iter().cloned().fold(100.0, f64::min);
    assert!(
        max > 26.0 && min < 14.0,
        "connections carry unequal load: {l4:?}"
    );
    assert!((l4.iter().sum::<f64>() - 100.0).abs() < 1e-6);
}

#[test]
fn speeds_fall_evenly_to_one_minus_the_spread() {
    let run = start(&["speed_spread=0.4", "servers=5"], 1);
    let speeds: Vec<f64> = (0..5).map(|i| run.model.speed(i)).collect();
    for (got, want) in speeds.iter().zip([1.0, 0.9, 0.8, 0.7, 0.6]) {
        assert!((got - want).abs() < 1e-12, "{speeds:?}");
    }
}

#[test]
fn injections_that_have_nothing_to_act_on_are_refused() {
    let mut run = start(&[], 1);
    assert!(matches!(
        run.apply(&LessonCommand::Inject("restore".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    inject(&mut run, "fail-checks");
    assert!(matches!(
        run.apply(&LessonCommand::Inject("fail-checks".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    for _ in 0..5 {
        inject(&mut run, "slow-server");
    }
    assert!(matches!(
        run.apply(&LessonCommand::Inject("slow-server".into())),
        Err(CommandError::NotApplicable { .. })
    ));
    assert!(matches!(
        run.apply(&LessonCommand::Inject("explode".into())),
        Err(CommandError::UnknownInjection { .. })
    ));
    inject(&mut run, "restore");
}

#[test]
fn conservation_and_replay_under_every_injection_and_live_change() {
    let script = |run: &mut Simulation<LoadBalancingModel>| {
        LessonRun::run_until(run, secs(20.0));
        inject(run, "slow-server");
        LessonRun::run_until(run, secs(40.0));
        inject(run, "kill-server");
        run.apply(&LessonCommand::SetParam {
            name: "algorithm".into(),
            value: ParamValue::Choice("power-of-two"),
        })
        .unwrap();
        LessonRun::run_until(run, secs(70.0));
        run.check_conservation().unwrap();
        inject(run, "fail-checks");
        run.apply(&LessonCommand::SetParam {
            name: "check_interval".into(),
            value: ParamValue::Number(12.0),
        })
        .unwrap();
        run.apply(&LessonCommand::SetParam {
            name: "load".into(),
            value: ParamValue::Number(150.0),
        })
        .unwrap();
        LessonRun::run_until(run, secs(130.0));
        run.check_conservation().unwrap();
        inject(run, "restore");
        LessonRun::run_until(run, secs(200.0));
        run.check_conservation().unwrap();
    };
    for seed in 1..=4 {
        for layer in ["layer=layer-7", "layer=layer-4"] {
            let mut a = start(&[layer, "servers=6"], seed);
            let mut b = start(&[layer, "servers=6"], seed);
            script(&mut a);
            script(&mut b);
            assert_eq!(fingerprint(&a.summary()), fingerprint(&b.summary()));
            assert_eq!(a.extra_figures(), b.extra_figures());
            assert_eq!(a.events_processed(), b.events_processed());
        }
    }
}
