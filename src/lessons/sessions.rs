//! Lesson `sessions`: stateless instances with an external session store vs sticky
//! sessions held in instance memory. Logged-in users sit behind a load balancer and a
//! group of 3-5 identical web instances; where a user's session lives decides what a
//! lost or removed instance costs and how evenly the load spreads.
//!
//! - `local`: the session is kept in the memory of the instance that logged the user in.
//!   The load balancer uses sticky sessions (session affinity: a load-balancer cookie such
//!   as the Application Load Balancer's duration-based `AWSALB`, or one that follows the
//!   application's own cookie), so every later request of that user goes to the same
//!   instance. A new user (no cookie) is placed round robin among the instances in
//!   rotation. When an instance dies, every session it held is gone: those users are
//!   logged out and log in again on another instance (counted in `users_logged_out`).
//!   Scale-in drains the instance: it takes no new users but keeps serving its pinned
//!   users for up to `drain_timeout`; sessions still alive then are lost. A new instance
//!   only receives new users, so it reaches its fair share only as old sessions end:
//!   with round robin over n instances and exponential session lengths of mean L, its
//!   share of users after t seconds is (1 − e^(−t/L)) of the fair 1/n.
//! - `external`: instances keep nothing between requests (Twelve-Factor App, "VI.
//!   Processes": stateless, share-nothing processes; sticky sessions are a violation);
//!   every request first reads the session from a store (ElastiCache-like ~1 ms,
//!   DynamoDB-like ~5 ms, `store_latency`, paid while holding the instance's thread) and
//!   the balancer spreads requests round robin. Any instance serves any request: a dead or
//!   removed instance costs only the requests it was working on, no user is logged out,
//!   and a new instance takes its share at once. The price is the store read on every
//!   request (and the store becomes a dependency: `store-slow` makes every request wait).
//!
//! Users arrive as a Poisson stream (`user_rate`), stay for an exponential session length
//! (mean `session_length`), log in with their first request and then send requests with
//! exponential think times (mean `think_time`); a `heavy_fraction` of users send requests
//! `heavy_factor` times as often. The run starts in steady state with
//! round(user_rate × session_length) users already logged in (Little's law), with
//! remaining session and first think time drawn from the same (memoryless) laws. An
//! instance serves `threads` requests at once (log-normal service time, mean
//! `service_time`, cv 0.5) with a FIFO queue of at most 100 waiting requests (more are
//! refused, HTTP 503). Users, think times and service times come from their own streams
//! in time order, so both values of `session_store` see the same users and requests on one
//! seed. Load imbalance is max ÷ mean of the requests routed to each instance in rotation
//! per 5 s window, averaged over the run.
//!
//! Sources: Elastic Load Balancing user guide, "Sticky sessions for your Application Load
//! Balancer" (duration-based and application-based cookies, stickiness per target group)
//! and "Deregistration delay"; AWS guidance on session management with Amazon ElastiCache
//! and Amazon DynamoDB (externalise session state so instances are interchangeable); the
//! Twelve-Factor App, "VI. Processes"; seed texts 001 (statelessness for horizontal
//! scaling) and 002 (section 3.2, stateless architecture pattern). Equations and
//! semantics: docs/models/sessions.md.

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::histogram::{LatencyHistogram, COMPACT};
use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng};
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation};
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
    id: "sessions",
    title: "Stateless vs sticky sessions",
    group: LessonGroup::TrafficAndCompute,
    summary: "Keep sessions in instance memory behind sticky sessions, or in an external store: watch users get logged out when an instance dies, and sticky load go lopsided.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(600),
    build,
    compare: Some("session_store"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "session_store",
        label: "Session state",
        unit: "",
        help: "local: each session lives in the memory of the instance that logged the user in, and the load balancer pins the user there with a sticky-session cookie; external: instances are stateless, every request reads the session from a shared store and requests go round robin.",
        kind: ParamKind::Choice {
            options: &["local", "external"],
            default: "local",
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "instances",
        label: "Instances",
        unit: "",
        help: "Web instances running behind the load balancer at the start (two more slots are free for scale-out).",
        kind: ParamKind::Integer {
            min: 3,
            max: 5,
            default: 3,
        },
        liveness: Liveness::Restart,
    },
    number("user_rate", "New users", "users/s", "Users who arrive and log in per second (Poisson). Logged-in users on average = this × session length.", (0.1, 20.0, 0.1, 3.0)),
    number("session_length", "Session length", "s", "Mean time a user stays logged in and active (exponential), for users who arrive from now on.", (10.0, 3600.0, 10.0, 180.0)),
    number("think_time", "Think time", "s", "Mean time between two requests of an ordinary user (exponential).", (1.0, 120.0, 1.0, 10.0)),
    number("heavy_fraction", "Heavy users", "", "Fraction of arriving users who send requests much more often (a crawler, an API client, a power user).", (0.0, 0.5, 0.01, 0.02)),
    number("heavy_factor", "Heavy user intensity", "×", "How many times more often a heavy user sends requests than an ordinary one.", (1.0, 200.0, 1.0, 50.0)),
    number("service_time", "Service time", "ms", "Mean time an instance works on a request (log-normal, cv 0.5), not counting the session read.", (1.0, 1000.0, 1.0, 50.0)),
    ParamSpec {
        name: "threads",
        label: "Threads per instance",
        unit: "",
        help: "Requests one instance works on at once; more wait in its queue (at most 100, then HTTP 503).",
        kind: ParamKind::Integer {
            min: 1,
            max: 32,
            default: 4,
        },
        liveness: Liveness::Live,
    },
    number("store_latency", "Session store latency", "ms", "External store: time to read a session, paid by every request while it holds its thread (ElastiCache about 1 ms, DynamoDB single-digit ms).", (0.2, 100.0, 0.1, 5.0)),
    number("store_slowdown", "Store slowdown", "×", "How many times slower the session store answers while it is slowed down.", (2.0, 100.0, 1.0, 10.0)),
    number("drain_timeout", "Drain timeout", "s", "Scale-in: how long a removed instance keeps serving the users pinned to it before it stops (sessions still alive then are lost). The ALB's deregistration delay (default 300 s) only lets in-flight requests finish.", (0.0, 3600.0, 10.0, 30.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "kill-instance",
        label: "Kill an instance",
        help: "The lowest-numbered instance in rotation crashes: its in-flight requests fail and, with local sessions, every session it held is lost.",
    },
    InjectionSpec {
        id: "scale-in",
        label: "Scale in",
        help: "The highest-numbered instance in rotation is removed gracefully: it takes no new work and stops after the drain timeout (or sooner when it has nothing left).",
    },
    InjectionSpec {
        id: "scale-out",
        label: "Scale out",
        help: "A new instance joins the rotation.",
    },
    InjectionSpec {
        id: "store-slow",
        label: "Slow the session store",
        help: "External store: every session read takes store-slowdown times longer until restored.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore",
        help: "Crashed instances start again (empty) and the session store answers at its normal speed.",
    },
];

/// Network hop from users to the load balancer and from an instance to the responses.
pub const HOP: SimDuration = SimDuration::from_millis(5);
/// Hop from the load balancer to an instance.
pub const LB_HOP: SimDuration = SimDuration::from_millis(2);
/// Spread of service times (coefficient of variation of the log-normal).
pub const SERVICE_CV: f64 = 0.5;
/// Requests that may wait at one instance; more are refused.
pub const MAX_QUEUE: usize = 100;
/// Width of the windows over which load imbalance and a new instance's share are measured.
pub const WINDOW: SimDuration = SimDuration::from_secs(5);
/// A new instance has "reached its fair share" in the first window in which it receives
/// at least this share of 1/n of the requests.
pub const FAIR_SHARE_REACHED: f64 = 0.8;
/// Free instance slots beyond the starting count (for scale-out).
pub const SPARE_SLOTS: usize = 2;

const P99_KEYS: [&str; 7] = [
    "instance_1_p99_ms",
    "instance_2_p99_ms",
    "instance_3_p99_ms",
    "instance_4_p99_ms",
    "instance_5_p99_ms",
    "instance_6_p99_ms",
    "instance_7_p99_ms",
];
const P99_LABELS: [&str; 7] = [
    "Instance 1 p99",
    "Instance 2 p99",
    "Instance 3 p99",
    "Instance 4 p99",
    "Instance 5 p99",
    "Instance 6 p99",
    "Instance 7 p99",
];
const SESSION_KEYS: [&str; 7] = [
    "instance_1_sessions",
    "instance_2_sessions",
    "instance_3_sessions",
    "instance_4_sessions",
    "instance_5_sessions",
    "instance_6_sessions",
    "instance_7_sessions",
];
const SESSION_LABELS: [&str; 7] = [
    "Sessions on instance 1",
    "Sessions on instance 2",
    "Sessions on instance 3",
    "Sessions on instance 4",
    "Sessions on instance 5",
    "Sessions on instance 6",
    "Sessions on instance 7",
];

/// Where the sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// In instance memory, with sticky sessions at the balancer.
    Local,
    /// In an external store; stateless instances, round robin.
    External,
}

