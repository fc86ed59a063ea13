//! Lesson `scaling`: one web tier behind a load balancer follows a compressed daily traffic
//! curve (a whole day in `day_length` simulated seconds) under three strategies: `fixed`
//! (N instances provisioned up front), `scale-up` (vertical: one instance resized up a
//! doubling ladder of sizes, each resize a stop/start with downtime, up to a top size) and
//! `target-tracking` (horizontal: an Auto Scaling group keeps average CPU near a target,
//! new instances warm up before they serve, scale-in waits for a cooldown). Sweep
//! `strategy` to tabulate cost, p99 latency and errors on one seed: the arrivals are
//! identical, so the differences are the strategy alone. A `deploy` injection rolls a new
//! version out either by replacing instances from a new image (immutable infrastructure:
//! launch, warm up, then drain and terminate the old ones) or by patching each instance in
//! place (it stops serving while patched).
//!
//! - **Instances.** Size k of the ladder (large, xlarge, 2xlarge, 4xlarge, 8xlarge) has
//!   2·2^k vCPUs and costs `price` × 2^k per hour (EC2 on-demand orders of magnitude:
//!   m5.large ≈ $0.096/h, each size up doubles vCPUs and price). Each vCPU serves one
//!   request at a time (log-normal, mean 200 ms, CV 0.5); requests wait in the instance's
//!   queue, at most 10 per vCPU (about 2 s of work; a full backlog answers 503 at once);
//!   the client gives up after 10 s (failed). CPU = busy vCPUs / vCPUs, integrated over
//!   time.
//! - **Load balancer.** Round robin (the ALB default) over the instances in rotation. A
//!   crashed or restarting instance stays in rotation until its health check notices (two
//!   failed checks 10 s apart = 20 s), so requests sent to it fail meanwhile. With no
//!   instance in rotation every request fails at once (HTTP 503).
//! - **Target tracking** (Amazon EC2 Auto Scaling User Guide, "Target tracking scaling
//!   policies" and "Set the default instance warmup"): every 60 s, desired = ⌈mean busy
//!   vCPUs over the last minute / (target × vCPUs per instance)⌉, clamped to [min, max].
//!   Scale out at once (instances still warming count as capacity, so no double launch);
//!   scale in only when nothing is warming and no scaling happened within the scale-in
//!   cooldown (scale out fast, scale in conservatively). Warming instances are billed but
//!   neither serve nor count in the CPU metric. Scale-in deregisters an instance (it
//!   drains its in-flight requests, then terminates). Failed instances are replaced.
//! - **Scale up** (Amazon EC2 User Guide, "Change the instance type": an EBS-backed
//!   instance must be stopped to change its type): every 60 s, if the instance's CPU over
//!   the last minute exceeds `scale_up_cpu` and it is below `top_size`, it is stopped
//!   (in-flight and queued requests fail), resized for `restart_time` (every request fails,
//!   nothing is billed) and started at the next size. It never scales down by itself. It
//!   is one pet: if it is killed, nothing replaces it until `restore` (a start that takes
//!   `restart_time`).
//! - **Deploy.** `rolling`: the launch template points at a new image; instances are
//!   replaced a batch (⌈n/4⌉) at a time, each new one warms up and only then is an old one
//!   deregistered and drained: capacity never dips, no request fails (the Auto Scaling
//!   instance refresh with launch-before-terminate). `in-place`: a batch at a time, each
//!   instance's service restarts for `patch_time` (in-flight requests fail, the health
//!   check needs 20 s to take it out of rotation); the image is unchanged, so instances
//!   launched later come up outdated (configuration drift). "Pets vs cattle" and
//!   immutable infrastructure follow the seed text 001 and AWS Well-Architected.
//!
//! Cost accrues per instance-second at the size's price; `cost_per_day` scales the
//! compressed day to a real one (× 86 400 / `day_length`). Equations and sources:
//! docs/models/scaling.md.

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
    id: "scaling",
    title: "Scaling: vertical vs horizontal, and auto scaling",
    group: LessonGroup::TrafficAndCompute,
    summary: "Follow a daily traffic curve and a flash spike with a fixed fleet, a bigger instance (scale up) or an Auto Scaling group with target tracking: cost, latency and errors; then deploy by replacing instances instead of patching them.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(3600),
    build,
    compare: None,
    sweep: Some("strategy"),
    breaker_node: None,
};

