//! Lesson `multi-region`: reads served in the user's own Region, writes sent to one
//! primary Region. Users in Tokyo and in Virginia; an app tier and the writer database in
//! us-east-1 (Virginia); an app tier and an asynchronous cross-Region read replica in
//! ap-northeast-1 (Tokyo). With `routing = single-region` DNS sends everyone to Virginia,
//! so every Tokyo request crosses the Pacific twice; with `routing = latency-based`
//! (Route 53 latency records with health checks) each user goes to the Region with the
//! lowest latency, so Tokyo reads stay in Tokyo. Writes always go to the writer, so a
//! Tokyo write pays the trans-Pacific round trip in both modes, and a Tokyo user who
//! reads back what they just wrote may read the replica before the write has arrived (a
//! read-your-writes violation). Run both values of `routing` on one seed to compare:
//! arrivals, users and request kinds come from the same named streams.
//!
//! Semantics and sources:
//! - Amazon Route 53 Developer Guide, "Latency-based routing": with latency records in
//!   several Regions, Route 53 answers each query with the record of the Region that has
//!   the lowest latency for the querying resolver; with health checks attached, an
//!   unhealthy record is skipped and the next-lowest healthy one is answered; if every
//!   record is unhealthy, Route 53 treats all as healthy ("How Amazon Route 53 chooses
//!   records when health checking is configured").
//! - Route 53 health checks ("How Amazon Route 53 determines whether a health check is
//!   healthy"): probes every 10 or 30 s; the status flips after `failure_threshold`
//!   consecutive probes that disagree with it. One checker per Region here, so detection
//!   takes exactly `threshold` probes after the failure. Resolvers cache answers for the
//!   record's TTL (RFC 1035), so users move only when their cached answer expires: the
//!   same chain as the `failover` lesson (docs/models/failover.md).
//! - Amazon RDS User Guide, "Working with DB instance read replicas" / "Creating a read
//!   replica in a different AWS Region": cross-Region replicas are updated asynchronously;
//!   CloudWatch `ReplicaLag` reports how far behind the replica is; a replica can be
//!   promoted to a standalone writable instance (promotion takes minutes and is one-way).
//!   Amazon Aurora User Guide, "Using Amazon Aurora global databases": one primary Region
//!   takes writes, secondary Regions serve reads with a typical lag under a second;
//!   write forwarding can pass writes from a secondary to the primary (they still pay the
//!   round trip); a secondary can be promoted when the primary Region fails.
//! - Seed 001, worked example "Global Low-Latency Database Access": users in Japan see
//!   high latency to a database in Northern Virginia; a read replica in ap-northeast-1
//!   and Route 53 latency-based routing send Japanese users to the local replica.
//!
//! The model, in short (equations and definitions in docs/models/multi-region.md):
//! - Two user populations (Tokyo, Virginia) of `users_per_region` users each; each
//!   population sends Poisson requests at its own rate from a uniformly chosen user. A
//!   request is a write with probability `write_share`, else a read of the user's own
//!   data. After a write is acknowledged, with probability `read_back` the same user
//!   reads it back at once (the page reload after "save").
//! - Each user has a DNS cache (Region, expiry) as in `failover`: a valid answer is used
//!   as is; otherwise the user asks Route 53 (10 ms each way) and caches the answer for
//!   `dns_ttl`. Caches start staggered (expiry uniform in [0, TTL)).
//! - One-way delays: user → own Region 5 ms (10 ms RTT), user → other Region and app →
//!   other Region's database `cross_region_rtt` / 2; app → database in its Region 1 ms.
//!   Database service times are log-normal (cv 0.5), mean 3 ms (read) and 6 ms (write);
//!   no queueing (latency, not capacity, is the subject here).
//! - Reads go to the database of the Region that served the request; writes go to the
//!   writer's Region. A write commits when its service ends.
//! - Replication: the replica has applied every write committed up to its watermark
//!   `A(t) = max(A₀, min(t − lag, A₀ + 5·(t − t₀)))` from the last anchor `(A₀, t₀)`,
//!   i.e. it trails the writer by `replica_lag` and, after falling behind, catches up at
//!   5× real time. The watermark stops (speed 0) while replication is stalled
//!   (`lag-spike`, 30 s), while the replica is down, and while there is no live writer.
//!   `ReplicaLag` (`replica_lag_s`) = now − A(now).
//! - A read served by the replica is stale (a read-your-writes violation) iff its user's
//!   last acknowledged write committed after A(read time). Reads at the writer are never
//!   stale.
//! - Failures: losing a Region stops its app and database (requests in the database fail;
//!   requests arriving there fail). Users follow DNS as described. Losing the writer's
//!   Region makes every write fail until `promote` (the replica becomes the writer after
//!   `promotion_time`) or `restore`; acknowledged writes not yet on the replica at that
//!   instant are lost if it is promoted (`writes_lost`, the RPO).
//!
//! Integer ticks, named random streams, no hash iteration: fully deterministic.

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::histogram::{LatencyHistogram, PRECISE};
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
    id: "multi-region",
    title: "Multi-region reads with latency-based routing",
    group: LessonGroup::Data,
    summary: "Users in Tokyo and Virginia, the writer in us-east-1 and a read replica in Tokyo: route each user to the nearest Region and watch reads get fast, writes still cross the Pacific, and replica lag turn into stale reads.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("routing"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "routing",
        label: "DNS routing",
        unit: "",
        help: "single-region: one record, everyone goes to us-east-1 (Virginia); latency-based: Route 53 latency records with health checks send each user to the Region with the lowest latency.",
        kind: ParamKind::Choice {
            options: &["single-region", "latency-based"],
            default: "latency-based",
        },
        liveness: Liveness::Restart,
    },
    number("tokyo_rate", "Tokyo users' load", "req/s", "Requests per second from all Tokyo users together.", (1.0, 100.0, 1.0, 20.0)),
    number("virginia_rate", "Virginia users' load", "req/s", "Requests per second from all Virginia users together.", (1.0, 100.0, 1.0, 20.0)),
    number("write_share", "Write share", "", "Fraction of user requests that are writes (the rest read the user's own data).", (0.0, 0.5, 0.01, 0.1)),
    number("read_back", "Read back after a write", "", "Fraction of acknowledged writes that the same user reads back at once (the page reload after saving).", (0.0, 1.0, 0.05, 0.5)),
    number("replica_lag", "Replica lag", "s", "How far the cross-Region replica trails the writer (asynchronous replication; Aurora global databases: typically under 1 s).", (0.0, 5.0, 0.1, 1.0)),
    number("cross_region_rtt", "Tokyo ↔ Virginia RTT", "ms", "Network round trip between the two Regions, and between a user and the far Region (about 150-170 ms in practice).", (100.0, 250.0, 5.0, 160.0)),
    ParamSpec {
        name: "check_interval",
        label: "Health-check interval",
        unit: "s",
        help: "How often Route 53 probes each Region's endpoint (10 or 30 seconds). A change applies from the next probe.",
        kind: ParamKind::Choice {
            options: &["10", "30"],
            default: "10",
        },
        liveness: Liveness::Live,
    },
    ParamSpec {
        name: "failure_threshold",
        label: "Failure threshold",
        unit: "",
        help: "Consecutive failed (or passed) probes before a Region's health status changes (1 to 10).",
        kind: ParamKind::Integer {
            min: 1,
            max: 10,
            default: 3,
        },
        liveness: Liveness::Live,
    },
    number("dns_ttl", "DNS TTL", "s", "How long a user's resolver caches the DNS answer. Applies to answers given from now on.", (0.0, 300.0, 5.0, 60.0)),
    number("promotion_time", "Promotion time", "s", "How long promoting the replica to a writer takes (the 'promote' injection).", (10.0, 600.0, 10.0, 60.0)),
    ParamSpec {
        name: "users_per_region",
        label: "Users per Region",
        unit: "",
        help: "Users in each population, each with their own DNS cache and their own data.",
        kind: ParamKind::Integer {
            min: 10,
            max: 500,
            default: 100,
        },
        liveness: Liveness::Restart,
    },
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "lose-tokyo",
        label: "Lose the Tokyo Region",
        help: "ap-northeast-1 fails: its app tier and replica stop. Tokyo users fail until health checks and DNS TTLs move them to Virginia.",
    },
    InjectionSpec {
        id: "lose-virginia",
        label: "Lose the Virginia Region (the writer)",
        help: "us-east-1 fails with the primary database: every write fails until a replica is promoted; Tokyo reads keep working.",
    },
    InjectionSpec {
        id: "promote",
        label: "Promote the replica",
        help: "After the writer's Region is lost: promote the surviving replica to a standalone writer (takes the promotion time); writes resume there.",
    },
    InjectionSpec {
        id: "lag-spike",
        label: "Replication stalls (lag spike)",
        help: "Cross-Region replication stops for 30 s, then catches up: the replica falls behind and reads there go stale.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore",
        help: "Brings lost Regions back and ends a replication stall.",
    },
];

