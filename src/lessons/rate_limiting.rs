//! Lesson `rate-limiting`: per-client token buckets in front of a server of limited
//! capacity, and server-side load shedding. One noisy client and three polite ones share
//! the server; when the noisy client floods, per-client limits answer its excess with
//! 429 Too Many Requests so the polite clients stay served. When the whole offered load
//! exceeds the server's capacity, shedding (by queue length, or by how long a request has
//! already waited) keeps goodput near capacity, where an unprotected server collapses: its
//! queue fills with requests whose clients have already timed out, and it spends all its
//! time on answers nobody waits for.
//!
//! Token bucket (as in Amazon API Gateway request throttling: a steady-state rate and a
//! burst, enforced with the token bucket algorithm, excess requests answered 429): each
//! client's bucket holds at most `limit_burst` tokens and gains `limit_rate` tokens per
//! second; a request spends one token, and a request that finds less than one token is
//! throttled. The bucket is exact in integer ticks ([`TokenBucket`]): the fill level is
//! kept in units of 1/10⁹ token, the rate in milli-tokens per second, so one tick adds
//! exactly `rate_milli` units and no rounding accumulates. Hence in any window of length
//! `t` a client is admitted at most `b + r·t` times, and a full bucket lets exactly `b`
//! simultaneous requests through.
//!
//! Load shedding (AWS Builders' Library, "Using load shedding to avoid overload"): an
//! overloaded server that keeps accepting work ends up doing work whose caller has timed
//! out, so goodput (useful throughput) falls while throughput stays high. Rejecting the
//! excess cheaply and early keeps the server's time for requests that can still succeed.
//! The model offers `none`, `queue-length` (reject an arriving request when
//! `shed_queue_limit` requests are already waiting) and `latency` (when a worker takes a
//! request that has waited longer than `latency_target`, it drops it unprocessed, because
//! it could no longer be answered in time). The server does not know when a client gives
//! up: an abandoned request stays in the queue and is served anyway (wasted work).
//!
//! Equations, figures and sources: docs/models/rate-limiting.md.

use std::collections::VecDeque;

use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng};
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation, TimerHandle};
use crate::sim::snapshot::{Figure, NodeState, NodeView, Notable, Snapshot};
use crate::sim::time::{SimDuration, SimTime, TICKS_PER_SECOND};
use crate::sim::topology::{EdgeId, NodeId, NodeKind, Topology};
use crate::sim::traffic::{PoissonArrivals, TrafficShape};

use super::core::{ArrivalTimer, ModelCore};
use super::params::{integer, number};
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

/// The catalog entry.
pub const SPEC: LessonSpec = LessonSpec {
    id: "rate-limiting",
    title: "Rate limiting and load shedding",
    group: LessonGroup::Resilience,
    summary: "Per-client token buckets stop a noisy client from starving the others; shedding keeps an overloaded server's goodput near capacity.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("rate_limit"),
    sweep: Some("shedding"),
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "rate_limit",
        label: "Rate limits",
        unit: "",
        help: "per-client: every client has its own token bucket and gets 429 when it is empty; off: every request goes to the server.",
        kind: ParamKind::Choice {
            options: &["per-client", "off"],
            default: "per-client",
        },
        liveness: Liveness::Live,
    },
    number("limit_rate", "Limit rate (per client)", "req/s", "Tokens added to each client's bucket per second: its sustained request rate.", (0.5, 500.0, 0.5, 40.0)),
    integer("limit_burst", "Burst (per client)", "", "Most tokens a bucket holds: how many requests a client may send at once after a quiet spell.", (1, 1000, 80)),
    ParamSpec {
        name: "shedding",
        label: "Load shedding",
        unit: "",
        help: "none: the server queues everything; queue-length: reject arrivals while the queue is long; latency: drop queued requests that waited too long to still succeed.",
        kind: ParamKind::Choice {
            options: &["none", "queue-length", "latency"],
            default: "none",
        },
        liveness: Liveness::Live,
    },
    integer("shed_queue_limit", "Shed above queue length", "", "With queue-length shedding: an arriving request is rejected (503) when this many are already waiting.", (1, 1000, 50)),
    number("latency_target", "Latency target", "s", "With latency shedding: a request that waited longer than this is dropped unprocessed when a worker reaches it.", (0.05, 30.0, 0.05, 0.5)),
    number("polite_rate", "Polite client rate", "req/s", "Requests per second from each of the three polite clients (Poisson).", (0.0, 200.0, 1.0, 15.0)),
    number("noisy_rate", "Noisy client rate", "req/s", "Requests per second from the noisy client when it behaves (Poisson).", (0.0, 200.0, 1.0, 15.0)),
    number("flood_factor", "Flood size", "×", "How many times its normal rate the noisy client sends while it floods.", (1.0, 50.0, 0.5, 10.0)),
    number("flood_start", "Flood starts at", "s", "When the scheduled flood from the noisy client begins.", (0.0, 3600.0, 10.0, 60.0)).restart(),
    number("flood_length", "Flood length", "s", "How long the scheduled flood lasts (0: no scheduled flood; use the buttons).", (0.0, 3600.0, 10.0, 120.0)).restart(),
    integer("workers", "Server workers", "", "Requests the server works on at once.", (1, 32, 4)),
    number("service_time", "Service time", "s", "Mean time a worker needs for one request (log-normal, coefficient of variation 0.5).", (0.005, 2.0, 0.005, 0.04)),
    number("client_timeout", "Client timeout", "s", "How long a client waits for an answer before it gives up (the server is not told).", (0.1, 30.0, 0.1, 1.0)),
    integer("queue_capacity", "Queue capacity", "", "Requests the server's queue holds; beyond it arrivals are dropped.", (10, 5000, 1000)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "noisy-flood",
        label: "Noisy client floods",
        help: "The noisy client multiplies its rate by the flood size until it calms down.",
    },
    InjectionSpec {
        id: "calm-down",
        label: "Calm down",
        help: "The noisy client goes back to its normal rate.",
    },
    InjectionSpec {
        id: "traffic-surge",
        label: "Traffic surge (all ×2, 60 s)",
        help:
            "Every client doubles its rate for one minute: overload that no single client causes.",
    },
];

