//! Lesson `sharding`: a router spreads requests for keys over N shards, either by modulo
//! hashing (`hash(key) mod N`) or by consistent hashing on a ring with virtual nodes, and
//! the lesson measures what each costs when the fleet changes size and when one key gets
//! hot: keys moved, the burst of re-fetches that follows, load spread, the hottest
//! shard's share and utilisation, and p99 latency. Compare or sweep `partitioning` to run
//! both on one seed (same arrivals, same keys).
//!
//! **Hashing.** Every key id and every virtual node is placed with [`mix64`], a fixed
//! 64-bit mixer (the SplitMix64 finaliser, Steele, Lea & Flood 2014, with the constants of
//! Vigna's `splitmix64.c`): deterministic on every platform, unlike the randomly seeded
//! hasher of `std`'s `HashMap`. Modulo partitioning sends key k to the
//! `(mix64(k) mod n)`-th active shard. Consistent hashing (D. Karger, E. Lehman,
//! T. Leighton, R. Panigrahy, M. Levine, D. Lewin, "Consistent hashing and random trees:
//! distributed caching protocols for relieving hot spots on the World Wide Web", STOC 1997)
//! puts `vnodes` points per shard on a ring of 2^64 positions ([`Ring`]); a key belongs to
//! the first point clockwise from its hash. Virtual nodes are how Amazon's Dynamo evens out
//! ownership (G. DeCandia et al., "Dynamo: Amazon's highly available key-value store",
//! SOSP 2007). The ring's points are salted by the run's seed, so different seeds give
//! different rings.
//!
//! **What the sources predict, and the tests check.** With V points per shard, a shard's
//! share of the ring is a sum of V roughly exponential arcs, so its spread (standard
//! deviation over mean) shrinks about as 1/√V: some 10 % at V = 100 and 3 % at V = 1000
//! ([`Ring::ownership_spread`]). Adding an (n+1)-th shard moves only the keys the new
//! shard takes over, about 1/(n+1) of them; with modulo hashing a key stays put only if
//! `h mod n = h mod (n+1)`, so about n/(n+1) of all keys move.
//!
//! **Shards.** Each shard has `workers` parallel workers (log-normal service, mean
//! `service_ms`, cv 0.5) and a queue of at most `queue_limit` requests; a request that
//! finds the queue full is rejected. Key popularity is Zipf over `key_count` keys with
//! exponent `zipf_s` (0 = uniform), sampled by [`Zipf`].
//!
//! **Moving keys.** A key's data lives on one shard (its *home*). When the router sends a
//! request to a shard that is not the key's home (the key moved there on a resize), that
//! shard first fetches the key (from the old shard or the backing store), which keeps its
//! worker busy `migration_ms` longer; then the key's home is the new shard. Moved keys are
//! migrated lazily, so a resize is followed by a burst of such fetches (the cache-miss and
//! migration burst), large when most keys moved. A removed shard drains: it finishes what
//! it holds and takes nothing new, then turns off.
//!
//! **Hot key.** The `hot-key` injection adds `hot_rate` requests per second for one
//! ordinary key for [`HOT_DURATION`]: its shard (and only it) saturates while the others
//! keep their normal load. No partitioning scheme spreads a single key.
//!
//! Measurement window: load spread, hottest-shard share and utilisation are measured since
//! the start or the last resize, whichever is later. Equations and sources:
//! docs/models/sharding.md.

use std::collections::{BTreeMap, VecDeque};

use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng, Zipf};
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
    id: "sharding",
    title: "Sharding and consistent hashing",
    group: LessonGroup::Data,
    summary: "Split keys over shards by modulo or a consistent-hash ring: keys moved when a shard is added or removed, the re-fetch burst, load spread versus virtual nodes, and the hot partition one key creates.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(120),
    build,
    compare: Some("partitioning"),
    sweep: Some("partitioning"),
    breaker_node: None,
};

/// Partitioning schemes.
pub const PARTITIONINGS: &[&str] = &["consistent-hash", "modulo"];
/// Most shards the lesson draws (slots for shards added later included).
pub const MAX_SHARDS: usize = 16;
/// Empty slots drawn beyond the starting shards, for `add-shard`.
pub const SPARE_SLOTS: usize = 2;
/// How long a hot-key burst lasts.
pub const HOT_DURATION: SimDuration = SimDuration::from_secs(60);
/// Clients → router hop.
pub const CLIENT_HOP: SimDuration = SimDuration::from_millis(5);
/// Router → shard hop.
pub const SHARD_HOP: SimDuration = SimDuration::from_millis(2);
const TICK: SimDuration = SimDuration::from_secs(1);
const SERVICE_CV: f64 = 0.5;

