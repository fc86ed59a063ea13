//! Lesson `microservices`: the same shop as one process (a monolith) or as one service per
//! feature (microservices), and what one feature's bug does to each. A shop page is one of
//! three kinds, each a chain of features:
//!
//! - catalog page (50 %): catalog, then recommendations (optional: the page can be shown
//!   without them);
//! - cart page (30 %): cart;
//! - checkout (20 %): checkout, which reads the cart and then charges payments.
//!
//! `architecture = monolith`: `instances` identical processes behind a load balancer, each
//! running every feature on one pool of `threads` threads with one memory budget. A page
//! takes one thread for the sum of its features' CPU times; calls between features are
//! function calls and cost nothing. `architecture = microservices`: one service per
//! feature, each with its own `instances` processes, threads and memory. The load balancer
//! routes each page to its entry service (path-based routing); the entry service holds a
//! thread while it calls the next services over the network. Every such call is a hop that
//! adds `hop_latency` (half out, half back) and is lost with probability
//! `hop_failure_pct` (a connection reset: no work done). A page with k downstream calls
//! therefore pays k × `hop_latency` and sees at least one failed call with probability
//! 1 − (1 − p)^k (a *partial failure*). The recommendations call is optional: it has its
//! own timeout (`recommendations_timeout`), and a failed, timed-out or unavailable call
//! still returns the page, *degraded* (without recommendations). Any other failed call
//! fails the page.
//!
//! Failure injections hit the recommendations feature:
//! - `memory-leak`: every recommendations execution leaks `leak_per_request` MB in the
//!   process that ran it. A process starts at half its `memory_limit` (plus a per-instance
//!   offset of up to a quarter of the headroom, drawn once per seed: instances were started
//!   at different times) and crashes (out of memory) when its memory reaches the limit,
//!   i.e. after exactly ⌈(limit − start) / leak⌉ leaking executions. A crashed process is
//!   `down` for 2 s, `starting` for `restart_time`, then takes traffic again with fresh
//!   memory. Every request queued in or holding a thread of a crashed process fails: in the
//!   monolith that is every feature, in microservices only recommendations calls (and those
//!   pages degrade).
//! - `slow-path`: recommendations take `slowdown_factor` times longer. In the monolith
//!   those executions hold the shared threads and every page queues behind them; in
//!   microservices only the recommendations service saturates, and the catalog service
//!   waits at most its timeout.
//! - `restore`: the fix is deployed: no more leaking or slowness (leaked memory stays until
//!   the next restart).
//!
//! Every page has an end-to-end deadline (`request_timeout`), propagated to every service:
//! a page past it fails, is removed from any queue and stops holding its entry thread; a
//! feature already computing for it finishes anyway (wasted work). Both architectures draw
//! arrivals, page kinds and CPU times from the same named streams, so on one seed the
//! difference is the architecture alone. The load balancer knows at once when a process is
//! down and sends round robin to the live ones; with none left it answers 503.
//!
//! Sources: Martin Fowler and James Lewis, "Microservices" (2014): componentization via
//! services, decentralized data and governance, design for failure; Martin Fowler,
//! "MonolithFirst" (2015); AWS whitepaper "Implementing Microservices on AWS"; L. Peter
//! Deutsch et al., "Fallacies of distributed computing" (the network is neither reliable
//! nor free of latency). Equations and semantics: docs/models/microservices.md.

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
use super::params::number;
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "microservices",
    title: "Microservices vs monolith: fault isolation",
    group: LessonGroup::TrafficAndCompute,
    summary: "The same features as one process or as several services: a leak or a slow path in one feature takes down the whole monolith, but only its own service, at the price of network hops and partial failures.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
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
        help: "monolith: every process runs every feature on one thread pool and one memory budget; microservices: one service (with its own processes) per feature, calling each other over the network.",
        kind: ParamKind::Choice {
            options: &["monolith", "microservices"],
            default: "monolith",
        },
        liveness: Liveness::Restart,
    },
    number("arrival_rate", "Page requests", "req/s", "Page requests per second (Poisson): 50 % catalog pages, 30 % cart pages, 20 % checkouts.", (1.0, 300.0, 1.0, 100.0)),
    ParamSpec {
        name: "instances",
        label: "Instances",
        unit: "per service",
        help: "Processes of the monolith, or of each service in microservices.",
        kind: ParamKind::Integer { min: 1, max: 6, default: 3 },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "threads",
        label: "Threads per process",
        unit: "threads",
        help: "Requests one process works on (or waits on) at once; more wait in its queue.",
        kind: ParamKind::Integer { min: 1, max: 64, default: 8 },
        liveness: Liveness::Restart,
    },
    number("hop_latency", "Network hop", "ms", "Round-trip time a call between two services adds (microservices only; in-process calls cost nothing).", (0.0, 50.0, 0.5, 5.0)),
    number("hop_failure_pct", "Lost calls", "%", "Chance that one call between services fails on the network (connection reset; microservices only).", (0.0, 20.0, 0.1, 0.2)),
    number("recommendations_timeout", "Recommendations timeout", "ms", "How long the catalog service waits for recommendations before it shows the page without them (microservices; inside a monolith the call is a function call and cannot time out).", (10.0, 5000.0, 10.0, 250.0)),
    number("request_timeout", "Page deadline", "s", "A page not answered within this time fails (the client gives up; the deadline is passed on to every service).", (0.2, 30.0, 0.1, 2.0)),
    ParamSpec {
        name: "memory_limit",
        label: "Memory limit",
        unit: "MB",
        help: "Memory one process may use; it starts at about half of it and is killed (out of memory) when it reaches it.",
        kind: ParamKind::Integer { min: 64, max: 8192, default: 512 },
        liveness: Liveness::Restart,
    },
    number("leak_per_request", "Leak per request", "MB", "Memory each recommendations execution leaks while the memory-leak bug is deployed.", (0.01, 16.0, 0.01, 0.5)),
    number("restart_time", "Restart time", "s", "How long a crashed process takes to start again (after 2 s down).", (1.0, 120.0, 1.0, 15.0)),
    number("slowdown_factor", "Slow path", "×", "How many times slower recommendations run while the slow-path bug is deployed.", (2.0, 100.0, 1.0, 20.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "memory-leak",
        label: "Deploy a memory leak (recommendations)",
        help: "Every recommendations execution leaks memory; a process that reaches its memory limit crashes and restarts.",
    },
    InjectionSpec {
        id: "slow-path",
        label: "Deploy a slow path (recommendations)",
        help: "Recommendations become slowdown-factor times slower until restored.",
    },
    InjectionSpec {
        id: "restore",
        label: "Deploy the fix",
        help: "No more leaking or slowness (processes keep the memory already leaked until they restart).",
    },
];

