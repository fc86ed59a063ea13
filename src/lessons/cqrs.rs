//! Lesson `cqrs`: command query responsibility segregation. Commands (writes) go to a
//! write store; every accepted write appends an event to a stream; a projector applies
//! the events, one at a time and in commit order, to a read model that read replicas
//! serve. Queries (reads, typically many more than writes: 20:1 by default) never touch
//! the write store, so the read side scales on its own (live `replicas`). The price is
//! projection lag: until the projector has applied a write, reads of that entity return
//! the old value (a stale read). Compare with `model = single`, where one database serves
//! reads and writes alike: never stale, but reads and writes queue for the same
//! connections, so read traffic slows writes down and only the one database can grow.
//! Run both values of `model` on one seed: arrivals, targets and service times come from
//! the same named streams, so the difference is the pattern alone.
//!
//! Sources: Greg Young, "CQRS Documents" (2010) and Martin Fowler, "CQRS" (bliki, 2011):
//! separate models for updating and for reading, the read side often fed by events and
//! therefore eventually consistent; AWS Prescriptive Guidance, "Cloud design patterns,
//! architectures, and implementations": "CQRS pattern" (a write database and a read
//! database scaled independently, synchronised by events, e.g. DynamoDB Streams and a
//! Lambda function updating the read store). Lambda's `IteratorAge` metric for stream
//! sources is the AWS name of the projection lag measured here.
//!
//! The model, in short (definitions and equations in docs/models/cqrs.md):
//! - Reads and writes arrive as two Poisson streams. A write updates one entity, drawn
//!   uniformly from `entities`. A read targets, with probability `fresh_read_share`, one
//!   of the last 16 committed writes' entities (someone reading back what was just
//!   written), otherwise a uniform entity.
//! - Every store node (write store, each read replica, the single database) has
//!   `connections` parallel connections and a FIFO queue of at most 500 waiting requests;
//!   a request arriving at a full queue is refused. Service times are log-normal
//!   (cv 0.5) with means `read_time` and `write_time`, drawn at arrival.
//! - A write is accepted when its transaction commits (service end). In `cqrs` mode with
//!   `projection = async` the commit appends an event (sequence number = commit order);
//!   the projector can see it `event_delay` later and applies one event in
//!   1 / `projector_rate` seconds, strictly in sequence order, each exactly once. With
//!   `projection = inline` the write transaction also updates the read model (its
//!   service time grows by the apply time) and there is no lag.
//! - A read returns the read model's value at the end of its query; it is stale if the
//!   entity has an accepted write that the read model has not applied yet.
//! - Projection lag = now − commit time of the oldest unapplied event (0 when none).
//!   The projector is `unhealthy` (lagging) once the lag exceeds `event_delay` + 1 s,
//!   `down` while paused, and `healthy` again when it has applied every event it can see:
//!   "projection caught up". After a pause with backlog B, with writes at w/s and the
//!   projector at r/s, catching up takes about B / (r − w).
//! - Read replicas: `replicas` of at most 3 serve; a new one starts for 10 s first; a
//!   removed one drains its queue and goes off. They all serve the same projected read
//!   model (the projection is the only lag modelled here).

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::histogram::{LatencyHistogram, PRECISE};
use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng};
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation, TimerHandle};
use crate::sim::snapshot::{Figure, NodeState, NodeView, Notable, Snapshot};
use crate::sim::time::{SimDuration, SimTime};
use crate::sim::topology::{EdgeId, NodeId, NodeKind, Topology};
use crate::sim::traffic::{PoissonArrivals, TrafficShape};

