//! Lesson `caching`: an app tier reads and writes items in a database through an
//! in-memory cache, under one of four strategies, and the lesson measures what each one
//! buys and costs: hit ratio, database load, latency, stale reads and writes lost. Sweep
//! (or compare) `strategy` to run them on one seed: the arrivals, the keys and the
//! read/write mix come from the same streams, so the differences are the strategy alone.
//!
//! Strategies, as the AWS whitepaper "Database Caching Strategies Using Redis" describes
//! them (lazy loading, write-through, and the TTL that bounds staleness), plus the
//! read-through and write-back (write-behind) variants:
//! - **Cache-aside** (lazy loading): the app asks the cache; on a miss it reads the
//!   database and fills the cache. Writes go to the database only; the cached copy stays
//!   (and is served, stale) until its TTL runs out, unless `invalidate_on_write` deletes
//!   it after the commit. If the cache node is down the app reads the database directly.
//! - **Read-through**: the cache itself loads misses from the database (the app only talks
//!   to the cache, as with DynamoDB Accelerator); writes go around it to the database,
//!   with the same staleness as cache-aside. The cache is in the read path: while it is
//!   down, reads fail.
//! - **Write-through**: reads as cache-aside; every write commits in the database and then
//!   updates the cache before it is acknowledged: never stale, but each write pays both
//!   round trips and fills the cache with items that may never be read.
//! - **Write-back**: a write is acknowledged as soon as the cache holds it (marked dirty);
//!   dirty entries are written to the database every `flush_interval` in batches of up to
//!   [`BATCH_SIZE`] (one database operation per batch) and when evicted. If the cache node
//!   crashes, the dirty entries die with it: those acknowledged writes are lost. While the
//!   cache is down, writes go straight to the database.
//!
//! The cache holds at most `cache_size` entries and evicts the least recently used
//! ([`CacheStore`]); entries expire `ttl` after they were filled (expiry is checked when an
//! entry is read, as Redis does lazily; dirty entries never expire before they are
//! flushed). Fills are version-checked: a fill never installs a value older than the
//! database's current one (the "stale set" guard memcached leases provide, Nishtala et al.,
//! "Scaling Memcache at Facebook", NSDI 2013), so stale reads come from the write policy
//! alone, not from fill races.
//!
//! Keys follow Zipf's law over `key_count` items with exponent `zipf_s` (rank 0 the most
//! popular), the shape Breslau et al. measured for web requests (L. Breslau, P. Cao,
//! L. Fan, G. Phillips, S. Shenker, "Web caching and Zipf-like distributions: evidence and
//! implications", IEEE INFOCOM 1999: request frequency ∝ 1/rank^α with α between about
//! 0.64 and 0.83, and hit ratio growing roughly logarithmically with cache size). Sampling
//! uses [`Zipf`] (rejection-inversion) on its own named stream.
//!
//! Every item has a version: the database's, the cache's, and the newest version
//! acknowledged to any client. A read is **stale** if it returns a version older than the
//! newest one acknowledged before the read was issued (so reads racing a write are not
//! counted). Writes lost = acknowledged versions that never reached the database.
//!
//! **Stampede**: when a popular entry expires, every read arriving before the refill is
//! back also misses and goes to the database: the lesson tracks the concurrent database
//! reads of each item and the peak. Mitigations (`stampede_guard`): single-flight request
//! coalescing (one load per item in flight; later misses wait for its answer, as Go's
//! `singleflight` package does) or a jittered TTL (each fill lives `ttl` × U(0.75, 1.25),
//! which spreads expiries that were synchronised, e.g. after the cache was emptied, but
//! does nothing for one hot key). The database has `db_connections` connections, each
//! serving one operation at a time (log-normal, mean `db_time`, cv 0.5); a request waits at
//! most [`DB_WAIT_TIMEOUT`] for a connection, then fails. Equations and sources:
//! docs/models/caching.md.

use std::collections::{BTreeMap, VecDeque};

use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng, Zipf};
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
    id: "caching",
    title: "Caching strategies",
    group: LessonGroup::Data,
    summary: "Cache-aside, read-through, write-through and write-back on one Zipf workload: hit ratio, database load, stale reads, lost writes and the stampede when a hot key expires.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("strategy"),
    sweep: Some("strategy"),
    breaker_node: None,
};

