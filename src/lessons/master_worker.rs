//! Lesson `master-worker`: a master splits each job into tasks and hands them to a pool of
//! workers, watches the workers with heartbeats, and gives a dead worker's task to
//! another worker. Workers are interchangeable and may die; the master is the one part
//! that may not.
//!
//! Sources: J. Dean and S. Ghemawat, "MapReduce: Simplified Data Processing on Large
//! Clusters" (OSDI 2004), section 3: the master assigns idle workers tasks, pings every
//! worker periodically, marks a worker that does not answer within a certain time as
//! failed, and resets the tasks it was running so they are rescheduled on other workers;
//! a master failure aborts the computation until it is restarted (the paper's master is
//! a single point of failure). The pattern under its older name master-slave: seed text
//! 003 ("the master node distributes tasks to multiple slave nodes and aggregates their
//! results"; cons: single point of failure).
//!
//! The model, in short (equations in docs/models/master-worker.md):
//! - A job arrives every `job_interval` seconds and is split into `tasks_per_job` tasks;
//!   a task is one request. Tasks wait in the master's FIFO queue; the master gives the
//!   oldest task to an idle worker (one task per worker at a time, lowest-numbered idle
//!   worker first). Assigning and reporting each take one network hop (`HOP`).
//! - A task takes a log-normal time (mean `task_time`, cv 0.3, stream `task-times`);
//!   drawn once per task so a re-run takes the same time.
//! - Heartbeats: every `heartbeat` seconds the master pings every worker it believes
//!   alive. A worker that has missed `missed_limit` pings in a row is declared dead: the
//!   master removes it and puts its task back at the front of the queue (attempt + 1).
//!   Detection therefore takes between (missed_limit − 1) × heartbeat and
//!   missed_limit × heartbeat after the crash.
//! - `kill-worker`: the lowest-numbered busy worker (or idle one, if none is busy)
//!   crashes; its task is silently lost until the master notices. `slow-worker`: one
//!   worker runs tasks `slowdown` times slower (a straggler). `kill-master`: the master
//!   stops: no task is assigned, finished results wait at their workers, and tasks of
//!   jobs submitted meanwhile are rejected. `restore`: the master and every dead worker
//!   come back (a worker returns empty and idle), stragglers run at full speed.

use std::collections::VecDeque;

use crate::sim::histogram::{LatencyHistogram, PRECISE};
use crate::sim::metrics::GaugeId;
use crate::sim::random::SimRng;
use crate::sim::requests::{Place, RequestKey};
use crate::sim::scheduler::{Model, Scheduler, Simulation};
use crate::sim::snapshot::{Figure, NodeState, NodeView, Notable, Snapshot};
use crate::sim::time::{SimDuration, SimTime};
use crate::sim::topology::{EdgeId, NodeId, NodeKind, Topology};

use super::core::ModelCore;
use super::params::number;
use super::params::{Liveness, ParamKind, ParamSpec, ParamValues, Seed};
use super::run::{
    accept_live_param, unknown_injection, CommandError, LessonCommand, LessonModel, LessonRun,
};
use super::{InjectionSpec, LessonGroup, LessonSpec};

pub const SPEC: LessonSpec = LessonSpec {
    id: "master-worker",
    title: "Master-worker",
    group: LessonGroup::TrafficAndCompute,
    summary: "A master splits jobs into tasks for a pool of workers, notices a dead worker by its missing heartbeats and re-runs its task elsewhere; the master itself is the single point of failure.",
    params: PARAMS,
    injections: INJECTIONS,
    default_duration: SimDuration::from_secs(120),
    build,
    compare: None,
    sweep: None,
    breaker_node: None,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "workers",
        label: "Workers",
        unit: "",
        help: "Workers in the pool; each runs one task at a time.",
        kind: ParamKind::Integer {
            min: 1,
            max: 10,
            default: 6,
        },
        liveness: Liveness::Restart,
    },
    ParamSpec {
        name: "tasks_per_job",
        label: "Tasks per job",
        unit: "",
        help: "How many independent tasks the master splits each job into.",
        kind: ParamKind::Integer {
            min: 1,
            max: 60,
            default: 24,
        },
        liveness: Liveness::Live,
    },
    number("task_time", "Task time", "s", "Mean time one task takes on a healthy worker (log-normal, cv 0.3).", (0.1, 20.0, 0.1, 2.0)),
    number("job_interval", "Job every", "s", "A new job is submitted this often.", (5.0, 120.0, 1.0, 20.0)),
    number("heartbeat", "Heartbeat interval", "s", "How often the master pings each worker.", (0.5, 10.0, 0.5, 1.0)),
    ParamSpec {
        name: "missed_limit",
        label: "Missed heartbeats",
        unit: "",
        help: "Consecutive unanswered pings after which the master declares a worker dead and re-runs its task elsewhere.",
        kind: ParamKind::Integer {
            min: 1,
            max: 10,
            default: 3,
        },
        liveness: Liveness::Live,
    },
    number("slowdown", "Straggler slowdown", "×", "How many times slower a worker runs while slowed down.", (2.0, 20.0, 1.0, 5.0)),
];

