//! Lesson `load-balancing`: load-balancing algorithms and health checks. A load balancer
//! spreads requests over 4 to 6 servers of unequal speed with round robin, random choice,
//! least outstanding requests or the power of two random choices; health checks probe each
//! target and take a failed one out of rotation after a run of failed checks, and put it
//! back after a run of passed ones. Kill a server, slow one down, or break every health
//! check to watch detection, routing around a slow server, and failing open.
//!
//! Semantics and sources:
//! - Elastic Load Balancing, Application Load Balancers guide, "Health checks for your
//!   target groups": the load balancer probes every registered target every
//!   `HealthCheckIntervalSeconds` (default 30 s, range 5–300); a probe that gets no answer
//!   within `HealthCheckTimeoutSeconds` (2–120, less than the interval) fails; a target is
//!   marked unhealthy after `UnhealthyThresholdCount` consecutive failures (default 2,
//!   2–10) and healthy again after `HealthyThresholdCount` consecutive successes (ALB
//!   default 5, 2–10). Unhealthy targets get no new requests; if every target is
//!   unhealthy the load balancer fails open and routes to all of them.
//! - Same guide, "Routing algorithm": `round_robin` (default) and
//!   `least_outstanding_requests` (the target with the fewest requests in flight from the
//!   load balancer); the Network Load Balancer (layer 4) picks a target per TCP/UDP flow
//!   by a flow hash and keeps the whole connection on it.
//! - M. Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", IEEE TPDS
//!   12(10), 2001: sampling two servers at random and taking the less loaded one cuts the
//!   maximum load from Θ(log n / log log n) to Θ(log log n) and, in the queueing version,
//!   the waiting time exponentially, compared with one random choice.
//!
//! The model (equations and definitions in docs/models/load-balancing.md):
//! - Requests arrive as a Poisson process at `load` req/s. Each carries an amount of work
//!   drawn at arrival (log-normal, mean 1, cv 1, its own stream), so every algorithm on a
//!   seed sees the same requests. On server `i` (of n) the work takes
//!   `service_time × work / speed_i`, five times longer while the server is slowed;
//!   speeds fall evenly from 1 (server 1) to `1 − speed_spread` (server n).
//! - A server works on `slots` requests at once and keeps the rest in its own FIFO queue
//!   (its listen backlog); a request that finds `queue_limit` waiting is refused (503,
//!   counted rejected). A crashed server refuses connections: requests the load balancer
//!   sends there fail (502), and those it held fail at the crash. These are the errors
//!   during detection.
//! - The load balancer picks among the targets in rotation (all of them when failing
//!   open): round robin (next in cyclic order), random (uniform), least outstanding
//!   (fewest requests sent and not yet answered, ties at random), power of two (two
//!   distinct random targets, the one with fewer outstanding). At layer 7 it picks per
//!   request; at layer 4 per connection: `connections` clients with Zipf(1) request rates
//!   each keep one connection, bound to a target at connect time until that target leaves
//!   rotation or the connection breaks.
//! - Health checks: each target has its own checker, first probe at a random phase in
//!   [0, interval), then every `check_interval`. A probe of a crashed server fails at once;
//!   otherwise it joins the server's queue like a request (5 ms of work at full speed), so
//!   an overloaded or slowed server answers late: no answer within `check_timeout` fails.
//!   While health checks are broken (the injection), answers are errors (HTTP 500).
//!   Detection time = crash → out of rotation; return time = restore → back in rotation.
//!
//! Integer ticks, named random streams, no hash iteration: fully deterministic.

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::metrics::GaugeId;
use crate::sim::random::{SimRng, Zipf};
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation, TimerHandle};
use crate::sim::snapshot::{Figure, NodeState, NodeView, Notable, Snapshot};
use crate::sim::time::{SimDuration, SimTime};
use crate::sim::topology::{EdgeId, NodeId, NodeKind, Topology};
use crate::sim::traffic::{PoissonArrivals, TrafficShape};

