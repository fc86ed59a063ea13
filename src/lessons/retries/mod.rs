//! Lesson `retries`: timeouts, retries, exponential backoff and jitter, retry budgets and
//! idempotency keys, shown as many clients calling one payment server of limited capacity.
//!
//! Each logical call (a payment) is one request token. The client sends an attempt over a
//! short network hop to the server's FIFO accept queue (bounded: a full queue refuses the
//! attempt at once, like a 503), the server works on up to `concurrency` attempts at a
//! time, and the answer travels back. The client waits at most `timeout` for each
//! attempt; after a timeout or an error it may retry by its strategy (see [`backoff`]),
//! up to `max_attempts` attempts per call. The server cannot tell that a client gave up:
//! it still works on the abandoned attempt when its turn comes, and still charges the
//! card. That is what turns a short trigger (a slowdown, an outage, a burst) into a
//! *retry storm* and then into *metastable overload*: once the queue holds more work than
//! the server finishes within one timeout, every attempt it serves was already abandoned,
//! every call retries, the retries keep the queue full, and goodput stays near zero long
//! after the trigger is gone (Bronson et al., "Metastable Failures in Distributed
//! Systems", HotOS 2021; AWS Builders' Library, "Timeouts, retries, and backoff with
//! jitter", Marc Brooker).
//!
//! Backoff formulas follow the AWS Architecture blog "Exponential Backoff and Jitter"
//! (Marc Brooker, 2015): no jitter `v = min(cap, base·2^n)`, full `U(0, v)`, equal
//! `v/2 + U(0, v/2)`, decorrelated `min(cap, U(base, 3·previous))`. The retry budget is
//! the AWS SDKs' retry quota (standard retry mode, e.g. aws-sdk-js-v3 `DefaultRetryQuota`):
//! a bucket of `budget_capacity` tokens (default 500); a retry after an error costs 5, a
//! retry after a timeout 10; a call that succeeds at its first attempt returns 1 token, a
//! call that succeeds on a retry returns that retry's cost; an empty bucket means no
//! retry. Idempotency keys (Stripe's `Idempotency-Key`, Amazon EC2's `ClientToken`): the
//! server remembers which calls it has charged and answers a repeated key from the stored
//! result instead of charging again.
//!
//! The blog's contention experiment (clients racing for one row under optimistic
//! concurrency control) is [`contention`]; its work and completion time for the current
//! strategy are shown as figures. Equations and sources: docs/models/retries.md.

pub mod backoff;
pub mod contention;

use std::collections::VecDeque;

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

use backoff::{Backoff, Strategy};
use contention::{contention_experiment, ContentionResult};

pub const SPEC: LessonSpec = LessonSpec {
    id: "retries",
    title: "Timeouts, retries, backoff and jitter",
    group: LessonGroup::Resilience,
    summary: "Retries rescue calls from brief faults, but without backoff, jitter and a budget they turn a short slowdown into a storm that outlives it.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(240),
    build,
    compare: None,
    sweep: Some("strategy"),
    breaker_node: None,
};