/// Region and population indices.
pub const VIRGINIA: usize = 0;
pub const TOKYO: usize = 1;
const NAMES: [&str; 2] = ["virginia", "tokyo"];

/// User → a Region in their own metro, one way (10 ms RTT).
const USER_LOCAL: SimDuration = SimDuration::from_millis(5);
/// App tier → database in the same Region, one way.
const DB_LOCAL: SimDuration = SimDuration::from_millis(1);
/// User ↔ Route 53, one way.
const LOOKUP_HOP: SimDuration = SimDuration::from_millis(10);
const READ_TIME: SimDuration = SimDuration::from_millis(3);
const WRITE_TIME: SimDuration = SimDuration::from_millis(6);
const SERVICE_CV: f64 = 0.5;
/// How much faster than real time a replica that fell behind applies its backlog.
pub const CATCH_UP_SPEED: u64 = 5;
/// How long a `lag-spike` stalls replication.
pub const STALL: SimDuration = SimDuration::from_secs(30);
/// Gauge and replica-state refresh period.
const TICK: SimDuration = SimDuration::from_millis(500);
/// A replica is shown as lagging (unhealthy) when its lag exceeds the configured lag by this.
const LAGGING_MARGIN: SimDuration = SimDuration::from_secs(1);
/// Bound on the list of commits not yet on the replica (memory stays bounded).
const MAX_PENDING_COMMITS: usize = 100_000;

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival {
        pop: u8,
    },
    /// A request's DNS query reaches Route 53.
    AtDns {
        req: u32,
    },
    /// The answer is back at the user, who now sends the request.
    Answered {
        req: u32,
    },
    /// A request reaches its Region's app tier.
    AtApp {
        req: u32,
    },
    /// A request reaches the database it was sent to.
    AtDb {
        req: u32,
    },
    /// The database finishes the request (ignored if its Region died since).
    DbDone {
        req: u32,
        db: u8,
        life: u32,
    },
    /// The database's reply is back at the app tier.
    BackAtApp {
        req: u32,
    },
    /// The response reaches the user.
    Delivered {
        req: u32,
    },
    /// A health-check probe of a Region.
    Probe {
        region: u8,
    },
    /// Gauges and replica state refresh.
    Tick,
    /// A replication stall ends (ignored if `gen` is stale).
    StallEnds {
        gen: u32,
    },
    /// A promotion completes (ignored if `gen` is stale).
    Promoted {
        gen: u32,
    },
}

