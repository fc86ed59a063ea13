//! Lesson `peer-to-peer`: one file, a flash crowd of clients that all want it, and two
//! ways to deliver it. In client-server every piece of every copy leaves the one server,
//! so the time to serve everyone grows with the number of clients and the server is a
//! single point of failure. In peer-to-peer (a BitTorrent-like swarm) every peer uploads
//! the pieces it already has to its neighbours, so upload capacity grows with the crowd.
//!
//! Sources: J. F. Kurose and K. W. Ross, "Computer Networking: A Top-Down Approach"
//! (8th ed., 2021), section 2.5 "Peer-to-Peer File Distribution": with file size F, server
//! upload u_s, peer uploads u_i and N peers, the minimum distribution time is
//! D_cs ≥ max(N·F/u_s, F/d_min) for client-server and
//! D_p2p ≥ max(F/u_s, F/d_min, N·F/(u_s + Σu_i)) for peer-to-peer; the first grows
//! linearly with N, the second is bounded. B. Cohen, "Incentives Build Robustness in
//! BitTorrent" (2003): files are cut into pieces, a peer uploads a piece as soon as it
//! has it, and asks for the rarest piece first (the piece fewest of its neighbours have),
//! so every piece soon exists outside the original seed and the swarm survives the
//! seed's departure.
//!
//! The model, in short (equations in docs/models/peer-to-peer.md):
//! - The file is `file_size` pieces of 1 MB. All `peers` clients want it at time zero.
//!   Download capacity is not a limit; each client keeps at most `parallel_downloads`
//!   piece requests outstanding.
//! - Every uploader (the server, and in peer-to-peer every peer) has upload slots
//!   (server 4, peer 2) that share its upload rate, so one piece takes
//!   slots / rate seconds to send; requests wait in FIFO order for a slot. A sent piece
//!   reaches the client one `latency` later. A request is one piece transfer: it is
//!   generated when asked for, completed when the piece arrives, failed when its
//!   uploader or its client dies.
//! - Client-server: clients ask the server for pieces in order. Peer-to-peer: peer i
//!   knows the server and its `connections` nearest peers on a ring (what a tracker
//!   would hand out); it asks for the rarest piece it lacks among those its live
//!   neighbours and the server have (ties at random), from the holder that would finish
//!   it soonest ((queued + sending + 1) / rate). Among equally rare pieces it prefers
//!   those the server has handed out least, so the server sends every piece once before
//!   any piece twice (what BitTorrent's super-seeding mode, BEP 16, achieves). In the
//!   swarm an uploader accepts at most `slots` waiting requests (peers serve a few
//!   others at a time); the lone server of client-server queues everyone.
//! - A finished peer keeps seeding (`when_done` = stay) or drains its queue and leaves.
//! - `kill-server`: the server stops; its queued and travelling pieces fail. `kill-peer`:
//!   the live peer holding the most pieces stops (its uploads and downloads fail).
//!   `restore`: every dead node comes back with the pieces it had.

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::metrics::GaugeId;
use crate::sim::random::SimRng;
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation};
use crate::sim::snapshot::{Figure, NodeState, NodeView, Notable, Snapshot};
use crate::sim::time::{SimDuration, SimTime};
use crate::sim::topology::{EdgeId, NodeId, NodeKind, Topology};