const fn toggle(
    name: &'static str,
    label: &'static str,
    help: &'static str,
    default: bool,
) -> ParamSpec {
    ParamSpec {
        name,
        label,
        unit: "",
        help,
        kind: ParamKind::Toggle { default },
        liveness: Liveness::Live,
    }
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "strategy",
        label: "Retry strategy",
        unit: "",
        help: "none: the first failure is final; immediate: retry at once; exponential: sleep min(cap, base·2^n); full-jitter: U(0, that); equal-jitter: half of it plus U(0, half); decorrelated-jitter: min(cap, U(base, 3 × previous sleep)).",
        kind: ParamKind::Choice {
            options: &[
                "none",
                "immediate",
                "exponential",
                "full-jitter",
                "equal-jitter",
                "decorrelated-jitter",
            ],
            default: "immediate",
        },
        liveness: Liveness::Live,
    },
    toggle(
        "retry_budget",
        "Retry budget (token bucket)",
        "Clients share the AWS SDK retry quota: a retry spends 5 tokens (10 after a timeout), successes give tokens back; no tokens, no retry.",
        false,
    ),
    toggle(
        "idempotency_keys",
        "Idempotency keys",
        "Every attempt of a payment carries the same key; the server charges a key once and answers repeats from the stored result.",
        false,
    ),
    number("call_rate", "Calls", "calls/s", "New payments per second (Poisson arrivals).", (1.0, 1000.0, 1.0, 100.0)),
    integer("concurrency", "Server concurrency", "", "Attempts the server works on at once.", (1, 64, 8)),
    number("service_time", "Service time", "s", "Mean time the server needs for one attempt (exponential). Capacity = concurrency ÷ service time.", (0.001, 5.0, 0.001, 0.05)),
    integer("queue_limit", "Server queue limit", "", "Attempts the server's accept queue holds; a full queue refuses new attempts at once.", (1, 5000, 400)),
    number("timeout", "Client timeout", "s", "How long a client waits for one attempt before it gives up on it.", (0.05, 30.0, 0.05, 1.0)),
    integer("max_attempts", "Max attempts", "", "Attempts per call, the first included (AWS SDK standard mode: 3).", (1, 10, 3)),
    number("backoff_base", "Backoff base", "s", "Base of the exponential backoff.", (0.001, 10.0, 0.001, 0.1)),
    number("backoff_cap", "Backoff cap", "s", "Longest sleep between attempts.", (0.01, 120.0, 0.01, 10.0)),
    integer("budget_capacity", "Retry budget size", "", "Tokens in the retry bucket when full (AWS SDK default 500).", (10, 5000, 500)),
    number("slowdown_at", "Scheduled slowdown at", "s", "When the scheduled trigger starts: the server becomes slow.", (0.0, 3600.0, 5.0, 60.0)).restart(),
    number("slowdown_length", "Slowdown length", "s", "How long the scheduled slowdown lasts (0: none).", (0.0, 600.0, 1.0, 20.0)).restart(),
    number("slowdown_factor", "Slowdown factor", "×", "How many times longer each attempt takes while the server is slow.", (1.0, 50.0, 0.5, 10.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "slow-server",
        label: "Slow the server down",
        help: "Every attempt the server starts takes `slowdown factor` times longer, until restored.",
    },
    InjectionSpec {
        id: "outage",
        label: "Server outage",
        help: "The server goes down: it drops its queue and refuses connections until restored.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore the server",
        help: "Ends a slowdown or an outage: the server is as fast as before. Watch whether the clients recover.",
    },
    InjectionSpec {
        id: "traffic-burst",
        label: "Traffic burst (×3, 10 s)",
        help: "Three times the calls for ten seconds.",
    },
];

/// One network hop between client and server (short, long enough to see tokens move).
const HOP: SimDuration = SimDuration::from_millis(15);
/// How often the rate gauges and the recovery check look at the last second.
const TICK: SimDuration = SimDuration::from_secs(1);
/// Seconds of history for the goodput figure.
const GOODPUT_WINDOW: usize = 5;
/// Share of calls ending in a one-second window that must succeed to call it recovered.
const RECOVERED_SUCCESS: f64 = 0.95;
/// AWS SDK retry quota (standard mode): cost of a retry after an error / a timeout, and
/// what a call that succeeds at its first attempt returns.
pub const RETRY_COST: u32 = 5;
pub const TIMEOUT_RETRY_COST: u32 = 10;
pub const NO_RETRY_INCREMENT: u32 = 1;
const BURST_FACTOR: f64 = 3.0;
const BURST_LENGTH: SimDuration = SimDuration::from_secs(10);
/// Clients in the contention experiment shown as figures.
pub const CONTENTION_CLIENTS: u32 = 50;

/// What the server is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Slow,
    Down,
}

/// Why an attempt failed, as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Refused (queue full) or reset (outage): an error response.
    Error,
    /// No answer within the timeout.
    Timeout,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    /// Attempt `number` of `call` reaches the server.
    AtServer {
        call: u32,
        number: u16,
    },
    /// The server finishes an attempt (ignored if the server went down meanwhile).
    ServiceDone {
        call: u32,
        number: u16,
        life: u32,
    },
    /// The answer to attempt `number` reaches the client.
    Response {
        call: u32,
        number: u16,
    },
    /// An error answer (refused, reset) reaches the client.
    ErrorResponse {
        call: u32,
        number: u16,
    },
    /// The client's timer for attempt `number` fires.
    Timeout {
        call: u32,
        number: u16,
    },
    /// The client's backoff sleep ends: send the next attempt.
    RetryNow {
        call: u32,
    },
    Tick,
    SlowdownStarts,
    /// The scheduled slowdown ends, unless something changed the mode since (`epoch`).
    SlowdownEnds {
        epoch: u32,
    },
    BurstEnds,
}

/// An attempt as the server sees it: it knows the call but not whether anyone waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attempt {
    call: u32,
    number: u16,
}

