//! Lesson `event-routing`: an event bus (a broker in the style of Amazon EventBridge)
//! receives events of several types from three producers and routes each one, by rules on
//! its type and content, to the targets that want it; the same system wired with direct
//! point-to-point calls is the comparison (`routing` = broker | direct, same seed, same
//! events). It shows the broker's three faces: the router (each event goes to exactly the
//! targets whose enabled rules match; events no rule matches are discarded and counted),
//! the extra hop (every delivery pays the trip to the bus, its routing time and its
//! internal latency), and the bottleneck (the bus routes at most `bus_limit` events per
//! second; offered more, its backlog grows by (offered − limit) per second, and a full
//! buffer throttles new events). An upload starts a chain — `image.uploaded` →
//! Thumbnailer → `thumbnail.created` → Indexer → `image.indexed` → Notifier — each step
//! publishing the next event through the bus, so the chain pays the bus three times.
//!
//! Semantics (docs/models/event-routing.md has the equations and sources):
//! - Rules follow EventBridge event patterns (Amazon EventBridge User Guide, "Event
//!   patterns", "Content filtering in event patterns"): a rule names a `detail-type` and
//!   optionally a content condition (numeric `>` on the order total, exact match on the
//!   sign-up plan); an event goes to every target of every enabled rule it matches, once
//!   per target; an event that matches no rule is dropped ("unmatched"). Disabling a rule
//!   stops its deliveries silently: no error reaches anyone.
//! - Delivery failures follow EventBridge's retry policy ("Event retry policy and using
//!   dead-letter queues"): a failed delivery is retried with exponential backoff and
//!   jitter (here full jitter, delay = U(0, min(cap, base·2^n)), as in the AWS
//!   Architecture blog "Exponential Backoff and Jitter") until `retry_attempts` retries or
//!   `max_event_age` are used up (EventBridge defaults: 185 and 24 h), then goes to the
//!   target's dead-letter queue (an SQS queue) or, without one, is lost. A delivery counts
//!   as done when the target has processed it; a target that goes down hands back what it
//!   held, which is retried like any failed delivery. Other targets are unaffected.
//! - The bus is one FIFO dispatcher with deterministic routing time 1 / `bus_limit` (an
//!   M/D/1 queue below the limit), a buffer of `bus_buffer` events (PutEvents beyond it is
//!   throttled: the event is rejected and counted, as EventBridge does past its quota),
//!   and a fixed internal latency `bus_latency` per delivery. The broker pattern's costs
//!   (seed text 003, "Broker pattern": added latency, a potential bottleneck) are exactly
//!   these two numbers.
//! - Direct mode: each producer calls its consumers itself over one network hop (it must
//!   know who they are and apply the same conditions in its own code); a call to a down
//!   target fails at once and the event is lost to that consumer (no retry, no DLQ).
//!
//! Requests: every delivery is a request token. An event routed to two targets becomes two
//! requests (the copy is counted as generated, born when the event was published). An
//! upload chain is one request that travels the whole chain and completes at the Notifier,
//! so its latency is the chain's end-to-end latency. Unmatched events are dropped,
//! throttled ones rejected, dead-lettered ones failed, lost ones dropped (broker) or failed
//! (direct call error).

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::histogram::{LatencyHistogram, PRECISE};
use crate::sim::metrics::GaugeId;
use crate::sim::random::SimRng;
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation};
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
    id: "event-routing",
    title: "Event-driven routing and the broker",
    group: LessonGroup::Messaging,
    summary: "An event bus routes events by type and content to the right targets, at the price of an extra hop and a throughput limit.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("routing"),
    sweep: None,
    breaker_node: None,
};

