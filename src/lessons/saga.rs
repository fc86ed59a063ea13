//! Lesson `saga`: a trip is booked as three local transactions in three services (flight,
//! then hotel, then car); when a later step fails, the steps already done are undone by
//! compensating transactions in reverse order (cancel the hotel, then the flight), so no
//! trip is left half-booked. Two ways of coordinating the same saga run side by side on one
//! seed (`coordination`): an orchestrator that runs each trip as a state machine and
//! persists the state after every step, or choreography, where each service reacts to the
//! previous service's events and publishes its own.
//!
//! Semantics and sources:
//! - H. Garcia-Molina and K. Salem, "Sagas", Proc. ACM SIGMOD 1987: a long-lived
//!   transaction written as a sequence T1..Tn of transactions, each with a compensating
//!   transaction Ci; the system guarantees that either T1..Tn runs, or T1..Tj followed by
//!   Cj..C1 runs (compensations in reverse order). Compensations must eventually succeed, so
//!   they are retried until they do, and a repeated request must not apply twice.
//! - AWS Prescriptive Guidance, "Saga patterns" (saga orchestration and saga
//!   choreography) and "Implement the serverless saga pattern by using AWS Step
//!   Functions": an orchestrator (a Step Functions state machine) calls each service, records
//!   every state transition in its execution history, and on a failure (Catch) runs the
//!   compensating tasks; with choreography each service publishes events (e.g. through
//!   Amazon EventBridge or SNS/SQS) that the next service subscribes to, nobody holds the
//!   whole trip's state, and a failure event makes the previous services compensate.
//! - Amazon SQS Developer Guide (standard queues): at-least-once delivery; a message that is
//!   not handled is delivered again after the visibility timeout, so consumers must be
//!   idempotent.
//!
//! The model, in short (definitions and counts in docs/models/saga.md):
//! - Trips arrive as a Poisson process (`trip_rate`). A trip is one request token; the
//!   token is always where the trip's one current message is: on an edge, in service at a
//!   node, or waiting (queued) at a node for a redelivery, a timeout or a restart.
//! - Each local transaction takes a log-normal time (mean `step_time`, cv 0.5) drawn when
//!   the trip arrives; whether the hotel and car would reject it is also drawn at arrival
//!   (uniforms compared with `hotel_fail_pct` and `car_fail_pct` when the step runs), so both
//!   coordinations see the same trips and the same rejections. A down car service rejects
//!   every booking at once.
//! - Every message between services (commands, replies, events) is lost with probability
//!   `message_loss_pct`. With `delivery = at-least-once` the transport delivers it again
//!   after `retry_delay`; with `best-effort` it is gone: an orchestrator notices the
//!   missing reply after `step_timeout` and sends the command again, but in choreography
//!   nobody is waiting for the event and the trip stays as it is forever (half-done if it
//!   holds a booking).
//! - Services are idempotent: each keeps a per-trip record (booked, rejected, cancelled) and
//!   answers a repeated request with the recorded result without applying it again
//!   (counted as a duplicate). A cancellation fails transiently with probability
//!   `compensation_fail_pct` and is retried every `retry_delay` until it succeeds.
//! - The orchestrator persists each saga's state after every step (a checkpoint). When it
//!   crashes it is down for `restart_delay`: replies reaching it are parked and its timers
//!   are gone. On restart it reloads every unfinished saga from its saved state and sends
//!   the command of the step each one was waiting for again (the service recognises a
//!   repeat). With `persist_state` off the sagas it was running are forgotten: a trip that
//!   holds bookings stays half-done.
//!
//! Outcomes: booked (completed), compensated (failed), left half-done or lost (dropped).
//! Integer ticks, named random streams, no hash iteration: fully deterministic.

use std::collections::VecDeque;