/// The strategies. Ordered so that the side-by-side comparison (which pairs the current
/// value with the first other one) pairs cache-aside with write-through, and write-back
/// (or the others) with cache-aside.
pub const STRATEGIES: &[&str] = &["cache-aside", "write-through", "read-through", "write-back"];
/// Stampede mitigations.
pub const GUARDS: &[&str] = &["none", "single-flight", "jitter"];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "strategy",
        label: "Caching strategy",
        unit: "",
        help: "cache-aside: the app fills the cache on a miss, writes go to the database; write-through: writes update the database and then the cache; read-through: the cache loads misses itself; write-back: writes are acknowledged by the cache and flushed to the database later.",
        kind: ParamKind::Choice {
            options: STRATEGIES,
            default: "cache-aside",
        },
        liveness: Liveness::Restart,
    },
    number("request_rate", "Requests", "req/s", "Requests per second from the clients (reads and writes).", (0.0, 2000.0, 10.0, 500.0)),
    number("write_fraction", "Write share", "", "Share of requests that write their item (0.1 = one in ten).", (0.0, 0.9, 0.01, 0.05)),
    integer("key_count", "Items", "", "Number of distinct items (keys) in the database.", (100, 10_000, 2000)).restart(),
    number("zipf_s", "Skew (Zipf s)", "", "How concentrated the traffic is: item of rank k is requested in proportion to 1/k^s. 0 = uniform; about 0.6 to 1 for web traffic.", (0.0, 2.0, 0.05, 0.9)),
    integer("cache_size", "Cache size", "entries", "How many items the cache holds; beyond that it evicts the least recently used.", (0, 10_000, 500)),
    number("ttl", "TTL", "s", "How long a cached copy lives after it was filled.", (0.5, 600.0, 0.5, 30.0)),
    ParamSpec {
        name: "invalidate_on_write",
        label: "Delete cached copy on write",
        unit: "",
        help: "Cache-aside and read-through: after a write commits, delete the item's cached copy so the next read reloads it (otherwise the old copy is served until its TTL runs out).",
        kind: ParamKind::Toggle { default: false },
        liveness: Liveness::Live,
    },
    ParamSpec {
        name: "stampede_guard",
        label: "Stampede guard",
        unit: "",
        help: "none: every miss reads the database; single-flight: one load per item at a time, other misses wait for its answer; jitter: each cached copy lives a random 75–125 % of the TTL.",
        kind: ParamKind::Choice {
            options: GUARDS,
            default: "none",
        },
        liveness: Liveness::Live,
    },
    number("flush_interval", "Flush interval", "s", "Write-back: how often dirty entries are written to the database (in batches).", (0.5, 120.0, 0.5, 5.0)),
    integer("db_connections", "DB connections", "", "Database operations that can run at once.", (1, 64, 8)),
    number("db_time", "DB operation time", "ms", "Mean time the database spends on one operation (a read, a write or a flush batch).", (1.0, 500.0, 1.0, 20.0)),
    number("restart_time", "Cache restart time", "s", "How long a crashed cache node takes to come back (empty).", (1.0, 300.0, 1.0, 15.0)),
    number("hot_rate", "Hot-key burst", "req/s", "Extra reads per second on a single, normally unpopular item during a hot-key burst (lasts 60 s).", (10.0, 2000.0, 10.0, 1000.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "crash-cache",
        label: "Crash the cache node",
        help: "The cache node dies now and restarts empty after the restart time; write-back loses every write it had not flushed.",
    },
    InjectionSpec {
        id: "flush-cache",
        label: "Empty the cache",
        help: "Drop every cached entry at once (FLUSHALL, or a deploy that clears it); write-back writes its dirty entries to the database first.",
    },
    InjectionSpec {
        id: "hot-key",
        label: "Hot-key burst",
        help: "For 60 s, one unpopular item gets hot-rate extra reads per second (a post going viral).",
    },
];

/// Client → app network hop (the part of the path outside the data centre).
pub const CLIENT_HOP: SimDuration = SimDuration::from_millis(20);
/// App ↔ cache hop (in-memory cache in the same zone: well under a millisecond plus the
/// lookup).
pub const CACHE_HOP: SimDuration = SimDuration::from_millis(1);
/// App or cache ↔ database hop.
pub const DB_HOP: SimDuration = SimDuration::from_millis(2);
/// Longest a request waits for a database connection before it fails.
pub const DB_WAIT_TIMEOUT: SimDuration = SimDuration::from_secs(1);
/// Most dirty entries one write-back flush operation carries.
pub const BATCH_SIZE: usize = 100;
/// How long a hot-key burst lasts.
pub const HOT_DURATION: SimDuration = SimDuration::from_secs(60);
/// Gauges are refreshed every second.
const TICK: SimDuration = SimDuration::from_secs(1);
const DB_CV: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    CacheAside,
    ReadThrough,
    WriteThrough,
    WriteBack,
}

