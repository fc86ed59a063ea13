//! Lesson `coupling`: tight vs loose coupling, synchronous vs asynchronous. One chain of
//! services carries the same traffic three ways, so a failure at the far end can be
//! watched rippling back (or not) to the caller:
//!
//! clients → **web tier** (the caller) → [middle] → **order servers** → **stock database**
//!
//! - `direct` (tight, synchronous): the web tier's configuration names the order server
//!   of each customer shard and calls it directly, holding a thread while it waits. No
//!   health checks: while that server is dead every call to it fails (connection refused),
//!   until it is restored.
//! - `load-balancer` (loose, synchronous): the web tier calls a load balancer, which
//!   spreads calls round robin over the servers it considers healthy. Health checks run
//!   every `health_check_interval`; a server is taken out after 2 consecutive failed
//!   checks and put back after 5 passed ones (the Elastic Load Balancing target-group
//!   defaults are 2 and 5, interval 30 s, range 5-300 s); with no healthy server it fails
//!   open and sends to all (a restored server shows as starting until it is back in
//!   rotation). Only calls in flight to a dead server, or sent to it before it
//!   is detected, fail. The checks are shallow (the server answers), so a slow database
//!   behind every server is not detected: the slowdown still reaches the caller.
//! - `queue` (loose, asynchronous): the web tier puts a message in a queue and answers
//!   the client at once (202 Accepted); every order server's threads receive messages and
//!   process them. A message received by a server that dies is not deleted: it becomes
//!   visible again after the visibility timeout (30 s, the Amazon SQS default) and is
//!   processed by another server; live workers extend the visibility while they work
//!   (ChangeMessageVisibility heartbeat), so a merely slow job is never redelivered. The
//!   caller's latency and error rate do not depend on the servers at all; a failure turns
//!   into backlog, which drains after the restore.
//!
//! In the synchronous variants the web tier holds one of its `web_threads` for each call
//! and gives up after `call_timeout` (HTTP 504); a call arriving when every thread is
//! busy is refused (503). The server keeps working on a call whose caller gave up (it
//! cannot know), which is wasted work. An order server runs `threads` calls at once, each
//! doing its own work (log-normal, mean `work_time`, cv 0.5) and then a synchronous query
//! to the stock database (log-normal, mean `dependency_time`, cv 0.5, times
//! `slowdown_factor` while the database is slow), with a 10 ms network hop on every edge.
//! Every request's shard and base times are drawn at arrival from their own streams, so
//! the three variants see identical traffic on one seed.
//!
//! Deadlines follow the seed text's three classes of distributed system (hard real-time:
//! an answer while the user waits; soft real-time: minutes; batch: hours): a job meets a
//! deadline if it is done (end to end, including any backlog wait) within it; a failed
//! job misses every deadline; a job still running counts once it is older than the
//! deadline. Sources: the seed text 004 (tight coupling, loose coupling with a load
//! balancer in the middle, asynchronous with a queue in the middle; rule #1: loosely
//! couple components; hard/soft real-time and batch), the Amazon SQS Developer Guide
//! ("visibility timeout"), the Elastic Load Balancing user guide ("Health checks for
//! your target groups"). Equations and semantics: docs/models/coupling.md.

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::histogram::{LatencyHistogram, PRECISE};
use crate::sim::metrics::GaugeId;
use crate::sim::random::SimRng;
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
    id: "coupling",
    title: "Tight vs loose coupling, sync vs async",
    group: LessonGroup::Messaging,
    summary: "Call a server directly, through a load balancer, or through a queue, and watch whether a failure at the far end ripples back to the caller.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(600),
    build,
    compare: Some("coupling"),
    sweep: Some("coupling"),
    breaker_node: None,
};

