//! Lesson `replication`: a primary database with read replicas, synchronous against
//! asynchronous replication, and what each costs: replica lag and stale reads,
//! read-your-writes violations, the write latency of waiting for replicas, and the
//! acknowledged writes a failover loses.
//!
//! Sources: Amazon RDS User Guide, "Working with DB instance read replicas" (a read
//! replica is updated asynchronously from the primary; the `ReplicaLag` CloudWatch metric
//! is how far it trails; a replica can be promoted to a standalone primary) and
//! "Multi-AZ deployments" (a standby kept in sync by synchronous replication: a write is
//! committed only when the standby has it, so an automatic failover loses no committed
//! write; the standby serves no reads). Read-your-writes as a session guarantee: D. B.
//! Terry, A. J. Demers, K. Petersen, M. J. Spreitzer, M. M. Theimer, B. B. Welch,
//! "Session guarantees for weakly consistent replicated data", PDIS 1994: a session
//! remembers the version of its own writes and reads only from a server that has them.
//!
//! The model, in short (equations in docs/models/replication.md):
//! - Writes and reads arrive as two Poisson streams, each from one of 50 clients. A write
//!   sets one key (uniform over `keys`); a read is, with probability `own_read_share`, a
//!   read of the client's own latest write, otherwise a read of a uniform key. Every
//!   database serves a request in a log-normal time (mean `db_time`, cv 0.5) with no
//!   connection limit; a network hop is 5 ms.
//! - The primary commits a write at the end of its service time and gives it the next
//!   log sequence number (LSN). Each replica applies the primary's log strictly in order.
//!   `asynchronous`: the write is acknowledged at commit; replica r applies it
//!   `replica_lag` × U(0.9, 1.1) later (mean `replica_lag`; never before the
//!   previous entry). `synchronous`: every live replica receives it after half the
//!   round trip `replica_rtt` (times 0.8 + Exp(mean 0.2)), applies it, and its ack takes
//!   another half round trip back; the primary acknowledges the write when the last ack
//!   arrives, so a write pays the slowest replica's round trip.
//! - A read served by a database returns that database's version of the key. It is
//!   stale if the version is older than the key's latest acknowledged write, and a
//!   read-your-writes violation if it is older than the client's own write to that key
//!   that was acknowledged before the read was sent (a write a failover lost since counts
//!   as a lost write, not as a violation).
//!   With `read_your_writes` routing the client carries the LSN of its latest write; a
//!   read of that key skips a replica that has not applied that LSN and goes to the
//!   primary (or fails while no primary is up), so violations cannot happen.
//! - Replica lag (per replica, like `ReplicaLag`) = now − commit time of the oldest write
//!   the replica has not applied yet (0 when none), charted per replica every 250 ms,
//!   with the share of reads in the last second that were stale.
//! - `kill-primary`: the primary stops; replication stops with it (what a replica has not
//!   applied by then never reaches it). After `detection_delay` the most up-to-date
//!   replica is promoted (starting for 5 s, then the primary; clients' writes go there);
//!   acknowledged writes it never applied are lost, and the remaining replicas resync
//!   from it. Under synchronous replication every acknowledged write is on every replica,
//!   so nothing is lost: writes in flight at the crash fail instead (not acknowledged).
//! - `slow-replica`: one replica falls behind: it replays the log at half the primary's
//!   pace, so its lag grows by 0.5 s every second (an under-sized replica, or a long
//!   query blocking replay); under synchronous replication
//!   every write waits for it. `restore` brings a slow replica back to speed (it works
//!   through its backlog at once) or, after a failover, rebuilds the old primary as a new
//!   replica (10 s).