use super::core::{ArrivalTimer, ModelCore};
use super::params::number;
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "cqrs",
    title: "CQRS: separate read and write models",
    group: LessonGroup::Messaging,
    summary: "Writes go to a command model, a projector feeds a read model that replicas serve: reads scale on their own, at the price of projection lag and stale reads.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("model"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "model",
        label: "Data model",
        unit: "",
        help: "single: one database serves reads and writes; cqrs: writes go to a write store, a projector updates a read model that read replicas serve.",
        kind: ParamKind::Choice {
            options: &["single", "cqrs"],
            default: "cqrs",
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "projection",
        label: "Projection (CQRS)",
        unit: "",
        help: "async: the projector applies events after the write commits (lag, stale reads); inline: the write transaction updates the read model too (no lag, slower writes).",
        kind: ParamKind::Choice {
            options: &["async", "inline"],
            default: "async",
        },
        liveness: Liveness::Restart,
    },
    number("read_rate", "Reads (queries)", "req/s", "Queries per second (Poisson).", (0.0, 5000.0, 10.0, 400.0)),
    number("write_rate", "Writes (commands)", "req/s", "Commands per second (Poisson); each changes one entity.", (0.0, 1000.0, 1.0, 20.0)),
    ParamSpec {
        name: "replicas",
        label: "Read replicas (CQRS)",
        unit: "",
        help: "Replicas serving the read model; a new one starts for 10 s. The write side does not change.",
        kind: ParamKind::Integer {
            min: 1,
            max: MAX_REPLICAS as i64,
            default: 2,
        },
        liveness: Liveness::Live,
    },
    number("projector_rate", "Projector speed", "events/s", "Events the projector applies per second (one at a time, in order).", (1.0, 5000.0, 1.0, 50.0)),
    number("event_delay", "Event delivery delay", "ms", "Time from a write's commit until the projector can see its event (stream and polling delay).", (0.0, 10000.0, 10.0, 100.0)),
    number("read_time", "Query time", "ms", "Mean time a store needs for one read (log-normal, cv 0.5).", (1.0, 1000.0, 1.0, 15.0)),
    number("write_time", "Write time", "ms", "Mean time a store needs for one write transaction (log-normal, cv 0.5).", (1.0, 2000.0, 1.0, 40.0)),
    number("fresh_read_share", "Reads of fresh writes", "", "Share of reads that read back an entity written moments ago (one of the last 16 writes).", (0.0, 1.0, 0.05, 0.2)),
    ParamSpec {
        name: "entities",
        label: "Entities",
        unit: "",
        help: "How many distinct entities (orders, products) writes and reads spread over.",
        kind: ParamKind::Integer {
            min: 10,
            max: 100_000,
            default: 1000,
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "connections",
        label: "Connections per store",
        unit: "",
        help: "Requests each store (database, write store, every read replica) serves at once.",
        kind: ParamKind::Integer {
            min: 1,
            max: 64,
            default: 8,
        },
        liveness: Liveness::Restart,
    },
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "pause-projector",
        label: "Pause the projector",
        help: "The projector stops applying events (it finishes the one in hand); writes keep committing.",
    },
    InjectionSpec {
        id: "resume-projector",
        label: "Resume the projector",
        help: "The projector works through its backlog again.",
    },
    InjectionSpec {
        id: "write-burst",
        label: "Write burst (×5, 30 s)",
        help: "Five times the write rate for 30 seconds.",
    },
    InjectionSpec {
        id: "read-spike",
        label: "Read spike (×3, 60 s)",
        help: "Three times the read rate for 60 seconds.",
    },
];

/// One network hop (client to store, store to the response).
pub const HOP: SimDuration = SimDuration::from_millis(10);
/// The projector counts as lagging once the lag exceeds the delivery delay by this much.
pub const LAG_ALARM: SimDuration = SimDuration::from_secs(1);
/// How often the lag is sampled for the chart and the lagging check.
pub const TICK: SimDuration = SimDuration::from_millis(250);
/// Waiting requests a store holds before it refuses more.
pub const QUEUE_LIMIT: usize = 500;
/// Reads of fresh writes pick one of this many latest committed writes.
pub const RECENT: usize = 16;
/// Read replica slots (also the slots drawn).
pub const MAX_REPLICAS: usize = 3;
/// Time a newly added read replica takes before it serves.
pub const REPLICA_WARMUP: SimDuration = SimDuration::from_secs(10);
/// Spread of service times (coefficient of variation of the log-normal).
pub const SERVICE_CV: f64 = 0.5;
const WRITE_BURST: (f64, SimDuration) = (5.0, SimDuration::from_secs(30));
const READ_SPIKE: (f64, SimDuration) = (3.0, SimDuration::from_secs(60));

const READ: usize = 0;
const WRITE: usize = 1;

/// Events of the model. Requests are named by their slab slot (no request is ever
/// cancelled, so a slot is live until its `Delivered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival {
        kind: u8,
    },
    /// A read reaches the query API, which picks a replica.
    AtRouter {
        req: u32,
    },
    /// A request reaches its store: it starts, waits or is refused.
    AtStore {
        req: u32,
    },
    /// The store finished the request (a write commits, a read returns its value).
    Served {
        req: u32,
    },
    /// The response arrives: the request completes.
    Delivered {
        req: u32,
    },
    /// The oldest event's delivery delay has passed.
    ProjectorWake,
    /// The projector finished applying the event at the head of the stream.
    Applied,
    ReplicaReady {
        replica: u8,
        generation: u32,
    },
    BurstEnd {
        kind: u8,
        generation: u32,
    },
    Tick,
}

