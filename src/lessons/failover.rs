//! Lesson `failover`: DNS failover between two sites (two Availability Zones), active-passive
//! (Route 53 failover routing: a primary and a warm or cold standby) versus active-active
//! (any other routing policy, e.g. weighted or multivalue answers: every healthy site
//! serves). Kill the primary site and watch the chain a real failover goes through:
//! health checks fail `threshold` times in a row before the site is marked unhealthy,
//! DNS then answers the survivor, and clients keep using their cached answer until its
//! TTL expires. Run both values of `mode` on one seed to compare: the arrivals are
//! identical, so the difference is the pattern alone.
//!
//! Semantics and sources:
//! - Amazon Route 53 Developer Guide, "How Amazon Route 53 determines whether a health
//!   check is healthy": checkers probe an endpoint every 10 or 30 seconds (the request
//!   interval); the failure threshold (1–10) is the number of consecutive probes that
//!   must fail (or pass) before the status changes from healthy to unhealthy (or back).
//!   Route 53 runs many checkers in several places; this model runs one checker per site,
//!   so a status flip needs exactly `threshold` consecutive probes.
//! - Route 53 Developer Guide, "Active-active and active-passive failover" and "How
//!   Amazon Route 53 chooses records when health checking is configured": failover routing
//!   answers the primary while its health check is healthy and the secondary otherwise;
//!   other policies answer any healthy record; if no record is healthy Route 53 treats all
//!   as healthy (failover routing then answers the primary). Route 53 evaluates health
//!   periodically, not when the query arrives, so an answer reflects the last verdict.
//! - DNS caching (RFC 1035 TTL; Route 53 "Values that are common for all routing
//!   policies", TTL): a resolver keeps an answer for the record's TTL and only then asks
//!   again, so clients keep reaching the old site after the record changed.
//! - Amazon RDS User Guide, "Multi-AZ DB instance deployments": a synchronous standby in
//!   another AZ takes over when the primary fails; the endpoint's DNS name is repointed,
//!   which is why applications must re-resolve (short TTL) to follow it.
//! - AWS whitepaper "Disaster Recovery of Workloads on AWS": a warm standby runs and can
//!   take traffic at once; a cold (pilot-light style) standby must start its servers
//!   first, which adds start-up time to the recovery time.
//!
//! The model, in short (equations and definitions in docs/models/failover.md):
//! - Clients (`clients` of them) send Poisson requests at `load` req/s in total, each from
//!   a uniformly chosen client. A client with an unexpired cached answer sends straight
//!   to that site; otherwise it first asks DNS (a round trip), caches the answer for
//!   `dns_ttl` seconds and then sends. Caches start staggered: at time zero each client
//!   holds the initial answer with an expiry uniform in [0, TTL).
//! - Each site has `servers_per_site` servers with 4 request slots each; service time is
//!   log-normal (cv 0.5) with mean 4 / `server_capacity`, so a server serves about
//!   `server_capacity` req/s. A site queues up to `queue_limit` requests (FIFO) and sheds
//!   (rejects) beyond that. A request that reaches a dead site, or an up site with no
//!   healthy server, fails (connection refused / 503): these are the requests lost.
//! - One health checker probes each site every `check_interval` seconds (first probe at
//!   a random phase); a probe passes when the site is up with at least one healthy
//!   server. A cold standby starts its servers (`boot_time`) when the primary is marked
//!   unhealthy, and must then pass `threshold` probes before DNS answers it.
//! - RTO (`rto_s`) = time from the failure until the first instant at which DNS answers
//!   only live sites and no client holds an unexpired cached answer naming a dead site:
//!   from then on every client's next request reaches a serving site. While an outage
//!   is open the figure shows the time elapsed so far.
//!
//! Integer ticks, named random streams, no hash iteration: fully deterministic.

use std::collections::VecDeque;

use slab::Slab;

