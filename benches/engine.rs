//! Engine throughput benchmark (not a test): events per second on M/M/8 λ=7.2 μ=1 with
//! 1M+ customers, median of several runs. `cargo bench --bench engine` prints the figures
//! that docs/PERFORMANCE.md records; the wasm side is in `tests/wasm_bench.rs`.

use std::time::Instant;

use patterns_playground::bench_support::{mm8_reference_run, MM8_CUSTOMERS};

fn main() {
    let runs = 7;
    let mut rates = Vec::with_capacity(runs);
    for run in 0..runs {
        let started = Instant::now();
        let outcome = mm8_reference_run(run as u64 + 1);
        let seconds = started.elapsed().as_secs_f64();
        let rate = outcome.events as f64 / seconds;
        println!(
            "run {run}: {} events in {seconds:.3} s = {:.2} M events/s (wait_mean {:.4})",
            outcome.events,
            rate / 1e6,
            outcome.wait_mean
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "native M/M/8 lambda=7.2, {MM8_CUSTOMERS} customers: median {:.2} M events/s (min {:.2}, max {:.2})",
        rates[runs / 2] / 1e6,
        rates[0] / 1e6,
        rates[runs - 1] / 1e6
    );
}
