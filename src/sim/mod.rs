//! The simulation engine: time, event queue, randomness, metrics, snapshots. No web crates.