impl Strategy {
    pub fn from_word(word: &str) -> Strategy {
        match word {
            "read-through" => Strategy::ReadThrough,
            "write-through" => Strategy::WriteThrough,
            "write-back" => Strategy::WriteBack,
            _ => Strategy::CacheAside,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    None,
    SingleFlight,
    Jitter,
}

impl Guard {
    fn from_word(word: &str) -> Guard {
        match word {
            "single-flight" => Guard::SingleFlight,
            "jitter" => Guard::Jitter,
            _ => Guard::None,
        }
    }
}

/// One cached item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub version: u32,
    /// Filled or written at + TTL; ignored while dirty.
    pub expires: SimTime,
    /// Write-back: acknowledged writes this entry holds that the database does not have
    /// yet (dirty if more than zero).
    pub pending: u32,
    /// Recency stamp (its key in the LRU order).
    seq: u64,
}

/// A fixed-capacity key → entry store with least-recently-used eviction and lazy TTL
/// expiry. Items are indices `0..items`; the recency order is a `BTreeMap` from a
/// monotonically increasing stamp to the item, so the least recently used entry is the
/// first one (deterministic, O(log n) per access).
#[derive(Clone, Debug)]
pub struct CacheStore {
    slots: Vec<Option<Entry>>,
    order: BTreeMap<u64, u32>,
    next_seq: u64,
    capacity: usize,
    evictions: u64,
}

impl Entry {
    pub fn is_dirty(&self) -> bool {
        self.pending > 0
    }
}

/// A dirty entry on its way out: item, version, writes it held.
pub type DirtyEntry = (u32, u32, u32);

impl CacheStore {
    pub fn new(items: usize, capacity: usize) -> Self {
        CacheStore {
            slots: vec![None; items],
            order: BTreeMap::new(),
            next_seq: 0,
            capacity,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries evicted to make room, ever.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The entry of `item` without touching it.
    pub fn peek(&self, item: u32) -> Option<&Entry> {
        self.slots[item as usize].as_ref()
    }

    fn stamp(&mut self, item: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, item);
        seq
    }

    /// A read: the cached version if `item` is present and fresh (dirty entries never
    /// expire), marking it most recently used. An expired entry is removed.
    pub fn lookup(&mut self, item: u32, now: SimTime) -> Option<u32> {
        let entry = self.slots[item as usize]?;
        if !entry.is_dirty() && now >= entry.expires {
            self.remove(item);
            return None;
        }
        self.order.remove(&entry.seq);
        let seq = self.stamp(item);
        let slot = self.slots[item as usize].as_mut().expect("present");
        slot.seq = seq;
        Some(entry.version)
    }

    /// Inserts or replaces `item` as the most recently used entry, then evicts least
    /// recently used entries beyond the capacity; evicted dirty entries are appended to
    /// `evicted_dirty` so the caller can write them back. A `write_back` put is one more
    /// acknowledged write held only here (added to the entry's pending writes); any other
    /// put stores a clean copy.
    pub fn put(
        &mut self,
        item: u32,
        version: u32,
        expires: SimTime,
        write_back: bool,
        evicted_dirty: &mut Vec<DirtyEntry>,
    ) {
        let mut pending = 0;
        if let Some(old) = self.slots[item as usize] {
            self.order.remove(&old.seq);
            if write_back {
                pending = old.pending;
            }
        }
        if write_back {
            pending += 1;
        }
        let seq = self.stamp(item);
        self.slots[item as usize] = Some(Entry {
            version,
            expires,
            pending,
            seq,
        });
        self.trim(evicted_dirty);
    }

    /// Removes `item`'s entry.
    pub fn remove(&mut self, item: u32) -> Option<Entry> {
        let entry = self.slots[item as usize].take()?;
        self.order.remove(&entry.seq);
        Some(entry)
    }

    /// Changes the capacity, evicting as [`CacheStore::put`] does.
    pub fn set_capacity(&mut self, capacity: usize, evicted_dirty: &mut Vec<DirtyEntry>) {
        self.capacity = capacity;
        self.trim(evicted_dirty);
    }

    fn trim(&mut self, evicted_dirty: &mut Vec<DirtyEntry>) {
        while self.order.len() > self.capacity {
            let Some((_, item)) = self.order.pop_first() else {
                break;
            };
            if let Some(entry) = self.slots[item as usize].take() {
                self.evictions += 1;
                if entry.is_dirty() {
                    evicted_dirty.push((item, entry.version, entry.pending));
                }
            }
        }
    }

    /// Drops every entry (dirty ones included: the caller decides what that means).
    pub fn clear(&mut self) {
        while let Some((_, item)) = self.order.pop_first() {
            self.slots[item as usize] = None;
        }
    }

    /// Dirty entries, least recently used first.
    pub fn dirty(&self) -> Vec<DirtyEntry> {
        self.order
            .values()
            .filter_map(|&item| {
                let entry = self.slots[item as usize]?;
                entry
                    .is_dirty()
                    .then_some((item, entry.version, entry.pending))
            })
            .collect()
    }

    /// Marks `item` clean (its writes reached the database).
    pub fn mark_clean(&mut self, item: u32) {
        if let Some(entry) = self.slots[item as usize].as_mut() {
            entry.pending = 0;
        }
    }
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    HotArrival,
    HotEnd {
        burst: u32,
    },
    AtApp {
        req: u32,
    },
    AtCache {
        req: u32,
    },
    /// A miss (or a down cache's refusal) is back at the app.
    MissAtApp {
        req: u32,
    },
    AtDb {
        req: u32,
    },
    DbDone {
        req: u32,
    },
    DbTimeout {
        req: u32,
    },
    /// A background database operation (flush batch, evicted dirty entry) finished.
    BatchDone,
    /// A database answer is back at its loader (app or cache), or a commit at the app.
    FromDb {
        req: u32,
    },
    /// The answer is back at the app: the request completes.
    Reply {
        req: u32,
    },
    Tick,
    FlushTick,
    CacheRestarted {
        life: u32,
    },
}

/// Where a read's database load answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loader {
    App,
    /// The cache (read-through), in its `life`-th incarnation.
    Cache {
        life: u32,
    },
}

struct Req {
    key: RequestKey,
    born: SimTime,
    item: u32,
    write: bool,
    /// Newest version of `item` acknowledged when this request was issued.
    required: u32,
    /// The version read (reads) or written (writes).
    value: u32,
    loader: Loader,
    /// Waiting (single-flight) for another request's load, at the cache if true.
    parked_at_cache: Option<bool>,
    timer: Option<TimerHandle>,
    /// Reads parked on this request's load.
    waiters: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DbJob {
    Request(u32),
    /// A write-back flush batch or an evicted dirty entry (no client waits for it).
    Background,
}

pub struct CachingModel {
    params: ParamValues,
    strategy: Strategy,
    topology: Topology,
    clients: NodeId,
    app: NodeId,
    cache_node: NodeId,
    db_queue_node: NodeId,
    db_node: NodeId,
    e_client: EdgeId,
    e_app_cache: EdgeId,
    e_cache_app: EdgeId,
    e_app_db: EdgeId,
    e_cache_db: EdgeId,
    e_db_app: EdgeId,
    e_db_cache: EdgeId,
    cache: CacheStore,
    cache_up: bool,
    cache_life: u32,
    /// Per item: version in the database, newest version ever assigned, newest acknowledged.
    db_version: Vec<u32>,
    next_version: Vec<u32>,
    acked: Vec<u32>,
    /// Per item: database reads in flight (sent, queued or in service).
    db_reads_in_flight: Vec<u32>,
    /// Per item: the request whose load later misses join (single-flight).
    loading: BTreeMap<u32, u32>,
    requests: BTreeMap<u32, Req>,
    next_req: u32,
    db_queue: VecDeque<DbJob>,
    db_busy: u32,
    /// Write-back: acknowledged versions held only by the cache.
    unflushed: u64,
    zipf: Zipf,
    hot_item: u32,
    hot_burst: u32,
    hot_active: bool,
    /// The hot item was put in the cache since its last refill started.
    hot_cached: bool,
    arrivals: ArrivalTimer<Event>,
    hot_arrivals: ArrivalTimer<Event>,
    key_rng: SimRng,
    mix_rng: SimRng,
    db_rng: SimRng,
    jitter_rng: SimRng,
    counts: Counts,
    /// Counts at the last tick, for per-second gauges.
    window: Counts,
    core: ModelCore,
    gauge_hit: GaugeId,
    gauge_db_ops: GaugeId,
    gauge_db_waiting: GaugeId,
    gauge_stale: GaugeId,
    gauge_unflushed: GaugeId,
}

/// What the run counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counts {
    hits: u64,
    misses: u64,
    db_ops: u64,
    db_reads: u64,
    stale: u64,
    reads_done: u64,
    writes_done: u64,
    read_secs: f64,
    write_secs: f64,
    writes_lost: u64,
    peak_item_db_reads: u32,
    hot_db_reads: u64,
    hot_refills: u64,
    coalesced: u64,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

fn zipf_for(params: &ParamValues) -> Zipf {
    Zipf::new(params.integer("key_count") as u64, params.number("zipf_s"))
        .expect("key_count ≥ 100 and zipf_s in [0, 2] are valid")
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<CachingModel> {
    let strategy = Strategy::from_word(params.choice("strategy"));
    let items = params.integer("key_count") as usize;
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.5);
    let app = topology.add_node("app", "App servers", NodeKind::Server, 0.3, 0.5);
    let cache_node = topology.add_node("cache", "Cache", NodeKind::Store, 0.7, 0.1);
    let db_queue_node = topology.add_node("db-queue", "Waiting for DB", NodeKind::Queue, 0.58, 0.9);
    let db_node = topology.add_node("db", "Database", NodeKind::Store, 0.92, 0.9);
    let e_client = topology.add_edge(clients, app);
    let e_app_cache = topology.add_edge(app, cache_node);
    let e_cache_app = topology.add_edge(cache_node, app);
    let e_app_db = topology.add_edge(app, db_queue_node);
    topology.add_edge(db_queue_node, db_node);
    let e_db_app = topology.add_edge(db_node, app);
    // Read-through loads (and write-back flushes, which carry no request) go from the
    // cache to the database; answers to read-through loads come back the same way.
    let e_cache_db = topology.add_edge(cache_node, db_node);
    let e_db_cache = if strategy == Strategy::ReadThrough {
        topology.add_edge(db_node, cache_node)
    } else {
        e_db_app
    };
    let core = ModelCore::new(vec![
        "hit_ratio_percent",
        "database_ops_per_second",
        "waiting_for_database",
        "stale_reads_per_second",
        "unflushed_writes",
    ]);
    let hot_item = (items - 1) as u32;
    let mut model = CachingModel {
        strategy,
        topology,
        clients,
        app,
        cache_node,
        db_queue_node,
        db_node,
        e_client,
        e_app_cache,
        e_cache_app,
        e_app_db,
        e_cache_db,
        e_db_app,
        e_db_cache,
        cache: CacheStore::new(items, params.integer("cache_size") as usize),
        cache_up: true,
        cache_life: 0,
        db_version: vec![0; items],
        next_version: vec![0; items],
        acked: vec![0; items],
        db_reads_in_flight: vec![0; items],
        loading: BTreeMap::new(),
        requests: BTreeMap::new(),
        next_req: 0,
        db_queue: VecDeque::new(),
        db_busy: 0,
        unflushed: 0,
        zipf: zipf_for(params),
        hot_item,
        hot_burst: 0,
        hot_active: false,
        hot_cached: true,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number("request_rate")),
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        hot_arrivals: ArrivalTimer::new(
            PoissonArrivals::new(steady(0.0), SimRng::new(seed.0, "hot-arrivals")),
            Event::HotArrival,
        ),
        key_rng: SimRng::new(seed.0, "keys"),
        mix_rng: SimRng::new(seed.0, "read-write-mix"),
        db_rng: SimRng::new(seed.0, "db-service"),
        jitter_rng: SimRng::new(seed.0, "ttl-jitter"),
        counts: Counts::default(),
        window: Counts::default(),
        gauge_hit: core.gauge("hit_ratio_percent"),
        gauge_db_ops: core.gauge("database_ops_per_second"),
        gauge_db_waiting: core.gauge("waiting_for_database"),
        gauge_stale: core.gauge("stale_reads_per_second"),
        gauge_unflushed: core.gauge("unflushed_writes"),
        core,
        params: params.clone(),
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    scheduler.schedule_in(TICK, Event::Tick);
    if strategy == Strategy::WriteBack {
        let interval = SimDuration::from_secs_f64(params.number("flush_interval"));
        scheduler.schedule_in(interval, Event::FlushTick);
    }
    Simulation::new(model, scheduler)
}

impl CachingModel {
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn cache(&self) -> &CacheStore {
        &self.cache
    }

