#!/usr/bin/env bash
# wasm-bindgen-test tests of crates/wasm (and more-imaging) in headless Chromium (debug module).
# Needs: rustup target wasm32-unknown-unknown, wasm-bindgen-cli matching Cargo.lock (its
# wasm-bindgen-test-runner), chromium + chromedriver on PATH — scripts/setup.sh browser installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
command -v chromedriver >/dev/null || { echo "chromedriver not found: run scripts/setup.sh browser" >&2; exit 1; }
# Never `-q`: the runner rejects --quiet.
cargo test -p more-wasm --target wasm32-unknown-unknown "$@"