const RESTART: Liveness = Liveness::Restart;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "partitioning",
        label: "Partitioning",
        unit: "",
        help: "consistent-hash: each shard owns the ring arcs before its virtual nodes, so a resize moves only the keys of the arcs that change hands; modulo: key goes to shard hash(key) mod N, so changing N moves almost every key.",
        kind: ParamKind::Choice {
            options: PARTITIONINGS,
            default: "consistent-hash",
        },
        liveness: RESTART,
    },
    integer("shards", "Shards", "", "Shards at the start (two more slots are drawn for shards you add).", (2, 16, 4)).restart(),
    integer("vnodes", "Virtual nodes per shard", "", "Consistent hashing: points each shard has on the ring. More points, more even shares (spread about 1/√V).", (1, 1000, 100)).restart(),
    integer("key_count", "Keys", "", "Number of distinct keys.", (1000, 100_000, 10_000)).restart(),
    number("zipf_s", "Key skew (Zipf s)", "", "How concentrated key popularity is: key of rank k gets requests in proportion to 1/k^s. 0 = uniform.", (0.0, 1.5, 0.05, 0.6)),
    number("request_rate", "Requests", "req/s", "Requests per second, over all keys.", (0.0, 4000.0, 10.0, 1000.0)),
    integer("workers", "Workers per shard", "", "Requests one shard serves at once.", (1, 16, 4)),
    number("service_ms", "Service time", "ms", "Mean time a worker spends on one request.", (1.0, 200.0, 1.0, 10.0)),
    integer("queue_limit", "Queue limit per shard", "", "Requests that can wait at one shard; beyond that they are rejected.", (1, 2000, 200)),
    number("migration_ms", "Key fetch time", "ms", "Extra work when a key is served by a shard that does not hold its data yet (it fetches the key after a resize).", (0.0, 500.0, 5.0, 50.0)),
    number("resize_at", "Scheduled scale-out at", "s", "Adds one shard at this time (0 = never), so the comparison and sweep include a resize.", (0.0, 600.0, 5.0, 60.0)).restart(),
    number("hot_rate", "Hot-key traffic", "req/s", "Extra requests per second for one key during a hot-key burst (lasts 60 s).", (10.0, 4000.0, 10.0, 600.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "add-shard",
        label: "Add a shard",
        help: "A new shard joins; the router's map changes at once and the keys it now owns move (they are fetched on first use).",
    },
    InjectionSpec {
        id: "remove-shard",
        label: "Remove a shard",
        help: "The last shard leaves: it finishes its queue and turns off; its keys (and, with modulo, most others) move.",
    },
    InjectionSpec {
        id: "hot-key",
        label: "Hot key",
        help: "For 60 s one key gets hot-rate extra requests per second: a hot partition.",
    },
];

/// The fixed 64-bit mixer every position on the ring comes from: the SplitMix64 finaliser
/// (two xor-shift-multiply rounds and a final xor-shift). A bijection on u64 with good
/// avalanche; the same on every platform and build.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of key id `key`.
pub fn key_hash(key: u32) -> u64 {
    mix64(u64::from(key))
}

/// A consistent-hash ring: `vnodes` points per shard, sorted by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    points: Vec<(u64, u8)>,
}

impl Ring {
    /// The ring of `shards` (slot numbers) with `vnodes` points each, placed by `salt`.
    pub fn new(shards: &[u8], vnodes: u32, salt: u64) -> Ring {
        let mut points: Vec<(u64, u8)> = shards
            .iter()
            .flat_map(|&shard| {
                (0..vnodes).map(move |v| {
                    let id = (u64::from(shard) + 1) << 32 | u64::from(v);
                    (mix64(salt ^ mix64(id)), shard)
                })
            })
            .collect();
        points.sort_unstable();
        Ring { points }
    }

    /// The shard owning `hash`: the first point at or after it, wrapping around.
    pub fn owner(&self, hash: u64) -> u8 {
        let i = self.points.partition_point(|&(point, _)| point < hash);
        self.points[i % self.points.len()].1
    }

