//! Lesson `queue-load-leveling`: a web tier hands video-processing jobs to workers either
//! directly (tight coupling: a synchronous call through a load balancer, with a timeout)
//! or through a queue (loose coupling: the producer is acknowledged at once and workers
//! drain the backlog at their own pace), under a traffic spike, with worker auto scaling
//! on backlog per instance. Run both values of `coupling` on one seed to compare: the
//! arrivals are identical, so the difference is the pattern alone.
//!
//! Queue semantics follow Amazon SQS standard queues (Amazon SQS Developer Guide,
//! "Amazon SQS visibility timeout", "Using dead-letter queues", "At-least-once delivery"):
//! a received message becomes invisible for the visibility timeout (default 30 s); if it
//! is not deleted in time it becomes visible again and its receive count grows; a receive
//! that would exceed `maxReceiveCount` moves it to the dead-letter queue instead; delivery
//! is at least once, so a slow or crashed consumer causes duplicate deliveries, which an
//! idempotent consumer absorbs without applying the effect twice.
//!
//! Auto scaling follows the AWS guidance "Scaling based on Amazon SQS" (EC2 Auto Scaling
//! User Guide): backlog per instance = visible messages / running instances, with target
//! = acceptable latency / mean processing time; the group launches or terminates
//! instances to approach it, honouring a cooldown, within min and max, and a launched
//! instance takes `launch_delay` before it serves. Cost = instance-seconds × hourly price.
//! Equations and sources: docs/models/queue-load-leveling.md.

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
    id: "queue-load-leveling",
    title: "Queue-based load leveling",
    group: LessonGroup::Messaging,
    summary: "A queue between the web tier and its workers absorbs a spike that a direct call turns into timeouts.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(900),
    build,
    compare: Some("coupling"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "coupling",
        label: "Coupling",
        unit: "",
        help: "queue: producers enqueue and move on (loose, asynchronous); direct: producers call a worker through a load balancer and wait (tight, synchronous).",
        kind: ParamKind::Choice {
            options: &["queue", "direct"],
            default: "queue",
        },
        liveness: Liveness::Restart,
    },
    number("base_rate", "Normal traffic", "jobs/s", "Jobs per second outside the spike.", (0.1, 200.0, 0.1, 1.5)),
    number("spike_multiplier", "Spike size", "×", "How many times normal traffic arrives during the spike.", (1.0, 20.0, 0.5, 4.0)),
    number("spike_start", "Spike starts at", "s", "When the scheduled spike begins.", (0.0, 3600.0, 10.0, 120.0)),
    number("spike_length", "Spike length", "s", "How long the spike lasts.", (1.0, 3600.0, 10.0, 120.0)),
    number("processing_time", "Processing time", "s", "Mean time one worker needs for one job (log-normal, coefficient of variation 0.5).", (0.05, 60.0, 0.05, 1.0)),
    integer("workers_min", "Minimum workers", "", "Workers always running.", (1, 50, 2)),
    integer("workers_max", "Maximum workers", "", "Upper bound of the scaling group (also the slots drawn).", (1, 40, 12)).restart(),
    ParamSpec {
        name: "autoscaling",
        label: "Auto scaling",
        unit: "",
        help: "Scale the worker group on backlog per instance.",
        kind: ParamKind::Toggle { default: true },
        liveness: Liveness::Live,
    },
    number("target_backlog", "Target backlog per worker", "jobs", "Acceptable latency ÷ mean processing time: the backlog one worker may hold.", (1.0, 1000.0, 1.0, 10.0)),
    number("scale_cooldown", "Scaling cooldown", "s", "Minimum time between two scaling actions.", (0.0, 600.0, 5.0, 60.0)),
    number("launch_delay", "Worker launch time", "s", "Time from launching a worker until it takes jobs.", (0.0, 600.0, 5.0, 30.0)),
    number("visibility_timeout", "Visibility timeout", "s", "How long a received message stays hidden before it is delivered again (SQS default 30 s).", (1.0, 900.0, 1.0, 30.0)),
    integer("max_receive_count", "Max receive count", "", "Receives allowed before a message goes to the dead-letter queue.", (1, 20, 3)),
    number("poison_fraction", "Poison messages", "", "Fraction of jobs that always fail processing (they end in the dead-letter queue).", (0.0, 0.5, 0.005, 0.0)),
    ParamSpec {
        name: "idempotent",
        label: "Idempotent consumers",
        unit: "",
        help: "Workers remember processed job ids, so a duplicate delivery has no second effect.",
        kind: ParamKind::Toggle { default: false },
        liveness: Liveness::Live,
    },
    number("direct_timeout", "Producer timeout (direct)", "s", "How long a producer waits for a direct call before it gives up.", (0.1, 120.0, 0.1, 5.0)),
    number("worker_price", "Worker price", "$/h", "Hourly price of one worker instance.", (0.0, 10.0, 0.01, 0.10)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "crash-worker",
        label: "Crash a worker",
        help: "A busy worker dies mid-job; the group launches a replacement.",
    },
    InjectionSpec {
        id: "slow-workers",
        label: "Slow workers down (×4, 2 min)",
        help: "Every job takes four times as long for the next two minutes.",
    },
    InjectionSpec {
        id: "traffic-spike",
        label: "Extra spike (×3, 1 min)",
        help: "Triples the arrival rate for the next minute.",
    },
];