use std::collections::{BTreeMap, VecDeque};

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
use super::params::number;
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "replication",
    title: "Replication and consistency",
    group: LessonGroup::Data,
    summary: "A primary with read replicas: asynchronous replication means replica lag, stale reads and lost writes on failover; synchronous replication loses nothing but every write waits for the replicas.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(180),
    build,
    compare: Some("replication"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "replication",
        label: "Replication",
        unit: "",
        help: "asynchronous: a write is acknowledged when the primary commits it, replicas apply it later; synchronous: acknowledged only when every replica has applied it.",
        kind: ParamKind::Choice {
            options: &["asynchronous", "synchronous"],
            default: "asynchronous",
        },
        liveness: Liveness::Restart,
    },
    number("write_rate", "Writes", "req/s", "Writes per second (Poisson), each to one key.", (0.0, 1000.0, 1.0, 50.0)),
    number("read_rate", "Reads", "req/s", "Reads per second (Poisson), served by the replicas.", (0.0, 5000.0, 10.0, 200.0)),
    number("replica_lag", "Replica lag (async)", "ms", "Mean time until an asynchronous replica applies a committed write (random around it, never out of order).", (0.0, 10000.0, 10.0, 500.0)),
    number("replica_rtt", "Replica round trip (sync)", "ms", "Network round trip primary to replica and back; a synchronous write waits for the slowest one.", (0.0, 500.0, 1.0, 20.0)),
    ParamSpec {
        name: "read_your_writes",
        label: "Read-your-writes routing",
        unit: "",
        help: "A client remembers its latest write; a read skips replicas that have not applied it and goes to the primary.",
        kind: ParamKind::Toggle { default: false },
        liveness: Liveness::Live,
    },
    number("own_read_share", "Reads of own writes", "", "Share of reads in which a client reads back the key it wrote last.", (0.0, 1.0, 0.05, 0.3)),
    number("detection_delay", "Failure detection", "s", "Time from the primary's crash until a replica's promotion starts.", (1.0, 120.0, 1.0, 10.0)),
    number("db_time", "Query time", "ms", "Mean time a database needs for one read or write (log-normal, cv 0.5).", (1.0, 500.0, 1.0, 5.0)),
    ParamSpec {
        name: "replicas",
        label: "Read replicas",
        unit: "",
        help: "Replicas of the primary; each serves reads and can be promoted.",
        kind: ParamKind::Integer {
            min: 1,
            max: MAX_REPLICAS as i64,
            default: 2,
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "keys",
        label: "Keys",
        unit: "",
        help: "Distinct keys (rows) that writes and reads spread over.",
        kind: ParamKind::Integer {
            min: 10,
            max: 100_000,
            default: 1000,
        },
        liveness: Liveness::Restart,
    },
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "kill-primary",
        label: "Kill the primary",
        help: "The primary crashes; after the detection delay the most up-to-date replica is promoted.",
    },
    InjectionSpec {
        id: "slow-replica",
        label: "Slow replica",
        help: "One replica falls behind: its lag grows by half a second every second.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore",
        help: "A slow replica catches up at once; after a failover, the old primary is rebuilt as a replica.",
    },
];

/// One network hop (client to database, database to the response).
pub const HOP: SimDuration = SimDuration::from_millis(5);
/// Clients issuing requests (each has its own read-your-writes session).
pub const CLIENTS: usize = 50;
/// Replica slots drawn at most.
pub const MAX_REPLICAS: usize = 3;
/// A promoted replica takes this long before it accepts writes.
pub const PROMOTION: SimDuration = SimDuration::from_secs(5);
/// Rebuilding the old primary as a replica after a failover.
pub const REJOIN: SimDuration = SimDuration::from_secs(10);
/// Seconds of extra lag a slow replica gains per second.
pub const SLOW_GROWTH: f64 = 0.5;
/// How often lag gauges are sampled.
pub const TICK: SimDuration = SimDuration::from_millis(250);
pub const SERVICE_CV: f64 = 0.5;
/// Ticks the stale-read-rate gauge looks back over (1 s).
const WINDOW_TICKS: usize = 4;
const LAG_GAUGES: [&str; MAX_REPLICAS] =
    ["replica_1_lag_ms", "replica_2_lag_ms", "replica_3_lag_ms"];
const STALE_GAUGE: &str = "stale_reads_pct_last_second";

const READ: usize = 0;
const WRITE: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival {
        kind: u8,
    },
    /// A request reaches its database.
    AtNode {
        req: u32,
    },
    /// The database finished it (a write commits, a read returns its version).
    Served {
        req: u32,
    },
    /// The response reaches the client.
    Delivered {
        req: u32,
    },
    /// A replica applies the log entries now due.
    Apply {
        node: u8,
    },
    /// A replica's acknowledgement of a synchronous write reaches the primary.
    ReplicaAck {
        lsn: u64,
    },
    /// The primary's crash is detected: promotion starts.
    Detect {
        epoch: u32,
    },
    Promoted {
        node: u8,
        epoch: u32,
    },
    Rejoined {
        node: u8,
        epoch: u32,
    },
    Tick,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// A log entry on its way to one replica.
#[derive(Clone, Copy, Debug)]
struct Pending {
    lsn: u64,
    key: u32,
    committed: SimTime,
    /// When it is due without any slowness.
    base_due: SimTime,
    due: SimTime,
}

struct Db {
    node: NodeId,
    in_edge: EdgeId,
    out_edge: EdgeId,
    role: Role,
    state: NodeState,
    /// LSN of the version of each key this database holds (0: never written).
    values: Vec<u64>,
    /// Everything of the current primary's log up to here is applied.
    applied_lsn: u64,
    pending: VecDeque<Pending>,
    timer: Option<TimerHandle>,
    slow_since: Option<SimTime>,
    /// Bumped when the node dies, so requests dispatched before can tell.
    epoch: u32,
    busy: u32,
    rng: SimRng,
}

struct Req {
    kind: usize,
    key: RequestKey,
    born: SimTime,
    db: usize,
    epoch: u32,
    client: usize,
    target: u32,
    /// A write: its LSN once committed. A read: the LSN of the client's own latest
    /// acknowledged write to `target` when the read was issued (0: none), the version
    /// read-your-writes promises it.
    lsn: u64,
}