/// Network hop from a client to the limiter, and for answers back.
const HOP: SimDuration = SimDuration::from_millis(20);
/// Hop from the limiter to the server's queue (same data centre).
const INNER_HOP: SimDuration = SimDuration::from_millis(10);
/// Spread of service times (coefficient of variation).
const SERVICE_CV: f64 = 0.5;
/// Window of the live rate gauges and of the goodput accounting.
const TICK: SimDuration = SimDuration::from_secs(1);
const SURGE_FACTOR: f64 = 2.0;
const SURGE_LENGTH: SimDuration = SimDuration::from_secs(60);
/// Index of the noisy client; polite clients follow.
const NOISY: usize = 0;
const POLITE_CLIENTS: usize = 3;
const CLIENTS: usize = 1 + POLITE_CLIENTS;

/// Units of bucket fill per token: 10⁹, so that one tick (10⁻⁶ s) at `r` tokens/s adds
/// exactly `r × 1000` units when `r` is given in milli-tokens per second.
pub const UNITS_PER_TOKEN: u64 = 1_000 * TICKS_PER_SECOND;

/// A token bucket in exact integer arithmetic: it holds at most `burst` tokens and gains
/// `rate` tokens per second (rounded to a thousandth), refilled lazily whenever it is
/// looked at. A request takes one whole token or is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Fill level in 1/[`UNITS_PER_TOKEN`] tokens.
    units: u64,
    /// Refill in milli-tokens per second = units per tick.
    rate_milli: u64,
    burst: u64,
    /// Time up to which refill has been added.
    last: SimTime,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: u32, now: SimTime) -> Self {
        let burst = u64::from(burst.max(1));
        TokenBucket {
            units: burst * UNITS_PER_TOKEN,
            rate_milli: milli(rate),
            burst,
            last: now,
        }
    }

    fn refill(&mut self, now: SimTime) {
        let elapsed = (now - self.last).ticks();
        self.last = self.last.max(now);
        let cap = self.burst * UNITS_PER_TOKEN;
        let added = u128::from(elapsed) * u128::from(self.rate_milli);
        self.units = (u128::from(self.units) + added).min(u128::from(cap)) as u64;
    }

    /// Spends one token at `now` if the bucket holds at least one; `false` = throttle.
    pub fn try_take(&mut self, now: SimTime) -> bool {
        self.refill(now);
        if self.units >= UNITS_PER_TOKEN {
            self.units -= UNITS_PER_TOKEN;
            true
        } else {
            false
        }
    }

    /// Tokens held at `now` (fractional), without changing the bucket.
    pub fn tokens(&self, now: SimTime) -> f64 {
        let mut copy = *self;
        copy.refill(now);
        copy.units as f64 / UNITS_PER_TOKEN as f64
    }

    /// The first time at or after `now` when a request would be admitted (`None` if the
    /// rate is zero and the bucket holds less than one token).
    pub fn next_admission(&self, now: SimTime) -> Option<SimTime> {
        let mut copy = *self;
        copy.refill(now);
        if copy.units >= UNITS_PER_TOKEN {
            return Some(now);
        }
        if copy.rate_milli == 0 {
            return None;
        }
        let missing = UNITS_PER_TOKEN - copy.units;
        Some(now + SimDuration::from_ticks(missing.div_ceil(copy.rate_milli)))
    }

    /// Changes the refill rate from `now` on (refill up to `now` uses the old rate).
    pub fn set_rate(&mut self, rate: f64, now: SimTime) {
        self.refill(now);
        self.rate_milli = milli(rate);
    }

    /// Changes the capacity from `now` on, dropping tokens above it.
    pub fn set_burst(&mut self, burst: u32, now: SimTime) {
        self.refill(now);
        self.burst = u64::from(burst.max(1));
        self.units = self.units.min(self.burst * UNITS_PER_TOKEN);
    }
}

