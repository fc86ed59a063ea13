//! Lesson `cdn`: users in four regions fetch objects from one origin in us-east-1, either
//! directly (`edge=off`) or through an edge cache in their own region (`edge=on`, a CDN
//! such as Amazon CloudFront). The lesson measures what the edge buys: origin load and
//! offload, hit ratio, latency per region, and what it costs: stale responses while a
//! cached copy is still fresh by its TTL but the origin already has a newer version.
//! Compare `edge` on one seed: the arrivals, regions and objects come from the same named
//! streams, so the difference is the edge alone.
//!
//! Semantics and sources:
//! - Amazon CloudFront Developer Guide, "How CloudFront delivers content": a viewer's
//!   request goes to the nearest edge location; if the object is in that edge's cache it
//!   is returned at once, otherwise the edge forwards the request to the origin, returns
//!   the response and caches it. Each edge caches on its own (objects are not shared
//!   between edges here; "Origin Shield", an optional extra caching layer in front of the
//!   origin, would share them and is not modelled).
//! - CloudFront Developer Guide, "Manage how long content stays in the cache
//!   (expiration)": an object is served from the edge until its TTL (from the origin's
//!   `Cache-Control: max-age`, or the cache policy's default TTL, 24 hours) passes; the
//!   next request then goes to the origin, which answers `304 Not Modified` if the cached
//!   version is still current (the copy is refreshed without a body) or `200 OK` with the
//!   new version. Rarely requested objects may be evicted before they expire: each edge
//!   here is an LRU cache of `cache_size` objects ([`CacheStore`] from the caching lesson).
//! - CloudFront Developer Guide, "Simultaneous requests for the same object (request
//!   collapsing)": while a request for an object is on its way to the origin, further
//!   requests for it at the same edge wait for that response instead of going to the
//!   origin too (`coalesce`; always on in CloudFront, a toggle here to see its effect).
//! - CloudFront Developer Guide, "Invalidate files": an invalidation removes objects from
//!   every edge cache before they expire, so the next request for each goes to the origin.
//!   Here `invalidate` removes every cached object (path `/*`) at once; real invalidations
//!   take seconds to minutes to reach every edge.
//! - CloudFront Developer Guide, "How CloudFront processes HTTP 4xx and 5xx status codes
//!   from your origin" / "Origin unavailable": when the origin fails or does not answer and
//!   the edge still holds an expired copy, CloudFront serves that copy. RFC 5861
//!   `stale-if-error` is the standard directive for this (`serve_stale_on_error`).
//! - RFC 9111, HTTP Caching, §4.2: a stored response is fresh while its age is below its
//!   freshness lifetime (`max-age`); a stale one must be validated (a conditional request,
//!   §4.3) before it is reused. A fresh copy is served without asking the origin, even if
//!   the origin has changed the resource: that is the staleness the TTL bounds.
//!
//! The model, in short (equations and figures in docs/models/cdn.md):
//! - Users send Poisson requests at `request_rate` in total; each request comes from a
//!   region drawn by [`REGIONS`]' shares and names an object drawn from Zipf(`zipf_s`)
//!   over `object_count` objects (Breslau et al., INFOCOM 1999, as in the caching lesson).
//! - Network: a region's users are `edge_rtt_ms` (10–18 ms) from their edge and
//!   `origin_rtt_ms` (20–170 ms) from the origin; an edge is on the users' way, so an edge
//!   to origin round trip is the difference. Tokens take half a round trip per direction,
//!   so a miss costs about the same as going to the origin directly, and a hit only the
//!   short edge round trip. One round trip per request (connections are kept open).
//! - The origin has `origin_servers` servers, each serving one request at a time
//!   (log-normal, mean `origin_time`, cv 0.5); requests queue FIFO and a request that has
//!   waited [`ORIGIN_WAIT_TIMEOUT`] is refused (503). Conditional requests cost the same
//!   origin work as full ones but carry no body when the answer is 304.
//! - The origin updates objects as a Poisson process at `update_rate` (objects drawn from
//!   the same Zipf law: popular content changes most). A response served from an edge
//!   cache is **stale** if the origin holds a newer version at that instant.
//! - Injections: `invalidate`, `origin-down` (every origin request fails at once: the
//!   connection is refused), `restore`, and `viral-object` (a new object takes
//!   `viral_share` of all requests for [`VIRAL_DURATION`]).
//!
//! Integer ticks, named random streams, ordered maps only: fully deterministic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::sim::histogram::{LatencyHistogram, PRECISE};
use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng, Zipf};
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation, TimerHandle};
use crate::sim::snapshot::{Figure, NodeState, NodeView, Notable, Snapshot};
use crate::sim::time::{SimDuration, SimTime};
use crate::sim::topology::{EdgeId, NodeId, NodeKind, Topology};
use crate::sim::traffic::{PoissonArrivals, TrafficShape};

use super::caching::CacheStore;
use super::core::{ArrivalTimer, ModelCore};
use super::params::number;
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "cdn",
    title: "CDN and edge caching",
    group: LessonGroup::Data,
    summary: "Users on four continents, one origin in us-east-1: edge caches cut origin load and far regions' latency, at the price of content that stays stale until its TTL or an invalidation.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(300),
    build,
    compare: Some("edge"),
    sweep: None,
    breaker_node: None,
};

