//! Lesson `pub-sub`: a photo-upload producer publishes messages that several services
//! (e-mail, thumbnails, analytics, later an audit log) must act on, delivered either by
//! fan-out or point-to-point. Fan-out: the producer publishes once to a topic, and the
//! topic copies every message into each subscriber's own queue, which that subscriber's
//! consumers drain at their own pace (one-to-many). Point-to-point: the producer sends to
//! one shared queue and the same services compete for its messages, so each message is
//! processed by exactly one of them (one-to-one). Run both values of `delivery` on one
//! seed to compare: the publications are identical, so the difference is the pattern.
//!
//! Topic semantics follow Amazon SNS with Amazon SQS subscriptions (Amazon SNS Developer
//! Guide, "Fanout to Amazon SQS queues"; the seed texts 001 §I and 002 §3.4: "SQS is for
//! 1-to-1 processing, SNS for 1-to-many distribution"): a message published to a topic is
//! delivered to every subscription that exists when it is published; a subscription
//! added later receives only later messages, and adding one needs no change to the
//! producer. Each subscription's queue is an independent backlog, so a slow subscriber
//! falls behind alone.
//!
//! Queue semantics follow Amazon SQS standard queues (Amazon SQS Developer Guide,
//! "Amazon SQS visibility timeout", "At-least-once delivery"): a receive hides the message
//! for the visibility timeout; the consumer deletes it when done; a consumer that crashes
//! before deleting leaves it hidden until the timeout expires, after which it is received
//! again (receive count + 1). Every receive after a copy's first is counted as a duplicate
//! delivery, so delivery is at least once: never lost, sometimes repeated. Competing
//! consumers on one queue each receive different messages.
//!
//! The two channel kinds are Gregor Hohpe and Bobby Woolf's Publish-Subscribe Channel and
//! Point-to-Point Channel with Competing Consumers ("Enterprise Integration Patterns",
//! 2003).
//!
//! Requests (for conservation and the standard counters) are message copies: a published
//! message is one copy per subscription in fan-out and one copy in point-to-point; a copy
//! completes when a consumer deletes it. Fan-out factor = copies processed ÷ messages
//! published. Equations and sources: docs/models/pub-sub.md.

use std::collections::VecDeque;

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
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "pub-sub",
    title: "Pub/sub fan-out vs point-to-point",
    group: LessonGroup::Messaging,
    summary: "A topic copies every message into each subscriber's own queue; a single shared queue hands each message to just one consumer.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("delivery"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "delivery",
        label: "Delivery",
        unit: "",
        help: "fan-out: the producer publishes to a topic that copies each message into every subscriber's own queue; point-to-point: one shared queue, and the services compete for its messages.",
        kind: ParamKind::Choice {
            options: &["fan-out", "point-to-point"],
            default: "fan-out",
        },
        liveness: Liveness::Restart,
    },
    number("publish_rate", "Uploads published", "msg/s", "Messages the producer publishes per second (Poisson); 0 pauses it so the queues drain.", (0.0, 20.0, 0.1, 2.0)),
    integer("subscribers", "Subscribed services", "", "How many services consume, in the order e-mail, thumbnails, analytics, audit. Raising it mid-run subscribes the next one: it gets the messages published from then on, and the producer does not change.", (1, 4, 3)),
    integer("consumers", "Consumers per service", "", "Consumer instances each service runs; each processes one message at a time.", (1, 8, 2)),
    number("processing_time", "Processing time", "s", "Mean time a consumer needs for one message (log-normal, coefficient of variation 0.5), the same for every service.", (0.01, 10.0, 0.01, 0.4)),
    number("slowdown", "Analytics slowdown", "×", "How many times slower the analytics consumer processes while it is slowed.", (2.0, 50.0, 1.0, 10.0)),
    number("visibility_timeout", "Visibility timeout", "s", "How long a received message stays hidden; not deleted by then, it is delivered again (SQS default 30 s).", (1.0, 300.0, 1.0, 30.0)),
    number("restart_delay", "Consumer restart time", "s", "How long a crashed consumer takes to come back.", (1.0, 120.0, 1.0, 10.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "slow-analytics",
        label: "Slow down analytics",
        help: "The analytics consumer processes each message slowdown times slower until restored.",
    },
    InjectionSpec {
        id: "crash-consumer",
        label: "Crash the thumbnail consumer",
        help: "The thumbnail service's consumers crash mid-message and restart after the restart time; the messages they held come back after the visibility timeout.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore analytics",
        help: "The analytics consumer works at normal speed again (messages already under way keep their time).",
    },
];

