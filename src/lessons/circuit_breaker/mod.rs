//! Lesson `circuit-breaker`: a service with a fixed pool of worker threads calls a
//! dependency, with or without a circuit breaker in between, while the dependency fails,
//! hangs or slows down. Run both values of `protection` on one seed to compare: the
//! arrivals are identical, so the difference is the breaker alone.
//!
//! Without a breaker, every call to a hanging dependency holds a thread until the call
//! timeout; the pool runs dry, requests queue for a thread, clients give up, and latency
//! balloons even for requests that never needed the dependency's answer to be fresh.
//! With a breaker the failures open the circuit, calls are refused at once with a
//! fallback (short-circuited), threads stay free, and trial calls in HALF_OPEN detect
//! the recovery. The breaker follows resilience4j's `CircuitBreakerConfig` semantics
//! (see [`breaker`] for the exact rules and the library defaults); the pool plays the role
//! of a servlet container's request threads, and the call timeout the role of
//! resilience4j's `TimeLimiter` (a timed-out call is recorded as a failure).
//! Equations and sources: docs/models/circuit-breaker.md.

pub mod breaker;

use std::collections::VecDeque;

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
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};
use crate::lessons::params::{integer, number};

use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Permission, Transition, WindowKind};

pub const SPEC: LessonSpec = LessonSpec {
    id: "circuit-breaker",
    title: "Circuit breaker",
    group: LessonGroup::Resilience,
    summary: "A breaker in front of a failing dependency turns slow timeouts and exhausted threads into fast fallbacks, then probes for recovery.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("protection"),
    sweep: None,
    breaker_node: Some("breaker"),
};

const fn choice(
    name: &'static str,
    label: &'static str,
    help: &'static str,
    options: &'static [&'static str],
    default: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        label,
        unit: "",
        help,
        kind: ParamKind::Choice { options, default },
        liveness: Liveness::Restart,
    }
}

const PARAMS: &[ParamSpec] = &[
    choice("protection", "Protection", "breaker: calls go through a circuit breaker; none: the service calls the dependency directly and waits.", &["breaker", "none"], "breaker"),
    choice("incident", "Scheduled incident", "What happens to the dependency during the scheduled incident: it hangs (answers after a minute), fails fast with errors, turns slow (about 1.5 s per call), or nothing happens.", &["hang", "fail", "slow", "none"], "hang"),
    number("incident_start", "Incident starts at", "s", "When the scheduled incident begins.", (0.0, 3600.0, 5.0, 60.0)).restart(),
    number("incident_length", "Incident length", "s", "How long the dependency stays broken before it recovers by itself.", (1.0, 3600.0, 5.0, 120.0)).restart(),
    number("arrival_rate", "Traffic", "req/s", "Requests per second reaching the service (Poisson).", (0.5, 200.0, 0.5, 20.0)),
    integer("threads", "Service threads", "", "Requests the service can work on at once; each holds its thread while it waits for the dependency.", (1, 200, 16)).restart(),
    number("latency", "Dependency latency", "ms", "Mean time the healthy dependency takes to answer (log-normal, coefficient of variation 0.5).", (5.0, 2000.0, 5.0, 80.0)),
    number("error_rate", "Background errors", "", "Fraction of calls the healthy dependency answers with an error.", (0.0, 1.0, 0.01, 0.01)),
    number("call_timeout", "Call timeout", "s", "How long the service waits for the dependency before it gives up; a timeout counts as a failure.", (0.1, 30.0, 0.1, 2.0)),
    number("queue_timeout", "Client patience", "s", "How long a request waits for a free thread before its client gives up.", (0.1, 30.0, 0.1, 1.0)),
    number("failure_threshold", "Failure rate threshold", "%", "The breaker opens when this percentage of the calls in its window failed (resilience4j default 50).", (1.0, 100.0, 1.0, 50.0)).restart(),
    number("slow_threshold", "Slow call rate threshold", "%", "The breaker opens when this percentage of the calls in its window were slow (resilience4j default 100).", (1.0, 100.0, 1.0, 100.0)).restart(),
    number("slow_duration", "Slow call duration", "s", "A call that takes longer than this counts as slow (resilience4j default 60 s).", (0.05, 60.0, 0.05, 60.0)).restart(),
    choice("window_type", "Sliding window", "count: the last N calls; time: the calls of the last N seconds.", &["count", "time"], "count"),
    integer("window_size", "Window size", "", "N: calls (count window) or seconds (time window) the rates are computed over (resilience4j default 100).", (1, 500, 20)).restart(),
    integer("minimum_calls", "Minimum calls", "", "Calls the window must hold before the breaker may open (resilience4j default 100).", (1, 500, 10)).restart(),
    number("wait_open", "Wait in open state", "s", "How long the breaker refuses calls before it lets trial calls through (resilience4j default 60 s).", (0.5, 300.0, 0.5, 10.0)).restart(),
    integer("half_open_calls", "Trial calls in half-open", "", "Calls let through in HALF_OPEN to decide between closing and opening again (resilience4j default 10).", (1, 100, 5)).restart(),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "dependency-hangs",
        label: "Dependency hangs",
        help: "Every call now takes a minute to answer: only the call timeout frees the thread.",
    },
    InjectionSpec {
        id: "dependency-fails",
        label: "Dependency fails fast",
        help: "Every call now gets an error within about 20 ms.",
    },
    InjectionSpec {
        id: "dependency-slows",
        label: "Dependency turns slow",
        help: "Every call now takes about 1.5 s: slow, but mostly inside the call timeout.",
    },
    InjectionSpec {
        id: "dependency-recovers",
        label: "Dependency recovers",
        help: "The dependency answers normally again.",
    },
];