struct Req {
    kind: usize,
    key: RequestKey,
    born: SimTime,
    /// Service time drawn at arrival (before an inline projection's extra work).
    base: SimDuration,
    entity: u32,
    store: usize,
}

struct Store {
    node: NodeId,
    /// Where its waiting requests are drawn (a queue node, or the store itself).
    wait_node: NodeId,
    in_edge: EdgeId,
    out_edge: EdgeId,
    busy: u32,
    queue: VecDeque<u32>,
    /// Requests on their way here (a draining replica turns off only when none are).
    inbound: u32,
    state: NodeState,
    generation: u32,
}

/// One event in the stream from the write side to the projector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamEvent {
    /// Commit order, from 1.
    pub seq: u64,
    pub entity: u32,
    pub committed: SimTime,
}

/// The latest read a store answered (for tests of the staleness rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub entity: u32,
    pub stale: bool,
    pub at: SimTime,
}

#[derive(Default)]
struct Burst {
    active: bool,
    generation: u32,
}

pub struct CqrsModel {
    params: ParamValues,
    cqrs: bool,
    inline: bool,
    topology: Topology,
    clients: NodeId,
    sinks: Vec<NodeId>,
    router: Option<(NodeId, EdgeId)>,
    stream_node: Option<NodeId>,
    projector_node: Option<NodeId>,
    /// `[0]`: the write store (cqrs) or the database (single); then the read replicas.
    stores: Vec<Store>,
    connections: u32,
    requests: Slab<Req>,
    arrivals: [ArrivalTimer<Event>; 2],
    service_rngs: [SimRng; 2],
    target_rngs: [SimRng; 2],
    accepted: Vec<u32>,
    applied: Vec<u32>,
    recent: [u32; RECENT],
    recent_len: usize,
    recent_next: usize,
    stream: VecDeque<StreamEvent>,
    applying: bool,
    wake: Option<TimerHandle>,
    paused: bool,
    projector_state: NodeState,
    appended: u64,
    applied_events: u64,
    last_applied: Option<StreamEvent>,
    episode_start: Option<SimTime>,
    drain_from: Option<SimTime>,
    last_catch_up: Option<SimDuration>,
    catch_ups: u32,
    max_lag: SimDuration,
    bursts: [Burst; 2],
    reads_served: u64,
    stale_reads: u64,
    refused: [u64; 2],
    latency: [LatencyHistogram; 2],
    last_read: Option<ReadRecord>,
    core: ModelCore,
    gauge_waiting: GaugeId,
    gauge_lag: GaugeId,
    gauge_stale: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

fn store(node: NodeId, wait_node: NodeId, in_edge: EdgeId, out_edge: EdgeId) -> Store {
    Store {
        node,
        wait_node,
        in_edge,
        out_edge,
        busy: 0,
        queue: VecDeque::new(),
        inbound: 0,
        state: NodeState::Healthy,
        generation: 0,
    }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<CqrsModel> {
    let cqrs = params.choice("model") == "cqrs";
    let inline = cqrs && params.choice("projection") == "inline";
    let mut t = Topology::default();
    let clients = t.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.45);
    let mut stores = Vec::new();
    let (mut sinks, mut router, mut stream_node, mut projector_node) = (vec![], None, None, None);
    if cqrs {
        let write = t.add_node("write-store", "Write store", NodeKind::Store, 0.2, 0.06);
        let acks = t.add_node("acks", "Write acks", NodeKind::Sink, 1.0, 0.06);
        let stream = t.add_node(
            "event-stream",
            "Events to project",
            NodeKind::Queue,
            0.45,
            0.27,
        );
        let projector = t.add_node("projector", "Projector", NodeKind::Server, 0.75, 0.27);
        let api = t.add_node("query-api", "Query API", NodeKind::Router, 0.22, 0.78);
        let results = t.add_node("results", "Results", NodeKind::Sink, 1.0, 0.76);
        let to_write = t.add_edge(clients, write);
        let to_acks = t.add_edge(write, acks);
        t.add_edge(write, stream);
        t.add_edge(stream, projector);
        let to_api = t.add_edge(clients, api);
        stores.push(store(write, write, to_write, to_acks));
        for index in 0..MAX_REPLICAS {
            let y = 0.5 + 0.22 * index as f32;
            let replica = t.add_node(
                &format!("replica-{}", index + 1),
                &format!("Read replica {}", index + 1),
                NodeKind::Store,
                0.55,
                y,
            );
            let in_edge = t.add_edge(api, replica);
            let out_edge = t.add_edge(replica, results);
            stores.push(store(replica, replica, in_edge, out_edge));
        }
        sinks = vec![acks, results];
        router = Some((api, to_api));
        stream_node = Some(stream);
        projector_node = Some(projector);
    } else {
        let queue = t.add_node(
            "db-queue",
            "Waiting for a connection",
            NodeKind::Queue,
            0.33,
            0.45,
        );
        let db = t.add_node("database", "Database", NodeKind::Store, 0.66, 0.45);
        let responses = t.add_node("responses", "Responses", NodeKind::Sink, 1.0, 0.45);
        let in_edge = t.add_edge(clients, queue);
        t.add_edge(queue, db);
        let out_edge = t.add_edge(db, responses);
        stores.push(store(db, queue, in_edge, out_edge));
        sinks.push(responses);
    }
    let replicas = params.integer("replicas") as usize;
    for (index, replica) in stores.iter_mut().enumerate().skip(1) {
        if index > replicas {
            replica.state = NodeState::Off;
        }
    }
    let core = ModelCore::new(vec![
        "events_waiting_to_project",
        "projection_lag_ms",
        "stale_reads_so_far",
    ]);
    let arrival = |kind: usize, name: &str| {
        ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number(&format!("{name}_rate"))),
                SimRng::new(seed.0, &format!("arrivals-{name}s")),
            ),
            Event::Arrival { kind: kind as u8 },
        )
    };
    let entities = params.integer("entities") as usize;
    let mut model = CqrsModel {
        params: params.clone(),
        cqrs,
        inline,
        topology: t,
        clients,
        sinks,
        router,
        stream_node,
        projector_node,
        stores,
        connections: params.integer("connections") as u32,
        requests: Slab::new(),
        arrivals: [arrival(READ, "read"), arrival(WRITE, "write")],
        service_rngs: [
            SimRng::new(seed.0, "read-service"),
            SimRng::new(seed.0, "write-service"),
        ],
        target_rngs: [
            SimRng::new(seed.0, "read-targets"),
            SimRng::new(seed.0, "write-targets"),
        ],
        accepted: vec![0; entities],
        applied: vec![0; entities],
        recent: [0; RECENT],
        recent_len: 0,
        recent_next: 0,
        stream: VecDeque::new(),
        applying: false,
        wake: None,
        paused: false,
        projector_state: if cqrs && !inline {
            NodeState::Healthy
        } else {
            NodeState::Off
        },
        appended: 0,
        applied_events: 0,
        last_applied: None,
        episode_start: None,
        drain_from: None,
        last_catch_up: None,
        catch_ups: 0,
        max_lag: SimDuration::ZERO,
        bursts: Default::default(),
        reads_served: 0,
        stale_reads: 0,
        refused: [0; 2],
        latency: [
            LatencyHistogram::new(PRECISE),
            LatencyHistogram::new(PRECISE),
        ],
        last_read: None,
        gauge_waiting: core.gauge("events_waiting_to_project"),
        gauge_lag: core.gauge("projection_lag_ms"),
        gauge_stale: core.gauge("stale_reads_so_far"),
        core,
    };
    let mut scheduler = Scheduler::new();
    for timer in &mut model.arrivals {
        timer.rearm(&mut scheduler);
    }
    scheduler.schedule_in(TICK, Event::Tick);
    Simulation::new(model, scheduler)
}