/// Tokens per second as milli-tokens per second, rounded to the nearest.
fn milli(rate: f64) -> u64 {
    if rate.is_finite() && rate > 0.0 {
        (rate * 1000.0 + 0.5) as u64
    } else {
        0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shedding {
    None,
    QueueLength,
    Latency,
}

fn shedding(params: &ParamValues) -> Shedding {
    match params.choice("shedding") {
        "queue-length" => Shedding::QueueLength,
        "latency" => Shedding::Latency,
        _ => Shedding::None,
    }
}

/// Why a request went to the rejection sink beside the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Load shedding: 503, counted as rejected.
    Shed,
    /// The queue was full: counted as dropped.
    Overflow,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A client sends a request.
    Arrival {
        client: u8,
    },
    /// A request reaches the rate limiter.
    AtLimiter {
        job: u32,
    },
    /// A throttled request's 429 reaches its client.
    Throttled {
        job: u32,
    },
    /// An admitted request reaches the server's queue.
    AtServer {
        job: u32,
    },
    /// A shed or dropped request's 503 reaches its client.
    Refused {
        job: u32,
        why: Refusal,
    },
    /// A worker finishes a request.
    Done {
        job: u32,
    },
    /// A response reaches its client.
    Responded {
        job: u32,
    },
    /// A client stops waiting.
    ClientTimeout {
        job: u32,
    },
    /// Once a second: the rate gauges and goodput accounting.
    Tick,
    FloodStarts,
    FloodEnds {
        generation: u32,
    },
    SurgeEnds {
        generation: u32,
    },
}

/// One request, from the client's and the server's point of view.
#[derive(Clone, Copy, Debug)]
struct Job {
    client: u8,
    born: SimTime,
    /// The live token while the client still waits; `None` once the client has its
    /// outcome (the server may still hold the request: an abandoned one).
    key: Option<RequestKey>,
    timer: Option<TimerHandle>,
    /// When it joined the server's queue.
    queued_at: SimTime,
}

/// Counts for one second, turned into gauges and goodput accounting at each tick.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    offered: u64,
    at_server: u64,
    good: u64,
}