use super::core::ModelCore;
use super::params::{integer, number};
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "peer-to-peer",
    title: "Client-server vs peer-to-peer",
    group: LessonGroup::TrafficAndCompute,
    summary: "A flash crowd downloads one file: from a single server the wait grows with every client and the server is a single point of failure; in a swarm every peer uploads too.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(90),
    build,
    compare: Some("architecture"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "architecture",
        label: "Architecture",
        unit: "",
        help: "client-server: every client downloads every piece from the server; peer-to-peer: peers also upload the pieces they have to their neighbours.",
        kind: ParamKind::Choice {
            options: &["client-server", "peer-to-peer"],
            default: "client-server",
        },
        liveness: Liveness::Restart,
    },
    integer("peers", "Clients", "", "How many clients want the file at time zero (a flash crowd).", (2, 16, 10)).restart(),
    integer("file_size", "File size", "MB", "Size of the file, in 1 MB pieces.", (10, 200, 40)).restart(),
    number("server_upload", "Server upload", "MB/s", "The server's upload rate, shared by its 4 upload slots.", (1.0, 100.0, 1.0, 8.0)),
    number("peer_upload", "Peer upload", "MB/s", "Each peer's upload rate, shared by its 2 upload slots (peer-to-peer only; 0 makes peers pure downloaders).", (0.0, 20.0, 0.5, 2.0)),
    integer("connections", "Neighbours per peer", "", "How many other peers each peer exchanges pieces with (peer-to-peer only).", (2, 8, 4)).restart(),
    integer("parallel_downloads", "Parallel downloads", "pieces", "Piece requests a client keeps outstanding at once.", (1, 8, 4)),
    number("latency", "Network latency", "ms", "One-way delay between any two nodes.", (0.0, 300.0, 5.0, 40.0)),
    ParamSpec {
        name: "when_done",
        label: "A finished peer",
        unit: "",
        help: "stay: keeps uploading to others (seeding); leave: finishes the uploads it has queued, then goes away.",
        kind: ParamKind::Choice {
            options: &["stay", "leave"],
            default: "stay",
        },
        liveness: Liveness::Live,
    },
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "kill-server",
        label: "Kill the server",
        help: "The server stops: pieces it is sending or has queued are lost, and nobody can download from it until restored.",
    },
    InjectionSpec {
        id: "kill-peer",
        label: "Kill the busiest peer",
        help: "The live peer with the most pieces stops: its uploads and downloads are lost.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore",
        help: "Every stopped node comes back, with the pieces it had.",
    },
];

/// Upload slots of the server and of each peer.
pub const SERVER_SLOTS: u32 = 4;
pub const PEER_SLOTS: u32 = 2;
/// Size of one piece.
pub const PIECE_MB: f64 = 1.0;

/// Events. Transfers are named by slab slot and serial so an event for a transfer that
/// has failed (and whose slot was reused) is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The uploader has sent the last byte: its slot is free.
    Sent { slot: u32, serial: u32 },
    /// The piece reaches its client.
    Arrived { slot: u32, serial: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Queued,
    Sending,
    Flying,
}

struct Transfer {
    serial: u32,
    piece: usize,
    /// Uploader index: 0 is the server, 1 + i is peer i.
    from: usize,
    to: usize,
    key: RequestKey,
    stage: Stage,
}

struct Uploader {
    node: NodeId,
    /// Where its waiting requests are drawn (the server has a queue node; a peer's queue
    /// is counted, not drawn).
    queue_node: NodeId,
    slots: u32,
    sending: u32,
    queue: VecDeque<(u32, u32)>,
    alive: bool,
    /// No new requests (a finished peer that is leaving, or has left).
    leaving: bool,
    uploaded: u64,
}