use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng};
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
    id: "failover",
    title: "Failover: active-passive vs active-active",
    group: LessonGroup::Resilience,
    summary: "Kill a site and watch health checks, DNS TTLs and standby start-up set the recovery time and the requests lost.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(600),
    build,
    compare: Some("mode"),
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "mode",
        label: "Failover mode",
        unit: "",
        help: "active-passive: Route 53 failover routing sends everyone to the primary and to the standby only when the primary's health check fails; active-active: DNS answers every healthy site and clients spread over both.",
        kind: ParamKind::Choice {
            options: &["active-passive", "active-active"],
            default: "active-passive",
        },
        liveness: Liveness::Restart,
    },
    number("load", "Load", "req/s", "Requests per second from all clients together.", (1.0, 200.0, 1.0, 30.0)),
    number("server_capacity", "Server capacity", "req/s", "Requests per second one server can serve (4 at a time).", (1.0, 100.0, 1.0, 20.0)),
    integer("servers_per_site", "Servers per site", "", "Servers in each Availability Zone.", (1, 4, 2)).restart(),
    ParamSpec {
        name: "check_interval",
        label: "Health-check interval",
        unit: "s",
        help: "How often the health checker probes each site (Route 53 offers 10 or 30 seconds). A change applies from the next probe.",
        kind: ParamKind::Choice {
            options: &["10", "30"],
            default: "10",
        },
        liveness: Liveness::Live,
    },
    integer("failure_threshold", "Failure threshold", "", "Consecutive failed (or passed) probes before a site's status changes (Route 53: 1 to 10).", (1, 10, 3)),
    number("dns_ttl", "DNS TTL", "s", "How long a client caches the DNS answer before asking again. Applies to answers given from now on.", (0.0, 300.0, 5.0, 60.0)),
    ParamSpec {
        name: "standby",
        label: "Standby (active-passive)",
        unit: "",
        help: "warm: the standby's servers run and can serve at once; cold: they are off and start (boot time) only when the primary is marked unhealthy. Ignored in active-active.",
        kind: ParamKind::Choice {
            options: &["warm", "cold"],
            default: "warm",
        },
        liveness: Liveness::Restart,
    },
    number("boot_time", "Server start-up time", "s", "Time a server needs to start (cold standby, or servers coming back after a restore).", (0.0, 600.0, 5.0, 120.0)),
    integer("clients", "Clients", "", "Client machines, each with its own DNS cache.", (10, 500, 100)).restart(),
    integer("queue_limit", "Queue limit per site", "", "Requests a site holds waiting; beyond it, new requests are shed (HTTP 503).", (10, 1000, 200)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "kill-primary",
        label: "Lose AZ-a (the primary site)",
        help: "The whole primary Availability Zone goes dark: its servers stop and requests there are lost.",
    },
    InjectionSpec {
        id: "restore-primary",
        label: "Restore AZ-a (fail back)",
        help: "AZ-a comes back; its servers start again and, once health checks pass, DNS may send traffic back.",
    },
    InjectionSpec {
        id: "kill-server",
        label: "Crash one server",
        help: "One healthy server dies (in AZ-a if it has one, else in AZ-b); the site keeps serving with less capacity.",
    },
];

/// Request slots per server.
pub const SLOTS: u32 = 4;
/// Client ↔ DNS, one way.
const LOOKUP_HOP: SimDuration = SimDuration::from_millis(30);
/// Client → site.
const SITE_HOP: SimDuration = SimDuration::from_millis(60);
/// Site load balancer → its queue.
const QUEUE_HOP: SimDuration = SimDuration::from_millis(10);
/// Site queue → server.
const SERVER_HOP: SimDuration = SimDuration::from_millis(15);
const SERVICE_CV: f64 = 0.5;

const PRIMARY: usize = 0;
const SECONDARY: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    ActivePassive,
    ActiveActive,
}

/// Events of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    /// A request's DNS query reaches the DNS service.
    AtDns {
        req: u32,
    },
    /// The DNS answer is back at the client, which now sends the request.
    Answered {
        req: u32,
    },
    /// A request reaches its site's load balancer.
    AtSite {
        req: u32,
    },
    /// A request reaches its site's queue.
    AtQueue {
        req: u32,
    },
    /// A server finishes a request (ignored if the server died since: `life` differs).
    Done {
        server: u16,
        life: u32,
        req: u32,
    },
    /// A health-check probe of a site.
    Probe {
        site: u8,
    },
    /// A starting server is ready.
    Booted {
        server: u16,
        life: u32,
    },
    /// The instant the open outage may be over (re-checked when it fires).
    RecoveryCheck,
}

#[derive(Clone, Copy, Debug)]
struct Server {
    node: NodeId,
    site: usize,
    edge: EdgeId,
    state: NodeState,
    life: u32,
    busy: u32,
}

#[derive(Clone, Debug)]
struct Site {
    node: NodeId,
    check_node: NodeId,
    /// Client → site edge.
    edge: EdgeId,
    /// The site's request queue, and the load balancer → queue edge.
    queue_node: NodeId,
    queue_edge: EdgeId,
    /// The Availability Zone itself has power and network.
    up: bool,
    queue: VecDeque<u32>,
    /// The health check's verdict (what DNS acts on).
    status_healthy: bool,
    /// Consecutive probes that disagree with the current verdict.
    streak: u32,
    /// When the site stopped being able to serve (for the detection time).
    dead_since: Option<SimTime>,
    /// The state last shown and logged for the site node.
    shown: NodeState,
    probe_phase: SimDuration,
}

/// One client's DNS cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientCache {
    /// Site index of the cached answer (0 = AZ-a, 1 = AZ-b).
    pub site: usize,
    /// The answer is used while `now < expires`.
    pub expires: SimTime,
}