const INJECTIONS: &[InjectionSpec] = &[
    InjectionSpec {
        id: "kill-worker",
        label: "Kill a busy worker",
        help: "A worker crashes in the middle of its task; the master only finds out when its heartbeats stop.",
    },
    InjectionSpec {
        id: "slow-worker",
        label: "Slow a worker down",
        help: "One worker runs its tasks slowdown times slower (a straggler).",
    },
    InjectionSpec {
        id: "kill-master",
        label: "Kill the master",
        help: "The master stops: nothing is assigned, results cannot be reported, new jobs are refused.",
    },
    InjectionSpec {
        id: "restore",
        label: "Restore",
        help: "The master and every dead worker come back; a slowed worker runs at full speed.",
    },
];

/// One network hop: master to worker, worker to master.
pub const HOP: SimDuration = SimDuration::from_millis(20);
/// Spread of task times.
pub const TASK_CV: f64 = 0.3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    JobArrives,
    /// The task reaches its worker, which starts it. `run` names the assignment so an
    /// event for an assignment that was abandoned is ignored.
    Delivered {
        worker: u16,
        run: u32,
    },
    /// The worker has finished the task.
    Finished {
        worker: u16,
        run: u32,
    },
    /// The result reaches the master.
    Reported {
        worker: u16,
        run: u32,
    },
    Heartbeat,
}

struct Task {
    key: RequestKey,
    job: u32,
    work: SimDuration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    /// Travelling to the worker, running, finished and waiting to report (master down),
    /// or reporting.
    Assigned,
    Running,
    Holding,
    Reporting,
}

struct Worker {
    node: NodeId,
    edge_in: EdgeId,
    edge_out: EdgeId,
    alive: bool,
    /// What the master believes.
    known_alive: bool,
    missed: u32,
    slow: bool,
    stage: Stage,
    task: Option<Task>,
    run: u32,
    started: SimTime,
    died_at: Option<SimTime>,
}

struct Job {
    submitted: SimTime,
    remaining: u32,
}

pub struct MasterWorkerModel {
    params: ParamValues,
    topology: Topology,
    jobs_node: NodeId,
    queue_node: NodeId,
    master_node: NodeId,
    results_node: NodeId,
    master_alive: bool,
    queue: VecDeque<Task>,
    workers: Vec<Worker>,
    jobs: Vec<Job>,
    task_rng: SimRng,
    next_run: u32,
    job_times: LatencyHistogram,
    jobs_done: u64,
    reassigned: u64,
    wasted: SimDuration,
    detections: Vec<SimDuration>,
    rejected_tasks: u64,
    core: ModelCore,
    gauge_queue: GaugeId,
    gauge_busy: GaugeId,
    gauge_workers: GaugeId,
}

pub fn build(params: &ParamValues, seed: Seed) -> Box<dyn LessonRun> {
    Box::new(simulation(params, seed))
}