struct Peer {
    have: Vec<bool>,
    pending: Vec<bool>,
    have_count: usize,
    outstanding: u32,
    /// Peers it exchanges pieces with (indices), in ring order.
    neighbours: Vec<usize>,
    done_at: Option<SimTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Architecture {
    ClientServer,
    PeerToPeer,
}

pub struct PeerToPeerModel {
    params: ParamValues,
    architecture: Architecture,
    pieces: usize,
    topology: Topology,
    /// Index 0 is the server, 1 + i is peer i.
    uploaders: Vec<Uploader>,
    peers: Vec<Peer>,
    /// Edge from uploader u to peer i at `u * peers + i`.
    edges: Vec<Option<EdgeId>>,
    transfers: Slab<Transfer>,
    next_serial: u32,
    /// Requests for each piece the server has accepted (and not lost).
    server_handed_out: Vec<u32>,
    choice_rng: SimRng,
    delivered: u64,
    lost: u64,
    core: ModelCore,
    gauge_server_queue: GaugeId,
    gauge_transfers: GaugeId,
    gauge_finished: GaugeId,
    gauge_uploading: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

/// Where peer `i` of `n` sits: on an ellipse around the server.
fn peer_position(i: usize, n: usize) -> (f32, f32) {
    let angle = std::f32::consts::TAU * i as f32 / n as f32 - std::f32::consts::FRAC_PI_2;
    (0.5 + 0.45 * angle.cos(), 0.5 + 0.47 * angle.sin())
}

/// The `connections` nearest peers of `i` on a ring of `n`: alternately after and before.
fn ring_neighbours(i: usize, n: usize, connections: usize) -> Vec<usize> {
    let mut neighbours = Vec::new();
    for step in 1..n {
        if neighbours.len() >= connections.min(n - 1) {
            break;
        }
        let offset = step.div_ceil(2);
        let j = if step % 2 == 1 {
            (i + offset) % n
        } else {
            (i + n - offset) % n
        };
        if j != i && !neighbours.contains(&j) {
            neighbours.push(j);
        }
    }
    neighbours.sort_unstable();
    neighbours
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<PeerToPeerModel> {
    let architecture = if params.choice("architecture") == "peer-to-peer" {
        Architecture::PeerToPeer
    } else {
        Architecture::ClientServer
    };
    let n = params.integer("peers") as usize;
    let pieces = params.integer("file_size") as usize;
    let mut topology = Topology::default();
    let server = topology.add_node("server", "Server", NodeKind::Server, 0.5, 0.4);
    let server_queue = topology.add_node(
        "server-queue",
        "Waiting for the server",
        NodeKind::Queue,
        0.5,
        0.6,
    );
    let mut uploaders = vec![Uploader {
        node: server,
        queue_node: server_queue,
        slots: SERVER_SLOTS,
        sending: 0,
        queue: VecDeque::new(),
        alive: true,
        leaving: false,
        uploaded: 0,
    }];
    let mut peers = Vec::with_capacity(n);
    for i in 0..n {
        let (x, y) = peer_position(i, n);
        let node = topology.add_node(
            &format!("peer-{}", i + 1),
            &format!("Peer {}", i + 1),
            NodeKind::Server,
            x,
            y,
        );
        uploaders.push(Uploader {
            node,
            queue_node: node,
            slots: PEER_SLOTS,
            sending: 0,
            queue: VecDeque::new(),
            alive: true,
            leaving: false,
            uploaded: 0,
        });
        let neighbours = match architecture {
            Architecture::ClientServer => Vec::new(),
            Architecture::PeerToPeer => {
                ring_neighbours(i, n, params.integer("connections") as usize)
            }
        };
        peers.push(Peer {
            have: vec![false; pieces],
            pending: vec![false; pieces],
            have_count: 0,
            outstanding: 0,
            neighbours,
            done_at: None,
        });
    }
    let mut edges = vec![None; (n + 1) * n];
    for i in 0..n {
        edges[i] = Some(topology.add_edge(server, uploaders[1 + i].node));
    }
    for i in 0..n {
        for &j in &peers[i].neighbours {
            edges[(1 + j) * n + i] =
                Some(topology.add_edge(uploaders[1 + j].node, uploaders[1 + i].node));
        }
    }
    let core = ModelCore::new(vec![
        "server_queue",
        "transfers_in_flight",
        "peers_finished",
        "peers_uploading",
    ]);
    let mut model = PeerToPeerModel {
        params: params.clone(),
        architecture,
        pieces,
        topology,
        uploaders,
        peers,
        edges,
        transfers: Slab::new(),
        next_serial: 0,
        server_handed_out: vec![0; pieces],
        choice_rng: SimRng::new(seed.0, "piece-choice"),
        delivered: 0,
        lost: 0,
        gauge_server_queue: core.gauge("server_queue"),
        gauge_transfers: core.gauge("transfers_in_flight"),
        gauge_finished: core.gauge("peers_finished"),
        gauge_uploading: core.gauge("peers_uploading"),
        core,
    };
    let mut scheduler = Scheduler::new();
    for i in 0..n {
        model.request_more(i, &mut scheduler);
    }
    model.update_gauges(SimTime::ZERO);
    Simulation::new(model, scheduler)
}

impl PeerToPeerModel {
    fn n(&self) -> usize {
        self.peers.len()
    }

    fn transfer(&self, slot: u32, serial: u32) -> Option<&Transfer> {
        self.transfers
            .get(slot as usize)
            .filter(|transfer| transfer.serial == serial)
    }

    fn rate(&self, uploader: usize) -> f64 {
        if uploader == 0 {
            self.params.number("server_upload")
        } else if self.architecture == Architecture::PeerToPeer {
            self.params.number("peer_upload")
        } else {
            0.0
        }
    }

    fn latency(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("latency") / 1000.0)
    }

    /// Can `uploader` take a new request for `piece` from peer `to`?
    fn can_serve(&self, uploader: usize, piece: usize) -> bool {
        let up = &self.uploaders[uploader];
        // In a swarm an uploader accepts only a few waiting requests (BitTorrent's peers
        // unchoke a few others at a time), so a client asks a neighbour that has room
        // instead of queueing far behind the server; a lone server queues everyone.
        let has_room =
            self.architecture == Architecture::ClientServer || up.queue.len() < up.slots as usize;
        up.alive
            && !up.leaving
            && has_room
            && self.rate(uploader) > 0.0
            && (uploader == 0 || self.peers[uploader - 1].have[piece])
    }

    /// Live holders peer `i` could ask for `piece`: the server and its neighbours.
    fn holders(&self, i: usize, piece: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(0)
            .chain(self.peers[i].neighbours.iter().map(|&j| j + 1))
            .filter(move |&u| self.can_serve(u, piece))
    }

    /// The piece peer `i` should ask for next, if any is available to it.
    fn choose_piece(&mut self, i: usize) -> Option<usize> {
        let wanted = |model: &Self, p: usize| !model.peers[i].have[p] && !model.peers[i].pending[p];
        match self.architecture {
            Architecture::ClientServer => {
                if !self.can_serve(0, 0) {
                    return None;
                }
                (0..self.pieces).find(|&p| wanted(self, p))
            }
            Architecture::PeerToPeer => {
                // Rarest first among the pieces its neighbourhood can give; the scan starts
                // at a random piece so ties are broken at random.
                // Among equally rare pieces, those the server has handed out least come
                // first: a seed sends every piece once before any piece twice.
                let start = self.choice_rng.below(self.pieces as u64) as usize;
                let mut best: Option<((usize, u32), usize)> = None;
                for k in 0..self.pieces {
                    let p = (start + k) % self.pieces;
                    if !wanted(self, p) {
                        continue;
                    }
                    let copies = self.holders(i, p).count();
                    let rarity = (copies, self.server_handed_out[p]);
                    if copies > 0 && best.is_none_or(|(fewest, _)| rarity < fewest) {
                        best = Some((rarity, p));
                    }
                }
                best.map(|(_, p)| p)
            }
        }
    }

    /// The holder that would finish a new request for `piece` soonest.
    fn choose_uploader(&mut self, i: usize, piece: usize) -> Option<usize> {
        let candidates: Vec<usize> = self.holders(i, piece).collect();
        if candidates.is_empty() {
            return None;
        }
        let start = self.choice_rng.below(candidates.len() as u64) as usize;
        let mut best: Option<(f64, usize)> = None;
        for k in 0..candidates.len() {
            let u = candidates[(start + k) % candidates.len()];
            let up = &self.uploaders[u];
            let finish = (up.queue.len() as f64 + up.sending as f64 + 1.0) / self.rate(u);
            if best.is_none_or(|(soonest, _)| finish < soonest) {
                best = Some((finish, u));
            }
        }
        best.map(|(_, u)| u)
    }

    /// Peer `i` asks for pieces until it has `parallel_downloads` outstanding or nothing
    /// it lacks is available.
    fn request_more(&mut self, i: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let limit = self.params.integer("parallel_downloads") as u32;
        while self.uploaders[1 + i].alive
            && self.peers[i].done_at.is_none()
            && self.peers[i].outstanding < limit
        {
            let Some(piece) = self.choose_piece(i) else {
                return;
            };
            let Some(from) = self.choose_uploader(i, piece) else {
                return;
            };
            self.core.metrics.generated(now);
            let key = self.core.requests.spawn(
                now,
                Place::Queued {
                    node: self.uploaders[from].queue_node,
                    since: now,
                },
            );
            let serial = self.next_serial;
            self.next_serial = self.next_serial.wrapping_add(1);
            let slot = self.transfers.insert(Transfer {
                serial,
                piece,
                from,
                to: i,
                key,
                stage: Stage::Queued,
            }) as u32;
            self.peers[i].pending[piece] = true;
            self.peers[i].outstanding += 1;
            if from == 0 {
                self.server_handed_out[piece] += 1;
            }
            self.uploaders[from].queue.push_back((slot, serial));
            self.start_sending(from, scheduler);
        }
    }

    /// Fills the uploader's free slots from its queue.
    fn start_sending(&mut self, from: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let rate = self.rate(from);
        let up = &self.uploaders[from];
        if !up.alive || rate <= 0.0 {
            return;
        }
        let send_time = SimDuration::from_secs_f64(PIECE_MB * up.slots as f64 / rate);
        let latency = self.latency();
        while self.uploaders[from].sending < self.uploaders[from].slots {
            let Some((slot, serial)) = self.uploaders[from].queue.pop_front() else {
                break;
            };
            let Some(transfer) = self.transfer(slot, serial) else {
                continue;
            };
            let (to, key) = (transfer.to, transfer.key);
            if let Place::Queued { since, .. } = self.core.requests.get(key).place {
                self.core.metrics.waited(now - since);
            }
            let edge =
                self.edges[from * self.n() + to].expect("uploaders only serve their neighbours");
            self.core.requests.move_to(
                key,
                Place::OnEdge {
                    edge,
                    depart: now,
                    arrive: now + send_time + latency,
                },
            );
            self.transfers[slot as usize].stage = Stage::Sending;
            self.uploaders[from].sending += 1;
            scheduler.schedule_in(send_time, Event::Sent { slot, serial });
            scheduler.schedule_in(send_time + latency, Event::Arrived { slot, serial });
        }
    }

    fn sent(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let Some(transfer) = self.transfer(slot, serial) else {
            return;
        };
        let from = transfer.from;
        self.transfers[slot as usize].stage = Stage::Flying;
        self.uploaders[from].sending -= 1;
        self.uploaders[from].uploaded += 1;
        self.start_sending(from, scheduler);
        self.maybe_leave(from, scheduler.now());
        // Room in its queue: clients that know this uploader may ask it now.
        if self.architecture == Architecture::PeerToPeer {
            let clients = if from == 0 {
                (0..self.n()).collect()
            } else {
                self.peers_knowing(from - 1)
            };
            for i in clients {
                self.request_more(i, scheduler);
            }
        }
    }

    fn arrived(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.transfer(slot, serial).is_none() {
            return;
        }
        let transfer = self.transfers.remove(slot as usize);
        let request = self.core.requests.finish(transfer.key);
        self.core.metrics.completed(now, now - request.born);
        self.delivered += 1;
        let i = transfer.to;
        let peer = &mut self.peers[i];
        peer.outstanding -= 1;
        peer.pending[transfer.piece] = false;
        if !peer.have[transfer.piece] {
            peer.have[transfer.piece] = true;
            peer.have_count += 1;
        }
        if peer.have_count == self.pieces && peer.done_at.is_none() {
            peer.done_at = Some(now);
            if self.params.choice("when_done") == "leave" {
                self.uploaders[1 + i].leaving = true;
                self.log_state(1 + i, NodeState::Draining, now);
                self.maybe_leave(1 + i, now);
            }
        }
        self.request_more(i, scheduler);
        // The new piece may be what a neighbour was waiting for.
        let neighbours = self.peers_knowing(i);
        for j in neighbours {
            self.request_more(j, scheduler);
        }
    }

    /// Peers that have `i` among their neighbours.
    fn peers_knowing(&self, i: usize) -> Vec<usize> {
        (0..self.n())
            .filter(|&j| self.peers[j].neighbours.contains(&i))
            .collect()
    }

    /// A leaving peer with nothing left to send goes away.
    fn maybe_leave(&mut self, u: usize, now: SimTime) {
        let up = &self.uploaders[u];
        if u > 0 && up.leaving && up.alive && up.sending == 0 && up.queue.is_empty() {
            self.uploaders[u].alive = false;
            self.log_state(u, NodeState::Off, now);
        }
    }

    fn log_state(&mut self, u: usize, to: NodeState, now: SimTime) {
        let node = self.uploaders[u].node;
        self.core.log.push(now, Notable::StateChanged { node, to });
    }

    fn node_state(&self, u: usize) -> NodeState {
        let up = &self.uploaders[u];
        match (up.alive, up.leaving) {
            (true, false) => NodeState::Healthy,
            (true, true) => NodeState::Draining,
            (false, true) => NodeState::Off,
            (false, false) => NodeState::Down,
        }
    }

    /// Stops uploader `u`: every transfer it sends or has queued, and (for a peer) every
    /// transfer to it, fails; clients that lost a request ask again elsewhere.
    fn kill(&mut self, u: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.uploaders[u].alive = false;
        self.uploaders[u].queue.clear();
        self.uploaders[u].sending = 0;
        self.log_state(u, NodeState::Down, now);
        let doomed: Vec<usize> = self
            .transfers
            .iter()
            .filter(|(_, t)| (t.from == u && t.stage != Stage::Flying) || (u > 0 && t.to == u - 1))
            .map(|(slot, _)| slot)
            .collect();
        let mut affected = Vec::new();
        for slot in doomed {
            let transfer = self.transfers.remove(slot);
            self.core.requests.finish(transfer.key);
            self.core.metrics.failed(now);
            self.lost += 1;
            if transfer.from == 0 && transfer.stage != Stage::Flying {
                self.server_handed_out[transfer.piece] -= 1;
            }
            let peer = &mut self.peers[transfer.to];
            peer.outstanding -= 1;
            peer.pending[transfer.piece] = false;
            let uploader = &mut self.uploaders[transfer.from];
            match transfer.stage {
                Stage::Sending if transfer.from != u => uploader.sending -= 1,
                Stage::Queued if transfer.from != u => uploader
                    .queue
                    .retain(|&(s, serial)| (s, serial) != (slot as u32, transfer.serial)),
                _ => {}
            }
            if !affected.contains(&transfer.from) {
                affected.push(transfer.from);
            }
            if !affected.contains(&(1 + transfer.to)) {
                affected.push(1 + transfer.to);
            }
        }
        // Slots freed at other uploaders go to their next requests; clients ask again.
        for &v in &affected {
            if v != u {
                self.start_sending(v, scheduler);
                self.maybe_leave(v, now);
            }
        }
        for i in 0..self.n() {
            self.request_more(i, scheduler);
        }
    }

    fn update_gauges(&mut self, now: SimTime) {
        let server_queue = self.uploaders[0].queue.len() as i64;
        let finished = self.peers.iter().filter(|p| p.done_at.is_some()).count() as i64;
        let uploading = self.uploaders[1..]
            .iter()
            .filter(|up| up.sending > 0)
            .count() as i64;
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_server_queue, now, server_queue);
        metrics.set_gauge(self.gauge_transfers, now, self.transfers.len() as i64);
        metrics.set_gauge(self.gauge_finished, now, finished);
        metrics.set_gauge(self.gauge_uploading, now, uploading);
    }