/// The strategies, in the order the lesson introduces them.
pub const STRATEGIES: &[&str] = &["fixed", "scale-up", "target-tracking"];
/// The size ladder (m5 family names); size k has 2·2^k vCPUs and costs 2^k × the base.
pub const SIZES: &[&str] = &["large", "xlarge", "2xlarge", "4xlarge", "8xlarge"];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "strategy",
        label: "Strategy",
        unit: "",
        help: "fixed: N large instances all day; scale-up: one instance resized to the next size (stop, resize, start) when its CPU is high; target-tracking: an Auto Scaling group of large instances keeps average CPU near the target.",
        kind: ParamKind::Choice {
            options: STRATEGIES,
            default: "target-tracking",
        },
        liveness: Liveness::Restart,
    },
    number("peak_rate", "Peak traffic", "req/s", "Requests per second at the busiest moment of the day (midday).", (0.5, 200.0, 0.5, 40.0)),
    number("trough_rate", "Night traffic", "req/s", "Requests per second at the quietest moment (midnight, the start and end of the day).", (0.0, 200.0, 0.5, 6.0)),
    number("day_length", "Day length", "s", "Simulated seconds that stand for one 24-hour day (the curve repeats every day).", (600.0, 86_400.0, 600.0, 3600.0)),
    integer("fixed_instances", "Fixed fleet size", "", "fixed: how many large instances run all day (8 covers the peak at 50% CPU; 3 covers only the average).", (1, 16, 8)).restart(),
    number("target_cpu", "Target CPU", "%", "target-tracking: the average CPU the group aims for (also the line for 'time over target').", (20.0, 90.0, 5.0, 50.0)),
    number("warmup", "Instance warm-up", "s", "target-tracking: time from launch until a new instance serves and counts in the metric (boot, app start, health checks).", (0.0, 600.0, 10.0, 180.0)),
    number("scale_in_cooldown", "Scale-in cooldown", "s", "target-tracking: no scale-in until this long after the last scaling activity.", (0.0, 1800.0, 30.0, 300.0)),
    integer("min_instances", "Minimum instances", "", "target-tracking: the group never goes below this.", (1, 16, 2)),
    integer("max_instances", "Maximum instances", "", "target-tracking: the group never goes above this (also the slots drawn).", (1, 24, 16)).restart(),
    number("scale_up_cpu", "Resize above CPU", "%", "scale-up: resize to the next size when the last minute's CPU is above this.", (30.0, 100.0, 5.0, 70.0)),
    ParamSpec {
        name: "top_size",
        label: "Largest size",
        unit: "",
        help: "scale-up: the biggest instance size allowed (large 2 vCPUs … 8xlarge 32 vCPUs); past it, only latency grows.",
        kind: ParamKind::Choice {
            options: SIZES,
            default: "4xlarge",
        },
        liveness: Liveness::Live,
    },
    number("restart_time", "Stop/start time", "s", "scale-up: downtime of one resize (stop, change type, start), and of a restore.", (10.0, 600.0, 10.0, 90.0)),
    ParamSpec {
        name: "deploy_mode",
        label: "Deploy by",
        unit: "",
        help: "rolling: launch instances from the new image, wait for warm-up, then drain and terminate old ones (immutable); in-place: patch each running instance, which stops serving meanwhile.",
        kind: ParamKind::Choice {
            options: &["rolling", "in-place"],
            default: "rolling",
        },
        liveness: Liveness::Live,
    },
    number("patch_time", "Patch time", "s", "in-place deploy: how long one instance is out of service while it is patched and restarted.", (30.0, 600.0, 10.0, 120.0)),
    number("price", "Price of a large", "$/h", "On-demand price per hour of the smallest size (m5.large ≈ $0.096); each size up costs double.", (0.001, 5.0, 0.001, 0.096)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "flash-spike",
        label: "Flash spike (×3, 10 min)",
        help: "Triples the traffic for the next ten minutes.",
    },
    InjectionSpec {
        id: "kill-instance",
        label: "Kill an instance",
        help: "One serving instance dies; its requests fail. A group replaces it; a lone instance stays down until restored.",
    },
    InjectionSpec {
        id: "deploy",
        label: "Deploy a new version",
        help: "Roll a new version out, by replacing instances from the new image (rolling) or patching them in place (see 'Deploy by').",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore the instance",
        help: "scale-up: start the killed instance again (takes the stop/start time).",
    },
];

/// Network hop from users to the load balancer.
const HOP_IN: SimDuration = SimDuration::from_millis(20);
/// Network hop from the load balancer to an instance.
const HOP_LB: SimDuration = SimDuration::from_millis(10);
/// Mean CPU time of one request on one vCPU.
pub const SERVICE_MEAN: SimDuration = SimDuration::from_millis(200);
const SERVICE_CV: f64 = 0.5;
/// Each instance queues at most this many requests per vCPU (about 2 s of work); beyond
/// that it refuses at once, so an overloaded instance still serves at full speed instead
/// of working only on requests whose clients have already given up.
pub const QUEUE_PER_VCPU: u32 = 10;
/// Clients give up after this long.
pub const CLIENT_TIMEOUT: SimDuration = SimDuration::from_secs(10);
/// Time for the load balancer's health check to take a broken instance out of rotation
/// (two failed checks 10 s apart).
pub const HEALTH_DETECT: SimDuration = SimDuration::from_secs(20);
/// Gauges and the CPU sample are taken this often.
pub const SAMPLE: SimDuration = SimDuration::from_secs(10);
/// The scaling policies look at the last minute this often.
pub const POLICY_PERIOD: SimDuration = SimDuration::from_secs(60);
pub const FLASH_FACTOR: f64 = 3.0;
pub const FLASH_LENGTH: SimDuration = SimDuration::from_secs(600);
/// Rate steps per day of the daily curve, and days the curve is drawn for (then flat).
const STEPS_PER_DAY: usize = 48;
const CURVE_DAYS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Fixed,
    ScaleUp,
    TargetTracking,
}

/// What an instance slot is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No instance in this slot.
    Off,
    /// Launched, booting and warming up: billed, not serving.
    Warming,
    /// In rotation and serving.
    InService,
    /// Deregistered: finishes what it holds, then terminates.
    Draining,
    /// Stopped for a resize: not billed, not serving.
    Resizing,
    /// Being patched in place; in rotation until the health check notices (`detected`).
    Patching { detected: bool },
    /// Crashed; in rotation until the health check notices.
    Killed { detected: bool },
}

impl Phase {
    fn node_state(self) -> NodeState {
        match self {
            Phase::Off => NodeState::Off,
            Phase::Warming => NodeState::Starting,
            Phase::InService => NodeState::Healthy,
            Phase::Draining => NodeState::Draining,
            Phase::Patching { detected: false } => NodeState::Unhealthy,
            Phase::Resizing | Phase::Patching { .. } | Phase::Killed { .. } => NodeState::Down,
        }
    }

    fn billed(self) -> bool {
        matches!(
            self,
            Phase::Warming | Phase::InService | Phase::Draining | Phase::Patching { .. }
        )
    }

    /// Still a member of the fleet's capacity (what the group counts).
    fn capacity(self) -> bool {
        matches!(
            self,
            Phase::Warming
                | Phase::InService
                | Phase::Patching { .. }
                | Phase::Killed { detected: false }
        )
    }

    /// The load balancer still sends requests here.
    fn in_rotation(self) -> bool {
        matches!(
            self,
            Phase::InService
                | Phase::Patching { detected: false }
                | Phase::Killed { detected: false }
        )
    }