/// Features, in index order (the services of the microservices variant).
pub const FEATURES: [&str; 5] = ["catalog", "recommendations", "cart", "checkout", "payments"];
const CATALOG: usize = 0;
const RECOMMENDATIONS: usize = 1;
const CART: usize = 2;
const CHECKOUT: usize = 3;
const PAYMENTS: usize = 4;
/// Mean CPU time of each feature's work for one page (log-normal, cv [`WORK_CV`]).
pub const CPU_MS: [f64; 5] = [20.0, 30.0, 10.0, 20.0, 30.0];
pub const WORK_CV: f64 = 0.5;

/// Page kinds, their share of traffic, entry feature and downstream calls in order.
pub const PAGES: [&str; 3] = ["catalog", "cart", "checkout"];
pub const SHARES: [f64; 3] = [0.5, 0.3, 0.2];
const ENTRY: [usize; 3] = [CATALOG, CART, CHECKOUT];
const CALLS: [&[usize]; 3] = [&[RECOMMENDATIONS], &[], &[CART, PAYMENTS]];
/// Downstream calls (network hops in microservices) per page kind.
pub const HOPS: [usize; 3] = [1, 0, 2];

/// One network leg between clients, load balancer, entry process and responses (both
/// architectures pay the same).
pub const EDGE: SimDuration = SimDuration::from_millis(10);
/// How long a crashed process stays down before its restart begins.
pub const DOWN_TIME: SimDuration = SimDuration::from_secs(2);
/// How often processes are checked for saturation (a queue of at least one full round of
/// threads marks a process unhealthy; an empty queue healthy again).
pub const CHECK_INTERVAL: SimDuration = SimDuration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    AtBalancer {
        slot: u32,
        serial: u32,
    },
    /// The page reaches its entry process.
    AtEntry {
        slot: u32,
        serial: u32,
        instance: u16,
        generation: u32,
    },
    /// A job (a page in the monolith; one feature's work in microservices) finishes its CPU.
    WorkDone {
        slot: u32,
        serial: u32,
        step: u8,
        instance: u16,
        generation: u32,
        leaks: bool,
    },
    /// A call between services reaches the callee (or is lost on the way).
    CallArrive {
        slot: u32,
        serial: u32,
        step: u8,
        instance: u16,
        generation: u32,
        lost: bool,
    },
    /// A call's answer (or error) is back at the caller.
    CallReturn {
        slot: u32,
        serial: u32,
        step: u8,
        ok: bool,
    },
    CallTimeout {
        slot: u32,
        serial: u32,
        step: u8,
    },
    Deadline {
        slot: u32,
        serial: u32,
    },
    Done {
        slot: u32,
        serial: u32,
    },
    Restart {
        instance: u16,
        generation: u32,
    },
    Ready {
        instance: u16,
        generation: u32,
    },
    Check,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Travelling,
    Queued,
    /// The entry job computes (monolith: the whole page).
    Working,
    /// Waiting for downstream call `step` (microservices).
    Calling,
    Responding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct JobRef {
    slot: u32,
    serial: u32,
    step: u8,
}

struct Page {
    serial: u32,
    key: RequestKey,
    kind: usize,
    born: SimTime,
    /// CPU time of the entry feature and of each downstream call, drawn at arrival.
    work: [SimDuration; 3],
    step: u8,
    stage: Stage,
    /// The entry process and its generation, once the page holds a thread there.
    entry: Option<(u16, u32)>,
    queued_at: Option<u16>,
    deadline: TimerHandle,
    call_timer: Option<TimerHandle>,
    network: SimDuration,
    degraded: bool,
    partial: bool,
}

struct Instance {
    /// The node drawn for it: its own (monolith) or its service's (microservices).
    node: NodeId,
    service: usize,
    state: NodeState,
    generation: u32,
    holding: Vec<JobRef>,
    queue: VecDeque<(JobRef, SimTime)>,
    memory_kb: u64,
    start_kb: u64,
    /// Leaking executions since the process (re)started.
    leaked: u64,
}

impl Instance {
    fn up(&self) -> bool {
        matches!(self.state, NodeState::Healthy | NodeState::Unhealthy)
    }
}