/// Events. Users and requests are named by slab slot and serial: an event for one that has
/// ended (and whose slot was reused) is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    UserArrival,
    UserRequest {
        user: u32,
        serial: u32,
    },
    UserLeaves {
        user: u32,
        serial: u32,
    },
    /// A request finished its current stage (a hop, the store read, its service).
    Step {
        req: u32,
        serial: u32,
    },
    DrainEnd {
        instance: u8,
        life: u32,
    },
    Window,
}

#[derive(Clone, Copy, Debug)]
struct User {
    serial: u32,
    heavy: bool,
    ends: SimTime,
    /// The instance holding this user's session (local store only).
    bound: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    ToBalancer,
    ToInstance,
    Queued,
    StoreRead,
    StoreReturn,
    Service,
    Responding,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    serial: u32,
    key: RequestKey,
    user: (u32, u32),
    instance: u8,
    stage: Stage,
    born: SimTime,
    service: SimDuration,
    /// The second half of the session read: the way back from the store.
    back: SimDuration,
}

struct Instance {
    node: NodeId,
    edge_in: EdgeId,
    edge_out: EdgeId,
    edge_store: Option<(EdgeId, EdgeId)>,
    state: NodeState,
    /// Bumped whenever the instance stops or starts, so stale drain timers are ignored.
    life: u32,
    busy: u32,
    queue: VecDeque<(u32, u32)>,
    /// Requests routed here and not yet out of service (on the way, queued, served).
    assigned: u32,
    sessions: u32,
    routed_window: u64,
    routed_total: u64,
    latency: LatencyHistogram,
}