    /// Kurose and Ross's lower bound on the time to give every client the file, for the
    /// current parameters (download capacity unlimited).
    pub fn minimum_distribution_time(&self) -> f64 {
        let file = self.pieces as f64 * PIECE_MB;
        let n = self.n() as f64;
        let server = self.params.number("server_upload");
        match self.architecture {
            Architecture::ClientServer => n * file / server,
            Architecture::PeerToPeer => {
                let swarm = server + n * self.params.number("peer_upload");
                (file / server).max(n * file / swarm)
            }
        }
    }

    /// When each peer had the whole file (None while it is still downloading).
    pub fn finish_times(&self) -> Vec<Option<SimTime>> {
        self.peers.iter().map(|peer| peer.done_at).collect()
    }

    /// Pieces each uploader has sent (index 0 is the server).
    pub fn pieces_uploaded(&self) -> Vec<u64> {
        self.uploaders.iter().map(|up| up.uploaded).collect()
    }

    /// Copies of each piece among live peers (not counting the server).
    pub fn copies_among_peers(&self) -> Vec<usize> {
        (0..self.pieces)
            .map(|p| {
                (0..self.n())
                    .filter(|&i| self.uploaders[1 + i].alive && self.peers[i].have[p])
                    .count()
            })
            .collect()
    }
}

impl Model for PeerToPeerModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Sent { slot, serial } => self.sent(slot, serial, scheduler),
            Event::Arrived { slot, serial } => self.arrived(slot, serial, scheduler),
        }
        self.update_gauges(scheduler.now());
    }
}