/// A client's latest acknowledged write (its read-your-writes session).
#[derive(Clone, Copy, Debug, Default)]
struct Session {
    key: u32,
    lsn: u64,
}

/// One committed write the replicas may not all have.
#[derive(Clone, Copy, Debug)]
struct LogEntry {
    lsn: u64,
    acked: bool,
}

pub struct ReplicationModel {
    params: ParamValues,
    sync: bool,
    topology: Topology,
    clients: NodeId,
    responses: NodeId,
    dbs: Vec<Db>,
    /// Where clients send writes (the primary, or the dead one until a promotion).
    primary: usize,
    requests: Slab<Req>,
    arrivals: [ArrivalTimer<Event>; 2],
    service_rng: SimRng,
    target_rng: SimRng,
    /// LSN of each key's latest acknowledged write.
    acked: Vec<u64>,
    sessions: Vec<Option<Session>>,
    last_lsn: u64,
    /// Committed entries not yet applied by every replica (trimmed as they catch up).
    log: VecDeque<LogEntry>,
    /// Synchronous writes waiting for acks: LSN -> (request, acks still missing).
    unacked: BTreeMap<u64, (u32, u8)>,
    crash_epoch: u32,
    crashed_at: Option<SimTime>,
    promoting: Option<usize>,
    next_replica_pick: usize,
    reads: u64,
    stale_reads: u64,
    ryw_violations: u64,
    reads_to_primary: u64,
    reads_failed: u64,
    writes_failed: u64,
    lost_writes: u64,
    failovers: u32,
    last_failover: Option<SimDuration>,
    peak_lag: SimDuration,
    /// (reads, stale reads) at each of the last ticks, for the stale-read-rate gauge.
    window: VecDeque<(u64, u64)>,
    latency: [LatencyHistogram; 2],
    core: ModelCore,
    gauge_lag: Vec<GaugeId>,
    gauge_stale: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn millis(ms: f64) -> SimDuration {
    SimDuration::from_secs_f64(ms / 1000.0)
}

fn scale(duration: SimDuration, factor: f64) -> SimDuration {
    SimDuration::from_ticks((duration.ticks() as f64 * factor).round() as u64)
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<ReplicationModel> {
    let sync = params.choice("replication") == "synchronous";
    let replicas = params.integer("replicas") as usize;
    let keys = params.integer("keys") as usize;
    let mut t = Topology::default();
    let clients = t.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.5);
    let responses = t.add_node("responses", "Responses", NodeKind::Sink, 1.0, 0.5);
    let mut dbs = Vec::new();
    for index in 0..=replicas {
        let (key, label, x, y) = if index == 0 {
            ("primary".to_owned(), "Primary".to_owned(), 0.3, 0.1)
        } else {
            // Replicas spread over the lower part, clear of the primary → responses edge.
            let y = if replicas == 1 {
                0.6
            } else {
                0.45 + 0.45 * (index - 1) as f32 / (replicas - 1) as f32
            };
            (
                format!("replica-{index}"),
                format!("Replica {index}"),
                0.62,
                y,
            )
        };
        let node = t.add_node(&key, &label, NodeKind::Store, x, y);
        let in_edge = t.add_edge(clients, node);
        let out_edge = t.add_edge(node, responses);
        dbs.push(Db {
            node,
            in_edge,
            out_edge,
            role: if index == 0 {
                Role::Primary
            } else {
                Role::Replica
            },
            state: NodeState::Healthy,
            values: vec![0; keys],
            applied_lsn: 0,
            pending: VecDeque::new(),
            timer: None,
            slow_since: None,
            epoch: 0,
            busy: 0,
            rng: SimRng::new(seed.0, &format!("replication-{index}")),
        });
    }
    // The replication stream, drawn (no tokens travel it).
    for index in 1..dbs.len() {
        t.add_edge(dbs[0].node, dbs[index].node);
    }
    let mut gauges = LAG_GAUGES[..replicas].to_vec();
    gauges.push(STALE_GAUGE);
    let core = ModelCore::new(gauges);
    let arrival = |kind: usize, name: &str| {
        ArrivalTimer::new(
            PoissonArrivals::new(
                TrafficShape::Steady {
                    rate: params.number(&format!("{name}_rate")),
                },
                SimRng::new(seed.0, &format!("arrivals-{name}s")),
            ),
            Event::Arrival { kind: kind as u8 },
        )
    };
    let mut model = ReplicationModel {
        params: params.clone(),
        sync,
        topology: t,
        clients,
        responses,
        dbs,
        primary: 0,
        requests: Slab::new(),
        arrivals: [arrival(READ, "read"), arrival(WRITE, "write")],
        service_rng: SimRng::new(seed.0, "service"),
        target_rng: SimRng::new(seed.0, "targets"),
        acked: vec![0; keys],
        sessions: vec![None; CLIENTS],
        last_lsn: 0,
        log: VecDeque::new(),
        unacked: BTreeMap::new(),
        crash_epoch: 0,
        crashed_at: None,
        promoting: None,
        next_replica_pick: 0,
        reads: 0,
        stale_reads: 0,
        ryw_violations: 0,
        reads_to_primary: 0,
        reads_failed: 0,
        writes_failed: 0,
        lost_writes: 0,
        failovers: 0,
        last_failover: None,
        peak_lag: SimDuration::ZERO,
        latency: [
            LatencyHistogram::new(PRECISE),
            LatencyHistogram::new(PRECISE),
        ],
        window: VecDeque::new(),
        gauge_lag: LAG_GAUGES[..replicas]
            .iter()
            .map(|name| core.gauge(name))
            .collect(),
        gauge_stale: core.gauge(STALE_GAUGE),
        core,
    };
    let mut scheduler = Scheduler::new();
    for timer in &mut model.arrivals {
        timer.rearm(&mut scheduler);
    }
    scheduler.schedule_in(TICK, Event::Tick);
    Simulation::new(model, scheduler)
}

impl ReplicationModel {
    // ----- what tests read -----

