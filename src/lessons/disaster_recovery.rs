//! Lesson `disaster-recovery`: a primary region serves users and takes their writes; a
//! disaster-recovery (DR) region holds what the chosen strategy keeps there; the primary
//! region is lost, and the lesson measures the data lost (RPO) and the downtime (RTO)
//! against the DR region's running cost. Sweep `strategy` to tabulate all four on one
//! seed: the arrivals are identical, so the differences are the strategy alone.
//!
//! The four strategies and their orders of magnitude follow the AWS whitepaper "Disaster
//! Recovery of Workloads on AWS: Recovery in the Cloud": backup & restore (RPO/RTO in
//! hours), pilot light (tens of minutes), warm standby (minutes), multi-site active/active
//! (near zero), with cost rising in the same order.
//!
//! - **Backup & restore**: a point-in-time backup of the primary database every
//!   `backup_interval`, copied to the DR region in `backup_copy_time` (a copy in flight
//!   when the region dies is lost). Nothing runs in the DR region. Recovery restores the
//!   newest copied backup (`restore_time`) while the full app fleet is launched
//!   (`provisioning_time`).
//! - **Pilot light**: the database is replicated continuously (asynchronously, a write
//!   committed at `c` reaches the DR copy at `max(c + replication_lag, previous arrival)`,
//!   in log order); app servers are off. Recovery promotes the replica (`DB_PROMOTION`) and
//!   launches the full fleet.
//! - **Warm standby**: as pilot light, plus `standby_size` × the production fleet already
//!   running. Traffic can move as soon as the replica is promoted; the fleet scales up to
//!   full size in `provisioning_time` and serves at reduced capacity meanwhile.
//! - **Multi-site active/active**: both regions run the full fleet and take writes (DNS
//!   splits users half and half; writes replicate both ways with the lag). Losing a region
//!   only needs DNS to stop answering with it.
//!
//! The recovery's phases: the region is lost; after `detection_time` the disaster is
//! declared (the primary's health check turns unhealthy); data restore or promotion and
//! provisioning or scaling run in parallel; once the DR region has its data and at least
//! one serving instance, the DNS record is switched (Route 53 failover); clients keep their
//! cached answer until the record's TTL expires, modelled as each client's cache expiring
//! uniformly within `dns_ttl` after the switch (Route 53 developer guide: resolvers cache an
//! answer for the record's TTL). RTO = time from the loss until every client resolves to
//! the DR region. Writes lost = writes committed in the primary but not in the DR copy at
//! the loss, counted one by one; RPO = loss time − recovery point (the newest copied
//! backup, or the replication stream's position).
//!
//! Requests are tokens: users → DNS → a region's waiting line → its app tier (one request
//! at a time per instance, log-normal service time with mean 2 s; production runs 8
//! instances at 50 % utilisation; a request waits at most 10 s for an instance, then the
//! user gets an error); writes then travel to the region's database and commit there. Equations, prices and
//! sources: docs/models/disaster-recovery.md.

use std::collections::{BTreeMap, VecDeque};

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
    id: "disaster-recovery",
    title: "Disaster recovery strategies",
    group: LessonGroup::Resilience,
    summary: "Lose the primary region and compare backup & restore, pilot light, warm standby and multi-site: data lost (RPO), downtime (RTO) and what the DR region costs.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(18_000),
    build,
    compare: None,
    sweep: Some("strategy"),
    breaker_node: None,
};

/// The strategy options, in the whitepaper's order (cheapest and slowest first).
pub const STRATEGIES: &[&str] = &[
    "backup-restore",
    "pilot-light",
    "warm-standby",
    "multi-site",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "strategy",
        label: "DR strategy",
        unit: "",
        help: "backup-restore: only backups in the DR region; pilot-light: a replicated database, app servers off; warm-standby: replicated database and a scaled-down fleet running; multi-site: both regions serve at full size.",
        kind: ParamKind::Choice {
            options: STRATEGIES,
            default: "warm-standby",
        },
        liveness: Liveness::Restart,
    },
    number("read_rate", "Reads", "req/s", "User requests per second that only read.", (0.0, 10.0, 0.1, 1.5)),
    number("write_rate", "Writes", "writes/s", "User requests per second that write (each commits one write in its region's database).", (0.0, 5.0, 0.05, 0.5)),
    number("backup_interval", "Backup interval", "s", "Backup & restore: time between two backups of the primary database.", (300.0, 86_400.0, 300.0, 3600.0)),
    number("backup_copy_time", "Backup copy time", "s", "Backup & restore: time to copy a backup to the DR region; a copy still running when the region dies is lost.", (0.0, 7200.0, 60.0, 600.0)),
    number("restore_time", "Restore time", "s", "Backup & restore: time to restore the database from the newest copied backup.", (60.0, 43_200.0, 60.0, 7200.0)),
    number("replication_lag", "Replication lag", "s", "Pilot light, warm standby, multi-site: how far the asynchronous copy in the other region trails the primary.", (0.0, 600.0, 1.0, 10.0)),
    number("provisioning_time", "Provisioning time", "s", "Time to launch app instances in the DR region (the whole fleet, or the missing part of a warm standby).", (0.0, 7200.0, 30.0, 600.0)),
    number("standby_size", "Warm standby size", "× production", "Warm standby: the share of the production fleet (8 instances) kept running in the DR region.", (0.0, 1.0, 0.125, 0.25)).restart(),
    number("detection_time", "Detection time", "s", "From the region's loss until the disaster is declared and recovery starts (health checks, alarms, the decision).", (0.0, 3600.0, 10.0, 60.0)),
    number("dns_ttl", "DNS TTL", "s", "How long clients keep a cached DNS answer after the record is switched to the DR region.", (0.0, 3600.0, 10.0, 60.0)),
    ParamSpec {
        name: "scheduled_failure",
        label: "Lose the region on schedule",
        unit: "",
        help: "Lose the primary region at the scheduled time (the injection can also lose it at any moment).",
        kind: ParamKind::Toggle { default: true },
        liveness: Liveness::Restart,
    },
    number("failure_time", "Scheduled loss at", "s", "When the primary region is lost, if on schedule.", (0.0, 86_400.0, 60.0, 8400.0)).restart(),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "lose-region",
        label: "Lose the primary region",
        help: "The primary region fails now: its servers and database are gone, with every write not yet in the DR region.",
    },
    InjectionSpec {
        id: "restore-region",
        label: "Bring the primary region back",
        help: "The lost region returns. Before the disaster is declared it simply serves again with its data; after, it stays fenced off while the DR region takes over.",
    },
];