#[derive(Clone, Copy, Debug)]
struct Req {
    key: RequestKey,
    born: SimTime,
    client: u32,
    site: usize,
    /// Server and its life while in service.
    server: Option<(u16, u32)>,
}

pub struct FailoverModel {
    params: ParamValues,
    mode: Mode,
    topology: Topology,
    clients_node: NodeId,
    dns_node: NodeId,
    served_node: NodeId,
    edge_lookup: EdgeId,
    edge_answer: EdgeId,
    sites: Vec<Site>,
    servers: Vec<Server>,
    clients: Vec<ClientCache>,
    reqs: Slab<Req>,
    /// Which sites DNS currently answers.
    answer: [bool; 2],
    outage_start: Option<SimTime>,
    recovery_at: Option<SimTime>,
    /// DNS has answered only live sites at some point of the open outage.
    switched: bool,
    last_rto: Option<f64>,
    last_detection: Option<f64>,
    last_switch: Option<f64>,
    requests_lost: u64,
    /// (time, client, site) of every arrival at a site, when recording (tests).
    trace: Option<Vec<(SimTime, u32, usize)>>,
    arrivals: ArrivalTimer<Event>,
    client_rng: SimRng,
    resolver_rng: SimRng,
    service_rng: SimRng,
    core: ModelCore,
    gauge_clients: [GaugeId; 2],
    gauge_waiting: [GaugeId; 2],
    gauge_serving: GaugeId,
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

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<FailoverModel> {
    let mode = if params.choice("mode") == "active-active" {
        Mode::ActiveActive
    } else {
        Mode::ActivePassive
    };
    let cold = mode == Mode::ActivePassive && params.choice("standby") == "cold";
    let per_site = params.integer("servers_per_site") as usize;
    let mut topology = Topology::default();
    let clients_node = topology.add_node("clients", "Clients", NodeKind::Source, 0.0, 0.5);
    let dns_node = topology.add_node("dns", "Route 53", NodeKind::Router, 0.12, 0.06);
    let edge_lookup = topology.add_edge(clients_node, dns_node);
    let edge_answer = topology.add_edge(dns_node, clients_node);
    let served_node = topology.add_node("served", "Served", NodeKind::Sink, 1.0, 0.5);
    let mut phase_rng = SimRng::new(seed.0, "probe-phase");
    let interval = interval_of(params);
    let mut sites = Vec::new();
    let mut servers = Vec::new();
    for (index, (key, label, check_key, check_label, y, check_y)) in [
        ("primary", "AZ-a", "check-primary", "Check AZ-a", 0.3, 0.0),
        (
            "secondary",
            "AZ-b",
            "check-secondary",
            "Check AZ-b",
            0.7,
            1.0,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let node = topology.add_node(key, label, NodeKind::Router, 0.27, y);
        let check_node = topology.add_node(check_key, check_label, NodeKind::Guard, 0.27, check_y);
        topology.add_edge(check_node, node);
        let edge = topology.add_edge(clients_node, node);
        let queue_node = topology.add_node(
            &format!("{key}-queue"),
            &format!("{label} queue"),
            NodeKind::Queue,
            0.51,
            y,
        );
        let queue_edge = topology.add_edge(node, queue_node);
        let letter = if index == 0 { 'a' } else { 'b' };
        // Servers of a site share a band of height 0.36 beside it, clear of the other
        // site's band (boxes are about 0.11 high).
        let band_top = if index == 0 { 0.06 } else { 0.58 };
        for s in 0..per_site {
            let sy = if per_site == 1 {
                y
            } else {
                band_top + 0.36 * s as f32 / (per_site - 1) as f32
            };
            let server_node = topology.add_node(
                &format!("{key}-{}", s + 1),
                &format!("Server {letter}{}", s + 1),
                NodeKind::Server,
                0.78,
                sy,
            );
            let server_edge = topology.add_edge(queue_node, server_node);
            topology.add_edge(server_node, served_node);
            let state = if index == SECONDARY && cold {
                NodeState::Off
            } else {
                NodeState::Healthy
            };
            servers.push(Server {
                node: server_node,
                site: index,
                edge: server_edge,
                state,
                life: 0,
                busy: 0,
            });
        }
        let probe_phase = SimDuration::from_ticks(phase_rng.below(interval.ticks()));
        sites.push(Site {
            node,
            check_node,
            edge,
            queue_node,
            queue_edge,
            up: true,
            queue: VecDeque::new(),
            status_healthy: true,
            streak: 0,
            dead_since: None,
            shown: NodeState::Healthy,
            probe_phase,
        });
    }
    let core = ModelCore::new(vec![
        "clients_using_az-a",
        "clients_using_az-b",
        "waiting_in_az-a",
        "waiting_in_az-b",
        "serving_servers",
    ]);
    let mut model = FailoverModel {
        params: params.clone(),
        mode,
        topology,
        clients_node,
        dns_node,
        served_node,
        edge_lookup,
        edge_answer,
        sites,
        servers,
        clients: Vec::new(),
        reqs: Slab::new(),
        answer: [false; 2],
        outage_start: None,
        recovery_at: None,
        switched: false,
        last_rto: None,
        last_detection: None,
        last_switch: None,
        requests_lost: 0,
        trace: None,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                TrafficShape::Steady {
                    rate: params.number("load"),
                },
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        client_rng: SimRng::new(seed.0, "client-pick"),
        resolver_rng: SimRng::new(seed.0, "resolver"),
        service_rng: SimRng::new(seed.0, "service"),
        gauge_clients: [
            core.gauge("clients_using_az-a"),
            core.gauge("clients_using_az-b"),
        ],
        gauge_waiting: [core.gauge("waiting_in_az-a"), core.gauge("waiting_in_az-b")],
        gauge_serving: core.gauge("serving_servers"),
        core,
    };
    // The health checks start from the truth; the site nodes show their real state.
    for site in 0..2 {
        let live = model.live(site);
        model.sites[site].status_healthy = live;
        model.sites[site].shown = model.site_state(site);
    }
    model.answer = model.dns_answer();
    // Clients have been running for a while: caches hold the current answer and expire
    // at staggered times within one TTL.
    let mut cache_rng = SimRng::new(seed.0, "dns-cache");
    let ttl = params.number("dns_ttl");
    let client_count = params.integer("clients") as usize;
    for _ in 0..client_count {
        let site = model.pick_from_answer();
        let expires = SimTime::ZERO + SimDuration::from_secs_f64(ttl * cache_rng.uniform01());
        model.clients.push(ClientCache { site, expires });
    }
    let mut scheduler = Scheduler::new();
    model.update_client_gauges(SimTime::ZERO);
    model.update_serving_gauge(SimTime::ZERO);
    model.arrivals.rearm(&mut scheduler);
    for site in 0..2 {
        scheduler.schedule_in(
            model.sites[site].probe_phase,
            Event::Probe { site: site as u8 },
        );
    }
    Simulation::new(model, scheduler)
}

impl FailoverModel {
    /// Can the site serve right now (up, with at least one healthy server)?
    fn live(&self, site: usize) -> bool {
        self.sites[site].up
            && self
                .servers
                .iter()
                .any(|s| s.site == site && s.state == NodeState::Healthy)
    }

    /// What the site node shows.
    fn site_state(&self, site: usize) -> NodeState {
        if !self.sites[site].up {
            return NodeState::Down;
        }
        let states = self
            .servers
            .iter()
            .filter(|s| s.site == site)
            .map(|s| s.state);
        let mut any_starting = false;
        let mut all_off = true;
        for state in states {
            match state {
                NodeState::Healthy => return NodeState::Healthy,
                NodeState::Starting => {
                    any_starting = true;
                    all_off = false;
                }
                NodeState::Off => {}
                _ => all_off = false,
            }
        }
        if any_starting {
            NodeState::Starting
        } else if all_off {
            NodeState::Off
        } else {
            NodeState::Unhealthy
        }
    }

    /// The sites DNS answers now, from the health checks' verdicts (not the truth).
    fn dns_answer(&self) -> [bool; 2] {
        let healthy = [self.sites[0].status_healthy, self.sites[1].status_healthy];
        match self.mode {
            Mode::ActivePassive => {
                if healthy[PRIMARY] {
                    [true, false]
                } else if healthy[SECONDARY] {
                    [false, true]
                } else {
                    // No healthy record: Route 53 treats all as healthy, so failover
                    // routing answers the primary.
                    [true, false]
                }
            }
            Mode::ActiveActive => {
                if healthy[0] || healthy[1] {
                    healthy
                } else {
                    [true, true]
                }
            }
        }
    }

    /// One site from the current answer (uniformly when it holds both).
    fn pick_from_answer(&mut self) -> usize {
        match self.answer {
            [true, true] => self.resolver_rng.below(2) as usize,
            [false, true] => SECONDARY,
            _ => PRIMARY,
        }
    }

    fn client_cache(&self, client: u32, now: SimTime) -> Option<usize> {
        let cache = self.clients[client as usize];
        (now < cache.expires).then_some(cache.site)
    }

    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let client = self.client_rng.below(self.clients.len() as u64) as u32;
        let cached = self.client_cache(client, now);
        let place = match cached {
            Some(site) => Place::OnEdge {
                edge: self.sites[site].edge,
                depart: now,
                arrive: now + SITE_HOP,
            },
            None => Place::OnEdge {
                edge: self.edge_lookup,
                depart: now,
                arrive: now + LOOKUP_HOP,
            },
        };
        let key = self.core.requests.spawn(now, place);
        let req = self.reqs.insert(Req {
            key,
            born: now,
            client,
            site: cached.unwrap_or(PRIMARY),
            server: None,
        }) as u32;
        match cached {
            Some(_) => scheduler.schedule_in(SITE_HOP, Event::AtSite { req }),
            None => scheduler.schedule_in(LOOKUP_HOP, Event::AtDns { req }),
        }
    }

    /// The DNS service answers the query with the current record set; the client caches
    /// the answer for the TTL.
    fn at_dns(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let site = self.pick_from_answer();
        let ttl = SimDuration::from_secs_f64(self.params.number("dns_ttl"));
        let entry = &mut self.reqs[req as usize];
        entry.site = site;
        let (client, key) = (entry.client, entry.key);
        self.clients[client as usize] = ClientCache {
            site,
            expires: now + LOOKUP_HOP + ttl,
        };
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge: self.edge_answer,
                depart: now,
                arrive: now + LOOKUP_HOP,
            },
        );
        scheduler.schedule_in(LOOKUP_HOP, Event::Answered { req });
        self.update_client_gauges(now);
    }

    fn answered(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.sites[entry.site].edge,
                depart: now,
                arrive: now + SITE_HOP,
            },
        );
        scheduler.schedule_in(SITE_HOP, Event::AtSite { req });
    }

    fn at_site(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        if let Some(trace) = self.trace.as_mut() {
            trace.push((now, entry.client, entry.site));
        }
        if !self.live(entry.site) {
            // Nobody answers: the AZ is dark, or its load balancer has no healthy target.
            self.lose(req, now);
            return;
        }
        self.core.requests.move_to(
            entry.key,
            Place::OnEdge {
                edge: self.sites[entry.site].queue_edge,
                depart: now,
                arrive: now + QUEUE_HOP,
            },
        );
        scheduler.schedule_in(QUEUE_HOP, Event::AtQueue { req });
    }

    /// The site queues the request, or sheds it when the queue is full.
    fn at_queue(&mut self, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let entry = self.reqs[req as usize];
        if !self.live(entry.site) {
            // The site died while the request was being handed to its queue.
            self.lose(req, now);
            return;
        }
        let site = &mut self.sites[entry.site];
        if site.queue.len() >= self.params.integer("queue_limit") as usize {
            let entry = self.reqs.remove(req as usize);
            self.core.requests.finish(entry.key);
            self.core.metrics.rejected(now);
            return;
        }
        site.queue.push_back(req);
        let node = site.queue_node;
        self.core
            .requests
            .move_to(entry.key, Place::Queued { node, since: now });
        self.dispatch(entry.site, scheduler);
        self.update_waiting_gauge(entry.site, now);
    }

    /// A request that reached a site unable to serve it, or died with its server.
    fn lose(&mut self, req: u32, now: SimTime) {
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        self.core.metrics.failed(now);
        self.requests_lost += 1;
    }

    /// Hands waiting requests to free slots of the site's healthy servers, least busy
    /// first (lowest index on ties).
    fn dispatch(&mut self, site: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        loop {
            let Some(server) = self
                .servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.site == site && s.state == NodeState::Healthy && s.busy < SLOTS)
                .min_by_key(|(index, s)| (s.busy, *index))
                .map(|(index, _)| index)
            else {
                return;
            };
            let Some(req) = self.sites[site].queue.pop_front() else {
                return;
            };
            let key = self.reqs[req as usize].key;
            if let Place::Queued { since, .. } = self.core.requests.get(key).place {
                self.core.metrics.waited(now - since);
            }
            let mean = SLOTS as f64 / self.params.number("server_capacity");
            let service = ServiceTime::LogNormal {
                mean: SimDuration::from_secs_f64(mean),
                cv: SERVICE_CV,
            }
            .sample(&mut self.service_rng);
            let s = &mut self.servers[server];
            s.busy += 1;
            let life = s.life;
            self.reqs[req as usize].server = Some((server as u16, life));
            self.core.requests.move_to(
                key,
                Place::OnEdge {
                    edge: s.edge,
                    depart: now,
                    arrive: now + SERVER_HOP,
                },
            );
            scheduler.schedule_in(
                SERVER_HOP + service,
                Event::Done {
                    server: server as u16,
                    life,
                    req,
                },
            );
        }
    }

    fn done(&mut self, server: u16, life: u32, req: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let s = &mut self.servers[server as usize];
        if s.life != life {
            return; // the server died; its requests were already counted as lost
        }
        s.busy -= 1;
        let site = s.site;
        let entry = self.reqs.remove(req as usize);
        self.core.requests.finish(entry.key);
        self.core.metrics.completed(now, now - entry.born);
        self.dispatch(site, scheduler);
        self.update_waiting_gauge(site, now);
    }

    /// Stops a server: its requests in service are lost.
    fn stop_server(&mut self, server: usize, now: SimTime) {
        let s = &mut self.servers[server];
        s.state = NodeState::Down;
        s.life += 1;
        s.busy = 0;
        let node = s.node;
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Down,
            },
        );
        let victims: Vec<u32> = self
            .reqs
            .iter()
            .filter(|(_, r)| r.server.is_some_and(|(index, _)| index as usize == server))
            .map(|(index, _)| index as u32)
            .collect();
        for req in victims {
            self.lose(req, now);
        }
    }

    fn start_server(&mut self, server: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let s = &mut self.servers[server];
        s.state = NodeState::Starting;
        s.life += 1;
        s.busy = 0;
        let (node, life) = (s.node, s.life);
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Starting,
            },
        );
        let boot = SimDuration::from_secs_f64(self.params.number("boot_time"));
        scheduler.schedule_in(
            boot,
            Event::Booted {
                server: server as u16,
                life,
            },
        );
    }

    fn booted(&mut self, server: u16, life: u32, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let s = &mut self.servers[server as usize];
        if s.life != life || s.state != NodeState::Starting {
            return;
        }
        s.state = NodeState::Healthy;
        let (node, site) = (s.node, s.site);
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Healthy,
            },
        );
        self.dispatch(site, scheduler);
        self.liveness_changed(scheduler);
    }

    /// Fails what waits at a site that can no longer serve it.
    fn flush_dead_queue(&mut self, site: usize, now: SimTime) {
        if self.live(site) {
            return;
        }
        while let Some(req) = self.sites[site].queue.pop_front() {
            self.lose(req, now);
        }
        self.update_waiting_gauge(site, now);
    }

    /// After any change of what can serve: site nodes' shown state, dead-site bookkeeping,
    /// the outage episode and its recovery.
    fn liveness_changed(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        for site in 0..2 {
            self.flush_dead_queue(site, now);
            let state = self.site_state(site);
            if state != self.sites[site].shown {
                self.sites[site].shown = state;
                let node = self.sites[site].node;
                self.core
                    .log
                    .push(now, Notable::StateChanged { node, to: state });
            }
            let live = self.live(site);
            let entry = &mut self.sites[site];
            if live {
                entry.dead_since = None;
            } else if entry.dead_since.is_none() {
                entry.dead_since = Some(now);
            }
        }
        if self.outage_start.is_none() && self.affected(now) {
            self.outage_start = Some(now);
            self.recovery_at = None;
            self.switched = false;
        }
        self.update_serving_gauge(now);
        self.plan_recovery(scheduler);
    }

    /// Does DNS answer a dead site, or does any client hold a valid answer naming one?
    fn affected(&self, now: SimTime) -> bool {
        let live = [self.live(0), self.live(1)];
        (0..2).any(|site| self.answer[site] && !live[site])
            || self
                .clients
                .iter()
                .any(|cache| now < cache.expires && !live[cache.site])
    }

    /// While an outage is open and DNS answers only live sites, the outage ends when the
    /// last cached answer naming a dead site expires: schedule a check then.
    fn plan_recovery(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(start) = self.outage_start else {
            return;
        };
        let live = [self.live(0), self.live(1)];
        if (0..2).any(|site| self.answer[site] && !live[site]) {
            self.recovery_at = None;
            return;
        }
        if !self.switched {
            // The first instant of this outage at which DNS answers only live sites.
            self.switched = true;
            self.last_switch = Some((now - start).as_secs_f64());
        }
        let last_stale = self
            .clients
            .iter()
            .filter(|cache| !live[cache.site])
            .map(|cache| cache.expires)
            .max()
            .unwrap_or(now)
            .max(now);
        if last_stale == now {
            self.close_outage(now);
        } else if self.recovery_at != Some(last_stale) {
            self.recovery_at = Some(last_stale);
            scheduler.schedule_in(last_stale - now, Event::RecoveryCheck);
        }
    }

    fn close_outage(&mut self, now: SimTime) {
        if let Some(start) = self.outage_start.take() {
            self.last_rto = Some((now - start).as_secs_f64());
            self.recovery_at = None;
        }
    }

    fn recovery_check(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if self.outage_start.is_some() && self.recovery_at == Some(now) && !self.affected(now) {
            self.close_outage(now);
        }
    }

    fn probe(&mut self, site: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(interval_of(&self.params), Event::Probe { site: site as u8 });
        let passed = self.live(site);
        let threshold = self.params.integer("failure_threshold") as u32;
        let entry = &mut self.sites[site];
        if passed == entry.status_healthy {
            entry.streak = 0;
            return;
        }
        entry.streak += 1;
        if entry.streak < threshold {
            return;
        }
        entry.streak = 0;
        entry.status_healthy = passed;
        let check_node = entry.check_node;
        let dead_since = entry.dead_since;
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: check_node,
                to: if passed {
                    NodeState::Healthy
                } else {
                    NodeState::Unhealthy
                },
            },
        );
        if !passed {
            if let Some(since) = dead_since {
                self.last_detection = Some((now - since).as_secs_f64());
            }
            // A cold standby is started when the primary is declared unhealthy (an alarm
            // on the health check triggers the standby's scaling).
            if site == PRIMARY && self.mode == Mode::ActivePassive {
                for server in 0..self.servers.len() {
                    if self.servers[server].site == SECONDARY
                        && self.servers[server].state == NodeState::Off
                    {
                        self.start_server(server, scheduler);
                    }
                }
                self.liveness_changed(scheduler);
            }
        }
        self.dns_changed(scheduler);
    }

    /// Recomputes the DNS answer; logs sites added to or removed from it.
    fn dns_changed(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let answer = self.dns_answer();
        for (site, (&new, &old)) in answer.iter().zip(&self.answer).enumerate() {
            if new != old {
                let node = self.sites[site].node;
                self.core.log.push(
                    now,
                    if new {
                        Notable::NodeAdded { node }
                    } else {
                        Notable::NodeRemoved { node }
                    },
                );
            }
        }
        if answer != self.answer {
            self.answer = answer;
            self.plan_recovery(scheduler);
        }
    }

    fn kill_primary(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        if !self.sites[PRIMARY].up {
            return Err(CommandError::NotApplicable {
                reason: "AZ-a is already down".into(),
            });
        }
        self.sites[PRIMARY].up = false;
        for server in 0..self.servers.len() {
            if self.servers[server].site == PRIMARY
                && matches!(
                    self.servers[server].state,
                    NodeState::Healthy | NodeState::Starting
                )
            {
                self.stop_server(server, now);
            }
        }
        self.liveness_changed(scheduler);
        Ok(())
    }

    fn restore_primary(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let down: Vec<usize> = (0..self.servers.len())
            .filter(|&s| {
                self.servers[s].site == PRIMARY && self.servers[s].state == NodeState::Down
            })
            .collect();
        if self.sites[PRIMARY].up && down.is_empty() {
            return Err(CommandError::NotApplicable {
                reason: "AZ-a is up and none of its servers is down".into(),
            });
        }
        self.sites[PRIMARY].up = true;
        for server in down {
            self.start_server(server, scheduler);
        }
        self.liveness_changed(scheduler);
        Ok(())
    }

    fn kill_server(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let victim = [PRIMARY, SECONDARY]
            .into_iter()
            .find_map(|site| {
                self.servers
                    .iter()
                    .position(|s| s.site == site && s.state == NodeState::Healthy)
            })
            .ok_or_else(|| CommandError::NotApplicable {
                reason: "no server is running to crash".into(),
            })?;
        let site = self.servers[victim].site;
        self.stop_server(victim, now);
        // The site's queue now has fewer slots to go to (or none).
        self.dispatch(site, scheduler);
        self.liveness_changed(scheduler);
        Ok(())
    }

    fn update_client_gauges(&mut self, now: SimTime) {
        let on_a = self.clients.iter().filter(|c| c.site == PRIMARY).count() as i64;
        let total = self.clients.len() as i64;
        self.core
            .metrics
            .set_gauge(self.gauge_clients[0], now, on_a);
        self.core
            .metrics
            .set_gauge(self.gauge_clients[1], now, total - on_a);
    }

    fn update_waiting_gauge(&mut self, site: usize, now: SimTime) {
        let waiting = self.sites[site].queue.len() as i64;
        self.core
            .metrics
            .set_gauge(self.gauge_waiting[site], now, waiting);
    }

    fn update_serving_gauge(&mut self, now: SimTime) {
        let serving = (0..self.servers.len())
            .filter(|&s| {
                self.servers[s].state == NodeState::Healthy && self.sites[self.servers[s].site].up
            })
            .count() as i64;
        self.core
            .metrics
            .set_gauge(self.gauge_serving, now, serving);
    }

    /// Clients whose unexpired cached answer names a site that cannot serve.
    fn stale_clients(&self, now: SimTime) -> usize {
        let live = [self.live(0), self.live(1)];
        self.clients
            .iter()
            .filter(|cache| now < cache.expires && !live[cache.site])
            .count()
    }

    /// Capacity of the sites DNS answers that can serve, in req/s.
    fn answered_capacity(&self) -> f64 {
        let per_server = self.params.number("server_capacity");
        self.servers
            .iter()
            .filter(|s| {
                self.answer[s.site] && self.sites[s.site].up && s.state == NodeState::Healthy
            })
            .count() as f64
            * per_server
    }

    // Inspection for tests and the model note (not used by the view).

    /// Each client's DNS cache.
    pub fn client_caches(&self) -> &[ClientCache] {
        &self.clients
    }

    /// Starts (or stops) recording every arrival at a site as (time, client, site).
    pub fn record_arrivals(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// Arrivals recorded since [`FailoverModel::record_arrivals`].
    pub fn arrivals_at_sites(&self) -> &[(SimTime, u32, usize)] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// Time of the first health-check probe of `site` (0 = AZ-a); later probes follow
    /// every interval.
    pub fn probe_phase(&self, site: usize) -> SimDuration {
        self.sites[site].probe_phase
    }

    /// Which sites DNS answers now (0 = AZ-a, 1 = AZ-b).
    pub fn dns_answers(&self) -> [bool; 2] {
        self.answer
    }
}