/// One user region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Region {
    /// Short key used in node keys and figure names (`ap` → `latency_p50_ap_ms`).
    pub key: &'static str,
    pub name: &'static str,
    /// Share of all requests.
    pub share: f64,
    /// Round trip from these users to the origin in us-east-1.
    pub origin_rtt_ms: u64,
    /// Round trip from these users to their nearest edge location.
    pub edge_rtt_ms: u64,
}

/// The regions: North America next to the origin, Europe, Asia-Pacific, South America.
/// Round trips are typical public figures for us-east-1 (Virginia) to each continent.
pub const REGIONS: [Region; 4] = [
    Region {
        key: "na",
        name: "N. America",
        share: 0.4,
        origin_rtt_ms: 20,
        edge_rtt_ms: 10,
    },
    Region {
        key: "eu",
        name: "Europe",
        share: 0.3,
        origin_rtt_ms: 90,
        edge_rtt_ms: 12,
    },
    Region {
        key: "ap",
        name: "Asia-Pacific",
        share: 0.2,
        origin_rtt_ms: 170,
        edge_rtt_ms: 15,
    },
    Region {
        key: "sa",
        name: "S. America",
        share: 0.1,
        origin_rtt_ms: 130,
        edge_rtt_ms: 18,
    },
];

/// Index of Asia-Pacific in [`REGIONS`], the far region the comparison shows first.
const AP: usize = 2;

const NODE_KEYS: [(&str, &str); 4] = [
    ("users-na", "edge-na"),
    ("users-eu", "edge-eu"),
    ("users-ap", "edge-ap"),
    ("users-sa", "edge-sa"),
];

/// `edge` values; the first is the default.
pub const EDGE_MODES: &[&str] = &["on", "off"];

/// A request waiting this long for an origin server is refused (503).
pub const ORIGIN_WAIT_TIMEOUT: SimDuration = SimDuration::from_secs(2);
/// How long a viral object keeps its share of the traffic.
pub const VIRAL_DURATION: SimDuration = SimDuration::from_secs(60);
/// Gauges are refreshed every second.
const TICK: SimDuration = SimDuration::from_secs(1);
const ORIGIN_CV: f64 = 0.5;

const fn toggle(
    name: &'static str,
    label: &'static str,
    help: &'static str,
    default: bool,
) -> ParamSpec {
    ParamSpec {
        name,
        label,
        unit: "",
        help,
        kind: ParamKind::Toggle { default },
        liveness: Liveness::Live,
    }
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "edge",
        label: "Edge caches (CDN)",
        unit: "",
        help: "on: each region's users go to an edge location near them that caches objects; off: every request crosses the ocean to the origin.",
        kind: ParamKind::Choice {
            options: EDGE_MODES,
            default: "on",
        },
        liveness: Liveness::Restart,
    },
    number("request_rate", "Requests", "req/s", "Requests per second from all users together (40% N. America, 30% Europe, 20% Asia-Pacific, 10% S. America).", (10.0, 1000.0, 10.0, 150.0)),
    ParamSpec {
        name: "object_count",
        label: "Objects",
        unit: "",
        help: "Number of distinct objects (pages, images, files) the origin serves.",
        kind: ParamKind::Integer {
            min: 100,
            max: 20_000,
            default: 2000,
        },
        liveness: Liveness::Restart,
    },
    number("zipf_s", "Skew (Zipf s)", "", "How concentrated the traffic is: the object of rank k is requested in proportion to 1/k^s. 0 = uniform; about 0.6 to 1 for web traffic.", (0.0, 2.0, 0.05, 0.9)),
    ParamSpec {
        name: "cache_size",
        label: "Edge cache size",
        unit: "objects",
        help: "How many objects each edge location holds; beyond that it evicts the least recently used.",
        kind: ParamKind::Integer {
            min: 0,
            max: 20_000,
            default: 500,
        },
        liveness: Liveness::Live,
    },
    number("ttl", "TTL (max-age)", "s", "Cache-Control: max-age: how long an edge serves its copy without asking the origin. CloudFront's default TTL is 24 hours.", (0.0, 3600.0, 1.0, 60.0)),
    number("update_rate", "Content updates", "/s", "How many objects per second the origin changes (popular objects change most).", (0.0, 50.0, 0.1, 0.5)),
    toggle("coalesce", "Collapse simultaneous misses", "While one request for an object is on its way to the origin, other requests for it at the same edge wait for its answer (CloudFront always does this).", true),
    toggle("serve_stale_on_error", "Serve stale on origin error", "When the origin fails, an edge that still holds an expired copy serves it instead of an error (stale-if-error).", true),
    ParamSpec {
        name: "origin_servers",
        label: "Origin servers",
        unit: "",
        help: "Requests the origin can serve at once.",
        kind: ParamKind::Integer {
            min: 1,
            max: 64,
            default: 4,
        },
        liveness: Liveness::Live,
    },
    number("origin_time", "Origin time", "ms", "Mean time an origin server spends on one request (a full or a conditional one).", (1.0, 500.0, 1.0, 20.0)),
    number("viral_share", "Viral share", "", "Share of all requests that go to the new object during a viral burst (60 s).", (0.05, 0.9, 0.05, 0.3)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "invalidate",
        label: "Invalidate /*",
        help: "A CloudFront invalidation of every path: all edges drop their cached objects now, so the next request for each goes to the origin.",
    },
    InjectionSpec {
        id: "origin-down",
        label: "Origin down",
        help: "The origin stops answering: every request that reaches it fails. Edges keep serving what they hold.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore origin",
        help: "The origin is back and serves requests again.",
    },
    InjectionSpec {
        id: "viral-object",
        label: "Viral object",
        help: "A brand-new object suddenly gets viral-share of all requests for 60 s: at first no edge has it.",
    },
];

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    Update,
    ViralEnd {
        burst: u32,
    },
    Tick,
    /// A user's request reached its edge.
    AtEdge {
        req: u32,
    },
    /// A request (a user's, or an edge's fetch) reached the origin.
    AtOrigin {
        req: u32,
    },
    OriginDone {
        req: u32,
        life: u32,
    },
    OriginTimeout {
        req: u32,
    },
    /// The origin's answer (or its failure) is back at the edge.
    FetchBack {
        req: u32,
        ok: bool,
    },
    /// The response reached the user: the request completes.
    Reply {
        req: u32,
    },
}