    /// Counted in the CPU metric.
    fn measured(self) -> bool {
        matches!(self, Phase::InService | Phase::Draining)
    }
}

/// One instance's life, for tests and the model note: when it was launched, when it
/// became able to serve, and when it served its first request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaunchRecord {
    pub slot: usize,
    pub launched: SimTime,
    pub warm: Option<SimTime>,
    pub first_served: Option<SimTime>,
}

#[derive(Clone, Debug)]
struct Instance {
    node: NodeId,
    edge: EdgeId,
    phase: Phase,
    /// Bumped whenever the running software is reset, so stale events are ignored.
    life: u32,
    size: usize,
    version: u32,
    /// Requests on its vCPUs (including ones whose client gave up meanwhile).
    serving: Vec<u32>,
    queue: VecDeque<u32>,
    /// Requests on their way from the load balancer: a draining instance waits for them
    /// (the load balancer's deregistration delay).
    inbound: u32,
    /// Index into `launches`.
    record: usize,
    /// Launched by a rolling deploy to replace an old instance.
    replacement: bool,
}

impl Instance {
    fn vcpus(&self) -> u32 {
        2 << self.size
    }

    fn busy(&self) -> u32 {
        self.serving.len() as u32
    }
}

#[derive(Clone, Copy, Debug)]
struct Req {
    key: RequestKey,
    born: SimTime,
    timer: TimerHandle,
    /// Slot queued at or served by, once routed.
    at: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeployMode {
    Rolling,
    InPlace,
}

#[derive(Clone, Copy, Debug)]
struct Deploy {
    mode: DeployMode,
    started: SimTime,
    batch: usize,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    AtBalancer { req: u32 },
    AtInstance { req: u32, slot: u16, life: u32 },
    Done { req: u32, slot: u16, life: u32 },
    Timeout { req: u32 },
    Warm { slot: u16, life: u32 },
    ResizeDone { slot: u16, life: u32 },
    PatchDetected { slot: u16, life: u32 },
    PatchDone { slot: u16, life: u32 },
    KillDetected { slot: u16, life: u32 },
    Sample,
    SpikeEnds,
}

pub struct ScalingModel {
    params: ParamValues,
    strategy: Strategy,
    topology: Topology,
    users: NodeId,
    balancer: NodeId,
    edge_in: EdgeId,
    instances: Vec<Instance>,
    launches: Vec<LaunchRecord>,
    reqs: Vec<Option<Req>>,
    arrivals: ArrivalTimer<Event>,
    service: ServiceTime,
    service_rng: SimRng,
    chaos_rng: SimRng,
    cursor: usize,
    /// Desired capacity of the group (fixed and target tracking).
    desired: usize,
    last_scale_out: Option<SimTime>,
    last_scale_in: Option<SimTime>,
    /// Image version new instances launch from, and the version being deployed.
    image_version: u32,
    target_version: u32,
    deploy: Option<Deploy>,
    last_deploy_s: f64,
    failed_during_deploy: u64,
    spiking: bool,
    // Integrals since the start, updated at every change (`account`).
    last_account: SimTime,
    busy_area: f64,
    cap_area: f64,
    cost: f64,
    resize_down: f64,
    // Snapshots of the integrals at the last sample and the last policy evaluation.
    sample_mark: (f64, f64),
    policy_mark: (f64, f64),
    samples: u64,
    over_target_s: f64,
    cpu_samples: Vec<(SimTime, f64)>,
    resizes: Vec<SimTime>,
    scale_actions: Vec<(SimTime, i32)>,
    peak_instances: usize,
    core: ModelCore,
    gauge_cpu: GaugeId,
    gauge_instances: GaugeId,
    gauge_vcpus: GaugeId,
    gauge_waiting: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

pub fn strategy_of(params: &ParamValues) -> Strategy {
    match params.choice("strategy") {
        "fixed" => Strategy::Fixed,
        "scale-up" => Strategy::ScaleUp,
        _ => Strategy::TargetTracking,
    }
}

/// The daily curve: `trough + (peak − trough) × (1 − cos 2πt/day) / 2`, lowest at midnight
/// and highest at midday, as `STEPS_PER_DAY` constant steps per day (each at its
/// midpoint's rate), drawn for `CURVE_DAYS` days and flat afterwards.
pub fn daily_curve(params: &ParamValues) -> TrafficShape {
    let (peak, trough) = (params.number("peak_rate"), params.number("trough_rate"));
    let day = params.number("day_length");
    let step = day / STEPS_PER_DAY as f64;
    let steps = (0..STEPS_PER_DAY * CURVE_DAYS)
        .map(|index| {
            let phase = ((index % STEPS_PER_DAY) as f64 + 0.5) / STEPS_PER_DAY as f64;
            let shape = (1.0 - libm::cos(2.0 * std::f64::consts::PI * phase)) / 2.0;
            (
                SimTime::from_secs_f64(index as f64 * step),
                trough + (peak - trough) * shape,
            )
        })
        .collect();
    TrafficShape::Steps(steps)
}

/// Hourly price of size `size` given the price of the smallest.
pub fn hourly_price(base: f64, size: usize) -> f64 {
    base * (1u32 << size) as f64
}

fn size_index(word: &str) -> usize {
    SIZES.iter().position(|size| *size == word).unwrap_or(0)
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<ScalingModel> {
    let strategy = strategy_of(params);
    let fleet = match strategy {
        Strategy::Fixed => params.integer("fixed_instances") as usize,
        Strategy::ScaleUp => 1,
        Strategy::TargetTracking => params.integer("max_instances") as usize,
    };
    // Room for a rolling deploy's extra batch.
    let slots = fleet + fleet.div_ceil(4);
    let mut topology = Topology::default();
    let users = topology.add_node("users", "Users", NodeKind::Source, 0.04, 0.5);
    let balancer = topology.add_node("balancer", "Load balancer", NodeKind::Router, 0.3, 0.5);
    let edge_in = topology.add_edge(users, balancer);
    let rows = slots.min(5);
    let columns = slots.div_ceil(5);
    let mut instances = Vec::with_capacity(slots);
    for index in 0..slots {
        let (column, row) = (index / 5, index % 5);
        let x = if columns == 1 {
            0.75
        } else {
            0.55 + column as f32 * (0.4 / (columns - 1) as f32)
        };
        let y = (row as f32 + 0.5) / rows as f32;
        let node = topology.add_node(
            &format!("instance-{}", index + 1),
            &format!("Instance {}", index + 1),
            NodeKind::Server,
            x,
            y,
        );
        let edge = topology.add_edge(balancer, node);
        instances.push(Instance {
            node,
            edge,
            phase: Phase::Off,
            life: 0,
            size: 0,
            version: 1,
            serving: Vec::new(),
            inbound: 0,
            queue: VecDeque::new(),
            record: 0,
            replacement: false,
        });
    }
    let core = ModelCore::new(vec!["cpu_percent", "instances", "vcpus", "waiting"]);
    let initial = match strategy {
        Strategy::Fixed => fleet,
        Strategy::ScaleUp => 1,
        Strategy::TargetTracking => (params.integer("min_instances") as usize).min(fleet),
    };
    let mut model = ScalingModel {
        params: params.clone(),
        strategy,
        users,
        balancer,
        edge_in,
        instances,
        launches: Vec::new(),
        reqs: Vec::new(),
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(daily_curve(params), SimRng::new(seed.0, "arrivals")),
            Event::Arrival,
        ),
        service: ServiceTime::LogNormal {
            mean: SERVICE_MEAN,
            cv: SERVICE_CV,
        },
        service_rng: SimRng::new(seed.0, "service"),
        chaos_rng: SimRng::new(seed.0, "chaos"),
        cursor: 0,
        desired: initial,
        last_scale_out: None,
        last_scale_in: None,
        image_version: 1,
        target_version: 1,
        deploy: None,
        last_deploy_s: 0.0,
        failed_during_deploy: 0,
        spiking: false,
        last_account: SimTime::ZERO,
        busy_area: 0.0,
        cap_area: 0.0,
        cost: 0.0,
        resize_down: 0.0,
        sample_mark: (0.0, 0.0),
        policy_mark: (0.0, 0.0),
        samples: 0,
        over_target_s: 0.0,
        cpu_samples: Vec::new(),
        resizes: Vec::new(),
        scale_actions: Vec::new(),
        peak_instances: 0,
        gauge_cpu: core.gauge("cpu_percent"),
        gauge_instances: core.gauge("instances"),
        gauge_vcpus: core.gauge("vcpus"),
        gauge_waiting: core.gauge("waiting"),
        core,
        topology,
    };
    for slot in 0..initial {
        let instance = &mut model.instances[slot];
        instance.phase = Phase::InService;
        instance.record = model.launches.len();
        model.launches.push(LaunchRecord {
            slot,
            launched: SimTime::ZERO,
            warm: Some(SimTime::ZERO),
            first_served: None,
        });
    }
    model.update_gauges(SimTime::ZERO);
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    scheduler.schedule_in(SAMPLE, Event::Sample);
    Simulation::new(model, scheduler)
}

impl ScalingModel {
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Every instance launched so far (the initial ones at time zero, warm at once).
    pub fn launches(&self) -> &[LaunchRecord] {
        &self.launches
    }

