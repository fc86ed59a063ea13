//! The reference workload shared by the native benchmark (`benches/engine.rs`) and the
//! wasm one (`tests/wasm_bench.rs`), so both measure exactly the same simulation.

use crate::lessons::params::{ParamValues, Seed};
use crate::lessons::queueing_basics;
use crate::lessons::run::LessonRun;
use crate::sim::time::SimTime;

/// Customers simulated per reference run (about two events each).
pub const MM8_CUSTOMERS: u64 = 1_000_000;

/// What one reference run produced.
#[derive(Clone, Copy, Debug)]
pub struct ReferenceOutcome {
    pub events: u64,
    pub wait_mean: f64,
}

/// Runs M/M/8 with λ = 7.2, μ = 1 for [`MM8_CUSTOMERS`] expected arrivals.
pub fn mm8_reference_run(seed: u64) -> ReferenceOutcome {
    let params = ParamValues::from_assignments(
        queueing_basics::SPEC.params,
        ["arrival_rate=7.2", "service_rate=1", "servers=8"],
    )
    .expect("reference parameters are valid");
    let mut sim = queueing_basics::simulation(&params, Seed(seed));
    let until = SimTime::from_secs_f64(MM8_CUSTOMERS as f64 / 7.2);
    sim.run_until(until);
    ReferenceOutcome {
        events: sim.events_processed(),
        wait_mean: LessonRun::summary(&sim).wait_mean,
    }
}
