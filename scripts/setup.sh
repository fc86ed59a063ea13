#!/usr/bin/env bash
# Installs what the project needs, idempotently: each step checks first and skips what is
# already there at the right version. Sourced by serve.sh and test.sh; safe to run alone:
#   scripts/setup.sh app     # what serving the app needs
#   scripts/setup.sh test    # plus Chromium, chromedriver and the end-to-end npm packages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
TRUNK_VERSION="0.22.1"
BINARYEN_VERSION="132.0.0"
export PATH="$HOME/.cargo/bin:$TOOLS/node_modules/.bin:$PATH"

say() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# The wasm-bindgen version the crate is locked to: the CLI must match it exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_rust_target() {
  command -v cargo >/dev/null || fail "cargo not found: this machine kind ships Rust via rustup"
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "wasm32-unknown-unknown target: present"
  else
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_trunk() {
  if trunk --version 2>/dev/null | grep -q "trunk $TRUNK_VERSION"; then
    say "trunk $TRUNK_VERSION: present"
  else
    say "installing trunk $TRUNK_VERSION (about 10 minutes the first time)"
    cargo install trunk --version "$TRUNK_VERSION" --locked --ignore-rust-version
  fi
}

ensure_wasm_bindgen() {
  local want
  want="$(wasm_bindgen_version)"
  [ -n "$want" ] || fail "could not read the wasm-bindgen version from Cargo.lock"
  grep -q "wasm_bindgen = \"$want\"" "$ROOT/Trunk.toml" \
    || fail "Trunk.toml pins a wasm_bindgen version other than Cargo.lock's $want: update [tools] in Trunk.toml"
  if wasm-bindgen --version 2>/dev/null | grep -q "wasm-bindgen $want"; then
    say "wasm-bindgen-cli $want: present"
  else
    say "installing wasm-bindgen-cli $want (about 2 minutes)"
    # No --locked: a locked dependency of the CLI is missing from the registry mirror.
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

ensure_wasm_opt() {
  if "$TOOLS/node_modules/.bin/wasm-opt" --version 2>/dev/null | grep -q "version ${BINARYEN_VERSION%%.*}"; then
    say "wasm-opt ${BINARYEN_VERSION%%.*}: present"
  else
    command -v npm >/dev/null || fail "npm not found (needed for wasm-opt from the binaryen package)"
    say "installing wasm-opt from npm binaryen@$BINARYEN_VERSION into .tools/"
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-save --no-audit --no-fund "binaryen@$BINARYEN_VERSION" >/dev/null
  fi
}

ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    say "chromium and chromedriver: present"
  else
    say "installing Debian's chromium and chromium-driver"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  # Both come from one Debian source package, so their versions always agree.
}

ensure_e2e_packages() {
  local dir="$ROOT/tests/e2e" stamp want
  stamp="$dir/node_modules/.lock-md5"
  want="$(md5sum < "$dir/package-lock.json")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "end-to-end npm packages: present"
  else
    say "installing end-to-end npm packages (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund >/dev/null)
    printf '%s\n' "$want" > "$stamp"
  fi
}

setup_app() {
  ensure_rust_target
  ensure_trunk
  ensure_wasm_bindgen
  ensure_wasm_opt
}

setup_test() {
  setup_app
  ensure_chromium
  ensure_e2e_packages
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-app}" in
    app) setup_app ;;
    test) setup_test ;;
    *) fail "usage: scripts/setup.sh [app|test]" ;;
  esac
fi