#[derive(Clone, Debug)]
struct Call {
    key: RequestKey,
    born: SimTime,
    /// Number of the latest attempt (1 for the first).
    attempt: u16,
    /// Whether the client is waiting for the latest attempt (false while sleeping).
    waiting: bool,
    timer: Option<TimerHandle>,
    /// Failed attempts so far and the last backoff sleep (decorrelated jitter).
    failures: u32,
    previous_sleep: f64,
    /// Retry-quota tokens spent on the latest retry (returned if the call succeeds).
    last_retry_cost: u32,
}

/// How a finished call ended (kept for every call, for the charge bookkeeping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Live,
    Succeeded,
    Failed,
}

pub struct RetriesModel {
    params: ParamValues,
    backoff: Backoff,
    topology: Topology,
    clients: NodeId,
    queue_node: NodeId,
    server_node: NodeId,
    backoff_node: NodeId,
    done_node: NodeId,
    budget_node: NodeId,
    edge_send: EdgeId,
    edge_retry: EdgeId,
    edge_serve: EdgeId,
    edge_reply: EdgeId,
    calls: Vec<Option<Call>>,
    outcomes: Vec<Outcome>,
    /// Charges applied per call (more than one = a double charge).
    charges: Vec<u8>,
    queue: VecDeque<Attempt>,
    in_service: Vec<Attempt>,
    /// Bumped when the server goes down, so the attempts it dropped never finish.
    life: u32,
    mode: Mode,
    /// Bumped on every mode change, so a stale scheduled slowdown end does nothing.
    epoch: u32,
    burst: bool,
    backing_off: u32,
    tokens: u32,
    budget_state: NodeState,
    // Counters.
    attempts: u64,
    retries: u64,
    timeouts: u64,
    refused: u64,
    served: u64,
    wasted: u64,
    double_charges: u64,
    deduplicated: u64,
    charged_but_failed: u64,
    retries_denied: u64,
    // Per-second windows.
    second_attempts: u64,
    second_successes: u64,
    second_failures: u64,
    recent_successes: VecDeque<u64>,
    offered_last: u64,
    goodput_last: u64,
    // Recovery after the latest trigger.
    trigger_active: bool,
    trigger_ended: Option<SimTime>,
    recovered_at: Option<SimTime>,
    contention: ContentionResult,
    seed: u64,
    arrivals: ArrivalTimer<Event>,
    service_rng: SimRng,
    jitter_rng: SimRng,
    core: ModelCore,
    gauge_offered: GaugeId,
    gauge_goodput: GaugeId,
    gauge_queue: GaugeId,
    gauge_tokens: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn strategy_of(params: &ParamValues) -> Strategy {
    Strategy::from_word(params.choice("strategy")).unwrap_or(Strategy::Immediate)
}

fn backoff_of(params: &ParamValues) -> Backoff {
    let base = params.number("backoff_base");
    Backoff {
        strategy: strategy_of(params),
        base,
        cap: params.number("backoff_cap").max(base),
    }
}

fn traffic(params: &ParamValues) -> TrafficShape {
    TrafficShape::steady(params.number("call_rate")).expect("the schema bounds the rate")
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<RetriesModel> {
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.3);
    let queue_node = topology.add_node("queue", "Server queue", NodeKind::Queue, 0.34, 0.3);
    let server_node = topology.add_node("server", "Payments API", NodeKind::Server, 0.66, 0.3);
    let done_node = topology.add_node("done", "Paid", NodeKind::Sink, 0.97, 0.3);
    let backoff_node = topology.add_node("backoff", "Waiting to retry", NodeKind::Queue, 0.2, 0.86);
    let budget_node = topology.add_node("budget", "Retry budget", NodeKind::Guard, 0.66, 0.86);
    let edge_send = topology.add_edge(clients, queue_node);
    let edge_serve = topology.add_edge(queue_node, server_node);
    let edge_reply = topology.add_edge(server_node, done_node);
    let edge_retry = topology.add_edge(backoff_node, queue_node);
    let core = ModelCore::new(vec![
        "offered_load",
        "goodput",
        "queue_length",
        "retry_tokens",
    ]);
    let capacity = params.integer("budget_capacity") as u32;
    let budget_state = if params.toggle("retry_budget") {
        NodeState::Healthy
    } else {
        NodeState::Off
    };
    let mut model = RetriesModel {
        backoff: backoff_of(params),
        topology,
        clients,
        queue_node,
        server_node,
        backoff_node,
        done_node,
        budget_node,
        edge_send,
        edge_retry,
        edge_serve,
        edge_reply,
        calls: Vec::new(),
        outcomes: Vec::new(),
        charges: Vec::new(),
        queue: VecDeque::new(),
        in_service: Vec::new(),
        life: 0,
        mode: Mode::Normal,
        epoch: 0,
        burst: false,
        backing_off: 0,
        tokens: capacity,
        budget_state,
        attempts: 0,
        retries: 0,
        timeouts: 0,
        refused: 0,
        served: 0,
        wasted: 0,
        double_charges: 0,
        deduplicated: 0,
        charged_but_failed: 0,
        retries_denied: 0,
        second_attempts: 0,
        second_successes: 0,
        second_failures: 0,
        recent_successes: VecDeque::with_capacity(GOODPUT_WINDOW + 1),
        offered_last: 0,
        goodput_last: 0,
        trigger_active: false,
        trigger_ended: None,
        recovered_at: None,
        contention: contention_experiment(strategy_of(params), CONTENTION_CLIENTS, seed.0),
        seed: seed.0,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(traffic(params), SimRng::new(seed.0, "arrivals")),
            Event::Arrival,
        ),
        service_rng: SimRng::new(seed.0, "service"),
        jitter_rng: SimRng::new(seed.0, "jitter"),
        gauge_offered: core.gauge("offered_load"),
        gauge_goodput: core.gauge("goodput"),
        gauge_queue: core.gauge("queue_length"),
        gauge_tokens: core.gauge("retry_tokens"),
        core,
        params: params.clone(),
    };
    let mut scheduler = Scheduler::new();
    model.update_token_gauge(SimTime::ZERO);
    model.arrivals.rearm(&mut scheduler);
    scheduler.schedule_in(TICK, Event::Tick);
    if params.number("slowdown_length") > 0.0 {
        scheduler.schedule_in(
            SimDuration::from_secs_f64(params.number("slowdown_at")),
            Event::SlowdownStarts,
        );
    }
    Simulation::new(model, scheduler)
}