/// One network hop (producer to topic or queue, topic to queue, queue to consumer).
const HOP: SimDuration = SimDuration::from_millis(100);
/// Spread of processing times.
const PROCESSING_CV: f64 = 0.5;
/// Consumer slots drawn per service (the `consumers` parameter's maximum).
const MAX_CONSUMERS: usize = 8;
/// The services, in subscription order: (key, label).
pub const SERVICES: [(&str, &str); 4] = [
    ("email", "E-mail"),
    ("thumbnail", "Thumbnails"),
    ("analytics", "Analytics"),
    ("audit", "Audit log"),
];
const THUMBNAIL: usize = 1;
const ANALYTICS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    FanOut,
    PointToPoint,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The producer publishes a message.
    Publish,
    /// A published message reaches the topic, which sends its copies on to the queues.
    AtTopic { first: u32, count: u8 },
    /// Copies `first..first + count` reach their queues.
    Enqueued { first: u32, count: u8 },
    /// A received copy reaches the consumer, which starts processing it.
    Started { service: u8, slot: u8, life: u32 },
    /// A consumer finishes processing (ignored if it crashed meanwhile: `life` differs).
    Done { service: u8, slot: u8, life: u32 },
    /// A received copy's visibility timeout expires.
    VisibilityExpired { copy: u32, receipt: u32 },
    /// A crashed consumer is back.
    Restarted { service: u8, life: u32 },
}

/// One message copy in one queue (an SQS message).
#[derive(Clone, Debug)]
struct Copy {
    key: RequestKey,
    born: SimTime,
    queue: u8,
    receive_count: u32,
    /// Receipt of the latest receive; an expiry with an older one is stale.
    receipt: u32,
    visibility: Option<TimerHandle>,
}

/// A queue: one per subscription (fan-out) or the one shared queue (point-to-point).
struct Queue {
    node: NodeId,
    state: NodeState,
    /// Visible messages, oldest first.
    waiting: VecDeque<u32>,
    gauge: GaugeId,
}

/// What one service has received and processed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Receives, redeliveries included.
    pub deliveries: u64,
    /// Receives of a copy nobody had received before.
    pub first_deliveries: u64,
    /// Copies this service deleted (processed to the end first).
    pub processed: u64,
    /// Processing runs finished (more than `processed` when a copy was processed twice).
    pub processing_runs: u64,
    /// Visible messages in this service's own queue (fan-out; 0 in point-to-point).
    pub backlog: u64,
}

struct Service {
    node: NodeId,
    /// The queue it receives from.
    queue: usize,
    /// Queue to consumer.
    edge_in: EdgeId,
    /// Topic subscription (fan-out) or attachment to the shared queue (point-to-point).
    subscribed: bool,
    up: bool,
    slowed: bool,
    /// Bumped on every crash, so stale completions are ignored.
    life: u32,
    state: NodeState,
    /// Per consumer slot: (copy, receipt) being received or processed.
    held: [Option<(u32, u32)>; MAX_CONSUMERS],
    rng: SimRng,
    stats: ServiceStats,
}

