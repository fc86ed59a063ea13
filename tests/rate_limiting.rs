//! The rate limiting and load shedding lesson reproduces its sources: a token bucket
//! (rate r, burst b) admits at most b + r·t requests in any window of length t, exactly b
//! at once from full, and refills on exact integer ticks; per-client limits keep polite
//! clients served while a noisy client floods (and it gets 429s), where without limits
//! the flood times them out; at twice the server's capacity an unprotected server's
//! goodput collapses while shedding keeps it near capacity; requests are conserved and a
//! seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValue, ParamValues, Seed};
use patterns_playground::lessons::rate_limiting::{TokenBucket, SPEC, UNITS_PER_TOKEN};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::random::SimRng;
use patterns_playground::sim::requests::Place;
use patterns_playground::sim::snapshot::{NodeState, Notable, Snapshot};
use patterns_playground::sim::time::SimTime;

fn start(assignments: &[&str], seed: u64) -> Box<dyn LessonRun> {
    let params = ParamValues::from_assignments(SPEC.params, assignments.iter().copied()).unwrap();
    SPEC.start(&params, Seed(seed))
}

fn secs(seconds: f64) -> SimTime {
    SimTime::from_secs_f64(seconds)
}

fn ticks(ticks: u64) -> SimTime {
    SimTime::from_ticks(ticks)
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

// ---- The token bucket itself -------------------------------------------------------

#[test]
fn a_full_bucket_lets_exactly_burst_requests_through_at_one_instant() {
    for burst in [1u32, 5, 50, 1000] {
        let mut bucket = TokenBucket::new(10.0, burst, ticks(7));
        let admitted = (0..burst + 10)
            .filter(|_| bucket.try_take(ticks(7)))
            .count();
        assert_eq!(admitted, burst as usize, "burst {burst}");
        assert_eq!(bucket.tokens(ticks(7)), 0.0);
    }
}

#[test]
fn an_empty_bucket_refills_one_token_on_the_exact_tick() {
    // 25 tokens/s: one token every 40 000 µs exactly.
    let mut bucket = TokenBucket::new(25.0, 2, SimTime::ZERO);
    assert!(bucket.try_take(SimTime::ZERO));
    assert!(bucket.try_take(SimTime::ZERO));
    assert!(!bucket.try_take(SimTime::ZERO));
    assert_eq!(bucket.next_admission(SimTime::ZERO), Some(ticks(40_000)));
    assert!(!bucket.try_take(ticks(39_999)), "one tick early is refused");
    assert!(bucket.try_take(ticks(40_000)), "on the tick it is admitted");
    assert!(!bucket.try_take(ticks(40_000)));
    // Refill is never lost to rounding: 80 000 ticks later exactly two more tokens.
    assert!(bucket.try_take(ticks(120_000)));
    assert!(bucket.try_take(ticks(120_000)));
    assert!(!bucket.try_take(ticks(120_000)));

    // 3 tokens/s: 10⁹ units per token at 3 000 units per tick is 333 333⅓ ticks, so
    // the first token is whole at tick 333 334, and three tokens at exactly 1 s.
    let mut bucket = TokenBucket::new(3.0, 1, SimTime::ZERO);
    assert!(bucket.try_take(SimTime::ZERO));
    assert_eq!(bucket.next_admission(SimTime::ZERO), Some(ticks(333_334)));
    assert!(!bucket.try_take(ticks(333_333)));
    assert!(bucket.try_take(ticks(333_334)));
    let mut bucket = TokenBucket::new(3.0, 3, SimTime::ZERO);
    for _ in 0..3 {
        assert!(bucket.try_take(SimTime::ZERO));
    }
    assert_eq!(bucket.tokens(secs(1.0)), 3.0);
    // Never above the burst however long it waits.
    assert_eq!(bucket.tokens(secs(3600.0)), 3.0);
}

#[test]
fn dense_requests_get_exactly_burst_plus_rate_times_time() {
    // A request every 10 µs for one second (inclusive): 50 from the full bucket, then
    // one per 40 000 µs, the 25th exactly at 1 s.
    let mut bucket = TokenBucket::new(25.0, 50, SimTime::ZERO);
    let admitted = (0..=100_000u64)
        .filter(|step| bucket.try_take(ticks(step * 10)))
        .count();
    assert_eq!(admitted, 75);
}

#[test]
fn no_window_ever_admits_more_than_burst_plus_rate_times_length() {
    let mut rng = SimRng::new(11, "bucket-windows");
    for case in 0..20 {
        let rate = rng.uniform(0.5, 200.0);
        let burst = 1 + rng.below(60) as u32;
        let mut bucket = TokenBucket::new(rate, burst, SimTime::ZERO);
        let rate_milli = (rate * 1000.0 + 0.5) as u64;
        // Bursty requests: clumps of simultaneous ones and quiet gaps.
        let mut t = 0u64;
        let mut admitted = Vec::new();
        for _ in 0..3000 {
            if rng.chance(0.7) {
                t += rng.below(2 * UNITS_PER_TOKEN / rate_milli + 1);
            }
            if bucket.try_take(ticks(t)) {
                admitted.push(t);
            }
        }
        assert!(
            admitted.len() > burst as usize,
            "case {case}: too few admissions"
        );
        // For every pair i ≤ j, the window [a_i, a_j] holds j − i + 1 admissions:
        // (j − i + 1) tokens ≤ b + r·(a_j − a_i), compared exactly in bucket units.
        let mut tightest = i128::MAX;
        for i in 0..admitted.len() {
            for j in i..admitted.len() {
                let count = (j - i + 1) as i128 * UNITS_PER_TOKEN as i128;
                let bound = burst as i128 * UNITS_PER_TOKEN as i128
                    + rate_milli as i128 * (admitted[j] - admitted[i]) as i128;
                assert!(
                    count <= bound,
                    "case {case}: {} admissions in {} ticks exceed b + r·t",
                    j - i + 1,
                    admitted[j] - admitted[i]
                );
                tightest = tightest.min(bound - count);
            }
        }
        // The bound is reached (within one token), not merely respected.
        assert!(
            tightest < UNITS_PER_TOKEN as i128,
            "case {case}: slack {tightest}"
        );
    }
}

#[test]
fn the_noisy_clients_admissions_follow_its_bucket_in_the_running_model() {
    // Only the noisy client, flooding at 1000 req/s from t = 0: the limiter admits
    // b + r·t (50 + 25 × 100 = 2550 by t = 100 s), never more.
    let mut run = start(
        &[
            "polite_rate=0",
            "noisy_rate=100",
            "flood_factor=10",
            "flood_start=0",
            "flood_length=3600",
            "limit_rate=25",
            "limit_burst=50",
        ],
        3,
    );
    run.run_until(secs(100.0));
    run.check_conservation().unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, usize::MAX);
    let topology = run.topology();
    let limiter = topology.find("limiter").unwrap();
    let not_yet_at_limiter = snapshot
        .tokens
        .iter()
        .filter(|token| match token.place {
            Place::OnEdge { edge, .. } => topology.edge(edge).to == limiter,
            _ => false,
        })
        .count() as u64;
    let summary = run.summary();
    let throttled = figure(run.as_ref(), "noisy_429s") as u64;
    assert_eq!(figure(run.as_ref(), "polite_429s"), 0.0);
    let admitted = summary.generated - throttled - not_yet_at_limiter;
    // Requests are Poisson, so the bucket is sometimes empty for a moment before the
    // next request: a few tokens' worth of slack, never an excess.
    assert!(admitted <= 50 + 25 * 100, "admitted {admitted}");
    assert!(admitted >= 50 + 25 * 100 - 3, "admitted {admitted}");
}

