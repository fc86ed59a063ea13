//! Lesson `serverless`: the same requests served by AWS Lambda (one execution environment
//! per in-flight request, created on demand with a cold start, kept warm for a while,
//! capped by a concurrency limit) or by an always-on fleet (fixed instances with request
//! slots and a queue), at low, medium or spiky load. Run both values of `platform` on one
//! seed: arrivals and per-request work are identical, so the difference is the platform.
//!
//! Lambda semantics (AWS Lambda Developer Guide, "Understanding the Lambda execution
//! environment lifecycle", "Lambda scaling behavior", "Configuring reserved concurrency",
//! "Configuring provisioned concurrency"): an invocation needs an execution environment
//! to itself. A free warm environment is reused (warm start). Otherwise Lambda creates one:
//! the Init phase (runtime and function static code, at most 10 s on demand) runs before
//! the handler, adding `init_duration` to that request's latency (cold start). Concurrency
//! = environments serving a request (initialising or invoking); at the function's limit
//! (reserved or account concurrency) a request that would need one more environment is
//! throttled: a synchronous invocation fails with 429 TooManyRequestsException. How fast
//! new environments appear is capped too: 1,000 per function per 10 s in current docs,
//! refilled continuously and not accumulated, which is a token bucket of capacity
//! `scaling_rate` refilled at `scaling_rate`/10 per second (the crate's
//! [`TokenBucket`]); older docs had an account burst of 500–3,000 then +500 per minute.
//! An idle environment is frozen and kept for a period AWS does not document (minutes in
//! practice), here `keep_warm`, then shut down; the next request after that is cold.
//! Provisioned concurrency keeps N environments initialised all the time (never cold,
//! never reclaimed; Lambda sends requests to them first); they count against the limit.
//! Which idle environment Lambda reuses is not documented: the model takes the most
//! recently used one, so a pool larger than the load needs shrinks back by expiry.
//!
//! Cost (AWS Lambda pricing page, US East (N. Virginia), x86): $0.20 per million requests
//! plus $0.0000166667 per GB-second of billed duration (memory × duration rounded up to
//! 1 ms; since 1 August 2025 the Init phase is billed too, AWS Compute Blog "AWS Lambda
//! standardizes billing for INIT Phase"). Provisioned concurrency: $0.0000041667 per
//! GB-second configured, and invocations on it $0.0000097222 per GB-second. The fleet
//! costs instances × hourly price, busy or not. The free tier is left out. Monthly cost =
//! run cost extrapolated to 30 days.
//!
//! The fleet: `instances` always-on servers with `slots` concurrent requests each behind a
//! load balancer (least outstanding requests); when every slot is busy requests wait in a
//! FIFO queue of at most 8 per slot, beyond which they are rejected with 503.
//!
//! [`EnvironmentPool`] is Lambda's environment bookkeeping as a pure type the model drives
//! and tests check on hand-built arrival patterns. Equations and sources:
//! docs/models/serverless.md.

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
use super::params::{integer, number};
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::rate_limiting::TokenBucket;
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

/// The catalog entry.
pub const SPEC: LessonSpec = LessonSpec {
    id: "serverless",
    title: "Serverless: concurrency and cold starts",
    group: LessonGroup::TrafficAndCompute,
    summary: "Lambda scales per request and costs nothing when idle, but bursts bring cold starts and throttles; an always-on fleet is steady and pays by the hour.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(1800),
    build,
    compare: Some("platform"),
    sweep: Some("profile"),
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "platform",
        label: "Platform",
        unit: "",
        help: "lambda: one execution environment per in-flight request, created on demand; fleet: always-on instances with a fixed number of request slots.",
        kind: ParamKind::Choice {
            options: &["lambda", "fleet"],
            default: "lambda",
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "profile",
        label: "Load profile",
        unit: "",
        help: "low: 0.5 req/s steady; medium: 25 req/s steady; spiky: 0.5 req/s with 20 s bursts of 40 req/s every 10 minutes.",
        kind: ParamKind::Choice {
            options: &["low", "medium", "spiky"],
            default: "spiky",
        },
        liveness: Liveness::Live,
    },
    number("load_scale", "Load scale", "×", "Multiplies every rate of the profile (find where the fleet becomes cheaper).", (0.1, 10.0, 0.1, 1.0)),
    number("duration_ms", "Function duration", "ms", "Mean time the handler needs per request, on either platform (log-normal, coefficient of variation 0.5).", (10.0, 5000.0, 10.0, 200.0)),
    integer("concurrency_limit", "Concurrency limit", "", "Lambda: most environments serving requests at once (reserved or account concurrency); beyond it requests are throttled (429).", (1, 1000, 100)),
    number("init_duration", "Cold start (Init)", "s", "Lambda: time to create an environment and run the function's init code before the first request (at most 10 s on demand).", (0.05, 10.0, 0.05, 1.0)),
    number("keep_warm", "Keep warm", "s", "Lambda: how long an idle environment is kept before it is shut down (AWS does not document it; minutes in practice).", (10.0, 3600.0, 10.0, 300.0)),
    integer("provisioned", "Provisioned concurrency", "", "Lambda: environments kept initialised all the time (never cold, billed per hour; they count against the limit).", (0, 100, 0)).restart(),
    integer("scaling_rate", "Scaling rate", "", "Lambda: most new environments per 10 s (1,000 per function in current AWS docs).", (10, 1000, 1000)),
    integer("memory_mb", "Memory", "", "Lambda: configured memory in MB; duration is billed per GB-second.", (128, 10240, 512)),
    integer("instances", "Fleet instances", "", "Fleet: always-on instances behind the load balancer.", (1, 12, 2)).restart(),
    integer("slots", "Slots per instance", "", "Fleet: requests one instance works on at once.", (1, 64, 8)),
    number("instance_price", "Instance price", "$/h", "Fleet: hourly price of one instance (0.0416 is an on-demand t3.medium in us-east-1).", (0.001, 5.0, 0.001, 0.0416)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "burst",
        label: "Sudden burst (×10, 20 s)",
        help: "Ten times the current traffic for 20 seconds: Lambda cold-starts and may throttle, the fleet queues.",
    },
    InjectionSpec {
        id: "idle",
        label: "Go quiet (longer than keep-warm)",
        help: "Traffic stops for keep-warm + 60 s, so every on-demand environment is shut down; then it resumes.",
    },
    InjectionSpec {
        id: "restore",
        label: "Back to the profile",
        help: "Ends a burst or a quiet spell at once.",
    },
];