    /// The item hot-key bursts hit (the least popular one).
    pub fn hot_item(&self) -> u32 {
        self.hot_item
    }

    /// Write-back: acknowledged writes only the cache holds now.
    pub fn unflushed_writes(&self) -> u64 {
        self.unflushed
    }

    /// The version of `item` in the database.
    pub fn db_version(&self, item: u32) -> u32 {
        self.db_version[item as usize]
    }

    /// The newest version of `item` acknowledged to a client.
    pub fn acked_version(&self, item: u32) -> u32 {
        self.acked[item as usize]
    }

    fn set_cache_state(&mut self, up: bool, now: SimTime) {
        if self.cache_up != up {
            self.cache_up = up;
            let to = if up {
                NodeState::Healthy
            } else {
                NodeState::Down
            };
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node: self.cache_node,
                    to,
                },
            );
        }
    }

    fn note_put(&mut self, item: u32) {
        if item == self.hot_item {
            self.hot_cached = true;
        }
    }

    fn ttl_for_fill(&mut self) -> SimDuration {
        let ttl = self.params.number("ttl");
        let factor = if Guard::from_word(self.params.choice("stampede_guard")) == Guard::Jitter {
            self.jitter_rng.uniform(0.75, 1.25)
        } else {
            1.0
        };
        SimDuration::from_secs_f64(ttl * factor)
    }

    fn single_flight(&self) -> bool {
        Guard::from_word(self.params.choice("stampede_guard")) == Guard::SingleFlight
    }

    fn travel(&mut self, req: u32, edge: EdgeId, hop: SimDuration, now: SimTime) {
        if let Some(entry) = self.requests.get(&req) {
            self.core.requests.move_to(
                entry.key,
                Place::OnEdge {
                    edge,
                    depart: now,
                    arrive: now + hop,
                },
            );
        }
    }