/// Production fleet size (instances), in either region.
pub const PRODUCTION_INSTANCES: u32 = 8;
/// Mean time one instance spends on one request.
const SERVICE_MEAN: SimDuration = SimDuration::from_secs(2);
const SERVICE_CV: f64 = 0.5;
/// Longest a request waits for a free instance before the user gets an error.
const REQUEST_TIMEOUT: SimDuration = SimDuration::from_secs(10);
/// Network hop users → DNS → app tier.
const HOP: SimDuration = SimDuration::from_millis(100);
/// Hop from the waiting line to an instance.
const INNER_HOP: SimDuration = SimDuration::from_millis(50);
/// Network hop app tier → database.
const DB_HOP: SimDuration = SimDuration::from_millis(50);
/// Time to promote a replica database to a writable primary.
pub const DB_PROMOTION: SimDuration = SimDuration::from_secs(60);

// Unit prices for the DR region's monthly running cost (documented in the model note).
const HOURS_PER_MONTH: f64 = 730.0;
/// One app instance, $/hour (a general-purpose 2-vCPU instance).
pub const INSTANCE_PER_HOUR: f64 = 0.10;
/// One running replica database instance, $/hour.
pub const DATABASE_PER_HOUR: f64 = 0.50;
/// Size of the database, GB.
pub const DATA_GB: f64 = 500.0;
/// Block storage under a running database, $/GB-month.
pub const DATABASE_STORAGE_PER_GB_MONTH: f64 = 0.10;
/// Backup (snapshot) storage, $/GB-month.
pub const BACKUP_STORAGE_PER_GB_MONTH: f64 = 0.05;
/// Inter-region data transfer, $/GB.
pub const TRANSFER_PER_GB: f64 = 0.02;
/// Bytes one write changes, kB.
pub const WRITE_KB: f64 = 4.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    BackupRestore,
    PilotLight,
    WarmStandby,
    MultiSite,
}

impl Strategy {
    fn from_word(word: &str) -> Strategy {
        match word {
            "backup-restore" => Strategy::BackupRestore,
            "pilot-light" => Strategy::PilotLight,
            "multi-site" => Strategy::MultiSite,
            _ => Strategy::WarmStandby,
        }
    }

    fn replicates(self) -> bool {
        self != Strategy::BackupRestore
    }
}

/// Which region a request was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Primary,
    Dr,
}

/// The primary region's condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrimaryState {
    Serving,
    Lost,
    /// Back after the disaster was declared: kept out of service (no split brain).
    Fenced,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    ReadArrival,
    WriteArrival,
    AtDns {
        req: u32,
    },
    AtRegion {
        req: u32,
    },
    AtInstance {
        req: u32,
    },
    ServiceDone {
        req: u32,
    },
    AtDb {
        req: u32,
    },
    QueueTimeout {
        req: u32,
    },
    BackupTaken,
    /// A backup taken at `taken` holding `writes` primary commits reaches the DR region
    /// (ignored if the primary was lost meanwhile: `life` differs).
    BackupCopied {
        taken: SimTime,
        writes: u64,
        life: u32,
    },
    RegionFails,
    /// Recovery steps of incident `incident` (stale after the region came back in time).
    Declared {
        incident: u32,
    },
    DataReady {
        incident: u32,
    },
    CapacityReady {
        incident: u32,
    },
    DnsSettled {
        incident: u32,
    },
}