    /// Stale reads, read-your-writes violations, lost writes.
    pub fn anomalies(&self) -> (u64, u64, u64) {
        (self.stale_reads, self.ryw_violations, self.lost_writes)
    }

    /// Reads served so far (stale or not).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Index of the current primary (0 = the node drawn as "Primary", i = "Replica i").
    pub fn primary(&self) -> usize {
        self.primary
    }

    pub fn role(&self, db: usize) -> Role {
        self.dbs[db].role
    }

    pub fn state(&self, db: usize) -> NodeState {
        self.dbs[db].state
    }

    /// The LSN up to which a database has applied the current primary's log.
    pub fn applied_lsn(&self, db: usize) -> u64 {
        self.dbs[db].applied_lsn
    }

    /// LSN of the latest committed write and of each key's latest acknowledged write.
    pub fn last_lsn(&self) -> u64 {
        self.last_lsn
    }

    pub fn acked_version(&self, key: u32) -> u64 {
        self.acked[key as usize]
    }

    pub fn version_at(&self, db: usize, key: u32) -> u64 {
        self.dbs[db].values[key as usize]
    }

    /// Replica lag of one database now (0 for the primary and for a down node).
    pub fn lag(&self, db: usize, now: SimTime) -> SimDuration {
        let d = &self.dbs[db];
        if d.role == Role::Primary || d.state == NodeState::Down {
            return SimDuration::ZERO;
        }
        d.pending
            .front()
            .map_or(SimDuration::ZERO, |p| now.saturating_since(p.committed))
    }

    pub fn max_lag(&self, now: SimTime) -> SimDuration {
        (0..self.dbs.len())
            .map(|db| self.lag(db, now))
            .max()
            .unwrap_or(SimDuration::ZERO)
    }

    fn alive(&self, db: usize) -> bool {
        !matches!(self.dbs[db].state, NodeState::Down | NodeState::Starting)
    }

    fn set_state(&mut self, db: usize, to: NodeState, now: SimTime) {
        if self.dbs[db].state != to {
            self.dbs[db].state = to;
            let node = self.dbs[db].node;
            self.core.log.push(now, Notable::StateChanged { node, to });
        }
    }

    // ----- requests -----

    fn arrive(&mut self, kind: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let client = self.target_rng.below(CLIENTS as u64) as usize;
        let keys = self.acked.len() as u64;
        let own = self.sessions[client];
        let target = match own {
            Some(session)
                if kind == READ && self.target_rng.chance(self.params.number("own_read_share")) =>
            {
                session.key
            }
            _ => self.target_rng.below(keys) as u32,
        };
        let db = if kind == WRITE {
            Some(self.primary)
        } else {
            self.route_read(client, target)
        };
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.dbs[db.unwrap_or(self.primary)].in_edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        let Some(db) = db else {
            // No database can give this client its own writes back: the read fails.
            self.core.requests.finish(key);
            self.core.metrics.failed(now);
            self.reads_failed += 1;
            return;
        };
        let req = self.requests.insert(Req {
            kind,
            key,
            born: now,
            db,
            epoch: self.dbs[db].epoch,
            client,
            target,
            lsn: match own {
                Some(session) if kind == READ && session.key == target => session.lsn,
                _ => 0,
            },
        }) as u32;
        scheduler.schedule_in(HOP, Event::AtNode { req });
    }