    /// Fleet CPU (0–1) of each 10 s sample in which some instance served.
    pub fn cpu_samples(&self) -> &[(SimTime, f64)] {
        &self.cpu_samples
    }

    /// When each resize (scale-up) started.
    pub fn resizes(&self) -> &[SimTime] {
        &self.resizes
    }

    /// Each change of the group's desired capacity: (time, +launched or −drained).
    pub fn scale_actions(&self) -> &[(SimTime, i32)] {
        &self.scale_actions
    }

    /// Phase and size of each slot.
    pub fn slots(&self) -> Vec<(Phase, usize)> {
        self.instances.iter().map(|i| (i.phase, i.size)).collect()
    }

    /// Mean CPU (0–1) over the whole run, over the time instances were measured.
    pub fn mean_cpu(&self) -> f64 {
        if self.cap_area > 0.0 {
            self.busy_area / self.cap_area
        } else {
            0.0
        }
    }

    /// Brings the time integrals (busy vCPUs, measured vCPUs, cost, resize downtime) up
    /// to `now`. Called before anything they integrate changes.
    fn account(&mut self, now: SimTime) {
        let dt = (now - self.last_account).as_secs_f64();
        self.last_account = now;
        if dt <= 0.0 {
            return;
        }
        let base = self.params.number("price");
        for instance in &self.instances {
            if instance.phase.measured() {
                self.busy_area += instance.busy() as f64 * dt;
                self.cap_area += instance.vcpus() as f64 * dt;
            }
            if instance.phase.billed() {
                self.cost += hourly_price(base, instance.size) * dt / 3600.0;
            }
            if instance.phase == Phase::Resizing {
                self.resize_down += dt;
            }
        }
    }

    fn set_phase(&mut self, slot: usize, phase: Phase, now: SimTime) {
        self.account(now);
        let instance = &mut self.instances[slot];
        let before = instance.phase.node_state();
        instance.phase = phase;
        if phase.node_state() != before {
            let node = instance.node;
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node,
                    to: phase.node_state(),
                },
            );
        }
        self.update_gauges(now);
    }