pub fn simulation(params: &ParamValues, seed: Seed) -> Simulation<MasterWorkerModel> {
    let n = params.integer("workers") as usize;
    let mut topology = Topology::default();
    let jobs_node = topology.add_node("jobs", "Jobs", NodeKind::Source, 0.0, 0.5);
    let queue_node = topology.add_node("task-queue", "Tasks waiting", NodeKind::Queue, 0.2, 0.5);
    let master_node = topology.add_node("master", "Master", NodeKind::Router, 0.45, 0.5);
    let results_node = topology.add_node("results", "Results", NodeKind::Sink, 1.0, 0.5);
    topology.add_edge(jobs_node, queue_node);
    topology.add_edge(queue_node, master_node);
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let y = if n == 1 {
            0.5
        } else {
            i as f32 / (n - 1) as f32
        };
        let node = topology.add_node(
            &format!("worker-{}", i + 1),
            &format!("Worker {}", i + 1),
            NodeKind::Server,
            0.74,
            y,
        );
        let edge_in = topology.add_edge(master_node, node);
        let edge_out = topology.add_edge(node, results_node);
        workers.push(Worker {
            node,
            edge_in,
            edge_out,
            alive: true,
            known_alive: true,
            missed: 0,
            slow: false,
            stage: Stage::Idle,
            task: None,
            run: 0,
            started: SimTime::ZERO,
            died_at: None,
        });
    }
    let core = ModelCore::new(vec!["tasks_waiting", "workers_busy", "workers_known_alive"]);
    let model = MasterWorkerModel {
        params: params.clone(),
        topology,
        jobs_node,
        queue_node,
        master_node,
        results_node,
        master_alive: true,
        queue: VecDeque::new(),
        workers,
        jobs: Vec::new(),
        task_rng: SimRng::new(seed.0, "task-times"),
        next_run: 0,
        job_times: LatencyHistogram::new(PRECISE),
        jobs_done: 0,
        reassigned: 0,
        wasted: SimDuration::ZERO,
        detections: Vec::new(),
        rejected_tasks: 0,
        gauge_queue: core.gauge("tasks_waiting"),
        gauge_busy: core.gauge("workers_busy"),
        gauge_workers: core.gauge("workers_known_alive"),
        core,
    };
    let mut scheduler = Scheduler::new();
    scheduler.schedule_in(SimDuration::ZERO, Event::JobArrives);
    scheduler.schedule_in(model.heartbeat(), Event::Heartbeat);
    Simulation::new(model, scheduler)
}