/// One network hop between the drawn nodes: short, but long enough to see tokens move.
const HOP: SimDuration = SimDuration::from_millis(40);
/// Spread of the healthy dependency's latency (coefficient of variation).
const LATENCY_CV: f64 = 0.5;
/// How long a hanging dependency takes to answer.
const HANG: SimDuration = SimDuration::from_secs(60);
/// Mean time to an error when the dependency fails fast.
const FAST_ERROR_MS: f64 = 20.0;
/// Mean latency and spread of a slow dependency.
const SLOW_MEAN_S: f64 = 1.5;
const SLOW_CV: f64 = 0.2;

/// What the dependency is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DependencyMode {
    Healthy,
    Hanging,
    Failing,
    Slow,
}

impl DependencyMode {
    fn node_state(self) -> NodeState {
        match self {
            DependencyMode::Healthy => NodeState::Healthy,
            DependencyMode::Failing => NodeState::Down,
            DependencyMode::Hanging | DependencyMode::Slow => NodeState::Unhealthy,
        }
    }
}

/// Events of the model. `thread` and `call` identify one call: a thread's `call` number
/// grows with every request it takes, so events of an earlier call are recognised as
/// stale and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    /// A request reaches the service.
    AtService {
        request: RequestKey,
    },
    /// The oldest waiting request's client runs out of patience.
    PatienceExpired,
    /// The call reaches the breaker (breaker mode only).
    AtBreaker {
        thread: u16,
        call: u32,
    },
    /// The call reaches the dependency.
    AtDependency {
        thread: u16,
        call: u32,
    },
    /// The dependency answers (success or error, decided when the call arrived).
    Answered {
        thread: u16,
        call: u32,
    },
    /// The answer is back at the service: the thread is free.
    AnswerBack {
        thread: u16,
        call: u32,
    },
    /// The service stops waiting for the call.
    CallTimeout {
        thread: u16,
        call: u32,
    },
    /// A short-circuited request's fallback answer reaches the client.
    FallbackServed {
        request: RequestKey,
    },
    IncidentStarts,
    IncidentEnds,
}

/// Where a thread's current call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// On its way to the breaker or the dependency.
    Travelling,
    AtDependency,
    Returning,
}

#[derive(Clone, Copy, Debug)]
struct Call {
    request: RequestKey,
    /// When the call left the service (the breaker times calls from its permission).
    started: SimTime,
    failed: bool,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, Default)]
struct Thread {
    call_number: u32,
    call: Option<Call>,
}