pub struct RateLimitingModel {
    params: ParamValues,
    topology: Topology,
    clients: [NodeId; CLIENTS],
    limiter: NodeId,
    throttled_sink: NodeId,
    queue_node: NodeId,
    refused_sink: NodeId,
    server: NodeId,
    responses: NodeId,
    client_edges: [EdgeId; CLIENTS],
    edge_throttle: EdgeId,
    edge_admit: EdgeId,
    edge_refuse: EdgeId,
    edge_respond: EdgeId,
    arrivals: Vec<ArrivalTimer<Event>>,
    buckets: [TokenBucket; CLIENTS],
    service_rng: SimRng,
    jobs: Vec<Option<Job>>,
    queue: VecDeque<u32>,
    busy: u32,
    flooding: bool,
    flood_generation: u32,
    surging: bool,
    surge_generation: u32,
    limiter_state: NodeState,
    server_state: NodeState,
    window: Window,
    /// Σ over finished seconds of min(arrivals at the server, capacity).
    attainable: f64,
    good: u64,
    polite_ok: u64,
    polite_decided: u64,
    noisy_429s: u64,
    throttled: u64,
    shed: u64,
    wasted: u64,
    core: ModelCore,
    gauge_offered: GaugeId,
    gauge_goodput: GaugeId,
    gauge_queue: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

/// A fresh run at time zero.
pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<RateLimitingModel> {
    let mut topology = Topology::default();
    let noisy = topology.add_node("noisy", "Noisy client", NodeKind::Source, 0.03, 0.08);
    let polite: Vec<NodeId> = (0..POLITE_CLIENTS)
        .map(|index| {
            topology.add_node(
                &format!("polite-{}", index + 1),
                &format!("Polite client {}", index + 1),
                NodeKind::Source,
                0.03,
                0.38 + 0.26 * index as f32,
            )
        })
        .collect();
    let clients = [noisy, polite[0], polite[1], polite[2]];
    let limiter = topology.add_node("limiter", "Rate limiter", NodeKind::Guard, 0.25, 0.45);
    let throttled_sink = topology.add_node("throttled", "429 Too Many", NodeKind::Sink, 0.25, 0.9);
    let queue_node = topology.add_node("queue", "Server queue", NodeKind::Queue, 0.51, 0.45);
    let refused_sink = topology.add_node("refused", "503 Shed", NodeKind::Sink, 0.51, 0.9);
    let server = topology.add_node("server", "Server", NodeKind::Server, 0.76, 0.45);
    let responses = topology.add_node("responses", "Answered", NodeKind::Sink, 0.97, 0.45);
    let client_edges = clients.map(|client| topology.add_edge(client, limiter));
    let edge_throttle = topology.add_edge(limiter, throttled_sink);
    let edge_admit = topology.add_edge(limiter, queue_node);
    let edge_refuse = topology.add_edge(queue_node, refused_sink);
    topology.add_edge(queue_node, server);
    let edge_respond = topology.add_edge(server, responses);

    let core = ModelCore::new(vec![
        "offered_req_per_s",
        "goodput_req_per_s",
        "queue_length",
    ]);
    let arrivals = (0..CLIENTS)
        .map(|client| {
            let stream = if client == NOISY {
                "arrivals-noisy".to_owned()
            } else {
                format!("arrivals-polite-{client}")
            };
            ArrivalTimer::new(
                PoissonArrivals::new(
                    TrafficShape::Steady { rate: 0.0 },
                    SimRng::new(seed.0, &stream),
                ),
                Event::Arrival {
                    client: client as u8,
                },
            )
        })
        .collect();
    let rate = params.number("limit_rate");
    let burst = params.integer("limit_burst") as u32;
    let limits_on = params.choice("rate_limit") == "per-client";
    let mut model = RateLimitingModel {
        params: params.clone(),
        topology,
        clients,
        limiter,
        throttled_sink,
        queue_node,
        refused_sink,
        server,
        responses,
        client_edges,
        edge_throttle,
        edge_admit,
        edge_refuse,
        edge_respond,
        arrivals,
        buckets: [TokenBucket::new(rate, burst, SimTime::ZERO); CLIENTS],
        service_rng: SimRng::new(seed.0, "service"),
        jobs: Vec::new(),
        queue: VecDeque::new(),
        busy: 0,
        flooding: false,
        flood_generation: 0,
        surging: false,
        surge_generation: 0,
        limiter_state: if limits_on {
            NodeState::Healthy
        } else {
            NodeState::Off
        },
        server_state: NodeState::Healthy,
        window: Window::default(),
        attainable: 0.0,
        good: 0,
        polite_ok: 0,
        polite_decided: 0,
        noisy_429s: 0,
        throttled: 0,
        shed: 0,
        wasted: 0,
        gauge_offered: core.gauge("offered_req_per_s"),
        gauge_goodput: core.gauge("goodput_req_per_s"),
        gauge_queue: core.gauge("queue_length"),
        core,
    };
    let mut scheduler = Scheduler::new();
    for client in 0..CLIENTS {
        model.refresh_rate(client, &mut scheduler);
    }
    scheduler.schedule_in(TICK, Event::Tick);
    if params.number("flood_length") > 0.0 {
        scheduler.schedule_in(
            SimDuration::from_secs_f64(params.number("flood_start")),
            Event::FloodStarts,
        );
    }
    Simulation::new(model, scheduler)
}

impl RateLimitingModel {
    /// The rate client `client` sends at right now.
    fn client_rate(&self, client: usize) -> f64 {
        let base = if client == NOISY {
            self.params.number("noisy_rate")
                * if self.flooding {
                    self.params.number("flood_factor")
                } else {
                    1.0
                }
        } else {
            self.params.number("polite_rate")
        };
        base * if self.surging { SURGE_FACTOR } else { 1.0 }
    }