struct Service {
    node: NodeId,
    instances: Vec<usize>,
    next: usize,
    state: NodeState,
}

/// One out-of-memory crash: which process, how many leaking executions it had served since
/// it started, and its memory at that start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    pub instance: usize,
    pub at: SimTime,
    pub served: u64,
    pub start_kb: u64,
}

#[derive(Default)]
struct PageStats {
    completed: u64,
    failed: u64,
    degraded: u64,
    in_flight: i64,
    latency: Option<LatencyHistogram>,
}

pub struct MicroservicesModel {
    params: ParamValues,
    micro: bool,
    topology: Topology,
    clients: NodeId,
    balancer: NodeId,
    responses: NodeId,
    edges: Vec<(NodeId, NodeId, EdgeId)>,
    services: Vec<Service>,
    instances: Vec<Instance>,
    threads: usize,
    limit_kb: u64,
    base_kb: u64,
    leaking: bool,
    slowed: bool,
    pages: Slab<Page>,
    next_serial: u32,
    arrivals: ArrivalTimer<Event>,
    mix_rng: SimRng,
    work_rng: SimRng,
    network_rng: SimRng,
    stats: [PageStats; 3],
    partial: u64,
    network_total: SimDuration,
    crashes: Vec<Crash>,
    crash_count: u64,
    core: ModelCore,
    gauge_memory: GaugeId,
    gauge_up: GaugeId,
    gauge_in_flight: [GaugeId; 3],
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<MicroservicesModel> {
    let micro = params.choice("architecture") == "microservices";
    let count = params.integer("instances") as usize;
    let limit_kb = params.integer("memory_limit") as u64 * 1024;
    let base_kb = limit_kb / 2;
    // Per-instance start offsets, the same for instance i of every service and variant.
    let mut memory_rng = SimRng::new(seed.0, "memory");
    let offsets: Vec<u64> = (0..count)
        .map(|_| memory_rng.below((limit_kb - base_kb) / 4 + 1))
        .collect();
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Shoppers", NodeKind::Source, 0.0, 0.5);
    let balancer = topology.add_node("balancer", "Load balancer", NodeKind::Router, 0.2, 0.5);
    let responses = topology.add_node("responses", "Pages served", NodeKind::Sink, 1.0, 0.5);
    let mut edges = Vec::new();
    let mut link = |topology: &mut Topology, from: NodeId, to: NodeId| {
        edges.push((from, to, topology.add_edge(from, to)));
    };
    link(&mut topology, clients, balancer);
    let mut services = Vec::new();
    let mut instances = Vec::new();
    let add_instance = |instances: &mut Vec<Instance>, node, service, index: usize| {
        instances.push(Instance {
            node,
            service,
            state: NodeState::Healthy,
            generation: 0,
            holding: Vec::new(),
            queue: VecDeque::new(),
            memory_kb: base_kb + offsets[index],
            start_kb: base_kb + offsets[index],
            leaked: 0,
        });
    };
    if micro {
        let layout = [
            ("catalog", "Catalog service", 0.48, 0.12),
            ("recommendations", "Recommendations", 0.78, 0.12),
            ("cart", "Cart service", 0.48, 0.5),
            ("checkout", "Checkout service", 0.48, 0.88),
            ("payments", "Payments service", 0.78, 0.88),
        ];
        for (service, (key, label, x, y)) in layout.into_iter().enumerate() {
            let node = topology.add_node(key, label, NodeKind::Server, x, y);
            let first = instances.len();
            for index in 0..count {
                add_instance(&mut instances, node, service, index);
            }
            services.push(Service {
                node,
                instances: (first..first + count).collect(),
                next: 0,
                state: NodeState::Healthy,
            });
        }
        for entry in ENTRY {
            link(&mut topology, balancer, services[entry].node);
        }
        for (caller, callee) in [
            (CATALOG, RECOMMENDATIONS),
            (CHECKOUT, CART),
            (CHECKOUT, PAYMENTS),
        ] {
            link(&mut topology, services[caller].node, services[callee].node);
            link(&mut topology, services[callee].node, services[caller].node);
        }
        for entry in ENTRY {
            link(&mut topology, services[entry].node, responses);
        }
    } else {
        let mut service = Service {
            node: balancer,
            instances: Vec::new(),
            next: 0,
            state: NodeState::Healthy,
        };
        for index in 0..count {
            let y = if count == 1 {
                0.5
            } else {
                0.08 + 0.84 * index as f32 / (count - 1) as f32
            };
            let node = topology.add_node(
                &format!("monolith-{}", index + 1),
                &format!("Monolith {}", index + 1),
                NodeKind::Server,
                0.6,
                y,
            );
            link(&mut topology, balancer, node);
            link(&mut topology, node, responses);
            service.instances.push(index);
            add_instance(&mut instances, node, 0, index);
        }
        services.push(service);
    }
    let core = ModelCore::new(vec![
        "memory_max_pct",
        "processes_up",
        "catalog_in_flight",
        "cart_in_flight",
        "checkout_in_flight",
    ]);
    let mut model = MicroservicesModel {
        params: params.clone(),
        micro,
        clients,
        balancer,
        responses,
        edges,
        services,
        instances,
        threads: params.integer("threads") as usize,
        limit_kb,
        base_kb,
        leaking: false,
        slowed: false,
        pages: Slab::new(),
        next_serial: 0,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                TrafficShape::Steady {
                    rate: params.number("arrival_rate"),
                },
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        mix_rng: SimRng::new(seed.0, "page-mix"),
        work_rng: SimRng::new(seed.0, "work"),
        network_rng: SimRng::new(seed.0, "network"),
        stats: Default::default(),
        partial: 0,
        network_total: SimDuration::ZERO,
        crashes: Vec::new(),
        crash_count: 0,
        gauge_memory: core.gauge("memory_max_pct"),
        gauge_up: core.gauge("processes_up"),
        gauge_in_flight: [
            core.gauge("catalog_in_flight"),
            core.gauge("cart_in_flight"),
            core.gauge("checkout_in_flight"),
        ],
        core,
        topology,
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    model.update_gauges(SimTime::ZERO);
    scheduler.schedule_in(CHECK_INTERVAL, Event::Check);
    Simulation::new(model, scheduler)
}

fn half(duration: SimDuration) -> SimDuration {
    SimDuration::from_ticks(duration.ticks() / 2)
}

impl MicroservicesModel {
    fn ms(&self, name: &str) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number(name) / 1000.0)
    }