struct Region {
    /// Where requests wait for a free instance.
    waiting_line: NodeId,
    app: NodeId,
    db: NodeId,
    /// DNS → waiting line.
    to_queue: EdgeId,
    /// Waiting line → app tier.
    to_app: EdgeId,
    to_db: EdgeId,
    app_state: NodeState,
    db_state: NodeState,
    /// Instances serving requests.
    running: u32,
    busy: u32,
    queue: VecDeque<u32>,
}

struct Req {
    key: RequestKey,
    born: SimTime,
    write: bool,
    side: Option<Side>,
    timer: Option<TimerHandle>,
}

/// What one incident (a loss of the primary region) did, for the figures.
#[derive(Clone, Copy, Debug, Default)]
struct Incident {
    lost_at: SimTime,
    declared_at: Option<SimTime>,
    dns_switched_at: Option<SimTime>,
    serving_at: Option<SimTime>,
    full_capacity_at: Option<SimTime>,
    data_ready: bool,
    writes_lost: u64,
    rpo: SimDuration,
}

pub struct DisasterRecoveryModel {
    params: ParamValues,
    strategy: Strategy,
    topology: Topology,
    users: NodeId,
    dns: NodeId,
    health_check: NodeId,
    to_dns: EdgeId,
    primary: Region,
    dr: Region,
    primary_state: PrimaryState,
    dns_state: NodeState,
    health_state: NodeState,
    /// Cached-answer expiry window of the current switch (the TTL at the switch).
    dns_switch: Option<(SimTime, SimDuration)>,
    requests: BTreeMap<u32, Req>,
    next_req: u32,
    /// Writes committed in the primary region's database, ever.
    primary_commits: u64,
    /// Replicated strategies: (commit time, arrival time in the DR copy) not yet arrived.
    pending: VecDeque<(SimTime, SimTime)>,
    last_arrival: SimTime,
    /// Commit time of the newest write the DR copy holds.
    newest_replicated: Option<SimTime>,
    /// Backup & restore: (taken at, primary commits it holds) of the newest copied backup.
    copied_backup: Option<(SimTime, u64)>,
    /// Bumped whenever the primary is lost (aborts backup copies in flight).
    primary_life: u32,
    incident_id: u32,
    incident: Option<Incident>,
    reads: ArrivalTimer<Event>,
    writes: ArrivalTimer<Event>,
    service_rng: SimRng,
    dns_rng: SimRng,
    core: ModelCore,
    gauge_at_risk: GaugeId,
    gauge_dr: GaugeId,
    gauge_waiting: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

/// Warm-standby instances for a standby size (share of production), rounded to the
/// nearest whole instance.
pub fn standby_instances(standby_size: f64) -> u32 {
    (standby_size * PRODUCTION_INSTANCES as f64 + 0.5).floor() as u32
}

/// The DR region's running cost per month, in dollars, for a strategy: instances and a
/// replica database that run all the time, storage, and inter-region transfer of the
/// changed data (see docs/models/disaster-recovery.md).
pub fn monthly_cost(strategy: Strategy, standby_size: f64, write_rate: f64) -> f64 {
    let changed_gb = write_rate * WRITE_KB * 3600.0 * HOURS_PER_MONTH / 1_000_000.0;
    let transfer = changed_gb * TRANSFER_PER_GB;
    let replica = DATABASE_PER_HOUR * HOURS_PER_MONTH + DATA_GB * DATABASE_STORAGE_PER_GB_MONTH;
    let instances = |n: u32| n as f64 * INSTANCE_PER_HOUR * HOURS_PER_MONTH;
    match strategy {
        Strategy::BackupRestore => DATA_GB * BACKUP_STORAGE_PER_GB_MONTH + transfer,
        Strategy::PilotLight => replica + transfer,
        Strategy::WarmStandby => replica + transfer + instances(standby_instances(standby_size)),
        Strategy::MultiSite => replica + transfer + instances(PRODUCTION_INSTANCES),
    }
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<DisasterRecoveryModel> {
    let strategy = Strategy::from_word(params.choice("strategy"));
    let mut topology = Topology::default();
    // Layout: users on the left, DNS level with the primary region on top, the DR region
    // at the bottom, each region a waiting line, an app tier and a database.
    let users = topology.add_node("users", "Users", NodeKind::Source, 0.0, 0.5);
    let dns = topology.add_node("dns", "Route 53 DNS", NodeKind::Router, 0.12, 0.12);
    let primary_queue = topology.add_node(
        "primary-queue",
        "Waiting (primary)",
        NodeKind::Queue,
        0.5,
        0.12,
    );
    let primary_app = topology.add_node("primary-app", "Primary app", NodeKind::Server, 0.72, 0.12);
    let primary_db = topology.add_node("primary-db", "Primary DB", NodeKind::Store, 0.92, 0.12);
    let health_check =
        topology.add_node("health-check", "Health check", NodeKind::Guard, 0.72, 0.5);
    let (dr_app_label, dr_db_label) = match strategy {
        Strategy::BackupRestore => ("DR app", "DR DB (backups)"),
        Strategy::PilotLight => ("DR app", "DR replica"),
        Strategy::WarmStandby => ("DR standby", "DR replica"),
        Strategy::MultiSite => ("Site B app", "Site B DB"),
    };
    let dr_queue = topology.add_node("dr-queue", "Waiting (DR)", NodeKind::Queue, 0.5, 0.88);
    let dr_app = topology.add_node("dr-app", dr_app_label, NodeKind::Server, 0.72, 0.88);
    let dr_db = topology.add_node("dr-db", dr_db_label, NodeKind::Store, 0.92, 0.88);
    let to_dns = topology.add_edge(users, dns);
    let primary_to_queue = topology.add_edge(dns, primary_queue);
    let primary_to_app = topology.add_edge(primary_queue, primary_app);
    let primary_to_db = topology.add_edge(primary_app, primary_db);
    let dr_to_queue = topology.add_edge(dns, dr_queue);
    let dr_to_app = topology.add_edge(dr_queue, dr_app);
    let dr_to_db = topology.add_edge(dr_app, dr_db);
    topology.add_edge(health_check, primary_app);
    // Backup copies or asynchronous replication, from the primary database to the DR one
    // (for backup & restore, the DR database node stands for the copied backups until a
    // restore turns them into a database).
    topology.add_edge(primary_db, dr_db);

    let (dr_running, dr_app_state, dr_db_state) = match strategy {
        Strategy::BackupRestore => (0, NodeState::Off, NodeState::Off),
        Strategy::PilotLight => (0, NodeState::Off, NodeState::Healthy),
        Strategy::WarmStandby => {
            let n = standby_instances(params.number("standby_size"));
            let state = if n > 0 {
                NodeState::Healthy
            } else {
                NodeState::Off
            };
            (n, state, NodeState::Healthy)
        }
        Strategy::MultiSite => (PRODUCTION_INSTANCES, NodeState::Healthy, NodeState::Healthy),
    };

    let core = ModelCore::new(vec!["writes_at_risk", "dr_instances", "waiting"]);
    let mut model = DisasterRecoveryModel {
        params: params.clone(),
        strategy,
        topology,
        users,
        dns,
        health_check,
        to_dns,
        primary: Region {
            waiting_line: primary_queue,
            app: primary_app,
            db: primary_db,
            to_queue: primary_to_queue,
            to_app: primary_to_app,
            to_db: primary_to_db,
            app_state: NodeState::Healthy,
            db_state: NodeState::Healthy,
            running: PRODUCTION_INSTANCES,
            busy: 0,
            queue: VecDeque::new(),
        },
        dr: Region {
            waiting_line: dr_queue,
            app: dr_app,
            db: dr_db,
            to_queue: dr_to_queue,
            to_app: dr_to_app,
            to_db: dr_to_db,
            app_state: dr_app_state,
            db_state: dr_db_state,
            running: dr_running,
            busy: 0,
            queue: VecDeque::new(),
        },
        primary_state: PrimaryState::Serving,
        dns_state: NodeState::Healthy,
        health_state: NodeState::Healthy,
        dns_switch: None,
        requests: BTreeMap::new(),
        next_req: 0,
        primary_commits: 0,
        pending: VecDeque::new(),
        last_arrival: SimTime::ZERO,
        newest_replicated: None,
        copied_backup: None,
        primary_life: 0,
        incident_id: 0,
        incident: None,
        reads: ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number("read_rate")),
                SimRng::new(seed.0, "reads"),
            ),
            Event::ReadArrival,
        ),
        writes: ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number("write_rate")),
                SimRng::new(seed.0, "writes"),
            ),
            Event::WriteArrival,
        ),
        service_rng: SimRng::new(seed.0, "service"),
        dns_rng: SimRng::new(seed.0, "dns"),
        gauge_at_risk: core.gauge("writes_at_risk"),
        gauge_dr: core.gauge("dr_instances"),
        gauge_waiting: core.gauge("waiting"),
        core,
    };
    let mut scheduler = Scheduler::new();
    model.reads.rearm(&mut scheduler);
    model.writes.rearm(&mut scheduler);
    if strategy == Strategy::BackupRestore {
        let interval = SimDuration::from_secs_f64(params.number("backup_interval"));
        scheduler.schedule_in(interval, Event::BackupTaken);
    }
    if params.toggle("scheduled_failure") {
        let at = SimDuration::from_secs_f64(params.number("failure_time"));
        scheduler.schedule_in(at, Event::RegionFails);
    }
    model
        .core
        .metrics
        .set_gauge(model.gauge_dr, SimTime::ZERO, dr_running as i64);
    Simulation::new(model, scheduler)
}