// ---- The lesson's claims -------------------------------------------------------------

#[test]
fn per_client_limits_keep_polite_clients_served_through_the_noisy_flood() {
    for seed in [1, 2, 3] {
        let mut limited = start(&["rate_limit=per-client"], seed);
        let mut open = start(&["rate_limit=off"], seed);
        limited.run_until(secs(300.0));
        open.run_until(secs(300.0));
        limited.check_conservation().unwrap();
        open.check_conservation().unwrap();
        assert_eq!(
            limited.summary().generated,
            open.summary().generated,
            "same seed, same arrivals"
        );
        let polite_limited = figure(limited.as_ref(), "polite_ok_pct");
        let polite_open = figure(open.as_ref(), "polite_ok_pct");
        assert!(
            polite_limited > 99.5,
            "seed {seed}: {polite_limited}% with limits"
        );
        assert!(
            polite_open < 70.0,
            "seed {seed}: {polite_open}% without limits"
        );
        // The flood is answered with 429s, all of them to the noisy client.
        let noisy_429s = figure(limited.as_ref(), "noisy_429s");
        assert!(noisy_429s > 10_000.0, "seed {seed}: {noisy_429s}");
        assert_eq!(figure(limited.as_ref(), "polite_429s"), 0.0);
        assert_eq!(figure(open.as_ref(), "noisy_429s"), 0.0);
        // Without limits the server works for clients who already left.
        assert!(figure(open.as_ref(), "wasted_work") > 5000.0);
        assert_eq!(figure(limited.as_ref(), "wasted_work"), 0.0);
    }
}