/// The circuit breaker lesson's state.
pub struct CircuitBreakerModel {
    params: ParamValues,
    topology: Topology,
    clients: NodeId,
    service: NodeId,
    breaker_node: Option<NodeId>,
    dependency: NodeId,
    responses: NodeId,
    fallback: Option<NodeId>,
    to_service: EdgeId,
    /// service → breaker (breaker mode) or service → dependency.
    out_of_service: EdgeId,
    breaker_to_dependency: Option<EdgeId>,
    breaker_to_fallback: Option<EdgeId>,
    to_responses: EdgeId,
    breaker: Option<CircuitBreaker>,
    mode: DependencyMode,
    threads: Vec<Thread>,
    free_threads: Vec<u16>,
    /// Requests waiting for a thread, oldest first, with their arrival at the service.
    waiting: VecDeque<(RequestKey, SimTime)>,
    patience_timer: Option<TimerHandle>,
    arrivals: ArrivalTimer<Event>,
    latency_rng: SimRng,
    error_rng: SimRng,
    core: ModelCore,
    busy_gauge: GaugeId,
    waiting_gauge: GaugeId,
    at_dependency_gauge: GaugeId,
    calls_at_dependency: u32,
    short_circuited: u64,
    dependency_calls: u64,
    times_opened: u64,
    open_since: Option<SimTime>,
    time_open: SimDuration,
    exhausted_since: Option<SimTime>,
    time_exhausted: SimDuration,
    /// Time from arrival to any answer: success, error, timeout, fallback or giving up.
    answers: LatencyHistogram,
}

/// Builds a run at time zero (the catalog's constructor).
pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

/// The breaker configuration these parameters describe.
pub fn breaker_config(params: &ParamValues) -> BreakerConfig {
    BreakerConfig {
        failure_rate_threshold: params.number("failure_threshold"),
        slow_call_rate_threshold: params.number("slow_threshold"),
        slow_call_duration: SimDuration::from_secs_f64(params.number("slow_duration")),
        window: match params.choice("window_type") {
            "time" => WindowKind::TimeBased,
            _ => WindowKind::CountBased,
        },
        window_size: params.integer("window_size") as u32,
        minimum_calls: params.integer("minimum_calls") as u32,
        wait_in_open: SimDuration::from_secs_f64(params.number("wait_open")),
        permitted_in_half_open: params.integer("half_open_calls") as u32,
    }
}

