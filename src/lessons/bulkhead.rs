//! Lesson `bulkhead`: one service answers two kinds of requests, payments and
//! recommendations, each of which calls its own downstream dependency while holding one of
//! the service's worker threads. The threads are either one shared pool or two separate
//! pools (bulkheads). When one dependency turns slow, its calls hold their threads far
//! longer: with a shared pool they end up holding every thread and the healthy kind
//! starves too; with bulkheads only the slow kind's own pool fills up. Run both values of
//! `isolation` on one seed to compare: arrivals and dependency response times are drawn
//! from the same per-kind streams, so the difference is the pattern alone.
//!
//! Pool semantics follow resilience4j's Bulkhead (resilience4j documentation, "Bulkhead":
//! `SemaphoreBulkhead` with `maxConcurrentCalls` and `maxWaitDuration`, fair FIFO
//! hand-off of permits; `ThreadPoolBulkhead` bounds threads the same way): a call takes a
//! permit if one is free and nobody waits ahead of it; otherwise it waits at most
//! `max_wait` for one and is rejected (`BulkheadFullException`) when the wait runs out, or
//! at once when `max_wait` is zero (the library default). The permit is held for the whole
//! downstream call, until the response is back or the call's own timeout fires (a
//! TimeLimiter-style call timeout frees the thread and fails the request). The pattern and
//! its rationale (partition resources so one failing integration point cannot exhaust
//! them all; a slow response is worse than no response) are from Michael T. Nygard,
//! "Release It!" (2nd ed., 2018), chapters "Stability Antipatterns" and "Stability
//! Patterns: Bulkheads, Timeouts".
//!
//! While a pool is not saturated, its mean number of busy threads obeys Little's law:
//! L = λ × E[hold], with hold = three network hops + the dependency's response time (cut
//! at the call timeout). Equations, parameters and sources: docs/models/bulkhead.md.

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
    id: "bulkhead",
    title: "Bulkhead",
    group: LessonGroup::Resilience,
    summary: "Separate thread pools per dependency keep one slow dependency from starving every other request.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("isolation"),
    sweep: None,
    breaker_node: None,
};

const fn threads(name: &'static str, label: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        label,
        unit: "threads",
        help,
        kind: ParamKind::Integer {
            min: 1,
            max: 100,
            default: 10,
        },
        liveness: Liveness::Live,
    }
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "isolation",
        label: "Thread pools",
        unit: "",
        help: "shared: both kinds of request draw from one pool holding all the threads; bulkheads: each kind has its own pool of the sizes below.",
        kind: ParamKind::Choice {
            options: &["shared", "bulkheads"],
            default: "shared",
        },
        liveness: Liveness::Restart,
    },
    threads("payments_threads", "Payments threads", "Threads (maxConcurrentCalls) for payment calls; with a shared pool, the pool holds both counts together."),
    threads("recommendations_threads", "Recommendations threads", "Threads (maxConcurrentCalls) for recommendation calls; with a shared pool, the pool holds both counts together."),
    number("payments_rate", "Payment requests", "req/s", "Payment requests per second (Poisson).", (0.0, 200.0, 1.0, 40.0)),
    number("recommendations_rate", "Recommendation requests", "req/s", "Recommendation requests per second (Poisson).", (0.0, 200.0, 1.0, 60.0)),
    number("payments_latency", "Payments API response time", "ms", "Mean response time of the payments dependency when healthy (log-normal, cv 0.5).", (5.0, 5000.0, 5.0, 100.0)),
    number("recommendations_latency", "Recommendations API response time", "ms", "Mean response time of the recommendations dependency when healthy (log-normal, cv 0.5).", (5.0, 5000.0, 5.0, 80.0)),
    number("slowdown_factor", "Slowdown", "×", "How many times slower a dependency answers while a slowdown is injected.", (2.0, 100.0, 1.0, 25.0)),
    number("max_wait", "Max wait for a thread", "ms", "maxWaitDuration: how long a call may wait for a free thread before it is rejected; 0 rejects at once when the pool is full.", (0.0, 5000.0, 10.0, 100.0)),
    number("call_timeout", "Call timeout", "s", "A dependency call that has not answered within this time is abandoned: its thread is freed and the request fails.", (0.1, 60.0, 0.1, 3.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "slow-recommendations",
        label: "Slow down recommendations",
        help: "The recommendations API answers slowdown-factor times slower until restored.",
    },
    InjectionSpec {
        id: "slow-payments",
        label: "Slow down payments",
        help: "The payments API answers slowdown-factor times slower until restored.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore dependencies",
        help: "Every slowed dependency answers at its normal speed again (calls already under way keep their time).",
    },
];