/// Keys of the six targets, in index order (also the `failing_target` options).
pub const TARGET_KEYS: [&str; 6] = [
    "thumbnailer",
    "indexer",
    "notifier",
    "orders",
    "fraud-check",
    "crm",
];
const TARGET_LABELS: [&str; 6] = [
    "Thumbnailer",
    "Indexer",
    "Notifier",
    "Orders",
    "Fraud check",
    "CRM",
];
/// Mean processing time of each target, seconds (log-normal, coefficient of variation
/// [`SERVICE_CV`]).
pub const TARGET_SERVICE: [f64; 6] = [0.2, 0.1, 0.05, 0.1, 0.3, 0.1];
pub const THUMBNAILER: usize = 0;
pub const INDEXER: usize = 1;
pub const NOTIFIER: usize = 2;
pub const ORDERS: usize = 3;
pub const FRAUD_CHECK: usize = 4;
pub const CRM: usize = 5;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "routing",
        label: "Routing",
        unit: "",
        help: "broker: producers publish to an event bus whose rules route each event to its targets; direct: each producer calls its consumers itself (point to point).",
        kind: ParamKind::Choice {
            options: &["broker", "direct"],
            default: "broker",
        },
        liveness: Liveness::Restart,
    },
    number("upload_rate", "Image uploads", "events/s", "image.uploaded events per second (Poisson); each starts a thumbnail → index → notify chain.", (0.0, 200.0, 0.5, 4.0)),
    number("order_rate", "Orders placed", "events/s", "order.placed events per second (Poisson); order totals are exponential with a mean of $60.", (0.0, 200.0, 0.5, 8.0)),
    number("signup_rate", "Sign-ups", "events/s", "user.signed_up events per second (Poisson).", (0.0, 200.0, 0.5, 3.0)),
    number("fraud_threshold", "Fraud-check threshold", "$", "The big-orders rule sends an order to the fraud check when its total is above this amount (a content filter).", (0.0, 1000.0, 5.0, 100.0)),
    number("pro_share", "Pro sign-ups", "", "Share of sign-ups on the pro plan; only those match the CRM rule, the rest match no rule.", (0.0, 1.0, 0.05, 0.3)),
    number("bus_limit", "Bus throughput limit", "events/s", "Most events per second the bus can route (each takes 1/limit of its dispatcher's time); chain events count too.", (1.0, 2000.0, 1.0, 40.0)),
    number("bus_latency", "Bus internal latency", "ms", "Fixed time the bus adds to every delivery after routing it.", (0.0, 2000.0, 5.0, 50.0)),
    integer("bus_buffer", "Bus buffer", "events", "Events the bus holds waiting to be routed; a publish to a full buffer is throttled (rejected).", (1, 100_000, 10_000)),
    integer("target_workers", "Workers per target", "", "Events each target processes at once; more wait in the target's own queue.", (1, 64, 4)),
    integer("retry_attempts", "Retry attempts", "", "Retries of a failed delivery before it is given up (EventBridge default 185).", (0, 185, 185)),
    number("max_event_age", "Maximum event age", "s", "A failed delivery older than this is given up (EventBridge: 60 s to 24 h, default 24 h).", (60.0, 86_400.0, 10.0, 60.0)),
    ParamSpec {
        name: "dlq",
        label: "Dead-letter queue",
        unit: "",
        help: "Given-up deliveries go to a dead-letter queue (kept for inspection and replay) instead of being lost.",
        kind: ParamKind::Toggle { default: true },
        liveness: Liveness::Live,
    },
    ParamSpec {
        name: "failing_target",
        label: "Target to take down",
        unit: "",
        help: "Which target the 'Take a target down' injection stops.",
        kind: ParamKind::Choice {
            options: &TARGET_KEYS,
            default: "indexer",
        },
        liveness: Liveness::Live,
    },
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "target-down",
        label: "Take a target down",
        help: "The target chosen in 'Target to take down' stops; deliveries to it fail (and are retried through the broker).",
    },
    InjectionSpec {
        id: "target-up",
        label: "Bring targets back",
        help: "Every target that is down comes back.",
    },
    InjectionSpec {
        id: "burst",
        label: "Burst (×4, 20 s)",
        help: "Every producer publishes four times as fast for 20 seconds.",
    },
    InjectionSpec {
        id: "disable-rule",
        label: "Disable the big-orders rule",
        help: "The fraud-check rule stops matching; big orders still reach Orders.",
    },
    InjectionSpec {
        id: "enable-rule",
        label: "Enable the big-orders rule",
        help: "The fraud-check rule matches again.",
    },
];

/// One network hop (producer to bus, bus to target, producer to consumer).
pub const HOP: SimDuration = SimDuration::from_millis(10);
/// Spread of target processing times.
pub const SERVICE_CV: f64 = 0.5;
/// Mean order total, dollars (totals are exponential).
pub const MEAN_ORDER_TOTAL: f64 = 60.0;
/// Retry backoff: full jitter over min(cap, base·2^n).
pub const RETRY_BASE: f64 = 1.0;
pub const RETRY_CAP: f64 = 30.0;
pub const BURST_FACTOR: f64 = 4.0;
pub const BURST_LENGTH: SimDuration = SimDuration::from_secs(20);
/// Random streams whose draws tests reproduce: the k-th order's total and the k-th
/// sign-up's plan.
pub const ORDER_TOTALS_STREAM: &str = "order-totals";
pub const SIGNUP_PLANS_STREAM: &str = "signup-plans";

/// EventBridge's `detail-type` of the events in this system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    ImageUploaded,
    ThumbnailCreated,
    ImageIndexed,
    OrderPlaced,
    UserSignedUp,
}

/// An event as rules see it: its type and the content fields rules filter on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BusEvent {
    pub kind: EventType,
    /// Order total in dollars (orders only).
    pub total: f64,
    /// Sign-up on the pro plan (sign-ups only).
    pub pro: bool,
}

/// A rule's content condition besides its event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Any,
    /// `"total": [{"numeric": [">", threshold]}]`
    TotalAbove,
    /// `"plan": ["pro"]`
    PlanIsPro,
}

/// One routing rule: event type + condition → target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub kind: EventType,
    pub condition: Condition,
    pub target: usize,
}

impl Rule {
    /// Whether the rule's pattern matches `event` (`threshold` is the big-orders amount).
    pub fn matches(&self, event: &BusEvent, threshold: f64) -> bool {
        self.kind == event.kind
            && match self.condition {
                Condition::Any => true,
                Condition::TotalAbove => event.total > threshold,
                Condition::PlanIsPro => event.pro,
            }
    }
}

/// The bus's rules, in evaluation order.
pub const RULES: [Rule; 6] = [
    Rule {
        name: "uploads",
        kind: EventType::ImageUploaded,
        condition: Condition::Any,
        target: THUMBNAILER,
    },
    Rule {
        name: "thumbnails",
        kind: EventType::ThumbnailCreated,
        condition: Condition::Any,
        target: INDEXER,
    },
    Rule {
        name: "indexed",
        kind: EventType::ImageIndexed,
        condition: Condition::Any,
        target: NOTIFIER,
    },
    Rule {
        name: "orders",
        kind: EventType::OrderPlaced,
        condition: Condition::Any,
        target: ORDERS,
    },
    Rule {
        name: "big-orders",
        kind: EventType::OrderPlaced,
        condition: Condition::TotalAbove,
        target: FRAUD_CHECK,
    },
    Rule {
        name: "pro-signups",
        kind: EventType::UserSignedUp,
        condition: Condition::PlanIsPro,
        target: CRM,
    },
];
/// Index of the rule the disable/enable injections act on.
pub const BIG_ORDERS_RULE: usize = 4;