pub struct PubSubModel {
    params: ParamValues,
    delivery: Delivery,
    topology: Topology,
    producer: NodeId,
    topic: Option<NodeId>,
    done: NodeId,
    /// Producer to topic (fan-out) or to the shared queue.
    edge_out: EdgeId,
    /// Topic to each queue (fan-out only).
    topic_edges: Vec<EdgeId>,
    queues: Vec<Queue>,
    services: Vec<Service>,
    copies: Vec<Option<Copy>>,
    published: u64,
    duplicates: u64,
    /// Point-to-point: the service to try first at the next hand-out (round robin).
    rotation: usize,
    arrivals: ArrivalTimer<Event>,
    core: ModelCore,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn traffic(params: &ParamValues) -> TrafficShape {
    TrafficShape::Steady {
        rate: params.number("publish_rate"),
    }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<PubSubModel> {
    let delivery = if params.choice("delivery") == "point-to-point" {
        Delivery::PointToPoint
    } else {
        Delivery::FanOut
    };
    let subscribed = params.integer("subscribers") as usize;
    let mut topology = Topology::default();
    let producer = topology.add_node("producer", "Photo uploads", NodeKind::Source, 0.02, 0.5);
    let row = |index: usize| 0.06 + 0.29 * index as f32;
    let (topic, edge_out, topic_edges, queue_nodes, gauges) = match delivery {
        Delivery::FanOut => {
            let topic = topology.add_node("topic", "SNS topic", NodeKind::Router, 0.17, 0.5);
            let edge_out = topology.add_edge(producer, topic);
            let mut edges = Vec::new();
            let mut nodes = Vec::new();
            for (index, (key, label)) in SERVICES.iter().enumerate() {
                let node = topology.add_node(
                    &format!("queue-{key}"),
                    &format!("{label} queue"),
                    NodeKind::Queue,
                    0.43,
                    row(index),
                );
                edges.push(topology.add_edge(topic, node));
                nodes.push(node);
            }
            let gauges = vec![
                "email_queue_backlog",
                "thumbnail_queue_backlog",
                "analytics_queue_backlog",
                "audit_queue_backlog",
            ];
            (Some(topic), edge_out, edges, nodes, gauges)
        }
        Delivery::PointToPoint => {
            let queue = topology.add_node("queue", "Shared queue", NodeKind::Queue, 0.33, 0.5);
            let edge_out = topology.add_edge(producer, queue);
            (
                None,
                edge_out,
                Vec::new(),
                vec![queue],
                vec!["shared_queue_backlog"],
            )
        }
    };
    let done = topology.add_node("done", "Processed", NodeKind::Sink, 0.97, 0.5);
    let core = ModelCore::new(gauges.clone());
    let queues: Vec<Queue> = queue_nodes
        .iter()
        .zip(&gauges)
        .enumerate()
        .map(|(index, (&node, gauge))| Queue {
            node,
            state: if delivery == Delivery::PointToPoint || index < subscribed {
                NodeState::Healthy
            } else {
                NodeState::Off
            },
            waiting: VecDeque::new(),
            gauge: core.gauge(gauge),
        })
        .collect();
    let mut services = Vec::new();
    for (index, (key, label)) in SERVICES.iter().enumerate() {
        let node = topology.add_node(key, label, NodeKind::Server, 0.72, row(index));
        let queue = if delivery == Delivery::FanOut {
            index
        } else {
            0
        };
        let edge_in = topology.add_edge(queue_nodes[queue], node);
        topology.add_edge(node, done);
        let on = index < subscribed;
        services.push(Service {
            node,
            queue,
            edge_in,
            subscribed: on,
            up: true,
            slowed: false,
            life: 0,
            state: if on {
                NodeState::Healthy
            } else {
                NodeState::Off
            },
            held: [None; MAX_CONSUMERS],
            rng: SimRng::new(seed.0, &format!("processing-{key}")),
            stats: ServiceStats::default(),
        });
    }
    let model = PubSubModel {
        params: params.clone(),
        delivery,
        topology,
        producer,
        topic,
        done,
        edge_out,
        topic_edges,
        queues,
        services,
        copies: Vec::new(),
        published: 0,
        duplicates: 0,
        rotation: 0,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(traffic(params), SimRng::new(seed.0, "arrivals")),
            Event::Publish,
        ),
        core,
    };
    let mut simulation = Simulation::new(model, Scheduler::new());
    simulation.model.arrivals.rearm(&mut simulation.scheduler);
    simulation
}

impl PubSubModel {
    /// Messages the producer has published.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// What service `key` (email, thumbnail, analytics, audit) has received and processed.
    pub fn service_stats(&self, key: &str) -> Option<ServiceStats> {
        let index = SERVICES.iter().position(|(k, _)| *k == key)?;
        let mut stats = self.services[index].stats;
        stats.backlog = match self.delivery {
            Delivery::FanOut => self.queues[index].waiting.len() as u64,
            Delivery::PointToPoint => 0,
        };
        Some(stats)
    }

