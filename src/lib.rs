//! Patterns Playground: distributed design patterns as seeded discrete-event simulations.
//!
//! The library holds everything; `main.rs` (the browser app) and `bin/simulate.rs` (the
//! headless runner) are thin shells over it. See ARCHITECTURE.md for the codemap.

pub mod bench_support;
pub mod embed;
pub mod learning;
pub mod lessons;
pub mod route;
pub mod runner;
pub mod sim;
pub mod view;