impl RetriesModel {
    fn call_mut(&mut self, call: u32) -> Option<&mut Call> {
        self.calls.get_mut(call as usize).and_then(Option::as_mut)
    }

    /// Whether the client still waits for attempt `number` of `call`.
    fn is_current(&self, call: u32, number: u16) -> bool {
        self.calls
            .get(call as usize)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.waiting && c.attempt == number)
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let key = self.core.requests.spawn(
            now,
            Place::Queued {
                node: self.clients,
                since: now,
            },
        );
        let id = self.calls.len() as u32;
        self.calls.push(Some(Call {
            key,
            born: now,
            attempt: 0,
            waiting: false,
            timer: None,
            failures: 0,
            previous_sleep: self.backoff.base,
            last_retry_cost: 0,
        }));
        self.outcomes.push(Outcome::Live);
        self.charges.push(0);
        self.send(id, scheduler);
    }

    /// Sends the next attempt of `call` and starts its timeout.
    fn send(&mut self, call: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let timeout = SimDuration::from_secs_f64(self.params.number("timeout"));
        let (edge_send, edge_retry) = (self.edge_send, self.edge_retry);
        let Some(entry) = self.call_mut(call) else {
            return;
        };
        entry.attempt += 1;
        entry.waiting = true;
        let number = entry.attempt;
        let key = entry.key;
        let edge = if number == 1 { edge_send } else { edge_retry };
        let timer = scheduler.schedule_timer_in(timeout, Event::Timeout { call, number });
        entry.timer = Some(timer);
        if number > 1 {
            self.core.requests.next_attempt(key);
            self.retries += 1;
        }
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        self.attempts += 1;
        self.second_attempts += 1;
        scheduler.schedule_in(HOP, Event::AtServer { call, number });
    }

    /// An attempt reaches the server: refused if the server is down or its queue full.
    fn at_server(&mut self, call: u32, number: u16, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let limit = self.params.integer("queue_limit") as usize;
        if self.mode == Mode::Down || self.queue.len() >= limit {
            self.refused += 1;
            if self.is_current(call, number) {
                let key = self.calls[call as usize].as_ref().expect("current").key;
                self.core.requests.move_to(
                    key,
                    Place::InService {
                        node: self.queue_node,
                        since: now,
                    },
                );
            }
            scheduler.schedule_in(HOP, Event::ErrorResponse { call, number });
            return;
        }
        self.queue.push_back(Attempt { call, number });
        if self.is_current(call, number) {
            let key = self.calls[call as usize].as_ref().expect("current").key;
            self.core.requests.move_to(
                key,
                Place::Queued {
                    node: self.queue_node,
                    since: now,
                },
            );
        }
        self.dispatch(scheduler);
        self.update_queue_gauge(now);
    }

    /// Starts queued attempts while the server has free slots, oldest first, whether or
    /// not their clients still wait (the server cannot know).
    fn dispatch(&mut self, scheduler: &mut Scheduler<Event>) {
        if self.mode == Mode::Down {
            return;
        }
        let now = scheduler.now();
        let concurrency = self.params.integer("concurrency") as usize;
        while self.in_service.len() < concurrency {
            let Some(attempt) = self.queue.pop_front() else {
                break;
            };
            let mut mean = self.params.number("service_time");
            if self.mode == Mode::Slow {
                mean *= self.params.number("slowdown_factor");
            }
            let service = SimDuration::from_secs_f64(self.service_rng.exponential(1.0 / mean));
            self.in_service.push(attempt);
            if self.is_current(attempt.call, attempt.number) {
                let key = self.calls[attempt.call as usize]
                    .as_ref()
                    .expect("current")
                    .key;
                if let Place::Queued { since, .. } = self.core.requests.get(key).place {
                    self.core.metrics.waited(now - since);
                }
                self.core.requests.move_to(
                    key,
                    Place::OnEdge {
                        edge: self.edge_serve,
                        depart: now,
                        arrive: now + HOP.min(service),
                    },
                );
            }
            scheduler.schedule_in(
                service,
                Event::ServiceDone {
                    call: attempt.call,
                    number: attempt.number,
                    life: self.life,
                },
            );
        }
        self.update_queue_gauge(now);
    }

    /// The server finishes an attempt: the card is charged (once per key with
    /// idempotency keys), and the answer goes back if anyone still waits for it.
    fn service_done(
        &mut self,
        call: u32,
        number: u16,
        life: u32,
        scheduler: &mut Scheduler<Event>,
    ) {
        if life != self.life {
            return; // dropped by an outage
        }
        let now = scheduler.now();
        let attempt = Attempt { call, number };
        if let Some(position) = self.in_service.iter().position(|a| *a == attempt) {
            self.in_service.swap_remove(position);
        }
        self.served += 1;
        let index = call as usize;
        let already = self.charges[index];
        if already > 0 {
            self.core.metrics.duplicated(now);
        }
        if already > 0 && self.params.toggle("idempotency_keys") {
            self.deduplicated += 1; // answered from the stored result, no new charge
        } else {
            self.charges[index] = already.saturating_add(1);
            if already > 0 {
                self.double_charges += 1;
            } else if self.outcomes[index] == Outcome::Failed {
                self.charged_but_failed += 1;
            }
        }
        if self.is_current(call, number) {
            let key = self.calls[index].as_ref().expect("current").key;
            self.core.requests.move_to(
                key,
                Place::OnEdge {
                    edge: self.edge_reply,
                    depart: now,
                    arrive: now + HOP,
                },
            );
            scheduler.schedule_in(HOP, Event::Response { call, number });
        } else {
            self.wasted += 1;
        }
        self.dispatch(scheduler);
    }

    fn response(&mut self, call: u32, number: u16, scheduler: &mut Scheduler<Event>) {
        if !self.is_current(call, number) {
            return; // the client timed out while the answer travelled
        }
        let now = scheduler.now();
        let entry = self.calls[call as usize].take().expect("current");
        if let Some(timer) = entry.timer {
            scheduler.cancel(timer);
        }
        self.core.requests.finish(entry.key);
        self.core.metrics.completed(now, now - entry.born);
        self.outcomes[call as usize] = Outcome::Succeeded;
        self.second_successes += 1;
        let refill = if entry.attempt == 1 {
            NO_RETRY_INCREMENT
        } else {
            entry.last_retry_cost
        };
        self.refill(refill, now);
    }

    /// The client learns that attempt `number` failed; it retries or gives up.
    fn failed_attempt(
        &mut self,
        call: u32,
        number: u16,
        failure: Failure,
        scheduler: &mut Scheduler<Event>,
    ) {
        if !self.is_current(call, number) {
            return;
        }
        let now = scheduler.now();
        if failure == Failure::Timeout {
            self.timeouts += 1;
        }
        let max_attempts = self.params.integer("max_attempts") as u16;
        let budget = self.params.toggle("retry_budget");
        let backoff = self.backoff;
        let entry = self.calls[call as usize].as_mut().expect("current");
        if let Some(timer) = entry.timer.take() {
            scheduler.cancel(timer);
        }
        entry.waiting = false;
        entry.failures += 1;
        let give_up = !backoff.strategy.retries() || entry.attempt >= max_attempts;
        if give_up {
            self.give_up(call, now);
            return;
        }
        if budget {
            let cost = match failure {
                Failure::Error => RETRY_COST,
                Failure::Timeout => TIMEOUT_RETRY_COST,
            };
            if self.tokens < cost {
                self.retries_denied += 1;
                self.give_up(call, now);
                return;
            }
            self.tokens -= cost;
            self.calls[call as usize]
                .as_mut()
                .expect("current")
                .last_retry_cost = cost;
            self.update_budget_state(now);
        }
        let entry = self.calls[call as usize].as_mut().expect("current");
        let sleep = backoff
            .sleep(entry.failures, entry.previous_sleep, &mut self.jitter_rng)
            .expect("a retrying strategy sleeps");
        entry.previous_sleep = sleep;
        let key = entry.key;
        self.core.requests.move_to(
            key,
            Place::Queued {
                node: self.backoff_node,
                since: now,
            },
        );
        self.backing_off += 1;
        scheduler.schedule_in(SimDuration::from_secs_f64(sleep), Event::RetryNow { call });
    }

    fn give_up(&mut self, call: u32, now: SimTime) {
        let entry = self.calls[call as usize].take().expect("live");
        self.core.requests.finish(entry.key);
        self.core.metrics.failed(now);
        self.outcomes[call as usize] = Outcome::Failed;
        if self.charges[call as usize] > 0 {
            self.charged_but_failed += 1;
        }
        self.second_failures += 1;
    }

    fn refill(&mut self, amount: u32, now: SimTime) {
        if !self.params.toggle("retry_budget") || amount == 0 {
            return;
        }
        let capacity = self.params.integer("budget_capacity") as u32;
        self.tokens = (self.tokens + amount).min(capacity);
        self.update_budget_state(now);
    }

    fn update_budget_state(&mut self, now: SimTime) {
        let state = if !self.params.toggle("retry_budget") {
            NodeState::Off
        } else if self.tokens < RETRY_COST {
            NodeState::Open
        } else {
            NodeState::Healthy
        };
        if state != self.budget_state {
            self.budget_state = state;
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node: self.budget_node,
                    to: state,
                },
            );
        }
        self.update_token_gauge(now);
    }

    fn update_token_gauge(&mut self, now: SimTime) {
        let tokens = if self.params.toggle("retry_budget") {
            self.tokens as i64
        } else {
            0
        };
        self.core.metrics.set_gauge(self.gauge_tokens, now, tokens);
    }

    fn update_queue_gauge(&mut self, now: SimTime) {
        self.core
            .metrics
            .set_gauge(self.gauge_queue, now, self.queue.len() as i64);
    }

    fn set_mode(&mut self, mode: Mode, now: SimTime) {
        self.mode = mode;
        self.epoch += 1;
        let state = match mode {
            Mode::Normal => NodeState::Healthy,
            Mode::Slow => NodeState::Unhealthy,
            Mode::Down => NodeState::Down,
        };
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: self.server_node,
                to: state,
            },
        );
    }

    /// A trigger starts: recovery is measured again from its end.
    fn trigger_starts(&mut self) {
        self.trigger_active = true;
        self.trigger_ended = None;
        self.recovered_at = None;
    }

    /// A trigger ends (restore, scheduled end, burst over) unless another one is on.
    fn trigger_ends(&mut self, now: SimTime) {
        if self.mode == Mode::Normal && !self.burst && self.trigger_active {
            self.trigger_active = false;
            self.trigger_ended = Some(now);
            self.recovered_at = None;
        }
    }

    fn slow_down(&mut self, now: SimTime) {
        self.set_mode(Mode::Slow, now);
        self.trigger_starts();
    }

    /// The server goes down: queued and in-service attempts are reset (their clients get
    /// an error), new connections are refused.
    fn outage(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.set_mode(Mode::Down, now);
        self.trigger_starts();
        self.life += 1;
        let dropped: Vec<Attempt> = self
            .in_service
            .drain(..)
            .chain(self.queue.drain(..))
            .collect();
        for attempt in dropped {
            if self.is_current(attempt.call, attempt.number) {
                let key = self.calls[attempt.call as usize]
                    .as_ref()
                    .expect("current")
                    .key;
                self.core.requests.move_to(
                    key,
                    Place::InService {
                        node: self.queue_node,
                        since: now,
                    },
                );
                scheduler.schedule_in(
                    HOP,
                    Event::ErrorResponse {
                        call: attempt.call,
                        number: attempt.number,
                    },
                );
            }
        }
        self.update_queue_gauge(now);
    }

    fn restore(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.set_mode(Mode::Normal, now);
        self.trigger_ends(now);
        self.dispatch(scheduler);
    }

    fn start_burst(&mut self, scheduler: &mut Scheduler<Event>) {
        self.burst = true;
        self.trigger_starts();
        self.arrivals
            .arrivals
            .set_multiplier(BURST_FACTOR)
            .expect("a constant, valid multiplier");
        self.arrivals.rearm(scheduler);
        scheduler.schedule_in(BURST_LENGTH, Event::BurstEnds);
    }

    /// Once a second: rate gauges, goodput window and the recovery check.
    fn tick(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(TICK, Event::Tick);
        self.offered_last = self.second_attempts;
        self.goodput_last = self.second_successes;
        self.core
            .metrics
            .set_gauge(self.gauge_offered, now, self.second_attempts as i64);
        self.core
            .metrics
            .set_gauge(self.gauge_goodput, now, self.second_successes as i64);
        self.recent_successes.push_back(self.second_successes);
        if self.recent_successes.len() > GOODPUT_WINDOW {
            self.recent_successes.pop_front();
        }
        if let Some(ended) = self.trigger_ended {
            let ended_calls = self.second_successes + self.second_failures;
            let window_after_end = now.saturating_since(ended) >= TICK;
            if self.recovered_at.is_none()
                && window_after_end
                && ended_calls > 0
                && self.second_successes as f64 >= RECOVERED_SUCCESS * ended_calls as f64
            {
                self.recovered_at = Some(now);
            }
        }
        self.second_attempts = 0;
        self.second_successes = 0;
        self.second_failures = 0;
    }

    /// Successful calls per second over the last few seconds.
    fn goodput(&self) -> f64 {
        if self.recent_successes.is_empty() {
            return 0.0;
        }
        self.recent_successes.iter().sum::<u64>() as f64 / self.recent_successes.len() as f64
    }

    /// Seconds from the end of the latest trigger to recovery; while not recovered, the
    /// time since the trigger ended (a lower bound); 0 if no trigger has ended.
    fn recovery_seconds(&self, now: SimTime) -> f64 {
        match (self.trigger_ended, self.recovered_at) {
            (Some(ended), Some(recovered)) => recovered.saturating_since(ended).as_secs_f64(),
            (Some(ended), None) => now.saturating_since(ended).as_secs_f64(),
            (None, _) => 0.0,
        }
    }

    fn recovered(&self) -> bool {
        !self.trigger_active && (self.trigger_ended.is_none() || self.recovered_at.is_some())
    }
}