use slab::Slab;

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
    id: "saga",
    title: "Saga with compensations",
    group: LessonGroup::Messaging,
    summary: "Book flight, hotel and car as separate local transactions; undo the finished steps in reverse order when one fails.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("coordination"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "coordination",
        label: "Coordination",
        unit: "",
        help: "orchestrated: a Step Functions-like orchestrator calls each service and saves the trip's state after every step; choreographed: each service reacts to the previous service's events and publishes its own.",
        kind: ParamKind::Choice {
            options: &["orchestrated", "choreographed"],
            default: "orchestrated",
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "delivery",
        label: "Message delivery",
        unit: "",
        help: "at-least-once: a lost message is delivered again after the retry delay (like an SQS queue); best-effort: a lost message is gone, and only someone waiting for it can notice.",
        kind: ParamKind::Choice {
            options: &["at-least-once", "best-effort"],
            default: "at-least-once",
        },
        liveness: Liveness::Live,
    },
    number("trip_rate", "Trips", "trips/s", "New trip bookings per second (Poisson). Set it to 0 to let the system drain.", (0.0, 20.0, 0.1, 2.0)),
    number("car_fail_pct", "Car rejects", "%", "Share of trips for which the car service has no car: step 3 fails and the earlier steps are compensated.", (0.0, 100.0, 1.0, 10.0)),
    number("hotel_fail_pct", "Hotel rejects", "%", "Share of trips for which the hotel is full: step 2 fails and the flight is cancelled.", (0.0, 100.0, 1.0, 0.0)),
    number("message_loss_pct", "Messages lost", "%", "Chance that a message between services (command, reply or event) is lost in transit.", (0.0, 50.0, 0.5, 1.0)),
    number("compensation_fail_pct", "Cancellation fails", "%", "Chance that one attempt at a cancellation fails transiently; it is retried until it succeeds.", (0.0, 90.0, 1.0, 20.0)),
    number("step_time", "Step time", "ms", "Mean time of one local transaction (log-normal, cv 0.5).", (20.0, 5000.0, 10.0, 300.0)),
    number("retry_delay", "Retry delay", "s", "Wait before a lost message is delivered again (at-least-once) and before a failed cancellation is retried.", (0.1, 30.0, 0.1, 1.0)),
    number("step_timeout", "Orchestrator step timeout", "s", "How long the orchestrator waits for a reply before it sends the command again (matters with best-effort delivery).", (0.5, 60.0, 0.5, 3.0)),
    number("restart_delay", "Orchestrator restart", "s", "How long a crashed orchestrator stays down before it restarts.", (1.0, 300.0, 1.0, 15.0)),
    ParamSpec {
        name: "persist_state",
        label: "Orchestrator saves state",
        unit: "",
        help: "On: the orchestrator writes each saga's state after every step and resumes from it after a crash. Off: a crash forgets every running saga.",
        kind: ParamKind::Toggle { default: true },
        liveness: Liveness::Live,
    },
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "car-down",
        label: "Car service down",
        help: "The car service fails every booking at once until restored: every trip that reaches step 3 is compensated.",
    },
    InjectionSpec {
        id: "crash-orchestrator",
        label: "Crash the orchestrator",
        help: "The orchestrator crashes and restarts after the restart delay, resuming the sagas it was running from their saved state (orchestrated only).",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore",
        help: "The car service is back, and a crashed orchestrator restarts now.",
    },
];

/// One network hop between two nodes.
pub const HOP: SimDuration = SimDuration::from_millis(15);
/// Spread of local transaction times (coefficient of variation of the log-normal).
pub const STEP_CV: f64 = 0.5;
/// Finished trips whose step history is kept for inspection (oldest dropped first).
pub const HISTORY_LIMIT: usize = 10_000;

/// The three services, in booking order.
pub const SERVICES: [&str; 3] = ["flight", "hotel", "car"];
const FLIGHT: u8 = 0;
const HOTEL: u8 = 1;
const CAR: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coordination {
    Orchestrated,
    Choreographed,
}

/// A service's own record of one trip (its local state, used to answer repeats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ledger {
    Nothing,
    Booked,
    Rejected,
    Cancelled,
}

/// A step of the saga at one service (index into [`SERVICES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Book(u8),
    Cancel(u8),
}

/// How a trip ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Flight, hotel and car booked.
    Booked,
    /// A step failed and every earlier step was undone.
    Compensated,
    /// Stuck for good while holding at least one booking.
    HalfDone,
    /// Stuck for good holding nothing.
    Lost,
}

/// One entry of a trip's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The saga began (the orchestrator recorded it, or the first event was published).
    Started,
    /// A service applied a booking.
    Booked(u8),
    /// A service refused a booking (no room, no car, service down).
    Rejected(u8),
    /// A service applied a cancellation (a compensation).
    Cancelled(u8),
    /// A cancellation attempt failed transiently; it will be retried.
    CancelFailed(u8),
    /// A service got a request it had already handled and answered from its record.
    Duplicate(u8),
    /// A message was lost in transit.
    MessageLost,
    /// The transport delivered a lost message again.
    Redelivered,
    /// The orchestrator got no reply in time and sent the command again.
    TimedOut,
    /// The orchestrator restarted and resumed the saga from its saved state.
    Resumed,
    Finished(Outcome),
}

/// A finished trip: its outcome and history.
#[derive(Clone, Debug)]
pub struct TripRecord {
    pub id: u64,
    pub outcome: Outcome,
    pub history: Vec<(SimTime, Action)>,
    /// Each service's final record of the trip.
    pub ledger: [Ledger; 3],
    pub messages: u32,
}

/// The one message a trip has under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    /// Client → orchestrator: start a saga.
    Start,
    /// To a service: do this step (a command from the orchestrator, or the event the
    /// service subscribes to in choreography).
    Do(Step),
    /// Service → orchestrator: the step's result.
    Reply(Step, bool),
    /// To a sink: the trip's end (booked or compensated).
    Finish(bool),
}

/// What a trip waits for while its token is parked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    /// The transport will deliver the lost message again.
    Redelivery,
    /// The orchestrator's step timer.
    OrchestratorTimeout,
    /// The service will try the failed cancellation again.
    CancelRetry,
    /// The orchestrator is down; it resumes the saga when it restarts.
    Restart,
}