/// One network hop (client to service, thread to dependency, dependency back).
pub const HOP: SimDuration = SimDuration::from_millis(10);
/// Spread of dependency response times (coefficient of variation of the log-normal).
pub const LATENCY_CV: f64 = 0.5;
/// How often pool saturation is assessed.
pub const CHECK_INTERVAL: SimDuration = SimDuration::from_secs(1);
/// A pool is called saturated when it was full at least this share of the last interval…
pub const SATURATED_ABOVE: f64 = 0.5;
/// …and healthy again when it was full less than this share.
pub const RECOVERED_BELOW: f64 = 0.2;

/// The two kinds of request, in index order.
pub const KINDS: [&str; 2] = ["payments", "recommendations"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    Shared,
    Bulkheads,
}

/// Events of the model. Calls are named by their slab slot and a serial number, so an
/// event for a call that has ended (and whose slot was reused) is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival {
        kind: u8,
    },
    /// The request reaches its pool and asks for a permit.
    AtPool {
        slot: u32,
        serial: u32,
    },
    /// `max_wait` ran out before a permit came.
    WaitExpired {
        slot: u32,
        serial: u32,
    },
    /// The thread's call passes the pool on its way to the dependency.
    PassedPool {
        slot: u32,
        serial: u32,
    },
    /// The call reaches the dependency, which starts working on it.
    AtDependency {
        slot: u32,
        serial: u32,
    },
    /// The dependency answers; the response travels back.
    Answered {
        slot: u32,
        serial: u32,
    },
    /// The response is back: the thread is freed and the request completes.
    Returned {
        slot: u32,
        serial: u32,
    },
    /// The call timeout fired before the response came back.
    CallTimeout {
        slot: u32,
        serial: u32,
    },
    PoolCheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    ToPool,
    Waiting,
    Holding,
}

#[derive(Clone, Debug)]
struct Call {
    serial: u32,
    kind: usize,
    key: RequestKey,
    born: SimTime,
    /// Response time drawn at arrival (before any slowdown factor), so a kind's draws do
    /// not depend on the other kind or on the pool layout.
    base_latency: SimDuration,
    stage: Stage,
    timer: Option<TimerHandle>,
}

struct Pool {
    queue_node: NodeId,
    pool_node: NodeId,
    edge_to_pool: EdgeId,
    size: u32,
    in_use: u32,
    waiting: VecDeque<(u32, u32)>,
    state: NodeState,
    /// Time full in the current check interval, and since when it is full (if it is).
    full_time: SimDuration,
    full_since: Option<SimTime>,
    /// Largest number of permits ever held at once (never above the size unless the size
    /// was lowered while they were held).
    peak_in_use: u32,
}

/// Per-kind outcome counters and latency.
#[derive(Default)]
struct KindStats {
    arrived: u64,
    completed: u64,
    rejected: u64,
    timed_out: u64,
    latency: Option<LatencyHistogram>,
}