    fn update_gauges(&mut self, now: SimTime) {
        let billed = self.instances.iter().filter(|i| i.phase.billed()).count();
        self.peak_instances = self.peak_instances.max(billed);
        let vcpus: u32 = self
            .instances
            .iter()
            .filter(|i| i.phase == Phase::InService)
            .map(Instance::vcpus)
            .sum();
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_instances, now, billed as i64);
        metrics.set_gauge(self.gauge_vcpus, now, vcpus as i64);
    }

    fn update_waiting(&mut self, now: SimTime) {
        let waiting: usize = self.instances.iter().map(|i| i.queue.len()).sum();
        self.core
            .metrics
            .set_gauge(self.gauge_waiting, now, waiting as i64);
    }

    fn fail(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        if let Some(entry) = self.reqs[req as usize].take() {
            scheduler.cancel(entry.timer);
            self.core.requests.finish(entry.key);
            self.core.metrics.failed(now);
            if self.deploy.is_some() {
                self.failed_during_deploy += 1;
            }
        }
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.edge_in,
                depart: now,
                arrive: now + HOP_IN,
            },
        );
        let req = self.reqs.len() as u32;
        let timer = scheduler.schedule_timer_in(CLIENT_TIMEOUT, Event::Timeout { req });
        self.reqs.push(Some(Req {
            key,
            born: now,
            timer,
            at: None,
        }));
        scheduler.schedule_in(HOP_IN, Event::AtBalancer { req });
    }

    /// Round robin over the instances in rotation.
    fn route(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(entry) = self.reqs[req as usize] else {
            return;
        };
        let count = self.instances.len();
        let target = (1..=count)
            .map(|step| (self.cursor + step) % count)
            .find(|&slot| self.instances[slot].phase.in_rotation());
        let Some(slot) = target else {
            // No healthy target: the load balancer answers 503 at once.
            self.fail(req, now, scheduler);
            return;
        };
        self.cursor = slot;
        let instance = &mut self.instances[slot];
        instance.inbound += 1;
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: instance.edge,
                depart: now,
                arrive: now + HOP_LB,
            },
        );
        scheduler.schedule_in(
            HOP_LB,
            Event::AtInstance {
                req,
                slot: slot as u16,
                life: instance.life,
            },
        );
    }

    fn at_instance(&mut self, req: u32, slot: usize, life: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.instances[slot].inbound -= 1;
        let Some(entry) = self.reqs[req as usize].as_mut() else {
            self.maybe_terminate(slot, now, scheduler);
            return;
        };
        let instance = &mut self.instances[slot];
        if instance.life != life || !matches!(instance.phase, Phase::InService | Phase::Draining) {
            // Crashed, restarting or stopped: connection refused.
            self.fail(req, now, scheduler);
            return;
        }
        entry.at = Some(slot as u16);
        let key = entry.key;
        let node = instance.node;
        if instance.busy() < instance.vcpus() {
            self.start(req, slot, now, scheduler);
        } else if instance.queue.len() >= (instance.vcpus() * QUEUE_PER_VCPU) as usize {
            // The accept backlog is full: the server answers 503 at once.
            self.fail(req, now, scheduler);
        } else {
            instance.queue.push_back(req);
            self.core
                .requests
                .move_to(key, Place::Queued { node, since: now });
            self.update_waiting(now);
        }
    }

    fn start(&mut self, req: u32, slot: usize, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.account(now);
        let Some(entry) = self.reqs[req as usize] else {
            return;
        };
        if let Place::Queued { since, .. } = self.core.requests.get(entry.key).place {
            self.core.metrics.waited(now - since);
        } else {
            self.core.metrics.waited(SimDuration::ZERO);
        }
        let instance = &mut self.instances[slot];
        instance.serving.push(req);
        let record = &mut self.launches[instance.record];
        record.first_served.get_or_insert(now);
        self.core.requests.move_to(
            entry.key,
            Place::InService {
                node: instance.node,
                since: now,
            },
        );
        let life = instance.life;
        let duration = self.service.sample(&mut self.service_rng);
        scheduler.schedule_in(
            duration,
            Event::Done {
                req,
                slot: slot as u16,
                life,
            },
        );
    }

    fn done(&mut self, req: u32, slot: usize, life: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.instances[slot].life != life {
            return; // the instance was reset; the request already failed
        }
        self.account(now);
        let serving = &mut self.instances[slot].serving;
        if let Some(position) = serving.iter().position(|&r| r == req) {
            serving.swap_remove(position);
        }
        if let Some(entry) = self.reqs[req as usize].take() {
            scheduler.cancel(entry.timer);
            self.core.requests.finish(entry.key);
            self.core.metrics.completed(now, now - entry.born);
        }
        if let Some(next) = self.instances[slot].queue.pop_front() {
            self.start(next, slot, now, scheduler);
            self.update_waiting(now);
        }
        self.maybe_terminate(slot, now, scheduler);
    }

    fn timeout(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(entry) = self.reqs[req as usize] else {
            return;
        };
        if let Some(slot) = entry.at {
            let queue = &mut self.instances[slot as usize].queue;
            if let Some(position) = queue.iter().position(|&r| r == req) {
                queue.remove(position);
                self.update_waiting(now);
            }
        }
        // In service: the vCPU finishes the abandoned work anyway.
        self.fail(req, now, scheduler);
    }

    /// Fails what an instance holds (its software stopped) and forgets its pending work.
    fn reset(&mut self, slot: usize, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.account(now);
        let instance = &mut self.instances[slot];
        instance.life += 1;
        let held: Vec<u32> = instance
            .serving
            .drain(..)
            .chain(instance.queue.drain(..))
            .collect();
        for req in held {
            self.fail(req, now, scheduler);
        }
        self.update_waiting(now);
    }

    fn maybe_terminate(&mut self, slot: usize, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let instance = &self.instances[slot];
        if instance.phase == Phase::Draining
            && instance.serving.is_empty()
            && instance.queue.is_empty()
            && instance.inbound == 0
        {
            self.set_phase(slot, Phase::Off, now);
            self.check_deploy_done(now, scheduler);
        }
    }

    fn launch(
        &mut self,
        slot: usize,
        size: usize,
        replacement: bool,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        let version = self.image_version;
        let record = self.launches.len();
        self.launches.push(LaunchRecord {
            slot,
            launched: now,
            warm: None,
            first_served: None,
        });
        let instance = &mut self.instances[slot];
        instance.life += 1;
        instance.serving.clear();
        instance.queue.clear();
        instance.size = size;
        instance.version = version;
        instance.record = record;
        instance.replacement = replacement;
        let life = instance.life;
        self.set_phase(slot, Phase::Warming, now);
        let warmup = match self.strategy {
            // A lone instance's replacement boots like a restart.
            Strategy::ScaleUp => self.params.number("restart_time"),
            _ => self.params.number("warmup"),
        };
        scheduler.schedule_in(
            SimDuration::from_secs_f64(warmup),
            Event::Warm {
                slot: slot as u16,
                life,
            },
        );
    }

    /// A free slot: a terminated instance's first (the replacement takes its place),
    /// then an empty one.
    fn free_slot(&self) -> Option<usize> {
        self.instances
            .iter()
            .position(|i| i.phase == Phase::Killed { detected: true })
            .or_else(|| self.instances.iter().position(|i| i.phase == Phase::Off))
    }

    fn warm(&mut self, slot: usize, life: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let instance = &self.instances[slot];
        if instance.life != life || instance.phase != Phase::Warming {
            return;
        }
        self.launches[instance.record].warm = Some(now);
        let replacement = instance.replacement;
        self.set_phase(slot, Phase::InService, now);
        if replacement && self.deploy.is_some() {
            // Its replacement serves: deregister one old instance, which drains.
            let old = self
                .instances
                .iter()
                .position(|i| i.phase == Phase::InService && i.version < self.target_version);
            if let Some(old) = old {
                self.set_phase(old, Phase::Draining, now);
                self.maybe_terminate(old, now, scheduler);
            }
        }
        self.roll(scheduler);
    }

    fn capacity(&self) -> usize {
        self.instances.iter().filter(|i| i.phase.capacity()).count()
    }

    /// Every 10 s: CPU sample and chart gauges, the group's actions, and every minute the
    /// scaling policy.
    fn sample(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(SAMPLE, Event::Sample);
        self.account(now);
        let (busy, cap) = (
            self.busy_area - self.sample_mark.0,
            self.cap_area - self.sample_mark.1,
        );
        self.sample_mark = (self.busy_area, self.cap_area);
        if cap > 0.0 {
            let cpu = busy / cap;
            self.cpu_samples.push((now, cpu));
            if cpu * 100.0 > self.params.number("target_cpu") {
                self.over_target_s += SAMPLE.as_secs_f64();
            }
            self.core
                .metrics
                .set_gauge(self.gauge_cpu, now, (cpu * 100.0).round() as i64);
        }
        self.samples += 1;
        if self.samples % (POLICY_PERIOD.ticks() / SAMPLE.ticks()) == 0 {
            self.policy(now, scheduler);
        }
        if self.strategy != Strategy::ScaleUp {
            self.group(scheduler);
        }
        self.roll(scheduler);
    }

    fn policy(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let (busy, cap) = (
            self.busy_area - self.policy_mark.0,
            self.cap_area - self.policy_mark.1,
        );
        self.policy_mark = (self.busy_area, self.cap_area);
        let period = POLICY_PERIOD.as_secs_f64();
        match self.strategy {
            Strategy::Fixed => {}
            Strategy::ScaleUp => {
                let Some(slot) = self
                    .instances
                    .iter()
                    .position(|i| i.phase == Phase::InService)
                else {
                    return;
                };
                let instance = &self.instances[slot];
                // Only a full minute of measurement at this size counts.
                let full = cap >= instance.vcpus() as f64 * period * 0.999;
                let top = size_index(self.params.choice("top_size"));
                let cpu = if cap > 0.0 { busy / cap } else { 0.0 };
                if full
                    && self.deploy.is_none()
                    && instance.size < top
                    && cpu * 100.0 > self.params.number("scale_up_cpu")
                {
                    self.resizes.push(now);
                    self.reset(slot, now, scheduler);
                    let life = self.instances[slot].life;
                    self.set_phase(slot, Phase::Resizing, now);
                    scheduler.schedule_in(
                        SimDuration::from_secs_f64(self.params.number("restart_time")),
                        Event::ResizeDone {
                            slot: slot as u16,
                            life,
                        },
                    );
                }
            }
            Strategy::TargetTracking => {
                if cap <= 0.0 {
                    return; // nothing measured (every instance warming or down)
                }
                let target = self.params.number("target_cpu") / 100.0;
                let per_instance = 2.0; // large instances
                let min = self.params.integer("min_instances") as usize;
                let max = self.params.integer("max_instances") as usize;
                let wanted = ((busy / period) / (target * per_instance) - 1e-9)
                    .ceil()
                    .max(0.0) as usize;
                let wanted = wanted.clamp(min.min(max), max);
                let capacity = self.capacity();
                if wanted > capacity {
                    self.desired = wanted;
                    self.last_scale_out = Some(now);
                } else if wanted < capacity {
                    let cooldown =
                        SimDuration::from_secs_f64(self.params.number("scale_in_cooldown"));
                    let cooled = [self.last_scale_in, self.last_scale_out]
                        .iter()
                        .all(|last| last.is_none_or(|last| now - last >= cooldown));
                    let warming = self.instances.iter().any(|i| i.phase == Phase::Warming);
                    if cooled && !warming && self.deploy.is_none() {
                        self.desired = wanted;
                        self.last_scale_in = Some(now);
                    }
                }
            }
        }
    }

    /// The group: replace what failed and move towards the desired capacity.
    fn group(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.strategy == Strategy::TargetTracking {
            let min = self.params.integer("min_instances") as usize;
            self.desired = self.desired.max(min.min(self.instances.len()));
        }
        let capacity = self.capacity();
        if capacity < self.desired {
            let mut launched = 0;
            for _ in capacity..self.desired {
                let Some(slot) = self.free_slot() else { break };
                self.launch(slot, 0, false, scheduler);
                launched += 1;
            }
            if launched > 0 {
                self.scale_actions.push((now, launched));
            }
        } else if capacity > self.desired && self.deploy.is_none() {
            // Scale in: deregister serving instances, last slots first.
            let mut drained = 0;
            for slot in (0..self.instances.len()).rev() {
                if capacity - drained == self.desired {
                    break;
                }
                if self.instances[slot].phase == Phase::InService {
                    self.set_phase(slot, Phase::Draining, now);
                    self.maybe_terminate(slot, now, scheduler);
                    drained += 1;
                }
            }
            if drained > 0 {
                self.scale_actions.push((now, -(drained as i32)));
            }
        }
    }

    /// A running deploy's next step.
    fn roll(&mut self, scheduler: &mut Scheduler<Event>) {
        let Some(deploy) = self.deploy else { return };
        let now = scheduler.now();
        let target = self.target_version;
        match deploy.mode {
            DeployMode::Rolling => {
                let old = self
                    .instances
                    .iter()
                    .filter(|i| i.phase == Phase::InService && i.version < target)
                    .count();
                let coming = self
                    .instances
                    .iter()
                    .filter(|i| i.phase == Phase::Warming && i.replacement)
                    .count();
                let size = self
                    .instances
                    .iter()
                    .filter(|i| i.phase == Phase::InService && i.version < target)
                    .map(|i| i.size)
                    .max()
                    .unwrap_or(0);
                for _ in coming..old.min(deploy.batch) {
                    let Some(slot) = self.free_slot() else { break };
                    self.launch(slot, size, true, scheduler);
                }
            }
            DeployMode::InPlace => {
                let patching = self
                    .instances
                    .iter()
                    .filter(|i| matches!(i.phase, Phase::Patching { .. }))
                    .count();
                if patching > 0 {
                    return;
                }
                let old: Vec<usize> = (0..self.instances.len())
                    .filter(|&slot| {
                        let i = &self.instances[slot];
                        i.phase == Phase::InService && i.version < target
                    })
                    .take(deploy.batch)
                    .collect();
                for slot in old {
                    // The service restarts: what it held fails; the load balancer keeps
                    // sending requests until the health check notices.
                    self.reset(slot, now, scheduler);
                    let life = self.instances[slot].life;
                    self.set_phase(slot, Phase::Patching { detected: false }, now);
                    let (slot16, patch) = (
                        slot as u16,
                        SimDuration::from_secs_f64(self.params.number("patch_time")),
                    );
                    scheduler
                        .schedule_in(HEALTH_DETECT, Event::PatchDetected { slot: slot16, life });
                    scheduler.schedule_in(
                        patch.max(HEALTH_DETECT),
                        Event::PatchDone { slot: slot16, life },
                    );
                }
            }
        }
        self.check_deploy_done(now, scheduler);
    }

    fn check_deploy_done(&mut self, now: SimTime, _scheduler: &mut Scheduler<Event>) {
        let Some(deploy) = self.deploy else { return };
        let target = self.target_version;
        let pending = self.instances.iter().any(|i| {
            (i.version < target
                && matches!(
                    i.phase,
                    Phase::InService | Phase::Draining | Phase::Warming | Phase::Patching { .. }
                ))
                || (i.replacement && i.phase == Phase::Warming)
        });
        if !pending {
            self.deploy = None;
            self.last_deploy_s = (now - deploy.started).as_secs_f64();
        }
    }

    fn start_deploy(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        if self.deploy.is_some() {
            return Err(CommandError::NotApplicable {
                reason: "a deploy is already rolling out".into(),
            });
        }
        let serving = self
            .instances
            .iter()
            .filter(|i| i.phase == Phase::InService)
            .count();
        if serving == 0 {
            return Err(CommandError::NotApplicable {
                reason: "no instance is serving to deploy to".into(),
            });
        }
        let mode = if self.params.choice("deploy_mode") == "in-place" {
            DeployMode::InPlace
        } else {
            DeployMode::Rolling
        };
        self.target_version += 1;
        if mode == DeployMode::Rolling {
            // Immutable: the launch template now names the new image.
            self.image_version = self.target_version;
        }
        self.deploy = Some(Deploy {
            mode,
            started: now,
            batch: serving.div_ceil(4),
        });
        Ok(())
    }

    fn kill(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let serving: Vec<usize> = (0..self.instances.len())
            .filter(|&slot| self.instances[slot].phase == Phase::InService)
            .collect();
        if serving.is_empty() {
            return Err(CommandError::NotApplicable {
                reason: "no instance is serving".into(),
            });
        }
        let slot = *self.chaos_rng.pick(&serving);
        self.reset(slot, now, scheduler);
        let life = self.instances[slot].life;
        self.set_phase(slot, Phase::Killed { detected: false }, now);
        scheduler.schedule_in(
            HEALTH_DETECT,
            Event::KillDetected {
                slot: slot as u16,
                life,
            },
        );
        Ok(())
    }

    /// The slot a `restore` would start again, or why it does not apply.
    fn restorable(&self) -> Result<usize, CommandError> {
        if self.strategy != Strategy::ScaleUp {
            return Err(CommandError::NotApplicable {
                reason: "the Auto Scaling group replaces failed instances by itself".into(),
            });
        }
        if self
            .instances
            .iter()
            .any(|i| matches!(i.phase, Phase::InService | Phase::Warming))
        {
            return Err(CommandError::NotApplicable {
                reason: "an instance is already serving or starting".into(),
            });
        }
        self.instances
            .iter()
            .position(|i| matches!(i.phase, Phase::Killed { .. }))
            .ok_or_else(|| CommandError::NotApplicable {
                reason: "the instance is not down".into(),
            })
    }

    fn figure(key: &'static str, label: &'static str, value: f64, unit: &'static str) -> Figure {
        Figure {
            key,
            label,
            value,
            unit,
        }
    }
}