    /// Visible messages in every queue, in queue order.
    pub fn backlogs(&self) -> Vec<u64> {
        self.queues.iter().map(|q| q.waiting.len() as u64).collect()
    }

    fn copy(&mut self, copy: u32) -> Option<&mut Copy> {
        self.copies.get_mut(copy as usize).and_then(Option::as_mut)
    }

    fn publish(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.published += 1;
        let targets: Vec<u8> = match self.delivery {
            // The topic delivers to the subscriptions that exist at publication.
            Delivery::FanOut => (0..self.services.len())
                .filter(|&s| self.services[s].subscribed)
                .map(|s| s as u8)
                .collect(),
            Delivery::PointToPoint => vec![0],
        };
        let first = self.copies.len() as u32;
        for &queue in &targets {
            self.core.metrics.generated(now);
            let key = self.core.requests.spawn(
                now,
                Place::OnEdge {
                    edge: self.edge_out,
                    depart: now,
                    arrive: now + HOP,
                },
            );
            self.copies.push(Some(Copy {
                key,
                born: now,
                queue,
                receive_count: 0,
                receipt: 0,
                visibility: None,
            }));
        }
        let count = targets.len() as u8;
        let next = match self.delivery {
            Delivery::FanOut => Event::AtTopic { first, count },
            Delivery::PointToPoint => Event::Enqueued { first, count },
        };
        scheduler.schedule_in(HOP, next);
    }

    /// The topic sends each copy on towards its subscription's queue.
    fn at_topic(&mut self, first: u32, count: u8, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        for copy in first..first + count as u32 {
            let Some(entry) = self.copies[copy as usize].as_ref() else {
                continue;
            };
            let edge = self.topic_edges[entry.queue as usize];
            self.core.requests.move_to(
                entry.key,
                Place::OnEdge {
                    edge,
                    depart: now,
                    arrive: now + HOP,
                },
            );
        }
        scheduler.schedule_in(HOP, Event::Enqueued { first, count });
    }

    fn enqueue(&mut self, first: u32, count: u8, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        for copy in first..first + count as u32 {
            let Some(entry) = self.copies[copy as usize].as_ref() else {
                continue;
            };
            let queue = entry.queue as usize;
            self.core.requests.move_to(
                entry.key,
                Place::Queued {
                    node: self.queues[queue].node,
                    since: now,
                },
            );
            self.queues[queue].waiting.push_back(copy);
            self.dispatch(queue, scheduler);
        }
    }

    /// Can service `s` take one more message from its queue now? Returns the free slot.
    fn free_slot(&self, s: usize) -> Option<usize> {
        let service = &self.services[s];
        // A fan-out consumer drains its own queue even after unsubscribing; a
        // point-to-point service that detached takes nothing more from the shared queue.
        let attached = service.subscribed || self.delivery == Delivery::FanOut;
        if !service.up || !attached {
            return None;
        }
        let consumers = (self.params.integer("consumers") as usize).min(MAX_CONSUMERS);
        service.held[..consumers].iter().position(Option::is_none)
    }

    /// Hands visible messages of `queue` to free consumers.
    fn dispatch(&mut self, queue: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        loop {
            if self.queues[queue].waiting.is_empty() {
                break;
            }
            let taker = match self.delivery {
                Delivery::FanOut => self.free_slot(queue).map(|slot| (queue, slot)),
                Delivery::PointToPoint => {
                    // Competing consumers: the next service in turn that has a free one.
                    let n = self.services.len();
                    (0..n)
                        .map(|step| (self.rotation + step) % n)
                        .find_map(|s| self.free_slot(s).map(|slot| (s, slot)))
                }
            };
            let Some((service, slot)) = taker else { break };
            if self.delivery == Delivery::PointToPoint {
                self.rotation = (service + 1) % self.services.len();
            }
            let copy = self.queues[queue]
                .waiting
                .pop_front()
                .expect("checked non-empty");
            self.receive(copy, service, slot, scheduler);
        }
        self.update_gauge(queue, now);
        self.refresh_states(now);
    }