pub struct BulkheadModel {
    params: ParamValues,
    isolation: Isolation,
    topology: Topology,
    clients: NodeId,
    responses: NodeId,
    /// Per kind: its dependency node, the edge from its pool to it and back to responses.
    dependencies: [NodeId; 2],
    edge_to_client: [EdgeId; 2],
    edge_to_dependency: [EdgeId; 2],
    edge_back: [EdgeId; 2],
    slowed: [bool; 2],
    pools: Vec<Pool>,
    calls: Slab<Call>,
    next_serial: u32,
    arrivals: [ArrivalTimer<Event>; 2],
    latency_rngs: [SimRng; 2],
    stats: [KindStats; 2],
    busy: [u32; 2],
    waiting: [u32; 2],
    core: ModelCore,
    gauge_busy: [GaugeId; 2],
    gauge_waiting: [GaugeId; 2],
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<BulkheadModel> {
    let isolation = if params.choice("isolation") == "bulkheads" {
        Isolation::Bulkheads
    } else {
        Isolation::Shared
    };
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.5);
    let payments = topology.add_node("payments", "Payments API", NodeKind::Server, 0.76, 0.16);
    let recommendations = topology.add_node(
        "recommendations",
        "Recommender",
        NodeKind::Server,
        0.76,
        0.84,
    );
    let responses = topology.add_node("responses", "Responses", NodeKind::Sink, 1.0, 0.5);
    let dependencies = [payments, recommendations];
    let mut pools = Vec::new();
    let mut add_pool = |topology: &mut Topology, key: &str, label: &str, y: f32, size: u32| {
        let queue_node = topology.add_node(
            &format!("wait-{key}"),
            &format!("{label}: waiting for a thread"),
            NodeKind::Queue,
            0.25,
            y,
        );
        let pool_node = topology.add_node(
            &format!("pool-{key}"),
            &format!("{label} pool"),
            NodeKind::Guard,
            0.52,
            y,
        );
        let edge_to_pool = topology.add_edge(queue_node, pool_node);
        pools.push(Pool {
            queue_node,
            pool_node,
            edge_to_pool,
            size,
            in_use: 0,
            waiting: VecDeque::new(),
            state: NodeState::Healthy,
            full_time: SimDuration::ZERO,
            full_since: None,
            peak_in_use: 0,
        });
    };
    let sizes = [
        params.integer("payments_threads") as u32,
        params.integer("recommendations_threads") as u32,
    ];
    match isolation {
        Isolation::Shared => add_pool(&mut topology, "shared", "Shared", 0.5, sizes[0] + sizes[1]),
        Isolation::Bulkheads => {
            add_pool(&mut topology, "payments", "Payments", 0.16, sizes[0]);
            add_pool(
                &mut topology,
                "recommendations",
                "Recommender",
                0.84,
                sizes[1],
            );
        }
    }
    let pool_of = |kind: usize| match isolation {
        Isolation::Shared => 0,
        Isolation::Bulkheads => kind,
    };
    let mut edge_to_client = [EdgeId(0); 2];
    let mut edge_to_dependency = [EdgeId(0); 2];
    let mut edge_back = [EdgeId(0); 2];
    for kind in 0..2 {
        let pool = &pools[pool_of(kind)];
        edge_to_client[kind] = if kind == 0 || isolation == Isolation::Bulkheads {
            topology.add_edge(clients, pool.queue_node)
        } else {
            edge_to_client[0]
        };
        edge_to_dependency[kind] = topology.add_edge(pool.pool_node, dependencies[kind]);
        edge_back[kind] = topology.add_edge(dependencies[kind], responses);
    }
    let core = ModelCore::new(vec![
        "payments_busy_threads",
        "recommendations_busy_threads",
        "payments_waiting",
        "recommendations_waiting",
    ]);
    let arrival_timer = |kind: usize| {
        ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number(&format!("{}_rate", KINDS[kind]))),
                SimRng::new(seed.0, &format!("arrivals-{}", KINDS[kind])),
            ),
            Event::Arrival { kind: kind as u8 },
        )
    };
    let mut model = BulkheadModel {
        params: params.clone(),
        isolation,
        clients,
        responses,
        dependencies,
        edge_to_client,
        edge_to_dependency,
        edge_back,
        slowed: [false; 2],
        pools,
        calls: Slab::new(),
        next_serial: 0,
        arrivals: [arrival_timer(0), arrival_timer(1)],
        latency_rngs: [
            SimRng::new(seed.0, "latency-payments"),
            SimRng::new(seed.0, "latency-recommendations"),
        ],
        stats: Default::default(),
        busy: [0; 2],
        waiting: [0; 2],
        gauge_busy: [
            core.gauge("payments_busy_threads"),
            core.gauge("recommendations_busy_threads"),
        ],
        gauge_waiting: [
            core.gauge("payments_waiting"),
            core.gauge("recommendations_waiting"),
        ],
        core,
        topology,
    };
    let mut scheduler = Scheduler::new();
    for timer in &mut model.arrivals {
        timer.rearm(&mut scheduler);
    }
    scheduler.schedule_in(CHECK_INTERVAL, Event::PoolCheck);
    Simulation::new(model, scheduler)
}