/// The targets `event` goes to: those of every enabled rule that matches, each once, in
/// target order.
pub fn route(event: &BusEvent, threshold: f64, enabled: &[bool; 6]) -> [bool; 6] {
    let mut targets = [false; 6];
    for (rule, on) in RULES.iter().zip(enabled) {
        if *on && rule.matches(event, threshold) {
            targets[rule.target] = true;
        }
    }
    targets
}

/// An order's total: exponential with mean [`MEAN_ORDER_TOTAL`] (one draw).
pub fn order_total(rng: &mut SimRng) -> f64 {
    rng.exponential(1.0 / MEAN_ORDER_TOTAL)
}

/// The three producers: node key, label, the event type they publish, their rate param.
const SOURCES: [(&str, &str, EventType, &str); 3] = [
    (
        "uploads",
        "Uploads",
        EventType::ImageUploaded,
        "upload_rate",
    ),
    ("shop", "Shop", EventType::OrderPlaced, "order_rate"),
    (
        "signups",
        "Sign-ups",
        EventType::UserSignedUp,
        "signup_rate",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Broker,
    Direct,
}

/// Events of the model. In-flight events are named by slab slot and serial, so an event
/// for one that has ended (and whose slot was reused) is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Publish {
        source: u8,
    },
    /// The event reaches the bus's intake.
    AtBus {
        slot: u32,
        serial: u32,
    },
    /// The dispatcher has routed the event it was working on.
    Routed {
        slot: u32,
        serial: u32,
    },
    /// The event reaches a target.
    AtTarget {
        slot: u32,
        serial: u32,
    },
    /// A target finished processing (ignored if the target went down meanwhile).
    ServiceDone {
        target: u8,
        life: u32,
        slot: u32,
        serial: u32,
    },
    /// A failed delivery's backoff is over.
    Retry {
        slot: u32,
        serial: u32,
    },
    /// An unmatched event reaches the discard sink.
    Discarded {
        slot: u32,
        serial: u32,
    },
    BurstEnds,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Moving,
    AtTarget { target: usize },
}

#[derive(Clone, Debug)]
struct InFlight {
    serial: u32,
    key: RequestKey,
    event: BusEvent,
    /// When this event (this step of a chain) was published.
    emitted: SimTime,
    /// Delivery target once routed.
    target: usize,
    retries: u32,
    stage: Stage,
    /// Fixed latencies paid so far: hops, routing times, bus latency (chain check).
    fixed: SimDuration,
    /// Processing times so far (chain check).
    service: SimDuration,
}

struct Target {
    node: NodeId,
    /// Where deliveries arrive from: bus → target (broker) or caller → target (direct).
    edge_in: EdgeId,
    /// Chain steps: target → bus intake (broker only).
    edge_emit: Option<EdgeId>,
    down: bool,
    life: u32,
    busy: u32,
    queue: VecDeque<(u32, u32)>,
    rng: SimRng,
}

/// Figures of the chain check: every completed chain's latency is at least its fixed
/// latencies plus its processing times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainCheck {
    pub completed: u64,
    /// Smallest latency − (fixed + processing) over completed chains, seconds.
    pub min_slack: f64,
    /// Smallest and largest sum of fixed latencies over completed chains, seconds.
    pub fixed_min: f64,
    pub fixed_max: f64,
}