    fn send(
        &mut self,
        req: u32,
        edge: EdgeId,
        hop: SimDuration,
        event: Event,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) {
        self.travel(req, edge, hop, now);
        scheduler.schedule_in(hop, event);
    }

    fn arrive(&mut self, hot: bool, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.core.metrics.generated(now);
        let (item, write) = if hot {
            (self.hot_item, false)
        } else {
            let item = self.zipf.sample(&mut self.key_rng) as u32;
            let write = self.mix_rng.chance(self.params.number("write_fraction"));
            (item, write)
        };
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: self.e_client,
                depart: now,
                arrive: now + CLIENT_HOP,
            },
        );
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        self.requests.insert(
            req,
            Req {
                key,
                born: now,
                item,
                write,
                required: self.acked[item as usize],
                value: 0,
                loader: Loader::App,
                parked_at_cache: None,
                timer: None,
                waiters: Vec::new(),
            },
        );
        scheduler.schedule_in(CLIENT_HOP, Event::AtApp { req });
    }

    fn at_app(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let to_cache = if entry.write {
            self.strategy == Strategy::WriteBack && self.cache_up
        } else {
            self.cache_up || self.strategy == Strategy::ReadThrough
        };
        if to_cache {
            let edge = self.e_app_cache;
            self.send(req, edge, CACHE_HOP, Event::AtCache { req }, now, scheduler);
        } else if entry.write {
            self.send_to_db(req, false, now, scheduler);
        } else {
            // The cache node is down: the app reads the database directly.
            self.counts.misses += 1;
            self.load(req, false, now, scheduler);
        }
    }

    fn at_cache(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let (item, write, value) = (entry.item, entry.write, entry.value);
        let back = self.e_cache_app;
        if !self.cache_up {
            match (self.strategy, write) {
                (Strategy::ReadThrough, false) => self.fail(req, now, scheduler),
                // Write-through's second leg: the database already has it; acknowledge.
                (Strategy::WriteThrough, true) => {
                    self.send(req, back, CACHE_HOP, Event::Reply { req }, now, scheduler)
                }
                _ => {
                    if !write {
                        self.counts.misses += 1;
                    }
                    self.send(
                        req,
                        back,
                        CACHE_HOP,
                        Event::MissAtApp { req },
                        now,
                        scheduler,
                    )
                }
            }
            return;
        }
        if write {
            let mut evicted = Vec::new();
            let expires = now + SimDuration::from_secs_f64(self.params.number("ttl"));
            if self.strategy == Strategy::WriteBack {
                let version = self.next_version[item as usize] + 1;
                self.next_version[item as usize] = version;
                self.cache.put(item, version, expires, true, &mut evicted);
                self.note_put(item);
                self.unflushed += 1;
                if let Some(entry) = self.requests.get_mut(&req) {
                    entry.value = version;
                }
            } else {
                // Write-through: the database has committed `value`; update the cache
                // (never to an older version than it holds).
                let current = self.cache.peek(item).map(|e| e.version);
                if current.is_none_or(|held| held < value) {
                    self.cache.put(item, value, expires, false, &mut evicted);
                    self.note_put(item);
                }
            }
            self.write_back_evicted(&evicted, now, scheduler);
            self.update_unflushed(now);
            self.send(req, back, CACHE_HOP, Event::Reply { req }, now, scheduler);
            return;
        }
        match self.cache.lookup(item, now) {
            Some(version) => {
                self.counts.hits += 1;
                if let Some(entry) = self.requests.get_mut(&req) {
                    entry.value = version;
                }
                self.send(req, back, CACHE_HOP, Event::Reply { req }, now, scheduler);
            }
            None => {
                self.counts.misses += 1;
                if item == self.hot_item && self.hot_cached {
                    // The hot item is gone (expired, evicted, emptied): a refill starts.
                    self.hot_cached = false;
                    self.counts.hot_refills += 1;
                }
                if self.strategy == Strategy::ReadThrough {
                    self.load(req, true, now, scheduler);
                } else {
                    self.send(
                        req,
                        back,
                        CACHE_HOP,
                        Event::MissAtApp { req },
                        now,
                        scheduler,
                    );
                }
            }
        }
    }

    fn miss_at_app(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        if entry.write {
            // A write-back write the down cache refused: straight to the database.
            self.send_to_db(req, false, now, scheduler);
        } else {
            self.load(req, false, now, scheduler);
        }
    }

    /// Loads a read's item from the database, from the cache (read-through) or the app,
    /// or parks the read on a load already in flight (single-flight).
    fn load(&mut self, req: u32, from_cache: bool, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let item = entry.item;
        if self.single_flight() {
            if let Some(&leader) = self.loading.get(&item) {
                if leader != req && self.requests.contains_key(&leader) {
                    let node = if from_cache {
                        self.cache_node
                    } else {
                        self.app
                    };
                    let key = entry.key;
                    self.core
                        .requests
                        .move_to(key, Place::Queued { node, since: now });
                    if let Some(entry) = self.requests.get_mut(&req) {
                        entry.parked_at_cache = Some(from_cache);
                    }
                    if let Some(leader) = self.requests.get_mut(&leader) {
                        leader.waiters.push(req);
                    }
                    self.counts.coalesced += 1;
                    return;
                }
            }
            // Double-checked: the item may have been filled while this miss travelled
            // back to the app (the loader re-reads the cache before loading).
            if !from_cache && self.cache_up {
                if let Some(version) = self.cache.lookup(item, now) {
                    self.counts.coalesced += 1;
                    if let Some(entry) = self.requests.get_mut(&req) {
                        entry.value = version;
                    }
                    self.complete(req, now);
                    return;
                }
            }
            self.loading.insert(item, req);
        }
        let in_flight = &mut self.db_reads_in_flight[item as usize];
        *in_flight += 1;
        self.counts.peak_item_db_reads = self.counts.peak_item_db_reads.max(*in_flight);
        if item == self.hot_item {
            self.counts.hot_db_reads += 1;
        }
        self.counts.db_reads += 1;
        if let Some(entry) = self.requests.get_mut(&req) {
            entry.loader = if from_cache {
                Loader::Cache {
                    life: self.cache_life,
                }
            } else {
                Loader::App
            };
        }
        self.send_to_db(req, from_cache, now, scheduler);
    }

    fn send_to_db(
        &mut self,
        req: u32,
        from_cache: bool,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) {
        let edge = if from_cache {
            self.e_cache_db
        } else {
            self.e_app_db
        };
        self.send(req, edge, DB_HOP, Event::AtDb { req }, now, scheduler);
    }

    fn at_db(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let key = entry.key;
        if self.db_busy < self.connections() && self.db_queue.is_empty() {
            self.core.metrics.waited(SimDuration::ZERO);
            self.start_db(DbJob::Request(req), now, scheduler);
        } else {
            self.core.requests.move_to(
                key,
                Place::Queued {
                    node: self.db_queue_node,
                    since: now,
                },
            );
            let timer = scheduler.schedule_timer_in(DB_WAIT_TIMEOUT, Event::DbTimeout { req });
            if let Some(entry) = self.requests.get_mut(&req) {
                entry.timer = Some(timer);
            }
            self.db_queue.push_back(DbJob::Request(req));
            self.update_db_waiting(now);
        }
    }

    fn connections(&self) -> u32 {
        self.params.integer("db_connections") as u32
    }

    fn db_service(&mut self) -> SimDuration {
        let mean = SimDuration::from_secs_f64(self.params.number("db_time") / 1000.0);
        ServiceTime::LogNormal { mean, cv: DB_CV }.sample(&mut self.db_rng)
    }

    fn start_db(&mut self, job: DbJob, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.db_busy += 1;
        self.counts.db_ops += 1;
        let duration = self.db_service();
        match job {
            DbJob::Request(req) => {
                let node = self.db_node;
                if let Some(entry) = self.requests.get_mut(&req) {
                    if let Some(timer) = entry.timer.take() {
                        scheduler.cancel(timer);
                    }
                    self.core
                        .requests
                        .move_to(entry.key, Place::InService { node, since: now });
                }
                scheduler.schedule_in(duration, Event::DbDone { req });
            }
            DbJob::Background => scheduler.schedule_in(duration, Event::BatchDone),
        }
    }

    /// Hands free connections to waiting jobs, in order.
    fn dispatch_db(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        while self.db_busy < self.connections() {
            let Some(job) = self.db_queue.pop_front() else {
                break;
            };
            if let DbJob::Request(req) = job {
                let Some(entry) = self.requests.get(&req) else {
                    continue;
                };
                if let Place::Queued { since, .. } = self.core.requests.get(entry.key).place {
                    self.core.metrics.waited(now - since);
                }
            }
            self.start_db(job, now, scheduler);
        }
        self.update_db_waiting(now);
    }

    fn enqueue_background(&mut self, jobs: usize, now: SimTime, scheduler: &mut Scheduler<Event>) {
        for _ in 0..jobs {
            self.db_queue.push_back(DbJob::Background);
        }
        self.dispatch_db(now, scheduler);
    }

    fn db_done(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.db_busy -= 1;
        if let Some(entry) = self.requests.get(&req) {
            let item = entry.item as usize;
            let (write, loader) = (entry.write, entry.loader);
            let value = if write {
                // The commit: the next version of the item.
                let version = self.next_version[item] + 1;
                self.next_version[item] = version;
                self.db_version[item] = self.db_version[item].max(version);
                // Later misses must not join a load that read the old version.
                self.loading.remove(&(item as u32));
                version
            } else {
                self.db_reads_in_flight[item] -= 1;
                self.db_version[item]
            };
            if let Some(entry) = self.requests.get_mut(&req) {
                entry.value = value;
            }
            let edge = match loader {
                Loader::Cache { .. } if !write => self.e_db_cache,
                _ => self.e_db_app,
            };
            self.send(req, edge, DB_HOP, Event::FromDb { req }, now, scheduler);
        }
        self.dispatch_db(now, scheduler);
    }

    fn db_timeout(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        entry.timer = None;
        let (item, write) = (entry.item as usize, entry.write);
        self.db_queue.retain(|job| *job != DbJob::Request(req));
        if !write {
            self.db_reads_in_flight[item] -= 1;
        }
        self.fail(req, now, scheduler);
        self.update_db_waiting(now);
    }

    fn db_answered(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let (item, write, value, loader) = (entry.item, entry.write, entry.value, entry.loader);
        if write {
            match self.strategy {
                Strategy::WriteThrough if self.cache_up => {
                    let edge = self.e_app_cache;
                    self.send(req, edge, CACHE_HOP, Event::AtCache { req }, now, scheduler);
                }
                Strategy::CacheAside | Strategy::ReadThrough => {
                    if self.cache_up && self.params.toggle("invalidate_on_write") {
                        self.cache.remove(item);
                    }
                    self.complete(req, now);
                }
                _ => self.complete(req, now),
            }
            return;
        }
        // A read's load is back: fill the cache, answer the read and its waiters.
        let alive = match loader {
            Loader::App => true,
            Loader::Cache { life } => self.cache_up && life == self.cache_life,
        };
        if self.loading.get(&item) == Some(&req) {
            self.loading.remove(&item);
        }
        let waiters = self
            .requests
            .get_mut(&req)
            .map(|entry| std::mem::take(&mut entry.waiters))
            .unwrap_or_default();
        if !alive {
            // The cache that was loading it crashed meanwhile.
            self.fail(req, now, scheduler);
            for waiter in waiters {
                self.fail(waiter, now, scheduler);
            }
            return;
        }
        if self.cache_up && value >= self.db_version[item as usize] {
            let current = self.cache.peek(item).map(|e| e.version);
            if current.is_none_or(|held| held < value) {
                let expires = now + self.ttl_for_fill();
                let mut evicted = Vec::new();
                self.cache.put(item, value, expires, false, &mut evicted);
                self.note_put(item);
                self.write_back_evicted(&evicted, now, scheduler);
            }
        }
        for waiter in std::iter::once(req).chain(waiters) {
            let Some(entry) = self.requests.get_mut(&waiter) else {
                continue; // failed meanwhile
            };
            entry.value = value;
            entry.parked_at_cache = None;
            match loader {
                Loader::App => self.complete(waiter, now),
                Loader::Cache { .. } => {
                    let edge = self.e_cache_app;
                    self.send(
                        waiter,
                        edge,
                        CACHE_HOP,
                        Event::Reply { req: waiter },
                        now,
                        scheduler,
                    );
                }
            }
        }
    }

    /// The answer reached the app: the request completes.
    fn complete(&mut self, req: u32, now: SimTime) {
        let Some(entry) = self.requests.remove(&req) else {
            return;
        };
        self.core.requests.finish(entry.key);
        let latency = now - entry.born;
        self.core.metrics.completed(now, latency);
        let item = entry.item as usize;
        if entry.write {
            self.acked[item] = self.acked[item].max(entry.value);
            self.counts.writes_done += 1;
            self.counts.write_secs += latency.as_secs_f64();
        } else {
            self.counts.reads_done += 1;
            self.counts.read_secs += latency.as_secs_f64();
            if entry.value < entry.required {
                self.counts.stale += 1;
            }
        }
    }

    fn fail(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.remove(&req) else {
            return;
        };
        if let Some(timer) = entry.timer {
            scheduler.cancel(timer);
        }
        self.core.requests.finish(entry.key);
        self.core.metrics.failed(now);
        if self.loading.get(&entry.item) == Some(&req) {
            self.loading.remove(&entry.item);
        }
        // Reads waiting on this one's load get no answer either.
        for waiter in entry.waiters {
            self.fail(waiter, now, scheduler);
        }
    }

    /// Write-back: dirty entries pushed out of the cache are written to the database as
    /// they leave (one background operation each).
    fn write_back_evicted(
        &mut self,
        evicted: &[DirtyEntry],
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) {
        for &entry in evicted {
            self.commit_back(entry);
        }
        if !evicted.is_empty() {
            self.update_unflushed(now);
            self.enqueue_background(evicted.len(), now, scheduler);
        }
    }

    /// The database takes a dirty entry's version: its pending writes are no longer at
    /// risk.
    fn commit_back(&mut self, (item, version, pending): DirtyEntry) {
        let db = &mut self.db_version[item as usize];
        *db = (*db).max(version);
        self.unflushed -= u64::from(pending);
    }

    /// Writes every dirty entry to the database in batches.
    fn flush_dirty(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let dirty = self.cache.dirty();
        for &entry in &dirty {
            self.commit_back(entry);
            self.cache.mark_clean(entry.0);
        }
        if !dirty.is_empty() {
            self.update_unflushed(now);
            self.enqueue_background(dirty.len().div_ceil(BATCH_SIZE), now, scheduler);
        }
    }

    fn update_unflushed(&mut self, now: SimTime) {
        let value = self.unflushed as i64;
        self.core
            .metrics
            .set_gauge(self.gauge_unflushed, now, value);
    }

    fn update_db_waiting(&mut self, now: SimTime) {
        let value = self.db_queue.len() as i64;
        self.core
            .metrics
            .set_gauge(self.gauge_db_waiting, now, value);
    }

    fn tick(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        scheduler.schedule_in(TICK, Event::Tick);
        let (c, w) = (self.counts, self.window);
        let reads = (c.hits + c.misses) - (w.hits + w.misses);
        if reads > 0 {
            let pct = 100.0 * (c.hits - w.hits) as f64 / reads as f64;
            self.core
                .metrics
                .set_gauge(self.gauge_hit, now, libm::round(pct) as i64);
        }
        self.core
            .metrics
            .set_gauge(self.gauge_db_ops, now, (c.db_ops - w.db_ops) as i64);
        self.core
            .metrics
            .set_gauge(self.gauge_stale, now, (c.stale - w.stale) as i64);
        self.window = c;
    }

    fn crash_cache(
        &mut self,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        if !self.cache_up {
            return Err(CommandError::NotApplicable {
                reason: "the cache node is already down; it restarts by itself".into(),
            });
        }
        self.set_cache_state(false, now);
        self.cache_life += 1;
        // Dirty entries die with the node: acknowledged writes the database never got.
        self.counts.writes_lost += self.unflushed;
        self.unflushed = 0;
        self.cache.clear();
        self.update_unflushed(now);
        // Reads parked in the cache's own single-flight table lose their answer.
        let parked: Vec<u32> = self
            .requests
            .iter()
            .filter(|(_, entry)| entry.parked_at_cache == Some(true))
            .map(|(&req, _)| req)
            .collect();
        for req in parked {
            self.fail(req, now, scheduler);
        }
        let requests = &self.requests;
        self.loading.retain(|_, leader| {
            requests
                .get(leader)
                .is_some_and(|e| e.loader == Loader::App)
        });
        let restart = SimDuration::from_secs_f64(self.params.number("restart_time"));
        scheduler.schedule_in(
            restart,
            Event::CacheRestarted {
                life: self.cache_life,
            },
        );
        Ok(())
    }

    fn empty_cache(
        &mut self,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        if !self.cache_up {
            return Err(CommandError::NotApplicable {
                reason: "the cache node is down: there is nothing in it to drop".into(),
            });
        }
        if self.cache.is_empty() {
            return Err(CommandError::NotApplicable {
                reason: "the cache is already empty".into(),
            });
        }
        self.flush_dirty(now, scheduler);
        self.cache.clear();
        Ok(())
    }

    fn start_hot_burst(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        if self.hot_active {
            return Err(CommandError::NotApplicable {
                reason: "a hot-key burst is already running".into(),
            });
        }
        self.hot_active = true;
        self.hot_burst += 1;
        self.set_hot_rate(scheduler);
        scheduler.schedule_in(
            HOT_DURATION,
            Event::HotEnd {
                burst: self.hot_burst,
            },
        );
        Ok(())
    }

    fn set_hot_rate(&mut self, scheduler: &mut Scheduler<Event>) {
        let rate = if self.hot_active {
            self.params.number("hot_rate")
        } else {
            0.0
        };
        self.hot_arrivals.arrivals.set_shape(steady(rate));
        self.hot_arrivals.rearm(scheduler);
    }

    fn elapsed_secs(now: SimTime) -> f64 {
        now.as_secs_f64().max(1e-9)
    }
}

