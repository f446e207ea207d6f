#!/usr/bin/env bash
# The demo: builds the wasm, starts the server with the bundled models, prints the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d crates/server ]; then
  echo "The demo server is not built yet (see the issues); ./scripts/test.sh runs what exists." >&2
  exit 1
fi
scripts/setup.sh wasm
scripts/build-web.sh
cargo build --release -p more-server
exec target/release/more-server --addr "${ADDR:-127.0.0.1:8080}" --models models --web . "$@"
