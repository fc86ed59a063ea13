//! Lesson `queueing-basics`: why queues explode near 100% utilisation. An M/M/c-style
//! queue (Poisson arrivals, one FIFO line, `c` identical servers) whose mean wait the
//! learner measures against Erlang C, and the engine's validation model.
//!
//! Model (see docs/models/queueing-basics.md): arrivals are a Poisson process of rate λ;
//! each server works on one request at a time for a service time with mean 1/μ drawn
//! from the chosen distribution (exponential = M/M/c, deterministic = M/D/c, log-normal
//! with a coefficient of variation = M/G/c). An arriving request takes the free server
//! with the lowest index, otherwise joins the back of the line; a line already holding
//! `queue_capacity` requests rejects it. Expected results: Erlang C for M/M/c and
//! Pollaczek–Khinchine for M/G/1 (`crate::sim::queueing_theory`), Little's law L = λW.

use std::collections::VecDeque;

use crate::sim::metrics::GaugeId;
use crate::sim::random::{ServiceTime, SimRng};
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation};
use crate::sim::snapshot::{NodeState, NodeView, Notable, Snapshot};
use crate::sim::time::{SimDuration, SimTime};
use crate::sim::topology::{NodeId, NodeKind, Topology};
use crate::sim::traffic::{PoissonArrivals, TrafficShape};

use super::core::{ArrivalTimer, ModelCore};
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

/// The catalog entry.
pub const SPEC: LessonSpec = LessonSpec {
    id: "queueing-basics",
    title: "Queueing basics: utilisation and waiting",
    group: LessonGroup::Foundations,
    summary: "Why waits explode as servers approach 100% busy, and Little's law.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(3600),
    build,
    compare: None,
    sweep: None,
    breaker_node: None,
};

const SERVICE_DISTRIBUTIONS: &[&str] = &["exponential", "deterministic", "lognormal"];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "arrival_rate",
        label: "Arrival rate",
        unit: "req/s",
        help: "Average number of requests arriving per second (a Poisson process).",
        kind: ParamKind::Number {
            min: 0.01,
            max: 1000.0,
            step: 0.01,
            default: 0.9,
        },
        liveness: Liveness::Live,
    },
    ParamSpec {
        name: "service_rate",
        label: "Service rate per server",
        unit: "req/s",
        help: "How many requests one server finishes per second on average (1 / mean service time).",
        kind: ParamKind::Number {
            min: 0.01,
            max: 1000.0,
            step: 0.01,
            default: 1.0,
        },
        liveness: Liveness::Live,
    },
    ParamSpec {
        name: "servers",
        label: "Servers",
        unit: "",
        help: "Identical servers taking requests from one shared line.",
        kind: ParamKind::Integer {
            min: 1,
            max: 64,
            default: 1,
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "service_distribution",
        label: "Service time distribution",
        unit: "",
        help: "Exponential (M/M/c), deterministic (M/D/c: every request takes exactly the mean) or log-normal (M/G/c, spread set by the coefficient of variation).",
        kind: ParamKind::Choice {
            options: SERVICE_DISTRIBUTIONS,
            default: "exponential",
        },
        liveness: Liveness::Live,
    },
    ParamSpec {
        name: "service_cv",
        label: "Service time variability (CV)",
        unit: "",
        help: "Coefficient of variation of log-normal service times: standard deviation / mean.",
        kind: ParamKind::Number {
            min: 0.0,
            max: 4.0,
            step: 0.1,
            default: 1.0,
        },
        liveness: Liveness::Live,
    },
    ParamSpec {
        name: "queue_capacity",
        label: "Queue capacity",
        unit: "requests",
        help: "Longest line allowed; requests arriving to a full line are rejected.",
        kind: ParamKind::Integer {
            min: 1,
            max: 1_000_000,
            default: 100_000,
        },
        liveness: Liveness::Live,
    },
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "burst",
        label: "Burst of 25 requests",
        help: "25 extra requests arrive at the same instant.",
    },
    InjectionSpec {
        id: "lose-server",
        label: "Lose a server",
        help: "One working server finishes its current request and goes down.",
    },
    InjectionSpec {
        id: "restore-server",
        label: "Restore a server",
        help: "One server that is down comes back.",
    },
];