    fn refresh_rate(&mut self, client: usize, scheduler: &mut Scheduler<Event>) {
        let rate = self.client_rate(client);
        let timer = &mut self.arrivals[client];
        timer
            .arrivals
            .set_shape(TrafficShape::steady(rate).expect("rates are within the valid range"));
        timer.rearm(scheduler);
    }

    fn limits_on(&self) -> bool {
        self.params.choice("rate_limit") == "per-client"
    }

    /// Requests per second the server can finish: workers ÷ mean service time.
    fn capacity(&self) -> f64 {
        self.params.integer("workers") as f64 / self.params.number("service_time")
    }

    fn client_timeout(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("client_timeout"))
    }

    fn set_state(&mut self, node: NodeId, to: NodeState, now: SimTime) {
        self.core.log.push(now, Notable::StateChanged { node, to });
    }

    fn arrive(&mut self, client: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        self.window.offered += 1;
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.client_edges[client],
                depart: now,
                arrive: now + HOP,
            },
        );
        let job = self.jobs.len() as u32;
        let timer =
            scheduler.schedule_timer_in(self.client_timeout(), Event::ClientTimeout { job });
        self.jobs.push(Some(Job {
            client: client as u8,
            born: now,
            key: Some(key),
            timer: Some(timer),
            queued_at: now,
        }));
        scheduler.schedule_in(HOP, Event::AtLimiter { job });
    }

    fn job(&self, job: u32) -> Option<Job> {
        self.jobs.get(job as usize).copied().flatten()
    }

    /// Moves a job's token if the client still waits for it.
    fn move_token(&mut self, job: u32, place: Place) {
        if let Some(Job { key: Some(key), .. }) = self.job(job) {
            self.core.requests.move_to(key, place);
        }
    }

    fn on_edge(&self, edge: EdgeId, now: SimTime, hop: SimDuration) -> Place {
        Place::OnEdge {
            edge,
            depart: now,
            arrive: now + hop,
        }
    }

    fn at_limiter(&mut self, job: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(entry) = self.job(job) else { return };
        let admitted = !self.limits_on() || self.buckets[entry.client as usize].try_take(now);
        if admitted {
            self.move_token(job, self.on_edge(self.edge_admit, now, INNER_HOP));
            scheduler.schedule_in(INNER_HOP, Event::AtServer { job });
        } else {
            self.throttled += 1;
            if entry.client as usize == NOISY {
                self.noisy_429s += 1;
            }
            self.move_token(job, self.on_edge(self.edge_throttle, now, HOP));
            scheduler.schedule_in(HOP, Event::Throttled { job });
        }
    }

    /// The client learns its outcome; `ok` = answered in time.
    fn decide(&mut self, job: u32, scheduler: &mut Scheduler<Event>) -> Option<Job> {
        let entry = self.jobs[job as usize].as_mut()?;
        let key = entry.key.take()?;
        if let Some(timer) = entry.timer.take() {
            scheduler.cancel(timer);
        }
        let entry = *entry;
        self.core.requests.finish(key);
        if entry.client as usize != NOISY {
            self.polite_decided += 1;
        }
        Some(entry)
    }

    fn throttled_arrives(&mut self, job: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.decide(job, scheduler).is_some() {
            self.core.metrics.rejected(now);
        }
        self.jobs[job as usize] = None;
    }

    fn at_server(&mut self, job: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.window.at_server += 1;
        let shed = shedding(&self.params) == Shedding::QueueLength
            && self.queue.len() >= self.params.integer("shed_queue_limit") as usize;
        let full = self.queue.len() >= self.params.integer("queue_capacity") as usize;
        if shed || full {
            let why = if shed {
                Refusal::Shed
            } else {
                Refusal::Overflow
            };
            self.refuse(job, why, scheduler);
            return;
        }
        if let Some(entry) = self.jobs[job as usize].as_mut() {
            entry.queued_at = now;
        }
        self.move_token(
            job,
            Place::Queued {
                node: self.queue_node,
                since: now,
            },
        );
        self.queue.push_back(job);
        self.dispatch(scheduler);
        self.update_queue_gauge(now);
    }

    /// Sends a 503 back to the client (or forgets an abandoned request silently).
    fn refuse(&mut self, job: u32, why: Refusal, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match self.job(job) {
            Some(Job { key: Some(_), .. }) => {
                if why == Refusal::Shed {
                    self.shed += 1;
                }
                self.move_token(job, self.on_edge(self.edge_refuse, now, HOP));
                scheduler.schedule_in(HOP, Event::Refused { job, why });
            }
            _ => self.jobs[job as usize] = None,
        }
    }

    fn refused_arrives(&mut self, job: u32, why: Refusal, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.decide(job, scheduler).is_some() {
            match why {
                Refusal::Shed => self.core.metrics.rejected(now),
                Refusal::Overflow => self.core.metrics.dropped(now),
            }
        }
        self.jobs[job as usize] = None;
    }

    /// Free workers take requests from the head of the queue; with latency shedding a
    /// request that already waited longer than the target is dropped instead.
    fn dispatch(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let workers = self.params.integer("workers") as u32;
        let target = SimDuration::from_secs_f64(self.params.number("latency_target"));
        while self.busy < workers {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            let Some(entry) = self.job(job) else { continue };
            let waited = now - entry.queued_at;
            if shedding(&self.params) == Shedding::Latency && waited > target {
                self.refuse(job, Refusal::Shed, scheduler);
                continue;
            }
            self.core.metrics.waited(waited);
            self.busy += 1;
            self.move_token(
                job,
                Place::InService {
                    node: self.server,
                    since: now,
                },
            );
            let service = ServiceTime::LogNormal {
                mean: SimDuration::from_secs_f64(self.params.number("service_time")),
                cv: SERVICE_CV,
            }
            .sample(&mut self.service_rng);
            scheduler.schedule_in(service, Event::Done { job });
        }
    }

    fn done(&mut self, job: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.busy = self.busy.saturating_sub(1);
        match self.job(job) {
            Some(Job { key: Some(_), .. }) => {
                self.move_token(job, self.on_edge(self.edge_respond, now, HOP));
                scheduler.schedule_in(HOP, Event::Responded { job });
            }
            _ => {
                // Nobody waits for this answer any more: the work was wasted.
                self.wasted += 1;
                self.jobs[job as usize] = None;
            }
        }
        self.dispatch(scheduler);
        self.update_queue_gauge(now);
    }

    fn responded(&mut self, job: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match self.decide(job, scheduler) {
            Some(entry) => {
                self.core.metrics.completed(now, now - entry.born);
                self.good += 1;
                self.window.good += 1;
                if entry.client as usize != NOISY {
                    self.polite_ok += 1;
                }
            }
            None => self.wasted += 1,
        }
        self.jobs[job as usize] = None;
    }

    /// The client stops waiting: the request failed from its point of view. The server
    /// is not told; whatever it holds of the request stays where it is.
    fn client_timeout_fires(&mut self, job: u32, now: SimTime) {
        let Some(entry) = self.jobs.get_mut(job as usize).and_then(Option::as_mut) else {
            return;
        };
        entry.timer = None;
        let Some(key) = entry.key.take() else { return };
        let client = entry.client as usize;
        self.core.requests.finish(key);
        self.core.metrics.failed(now);
        if client != NOISY {
            self.polite_decided += 1;
        }
    }

    fn tick(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(TICK, Event::Tick);
        let window = std::mem::take(&mut self.window);
        self.attainable += (window.at_server as f64).min(self.capacity() * TICK.as_secs_f64());
        self.core
            .metrics
            .set_gauge(self.gauge_offered, now, window.offered as i64);
        self.core
            .metrics
            .set_gauge(self.gauge_goodput, now, window.good as i64);
        // The server is unhealthy while the head of its queue has waited longer than any
        // client does: it is working for callers who have already gone.
        let timeout = self.client_timeout();
        let stale = self
            .queue
            .front()
            .and_then(|&job| self.job(job))
            .is_some_and(|entry| now - entry.queued_at >= timeout);
        let state = if stale {
            NodeState::Unhealthy
        } else {
            NodeState::Healthy
        };
        if state != self.server_state {
            self.server_state = state;
            self.set_state(self.server, state, now);
        }
    }

    fn start_flood(&mut self, scheduler: &mut Scheduler<Event>) -> u32 {
        let now = scheduler.now();
        self.flooding = true;
        self.flood_generation += 1;
        self.refresh_rate(NOISY, scheduler);
        self.set_state(self.clients[NOISY], NodeState::Unhealthy, now);
        self.flood_generation
    }

    fn end_flood(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.flooding = false;
        self.flood_generation += 1;
        self.refresh_rate(NOISY, scheduler);
        self.set_state(self.clients[NOISY], NodeState::Healthy, now);
    }

    fn set_surge(&mut self, on: bool, scheduler: &mut Scheduler<Event>) {
        self.surging = on;
        for client in 0..CLIENTS {
            self.refresh_rate(client, scheduler);
        }
    }

    fn update_queue_gauge(&mut self, now: SimTime) {
        self.core
            .metrics
            .set_gauge(self.gauge_queue, now, self.queue.len() as i64);
    }

    /// Goodput as a share of what was attainable: successful answers ÷ Σ per second of
    /// min(requests reaching the server, capacity), the current partial second included.
    fn goodput_pct(&self, now: SimTime) -> f64 {
        let since_tick = (now.ticks() % TICK.ticks()) as f64 / TICKS_PER_SECOND as f64;
        let attainable =
            self.attainable + (self.window.at_server as f64).min(self.capacity() * since_tick);
        if attainable <= 0.0 {
            100.0
        } else {
            (100.0 * self.good as f64 / attainable).min(100.0)
        }
    }
}