impl LessonModel for PeerToPeerModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let server = &self.uploaders[0];
        snapshot.nodes.push(NodeView {
            node: server.node,
            state: self.node_state(0),
            busy: server.sending,
            capacity: server.slots,
            queued: server.queue.len() as u32,
        });
        snapshot.nodes.push(NodeView {
            queued: server.queue.len() as u32,
            ..NodeView::plain(server.queue_node)
        });
        for (i, peer) in self.peers.iter().enumerate() {
            // A peer's count shows its progress: pieces held out of the file's pieces.
            snapshot.nodes.push(NodeView {
                node: self.uploaders[1 + i].node,
                state: self.node_state(1 + i),
                busy: peer.have_count as u32,
                capacity: self.pieces as u32,
                queued: self.uploaders[1 + i].queue.len() as u32,
            });
        }
        // Pieces travel as tokens; requests waiting at a peer are counted, not drawn.
        let server_queue = server.queue_node;
        let drawn = |request: &&crate::sim::requests::Request| match request.place {
            Place::Queued { node, .. } => node == server_queue,
            _ => true,
        };
        snapshot.collect_tokens(self.core.requests.iter().filter(drawn), token_limit);
        // Not drawn, but counted with the tokens left out.
        let hidden = self.core.requests.iter().filter(|r| !drawn(r)).count();
        snapshot.tokens_omitted += hidden as u64;
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let finished: Vec<f64> = self
            .peers
            .iter()
            .filter_map(|peer| peer.done_at.map(SimTime::as_secs_f64))
            .collect();
        let all_done = finished.len() == self.n();
        let everyone = if all_done {
            finished.iter().copied().fold(0.0, f64::max)
        } else {
            now.as_secs_f64()
        };
        let mean = if finished.is_empty() {
            0.0
        } else {
            finished.iter().sum::<f64>() / finished.len() as f64
        };
        let from_server = self.uploaders[0].uploaded as f64;
        let sent: f64 = self.uploaders.iter().map(|up| up.uploaded as f64).sum();
        vec![
            Figure {
                key: "peers_done",
                label: "Clients with the whole file",
                value: finished.len() as f64,
                unit: "",
            },
            Figure {
                key: "all_done_s",
                label: if all_done {
                    "Time until every client had the file"
                } else {
                    "Time so far, still distributing"
                },
                value: everyone,
                unit: "s",
            },
            Figure {
                key: "mean_done_s",
                label: "Mean time to the whole file",
                value: mean,
                unit: "s",
            },
            Figure {
                key: "bound_s",
                label: "Fastest possible (Kurose-Ross bound)",
                value: self.minimum_distribution_time(),
                unit: "s",
            },
            Figure {
                key: "throughput_mb_s",
                label: "Delivered per second",
                value: if everyone > 0.0 {
                    self.delivered as f64 * PIECE_MB / everyone
                } else {
                    0.0
                },
                unit: "MB/s",
            },
            Figure {
                key: "server_share_pct",
                label: "Pieces sent by the server",
                value: if sent > 0.0 {
                    100.0 * from_server / sent
                } else {
                    0.0
                },
                unit: "%",
            },
            Figure {
                key: "pieces_lost",
                label: "Transfers cut by a failure",
                value: self.lost as f64,
                unit: "",
            },
        ]
    }

    fn apply(
        &mut self,
        command: &LessonCommand,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        let now = scheduler.now();
        match command {
            LessonCommand::Inject(id) => {
                let target = match id.as_str() {
                    "kill-server" if !self.uploaders[0].alive => {
                        return Err(CommandError::NotApplicable {
                            reason: "the server is already down".into(),
                        })
                    }
                    "kill-server" => Some(0),
                    "kill-peer" => {
                        let busiest = (0..self.n())
                            .filter(|&i| self.uploaders[1 + i].alive)
                            .max_by_key(|&i| (self.peers[i].have_count, std::cmp::Reverse(i)));
                        let Some(i) = busiest else {
                            return Err(CommandError::NotApplicable {
                                reason: "no peer is running".into(),
                            });
                        };
                        Some(1 + i)
                    }
                    "restore" => {
                        if !self.uploaders.iter().any(|up| !up.alive && !up.leaving) {
                            return Err(CommandError::NotApplicable {
                                reason: "nothing is down".into(),
                            });
                        }
                        None
                    }
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                };
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                match target {
                    Some(u) => self.kill(u, scheduler),
                    None => {
                        for u in 0..self.uploaders.len() {
                            if !self.uploaders[u].alive && !self.uploaders[u].leaving {
                                self.uploaders[u].alive = true;
                                self.log_state(u, NodeState::Healthy, now);
                            }
                        }
                        for i in 0..self.n() {
                            self.request_more(i, scheduler);
                        }
                    }
                }
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                if matches!(
                    spec.name,
                    "parallel_downloads" | "peer_upload" | "server_upload"
                ) {
                    // More room or a new uploader: ask again (queues already sending keep
                    // their speed until the next piece).
                    for u in 0..self.uploaders.len() {
                        self.start_sending(u, scheduler);
                    }
                    for i in 0..self.n() {
                        self.request_more(i, scheduler);
                    }
                }
            }
        }
        self.update_gauges(now);
        Ok(())
    }
}