use super::core::{ArrivalTimer, ModelCore};
use super::params::{integer, number};
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "load-balancing",
    title: "Load balancing algorithms and health checks",
    group: LessonGroup::TrafficAndCompute,
    summary: "Round robin, random, least outstanding and power of two on unequal servers; health checks take a dead server out of rotation and fail open when all fail.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: None,
    sweep: Some("algorithm"),
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "algorithm",
        label: "Algorithm",
        unit: "",
        help: "round-robin: each target in turn (the ALB default); random: any target; least-outstanding: the target with the fewest requests in flight; power-of-two: the less busy of two random targets.",
        kind: ParamKind::Choice {
            options: &["round-robin", "random", "least-outstanding", "power-of-two"],
            default: "round-robin",
        },
        liveness: Liveness::Live,
    },
    number("load", "Load", "req/s", "Requests per second from all clients together.", (5.0, 400.0, 5.0, 70.0)),
    integer("servers", "Servers", "", "Targets registered with the load balancer.", (4, 6, 5)).restart(),
    number("speed_spread", "Speed spread", "", "How unequal the servers are: server 1 runs at full speed, the last at 1 − spread, the others evenly between (0 = all equal, 0.5 = the last at half speed).", (0.0, 0.8, 0.05, 0.5)),
    number("service_time", "Service time", "ms", "Mean work per request on a full-speed server (log-normal, cv 1).", (10.0, 1000.0, 10.0, 100.0)),
    integer("slots", "Slots per server", "", "Requests one server works on at once; the rest wait in its queue.", (1, 16, 4)).restart(),
    integer("queue_limit", "Queue limit per server", "", "Requests a server holds waiting; beyond it, it refuses them (HTTP 503).", (5, 500, 100)),
    number("check_interval", "Health-check interval", "s", "Time between probes of each target (ALB: 5 to 300 s, default 30). A change applies from the next probe.", (5.0, 300.0, 1.0, 5.0)),
    number("check_timeout", "Health-check timeout", "s", "A probe not answered within this fails (ALB: 2 to 120 s, less than the interval).", (2.0, 120.0, 1.0, 2.0)),
    integer("unhealthy_threshold", "Unhealthy threshold", "", "Consecutive failed probes that take a target out of rotation (ALB: 2 to 10, default 2).", (2, 10, 2)),
    integer("healthy_threshold", "Healthy threshold", "", "Consecutive passed probes that put it back (ALB: 2 to 10, default 5).", (2, 10, 5)),
    ParamSpec {
        name: "layer",
        label: "Balancing layer",
        unit: "",
        help: "layer-7 (ALB): every HTTP request is balanced on its own; layer-4 (NLB): a client's TCP connection is bound to one target and carries all its requests.",
        kind: ParamKind::Choice {
            options: &["layer-7", "layer-4"],
            default: "layer-7",
        },
        liveness: Liveness::Restart,
    },
    integer("connections", "Client connections", "", "Clients, each with one keep-alive connection; a few send most requests (Zipf). Matters at layer 4.", (5, 200, 20)).restart(),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "kill-server",
        label: "Crash a server",
        help: "The first running server crashes: it refuses connections, and requests sent to it fail until its target leaves rotation.",
    },
    InjectionSpec {
        id: "slow-server",
        label: "Slow a server down ×5",
        help: "The first server running at normal pace becomes five times slower (a noisy neighbour, a long GC pause); its health checks may time out.",
    },
    InjectionSpec {
        id: "fail-checks",
        label: "Break every health check",
        help: "The health-check endpoint answers HTTP 500 on every server (say, a shared dependency it tests is down) while real requests still succeed.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore everything",
        help: "Crashed servers restart, slowed ones recover, health checks answer normally again.",
    },
];

/// Client → load balancer.
const CLIENT_HOP: SimDuration = SimDuration::from_millis(10);
/// Load balancer → target entry, target → server queue, queue → server.
const LB_HOP: SimDuration = SimDuration::from_millis(4);
const TARGET_HOP: SimDuration = SimDuration::from_millis(3);
const QUEUE_HOP: SimDuration = SimDuration::from_millis(2);
/// Server → response delivered.
const REPLY_HOP: SimDuration = SimDuration::from_millis(10);
/// Work of one health-check probe on a full-speed server, in seconds.
const PROBE_WORK: f64 = 0.005;
/// How much slower a slowed server is.
pub const SLOW_FACTOR: f64 = 5.0;
const WORK_CV: f64 = 1.0;

const GAUGES: [&str; 6] = [
    "outstanding_server_1",
    "outstanding_server_2",
    "outstanding_server_3",
    "outstanding_server_4",
    "outstanding_server_5",
    "outstanding_server_6",
];
const SHARE_KEYS: [&str; 6] = [
    "share_server_1",
    "share_server_2",
    "share_server_3",
    "share_server_4",
    "share_server_5",
    "share_server_6",
];
const SHARE_LABELS: [&str; 6] = [
    "Requests routed to server 1",
    "Requests routed to server 2",
    "Requests routed to server 3",
    "Requests routed to server 4",
    "Requests routed to server 5",
    "Requests routed to server 6",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    RoundRobin,
    Random,
    LeastOutstanding,
    PowerOfTwo,
}