impl Model for CachingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(false, now, scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::HotArrival => {
                self.hot_arrivals.fired();
                self.arrive(true, now, scheduler);
                self.hot_arrivals.rearm(scheduler);
            }
            Event::HotEnd { burst } => {
                if burst == self.hot_burst && self.hot_active {
                    self.hot_active = false;
                    self.set_hot_rate(scheduler);
                }
            }
            Event::AtApp { req } => self.at_app(req, now, scheduler),
            Event::AtCache { req } => self.at_cache(req, now, scheduler),
            Event::MissAtApp { req } => self.miss_at_app(req, now, scheduler),
            Event::AtDb { req } => self.at_db(req, now, scheduler),
            Event::DbDone { req } => self.db_done(req, now, scheduler),
            Event::DbTimeout { req } => self.db_timeout(req, now, scheduler),
            Event::BatchDone => {
                self.db_busy -= 1;
                self.dispatch_db(now, scheduler);
            }
            Event::FromDb { req } => self.db_answered(req, now, scheduler),
            Event::Reply { req } => self.complete(req, now),
            Event::Tick => self.tick(now, scheduler),
            Event::FlushTick => {
                let interval = SimDuration::from_secs_f64(self.params.number("flush_interval"));
                scheduler.schedule_in(interval, Event::FlushTick);
                if self.cache_up {
                    self.flush_dirty(now, scheduler);
                }
            }
            Event::CacheRestarted { life } => {
                if life == self.cache_life && !self.cache_up {
                    self.set_cache_state(true, now);
                }
            }
        }
    }
}