/// Client to the front door (API endpoint or load balancer).
const HOP_IN: SimDuration = SimDuration::from_millis(20);
/// Front door to an environment or instance.
const HOP_ENV: SimDuration = SimDuration::from_millis(5);
/// Response (or error) back to the client.
const HOP_OUT: SimDuration = SimDuration::from_millis(20);
const WORK_CV: f64 = 0.5;
const BURST_FACTOR: f64 = 10.0;
const BURST_LENGTH: SimDuration = SimDuration::from_secs(20);
/// The quiet spell lasts keep-warm plus this.
const IDLE_MARGIN: SimDuration = SimDuration::from_secs(60);
/// Environments drawn one by one; the rest share one node.
const DRAWN: usize = 12;
/// Fleet queue capacity per slot.
const BACKLOG_PER_SLOT: usize = 8;
/// Prices (US East, x86), dollars.
pub const PRICE_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
pub const PRICE_PER_GB_SECOND: f64 = 0.000_016_666_7;
pub const PRICE_PROVISIONED_GB_SECOND: f64 = 0.000_004_166_7;
pub const PRICE_PROVISIONED_DURATION_GB_SECOND: f64 = 0.000_009_722_2;
const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;

// ---------------------------------------------------------------------------------------
// The environment pool (pure)
// ---------------------------------------------------------------------------------------

/// One execution environment slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvState {
    /// No environment (never created, or shut down).
    Off,
    /// Init phase for the request that caused it (a cold start).
    Initializing,
    /// Running a request.
    Busy,
    /// Frozen, warm, waiting since `since`.
    Idle { since: SimTime },
}

/// Why a request found no environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    /// Concurrency is at the limit.
    Concurrency,
    /// The scaling rate allows no new environment right now.
    ScalingRate,
}

/// What [`EnvironmentPool::acquire`] gave a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// A warm environment (index) was reused.
    Warm(usize),
    /// A new environment (index) was created: a cold start.
    Cold(usize),
    /// No environment: 429.
    Throttled(Throttle),
}

/// Lambda's execution environments for one function: reuse, creation within the limit
/// and the scaling rate, expiry after `keep_warm` idle. Environments `0..provisioned` are
/// provisioned concurrency: always initialised, never reclaimed, used first.
#[derive(Clone, Debug)]
pub struct EnvironmentPool {
    states: Vec<EnvState>,
    provisioned: usize,
    /// Idle on-demand environments, oldest idle first (reuse takes the back).
    idle: VecDeque<usize>,
    busy: usize,
    limit: usize,
    keep_warm: SimDuration,
    scaling: TokenBucket,
    scaling_rate: u32,
    /// Environments shut down since the last `take_reclaimed`, with their idle start.
    reclaimed: Vec<(usize, SimTime)>,
    pub cold_starts: u64,
    pub warm_starts: u64,
    pub throttled: u64,
    pub throttled_by_rate: u64,
    pub peak_busy: usize,
}

impl EnvironmentPool {
    /// A pool at `now` with `provisioned` initialised environments (at most `limit`).
    pub fn new(
        limit: usize,
        keep_warm: SimDuration,
        provisioned: usize,
        scaling_rate: u32,
        now: SimTime,
    ) -> Self {
        let provisioned = provisioned.min(limit);
        EnvironmentPool {
            states: vec![EnvState::Idle { since: now }; provisioned],
            provisioned,
            idle: VecDeque::new(),
            busy: 0,
            limit,
            keep_warm,
            scaling: TokenBucket::new(f64::from(scaling_rate) / 10.0, scaling_rate, now),
            scaling_rate,
            reclaimed: Vec::new(),
            cold_starts: 0,
            warm_starts: 0,
            throttled: 0,
            throttled_by_rate: 0,
            peak_busy: 0,
        }
    }