/// Watches a newly added instance until it receives its fair share of requests.
#[derive(Clone, Copy, Debug)]
struct FairWatch {
    instance: usize,
    since: SimTime,
    window_start: SimTime,
    window_new: u64,
    window_total: u64,
    last_ratio: f64,
    reached_after: Option<SimDuration>,
}

pub struct SessionsModel {
    params: ParamValues,
    store: Store,
    topology: Topology,
    users_node: NodeId,
    balancer: NodeId,
    store_node: Option<NodeId>,
    responses: NodeId,
    edge_in: EdgeId,
    instances: Vec<Instance>,
    users: Slab<User>,
    reqs: Slab<Req>,
    next_serial: u32,
    rr: usize,
    store_slow: bool,
    store_reads: u32,
    arrivals: ArrivalTimer<Event>,
    user_rng: SimRng,
    think_rng: SimRng,
    service_rng: SimRng,
    logged_out: u64,
    imbalance_sum: f64,
    imbalance_windows: u64,
    store_time_total: SimDuration,
    reads_started: u64,
    watch: Option<FairWatch>,
    core: ModelCore,
    gauge_users: GaugeId,
    gauge_imbalance: GaugeId,
    gauge_logged_out: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<SessionsModel> {
    let store = if params.choice("session_store") == "external" {
        Store::External
    } else {
        Store::Local
    };
    let running = params.integer("instances") as usize;
    let slots = running + SPARE_SLOTS;
    let mut topology = Topology::default();
    let users_node = topology.add_node("users", "Users", NodeKind::Source, 0.0, 0.45);
    let balancer = topology.add_node("balancer", "Load balancer", NodeKind::Router, 0.24, 0.45);
    // Responses up and the store down when there is a store, so their edges fan apart.
    let responses_y = if store == Store::External { 0.2 } else { 0.45 };
    let responses = topology.add_node("responses", "Responses", NodeKind::Sink, 1.0, responses_y);
    let store_node = (store == Store::External)
        .then(|| topology.add_node("store", "Session store", NodeKind::Store, 0.86, 0.82));
    let edge_in = topology.add_edge(users_node, balancer);
    let mut instances = Vec::new();
    for index in 0..slots {
        let y = 0.04 + 0.92 * (index as f32 + 0.5) / slots as f32;
        let node = topology.add_node(
            &format!("instance-{}", index + 1),
            &format!("Instance {}", index + 1),
            NodeKind::Server,
            0.56,
            y,
        );
        let edge_in = topology.add_edge(balancer, node);
        let edge_out = topology.add_edge(node, responses);
        let edge_store = store_node.map(|store_node| {
            (
                topology.add_edge(node, store_node),
                topology.add_edge(store_node, node),
            )
        });
        instances.push(Instance {
            node,
            edge_in,
            edge_out,
            edge_store,
            state: if index < running {
                NodeState::Healthy
            } else {
                NodeState::Off
            },
            life: 0,
            busy: 0,
            queue: VecDeque::new(),
            assigned: 0,
            sessions: 0,
            routed_window: 0,
            routed_total: 0,
            latency: LatencyHistogram::new(COMPACT),
        });
    }
    let core = ModelCore::new(vec![
        "logged_in_users",
        "load_imbalance_pct",
        "users_logged_out",
    ]);
    let mut model = SessionsModel {
        params: params.clone(),
        store,
        users_node,
        balancer,
        store_node,
        responses,
        edge_in,
        instances,
        users: Slab::new(),
        reqs: Slab::new(),
        next_serial: 0,
        rr: 0,
        store_slow: false,
        store_reads: 0,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                TrafficShape::Steady {
                    rate: params.number("user_rate"),
                },
                SimRng::new(seed.0, "user-arrivals"),
            ),
            Event::UserArrival,
        ),
        user_rng: SimRng::new(seed.0, "users"),
        think_rng: SimRng::new(seed.0, "think"),
        service_rng: SimRng::new(seed.0, "service"),
        logged_out: 0,
        imbalance_sum: 0.0,
        imbalance_windows: 0,
        store_time_total: SimDuration::ZERO,
        reads_started: 0,
        watch: None,
        gauge_users: core.gauge("logged_in_users"),
        gauge_imbalance: core.gauge("load_imbalance_pct"),
        gauge_logged_out: core.gauge("users_logged_out"),
        core,
        topology,
    };
    let mut scheduler = Scheduler::new();
    // Steady state from the start: λ·L users already logged in, each pinned round robin.
    let initial = (params.number("user_rate") * params.number("session_length")).round() as usize;
    for _ in 0..initial {
        let (user, serial) = model.new_user(&mut scheduler);
        if store == Store::Local {
            if let Some(instance) = model.next_round_robin() {
                model.bind(user, instance);
            }
        }
        let think = model.think(user);
        scheduler.schedule_in(think, Event::UserRequest { user, serial });
    }
    model.update_users_gauge(SimTime::ZERO);
    model.arrivals.rearm(&mut scheduler);
    scheduler.schedule_in(WINDOW, Event::Window);
    Simulation::new(model, scheduler)
}