impl LessonModel for CachingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        let parked = |at_cache: bool| {
            self.requests
                .values()
                .filter(|entry| entry.parked_at_cache == Some(at_cache))
                .count() as u32
        };
        snapshot.nodes.push(plain(self.clients));
        snapshot.nodes.push(NodeView {
            queued: parked(false),
            ..plain(self.app)
        });
        snapshot.nodes.push(NodeView {
            state: if self.cache_up {
                NodeState::Healthy
            } else {
                NodeState::Down
            },
            // Entries held are a figure, not "busy" work (the narration sums busy).
            queued: parked(true),
            ..plain(self.cache_node)
        });
        snapshot.nodes.push(NodeView {
            queued: self.db_queue.len() as u32,
            ..plain(self.db_queue_node)
        });
        snapshot.nodes.push(NodeView {
            busy: self.db_busy,
            capacity: self.connections(),
            ..plain(self.db_node)
        });
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let c = &self.counts;
        let lookups = c.hits + c.misses;
        let ratio = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
        let figure = |key, label, value, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        vec![
            figure(
                "hit_ratio",
                "Hit ratio",
                100.0 * ratio(c.hits as f64, lookups as f64),
                "%",
            ),
            figure(
                "db_ops_per_s",
                "Database load",
                ratio(c.db_ops as f64, Self::elapsed_secs(now)),
                "ops/s",
            ),
            figure(
                "read_ms",
                "Mean read latency",
                1000.0 * ratio(c.read_secs, c.reads_done as f64),
                "ms",
            ),
            figure(
                "write_ms",
                "Mean write latency",
                1000.0 * ratio(c.write_secs, c.writes_done as f64),
                "ms",
            ),
            figure("stale_reads", "Stale reads", c.stale as f64, ""),
            figure(
                "stale_pct",
                "Stale share of reads",
                100.0 * ratio(c.stale as f64, c.reads_done as f64),
                "%",
            ),
            figure("writes_lost", "Writes lost", c.writes_lost as f64, ""),
            figure(
                "unflushed_writes",
                "Unflushed writes",
                self.unflushed as f64,
                "",
            ),
            figure(
                "cache_entries",
                "Cached entries",
                self.cache.len() as f64,
                "",
            ),
            figure(
                "peak_item_db_reads",
                "Peak DB reads of one item",
                f64::from(c.peak_item_db_reads),
                "",
            ),
            figure(
                "hot_key_db_reads",
                "Hot-key DB reads",
                c.hot_db_reads as f64,
                "",
            ),
            figure(
                "reads_per_refill",
                "DB reads per hot-key refill",
                ratio(c.hot_db_reads as f64, c.hot_refills as f64),
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
                    "crash-cache" => self.crash_cache(now, scheduler)?,
                    "flush-cache" => self.empty_cache(now, scheduler)?,
                    "hot-key" => self.start_hot_burst(scheduler)?,
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
                    "request_rate" => {
                        let rate = self.params.number("request_rate");
                        self.arrivals.arrivals.set_shape(steady(rate));
                        self.arrivals.rearm(scheduler);
                    }
                    "hot_rate" if self.hot_active => self.set_hot_rate(scheduler),
                    "zipf_s" => self.zipf = zipf_for(&self.params),
                    "cache_size" => {
                        let mut evicted = Vec::new();
                        let size = self.params.integer("cache_size") as usize;
                        self.cache.set_capacity(size, &mut evicted);
                        self.write_back_evicted(&evicted, now, scheduler);
                    }
                    "db_connections" => self.dispatch_db(now, scheduler),
                    _ => {} // read where they are used
                }
                Ok(())
            }
        }
    }
}