pub struct EventRoutingModel {
    params: ParamValues,
    mode: Mode,
    topology: Topology,
    sources: [NodeId; 3],
    source_edges: [Option<EdgeId>; 3],
    backlog_node: Option<NodeId>,
    bus_node: Option<NodeId>,
    retry_node: Option<NodeId>,
    dlq_node: Option<NodeId>,
    discard_node: Option<NodeId>,
    edge_discard: Option<EdgeId>,
    targets: Vec<Target>,
    events: Slab<InFlight>,
    next_serial: u32,
    backlog: VecDeque<(u32, u32)>,
    routing: Option<(u32, u32)>,
    bus_state: NodeState,
    enabled: [bool; 6],
    arrivals: [ArrivalTimer<Event>; 3],
    totals_rng: SimRng,
    plans_rng: SimRng,
    retry_rng: SimRng,
    bursting: bool,
    // Counts.
    published: [u64; 3],
    routed: [u64; 6],
    processed: [u64; 6],
    unmatched: u64,
    throttled: u64,
    retries: u64,
    retrying: u64,
    dead_letters: u64,
    lost: u64,
    unchecked_big_orders: u64,
    backlog_peak: u64,
    chains: u64,
    chain_latency: LatencyHistogram,
    added_latency: LatencyHistogram,
    min_slack: Option<i128>,
    fixed_range: Option<(SimDuration, SimDuration)>,
    core: ModelCore,
    gauge_backlog: GaugeId,
    gauge_retrying: GaugeId,
    gauge_dlq: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

const TARGET_X: f32 = 0.9;

fn target_y(index: usize) -> f32 {
    index as f32 * 0.2
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<EventRoutingModel> {
    let mode = if params.choice("routing") == "direct" {
        Mode::Direct
    } else {
        Mode::Broker
    };
    let mut topology = Topology::default();
    let source_y = [0.1, 0.5, 0.9];
    let sources = [0, 1, 2].map(|index| {
        let (key, label, _, _) = SOURCES[index];
        topology.add_node(key, label, NodeKind::Source, 0.0, source_y[index])
    });
    let target_nodes: Vec<NodeId> = (0..6)
        .map(|index| {
            topology.add_node(
                TARGET_KEYS[index],
                TARGET_LABELS[index],
                NodeKind::Server,
                TARGET_X,
                target_y(index),
            )
        })
        .collect();
    let mut source_edges = [None; 3];
    let mut edge_in = Vec::with_capacity(6);
    let mut edge_emit = [None; 6];
    let (mut backlog_node, mut bus_node, mut retry_node, mut dlq_node, mut discard_node) =
        (None, None, None, None, None);
    let mut edge_discard = None;
    match mode {
        Mode::Broker => {
            let backlog =
                topology.add_node("bus-backlog", "Bus backlog", NodeKind::Queue, 0.22, 0.5);
            let bus = topology.add_node("event-bus", "Event bus", NodeKind::Router, 0.47, 0.5);
            let discard =
                topology.add_node("unmatched", "No rule matched", NodeKind::Sink, 0.47, 0.1);
            let retry = topology.add_node("retrying", "Retrying", NodeKind::Queue, 0.3, 0.8);
            let dlq = topology.add_node("dlq", "Dead letters", NodeKind::Queue, 0.6, 0.92);
            for (index, source) in sources.iter().enumerate() {
                source_edges[index] = Some(topology.add_edge(*source, backlog));
            }
            topology.add_edge(backlog, bus);
            edge_discard = Some(topology.add_edge(bus, discard));
            topology.add_edge(bus, retry);
            topology.add_edge(bus, dlq);
            for node in &target_nodes {
                edge_in.push(topology.add_edge(bus, *node));
            }
            for step in [THUMBNAILER, INDEXER] {
                edge_emit[step] = Some(topology.add_edge(target_nodes[step], backlog));
            }
            (backlog_node, bus_node, retry_node, dlq_node, discard_node) = (
                Some(backlog),
                Some(bus),
                Some(retry),
                Some(dlq),
                Some(discard),
            );
        }
        Mode::Direct => {
            // Each target has exactly one caller.
            let callers = [
                sources[0],
                target_nodes[THUMBNAILER],
                target_nodes[INDEXER],
                sources[1],
                sources[1],
                sources[2],
            ];
            for (caller, node) in callers.iter().zip(&target_nodes) {
                edge_in.push(topology.add_edge(*caller, *node));
            }
        }
    }
    let targets = (0..6)
        .map(|index| Target {
            node: target_nodes[index],
            edge_in: edge_in[index],
            edge_emit: edge_emit[index],
            down: false,
            life: 0,
            busy: 0,
            queue: VecDeque::new(),
            rng: SimRng::new(seed.0, &format!("service-{}", TARGET_KEYS[index])),
        })
        .collect();
    let core = ModelCore::new(vec!["bus_backlog", "retrying", "dead_letters"]);
    let arrival = |index: usize| {
        let (key, _, _, rate) = SOURCES[index];
        ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number(rate)),
                SimRng::new(seed.0, &format!("arrivals-{key}")),
            ),
            Event::Publish {
                source: index as u8,
            },
        )
    };
    let mut model = EventRoutingModel {
        params: params.clone(),
        mode,
        topology,
        sources,
        source_edges,
        backlog_node,
        bus_node,
        retry_node,
        dlq_node,
        discard_node,
        edge_discard,
        targets,
        events: Slab::new(),
        next_serial: 0,
        backlog: VecDeque::new(),
        routing: None,
        bus_state: NodeState::Healthy,
        enabled: [true; 6],
        arrivals: [arrival(0), arrival(1), arrival(2)],
        totals_rng: SimRng::new(seed.0, ORDER_TOTALS_STREAM),
        plans_rng: SimRng::new(seed.0, SIGNUP_PLANS_STREAM),
        retry_rng: SimRng::new(seed.0, "retry-jitter"),
        bursting: false,
        published: [0; 3],
        routed: [0; 6],
        processed: [0; 6],
        unmatched: 0,
        throttled: 0,
        retries: 0,
        retrying: 0,
        dead_letters: 0,
        lost: 0,
        unchecked_big_orders: 0,
        backlog_peak: 0,
        chains: 0,
        chain_latency: LatencyHistogram::new(PRECISE),
        added_latency: LatencyHistogram::new(PRECISE),
        min_slack: None,
        fixed_range: None,
        gauge_backlog: core.gauge("bus_backlog"),
        gauge_retrying: core.gauge("retrying"),
        gauge_dlq: core.gauge("dead_letters"),
        core,
    };
    let mut scheduler = Scheduler::new();
    for timer in &mut model.arrivals {
        timer.rearm(&mut scheduler);
    }
    Simulation::new(model, scheduler)
}

impl EventRoutingModel {
    fn live(&self, slot: u32, serial: u32) -> bool {
        self.events
            .get(slot as usize)
            .is_some_and(|event| event.serial == serial)
    }

    fn routing_time(&self) -> SimDuration {
        SimDuration::from_secs_f64(1.0 / self.params.number("bus_limit"))
    }