const BURST_SIZE: u32 = 25;

/// Events of the queueing model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Arrival,
    ServiceDone { server: u16 },
}

#[derive(Clone, Copy, Debug)]
struct Server {
    node: NodeId,
    state: NodeState,
    current: Option<RequestKey>,
}

/// The queueing model's state.
pub struct QueueingModel {
    /// The parameters in force (live changes update them).
    params: ParamValues,
    topology: Topology,
    source: NodeId,
    queue_node: NodeId,
    sink: NodeId,
    servers: Vec<Server>,
    line: VecDeque<RequestKey>,
    queue_capacity: usize,
    arrivals: ArrivalTimer<Event>,
    service: ServiceTime,
    service_rng: SimRng,
    core: ModelCore,
    queue_depth: GaugeId,
    busy_servers: GaugeId,
    busy: u32,
}

fn service_time(params: &ParamValues) -> ServiceTime {
    let mean = SimDuration::from_secs_f64(1.0 / params.number("service_rate"));
    match params.choice("service_distribution") {
        "deterministic" => ServiceTime::Deterministic(mean),
        "lognormal" => ServiceTime::LogNormal {
            mean,
            cv: params.number("service_cv"),
        },
        _ => ServiceTime::Exponential { mean },
    }
}

fn arrival_shape(rate: f64) -> TrafficShape {
    TrafficShape::Steady { rate }
}

/// Builds a run at time zero (the catalog's constructor).
pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

/// Builds the concrete simulation (tests and benchmarks use it without boxing).
pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<QueueingModel> {
    let server_count = params.integer("servers") as usize;
    let mut topology = Topology::default();
    let source = topology.add_node("clients", "Clients", NodeKind::Source, 0.05, 0.5);
    let queue_node = topology.add_node("queue", "Queue", NodeKind::Queue, 0.35, 0.5);
    let sink = topology.add_node("done", "Done", NodeKind::Sink, 0.95, 0.5);
    topology.add_edge(source, queue_node);
    let servers: Vec<Server> = (0..server_count)
        .map(|index| {
            let y = (index as f32 + 1.0) / (server_count as f32 + 1.0);
            let node = topology.add_node(
                &format!("server-{}", index + 1),
                &format!("Server {}", index + 1),
                NodeKind::Server,
                0.65,
                y,
            );
            topology.add_edge(queue_node, node);
            topology.add_edge(node, sink);
            Server {
                node,
                state: NodeState::Healthy,
                current: None,
            }
        })
        .collect();

    let core = ModelCore::new(vec!["queue_depth", "busy_servers"]);

    let mut model = QueueingModel {
        params: params.clone(),
        topology,
        source,
        queue_node,
        sink,
        servers,
        line: VecDeque::new(),
        queue_capacity: params.integer("queue_capacity") as usize,
        arrivals: ArrivalTimer::new(
            PoissonArrivals::new(
                arrival_shape(params.number("arrival_rate")),
                SimRng::new(seed.0, "arrivals"),
            ),
            Event::Arrival,
        ),
        service: service_time(params),
        service_rng: SimRng::new(seed.0, "service"),
        queue_depth: core.gauge("queue_depth"),
        busy_servers: core.gauge("busy_servers"),
        core,
        busy: 0,
    };
    let mut scheduler = Scheduler::new();
    model.arrivals.rearm(&mut scheduler);
    Simulation::new(model, scheduler)
}

