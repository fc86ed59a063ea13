#!/usr/bin/env bash
# One command: install whatever the tests need, then run every test layer:
# format and lint, native tests, browser tests (wasm-bindgen-test in headless Chromium),
# a release build of the site, and end-to-end tests clicking through it in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_test

# Every step runs even after one fails, so one run shows every problem; the summary
# line says how many passed and which failed, and the exit code is non-zero if any did.
passed=0
failed=()
step() {
  local name="$1"
  shift
  printf '\n=== %s: %s\n' "$name" "$*"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed+=("$name")
  fi
}

step "format" cargo fmt --check
step "lint" cargo clippy --all-targets -- -D warnings
step "lint (wasm)" cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings
# Release: the engine validation simulates tens of millions of customers.
step "native tests" cargo test --release
step "browser tests" cargo test --target wasm32-unknown-unknown --test browser
step "site build" trunk build --release --public-url ./
step "end-to-end tests" node --test tests/e2e/

printf '\n=== %d steps passed, %d failed%s\n' "$passed" "${#failed[@]}" \
  "${failed[*]:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