    /// Finds an environment for a request arriving at `now`: expired environments are
    /// shut down first; then a free provisioned one, else the most recently used idle
    /// one, else a new one if concurrency and the scaling rate allow.
    pub fn acquire(&mut self, now: SimTime) -> Acquired {
        self.expire(now);
        if self.busy >= self.limit {
            self.throttled += 1;
            return Acquired::Throttled(Throttle::Concurrency);
        }
        let provisioned_free =
            (0..self.provisioned).find(|&env| matches!(self.states[env], EnvState::Idle { .. }));
        if let Some(env) = provisioned_free.or_else(|| self.idle.pop_back()) {
            self.states[env] = EnvState::Busy;
            self.took(Acquired::Warm(env))
        } else if self.scaling.try_take(now) {
            let env = match self.states.iter().position(|s| *s == EnvState::Off) {
                Some(env) => env,
                None => {
                    self.states.push(EnvState::Off);
                    self.states.len() - 1
                }
            };
            self.states[env] = EnvState::Initializing;
            self.took(Acquired::Cold(env))
        } else {
            self.throttled += 1;
            self.throttled_by_rate += 1;
            Acquired::Throttled(Throttle::ScalingRate)
        }
    }

    fn took(&mut self, acquired: Acquired) -> Acquired {
        self.busy += 1;
        self.peak_busy = self.peak_busy.max(self.busy);
        match acquired {
            Acquired::Cold(_) => self.cold_starts += 1,
            _ => self.warm_starts += 1,
        }
        acquired
    }

    /// The Init phase of `env` finished; it now runs its request.
    pub fn initialized(&mut self, env: usize) {
        if self.states[env] == EnvState::Initializing {
            self.states[env] = EnvState::Busy;
        }
    }

    /// `env` finished its request at `now` and waits, warm.
    pub fn release(&mut self, env: usize, now: SimTime) {
        debug_assert!(matches!(
            self.states[env],
            EnvState::Busy | EnvState::Initializing
        ));
        self.states[env] = EnvState::Idle { since: now };
        self.busy -= 1;
        if env >= self.provisioned {
            self.idle.push_back(env);
        }
    }

    /// Shuts down every on-demand environment idle for `keep_warm` or longer at `now`.
    pub fn expire(&mut self, now: SimTime) {
        while let Some(&env) = self.idle.front() {
            let EnvState::Idle { since } = self.states[env] else {
                unreachable!("the idle list holds idle environments")
            };
            if now - since < self.keep_warm {
                break;
            }
            self.idle.pop_front();
            self.states[env] = EnvState::Off;
            self.reclaimed.push((env, since));
        }
    }

    /// When the next idle environment expires, if any.
    pub fn next_expiry(&self) -> Option<SimTime> {
        self.idle.front().map(|&env| match self.states[env] {
            EnvState::Idle { since } => since + self.keep_warm,
            _ => unreachable!("the idle list holds idle environments"),
        })
    }

    /// Environments shut down since the last call, each with when it had gone idle.
    pub fn take_reclaimed(&mut self) -> Vec<(usize, SimTime)> {
        std::mem::take(&mut self.reclaimed)
    }

    pub fn state(&self, env: usize) -> EnvState {
        self.states.get(env).copied().unwrap_or(EnvState::Off)
    }
    pub fn slots(&self) -> usize {
        self.states.len()
    }
    /// Environments serving a request (initialising or running): the concurrency.
    pub fn busy(&self) -> usize {
        self.busy
    }
    /// Warm environments waiting for a request (provisioned ones included).
    pub fn idle(&self) -> usize {
        self.idle.len()
            + (0..self.provisioned)
                .filter(|&env| matches!(self.states[env], EnvState::Idle { .. }))
                .count()
    }
    /// Environments that exist (not off).
    pub fn environments(&self) -> usize {
        self.states.iter().filter(|s| **s != EnvState::Off).count()
    }
    pub fn provisioned(&self) -> usize {
        self.provisioned
    }
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }
    pub fn set_keep_warm(&mut self, keep_warm: SimDuration) {
        self.keep_warm = keep_warm;
    }
    pub fn set_scaling_rate(&mut self, rate: u32, now: SimTime) {
        self.scaling_rate = rate;
        self.scaling.set_rate(f64::from(rate) / 10.0, now);
        self.scaling.set_burst(rate, now);
    }
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Platform {
    Lambda,
    Fleet,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    /// The request reaches the Lambda service or the load balancer.
    AtFront {
        req: u32,
    },
    /// The request's next phase at environment or instance `at`.
    Step {
        at: u16,
        req: u32,
    },
    /// The response reaches the client.
    Responded {
        req: u32,
    },
    /// The 429/503 reaches the client.
    Refused {
        req: u32,
    },
    /// The oldest idle environment's keep-warm time is up.
    Expire,
    /// A burst or quiet spell ends (ignored if a newer one replaced it).
    OverrideEnds {
        generation: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    ToFront,
    Queued,
    ToWorker { cold: bool },
    Init,
    Invoke,
    Back,
    Refused,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    key: RequestKey,
    born: SimTime,
    work: SimDuration,
    /// Init duration, for a cold start (fixed when the environment is created).
    init: SimDuration,
    phase: Phase,
    cold: bool,
    provisioned: bool,
    trace: Option<u32>,
}

/// One invocation as the optional trace records it (tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// When the request reached the Lambda service.
    pub at: SimTime,
    pub env: usize,
    pub cold: bool,
    /// Warm idle environments available just before the decision (after expiry).
    pub idle_before: usize,
    pub work: SimDuration,
    pub init: SimDuration,
    /// Client-observed latency, once answered.
    pub latency: Option<SimDuration>,
}

/// An environment shut down, as the trace records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reclaim {
    pub at: SimTime,
    pub env: usize,
    pub idle_for: SimDuration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Override {
    None,
    Burst,
    Idle,
}