/// Successful answers per second between `from` and `to` for a steady offered load
/// `load` × capacity with rate limits off.
fn goodput_at(load: f64, shedding: &str, seed: u64) -> (f64, f64) {
    // Three polite clients at 15 req/s each; the noisy client makes up the rest of the
    // load for the whole run.
    let capacity = 100.0;
    let noisy = ((load * capacity - 45.0) / 10.0).max(0.0);
    let polite = if load * capacity < 45.0 {
        load * capacity / 3.0
    } else {
        15.0
    };
    let noisy_rate = format!("noisy_rate={noisy}");
    let polite_rate = format!("polite_rate={polite}");
    let shedding = format!("shedding={shedding}");
    let mut run = start(
        &[
            "rate_limit=off",
            &shedding,
            &noisy_rate,
            &polite_rate,
            "flood_factor=10",
            "flood_start=0",
            "flood_length=3600",
        ],
        seed,
    );
    run.run_until(secs(60.0));
    let (good_before, offered_before) = (run.summary().completed, run.summary().generated);
    run.run_until(secs(240.0));
    run.check_conservation().unwrap();
    let summary = run.summary();
    (
        (summary.completed - good_before) as f64 / 180.0,
        (summary.generated - offered_before) as f64 / 180.0,
    )
}

#[test]
fn at_twice_capacity_goodput_collapses_without_shedding_and_holds_with_it() {
    for seed in [1, 5] {
        let (none, offered) = goodput_at(2.0, "none", seed);
        assert!((offered - 200.0).abs() < 5.0, "offered {offered}");
        assert!(
            none < 5.0,
            "seed {seed}: goodput without shedding {none} req/s"
        );
        for shedding in ["queue-length", "latency"] {
            let (goodput, _) = goodput_at(2.0, shedding, seed);
            assert!(
                goodput > 90.0,
                "seed {seed}: goodput with {shedding} shedding {goodput} req/s"
            );
        }
    }
}

#[test]
fn goodput_follows_offered_load_up_to_capacity_then_depends_on_shedding() {
    println!("offered ×capacity | goodput none | queue-length | latency (req/s, capacity 100)");
    for load in [0.5, 0.8, 1.2, 1.5, 2.0, 3.0] {
        let row: Vec<f64> = ["none", "queue-length", "latency"]
            .iter()
            .map(|shedding| goodput_at(load, shedding, 2).0)
            .collect();
        println!(
            "{load:>17} | {:>12.1} | {:>12.1} | {:>7.1}",
            row[0], row[1], row[2]
        );
        if load < 1.0 {
            // Below capacity everything offered is served, whatever the policy.
            for goodput in &row {
                assert!((goodput - load * 100.0).abs() < 0.05 * load * 100.0);
            }
        } else if load >= 1.5 {
            assert!(row[0] < 10.0, "load {load}: no shedding keeps {}", row[0]);
            assert!(row[1] > 90.0 && row[2] > 90.0, "load {load}: {row:?}");
        }
    }
}