struct Req {
    key: RequestKey,
    born: SimTime,
    region: usize,
    item: u32,
    /// The version this request will return to the user.
    version: u32,
    /// Conditional fetch: the version the edge holds (If-None-Match).
    validating: Option<u32>,
    /// The edge cache generation the fetch started in (an invalidation bumps it).
    generation: u32,
    /// Waiting at its edge for another request's fetch.
    parked: bool,
    timer: Option<TimerHandle>,
    waiters: Vec<u32>,
}

struct EdgeCache {
    node: NodeId,
    store: CacheStore,
    /// Objects with a fetch on its way to the origin → the leading request.
    fetching: BTreeMap<u32, u32>,
    generation: u32,
}

/// What the run counted (whole run; the tick keeps a copy for per-second gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counts {
    requests: u64,
    edge_lookups: u64,
    hits: u64,
    collapsed: u64,
    origin_requests: u64,
    origin_bodies: u64,
    not_modified: u64,
    stale: u64,
    stale_if_error: u64,
    delivered: u64,
    viral_origin: u64,
    region_latency_ms: [f64; 4],
    region_done: [u64; 4],
}

pub struct CdnModel {
    params: ParamValues,
    edge_on: bool,
    topology: Topology,
    users: [NodeId; 4],
    origin_queue_node: NodeId,
    origin_node: NodeId,
    e_user_out: [EdgeId; 4],
    e_user_back: [EdgeId; 4],
    e_edge_out: [EdgeId; 4],
    e_edge_back: [EdgeId; 4],
    edges: Vec<EdgeCache>,
    origin_version: Vec<u32>,
    origin_up: bool,
    /// Bumped when the origin goes down: answers of the previous life are void.
    origin_life: u32,
    origin_queue: VecDeque<u32>,
    in_service: BTreeSet<u32>,
    requests: BTreeMap<u32, Req>,
    next_req: u32,
    zipf: Zipf,
    viral_item: u32,
    viral_active: bool,
    viral_burst: u32,
    arrivals: ArrivalTimer<Event>,
    updates: ArrivalTimer<Event>,
    region_rng: SimRng,
    object_rng: SimRng,
    update_rng: SimRng,
    viral_rng: SimRng,
    origin_rng: SimRng,
    latency: [LatencyHistogram; 4],
    counts: Counts,
    window: Counts,
    peak_origin_rps: u64,
    core: ModelCore,
    gauge_origin: GaugeId,
    gauge_hit: GaugeId,
    gauge_waiting: GaugeId,
    gauge_stale: GaugeId,
    gauge_latency: [GaugeId; 4],
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

fn steady(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

fn zipf_for(params: &ParamValues) -> Zipf {
    Zipf::new(
        params.integer("object_count") as u64,
        params.number("zipf_s"),
    )
    .expect("object_count ≥ 100 and zipf_s in [0, 2] are valid")
}

/// Half of a round trip of `rtt_ms` milliseconds (one direction), in ticks.
fn half_trip(rtt_ms: u64) -> SimDuration {
    SimDuration::from_ticks(SimDuration::from_millis(rtt_ms).ticks() / 2)
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<CdnModel> {
    let edge_on = params.choice("edge") == "on";
    let items = params.integer("object_count") as usize;
    let capacity = params.integer("cache_size") as usize;
    let mut topology = Topology::default();
    let rows = [0.04f32, 0.35, 0.65, 0.96];
    let mut users = [NodeId(0); 4];
    let mut edge_nodes = [NodeId(0); 4];
    for (r, region) in REGIONS.iter().enumerate() {
        users[r] = topology.add_node(
            NODE_KEYS[r].0,
            &format!("Users {}", region.name),
            NodeKind::Source,
            // Far enough from the left edge for the centred label ("Users Asia-Pacific").
            0.07,
            rows[r],
        );
        if edge_on {
            edge_nodes[r] = topology.add_node(
                NODE_KEYS[r].1,
                &format!("Edge {}", region.name),
                NodeKind::Store,
                0.4,
                rows[r],
            );
        }
    }
    let origin_queue_node = topology.add_node(
        "origin-queue",
        "Waiting at origin",
        NodeKind::Queue,
        0.8,
        0.8,
    );
    let origin_node = topology.add_node("origin", "Origin us-east-1", NodeKind::Server, 0.93, 0.3);
    topology.add_edge(origin_queue_node, origin_node);
    let mut e_user_out = [EdgeId(0); 4];
    let mut e_user_back = [EdgeId(0); 4];
    let mut e_edge_out = [EdgeId(0); 4];
    let mut e_edge_back = [EdgeId(0); 4];
    for r in 0..REGIONS.len() {
        if edge_on {
            e_user_out[r] = topology.add_edge(users[r], edge_nodes[r]);
            e_user_back[r] = topology.add_edge(edge_nodes[r], users[r]);
            e_edge_out[r] = topology.add_edge(edge_nodes[r], origin_queue_node);
            e_edge_back[r] = topology.add_edge(origin_node, edge_nodes[r]);
        } else {
            e_user_out[r] = topology.add_edge(users[r], origin_queue_node);
            e_user_back[r] = topology.add_edge(origin_node, users[r]);
        }
    }
    let edges = if edge_on {
        edge_nodes
            .iter()
            .map(|&node| EdgeCache {
                node,
                // One extra slot for the viral object.
                store: CacheStore::new(items + 1, capacity),
                fetching: BTreeMap::new(),
                generation: 0,
            })
            .collect()
    } else {
        Vec::new()
    };
    let core = ModelCore::new(vec![
        "origin_requests_per_second",
        "edge_hit_ratio_percent",
        "waiting_at_origin",
        "stale_responses_per_second",
        "latency_na_ms",
        "latency_eu_ms",
        "latency_ap_ms",
        "latency_sa_ms",
    ]);
    let mut model = CdnModel {
        edge_on,
        topology,
        users,
        origin_queue_node,
        origin_node,
        e_user_out,
        e_user_back,
        e_edge_out,
        e_edge_back,
        edges,
        origin_version: vec![0; items + 1],
        origin_up: true,
        origin_life: 0,
        origin_queue: VecDeque::new(),
        in_service: BTreeSet::new(),
        requests: BTreeMap::new(),
        next_req: 0,
        zipf: zipf_for(params),
        viral_item: items as u32,
        viral_active: false,
        viral_burst: 0,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number("request_rate")),
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        updates: ArrivalTimer::new(
            PoissonArrivals::new(
                steady(params.number("update_rate")),
                SimRng::new(seed.0, "update-times"),
            ),
            Event::Update,
        ),
        region_rng: SimRng::new(seed.0, "regions"),
        object_rng: SimRng::new(seed.0, "objects"),
        update_rng: SimRng::new(seed.0, "updated-objects"),
        viral_rng: SimRng::new(seed.0, "viral"),
        origin_rng: SimRng::new(seed.0, "origin-service"),
        latency: std::array::from_fn(|_| LatencyHistogram::new(PRECISE)),
        counts: Counts::default(),
        window: Counts::default(),
        peak_origin_rps: 0,
        gauge_origin: core.gauge("origin_requests_per_second"),
        gauge_hit: core.gauge("edge_hit_ratio_percent"),
        gauge_waiting: core.gauge("waiting_at_origin"),
        gauge_stale: core.gauge("stale_responses_per_second"),
        gauge_latency: [
            core.gauge("latency_na_ms"),
            core.gauge("latency_eu_ms"),
            core.gauge("latency_ap_ms"),
            core.gauge("latency_sa_ms"),
        ],
        core,
        params: params.clone(),
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    model.updates.rearm(&mut scheduler);
    scheduler.schedule_in(TICK, Event::Tick);
    Simulation::new(model, scheduler)
}

/// One-way trip between a region's users and their edge.
fn user_edge_hop(region: usize) -> SimDuration {
    half_trip(REGIONS[region].edge_rtt_ms)
}

/// One-way trip between a region's edge and the origin.
fn edge_origin_hop(region: usize) -> SimDuration {
    half_trip(REGIONS[region].origin_rtt_ms - REGIONS[region].edge_rtt_ms)
}

/// One-way trip between a region's users and the origin (no edge).
fn user_origin_hop(region: usize) -> SimDuration {
    half_trip(REGIONS[region].origin_rtt_ms)
}

impl CdnModel {
    pub fn edge_on(&self) -> bool {
        self.edge_on
    }

    pub fn origin_up(&self) -> bool {
        self.origin_up
    }

    /// The object a viral burst sends traffic to (one past the regular objects).
    pub fn viral_item(&self) -> u32 {
        self.viral_item
    }

    /// The origin's current version of `item`.
    pub fn origin_version(&self, item: u32) -> u32 {
        self.origin_version[item as usize]
    }

    /// Objects cached at each edge (empty without edges).
    pub fn cached_per_edge(&self) -> Vec<usize> {
        self.edges.iter().map(|edge| edge.store.len()).collect()
    }

    /// The edge cache of region `region`, if edges are on.
    pub fn edge_cache(&self, region: usize) -> Option<&CacheStore> {
        self.edges.get(region).map(|edge| &edge.store)
    }

    /// Requests the origin has received so far (full and conditional).
    pub fn origin_requests(&self) -> u64 {
        self.counts.origin_requests
    }

    /// Responses served from an edge while the origin had a newer version.
    pub fn stale_responses(&self) -> u64 {
        self.counts.stale
    }

    /// Expired copies served because the origin failed.
    pub fn stale_if_error_responses(&self) -> u64 {
        self.counts.stale_if_error
    }

    /// Requests answered from an edge cache without asking the origin.
    pub fn hits(&self) -> u64 {
        self.counts.hits
    }

    fn ttl(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("ttl"))
    }

    fn servers(&self) -> u32 {
        self.params.integer("origin_servers") as u32
    }

    fn travel(
        &mut self,
        req: u32,
        edge: EdgeId,
        hop: SimDuration,
        event: Event,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) {
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
        scheduler.schedule_in(hop, event);
    }

    fn pick_region(&mut self) -> usize {
        let mut u = self.region_rng.uniform01();
        for (r, region) in REGIONS.iter().enumerate() {
            if u < region.share {
                return r;
            }
            u -= region.share;
        }
        REGIONS.len() - 1
    }

    fn arrive(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        self.core.metrics.generated(now);
        self.counts.requests += 1;
        let region = self.pick_region();
        let mut item = self.zipf.sample(&mut self.object_rng) as u32;
        if self.viral_active && self.viral_rng.chance(self.params.number("viral_share")) {
            item = self.viral_item;
        }
        let (hop, event_edge) = if self.edge_on {
            (user_edge_hop(region), self.e_user_out[region])
        } else {
            (user_origin_hop(region), self.e_user_out[region])
        };
        let key = self.core.requests.spawn(
            now,
            Place::OnEdge {
                edge: event_edge,
                depart: now,
                arrive: now + hop,
            },
        );
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        self.requests.insert(
            req,
            Req {
                key,
                born: now,
                region,
                item,
                version: 0,
                validating: None,
                generation: 0,
                parked: false,
                timer: None,
                waiters: Vec::new(),
            },
        );
        let event = if self.edge_on {
            Event::AtEdge { req }
        } else {
            Event::AtOrigin { req }
        };
        scheduler.schedule_in(hop, event);
    }

    fn at_edge(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        let (region, item) = (entry.region, entry.item);
        self.counts.edge_lookups += 1;
        let cached = self.edges[region].store.peek(item).copied();
        if let Some(copy) = cached {
            if now < copy.expires {
                self.edges[region].store.lookup(item, now);
                self.counts.hits += 1;
                if copy.version < self.origin_version[item as usize] {
                    self.counts.stale += 1;
                }
                self.respond(req, copy.version, now, scheduler);
                return;
            }
        }
        if self.params.toggle("coalesce") {
            let leader = self.edges[region].fetching.get(&item).copied();
            if let Some(leading) = leader.and_then(|leader| self.requests.get_mut(&leader)) {
                leading.waiters.push(req);
                self.counts.collapsed += 1;
                let node = self.edges[region].node;
                if let Some(entry) = self.requests.get_mut(&req) {
                    entry.parked = true;
                    self.core
                        .requests
                        .move_to(entry.key, Place::Queued { node, since: now });
                }
                return;
            }
        }
        // Miss (or expired): fetch from the origin, conditionally if a copy is held.
        let edge = &mut self.edges[region];
        edge.fetching.insert(item, req);
        let generation = edge.generation;
        if let Some(entry) = self.requests.get_mut(&req) {
            entry.validating = cached.map(|copy| copy.version);
            entry.generation = generation;
        }
        let (link, hop) = (self.e_edge_out[region], edge_origin_hop(region));
        self.travel(req, link, hop, Event::AtOrigin { req }, now, scheduler);
    }

    /// Sends `req`'s response (version `version`) from its edge back to its user.
    fn respond(&mut self, req: u32, version: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        entry.version = version;
        entry.parked = false;
        let region = entry.region;
        self.counts.delivered += 1;
        let (link, hop) = (self.e_user_back[region], user_edge_hop(region));
        self.travel(req, link, hop, Event::Reply { req }, now, scheduler);
    }

    fn at_origin(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        if !self.origin_up {
            // Connection refused.
            self.origin_failed(req, now, scheduler);
            return;
        }
        self.counts.origin_requests += 1;
        if entry.item == self.viral_item {
            self.counts.viral_origin += 1;
        }
        let key = entry.key;
        if (self.in_service.len() as u32) < self.servers() && self.origin_queue.is_empty() {
            self.core.metrics.waited(SimDuration::ZERO);
            self.start_service(req, now, scheduler);
        } else {
            self.core.requests.move_to(
                key,
                Place::Queued {
                    node: self.origin_queue_node,
                    since: now,
                },
            );
            let timer =
                scheduler.schedule_timer_in(ORIGIN_WAIT_TIMEOUT, Event::OriginTimeout { req });
            if let Some(entry) = self.requests.get_mut(&req) {
                entry.timer = Some(timer);
            }
            self.origin_queue.push_back(req);
        }
    }

    fn start_service(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        if let Some(timer) = entry.timer.take() {
            scheduler.cancel(timer);
        }
        let node = self.origin_node;
        self.core
            .requests
            .move_to(entry.key, Place::InService { node, since: now });
        self.in_service.insert(req);
        let mean = SimDuration::from_secs_f64(self.params.number("origin_time") / 1000.0);
        let duration = ServiceTime::LogNormal {
            mean,
            cv: ORIGIN_CV,
        }
        .sample(&mut self.origin_rng);
        scheduler.schedule_in(
            duration,
            Event::OriginDone {
                req,
                life: self.origin_life,
            },
        );
    }

    fn dispatch(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        while (self.in_service.len() as u32) < self.servers() {
            let Some(req) = self.origin_queue.pop_front() else {
                break;
            };
            let Some(entry) = self.requests.get(&req) else {
                continue;
            };
            if let Place::Queued { since, .. } = self.core.requests.get(entry.key).place {
                self.core.metrics.waited(now - since);
            }
            self.start_service(req, now, scheduler);
        }
    }

    fn origin_done(&mut self, req: u32, life: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        if life != self.origin_life || !self.in_service.remove(&req) {
            return;
        }
        self.dispatch(now, scheduler);
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        let current = self.origin_version[entry.item as usize];
        if entry.validating != Some(current) {
            self.counts.origin_bodies += 1;
        } else {
            self.counts.not_modified += 1;
        }
        entry.version = current;
        let region = entry.region;
        if self.edge_on {
            let (link, hop) = (self.e_edge_back[region], edge_origin_hop(region));
            self.travel(
                req,
                link,
                hop,
                Event::FetchBack { req, ok: true },
                now,
                scheduler,
            );
        } else {
            self.counts.delivered += 1;
            let (link, hop) = (self.e_user_back[region], user_origin_hop(region));
            self.travel(req, link, hop, Event::Reply { req }, now, scheduler);
        }
    }

    fn origin_timeout(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(position) = self.origin_queue.iter().position(|&queued| queued == req) else {
            return;
        };
        self.origin_queue.remove(position);
        if let Some(entry) = self.requests.get_mut(&req) {
            entry.timer = None;
        }
        self.origin_failed(req, now, scheduler);
    }

    /// The origin refused or dropped `req`: without an edge the user gets the error;
    /// with one, the error travels back to the edge, which may serve a stale copy.
    fn origin_failed(&mut self, req: u32, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get(&req) else {
            return;
        };
        if self.edge_on {
            let region = entry.region;
            let (link, hop) = (self.e_edge_back[region], edge_origin_hop(region));
            self.travel(
                req,
                link,
                hop,
                Event::FetchBack { req, ok: false },
                now,
                scheduler,
            );
        } else {
            self.fail(req, now, scheduler);
        }
    }

    fn fetch_back(&mut self, req: u32, ok: bool, now: SimTime, scheduler: &mut Scheduler<Event>) {
        let Some(entry) = self.requests.get_mut(&req) else {
            return;
        };
        let (region, item, version, generation) =
            (entry.region, entry.item, entry.version, entry.generation);
        let waiters = std::mem::take(&mut entry.waiters);
        let ttl = self.ttl();
        let stale_on_error = self.params.toggle("serve_stale_on_error");
        let edge = &mut self.edges[region];
        if edge.fetching.get(&item) == Some(&req) {
            edge.fetching.remove(&item);
        }
        let answer = if ok {
            // Store (or refresh) the copy unless an invalidation happened meanwhile.
            if generation == edge.generation {
                let current = edge.store.peek(item).map(|copy| copy.version);
                if current.is_none_or(|held| held <= version) {
                    edge.store
                        .put(item, version, now + ttl, false, &mut Vec::new());
                }
            }
            Some(version)
        } else if stale_on_error {
            edge.store.peek(item).map(|copy| copy.version)
        } else {
            None
        };
        for waiting in std::iter::once(req).chain(waiters) {
            match answer {
                Some(version) => {
                    if !ok {
                        self.counts.stale_if_error += 1;
                    }
                    self.respond(waiting, version, now, scheduler);
                }
                None => self.fail(waiting, now, scheduler),
            }
        }
    }

    fn complete(&mut self, req: u32, now: SimTime) {
        let Some(entry) = self.requests.remove(&req) else {
            return;
        };
        self.core.requests.finish(entry.key);
        let latency = now - entry.born;
        self.core.metrics.completed(now, latency);
        self.latency[entry.region].record(latency);
        self.counts.region_latency_ms[entry.region] += latency.as_secs_f64() * 1000.0;
        self.counts.region_done[entry.region] += 1;
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
        for waiter in entry.waiters {
            self.fail(waiter, now, scheduler);
        }
    }

    fn update(&mut self) {
        let item = self.zipf.sample(&mut self.update_rng) as usize;
        self.origin_version[item] += 1;
    }

    fn tick(&mut self, now: SimTime, scheduler: &mut Scheduler<Event>) {
        scheduler.schedule_in(TICK, Event::Tick);
        let (c, w) = (self.counts, self.window);
        let lookups = c.edge_lookups - w.edge_lookups;
        if lookups > 0 {
            let pct = 100.0 * (c.hits - w.hits) as f64 / lookups as f64;
            self.core
                .metrics
                .set_gauge(self.gauge_hit, now, libm::round(pct) as i64);
        }
        let origin = c.origin_requests - w.origin_requests;
        self.peak_origin_rps = self.peak_origin_rps.max(origin);
        self.core
            .metrics
            .set_gauge(self.gauge_origin, now, origin as i64);
        self.core
            .metrics
            .set_gauge(self.gauge_stale, now, (c.stale - w.stale) as i64);
        self.core
            .metrics
            .set_gauge(self.gauge_waiting, now, self.origin_queue.len() as i64);
        for r in 0..REGIONS.len() {
            let done = c.region_done[r] - w.region_done[r];
            if done > 0 {
                let mean = (c.region_latency_ms[r] - w.region_latency_ms[r]) / done as f64;
                self.core
                    .metrics
                    .set_gauge(self.gauge_latency[r], now, libm::round(mean) as i64);
            }
        }
        self.window = c;
    }

    fn set_origin_state(&mut self, up: bool, now: SimTime) {
        self.origin_up = up;
        let to = if up {
            NodeState::Healthy
        } else {
            NodeState::Down
        };
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: self.origin_node,
                to,
            },
        );
    }