impl QueueingModel {
    fn arrive(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        self.core.metrics.generated(now);
        let free = if (self.busy as usize) < self.servers.len() {
            self.servers
                .iter()
                .position(|server| server.state == NodeState::Healthy && server.current.is_none())
        } else {
            None
        };
        match free {
            Some(server) => {
                let key = self.core.requests.spawn(
                    now,
                    Place::Queued {
                        node: self.queue_node,
                        since: now,
                    },
                );
                self.start_service(server, key, scheduler);
            }
            None if self.line.len() >= self.queue_capacity => self.core.metrics.rejected(now),
            None => {
                let key = self.core.requests.spawn(
                    now,
                    Place::Queued {
                        node: self.queue_node,
                        since: now,
                    },
                );
                self.line.push_back(key);
                self.core
                    .metrics
                    .set_gauge(self.queue_depth, now, self.line.len() as i64);
            }
        }
    }

    fn start_service(&mut self, server: usize, key: RequestKey, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if let Place::Queued { since, .. } = self.core.requests.get(key).place {
            self.core.metrics.waited(now - since);
        }
        self.core.requests.move_to(
            key,
            Place::InService {
                node: self.servers[server].node,
                since: now,
            },
        );
        self.servers[server].current = Some(key);
        self.busy += 1;
        self.core
            .metrics
            .set_gauge(self.busy_servers, now, self.busy as i64);
        let duration = self.service.sample(&mut self.service_rng);
        scheduler.schedule_in(
            duration,
            Event::ServiceDone {
                server: server as u16,
            },
        );
    }

    fn finish_service(&mut self, server: usize, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let Some(key) = self.servers[server].current.take() else {
            return;
        };
        let request = self.core.requests.finish(key);
        self.core.metrics.completed(now, now - request.born);
        self.busy -= 1;
        if self.servers[server].state == NodeState::Draining {
            self.set_server_state(server, NodeState::Down, now);
        } else {
            self.take_from_line(server, scheduler);
        }
        self.core
            .metrics
            .set_gauge(self.busy_servers, now, self.busy as i64);
    }

    fn take_from_line(&mut self, server: usize, scheduler: &mut Scheduler<Event>) {
        if let Some(next) = self.line.pop_front() {
            self.core
                .metrics
                .set_gauge(self.queue_depth, scheduler.now(), self.line.len() as i64);
            self.start_service(server, next, scheduler);
        }
    }

    fn set_server_state(&mut self, server: usize, state: NodeState, now: SimTime) {
        self.servers[server].state = state;
        self.core.log.push(
            now,
            Notable::StateChanged {
                node: self.servers[server].node,
                to: state,
            },
        );
    }

    fn lose_server(&mut self, now: SimTime) -> Result<(), CommandError> {
        let working = self
            .servers
            .iter()
            .filter(|server| server.state == NodeState::Healthy)
            .count();
        if working <= 1 {
            return Err(CommandError::NotApplicable {
                reason: "the last working server cannot be taken down".into(),
            });
        }
        // The highest-numbered working server goes: it drains if busy.
        let server = self
            .servers
            .iter()
            .rposition(|server| server.state == NodeState::Healthy)
            .expect("counted above");
        let next_state = if self.servers[server].current.is_some() {
            NodeState::Draining
        } else {
            NodeState::Down
        };
        self.set_server_state(server, next_state, now);
        Ok(())
    }

    fn restore_server(&mut self, scheduler: &mut Scheduler<Event>) -> Result<(), CommandError> {
        let now = scheduler.now();
        let Some(server) = self
            .servers
            .iter()
            .position(|server| matches!(server.state, NodeState::Down | NodeState::Draining))
        else {
            return Err(CommandError::NotApplicable {
                reason: "every server is already up".into(),
            });
        };
        self.set_server_state(server, NodeState::Healthy, now);
        if self.servers[server].current.is_none() {
            self.take_from_line(server, scheduler);
        }
        Ok(())
    }
}

impl Model for QueueingModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::Arrival => {
                self.arrivals.fired();
                self.arrive(scheduler);
                self.arrivals.rearm(scheduler);
            }
            Event::ServiceDone { server } => self.finish_service(server as usize, scheduler),
        }
    }
}