    fn secs(&self, name: &str) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number(name))
    }

    fn hop(&self) -> SimDuration {
        self.ms("hop_latency")
    }

    fn edge(&self, from: NodeId, to: NodeId) -> EdgeId {
        self.edges
            .iter()
            .find(|&&(f, t, _)| f == from && t == to)
            .map(|&(_, _, edge)| edge)
            .expect("the topology links every pair the model uses")
    }

    fn page(&self, slot: u32, serial: u32) -> Option<&Page> {
        self.pages
            .get(slot as usize)
            .filter(|page| page.serial == serial)
    }

    fn service_of(&self, feature: usize) -> usize {
        if self.micro {
            feature
        } else {
            0
        }
    }

    /// Feature run by downstream call `step` (1-based) of a page kind.
    fn callee(kind: usize, step: u8) -> usize {
        CALLS[kind][step as usize - 1]
    }

    /// The next live process of a service, round robin.
    fn pick(&mut self, service: usize) -> Option<usize> {
        let count = self.services[service].instances.len();
        for offset in 0..count {
            let index = (self.services[service].next + offset) % count;
            let instance = self.services[service].instances[index];
            if self.instances[instance].up() {
                self.services[service].next = (index + 1) % count;
                return Some(instance);
            }
        }
        None
    }

    fn update_gauges(&mut self, now: SimTime) {
        let memory = self
            .instances
            .iter()
            .map(|instance| instance.memory_kb * 100 / self.limit_kb)
            .max()
            .unwrap_or(0);
        let up = self.instances.iter().filter(|i| i.up()).count();
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_memory, now, memory as i64);
        metrics.set_gauge(self.gauge_up, now, up as i64);
    }

    fn set_in_flight(&mut self, kind: usize, now: SimTime, delta: i64) {
        self.stats[kind].in_flight += delta;
        self.core
            .metrics
            .set_gauge(self.gauge_in_flight[kind], now, self.stats[kind].in_flight);
    }

    /// Changes a process's state and logs what the learner sees: the process's node in the
    /// monolith, its service's summary state in microservices.
    fn set_state(&mut self, instance: usize, to: NodeState, now: SimTime) {
        if self.instances[instance].state == to {
            return;
        }
        self.instances[instance].state = to;
        if !self.micro {
            let node = self.instances[instance].node;
            self.core.log.push(now, Notable::StateChanged { node, to });
            return;
        }
        let service = self.instances[instance].service;
        let states: Vec<NodeState> = self.services[service]
            .instances
            .iter()
            .map(|&i| self.instances[i].state)
            .collect();
        let all = |state| states.iter().all(|&s| s == state);
        let summary = if all(NodeState::Healthy) {
            NodeState::Healthy
        } else if all(NodeState::Down) {
            NodeState::Down
        } else if states
            .iter()
            .all(|&s| matches!(s, NodeState::Down | NodeState::Starting))
        {
            NodeState::Starting
        } else {
            NodeState::Unhealthy
        };
        if summary != self.services[service].state {
            self.services[service].state = summary;
            let node = self.services[service].node;
            self.core
                .log
                .push(now, Notable::StateChanged { node, to: summary });
        }
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let u = self.mix_rng.uniform01();
        let kind = if u < SHARES[0] {
            0
        } else if u < SHARES[0] + SHARES[1] {
            1
        } else {
            2
        };
        // Always three draws, so the streams stay aligned whatever the page kind.
        let features = [
            ENTRY[kind],
            CALLS[kind].first().copied().unwrap_or(CART),
            CALLS[kind].get(1).copied().unwrap_or(CART),
        ];
        let work = features.map(|feature| {
            SimDuration::from_secs_f64(
                self.work_rng
                    .lognormal_mean_cv(CPU_MS[feature] / 1000.0, WORK_CV),
            )
        });
        let edge = self.edge(self.clients, self.balancer);
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + EDGE,
            },
        );
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let slot = self.pages.vacant_key() as u32;
        let deadline = scheduler.schedule_timer_in(
            self.secs("request_timeout"),
            Event::Deadline { slot, serial },
        );
        self.pages.insert(Page {
            serial,
            key,
            kind,
            born: now,
            work,
            step: 0,
            stage: Stage::Travelling,
            entry: None,
            queued_at: None,
            deadline,
            call_timer: None,
            network: SimDuration::ZERO,
            degraded: false,
            partial: false,
        });
        self.set_in_flight(kind, now, 1);
        scheduler.schedule_in(EDGE, Event::AtBalancer { slot, serial });
    }

    fn at_balancer(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(page) = self.page(slot, serial) else {
            return;
        };
        let (kind, key) = (page.kind, page.key);
        let Some(instance) = self.pick(self.service_of(ENTRY[kind])) else {
            // Nothing alive to send it to: 503 at once.
            self.fail(slot, scheduler);
            return;
        };
        let edge = self.edge(self.balancer, self.instances[instance].node);
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + EDGE,
            },
        );
        let generation = self.instances[instance].generation;
        scheduler.schedule_in(
            EDGE,
            Event::AtEntry {
                slot,
                serial,
                instance: instance as u16,
                generation,
            },
        );
    }

    fn alive(&self, instance: usize, generation: u32) -> bool {
        let process = &self.instances[instance];
        process.generation == generation && process.up()
    }

    fn enqueue(&mut self, instance: usize, job: JobRef, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let page = &mut self.pages[job.slot as usize];
        page.queued_at = Some(instance as u16);
        if job.step == 0 {
            page.stage = Stage::Queued;
        }
        let key = page.key;
        let node = self.instances[instance].node;
        self.core
            .requests
            .move_to(key, Place::Queued { node, since: now });
        self.instances[instance].queue.push_back((job, now));
        self.try_start(instance, scheduler);
    }

    /// Gives free threads of a process to the oldest queued jobs.
    fn try_start(&mut self, instance: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        while self.instances[instance].holding.len() < self.threads {
            let Some((job, since)) = self.instances[instance].queue.pop_front() else {
                return;
            };
            self.core.metrics.waited(now - since);
            let process = &mut self.instances[instance];
            process.holding.push(job);
            let (node, generation) = (process.node, process.generation);
            let page = &mut self.pages[job.slot as usize];
            page.queued_at = None;
            let kind = page.kind;
            let factor = if self.slowed {
                self.params.number("slowdown_factor")
            } else {
                1.0
            };
            let scale = |d: SimDuration, feature: usize| {
                if feature == RECOMMENDATIONS {
                    SimDuration::from_ticks((d.ticks() as f64 * factor + 0.5) as u64)
                } else {
                    d
                }
            };
            let (work, leaks) = if !self.micro {
                let mut total = scale(page.work[0], ENTRY[kind]);
                for (index, &feature) in CALLS[kind].iter().enumerate() {
                    total = total + scale(page.work[index + 1], feature);
                }
                (total, CALLS[kind].contains(&RECOMMENDATIONS))
            } else if job.step == 0 {
                (page.work[0], false)
            } else {
                let feature = Self::callee(kind, job.step);
                (
                    scale(page.work[job.step as usize], feature),
                    feature == RECOMMENDATIONS,
                )
            };
            if job.step == 0 {
                page.stage = Stage::Working;
                page.entry = Some((instance as u16, generation));
            }
            let key = page.key;
            self.core
                .requests
                .move_to(key, Place::InService { node, since: now });
            scheduler.schedule_in(
                work,
                Event::WorkDone {
                    slot: job.slot,
                    serial: job.serial,
                    step: job.step,
                    instance: instance as u16,
                    generation,
                    leaks,
                },
            );
        }
    }

    fn release(&mut self, instance: usize, job: JobRef, scheduler: &mut Scheduler<Event>) {
        let holding = &mut self.instances[instance].holding;
        if let Some(position) = holding.iter().position(|&held| held == job) {
            holding.swap_remove(position);
            self.try_start(instance, scheduler);
        }
    }

    fn work_done(
        &mut self,
        job: JobRef,
        instance: usize,
        generation: u32,
        leaks: bool,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        if self.instances[instance].generation != generation {
            return; // the process crashed meanwhile and already failed this job
        }
        if leaks && self.leaking {
            let leak = self.leak_kb();
            let process = &mut self.instances[instance];
            process.memory_kb += leak;
            process.leaked += 1;
            if process.memory_kb >= self.limit_kb {
                self.crash(instance, scheduler);
                return;
            }
            self.update_gauges(now);
        }
        // Still wanted: the page is alive and still waiting for exactly this job.
        let wanted = if job.step == 0 {
            Stage::Working
        } else {
            Stage::Calling
        };
        let current = self
            .page(job.slot, job.serial)
            .filter(|page| page.step == job.step && page.stage == wanted)
            .map(|page| (page.key, page.kind));
        let Some((key, kind)) = current else {
            // Its page ended or moved on: the thread is simply freed (wasted work).
            self.release(instance, job, scheduler);
            return;
        };
        if !self.micro {
            self.release(instance, job, scheduler);
            self.respond(job.slot, scheduler);
        } else if job.step == 0 {
            self.pages[job.slot as usize].stage = Stage::Calling;
            self.next_call(job.slot, scheduler);
        } else {
            self.release(instance, job, scheduler);
            let caller = self.services[ENTRY[kind]].node;
            let edge = self.edge(self.instances[instance].node, caller);
            let back = half(self.hop());
            self.core.requests.move_to(
                key,
                Place::OnEdge {
                    edge,
                    depart: now,
                    arrive: now + back,
                },
            );
            scheduler.schedule_in(
                back,
                Event::CallReturn {
                    slot: job.slot,
                    serial: job.serial,
                    step: job.step,
                    ok: true,
                },
            );
        }
    }

    fn leak_kb(&self) -> u64 {
        ((self.params.number("leak_per_request") * 1024.0).round() as u64).max(1)
    }

    /// Microservices: the entry service makes the page's next downstream call, or answers.
    fn next_call(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let page = &self.pages[slot as usize];
        let (kind, key, serial) = (page.kind, page.key, page.serial);
        let step = page.step + 1;
        if step as usize > CALLS[kind].len() {
            self.respond(slot, scheduler);
            return;
        }
        self.pages[slot as usize].step = step;
        let feature = Self::callee(kind, step);
        let caller = self.services[ENTRY[kind]].node;
        self.core.requests.move_to(
            key,
            Place::InService {
                node: caller,
                since: now,
            },
        );
        let lost = self
            .network_rng
            .chance(self.params.number("hop_failure_pct") / 100.0);
        if feature == RECOMMENDATIONS {
            let timeout = self.ms("recommendations_timeout");
            self.pages[slot as usize].call_timer = Some(
                scheduler.schedule_timer_in(timeout, Event::CallTimeout { slot, serial, step }),
            );
        }
        let Some(instance) = self.pick(feature) else {
            // No live process of that service: the call fails at once.
            self.call_failed(slot, scheduler);
            return;
        };
        let edge = self.edge(caller, self.services[feature].node);
        let out = half(self.hop());
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + out,
            },
        );
        let generation = self.instances[instance].generation;
        scheduler.schedule_in(
            out,
            Event::CallArrive {
                slot,
                serial,
                step,
                instance: instance as u16,
                generation,
                lost,
            },
        );
    }

    fn calling(&self, slot: u32, serial: u32, step: u8) -> bool {
        self.page(slot, serial)
            .is_some_and(|page| page.step == step && page.stage == Stage::Calling)
    }

    fn call_arrive(
        &mut self,
        job: JobRef,
        instance: usize,
        generation: u32,
        lost: bool,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        if !self.calling(job.slot, job.serial, job.step) {
            return;
        }
        if lost || !self.alive(instance, generation) {
            // Connection reset: the error travels back.
            let page = &self.pages[job.slot as usize];
            let caller = self.services[ENTRY[page.kind]].node;
            let edge = self.edge(self.instances[instance].node, caller);
            let back = half(self.hop());
            self.core.requests.move_to(
                page.key,
                Place::OnEdge {
                    edge,
                    depart: now,
                    arrive: now + back,
                },
            );
            scheduler.schedule_in(
                back,
                Event::CallReturn {
                    slot: job.slot,
                    serial: job.serial,
                    step: job.step,
                    ok: false,
                },
            );
            return;
        }
        self.enqueue(instance, job, scheduler);
    }

    fn call_return(&mut self, job: JobRef, ok: bool, scheduler: &mut Scheduler<Event>) {
        if !self.calling(job.slot, job.serial, job.step) {
            return;
        }
        let hop = self.hop();
        let page = &mut self.pages[job.slot as usize];
        page.network = page.network + hop;
        if let Some(timer) = page.call_timer.take() {
            scheduler.cancel(timer);
        }
        if ok {
            self.next_call(job.slot, scheduler);
        } else {
            self.call_failed(job.slot, scheduler);
        }
    }

    /// A downstream call failed (lost, reset, timed out or nobody alive): an optional call
    /// degrades the page, any other fails it.
    fn call_failed(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let page = &mut self.pages[slot as usize];
        if let Some(timer) = page.call_timer.take() {
            scheduler.cancel(timer);
        }
        page.partial = true;
        let (kind, step, key) = (page.kind, page.step, page.key);
        if let Some(instance) = page.queued_at.take() {
            self.unqueue(instance as usize, slot);
        }
        if Self::callee(kind, step) == RECOMMENDATIONS {
            self.pages[slot as usize].degraded = true;
            let node = self.services[ENTRY[kind]].node;
            self.core
                .requests
                .move_to(key, Place::InService { node, since: now });
            self.next_call(slot, scheduler);
        } else {
            self.fail(slot, scheduler);
        }
    }

    fn unqueue(&mut self, instance: usize, slot: u32) {
        self.instances[instance]
            .queue
            .retain(|(job, _)| job.slot != slot);
    }

    /// The page's answer leaves its entry process for the client.
    fn respond(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let page = &mut self.pages[slot as usize];
        scheduler.cancel(page.deadline);
        page.stage = Stage::Responding;
        let (key, serial, kind) = (page.key, page.serial, page.kind);
        let from = match page.entry {
            Some((instance, _)) => self.instances[instance as usize].node,
            None => self.services[ENTRY[kind]].node,
        };
        self.release_entry(slot, scheduler);
        let edge = self.edge(from, self.responses);
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + EDGE,
            },
        );
        scheduler.schedule_in(EDGE, Event::Done { slot, serial });
    }

    /// Microservices: frees the thread a page holds at its entry process (if that process
    /// has not crashed since).
    fn release_entry(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        if !self.micro {
            return;
        }
        let page = &mut self.pages[slot as usize];
        let Some((instance, generation)) = page.entry.take() else {
            return;
        };
        let job = JobRef {
            slot,
            serial: page.serial,
            step: 0,
        };
        if self.instances[instance as usize].generation == generation {
            self.release(instance as usize, job, scheduler);
        }
    }

    fn done(&mut self, slot: u32, serial: u32, now: SimTime) {
        if self.page(slot, serial).is_none() {
            return;
        }
        let page = self.pages.remove(slot as usize);
        self.core.requests.finish(page.key);
        let latency = now - page.born;
        self.core.metrics.completed(now, latency);
        self.network_total = self.network_total + page.network;
        if page.partial {
            self.partial += 1;
        }
        let stats = &mut self.stats[page.kind];
        stats.completed += 1;
        stats.degraded += u64::from(page.degraded);
        stats
            .latency
            .get_or_insert_with(|| LatencyHistogram::new(PRECISE))
            .record(latency);
        self.set_in_flight(page.kind, now, -1);
    }

    /// The page fails (503, crash, deadline or a required call failed).
    fn fail(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let (stage, queued_at) = {
            let page = &mut self.pages[slot as usize];
            scheduler.cancel(page.deadline);
            if let Some(timer) = page.call_timer.take() {
                scheduler.cancel(timer);
            }
            (page.stage, page.queued_at.take())
        };
        if let Some(instance) = queued_at {
            self.unqueue(instance as usize, slot);
        }
        // An entry job still computing keeps its thread until its CPU is done (WorkDone
        // frees it); one waiting on downstream calls lets go now.
        if stage != Stage::Working {
            self.release_entry(slot, scheduler);
        }
        let page = self.pages.remove(slot as usize);
        self.core.requests.finish(page.key);
        self.core.metrics.failed(now);
        if page.partial {
            self.partial += 1;
        }
        self.stats[page.kind].failed += 1;
        self.set_in_flight(page.kind, now, -1);
    }

    /// Out of memory: the process dies with everything it holds or queues.
    fn crash(&mut self, instance: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let process = &mut self.instances[instance];
        let old = process.generation;
        process.generation += 1;
        self.crashes.push(Crash {
            instance,
            at: now,
            served: process.leaked,
            start_kb: process.start_kb,
        });
        self.crash_count += 1;
        process.memory_kb = 0;
        let holding = std::mem::take(&mut process.holding);
        let queued = std::mem::take(&mut process.queue);
        self.set_state(instance, NodeState::Down, now);
        let jobs = holding
            .into_iter()
            .chain(queued.into_iter().map(|(job, _)| job));
        for job in jobs {
            let Some(page) = self.page(job.slot, job.serial) else {
                continue;
            };
            if page.queued_at == Some(instance as u16) {
                self.pages[job.slot as usize].queued_at = None;
            }
            let page = &self.pages[job.slot as usize];
            if job.step == 0 {
                let here = page.entry == Some((instance as u16, old))
                    || (page.stage == Stage::Queued && page.entry.is_none());
                if here {
                    self.pages[job.slot as usize].entry = None;
                    self.fail(job.slot, scheduler);
                }
            } else if page.step == job.step && page.stage == Stage::Calling {
                self.call_failed(job.slot, scheduler);
            }
        }
        self.update_gauges(now);
        scheduler.schedule_in(
            DOWN_TIME,
            Event::Restart {
                instance: instance as u16,
                generation: old + 1,
            },
        );
    }

    fn restart(&mut self, instance: usize, generation: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let process = &mut self.instances[instance];
        if process.generation != generation {
            return;
        }
        process.memory_kb = self.base_kb;
        process.start_kb = self.base_kb;
        process.leaked = 0;
        self.set_state(instance, NodeState::Starting, now);
        self.update_gauges(now);
        let ready = self.secs("restart_time");
        scheduler.schedule_in(
            ready,
            Event::Ready {
                instance: instance as u16,
                generation,
            },
        );
    }

    fn check(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(CHECK_INTERVAL, Event::Check);
        for instance in 0..self.instances.len() {
            let process = &self.instances[instance];
            let to = match process.state {
                NodeState::Healthy if process.queue.len() >= self.threads => NodeState::Unhealthy,
                NodeState::Unhealthy if process.queue.is_empty() => NodeState::Healthy,
                state => state,
            };
            self.set_state(instance, to, now);
        }
    }

    /// Crashes so far, in order (for tests and the model note).
    pub fn crashes(&self) -> &[Crash] {
        &self.crashes
    }

    /// Memory of one process in KiB, and the limit.
    pub fn memory_kb(&self, instance: usize) -> (u64, u64) {
        (self.instances[instance].memory_kb, self.limit_kb)
    }

    /// Process indices of a feature's service (microservices) or of the monolith.
    pub fn processes_of(&self, feature: usize) -> Vec<usize> {
        self.services[self.service_of(feature)].instances.clone()
    }

    /// Median latency of completed pages of one kind, in seconds.
    pub fn page_p50(&self, kind: usize) -> f64 {
        self.stats[kind]
            .latency
            .as_ref()
            .map_or(0.0, |h| h.quantile_secs(0.5))
    }

    fn success_pct(&self, kind: usize) -> f64 {
        let stats = &self.stats[kind];
        let ended = stats.completed + stats.failed;
        if ended == 0 {
            100.0
        } else {
            100.0 * stats.completed as f64 / ended as f64
        }
    }
}