impl BulkheadModel {
    fn pool_of(&self, kind: usize) -> usize {
        match self.isolation {
            Isolation::Shared => 0,
            Isolation::Bulkheads => kind,
        }
    }

    /// The live call in `slot` if its serial matches (else the event is stale).
    fn call(&self, slot: u32, serial: u32) -> Option<&Call> {
        self.calls
            .get(slot as usize)
            .filter(|call| call.serial == serial)
    }

    fn mean_latency(&self, kind: usize) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number(&format!("{}_latency", KINDS[kind])) / 1000.0)
    }

    fn arrive(&mut self, kind: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        self.stats[kind].arrived += 1;
        let base_latency = ServiceTime::LogNormal {
            mean: self.mean_latency(kind),
            cv: LATENCY_CV,
        }
        .sample(&mut self.latency_rngs[kind]);
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.edge_to_client[kind],
                depart: now,
                arrive: now + HOP,
            },
        );
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let slot = self.calls.insert(Call {
            serial,
            kind,
            key,
            born: now,
            base_latency,
            stage: Stage::ToPool,
            timer: None,
        }) as u32;
        scheduler.schedule_in(HOP, Event::AtPool { slot, serial });
    }

    /// A request reaches its pool: a permit now, a wait, or a rejection.
    fn at_pool(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(call) = self.call(slot, serial) else {
            return;
        };
        let kind = call.kind;
        let key = call.key;
        let pool_index = self.pool_of(kind);
        let pool = &self.pools[pool_index];
        if pool.in_use < pool.size && pool.waiting.is_empty() {
            self.core.metrics.waited(SimDuration::ZERO);
            self.grant(slot, pool_index, scheduler);
            return;
        }
        let max_wait = SimDuration::from_secs_f64(self.params.number("max_wait") / 1000.0);
        if max_wait == SimDuration::ZERO {
            self.reject(slot, now);
            return;
        }
        let queue_node = pool.queue_node;
        self.core.requests.move_to(
            key,
            Place::Queued {
                node: queue_node,
                since: now,
            },
        );
        let timer = scheduler.schedule_timer_in(max_wait, Event::WaitExpired { slot, serial });
        let call = &mut self.calls[slot as usize];
        call.stage = Stage::Waiting;
        call.timer = Some(timer);
        self.pools[pool_index].waiting.push_back((slot, serial));
        self.set_waiting(kind, now, 1);
    }

    fn set_waiting(&mut self, kind: usize, now: SimTime, delta: i32) {
        self.waiting[kind] = self.waiting[kind].wrapping_add_signed(delta);
        self.core
            .metrics
            .set_gauge(self.gauge_waiting[kind], now, self.waiting[kind] as i64);
    }

    fn set_busy(&mut self, kind: usize, now: SimTime, delta: i32) {
        self.busy[kind] = self.busy[kind].wrapping_add_signed(delta);
        self.core
            .metrics
            .set_gauge(self.gauge_busy[kind], now, self.busy[kind] as i64);
    }

    /// Closes or opens the pool's "full" interval after its occupancy or size changed.
    fn track_full(&mut self, pool_index: usize, now: SimTime) {
        let pool = &mut self.pools[pool_index];
        let full = pool.in_use >= pool.size;
        match (full, pool.full_since) {
            (true, None) => pool.full_since = Some(now),
            (false, Some(since)) => {
                pool.full_time = pool.full_time + (now - since);
                pool.full_since = None;
            }
            _ => {}
        }
    }

    /// Hands the call a permit: its thread starts the downstream call.
    fn grant(&mut self, slot: u32, pool_index: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let timeout = SimDuration::from_secs_f64(self.params.number("call_timeout"));
        let pool = &mut self.pools[pool_index];
        pool.in_use += 1;
        pool.peak_in_use = pool.peak_in_use.max(pool.in_use);
        let edge = pool.edge_to_pool;
        self.track_full(pool_index, now);
        let call = &mut self.calls[slot as usize];
        let serial = call.serial;
        let kind = call.kind;
        let key = call.key;
        call.stage = Stage::Holding;
        call.timer =
            Some(scheduler.schedule_timer_in(timeout, Event::CallTimeout { slot, serial }));
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::PassedPool { slot, serial });
        self.set_busy(kind, now, 1);
    }

    /// Gives freed permits to waiting calls, oldest first.
    fn dispatch(&mut self, pool_index: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        loop {
            let pool = &mut self.pools[pool_index];
            if pool.in_use >= pool.size {
                return;
            }
            let Some((slot, serial)) = pool.waiting.pop_front() else {
                return;
            };
            let Some(call) = self.call(slot, serial) else {
                continue;
            };
            let kind = call.kind;
            let key = call.key;
            if let Some(timer) = call.timer {
                scheduler.cancel(timer);
            }
            if let Place::Queued { since, .. } = self.core.requests.get(key).place {
                self.core.metrics.waited(now - since);
            }
            self.set_waiting(kind, now, -1);
            self.grant(slot, pool_index, scheduler);
        }
    }

    /// Refuses a call (no permit within `max_wait`): BulkheadFullException.
    fn reject(&mut self, slot: u32, now: SimTime) {
        let call = self.calls.remove(slot as usize);
        self.core.requests.finish(call.key);
        self.core.metrics.rejected(now);
        self.stats[call.kind].rejected += 1;
    }

    fn wait_expired(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(call) = self.call(slot, serial) else {
            return;
        };
        if call.stage != Stage::Waiting {
            return;
        }
        let kind = call.kind;
        let pool_index = self.pool_of(kind);
        self.pools[pool_index]
            .waiting
            .retain(|&(s, n)| (s, n) != (slot, serial));
        self.set_waiting(kind, now, -1);
        self.reject(slot, now);
    }

    /// Frees the call's permit and lets the next waiting call have it.
    fn release(&mut self, kind: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let pool_index = self.pool_of(kind);
        self.pools[pool_index].in_use -= 1;
        self.track_full(pool_index, now);
        self.set_busy(kind, now, -1);
        self.dispatch(pool_index, scheduler);
    }

    fn returned(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.call(slot, serial).is_none() {
            return;
        }
        let call = self.calls.remove(slot as usize);
        if let Some(timer) = call.timer {
            scheduler.cancel(timer);
        }
        self.core.requests.finish(call.key);
        let latency = now - call.born;
        self.core.metrics.completed(now, latency);
        let stats = &mut self.stats[call.kind];
        stats.completed += 1;
        stats
            .latency
            .get_or_insert_with(|| LatencyHistogram::new(PRECISE))
            .record(latency);
        self.release(call.kind, scheduler);
    }

    fn call_timeout(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match self.call(slot, serial) {
            Some(call) if call.stage == Stage::Holding => {}
            _ => return,
        }
        let call = self.calls.remove(slot as usize);
        self.core.requests.finish(call.key);
        self.core.metrics.failed(now);
        self.stats[call.kind].timed_out += 1;
        self.release(call.kind, scheduler);
    }

    fn pool_check(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(CHECK_INTERVAL, Event::PoolCheck);
        for index in 0..self.pools.len() {
            let pool = &mut self.pools[index];
            let mut full = pool.full_time;
            if let Some(since) = pool.full_since {
                full = full + (now - since);
                pool.full_since = Some(now);
            }
            pool.full_time = SimDuration::ZERO;
            let share = full.as_secs_f64() / CHECK_INTERVAL.as_secs_f64();
            let next = match pool.state {
                NodeState::Healthy if share >= SATURATED_ABOVE => NodeState::Unhealthy,
                NodeState::Unhealthy if share < RECOVERED_BELOW => NodeState::Healthy,
                state => state,
            };
            if next != pool.state {
                pool.state = next;
                let node = pool.pool_node;
                self.core
                    .log
                    .push(now, Notable::StateChanged { node, to: next });
            }
        }
    }

    /// Marks a dependency slow (or normal again) and logs its new state if it changed.
    fn set_slow(&mut self, kind: usize, slow: bool, now: SimTime) {
        if self.slowed[kind] == slow {
            return;
        }
        self.slowed[kind] = slow;
        let to = if slow {
            NodeState::Unhealthy
        } else {
            NodeState::Healthy
        };
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: self.dependencies[kind],
                to,
            },
        );
    }

    /// Requests of `kind` that ended, and the share of them that succeeded (100 % when
    /// none has ended yet).
    fn ok_pct(&self, kind: usize) -> f64 {
        let stats = &self.stats[kind];
        let ended = stats.completed + stats.rejected + stats.timed_out;
        if ended == 0 {
            100.0
        } else {
            100.0 * stats.completed as f64 / ended as f64
        }
    }

    fn p99_ms(&self, kind: usize) -> f64 {
        self.stats[kind]
            .latency
            .as_ref()
            .map_or(0.0, |histogram| histogram.quantile_secs(0.99) * 1000.0)
    }

    /// Largest number of permits held at once in each pool, with the pool's current size
    /// (for the invariant checks in tests).
    pub fn pool_peaks(&self) -> Vec<(u32, u32)> {
        self.pools
            .iter()
            .map(|pool| (pool.peak_in_use, pool.size))
            .collect()
    }

    /// Pool sizes after a live change of the thread counts.
    fn resize_pools(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let sizes = [
            self.params.integer("payments_threads") as u32,
            self.params.integer("recommendations_threads") as u32,
        ];
        match self.isolation {
            Isolation::Shared => self.pools[0].size = sizes[0] + sizes[1],
            Isolation::Bulkheads => {
                self.pools[0].size = sizes[0];
                self.pools[1].size = sizes[1];
            }
        }
        for index in 0..self.pools.len() {
            self.track_full(index, now);
            self.dispatch(index, scheduler);
        }
    }
}