/// Fixed network hop for a job between tiers: short, but long enough to see tokens move.
const HOP: SimDuration = SimDuration::from_millis(150);
/// How often the scaling policy looks at the backlog.
const SCALING_INTERVAL: SimDuration = SimDuration::from_secs(10);
/// Spread of processing times (coefficient of variation).
const PROCESSING_CV: f64 = 0.5;
const SLOW_FACTOR: f64 = 4.0;
const SLOW_LENGTH: SimDuration = SimDuration::from_secs(120);
const EXTRA_SPIKE_FACTOR: f64 = 3.0;
const EXTRA_SPIKE_LENGTH: SimDuration = SimDuration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coupling {
    Queue,
    Direct,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A producer creates a job.
    Arrival,
    /// The job reaches the queue (queue mode) or the load balancer (direct mode).
    Delivered {
        job: u32,
    },
    /// A worker finishes a job (ignored if the worker crashed meanwhile: `life` differs).
    Done {
        worker: u16,
        life: u32,
        job: u32,
    },
    /// A received message's visibility timeout expires.
    VisibilityExpired {
        job: u32,
        receipt: u32,
    },
    /// A direct call's producer gives up.
    ProducerTimeout {
        job: u32,
    },
    /// A launched worker is ready.
    Launched {
        worker: u16,
        life: u32,
    },
    ScalingCheck,
    SlowEnds,
    SpikeEnds,
}

#[derive(Clone, Copy, Debug)]
struct Worker {
    node: NodeId,
    state: NodeState,
    /// Bumped on every launch and crash, so stale completions are ignored.
    life: u32,
    /// (job, receipt) being processed.
    current: Option<(u32, u32)>,
}

#[derive(Clone, Debug)]
struct Job {
    key: RequestKey,
    born: SimTime,
    poison: bool,
    receive_count: u32,
    /// Receipt of the latest receive; a visibility expiry with an older one is stale.
    receipt: u32,
    visibility_timer: Option<TimerHandle>,
    producer_timer: Option<TimerHandle>,
    /// Times the job's effect was applied (more than one = a double effect).
    effects: u32,
}