impl SessionsModel {
    /// Where sessions live in this run.
    pub fn store(&self) -> Store {
        self.store
    }

    /// Sessions held in the memory of `instance` (0-based slot); always 0 with the
    /// external store.
    pub fn sessions_on(&self, instance: usize) -> u32 {
        self.instances[instance].sessions
    }

    /// Requests routed to `instance` that have not left it yet (on the way, queued, in
    /// service): what a crash of it fails.
    pub fn assigned_on(&self, instance: usize) -> u32 {
        self.instances[instance].assigned
    }

    /// The instance's state.
    pub fn instance_state(&self, instance: usize) -> NodeState {
        self.instances[instance].state
    }

    /// The lowest-numbered instance in rotation: the one `kill-instance` crashes.
    pub fn kill_target(&self) -> Option<usize> {
        self.instances
            .iter()
            .position(|instance| instance.state == NodeState::Healthy)
    }

    /// Users logged in right now.
    pub fn logged_in(&self) -> usize {
        self.users.len()
    }

    /// Requests routed to each instance slot since the start.
    pub fn routed_per_instance(&self) -> Vec<u64> {
        self.instances.iter().map(|i| i.routed_total).collect()
    }

    fn serial(&mut self) -> u32 {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        serial
    }

    /// A user with a drawn profile (heavy or not) and session end; schedules the leave.
    fn new_user(&mut self, scheduler: &mut Scheduler<Event>) -> (u32, u32) {
        let now = scheduler.now();
        let heavy = self.user_rng.chance(self.params.number("heavy_fraction"));
        let length = SimDuration::from_secs_f64(
            self.user_rng
                .exponential(1.0 / self.params.number("session_length")),
        );
        let serial = self.serial();
        let user = self.users.insert(User {
            serial,
            heavy,
            ends: now + length,
            bound: None,
        }) as u32;
        scheduler.schedule_in(length, Event::UserLeaves { user, serial });
        (user, serial)
    }

    fn think(&mut self, user: u32) -> SimDuration {
        let mut mean = self.params.number("think_time");
        if self.users[user as usize].heavy {
            mean /= self.params.number("heavy_factor");
        }
        SimDuration::from_secs_f64(self.think_rng.exponential(1.0 / mean))
    }

    fn user(&self, user: u32, serial: u32) -> Option<&User> {
        self.users
            .get(user as usize)
            .filter(|entry| entry.serial == serial)
    }

    fn req(&self, req: u32, serial: u32) -> Option<&Req> {
        self.reqs
            .get(req as usize)
            .filter(|entry| entry.serial == serial)
    }

    fn update_users_gauge(&mut self, now: SimTime) {
        let users = self.users.len() as i64;
        self.core.metrics.set_gauge(self.gauge_users, now, users);
    }

    fn in_rotation(&self) -> usize {
        self.instances
            .iter()
            .filter(|instance| instance.state == NodeState::Healthy)
            .count()
    }

    /// The next instance in rotation after the round-robin pointer.
    fn next_round_robin(&mut self) -> Option<usize> {
        let slots = self.instances.len();
        for offset in 0..slots {
            let index = (self.rr + offset) % slots;
            if self.instances[index].state == NodeState::Healthy {
                self.rr = (index + 1) % slots;
                return Some(index);
            }
        }
        None
    }

    fn bind(&mut self, user: u32, instance: usize) {
        self.users[user as usize].bound = Some(instance as u8);
        self.instances[instance].sessions += 1;
    }