pub struct ServerlessModel {
    params: ParamValues,
    platform: Platform,
    topology: Topology,
    clients: NodeId,
    front: NodeId,
    refused_sink: NodeId,
    responses: NodeId,
    edge_in: EdgeId,
    edge_refuse: EdgeId,
    /// Lambda: DRAWN environment nodes plus the "more" node; fleet: one per instance.
    workers: Vec<NodeId>,
    worker_in: Vec<EdgeId>,
    worker_out: Vec<EdgeId>,
    pool: EnvironmentPool,
    /// Lambda: the request each environment serves.
    env_req: Vec<Option<u32>>,
    more_active: bool,
    expiry_timer: Option<(SimTime, TimerHandle)>,
    /// Fleet: busy slots per instance, and the queue.
    instance_busy: Vec<u32>,
    queue: VecDeque<u32>,
    fleet_peak: usize,
    reqs: Slab<Req>,
    arrivals: ArrivalTimer<Event>,
    work_rng: SimRng,
    override_state: Override,
    override_generation: u32,
    invocations: u64,
    billed_gb_seconds: f64,
    billed_provisioned_duration_gb_seconds: f64,
    /// Settled up to `settled_at`: provisioned GB-seconds and fleet dollars.
    provisioned_gb_seconds: f64,
    fleet_dollars: f64,
    settled_at: SimTime,
    warm_latency: LatencyHistogram,
    cold_latency: LatencyHistogram,
    trace: Option<(Vec<Invocation>, Vec<Reclaim>)>,
    core: ModelCore,
    gauge_concurrency: GaugeId,
    gauge_idle: GaugeId,
    gauge_throttles: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

/// The arrival rate over time for `params`' profile and scale.
pub fn traffic(params: &ParamValues) -> TrafficShape {
    let scale = params.number("load_scale");
    match params.choice("profile") {
        "low" => TrafficShape::Steady { rate: 0.5 * scale },
        "medium" => TrafficShape::Steady { rate: 25.0 * scale },
        _ => TrafficShape::Bursts {
            base: 0.5 * scale,
            peak: 40.0 * scale,
            period: SimDuration::from_secs(600),
            burst: SimDuration::from_secs(20),
        },
    }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<ServerlessModel> {
    let platform = if params.choice("platform") == "fleet" {
        Platform::Fleet
    } else {
        Platform::Lambda
    };
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Clients", NodeKind::Source, 0.03, 0.45);
    let (front, refused_sink) = match platform {
        Platform::Lambda => (
            topology.add_node("lambda", "Lambda", NodeKind::Router, 0.22, 0.45),
            topology.add_node("refused", "Throttled (429)", NodeKind::Sink, 0.22, 0.95),
        ),
        Platform::Fleet => (
            topology.add_node("balancer", "Load balancer", NodeKind::Router, 0.22, 0.45),
            topology.add_node("refused", "Rejected (503)", NodeKind::Sink, 0.22, 0.95),
        ),
    };
    let responses = topology.add_node("responses", "Responses", NodeKind::Sink, 0.97, 0.45);
    let edge_in = topology.add_edge(clients, front);
    let edge_refuse = topology.add_edge(front, refused_sink);
    let provisioned = params.integer("provisioned") as usize;
    let limit = params.integer("concurrency_limit") as usize;
    let mut workers = Vec::new();
    let mut worker_in = Vec::new();
    let mut worker_out = Vec::new();
    let mut add_worker = |topology: &mut Topology, key: String, label: String, x, y| {
        let node = topology.add_node(&key, &label, NodeKind::Server, x, y);
        worker_in.push(topology.add_edge(front, node));
        worker_out.push(topology.add_edge(node, responses));
        workers.push(node);
    };
    match platform {
        Platform::Lambda => {
            // Three columns of four, then the shared node for the rest.
            for index in 0..DRAWN {
                let (column, row) = (index / 4, index % 4);
                let label = if index < provisioned.min(limit) {
                    format!("Provisioned {}", index + 1)
                } else {
                    format!("Env {}", index + 1)
                };
                add_worker(
                    &mut topology,
                    format!("env-{}", index + 1),
                    label,
                    0.37 + column as f32 * 0.135,
                    0.1 + row as f32 * 0.24,
                );
            }
            add_worker(
                &mut topology,
                "env-more".into(),
                "More envs".into(),
                0.8,
                0.82,
            );
        }
        Platform::Fleet => {
            let count = params.integer("instances") as usize;
            let rows = count.min(6);
            for index in 0..count {
                let (column, row) = (index / 6, index % 6);
                add_worker(
                    &mut topology,
                    format!("instance-{}", index + 1),
                    format!("Instance {}", index + 1),
                    0.55 + column as f32 * 0.18,
                    (row as f32 + 0.5) / rows as f32,
                );
            }
        }
    }
    let core = ModelCore::new(vec!["concurrency", "warm_idle", "throttles"]);
    let instances = match platform {
        Platform::Fleet => params.integer("instances") as usize,
        Platform::Lambda => 0,
    };
    let mut model = ServerlessModel {
        params: params.clone(),
        platform,
        topology,
        clients,
        front,
        refused_sink,
        responses,
        edge_in,
        edge_refuse,
        workers,
        worker_in,
        worker_out,
        pool: EnvironmentPool::new(
            limit,
            SimDuration::from_secs_f64(params.number("keep_warm")),
            if platform == Platform::Lambda {
                provisioned
            } else {
                0
            },
            params.integer("scaling_rate") as u32,
            SimTime::ZERO,
        ),
        env_req: Vec::new(),
        more_active: false,
        expiry_timer: None,
        instance_busy: vec![0; instances],
        queue: VecDeque::new(),
        fleet_peak: 0,
        reqs: Slab::new(),
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(traffic(params), SimRng::new(seed.0, "arrivals")),
            Event::Arrival,
        ),
        work_rng: SimRng::new(seed.0, "work"),
        override_state: Override::None,
        override_generation: 0,
        invocations: 0,
        billed_gb_seconds: 0.0,
        billed_provisioned_duration_gb_seconds: 0.0,
        provisioned_gb_seconds: 0.0,
        fleet_dollars: 0.0,
        settled_at: SimTime::ZERO,
        warm_latency: LatencyHistogram::new(PRECISE),
        cold_latency: LatencyHistogram::new(PRECISE),
        trace: None,
        gauge_concurrency: core.gauge("concurrency"),
        gauge_idle: core.gauge("warm_idle"),
        gauge_throttles: core.gauge("throttles"),
        core,
    };
    let mut scheduler = Scheduler::new();
    model.update_gauges(SimTime::ZERO);
    model.arrivals.rearm(&mut scheduler);
    Simulation::new(model, scheduler)
}

/// Billed seconds: rounded up to the next millisecond.
fn billed_seconds(duration: SimDuration) -> f64 {
    duration.ticks().div_ceil(1000) as f64 / 1000.0
}

impl ServerlessModel {
    /// Records every invocation and shutdown from now on (tests).
    pub fn enable_trace(&mut self) {
        self.trace = Some((Vec::new(), Vec::new()));
    }