/// The three ways the web tier reaches the order servers.
pub const COUPLINGS: &[&str] = &["direct", "load-balancer", "queue"];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "coupling",
        label: "Coupling",
        unit: "",
        help: "direct: the web tier calls one specific order server and waits (tight, synchronous); load-balancer: it calls any healthy server through a load balancer and waits (loose, synchronous); queue: it enqueues a message and answers at once (loose, asynchronous).",
        kind: ParamKind::Choice {
            options: COUPLINGS,
            default: "direct",
        },
        liveness: Liveness::Restart,
    },
    number("rate", "Traffic", "req/s", "Client requests per second (Poisson).", (1.0, 200.0, 1.0, 50.0)),
    integer("instances", "Order servers", "", "How many order servers run behind the web tier.", (2, 4, 3)).restart(),
    integer("threads", "Threads per server", "", "Calls (or messages) one order server works on at once.", (1, 32, 4)),
    number("work_time", "Server work", "ms", "Mean time an order server spends on a call itself (log-normal, cv 0.5).", (1.0, 1000.0, 1.0, 40.0)),
    number("dependency_time", "Database query", "ms", "Mean time the stock database takes per query when healthy (log-normal, cv 0.5).", (1.0, 1000.0, 1.0, 50.0)),
    number("slowdown_factor", "Slowdown", "×", "How many times slower the database answers while it is slow.", (2.0, 50.0, 1.0, 10.0)),
    number("call_timeout", "Caller timeout", "s", "Synchronous variants: the web tier gives up on a call after this long (HTTP 504 to the client).", (0.1, 30.0, 0.1, 2.0)),
    integer("web_threads", "Web tier threads", "", "Calls the web tier can hold open at once; a request finding them all busy is refused (HTTP 503).", (1, 500, 64)),
    number("health_check_interval", "Health check interval", "s", "Load balancer: time between health checks (ELB allows 5-300 s, default 30 s); a server is taken out after 2 failed checks in a row and put back after 5 passed ones.", (5.0, 300.0, 5.0, 10.0)),
    number("hard_deadline", "Hard real-time deadline", "s", "End-to-end deadline of a job someone waits for right now.", (0.05, 10.0, 0.05, 0.5)).restart(),
    number("soft_deadline", "Soft real-time deadline", "s", "End-to-end deadline of a job that may take a little while (minutes).", (1.0, 3600.0, 1.0, 120.0)).restart(),
    number("batch_deadline", "Batch deadline", "s", "End-to-end deadline of an offline job (hours).", (60.0, 86_400.0, 60.0, 3600.0)).restart(),
    ParamSpec {
        name: "scheduled_failure",
        label: "Failure on schedule",
        unit: "",
        help: "A failure that starts at the scheduled time and is restored after its length, in every run (so the compare-every-option table shows it too); the buttons inject failures at any moment.",
        kind: ParamKind::Choice {
            options: &["none", "kill-server", "slow-database"],
            default: "none",
        },
        liveness: Liveness::Restart,
    },
    number("failure_at", "Scheduled failure at", "s", "When the scheduled failure starts.", (0.0, 3600.0, 10.0, 120.0)).restart(),
    number("failure_length", "Scheduled failure length", "s", "How long the scheduled failure lasts before it is restored.", (1.0, 3600.0, 10.0, 120.0)).restart(),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "kill-server",
        label: "Kill an order server",
        help: "The lowest-numbered running order server crashes: its calls in progress are lost (its queue messages return after the visibility timeout).",
    },
    InjectionSpec {
        id: "slow-database",
        label: "Slow the database down",
        help: "The stock database behind every order server answers slowdown-factor times slower until restored.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore",
        help: "Every dead order server starts again and the database answers at its normal speed.",
    },
];

/// One network hop (any edge).
pub const HOP: SimDuration = SimDuration::from_millis(10);
/// Spread of service times (coefficient of variation of the log-normal).
pub const CV: f64 = 0.5;
/// Amazon SQS default visibility timeout.
pub const VISIBILITY_TIMEOUT: SimDuration = SimDuration::from_secs(30);
/// Failed checks in a row before the load balancer takes a server out (ELB default).
pub const UNHEALTHY_AFTER: u32 = 2;
/// Passed checks in a row before it puts a server back (ELB default).
pub const HEALTHY_AFTER: u32 = 5;
/// How often tier health (web error share, server saturation) is assessed.
pub const TIER_CHECK: SimDuration = SimDuration::from_secs(1);
/// The web tier is unhealthy when at least this share of its answers in a check
/// interval were errors, and healthy again below `WEB_RECOVERED`.
pub const WEB_UNHEALTHY_SHARE: f64 = 0.05;
pub const WEB_RECOVERED_SHARE: f64 = 0.01;
/// Consecutive saturated (or unsaturated) checks before a server changes state.
pub const SATURATION_STREAK: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coupling {
    Direct,
    LoadBalancer,
    Queue,
}

impl Coupling {
    fn parse(word: &str) -> Coupling {
        match word {
            "load-balancer" => Coupling::LoadBalancer,
            "queue" => Coupling::Queue,
            _ => Coupling::Direct,
        }
    }

    fn synchronous(self) -> bool {
        self != Coupling::Queue
    }
}

/// Events. Calls are named by their slab slot and serial; `step` counts a call's moves,
/// so an event scheduled before the call moved on (or was cut off by a crash) is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    Next { slot: u32, serial: u32, step: u16 },
    CallTimeout { slot: u32, serial: u32 },
    HealthCheck,
    TierCheck,
    ScheduledFailure,
    ScheduledRestore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Client → web tier.
    ToWeb,
    /// Web tier → load balancer or queue.
    ToMiddle,
    /// → an order server (a call, or a received message on its way).
    ToServer,
    /// In a server's accept line (synchronous variants).
    Waiting,
    /// In the shared queue (asynchronous variant).
    Queued,
    Working,
    ToDatabase,
    AtDatabase,
    /// The database's answer back at the server.
    Reply,
    /// The finished job on its way out (the response to the client, or the job's result).
    ToDone,
    /// A message whose server died; visible again after the visibility timeout.
    Invisible,
}

#[derive(Clone, Debug)]
struct Call {
    serial: u32,
    step: u16,
    stage: Stage,
    /// The client's request; `None` once the caller gave up (the server may still work).
    key: Option<RequestKey>,
    born: SimTime,
    shard: usize,
    work: SimDuration,
    query: SimDuration,
    server: usize,
    holds_web_thread: bool,
    timer: Option<TimerHandle>,
    /// When it entered its current line, or when its message was received.
    since: SimTime,
}