impl Model for RateLimitingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Arrival { client } => {
                let client = client as usize;
                self.arrivals[client].fired();
                self.arrive(client, scheduler);
                self.arrivals[client].rearm(scheduler);
            }
            Event::AtLimiter { job } => self.at_limiter(job, scheduler),
            Event::Throttled { job } => self.throttled_arrives(job, scheduler),
            Event::AtServer { job } => self.at_server(job, scheduler),
            Event::Refused { job, why } => self.refused_arrives(job, why, scheduler),
            Event::Done { job } => self.done(job, scheduler),
            Event::Responded { job } => self.responded(job, scheduler),
            Event::ClientTimeout { job } => self.client_timeout_fires(job, scheduler.now()),
            Event::Tick => self.tick(scheduler),
            Event::FloodStarts => {
                if !self.flooding {
                    let generation = self.start_flood(scheduler);
                    scheduler.schedule_in(
                        SimDuration::from_secs_f64(self.params.number("flood_length")),
                        Event::FloodEnds { generation },
                    );
                }
            }
            Event::FloodEnds { generation } => {
                if self.flooding && generation == self.flood_generation {
                    self.end_flood(scheduler);
                }
            }
            Event::SurgeEnds { generation } => {
                if self.surging && generation == self.surge_generation {
                    self.set_surge(false, scheduler);
                }
            }
        }
    }
}