    /// The recorded invocations and shutdowns (empty unless traced).
    pub fn trace(&self) -> (&[Invocation], &[Reclaim]) {
        match &self.trace {
            Some((invocations, reclaims)) => (invocations, reclaims),
            None => (&[], &[]),
        }
    }

    pub fn pool(&self) -> &EnvironmentPool {
        &self.pool
    }

    fn memory_gb(&self) -> f64 {
        self.params.integer("memory_mb") as f64 / 1024.0
    }

    fn init_duration(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("init_duration"))
    }

    fn keep_warm(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("keep_warm"))
    }

    /// Adds the time-based charges (provisioned concurrency, fleet instances) up to `now`
    /// at the current settings; call before a setting they depend on changes.
    fn settle(&mut self, now: SimTime) {
        let seconds = (now - self.settled_at).as_secs_f64();
        self.provisioned_gb_seconds += self.pool.provisioned() as f64 * self.memory_gb() * seconds;
        self.fleet_dollars +=
            self.instance_busy.len() as f64 * self.params.number("instance_price") * seconds
                / 3600.0;
        self.settled_at = now;
    }

    /// Dollars spent so far.
    pub fn cost(&self, now: SimTime) -> f64 {
        let open_seconds = now.saturating_since(self.settled_at).as_secs_f64();
        match self.platform {
            Platform::Lambda => {
                let provisioned = self.provisioned_gb_seconds
                    + self.pool.provisioned() as f64 * self.memory_gb() * open_seconds;
                self.invocations as f64 * PRICE_PER_REQUEST
                    + self.billed_gb_seconds * PRICE_PER_GB_SECOND
                    + self.billed_provisioned_duration_gb_seconds
                        * PRICE_PROVISIONED_DURATION_GB_SECOND
                    + provisioned * PRICE_PROVISIONED_GB_SECOND
            }
            Platform::Fleet => {
                self.fleet_dollars
                    + self.instance_busy.len() as f64
                        * self.params.number("instance_price")
                        * open_seconds
                        / 3600.0
            }
        }
    }

    /// The node drawing environment `env`, and its index among the drawn workers.
    fn env_node(&self, env: usize) -> usize {
        env.min(DRAWN)
    }

    fn log_state(&mut self, now: SimTime, env: usize, to: NodeState) {
        if env < DRAWN {
            let node = self.workers[env];
            self.core.log.push(now, Notable::StateChanged { node, to });
        }
    }

    /// Keeps the shared "more environments" node's state in step.
    fn refresh_more(&mut self, now: SimTime) {
        let active = (DRAWN..self.pool.slots()).any(|env| self.pool.state(env) != EnvState::Off);
        if active != self.more_active {
            self.more_active = active;
            let node = self.workers[DRAWN];
            let to = if active {
                NodeState::Healthy
            } else {
                NodeState::Off
            };
            self.core.log.push(now, Notable::StateChanged { node, to });
        }
    }

    fn update_gauges(&mut self, now: SimTime) {
        let (busy, idle) = match self.platform {
            Platform::Lambda => (self.pool.busy(), self.pool.idle()),
            Platform::Fleet => {
                let busy: u32 = self.instance_busy.iter().sum();
                let slots = self.params.integer("slots") as usize * self.instance_busy.len();
                (busy as usize, slots.saturating_sub(busy as usize))
            }
        };
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_concurrency, now, busy as i64);
        metrics.set_gauge(self.gauge_idle, now, idle as i64);
        metrics.set_gauge(self.gauge_throttles, now, self.pool.throttled as i64);
    }

    /// Keeps one timer on the oldest idle environment's expiry.
    fn rearm_expiry(&mut self, scheduler: &mut Scheduler<Event>) {
        let wanted = self.pool.next_expiry();
        if self.expiry_timer.map(|(at, _)| at) == wanted {
            return;
        }
        if let Some((_, handle)) = self.expiry_timer.take() {
            scheduler.cancel(handle);
        }
        if let Some(at) = wanted {
            let delay = at.saturating_since(scheduler.now());
            self.expiry_timer = Some((at, scheduler.schedule_timer_in(delay, Event::Expire)));
        }
    }

    /// Logs and traces environments the pool shut down.
    fn note_reclaimed(&mut self, now: SimTime) {
        let reclaimed = self.pool.take_reclaimed();
        if reclaimed.is_empty() {
            return;
        }
        for (env, since) in reclaimed {
            self.log_state(now, env, NodeState::Off);
            if let Some((_, reclaims)) = &mut self.trace {
                reclaims.push(Reclaim {
                    at: now,
                    env,
                    idle_for: now - since,
                });
            }
        }
        self.refresh_more(now);
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let work = ServiceTime::LogNormal {
            mean: SimDuration::from_secs_f64(self.params.number("duration_ms") / 1000.0),
            cv: WORK_CV,
        }
        .sample(&mut self.work_rng);
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.edge_in,
                depart: now,
                arrive: now + HOP_IN,
            },
        );
        let req = self.reqs.insert(Req {
            key,
            born: now,
            work,
            init: SimDuration::ZERO,
            phase: Phase::ToFront,
            cold: false,
            provisioned: false,
            trace: None,
        }) as u32;
        scheduler.schedule_in(HOP_IN, Event::AtFront { req });
    }

    fn refuse(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = &mut self.reqs[req as usize];
        entry.phase = Phase::Refused;
        let key = entry.key;
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge: self.edge_refuse,
                depart: now,
                arrive: now + HOP_OUT,
            },
        );
        scheduler.schedule_in(HOP_OUT, Event::Refused { req });
    }

    /// Sends request `req` towards worker node `node_index` (an environment or instance).
    fn send_to_worker(
        &mut self,
        req: u32,
        at: usize,
        node_index: usize,
        cold: bool,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        let entry = &mut self.reqs[req as usize];
        entry.phase = Phase::ToWorker { cold };
        entry.cold = cold;
        let key = entry.key;
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge: self.worker_in[node_index],
                depart: now,
                arrive: now + HOP_ENV,
            },
        );
        scheduler.schedule_in(HOP_ENV, Event::Step { at: at as u16, req });
    }

    fn at_front(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match self.platform {
            Platform::Lambda => {
                self.pool.expire(now);
                self.note_reclaimed(now);
                let idle_before = self.pool.idle();
                match self.pool.acquire(now) {
                    Acquired::Throttled(_) => self.refuse(req, scheduler),
                    acquired @ (Acquired::Warm(env) | Acquired::Cold(env)) => {
                        let cold = matches!(acquired, Acquired::Cold(_));
                        let init = if cold {
                            self.init_duration()
                        } else {
                            SimDuration::ZERO
                        };
                        if self.env_req.len() <= env {
                            self.env_req.resize(env + 1, None);
                        }
                        self.env_req[env] = Some(req);
                        self.invocations += 1;
                        let provisioned = env < self.pool.provisioned();
                        let work = self.reqs[req as usize].work;
                        if let Some((invocations, _)) = &mut self.trace {
                            self.reqs[req as usize].trace = Some(invocations.len() as u32);
                            invocations.push(Invocation {
                                at: now,
                                env,
                                cold,
                                idle_before,
                                work,
                                init,
                                latency: None,
                            });
                        }
                        self.reqs[req as usize].provisioned = provisioned;
                        self.reqs[req as usize].init = init;
                        if cold {
                            self.log_state(now, env, NodeState::Starting);
                            self.refresh_more(now);
                        }
                        self.send_to_worker(req, env, self.env_node(env), cold, scheduler);
                    }
                }
                self.rearm_expiry(scheduler);
            }
            Platform::Fleet => {
                let slots = self.params.integer("slots") as u32;
                if let Some(instance) = self.free_instance(slots) {
                    self.start_on_instance(req, instance, scheduler);
                } else if self.queue.len() < self.backlog_capacity() {
                    let entry = &mut self.reqs[req as usize];
                    entry.phase = Phase::Queued;
                    let key = entry.key;
                    self.core.requests.move_to(
                        key,
                        Place::Queued {
                            node: self.front,
                            since: now,
                        },
                    );
                    self.queue.push_back(req);
                } else {
                    self.refuse(req, scheduler);
                }
            }
        }
        self.update_gauges(now);
    }

    fn backlog_capacity(&self) -> usize {
        BACKLOG_PER_SLOT * self.params.integer("slots") as usize * self.instance_busy.len()
    }

    /// The instance with the fewest requests in progress (lowest index on ties), if it
    /// has a free slot.
    fn free_instance(&self, slots: u32) -> Option<usize> {
        let (index, busy) = self
            .instance_busy
            .iter()
            .enumerate()
            .min_by_key(|(index, busy)| (**busy, *index))?;
        (*busy < slots).then_some(index)
    }

    fn start_on_instance(&mut self, req: u32, instance: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if let Place::Queued { since, .. } =
            self.core.requests.get(self.reqs[req as usize].key).place
        {
            self.core.metrics.waited(now - since);
        } else {
            self.core.metrics.waited(SimDuration::ZERO);
        }
        self.instance_busy[instance] += 1;
        let busy: u32 = self.instance_busy.iter().sum();
        self.fleet_peak = self.fleet_peak.max(busy as usize);
        self.send_to_worker(req, instance, instance, false, scheduler);
    }

    fn dispatch_queue(&mut self, scheduler: &mut Scheduler<Event>) {
        let slots = self.params.integer("slots") as u32;
        while !self.queue.is_empty() {
            let Some(instance) = self.free_instance(slots) else {
                return;
            };
            let req = self.queue.pop_front().expect("not empty");
            self.start_on_instance(req, instance, scheduler);
        }
    }

    fn step(&mut self, at: usize, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let node_index = match self.platform {
            Platform::Lambda => self.env_node(at),
            Platform::Fleet => at,
        };
        let node = self.workers[node_index];
        let entry = self.reqs[req as usize];
        let event = Event::Step { at: at as u16, req };
        match entry.phase {
            Phase::ToWorker { cold: true } => {
                self.reqs[req as usize].phase = Phase::Init;
                self.core
                    .requests
                    .move_to(entry.key, Place::InService { node, since: now });
                let init = entry.init;
                // Since August 2025 the Init phase is billed like the handler's time.
                self.billed_gb_seconds += billed_seconds(init) * self.memory_gb();
                scheduler.schedule_in(init, event);
            }
            Phase::ToWorker { cold: false } | Phase::Init => {
                if entry.phase == Phase::Init {
                    self.pool.initialized(at);
                    self.log_state(now, at, NodeState::Healthy);
                }
                self.reqs[req as usize].phase = Phase::Invoke;
                self.core
                    .requests
                    .move_to(entry.key, Place::InService { node, since: now });
                scheduler.schedule_in(entry.work, event);
            }
            Phase::Invoke => {
                match self.platform {
                    Platform::Lambda => {
                        let gb_seconds = billed_seconds(entry.work) * self.memory_gb();
                        if entry.provisioned {
                            self.billed_provisioned_duration_gb_seconds += gb_seconds;
                        } else {
                            self.billed_gb_seconds += gb_seconds;
                        }
                        self.env_req[at] = None;
                        self.pool.release(at, now);
                        self.rearm_expiry(scheduler);
                    }
                    Platform::Fleet => {
                        self.instance_busy[at] -= 1;
                    }
                }
                self.reqs[req as usize].phase = Phase::Back;
                self.core.requests.move_to(
                    entry.key,
                    Place::OnEdge {
                        edge: self.worker_out[node_index],
                        depart: now,
                        arrive: now + HOP_OUT,
                    },
                );
                scheduler.schedule_in(HOP_OUT, Event::Responded { req });
                if self.platform == Platform::Fleet {
                    self.dispatch_queue(scheduler);
                }
                self.update_gauges(now);
            }
            Phase::ToFront | Phase::Queued | Phase::Back | Phase::Refused => {
                unreachable!("a step event only follows a worker phase")
            }
        }
    }

    fn responded(&mut self, req: u32, now: SimTime) {
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        let latency = now - entry.born;
        self.core.metrics.completed(now, latency);
        if entry.cold {
            self.cold_latency.record(latency);
        } else {
            self.warm_latency.record(latency);
        }
        if let (Some((invocations, _)), Some(index)) = (&mut self.trace, entry.trace) {
            invocations[index as usize].latency = Some(latency);
        }
    }

    fn start_override(
        &mut self,
        kind: Override,
        length: SimDuration,
        scheduler: &mut Scheduler<Event>,
    ) {
        let multiplier = if kind == Override::Burst {
            BURST_FACTOR
        } else {
            0.0
        };
        self.arrivals
            .arrivals
            .set_multiplier(multiplier)
            .expect("a constant, valid multiplier");
        self.arrivals.rearm(scheduler);
        self.override_state = kind;
        self.override_generation += 1;
        scheduler.schedule_in(
            length,
            Event::OverrideEnds {
                generation: self.override_generation,
            },
        );
    }

    fn end_override(&mut self, scheduler: &mut Scheduler<Event>) {
        self.arrivals
            .arrivals
            .set_multiplier(1.0)
            .expect("1 is a valid multiplier");
        self.arrivals.rearm(scheduler);
        self.override_state = Override::None;
        self.override_generation += 1;
    }

    fn peak_concurrency(&self) -> usize {
        match self.platform {
            Platform::Lambda => self.pool.peak_busy,
            Platform::Fleet => self.fleet_peak,
        }
    }
}

