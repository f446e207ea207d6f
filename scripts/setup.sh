#!/usr/bin/env bash
# Installs what a fresh machine lacks for building, testing and running the demo; fast when all is present.
# Usage: scripts/setup.sh [rust|wasm|browser|ops|fuzz|all]   (default: all)
#   ops:  Debian's prometheus (the /metrics scrape test), nginx and wrk (bench/scale.sh, bench/load.sh),
#         redis-server (the shared-state test, crates/server/tests/shared_state.rs)
#   fuzz: nightly Rust and cargo-fuzz (long runs of scripts/fuzz.sh; its smoke run needs neither)
set -euo pipefail
cd "$(dirname "$0")/.."

want=${1:-all}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

setup_rust() {
  command -v cargo >/dev/null || { log "cargo not found: install Rust with rustup first"; exit 1; }
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || { log "adding rustup component $c"; rustup component add "$c"; }
  done
}

wasm_bindgen_version() {
  # The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
  awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock
}

setup_wasm() {
  rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || {
    log "adding rustup target wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
  local v; v=$(wasm_bindgen_version)
  [ -n "$v" ] || v=0.2.130
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $v\$"; then
    log "installing wasm-bindgen-cli $v (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$v" --locked || cargo install wasm-bindgen-cli --version "$v"
  fi
  # binaryen from npm: Debian's wasm-opt 108 produces broken modules (it fails to load in the browser).
  if [ ! -x tools/node_modules/.bin/wasm-opt ] || [ ! -d tools/node_modules/katex ]; then
    log "installing npm binaryen (wasm-opt), playwright-core, axe-core and katex into tools/"
    (cd tools && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

setup_browser() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    log "installing Debian chromium + chromium-driver"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  [ -d tools/node_modules/playwright-core ] && [ -d tools/node_modules/axe-core ] || (cd tools && npm ci --no-audit --no-fund --loglevel=error)
}

setup_ops() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian ${missing[*]}"
    as_root apt-get update -qq
    # policy-rc.d 101: the packages' services are not started (the tests start their own instances).
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
      as_root chmod +x /usr/sbin/policy-rc.d
      own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    [ "$own_policy" = 0 ] || as_root rm -f /usr/sbin/policy-rc.d
  fi
}

setup_fuzz() {
  rustup toolchain list | grep -q '^nightly' || {
    log "installing the nightly toolchain (minimal profile)"; rustup toolchain install nightly --profile minimal; }
  cargo fuzz --version >/dev/null 2>&1 || {
    log "installing cargo-fuzz (a few minutes, once)"; cargo install cargo-fuzz --locked || cargo install cargo-fuzz; }
}

case "$want" in
  rust) setup_rust ;;
  wasm) setup_rust; setup_wasm ;;
  browser) setup_rust; setup_wasm; setup_browser ;;
  ops) setup_ops ;;
  fuzz) setup_rust; setup_fuzz ;;
  all) setup_rust; setup_wasm; setup_browser; setup_ops; setup_fuzz ;;
  *) echo "usage: $0 [rust|wasm|browser|ops|fuzz|all]" >&2; exit 2 ;;
esac