impl Model for MicroservicesModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtBalancer { slot, serial } => self.at_balancer(slot, serial, scheduler),
            Event::AtEntry {
                slot,
                serial,
                instance,
                generation,
            } => {
                if self.page(slot, serial).is_none() {
                    return;
                }
                if self.alive(instance as usize, generation) {
                    self.enqueue(
                        instance as usize,
                        JobRef {
                            slot,
                            serial,
                            step: 0,
                        },
                        scheduler,
                    );
                } else {
                    self.fail(slot, scheduler); // connection refused: the process died
                }
            }
            Event::WorkDone {
                slot,
                serial,
                step,
                instance,
                generation,
                leaks,
            } => self.work_done(
                JobRef { slot, serial, step },
                instance as usize,
                generation,
                leaks,
                scheduler,
            ),
            Event::CallArrive {
                slot,
                serial,
                step,
                instance,
                generation,
                lost,
            } => self.call_arrive(
                JobRef { slot, serial, step },
                instance as usize,
                generation,
                lost,
                scheduler,
            ),
            Event::CallReturn {
                slot,
                serial,
                step,
                ok,
            } => self.call_return(JobRef { slot, serial, step }, ok, scheduler),
            Event::CallTimeout { slot, serial, step } => {
                if self.calling(slot, serial, step) {
                    self.pages[slot as usize].call_timer = None;
                    self.call_failed(slot, scheduler);
                }
            }
            Event::Deadline { slot, serial } => {
                if self.page(slot, serial).is_some() {
                    self.fail(slot, scheduler);
                }
            }
            Event::Done { slot, serial } => self.done(slot, serial, now),
            Event::Restart {
                instance,
                generation,
            } => self.restart(instance as usize, generation, scheduler),
            Event::Ready {
                instance,
                generation,
            } => {
                if self.instances[instance as usize].generation == generation {
                    self.set_state(instance as usize, NodeState::Healthy, now);
                    self.update_gauges(now);
                }
            }
            Event::Check => self.check(scheduler),
        }
    }
}