impl Algorithm {
    fn parse(word: &str) -> Algorithm {
        match word {
            "random" => Algorithm::Random,
            "least-outstanding" => Algorithm::LeastOutstanding,
            "power-of-two" => Algorithm::PowerOfTwo,
            _ => Algorithm::RoundRobin,
        }
    }
}

/// A unit of work in a server's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Request(u32),
    /// A health-check probe with its sequence number.
    Probe(u32),
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    AtBalancer {
        req: u32,
    },
    AtTarget {
        req: u32,
    },
    AtQueue {
        req: u32,
    },
    /// A server finished a job (ignored if the server crashed since: `life` differs).
    Done {
        server: u16,
        life: u32,
        job: Job,
    },
    /// The response reached the client.
    Replied {
        req: u32,
    },
    /// The health checker of a target sends a probe.
    Probe {
        server: u16,
    },
    /// A probe's deadline.
    ProbeTimeout {
        server: u16,
        seq: u32,
    },
}

#[derive(Clone, Debug)]
struct Server {
    node: NodeId,
    target_node: NodeId,
    queue_node: NodeId,
    edge_target: EdgeId,
    edge_queue: EdgeId,
    edge_server: EdgeId,
    edge_reply: EdgeId,
    up: bool,
    slow: bool,
    /// Incremented on every crash, so jobs of an earlier life are ignored.
    life: u32,
    busy: u32,
    queue: VecDeque<Job>,
    /// Requests the load balancer sent here and has no answer for yet.
    outstanding: u32,
    routed: u64,
    /// The load balancer's verdict: gets new requests.
    in_rotation: bool,
    /// Consecutive probes against the verdict (failures while in, passes while out).
    streak: u32,
    probe_phase: SimDuration,
    probe_seq: u32,
    pending_probe: Option<(u32, TimerHandle)>,
    crashed_at: Option<SimTime>,
    restored_at: Option<SimTime>,
    /// The state last shown and logged for the server node.
    shown: NodeState,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    key: RequestKey,
    born: SimTime,
    work: f64,
    client: u32,
    server: u16,
    /// Queued or in service at its server (fails with it if it crashes).
    at_server: bool,
}