struct Trip {
    key: RequestKey,
    id: u64,
    born: SimTime,
    /// Stamp of the current message or timer; events with another stamp are stale.
    stamp: u64,
    msg: Msg,
    from: NodeId,
    to: NodeId,
    edge: EdgeId,
    lost: bool,
    pending: Pending,
    /// The step the orchestrator waits on (its saved state), orchestrated only.
    awaiting: Option<Step>,
    /// The orchestrator forgot this saga (crash without saved state).
    orphaned: bool,
    compensating: bool,
    /// Waiting in the orchestrator's start queue (not started yet).
    unstarted: bool,
    /// Drawn at arrival: local transaction times and the rejection uniforms.
    step_times: [SimDuration; 3],
    reject_draw: [f64; 3],
    ledger: [Ledger; 3],
    messages: u32,
    history: Vec<(SimTime, Action)>,
}

/// Events of the model; trips are named by their slab slot and the stamp of the message
/// or timer the event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    /// The trip's current message reaches its destination.
    Arrive {
        slot: u32,
        stamp: u64,
    },
    /// A service finished the trip's local transaction.
    Done {
        slot: u32,
        stamp: u64,
    },
    /// A redelivery, a cancellation retry or an orchestrator timeout is due.
    Retry {
        slot: u32,
        stamp: u64,
    },
    OrchestratorUp,
}

#[derive(Default)]
struct Counts {
    booked: u64,
    compensated: u64,
    half_done: u64,
    lost: u64,
    compensations: u64,
    compensation_retries: u64,
    duplicates: u64,
    messages_lost: u64,
    checkpoints: u64,
    resumed: u64,
    ended_messages: u64,
    /// Cancellations applied while a later step of the same trip was still booked (a
    /// broken saga; the tests expect zero).
    order_violations: u64,
}

pub struct SagaModel {
    params: ParamValues,
    coordination: Coordination,
    topology: Topology,
    clients: NodeId,
    /// The orchestrator, its state store and the line of trips waiting for it to restart
    /// (orchestrated only).
    orchestrator: Option<(NodeId, NodeId, NodeId)>,
    services: [NodeId; 3],
    booked_sink: NodeId,
    compensated_sink: NodeId,
    /// Edges by (from, to) node pair, looked up linearly (a dozen at most).
    edges: Vec<(NodeId, NodeId, EdgeId)>,
    orchestrator_up: bool,
    up_timer: Option<TimerHandle>,
    car_down: bool,
    trips: Slab<Trip>,
    next_stamp: u64,
    archive: VecDeque<TripRecord>,
    arrivals: ArrivalTimer<Event>,
    trip_rng: SimRng,
    loss_rng: SimRng,
    cancel_rng: SimRng,
    counts: Counts,
    core: ModelCore,
    gauge_in_progress: GaugeId,
    gauge_compensating: GaugeId,
    gauge_half_done: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<SagaModel> {
    let coordination = if params.choice("coordination") == "choreographed" {
        Coordination::Choreographed
    } else {
        Coordination::Orchestrated
    };
    let mut topology = Topology::default();
    let mut edges = Vec::new();
    let mut link = |topology: &mut Topology, from: NodeId, to: NodeId| {
        edges.push((from, to, topology.add_edge(from, to)));
    };
    let (clients, orchestrator, services, booked_sink, compensated_sink) = match coordination {
        Coordination::Orchestrated => {
            let clients = topology.add_node("clients", "Travellers", NodeKind::Source, 0.0, 0.5);
            let orch =
                topology.add_node("orchestrator", "Orchestrator", NodeKind::Router, 0.3, 0.5);
            let store = topology.add_node("saga-state", "Saga state", NodeKind::Store, 0.3, 0.92);
            let waiting = topology.add_node(
                "restart-wait",
                "Waiting for the orchestrator",
                NodeKind::Queue,
                0.08,
                0.92,
            );
            let services = [
                topology.add_node("flight", "Flight service", NodeKind::Server, 0.68, 0.08),
                topology.add_node("hotel", "Hotel service", NodeKind::Server, 0.68, 0.5),
                topology.add_node("car", "Car service", NodeKind::Server, 0.68, 0.92),
            ];
            let booked = topology.add_node("booked", "Booked", NodeKind::Sink, 0.97, 0.25);
            let compensated =
                topology.add_node("compensated", "Compensated", NodeKind::Sink, 0.97, 0.75);
            link(&mut topology, clients, orch);
            link(&mut topology, orch, store);
            link(&mut topology, waiting, orch);
            for service in services {
                link(&mut topology, orch, service);
                link(&mut topology, service, orch);
            }
            link(&mut topology, orch, booked);
            link(&mut topology, orch, compensated);
            (
                clients,
                Some((orch, store, waiting)),
                services,
                booked,
                compensated,
            )
        }
        Coordination::Choreographed => {
            let clients = topology.add_node("clients", "Travellers", NodeKind::Source, 0.0, 0.3);
            let services = [
                topology.add_node("flight", "Flight service", NodeKind::Server, 0.28, 0.3),
                topology.add_node("hotel", "Hotel service", NodeKind::Server, 0.53, 0.3),
                topology.add_node("car", "Car service", NodeKind::Server, 0.78, 0.3),
            ];
            let booked = topology.add_node("booked", "Booked", NodeKind::Sink, 1.0, 0.3);
            let compensated =
                topology.add_node("compensated", "Compensated", NodeKind::Sink, 0.1, 0.85);
            link(&mut topology, clients, services[0]);
            link(&mut topology, services[0], services[1]);
            link(&mut topology, services[1], services[2]);
            link(&mut topology, services[2], booked);
            link(&mut topology, services[2], services[1]);
            link(&mut topology, services[1], services[0]);
            link(&mut topology, services[0], compensated);
            (clients, None, services, booked, compensated)
        }
    };
    let core = ModelCore::new(vec!["trips_in_progress", "trips_compensating", "half_done"]);
    let mut model = SagaModel {
        params: params.clone(),
        coordination,
        topology,
        clients,
        orchestrator,
        services,
        booked_sink,
        compensated_sink,
        edges,
        orchestrator_up: true,
        up_timer: None,
        car_down: false,
        trips: Slab::new(),
        next_stamp: 0,
        archive: VecDeque::new(),
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number("trip_rate")),
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        trip_rng: SimRng::new(seed.0, "trips"),
        loss_rng: SimRng::new(seed.0, "message-loss"),
        cancel_rng: SimRng::new(seed.0, "cancellations"),
        counts: Counts::default(),
        gauge_in_progress: core.gauge("trips_in_progress"),
        gauge_compensating: core.gauge("trips_compensating"),
        gauge_half_done: core.gauge("half_done"),
        core,
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    Simulation::new(model, scheduler)
}

impl SagaModel {
    pub fn coordination(&self) -> Coordination {
        self.coordination
    }