    /// SQS ReceiveMessage by one consumer slot of `service`.
    fn receive(
        &mut self,
        copy: u32,
        service: usize,
        slot: usize,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        let visibility = SimDuration::from_secs_f64(self.params.number("visibility_timeout"));
        let edge = self.services[service].edge_in;
        let Some(entry) = self.copy(copy) else { return };
        entry.receive_count += 1;
        entry.receipt += 1;
        let (key, receipt, first) = (entry.key, entry.receipt, entry.receive_count == 1);
        if let Place::Queued { since, .. } = self.core.requests.get(key).place {
            self.core.metrics.waited(now - since);
        }
        if !first {
            // Delivered again: at-least-once delivery shows up as a duplicate.
            self.duplicates += 1;
            self.core.metrics.duplicated(now);
            self.core.requests.next_attempt(key);
        }
        let timer =
            scheduler.schedule_timer_in(visibility, Event::VisibilityExpired { copy, receipt });
        if let Some(entry) = self.copy(copy) {
            entry.visibility = Some(timer);
        }
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        let state = &mut self.services[service];
        state.stats.deliveries += 1;
        state.stats.first_deliveries += first as u64;
        state.held[slot] = Some((copy, receipt));
        let life = state.life;
        scheduler.schedule_in(
            HOP,
            Event::Started {
                service: service as u8,
                slot: slot as u8,
                life,
            },
        );
    }

    fn start(&mut self, service: usize, slot: usize, life: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let mean = self.params.number("processing_time");
        let slowdown = self.params.number("slowdown");
        let node = self.services[service].node;
        let state = &mut self.services[service];
        if state.life != life {
            return; // crashed while the message was on its way
        }
        let Some((copy, _)) = state.held[slot] else {
            return;
        };
        let base = ServiceTime::LogNormal {
            mean: SimDuration::from_secs_f64(mean),
            cv: PROCESSING_CV,
        }
        .sample(&mut state.rng);
        let duration = if state.slowed {
            SimDuration::from_secs_f64(base.as_secs_f64() * slowdown)
        } else {
            base
        };
        if let Some(key) = self.copy(copy).map(|c| c.key) {
            self.core
                .requests
                .move_to(key, Place::InService { node, since: now });
        }
        scheduler.schedule_in(
            duration,
            Event::Done {
                service: service as u8,
                slot: slot as u8,
                life,
            },
        );
    }

    fn finish(&mut self, service: usize, slot: usize, life: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let state = &mut self.services[service];
        if state.life != life {
            return;
        }
        let Some((copy, _)) = state.held[slot].take() else {
            return;
        };
        state.stats.processing_runs += 1;
        // DeleteMessage. If another consumer already deleted this copy (it was received
        // again after its visibility timeout), the work was simply done twice.
        if let Some(entry) = self.copies[copy as usize].take() {
            if let Some(timer) = entry.visibility {
                scheduler.cancel(timer);
            }
            if let Place::Queued { .. } = self.core.requests.get(entry.key).place {
                // Its timeout had already made it visible again: take it off the queue.
                self.queues[entry.queue as usize]
                    .waiting
                    .retain(|&waiting| waiting != copy);
            }
            self.core.requests.finish(entry.key);
            self.core.metrics.completed(now, now - entry.born);
            self.services[service].stats.processed += 1;
        }
        let queue = self.services[service].queue;
        self.dispatch(queue, scheduler);
    }

    fn visibility_expired(&mut self, copy: u32, receipt: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(entry) = self.copy(copy) else { return };
        if entry.receipt != receipt {
            return;
        }
        entry.visibility = None;
        let (key, queue) = (entry.key, entry.queue as usize);
        // Visible again: back in the queue for any consumer to receive.
        self.core.requests.move_to(
            key,
            Place::Queued {
                node: self.queues[queue].node,
                since: now,
            },
        );
        self.queues[queue].waiting.push_back(copy);
        self.dispatch(queue, scheduler);
    }

