//! Engine throughput benchmark (not a test): events per second on M/M/8 λ=7.2 μ=1 with
//! 1M customers, median of several runs, interleaved with a bare heap-loop M/M/8 (no
//! metrics, no request table, no snapshots) so that the figure can be read as a ratio on
//! a noisy machine. `cargo bench --bench engine` prints what docs/PERFORMANCE.md records;
//! the wasm side is `tests/wasm_bench.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use patterns_playground::bench_support::{mm8_reference_run, MM8_CUSTOMERS};
use patterns_playground::sim::random::SimRng;

/// The floor: a minimal M/M/8 event loop on a `(time, sequence)` heap with the same
/// random streams, and nothing else. Returns the number of events handled.
fn bare_heap_loop(seed: u64) -> u64 {
    let (lambda, mu, servers) = (7.2, 1.0, 8u32);
    let horizon = MM8_CUSTOMERS as f64 / lambda;
    let mut arrivals = SimRng::new(seed, "arrivals");
    let mut service = SimRng::new(seed, "service");
    // Events: (time in µs, sequence, is_arrival)
    let mut heap: BinaryHeap<Reverse<(u64, u64, bool)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut busy = 0u32;
    let mut line: VecDeque<u64> = VecDeque::new();
    let mut waited = 0u64;
    heap.push(Reverse((
        (arrivals.exponential(lambda) * 1e6) as u64,
        sequence,
        true,
    )));
    let mut events = 0;
    while let Some(Reverse((now, _, is_arrival))) = heap.pop() {
        if now as f64 > horizon * 1e6 {
            break;
        }
        events += 1;
        sequence += 1;
        if is_arrival {
            let next = now + (arrivals.exponential(lambda) * 1e6) as u64;
            heap.push(Reverse((next, sequence, true)));
            sequence += 1;
            if busy < servers {
                busy += 1;
                let done = now + (service.exponential(mu) * 1e6) as u64;
                heap.push(Reverse((done, sequence, false)));
            } else {
                line.push_back(now);
            }
        } else if let Some(arrived) = line.pop_front() {
            waited += now - arrived;
            let done = now + (service.exponential(mu) * 1e6) as u64;
            heap.push(Reverse((done, sequence, false)));
        } else {
            busy -= 1;
        }
    }
    std::hint::black_box(waited);
    events
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runs = 9;
    let mut engine_rates = Vec::with_capacity(runs);
    let mut bare_rates = Vec::with_capacity(runs);
    for run in 0..runs {
        let seed = run as u64 + 1;
        let started = Instant::now();
        let bare_events = bare_heap_loop(seed);
        bare_rates.push(bare_events as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let outcome = mm8_reference_run(seed);
        let seconds = started.elapsed().as_secs_f64();
        engine_rates.push(outcome.events as f64 / seconds);
        println!(
            "run {run}: engine {} events in {seconds:.3} s (wait_mean {:.4}); bare loop {:.2} M events/s",
            outcome.events,
            outcome.wait_mean,
            bare_rates[run] / 1e6
        );
    }
    let engine = median(engine_rates.clone());
    let bare = median(bare_rates);
    let ratios: Vec<f64> = engine_rates.iter().map(|rate| rate / bare).collect();
    println!(
        "native M/M/8 lambda=7.2, {MM8_CUSTOMERS} customers: engine median {:.2} M events/s \
         (min {:.2}, max {:.2}); bare heap loop median {:.2} M events/s; engine/bare {:.2}",
        engine / 1e6,
        engine_rates.iter().copied().fold(f64::INFINITY, f64::min) / 1e6,
        engine_rates.iter().copied().fold(0.0, f64::max) / 1e6,
        bare / 1e6,
        median(ratios)
    );
}