    fn origin_down(
        &mut self,
        now: SimTime,
        scheduler: &mut Scheduler<Event>,
    ) -> Result<(), CommandError> {
        if !self.origin_up {
            return Err(CommandError::NotApplicable {
                reason: "the origin is already down; restore it first".into(),
            });
        }
        self.set_origin_state(false, now);
        self.origin_life += 1;
        // Everything the origin held fails: queued and in service, oldest first.
        let mut held: Vec<u32> = self.origin_queue.drain(..).collect();
        held.extend(std::mem::take(&mut self.in_service));
        for req in held {
            if let Some(entry) = self.requests.get_mut(&req) {
                if let Some(timer) = entry.timer.take() {
                    scheduler.cancel(timer);
                }
            }
            self.origin_failed(req, now, scheduler);
        }
        Ok(())
    }

    fn invalidate(&mut self) -> Result<(), CommandError> {
        if !self.edge_on {
            return Err(CommandError::NotApplicable {
                reason: "there are no edge caches to invalidate (edge is off)".into(),
            });
        }
        if self.edges.iter().all(|edge| edge.store.is_empty()) {
            return Err(CommandError::NotApplicable {
                reason: "no edge holds any object yet: nothing to invalidate".into(),
            });
        }
        for edge in &mut self.edges {
            edge.store.clear();
            edge.generation += 1;
        }
        Ok(())
    }