    fn crash(
        &mut self,
        service: usize,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        let now = scheduler.now();
        let label = SERVICES[service].1;
        let state = &mut self.services[service];
        if state.state == NodeState::Off {
            return Err(CommandError::NotApplicable {
                reason: format!("{label} is not subscribed: raise subscribers to include it"),
            });
        }
        if !state.up {
            return Err(CommandError::NotApplicable {
                reason: format!("{label} is already down"),
            });
        }
        state.up = false;
        state.life += 1;
        let node = state.node;
        let held: Vec<u32> = state
            .held
            .iter_mut()
            .filter_map(Option::take)
            .map(|(c, _)| c)
            .collect();
        let life = state.life;
        // Not deleted: each held message stays hidden, shown stuck at the dead consumer,
        // until its visibility timeout makes it visible again.
        for copy in held {
            if let Some(key) = self.copy(copy).map(|c| c.key) {
                self.core
                    .requests
                    .move_to(key, Place::InService { node, since: now });
            }
        }
        let delay = SimDuration::from_secs_f64(self.params.number("restart_delay"));
        scheduler.schedule_in(
            delay,
            Event::Restarted {
                service: service as u8,
                life,
            },
        );
        self.refresh_states(now);
        Ok(())
    }

    fn restarted(&mut self, service: usize, life: u32, scheduler: &mut Scheduler<Event>) {
        let state = &mut self.services[service];
        if state.life != life || state.up {
            return;
        }
        state.up = true;
        let queue = state.queue;
        self.dispatch(queue, scheduler);
    }

    /// Sets every node's state from the model and logs each change.
    fn refresh_states(&mut self, now: SimTime) {
        let fan_out = self.delivery == Delivery::FanOut;
        for s in 0..self.services.len() {
            let service = &self.services[s];
            let backlog = fan_out && !self.queues[service.queue].waiting.is_empty();
            let busy = service.held.iter().any(Option::is_some);
            let state = if !service.up {
                NodeState::Down
            } else if !service.subscribed {
                if busy || backlog {
                    NodeState::Draining
                } else {
                    NodeState::Off
                }
            } else if service.slowed {
                NodeState::Unhealthy
            } else {
                NodeState::Healthy
            };
            if state != service.state {
                self.services[s].state = state;
                let node = self.services[s].node;
                self.core
                    .log
                    .push(now, Notable::StateChanged { node, to: state });
            }
            if fan_out {
                let queue = &self.queues[s];
                let state = if self.services[s].subscribed {
                    NodeState::Healthy
                } else if queue.waiting.is_empty() {
                    NodeState::Off
                } else {
                    NodeState::Draining
                };
                if state != queue.state {
                    self.queues[s].state = state;
                    let node = self.queues[s].node;
                    self.core
                        .log
                        .push(now, Notable::StateChanged { node, to: state });
                }
            }
        }
    }

    fn update_gauge(&mut self, queue: usize, now: SimTime) {
        let q = &self.queues[queue];
        self.core
            .metrics
            .set_gauge(q.gauge, now, q.waiting.len() as i64);
    }

    fn set_subscribers(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let count = self.params.integer("subscribers") as usize;
        for (s, service) in self.services.iter_mut().enumerate() {
            service.subscribed = s < count;
        }
        self.refresh_states(now);
        for queue in 0..self.queues.len() {
            self.dispatch(queue, scheduler);
        }
    }
}

impl Model for PubSubModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Publish => {
                self.arrivals.fired();
                self.publish(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtTopic { first, count } => self.at_topic(first, count, scheduler),
            Event::Enqueued { first, count } => self.enqueue(first, count, scheduler),
            Event::Started {
                service,
                slot,
                life,
            } => self.start(service as usize, slot as usize, life, scheduler),
            Event::Done {
                service,
                slot,
                life,
            } => self.finish(service as usize, slot as usize, life, scheduler),
            Event::VisibilityExpired { copy, receipt } => {
                self.visibility_expired(copy, receipt, scheduler)
            }
            Event::Restarted { service, life } => self.restarted(service as usize, life, scheduler),
        }
    }
}