    /// Each listed shard's share of the ring (fractions summing to 1).
    pub fn ownership(&self, shards: &[u8]) -> Vec<f64> {
        let mut share = vec![0.0; shards.len()];
        let last = self.points.len() - 1;
        for (i, &(point, shard)) in self.points.iter().enumerate() {
            // The arc ending at this point starts after the previous point.
            let previous = if i == 0 {
                self.points[last].0
            } else {
                self.points[i - 1].0
            };
            let arc = point.wrapping_sub(previous) as f64 / 18_446_744_073_709_551_616.0;
            let arc = if self.points.len() == 1 { 1.0 } else { arc };
            if let Some(slot) = shards.iter().position(|&s| s == shard) {
                share[slot] += arc;
            }
        }
        share
    }

    /// Standard deviation of the shards' ring shares over their mean, in percent.
    pub fn ownership_spread(&self, shards: &[u8]) -> f64 {
        spread_pct(&self.ownership(shards))
    }
}

/// Standard deviation over mean, in percent (0 for no data).
pub fn spread_pct(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.is_empty() || mean <= 0.0 {
        return 0.0;
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    100.0 * libm::sqrt(var) / mean
}

/// How keys are mapped to shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partitioner {
    /// `active[hash mod active.len()]`.
    Modulo {
        active: Vec<u8>,
    },
    Consistent {
        active: Vec<u8>,
        ring: Ring,
    },
}

impl Partitioner {
    pub fn new(consistent: bool, active: Vec<u8>, vnodes: u32, salt: u64) -> Partitioner {
        if consistent {
            let ring = Ring::new(&active, vnodes, salt);
            Partitioner::Consistent { active, ring }
        } else {
            Partitioner::Modulo { active }
        }
    }

    pub fn owner(&self, key: u32) -> u8 {
        let hash = key_hash(key);
        match self {
            Partitioner::Modulo { active } => active[(hash % active.len() as u64) as usize],
            Partitioner::Consistent { ring, .. } => ring.owner(hash),
        }
    }

    pub fn active(&self) -> &[u8] {
        match self {
            Partitioner::Modulo { active } | Partitioner::Consistent { active, .. } => active,
        }
    }

    /// The same scheme over another set of shards.
    pub fn with_shards(&self, active: Vec<u8>, vnodes: u32, salt: u64) -> Partitioner {
        Partitioner::new(
            matches!(self, Partitioner::Consistent { .. }),
            active,
            vnodes,
            salt,
        )
    }
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    HotArrival,
    HotEnd { burst: u32 },
    AtRouter { req: u32 },
    AtShard { req: u32 },
    Done { req: u32 },
    Tick,
    ScheduledResize,
}

struct Req {
    key: RequestKey,
    born: SimTime,
    item: u32,
    shard: u8,
}

/// One shard slot.
#[derive(Clone, Debug)]
struct Shard {
    node: NodeId,
    edge: EdgeId,
    state: NodeState,
    queue: VecDeque<u32>,
    busy: u32,
    /// Busy worker-time and worker capacity-time (µs) since the window started.
    busy_area: u128,
    capacity_area: u128,
    last_change: SimTime,
    /// Requests routed here since the window started.
    routed: u64,
    /// Busy worker-time at the last tick (for the per-second gauge).
    busy_at_tick: u128,
    capacity_at_tick: u128,
}

impl Shard {
    /// Brings the busy and capacity integrals up to `now`.
    fn touch(&mut self, now: SimTime, workers: u32) {
        let dt = u128::from(now.ticks() - self.last_change.ticks());
        self.busy_area += u128::from(self.busy) * dt;
        if self.state != NodeState::Off {
            self.capacity_area += u128::from(workers) * dt;
        }
        self.last_change = now;
    }

    fn utilisation(&self) -> f64 {
        if self.capacity_area == 0 {
            0.0
        } else {
            self.busy_area as f64 / self.capacity_area as f64
        }
    }
}

/// What the last resize did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Resize {
    moved: u64,
    shards_before: usize,
    shards_after: usize,
}