impl DisasterRecoveryModel {
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Writes committed in the primary region's database so far.
    pub fn primary_commits(&self) -> u64 {
        self.primary_commits
    }

    /// Writes committed in the primary but not (yet) in the DR copy, as of the last event.
    pub fn writes_at_risk(&self) -> u64 {
        if self.primary_state != PrimaryState::Serving {
            return 0;
        }
        if self.strategy.replicates() {
            self.pending.len() as u64
        } else {
            self.primary_commits - self.copied_backup.map_or(0, |(_, writes)| writes)
        }
    }

    /// The time up to which the DR copy holds every primary write (the recovery point).
    fn recovery_point(&self, now: SimTime) -> SimTime {
        if self.strategy.replicates() {
            let lag = SimDuration::from_secs_f64(self.params.number("replication_lag"));
            let position = SimTime::from_ticks(now.ticks().saturating_sub(lag.ticks()));
            // Clamp to what the stream actually holds (matters only after lag changes).
            let low = self.newest_replicated.unwrap_or(SimTime::ZERO);
            let high = self.pending.front().map_or(now, |&(commit, _)| commit);
            position.max(low).min(high.max(low))
        } else {
            self.copied_backup.map_or(SimTime::ZERO, |(taken, _)| taken)
        }
    }

    /// Applies replication arrivals due by `now` and refreshes the at-risk gauge.
    fn sync(&mut self, now: SimTime) {
        if self.primary_state != PrimaryState::Serving {
            return;
        }
        let mut changed = false;
        while let Some(&(commit, arrival)) = self.pending.front() {
            if arrival > now {
                break;
            }
            self.pending.pop_front();
            self.newest_replicated = Some(commit);
            changed = true;
        }
        if changed {
            self.update_at_risk(now);
        }
    }