impl LessonModel for MicroservicesModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        for node in [self.clients, self.balancer, self.responses] {
            snapshot.nodes.push(NodeView::plain(node));
        }
        let view = |instances: &[usize], state: NodeState| {
            let mut view = NodeView {
                state,
                ..NodeView::plain(self.instances[instances[0]].node)
            };
            for &index in instances {
                let process = &self.instances[index];
                view.busy += process.holding.len() as u32;
                view.queued += process.queue.len() as u32;
                if process.up() {
                    view.capacity += self.threads as u32;
                }
            }
            view
        };
        if self.micro {
            for service in &self.services {
                snapshot.nodes.push(view(&service.instances, service.state));
            }
        } else {
            for index in 0..self.instances.len() {
                snapshot
                    .nodes
                    .push(view(&[index], self.instances[index].state));
            }
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, _now: SimTime) -> Vec<Figure> {
        let completed: u64 = self.stats.iter().map(|s| s.completed).sum();
        let ended: u64 = completed + self.stats.iter().map(|s| s.failed).sum::<u64>();
        let latency = self.core.metrics.latency();
        let quantile_ms = |q| {
            if latency.count() == 0 {
                0.0
            } else {
                latency.quantile_secs(q) * 1000.0
            }
        };
        let catalog = &self.stats[0];
        let shown = if catalog.completed == 0 {
            100.0
        } else {
            100.0 * (catalog.completed - catalog.degraded) as f64 / catalog.completed as f64
        };
        let degraded: u64 = self.stats.iter().map(|s| s.degraded).sum();
        let figure = |key, label, value, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        // Most important first: the side-by-side comparison shows the first four.
        vec![
            figure(
                "cart_success_pct",
                "Cart pages served",
                self.success_pct(1),
                "%",
            ),
            figure(
                "checkout_success_pct",
                "Checkouts succeeded",
                self.success_pct(2),
                "%",
            ),
            figure(
                "recommendations_shown_pct",
                "Catalog pages with recommendations",
                shown,
                "%",
            ),
            figure(
                "network_ms_mean",
                "Network time per page (calls between services)",
                if completed == 0 {
                    0.0
                } else {
                    self.network_total.as_secs_f64() * 1000.0 / completed as f64
                },
                "ms",
            ),
            figure(
                "catalog_success_pct",
                "Catalog pages served",
                self.success_pct(0),
                "%",
            ),
            figure(
                "oom_crashes",
                "Processes crashed (out of memory)",
                self.crash_count as f64,
                "",
            ),
            figure(
                "degraded",
                "Pages served without recommendations",
                degraded as f64,
                "",
            ),
            figure(
                "partial_failures",
                "Pages where a call between services failed",
                self.partial as f64,
                "",
            ),
            figure(
                "partial_failure_pct",
                "Share of pages with a failed call",
                if ended == 0 {
                    0.0
                } else {
                    100.0 * self.partial as f64 / ended as f64
                },
                "%",
            ),
            figure("latency_p50_ms", "Latency p50", quantile_ms(0.5), "ms"),
            figure("latency_p99_ms", "Latency p99", quantile_ms(0.99), "ms"),
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
                let refuse = |reason: &str| {
                    Err(CommandError::NotApplicable {
                        reason: reason.into(),
                    })
                };
                match id.as_str() {
                    "memory-leak" if self.leaking => {
                        return refuse("the memory leak is already deployed")
                    }
                    "slow-path" if self.slowed => {
                        return refuse("the slow path is already deployed")
                    }
                    "restore" if !self.leaking && !self.slowed => {
                        return refuse("no bug is deployed: nothing to fix")
                    }
                    "memory-leak" | "slow-path" | "restore" => {}
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                match id.as_str() {
                    "memory-leak" => self.leaking = true,
                    "slow-path" => self.slowed = true,
                    _ => {
                        self.leaking = false;
                        self.slowed = false;
                    }
                }
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                if spec.name == "arrival_rate" {
                    let rate = self.params.number("arrival_rate");
                    self.arrivals
                        .arrivals
                        .set_shape(TrafficShape::Steady { rate });
                    self.arrivals.rearm(scheduler);
                }
                // Every other live parameter applies to the next call, job or crash.
                Ok(())
            }
        }
    }
}