#[derive(Clone, Debug)]
struct Region {
    users: NodeId,
    app: NodeId,
    db: NodeId,
    check: NodeId,
    up: bool,
    /// Bumped whenever the Region dies, so its pending database completions are ignored.
    life: u32,
    /// Requests in service at the database.
    in_db: u32,
    /// Health check verdict (what DNS acts on) and the run of probes against it.
    healthy: bool,
    streak: u32,
    probe_phase: SimDuration,
    lost_at: Option<SimTime>,
    /// Replication watermark anchor: `anchor` applied at `anchor_at` (replica only).
    anchor: SimTime,
    anchor_at: SimTime,
    /// Lost the writer role by a promotion elsewhere (rebuilt on restore).
    demoted: bool,
    shown_db: NodeState,
}

/// One user's DNS cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCache {
    /// Region of the cached answer (0 = Virginia, 1 = Tokyo).
    pub region: usize,
    /// The answer is used while `now < expires`.
    pub expires: SimTime,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    key: RequestKey,
    born: SimTime,
    pop: usize,
    user: u32,
    write: bool,
    /// Region whose app tier serves the request, and the database it was sent to.
    region: usize,
    db: usize,
    in_db: bool,
}

pub struct MultiRegionModel {
    params: ParamValues,
    latency_routing: bool,
    topology: Topology,
    dns_node: NodeId,
    regions: Vec<Region>,
    /// Edges: user pop → Route 53 and back; pop → app region and back; app region →
    /// db region and back.
    e_lookup: [EdgeId; 2],
    e_answer: [EdgeId; 2],
    e_to_app: [[EdgeId; 2]; 2],
    e_from_app: [[EdgeId; 2]; 2],
    e_to_db: [[EdgeId; 2]; 2],
    e_from_db: [[EdgeId; 2]; 2],
    users: Vec<UserCache>,
    /// Commit time of each user's last acknowledged write.
    last_write: Vec<Option<SimTime>>,
    /// Commit times not yet known to be on the replica (oldest first).
    pending_commits: VecDeque<SimTime>,
    reqs: Slab<Req>,
    /// The Region whose database takes writes; `None` while a promotion is under way.
    writer: Option<usize>,
    promoting: Option<usize>,
    promotion_gen: u32,
    stalled: bool,
    stall_gen: u32,
    /// DNS answer per population.
    answer: [usize; 2],
    // Figures.
    read_latency: [LatencyHistogram; 2],
    write_latency: [LatencyHistogram; 2],
    stale_reads: [u64; 2],
    replica_reads: u64,
    failed_reads: u64,
    failed_writes: u64,
    writes_lost: u64,
    last_detection: Option<f64>,
    last_reroute: Option<f64>,
    writes_down_since: Option<SimTime>,
    last_write_outage: Option<f64>,
    max_lag: SimDuration,
    /// Read latencies (sum in ticks, count) of the current tick window, per population,
    /// and of Tokyo writes.
    window: [(u64, u64); 3],
    window_value: [i64; 3],
    arrivals: [ArrivalTimer<Event>; 2],
    user_rng: [SimRng; 2],
    kind_rng: SimRng,
    read_back_rng: SimRng,
    service_rng: SimRng,
    core: ModelCore,
    gauge_lag: GaugeId,
    gauge_window: [GaugeId; 3],
    gauge_tokyo_away: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn interval_of(params: &ParamValues) -> SimDuration {
    SimDuration::from_secs(if params.choice("check_interval") == "30" {
        30
    } else {
        10
    })
}

fn arrivals(pop: usize, rate: f64, seed: Seed) -> ArrivalTimer<Event> {
    let stream = ["arrivals-virginia", "arrivals-tokyo"][pop];
    ArrivalTimer::new(
        PoissonArrivals::new(TrafficShape::Steady { rate }, SimRng::new(seed.0, stream)),
        Event::Arrival { pop: pop as u8 },
    )
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<MultiRegionModel> {
    let latency_routing = params.choice("routing") == "latency-based";
    let mut topology = Topology::default();
    let dns_node = topology.add_node("dns", "Route 53", NodeKind::Router, 0.1, 0.5);
    let mut phase_rng = SimRng::new(seed.0, "probe-phase");
    let interval = interval_of(params);
    let mut regions = Vec::new();
    // Virginia below, Tokyo above (Tokyo first in reading order: it is the lesson's focus).
    for (r, (users_label, app_label, db_label, check_label, y, check_y)) in [
        (
            "Users · Virginia",
            "App · Virginia",
            "Virginia writer",
            "Check Virginia",
            0.78,
            1.0,
        ),
        (
            "Users · Tokyo",
            "App · Tokyo",
            "Tokyo replica",
            "Check Tokyo",
            0.22,
            0.0,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let name = NAMES[r];
        let users = topology.add_node(
            &format!("{name}-users"),
            users_label,
            NodeKind::Source,
            0.06,
            y,
        );
        let app = topology.add_node(&format!("{name}-app"), app_label, NodeKind::Server, 0.44, y);
        let db = topology.add_node(&format!("{name}-db"), db_label, NodeKind::Store, 0.88, y);
        let check = topology.add_node(
            &format!("check-{name}"),
            check_label,
            NodeKind::Guard,
            0.44,
            check_y,
        );
        topology.add_edge(check, app);
        regions.push(Region {
            users,
            app,
            db,
            check,
            up: true,
            life: 0,
            in_db: 0,
            healthy: true,
            streak: 0,
            probe_phase: SimDuration::from_ticks(phase_rng.below(interval.ticks())),
            lost_at: None,
            anchor: SimTime::ZERO,
            anchor_at: SimTime::ZERO,
            demoted: false,
            shown_db: NodeState::Healthy,
        });
    }
    let edges = |from: [NodeId; 2], to: [NodeId; 2], topology: &mut Topology| {
        [0, 1].map(|a| [0, 1].map(|b| topology.add_edge(from[a], to[b])))
    };
    let users_nodes = [regions[0].users, regions[1].users];
    let app_nodes = [regions[0].app, regions[1].app];
    let db_nodes = [regions[0].db, regions[1].db];
    let e_to_app = edges(users_nodes, app_nodes, &mut topology);
    let e_from_app = edges(app_nodes, users_nodes, &mut topology);
    let e_to_db = edges(app_nodes, db_nodes, &mut topology);
    let e_from_db = edges(db_nodes, app_nodes, &mut topology);
    let e_lookup = [0, 1].map(|p| topology.add_edge(users_nodes[p], dns_node));
    let e_answer = [0, 1].map(|p| topology.add_edge(dns_node, users_nodes[p]));
    // The replication stream (drawn, carries no requests).
    topology.add_edge(db_nodes[VIRGINIA], db_nodes[TOKYO]);
    let core = ModelCore::new(vec![
        "replica_lag_ms",
        "tokyo_read_ms",
        "virginia_read_ms",
        "tokyo_write_ms",
        "tokyo_users_on_virginia",
    ]);
    let per_region = params.integer("users_per_region") as usize;
    let mut model = MultiRegionModel {
        params: params.clone(),
        latency_routing,
        topology,
        dns_node,
        regions,
        e_lookup,
        e_answer,
        e_to_app,
        e_from_app,
        e_to_db,
        e_from_db,
        users: Vec::new(),
        last_write: vec![None; 2 * per_region],
        pending_commits: VecDeque::new(),
        reqs: Slab::new(),
        writer: Some(VIRGINIA),
        promoting: None,
        promotion_gen: 0,
        stalled: false,
        stall_gen: 0,
        answer: [VIRGINIA; 2],
        read_latency: [
            LatencyHistogram::new(PRECISE),
            LatencyHistogram::new(PRECISE),
        ],
        write_latency: [
            LatencyHistogram::new(PRECISE),
            LatencyHistogram::new(PRECISE),
        ],
        stale_reads: [0; 2],
        replica_reads: 0,
        failed_reads: 0,
        failed_writes: 0,
        writes_lost: 0,
        last_detection: None,
        last_reroute: None,
        writes_down_since: None,
        last_write_outage: None,
        max_lag: SimDuration::ZERO,
        window: [(0, 0); 3],
        window_value: [0; 3],
        arrivals: [
            arrivals(VIRGINIA, params.number("virginia_rate"), seed),
            arrivals(TOKYO, params.number("tokyo_rate"), seed),
        ],
        user_rng: [
            SimRng::new(seed.0, "user-pick-virginia"),
            SimRng::new(seed.0, "user-pick-tokyo"),
        ],
        kind_rng: SimRng::new(seed.0, "request-kind"),
        read_back_rng: SimRng::new(seed.0, "read-back"),
        service_rng: SimRng::new(seed.0, "service"),
        gauge_lag: core.gauge("replica_lag_ms"),
        gauge_window: [
            core.gauge("virginia_read_ms"),
            core.gauge("tokyo_read_ms"),
            core.gauge("tokyo_write_ms"),
        ],
        gauge_tokyo_away: core.gauge("tokyo_users_on_virginia"),
        core,
    };
    model.answer = [model.dns_answer(VIRGINIA), model.dns_answer(TOKYO)];
    // Users have been running for a while: caches hold the current answer and expire at
    // staggered times within one TTL.
    let mut cache_rng = SimRng::new(seed.0, "dns-cache");
    let ttl = params.number("dns_ttl");
    for pop in [VIRGINIA, TOKYO] {
        for _ in 0..per_region {
            let expires = SimTime::ZERO + SimDuration::from_secs_f64(ttl * cache_rng.uniform01());
            model.users.push(UserCache {
                region: model.answer[pop],
                expires,
            });
        }
    }
    let mut scheduler = Scheduler::new();
    for timer in &mut model.arrivals {
        timer.rearm(&mut scheduler);
    }
    for r in [VIRGINIA, TOKYO] {
        scheduler.schedule_in(
            model.regions[r].probe_phase,
            Event::Probe { region: r as u8 },
        );
    }
    scheduler.schedule_in(TICK, Event::Tick);
    model.update_gauges(SimTime::ZERO);
    Simulation::new(model, scheduler)
}

impl MultiRegionModel {
    fn lag(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("replica_lag"))
    }

    fn cross_one_way(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("cross_region_rtt") / 2000.0)
    }

    fn user_hop(&self, pop: usize, region: usize) -> SimDuration {
        if pop == region {
            USER_LOCAL
        } else {
            self.cross_one_way()
        }
    }

    fn db_hop(&self, region: usize, db: usize) -> SimDuration {
        if region == db {
            DB_LOCAL
        } else {
            self.cross_one_way()
        }
    }

    /// Is `region`'s database a replica that replicates now? Its watermark advances only
    /// then.
    fn replicating(&self, region: usize) -> bool {
        let Some(writer) = self.writer else {
            return false;
        };
        writer != region && self.regions[writer].up && self.regions[region].up && !self.stalled
    }

    /// The writer's commit time up to which `region`'s replica has applied every write.
    pub fn watermark(&self, region: usize, now: SimTime) -> SimTime {
        let entry = &self.regions[region];
        if !self.replicating(region) {
            return entry.anchor;
        }
        let target = now.ticks().saturating_sub(self.lag().ticks());
        let advanced = entry.anchor.ticks() + CATCH_UP_SPEED * (now - entry.anchor_at).ticks();
        SimTime::from_ticks(entry.anchor.ticks().max(target.min(advanced)))
    }

    /// Fixes every replica's watermark at `now`: call before anything that changes how it
    /// advances (lag, stall, a Region's state, the writer).
    fn reanchor(&mut self, now: SimTime) {
        for region in [VIRGINIA, TOKYO] {
            let anchor = self.watermark(region, now);
            let entry = &mut self.regions[region];
            entry.anchor = anchor;
            entry.anchor_at = now;
        }
    }

    /// The replica Region (the one that does not hold the writer role), if any.
    fn replica_region(&self) -> Option<usize> {
        self.writer.map(|writer| 1 - writer)
    }

    /// `ReplicaLag`: how far the replica trails the live writer (0 without one).
    pub fn replica_lag(&self, now: SimTime) -> SimDuration {
        match (self.writer, self.replica_region()) {
            (Some(writer), Some(replica))
                if self.regions[writer].up && self.regions[replica].up =>
            {
                now.saturating_since(self.watermark(replica, now))
            }
            _ => SimDuration::ZERO,
        }
    }

    /// The Region Route 53 answers to population `pop`.
    fn dns_answer(&self, pop: usize) -> usize {
        if !self.latency_routing {
            return VIRGINIA;
        }
        let other = 1 - pop;
        if self.regions[pop].healthy || !self.regions[other].healthy {
            pop // nearest healthy, or every record unhealthy (all treated as healthy)
        } else {
            other
        }
    }

    fn start_request(
        &mut self,
        pop: usize,
        user: u32,
        write: bool,
        scheduler: &mut Scheduler<Event>,
    ) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let cache = self.users[user as usize];
        let cached = (now < cache.expires).then_some(cache.region);
        let (place, delay, event_req): (Place, SimDuration, fn(u32) -> Event) = match cached {
            Some(region) => {
                let hop = self.user_hop(pop, region);
                (
                    Place::OnEdge {
                        edge: self.e_to_app[pop][region],
                        depart: now,
                        arrive: now + hop,
                    },
                    hop,
                    |req| Event::AtApp { req },
                )
            }
            None => (
                Place::OnEdge {
                    edge: self.e_lookup[pop],
                    depart: now,
                    arrive: now + LOOKUP_HOP,
                },
                LOOKUP_HOP,
                |req| Event::AtDns { req },
            ),
        };
        let key = self.core.requests.spawn(now, place);
        let req = self.reqs.insert(Req {
            key,
            born: now,
            pop,
            user,
            write,
            region: cached.unwrap_or(pop),
            db: VIRGINIA,
            in_db: false,
        }) as u32;
        scheduler.schedule_in(delay, event_req(req));
    }