pub struct LoadBalancingModel {
    params: ParamValues,
    layer4: bool,
    topology: Topology,
    clients_node: NodeId,
    lb_node: NodeId,
    sink_node: NodeId,
    edge_in: EdgeId,
    servers: Vec<Server>,
    /// Each client connection's target at layer 4.
    connections: Vec<Option<u16>>,
    client_pick: Zipf,
    reqs: Slab<Req>,
    cursor: usize,
    fail_open: bool,
    fail_open_since: Option<SimTime>,
    fail_open_total: SimDuration,
    checks_broken: bool,
    last_detection: Option<f64>,
    last_return: Option<f64>,
    errors_during_detection: u64,
    arrivals: ArrivalTimer<Event>,
    work_rng: SimRng,
    client_rng: SimRng,
    route_rng: SimRng,
    core: ModelCore,
    gauges: Vec<GaugeId>,
    gauge_rotation: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn secs(value: f64) -> SimDuration {
    SimDuration::from_secs_f64(value)
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<LoadBalancingModel> {
    let n = params.integer("servers") as usize;
    let mut topology = Topology::default();
    let clients_node = topology.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.5);
    let lb_node = topology.add_node("lb", "Load balancer", NodeKind::Router, 0.15, 0.5);
    let edge_in = topology.add_edge(clients_node, lb_node);
    let sink_node = topology.add_node("served", "Served", NodeKind::Sink, 1.0, 0.5);
    let mut phase_rng = SimRng::new(seed.0, "probe-phase");
    let interval = secs(params.number("check_interval"));
    let mut servers = Vec::with_capacity(n);
    for i in 0..n {
        // Rows inset so the top queue's count and the bottom queue's name stay inside the
        // picture; a queue's name (below it) would sit right on the next row's count
        // (above it), so alternate queues are shifted right: each text lines up with its
        // own box.
        let y = 0.06 + 0.88 * i as f32 / (n - 1) as f32;
        let queue_x = if i % 2 == 1 { 0.63 } else { 0.5 };
        let target_node = topology.add_node(
            &format!("target-{}", i + 1),
            &format!("Target {}", i + 1),
            NodeKind::Guard,
            0.32,
            y,
        );
        let queue_node = topology.add_node(
            &format!("queue-{}", i + 1),
            &format!("Queue {}", i + 1),
            NodeKind::Queue,
            queue_x,
            y,
        );
        let node = topology.add_node(
            &format!("server-{}", i + 1),
            &format!("Server {}", i + 1),
            NodeKind::Server,
            0.84,
            y,
        );
        let edge_target = topology.add_edge(lb_node, target_node);
        let edge_queue = topology.add_edge(target_node, queue_node);
        let edge_server = topology.add_edge(queue_node, node);
        let edge_reply = topology.add_edge(node, sink_node);
        servers.push(Server {
            node,
            target_node,
            queue_node,
            edge_target,
            edge_queue,
            edge_server,
            edge_reply,
            up: true,
            slow: false,
            life: 0,
            busy: 0,
            queue: VecDeque::new(),
            outstanding: 0,
            routed: 0,
            in_rotation: true,
            streak: 0,
            probe_phase: SimDuration::from_ticks(phase_rng.below(interval.ticks())),
            probe_seq: 0,
            pending_probe: None,
            crashed_at: None,
            restored_at: None,
            shown: NodeState::Healthy,
        });
    }
    let mut gauge_names: Vec<&'static str> = GAUGES[..n].to_vec();
    gauge_names.push("targets_in_rotation");
    let core = ModelCore::new(gauge_names);
    let connection_count = params.integer("connections") as u64;
    let mut model = LoadBalancingModel {
        params: params.clone(),
        layer4: params.choice("layer") == "layer-4",
        topology,
        clients_node,
        lb_node,
        sink_node,
        edge_in,
        servers,
        connections: vec![None; connection_count as usize],
        client_pick: Zipf::new(connection_count, 1.0).expect("at least 5 connections"),
        reqs: Slab::new(),
        cursor: n - 1,
        fail_open: false,
        fail_open_since: None,
        fail_open_total: SimDuration::ZERO,
        checks_broken: false,
        last_detection: None,
        last_return: None,
        errors_during_detection: 0,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                TrafficShape::Steady {
                    rate: params.number("load"),
                },
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        work_rng: SimRng::new(seed.0, "work"),
        client_rng: SimRng::new(seed.0, "client"),
        route_rng: SimRng::new(seed.0, "route"),
        gauges: (0..n).map(|i| core.gauge(GAUGES[i])).collect(),
        gauge_rotation: core.gauge("targets_in_rotation"),
        core,
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    for server in 0..n {
        scheduler.schedule_in(
            model.servers[server].probe_phase,
            Event::Probe {
                server: server as u16,
            },
        );
    }
    model.update_rotation_gauge(SimTime::ZERO);
    Simulation::new(model, scheduler)
}

impl LoadBalancingModel {
    fn algorithm(&self) -> Algorithm {
        Algorithm::parse(self.params.choice("algorithm"))
    }

    /// Relative speed of server `i`: 1 for the first, 1 − spread for the last.
    pub fn speed(&self, i: usize) -> f64 {
        let n = self.servers.len();
        let spread = self.params.number("speed_spread");
        let slow = if self.servers[i].slow {
            SLOW_FACTOR
        } else {
            1.0
        };
        (1.0 - spread * i as f64 / (n - 1) as f64) / slow
    }

    /// May the load balancer send new requests to `server` now?
    fn candidate(&self, server: usize) -> bool {
        self.fail_open || self.servers[server].in_rotation
    }

    /// Picks a target by the current algorithm among the candidates.
    fn pick(&mut self) -> usize {
        let n = self.servers.len();
        let candidates: Vec<usize> = (0..n).filter(|&s| self.candidate(s)).collect();
        match self.algorithm() {
            Algorithm::RoundRobin => {
                let next = (1..=n)
                    .map(|step| (self.cursor + step) % n)
                    .find(|&s| self.candidate(s))
                    .expect("fail open keeps every target a candidate");
                self.cursor = next;
                next
            }
            Algorithm::Random => candidates[self.route_rng.below(candidates.len() as u64) as usize],
            Algorithm::LeastOutstanding => {
                let least = candidates
                    .iter()
                    .map(|&s| self.servers[s].outstanding)
                    .min()
                    .expect("at least one candidate");
                let tied: Vec<usize> = candidates
                    .into_iter()
                    .filter(|&s| self.servers[s].outstanding == least)
                    .collect();
                tied[self.route_rng.below(tied.len() as u64) as usize]
            }
            Algorithm::PowerOfTwo => {
                let count = candidates.len() as u64;
                if count == 1 {
                    return candidates[0];
                }
                let first = self.route_rng.below(count);
                let mut second = self.route_rng.below(count - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (candidates[first as usize], candidates[second as usize]);
                if self.servers[b].outstanding < self.servers[a].outstanding {
                    b
                } else {
                    a
                }
            }
        }
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let work = self.work_rng.lognormal_mean_cv(1.0, WORK_CV);
        let client = self.client_pick.sample(&mut self.client_rng) as u32;
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.edge_in,
                depart: now,
                arrive: now + CLIENT_HOP,
            },
        );
        let req = self.reqs.insert(Req {
            key,
            born: now,
            work,
            client,
            server: 0,
            at_server: false,
        }) as u32;
        scheduler.schedule_in(CLIENT_HOP, Event::AtBalancer { req });
    }

    /// The load balancer routes the request: per request at layer 7, per connection at
    /// layer 4.
    fn at_balancer(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let client = self.reqs[req as usize].client as usize;
        let server = match (self.layer4, self.connections[client]) {
            (true, Some(bound)) if self.candidate(bound as usize) => bound as usize,
            _ => {
                let chosen = self.pick();
                if self.layer4 {
                    self.connections[client] = Some(chosen as u16);
                }
                chosen
            }
        };
        let entry = &mut self.reqs[req as usize];
        entry.server = server as u16;
        let key = entry.key;
        let s = &mut self.servers[server];
        s.outstanding += 1;
        s.routed += 1;
        let edge = s.edge_target;
        self.set_outstanding_gauge(server, now);
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + LB_HOP,
            },
        );
        scheduler.schedule_in(LB_HOP, Event::AtTarget { req });
    }

    fn at_target(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.servers[entry.server as usize].edge_queue,
                depart: now,
                arrive: now + TARGET_HOP,
            },
        );
        scheduler.schedule_in(TARGET_HOP, Event::AtQueue { req });
    }

    /// The request reaches its server: refused if it crashed (502), rejected if its
    /// backlog is full (503), else queued.
    fn at_queue(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let server = self.reqs[req as usize].server as usize;
        if !self.servers[server].up {
            self.errors_during_detection += 1;
            self.end_failed(req, now);
            return;
        }
        if self.servers[server].queue.len() >= self.params.integer("queue_limit") as usize {
            let entry = self.reqs.remove(req as usize);
            self.core.requests.finish(entry.key);
            self.core.metrics.rejected(now);
            self.servers[server].outstanding -= 1;
            self.set_outstanding_gauge(server, now);
            return;
        }
        let entry = &mut self.reqs[req as usize];
        entry.at_server = true;
        let key = entry.key;
        let s = &mut self.servers[server];
        s.queue.push_back(Job::Request(req));
        let node = s.queue_node;
        self.core
            .requests
            .move_to(key, Place::Queued { node, since: now });
        self.dispatch(server, scheduler);
    }

    /// A request that failed at or with its server (connection refused or reset).
    fn end_failed(&mut self, req: u32, now: SimTime) {
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        self.core.metrics.failed(now);
        let server = entry.server as usize;
        self.servers[server].outstanding -= 1;
        self.set_outstanding_gauge(server, now);
        // The broken connection is re-established (and re-balanced) by the next request.
        if self.connections[entry.client as usize] == Some(entry.server) {
            self.connections[entry.client as usize] = None;
        }
    }

    /// Starts queued jobs on free slots.
    fn dispatch(&mut self, server: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let slots = self.params.integer("slots") as u32;
        let speed = self.speed(server);
        let mean = self.params.number("service_time") / 1000.0;
        while self.servers[server].busy < slots {
            let Some(job) = self.servers[server].queue.pop_front() else {
                break;
            };
            let s = &mut self.servers[server];
            s.busy += 1;
            let (life, edge) = (s.life, s.edge_server);
            let duration = match job {
                Job::Request(req) => {
                    let entry = self.reqs[req as usize];
                    if let Place::Queued { since, .. } = self.core.requests.get(entry.key).place {
                        self.core.metrics.waited(now - since);
                    }
                    self.core.requests.move_to(
                        entry.key,
                        Place::OnEdge {
                            edge,
                            depart: now,
                            arrive: now + QUEUE_HOP,
                        },
                    );
                    QUEUE_HOP + secs(mean * entry.work / speed)
                }
                Job::Probe(_) => secs(PROBE_WORK / speed),
            };
            scheduler.schedule_in(
                duration,
                Event::Done {
                    server: server as u16,
                    life,
                    job,
                },
            );
        }
    }

    fn done(&mut self, server: usize, life: u32, job: Job, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.servers[server].life != life {
            return; // crashed since: the job already ended with it
        }
        self.servers[server].busy -= 1;
        match job {
            Job::Request(req) => {
                let entry = &mut self.reqs[req as usize];
                entry.at_server = false;
                let key = entry.key;
                let s = &mut self.servers[server];
                s.outstanding -= 1;
                let edge = s.edge_reply;
                self.set_outstanding_gauge(server, now);
                self.core.requests.move_to(
                    key,
                    Place::OnEdge {
                        edge,
                        depart: now,
                        arrive: now + REPLY_HOP,
                    },
                );
                scheduler.schedule_in(REPLY_HOP, Event::Replied { req });
            }
            Job::Probe(seq) => {
                if let Some((pending, timer)) = self.servers[server].pending_probe {
                    if pending == seq {
                        scheduler.cancel(timer);
                        self.servers[server].pending_probe = None;
                        let passed = !self.checks_broken;
                        self.check_result(server, passed, now);
                    }
                }
            }
        }
        self.dispatch(server, scheduler);
    }

    fn replied(&mut self, req: u32, now: SimTime) {
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        self.core.metrics.completed(now, now - entry.born);
    }

    /// The health checker probes a target and schedules its next probe.
    fn probe(&mut self, server: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(
            secs(self.params.number("check_interval")),
            Event::Probe {
                server: server as u16,
            },
        );
        // A probe still unanswered when the next is due has failed (ALB keeps the timeout
        // below the interval; a live change of either may overlap them here).
        if let Some((_, timer)) = self.servers[server].pending_probe.take() {
            scheduler.cancel(timer);
            self.check_result(server, false, now);
        }
        let full = self.servers[server].queue.len() >= self.params.integer("queue_limit") as usize;
        if !self.servers[server].up || full {
            // Connection refused: the probe fails at once.
            self.check_result(server, false, now);
            return;
        }
        let s = &mut self.servers[server];
        s.probe_seq += 1;
        let seq = s.probe_seq;
        s.queue.push_back(Job::Probe(seq));
        let timeout = secs(self.params.number("check_timeout"));
        let timer = scheduler.schedule_timer_in(
            timeout,
            Event::ProbeTimeout {
                server: server as u16,
                seq,
            },
        );
        self.servers[server].pending_probe = Some((seq, timer));
        self.dispatch(server, scheduler);
    }

    fn probe_timeout(&mut self, server: usize, seq: u32, now: SimTime) {
        if matches!(self.servers[server].pending_probe, Some((pending, _)) if pending == seq) {
            self.servers[server].pending_probe = None;
            self.check_result(server, false, now);
        }
    }

    /// One probe's verdict: counts towards the thresholds and moves the target in or out
    /// of rotation.
    fn check_result(&mut self, server: usize, passed: bool, now: SimTime) {
        let unhealthy_after = self.params.integer("unhealthy_threshold") as u32;
        let healthy_after = self.params.integer("healthy_threshold") as u32;
        let s = &mut self.servers[server];
        if passed == s.in_rotation {
            s.streak = 0;
            return;
        }
        s.streak += 1;
        let threshold = if s.in_rotation {
            unhealthy_after
        } else {
            healthy_after
        };
        if s.streak < threshold {
            return;
        }
        s.streak = 0;
        s.in_rotation = passed;
        let target = s.target_node;
        if passed {
            if let Some(at) = s.restored_at.take() {
                self.last_return = Some((now - at).as_secs_f64());
            }
        } else if let Some(at) = s.crashed_at.take() {
            self.last_detection = Some((now - at).as_secs_f64());
        }
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: target,
                to: if passed {
                    NodeState::Healthy
                } else {
                    NodeState::Draining
                },
            },
        );
        self.update_rotation_gauge(now);
        let fail_open = !self.servers.iter().any(|s| s.in_rotation);
        if fail_open != self.fail_open {
            self.fail_open = fail_open;
            if fail_open {
                self.fail_open_since = Some(now);
            } else if let Some(since) = self.fail_open_since.take() {
                self.fail_open_total = self.fail_open_total + (now - since);
            }
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node: self.lb_node,
                    to: self.lb_state(),
                },
            );
        }
    }

    fn lb_state(&self) -> NodeState {
        if self.fail_open {
            NodeState::Unhealthy
        } else {
            NodeState::Healthy
        }
    }

    fn server_state(&self, server: usize) -> NodeState {
        let s = &self.servers[server];
        if !s.up {
            NodeState::Down
        } else if s.slow {
            NodeState::Unhealthy
        } else {
            NodeState::Healthy
        }
    }

    fn show_server(&mut self, server: usize, now: SimTime) {
        let state = self.server_state(server);
        if state != self.servers[server].shown {
            self.servers[server].shown = state;
            let node = self.servers[server].node;
            self.core
                .log
                .push(now, Notable::StateChanged { node, to: state });
        }
    }

    fn set_outstanding_gauge(&mut self, server: usize, now: SimTime) {
        let value = self.servers[server].outstanding as i64;
        self.core.metrics.set_gauge(self.gauges[server], now, value);
    }

    fn update_rotation_gauge(&mut self, now: SimTime) {
        let count = self.servers.iter().filter(|s| s.in_rotation).count() as i64;
        self.core.metrics.set_gauge(self.gauge_rotation, now, count);
    }

    fn kill_server(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let server =
            self.servers
                .iter()
                .position(|s| s.up)
                .ok_or_else(|| CommandError::NotApplicable {
                    reason: "every server has already crashed".into(),
                })?;
        let s = &mut self.servers[server];
        s.up = false;
        s.life += 1;
        s.busy = 0;
        s.queue.clear();
        s.crashed_at = Some(now);
        s.restored_at = None;
        let pending = s.pending_probe.take();
        // What the server held fails with it (connection reset).
        let held: Vec<u32> = self
            .reqs
            .iter()
            .filter(|(_, r)| r.at_server && r.server as usize == server)
            .map(|(index, _)| index as u32)
            .collect();
        for req in held {
            self.errors_during_detection += 1;
            self.end_failed(req, now);
        }
        if let Some((_, timer)) = pending {
            scheduler.cancel(timer);
            self.check_result(server, false, now);
        }
        self.show_server(server, now);
        Ok(())
    }

    fn slow_server(&mut self, now: SimTime) -> Result<(), CommandError> {
        let server = self
            .servers
            .iter()
            .position(|s| s.up && !s.slow)
            .ok_or_else(|| CommandError::NotApplicable {
                reason: "no running server is at normal pace".into(),
            })?;
        self.servers[server].slow = true;
        self.show_server(server, now);
        Ok(())
    }

    fn restore(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let anything = self.checks_broken || self.servers.iter().any(|s| !s.up || s.slow);
        if !anything {
            return Err(CommandError::NotApplicable {
                reason: "nothing is broken: every server runs at normal pace and checks pass"
                    .into(),
            });
        }
        self.checks_broken = false;
        for server in 0..self.servers.len() {
            let s = &mut self.servers[server];
            s.slow = false;
            if !s.up {
                s.up = true;
                s.crashed_at = None;
                s.restored_at = (!s.in_rotation).then_some(now);
            }
            self.show_server(server, now);
        }
        Ok(())
    }

    // Inspection for tests and the model note (not used by the view).

    /// Time of the first health-check probe of `server` (0-based); later ones follow
    /// every interval.
    pub fn probe_phase(&self, server: usize) -> SimDuration {
        self.servers[server].probe_phase
    }

    /// Whether the load balancer routes new requests to `server` (0-based).
    pub fn in_rotation(&self, server: usize) -> bool {
        self.servers[server].in_rotation
    }

    /// Whether every target is unhealthy and the load balancer sends to all.
    pub fn failing_open(&self) -> bool {
        self.fail_open
    }

    /// Requests routed to each server so far.
    pub fn routed(&self) -> Vec<u64> {
        self.servers.iter().map(|s| s.routed).collect()
    }

    /// Requests sent to each server and not answered yet.
    pub fn outstanding(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.outstanding).collect()
    }
}