struct Server {
    node: NodeId,
    /// Accept line in front of the server (synchronous variants).
    line: Option<NodeId>,
    edge_in: EdgeId,
    edge_db: EdgeId,
    edge_done: EdgeId,
    state: NodeState,
    busy: u32,
    waiting: VecDeque<(u32, u32)>,
    saturated_streak: u32,
    calm_streak: u32,
    /// The load balancer's view.
    in_rotation: bool,
    failed_checks: u32,
    passed_checks: u32,
}

/// What the client sees of the web tier.
struct CallerStats {
    latency: LatencyHistogram,
    answered: u64,
    errors: u64,
    interval_answered: u64,
    interval_errors: u64,
}

pub struct CouplingModel {
    params: ParamValues,
    coupling: Coupling,
    topology: Topology,
    clients: NodeId,
    web: NodeId,
    middle: Option<NodeId>,
    database: NodeId,
    done: NodeId,
    edge_to_web: EdgeId,
    edge_to_middle: Option<EdgeId>,
    /// Load balancer → each server's line.
    lb_edges: Vec<EdgeId>,
    /// Web tier → each server's line (direct).
    direct_edges: Vec<EdgeId>,
    servers: Vec<Server>,
    calls: Slab<Call>,
    next_serial: u32,
    backlog: VecDeque<(u32, u32)>,
    web_busy: u32,
    database_slow: bool,
    web_state: NodeState,
    round_robin: usize,
    arrivals: ArrivalTimer<Event>,
    shard_rng: SimRng,
    work_rng: SimRng,
    query_rng: SimRng,
    caller: CallerStats,
    deadlines: [SimDuration; 3],
    met: [u64; 3],
    backlog_peak: usize,
    wasted: u64,
    /// Tiers that turned unhealthy or down: database, order servers, web tier.
    tier_hit: [bool; 3],
    web_unhealthy_time: SimDuration,
    core: ModelCore,
    gauge_backlog: GaugeId,
    gauge_web: GaugeId,
    gauge_servers: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<CouplingModel> {
    let coupling = Coupling::parse(params.choice("coupling"));
    let count = params.integer("instances") as usize;
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.5);
    let web = topology.add_node("web", "Web tier", NodeKind::Server, 0.16, 0.5);
    let middle = match coupling {
        Coupling::Direct => None,
        Coupling::LoadBalancer => {
            Some(topology.add_node("balancer", "Load balancer", NodeKind::Router, 0.32, 0.5))
        }
        Coupling::Queue => {
            Some(topology.add_node("queue", "Order queue", NodeKind::Queue, 0.42, 0.5))
        }
    };
    let database = topology.add_node("database", "Stock DB", NodeKind::Store, 0.94, 0.16);
    let done = topology.add_node("done", "Done", NodeKind::Sink, 0.94, 0.84);
    let edge_to_web = topology.add_edge(clients, web);
    let edge_to_middle = middle.map(|middle| topology.add_edge(web, middle));
    let mut servers = Vec::new();
    let mut lb_edges = Vec::new();
    let mut direct_edges = Vec::new();
    for index in 0..count {
        let y = (index as f32 + 0.5) / count as f32;
        let number = index + 1;
        let node = topology.add_node(
            &format!("server-{number}"),
            &format!("Order server {number}"),
            NodeKind::Server,
            0.74,
            y,
        );
        let (line, edge_in) = match middle {
            Some(queue) if coupling == Coupling::Queue => (None, topology.add_edge(queue, node)),
            _ => {
                let line = topology.add_node(
                    &format!("line-{number}"),
                    &format!("Waiting at {number}"),
                    NodeKind::Queue,
                    0.52,
                    y,
                );
                match middle {
                    Some(balancer) => lb_edges.push(topology.add_edge(balancer, line)),
                    None => direct_edges.push(topology.add_edge(web, line)),
                }
                (Some(line), topology.add_edge(line, node))
            }
        };
        let edge_db = topology.add_edge(node, database);
        let edge_done = topology.add_edge(node, done);
        servers.push(Server {
            node,
            line,
            edge_in,
            edge_db,
            edge_done,
            state: NodeState::Healthy,
            busy: 0,
            waiting: VecDeque::new(),
            saturated_streak: 0,
            calm_streak: 0,
            in_rotation: true,
            failed_checks: 0,
            passed_checks: 0,
        });
    }
    let core = ModelCore::new(vec!["backlog", "web_busy_threads", "server_busy_threads"]);
    let mut model = CouplingModel {
        params: params.clone(),
        coupling,
        clients,
        web,
        middle,
        database,
        done,
        edge_to_web,
        edge_to_middle,
        lb_edges,
        direct_edges,
        servers,
        calls: Slab::new(),
        next_serial: 0,
        backlog: VecDeque::new(),
        web_busy: 0,
        database_slow: false,
        web_state: NodeState::Healthy,
        round_robin: 0,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number("rate")),
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        shard_rng: SimRng::new(seed.0, "shard"),
        work_rng: SimRng::new(seed.0, "work"),
        query_rng: SimRng::new(seed.0, "query"),
        caller: CallerStats {
            latency: LatencyHistogram::new(PRECISE),
            answered: 0,
            errors: 0,
            interval_answered: 0,
            interval_errors: 0,
        },
        deadlines: ["hard_deadline", "soft_deadline", "batch_deadline"]
            .map(|name| SimDuration::from_secs_f64(params.number(name))),
        met: [0; 3],
        backlog_peak: 0,
        wasted: 0,
        tier_hit: [false; 3],
        web_unhealthy_time: SimDuration::ZERO,
        gauge_backlog: core.gauge("backlog"),
        gauge_web: core.gauge("web_busy_threads"),
        gauge_servers: core.gauge("server_busy_threads"),
        core,
        topology,
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    scheduler.schedule_in(TIER_CHECK, Event::TierCheck);
    if coupling == Coupling::LoadBalancer {
        scheduler.schedule_in(model.check_interval(), Event::HealthCheck);
    }
    if params.choice("scheduled_failure") != "none" {
        let at = SimDuration::from_secs_f64(params.number("failure_at"));
        let length = SimDuration::from_secs_f64(params.number("failure_length"));
        scheduler.schedule_in(at, Event::ScheduledFailure);
        scheduler.schedule_in(at + length, Event::ScheduledRestore);
    }
    Simulation::new(model, scheduler)
}