    fn update_at_risk(&mut self, now: SimTime) {
        let value = self.writes_at_risk() as i64;
        self.core.metrics.set_gauge(self.gauge_at_risk, now, value);
    }

    fn update_waiting(&mut self, now: SimTime) {
        let value = (self.primary.queue.len() + self.dr.queue.len()) as i64;
        self.core.metrics.set_gauge(self.gauge_waiting, now, value);
    }

    fn region(&mut self, side: Side) -> &mut Region {
        match side {
            Side::Primary => &mut self.primary,
            Side::Dr => &mut self.dr,
        }
    }

    fn set_state(&mut self, node: NodeId, to: NodeState, now: SimTime) {
        let slot = if node == self.primary.app {
            &mut self.primary.app_state
        } else if node == self.primary.db {
            &mut self.primary.db_state
        } else if node == self.dr.app {
            &mut self.dr.app_state
        } else if node == self.dr.db {
            &mut self.dr.db_state
        } else if node == self.dns {
            &mut self.dns_state
        } else if node == self.health_check {
            &mut self.health_state
        } else {
            return;
        };
        if *slot != to {
            *slot = to;
            self.core.log.push(now, Notable::StateChanged { node, to });
        }
    }

    fn arrive(&mut self, write: bool, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.core.metrics.generated(now);
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.to_dns,
                depart: now,
                arrive: now + HOP,
            },
        );
        let req = self.next_req;
        self.next_req += 1;
        self.requests.insert(
            req,
            Req {
                key,
                born: now,
                write,
                side: None,
                timer: None,
            },
        );
        scheduler.schedule_in(HOP, Event::AtDns { req });
    }

    /// Which region DNS sends this request to.
    fn resolve(&mut self, now: SimTime) -> Side {
        let split = self.dns_rng.uniform01();
        let expiry = self.dns_rng.uniform01();
        // Multi-site: DNS answers with either region, half and half.
        let old = if self.strategy == Strategy::MultiSite && split < 0.5 {
            Side::Dr
        } else {
            Side::Primary
        };
        match self.dns_switch {
            None => old,
            Some((at, ttl)) => {
                let expired = if ttl == SimDuration::ZERO {
                    1.0
                } else {
                    ((now - at).as_secs_f64() / ttl.as_secs_f64()).min(1.0)
                };
                if expiry < expired {
                    Side::Dr
                } else {
                    old
                }
            }
        }
    }

    fn at_dns(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let side = self.resolve(now);
        let edge = self.region(side).to_queue;
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        entry.side = Some(side);
        let key = entry.key;
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::AtRegion { req });
    }

    fn fail(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        if let Some(entry) = self.requests.remove(&req) {
            if let Some(timer) = entry.timer {
                scheduler.cancel(timer);
            }
            self.core.requests.finish(entry.key);
            self.core.metrics.failed(now);
        }
    }

    fn at_region(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(side) = self.requests.get(&req).and_then(|entry| entry.side) else {
            return;
        };
        let reachable = match side {
            Side::Primary => self.primary_state == PrimaryState::Serving,
            Side::Dr => self.dr.running > 0,
        };
        if !reachable {
            // Nothing answers there: the user gets an error.
            self.fail(req, now, scheduler);
            return;
        }
        let region = self.region(side);
        if region.busy < region.running {
            self.send_to_instance(req, side, now, scheduler);
        } else {
            let node = region.waiting_line;
            region.queue.push_back(req);
            let timer = scheduler.schedule_timer_in(REQUEST_TIMEOUT, Event::QueueTimeout { req });
            if let Some(entry) = self.requests.get_mut(&req) {
                entry.timer = Some(timer);
                self.core
                    .requests
                    .move_to(entry.key, Place::Queued { node, since: now });
            }
            self.update_waiting(now);
        }
    }

    /// Reserves a free instance of `side` for `req` and sends it there.
    fn send_to_instance(
        &mut self,
        req: u32,
        side: Side,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) {
        let edge = self.region(side).to_app;
        self.region(side).busy += 1;
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        if let Some(timer) = entry.timer.take() {
            scheduler.cancel(timer);
        }
        let key = entry.key;
        if let Place::Queued { since, .. } = self.core.requests.get(key).place {
            self.core.metrics.waited(now - since);
        } else {
            self.core.metrics.waited(SimDuration::ZERO);
        }
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + INNER_HOP,
            },
        );
        scheduler.schedule_in(INNER_HOP, Event::AtInstance { req });
    }

    fn at_instance(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(side) = self.requests.get(&req).and_then(|entry| entry.side) else {
            return; // failed with its region on the way
        };
        let node = self.region(side).app;
        let key = self.requests[&req].key;
        self.core
            .requests
            .move_to(key, Place::InService { node, since: now });
        let duration = ServiceTime::LogNormal {
            mean: SERVICE_MEAN,
            cv: SERVICE_CV,
        }
        .sample(&mut self.service_rng);
        scheduler.schedule_in(duration, Event::ServiceDone { req });
    }

    /// Hands waiting requests to free instances of `side`.
    fn dispatch(&mut self, side: Side, now: SimTime, scheduler: &mut Scheduler<Event>) {
        loop {
            let region = self.region(side);
            if region.busy >= region.running {
                break;
            }
            let Some(req) = region.queue.pop_front() else {
                break;
            };
            self.send_to_instance(req, side, now, scheduler);
        }
        self.update_waiting(now);
    }

    fn service_done(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return; // failed with its region meanwhile
        };
        let side = entry.side.expect("a served request has a region");
        let (write, key, born) = (entry.write, entry.key, entry.born);
        let region = self.region(side);
        region.busy -= 1;
        let to_db = region.to_db;
        if write {
            self.core.requests.move_to(
                key,
                Place::OnEdge {
                    edge: to_db,
                    depart: now,
                    arrive: now + DB_HOP,
                },
            );
            scheduler.schedule_in(DB_HOP, Event::AtDb { req });
        } else {
            self.requests.remove(&req);
            self.core.requests.finish(key);
            self.core.metrics.completed(now, now - born);
        }
        self.dispatch(side, now, scheduler);
    }

    fn at_db(&mut self, req: u32, now: SimTime) {
        let Some(entry) = self.requests.remove(&req) else {
            return;
        };
        self.core.requests.finish(entry.key);
        self.core.metrics.completed(now, now - entry.born);
        if entry.side == Some(Side::Primary) {
            self.primary_commits += 1;
            if self.strategy.replicates() {
                let lag = SimDuration::from_secs_f64(self.params.number("replication_lag"));
                let arrival = (now + lag).max(self.last_arrival);
                self.last_arrival = arrival;
                if arrival <= now {
                    self.newest_replicated = Some(now);
                } else {
                    self.pending.push_back((now, arrival));
                }
            }
            self.update_at_risk(now);
        }
    }

    fn queue_timeout(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        entry.timer = None;
        let side = entry.side.expect("a queued request has a region");
        self.region(side).queue.retain(|&waiting| waiting != req);
        self.fail(req, now, scheduler);
        self.update_waiting(now);
    }

    fn backup_taken(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let interval = SimDuration::from_secs_f64(self.params.number("backup_interval"));
        scheduler.schedule_in(interval, Event::BackupTaken);
        if self.primary_state != PrimaryState::Serving {
            return;
        }
        let copy = SimDuration::from_secs_f64(self.params.number("backup_copy_time"));
        scheduler.schedule_in(
            copy,
            Event::BackupCopied {
                taken: now,
                writes: self.primary_commits,
                life: self.primary_life,
            },
        );
    }

    fn backup_copied(&mut self, taken: SimTime, writes: u64, life: u32, now: SimTime) {
        if life != self.primary_life || self.primary_state != PrimaryState::Serving {
            return; // the copy was reading from a region that is gone
        }
        if self.copied_backup.is_none_or(|(newest, _)| taken > newest) {
            self.copied_backup = Some((taken, writes));
            self.update_at_risk(now);
        }
    }

    fn lose_region(
        &mut self,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        match self.primary_state {
            PrimaryState::Serving => {}
            PrimaryState::Lost => {
                return Err(CommandError::NotApplicable {
                    reason: "the primary region is already lost".into(),
                })
            }
            PrimaryState::Fenced => {
                return Err(CommandError::NotApplicable {
                    reason: "the old primary region is fenced off and serves nothing: traffic already runs in the DR region".into(),
                })
            }
        }
        self.sync(now);
        let recovery_point = self.recovery_point(now);
        let writes_lost = self.writes_at_risk();
        self.primary_state = PrimaryState::Lost;
        self.primary_life += 1;
        self.set_state(self.primary.app, NodeState::Down, now);
        self.set_state(self.primary.db, NodeState::Down, now);
        // Everything in the primary region fails with it.
        let victims: Vec<u32> = self
            .requests
            .iter()
            .filter(|(_, entry)| entry.side == Some(Side::Primary))
            .map(|(&req, _)| req)
            .collect();
        for req in victims {
            self.fail(req, now, scheduler);
        }
        self.primary.queue.clear();
        self.primary.busy = 0;
        self.incident_id += 1;
        self.incident = Some(Incident {
            lost_at: now,
            writes_lost,
            rpo: now - recovery_point,
            ..Incident::default()
        });
        let detection = SimDuration::from_secs_f64(self.params.number("detection_time"));
        scheduler.schedule_in(
            detection,
            Event::Declared {
                incident: self.incident_id,
            },
        );
        self.core.metrics.set_gauge(self.gauge_at_risk, now, 0);
        self.update_waiting(now);
        Ok(())
    }

    fn restore_region(&mut self, now: SimTime) -> Result<(), CommandError> {
        if self.primary_state != PrimaryState::Lost {
            return Err(CommandError::NotApplicable {
                reason: "the primary region is not lost".into(),
            });
        }
        let declared = self.incident.is_some_and(|i| i.declared_at.is_some());
        if declared {
            // Failover is under way: the old region stays out of service (no split brain).
            self.primary_state = PrimaryState::Fenced;
            self.set_state(self.primary.app, NodeState::Off, now);
            self.set_state(self.primary.db, NodeState::Off, now);
        } else {
            // Back before anyone declared a disaster: it serves again with all its data.
            self.incident_id += 1; // the pending declaration is void
            self.primary_state = PrimaryState::Serving;
            self.set_state(self.primary.app, NodeState::Healthy, now);
            self.set_state(self.primary.db, NodeState::Healthy, now);
            if let Some(incident) = self.incident.as_mut() {
                incident.writes_lost = 0;
                incident.rpo = SimDuration::ZERO;
                incident.serving_at = Some(now);
                incident.full_capacity_at = Some(now);
            }
            self.sync(now);
            self.update_at_risk(now);
        }
        Ok(())
    }

    fn declared(&mut self, incident: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        if incident != self.incident_id {
            return;
        }
        let Some(current) = self.incident.as_mut() else {
            return;
        };
        current.declared_at = Some(now);
        self.set_state(self.health_check, NodeState::Unhealthy, now);
        let provisioning = SimDuration::from_secs_f64(self.params.number("provisioning_time"));
        match self.strategy {
            Strategy::MultiSite => {
                if let Some(current) = self.incident.as_mut() {
                    current.data_ready = true;
                    current.full_capacity_at = Some(now);
                }
                self.switch_dns(now, scheduler);
            }
            Strategy::BackupRestore | Strategy::PilotLight | Strategy::WarmStandby => {
                let data_time = if self.strategy == Strategy::BackupRestore {
                    SimDuration::from_secs_f64(self.params.number("restore_time"))
                } else {
                    DB_PROMOTION
                };
                self.set_state(self.dr.db, NodeState::Starting, now);
                scheduler.schedule_in(data_time, Event::DataReady { incident });
                if self.dr.running >= PRODUCTION_INSTANCES {
                    if let Some(current) = self.incident.as_mut() {
                        current.full_capacity_at = Some(now);
                    }
                } else {
                    self.set_state(self.dr.app, NodeState::Starting, now);
                    scheduler.schedule_in(provisioning, Event::CapacityReady { incident });
                }
            }
        }
    }

    fn data_ready(&mut self, incident: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        if incident != self.incident_id {
            return;
        }
        if let Some(current) = self.incident.as_mut() {
            current.data_ready = true;
        }
        self.set_state(self.dr.db, NodeState::Healthy, now);
        self.maybe_switch_dns(now, scheduler);
    }

    fn capacity_ready(&mut self, incident: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        if incident != self.incident_id {
            return;
        }
        self.dr.running = PRODUCTION_INSTANCES;
        if let Some(current) = self.incident.as_mut() {
            current.full_capacity_at = Some(now);
        }
        self.set_state(self.dr.app, NodeState::Healthy, now);
        self.core
            .metrics
            .set_gauge(self.gauge_dr, now, self.dr.running as i64);
        self.dispatch(Side::Dr, now, scheduler);
        self.maybe_switch_dns(now, scheduler);
    }

    /// Switches DNS once the DR region has its data and at least one serving instance.
    fn maybe_switch_dns(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let ready = self.incident.is_some_and(|i| i.data_ready);
        if ready && self.dr.running > 0 && self.dns_switch.is_none() {
            self.switch_dns(now, scheduler);
        }
    }

    fn switch_dns(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let ttl = SimDuration::from_secs_f64(self.params.number("dns_ttl"));
        self.dns_switch = Some((now, ttl));
        if let Some(current) = self.incident.as_mut() {
            current.dns_switched_at = Some(now);
        }
        self.set_state(self.dns, NodeState::Draining, now);
        scheduler.schedule_in(
            ttl,
            Event::DnsSettled {
                incident: self.incident_id,
            },
        );
    }

    fn dns_settled(&mut self, incident: u32, now: SimTime) {
        if incident != self.incident_id {
            return;
        }
        if let Some(current) = self.incident.as_mut() {
            current.serving_at = Some(now);
        }
        self.set_state(self.dns, NodeState::Healthy, now);
    }

    fn set_rate(&mut self, write: bool, scheduler: &mut Scheduler<Event>) {
        let (name, timer) = if write {
            ("write_rate", &mut self.writes)
        } else {
            ("read_rate", &mut self.reads)
        };
        timer.arrivals.set_shape(steady(self.params.number(name)));
        timer.rearm(scheduler);
    }

    fn since_loss(&self, at: Option<SimTime>, now: SimTime) -> f64 {
        match self.incident {
            None => 0.0,
            Some(incident) => (at.unwrap_or(now) - incident.lost_at).as_secs_f64(),
        }
    }
}