impl LessonModel for PubSubModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.producer));
        if let Some(topic) = self.topic {
            snapshot.nodes.push(plain(topic));
        }
        for queue in &self.queues {
            snapshot.nodes.push(NodeView {
                state: queue.state,
                queued: queue.waiting.len().min(u32::MAX as usize) as u32,
                ..plain(queue.node)
            });
        }
        let consumers = self.params.integer("consumers") as u32;
        for service in &self.services {
            let working = service.up && service.state != NodeState::Off;
            snapshot.nodes.push(NodeView {
                node: service.node,
                state: service.state,
                busy: service.held.iter().filter(|h| h.is_some()).count() as u32,
                capacity: if working { consumers } else { 0 },
                queued: 0,
            });
        }
        snapshot.nodes.push(plain(self.done));
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, _now: SimTime) -> Vec<Figure> {
        let completed = self.core.metrics.counters().completed;
        let factor = if self.published == 0 {
            0.0
        } else {
            completed as f64 / self.published as f64
        };
        let longest = self
            .queues
            .iter()
            .map(|q| q.waiting.len())
            .max()
            .unwrap_or(0);
        let mut figures = vec![
            Figure {
                key: "published",
                label: "Messages published",
                value: self.published as f64,
                unit: "",
            },
            Figure {
                key: "fan_out_factor",
                label: "Processed per published",
                value: factor,
                unit: "×",
            },
            Figure {
                key: "backlog_max",
                label: "Longest queue",
                value: longest as f64,
                unit: "",
            },
            Figure {
                key: "duplicates",
                label: "Duplicate deliveries",
                value: self.duplicates as f64,
                unit: "",
            },
        ];
        const DELIVERIES: [(&str, &str); 4] = [
            ("deliveries_email", "E-mail deliveries"),
            ("deliveries_thumbnail", "Thumbnail deliveries"),
            ("deliveries_analytics", "Analytics deliveries"),
            ("deliveries_audit", "Audit deliveries"),
        ];
        const BACKLOGS: [(&str, &str); 4] = [
            ("backlog_email", "E-mail queue backlog"),
            ("backlog_thumbnail", "Thumbnail queue backlog"),
            ("backlog_analytics", "Analytics queue backlog"),
            ("backlog_audit", "Audit queue backlog"),
        ];
        for (service, (key, label)) in self.services.iter().zip(DELIVERIES) {
            figures.push(Figure {
                key,
                label,
                value: service.stats.deliveries as f64,
                unit: "",
            });
        }
        if self.delivery == Delivery::FanOut {
            for (queue, (key, label)) in self.queues.iter().zip(BACKLOGS) {
                figures.push(Figure {
                    key,
                    label,
                    value: queue.waiting.len() as f64,
                    unit: "",
                });
            }
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
                match id.as_str() {
                    "slow-analytics" => {
                        let analytics = &mut self.services[ANALYTICS];
                        if analytics.state == NodeState::Off {
                            return Err(CommandError::NotApplicable {
                                reason:
                                    "analytics is not subscribed: raise subscribers to 3 or more"
                                        .into(),
                            });
                        }
                        if analytics.slowed {
                            return Err(CommandError::NotApplicable {
                                reason: "analytics is already slowed".into(),
                            });
                        }
                        analytics.slowed = true;
                    }
                    "crash-consumer" => self.crash(THUMBNAIL, scheduler)?,
                    "restore" => {
                        let analytics = &mut self.services[ANALYTICS];
                        if !analytics.slowed {
                            return Err(CommandError::NotApplicable {
                                reason: "analytics already works at normal speed".into(),
                            });
                        }
                        analytics.slowed = false;
                    }
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                self.refresh_states(now);
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "publish_rate" => {
                        self.arrivals.arrivals.set_shape(traffic(&self.params));
                        self.arrivals.rearm(scheduler);
                    }
                    "subscribers" => self.set_subscribers(scheduler),
                    "consumers" => {
                        for queue in 0..self.queues.len() {
                            self.dispatch(queue, scheduler);
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
        }
    }
}