impl CouplingModel {
    pub fn coupling(&self) -> Coupling {
        self.coupling
    }

    fn check_interval(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("health_check_interval"))
    }

    fn call(&self, slot: u32, serial: u32) -> Option<&Call> {
        self.calls
            .get(slot as usize)
            .filter(|call| call.serial == serial)
    }

    /// Moves a call to `stage`, shows its token at `place`, and schedules its next move
    /// after `delay` (none for stages that wait in a line).
    fn go(
        &mut self,
        slot: u32,
        stage: Stage,
        place: Place,
        delay: Option<SimDuration>,
        scheduler: &mut Scheduler<Event>,
    ) {
        let call = &mut self.calls[slot as usize];
        call.stage = stage;
        call.step = call.step.wrapping_add(1);
        let (serial, step) = (call.serial, call.step);
        if let Some(key) = call.key {
            self.core.requests.move_to(key, place);
        }
        if let Some(delay) = delay {
            scheduler.schedule_in(delay, Event::Next { slot, serial, step });
        }
    }

    fn on_edge(edge: EdgeId, now: SimTime) -> Place {
        Place::OnEdge {
            edge,
            depart: now,
            arrive: now + HOP,
        }
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        // Every request's draws come first and in a fixed order, so all three couplings
        // see the same shards and service times on one seed.
        let shard = self.shard_rng.below(self.servers.len() as u64) as usize;
        let work = SimDuration::from_secs_f64(
            self.work_rng
                .lognormal_mean_cv(self.params.number("work_time") / 1000.0, CV),
        );
        let query = SimDuration::from_secs_f64(
            self.query_rng
                .lognormal_mean_cv(self.params.number("dependency_time") / 1000.0, CV),
        );
        let place = Self::on_edge(self.edge_to_web, now);
        let key = self.core.requests.spawn(now, place);
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let slot = self.calls.insert(Call {
            serial,
            step: 0,
            stage: Stage::ToWeb,
            key: Some(key),
            born: now,
            shard,
            work,
            query,
            server: shard,
            holds_web_thread: false,
            timer: None,
            since: now,
        }) as u32;
        self.go(slot, Stage::ToWeb, place, Some(HOP), scheduler);
    }

    /// The web tier answers the client (success, error or 202 Accepted).
    fn answer_client(&mut self, slot: u32, error: bool, now: SimTime) {
        let call = &mut self.calls[slot as usize];
        if call.holds_web_thread {
            call.holds_web_thread = false;
            self.web_busy -= 1;
        }
        let born = call.born;
        self.caller.latency.record(now - born);
        self.caller.answered += 1;
        self.caller.interval_answered += 1;
        if error {
            self.caller.errors += 1;
            self.caller.interval_errors += 1;
        }
    }

    /// The caller gets an error (502 refused or reset, or 504 timeout): the request
    /// fails. The call itself is removed unless `keep` (the server still works on it).
    fn fail(&mut self, slot: u32, keep: bool, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if let Some(key) = self.calls[slot as usize].key.take() {
            self.answer_client(slot, true, now);
            if let Some(timer) = self.calls[slot as usize].timer.take() {
                scheduler.cancel(timer);
            }
            self.core.requests.finish(key);
            self.core.metrics.failed(now);
        }
        if !keep {
            self.calls.remove(slot as usize);
        }
    }

    fn at_web(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.web_busy >= self.params.integer("web_threads") as u32 {
            // Every thread is waiting on a call: HTTP 503.
            self.answer_client(slot, true, now);
            let call = self.calls.remove(slot as usize);
            if let Some(key) = call.key {
                self.core.requests.finish(key);
            }
            self.core.metrics.rejected(now);
            return;
        }
        self.web_busy += 1;
        let call = &mut self.calls[slot as usize];
        call.holds_web_thread = true;
        let (serial, shard) = (call.serial, call.shard);
        if self.coupling.synchronous() {
            let timeout = SimDuration::from_secs_f64(self.params.number("call_timeout"));
            let timer = scheduler.schedule_timer_in(timeout, Event::CallTimeout { slot, serial });
            self.calls[slot as usize].timer = Some(timer);
        }
        match self.edge_to_middle {
            Some(edge) => self.go(
                slot,
                Stage::ToMiddle,
                Self::on_edge(edge, now),
                Some(HOP),
                scheduler,
            ),
            None => {
                self.calls[slot as usize].server = shard;
                let edge = self.direct_edges[shard];
                self.go(
                    slot,
                    Stage::ToServer,
                    Self::on_edge(edge, now),
                    Some(HOP),
                    scheduler,
                );
            }
        }
    }

    fn at_middle(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match self.coupling {
            Coupling::Queue => {
                // The message is stored: the web tier answers 202 at once.
                if self.calls[slot as usize].key.is_some() {
                    self.answer_client(slot, false, now);
                }
                self.enqueue(slot, scheduler);
            }
            _ => {
                let server = self.pick_server();
                self.calls[slot as usize].server = server;
                let edge = self.lb_edges[server];
                self.go(
                    slot,
                    Stage::ToServer,
                    Self::on_edge(edge, now),
                    Some(HOP),
                    scheduler,
                );
            }
        }
    }

    /// Round robin over the servers in rotation; with none in rotation, over all of them
    /// (the load balancer fails open).
    fn pick_server(&mut self) -> usize {
        let count = self.servers.len();
        let any_in = self.servers.iter().any(|server| server.in_rotation);
        for offset in 0..count {
            let index = (self.round_robin + offset) % count;
            if self.servers[index].in_rotation || !any_in {
                self.round_robin = (index + 1) % count;
                return index;
            }
        }
        unreachable!("at least one server exists")
    }

    fn enqueue(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let queue = self.middle.expect("the queue variant has a queue");
        let call = &mut self.calls[slot as usize];
        call.since = now;
        let serial = call.serial;
        self.go(
            slot,
            Stage::Queued,
            Place::Queued {
                node: queue,
                since: now,
            },
            None,
            scheduler,
        );
        self.backlog.push_back((slot, serial));
        self.dispatch_queue(scheduler);
    }

    /// Free server threads receive messages, least busy server first.
    fn dispatch_queue(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let threads = self.params.integer("threads") as u32;
        while let Some(&(slot, serial)) = self.backlog.front() {
            let Some(server) = (0..self.servers.len())
                .filter(|&s| self.servers[s].state != NodeState::Down)
                .filter(|&s| self.servers[s].busy < threads)
                .min_by_key(|&s| self.servers[s].busy)
            else {
                return;
            };
            self.backlog.pop_front();
            if self.call(slot, serial).is_none() {
                continue;
            }
            self.servers[server].busy += 1;
            let call = &mut self.calls[slot as usize];
            let waited = now - call.since;
            call.server = server;
            call.since = now;
            self.core.metrics.waited(waited);
            let edge = self.servers[server].edge_in;
            self.go(
                slot,
                Stage::ToServer,
                Self::on_edge(edge, now),
                Some(HOP),
                scheduler,
            );
        }
    }

    fn at_server(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let server = self.calls[slot as usize].server;
        if self.coupling == Coupling::Queue {
            // A received message reached its worker (the thread was taken on receive).
            self.start_work(slot, scheduler);
            return;
        }
        if self.servers[server].state == NodeState::Down {
            // Connection refused: the caller gets a 502 at once.
            self.fail(slot, false, scheduler);
            return;
        }
        let line = self.servers[server]
            .line
            .expect("synchronous servers have a line");
        let call = &mut self.calls[slot as usize];
        call.since = now;
        let serial = call.serial;
        self.go(
            slot,
            Stage::Waiting,
            Place::Queued {
                node: line,
                since: now,
            },
            None,
            scheduler,
        );
        self.servers[server].waiting.push_back((slot, serial));
        self.dispatch_server(server, scheduler);
    }

    fn dispatch_server(&mut self, server: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let threads = self.params.integer("threads") as u32;
        while self.servers[server].state != NodeState::Down && self.servers[server].busy < threads {
            let Some((slot, serial)) = self.servers[server].waiting.pop_front() else {
                return;
            };
            let Some(since) = self
                .call(slot, serial)
                .filter(|call| call.stage == Stage::Waiting)
                .map(|call| call.since)
            else {
                continue;
            };
            self.core.metrics.waited(now - since);
            self.servers[server].busy += 1;
            self.start_work(slot, scheduler);
        }
    }

    fn start_work(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let call = &self.calls[slot as usize];
        let (node, work) = (self.servers[call.server].node, call.work);
        self.go(
            slot,
            Stage::Working,
            Place::InService { node, since: now },
            Some(work),
            scheduler,
        );
    }

    /// The server's thread is free again: the call's job is done (or wasted).
    fn reply_done(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let server = self.calls[slot as usize].server;
        self.servers[server].busy = self.servers[server].busy.saturating_sub(1);
        if self.calls[slot as usize].key.is_none() {
            // The caller gave up long ago: work done for nobody.
            self.wasted += 1;
            self.calls.remove(slot as usize);
        } else {
            let edge = self.servers[server].edge_done;
            self.go(
                slot,
                Stage::ToDone,
                Self::on_edge(edge, now),
                Some(HOP),
                scheduler,
            );
        }
        match self.coupling {
            Coupling::Queue => self.dispatch_queue(scheduler),
            _ => self.dispatch_server(server, scheduler),
        }
    }

    fn complete(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(key) = self.calls[slot as usize].key else {
            // The answer came after the caller had given up.
            self.wasted += 1;
            self.calls.remove(slot as usize);
            return;
        };
        if self.coupling.synchronous() {
            self.answer_client(slot, false, now);
        }
        let call = self.calls.remove(slot as usize);
        if let Some(timer) = call.timer {
            scheduler.cancel(timer);
        }
        self.core.requests.finish(key);
        let latency = now - call.born;
        self.core.metrics.completed(now, latency);
        for (met, deadline) in self.met.iter_mut().zip(self.deadlines) {
            if latency <= deadline {
                *met += 1;
            }
        }
    }

    fn next(&mut self, slot: u32, serial: u32, step: u16, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(call) = self.call(slot, serial) else {
            return;
        };
        if call.step != step {
            return;
        }
        let (stage, server, query, key) = (call.stage, call.server, call.query, call.key);
        match stage {
            Stage::ToWeb => self.at_web(slot, scheduler),
            Stage::ToMiddle => self.at_middle(slot, scheduler),
            Stage::ToServer => self.at_server(slot, scheduler),
            Stage::Working => {
                let edge = self.servers[server].edge_db;
                self.go(
                    slot,
                    Stage::ToDatabase,
                    Self::on_edge(edge, now),
                    Some(HOP),
                    scheduler,
                );
            }
            Stage::ToDatabase => {
                let factor = if self.database_slow {
                    self.params.number("slowdown_factor")
                } else {
                    1.0
                };
                let query = SimDuration::from_secs_f64(query.as_secs_f64() * factor);
                let database = self.database;
                self.go(
                    slot,
                    Stage::AtDatabase,
                    Place::InService {
                        node: database,
                        since: now,
                    },
                    Some(query),
                    scheduler,
                );
            }
            Stage::AtDatabase => {
                let node = self.servers[server].node;
                self.go(
                    slot,
                    Stage::Reply,
                    Place::InService { node, since: now },
                    Some(HOP),
                    scheduler,
                );
            }
            Stage::Reply => self.reply_done(slot, scheduler),
            Stage::ToDone => self.complete(slot, scheduler),
            Stage::Invisible => {
                if let Some(key) = key {
                    self.core.requests.next_attempt(key);
                }
                self.enqueue(slot, scheduler);
            }
            Stage::Waiting | Stage::Queued => {}
        }
    }

    fn call_timeout(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let Some(call) = self.call(slot, serial) else {
            return;
        };
        if call.key.is_none() {
            return;
        }
        self.calls[slot as usize].timer = None;
        // HTTP 504 to the client; the server, if it has the call, carries on regardless.
        self.fail(slot, true, scheduler);
    }

    fn set_server_state(&mut self, server: usize, to: NodeState, now: SimTime) {
        let entry = &mut self.servers[server];
        if entry.state == to {
            return;
        }
        entry.state = to;
        let node = entry.node;
        if to != NodeState::Healthy {
            self.tier_hit[1] = true;
        }
        self.core.log.push(now, Notable::StateChanged { node, to });
    }

    fn kill_server(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let server = self
            .servers
            .iter()
            .position(|server| server.state != NodeState::Down)
            .ok_or_else(|| CommandError::NotApplicable {
                reason: "every order server is already down".into(),
            })?;
        self.set_server_state(server, NodeState::Down, now);
        let entry = &mut self.servers[server];
        entry.busy = 0;
        entry.waiting.clear();
        entry.saturated_streak = 0;
        entry.calm_streak = 0;
        let node = entry.node;
        let affected: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, call)| call.server == server)
            .filter(|(_, call)| match call.stage {
                Stage::Working | Stage::ToDatabase | Stage::AtDatabase | Stage::Reply => true,
                Stage::Waiting => self.coupling.synchronous(),
                // A received message on its way to the worker is lost with it.
                Stage::ToServer => !self.coupling.synchronous(),
                _ => false,
            })
            .map(|(slot, _)| slot as u32)
            .collect();
        for slot in affected {
            if self.coupling.synchronous() {
                // Connection reset: the caller gets a 502 now.
                self.fail(slot, false, scheduler);
            } else {
                // Not deleted: the message stays invisible (shown stuck at the dead
                // worker) until its visibility timeout runs out.
                let received = self.calls[slot as usize].since;
                let back = (received + VISIBILITY_TIMEOUT).saturating_since(now);
                self.go(
                    slot,
                    Stage::Invisible,
                    Place::InService { node, since: now },
                    Some(back),
                    scheduler,
                );
            }
        }
        if self.coupling == Coupling::Queue {
            self.dispatch_queue(scheduler);
        }
        Ok(())
    }

    fn set_database_slow(&mut self, slow: bool, now: SimTime) {
        if self.database_slow == slow {
            return;
        }
        self.database_slow = slow;
        let to = if slow {
            self.tier_hit[0] = true;
            NodeState::Unhealthy
        } else {
            NodeState::Healthy
        };
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: self.database,
                to,
            },
        );
    }

    fn restore(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let dead = self
            .servers
            .iter()
            .any(|server| server.state == NodeState::Down);
        if !dead && !self.database_slow {
            return Err(CommandError::NotApplicable {
                reason: "nothing is broken: every server runs and the database is fast".into(),
            });
        }
        self.set_database_slow(false, now);
        for server in 0..self.servers.len() {
            if self.servers[server].state == NodeState::Down {
                // Running again; a server the balancer took out takes no calls until
                // enough health checks pass (shown as starting until then).
                let to = if self.servers[server].in_rotation {
                    NodeState::Healthy
                } else {
                    NodeState::Starting
                };
                self.set_server_state(server, to, now);
                if self.coupling != Coupling::Queue {
                    self.dispatch_server(server, scheduler);
                }
            }
        }
        if self.coupling == Coupling::Queue {
            self.dispatch_queue(scheduler);
        }
        Ok(())
    }

    fn inject(&mut self, id: &str, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        // Check first, so the log reads "injected" before the changes it causes.
        match id {
            "kill-server" if self.servers.iter().all(|s| s.state == NodeState::Down) => {
                return Err(CommandError::NotApplicable {
                    reason: "every order server is already down".into(),
                })
            }
            "slow-database" if self.database_slow => {
                return Err(CommandError::NotApplicable {
                    reason: "the database is already slow".into(),
                })
            }
            "restore"
                if !self.database_slow
                    && self.servers.iter().all(|s| s.state != NodeState::Down) =>
            {
                return Err(CommandError::NotApplicable {
                    reason: "nothing is broken: every server runs and the database is fast".into(),
                })
            }
            "kill-server" | "slow-database" | "restore" => {}
            _ => return Err(unknown_injection(id, INJECTIONS)),
        }
        self.core.log.push(
            now,
            Notable::Injected {
                injection: id.to_owned(),
            },
        );
        match id {
            "kill-server" => self.kill_server(scheduler),
            "slow-database" => {
                self.set_database_slow(true, now);
                Ok(())
            }
            _ => self.restore(scheduler),
        }
    }

    fn health_check(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(self.check_interval(), Event::HealthCheck);
        for server in 0..self.servers.len() {
            let entry = &mut self.servers[server];
            // A shallow check: the server answers if it runs, however slow its database.
            if entry.state == NodeState::Down {
                entry.passed_checks = 0;
                entry.failed_checks += 1;
                if entry.in_rotation && entry.failed_checks >= UNHEALTHY_AFTER {
                    entry.in_rotation = false;
                    let node = entry.node;
                    self.core.log.push(now, Notable::NodeRemoved { node });
                }
            } else {
                entry.failed_checks = 0;
                entry.passed_checks += 1;
                if !entry.in_rotation && entry.passed_checks >= HEALTHY_AFTER {
                    entry.in_rotation = true;
                    let node = entry.node;
                    self.core.log.push(now, Notable::NodeAdded { node });
                    if self.servers[server].state == NodeState::Starting {
                        self.set_server_state(server, NodeState::Healthy, now);
                    }
                }
            }
        }
    }

    /// Once a second: is the web tier answering with errors, are servers saturated?
    fn tier_check(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(TIER_CHECK, Event::TierCheck);
        let answered = std::mem::take(&mut self.caller.interval_answered);
        let errors = std::mem::take(&mut self.caller.interval_errors);
        let share = if answered == 0 {
            0.0
        } else {
            errors as f64 / answered as f64
        };
        if self.web_state == NodeState::Unhealthy {
            self.web_unhealthy_time = self.web_unhealthy_time + TIER_CHECK;
        }
        let next = match self.web_state {
            NodeState::Healthy if share >= WEB_UNHEALTHY_SHARE => NodeState::Unhealthy,
            NodeState::Unhealthy if share < WEB_RECOVERED_SHARE => NodeState::Healthy,
            state => state,
        };
        if next != self.web_state {
            self.web_state = next;
            if next == NodeState::Unhealthy {
                self.tier_hit[2] = true;
            }
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node: self.web,
                    to: next,
                },
            );
        }
        let threads = self.params.integer("threads") as usize;
        let shared_backlog = self.backlog.len();
        for server in 0..self.servers.len() {
            let entry = &mut self.servers[server];
            if entry.state == NodeState::Down {
                continue;
            }
            let waiting = match self.coupling {
                Coupling::Queue => shared_backlog,
                _ => entry.waiting.len(),
            };
            let saturated = entry.busy as usize >= threads && waiting >= threads;
            if saturated {
                entry.saturated_streak += 1;
                entry.calm_streak = 0;
            } else {
                entry.calm_streak += 1;
                entry.saturated_streak = 0;
            }
            let to = match entry.state {
                NodeState::Healthy if entry.saturated_streak >= SATURATION_STREAK => {
                    NodeState::Unhealthy
                }
                NodeState::Unhealthy if entry.calm_streak >= SATURATION_STREAK => {
                    NodeState::Healthy
                }
                state => state,
            };
            self.set_server_state(server, to, now);
        }
    }

    fn update_gauges(&mut self, now: SimTime) {
        let backlog = match self.coupling {
            Coupling::Queue => self.backlog.len(),
            _ => self.servers.iter().map(|s| s.waiting.len()).sum(),
        };
        let busy: u32 = self.servers.iter().map(|s| s.busy).sum();
        self.backlog_peak = self.backlog_peak.max(backlog);
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_backlog, now, backlog as i64);
        metrics.set_gauge(self.gauge_web, now, self.web_busy as i64);
        metrics.set_gauge(self.gauge_servers, now, busy as i64);
    }

    /// Jobs waiting: queue messages, or calls in the servers' accept lines.
    pub fn backlog(&self) -> usize {
        match self.coupling {
            Coupling::Queue => self.backlog.len(),
            _ => self.servers.iter().map(|s| s.waiting.len()).sum(),
        }
    }

    /// Share of decided jobs (done, failed, or still running past the deadline) that
    /// were done within `deadlines[index]`, in percent (100 when none is decided yet).
    fn within_pct(&self, index: usize, now: SimTime) -> f64 {
        let counters = self.core.metrics.counters();
        let deadline = self.deadlines[index];
        let overdue = self
            .core
            .requests
            .iter()
            .filter(|request| now - request.born > deadline)
            .count() as u64;
        let decided = counters.completed + counters.failed + counters.rejected + overdue;
        if decided == 0 {
            100.0
        } else {
            100.0 * self.met[index] as f64 / decided as f64
        }
    }
}