    /// Reads go round-robin to the replicas that serve; with read-your-writes routing a
    /// read of the key the client wrote last skips a replica that has not applied that
    /// write and goes to the primary.
    fn route_read(&mut self, client: usize, target: u32) -> Option<usize> {
        let serving: Vec<usize> = (0..self.dbs.len())
            .filter(|&db| self.dbs[db].role == Role::Replica && self.alive(db))
            .collect();
        let primary_up = self.alive(self.primary) && self.dbs[self.primary].role == Role::Primary;
        let pick = if serving.is_empty() {
            None
        } else {
            self.next_replica_pick = self.next_replica_pick.wrapping_add(1);
            Some(serving[self.next_replica_pick % serving.len()])
        };
        if self.params.toggle("read_your_writes") {
            if let (Some(session), Some(db)) = (self.sessions[client], pick) {
                if session.key == target && self.dbs[db].applied_lsn < session.lsn {
                    if primary_up {
                        self.reads_to_primary += 1;
                        return Some(self.primary);
                    }
                    return None;
                }
            }
        }
        if pick.is_none() && primary_up {
            self.reads_to_primary += 1;
            return Some(self.primary);
        }
        pick.or(Some(self.primary))
    }

    fn fail(&mut self, req: u32, now: SimTime) {
        let r = self.requests.remove(req as usize);
        self.core.requests.finish(r.key);
        self.core.metrics.failed(now);
        if r.kind == WRITE {
            self.writes_failed += 1;
        } else {
            self.reads_failed += 1;
        }
    }

    /// The request's database died (or is not up) since it was sent there.
    fn lost_node(&self, req: u32) -> bool {
        let r = &self.requests[req as usize];
        let d = &self.dbs[r.db];
        d.epoch != r.epoch || !self.alive(r.db) || (r.kind == WRITE && d.role != Role::Primary)
    }

    fn at_node(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.lost_node(req) {
            self.fail(req, now);
            return;
        }
        let service = ServiceTime::LogNormal {
            mean: millis(self.params.number("db_time")),
            cv: SERVICE_CV,
        }
        .sample(&mut self.service_rng);
        let r = &self.requests[req as usize];
        let d = &mut self.dbs[r.db];
        d.busy += 1;
        self.core.metrics.waited(SimDuration::ZERO);
        self.core.requests.move_to(
            r.key,
            Place::InService {
                node: d.node,
                since: now,
            },
        );
        scheduler.schedule_in(service, Event::Served { req });
    }

    fn served(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let (kind, db) = (
            self.requests[req as usize].kind,
            self.requests[req as usize].db,
        );
        if self.requests[req as usize].epoch == self.dbs[db].epoch {
            self.dbs[db].busy -= 1;
        }
        if self.lost_node(req) {
            self.fail(req, now);
            return;
        }
        if kind == READ {
            self.read_value(req);
            self.respond(req, scheduler);
        } else {
            self.commit(req, scheduler);
        }
    }

    /// Stale: older than the key's latest acknowledged write. A read-your-writes
    /// violation: older than the client's own write it had been told succeeded when it
    /// sent the read (unless a failover lost that write since: then it is a lost write).
    fn read_value(&mut self, req: u32) {
        let r = &self.requests[req as usize];
        let version = self.dbs[r.db].values[r.target as usize];
        let latest = self.acked[r.target as usize];
        self.reads += 1;
        if version < latest {
            self.stale_reads += 1;
        }
        if version < r.lsn && r.lsn <= latest {
            self.ryw_violations += 1;
        }
    }

    fn respond(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let r = &self.requests[req as usize];
        let edge = self.dbs[r.db].out_edge;
        self.core.requests.move_to(
            r.key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::Delivered { req });
    }

    fn delivered(&mut self, req: u32, now: SimTime) {
        let r = self.requests.remove(req as usize);
        self.core.requests.finish(r.key);
        let latency = now - r.born;
        self.core.metrics.completed(now, latency);
        self.latency[r.kind].record(latency);
    }

    /// The primary commits a write: next LSN, ship it to every replica, and acknowledge
    /// it now (async) or once every replica has acknowledged it (sync).
    fn commit(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.last_lsn += 1;
        let lsn = self.last_lsn;
        let target = self.requests[req as usize].target;
        self.requests[req as usize].lsn = lsn;
        let p = self.primary;
        self.dbs[p].values[target as usize] = lsn;
        self.dbs[p].applied_lsn = lsn;
        let lag = millis(self.params.number("replica_lag"));
        let half_rtt = millis(self.params.number("replica_rtt") / 2.0);
        let mut shipped = 0u8;
        for db in 0..self.dbs.len() {
            let d = &mut self.dbs[db];
            if d.role != Role::Replica || matches!(d.state, NodeState::Down | NodeState::Starting) {
                continue;
            }
            let base = if self.sync {
                scale(half_rtt, 0.8 + d.rng.exponential(5.0))
            } else {
                scale(lag, d.rng.uniform(0.9, 1.1))
            };
            let base_due = now + base;
            // A slow replica replays at (1 − g) of the primary's pace: an entry due at
            // b is applied at a with a − b = g·(a − since), so its lag grows by g per s.
            let slow = d.slow_since.map_or(SimDuration::ZERO, |since| {
                scale(base_due - since, SLOW_GROWTH / (1.0 - SLOW_GROWTH))
            });
            let due = (base_due + slow).max(d.pending.back().map_or(now, |last| last.due));
            d.pending.push_back(Pending {
                lsn,
                key: target,
                committed: now,
                base_due,
                due,
            });
            shipped += 1;
            if d.pending.len() == 1 {
                self.arm(db, scheduler);
            }
        }
        let has_replicas = self.log_needed();
        if has_replicas {
            self.log.push_back(LogEntry { lsn, acked: false });
        }
        if self.sync && shipped > 0 {
            // It stays at the primary, waiting for the replicas' acks.
            self.dbs[p].busy += 1;
            self.unacked.insert(lsn, (req, shipped));
        } else {
            self.acknowledge(req, scheduler);
        }
    }