    fn bus_latency(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("bus_latency") / 1000.0)
    }

    fn insert(&mut self, key: RequestKey, event: BusEvent, now: SimTime) -> (u32, u32) {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let slot = self.events.insert(InFlight {
            serial,
            key,
            event,
            emitted: now,
            target: 0,
            retries: 0,
            stage: Stage::Moving,
            fixed: SimDuration::ZERO,
            service: SimDuration::ZERO,
        }) as u32;
        (slot, serial)
    }

    /// Moves an in-flight event along `edge` for `travel`, then schedules `then`.
    fn travel(
        &mut self,
        slot: u32,
        edge: EdgeId,
        travel: SimDuration,
        then: Event,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        let event = &mut self.events[slot as usize];
        event.stage = Stage::Moving;
        event.fixed = event.fixed + travel;
        let key = event.key;
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + travel,
            },
        );
        scheduler.schedule_in(travel, then);
    }

    fn publish(&mut self, source: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        self.published[source] += 1;
        let kind = SOURCES[source].2;
        let event = BusEvent {
            kind,
            total: if kind == EventType::OrderPlaced {
                order_total(&mut self.totals_rng)
            } else {
                0.0
            },
            pro: kind == EventType::UserSignedUp
                && self.plans_rng.chance(self.params.number("pro_share")),
        };
        match self.mode {
            Mode::Broker => {
                let edge = self.source_edges[source].expect("broker topology");
                let key = self.core.requests.spawn(
                    now,
                    Place::OnEdge {
                        edge,
                        depart: now,
                        arrive: now + HOP,
                    },
                );
                let (slot, serial) = self.insert(key, event, now);
                self.travel(slot, edge, HOP, Event::AtBus { slot, serial }, scheduler);
            }
            Mode::Direct => {
                let targets = route(&event, self.threshold(), &[true; 6]);
                if !targets.contains(&true) {
                    // Nobody consumes it: the producer sends it nowhere.
                    self.unmatched += 1;
                    self.core.metrics.dropped(now);
                    return;
                }
                let mut first = true;
                for target in (0..6).filter(|&t| targets[t]) {
                    if !first {
                        self.core.metrics.generated(now);
                    }
                    first = false;
                    let edge = self.targets[target].edge_in;
                    let key = self.core.requests.spawn(
                        now,
                        Place::OnEdge {
                            edge,
                            depart: now,
                            arrive: now + HOP,
                        },
                    );
                    let (slot, _) = self.insert(key, event, now);
                    self.send(slot, target, HOP, scheduler);
                }
            }
        }
    }

    fn threshold(&self) -> f64 {
        self.params.number("fraud_threshold")
    }

    /// Sends an in-flight event to `target` over its incoming edge (`travel` long).
    fn send(
        &mut self,
        slot: u32,
        target: usize,
        travel: SimDuration,
        sched: &mut Scheduler<Event>,
    ) {
        let event = &mut self.events[slot as usize];
        event.target = target;
        let serial = event.serial;
        if event.retries == 0 {
            self.routed[target] += 1;
        }
        let edge = self.targets[target].edge_in;
        self.travel(slot, edge, travel, Event::AtTarget { slot, serial }, sched);
    }

    /// An event reaches the bus intake: buffered, or throttled if the buffer is full.
    fn at_bus(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if !self.live(slot, serial) {
            return;
        }
        if self.backlog.len() >= self.params.integer("bus_buffer") as usize {
            let event = self.events.remove(slot as usize);
            self.core.requests.finish(event.key);
            self.core.metrics.rejected(now);
            self.throttled += 1;
            return;
        }
        let key = self.events[slot as usize].key;
        let node = self.backlog_node.expect("broker topology");
        self.core
            .requests
            .move_to(key, Place::Queued { node, since: now });
        self.backlog.push_back((slot, serial));
        self.backlog_peak = self.backlog_peak.max(self.backlog.len() as u64);
        self.backlog_changed(now);
        self.dispatch(scheduler);
    }

    fn backlog_changed(&mut self, now: SimTime) {
        let depth = self.backlog.len();
        self.core
            .metrics
            .set_gauge(self.gauge_backlog, now, depth as i64);
        // Unhealthy while an event would wait a second or more to be routed; healthy
        // again below a tenth of that (hysteresis keeps the marker from flickering).
        let seconds_of_work = depth as f64 / self.params.number("bus_limit");
        let next = match self.bus_state {
            NodeState::Healthy if seconds_of_work >= 1.0 => NodeState::Unhealthy,
            NodeState::Unhealthy if seconds_of_work < 0.1 => NodeState::Healthy,
            state => state,
        };
        if next != self.bus_state {
            self.bus_state = next;
            let node = self.bus_node.expect("broker topology");
            self.core
                .log
                .push(now, Notable::StateChanged { node, to: next });
        }
    }

    /// Starts routing the oldest buffered event if the dispatcher is free.
    fn dispatch(&mut self, scheduler: &mut Scheduler<Event>) {
        if self.routing.is_some() {
            return;
        }
        let now = scheduler.now();
        while let Some((slot, serial)) = self.backlog.pop_front() {
            if !self.live(slot, serial) {
                continue;
            }
            let key = self.events[slot as usize].key;
            if let Place::Queued { since, .. } = self.core.requests.get(key).place {
                self.core.metrics.waited(now - since);
            }
            let node = self.bus_node.expect("broker topology");
            self.core
                .requests
                .move_to(key, Place::InService { node, since: now });
            let routing = self.routing_time();
            let event = &mut self.events[slot as usize];
            event.fixed = event.fixed + routing;
            self.routing = Some((slot, serial));
            scheduler.schedule_in(routing, Event::Routed { slot, serial });
            break;
        }
        self.backlog_changed(now);
    }

    /// The dispatcher applies the rules to the event it routed.
    fn finish_routing(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.routing = None;
        if self.live(slot, serial) {
            let event = self.events[slot as usize].clone();
            let targets = route(&event.event, self.threshold(), &self.enabled);
            if event.event.kind == EventType::OrderPlaced
                && !self.enabled[BIG_ORDERS_RULE]
                && RULES[BIG_ORDERS_RULE].matches(&event.event, self.threshold())
            {
                self.unchecked_big_orders += 1;
            }
            let travel = HOP + self.bus_latency();
            let mut first = true;
            for target in (0..6).filter(|&t| targets[t]) {
                let copy = if first {
                    slot
                } else {
                    // A fan-out copy: its own delivery, born when the event was published.
                    self.core.metrics.generated(now);
                    let born = self.core.requests.get(event.key).born;
                    let key = self.core.requests.spawn(
                        born,
                        Place::InService {
                            node: self.bus_node.expect("broker topology"),
                            since: now,
                        },
                    );
                    let (copy, _) = self.insert(key, event.event, event.emitted);
                    let entry = &mut self.events[copy as usize];
                    entry.fixed = event.fixed;
                    entry.service = event.service;
                    copy
                };
                first = false;
                self.send(copy, target, travel, scheduler);
            }
            if first {
                self.unmatched += 1;
                let edge = self.edge_discard.expect("broker topology");
                self.travel(
                    slot,
                    edge,
                    HOP,
                    Event::Discarded { slot, serial },
                    scheduler,
                );
            }
        }
        self.dispatch(scheduler);
    }

    fn at_target(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if !self.live(slot, serial) {
            return;
        }
        let event = &self.events[slot as usize];
        let target = event.target;
        if event.retries == 0 {
            // Publish-to-target time of a first attempt; a direct call's is one hop.
            let transit = now - event.emitted;
            self.added_latency.record(SimDuration::from_ticks(
                transit.ticks().saturating_sub(HOP.ticks()),
            ));
        }
        if self.targets[target].down {
            self.delivery_failed(slot, scheduler);
            return;
        }
        let key = event.key;
        let node = self.targets[target].node;
        self.events[slot as usize].stage = Stage::AtTarget { target };
        self.core
            .requests
            .move_to(key, Place::Queued { node, since: now });
        self.targets[target].queue.push_back((slot, serial));
        self.start_work(target, scheduler);
    }

    fn start_work(&mut self, target: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let workers = self.params.integer("target_workers") as u32;
        while self.targets[target].busy < workers {
            let Some((slot, serial)) = self.targets[target].queue.pop_front() else {
                return;
            };
            if !self.live(slot, serial) {
                continue;
            }
            let state = &mut self.targets[target];
            state.busy += 1;
            let mean = TARGET_SERVICE[target];
            let duration =
                SimDuration::from_secs_f64(state.rng.lognormal_mean_cv(mean, SERVICE_CV));
            let (node, life) = (state.node, state.life);
            let event = &mut self.events[slot as usize];
            event.service = event.service + duration;
            let key = event.key;
            if let Place::Queued { since, .. } = self.core.requests.get(key).place {
                self.core.metrics.waited(now - since);
            }
            self.core
                .requests
                .move_to(key, Place::InService { node, since: now });
            scheduler.schedule_in(
                duration,
                Event::ServiceDone {
                    target: target as u8,
                    life,
                    slot,
                    serial,
                },
            );
        }
    }

    fn service_done(
        &mut self,
        target: usize,
        life: u32,
        slot: u32,
        serial: u32,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        if self.targets[target].life != life || !self.live(slot, serial) {
            return; // the target went down meanwhile and handed the event back
        }
        self.targets[target].busy -= 1;
        self.processed[target] += 1;
        let next = match target {
            THUMBNAILER => Some(EventType::ThumbnailCreated),
            INDEXER => Some(EventType::ImageIndexed),
            _ => None,
        };
        match next {
            Some(kind) => {
                // The step publishes the chain's next event (the same request travels on).
                let event = &mut self.events[slot as usize];
                event.event.kind = kind;
                event.emitted = now;
                event.retries = 0;
                match self.mode {
                    Mode::Broker => {
                        let edge = self.targets[target].edge_emit.expect("chain step");
                        self.travel(slot, edge, HOP, Event::AtBus { slot, serial }, scheduler);
                    }
                    Mode::Direct => self.send(slot, target + 1, HOP, scheduler),
                }
            }
            None => {
                let event = self.events.remove(slot as usize);
                let request = self.core.requests.finish(event.key);
                let latency = now - request.born;
                self.core.metrics.completed(now, latency);
                if target == NOTIFIER {
                    self.chain_completed(latency, &event);
                }
            }
        }
        self.start_work(target, scheduler);
    }

    fn chain_completed(&mut self, latency: SimDuration, event: &InFlight) {
        self.chains += 1;
        self.chain_latency.record(latency);
        let slack = latency.ticks() as i128 - (event.fixed + event.service).ticks() as i128;
        self.min_slack = Some(self.min_slack.map_or(slack, |min| min.min(slack)));
        self.fixed_range = Some(match self.fixed_range {
            None => (event.fixed, event.fixed),
            Some((low, high)) => (low.min(event.fixed), high.max(event.fixed)),
        });
    }

    /// A delivery failed (target down): retry with backoff through the broker, or, for a
    /// direct call, the caller gets the error and the event is lost to that consumer.
    fn delivery_failed(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.mode == Mode::Direct {
            let event = self.events.remove(slot as usize);
            self.core.requests.finish(event.key);
            self.core.metrics.failed(now);
            self.lost += 1;
            return;
        }
        let max_retries = self.params.integer("retry_attempts") as u32;
        let max_age = SimDuration::from_secs_f64(self.params.number("max_event_age"));
        let event = &self.events[slot as usize];
        if event.retries >= max_retries || now - event.emitted >= max_age {
            self.give_up(slot, now);
            return;
        }
        let ceiling = (RETRY_BASE * 2f64.powi(event.retries.min(30) as i32)).min(RETRY_CAP);
        let delay = SimDuration::from_secs_f64(self.retry_rng.uniform(0.0, ceiling));
        let event = &mut self.events[slot as usize];
        event.retries += 1;
        event.stage = Stage::Moving;
        let (key, serial) = (event.key, event.serial);
        self.core.requests.next_attempt(key);
        let node = self.retry_node.expect("broker topology");
        self.core
            .requests
            .move_to(key, Place::Queued { node, since: now });
        self.retries += 1;
        self.retrying += 1;
        self.core
            .metrics
            .set_gauge(self.gauge_retrying, now, self.retrying as i64);
        scheduler.schedule_in(delay, Event::Retry { slot, serial });
    }

    fn retry(&mut self, slot: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if !self.live(slot, serial) {
            return;
        }
        self.retrying -= 1;
        self.core
            .metrics
            .set_gauge(self.gauge_retrying, now, self.retrying as i64);
        let max_age = SimDuration::from_secs_f64(self.params.number("max_event_age"));
        let event = &self.events[slot as usize];
        if now - event.emitted >= max_age {
            self.give_up(slot, now);
            return;
        }
        let target = event.target;
        self.send(slot, target, HOP, scheduler);
    }

    /// Retries are used up: to the dead-letter queue, or lost.
    fn give_up(&mut self, slot: u32, now: SimTime) {
        let event = self.events.remove(slot as usize);
        self.core.requests.finish(event.key);
        if self.params.toggle("dlq") {
            self.core.metrics.failed(now);
            self.dead_letters += 1;
            self.core
                .metrics
                .set_gauge(self.gauge_dlq, now, self.dead_letters as i64);
        } else {
            self.core.metrics.dropped(now);
            self.lost += 1;
        }
    }

    fn discarded(&mut self, slot: u32, serial: u32, now: SimTime) {
        if !self.live(slot, serial) {
            return;
        }
        let event = self.events.remove(slot as usize);
        self.core.requests.finish(event.key);
        self.core.metrics.dropped(now);
    }

    /// What the view shows for a target: down, off (its only rule disabled), or healthy.
    fn target_state(&self, target: usize) -> NodeState {
        if self.targets[target].down {
            NodeState::Down
        } else if RULES
            .iter()
            .zip(&self.enabled)
            .any(|(rule, on)| rule.target == target && !on)
        {
            NodeState::Off
        } else {
            NodeState::Healthy
        }
    }

    /// Applies `change` to the model and logs the target's new state if it changed.
    fn change_target(&mut self, target: usize, now: SimTime, change: impl FnOnce(&mut Self)) {
        let before = self.target_state(target);
        change(self);
        let after = self.target_state(target);
        if after != before {
            let node = self.targets[target].node;
            self.core
                .log
                .push(now, Notable::StateChanged { node, to: after });
        }
    }

    fn take_down(&mut self, target: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.change_target(target, now, |model| {
            let state = &mut model.targets[target];
            state.down = true;
            state.life += 1;
            state.busy = 0;
            state.queue.clear();
        });
        // Everything it held, queued or in service, was never acknowledged.
        let held: Vec<u32> = self
            .events
            .iter()
            .filter(|(_, event)| event.stage == Stage::AtTarget { target })
            .map(|(slot, _)| slot as u32)
            .collect();
        for slot in held {
            self.events[slot as usize].stage = Stage::Moving;
            self.delivery_failed(slot, scheduler);
        }
    }

    fn set_bursting(&mut self, on: bool, scheduler: &mut Scheduler<Event>) {
        self.bursting = on;
        let factor = if on { BURST_FACTOR } else { 1.0 };
        for timer in &mut self.arrivals {
            timer
                .arrivals
                .set_multiplier(factor)
                .expect("a constant, valid multiplier");
            timer.rearm(scheduler);
        }
    }

    fn inject(&mut self, id: &str, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let not = |reason: &str| -> Result<(), CommandError> {
            Err(CommandError::NotApplicable {
                reason: reason.to_owned(),
            })
        };
        let failing = TARGET_KEYS
            .iter()
            .position(|key| *key == self.params.choice("failing_target"))
            .unwrap_or(INDEXER);
        // Check first, so the log reads "injected" before the change it causes.
        match id {
            "target-down" if self.targets[failing].down => {
                return not(&format!("{} is already down", TARGET_LABELS[failing]))
            }
            "target-up" if !self.targets.iter().any(|t| t.down) => {
                return not("every target is up")
            }
            "burst" if self.bursting => return not("a burst is already under way"),
            "disable-rule" | "enable-rule" if self.mode == Mode::Direct => {
                return not(
                    "direct calls have no broker rules: the shop's own code decides whom to call",
                )
            }
            "disable-rule" if !self.enabled[BIG_ORDERS_RULE] => {
                return not("the big-orders rule is already disabled")
            }
            "enable-rule" if self.enabled[BIG_ORDERS_RULE] => {
                return not("the big-orders rule is already enabled")
            }
            "target-down" | "target-up" | "burst" | "disable-rule" | "enable-rule" => {}
            _ => return Err(unknown_injection(id, INJECTIONS)),
        }
        self.core.log.push(
            now,
            Notable::Injected {
                injection: id.to_owned(),
            },
        );
        match id {
            "target-down" => self.take_down(failing, scheduler),
            "target-up" => {
                for target in 0..6 {
                    if self.targets[target].down {
                        self.change_target(target, now, |model| model.targets[target].down = false);
                    }
                }
            }
            "burst" => {
                self.set_bursting(true, scheduler);
                scheduler.schedule_in(BURST_LENGTH, Event::BurstEnds);
            }
            _ => {
                let on = id == "enable-rule";
                self.change_target(RULES[BIG_ORDERS_RULE].target, now, |model| {
                    model.enabled[BIG_ORDERS_RULE] = on
                });
            }
        }
        Ok(())
    }

    /// Events published by each producer (uploads, shop, sign-ups).
    pub fn published(&self) -> [u64; 3] {
        self.published
    }

    /// First delivery attempts sent to each target (by the bus or by a direct caller).
    pub fn routed(&self) -> [u64; 6] {
        self.routed
    }

    /// Events each target finished processing.
    pub fn processed(&self) -> [u64; 6] {
        self.processed
    }

    pub fn chain_check(&self) -> ChainCheck {
        let secs = |d: SimDuration| d.as_secs_f64();
        let (low, high) = self
            .fixed_range
            .unwrap_or((SimDuration::ZERO, SimDuration::ZERO));
        ChainCheck {
            completed: self.chains,
            min_slack: self.min_slack.unwrap_or(0) as f64 / 1e6,
            fixed_min: secs(low),
            fixed_max: secs(high),
        }
    }

    /// Events waiting in the bus buffer now.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }
}