impl Model for RetriesModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtServer { call, number } => self.at_server(call, number, scheduler),
            Event::ServiceDone { call, number, life } => {
                self.service_done(call, number, life, scheduler)
            }
            Event::Response { call, number } => self.response(call, number, scheduler),
            Event::ErrorResponse { call, number } => {
                self.failed_attempt(call, number, Failure::Error, scheduler)
            }
            Event::Timeout { call, number } => {
                if let Some(entry) = self.call_mut(call) {
                    if entry.attempt == number {
                        entry.timer = None;
                    }
                }
                self.failed_attempt(call, number, Failure::Timeout, scheduler)
            }
            Event::RetryNow { call } => {
                self.backing_off = self.backing_off.saturating_sub(1);
                self.send(call, scheduler);
            }
            Event::Tick => self.tick(scheduler),
            Event::SlowdownStarts => {
                if self.mode == Mode::Normal {
                    self.slow_down(now);
                    let length = SimDuration::from_secs_f64(self.params.number("slowdown_length"));
                    scheduler.schedule_in(length, Event::SlowdownEnds { epoch: self.epoch });
                }
            }
            Event::SlowdownEnds { epoch } => {
                if epoch == self.epoch && self.mode == Mode::Slow {
                    self.restore(scheduler);
                }
            }
            Event::BurstEnds => {
                if self.burst {
                    self.burst = false;
                    self.arrivals
                        .arrivals
                        .set_multiplier(1.0)
                        .expect("1 is a valid multiplier");
                    self.arrivals.rearm(scheduler);
                    self.trigger_ends(now);
                }
            }
        }
    }
}

