//! The client-server vs peer-to-peer lesson reproduces Kurose and Ross's file-distribution
//! arithmetic (section 2.5): client-server takes N·F/u_s, growing in a straight line with
//! the number of clients; a swarm never beats max(F/u_s, N·F/(u_s + N·u)) and stays
//! close to it, so its aggregate throughput grows with the peers and the time per copy
//! falls. Once the server has sent every piece (rarest first with each piece handed out
//! once before any twice), the swarm finishes without it; clients of a dead server do
//! not. Every request is accounted for and a seed replays exactly.
#![cfg(not(target_arch = "wasm32"))]

use patterns_playground::lessons::params::{ParamValues, Seed};
use patterns_playground::lessons::peer_to_peer::{simulation, PeerToPeerModel, SPEC};
use patterns_playground::lessons::run::{fingerprint, CommandError, LessonCommand, LessonRun};
use patterns_playground::sim::scheduler::Simulation;
use patterns_playground::sim::snapshot::{NodeState, Snapshot};
use patterns_playground::sim::time::SimTime;

fn params(assignments: &[String]) -> ParamValues {
    ParamValues::from_assignments(SPEC.params, assignments.iter().map(String::as_str)).unwrap()
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

/// A run of `architecture` with `peers` clients and extra settings, to `until` seconds.
fn run(
    architecture: &str,
    peers: u32,
    extra: &[&str],
    seed: u64,
    until: f64,
) -> Simulation<PeerToPeerModel> {
    let mut assignments = vec![
        format!("architecture={architecture}"),
        format!("peers={peers}"),
    ];
    assignments.extend(extra.iter().map(|text| text.to_string()));
    let mut sim = simulation(&params(&assignments), Seed(seed));
    LessonRun::run_until(&mut sim, secs(until));
    sim.check_conservation().unwrap();
    sim
}

fn all_done(sim: &Simulation<PeerToPeerModel>) -> f64 {
    let times = sim.model.finish_times();
    assert!(
        times.iter().all(Option::is_some),
        "every client finished: {times:?}"
    );
    times
        .iter()
        .map(|time| time.unwrap().as_secs_f64())
        .fold(0.0, f64::max)
}

#[test]
fn client_server_takes_n_copies_over_the_server_upload() {
    // 40 MB at 8 MB/s per copy: N × 5 s, plus the last piece's network delay (40 ms).
    for peers in [2, 5, 10, 16] {
        let sim = run("client-server", peers, &[], 1, 400.0);
        let expected = peers as f64 * 40.0 / 8.0;
        assert!((sim.model.minimum_distribution_time() - expected).abs() < 1e-9);
        let done = all_done(&sim);
        assert!(
            done >= expected && done <= expected + 0.1,
            "{peers} clients: done at {done} s, N·F/u_s = {expected} s"
        );
        let uploaded = sim.model.pieces_uploaded();
        assert_eq!(
            uploaded[0],
            40 * peers as u64,
            "every piece from the server"
        );
        assert!(uploaded[1..].iter().all(|&count| count == 0));
    }
}

#[test]
fn a_swarm_never_beats_the_kurose_ross_bound_and_stays_near_it() {
    for peers in [2, 4, 8, 12, 16] {
        for seed in 1..=3 {
            let sim = run("peer-to-peer", peers, &[], seed, 400.0);
            let bound = sim.model.minimum_distribution_time();
            let n = peers as f64;
            assert!((bound - (40.0_f64 / 8.0).max(n * 40.0 / (8.0 + n * 2.0))).abs() < 1e-9);
            let done = all_done(&sim);
            assert!(
                done >= bound,
                "{peers} peers: {done} s beats the bound {bound} s"
            );
            assert!(
                done <= 1.5 * bound,
                "{peers} peers, seed {seed}: {done} s is far above the bound {bound} s"
            );
        }
    }
}

#[test]
fn swarm_throughput_grows_with_peers_and_the_time_per_copy_falls() {
    let mut previous_per_copy = f64::INFINITY;
    let mut throughputs = Vec::new();
    for peers in [2, 4, 8, 16] {
        let swarm = run("peer-to-peer", peers, &[], 2, 400.0);
        let server = run("client-server", peers, &[], 2, 400.0);
        let swarm_time = all_done(&swarm);
        let per_copy = swarm_time / peers as f64;
        assert!(
            per_copy < previous_per_copy,
            "time per copy falls as peers join: {per_copy} after {previous_per_copy}"
        );
        previous_per_copy = per_copy;
        throughputs.push(figure(&swarm, "throughput_mb_s"));
        // Client-server stays at the server's 8 MB/s whatever the crowd.
        let server_throughput = figure(&server, "throughput_mb_s");
        assert!(
            (7.5..=8.0).contains(&server_throughput),
            "{server_throughput}"
        );
        assert!(swarm_time <= all_done(&server));
    }
    assert!(
        throughputs[3] > 3.0 * throughputs[0],
        "16 peers deliver far more per second than 2: {throughputs:?}"
    );
    // With 16 peers the swarm is several times faster than the lone server.
    let ratio = all_done(&run("client-server", 16, &[], 2, 400.0))
        / all_done(&run("peer-to-peer", 16, &[], 2, 400.0));
    assert!(ratio > 3.0, "speed-up {ratio}");
}

#[test]
fn a_swarm_where_nobody_uploads_is_client_server() {
    let sim = run("peer-to-peer", 10, &["peer_upload=0"], 1, 400.0);
    let done = all_done(&sim);
    assert!((50.0..=50.5).contains(&done), "{done}");
    assert_eq!(figure(&sim, "server_share_pct"), 100.0);
}

#[test]
fn the_server_sends_every_piece_once_before_any_twice() {
    let mut sim = run("peer-to-peer", 10, &[], 3, 0.0);
    // 8 MB/s: 40 pieces take 5 s; by 5.5 s (plus latency) every piece is among the peers.
    LessonRun::run_until(&mut sim, secs(5.5));
    let copies = sim.model.copies_among_peers();
    assert!(copies.iter().all(|&count| count >= 1), "{copies:?}");
}

#[test]
fn the_swarm_survives_its_server_but_clients_of_a_dead_server_do_not() {
    for seed in 1..=4 {
        let mut swarm = run("peer-to-peer", 10, &[], seed, 8.0);
        let mut server = run("client-server", 10, &[], seed, 8.0);
        for sim in [&mut swarm, &mut server] {
            sim.apply(&LessonCommand::Inject("kill-server".into()))
                .unwrap();
            sim.check_conservation().unwrap();
            LessonRun::run_until(sim, secs(120.0));
            sim.check_conservation().unwrap();
        }
        assert_eq!(figure(&swarm, "peers_done"), 10.0, "seed {seed}");
        assert_eq!(figure(&server, "peers_done"), 0.0, "seed {seed}");
        // Client-server: exactly the requests queued at or in flight from the server fail,
        // then nothing moves.
        assert!(figure(&server, "pieces_lost") > 0.0);
        assert_eq!(server.live_requests(), 0);
        assert_eq!(
            server.metrics().counters().completed + server.metrics().counters().failed,
            server.metrics().counters().generated
        );
        // Restored, the server serves everyone again.
        server
            .apply(&LessonCommand::Inject("restore".into()))
            .unwrap();
        LessonRun::run_until(&mut server, secs(400.0));
        assert_eq!(figure(&server, "peers_done"), 10.0);
    }
}

#[test]
fn killing_the_busiest_peer_cuts_its_transfers_and_the_rest_finish() {
    let mut sim = run("peer-to-peer", 10, &[], 1, 10.0);
    let before: Vec<usize> = sim.model.copies_among_peers();
    sim.apply(&LessonCommand::Inject("kill-peer".into()))
        .unwrap();
    sim.check_conservation().unwrap();
    let mut snapshot = Snapshot::default();
    sim.snapshot_into(&mut snapshot, 10_000);
    let down: Vec<_> = snapshot
        .nodes
        .iter()
        .filter(|view| view.state == NodeState::Down)
        .collect();
    assert_eq!(down.len(), 1, "one peer is down");
    assert!(before.iter().sum::<usize>() > sim.model.copies_among_peers().iter().sum::<usize>());
    LessonRun::run_until(&mut sim, secs(200.0));
    assert_eq!(figure(&sim, "peers_done"), 9.0, "the other nine finish");
    assert!(matches!(
        sim.apply(&LessonCommand::Inject("kill-server".into())),
        Ok(())
    ));
    assert!(matches!(
        sim.apply(&LessonCommand::Inject("kill-server".into())),
        Err(CommandError::NotApplicable { .. })
    ));
}

#[test]
fn leaving_peers_drain_then_go_off_and_staying_peers_seed() {
    let sim = run("peer-to-peer", 10, &["when_done=leave"], 1, 200.0);
    all_done(&sim);
    let mut snapshot = Snapshot::default();
    sim.snapshot_into(&mut snapshot, 10_000);
    let off = snapshot
        .nodes
        .iter()
        .filter(|view| view.state == NodeState::Off)
        .count();
    assert_eq!(off, 10, "every peer left after finishing");
    let staying = run("peer-to-peer", 10, &[], 1, 200.0);
    let mut snapshot = Snapshot::default();
    staying.snapshot_into(&mut snapshot, 10_000);
    assert!(snapshot
        .nodes
        .iter()
        .all(|view| view.state == NodeState::Healthy));
}

#[test]
fn a_seed_replays_exactly() {
    let a = run("peer-to-peer", 12, &[], 9, 30.0);
    let b = run("peer-to-peer", 12, &[], 9, 30.0);
    assert_eq!(fingerprint(&a.summary()), fingerprint(&b.summary()));
    assert_eq!(a.extra_figures(), b.extra_figures());
    assert_eq!(a.model.finish_times(), b.model.finish_times());
}