    fn arrive(&mut self, pop: usize, scheduler: &mut Scheduler<Event>) {
        let per_region = (self.users.len() / 2) as u64;
        let user = (pop as u64 * per_region + self.user_rng[pop].below(per_region)) as u32;
        let write = self.kind_rng.chance(self.params.number("write_share"));
        self.start_request(pop, user, write, scheduler);
    }

    fn at_dns(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        let region = self.answer[entry.pop];
        let ttl = SimDuration::from_secs_f64(self.params.number("dns_ttl"));
        self.users[entry.user as usize] = UserCache {
            region,
            expires: now + LOOKUP_HOP + ttl,
        };
        self.reqs[req as usize].region = region;
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.e_answer[entry.pop],
                depart: now,
                arrive: now + LOOKUP_HOP,
            },
        );
        scheduler.schedule_in(LOOKUP_HOP, Event::Answered { req });
    }

    fn answered(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        let hop = self.user_hop(entry.pop, entry.region);
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.e_to_app[entry.pop][entry.region],
                depart: now,
                arrive: now + hop,
            },
        );
        scheduler.schedule_in(hop, Event::AtApp { req });
    }

    fn fail(&mut self, req: u32, now: SimTime) {
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        self.core.metrics.failed(now);
        if entry.in_db {
            self.regions[entry.db].in_db -= 1;
        }
        if entry.write {
            self.failed_writes += 1;
        } else {
            self.failed_reads += 1;
        }
    }

    /// The app tier sends a read to its own Region's database and a write to the writer.
    fn at_app(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        if !self.regions[entry.region].up {
            self.fail(req, now); // the Region is dark: connection refused
            return;
        }
        let db = if entry.write {
            match self.writer {
                Some(writer) => writer,
                None => {
                    self.fail(req, now); // no writer while the replica is being promoted
                    return;
                }
            }
        } else {
            entry.region
        };
        self.reqs[req as usize].db = db;
        let hop = self.db_hop(entry.region, db);
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.e_to_db[entry.region][db],
                depart: now,
                arrive: now + hop,
            },
        );
        scheduler.schedule_in(hop, Event::AtDb { req });
    }

    fn at_db(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        let db = entry.db;
        if !self.regions[db].up || (entry.write && self.writer != Some(db)) {
            self.fail(req, now);
            return;
        }
        if !entry.write && self.writer != Some(db) {
            // A replica read: stale if the user's last acknowledged write is not there yet.
            self.replica_reads += 1;
            let watermark = self.watermark(db, now);
            if self.last_write[entry.user as usize].is_some_and(|w| w > watermark) {
                self.stale_reads[entry.pop] += 1;
            }
        }
        let mean = if entry.write { WRITE_TIME } else { READ_TIME };
        let service = ServiceTime::LogNormal {
            mean,
            cv: SERVICE_CV,
        }
        .sample(&mut self.service_rng);
        self.regions[db].in_db += 1;
        self.reqs[req as usize].in_db = true;
        self.core.requests.move_to(
            entry.key,
            Place::InService {
                node: self.regions[db].db,
                since: now,
            },
        );
        let life = self.regions[db].life;
        scheduler.schedule_in(
            service,
            Event::DbDone {
                req,
                db: db as u8,
                life,
            },
        );
    }

    fn db_done(&mut self, req: u32, db: usize, life: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.regions[db].life != life {
            return; // the Region died: the request already failed (its slot may be reused)
        }
        let entry = self.reqs[req as usize];
        self.regions[entry.db].in_db -= 1;
        self.reqs[req as usize].in_db = false;
        if entry.write {
            self.last_write[entry.user as usize] = Some(now);
            self.commit(now);
        }
        let hop = self.db_hop(entry.region, entry.db);
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.e_from_db[entry.db][entry.region],
                depart: now,
                arrive: now + hop,
            },
        );
        scheduler.schedule_in(hop, Event::BackAtApp { req });
    }

    /// Remembers a commit until the replica has it (for the writes a promotion loses).
    fn commit(&mut self, now: SimTime) {
        self.pending_commits.push_back(now);
        if let Some(replica) = self.replica_region() {
            let watermark = self.watermark(replica, now);
            while self
                .pending_commits
                .front()
                .is_some_and(|&w| w <= watermark)
            {
                self.pending_commits.pop_front();
            }
        }
        while self.pending_commits.len() > MAX_PENDING_COMMITS {
            self.pending_commits.pop_front();
        }
    }

    fn back_at_app(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        if !self.regions[entry.region].up {
            self.fail(req, now); // the app tier waiting for the answer is gone
            return;
        }
        let hop = self.user_hop(entry.pop, entry.region);
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.e_from_app[entry.region][entry.pop],
                depart: now,
                arrive: now + hop,
            },
        );
        scheduler.schedule_in(hop, Event::Delivered { req });
    }

    fn delivered(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        let latency = now - entry.born;
        self.core.metrics.completed(now, latency);
        if entry.write {
            self.write_latency[entry.pop].record(latency);
            if entry.pop == TOKYO {
                self.window[2].0 += latency.ticks();
                self.window[2].1 += 1;
            }
            if self.read_back_rng.chance(self.params.number("read_back")) {
                self.start_request(entry.pop, entry.user, false, scheduler);
            }
        } else {
            self.read_latency[entry.pop].record(latency);
            self.window[entry.pop].0 += latency.ticks();
            self.window[entry.pop].1 += 1;
        }
    }

    fn probe(&mut self, region: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(
            interval_of(&self.params),
            Event::Probe {
                region: region as u8,
            },
        );
        let passed = self.regions[region].up;
        let threshold = self.params.integer("failure_threshold") as u32;
        let entry = &mut self.regions[region];
        if passed == entry.healthy {
            entry.streak = 0;
            return;
        }
        entry.streak += 1;
        if entry.streak < threshold {
            return;
        }
        entry.streak = 0;
        entry.healthy = passed;
        let check = entry.check;
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: check,
                to: if passed {
                    NodeState::Healthy
                } else {
                    NodeState::Unhealthy
                },
            },
        );
        if !passed {
            if let Some(lost) = self.regions[region].lost_at {
                self.last_detection = Some((now - lost).as_secs_f64());
            }
        }
        let was_answered = self.answer.contains(&region);
        self.dns_changed(now);
        if !passed && was_answered {
            if let Some(lost) = self.regions[region].lost_at {
                if !self.answer.contains(&region) {
                    // Every user whose cached answer names the dead Region moves when it
                    // expires; the last one sets the reroute time.
                    let last = self
                        .users
                        .iter()
                        .filter(|cache| cache.region == region)
                        .map(|cache| cache.expires)
                        .max()
                        .unwrap_or(now)
                        .max(now);
                    self.last_reroute = Some((last - lost).as_secs_f64());
                }
            }
        }
    }

    /// Recomputes the DNS answers; logs a Region's app tier added to or removed from them.
    fn dns_changed(&mut self, now: SimTime) {
        let answer = [self.dns_answer(VIRGINIA), self.dns_answer(TOKYO)];
        for region in [VIRGINIA, TOKYO] {
            let was = self.answer.contains(&region);
            let is = answer.contains(&region);
            if was != is {
                let node = self.regions[region].app;
                self.core.log.push(
                    now,
                    if is {
                        Notable::NodeAdded { node }
                    } else {
                        Notable::NodeRemoved { node }
                    },
                );
            }
        }
        self.answer = answer;
    }

    fn log_state(&mut self, node: NodeId, to: NodeState, now: SimTime) {
        self.core.log.push(now, Notable::StateChanged { node, to });
    }

    /// What the database node of `region` shows.
    fn db_state(&self, region: usize, now: SimTime) -> NodeState {
        if !self.regions[region].up {
            NodeState::Down
        } else if self.promoting == Some(region) {
            NodeState::Starting
        } else if self.writer != Some(region) && self.replica_lag(now) > self.lag() + LAGGING_MARGIN
        {
            NodeState::Unhealthy
        } else {
            NodeState::Healthy
        }
    }

    fn refresh_db_states(&mut self, now: SimTime) {
        for region in [VIRGINIA, TOKYO] {
            let state = self.db_state(region, now);
            if state != self.regions[region].shown_db {
                self.regions[region].shown_db = state;
                let node = self.regions[region].db;
                self.log_state(node, state, now);
            }
        }
    }

    fn lose(
        &mut self,
        region: usize,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        let now = scheduler.now();
        if !self.regions[region].up {
            return Err(CommandError::NotApplicable {
                reason: format!("the {} Region is already down", NAMES[region]),
            });
        }
        self.reanchor(now);
        if self.writer == Some(region) {
            // Acknowledged writes the replica has not applied yet: lost if it is promoted.
            let replica = 1 - region;
            let watermark = self.watermark(replica, now);
            self.writes_lost = self
                .pending_commits
                .iter()
                .filter(|&&w| w > watermark)
                .count() as u64;
            if self.writes_down_since.is_none() {
                self.writes_down_since = Some(now);
            }
        }
        let entry = &mut self.regions[region];
        entry.up = false;
        entry.life += 1;
        entry.lost_at = Some(now);
        let app = entry.app;
        let victims: Vec<u32> = self
            .reqs
            .iter()
            .filter(|(_, r)| r.in_db && r.db == region)
            .map(|(index, _)| index as u32)
            .collect();
        for req in victims {
            self.fail(req, now);
        }
        if self.promoting == Some(region) {
            self.promoting = None;
            self.promotion_gen += 1;
        }
        self.log_state(app, NodeState::Down, now);
        self.refresh_db_states(now);
        Ok(())
    }

    fn promote(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let not = |reason: &str| {
            Err(CommandError::NotApplicable {
                reason: reason.to_owned(),
            })
        };
        if !self.latency_routing {
            return not("single-region routing sends nobody to Tokyo: promoting the replica would not bring writes back (compare with latency-based routing)");
        }
        if self.promoting.is_some() {
            return not("a promotion is already under way");
        }
        let Some(writer) = self.writer else {
            return not("there is no writer to replace");
        };
        if self.regions[writer].up {
            return not("the writer's Region is healthy: promote a replica only after losing it");
        }
        let replica = 1 - writer;
        if !self.regions[replica].up {
            return not("the replica's Region is down too: nothing to promote");
        }
        self.reanchor(now);
        self.writer = None;
        self.promoting = Some(replica);
        self.regions[writer].demoted = true;
        self.promotion_gen += 1;
        let gen = self.promotion_gen;
        let time = SimDuration::from_secs_f64(self.params.number("promotion_time"));
        scheduler.schedule_in(time, Event::Promoted { gen });
        self.refresh_db_states(now);
        Ok(())
    }

    fn promoted(&mut self, gen: u32, now: SimTime) {
        if gen != self.promotion_gen {
            return;
        }
        let Some(region) = self.promoting.take() else {
            return;
        };
        self.reanchor(now);
        self.writer = Some(region);
        self.pending_commits.clear();
        self.close_write_outage(now);
        self.refresh_db_states(now);
    }

    fn close_write_outage(&mut self, now: SimTime) {
        if let Some(since) = self.writes_down_since.take() {
            self.last_write_outage = Some((now - since).as_secs_f64());
        }
    }

    fn lag_spike(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        if self.stalled {
            return Err(CommandError::NotApplicable {
                reason: "replication is already stalled".into(),
            });
        }
        if self.replica_region().is_none_or(|r| !self.replicating(r)) {
            return Err(CommandError::NotApplicable {
                reason: "no replica is replicating right now".into(),
            });
        }
        self.reanchor(now);
        self.stalled = true;
        self.stall_gen += 1;
        scheduler.schedule_in(
            STALL,
            Event::StallEnds {
                gen: self.stall_gen,
            },
        );
        Ok(())
    }

    fn end_stall(&mut self, now: SimTime) {
        self.reanchor(now);
        self.stalled = false;
        self.stall_gen += 1;
    }

    fn restore(&mut self, now: SimTime) -> Result<(), CommandError> {
        let down: Vec<usize> = [VIRGINIA, TOKYO]
            .into_iter()
            .filter(|&r| !self.regions[r].up)
            .collect();
        if down.is_empty() && !self.stalled {
            return Err(CommandError::NotApplicable {
                reason: "both Regions are up and replication is running".into(),
            });
        }
        self.reanchor(now);
        if self.stalled {
            self.stalled = false;
            self.stall_gen += 1;
        }
        let rebuilt = SimTime::from_ticks(now.ticks().saturating_sub(self.lag().ticks()));
        for region in down {
            let entry = &mut self.regions[region];
            entry.up = true;
            if entry.demoted {
                // The old writer comes back as a replica of the new one (in practice it
                // is rebuilt from a snapshot); it starts caught up to the lag.
                entry.demoted = false;
                entry.anchor = rebuilt;
                entry.anchor_at = now;
            }
            let app = entry.app;
            self.log_state(app, NodeState::Healthy, now);
            if self.writer == Some(region) {
                self.close_write_outage(now);
            }
        }
        self.refresh_db_states(now);
        Ok(())
    }

    fn update_gauges(&mut self, now: SimTime) {
        let lag = self.replica_lag(now);
        self.max_lag = self.max_lag.max(lag);
        self.core
            .metrics
            .set_gauge(self.gauge_lag, now, (lag.ticks() / 1000) as i64);
        for (slot, gauge) in self.gauge_window.into_iter().enumerate() {
            let (sum, count) = self.window[slot];
            if let Some(mean) = sum.checked_div(count) {
                self.window_value[slot] = (mean / 1000) as i64;
            }
            self.window[slot] = (0, 0);
            self.core
                .metrics
                .set_gauge(gauge, now, self.window_value[slot]);
        }
        let away = self.tokyo_users_on(VIRGINIA) as i64;
        self.core
            .metrics
            .set_gauge(self.gauge_tokyo_away, now, away);
    }

    fn tick(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(TICK, Event::Tick);
        self.update_gauges(now);
        self.refresh_db_states(now);
    }

    // Inspection for tests and the model note (not used by the view).

    /// Tokyo users whose cached DNS answer names `region` (expired or not).
    pub fn tokyo_users_on(&self, region: usize) -> usize {
        let half = self.users.len() / 2;
        self.users[half..]
            .iter()
            .filter(|cache| cache.region == region)
            .count()
    }

    /// Every user's DNS cache: Virginia users first, then Tokyo users.
    pub fn user_caches(&self) -> &[UserCache] {
        &self.users
    }

    /// Time of the first health-check probe of `region`; later ones follow every interval.
    pub fn probe_phase(&self, region: usize) -> SimDuration {
        self.regions[region].probe_phase
    }

    /// The Region Route 53 answers to each population now ([Virginia users, Tokyo users]).
    pub fn dns_answers(&self) -> [usize; 2] {
        self.answer
    }

    /// The Region whose database takes writes (None during a promotion).
    pub fn writer(&self) -> Option<usize> {
        self.writer
    }

    fn quantile_ms(histogram: &LatencyHistogram, q: f64) -> f64 {
        if histogram.count() == 0 {
            0.0
        } else {
            histogram.quantile_secs(q) * 1000.0
        }
    }
}