impl LessonModel for RetriesModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.clients));
        snapshot.nodes.push(NodeView {
            queued: self.queue.len() as u32,
            ..plain(self.queue_node)
        });
        snapshot.nodes.push(NodeView {
            state: match self.mode {
                Mode::Normal => NodeState::Healthy,
                Mode::Slow => NodeState::Unhealthy,
                Mode::Down => NodeState::Down,
            },
            busy: self.in_service.len() as u32,
            capacity: if self.mode == Mode::Down {
                0
            } else {
                self.params.integer("concurrency") as u32
            },
            ..plain(self.server_node)
        });
        snapshot.nodes.push(plain(self.done_node));
        snapshot.nodes.push(NodeView {
            queued: self.backing_off,
            ..plain(self.backoff_node)
        });
        // The tokens themselves are charted (`retry_tokens`); busy/capacity would be read as
        // work in progress by the status line.
        snapshot.nodes.push(NodeView {
            state: self.budget_state,
            ..plain(self.budget_node)
        });
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let generated = self.core.metrics.counters().generated;
        vec![
            Figure {
                key: "attempts",
                label: "Attempts sent",
                value: self.attempts as f64,
                unit: "",
            },
            Figure {
                key: "amplification",
                label: "Attempts per call",
                value: if generated == 0 {
                    0.0
                } else {
                    self.attempts as f64 / generated as f64
                },
                unit: "×",
            },
            Figure {
                key: "goodput",
                label: "Goodput (last 5 s)",
                value: self.goodput(),
                unit: "calls/s",
            },
            Figure {
                key: "wasted_work",
                label: "Work for callers who gave up",
                value: self.wasted as f64,
                unit: "",
            },
            Figure {
                key: "double_charges",
                label: "Double charges",
                value: self.double_charges as f64,
                unit: "",
            },
            Figure {
                key: "charged_but_failed",
                label: "Charged, yet told it failed",
                value: self.charged_but_failed as f64,
                unit: "",
            },
            Figure {
                key: "retries_denied",
                label: "Retries refused by the budget",
                value: self.retries_denied as f64,
                unit: "",
            },
            Figure {
                key: "recovered",
                label: "Recovered after the trigger (1 = yes)",
                value: if self.recovered() { 1.0 } else { 0.0 },
                unit: "",
            },
            Figure {
                key: "recovery_s",
                label: "Time to recover (so far, if not yet)",
                value: self.recovery_seconds(now),
                unit: "s",
            },
            Figure {
                key: "contention_calls",
                label: "OCC experiment: write calls (50 clients)",
                value: self.contention.total_calls as f64,
                unit: "",
            },
            Figure {
                key: "contention_succeeded",
                label: "OCC experiment: clients whose write succeeded",
                value: self.contention.succeeded as f64,
                unit: "",
            },
            Figure {
                key: "contention_time",
                label: "OCC experiment: time until all succeed",
                value: self.contention.completion_time.as_secs_f64(),
                unit: "s",
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
                    "slow-server" => {
                        if self.mode != Mode::Normal {
                            return Err(CommandError::NotApplicable {
                                reason: "the server is already slow or down: restore it first"
                                    .into(),
                            });
                        }
                        self.slow_down(now);
                    }
                    "outage" => {
                        if self.mode == Mode::Down {
                            return Err(CommandError::NotApplicable {
                                reason: "the server is already down".into(),
                            });
                        }
                        self.outage(scheduler);
                    }
                    "restore" => {
                        if self.mode == Mode::Normal {
                            return Err(CommandError::NotApplicable {
                                reason: "the server is neither slow nor down".into(),
                            });
                        }
                        self.restore(scheduler);
                    }
                    "traffic-burst" => {
                        if self.burst {
                            return Err(CommandError::NotApplicable {
                                reason: "a burst is already under way".into(),
                            });
                        }
                        self.start_burst(scheduler);
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
                    "strategy" | "backoff_base" | "backoff_cap" => {
                        let strategy_changed = self.backoff.strategy != strategy_of(&self.params);
                        self.backoff = backoff_of(&self.params);
                        if strategy_changed {
                            self.contention = contention_experiment(
                                self.backoff.strategy,
                                CONTENTION_CLIENTS,
                                self.seed,
                            );
                        }
                    }
                    "call_rate" => {
                        self.arrivals.arrivals.set_shape(traffic(&self.params));
                        self.arrivals.rearm(scheduler);
                    }
                    "concurrency" => self.dispatch(scheduler),
                    "retry_budget" | "budget_capacity" => {
                        let capacity = self.params.integer("budget_capacity") as u32;
                        self.tokens = self.tokens.min(capacity);
                        self.update_budget_state(now);
                    }
                    _ => {}
                }
                Ok(())
            }
        }
    }
}