impl Model for BulkheadModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Arrival { kind } => {
                let kind = kind as usize;
                self.arrivals[kind].fired();
                self.arrive(kind, scheduler);
                self.arrivals[kind].rearm(scheduler);
            }
            Event::AtPool { slot, serial } => self.at_pool(slot, serial, scheduler),
            Event::WaitExpired { slot, serial } => self.wait_expired(slot, serial, scheduler),
            Event::PassedPool { slot, serial } => {
                let now = scheduler.now();
                let Some(call) = self.call(slot, serial) else {
                    return;
                };
                let (kind, key) = (call.kind, call.key);
                self.core.requests.move_to(
                    key,
                    Place::OnEdge {
                        edge: self.edge_to_dependency[kind],
                        depart: now,
                        arrive: now + HOP,
                    },
                );
                scheduler.schedule_in(HOP, Event::AtDependency { slot, serial });
            }
            Event::AtDependency { slot, serial } => {
                let now = scheduler.now();
                let Some(call) = self.call(slot, serial) else {
                    return;
                };
                let (kind, key, base) = (call.kind, call.key, call.base_latency);
                let factor = if self.slowed[kind] {
                    self.params.number("slowdown_factor")
                } else {
                    1.0
                };
                let node = self.dependencies[kind];
                self.core
                    .requests
                    .move_to(key, Place::InService { node, since: now });
                // Response time = the draw made at arrival × the slowdown, to the tick.
                let service = ServiceTime::Deterministic(base).scaled(factor).mean();
                scheduler.schedule_in(service, Event::Answered { slot, serial });
            }
            Event::Answered { slot, serial } => {
                let now = scheduler.now();
                let Some(call) = self.call(slot, serial) else {
                    return;
                };
                let (kind, key) = (call.kind, call.key);
                self.core.requests.move_to(
                    key,
                    Place::OnEdge {
                        edge: self.edge_back[kind],
                        depart: now,
                        arrive: now + HOP,
                    },
                );
                scheduler.schedule_in(HOP, Event::Returned { slot, serial });
            }
            Event::Returned { slot, serial } => self.returned(slot, serial, scheduler),
            Event::CallTimeout { slot, serial } => self.call_timeout(slot, serial, scheduler),
            Event::PoolCheck => self.pool_check(scheduler),
        }
    }
}