impl LessonModel for RateLimitingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        for (index, &client) in self.clients.iter().enumerate() {
            let state = if index == NOISY && self.flooding {
                NodeState::Unhealthy
            } else {
                NodeState::Healthy
            };
            snapshot.nodes.push(NodeView {
                state,
                ..plain(client)
            });
        }
        snapshot.nodes.push(NodeView {
            state: self.limiter_state,
            ..plain(self.limiter)
        });
        snapshot.nodes.push(plain(self.throttled_sink));
        snapshot.nodes.push(NodeView {
            queued: self.queue.len().min(u32::MAX as usize) as u32,
            ..plain(self.queue_node)
        });
        snapshot.nodes.push(plain(self.refused_sink));
        snapshot.nodes.push(NodeView {
            state: self.server_state,
            busy: self.busy,
            capacity: self.params.integer("workers") as u32,
            ..plain(self.server)
        });
        snapshot.nodes.push(plain(self.responses));
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let polite_ok_pct = if self.polite_decided == 0 {
            100.0
        } else {
            100.0 * self.polite_ok as f64 / self.polite_decided as f64
        };
        vec![
            Figure {
                key: "polite_ok_pct",
                label: "Polite clients answered in time",
                value: polite_ok_pct,
                unit: "%",
            },
            Figure {
                key: "goodput_pct",
                label: "Goodput, % of attainable",
                value: self.goodput_pct(now),
                unit: "%",
            },
            Figure {
                key: "noisy_429s",
                label: "Noisy client's 429s",
                value: self.noisy_429s as f64,
                unit: "",
            },
            Figure {
                key: "polite_429s",
                label: "Polite clients' 429s",
                value: (self.throttled - self.noisy_429s) as f64,
                unit: "",
            },
            Figure {
                key: "shed",
                label: "Shed by the server (503)",
                value: self.shed as f64,
                unit: "",
            },
            Figure {
                key: "wasted_work",
                label: "Served after the client gave up",
                value: self.wasted as f64,
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
                match id.as_str() {
                    "noisy-flood" => {
                        if self.flooding {
                            return Err(CommandError::NotApplicable {
                                reason: "the noisy client is already flooding".into(),
                            });
                        }
                        self.start_flood(scheduler);
                    }
                    "calm-down" => {
                        if !self.flooding {
                            return Err(CommandError::NotApplicable {
                                reason: "the noisy client is not flooding".into(),
                            });
                        }
                        self.end_flood(scheduler);
                    }
                    "traffic-surge" => {
                        self.surge_generation += 1;
                        let generation = self.surge_generation;
                        self.set_surge(true, scheduler);
                        scheduler.schedule_in(SURGE_LENGTH, Event::SurgeEnds { generation });
                    }
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
                match spec.name {
                    "polite_rate" | "noisy_rate" | "flood_factor" => {
                        for client in 0..CLIENTS {
                            if self.arrivals[client].arrivals.rate_at(now)
                                != self.client_rate(client)
                            {
                                self.refresh_rate(client, scheduler);
                            }
                        }
                    }
                    "limit_rate" => {
                        let rate = self.params.number("limit_rate");
                        for bucket in &mut self.buckets {
                            bucket.set_rate(rate, now);
                        }
                    }
                    "limit_burst" => {
                        let burst = self.params.integer("limit_burst") as u32;
                        for bucket in &mut self.buckets {
                            bucket.set_burst(burst, now);
                        }
                    }
                    "rate_limit" => {
                        let state = if self.limits_on() {
                            // Switched on: every client starts with a full bucket.
                            let rate = self.params.number("limit_rate");
                            let burst = self.params.integer("limit_burst") as u32;
                            self.buckets = [TokenBucket::new(rate, burst, now); CLIENTS];
                            NodeState::Healthy
                        } else {
                            NodeState::Off
                        };
                        if state != self.limiter_state {
                            self.limiter_state = state;
                            self.set_state(self.limiter, state, now);
                        }
                    }
                    "workers" | "shedding" | "latency_target" => {
                        self.dispatch(scheduler);
                        self.update_queue_gauge(now);
                    }
                    _ => {}
                }
                Ok(())
            }
        }
    }
}