    fn log_needed(&self) -> bool {
        self.dbs.iter().any(|d| !d.pending.is_empty())
    }

    fn acknowledge(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let r = &self.requests[req as usize];
        let (key, lsn, client) = (r.target as usize, r.lsn, r.client);
        self.acked[key] = self.acked[key].max(lsn);
        self.sessions[client] = Some(Session {
            key: key as u32,
            lsn,
        });
        if let Some(entry) = self.log.iter_mut().rev().find(|e| e.lsn == lsn) {
            entry.acked = true;
        }
        self.respond(req, scheduler);
    }

    /// Sets the replica's timer for the head of its queue.
    fn arm(&mut self, db: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if let Some(timer) = self.dbs[db].timer.take() {
            scheduler.cancel(timer);
        }
        if let Some(due) = self.dbs[db].pending.front().map(|head| head.due) {
            if due <= now {
                // Due already (zero lag): apply at once, so no read can slip in between.
                self.apply_due(db, scheduler);
                return;
            }
            self.dbs[db].timer =
                Some(scheduler.schedule_timer_in(due - now, Event::Apply { node: db as u8 }));
        }
    }

    fn apply_due(&mut self, db: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let half_rtt = millis(self.params.number("replica_rtt") / 2.0);
        let d = &mut self.dbs[db];
        d.timer = None;
        while let Some(head) = d.pending.front().copied() {
            if head.due > now {
                break;
            }
            d.pending.pop_front();
            d.values[head.key as usize] = d.values[head.key as usize].max(head.lsn);
            d.applied_lsn = head.lsn;
            if self.sync {
                scheduler.schedule_in(half_rtt, Event::ReplicaAck { lsn: head.lsn });
            }
        }
        self.trim_log();
        if !self.dbs[db].pending.is_empty() {
            self.arm(db, scheduler);
        }
    }