impl Model for EventRoutingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Publish { source } => {
                let source = source as usize;
                self.arrivals[source].fired();
                self.publish(source, scheduler);
                self.arrivals[source].rearm(scheduler);
            }
            Event::AtBus { slot, serial } => self.at_bus(slot, serial, scheduler),
            Event::Routed { slot, serial } => self.finish_routing(slot, serial, scheduler),
            Event::AtTarget { slot, serial } => self.at_target(slot, serial, scheduler),
            Event::ServiceDone {
                target,
                life,
                slot,
                serial,
            } => self.service_done(target as usize, life, slot, serial, scheduler),
            Event::Retry { slot, serial } => self.retry(slot, serial, scheduler),
            Event::Discarded { slot, serial } => self.discarded(slot, serial, scheduler.now()),
            Event::BurstEnds => self.set_bursting(false, scheduler),
        }
    }
}

impl LessonModel for EventRoutingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        for source in self.sources {
            snapshot.nodes.push(plain(source));
        }
        let workers = self.params.integer("target_workers") as u32;
        for (index, target) in self.targets.iter().enumerate() {
            snapshot.nodes.push(NodeView {
                node: target.node,
                state: self.target_state(index),
                busy: target.busy,
                capacity: if target.down { 0 } else { workers },
                queued: target.queue.len() as u32,
            });
        }
        let count = |n: u64| n.min(u32::MAX as u64) as u32;
        if let (Some(backlog), Some(bus), Some(retry), Some(dlq), Some(discard)) = (
            self.backlog_node,
            self.bus_node,
            self.retry_node,
            self.dlq_node,
            self.discard_node,
        ) {
            snapshot.nodes.push(NodeView {
                queued: self.backlog.len() as u32,
                ..plain(backlog)
            });
            snapshot.nodes.push(NodeView {
                node: bus,
                state: self.bus_state,
                busy: self.routing.is_some() as u32,
                capacity: 1,
                queued: self.backlog.len() as u32,
            });
            snapshot.nodes.push(plain(discard));
            snapshot.nodes.push(NodeView {
                queued: count(self.retrying),
                ..plain(retry)
            });
            snapshot.nodes.push(NodeView {
                queued: count(self.dead_letters),
                ..plain(dlq)
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, _now: SimTime) -> Vec<Figure> {
        const ROUTED: [(&str, &str); 6] = [
            ("routed_thumbnailer", "Routed to Thumbnailer"),
            ("routed_indexer", "Routed to Indexer"),
            ("routed_notifier", "Routed to Notifier"),
            ("routed_orders", "Routed to Orders"),
            ("routed_fraud_check", "Routed to Fraud check"),
            ("routed_crm", "Routed to CRM"),
        ];
        let figure = |key, label, value: f64, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        let ms = |histogram: &LatencyHistogram, q| histogram.quantile_secs(q) * 1000.0;
        // Most important first: the side-by-side comparison shows the first four.
        let mut figures = vec![
            figure(
                "hop_added_p50_ms",
                "Broker hop adds (p50)",
                ms(&self.added_latency, 0.5),
                "ms",
            ),
            figure(
                "chain_p99",
                "Chain end-to-end p99",
                self.chain_latency.quantile_secs(0.99),
                "s",
            ),
            figure(
                "bus_backlog_peak",
                "Bus backlog peak",
                self.backlog_peak as f64,
                "",
            ),
            figure("events_lost", "Deliveries lost", self.lost as f64, ""),
            figure("dead_letters", "Dead letters", self.dead_letters as f64, ""),
            figure(
                "chain_p50",
                "Chain end-to-end p50",
                self.chain_latency.quantile_secs(0.5),
                "s",
            ),
            figure(
                "hop_added_p99_ms",
                "Broker hop adds (p99)",
                ms(&self.added_latency, 0.99),
                "ms",
            ),
            figure(
                "bus_backlog",
                "Bus backlog now",
                self.backlog.len() as f64,
                "",
            ),
            figure(
                "throttled",
                "Throttled by the bus",
                self.throttled as f64,
                "",
            ),
            figure("retries", "Delivery retries", self.retries as f64, ""),
            figure("unmatched", "Unmatched events", self.unmatched as f64, ""),
            figure(
                "big_orders_unchecked",
                "Big orders not fraud-checked",
                self.unchecked_big_orders as f64,
                "",
            ),
            figure(
                "chains_completed",
                "Upload chains completed",
                self.chains as f64,
                "",
            ),
        ];
        figures.extend(
            ROUTED
                .iter()
                .zip(self.routed)
                .map(|(&(key, label), count)| figure(key, label, count as f64, "")),
        );
        figures
    }

    fn apply(
        &mut self,
        command: &LessonCommand,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        let now = scheduler.now();
        match command {
            LessonCommand::Inject(id) => self.inject(id, scheduler),
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                if let Some(source) = SOURCES.iter().position(|s| s.3 == spec.name) {
                    let rate = self.params.number(spec.name);
                    self.arrivals[source].arrivals.set_shape(steady(rate));
                    self.arrivals[source].rearm(scheduler);
                } else if spec.name == "target_workers" {
                    for target in 0..6 {
                        self.start_work(target, scheduler);
                    }
                }
                // Everything else applies to the next event it concerns.
                Ok(())
            }
        }
    }
}
