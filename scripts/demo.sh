#!/usr/bin/env bash
# The demo: builds the wasm and the page, builds the release server, starts it with the bundled models
# (the sample angiograms and the training page's sample digits when ../shared/data has them) and prints
# the URL.
#
#   ./scripts/demo.sh                 # http://127.0.0.1:8080/
#   ADDR=127.0.0.1:9000 ./scripts/demo.sh --workers 2
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=${ADDR:-127.0.0.1:8080}
if [ -x scripts/setup.sh ]; then scripts/setup.sh wasm; fi
if [ -x scripts/build-web.sh ]; then
  scripts/build-web.sh
else
  echo "scripts/build-web.sh is missing: serving the page without rebuilding web/pkg" >&2
fi
cargo build --release -p more-server
ARGS=(--addr "$ADDR" --models models --web .)
SAMPLES=${SAMPLES:-../shared/data/angio/samples}
if [ -d "$SAMPLES" ]; then ARGS+=(--samples "$SAMPLES"); fi
# MNIST sample digits for the training page (web/train.html), when the data directory has them.
DATA=${DATA:-../shared/data}
if [ -d "$DATA/mnist" ]; then ARGS+=(--training-data "$DATA"); fi
echo
echo "  Open http://$ADDR/  (Ctrl-C stops the server)"
echo
exec "${CARGO_TARGET_DIR:-target}/release/more-server" "${ARGS[@]}" "$@"