    /// A user's next request (the first one is the login).
    fn user_request(&mut self, user: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.user(user, serial).is_none() {
            return;
        }
        let service = ServiceTime::LogNormal {
            mean: SimDuration::from_secs_f64(self.params.number("service_time") / 1000.0),
            cv: SERVICE_CV,
        }
        .sample(&mut self.service_rng);
        self.core.metrics.generated(now);
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.edge_in,
                depart: now,
                arrive: now + HOP,
            },
        );
        let req_serial = self.serial();
        let req = self.reqs.insert(Req {
            serial: req_serial,
            key,
            user: (user, serial),
            instance: 0,
            stage: Stage::ToBalancer,
            born: now,
            service,
            back: SimDuration::ZERO,
        }) as u32;
        scheduler.schedule_in(
            HOP,
            Event::Step {
                req,
                serial: req_serial,
            },
        );
        let next = now + self.think(user);
        if next < self.users[user as usize].ends {
            scheduler.schedule_in(next - now, Event::UserRequest { user, serial });
        }
    }

    fn user_leaves(&mut self, user: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.user(user, serial).is_none() {
            return;
        }
        let entry = self.users.remove(user as usize);
        if let Some(instance) = entry.bound {
            let instance = instance as usize;
            self.instances[instance].sessions -= 1;
            self.try_finish_drain(instance, scheduler);
        }
        self.update_users_gauge(now);
    }

    /// Ends a request that could not be served.
    fn fail(&mut self, req: u32, now: SimTime, rejected: bool) {
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        if rejected {
            self.core.metrics.rejected(now);
        } else {
            self.core.metrics.failed(now);
        }
    }

    /// The balancer picks an instance: the user's sticky instance, or round robin.
    fn route(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let (user, user_serial) = self.reqs[req as usize].user;
        let pinned = match self.store {
            Store::Local => self.user(user, user_serial).map(|entry| entry.bound),
            Store::External => None,
        };
        let target = match pinned {
            Some(Some(instance)) => Some(instance as usize),
            _ => self.next_round_robin(),
        };
        let Some(instance) = target else {
            self.fail(req, now, true); // nothing in rotation: 503
            return;
        };
        if pinned == Some(None) {
            // A user without a session (new, or logged out) logs in here.
            self.bind(user, instance);
        }
        let state = &mut self.instances[instance];
        state.assigned += 1;
        state.routed_window += 1;
        state.routed_total += 1;
        let edge = state.edge_in;
        if let Some(watch) = &mut self.watch {
            watch.window_total += 1;
            watch.window_new += u64::from(watch.instance == instance);
        }
        let entry = &mut self.reqs[req as usize];
        entry.instance = instance as u8;
        entry.stage = Stage::ToInstance;
        let (key, serial) = (entry.key, entry.serial);
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + LB_HOP,
            },
        );
        scheduler.schedule_in(LB_HOP, Event::Step { req, serial });
    }

    fn at_instance(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        let instance = entry.instance as usize;
        let threads = self.params.integer("threads") as u32;
        let state = &mut self.instances[instance];
        if state.busy < threads && state.queue.is_empty() {
            self.core.metrics.waited(SimDuration::ZERO);
            self.start(req, scheduler);
        } else if state.queue.len() < MAX_QUEUE {
            state.queue.push_back((req, entry.serial));
            let node = state.node;
            self.reqs[req as usize].stage = Stage::Queued;
            self.core
                .requests
                .move_to(entry.key, Place::Queued { node, since: now });
        } else {
            state.assigned -= 1;
            self.fail(req, now, true);
            self.try_finish_drain(instance, scheduler);
        }
    }

    /// The request takes a thread: reads its session (external) or is served at once.
    fn start(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        let instance = &mut self.instances[entry.instance as usize];
        instance.busy += 1;
        let node = instance.node;
        let store_edges = instance.edge_store;
        match store_edges {
            Some((out, _)) => {
                let read = self.store_read_time();
                self.store_time_total = self.store_time_total + read;
                self.reads_started += 1;
                let half = SimDuration::from_ticks(read.ticks() / 2);
                self.store_reads += 1;
                let stored = &mut self.reqs[req as usize];
                stored.stage = Stage::StoreRead;
                stored.back = SimDuration::from_ticks(read.ticks() - half.ticks());
                self.core.requests.move_to(
                    entry.key,
                    Place::OnEdge {
                        edge: out,
                        depart: now,
                        arrive: now + half,
                    },
                );
                scheduler.schedule_in(
                    half,
                    Event::Step {
                        req,
                        serial: entry.serial,
                    },
                );
            }
            None => self.serve(req, scheduler, node),
        }
    }

    fn store_read_time(&self) -> SimDuration {
        let mut ms = self.params.number("store_latency");
        if self.store_slow {
            ms *= self.params.number("store_slowdown");
        }
        SimDuration::from_secs_f64(ms / 1000.0)
    }

    fn serve(&mut self, req: u32, scheduler: &mut Scheduler<Event>, node: NodeId) {
        let now = scheduler.now();
        let entry = &mut self.reqs[req as usize];
        entry.stage = Stage::Service;
        let (key, serial, service) = (entry.key, entry.serial, entry.service);
        self.core
            .requests
            .move_to(key, Place::InService { node, since: now });
        scheduler.schedule_in(service, Event::Step { req, serial });
    }

    fn step(&mut self, req: u32, serial: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(entry) = self.req(req, serial).copied() else {
            return;
        };
        let instance = entry.instance as usize;
        match entry.stage {
            Stage::ToBalancer => self.route(req, scheduler),
            Stage::ToInstance => self.at_instance(req, scheduler),
            Stage::Queued => {}
            Stage::StoreRead => {
                let (_, back) = self.instances[instance]
                    .edge_store
                    .expect("store reads only with a store");
                let back_time = entry.back;
                self.reqs[req as usize].stage = Stage::StoreReturn;
                self.core.requests.move_to(
                    entry.key,
                    Place::OnEdge {
                        edge: back,
                        depart: now,
                        arrive: now + back_time,
                    },
                );
                scheduler.schedule_in(back_time, Event::Step { req, serial });
            }
            Stage::StoreReturn => {
                self.store_reads -= 1;
                let node = self.instances[instance].node;
                self.serve(req, scheduler, node);
            }
            Stage::Service => {
                let state = &mut self.instances[instance];
                state.busy -= 1;
                state.assigned -= 1;
                let edge = state.edge_out;
                self.reqs[req as usize].stage = Stage::Responding;
                self.core.requests.move_to(
                    entry.key,
                    Place::OnEdge {
                        edge,
                        depart: now,
                        arrive: now + HOP,
                    },
                );
                scheduler.schedule_in(HOP, Event::Step { req, serial });
                self.dispatch(instance, scheduler);
                self.try_finish_drain(instance, scheduler);
            }
            Stage::Responding => {
                let entry = self.reqs.remove(req as usize);
                self.core.requests.finish(entry.key);
                let latency = now - entry.born;
                self.core.metrics.completed(now, latency);
                self.instances[instance].latency.record(latency);
            }
        }
    }

    /// Gives free threads of `instance` to its waiting requests, oldest first.
    fn dispatch(&mut self, instance: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let threads = self.params.integer("threads") as u32;
        while self.instances[instance].busy < threads {
            let Some((req, serial)) = self.instances[instance].queue.pop_front() else {
                return;
            };
            let Some(entry) = self.req(req, serial) else {
                continue;
            };
            if let Place::Queued { since, .. } = self.core.requests.get(entry.key).place {
                self.core.metrics.waited(now - since);
            }
            self.start(req, scheduler);
        }
    }

    /// A draining instance with nothing left to serve stops at once.
    fn try_finish_drain(&mut self, instance: usize, scheduler: &mut Scheduler<Event>) {
        let state = &self.instances[instance];
        let idle = state.assigned == 0 && (self.store == Store::External || state.sessions == 0);
        if state.state == NodeState::Draining && idle {
            self.stop_instance(instance, NodeState::Off, scheduler.now());
        }
    }

    /// Takes an instance out (crash, or end of a drain): the requests it holds fail and,
    /// with local sessions, every user whose session it held is logged out.
    fn stop_instance(&mut self, instance: usize, to: NodeState, now: SimTime) {
        let doomed: Vec<(usize, Stage)> = self
            .reqs
            .iter()
            .filter(|(_, entry)| {
                entry.instance as usize == instance
                    && !matches!(entry.stage, Stage::ToBalancer | Stage::Responding)
            })
            .map(|(slot, entry)| (slot, entry.stage))
            .collect();
        for (slot, stage) in doomed {
            if matches!(stage, Stage::StoreRead | Stage::StoreReturn) {
                self.store_reads -= 1;
            }
            self.fail(slot as u32, now, false);
        }
        let mut lost = 0;
        for (_, user) in self.users.iter_mut() {
            if user.bound == Some(instance as u8) {
                user.bound = None;
                lost += 1;
            }
        }
        self.logged_out += lost;
        self.core
            .metrics
            .set_gauge(self.gauge_logged_out, now, self.logged_out as i64);
        let state = &mut self.instances[instance];
        state.busy = 0;
        state.assigned = 0;
        state.sessions = 0;
        state.queue.clear();
        state.state = to;
        state.life += 1;
        let node = state.node;
        self.core.log.push(now, Notable::StateChanged { node, to });
        if to == NodeState::Off {
            self.core.log.push(now, Notable::NodeRemoved { node });
        }
        if self
            .watch
            .is_some_and(|watch| watch.instance == instance && watch.reached_after.is_none())
        {
            self.watch = None;
        }
    }

    /// Puts a stopped instance (empty) into rotation and watches its share of the load.
    fn start_instance(&mut self, instance: usize, now: SimTime) {
        let state = &mut self.instances[instance];
        state.state = NodeState::Healthy;
        state.life += 1;
        state.routed_window = 0;
        let node = state.node;
        self.core.log.push(now, Notable::NodeAdded { node });
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Healthy,
            },
        );
        self.watch = Some(FairWatch {
            instance,
            since: now,
            window_start: now,
            window_new: 0,
            window_total: 0,
            last_ratio: 0.0,
            reached_after: None,
        });
    }

    fn last_in_rotation(&self) -> Result<(), CommandError> {
        if self.in_rotation() <= 1 {
            Err(CommandError::NotApplicable {
                reason: "only one instance is left in rotation: removing it would leave nothing to serve users".into(),
            })
        } else {
            Ok(())
        }
    }

    fn scale_in(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(instance) = self
            .instances
            .iter()
            .rposition(|instance| instance.state == NodeState::Healthy)
        else {
            return;
        };
        let drain = SimDuration::from_secs_f64(self.params.number("drain_timeout"));
        let state = &mut self.instances[instance];
        state.state = NodeState::Draining;
        let (node, life) = (state.node, state.life);
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Draining,
            },
        );
        if drain == SimDuration::ZERO {
            self.stop_instance(instance, NodeState::Off, now);
            return;
        }
        scheduler.schedule_in(
            drain,
            Event::DrainEnd {
                instance: instance as u8,
                life,
            },
        );
        self.try_finish_drain(instance, scheduler);
    }

    /// Closes a measuring window: load imbalance over the instances in rotation and the
    /// watched new instance's share.
    fn window(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(WINDOW, Event::Window);
        let counts: Vec<u64> = self
            .instances
            .iter()
            .filter(|instance| instance.state == NodeState::Healthy)
            .map(|instance| instance.routed_window)
            .collect();
        let total: u64 = counts.iter().sum();
        let n = counts.len();
        if n >= 2 && total > 0 {
            let max = counts.iter().copied().max().unwrap_or(0) as f64;
            let ratio = max / (total as f64 / n as f64);
            self.imbalance_sum += ratio;
            self.imbalance_windows += 1;
            self.core
                .metrics
                .set_gauge(self.gauge_imbalance, now, (ratio * 100.0).round() as i64);
        }
        for instance in &mut self.instances {
            instance.routed_window = 0;
        }
        if let Some(watch) = &mut self.watch {
            if watch.window_total > 0 && n > 0 {
                let share = watch.window_new as f64 / watch.window_total as f64;
                watch.last_ratio = share * n as f64;
                if watch.reached_after.is_none() && watch.last_ratio >= FAIR_SHARE_REACHED {
                    watch.reached_after = Some(watch.window_start - watch.since);
                }
            }
            watch.window_start = now;
            watch.window_new = 0;
            watch.window_total = 0;
        }
    }

    fn set_store_slow(&mut self, slow: bool, now: SimTime) {
        self.store_slow = slow;
        if let Some(node) = self.store_node {
            let to = if slow {
                NodeState::Unhealthy
            } else {
                NodeState::Healthy
            };
            self.core.log.push(now, Notable::StateChanged { node, to });
        }
    }

    /// Mean of the per-window load imbalance so far (1 = perfectly even).
    pub fn load_imbalance(&self) -> f64 {
        if self.imbalance_windows == 0 {
            1.0
        } else {
            self.imbalance_sum / self.imbalance_windows as f64
        }
    }
}