pub struct ShardingModel {
    params: ParamValues,
    topology: Topology,
    clients: NodeId,
    router: NodeId,
    e_client: EdgeId,
    shards: Vec<Shard>,
    partitioner: Partitioner,
    salt: u64,
    vnodes: u32,
    /// Per key: the shard that holds its data.
    home: Vec<u8>,
    requests: BTreeMap<u32, Req>,
    next_req: u32,
    zipf: Zipf,
    hot_item: u32,
    hot_burst: u32,
    hot_active: bool,
    arrivals: ArrivalTimer<Event>,
    hot_arrivals: ArrivalTimer<Event>,
    key_rng: SimRng,
    service_rng: SimRng,
    last_resize: Option<Resize>,
    resizes: u32,
    fetches: u64,
    fetches_at_tick: u64,
    window_start: SimTime,
    /// [`keyspace_spread`] of the current map.
    keyspace_spread: f64,
    core: ModelCore,
    gauge_fetches: GaugeId,
    gauge_hottest: GaugeId,
    gauge_spread: GaugeId,
    gauge_queue: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

fn zipf_for(params: &ParamValues) -> Zipf {
    Zipf::new(params.integer("key_count") as u64, params.number("zipf_s"))
        .expect("key_count ≥ 1000 and zipf_s in [0, 1.5] are valid")
}

/// Where slot `i` of `slots` is drawn: one column up to eight; beyond, two columns with
/// the second shifted by half a row, so the router's edges to it pass between the boxes
/// of the first.
fn slot_position(i: usize, slots: usize) -> (f32, f32) {
    if slots <= 8 {
        let y = 0.04 + 0.92 * i as f32 / (slots - 1).max(1) as f32;
        return (0.8, y);
    }
    let rows = slots.div_ceil(2);
    let (column, row) = (i / rows, i % rows);
    let step = 0.92 / (rows as f32 - 0.5);
    let y = 0.04 + step * (row as f32 + 0.5 * column as f32);
    (0.58 + 0.34 * column as f32, y)
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<ShardingModel> {
    let consistent = params.choice("partitioning") != "modulo";
    let initial = params.integer("shards") as usize;
    let slots = (initial + SPARE_SLOTS).min(MAX_SHARDS);
    let keys = params.integer("key_count") as usize;
    let vnodes = params.integer("vnodes") as u32;
    let salt = SimRng::new(seed.0, "ring-salt").next_u64();
    let mut topology = Topology::default();
    let clients = topology.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.5);
    let router = topology.add_node("router", "Router", NodeKind::Router, 0.3, 0.5);
    let e_client = topology.add_edge(clients, router);
    let shards = (0..slots)
        .map(|i| {
            let (x, y) = slot_position(i, slots);
            let node = topology.add_node(
                &format!("shard-{}", i + 1),
                &format!("Shard {}", i + 1),
                NodeKind::Server,
                x,
                y,
            );
            Shard {
                node,
                edge: topology.add_edge(router, node),
                state: if i < initial {
                    NodeState::Healthy
                } else {
                    NodeState::Off
                },
                queue: VecDeque::new(),
                busy: 0,
                busy_area: 0,
                capacity_area: 0,
                last_change: SimTime::ZERO,
                routed: 0,
                busy_at_tick: 0,
                capacity_at_tick: 0,
            }
        })
        .collect();
    let active: Vec<u8> = (0..initial as u8).collect();
    let partitioner = Partitioner::new(consistent, active, vnodes, salt);
    let home = (0..keys as u32).map(|k| partitioner.owner(k)).collect();
    let spread = keyspace_spread(&partitioner, keys as u32);
    let core = ModelCore::new(vec![
        "key_fetches_per_second",
        "hottest_shard_util_percent",
        "load_spread_percent",
        "longest_queue",
    ]);
    let mut model = ShardingModel {
        topology,
        clients,
        router,
        e_client,
        shards,
        partitioner,
        salt,
        vnodes,
        home,
        requests: BTreeMap::new(),
        next_req: 0,
        zipf: zipf_for(params),
        hot_item: (keys / 2) as u32,
        hot_burst: 0,
        hot_active: false,
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
        service_rng: SimRng::new(seed.0, "service"),
        last_resize: None,
        resizes: 0,
        fetches: 0,
        fetches_at_tick: 0,
        window_start: SimTime::ZERO,
        keyspace_spread: spread,
        gauge_fetches: core.gauge("key_fetches_per_second"),
        gauge_hottest: core.gauge("hottest_shard_util_percent"),
        gauge_spread: core.gauge("load_spread_percent"),
        gauge_queue: core.gauge("longest_queue"),
        core,
        params: params.clone(),
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    scheduler.schedule_in(TICK, Event::Tick);
    let resize_at = params.number("resize_at");
    if resize_at > 0.0 {
        scheduler.schedule_in(
            SimDuration::from_secs_f64(resize_at),
            Event::ScheduledResize,
        );
    }
    Simulation::new(model, scheduler)
}

impl ShardingModel {
    /// The current key → shard map.
    pub fn partitioner(&self) -> &Partitioner {
        &self.partitioner
    }

    /// The key hot-key bursts hit.
    pub fn hot_item(&self) -> u32 {
        self.hot_item
    }

    /// Each slot's utilisation (busy worker-time over worker-time) since the window
    /// started; off slots read 0.
    pub fn utilisations(&self, now: SimTime) -> Vec<f64> {
        let workers = self.workers();
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.clone();
                shard.touch(now, workers);
                shard.utilisation()
            })
            .collect()
    }