impl LessonModel for BulkheadModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.clients));
        snapshot.nodes.push(plain(self.responses));
        for kind in 0..2 {
            // No busy count here: the threads waiting on these calls are counted at the
            // pool, and the dependency itself has no thread limit in this model.
            snapshot.nodes.push(NodeView {
                state: if self.slowed[kind] {
                    NodeState::Unhealthy
                } else {
                    NodeState::Healthy
                },
                ..plain(self.dependencies[kind])
            });
        }
        for pool in &self.pools {
            snapshot.nodes.push(NodeView {
                queued: pool.waiting.len() as u32,
                ..plain(pool.queue_node)
            });
            snapshot.nodes.push(NodeView {
                node: pool.pool_node,
                state: pool.state,
                busy: pool.in_use,
                capacity: pool.size,
                queued: pool.waiting.len() as u32,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let series = self.core.metrics.series();
        let busy_mean = |kind: usize| series.gauge_run_mean(self.gauge_busy[kind].0, now);
        vec![
            Figure {
                key: "payments_ok_pct",
                label: "Payments succeeded",
                value: self.ok_pct(0),
                unit: "%",
            },
            Figure {
                key: "recommendations_ok_pct",
                label: "Recommendations succeeded",
                value: self.ok_pct(1),
                unit: "%",
            },
            Figure {
                key: "payments_p99_ms",
                label: "Payments p99",
                value: self.p99_ms(0),
                unit: "ms",
            },
            Figure {
                key: "recommendations_p99_ms",
                label: "Recommendations p99",
                value: self.p99_ms(1),
                unit: "ms",
            },
            Figure {
                key: "payments_failed",
                label: "Payments rejected or timed out",
                value: (self.stats[0].rejected + self.stats[0].timed_out) as f64,
                unit: "",
            },
            Figure {
                key: "recommendations_failed",
                label: "Recommendations rejected or timed out",
                value: (self.stats[1].rejected + self.stats[1].timed_out) as f64,
                unit: "",
            },
            Figure {
                key: "payments_busy_mean",
                label: "Mean busy threads (payments)",
                value: busy_mean(0),
                unit: "",
            },
            Figure {
                key: "recommendations_busy_mean",
                label: "Mean busy threads (recommendations)",
                value: busy_mean(1),
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
                let slowed = |kind: usize| -> Result<(), CommandError> {
                    if self.slowed[kind] {
                        Err(CommandError::NotApplicable {
                            reason: format!("the {} API is already slow", KINDS[kind]),
                        })
                    } else {
                        Ok(())
                    }
                };
                // Check first, so the log reads "injected" before the change it causes.
                match id.as_str() {
                    "slow-payments" => slowed(0)?,
                    "slow-recommendations" => slowed(1)?,
                    "restore" if !self.slowed.iter().any(|&slow| slow) => {
                        return Err(CommandError::NotApplicable {
                            reason: "no dependency is slow".into(),
                        })
                    }
                    "restore" => {}
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                match id.as_str() {
                    "slow-payments" => self.set_slow(0, true, now),
                    "slow-recommendations" => self.set_slow(1, true, now),
                    _ => {
                        for kind in 0..2 {
                            self.set_slow(kind, false, now);
                        }
                    }
                }
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "payments_rate" | "recommendations_rate" => {
                        let kind = usize::from(spec.name == "recommendations_rate");
                        let rate = self.params.number(spec.name);
                        self.arrivals[kind].arrivals.set_shape(steady(rate));
                        self.arrivals[kind].rearm(scheduler);
                    }
                    "payments_threads" | "recommendations_threads" => self.resize_pools(scheduler),
                    _ => {} // latencies, factor, max wait and timeout apply to later calls
                }
                Ok(())
            }
        }
    }
}
