#!/usr/bin/env bash
# Benchmarks (not tests; figures go to docs/PERFORMANCE.md): engine events/s natively and
# as wasm in headless Chromium, interleaved three times each so that machine noise hits
# both alike; then the release bundle sizes and time to first render.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_test

for round in 1 2 3; do
  printf '\n--- round %s\n' "$round"
  cargo bench --bench engine 2>/dev/null | tail -n 1
  cargo test --release --target wasm32-unknown-unknown --test wasm_bench -- --nocapture 2>/dev/null | grep BENCH
done

printf '\n--- release bundle and first render\n'
trunk build --release --public-url ./ >/dev/null 2>&1
node tests/e2e/measure.mjs