impl Model for SessionsModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::UserArrival => {
                self.arrivals.fired();
                let (user, serial) = self.new_user(scheduler);
                self.update_users_gauge(scheduler.now());
                // The login is the user's first request.
                self.user_request(user, serial, scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::UserRequest { user, serial } => self.user_request(user, serial, scheduler),
            Event::UserLeaves { user, serial } => self.user_leaves(user, serial, scheduler),
            Event::Step { req, serial } => self.step(req, serial, scheduler),
            Event::DrainEnd { instance, life } => {
                let state = &self.instances[instance as usize];
                if state.state == NodeState::Draining && state.life == life {
                    self.stop_instance(instance as usize, NodeState::Off, scheduler.now());
                }
            }
            Event::Window => self.window(scheduler),
        }
    }
}

impl LessonModel for SessionsModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.users_node));
        snapshot.nodes.push(plain(self.balancer));
        snapshot.nodes.push(plain(self.responses));
        if let Some(node) = self.store_node {
            snapshot.nodes.push(NodeView {
                state: if self.store_slow {
                    NodeState::Unhealthy
                } else {
                    NodeState::Healthy
                },
                busy: self.store_reads,
                ..plain(node)
            });
        }
        let threads = self.params.integer("threads") as u32;
        for instance in &self.instances {
            let serving = matches!(instance.state, NodeState::Healthy | NodeState::Draining);
            snapshot.nodes.push(NodeView {
                node: instance.node,
                state: instance.state,
                busy: instance.busy,
                capacity: if serving { threads } else { 0 },
                queued: instance.queue.len() as u32,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let counters = self.core.metrics.counters();
        let (fair_time, share) = match self.watch {
            None => (0.0, 0.0),
            Some(watch) => (
                watch
                    .reached_after
                    .unwrap_or(now - watch.since)
                    .as_secs_f64(),
                watch.last_ratio * 100.0,
            ),
        };
        let reads = self.reads_started.max(1);
        let mut figures = vec![
            Figure {
                key: "users_logged_out",
                label: "Users logged out",
                value: self.logged_out as f64,
                unit: "",
            },
            Figure {
                key: "load_imbalance",
                label: "Load imbalance (busiest ÷ mean)",
                value: self.load_imbalance(),
                unit: "×",
            },
            Figure {
                key: "store_read_ms",
                label: "Session read per request (mean)",
                value: self.store_time_total.as_secs_f64() * 1000.0 / reads as f64,
                unit: "ms",
            },
            Figure {
                key: "logged_in_users",
                label: "Users logged in",
                value: self.users.len() as f64,
                unit: "",
            },
            Figure {
                key: "requests_failed",
                label: "Requests failed or refused",
                value: (counters.failed + counters.rejected) as f64,
                unit: "",
            },
            Figure {
                key: "fair_share_time",
                label: "New instance: time to 80 % of its fair share",
                value: fair_time,
                unit: "s",
            },
            Figure {
                key: "new_instance_share_pct",
                label: "New instance's load (of its fair share)",
                value: share,
                unit: "%",
            },
        ];
        for (index, instance) in self.instances.iter().enumerate() {
            if self.store == Store::Local && instance.state != NodeState::Off {
                figures.push(Figure {
                    key: SESSION_KEYS[index],
                    label: SESSION_LABELS[index],
                    value: instance.sessions as f64,
                    unit: "",
                });
            }
        }
        for (index, instance) in self.instances.iter().enumerate() {
            if instance.latency.count() > 0 {
                figures.push(Figure {
                    key: P99_KEYS[index],
                    label: P99_LABELS[index],
                    value: instance.latency.quantile_secs(0.99) * 1000.0,
                    unit: "ms",
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
                // Check first, so the log reads "injected" before the change it causes.
                let down = self
                    .instances
                    .iter()
                    .position(|instance| instance.state == NodeState::Down);
                let off = self
                    .instances
                    .iter()
                    .position(|instance| instance.state == NodeState::Off);
                match id.as_str() {
                    "kill-instance" | "scale-in" => self.last_in_rotation()?,
                    "scale-out" if off.is_none() => {
                        return Err(CommandError::NotApplicable {
                            reason: "every instance slot is already in use".into(),
                        })
                    }
                    "store-slow" if self.store == Store::Local => {
                        return Err(CommandError::NotApplicable {
                            reason: "sessions live in instance memory: there is no session store to slow down".into(),
                        })
                    }
                    "store-slow" if self.store_slow => {
                        return Err(CommandError::NotApplicable {
                            reason: "the session store is already slow".into(),
                        })
                    }
                    "restore" if down.is_none() && !self.store_slow => {
                        return Err(CommandError::NotApplicable {
                            reason: "no instance is down and the session store is healthy".into(),
                        })
                    }
                    "scale-out" | "store-slow" | "restore" => {}
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                }
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                match id.as_str() {
                    "kill-instance" => {
                        if let Some(instance) = self.kill_target() {
                            self.stop_instance(instance, NodeState::Down, now);
                        }
                    }
                    "scale-in" => self.scale_in(scheduler),
                    "scale-out" => {
                        if let Some(instance) = off {
                            self.start_instance(instance, now);
                        }
                    }
                    "store-slow" => self.set_store_slow(true, now),
                    _ => {
                        for instance in 0..self.instances.len() {
                            if self.instances[instance].state == NodeState::Down {
                                self.start_instance(instance, now);
                            }
                        }
                        if self.store_slow {
                            self.set_store_slow(false, now);
                        }
                    }
                }
                Ok(())
            }
            LessonCommand::SetParam { name, value } => {
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "user_rate" => {
                        let rate = self.params.number("user_rate");
                        self.arrivals
                            .arrivals
                            .set_shape(TrafficShape::Steady { rate });
                        self.arrivals.rearm(scheduler);
                    }
                    "threads" => {
                        for instance in 0..self.instances.len() {
                            if matches!(
                                self.instances[instance].state,
                                NodeState::Healthy | NodeState::Draining
                            ) {
                                self.dispatch(instance, scheduler);
                            }
                        }
                    }
                    _ => {} // the rest applies to later users, requests and reads
                }
                Ok(())
            }
        }
    }
}