fn millis(ms: f64) -> SimDuration {
    SimDuration::from_secs_f64(ms / 1000.0)
}

impl CqrsModel {
    // ----- what tests read -----

    /// Writes accepted (committed) and applied to the read model for one entity.
    pub fn entity_versions(&self, entity: u32) -> (u32, u32) {
        (
            self.accepted[entity as usize],
            self.applied[entity as usize],
        )
    }

    /// Events committed but not yet applied by the projector.
    pub fn unapplied_events(&self) -> usize {
        self.stream.len()
    }

    /// The newest event appended to the stream, if any.
    pub fn last_appended(&self) -> Option<StreamEvent> {
        self.stream
            .back()
            .copied()
            .filter(|e| e.seq == self.appended)
    }

    /// Events appended to the stream and events the projector applied, since the start.
    pub fn event_counts(&self) -> (u64, u64) {
        (self.appended, self.applied_events)
    }

    /// The event the projector applied last.
    pub fn last_applied(&self) -> Option<StreamEvent> {
        self.last_applied
    }

    /// The latest read answered by a store.
    pub fn last_read(&self) -> Option<ReadRecord> {
        self.last_read
    }

    pub fn projector_state(&self) -> NodeState {
        self.projector_state
    }

    /// The projection lag now: age of the oldest unapplied event.
    pub fn lag(&self, now: SimTime) -> SimDuration {
        self.stream
            .front()
            .map_or(SimDuration::ZERO, |e| now.saturating_since(e.committed))
    }