impl Model for FailoverModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::AtDns { req } => self.at_dns(req, scheduler),
            Event::Answered { req } => self.answered(req, scheduler),
            Event::AtSite { req } => self.at_site(req, scheduler),
            Event::AtQueue { req } => self.at_queue(req, scheduler),
            Event::Done { server, life, req } => self.done(server, life, req, scheduler),
            Event::Probe { site } => self.probe(site as usize, scheduler),
            Event::Booted { server, life } => self.booted(server, life, scheduler),
            Event::RecoveryCheck => self.recovery_check(scheduler),
        }
    }
}

impl LessonModel for FailoverModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        let plain = NodeView::plain;
        snapshot.nodes.push(plain(self.clients_node));
        snapshot.nodes.push(plain(self.dns_node));
        snapshot.nodes.push(plain(self.served_node));
        let threshold = self.params.integer("failure_threshold") as u32;
        for site in &self.sites {
            snapshot.nodes.push(NodeView {
                state: site.shown,
                ..plain(site.node)
            });
            snapshot.nodes.push(NodeView {
                state: site.shown,
                queued: site.queue.len() as u32,
                ..plain(site.queue_node)
            });
            // The check shows its verdict and, while probes disagree with it, their
            // streak against the threshold: "healthy · 2/3" = two failed probes of the
            // three that flip it.
            let counting = site.streak > 0;
            snapshot.nodes.push(NodeView {
                node: site.check_node,
                state: if site.status_healthy {
                    NodeState::Healthy
                } else {
                    NodeState::Unhealthy
                },
                busy: site.streak,
                capacity: if counting { threshold } else { 0 },
                queued: 0,
            });
        }
        for server in &self.servers {
            snapshot.nodes.push(NodeView {
                node: server.node,
                state: server.state,
                busy: server.busy,
                capacity: if server.state == NodeState::Healthy {
                    SLOTS
                } else {
                    0
                },
                queued: 0,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, now: SimTime) -> Vec<Figure> {
        let rto = match (self.outage_start, self.last_rto) {
            (Some(start), _) => (now - start).as_secs_f64(),
            (None, Some(rto)) => rto,
            (None, None) => 0.0,
        };
        let capacity = self.answered_capacity();
        let load = self.params.number("load");
        vec![
            Figure {
                key: "rto_s",
                label: "RTO: failure → every client reaches a live site",
                value: rto,
                unit: "s",
            },
            Figure {
                key: "detection_s",
                label: "Detection: failure → marked unhealthy",
                value: self.last_detection.unwrap_or(0.0),
                unit: "s",
            },
            Figure {
                key: "dns_switch_s",
                label: "Failure → DNS answers only live sites",
                value: self.last_switch.unwrap_or(0.0),
                unit: "s",
            },
            Figure {
                key: "requests_lost",
                label: "Requests lost (dead site)",
                value: self.requests_lost as f64,
                unit: "",
            },
            Figure {
                key: "stale_clients",
                label: "Clients cached on a dead site",
                value: self.stale_clients(now) as f64,
                unit: "",
            },
            Figure {
                key: "load_ratio",
                label: "Load ÷ capacity DNS sends to",
                value: if capacity > 0.0 { load / capacity } else { 0.0 },
                unit: "",
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
                    "kill-primary" => self.kill_primary(scheduler)?,
                    "restore-primary" => self.restore_primary(scheduler)?,
                    "kill-server" => self.kill_server(scheduler)?,
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
                    "load" => {
                        self.arrivals.arrivals.set_shape(TrafficShape::Steady {
                            rate: self.params.number("load"),
                        });
                        self.arrivals.rearm(scheduler);
                    }
                    "queue_limit" => {
                        // A lower limit sheds what no longer fits, newest first.
                        let limit = self.params.integer("queue_limit") as usize;
                        for site in 0..2 {
                            while self.sites[site].queue.len() > limit {
                                let req = self.sites[site].queue.pop_back().expect("non-empty");
                                let entry = self.reqs.remove(req as usize);
                                self.core.requests.finish(entry.key);
                                self.core.metrics.rejected(now);
                            }
                            self.update_waiting_gauge(site, now);
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
        }
    }
}