impl MasterWorkerModel {
    fn heartbeat(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.params.number("heartbeat"))
    }

    fn job_arrives(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(
            SimDuration::from_secs_f64(self.params.number("job_interval")),
            Event::JobArrives,
        );
        let tasks = self.params.integer("tasks_per_job") as u32;
        let job = self.jobs.len() as u32;
        self.jobs.push(Job {
            submitted: now,
            remaining: tasks,
        });
        let mean = self.params.number("task_time");
        for _ in 0..tasks {
            self.core.metrics.generated(now);
            let work = SimDuration::from_secs_f64(self.task_rng.lognormal_mean_cv(mean, TASK_CV));
            if !self.master_alive {
                // Nobody accepts the job: its tasks are refused at once.
                self.core.metrics.rejected(now);
                self.rejected_tasks += 1;
                continue;
            }
            let key = self.core.requests.spawn(
                now,
                Place::Queued {
                    node: self.queue_node,
                    since: now,
                },
            );
            self.queue.push_back(Task { key, job, work });
        }
        if !self.master_alive {
            self.jobs[job as usize].remaining = 0;
            return;
        }
        self.assign(scheduler);
    }

    /// Gives the oldest waiting tasks to idle workers the master believes alive.
    fn assign(&mut self, scheduler: &mut Scheduler<Event>) {
        if !self.master_alive {
            return;
        }
        let now = scheduler.now();
        for w in 0..self.workers.len() {
            let worker = &self.workers[w];
            // The master cannot tell a crashed worker it has not yet noticed from a live
            // one: it may hand it a task, which is then lost until the crash is noticed.
            if !worker.known_alive || worker.stage != Stage::Idle || worker.task.is_some() {
                continue;
            }
            let Some(task) = self.queue.pop_front() else {
                break;
            };
            if let Place::Queued { since, .. } = self.core.requests.get(task.key).place {
                self.core.metrics.waited(now - since);
            }
            self.core.requests.move_to(
                task.key,
                Place::OnEdge {
                    edge: self.workers[w].edge_in,
                    depart: now,
                    arrive: now + HOP,
                },
            );
            let run = self.next_run;
            self.next_run = self.next_run.wrapping_add(1);
            let worker = &mut self.workers[w];
            worker.stage = Stage::Assigned;
            worker.task = Some(task);
            worker.run = run;
            scheduler.schedule_in(
                HOP,
                Event::Delivered {
                    worker: w as u16,
                    run,
                },
            );
        }
    }

    /// The worker `w` if it is alive and still on assignment `run`.
    fn on_run(&self, w: u16, run: u32) -> bool {
        let worker = &self.workers[w as usize];
        worker.alive && worker.run == run && worker.task.is_some()
    }

    fn delivered(&mut self, w: u16, run: u32, scheduler: &mut Scheduler<Event>) {
        if !self.on_run(w, run) {
            return;
        }
        let now = scheduler.now();
        let slowdown = self.params.number("slowdown");
        let worker = &mut self.workers[w as usize];
        let task = worker.task.as_ref().expect("on_run checked");
        let factor = if worker.slow { slowdown } else { 1.0 };
        let time = SimDuration::from_secs_f64(task.work.as_secs_f64() * factor);
        worker.stage = Stage::Running;
        worker.started = now;
        let node = worker.node;
        self.core
            .requests
            .move_to(task.key, Place::InService { node, since: now });
        scheduler.schedule_in(time, Event::Finished { worker: w, run });
    }

    fn finished(&mut self, w: u16, run: u32, scheduler: &mut Scheduler<Event>) {
        if !self.on_run(w, run) {
            return;
        }
        if self.master_alive {
            self.report(w, scheduler);
        } else {
            // The result waits at the worker until there is a master to take it.
            self.workers[w as usize].stage = Stage::Holding;
        }
    }

    fn report(&mut self, w: u16, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        let worker = &mut self.workers[w as usize];
        worker.stage = Stage::Reporting;
        let (edge, run) = (worker.edge_out, worker.run);
        let key = worker
            .task
            .as_ref()
            .expect("a reporting worker has a task")
            .key;
        self.core.requests.move_to(
            key,
            Place::OnEdge {
                edge,
                depart: now,
                arrive: now + HOP,
            },
        );
        scheduler.schedule_in(HOP, Event::Reported { worker: w, run });
    }

    fn reported(&mut self, w: u16, run: u32, scheduler: &mut Scheduler<Event>) {
        if !self.on_run(w, run) {
            return;
        }
        let now = scheduler.now();
        if !self.master_alive {
            // Nobody receives the result: the worker keeps it until the master is back.
            let worker = &mut self.workers[w as usize];
            worker.stage = Stage::Holding;
            let node = worker.node;
            let key = worker.task.as_ref().expect("on_run checked").key;
            self.core
                .requests
                .move_to(key, Place::InService { node, since: now });
            return;
        }
        let worker = &mut self.workers[w as usize];
        let task = worker.task.take().expect("on_run checked");
        worker.stage = Stage::Idle;
        let request = self.core.requests.finish(task.key);
        self.core.metrics.completed(now, now - request.born);
        let job = &mut self.jobs[task.job as usize];
        job.remaining -= 1;
        if job.remaining == 0 {
            self.jobs_done += 1;
            self.job_times.record(now - job.submitted);
        }
        self.assign(scheduler);
    }

    fn heartbeat_round(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        scheduler.schedule_in(self.heartbeat(), Event::Heartbeat);
        if !self.master_alive {
            return;
        }
        let limit = self.params.integer("missed_limit") as u32;
        let mut freed = false;
        for w in 0..self.workers.len() {
            let worker = &mut self.workers[w];
            if !worker.known_alive {
                continue;
            }
            if worker.alive {
                worker.missed = 0;
                continue;
            }
            worker.missed += 1;
            if worker.missed < limit {
                continue;
            }
            // Declared dead: its task goes back to the front of the queue.
            worker.known_alive = false;
            worker.stage = Stage::Idle;
            let node = worker.node;
            if let Some(died) = worker.died_at {
                self.detections.push(now - died);
            }
            if let Some(task) = worker.task.take() {
                self.reassigned += 1;
                self.core.requests.next_attempt(task.key);
                self.core.requests.move_to(
                    task.key,
                    Place::Queued {
                        node: self.queue_node,
                        since: now,
                    },
                );
                self.queue.push_front(task);
                freed = true;
            }
            self.core.log.push(now, Notable::NodeRemoved { node });
        }
        if freed {
            self.assign(scheduler);
        }
    }

    fn kill_worker(&mut self, w: usize, now: SimTime) {
        let worker = &mut self.workers[w];
        worker.alive = false;
        worker.died_at = Some(now);
        worker.missed = 0;
        // The work done so far on its task is lost.
        if matches!(worker.stage, Stage::Running | Stage::Holding) {
            self.wasted = self.wasted + (now - worker.started);
        }
        let node = worker.node;
        // The task token waits, frozen, where it was: lost until the master notices.
        if let Some(task) = &worker.task {
            self.core
                .requests
                .move_to(task.key, Place::InService { node, since: now });
        }
        worker.stage = Stage::Idle;
        // A new assignment number, so the dead run's events are ignored.
        worker.run = self.next_run;
        self.next_run = self.next_run.wrapping_add(1);
        self.core.log.push(
            now,
            Notable::StateChanged {
                node,
                to: NodeState::Down,
            },
        );
    }

    fn update_gauges(&mut self, now: SimTime) {
        let busy = self
            .workers
            .iter()
            .filter(|w| w.alive && w.task.is_some())
            .count() as i64;
        let known = self.workers.iter().filter(|w| w.known_alive).count() as i64;
        let metrics = &mut self.core.metrics;
        metrics.set_gauge(self.gauge_queue, now, self.queue.len() as i64);
        metrics.set_gauge(self.gauge_busy, now, busy);
        metrics.set_gauge(self.gauge_workers, now, known);
    }

    fn worker_state(worker: &Worker) -> NodeState {
        match (worker.alive, worker.slow) {
            (false, _) => NodeState::Down,
            (true, true) => NodeState::Unhealthy,
            (true, false) => NodeState::Healthy,
        }
    }

    /// How long the master took to notice each crashed worker.
    pub fn detection_times(&self) -> &[SimDuration] {
        &self.detections
    }

    /// Per job: when it was submitted and how many of its tasks are still to report.
    pub fn jobs(&self) -> Vec<(SimTime, u32)> {
        self.jobs
            .iter()
            .map(|job| (job.submitted, job.remaining))
            .collect()
    }
}