#[test]
fn an_overloaded_server_without_shedding_turns_unhealthy_and_recovers_after_the_flood() {
    let mut run = start(&["rate_limit=off"], 4);
    run.run_until(secs(300.0));
    let server = run.topology().find("server").unwrap();
    let noisy = run.topology().find("noisy").unwrap();
    let changes: Vec<(f64, NodeState)> = run
        .log()
        .entries()
        .iter()
        .filter_map(|entry| match entry.what {
            Notable::StateChanged { node, to } if node == server => {
                Some((entry.time.as_secs_f64(), to))
            }
            _ => None,
        })
        .collect();
    assert!(
        changes.len() >= 2,
        "unhealthy during the flood, healthy after: {changes:?}"
    );
    assert_eq!(changes[0].1, NodeState::Unhealthy);
    assert!((60.0..70.0).contains(&changes[0].0), "{changes:?}");
    let last = changes.last().unwrap();
    assert_eq!(last.1, NodeState::Healthy);
    // After the flood (t = 180 s) the full queue of 1000 drains at capacity minus the
    // normal load, 100 − 60 = 40 req/s: about 25 s.
    assert!((195.0..215.0).contains(&last.0), "{changes:?}");
    // The noisy client's own flood is logged as its state.
    let flood_marks = run
        .log()
        .entries()
        .iter()
        .filter(|entry| matches!(entry.what, Notable::StateChanged { node, .. } if node == noisy))
        .count();
    assert_eq!(flood_marks, 2);
}

#[test]
fn injections_flood_and_calm_down_and_refuse_when_nothing_applies() {
    let mut run = start(&["flood_length=0"], 6);
    assert!(matches!(
        inject(run.as_mut(), "calm-down"),
        Err(CommandError::NotApplicable { .. })
    ));
    run.run_until(secs(20.0));
    assert_eq!(figure(run.as_ref(), "noisy_429s"), 0.0);
    inject(run.as_mut(), "noisy-flood").unwrap();
    assert!(matches!(
        inject(run.as_mut(), "noisy-flood"),
        Err(CommandError::NotApplicable { .. })
    ));
    run.run_until(secs(40.0));
    let during = figure(run.as_ref(), "noisy_429s");
    assert!(during > 1000.0, "429s during the flood: {during}");
    assert!(figure(run.as_ref(), "polite_ok_pct") > 99.5);
    inject(run.as_mut(), "calm-down").unwrap();
    run.run_until(secs(41.0));
    let calmed = figure(run.as_ref(), "noisy_429s");
    run.run_until(secs(80.0));
    assert!(
        figure(run.as_ref(), "noisy_429s") - calmed < 5.0,
        "calm again, hardly any 429s"
    );
    assert!(matches!(
        inject(run.as_mut(), "meteor"),
        Err(CommandError::UnknownInjection { .. })
    ));
    run.check_conservation().unwrap();
}

#[test]
fn a_surge_within_every_clients_limit_still_overloads_and_shedding_protects_goodput() {
    // No flood: the surge doubles everyone to 30 + 30 + 30 + 30 = 120 req/s, each client
    // under its 40 req/s limit, so the limiter lets it all through to a 100 req/s server.
    let run_with = |shedding: &str| {
        let shedding = format!("shedding={shedding}");
        let mut run = start(&["flood_length=0", &shedding], 8);
        run.run_until(secs(30.0));
        inject(run.as_mut(), "traffic-surge").unwrap();
        run.run_until(secs(90.0));
        run.check_conservation().unwrap();
        run
    };
    let none = run_with("none");
    let shed = run_with("queue-length");
    let throttled = figure(none.as_ref(), "noisy_429s") + figure(none.as_ref(), "polite_429s");
    assert!(throttled < 20.0, "within the limits: {throttled}");
    assert!(figure(none.as_ref(), "polite_ok_pct") < 80.0);
    assert!(figure(none.as_ref(), "goodput_pct") < 80.0);
    assert!(figure(shed.as_ref(), "goodput_pct") > 97.0);
    assert!(figure(shed.as_ref(), "shed") > 500.0);
    // The surge ends by itself after a minute.
    let mut none = none;
    let generated = none.summary().generated;
    none.run_until(secs(150.0));
    let rate_after = (none.summary().generated - generated) as f64 / 60.0;
    assert!(
        (50.0..70.0).contains(&rate_after),
        "back to 60 req/s: {rate_after}"
    );
}