impl Model for ScalingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtBalancer { req } => self.route(req, scheduler),
            Event::AtInstance { req, slot, life } => {
                self.at_instance(req, slot as usize, life, scheduler)
            }
            Event::Done { req, slot, life } => self.done(req, slot as usize, life, scheduler),
            Event::Timeout { req } => self.timeout(req, scheduler),
            Event::Warm { slot, life } => self.warm(slot as usize, life, scheduler),
            Event::ResizeDone { slot, life } => {
                let slot = slot as usize;
                if self.instances[slot].life == life
                    && self.instances[slot].phase == Phase::Resizing
                {
                    self.account(now);
                    self.instances[slot].size += 1;
                    self.set_phase(slot, Phase::InService, now);
                }
            }
            Event::PatchDetected { slot, life } => {
                let slot = slot as usize;
                if self.instances[slot].life == life
                    && self.instances[slot].phase == (Phase::Patching { detected: false })
                {
                    self.set_phase(slot, Phase::Patching { detected: true }, now);
                }
            }
            Event::PatchDone { slot, life } => {
                let slot = slot as usize;
                if self.instances[slot].life == life
                    && matches!(self.instances[slot].phase, Phase::Patching { .. })
                {
                    self.instances[slot].version = self.target_version;
                    self.set_phase(slot, Phase::InService, now);
                    self.roll(scheduler);
                }
            }
            Event::KillDetected { slot, life } => {
                let slot = slot as usize;
                if self.instances[slot].life == life
                    && self.instances[slot].phase == (Phase::Killed { detected: false })
                {
                    self.instances[slot].phase = Phase::Killed { detected: true };
                    self.check_deploy_done(now, scheduler);
                }
            }
            Event::Sample => self.sample(scheduler),
            Event::SpikeEnds => {
                self.spiking = false;
                self.arrivals
                    .arrivals
                    .set_multiplier(1.0)
                    .expect("1 is a valid multiplier");
                self.arrivals.rearm(scheduler);
            }
        }
    }
}