impl Model for CouplingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::Next { slot, serial, step } => self.next(slot, serial, step, scheduler),
            Event::CallTimeout { slot, serial } => self.call_timeout(slot, serial, scheduler),
            Event::HealthCheck => self.health_check(scheduler),
            Event::TierCheck => self.tier_check(scheduler),
            Event::ScheduledFailure => {
                let id = match self.params.choice("scheduled_failure") {
                    "kill-server" => "kill-server",
                    _ => "slow-database",
                };
                // Refused only if that failure is already in place: nothing to add.
                let _ = self.inject(id, scheduler);
            }
            Event::ScheduledRestore => {
                let _ = self.inject("restore", scheduler);
            }
        }
        self.update_gauges(now);
    }
}

impl LessonModel for CouplingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.clients));
        snapshot.nodes.push(NodeView {
            state: self.web_state,
            busy: self.web_busy,
            capacity: self.params.integer("web_threads") as u32,
            ..plain(self.web)
        });
        if let Some(middle) = self.middle {
            snapshot.nodes.push(NodeView {
                queued: self.backlog.len() as u32,
                ..plain(middle)
            });
        }
        snapshot.nodes.push(NodeView {
            state: if self.database_slow {
                NodeState::Unhealthy
            } else {
                NodeState::Healthy
            },
            ..plain(self.database)
        });
        snapshot.nodes.push(plain(self.done));
        let threads = self.params.integer("threads") as u32;
        for server in &self.servers {
            if let Some(line) = server.line {
                snapshot.nodes.push(NodeView {
                    queued: server.waiting.len() as u32,
                    ..plain(line)
                });
            }
            snapshot.nodes.push(NodeView {
                node: server.node,
                state: server.state,
                busy: server.busy,
                capacity: if server.state == NodeState::Down {
                    0
                } else {
                    threads
                },
                queued: 0,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let caller = &self.caller;
        let error_pct = if caller.answered == 0 {
            0.0
        } else {
            100.0 * caller.errors as f64 / caller.answered as f64
        };
        let figure = |key, label, value, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        vec![
            figure("caller_errors", "Caller errors", caller.errors as f64, ""),
            figure(
                "caller_p99_s",
                "Caller p99 wait",
                caller.latency.quantile_secs(0.99),
                "s",
            ),
            figure(
                "ripple_depth",
                "Tiers hit (of 3)",
                self.tier_hit.iter().filter(|&&hit| hit).count() as f64,
                "",
            ),
            figure("backlog", "Jobs waiting", self.backlog() as f64, ""),
            figure(
                "within_hard_pct",
                "Within hard deadline",
                self.within_pct(0, now),
                "%",
            ),
            figure(
                "within_soft_pct",
                "Within soft deadline",
                self.within_pct(1, now),
                "%",
            ),
            figure(
                "within_batch_pct",
                "Within batch deadline",
                self.within_pct(2, now),
                "%",
            ),
            figure(
                "backlog_peak",
                "Most jobs waiting",
                self.backlog_peak as f64,
                "",
            ),
            figure(
                "web_unhealthy_s",
                "Web tier unhealthy",
                self.web_unhealthy_time.as_secs_f64(),
                "s",
            ),
            figure("caller_error_pct", "Caller error rate", error_pct, "%"),
            figure("wasted_calls", "Wasted calls", self.wasted as f64, ""),
        ]
    }

    fn apply(
        &mut self,
        command: &LessonCommand,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        let now = scheduler.now();
        let result = match command {
            LessonCommand::Inject(id) => self.inject(id, scheduler),
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "rate" => {
                        let rate = self.params.number("rate");
                        self.arrivals.arrivals.set_shape(steady(rate));
                        self.arrivals.rearm(scheduler);
                    }
                    "threads" => match self.coupling {
                        Coupling::Queue => self.dispatch_queue(scheduler),
                        _ => {
                            for server in 0..self.servers.len() {
                                self.dispatch_server(server, scheduler);
                            }
                        }
                    },
                    // Times, factor, timeout, web threads and check interval apply to the
                    // next call or check.
                    _ => {}
                }
                Ok(())
            }
        };
        self.update_gauges(now);
        result
    }
}