    /// The last catch-up time (see the module notes) and how many catch-ups there were.
    pub fn catch_up(&self) -> (Option<SimDuration>, u32) {
        (self.last_catch_up, self.catch_ups)
    }

    /// States of the read replica slots.
    pub fn replica_states(&self) -> Vec<NodeState> {
        self.stores.iter().skip(1).map(|s| s.state).collect()
    }

    // ----- requests -----

    fn arrive(&mut self, kind: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let mean = millis(self.params.number(if kind == READ {
            "read_time"
        } else {
            "write_time"
        }));
        let base = ServiceTime::LogNormal {
            mean,
            cv: SERVICE_CV,
        }
        .sample(&mut self.service_rngs[kind]);
        let entities = self.accepted.len() as u64;
        let rng = &mut self.target_rngs[kind];
        let entity = if kind == READ
            && rng.chance(self.params.number("fresh_read_share"))
            && self.recent_len > 0
        {
            self.recent[rng.below(self.recent_len as u64) as usize]
        } else {
            rng.below(entities) as u32
        };
        // Reads go through the query API (cqrs); everything else straight to store 0.
        let via_router = if kind == READ { self.router } else { None };
        let edge = via_router.map_or(self.stores[0].in_edge, |(_, to_api)| to_api);
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        let req = self.requests.insert(Req {
            kind,
            key,
            born: now,
            base,
            entity,
            store: 0,
        }) as u32;
        let event = if via_router.is_some() {
            Event::AtRouter { req }
        } else {
            self.stores[0].inbound += 1;
            Event::AtStore { req }
        };
        scheduler.schedule_in(HOP, event);
    }

    fn refuse(&mut self, req: u32, now: SimTime) {
        let r = self.requests.remove(req as usize);
        self.core.requests.finish(r.key);
        self.core.metrics.rejected(now);
        self.refused[r.kind] += 1;
    }

    /// The query API sends a read to the serving replica with the fewest requests.
    fn at_router(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let chosen = (1..self.stores.len())
            .filter(|&i| self.stores[i].state == NodeState::Healthy)
            .min_by_key(|&i| self.stores[i].busy as usize + self.stores[i].queue.len());
        let Some(index) = chosen else {
            self.refuse(req, now);
            return;
        };
        let store = &mut self.stores[index];
        store.inbound += 1;
        let edge = store.in_edge;
        let r = &mut self.requests[req as usize];
        r.store = index;
        self.core.requests.move_to(
            r.key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::AtStore { req });
    }

    fn at_store(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let index = self.requests[req as usize].store;
        let store = &mut self.stores[index];
        store.inbound -= 1;
        if store.busy < self.connections {
            self.core.metrics.waited(SimDuration::ZERO);
            self.start(req, scheduler);
        } else if store.queue.len() >= QUEUE_LIMIT {
            self.refuse(req, now);
            self.maybe_off(index, now);
        } else {
            store.queue.push_back(req);
            let node = store.wait_node;
            let key = self.requests[req as usize].key;
            self.core
                .requests
                .move_to(key, Place::Queued { node, since: now });
        }
    }

    fn start(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let extra = self.apply_time();
        let r = &self.requests[req as usize];
        let mut service = r.base;
        if r.kind == WRITE && self.inline {
            service = service + extra;
        }
        let store = &mut self.stores[r.store];
        store.busy += 1;
        self.core.requests.move_to(
            r.key,
            Place::InService {
                node: store.node,
                since: now,
            },
        );
        scheduler.schedule_in(service, Event::Served { req });
    }