impl Model for DisasterRecoveryModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.sync(now);
        match event {
            Event::ReadArrival => {
                self.reads.fired();
                self.arrive(false, now, scheduler);
                self.reads.rearm(scheduler);
            }
            Event::WriteArrival => {
                self.writes.fired();
                self.arrive(true, now, scheduler);
                self.writes.rearm(scheduler);
            }
            Event::AtDns { req } => self.at_dns(req, now, scheduler),
            Event::AtRegion { req } => self.at_region(req, now, scheduler),
            Event::AtInstance { req } => self.at_instance(req, now, scheduler),
            Event::ServiceDone { req } => self.service_done(req, now, scheduler),
            Event::AtDb { req } => self.at_db(req, now),
            Event::QueueTimeout { req } => self.queue_timeout(req, now, scheduler),
            Event::BackupTaken => self.backup_taken(now, scheduler),
            Event::BackupCopied {
                taken,
                writes,
                life,
            } => self.backup_copied(taken, writes, life, now),
            Event::RegionFails => {
                // Refused only if the region is already lost or fenced: nothing to do.
                let _ = self.lose_region(now, scheduler);
            }
            Event::Declared { incident } => self.declared(incident, now, scheduler),
            Event::DataReady { incident } => self.data_ready(incident, now, scheduler),
            Event::CapacityReady { incident } => self.capacity_ready(incident, now, scheduler),
            Event::DnsSettled { incident } => self.dns_settled(incident, now),
        }
    }
}