impl LessonModel for ScalingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        snapshot.nodes.push(NodeView::plain(self.users));
        snapshot.nodes.push(NodeView {
            state: if self.instances.iter().any(|i| i.phase.in_rotation()) {
                NodeState::Healthy
            } else {
                NodeState::Unhealthy
            },
            ..NodeView::plain(self.balancer)
        });
        for instance in &self.instances {
            snapshot.nodes.push(NodeView {
                node: instance.node,
                state: instance.phase.node_state(),
                busy: instance.busy(),
                capacity: if instance.phase.measured() {
                    instance.vcpus()
                } else {
                    0
                },
                queued: instance.queue.len() as u32,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        // Integrals up to `now` without mutating: add the stretch since the last change.
        let dt = (now - self.last_account).as_secs_f64();
        let base = self.params.number("price");
        let mut cost = self.cost;
        let mut resize = self.resize_down;
        for instance in &self.instances {
            if instance.phase.billed() {
                cost += hourly_price(base, instance.size) * dt / 3600.0;
            }
            if instance.phase == Phase::Resizing {
                resize += dt;
            }
        }
        let per_day = 86_400.0 / self.params.number("day_length");
        let largest = self
            .instances
            .iter()
            .filter(|i| i.phase != Phase::Off)
            .map(|i| i.vcpus())
            .max()
            .unwrap_or(0);
        let outdated = self
            .instances
            .iter()
            .filter(|i| i.phase.capacity() && i.version < self.target_version)
            .count();
        let f = Self::figure;
        vec![
            f("cost", "Cost of the run", cost, "$"),
            f("cost_per_day", "Cost per real day", cost * per_day, "$"),
            f(
                "peak_instances",
                "Peak instances",
                self.peak_instances as f64,
                "",
            ),
            f("mean_cpu", "Mean CPU", self.mean_cpu() * 100.0, "%"),
            f(
                "time_over_target_s",
                "Time over CPU target",
                self.over_target_s,
                "s",
            ),
            f("resizes", "Resizes", self.resizes.len() as f64, ""),
            f("resize_downtime_s", "Resize downtime", resize, "s"),
            f("largest_vcpus", "Largest instance", largest as f64, "vCPUs"),
            f(
                "failed_during_deploy",
                "Failed during deploys",
                self.failed_during_deploy as f64,
                "",
            ),
            f("deploy_s", "Last deploy took", self.last_deploy_s, "s"),
            f(
                "outdated_instances",
                "Outdated instances",
                outdated as f64,
                "",
            ),
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
                    "flash-spike" if self.spiking => {
                        return Err(CommandError::NotApplicable {
                            reason: "a flash spike is already running".into(),
                        })
                    }
                    "flash-spike" | "kill-instance" | "deploy" | "restore" => {}
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                // Check before logging, so the log reads "injected" only when it applies.
                let push = |model: &mut Self| {
                    model.core.log.push(
                        now,
                        Notable::Injected {
                            injection: id.clone(),
                        },
                    )
                };
                match id.as_str() {
                    "flash-spike" => {
                        push(self);
                        self.spiking = true;
                        self.arrivals
                            .arrivals
                            .set_multiplier(FLASH_FACTOR)
                            .expect("a constant, valid multiplier");
                        self.arrivals.rearm(scheduler);
                        scheduler.schedule_in(FLASH_LENGTH, Event::SpikeEnds);
                    }
                    "kill-instance" => {
                        if !self.instances.iter().any(|i| i.phase == Phase::InService) {
                            return Err(CommandError::NotApplicable {
                                reason: "no instance is serving".into(),
                            });
                        }
                        push(self);
                        self.kill(scheduler)?;
                    }
                    "deploy" => {
                        self.start_deploy(scheduler)?;
                        push(self);
                        self.roll(scheduler);
                    }
                    _ => {
                        let slot = self.restorable()?;
                        push(self);
                        let size = self.instances[slot].size;
                        self.launch(slot, size, false, scheduler);
                    }
                }
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                // Integrate up to now at the old values (the price, above all).
                self.account(now);
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "peak_rate" | "trough_rate" | "day_length" => {
                        self.arrivals.arrivals.set_shape(daily_curve(&self.params));
                        self.arrivals.rearm(scheduler);
                    }
                    _ => {} // thresholds, times and modes apply from the next decision on
                }
                Ok(())
            }
        }
    }
}