    fn served(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let (kind, entity, index, key) = {
            let r = &self.requests[req as usize];
            (r.kind, r.entity, r.store, r.key)
        };
        if kind == WRITE {
            self.commit(entity, scheduler);
        } else {
            let (accepted, applied) = self.entity_versions(entity);
            let stale = applied < accepted;
            self.reads_served += 1;
            if stale {
                self.stale_reads += 1;
                self.core
                    .metrics
                    .set_gauge(self.gauge_stale, now, self.stale_reads as i64);
            }
            self.last_read = Some(ReadRecord {
                entity,
                stale,
                at: now,
            });
        }
        let store = &mut self.stores[index];
        store.busy -= 1;
        let edge = store.out_edge;
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::Delivered { req });
        if let Some(next) = self.stores[index].queue.pop_front() {
            if let Place::Queued { since, .. } = self
                .core
                .requests
                .get(self.requests[next as usize].key)
                .place
            {
                self.core.metrics.waited(now - since);
            }
            self.start(next, scheduler);
        }
        self.maybe_off(index, now);
    }

    fn delivered(&mut self, req: u32, now: SimTime) {
        let r = self.requests.remove(req as usize);
        self.core.requests.finish(r.key);
        let latency = now - r.born;
        self.core.metrics.completed(now, latency);
        self.latency[r.kind].record(latency);
    }

    /// A write commits: the command side accepts it.
    fn commit(&mut self, entity: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.accepted[entity as usize] += 1;
        self.recent[self.recent_next] = entity;
        self.recent_next = (self.recent_next + 1) % RECENT;
        self.recent_len = (self.recent_len + 1).min(RECENT);
        if !self.cqrs || self.inline {
            // Same store, or the same transaction: the read side has it at once.
            self.applied[entity as usize] += 1;
            return;
        }
        self.appended += 1;
        self.stream.push_back(StreamEvent {
            seq: self.appended,
            entity,
            committed: now,
        });
        self.set_waiting_gauge(now);
        self.project(scheduler);
    }

    // ----- projector -----

    fn apply_time(&self) -> SimDuration {
        SimDuration::from_secs_f64(1.0 / self.params.number("projector_rate"))
    }

    fn set_waiting_gauge(&mut self, now: SimTime) {
        self.core
            .metrics
            .set_gauge(self.gauge_waiting, now, self.stream.len() as i64);
    }

    /// Starts applying the oldest event if the projector is free and can see it; arranges
    /// a wake-up for when it becomes visible; notes "caught up" when nothing visible waits.
    fn project(&mut self, scheduler: &mut Scheduler<Event>) {
        if !self.cqrs || self.inline || self.paused || self.applying {
            return;
        }
        let now = scheduler.now();
        if let Some(front) = self.stream.front() {
            let visible = front.committed + millis(self.params.number("event_delay"));
            if visible <= now {
                self.applying = true;
                scheduler.schedule_in(self.apply_time(), Event::Applied);
                return;
            }
            if self.wake.is_none() {
                self.wake = Some(scheduler.schedule_timer_in(visible - now, Event::ProjectorWake));
            }
        }
        if self.projector_state == NodeState::Unhealthy {
            let from = self.drain_from.or(self.episode_start).unwrap_or(now);
            self.last_catch_up = Some(now - from);
            self.catch_ups += 1;
            self.episode_start = None;
            self.drain_from = None;
            self.set_projector_state(NodeState::Healthy, now);
        }
    }

    fn applied_one(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.applying = false;
        let event = self
            .stream
            .pop_front()
            .expect("the projector applies only events in the stream");
        self.applied[event.entity as usize] += 1;
        self.applied_events += 1;
        self.last_applied = Some(event);
        self.max_lag = self.max_lag.max(now - event.committed);
        self.set_waiting_gauge(now);
        self.project(scheduler);
    }

    fn set_projector_state(&mut self, to: NodeState, now: SimTime) {
        if self.projector_state == to {
            return;
        }
        self.projector_state = to;
        if let Some(node) = self.projector_node {
            self.core.log.push(now, Notable::StateChanged { node, to });
        }
    }

    /// Something that lets the projector gain ground happened (resume, burst over, rate
    /// change): a catch-up under way is timed from here.
    fn drain_starts(&mut self, now: SimTime) {
        if self.projector_state == NodeState::Unhealthy {
            self.drain_from = Some(now);
        }
    }

    fn tick(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(TICK, Event::Tick);
        if !self.cqrs || self.inline {
            return;
        }
        let lag = self.lag(now);
        self.max_lag = self.max_lag.max(lag);
        self.core
            .metrics
            .set_gauge(self.gauge_lag, now, (lag.ticks() / 1000) as i64);
        let alarm = millis(self.params.number("event_delay")) + LAG_ALARM;
        if self.projector_state == NodeState::Healthy && lag > alarm {
            self.episode_start = Some(now);
            self.drain_from = None;
            self.set_projector_state(NodeState::Unhealthy, now);
        }
    }

    // ----- replicas -----

    fn set_replica_state(&mut self, index: usize, to: NodeState, now: SimTime) {
        let store = &mut self.stores[index];
        if store.state != to {
            store.state = to;
            let node = store.node;
            self.core.log.push(now, Notable::StateChanged { node, to });
        }
    }

    /// A draining replica with nothing left to do goes off.
    fn maybe_off(&mut self, index: usize, now: SimTime) {
        let store = &self.stores[index];
        if store.state == NodeState::Draining
            && store.busy == 0
            && store.queue.is_empty()
            && store.inbound == 0
        {
            self.set_replica_state(index, NodeState::Off, now);
        }
    }

    fn set_replicas(&mut self, scheduler: &mut Scheduler<Event>) {
        if !self.cqrs {
            return;
        }
        let now = scheduler.now();
        let wanted = self.params.integer("replicas") as usize;
        for index in 1..self.stores.len() {
            let want = index <= wanted;
            match (want, self.stores[index].state) {
                (true, NodeState::Off) => {
                    let store = &mut self.stores[index];
                    store.generation += 1;
                    let generation = store.generation;
                    scheduler.schedule_in(
                        REPLICA_WARMUP,
                        Event::ReplicaReady {
                            replica: index as u8,
                            generation,
                        },
                    );
                    self.set_replica_state(index, NodeState::Starting, now);
                }
                (true, NodeState::Draining) => {
                    self.set_replica_state(index, NodeState::Healthy, now)
                }
                (false, NodeState::Healthy) => {
                    self.set_replica_state(index, NodeState::Draining, now);
                    self.maybe_off(index, now);
                }
                (false, NodeState::Starting) => {
                    self.stores[index].generation += 1;
                    self.set_replica_state(index, NodeState::Off, now);
                }
                _ => {}
            }
        }
    }

    // ----- bursts -----

    fn start_burst(&mut self, kind: usize, scheduler: &mut Scheduler<Event>) {
        let (factor, length) = if kind == WRITE {
            WRITE_BURST
        } else {
            READ_SPIKE
        };
        let burst = &mut self.bursts[kind];
        burst.active = true;
        burst.generation += 1;
        let generation = burst.generation;
        self.set_multiplier(kind, factor, scheduler);
        scheduler.schedule_in(
            length,
            Event::BurstEnd {
                kind: kind as u8,
                generation,
            },
        );
    }

    fn set_multiplier(&mut self, kind: usize, factor: f64, scheduler: &mut Scheduler<Event>) {
        self.arrivals[kind]
            .arrivals
            .set_multiplier(factor)
            .expect("burst factors are finite and positive");
        self.arrivals[kind].rearm(scheduler);
    }

    fn p99_ms(&self, kind: usize) -> f64 {
        self.latency[kind].quantile_secs(0.99) * 1000.0
    }
}