impl LessonModel for QueueingModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        snapshot.nodes.push(NodeView::plain(self.source));
        snapshot.nodes.push(NodeView {
            queued: self.line.len() as u32,
            ..NodeView::plain(self.queue_node)
        });
        snapshot.nodes.push(NodeView::plain(self.sink));
        for server in &self.servers {
            snapshot.nodes.push(NodeView {
                node: server.node,
                state: server.state,
                busy: server.current.is_some() as u32,
                capacity: 1,
                queued: 0,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
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
                    "burst" => {
                        for _ in 0..BURST_SIZE {
                            self.arrive(scheduler);
                        }
                    }
                    "lose-server" => self.lose_server(now)?,
                    "restore-server" => self.restore_server(scheduler)?,
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
                    "arrival_rate" => {
                        self.arrivals
                            .arrivals
                            .set_shape(arrival_shape(self.params.number("arrival_rate")));
                        self.arrivals.rearm(scheduler);
                    }
                    "queue_capacity" => {
                        self.queue_capacity = self.params.integer("queue_capacity") as usize
                    }
                    _ => self.service = service_time(&self.params),
                }
                Ok(())
            }
        }
    }
}

/// Time-averaged number of requests waiting in line over the run so far (Lq).
pub fn mean_line_length(sim: &Simulation<QueueingModel>) -> f64 {
    let model = &sim.model;
    model
        .core
        .metrics
        .series()
        .gauge_run_mean(model.queue_depth.0, sim.now())
}

/// Fraction of served requests that had to wait for a server (Erlang C's P(wait)).
pub fn fraction_that_waited(sim: &Simulation<QueueingModel>) -> f64 {
    let waits = sim.model.core.metrics.wait();
    if waits.count() == 0 {
        return 0.0;
    }
    1.0 - waits.zero_count() as f64 / waits.count() as f64
}

/// Utilisation ρ = λ / (c μ) for these parameters.
pub fn utilisation(params: &ParamValues) -> f64 {
    params.number("arrival_rate")
        / (params.integer("servers") as f64 * params.number("service_rate"))
}

/// The service time's coefficient of variation for these parameters.
fn service_cv(params: &ParamValues) -> f64 {
    match params.choice("service_distribution") {
        "deterministic" => 0.0,
        "lognormal" => params.number("service_cv"),
        _ => 1.0,
    }
}

/// The theory curve for the chart: (ρ, mean wait ÷ mean service time) for ρ from 0.02 to
/// 0.98 at these servers and this service distribution. Erlang C for exponential service
/// (exact), Allen–Cunneen scaling by (1 + cv²)/2 otherwise (exact for one server).
pub fn theory_curve(params: &ParamValues) -> Vec<(f64, f64)> {
    let servers = params.integer("servers") as u32;
    let cv = service_cv(params);
    (1..=49)
        .filter_map(|step| {
            let rho = step as f64 * 0.02;
            let lambda = rho * servers as f64;
            let wait = crate::sim::queueing_theory::mgc_wait_approx(servers, lambda, 1.0, cv)?;
            Some((rho, wait))
        })
        .collect()
}

/// Runs these parameters for about `customers` arrivals and returns the measured point
/// (ρ, mean wait ÷ mean service time) for the chart.
pub fn measure_point(params: &ParamValues, seed: Seed, customers: f64) -> (f64, f64) {
    let mut sim = simulation(params, seed);
    let until = SimTime::from_secs_f64(customers / params.number("arrival_rate"));
    sim.run_until(until);
    let wait = LessonRun::summary(&sim).wait_mean;
    (utilisation(params), wait * params.number("service_rate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_points_sit_on_the_theory_curve() {
        let params =
            ParamValues::from_assignments(PARAMS, ["arrival_rate=1.4", "servers=2"]).unwrap();
        let (rho, measured) = measure_point(&params, Seed(3), 200_000.0);
        assert!((rho - 0.7).abs() < 1e-12);
        let curve = theory_curve(&params);
        let (_, expected) = curve
            .iter()
            .copied()
            .find(|(r, _)| (r - 0.7).abs() < 1e-9)
            .unwrap();
        assert!(
            (measured - expected).abs() / expected < 0.05,
            "measured {measured}, Erlang C {expected}"
        );
    }
}