    fn start_viral(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        if self.viral_active {
            return Err(CommandError::NotApplicable {
                reason: "a viral object is already drawing traffic".into(),
            });
        }
        self.viral_active = true;
        self.viral_burst += 1;
        // A brand-new object: a new version no edge holds.
        let item = self.viral_item;
        self.origin_version[item as usize] += 1;
        for edge in &mut self.edges {
            edge.store.remove(item);
        }
        scheduler.schedule_in(
            VIRAL_DURATION,
            Event::ViralEnd {
                burst: self.viral_burst,
            },
        );
        Ok(())
    }

    fn elapsed_secs(now: SimTime) -> f64 {
        now.as_secs_f64().max(1e-9)
    }
}

impl Model for CdnModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(now, scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::Update => {
                self.updates.fired();
                self.update();
                self.updates.rearm(scheduler);
            }
            Event::ViralEnd { burst } => {
                if burst == self.viral_burst {
                    self.viral_active = false;
                }
            }
            Event::Tick => self.tick(now, scheduler),
            Event::AtEdge { req } => self.at_edge(req, now, scheduler),
            Event::AtOrigin { req } => self.at_origin(req, now, scheduler),
            Event::OriginDone { req, life } => self.origin_done(req, life, now, scheduler),
            Event::OriginTimeout { req } => self.origin_timeout(req, now, scheduler),
            Event::FetchBack { req, ok } => self.fetch_back(req, ok, now, scheduler),
            Event::Reply { req } => self.complete(req, now),
        }
    }
}

