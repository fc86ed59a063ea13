//! The engine benchmark in the browser (not a test; run by scripts/bench.sh): the same
//! M/M/8 λ=7.2 reference workload as `benches/engine.rs`, compiled to wasm and timed in
//! headless Chromium with `performance.now()`, median of several runs.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::*;

use patterns_playground::bench_support::{mm8_reference_run, MM8_CUSTOMERS};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn engine_events_per_second_in_the_browser() {
    let performance = web_sys::window()
        .and_then(|window| window.performance())
        .expect("performance.now() is available");
    let runs = 7;
    let mut rates = Vec::with_capacity(runs);
    for run in 0..runs {
        let started = performance.now();
        let outcome = mm8_reference_run(run as u64 + 1);
        let seconds = (performance.now() - started) / 1000.0;
        rates.push(outcome.events as f64 / seconds);
    }
    rates.sort_by(f64::total_cmp);
    console_log!(
        "BENCH wasm M/M/8 lambda=7.2, {} customers: median {:.2} M events/s (min {:.2}, max {:.2})",
        MM8_CUSTOMERS,
        rates[runs / 2] / 1e6,
        rates[0] / 1e6,
        rates[runs - 1] / 1e6
    );
}