impl Model for CqrsModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival { kind } => {
                let kind = kind as usize;
                self.arrivals[kind].fired();
                self.arrive(kind, scheduler);
                self.arrivals[kind].rearm(scheduler);
            }
            Event::AtRouter { req } => self.at_router(req, scheduler),
            Event::AtStore { req } => self.at_store(req, scheduler),
            Event::Served { req } => self.served(req, scheduler),
            Event::Delivered { req } => self.delivered(req, now),
            Event::ProjectorWake => {
                self.wake = None;
                self.project(scheduler);
            }
            Event::Applied => self.applied_one(scheduler),
            Event::ReplicaReady {
                replica,
                generation,
            } => {
                let index = replica as usize;
                let store = &self.stores[index];
                if store.generation == generation && store.state == NodeState::Starting {
                    self.set_replica_state(index, NodeState::Healthy, now);
                }
            }
            Event::BurstEnd { kind, generation } => {
                let kind = kind as usize;
                if self.bursts[kind].generation == generation && self.bursts[kind].active {
                    self.bursts[kind].active = false;
                    self.set_multiplier(kind, 1.0, scheduler);
                    if kind == WRITE {
                        self.drain_starts(now);
                    }
                }
            }
            Event::Tick => self.tick(scheduler),
        }
    }
}

