#!/usr/bin/env bash
# Installs what a fresh machine lacks for building, testing and running the demo; fast when all is present.
# Usage: scripts/setup.sh [rust|wasm|browser|all]   (default: all)
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

case "$want" in
  rust) setup_rust ;;
  wasm) setup_rust; setup_wasm ;;
  browser) setup_rust; setup_wasm; setup_browser ;;
  all) setup_rust; setup_wasm; setup_browser ;;
  *) echo "usage: $0 [rust|wasm|browser|all]" >&2; exit 2 ;;
esac