    /// Requests routed to each slot since the window started.
    pub fn routed(&self) -> Vec<u64> {
        self.shards.iter().map(|shard| shard.routed).collect()
    }

    fn workers(&self) -> u32 {
        self.params.integer("workers") as u32
    }

    fn set_state(&mut self, slot: usize, to: NodeState, now: SimTime) {
        let workers = self.workers();
        let shard = &mut self.shards[slot];
        if shard.state != to {
            shard.touch(now, workers);
            shard.state = to;
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node: shard.node,
                    to,
                },
            );
        }
    }

    fn arrive(&mut self, hot: bool, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.core.metrics.generated(now);
        let item = if hot {
            self.hot_item
        } else {
            self.zipf.sample(&mut self.key_rng) as u32
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
                shard: 0,
            },
        );
        scheduler.schedule_in(CLIENT_HOP, Event::AtRouter { req });
    }

    fn at_router(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        let shard = self.partitioner.owner(entry.item);
        entry.shard = shard;
        let slot = &mut self.shards[shard as usize];
        slot.routed += 1;
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: slot.edge,
                depart: now,
                arrive: now + SHARD_HOP,
            },
        );
        scheduler.schedule_in(SHARD_HOP, Event::AtShard { req });
    }

    fn at_shard(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let (key, slot) = (entry.key, entry.shard as usize);
        let workers = self.workers();
        let limit = self.params.integer("queue_limit") as usize;
        let shard = &self.shards[slot];
        if shard.busy < workers && shard.queue.is_empty() {
            self.core.metrics.waited(SimDuration::ZERO);
            self.start(req, slot, now, scheduler);
        } else if shard.queue.len() >= limit {
            self.requests.remove(&req);
            self.core.requests.finish(key);
            self.core.metrics.rejected(now);
        } else {
            let node = shard.node;
            self.core
                .requests
                .move_to(key, Place::Queued { node, since: now });
            self.shards[slot].queue.push_back(req);
        }
    }

    fn start(&mut self, req: u32, slot: usize, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let (key, item) = (entry.key, entry.item as usize);
        let workers = self.workers();
        let mean = SimDuration::from_secs_f64(self.params.number("service_ms") / 1000.0);
        let mut duration = ServiceTime::LogNormal {
            mean,
            cv: SERVICE_CV,
        }
        .sample(&mut self.service_rng);
        if self.home[item] != slot as u8 {
            // The key moved here: fetch its data first.
            duration =
                duration + SimDuration::from_secs_f64(self.params.number("migration_ms") / 1000.0);
            self.home[item] = slot as u8;
            self.fetches += 1;
        }
        let shard = &mut self.shards[slot];
        shard.touch(now, workers);
        shard.busy += 1;
        let node = shard.node;
        self.core
            .requests
            .move_to(key, Place::InService { node, since: now });
        scheduler.schedule_in(duration, Event::Done { req });
    }

    fn done(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.remove(&req) else {
            return;
        };
        self.core.requests.finish(entry.key);
        self.core.metrics.completed(now, now - entry.born);
        let slot = entry.shard as usize;
        let workers = self.workers();
        self.shards[slot].touch(now, workers);
        self.shards[slot].busy -= 1;
        self.dispatch(slot, now, scheduler);
    }

    /// Hands free workers of `slot` to its queue; a drained shard turns off.
    fn dispatch(&mut self, slot: usize, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let workers = self.workers();
        while self.shards[slot].busy < workers {
            let Some(req) = self.shards[slot].queue.pop_front() else {
                break;
            };
            if let Some(entry) = self.requests.get(&req) {
                if let Place::Queued { since, .. } = self.core.requests.get(entry.key).place {
                    self.core.metrics.waited(now - since);
                }
            }
            self.start(req, slot, now, scheduler);
        }
        let shard = &self.shards[slot];
        if shard.state == NodeState::Draining && shard.busy == 0 && shard.queue.is_empty() {
            self.set_state(slot, NodeState::Off, now);
        }
    }

    /// Switches the router to `active`, counting the keys whose owner changed.
    fn resize(&mut self, active: Vec<u8>, now: SimTime) {
        let before = self.partitioner.active().len();
        let next = self.partitioner.with_shards(active, self.vnodes, self.salt);
        let keys = self.home.len() as u32;
        let moved = (0..keys)
            .filter(|&k| self.partitioner.owner(k) != next.owner(k))
            .count() as u64;
        self.last_resize = Some(Resize {
            moved,
            shards_before: before,
            shards_after: next.active().len(),
        });
        self.keyspace_spread = keyspace_spread(&next, keys);
        self.partitioner = next;
        self.resizes += 1;
        self.reset_window(now);
    }

    fn reset_window(&mut self, now: SimTime) {
        let workers = self.workers();
        self.window_start = now;
        for shard in &mut self.shards {
            shard.touch(now, workers);
            shard.busy_area = 0;
            shard.capacity_area = 0;
            shard.busy_at_tick = 0;
            shard.capacity_at_tick = 0;
            shard.routed = 0;
        }
    }

    fn add_shard(&mut self, now: SimTime) -> Result<(), CommandError> {
        let Some(slot) = self
            .shards
            .iter()
            .position(|shard| shard.state == NodeState::Off)
        else {
            return Err(CommandError::NotApplicable {
                reason: "no free slot: every drawn shard is running or still draining".into(),
            });
        };
        let mut active = self.partitioner.active().to_vec();
        active.push(slot as u8);
        active.sort_unstable();
        self.set_state(slot, NodeState::Healthy, now);
        self.core.log.push(
            now,
            Notable::NodeAdded {
                node: self.shards[slot].node,
            },
        );
        self.resize(active, now);
        Ok(())
    }

    fn remove_shard(
        &mut self,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        let active = self.partitioner.active();
        if active.len() <= 1 {
            return Err(CommandError::NotApplicable {
                reason: "only one shard is left".into(),
            });
        }
        let slot = *active.last().expect("at least two shards") as usize;
        let remaining = active[..active.len() - 1].to_vec();
        self.set_state(slot, NodeState::Draining, now);
        self.core.log.push(
            now,
            Notable::NodeRemoved {
                node: self.shards[slot].node,
            },
        );
        self.resize(remaining, now);
        // Its data leaves with it: keys homed there are fetched from the backing store.
        for home in &mut self.home {
            if *home == slot as u8 {
                *home = u8::MAX;
            }
        }
        self.dispatch(slot, now, scheduler);
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

    fn tick(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        scheduler.schedule_in(TICK, Event::Tick);
        let workers = self.workers();
        let mut hottest: f64 = 0.0;
        let mut longest = 0;
        for shard in &mut self.shards {
            shard.touch(now, workers);
            let busy = shard.busy_area - shard.busy_at_tick;
            let capacity = shard.capacity_area - shard.capacity_at_tick;
            if capacity > 0 {
                hottest = hottest.max(busy as f64 / capacity as f64);
            }
            shard.busy_at_tick = shard.busy_area;
            shard.capacity_at_tick = shard.capacity_area;
            longest = longest.max(shard.queue.len());
        }
        let fetched = self.fetches - self.fetches_at_tick;
        self.fetches_at_tick = self.fetches;
        let spread = libm::round(self.load_spread()) as i64;
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_fetches, now, fetched as i64);
        metrics.set_gauge(self.gauge_hottest, now, libm::round(100.0 * hottest) as i64);
        metrics.set_gauge(self.gauge_spread, now, spread);
        metrics.set_gauge(self.gauge_queue, now, longest as i64);
    }

    /// Requests routed to each active shard in the window.
    fn active_routed(&self) -> Vec<f64> {
        self.partitioner
            .active()
            .iter()
            .map(|&s| self.shards[s as usize].routed as f64)
            .collect()
    }

    fn load_spread(&self) -> f64 {
        spread_pct(&self.active_routed())
    }
}

