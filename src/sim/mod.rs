//! The simulation engine: time, event queue, randomness, traffic, metrics, request
//! tracking and snapshots. No web crates (see ARCHITECTURE.md).

pub mod histogram;
pub mod metrics;
pub mod queueing_theory;
pub mod random;
pub mod requests;
pub mod scheduler;
pub mod series;
pub mod snapshot;
pub mod time;
pub mod topology;
pub mod traffic;

pub use time::{SimDuration, SimTime, TICKS_PER_SECOND};