pub struct LoadLevelingModel {
    params: ParamValues,
    coupling: Coupling,
    topology: Topology,
    producers: NodeId,
    buffer: NodeId,
    dlq: Option<NodeId>,
    done: NodeId,
    edge_in: EdgeId,
    worker_edges: Vec<EdgeId>,
    workers: Vec<Worker>,
    jobs: Vec<Option<Job>>,
    /// Visible messages (queue mode) or waiting calls (direct mode), oldest first.
    waiting: VecDeque<u32>,
    dead_letters: u64,
    duplicate_deliveries: u64,
    double_effects: u64,
    wasted_jobs: u64,
    processed_ids: std::collections::BTreeSet<u32>,
    arrivals: ArrivalTimer<Event>,
    processing_rng: SimRng,
    poison_rng: SimRng,
    slow: bool,
    last_scaling: Option<SimTime>,
    core: ModelCore,
    gauge_waiting: GaugeId,
    gauge_workers: GaugeId,
    gauge_dlq: GaugeId,
    producer_latency: crate::sim::histogram::LatencyHistogram,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn traffic(params: &ParamValues) -> TrafficShape {
    let base = params.number("base_rate");
    TrafficShape::Spike {
        base,
        peak: base * params.number("spike_multiplier"),
        start: SimTime::from_secs_f64(params.number("spike_start")),
        duration: SimDuration::from_secs_f64(params.number("spike_length")),
    }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<LoadLevelingModel> {
    let coupling = if params.choice("coupling") == "direct" {
        Coupling::Direct
    } else {
        Coupling::Queue
    };
    let max_workers = params.integer("workers_max") as usize;
    let mut topology = Topology::default();
    let producers = topology.add_node("producers", "Web tier", NodeKind::Source, 0.03, 0.45);
    let buffer = match coupling {
        Coupling::Queue => topology.add_node("queue", "Job queue", NodeKind::Queue, 0.3, 0.45),
        Coupling::Direct => {
            topology.add_node("balancer", "Load balancer", NodeKind::Router, 0.3, 0.45)
        }
    };
    let dlq = (coupling == Coupling::Queue)
        .then(|| topology.add_node("dlq", "Dead letters", NodeKind::Queue, 0.3, 0.92));
    let done = topology.add_node("done", "Processed", NodeKind::Sink, 0.97, 0.45);
    let edge_in = topology.add_edge(producers, buffer);
    if let Some(dlq) = dlq {
        topology.add_edge(buffer, dlq);
    }
    let mut worker_edges = Vec::new();
    let mut workers = Vec::new();
    // Up to six workers per column, columns left to right.
    let columns = max_workers.div_ceil(6).max(1);
    let rows = max_workers.min(6);
    for index in 0..max_workers {
        let column = index / 6;
        let row = index % 6;
        let x = 0.6 + column as f32 * (0.26 / columns as f32);
        let y = (row as f32 + 0.5) / rows as f32;
        let node = topology.add_node(
            &format!("worker-{}", index + 1),
            &format!("Worker {}", index + 1),
            NodeKind::Server,
            x,
            y,
        );
        worker_edges.push(topology.add_edge(buffer, node));
        topology.add_edge(node, done);
        workers.push(Worker {
            node,
            state: NodeState::Off,
            life: 0,
            current: None,
        });
    }
    let core = ModelCore::new(vec!["queue_depth", "workers", "dead_letters"]);
    let mut model = LoadLevelingModel {
        params: params.clone(),
        coupling,
        producers,
        buffer,
        dlq,
        done,
        edge_in,
        worker_edges,
        workers,
        jobs: Vec::new(),
        waiting: VecDeque::new(),
        dead_letters: 0,
        duplicate_deliveries: 0,
        double_effects: 0,
        wasted_jobs: 0,
        processed_ids: Default::default(),
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(traffic(params), SimRng::new(seed.0, "arrivals")),
            Event::Arrival,
        ),
        processing_rng: SimRng::new(seed.0, "processing"),
        poison_rng: SimRng::new(seed.0, "poison"),
        slow: false,
        last_scaling: None,
        gauge_waiting: core.gauge("queue_depth"),
        gauge_workers: core.gauge("workers"),
        gauge_dlq: core.gauge("dead_letters"),
        core,
        topology,
        producer_latency: crate::sim::histogram::LatencyHistogram::new(
            crate::sim::histogram::PRECISE,
        ),
    };
    let mut scheduler = Scheduler::new();
    let initial = (params.integer("workers_min") as usize).min(max_workers);
    for worker in 0..initial {
        model.workers[worker].state = NodeState::Healthy;
    }
    model.update_worker_gauge(SimTime::ZERO);
    model.arrivals.rearm(&mut scheduler);
    scheduler.schedule_in(SCALING_INTERVAL, Event::ScalingCheck);
    Simulation::new(model, scheduler)
}

impl LoadLevelingModel {
    fn job(&mut self, job: u32) -> Option<&mut Job> {
        self.jobs.get_mut(job as usize).and_then(Option::as_mut)
    }