impl LessonModel for CqrsModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.clients));
        for &sink in &self.sinks {
            snapshot.nodes.push(plain(sink));
        }
        if let Some((router, _)) = self.router {
            snapshot.nodes.push(plain(router));
        }
        if let (Some(stream), Some(projector)) = (self.stream_node, self.projector_node) {
            let waiting = self.stream.len() as u32 - u32::from(self.applying);
            snapshot.nodes.push(NodeView {
                queued: waiting,
                ..plain(stream)
            });
            snapshot.nodes.push(NodeView {
                state: self.projector_state,
                busy: u32::from(self.applying),
                capacity: u32::from(self.projector_state != NodeState::Off),
                ..plain(projector)
            });
        }
        for store in &self.stores {
            let off = store.state == NodeState::Off;
            snapshot.nodes.push(NodeView {
                node: store.node,
                state: store.state,
                busy: store.busy,
                capacity: if off { 0 } else { self.connections },
                queued: store.queue.len() as u32,
            });
            if store.wait_node != store.node {
                snapshot.nodes.push(NodeView {
                    queued: store.queue.len() as u32,
                    ..plain(store.wait_node)
                });
            }
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let pct = if self.reads_served == 0 {
            0.0
        } else {
            100.0 * self.stale_reads as f64 / self.reads_served as f64
        };
        let figure = |key, label, value, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        let lag_now = self.lag(now);
        vec![
            figure("stale_reads", "Stale reads", self.stale_reads as f64, ""),
            // Most important first: the side-by-side view shows the first four.
            figure("read_p99_ms", "Read p99", self.p99_ms(READ), "ms"),
            figure("write_p99_ms", "Write p99", self.p99_ms(WRITE), "ms"),
            figure(
                "writes_refused",
                "Writes refused (store full)",
                self.refused[WRITE] as f64,
                "",
            ),
            figure("stale_read_pct", "Reads that were stale", pct, "%"),
            figure(
                "projection_lag_s",
                "Projection lag now",
                lag_now.as_secs_f64(),
                "s",
            ),
            figure(
                "max_lag_s",
                "Largest projection lag",
                self.max_lag.max(lag_now).as_secs_f64(),
                "s",
            ),
            figure(
                "events_waiting",
                "Events waiting for the projector",
                self.stream.len() as f64,
                "",
            ),
            figure(
                "catch_up_s",
                "Last catch-up time",
                self.last_catch_up.map_or(0.0, SimDuration::as_secs_f64),
                "s",
            ),
            figure(
                "reads_refused",
                "Reads refused (store full)",
                self.refused[READ] as f64,
                "",
            ),
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
                let has_projector = self.cqrs && !self.inline;
                let refuse = |reason: &str| {
                    Err(CommandError::NotApplicable {
                        reason: reason.to_owned(),
                    })
                };
                match id.as_str() {
                    "pause-projector" | "resume-projector" if !has_projector => {
                        return refuse(if self.cqrs {
                            "with an inline projection there is no projector to pause: writes update the read model themselves"
                        } else {
                            "the single model has no projector: reads and writes share one database"
                        })
                    }
                    "pause-projector" if self.paused => {
                        return refuse("the projector is already paused")
                    }
                    "resume-projector" if !self.paused => {
                        return refuse("the projector is not paused")
                    }
                    "write-burst" if self.bursts[WRITE].active => {
                        return refuse("a write burst is already under way")
                    }
                    "read-spike" if self.bursts[READ].active => {
                        return refuse("a read spike is already under way")
                    }
                    "pause-projector" | "resume-projector" | "write-burst" | "read-spike" => {}
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                match id.as_str() {
                    "pause-projector" => {
                        self.paused = true;
                        if self.episode_start.is_none() {
                            self.episode_start = Some(now);
                        }
                        self.drain_from = None;
                        self.set_projector_state(NodeState::Down, now);
                    }
                    "resume-projector" => {
                        self.paused = false;
                        // Lagging until it has applied what it can see (at once if nothing).
                        self.projector_state = NodeState::Unhealthy;
                        self.drain_from = Some(now);
                        let visible = self.stream.front().is_some_and(|front| {
                            front.committed + millis(self.params.number("event_delay")) <= now
                        });
                        if visible {
                            if let Some(node) = self.projector_node {
                                self.core.log.push(
                                    now,
                                    Notable::StateChanged {
                                        node,
                                        to: NodeState::Unhealthy,
                                    },
                                );
                            }
                        }
                        self.project(scheduler);
                    }
                    "write-burst" => self.start_burst(WRITE, scheduler),
                    _ => self.start_burst(READ, scheduler),
                }
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "read_rate" | "write_rate" => {
                        let kind = if spec.name == "read_rate" {
                            READ
                        } else {
                            WRITE
                        };
                        let rate = self.params.number(spec.name);
                        self.arrivals[kind].arrivals.set_shape(steady(rate));
                        self.arrivals[kind].rearm(scheduler);
                        if kind == WRITE {
                            self.drain_starts(now);
                        }
                    }
                    "projector_rate" => self.drain_starts(now),
                    "event_delay" => {
                        if let Some(wake) = self.wake.take() {
                            scheduler.cancel(wake);
                        }
                        self.project(scheduler);
                    }
                    "replicas" => self.set_replicas(scheduler),
                    _ => {} // service times and the fresh-read share apply to later requests
                }
                Ok(())
            }
        }
    }
}
