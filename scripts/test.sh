#!/usr/bin/env bash
# The one test command (README "Getting started"; CI runs it through .ci/run).
# Installs what is missing, then: format check, clippy, native tests, wasm tests, browser end-to-end tests,
# and a short run of every fuzz target (FUZZ_SECONDS each, default 5; FUZZ_SECONDS=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Each stage line carries the minutes and seconds since the start, so a log shows where the time went.
stage() { printf '\n\033[1m== %s\033[0m (at %dm%02ds)\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)) >&2; }

have_wasm=0; [ -d crates/wasm ] && have_wasm=1
have_e2e=0; [ -f tests/e2e/run.mjs ] && have_e2e=1

stage "setup"
if [ "$have_e2e" = 1 ]; then scripts/setup.sh browser
elif [ "$have_wasm" = 1 ]; then scripts/setup.sh wasm
else scripts/setup.sh rust; fi
scripts/setup.sh ops

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

stage "cargo test"
cargo test --workspace

if [ "$have_wasm" = 1 ]; then
  stage "wasm tests (wasm-bindgen-test, headless Chromium)"
  scripts/wasm-test.sh
fi
if [ "$have_e2e" = 1 ]; then
  stage "browser end-to-end (Playwright, real server, optimised wasm)"
  scripts/build-web.sh
  # The server binary `cargo test` has just built (test profile: dependencies optimised, fhe.rs at
  # opt-level 3), not a second, release build of the whole server: the browser tests ran as fast with it
  # and a fresh machine saves the release build's minutes. The demo command builds the release server.
  MORE_SERVER="${CARGO_TARGET_DIR:-target}/debug/more-server" node tests/e2e/run.mjs
fi
if [ "${FUZZ_SECONDS:-5}" != 0 ]; then
  stage "fuzz smoke run (libFuzzer on stable Rust, ${FUZZ_SECONDS:-5}s per target)"
  scripts/fuzz.sh --smoke "${FUZZ_SECONDS:-5}"
fi
stage "all tests passed"