/// Builds the concrete simulation (tests use it without boxing).
pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<CircuitBreakerModel> {
    let protected = params.choice("protection") == "breaker";
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Clients", NodeKind::Source, 0.05, 0.45);
    let service = topology.add_node("service", "Service", NodeKind::Server, 0.3, 0.45);
    let (breaker_node, fallback) = if protected {
        (
            Some(topology.add_node("breaker", "Circuit breaker", NodeKind::Guard, 0.52, 0.45)),
            Some(topology.add_node("fallback", "Fallback answers", NodeKind::Sink, 0.52, 0.88)),
        )
    } else {
        (None, None)
    };
    let dependency = topology.add_node("dependency", "Dependency", NodeKind::Server, 0.74, 0.45);
    let responses = topology.add_node("responses", "Responses", NodeKind::Sink, 0.95, 0.45);
    let to_service = topology.add_edge(clients, service);
    let (out_of_service, breaker_to_dependency, breaker_to_fallback) =
        match (breaker_node, fallback) {
            (Some(breaker), Some(fallback)) => (
                topology.add_edge(service, breaker),
                Some(topology.add_edge(breaker, dependency)),
                Some(topology.add_edge(breaker, fallback)),
            ),
            _ => (topology.add_edge(service, dependency), None, None),
        };
    let to_responses = topology.add_edge(dependency, responses);

    let thread_count = params.integer("threads") as usize;
    let core = ModelCore::new(vec!["busy_threads", "waiting", "calls_at_dependency"]);
    let mut model = CircuitBreakerModel {
        params: params.clone(),
        topology,
        clients,
        service,
        breaker_node,
        dependency,
        responses,
        fallback,
        to_service,
        out_of_service,
        breaker_to_dependency,
        breaker_to_fallback,
        to_responses,
        breaker: protected.then(|| CircuitBreaker::new(breaker_config(params))),
        mode: DependencyMode::Healthy,
        threads: vec![Thread::default(); thread_count],
        free_threads: (0..thread_count as u16).rev().collect(),
        waiting: VecDeque::new(),
        patience_timer: None,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                TrafficShape::Steady {
                    rate: params.number("arrival_rate"),
                },
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        latency_rng: SimRng::new(seed.0, "dependency-latency"),
        error_rng: SimRng::new(seed.0, "dependency-errors"),
        busy_gauge: core.gauge("busy_threads"),
        waiting_gauge: core.gauge("waiting"),
        at_dependency_gauge: core.gauge("calls_at_dependency"),
        core,
        calls_at_dependency: 0,
        short_circuited: 0,
        dependency_calls: 0,
        times_opened: 0,
        open_since: None,
        time_open: SimDuration::ZERO,
        exhausted_since: None,
        time_exhausted: SimDuration::ZERO,
        answers: LatencyHistogram::new(PRECISE),
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    if params.choice("incident") != "none" {
        let start = SimDuration::from_secs_f64(params.number("incident_start"));
        scheduler.schedule_in(start, Event::IncidentStarts);
        scheduler.schedule_in(
            start + SimDuration::from_secs_f64(params.number("incident_length")),
            Event::IncidentEnds,
        );
    }
    Simulation::new(model, scheduler)
}

impl CircuitBreakerModel {
    fn on_edge(&mut self, request: RequestKey, edge: EdgeId, now: SimTime) {
        self.core.requests.move_to(
            request,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let request = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.to_service,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::AtService { request });
    }

    fn at_service(&mut self, request: RequestKey, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if let Some(thread) = self.free_threads.pop() {
            self.start_call(thread, request, scheduler);
        } else {
            self.core.requests.move_to(
                request,
                Place::Queued {
                    node: self.service,
                    since: now,
                },
            );
            self.waiting.push_back((request, now));
            self.record_waiting(now);
            if self.waiting.len() == 1 {
                self.arm_patience(scheduler);
            }
        }
    }

    /// Schedules the patience timer for the oldest waiting request (cancelling any).
    fn arm_patience(&mut self, scheduler: &mut Scheduler<Event>) {
        if let Some(pending) = self.patience_timer.take() {
            scheduler.cancel(pending);
        }
        let Some(&(_, since)) = self.waiting.front() else {
            return;
        };
        let now = scheduler.now();
        let expires = since + SimDuration::from_secs_f64(self.params.number("queue_timeout"));
        let delay = if expires > now {
            expires - now
        } else {
            SimDuration::ZERO
        };
        self.patience_timer = Some(scheduler.schedule_timer_in(delay, Event::PatienceExpired));
    }

    fn patience_expired(&mut self, scheduler: &mut Scheduler<Event>) {
        self.patience_timer = None;
        let now = scheduler.now();
        let patience = SimDuration::from_secs_f64(self.params.number("queue_timeout"));
        while let Some(&(request, since)) = self.waiting.front() {
            if since + patience > now {
                break;
            }
            self.waiting.pop_front();
            let request = self.core.requests.finish(request);
            self.answers.record(now - request.born);
            self.core.metrics.failed(now);
        }
        self.record_waiting(now);
        self.arm_patience(scheduler);
    }

    fn record_waiting(&mut self, now: SimTime) {
        self.core
            .metrics
            .set_gauge(self.waiting_gauge, now, self.waiting.len() as i64);
    }

    fn busy_threads(&self) -> usize {
        self.threads.len() - self.free_threads.len()
    }

    fn record_busy(&mut self, now: SimTime) {
        let busy = self.busy_threads();
        self.core
            .metrics
            .set_gauge(self.busy_gauge, now, busy as i64);
        let exhausted = busy == self.threads.len();
        match (exhausted, self.exhausted_since) {
            (true, None) => self.exhausted_since = Some(now),
            (false, Some(since)) => {
                self.time_exhausted = self.time_exhausted + (now - since);
                self.exhausted_since = None;
            }
            _ => {}
        }
    }

    fn start_call(&mut self, thread: u16, request: RequestKey, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if let Place::Queued { since, .. } = self.core.requests.get(request).place {
            self.core.metrics.waited(now - since);
        } else {
            self.core.metrics.waited(SimDuration::ZERO);
        }
        let slot = &mut self.threads[thread as usize];
        slot.call_number = slot.call_number.wrapping_add(1);
        let call = slot.call_number;
        slot.call = Some(Call {
            request,
            started: now,
            failed: false,
            phase: Phase::Travelling,
        });
        self.on_edge(request, self.out_of_service, now);
        self.record_busy(now);
        let next = if self.breaker.is_some() {
            Event::AtBreaker { thread, call }
        } else {
            self.begin_timing(thread, call, scheduler);
            Event::AtDependency { thread, call }
        };
        scheduler.schedule_in(HOP, next);
    }

    /// The call is under way from now on: the call timeout starts.
    fn begin_timing(&mut self, thread: u16, call: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if let Some(current) = self.threads[thread as usize].call.as_mut() {
            current.started = now;
        }
        scheduler.schedule_in(
            SimDuration::from_secs_f64(self.params.number("call_timeout")),
            Event::CallTimeout { thread, call },
        );
    }

    /// The current call of `thread` if it is call number `call`.
    fn current(&self, thread: u16, call: u32) -> Option<Call> {
        let slot = &self.threads[thread as usize];
        if slot.call_number == call {
            slot.call
        } else {
            None
        }
    }

    fn at_breaker(&mut self, thread: u16, call: u32, scheduler: &mut Scheduler<Event>) {
        let Some(current) = self.current(thread, call) else {
            return;
        };
        let now = scheduler.now();
        let breaker = self.breaker.as_mut().expect("breaker mode");
        let (permission, transition) = breaker.try_acquire(now);
        if let Some(transition) = transition {
            self.note_transition(transition);
        }
        match permission {
            Permission::Permitted => {
                let edge = self.breaker_to_dependency.expect("breaker mode");
                self.on_edge(current.request, edge, now);
                self.begin_timing(thread, call, scheduler);
                scheduler.schedule_in(HOP, Event::AtDependency { thread, call });
            }
            Permission::Rejected => {
                // The fallback is computed at once: the thread is free again.
                let edge = self.breaker_to_fallback.expect("breaker mode");
                self.on_edge(current.request, edge, now);
                self.release(thread, scheduler);
                scheduler.schedule_in(
                    HOP,
                    Event::FallbackServed {
                        request: current.request,
                    },
                );
            }
        }
    }

    fn at_dependency(&mut self, thread: u16, call: u32, scheduler: &mut Scheduler<Event>) {
        let Some(current) = self.current(thread, call) else {
            return;
        };
        let now = scheduler.now();
        self.dependency_calls += 1;
        self.calls_at_dependency += 1;
        self.core.metrics.set_gauge(
            self.at_dependency_gauge,
            now,
            self.calls_at_dependency as i64,
        );
        self.core.requests.move_to(
            current.request,
            Place::InService {
                node: self.dependency,
                since: now,
            },
        );
        let (delay, failed) = match self.mode {
            DependencyMode::Healthy => {
                let mean = self.params.number("latency") / 1000.0;
                let delay = self.latency_rng.lognormal_mean_cv(mean, LATENCY_CV);
                let failed = self.error_rng.chance(self.params.number("error_rate"));
                (SimDuration::from_secs_f64(delay), failed)
            }
            DependencyMode::Hanging => (HANG, false),
            DependencyMode::Failing => {
                let delay = self
                    .latency_rng
                    .lognormal_mean_cv(FAST_ERROR_MS / 1000.0, LATENCY_CV);
                (SimDuration::from_secs_f64(delay), true)
            }
            DependencyMode::Slow => {
                let delay = self.latency_rng.lognormal_mean_cv(SLOW_MEAN_S, SLOW_CV);
                (SimDuration::from_secs_f64(delay), false)
            }
        };
        if let Some(slot) = self.threads[thread as usize].call.as_mut() {
            slot.failed = failed;
            slot.phase = Phase::AtDependency;
        }
        scheduler.schedule_in(delay, Event::Answered { thread, call });
    }

    fn leave_dependency(&mut self, now: SimTime) {
        self.calls_at_dependency -= 1;
        self.core.metrics.set_gauge(
            self.at_dependency_gauge,
            now,
            self.calls_at_dependency as i64,
        );
    }

    fn answered(&mut self, thread: u16, call: u32, scheduler: &mut Scheduler<Event>) {
        let Some(current) = self.current(thread, call) else {
            return;
        };
        let now = scheduler.now();
        self.leave_dependency(now);
        self.on_edge(current.request, self.to_responses, now);
        if let Some(slot) = self.threads[thread as usize].call.as_mut() {
            slot.phase = Phase::Returning;
        }
        scheduler.schedule_in(HOP, Event::AnswerBack { thread, call });
    }

    fn answer_back(&mut self, thread: u16, call: u32, scheduler: &mut Scheduler<Event>) {
        let Some(current) = self.current(thread, call) else {
            return;
        };
        let now = scheduler.now();
        self.record_outcome(current.failed, now - current.started, now);
        let request = self.core.requests.finish(current.request);
        self.answers.record(now - request.born);
        if current.failed {
            self.core.metrics.failed(now);
        } else {
            self.core.metrics.completed(now, now - request.born);
        }
        self.release(thread, scheduler);
    }

    fn call_timeout(&mut self, thread: u16, call: u32, scheduler: &mut Scheduler<Event>) {
        let Some(current) = self.current(thread, call) else {
            return;
        };
        let now = scheduler.now();
        if current.phase == Phase::AtDependency {
            self.leave_dependency(now);
        }
        self.record_outcome(true, now - current.started, now);
        let request = self.core.requests.finish(current.request);
        self.answers.record(now - request.born);
        self.core.metrics.failed(now);
        self.release(thread, scheduler);
    }

    fn record_outcome(&mut self, failed: bool, duration: SimDuration, now: SimTime) {
        if let Some(breaker) = self.breaker.as_mut() {
            if let Some(transition) = breaker.record(now, failed, duration) {
                self.note_transition(transition);
            }
        }
    }

    fn note_transition(&mut self, transition: Transition) {
        let now = transition.at;
        if transition.to == BreakerState::Open {
            self.times_opened += 1;
            self.open_since = Some(now);
        } else if let Some(since) = self.open_since.take() {
            self.time_open = self.time_open + (now - since);
        }
        if let Some(node) = self.breaker_node {
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node,
                    to: breaker_node_state(transition.to),
                },
            );
        }
    }

    /// Frees `thread` and gives it the oldest waiting request, if any.
    fn release(&mut self, thread: u16, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.threads[thread as usize].call = None;
        if let Some((request, _)) = self.waiting.pop_front() {
            self.record_waiting(now);
            self.arm_patience(scheduler);
            self.start_call(thread, request, scheduler);
        } else {
            self.free_threads.push(thread);
            self.record_busy(now);
        }
    }

    fn fallback_served(&mut self, request: RequestKey, now: SimTime) {
        let request = self.core.requests.finish(request);
        self.answers.record(now - request.born);
        self.short_circuited += 1;
        self.core.metrics.rejected(now);
    }

    fn set_mode(&mut self, mode: DependencyMode, now: SimTime) {
        if self.mode != mode {
            self.mode = mode;
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node: self.dependency,
                    to: mode.node_state(),
                },
            );
        }
    }

    fn incident_mode(&self) -> DependencyMode {
        match self.params.choice("incident") {
            "fail" => DependencyMode::Failing,
            "slow" => DependencyMode::Slow,
            _ => DependencyMode::Hanging,
        }
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        self.breaker.as_ref().map(CircuitBreaker::state)
    }

    /// Calls refused by the breaker whose fallback answer was served so far.
    pub fn short_circuited(&self) -> u64 {
        self.short_circuited
    }

    /// Calls that reached the dependency so far.
    pub fn dependency_calls(&self) -> u64 {
        self.dependency_calls
    }

    /// Times the breaker opened so far.
    pub fn times_opened(&self) -> u64 {
        self.times_opened
    }

    /// Time with every thread busy, up to `now`.
    pub fn time_exhausted(&self, now: SimTime) -> SimDuration {
        self.time_exhausted
            + self
                .exhausted_since
                .map_or(SimDuration::ZERO, |since| now - since)
    }

    /// Time the breaker spent OPEN, up to `now`.
    pub fn time_open(&self, now: SimTime) -> SimDuration {
        self.time_open
            + self
                .open_since
                .map_or(SimDuration::ZERO, |since| now - since)
    }

    /// The breaker's current state (None without a breaker).
    pub fn state(&self) -> Option<BreakerState> {
        self.breaker_state()
    }
}