impl Model for ServerlessModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtFront { req } => self.at_front(req, scheduler),
            Event::Step { at, req } => self.step(at as usize, req, scheduler),
            Event::Responded { req } => self.responded(req, now),
            Event::Refused { req } => {
                let entry = self.reqs.remove(req as usize);
                self.core.requests.finish(entry.key);
                self.core.metrics.rejected(now);
            }
            Event::Expire => {
                self.expiry_timer = None;
                self.pool.expire(now);
                self.note_reclaimed(now);
                self.rearm_expiry(scheduler);
                self.update_gauges(now);
            }
            Event::OverrideEnds { generation } => {
                if generation == self.override_generation && self.override_state != Override::None {
                    self.end_override(scheduler);
                }
            }
        }
    }
}

impl LessonModel for ServerlessModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.clients));
        snapshot.nodes.push(NodeView {
            queued: self.queue.len() as u32,
            ..plain(self.front)
        });
        snapshot.nodes.push(plain(self.refused_sink));
        snapshot.nodes.push(plain(self.responses));
        match self.platform {
            Platform::Lambda => {
                for (index, &node) in self.workers.iter().enumerate().take(DRAWN) {
                    let (state, busy, capacity) = match self.pool.state(index) {
                        EnvState::Off => (NodeState::Off, 0, 0),
                        EnvState::Initializing => (NodeState::Starting, 1, 1),
                        EnvState::Busy => (NodeState::Healthy, 1, 1),
                        EnvState::Idle { .. } => (NodeState::Healthy, 0, 1),
                    };
                    snapshot.nodes.push(NodeView {
                        node,
                        state,
                        busy,
                        capacity,
                        queued: 0,
                    });
                }
                let (mut busy, mut capacity) = (0, 0);
                for env in DRAWN..self.pool.slots() {
                    match self.pool.state(env) {
                        EnvState::Off => {}
                        EnvState::Idle { .. } => capacity += 1,
                        EnvState::Busy | EnvState::Initializing => {
                            busy += 1;
                            capacity += 1;
                        }
                    }
                }
                snapshot.nodes.push(NodeView {
                    node: self.workers[DRAWN],
                    state: if capacity > 0 {
                        NodeState::Healthy
                    } else {
                        NodeState::Off
                    },
                    busy,
                    capacity,
                    queued: 0,
                });
            }
            Platform::Fleet => {
                let slots = self.params.integer("slots") as u32;
                for (index, &node) in self.workers.iter().enumerate() {
                    snapshot.nodes.push(NodeView {
                        node,
                        state: NodeState::Healthy,
                        busy: self.instance_busy[index],
                        capacity: slots,
                        queued: 0,
                    });
                }
            }
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let cost = self.cost(now);
        let elapsed = now.as_secs_f64();
        let per_month = if elapsed > 0.0 {
            cost / elapsed * SECONDS_PER_MONTH
        } else {
            0.0
        };
        let cold_share = if self.invocations > 0 {
            100.0 * self.pool.cold_starts as f64 / self.invocations as f64
        } else {
            0.0
        };
        let (usage_label, usage, usage_unit) = match self.platform {
            Platform::Lambda => (
                "GB-seconds billed",
                self.billed_gb_seconds + self.billed_provisioned_duration_gb_seconds,
                "GB·s",
            ),
            Platform::Fleet => (
                "Instance-hours",
                self.instance_busy.len() as f64 * elapsed / 3600.0,
                "h",
            ),
        };
        vec![
            Figure {
                key: "cost_per_month",
                label: "Cost per month (extrapolated)",
                value: per_month,
                unit: "$",
            },
            Figure {
                key: "cold_starts",
                label: "Cold starts",
                value: self.pool.cold_starts as f64,
                unit: "",
            },
            Figure {
                key: "throttled",
                label: "Throttled (429)",
                value: self.pool.throttled as f64,
                unit: "",
            },
            Figure {
                key: "peak_concurrency",
                label: "Peak concurrency",
                value: self.peak_concurrency() as f64,
                unit: "",
            },
            Figure {
                key: "run_cost_cents",
                label: "Cost of this run",
                value: cost * 100.0,
                unit: "¢",
            },
            Figure {
                key: "cold_start_share",
                label: "Requests that cold-started",
                value: cold_share,
                unit: "%",
            },
            Figure {
                key: "warm_p99",
                label: "p99 without cold starts",
                value: self.warm_latency.quantile_secs(0.99),
                unit: "s",
            },
            Figure {
                key: "cold_p50",
                label: "Median latency of a cold start",
                value: self.cold_latency.quantile_secs(0.5),
                unit: "s",
            },
            Figure {
                key: "billed_usage",
                label: usage_label,
                value: usage,
                unit: usage_unit,
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
                    "burst" => self.start_override(Override::Burst, BURST_LENGTH, scheduler),
                    "idle" => {
                        let length = self.keep_warm() + IDLE_MARGIN;
                        self.start_override(Override::Idle, length, scheduler);
                    }
                    "restore" => {
                        if self.override_state == Override::None {
                            return Err(CommandError::NotApplicable {
                                reason: "traffic already follows the profile: no burst or quiet spell to end".into(),
                            });
                        }
                        self.end_override(scheduler);
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
                // Time-based charges so far are at the old memory size and price.
                self.settle(now);
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "profile" | "load_scale" => {
                        self.arrivals.arrivals.set_shape(traffic(&self.params));
                        self.arrivals.rearm(scheduler);
                    }
                    "concurrency_limit" => self
                        .pool
                        .set_limit(self.params.integer("concurrency_limit") as usize),
                    "keep_warm" => {
                        self.pool.set_keep_warm(self.keep_warm());
                        self.pool.expire(now);
                        self.note_reclaimed(now);
                        self.rearm_expiry(scheduler);
                    }
                    "scaling_rate" => self
                        .pool
                        .set_scaling_rate(self.params.integer("scaling_rate") as u32, now),
                    "slots" => self.dispatch_queue(scheduler),
                    _ => {}
                }
                self.update_gauges(now);
                Ok(())
            }
        }
    }
}