impl Model for MultiRegionModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Arrival { pop } => {
                let pop = pop as usize;
                self.arrivals[pop].fired();
                self.arrive(pop, scheduler);
                self.arrivals[pop].rearm(scheduler);
            }
            Event::AtDns { req } => self.at_dns(req, scheduler),
            Event::Answered { req } => self.answered(req, scheduler),
            Event::AtApp { req } => self.at_app(req, scheduler),
            Event::AtDb { req } => self.at_db(req, scheduler),
            Event::DbDone { req, db, life } => self.db_done(req, db as usize, life, scheduler),
            Event::BackAtApp { req } => self.back_at_app(req, scheduler),
            Event::Delivered { req } => self.delivered(req, scheduler),
            Event::Probe { region } => self.probe(region as usize, scheduler),
            Event::Tick => self.tick(scheduler),
            Event::StallEnds { gen } => {
                if gen == self.stall_gen && self.stalled {
                    self.end_stall(scheduler.now());
                }
            }
            Event::Promoted { gen } => self.promoted(gen, scheduler.now()),
        }
    }
}

impl LessonModel for MultiRegionModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.dns_node));
        let threshold = self.params.integer("failure_threshold") as u32;
        for region in &self.regions {
            snapshot.nodes.push(plain(region.users));
            snapshot.nodes.push(NodeView {
                state: if region.up {
                    NodeState::Healthy
                } else {
                    NodeState::Down
                },
                ..plain(region.app)
            });
            snapshot.nodes.push(NodeView {
                state: region.shown_db,
                busy: region.in_db,
                ..plain(region.db)
            });
            // The check shows its verdict and, while probes disagree with it, their run
            // against the threshold ("healthy · 2/3").
            let counting = region.streak > 0;
            snapshot.nodes.push(NodeView {
                node: region.check,
                state: if region.healthy {
                    NodeState::Healthy
                } else {
                    NodeState::Unhealthy
                },
                busy: region.streak,
                capacity: if counting { threshold } else { 0 },
                queued: 0,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let q = Self::quantile_ms;
        let stale = self.stale_reads[0] + self.stale_reads[1];
        let write_outage = match (self.writes_down_since, self.last_write_outage) {
            (Some(since), _) => (now - since).as_secs_f64(),
            (None, Some(outage)) => outage,
            (None, None) => 0.0,
        };
        let figure = |key, label, value, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        vec![
            figure(
                "read_p50_tokyo_ms",
                "Tokyo users: read p50",
                q(&self.read_latency[TOKYO], 0.5),
                "ms",
            ),
            figure(
                "read_p99_tokyo_ms",
                "Tokyo users: read p99",
                q(&self.read_latency[TOKYO], 0.99),
                "ms",
            ),
            figure(
                "read_p50_virginia_ms",
                "Virginia users: read p50",
                q(&self.read_latency[VIRGINIA], 0.5),
                "ms",
            ),
            figure(
                "read_p99_virginia_ms",
                "Virginia users: read p99",
                q(&self.read_latency[VIRGINIA], 0.99),
                "ms",
            ),
            figure(
                "write_p50_tokyo_ms",
                "Tokyo users: write p50",
                q(&self.write_latency[TOKYO], 0.5),
                "ms",
            ),
            figure(
                "write_p50_virginia_ms",
                "Virginia users: write p50",
                q(&self.write_latency[VIRGINIA], 0.5),
                "ms",
            ),
            figure(
                "replica_lag_s",
                "Replica lag now (ReplicaLag)",
                self.replica_lag(now).as_secs_f64(),
                "s",
            ),
            figure(
                "max_replica_lag_s",
                "Highest replica lag",
                self.max_lag.max(self.replica_lag(now)).as_secs_f64(),
                "s",
            ),
            figure(
                "stale_reads",
                "Stale reads (read-your-writes violations)",
                stale as f64,
                "",
            ),
            figure(
                "stale_reads_tokyo",
                "Stale reads by Tokyo users",
                self.stale_reads[TOKYO] as f64,
                "",
            ),
            figure(
                "stale_read_pct",
                "Stale share of replica reads",
                if self.replica_reads == 0 {
                    0.0
                } else {
                    100.0 * stale as f64 / self.replica_reads as f64
                },
                "%",
            ),
            figure("failed_reads", "Reads failed", self.failed_reads as f64, ""),
            figure(
                "failed_writes",
                "Writes failed",
                self.failed_writes as f64,
                "",
            ),
            figure(
                "writes_lost",
                "Acknowledged writes not on the replica when the writer died",
                self.writes_lost as f64,
                "",
            ),
            figure(
                "detection_s",
                "Detection: Region lost → marked unhealthy",
                self.last_detection.unwrap_or(0.0),
                "s",
            ),
            figure(
                "reroute_s",
                "Region lost → its last user re-routed",
                self.last_reroute.unwrap_or(0.0),
                "s",
            ),
            figure(
                "write_outage_s",
                "Writer lost → writes accepted again",
                write_outage,
                "s",
            ),
            figure(
                "tokyo_users_on_virginia",
                "Tokyo users routed to Virginia",
                self.tokyo_users_on(VIRGINIA) as f64,
                "",
            ),
            figure(
                "writer_is_tokyo",
                "Writer is in Tokyo (1) or Virginia (0)",
                if self.writer == Some(TOKYO) || self.promoting == Some(TOKYO) {
                    1.0
                } else {
                    0.0
                },
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
                    "lose-tokyo" => self.lose(TOKYO, scheduler)?,
                    "lose-virginia" => self.lose(VIRGINIA, scheduler)?,
                    "promote" => self.promote(scheduler)?,
                    "lag-spike" => self.lag_spike(scheduler)?,
                    "restore" => self.restore(now)?,
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
                if name == "replica_lag" {
                    // The watermark so far followed the old lag.
                    self.reanchor(now);
                }
                let spec =
                    accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
                match spec.name {
                    "tokyo_rate" | "virginia_rate" => {
                        let pop = if spec.name == "tokyo_rate" {
                            TOKYO
                        } else {
                            VIRGINIA
                        };
                        self.arrivals[pop].arrivals.set_shape(TrafficShape::Steady {
                            rate: self.params.number(spec.name),
                        });
                        self.arrivals[pop].rearm(scheduler);
                    }
                    "replica_lag" => self.refresh_db_states(now),
                    _ => {}
                }
                Ok(())
            }
        }
    }
}