fn breaker_node_state(state: BreakerState) -> NodeState {
    match state {
        BreakerState::Closed => NodeState::Healthy,
        BreakerState::Open => NodeState::Open,
        BreakerState::HalfOpen => NodeState::HalfOpen,
    }
}

impl Model for CircuitBreakerModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtService { request } => self.at_service(request, scheduler),
            Event::PatienceExpired => self.patience_expired(scheduler),
            Event::AtBreaker { thread, call } => self.at_breaker(thread, call, scheduler),
            Event::AtDependency { thread, call } => self.at_dependency(thread, call, scheduler),
            Event::Answered { thread, call } => self.answered(thread, call, scheduler),
            Event::AnswerBack { thread, call } => self.answer_back(thread, call, scheduler),
            Event::CallTimeout { thread, call } => self.call_timeout(thread, call, scheduler),
            Event::FallbackServed { request } => self.fallback_served(request, now),
            Event::IncidentStarts => {
                let mode = self.incident_mode();
                self.set_mode(mode, now);
            }
            Event::IncidentEnds => self.set_mode(DependencyMode::Healthy, now),
        }
    }
}

impl LessonModel for CircuitBreakerModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        snapshot.nodes.push(NodeView::plain(self.clients));
        let busy = self.busy_threads() as u32;
        let capacity = self.threads.len() as u32;
        snapshot.nodes.push(NodeView {
            state: if busy == capacity && !self.waiting.is_empty() {
                NodeState::Unhealthy
            } else {
                NodeState::Healthy
            },
            busy,
            capacity,
            queued: self.waiting.len() as u32,
            ..NodeView::plain(self.service)
        });
        if let (Some(node), Some(state)) = (self.breaker_node, self.breaker_state()) {
            snapshot.nodes.push(NodeView {
                state: breaker_node_state(state),
                ..NodeView::plain(node)
            });
        }
        if let Some(fallback) = self.fallback {
            snapshot.nodes.push(NodeView::plain(fallback));
        }
        snapshot.nodes.push(NodeView {
            state: self.mode.node_state(),
            busy: self.calls_at_dependency,
            ..NodeView::plain(self.dependency)
        });
        snapshot.nodes.push(NodeView::plain(self.responses));
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let mut figures = vec![
            Figure {
                key: "answer_mean_s",
                label: "Mean time to any answer",
                value: self.answers.mean_secs().unwrap_or(0.0),
                unit: "s",
            },
            Figure {
                key: "answer_p99_s",
                label: "p99 time to any answer",
                value: self.answers.quantile_secs(0.99),
                unit: "s",
            },
            Figure {
                key: "short_circuited",
                label: "Short-circuited (fallback)",
                value: self.short_circuited as f64,
                unit: "",
            },
            Figure {
                key: "dependency_calls",
                label: "Calls that reached the dependency",
                value: self.dependency_calls as f64,
                unit: "",
            },
            Figure {
                key: "threads_exhausted_s",
                label: "Time with every thread busy",
                value: self.time_exhausted(now).as_secs_f64(),
                unit: "s",
            },
            Figure {
                key: "breaker_opened",
                label: "Times the breaker opened",
                value: self.times_opened as f64,
                unit: "",
            },
            Figure {
                key: "breaker_open_s",
                label: "Time the breaker was open",
                value: self.time_open(now).as_secs_f64(),
                unit: "s",
            },
        ];
        if let Some(breaker) = &self.breaker {
            let counts = breaker.window_counts(now);
            figures.push(Figure {
                key: "window_failure_pct",
                label: "Failure rate in the breaker's window",
                value: counts.failure_rate(),
                unit: "%",
            });
            figures.push(Figure {
                key: "window_slow_pct",
                label: "Slow-call rate in the breaker's window",
                value: counts.slow_rate(),
                unit: "%",
            });
        }
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
                let mode = match id.as_str() {
                    "dependency-hangs" => DependencyMode::Hanging,
                    "dependency-fails" => DependencyMode::Failing,
                    "dependency-slows" => DependencyMode::Slow,
                    "dependency-recovers" => DependencyMode::Healthy,
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                };
                if mode == self.mode {
                    return Err(CommandError::NotApplicable {
                        reason: match mode {
                            DependencyMode::Healthy => "the dependency is already healthy".into(),
                            _ => "the dependency is already in that condition".into(),
                        },
                    });
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                self.set_mode(mode, now);
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "arrival_rate" => {
                        self.arrivals.arrivals.set_shape(TrafficShape::Steady {
                            rate: self.params.number("arrival_rate"),
                        });
                        self.arrivals.rearm(scheduler);
                    }
                    "queue_timeout" => {
                        // Waiting requests are judged by the new patience at once.
                        self.arm_patience(scheduler);
                    }
                    // Latency, errors and the call timeout apply to the next calls.
                    _ => {}
                }
                Ok(())
            }
        }
    }
}