impl LessonModel for DisasterRecoveryModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.users));
        snapshot.nodes.push(NodeView {
            state: self.dns_state,
            ..plain(self.dns)
        });
        snapshot.nodes.push(NodeView {
            state: self.health_state,
            ..plain(self.health_check)
        });
        for region in [&self.primary, &self.dr] {
            let serving = matches!(region.app_state, NodeState::Healthy | NodeState::Starting);
            // The waiting line is part of the region: down or off with its app tier.
            let line_state = match region.app_state {
                NodeState::Down | NodeState::Off => region.app_state,
                _ => NodeState::Healthy,
            };
            snapshot.nodes.push(NodeView {
                state: line_state,
                queued: region.queue.len() as u32,
                ..plain(region.waiting_line)
            });
            snapshot.nodes.push(NodeView {
                node: region.app,
                state: region.app_state,
                busy: region.busy,
                capacity: if serving { region.running } else { 0 },
                queued: 0,
            });
            snapshot.nodes.push(NodeView {
                state: region.db_state,
                ..plain(region.db)
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let (rto, full, rpo, lost) = match self.incident {
            None => {
                // No loss yet: the RPO figure shows the exposure if the region died now.
                let exposure = (now - self.recovery_point(now)).as_secs_f64();
                (0.0, 0.0, exposure, 0.0)
            }
            Some(incident) => {
                let full_at = match (incident.serving_at, incident.full_capacity_at) {
                    (Some(serving), Some(full)) => Some(serving.max(full)),
                    _ => None,
                };
                (
                    self.since_loss(incident.serving_at, now),
                    self.since_loss(full_at, now),
                    incident.rpo.as_secs_f64(),
                    incident.writes_lost as f64,
                )
            }
        };
        vec![
            Figure {
                key: "rto_s",
                label: "Downtime (RTO)",
                value: rto,
                unit: "s",
            },
            Figure {
                key: "full_capacity_s",
                label: "Until full capacity",
                value: full,
                unit: "s",
            },
            Figure {
                key: "rpo_s",
                label: "Data-loss window (RPO)",
                value: rpo,
                unit: "s",
            },
            Figure {
                key: "writes_lost",
                label: "Writes lost",
                value: lost,
                unit: "",
            },
            Figure {
                key: "monthly_cost",
                label: "DR cost per month",
                value: monthly_cost(
                    self.strategy,
                    self.params.number("standby_size"),
                    self.params.number("write_rate"),
                ),
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
        self.sync(now);
        match command {
            LessonCommand::Inject(id) => {
                match id.as_str() {
                    "lose-region" => self.lose_region(now, scheduler)?,
                    "restore-region" => self.restore_region(now)?,
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
                    "read_rate" => self.set_rate(false, scheduler),
                    "write_rate" => self.set_rate(true, scheduler),
                    _ => {} // read where they are used
                }
                Ok(())
            }
        }
    }
}