impl Model for MasterWorkerModel {
    type Event = Event;

    fn handle(&mut self, event: Event, scheduler: &mut Scheduler<Event>) {
        match event {
            Event::JobArrives => self.job_arrives(scheduler),
            Event::Delivered { worker, run } => self.delivered(worker, run, scheduler),
            Event::Finished { worker, run } => self.finished(worker, run, scheduler),
            Event::Reported { worker, run } => self.reported(worker, run, scheduler),
            Event::Heartbeat => self.heartbeat_round(scheduler),
        }
        self.update_gauges(scheduler.now());
    }
}

impl LessonModel for MasterWorkerModel {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn snapshot_into(&self, now: SimTime, snapshot: &mut Snapshot, token_limit: usize) {
        snapshot.reset(now);
        snapshot.nodes.push(NodeView::plain(self.jobs_node));
        snapshot.nodes.push(NodeView::plain(self.results_node));
        snapshot.nodes.push(NodeView {
            queued: self.queue.len() as u32,
            ..NodeView::plain(self.queue_node)
        });
        snapshot.nodes.push(NodeView {
            state: if self.master_alive {
                NodeState::Healthy
            } else {
                NodeState::Down
            },
            ..NodeView::plain(self.master_node)
        });
        for worker in &self.workers {
            snapshot.nodes.push(NodeView {
                node: worker.node,
                state: Self::worker_state(worker),
                busy: u32::from(worker.task.is_some()),
                capacity: 1,
                queued: 0,
            });
        }
        snapshot.collect_tokens(self.core.requests.iter(), token_limit);
    }

    fn core(&self) -> &ModelCore {
        &self.core
    }