    fn processing_time(&mut self) -> SimDuration {
        let mean =
            self.params.number("processing_time") * if self.slow { SLOW_FACTOR } else { 1.0 };
        ServiceTime::LogNormal {
            mean: SimDuration::from_secs_f64(mean),
            cv: PROCESSING_CV,
        }
        .sample(&mut self.processing_rng)
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let poison = self
            .poison_rng
            .chance(self.params.number("poison_fraction"));
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.edge_in,
                depart: now,
                arrive: now + HOP,
            },
        );
        let id = self.jobs.len() as u32;
        let producer_timer = (self.coupling == Coupling::Direct).then(|| {
            scheduler.schedule_timer_in(
                SimDuration::from_secs_f64(self.params.number("direct_timeout")),
                Event::ProducerTimeout { job: id },
            )
        });
        self.jobs.push(Some(Job {
            key,
            born: now,
            poison,
            receive_count: 0,
            receipt: 0,
            visibility_timer: None,
            producer_timer,
            effects: 0,
        }));
        scheduler.schedule_in(HOP, Event::Delivered { job: id });
    }

    fn deliver(&mut self, job: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let buffer = self.buffer;
        let Some(entry) = self.job(job) else {
            return; // a direct call whose producer already gave up
        };
        let key = entry.key;
        let born = entry.born;
        self.core.requests.move_to(
            key,
            Place::Queued {
                node: buffer,
                since: now,
            },
        );
        if self.coupling == Coupling::Queue {
            // The producer is acknowledged as soon as the queue has the message.
            self.producer_latency.record(now - born);
        }
        self.waiting.push_back(job);
        self.dispatch(scheduler);
        self.update_waiting_gauge(now);
    }

    /// Hands waiting jobs to idle healthy workers.
    fn dispatch(&mut self, scheduler: &mut Scheduler<Event>) {
        loop {
            let Some(worker) = self
                .workers
                .iter()
                .position(|w| w.state == NodeState::Healthy && w.current.is_none())
            else {
                return;
            };
            let Some(job) = self.waiting.pop_front() else {
                return;
            };
            if self.coupling == Coupling::Queue {
                self.receive(job, worker, scheduler);
            } else {
                self.start_direct(job, worker, scheduler);
            }
        }
    }

    /// SQS ReceiveMessage for one worker.
    fn receive(&mut self, job: u32, worker: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let max_receives = self.params.integer("max_receive_count") as u32;
        let visibility = SimDuration::from_secs_f64(self.params.number("visibility_timeout"));
        let Some(entry) = self.job(job) else { return };
        if entry.receive_count >= max_receives {
            // Past maxReceiveCount: move to the dead-letter queue instead.
            let key = entry.key;
            self.jobs[job as usize] = None;
            self.core.requests.finish(key);
            self.core.metrics.failed(now);
            self.dead_letters += 1;
            self.core
                .metrics
                .set_gauge(self.gauge_dlq, now, self.dead_letters as i64);
            return;
        }
        entry.receive_count += 1;
        entry.receipt += 1;
        let receipt = entry.receipt;
        let key = entry.key;
        let redelivery = entry.receive_count > 1;
        if redelivery {
            self.core.requests.next_attempt(key);
        }
        if let Place::Queued { since, .. } = self.core.requests.get(key).place {
            self.core.metrics.waited(now - since);
        }
        let timer =
            scheduler.schedule_timer_in(visibility, Event::VisibilityExpired { job, receipt });
        if let Some(entry) = self.job(job) {
            entry.visibility_timer = Some(timer);
        }
        self.start_work(job, receipt, worker, scheduler);
    }

    fn start_direct(&mut self, job: u32, worker: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(entry) = self.job(job) else { return };
        let key = entry.key;
        if let Place::Queued { since, .. } = self.core.requests.get(key).place {
            self.core.metrics.waited(now - since);
        }
        self.start_work(job, 0, worker, scheduler);
    }

    fn start_work(
        &mut self,
        job: u32,
        receipt: u32,
        worker: usize,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        let key = self.jobs[job as usize].as_ref().map(|j| j.key);
        if let Some(key) = key {
            self.core.requests.move_to(
                key,
                Place::OnEdge {
                    edge: self.worker_edges[worker],
                    depart: now,
                    arrive: now + HOP,
                },
            );
        }
        let duration = HOP + self.processing_time();
        let state = &mut self.workers[worker];
        state.current = Some((job, receipt));
        let life = state.life;
        scheduler.schedule_in(
            duration,
            Event::Done {
                worker: worker as u16,
                life,
                job,
            },
        );
    }

    fn finish_work(
        &mut self,
        worker: usize,
        life: u32,
        job: u32,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        if self.workers[worker].life != life
            || self.workers[worker].current.map(|(j, _)| j) != Some(job)
        {
            return; // the worker crashed meanwhile
        }
        self.workers[worker].current = None;
        let idempotent = self.params.toggle("idempotent");
        match self.coupling {
            Coupling::Queue => {
                let poison = self.jobs[job as usize].as_ref().map(|j| j.poison);
                match poison {
                    // Processing failed: no delete; the message reappears after its timeout.
                    Some(true) => {}
                    Some(false) => {
                        self.apply_effect(job, idempotent);
                        let entry = self.jobs[job as usize].take().expect("checked above");
                        if let Some(timer) = entry.visibility_timer {
                            scheduler.cancel(timer);
                        }
                        self.core.requests.finish(entry.key);
                        self.core.metrics.completed(now, now - entry.born);
                    }
                    None => {
                        // Already deleted by another worker: a duplicate delivery.
                        self.duplicate_deliveries += 1;
                        self.core.metrics.duplicated(now);
                        self.apply_effect(job, idempotent);
                    }
                }
            }
            Coupling::Direct => match self.jobs[job as usize].take() {
                Some(entry) => {
                    if let Some(timer) = entry.producer_timer {
                        scheduler.cancel(timer);
                    }
                    self.core.requests.finish(entry.key);
                    self.core.metrics.completed(now, now - entry.born);
                    self.producer_latency.record(now - entry.born);
                }
                None => self.wasted_jobs += 1, // the producer had already given up
            },
        }
        self.dispatch(scheduler);
        self.update_waiting_gauge(now);
    }

    /// Applies a job's side effect (the charge, the e-mail...), once per delivery unless
    /// the consumer is idempotent and has seen the job id before.
    fn apply_effect(&mut self, job: u32, idempotent: bool) {
        if idempotent && !self.processed_ids.insert(job) {
            return; // seen before: the idempotent consumer skips the effect
        }
        let effects = match self.jobs.get_mut(job as usize).and_then(Option::as_mut) {
            Some(entry) => {
                entry.effects += 1;
                entry.effects
            }
            None => 2, // applied again after the job was already done
        };
        if effects > 1 {
            self.double_effects += 1;
        }
    }

    fn visibility_expired(&mut self, job: u32, receipt: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let buffer = self.buffer;
        let Some(entry) = self.job(job) else { return };
        if entry.receipt != receipt {
            return;
        }
        entry.visibility_timer = None;
        let key = entry.key;
        self.core.requests.move_to(
            key,
            Place::Queued {
                node: buffer,
                since: now,
            },
        );
        self.waiting.push_back(job);
        self.dispatch(scheduler);
        self.update_waiting_gauge(now);
    }

    fn producer_timeout(&mut self, job: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(entry) = self.jobs.get_mut(job as usize).and_then(Option::take) else {
            return;
        };
        self.waiting.retain(|&waiting| waiting != job);
        self.core.requests.finish(entry.key);
        self.core.metrics.failed(now);
        self.producer_latency.record(now - entry.born);
        self.update_waiting_gauge(now);
    }

    fn running_or_starting(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| matches!(w.state, NodeState::Healthy | NodeState::Starting))
            .count()
    }

    fn launch(&mut self, worker: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let state = &mut self.workers[worker];
        state.life += 1;
        state.current = None;
        state.state = NodeState::Starting;
        let life = state.life;
        let node = state.node;
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Starting,
            },
        );
        let delay = SimDuration::from_secs_f64(self.params.number("launch_delay"));
        scheduler.schedule_in(
            delay,
            Event::Launched {
                worker: worker as u16,
                life,
            },
        );
        self.update_worker_gauge(now);
    }

    fn scaling_check(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(SCALING_INTERVAL, Event::ScalingCheck);
        let min = self.params.integer("workers_min") as usize;
        let max = self.workers.len();
        let current = self.running_or_starting();
        // Replace crashed workers up to the minimum regardless of scaling.
        let autoscaling = self.params.toggle("autoscaling");
        let desired = if autoscaling {
            let target = self.params.number("target_backlog");
            (self.waiting.len() as f64 / target).ceil() as usize
        } else {
            min
        }
        .clamp(min.min(max), max);
        let cooldown = SimDuration::from_secs_f64(self.params.number("scale_cooldown"));
        let cooled = self.last_scaling.is_none_or(|last| now - last >= cooldown);
        if desired > current && (cooled || current < min) {
            for _ in current..desired {
                if let Some(slot) = self
                    .workers
                    .iter()
                    .position(|w| matches!(w.state, NodeState::Off | NodeState::Down))
                {
                    self.launch(slot, scheduler);
                }
            }
            self.last_scaling = Some(now);
        } else if desired < current && cooled {
            // Scale in: stop idle workers first, highest slots first.
            let mut to_stop = current - desired;
            for worker in (0..self.workers.len()).rev() {
                if to_stop == 0 {
                    break;
                }
                let w = self.workers[worker];
                if w.state == NodeState::Healthy && w.current.is_none() {
                    self.workers[worker].state = NodeState::Off;
                    self.core.log.push(
                        now,
                        Notable::StateChanged {
                            node: w.node,
                            to: NodeState::Off,
                        },
                    );
                    to_stop -= 1;
                }
            }
            self.last_scaling = Some(now);
            self.update_worker_gauge(now);
        }
    }

    fn crash_worker(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let victim = self
            .workers
            .iter()
            .position(|w| w.state == NodeState::Healthy && w.current.is_some())
            .or_else(|| {
                self.workers
                    .iter()
                    .position(|w| w.state == NodeState::Healthy)
            })
            .ok_or_else(|| CommandError::NotApplicable {
                reason: "no worker is running to crash".into(),
            })?;
        let worker = &mut self.workers[victim];
        worker.state = NodeState::Down;
        worker.life += 1;
        let lost = worker.current.take();
        let node = worker.node;
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Down,
            },
        );
        if let Some((job, _)) = lost {
            match self.coupling {
                Coupling::Queue => {
                    // Not deleted: the message stays invisible, shown stuck at the dead
                    // worker, until its visibility timeout returns it to the queue.
                    if let Some(entry) = self.job(job) {
                        let key = entry.key;
                        self.core
                            .requests
                            .move_to(key, Place::InService { node, since: now });
                    }
                }
                Coupling::Direct => {
                    // The connection resets: the caller sees an error at once.
                    if let Some(entry) = self.jobs[job as usize].take() {
                        if let Some(timer) = entry.producer_timer {
                            scheduler.cancel(timer);
                        }
                        self.core.requests.finish(entry.key);
                        self.core.metrics.failed(now);
                        self.producer_latency.record(now - entry.born);
                    }
                }
            }
        }
        self.update_worker_gauge(now);
        Ok(())
    }

    fn update_waiting_gauge(&mut self, now: SimTime) {
        self.core
            .metrics
            .set_gauge(self.gauge_waiting, now, self.waiting.len() as i64);
    }

    fn update_worker_gauge(&mut self, now: SimTime) {
        let running = self.running_or_starting() as i64;
        self.core
            .metrics
            .set_gauge(self.gauge_workers, now, running);
    }

    /// Worker-hours so far (running and starting instances are both billed).
    fn worker_hours(&self, now: SimTime) -> f64 {
        let series = self.core.metrics.series();
        series.gauge_run_mean(self.gauge_workers.0, now) * now.as_secs_f64() / 3600.0
    }
}