impl Model for LoadBalancingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtBalancer { req } => self.at_balancer(req, scheduler),
            Event::AtTarget { req } => self.at_target(req, scheduler),
            Event::AtQueue { req } => self.at_queue(req, scheduler),
            Event::Done { server, life, job } => self.done(server as usize, life, job, scheduler),
            Event::Replied { req } => self.replied(req, scheduler.now()),
            Event::Probe { server } => self.probe(server as usize, scheduler),
            Event::ProbeTimeout { server, seq } => {
                self.probe_timeout(server as usize, seq, scheduler.now())
            }
        }
    }
}

impl LessonModel for LoadBalancingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.clients_node));
        snapshot.nodes.push(NodeView {
            state: self.lb_state(),
            ..plain(self.lb_node)
        });
        snapshot.nodes.push(plain(self.sink_node));
        let unhealthy_after = self.params.integer("unhealthy_threshold") as u32;
        let healthy_after = self.params.integer("healthy_threshold") as u32;
        let slots = self.params.integer("slots") as u32;
        for s in &self.servers {
            // A target shows its verdict and, while probes disagree with it, their run
            // against the threshold: "healthy · 1/2" = one failed probe of the two that
            // take it out; "draining · 3/5" = three passed of the five that put it back.
            snapshot.nodes.push(NodeView {
                node: s.target_node,
                state: if s.in_rotation {
                    NodeState::Healthy
                } else {
                    NodeState::Draining
                },
                busy: s.streak,
                capacity: match (s.streak > 0, s.in_rotation) {
                    (false, _) => 0,
                    (true, true) => unhealthy_after,
                    (true, false) => healthy_after,
                },
                queued: 0,
            });
            let waiting = s
                .queue
                .iter()
                .filter(|job| matches!(job, Job::Request(_)))
                .count() as u32;
            snapshot.nodes.push(NodeView {
                state: if s.up {
                    NodeState::Healthy
                } else {
                    NodeState::Down
                },
                queued: waiting,
                ..plain(s.queue_node)
            });
            snapshot.nodes.push(NodeView {
                node: s.node,
                state: s.shown,
                busy: s.busy,
                capacity: if s.up { slots } else { 0 },
                queued: 0,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let total: u64 = self.servers.iter().map(|s| s.routed).sum();
        let mut figures: Vec<Figure> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| Figure {
                key: SHARE_KEYS[i],
                label: SHARE_LABELS[i],
                value: if total == 0 {
                    0.0
                } else {
                    100.0 * s.routed as f64 / total as f64
                },
                unit: "%",
            })
            .collect();
        let fail_open = self.fail_open_total
            + self
                .fail_open_since
                .map_or(SimDuration::ZERO, |since| now - since);
        figures.extend([
            Figure {
                key: "detection_s",
                label: "Detection: crash → out of rotation",
                value: self.last_detection.unwrap_or(0.0),
                unit: "s",
            },
            Figure {
                key: "return_s",
                label: "Restore → back in rotation",
                value: self.last_return.unwrap_or(0.0),
                unit: "s",
            },
            Figure {
                key: "errors_during_detection",
                label: "Requests failed at crashed servers",
                value: self.errors_during_detection as f64,
                unit: "",
            },
            Figure {
                key: "targets_in_rotation",
                label: "Targets in rotation",
                value: self.servers.iter().filter(|s| s.in_rotation).count() as f64,
                unit: "",
            },
            Figure {
                key: "fail_open_s",
                label: "Time failing open (all targets unhealthy)",
                value: fail_open.as_secs_f64(),
                unit: "s",
            },
        ]);
        figures
    }

    fn apply(
        &mut self,
        command: &LessonCommand,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        let now = scheduler.now();
        match command {
            LessonCommand::Inject(id) => {
                match id.as_str() {
                    "kill-server" => self.kill_server(scheduler)?,
                    "slow-server" => self.slow_server(now)?,
                    "fail-checks" => {
                        if self.checks_broken {
                            return Err(CommandError::NotApplicable {
                                reason: "the health checks are already failing".into(),
                            });
                        }
                        self.checks_broken = true;
                    }
                    "restore" => self.restore(scheduler)?,
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                if spec.name == "load" {
                    self.arrivals.arrivals.set_shape(TrafficShape::Steady {
                        rate: self.params.number("load"),
                    });
                    self.arrivals.rearm(scheduler);
                }
                // Everything else is read when next used: the algorithm at the next
                // routing decision, speeds and service time at the next job start,
                // thresholds at the next probe result, the queue limit at the next arrival.
                Ok(())
            }
        }
    }
}