    fn extra_figures(&self, _now: SimTime) -> Vec<Figure> {
        let job_secs = |q: f64| {
            if self.jobs_done == 0 {
                0.0
            } else {
                self.job_times.quantile_secs(q)
            }
        };
        let last_detection = self.detections.last().map_or(0.0, |d| d.as_secs_f64());
        vec![
            Figure {
                key: "jobs_done",
                label: "Jobs completed",
                value: self.jobs_done as f64,
                unit: "",
            },
            Figure {
                key: "job_p50_s",
                label: "Job time, median",
                value: job_secs(0.5),
                unit: "s",
            },
            Figure {
                key: "job_max_s",
                label: "Job time, slowest",
                value: job_secs(1.0),
                unit: "s",
            },
            Figure {
                key: "tasks_reassigned",
                label: "Tasks re-run after a crash",
                value: self.reassigned as f64,
                unit: "",
            },
            Figure {
                key: "detection_s",
                label: "Time to notice the last crash",
                value: last_detection,
                unit: "s",
            },
            Figure {
                key: "work_lost_s",
                label: "Work lost in crashes",
                value: self.wasted.as_secs_f64(),
                unit: "s",
            },
            Figure {
                key: "tasks_refused",
                label: "Tasks refused (no master)",
                value: self.rejected_tasks as f64,
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
        let not_applicable = |reason: &str| {
            Err(CommandError::NotApplicable {
                reason: reason.into(),
            })
        };
        match command {
            LessonCommand::Inject(id) => {
                let alive: Vec<usize> = (0..self.workers.len())
                    .filter(|&w| self.workers[w].alive)
                    .collect();
                let target = match id.as_str() {
                    "kill-worker" | "slow-worker" => {
                        let candidates: Vec<usize> = alive
                            .iter()
                            .copied()
                            .filter(|&w| id != "slow-worker" || !self.workers[w].slow)
                            .collect();
                        let busy = candidates
                            .iter()
                            .copied()
                            .find(|&w| self.workers[w].task.is_some());
                        match busy.or(candidates.first().copied()) {
                            Some(w) => Some(w),
                            None => return not_applicable("no running worker to pick"),
                        }
                    }
                    "kill-master" if !self.master_alive => {
                        return not_applicable("the master is already down")
                    }
                    "kill-master" => None,
                    "restore" => {
                        let anything =
                            !self.master_alive || self.workers.iter().any(|w| !w.alive || w.slow);
                        if !anything {
                            return not_applicable("nothing is down or slow");
                        }
                        None
                    }
                    _ => return Err(unknown_injection(id, INJECTIONS)),
                };
                self.core.log.push(
                    now,
                    Notable::Injected {
                        injection: id.clone(),
                    },
                );
                match (id.as_str(), target) {
                    ("kill-worker", Some(w)) => self.kill_worker(w, now),
                    ("slow-worker", Some(w)) => {
                        self.workers[w].slow = true;
                        let node = self.workers[w].node;
                        self.core.log.push(
                            now,
                            Notable::StateChanged {
                                node,
                                to: NodeState::Unhealthy,
                            },
                        );
                    }
                    ("kill-master", _) => {
                        self.master_alive = false;
                        self.core.log.push(
                            now,
                            Notable::StateChanged {
                                node: self.master_node,
                                to: NodeState::Down,
                            },
                        );
                    }
                    _ => self.restore(scheduler),
                }
            }
            LessonCommand::SetParam { name, value } => {
                accept_live_param(&mut self.params, name, *value, now, &mut self.core.log)?;
            }
        }
        self.update_gauges(now);
        Ok(())
    }
}

impl MasterWorkerModel {
    fn restore(&mut self, scheduler: &mut Scheduler<Event>) {
        let now = scheduler.now();
        if !self.master_alive {
            self.master_alive = true;
            self.core.log.push(
                now,
                Notable::StateChanged {
                    node: self.master_node,
                    to: NodeState::Healthy,
                },
            );
            for worker in &mut self.workers {
                worker.missed = 0;
            }
        }
        for w in 0..self.workers.len() {
            let worker = &mut self.workers[w];
            let node = worker.node;
            if !worker.alive {
                // Back empty: a task the master has not yet taken back is re-queued now
                // (the fresh worker knows nothing of it).
                worker.alive = true;
                worker.stage = Stage::Idle;
                worker.missed = 0;
                worker.died_at = None;
                if let Some(task) = worker.task.take() {
                    self.reassigned += 1;
                    self.core.requests.next_attempt(task.key);
                    self.core.requests.move_to(
                        task.key,
                        Place::Queued {
                            node: self.queue_node,
                            since: now,
                        },
                    );
                    self.queue.push_front(task);
                }
                if !worker.known_alive {
                    worker.known_alive = true;
                    self.core.log.push(now, Notable::NodeAdded { node });
                }
                self.core.log.push(
                    now,
                    Notable::StateChanged {
                        node,
                        to: NodeState::Healthy,
                    },
                );
            } else if worker.slow {
                worker.slow = false;
                self.core.log.push(
                    now,
                    Notable::StateChanged {
                        node,
                        to: NodeState::Healthy,
                    },
                );
            }
        }
        // Results that waited for the master are reported now.
        for w in 0..self.workers.len() {
            if self.workers[w].alive && self.workers[w].stage == Stage::Holding {
                self.report(w as u16, scheduler);
            }
        }
        self.assign(scheduler);
    }
}