    /// Histories of the most recent finished trips (up to [`HISTORY_LIMIT`]).
    pub fn finished_trips(&self) -> impl Iterator<Item = &TripRecord> {
        self.archive.iter()
    }

    /// Histories of the trips still under way, as (request id, history).
    pub fn live_histories(&self) -> Vec<(u64, Vec<(SimTime, Action)>)> {
        self.trips
            .iter()
            .map(|(_, trip)| (trip.id, trip.history.clone()))
            .collect()
    }

    /// Cancellations applied while a later step of the same trip was still booked (zero
    /// in a correct saga; the model counts them rather than assuming).
    pub fn order_violations(&self) -> u64 {
        self.counts.order_violations
    }

    fn orch(&self) -> NodeId {
        self.orchestrator.expect("orchestrated topology").0
    }

    /// Where trips wait while the orchestrator is down.
    fn restart_line(&self) -> NodeId {
        self.orchestrator.expect("orchestrated topology").2
    }

    fn edge(&self, from: NodeId, to: NodeId) -> EdgeId {
        self.edges
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .map(|(_, _, edge)| *edge)
            .expect("the topology links these nodes")
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn trip(&self, slot: u32, stamp: u64) -> Option<&Trip> {
        self.trips
            .get(slot as usize)
            .filter(|trip| trip.stamp == stamp)
    }

    fn note(&mut self, slot: u32, now: SimTime, action: Action) {
        self.trips[slot as usize].history.push((now, action));
    }

    fn pct(&self, name: &str) -> f64 {
        self.params.number(name) / 100.0
    }

    fn step_time_mean(&self) -> f64 {
        self.params.number("step_time") / 1000.0
    }

    /// Sends the trip's next message from `from` to `to` along their edge.
    fn send(
        &mut self,
        slot: u32,
        msg: Msg,
        from: NodeId,
        to: NodeId,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        let edge = self.edge(from, to);
        // Only messages between services travel a lossy network; the client's request
        // and the final notification are treated as reliable.
        let lossy = matches!(msg, Msg::Do(_) | Msg::Reply(..));
        let loss = self.pct("message_loss_pct");
        let lost = lossy && loss > 0.0 && self.loss_rng.chance(loss);
        let stamp = self.stamp();
        let trip = &mut self.trips[slot as usize];
        trip.stamp = stamp;
        trip.msg = msg;
        trip.from = from;
        trip.to = to;
        trip.edge = edge;
        trip.lost = lost;
        trip.pending = Pending::None;
        trip.messages += 1;
        self.core.requests.move_to(
            trip.key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::Arrive { slot, stamp });
    }

    /// Sends the current message again over the same route (a redelivery).
    fn resend(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let (msg, from, to, key) = {
            let trip = &self.trips[slot as usize];
            (trip.msg, trip.from, trip.to, trip.key)
        };
        self.core.requests.next_attempt(key);
        self.send(slot, msg, from, to, scheduler);
    }

    /// Parks the trip's token at `node` waiting for `pending`; a timer after `delay`, if
    /// any, wakes it.
    fn park(
        &mut self,
        slot: u32,
        node: NodeId,
        pending: Pending,
        delay: Option<SimDuration>,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        let stamp = self.stamp();
        let trip = &mut self.trips[slot as usize];
        trip.stamp = stamp;
        trip.pending = pending;
        self.core
            .requests
            .move_to(trip.key, Place::Queued { node, since: now });
        if let Some(delay) = delay {
            scheduler.schedule_in(delay, Event::Retry { slot, stamp });
        }
    }

    fn arrive_trip(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let mean = self.step_time_mean();
        let mut step_times = [SimDuration::ZERO; 3];
        for time in &mut step_times {
            *time = SimDuration::from_secs_f64(self.trip_rng.lognormal_mean_cv(mean, STEP_CV));
        }
        let reject_draw = [
            self.trip_rng.uniform01(),
            self.trip_rng.uniform01(),
            self.trip_rng.uniform01(),
        ];
        let key = self.core.requests.spawn(
            now,
            Place::Queued {
                node: self.clients,
                since: now,
            },
        );
        let id = self.core.requests.get(key).id.0;
        let slot = self.trips.insert(Trip {
            key,
            id,
            born: now,
            stamp: 0,
            msg: Msg::Start,
            from: self.clients,
            to: self.clients,
            edge: EdgeId(0),
            lost: false,
            pending: Pending::None,
            awaiting: None,
            orphaned: false,
            compensating: false,
            unstarted: false,
            step_times,
            reject_draw,
            ledger: [Ledger::Nothing; 3],
            messages: 0,
            history: Vec::with_capacity(8),
        }) as u32;
        match self.coordination {
            Coordination::Orchestrated => {
                let orch = self.orch();
                self.send(slot, Msg::Start, self.clients, orch, scheduler);
            }
            Coordination::Choreographed => {
                // The booking front end publishes "trip requested"; the flight service
                // subscribes to it.
                self.note(slot, now, Action::Started);
                self.send(
                    slot,
                    Msg::Do(Step::Book(FLIGHT)),
                    self.clients,
                    self.services[0],
                    scheduler,
                );
            }
        }
    }

    fn arrive(&mut self, slot: u32, stamp: u64, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(trip) = self.trip(slot, stamp) else {
            return;
        };
        let (msg, to, lost) = (trip.msg, trip.to, trip.lost);
        if lost {
            self.counts.messages_lost += 1;
            self.note(slot, now, Action::MessageLost);
            self.trips[slot as usize].lost = false;
            return self.message_lost(slot, scheduler);
        }
        match msg {
            Msg::Finish(booked) => self.finish(slot, booked, now),
            Msg::Do(step) => {
                let node = to;
                let key = self.trips[slot as usize].key;
                self.core
                    .requests
                    .move_to(key, Place::InService { node, since: now });
                let duration = self.work_time(slot, step);
                let stamp = self.stamp();
                self.trips[slot as usize].stamp = stamp;
                scheduler.schedule_in(duration, Event::Done { slot, stamp });
            }
            Msg::Start | Msg::Reply(..) => self.at_orchestrator(slot, scheduler),
        }
    }

    /// How long the service works on this step: the time drawn at arrival for a booking
    /// (a down car service refuses at once), a fresh draw for a cancellation.
    fn work_time(&mut self, slot: u32, step: Step) -> SimDuration {
        match step {
            Step::Book(CAR) if self.car_down => SimDuration::ZERO,
            Step::Book(service) => self.trips[slot as usize].step_times[service as usize],
            Step::Cancel(_) => SimDuration::from_secs_f64(
                self.cancel_rng
                    .lognormal_mean_cv(self.step_time_mean(), STEP_CV),
            ),
        }
    }

    /// A message arrived at the orchestrator (a start request or a reply).
    fn at_orchestrator(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let orch = self.orch();
        let msg = self.trips[slot as usize].msg;
        if self.trips[slot as usize].orphaned {
            // The restarted orchestrator has no record of this saga: nobody will finish it.
            return self.strand(slot, now);
        }
        if !self.orchestrator_up {
            if msg == Msg::Start {
                self.trips[slot as usize].unstarted = true;
                return self.park(slot, self.restart_line(), Pending::Restart, None, scheduler);
            }
            // The reply is lost with the crashed process; the saved state says which step
            // the saga waits for, so the restarted orchestrator asks again.
            return self.park(slot, self.restart_line(), Pending::Restart, None, scheduler);
        }
        match msg {
            Msg::Start => {
                self.trips[slot as usize].unstarted = false;
                self.note(slot, now, Action::Started);
                self.checkpoint();
                self.command(slot, Step::Book(FLIGHT), scheduler);
            }
            Msg::Reply(step, ok) => {
                self.checkpoint();
                match step {
                    Step::Book(service) if ok && service == CAR => {
                        self.trips[slot as usize].awaiting = None;
                        self.send(slot, Msg::Finish(true), orch, self.booked_sink, scheduler);
                    }
                    Step::Book(service) if ok => {
                        self.command(slot, Step::Book(service + 1), scheduler)
                    }
                    Step::Book(service) | Step::Cancel(service) => {
                        self.trips[slot as usize].compensating = true;
                        if service == FLIGHT {
                            self.trips[slot as usize].awaiting = None;
                            self.send(
                                slot,
                                Msg::Finish(false),
                                orch,
                                self.compensated_sink,
                                scheduler,
                            );
                        } else {
                            self.command(slot, Step::Cancel(service - 1), scheduler);
                        }
                    }
                }
            }
            _ => unreachable!("only starts and replies go to the orchestrator"),
        }
    }

    /// The orchestrator saves the saga's state (one execution-history write).
    fn checkpoint(&mut self) {
        if self.params.toggle("persist_state") {
            self.counts.checkpoints += 1;
        }
    }

    fn command(&mut self, slot: u32, step: Step, scheduler: &mut Scheduler<Event>) {
        let orch = self.orch();
        let service = match step {
            Step::Book(s) | Step::Cancel(s) => s,
        };
        self.trips[slot as usize].awaiting = Some(step);
        self.send(
            slot,
            Msg::Do(step),
            orch,
            self.services[service as usize],
            scheduler,
        );
    }

    /// A service finished a local transaction: apply it (idempotently) and pass the
    /// result on.
    fn done(&mut self, slot: u32, stamp: u64, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(trip) = self.trip(slot, stamp) else {
            return;
        };
        let Msg::Do(step) = trip.msg else {
            unreachable!("services only work on steps")
        };
        let (ledger, reject_draw) = (trip.ledger, trip.reject_draw);
        let ok = match step {
            Step::Book(s) => {
                let index = s as usize;
                if ledger[index] == Ledger::Nothing {
                    let threshold = match s {
                        CAR if self.car_down => 2.0,
                        CAR => self.pct("car_fail_pct"),
                        HOTEL => self.pct("hotel_fail_pct"),
                        _ => 0.0,
                    };
                    let rejected = reject_draw[index] < threshold;
                    let (record, action) = if rejected {
                        (Ledger::Rejected, Action::Rejected(s))
                    } else {
                        (Ledger::Booked, Action::Booked(s))
                    };
                    self.trips[slot as usize].ledger[index] = record;
                    self.note(slot, now, action);
                    !rejected
                } else {
                    // A repeat (redelivery, resent command): answer from the record.
                    self.duplicate(slot, s, now);
                    ledger[index] == Ledger::Booked
                }
            }
            Step::Cancel(s) => {
                let index = s as usize;
                match ledger[index] {
                    Ledger::Cancelled => {
                        self.duplicate(slot, s, now);
                        true
                    }
                    Ledger::Booked => {
                        let fail = self.pct("compensation_fail_pct");
                        if fail > 0.0 && self.cancel_rng.chance(fail) {
                            self.counts.compensation_retries += 1;
                            self.note(slot, now, Action::CancelFailed(s));
                            let key = self.trips[slot as usize].key;
                            self.core.requests.next_attempt(key);
                            let delay =
                                SimDuration::from_secs_f64(self.params.number("retry_delay"));
                            let stamp = self.stamp();
                            let trip = &mut self.trips[slot as usize];
                            trip.stamp = stamp;
                            trip.pending = Pending::CancelRetry;
                            scheduler.schedule_in(delay, Event::Retry { slot, stamp });
                            return;
                        }
                        if ledger[index + 1..].contains(&Ledger::Booked) {
                            self.counts.order_violations += 1;
                        }
                        self.counts.compensations += 1;
                        self.trips[slot as usize].ledger[index] = Ledger::Cancelled;
                        self.note(slot, now, Action::Cancelled(s));
                        true
                    }
                    // Nothing was booked here: cancelling is a no-op, and the record
                    // blocks a late booking for this trip.
                    Ledger::Nothing | Ledger::Rejected => {
                        self.trips[slot as usize].ledger[index] = Ledger::Cancelled;
                        true
                    }
                }
            }
        };
        let service = match step {
            Step::Book(s) | Step::Cancel(s) => s,
        };
        let from = self.services[service as usize];
        match self.coordination {
            Coordination::Orchestrated => {
                let orch = self.orch();
                self.send(slot, Msg::Reply(step, ok), from, orch, scheduler);
            }
            Coordination::Choreographed => {
                // Each service publishes its result; the subscribers react.
                let next = match step {
                    Step::Book(s) if ok && s == CAR => None,
                    Step::Book(s) if ok => Some(Step::Book(s + 1)),
                    Step::Book(s) | Step::Cancel(s) if s == FLIGHT => None,
                    Step::Book(s) | Step::Cancel(s) => Some(Step::Cancel(s - 1)),
                };
                if !ok || matches!(step, Step::Cancel(_)) {
                    self.trips[slot as usize].compensating = true;
                }
                match next {
                    Some(next) => {
                        let to = match next {
                            Step::Book(s) | Step::Cancel(s) => self.services[s as usize],
                        };
                        self.send(slot, Msg::Do(next), from, to, scheduler);
                    }
                    None => {
                        let booked = ok && step == Step::Book(CAR);
                        let sink = if booked {
                            self.booked_sink
                        } else {
                            self.compensated_sink
                        };
                        self.send(slot, Msg::Finish(booked), from, sink, scheduler);
                    }
                }
            }
        }
    }

    fn duplicate(&mut self, slot: u32, service: u8, now: SimTime) {
        self.counts.duplicates += 1;
        self.core.metrics.duplicated(now);
        self.note(slot, now, Action::Duplicate(service));
    }

    /// The trip's current message was lost in transit.
    fn message_lost(&mut self, slot: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let from = self.trips[slot as usize].from;
        if self.params.choice("delivery") == "at-least-once" {
            let delay = SimDuration::from_secs_f64(self.params.number("retry_delay"));
            return self.park(slot, from, Pending::Redelivery, Some(delay), scheduler);
        }
        match self.coordination {
            Coordination::Orchestrated => {
                let orch = self.orch();
                if self.trips[slot as usize].orphaned {
                    self.strand(slot, now);
                } else if self.orchestrator_up {
                    let timeout = SimDuration::from_secs_f64(self.params.number("step_timeout"));
                    self.park(
                        slot,
                        orch,
                        Pending::OrchestratorTimeout,
                        Some(timeout),
                        scheduler,
                    );
                } else {
                    self.park(slot, self.restart_line(), Pending::Restart, None, scheduler);
                }
            }
            // Nobody waits for a choreographed event: the trip stays as it is.
            Coordination::Choreographed => self.strand(slot, now),
        }
    }

    fn retry(&mut self, slot: u32, stamp: u64, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(trip) = self.trip(slot, stamp) else {
            return;
        };
        let (pending, msg, awaiting, key) = (trip.pending, trip.msg, trip.awaiting, trip.key);
        match pending {
            Pending::Redelivery => {
                self.note(slot, now, Action::Redelivered);
                self.resend(slot, scheduler);
            }
            Pending::CancelRetry => {
                let Msg::Do(step) = msg else {
                    unreachable!("only cancellations are retried in place")
                };
                self.trips[slot as usize].pending = Pending::None;
                let duration = self.work_time(slot, step);
                let stamp = self.stamp();
                self.trips[slot as usize].stamp = stamp;
                scheduler.schedule_in(duration, Event::Done { slot, stamp });
            }
            Pending::OrchestratorTimeout => {
                self.note(slot, now, Action::TimedOut);
                let step = awaiting.expect("a timed-out saga awaits a step");
                self.core.requests.next_attempt(key);
                self.command(slot, step, scheduler);
            }
            Pending::None | Pending::Restart => {}
        }
    }

    /// The trip can make no more progress: it ends half-done (holding a booking) or lost.
    fn strand(&mut self, slot: u32, now: SimTime) {
        let holds = self.trips[slot as usize].ledger.contains(&Ledger::Booked);
        let outcome = if holds {
            self.counts.half_done += 1;
            Outcome::HalfDone
        } else {
            self.counts.lost += 1;
            Outcome::Lost
        };
        self.core.metrics.dropped(now);
        self.end(slot, outcome, now);
    }

    fn finish(&mut self, slot: u32, booked: bool, now: SimTime) {
        let born = self.trips[slot as usize].born;
        if booked {
            self.counts.booked += 1;
            self.core.metrics.completed(now, now - born);
            self.end(slot, Outcome::Booked, now);
        } else {
            self.counts.compensated += 1;
            self.core.metrics.failed(now);
            self.end(slot, Outcome::Compensated, now);
        }
    }

    fn end(&mut self, slot: u32, outcome: Outcome, now: SimTime) {
        let mut trip = self.trips.remove(slot as usize);
        self.core.requests.finish(trip.key);
        trip.history.push((now, Action::Finished(outcome)));
        self.counts.ended_messages += u64::from(trip.messages);
        if self.archive.len() == HISTORY_LIMIT {
            self.archive.pop_front();
        }
        self.archive.push_back(TripRecord {
            id: trip.id,
            outcome,
            history: trip.history,
            ledger: trip.ledger,
            messages: trip.messages,
        });
    }

    fn set_state(&mut self, node: NodeId, to: NodeState, now: SimTime) {
        self.core.log.push(now, Notable::StateChanged { node, to });
    }

    fn crash(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let orch = self.orch();
        self.orchestrator_up = false;
        self.set_state(orch, NodeState::Down, now);
        let delay = SimDuration::from_secs_f64(self.params.number("restart_delay"));
        self.up_timer = Some(scheduler.schedule_timer_in(delay, Event::OrchestratorUp));
        let persist = self.params.toggle("persist_state");
        let slots: Vec<u32> = self.trips.iter().map(|(slot, _)| slot as u32).collect();
        for slot in slots {
            let trip = &self.trips[slot as usize];
            // Sagas the orchestrator runs: started, not yet handed to a sink.
            let running =
                !trip.unstarted && trip.msg != Msg::Start && !matches!(trip.msg, Msg::Finish(_));
            if !running {
                continue;
            }
            let timer = trip.pending == Pending::OrchestratorTimeout;
            if !persist {
                self.trips[slot as usize].orphaned = true;
                if timer {
                    self.strand(slot, now);
                }
            } else if timer {
                // Its timer was in the crashed process; the saved state brings it back.
                self.park(slot, self.restart_line(), Pending::Restart, None, scheduler);
            }
        }
    }

    fn orchestrator_restarts(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let orch = self.orch();
        self.orchestrator_up = true;
        self.up_timer = None;
        self.set_state(orch, NodeState::Healthy, now);
        // Slot order is deterministic; parked sagas resume first, then waiting starts.
        let waiting: Vec<(u32, bool)> = self
            .trips
            .iter()
            .filter(|(_, trip)| trip.pending == Pending::Restart)
            .map(|(slot, trip)| (slot as u32, trip.unstarted))
            .collect();
        for &(slot, unstarted) in &waiting {
            if unstarted {
                continue;
            }
            self.counts.resumed += 1;
            self.note(slot, now, Action::Resumed);
            let step = self.trips[slot as usize]
                .awaiting
                .expect("a started saga awaits a step");
            self.command(slot, step, scheduler);
        }
        for &(slot, unstarted) in &waiting {
            if unstarted {
                self.at_orchestrator(slot, scheduler);
            }
        }
    }

    fn update_gauges(&mut self, now: SimTime) {
        let in_progress = self.trips.len() as i64;
        let compensating = self
            .trips
            .iter()
            .filter(|(_, trip)| trip.compensating)
            .count() as i64;
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_in_progress, now, in_progress);
        metrics.set_gauge(self.gauge_compensating, now, compensating);
        metrics.set_gauge(self.gauge_half_done, now, self.counts.half_done as i64);
    }
}

impl Model for SagaModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive_trip(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::Arrive { slot, stamp } => self.arrive(slot, stamp, scheduler),
            Event::Done { slot, stamp } => self.done(slot, stamp, scheduler),
            Event::Retry { slot, stamp } => self.retry(slot, stamp, scheduler),
            Event::OrchestratorUp => self.orchestrator_restarts(scheduler),
        }
        self.update_gauges(scheduler.now());
    }
}