    /// Drops log entries every live replica has applied.
    fn trim_log(&mut self) {
        let floor = self
            .dbs
            .iter()
            .filter(|d| d.role == Role::Replica && d.state != NodeState::Down)
            .filter_map(|d| d.pending.front().map(|p| p.lsn))
            .min();
        while let Some(front) = self.log.front() {
            if floor.is_none_or(|f| front.lsn < f) {
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    fn replica_ack(&mut self, lsn: u64, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.unacked.get_mut(&lsn) else {
            return; // its write already failed with the primary
        };
        entry.1 -= 1;
        if entry.1 == 0 {
            let (req, _) = self.unacked.remove(&lsn).expect("present");
            let db = self.requests[req as usize].db;
            self.dbs[db].busy = self.dbs[db].busy.saturating_sub(1);
            self.acknowledge(req, scheduler);
        }
    }

    // ----- failures -----

    fn kill_primary(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let p = self.primary;
        self.dbs[p].epoch += 1;
        self.dbs[p].busy = 0;
        self.set_state(p, NodeState::Down, now);
        // Replication stops: what the replicas have not applied never reaches them.
        for db in 0..self.dbs.len() {
            let d = &mut self.dbs[db];
            if let Some(timer) = d.timer.take() {
                scheduler.cancel(timer);
            }
            d.pending.clear();
        }
        // Synchronous writes still waiting for acks fail: never acknowledged.
        let waiting: Vec<u32> = self.unacked.values().map(|&(req, _)| req).collect();
        self.unacked.clear();
        for req in waiting {
            self.fail(req, now);
        }
        self.crash_epoch += 1;
        self.crashed_at = Some(now);
        scheduler.schedule_in(
            SimDuration::from_secs_f64(self.params.number("detection_delay")),
            Event::Detect {
                epoch: self.crash_epoch,
            },
        );
    }

    fn detect(&mut self, epoch: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if epoch != self.crash_epoch || self.promoting.is_some() {
            return;
        }
        let candidate = (0..self.dbs.len())
            .filter(|&db| self.dbs[db].role == Role::Replica && self.alive(db))
            .max_by_key(|&db| (self.dbs[db].applied_lsn, std::cmp::Reverse(db)));
        let Some(new) = candidate else {
            return; // nothing to promote: the database stays down
        };
        let kept = self.dbs[new].applied_lsn;
        self.lost_writes += self.log.iter().filter(|e| e.acked && e.lsn > kept).count() as u64;
        self.log.clear();
        // The system's truth is now the promoted replica's data.
        self.acked.copy_from_slice(&self.dbs[new].values);
        for session in &mut self.sessions {
            if session.is_some_and(|s| s.lsn > kept) {
                *session = None;
            }
        }
        let values = self.dbs[new].values.clone();
        for db in 0..self.dbs.len() {
            if db != new && self.dbs[db].role == Role::Replica && self.alive(db) {
                self.dbs[db].values.copy_from_slice(&values);
                self.dbs[db].applied_lsn = kept;
            }
        }
        self.dbs[new].slow_since = None;
        self.promoting = Some(new);
        self.set_state(new, NodeState::Starting, now);
        scheduler.schedule_in(
            PROMOTION,
            Event::Promoted {
                node: new as u8,
                epoch,
            },
        );
    }

    fn promoted(&mut self, db: usize, epoch: u32, now: SimTime) {
        if epoch != self.crash_epoch || self.promoting != Some(db) {
            return;
        }
        self.promoting = None;
        let old = self.primary;
        self.dbs[old].role = Role::Replica;
        self.dbs[db].role = Role::Primary;
        self.dbs[db].applied_lsn = self.last_lsn.max(self.dbs[db].applied_lsn);
        self.primary = db;
        self.failovers += 1;
        self.last_failover = self.crashed_at.map(|at| now - at);
        self.crashed_at = None;
        self.set_state(db, NodeState::Healthy, now);
        // Replicas continue from the new primary's log position.
        let position = self.dbs[db].applied_lsn;
        for d in &mut self.dbs {
            if d.role == Role::Replica && d.state != NodeState::Down {
                d.applied_lsn = position;
            }
        }
    }

    fn slow(&mut self, now: SimTime) -> Result<(), CommandError> {
        let target = (0..self.dbs.len()).find(|&db| {
            self.dbs[db].role == Role::Replica && self.dbs[db].state == NodeState::Healthy
        });
        let Some(db) = target else {
            return Err(CommandError::NotApplicable {
                reason: "no healthy replica to slow down".into(),
            });
        };
        self.dbs[db].slow_since = Some(now);
        self.set_state(db, NodeState::Unhealthy, now);
        Ok(())
    }

    fn restore(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let slow: Vec<usize> = (0..self.dbs.len())
            .filter(|&db| self.dbs[db].slow_since.is_some())
            .collect();
        if !slow.is_empty() {
            for db in slow {
                let d = &mut self.dbs[db];
                d.slow_since = None;
                let mut previous = now;
                for p in &mut d.pending {
                    p.due = p.base_due.max(previous);
                    previous = p.due;
                }
                self.set_state(db, NodeState::Healthy, now);
                self.arm(db, scheduler);
            }
            return Ok(());
        }
        let primary_up = self.dbs[self.primary].state != NodeState::Down;
        let dead = (0..self.dbs.len()).find(|&db| self.dbs[db].state == NodeState::Down);
        match dead {
            Some(db) if primary_up => {
                self.dbs[db].role = Role::Replica;
                self.set_state(db, NodeState::Starting, now);
                scheduler.schedule_in(
                    REJOIN,
                    Event::Rejoined {
                        node: db as u8,
                        epoch: self.dbs[db].epoch,
                    },
                );
                Ok(())
            }
            Some(_) => Err(CommandError::NotApplicable {
                reason: "the primary is down and no replica is promoted yet: wait for the failover"
                    .into(),
            }),
            None => Err(CommandError::NotApplicable {
                reason: "nothing to restore: no replica is slow and no database is down".into(),
            }),
        }
    }

    fn rejoined(&mut self, db: usize, epoch: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.dbs[db].epoch != epoch || self.dbs[db].state != NodeState::Starting {
            return;
        }
        if self.dbs[self.primary].state == NodeState::Down {
            // The primary died while this one was being rebuilt: restore it again later.
            self.set_state(db, NodeState::Down, now);
            return;
        }
        let p = self.primary;
        let values = self.dbs[p].values.clone();
        let position = self.dbs[p].applied_lsn;
        let d = &mut self.dbs[db];
        d.values.copy_from_slice(&values);
        d.applied_lsn = position;
        d.pending.clear();
        d.slow_since = None;
        self.set_state(db, NodeState::Healthy, now);
    }

    fn tick(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(TICK, Event::Tick);
        self.peak_lag = self.peak_lag.max(self.max_lag(now));
        for (index, &gauge) in self.gauge_lag.iter().enumerate() {
            let lag = self.lag(index + 1, now);
            self.core
                .metrics
                .set_gauge(gauge, now, (lag.ticks() / 1000) as i64);
        }
        self.window.push_back((self.reads, self.stale_reads));
        if self.window.len() > WINDOW_TICKS + 1 {
            self.window.pop_front();
        }
        let (reads, stale) = self.window.front().copied().unwrap_or_default();
        let pct = match self.reads - reads {
            0 => 0,
            n => (100 * (self.stale_reads - stale) + n / 2) / n,
        };
        self.core
            .metrics
            .set_gauge(self.gauge_stale, now, pct as i64);
    }

    fn p_ms(&self, kind: usize, q: f64) -> f64 {
        self.latency[kind].quantile_secs(q) * 1000.0
    }
}

impl Model for ReplicationModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival { kind } => {
                let kind = kind as usize;
                self.arrivals[kind].fired();
                self.arrive(kind, scheduler);
                self.arrivals[kind].rearm(scheduler);
            }
            Event::AtNode { req } => self.at_node(req, scheduler),
            Event::Served { req } => self.served(req, scheduler),
            Event::Delivered { req } => self.delivered(req, now),
            Event::Apply { node } => self.apply_due(node as usize, scheduler),
            Event::ReplicaAck { lsn } => self.replica_ack(lsn, scheduler),
            Event::Detect { epoch } => self.detect(epoch, scheduler),
            Event::Promoted { node, epoch } => self.promoted(node as usize, epoch, now),
            Event::Rejoined { node, epoch } => self.rejoined(node as usize, epoch, scheduler),
            Event::Tick => self.tick(scheduler),
        }
    }
}

impl LessonModel for ReplicationModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        snapshot.nodes.push(NodeView::plain(self.clients));
        snapshot.nodes.push(NodeView::plain(self.responses));
        for d in &self.dbs {
            snapshot.nodes.push(NodeView {
                node: d.node,
                state: d.state,
                busy: d.busy,
                capacity: 0,
                queued: d.pending.len() as u32,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let figure = |key, label, value, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        let pct = if self.reads == 0 {
            0.0
        } else {
            100.0 * self.stale_reads as f64 / self.reads as f64
        };
        let promote = match (self.crashed_at, self.last_failover) {
            (Some(at), _) => now - at,
            (None, Some(took)) => took,
            (None, None) => SimDuration::ZERO,
        };
        vec![
            figure("stale_reads", "Stale reads", self.stale_reads as f64, ""),
            figure(
                "ryw_violations",
                "Read-your-writes violations",
                self.ryw_violations as f64,
                "",
            ),
            figure(
                "lost_writes",
                "Acknowledged writes lost",
                self.lost_writes as f64,
                "",
            ),
            figure("write_p99_ms", "Write p99", self.p_ms(WRITE, 0.99), "ms"),
            figure("write_p50_ms", "Write p50", self.p_ms(WRITE, 0.5), "ms"),
            figure(
                "max_replica_lag_s",
                "Replica lag (largest seen)",
                self.peak_lag.max(self.max_lag(now)).as_secs_f64(),
                "s",
            ),
            figure(
                "time_to_promote_s",
                "Primary crash → replica promoted",
                promote.as_secs_f64(),
                "s",
            ),
            figure("stale_read_pct", "Reads that were stale", pct, "%"),
            figure(
                "writes_failed",
                "Writes failed",
                self.writes_failed as f64,
                "",
            ),
            figure("reads_failed", "Reads failed", self.reads_failed as f64, ""),
            figure(
                "reads_to_primary",
                "Reads sent to the primary",
                self.reads_to_primary as f64,
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
                let result = match id.as_str() {
                    "kill-primary" => {
                        if self.dbs[self.primary].state == NodeState::Down {
                            Err(CommandError::NotApplicable {
                                reason: "the primary is already down; a replica is being promoted"
                                    .into(),
                            })
                        } else if !(0..self.dbs.len())
                            .any(|db| self.dbs[db].role == Role::Replica && self.alive(db))
                        {
                            Err(CommandError::NotApplicable {
                                reason: "no replica is left to promote: restore one first".into(),
                            })
                        } else {
                            self.kill_primary(scheduler);
                            Ok(())
                        }
                    }
                    "slow-replica" => self.slow(now),
                    "restore" => self.restore(scheduler),
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                };
                result?;
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
                    "read_rate" | "write_rate" => {
                        let kind = if spec.name == "read_rate" {
                            READ
                        } else {
                            WRITE
                        };
                        let rate = self.params.number(spec.name);
                        self.arrivals[kind]
                            .arrivals
                            .set_shape(TrafficShape::Steady { rate });
                        self.arrivals[kind].rearm(scheduler);
                    }
                    // Lag, round trip, routing, shares and times apply to later writes
                    // and reads; entries already shipped keep their times.
                    _ => {}
                }
                Ok(())
            }
        }
    }
}