impl Model for LoadLevelingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::Delivered { job } => self.deliver(job, scheduler),
            Event::Done { worker, life, job } => {
                self.finish_work(worker as usize, life, job, scheduler)
            }
            Event::VisibilityExpired { job, receipt } => {
                self.visibility_expired(job, receipt, scheduler)
            }
            Event::ProducerTimeout { job } => self.producer_timeout(job, scheduler),
            Event::Launched { worker, life } => {
                let state = &mut self.workers[worker as usize];
                if state.life == life && state.state == NodeState::Starting {
                    state.state = NodeState::Healthy;
                    let node = state.node;
                    self.core.log.push(
                        now,
                        Notable::StateChanged {
                            node,
                            to: NodeState::Healthy,
                        },
                    );
                    self.dispatch(scheduler);
                    self.update_waiting_gauge(now);
                }
            }
            Event::ScalingCheck => self.scaling_check(scheduler),
            Event::SlowEnds => self.slow = false,
            Event::SpikeEnds => {
                self.arrivals
                    .arrivals
                    .set_multiplier(1.0)
                    .expect("1 is a valid multiplier");
                self.arrivals.rearm(scheduler);
            }
        }
    }
}

impl LessonModel for LoadLevelingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.producers));
        snapshot.nodes.push(NodeView {
            queued: self.waiting.len() as u32,
            ..plain(self.buffer)
        });
        if let Some(dlq) = self.dlq {
            snapshot.nodes.push(NodeView {
                queued: self.dead_letters.min(u32::MAX as u64) as u32,
                ..plain(dlq)
            });
        }
        snapshot.nodes.push(plain(self.done));
        for worker in &self.workers {
            snapshot.nodes.push(NodeView {
                node: worker.node,
                state: worker.state,
                busy: worker.current.is_some() as u32,
                capacity: matches!(worker.state, NodeState::Healthy) as u32,
                queued: 0,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let hours = self.worker_hours(now);
        vec![
            Figure {
                key: "producer_p99",
                label: "Producer p99 wait",
                value: self.producer_latency.quantile_secs(0.99),
                unit: "s",
            },
            Figure {
                key: "dead_letters",
                label: "Dead letters",
                value: self.dead_letters as f64,
                unit: "",
            },
            Figure {
                key: "double_effects",
                label: "Double effects",
                value: self.double_effects as f64,
                unit: "",
            },
            Figure {
                key: "wasted_jobs",
                label: "Work for callers who gave up",
                value: self.wasted_jobs as f64,
                unit: "",
            },
            Figure {
                key: "worker_hours",
                label: "Worker hours",
                value: hours,
                unit: "h",
            },
            Figure {
                key: "cost",
                label: "Compute cost",
                value: hours * self.params.number("worker_price"),
                unit: "$",
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
                    "crash-worker" => self.crash_worker(scheduler)?,
                    "slow-workers" => {
                        self.slow = true;
                        scheduler.schedule_in(SLOW_LENGTH, Event::SlowEnds);
                    }
                    "traffic-spike" => {
                        self.arrivals
                            .arrivals
                            .set_multiplier(EXTRA_SPIKE_FACTOR)
                            .expect("a constant, valid multiplier");
                        self.arrivals.rearm(scheduler);
                        scheduler.schedule_in(EXTRA_SPIKE_LENGTH, Event::SpikeEnds);
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
                if matches!(
                    spec.name,
                    "base_rate" | "spike_multiplier" | "spike_start" | "spike_length"
                ) {
                    self.arrivals.arrivals.set_shape(traffic(&self.params));
                    self.arrivals.rearm(scheduler);
                }
                Ok(())
            }
        }
    }
}