impl LessonModel for CdnModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        for &node in &self.users {
            snapshot.nodes.push(NodeView::plain(node));
        }
        for (r, edge) in self.edges.iter().enumerate() {
            let parked = self
                .requests
                .values()
                .filter(|entry| entry.parked && entry.region == r)
                .count() as u32;
            snapshot.nodes.push(NodeView {
                queued: parked,
                ..NodeView::plain(edge.node)
            });
        }
        snapshot.nodes.push(NodeView {
            queued: self.origin_queue.len() as u32,
            ..NodeView::plain(self.origin_queue_node)
        });
        snapshot.nodes.push(NodeView {
            state: if self.origin_up {
                NodeState::Healthy
            } else {
                NodeState::Down
            },
            busy: self.in_service.len() as u32,
            capacity: self.servers(),
            ..NodeView::plain(self.origin_node)
        });
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let c = &self.counts;
        let ratio = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
        // Share of `total` the origin did not have to serve, in percent.
        let offload = |origin: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                100.0 * (1.0 - origin as f64 / total as f64).max(0.0)
            }
        };
        let figure = |key, label, value, unit| Figure {
            key,
            label,
            value,
            unit,
        };
        let mut figures = vec![
            figure(
                "origin_rps",
                "Origin load",
                ratio(c.origin_requests as f64, Self::elapsed_secs(now)),
                "req/s",
            ),
            figure(
                "hit_ratio",
                "Edge hit ratio",
                100.0 * ratio(c.hits as f64, c.edge_lookups as f64),
                "%",
            ),
            // The side-by-side view shows the first four figures: the far region's median.
            figure(
                "latency_p50_ap_ms",
                "p50 Asia-Pacific",
                1000.0 * self.latency[AP].quantile_secs(0.5),
                "ms",
            ),
            figure(
                "origin_offload_pct",
                "Origin offload",
                offload(c.origin_requests, c.requests),
                "%",
            ),
            figure(
                "bytes_offload_pct",
                "Bytes not sent by the origin",
                offload(c.origin_bodies, c.delivered),
                "%",
            ),
            figure(
                "peak_origin_rps",
                "Peak origin load (1 s)",
                self.peak_origin_rps as f64,
                "req/s",
            ),
        ];
        const P50: [&str; 4] = [
            "latency_p50_na_ms",
            "latency_p50_eu_ms",
            "latency_p50_ap_ms",
            "latency_p50_sa_ms",
        ];
        const P99: [&str; 4] = [
            "latency_p99_na_ms",
            "latency_p99_eu_ms",
            "latency_p99_ap_ms",
            "latency_p99_sa_ms",
        ];
        const P50_LABELS: [&str; 4] = [
            "p50 N. America",
            "p50 Europe",
            "p50 Asia-Pacific",
            "p50 S. America",
        ];
        const P99_LABELS: [&str; 4] = [
            "p99 N. America",
            "p99 Europe",
            "p99 Asia-Pacific",
            "p99 S. America",
        ];
        for r in (0..REGIONS.len()).filter(|&r| r != AP) {
            figures.push(figure(
                P50[r],
                P50_LABELS[r],
                1000.0 * self.latency[r].quantile_secs(0.5),
                "ms",
            ));
        }
        for r in 0..REGIONS.len() {
            figures.push(figure(
                P99[r],
                P99_LABELS[r],
                1000.0 * self.latency[r].quantile_secs(0.99),
                "ms",
            ));
        }
        figures.extend([
            figure("stale_responses", "Stale responses", c.stale as f64, ""),
            figure(
                "stale_pct",
                "Stale share of responses",
                100.0 * ratio(c.stale as f64, c.delivered as f64),
                "%",
            ),
            figure(
                "not_modified",
                "Revalidated (304)",
                c.not_modified as f64,
                "",
            ),
            figure("collapsed", "Collapsed misses", c.collapsed as f64, ""),
            figure(
                "stale_if_error",
                "Served stale on error",
                c.stale_if_error as f64,
                "",
            ),
            figure(
                "viral_origin_fetches",
                "Viral object origin requests",
                c.viral_origin as f64,
                "",
            ),
            figure(
                "cached_objects",
                "Objects cached (all edges)",
                self.edges
                    .iter()
                    .map(|edge| edge.store.len())
                    .sum::<usize>() as f64,
                "",
            ),
        ]);
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
                    "invalidate" => self.invalidate()?,
                    "origin-down" => self.origin_down(now, scheduler)?,
                    "restore" => {
                        if self.origin_up {
                            return Err(CommandError::NotApplicable {
                                reason: "the origin is up".into(),
                            });
                        }
                        self.set_origin_state(true, now);
                    }
                    "viral-object" => self.start_viral(scheduler)?,
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
                    "update_rate" => {
                        let rate = self.params.number("update_rate");
                        self.updates.arrivals.set_shape(steady(rate));
                        self.updates.rearm(scheduler);
                    }
                    "zipf_s" => self.zipf = zipf_for(&self.params),
                    "cache_size" => {
                        let size = self.params.integer("cache_size") as usize;
                        for edge in &mut self.edges {
                            edge.store.set_capacity(size, &mut Vec::new());
                        }
                    }
                    "origin_servers" => self.dispatch(now, scheduler),
                    _ => {} // read where they are used
                }
                Ok(())
            }
        }
    }
}
