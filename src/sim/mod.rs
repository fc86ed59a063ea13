//! The simulation engine: time, event queue, randomness, metrics, snapshots. No web crates.

pub mod time;

pub use time::{SimDuration, SimTime, TICKS_PER_SECOND};