/// Spread of the shards' shares of the key space, in percent: ring arcs for consistent
/// hashing, key counts for modulo.
pub fn keyspace_spread(partitioner: &Partitioner, keys: u32) -> f64 {
    match partitioner {
        Partitioner::Consistent { ring, active } => ring.ownership_spread(active),
        Partitioner::Modulo { active } => {
            let mut counts = [0.0; MAX_SHARDS];
            for k in 0..keys {
                counts[partitioner.owner(k) as usize] += 1.0;
            }
            let owned: Vec<f64> = active.iter().map(|&s| counts[s as usize]).collect();
            spread_pct(&owned)
        }
    }
}

impl Model for ShardingModel {
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
            Event::AtRouter { req } => self.at_router(req, now, scheduler),
            Event::AtShard { req } => self.at_shard(req, now, scheduler),
            Event::Done { req } => self.done(req, now, scheduler),
            Event::Tick => self.tick(now, scheduler),
            Event::ScheduledResize => {
                if self.add_shard(now).is_ok() {
                    self.core.log.push(
                        now,
                        Notable::Injected {
                            injection: "add-shard".into(),
                        },
                    );
                }
            }
        }
    }
}

impl LessonModel for ShardingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        snapshot.nodes.push(NodeView::plain(self.clients));
        snapshot.nodes.push(NodeView::plain(self.router));
        let workers = self.workers();
        for shard in &self.shards {
            snapshot.nodes.push(NodeView {
                state: shard.state,
                busy: shard.busy,
                capacity: if shard.state == NodeState::Off {
                    0
                } else {
                    workers
                },
                queued: shard.queue.len() as u32,
                ..NodeView::plain(shard.node)
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
        let keys = self.home.len() as f64;
        let resize = self.last_resize.unwrap_or_default();
        let ideal = resize.shards_before.max(resize.shards_after);
        let routed = self.active_routed();
        let total: f64 = routed.iter().sum();
        let hottest = routed.iter().copied().fold(0.0, f64::max);
        let active = self.partitioner.active();
        let utils = self.utilisations(now);
        let active_utils: Vec<f64> = active.iter().map(|&s| utils[s as usize]).collect();
        let keyspace = self.keyspace_spread;
        vec![
            figure(
                "keys_moved_pct",
                "Keys moved (last resize)",
                100.0 * resize.moved as f64 / keys,
                "%",
            ),
            figure(
                "ideal_moved_pct",
                "Fewest that had to move",
                if ideal > 0 { 100.0 / ideal as f64 } else { 0.0 },
                "%",
            ),
            figure(
                "keys_moved",
                "Keys moved (last resize)",
                resize.moved as f64,
                "",
            ),
            figure(
                "key_fetches",
                "Keys fetched after moving",
                self.fetches as f64,
                "",
            ),
            figure("shards", "Shards serving", active.len() as f64, ""),
            figure("resizes", "Resizes", f64::from(self.resizes), ""),
            figure(
                "window_s",
                "Load measured over (since last resize)",
                (now - self.window_start).as_secs_f64(),
                "s",
            ),
            figure(
                "keyspace_spread_pct",
                "Key-space spread (std dev / mean)",
                keyspace,
                "%",
            ),
            figure(
                "load_spread_pct",
                "Load spread (std dev / mean)",
                spread_pct(&routed),
                "%",
            ),
            figure(
                "hottest_shard_share",
                "Hottest shard's share",
                if total > 0.0 {
                    100.0 * hottest / total
                } else {
                    0.0
                },
                "%",
            ),
            figure(
                "max_util_pct",
                "Busiest shard utilisation",
                100.0 * active_utils.iter().copied().fold(0.0, f64::max),
                "%",
            ),
            figure(
                "min_util_pct",
                "Idlest shard utilisation",
                100.0 * active_utils.iter().copied().fold(f64::INFINITY, f64::min),
                "%",
            ),
            figure(
                "p99_ms",
                "p99 latency",
                1000.0 * self.core.metrics.latency().quantile_secs(0.99),
                "ms",
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
                    "add-shard" => self.add_shard(now)?,
                    "remove-shard" => self.remove_shard(now, scheduler)?,
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
                let workers_before = self.workers();
                if name == "workers" {
                    for shard in &mut self.shards {
                        shard.touch(now, workers_before);
                    }
                }
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
                    "workers" => {
                        for slot in 0..self.shards.len() {
                            self.dispatch(slot, now, scheduler);
                        }
                    }
                    _ => {} // read where they are used
                }
                Ok(())
            }
        }
    }
}
