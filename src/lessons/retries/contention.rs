//! The contention experiment of the AWS Architecture blog "Exponential Backoff and
//! Jitter" (Marc Brooker, 2015), as a pure function: `clients` clients each need one
//! successful write to a single row guarded by optimistic concurrency control (OCC).
//!
//! Each client reads the row's version, then writes with that version; the write
//! succeeds only if nobody wrote in between (the version still matches), otherwise it
//! fails and the client backs off by its strategy and starts again with a fresh read.
//! Every message crosses a network hop of |N(10 ms, 2 ms)|; the server answers at once.
//! Backoff uses base 5 ms and cap 2 s, as in the blog's simulator. All clients start at
//! time zero, which is what makes them collide. Without jitter, clients that failed
//! together retry together and collide again; jitter spreads them out.
//!
//! Published result (qualitative): exponential backoff without jitter does the most work
//! and takes the longest; full jitter does the least work; equal and decorrelated jitter
//! are in between (decorrelated close to full, and it finishes fastest).

use crate::sim::random::SimRng;
use crate::sim::scheduler::{Model, Scheduler, Simulation};
use crate::sim::time::{SimDuration, SimTime};

use super::backoff::{Backoff, Strategy};

/// Mean and standard deviation of one network hop, in seconds.
const NET_MEAN: f64 = 0.010;
const NET_SD: f64 = 0.002;
/// Backoff base and cap of the experiment, in seconds.
pub const CONTENTION_BASE: f64 = 0.005;
pub const CONTENTION_CAP: f64 = 2.0;

/// What one run of the experiment measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentionResult {
    /// Write calls the server handled (successful and conflicting): the work.
    pub total_calls: u64,
    /// When the last client got its final answer.
    pub completion_time: SimDuration,
    /// Clients whose write succeeded (all of them unless the strategy never retries).
    pub succeeded: u32,
}

#[derive(Clone, Copy, Debug)]
enum Message {
    /// A client's read reaches the server.
    Read { client: u32 },
    /// The version read reaches the client, which writes at once.
    ReadReply { client: u32, version: u64 },
    /// A client's conditional write reaches the server.
    Write { client: u32, version: u64 },
    /// The write's outcome reaches the client.
    WriteReply { client: u32, success: bool },
}

struct Occ {
    backoff: Backoff,
    version: u64,
    total_calls: u64,
    succeeded: u32,
    finished_at: SimTime,
    /// Failed writes so far and last sleep, per client.
    failures: Vec<u32>,
    previous_sleep: Vec<f64>,
    network: SimRng,
    jitter: SimRng,
}

impl Occ {
    fn hop(&mut self) -> SimDuration {
        SimDuration::from_secs_f64(self.network.normal(NET_MEAN, NET_SD).abs())
    }
}

impl Model for Occ {
    type Event = Message;

    fn handle(&mut self, message: Message, scheduler: &mut Scheduler<Message>) {
        match message {
            Message::Read { client } => {
                let hop = self.hop();
                let version = self.version;
                scheduler.schedule_in(hop, Message::ReadReply { client, version });
            }
            Message::ReadReply { client, version } => {
                let hop = self.hop();
                scheduler.schedule_in(hop, Message::Write { client, version });
            }
            Message::Write { client, version } => {
                self.total_calls += 1;
                let success = version == self.version;
                if success {
                    self.version += 1;
                }
                let hop = self.hop();
                scheduler.schedule_in(hop, Message::WriteReply { client, success });
            }
            Message::WriteReply { client, success } => {
                self.finished_at = scheduler.now();
                let index = client as usize;
                if success {
                    self.succeeded += 1;
                    return;
                }
                self.failures[index] += 1;
                let Some(sleep) = self.backoff.sleep(
                    self.failures[index],
                    self.previous_sleep[index],
                    &mut self.jitter,
                ) else {
                    return; // no retry: this client gives up
                };
                self.previous_sleep[index] = sleep;
                let delay = self.hop() + SimDuration::from_secs_f64(sleep);
                scheduler.schedule_in(delay, Message::Read { client });
            }
        }
    }
}

/// Runs the experiment once: `clients` clients, all starting at time zero, retrying by
/// `strategy` (base 5 ms, cap 2 s) until their write succeeds. Deterministic for a seed.
pub fn contention_experiment(strategy: Strategy, clients: u32, seed: u64) -> ContentionResult {
    let backoff = Backoff {
        strategy,
        base: CONTENTION_BASE,
        cap: CONTENTION_CAP,
    };
    let mut model = Occ {
        backoff,
        version: 0,
        total_calls: 0,
        succeeded: 0,
        finished_at: SimTime::ZERO,
        failures: vec![0; clients as usize],
        previous_sleep: vec![CONTENTION_BASE; clients as usize],
        network: SimRng::new(seed, "contention-network"),
        jitter: SimRng::new(seed, "contention-jitter"),
    };
    let mut scheduler = Scheduler::new();
    for client in 0..clients {
        let hop = model.hop();
        scheduler.schedule_in(hop, Message::Read { client });
    }
    let mut simulation = Simulation::new(model, scheduler);
    while simulation.step() {}
    let model = simulation.model;
    ContentionResult {
        total_calls: model.total_calls,
        completion_time: model.finished_at - SimTime::ZERO,
        succeeded: model.succeeded,
    }
}