/// The shedding options, in the order the lesson lists them.
pub const SHEDDING_OPTIONS: [&str; 3] = ["none", "queue-length", "latency"];

/// Requests per second the server can finish with these parameters.
pub fn server_capacity(params: &ParamValues) -> f64 {
    params.integer("workers") as f64 / params.number("service_time")
}

/// One point of the goodput-against-offered-load curve: all four clients send an equal
/// share of `load_factor` × capacity for 240 s with rate limits off and no flood, under
/// `shedding`; returns (offered, goodput) in requests per second over the last 180 s
/// (the first minute lets the queue reach its steady state). Everything else comes from
/// `base`, so the curve answers for the learner's own server and timeouts.
pub fn goodput_point(
    base: &ParamValues,
    load_factor: f64,
    shedding: &'static str,
    seed: Seed,
) -> Option<(f64, f64)> {
    use super::params::ParamValue;
    let mut params = base.clone();
    let share = load_factor * server_capacity(base) / 4.0;
    params.set("rate_limit", ParamValue::Choice("off")).ok()?;
    params.set("shedding", ParamValue::Choice(shedding)).ok()?;
    params.set("flood_length", ParamValue::Number(0.0)).ok()?;
    params.set("polite_rate", ParamValue::Number(share)).ok()?;
    params.set("noisy_rate", ParamValue::Number(share)).ok()?;
    let mut run = simulation(&params, seed);
    run.run_until(SimTime::from_secs_f64(60.0));
    let before = LessonRun::summary(&run);
    run.run_until(SimTime::from_secs_f64(240.0));
    let after = LessonRun::summary(&run);
    Some((
        (after.generated - before.generated) as f64 / 180.0,
        (after.completed - before.completed) as f64 / 180.0,
    ))
}

#[cfg(test)]
mod curve_tests {
    use super::*;

    #[test]
    fn the_curve_collapses_past_capacity_without_shedding_only() {
        let base = ParamValues::defaults(PARAMS);
        let capacity = server_capacity(&base);
        let (offered, goodput) = goodput_point(&base, 0.5, "none", Seed(1)).unwrap();
        assert!(
            (offered - 0.5 * capacity).abs() < 0.05 * capacity,
            "{offered}"
        );
        assert!(
            (goodput - offered).abs() < 0.05 * capacity,
            "below capacity all is served"
        );
        let (_, collapsed) = goodput_point(&base, 2.0, "none", Seed(1)).unwrap();
        assert!(collapsed < 0.1 * capacity, "goodput {collapsed}");
        for shedding in ["queue-length", "latency"] {
            let (_, held) = goodput_point(&base, 2.0, shedding, Seed(1)).unwrap();
            assert!(held > 0.9 * capacity, "{shedding}: goodput {held}");
        }
    }
}