impl LessonModel for SagaModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        let mut at_service = [0u32; 3];
        let mut running = 0u32;
        let mut waiting = 0u32;
        for (_, trip) in &self.trips {
            if let Place::InService { node, .. } = self.core.requests.get(trip.key).place {
                if let Some(index) = self.services.iter().position(|&s| s == node) {
                    at_service[index] += 1;
                }
            }
            if trip.unstarted || trip.pending == Pending::Restart {
                waiting += 1;
            } else if !trip.orphaned && trip.msg != Msg::Start {
                running += 1;
            }
        }
        snapshot.nodes.push(plain(self.clients));
        snapshot.nodes.push(plain(self.booked_sink));
        snapshot.nodes.push(plain(self.compensated_sink));
        if let Some((orch, store, line)) = self.orchestrator {
            snapshot.nodes.push(NodeView {
                state: if self.orchestrator_up {
                    NodeState::Healthy
                } else {
                    NodeState::Down
                },
                busy: running,
                ..plain(orch)
            });
            snapshot.nodes.push(NodeView {
                queued: waiting,
                ..plain(line)
            });
            // The store holds the same sagas the orchestrator runs; drawn without a busy
            // count so the page does not count them twice.
            snapshot.nodes.push(plain(store));
        }
        for (index, node) in self.services.into_iter().enumerate() {
            snapshot.nodes.push(NodeView {
                state: if index == CAR as usize && self.car_down {
                    NodeState::Down
                } else {
                    NodeState::Healthy
                },
                busy: at_service[index],
                ..plain(node)
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, _now: SimTime) -> Vec<Figure> {
        let c = &self.counts;
        let ended = c.booked + c.compensated + c.half_done + c.lost;
        let per_trip = if ended == 0 {
            0.0
        } else {
            c.ended_messages as f64 / ended as f64
        };
        let figure = |key, label, value: u64| Figure {
            key,
            label,
            value: value as f64,
            unit: "",
        };
        vec![
            figure("trips_booked", "Trips booked", c.booked),
            figure("trips_compensated", "Trips compensated", c.compensated),
            figure(
                "trips_in_progress",
                "Trips in progress",
                self.trips.len() as u64,
            ),
            figure("half_done", "Trips left half-done", c.half_done),
            figure("trips_lost", "Trips lost holding nothing", c.lost),
            figure("compensations", "Cancellations applied", c.compensations),
            figure(
                "compensation_retries",
                "Cancellation attempts retried",
                c.compensation_retries,
            ),
            figure(
                "duplicates_ignored",
                "Repeats answered from the record",
                c.duplicates,
            ),
            figure("messages_lost", "Messages lost in transit", c.messages_lost),
            Figure {
                key: "messages_per_trip",
                label: "Messages per finished trip",
                value: per_trip,
                unit: "",
            },
            figure("state_writes", "Saga state writes", c.checkpoints),
            figure("sagas_resumed", "Sagas resumed after a restart", c.resumed),
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
                        reason: reason.to_owned(),
                    })
                };
                match id.as_str() {
                    "car-down" if self.car_down => {
                        return refuse("the car service is already down")
                    }
                    "crash-orchestrator" if self.orchestrator.is_none() => {
                        return refuse("choreographed sagas have no orchestrator to crash")
                    }
                    "crash-orchestrator" if !self.orchestrator_up => {
                        return refuse("the orchestrator is already down")
                    }
                    "restore" if !self.car_down && self.orchestrator_up => {
                        return refuse("nothing is down")
                    }
                    "car-down" | "crash-orchestrator" | "restore" => {}
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                let car = self.services[CAR as usize];
                match id.as_str() {
                    "car-down" => {
                        self.car_down = true;
                        self.set_state(car, NodeState::Down, now);
                    }
                    "crash-orchestrator" => self.crash(scheduler),
                    _ => {
                        if self.car_down {
                            self.car_down = false;
                            self.set_state(car, NodeState::Healthy, now);
                        }
                        if !self.orchestrator_up {
                            if let Some(timer) = self.up_timer.take() {
                                scheduler.cancel(timer);
                            }
                            self.orchestrator_restarts(scheduler);
                        }
                    }
                }
                self.update_gauges(now);
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                if spec.name == "trip_rate" {
                    let rate = self.params.number("trip_rate");
                    self.arrivals.arrivals.set_shape(steady(rate));
                    self.arrivals.rearm(scheduler);
                }
                Ok(())
            }
        }
    }
}