#[test]
fn live_changes_apply_at_once() {
    let mut run = start(&["rate_limit=off", "flood_length=0"], 9);
    run.run_until(secs(10.0));
    let limiter = run.topology().find("limiter").unwrap();
    let mut snapshot = Snapshot::default();
    run.snapshot_into(&mut snapshot, 0);
    let state = |snapshot: &Snapshot| {
        snapshot
            .nodes
            .iter()
            .find(|view| view.node == limiter)
            .unwrap()
            .state
    };
    assert_eq!(state(&snapshot), NodeState::Off);
    run.apply(&LessonCommand::SetParam {
        name: "rate_limit".into(),
        value: ParamValue::Choice("per-client"),
    })
    .unwrap();
    run.snapshot_into(&mut snapshot, 0);
    assert_eq!(state(&snapshot), NodeState::Healthy);
    // A limit of 1 req/s with burst 1 throttles most of the 15 req/s clients at once.
    for (name, value) in [
        ("limit_rate", ParamValue::Number(1.0)),
        ("limit_burst", ParamValue::Integer(1)),
    ] {
        run.apply(&LessonCommand::SetParam {
            name: name.into(),
            value,
        })
        .unwrap();
    }
    run.run_until(secs(20.0));
    let throttled = figure(run.as_ref(), "noisy_429s") + figure(run.as_ref(), "polite_429s");
    // 60 req/s offered, 4 req/s allowed (plus the bursts left at the change).
    assert!((500.0..600.0).contains(&throttled), "{throttled}");
    run.check_conservation().unwrap();
}

// ---- Replay and conservation ---------------------------------------------------------

fn scripted(seed: u64) -> (String, String) {
    let mut run = start(&["shedding=latency", "flood_length=0"], seed);
    let mut t = 0.0;
    for (at, id) in [
        (15.0, "noisy-flood"),
        (40.0, "traffic-surge"),
        (70.0, "calm-down"),
        (75.0, "noisy-flood"),
    ] {
        while t < at {
            t += 0.7;
            run.run_until(secs(t));
            run.check_conservation().unwrap();
        }
        inject(run.as_mut(), id).unwrap();
    }
    run.run_until(secs(150.0));
    run.check_conservation().unwrap();
    (
        fingerprint(&run.summary()),
        format!("{:?} {:?}", run.extra_figures(), run.log().entries()),
    )
}

#[test]
fn a_seed_replays_identically_and_seeds_differ() {
    assert_eq!(scripted(21), scripted(21));
    assert_ne!(scripted(21).0, scripted(22).0);
}

#[test]
fn requests_are_conserved_under_every_option_and_overload() {
    for seed in 0..4 {
        for limits in ["per-client", "off"] {
            for shedding in ["none", "queue-length", "latency"] {
                let limits = format!("rate_limit={limits}");
                let shedding = format!("shedding={shedding}");
                let mut run = start(
                    &[
                        &limits,
                        &shedding,
                        "client_timeout=0.3",
                        "queue_capacity=200",
                    ],
                    seed,
                );
                let mut t = 0.0;
                while t < 200.0 {
                    t += 3.3;
                    run.run_until(secs(t));
                    run.check_conservation().unwrap();
                    if t > 100.0 && t < 104.0 {
                        inject(run.as_mut(), "traffic-surge").unwrap();
                    }
                }
                let summary = run.summary();
                assert!(summary.generated > 10_000);
                let decided =
                    summary.completed + summary.failed + summary.rejected + summary.dropped;
                assert_eq!(decided + run.live_requests(), summary.generated);
            }
        }
    }
}
