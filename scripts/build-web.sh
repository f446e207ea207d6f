#!/usr/bin/env bash
# Builds the browser module: release wasm -> wasm-bindgen --target web -> web/pkg -> wasm-opt -Oz (npm
# binaryen from tools/, NOT Debian's wasm-opt 108, which produces modules that fail in the browser).
# Prints the module size raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[build-web]\033[0m %s\n' "$*" >&2; }

want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}') || true
if [ -z "$have" ] || [ "$have" != "$want" ]; then
  log "wasm-bindgen CLI ${have:-missing} does not match the crate ($want): run scripts/setup.sh wasm"; exit 1
fi
wasm_opt=tools/node_modules/.bin/wasm-opt
[ -x "$wasm_opt" ] || { log "$wasm_opt missing: run scripts/setup.sh wasm"; exit 1; }

# Size-tuned release profile for the wasm build only (the shared [profile.release] stays as it is):
# opt-level s + fat LTO + 1 codegen unit: ~100 KB gzipped instead of ~122 KB with the default profile.
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
target_dir=${CARGO_TARGET_DIR:-target}

# build_module CRATE NAME OUT_DIR OPT_LEVEL WASM_OPT_FLAG [RUSTFLAGS] [FEATURES]: cargo build -> wasm-bindgen ->
# wasm-opt -> OUT_DIR.
build_module() {
  local crate=$1 name=$2 out=$3 level=$4 opt=$5 flags=${6:-} features=${7:-}
  log "cargo build --release -p $crate --target wasm32-unknown-unknown (opt-level $level, LTO${flags:+, $flags}${features:+, features $features})"
  RUSTFLAGS="${RUSTFLAGS:-} $flags" CARGO_PROFILE_RELEASE_OPT_LEVEL=$level \
    cargo build --release -p "$crate" --target wasm32-unknown-unknown ${features:+--features "$features"}
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  wasm-bindgen --target web --no-typescript --out-dir "$out.tmp" --out-name "$name" \
    "$target_dir/wasm32-unknown-unknown/release/$name.wasm"
  log "wasm-opt $opt"
  "$wasm_opt" "$opt" --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-simd --strip-debug --strip-producers \
    -o "$out.tmp/${name}_bg.opt.wasm" "$out.tmp/${name}_bg.wasm"
  mv "$out.tmp/${name}_bg.opt.wasm" "$out.tmp/${name}_bg.wasm"
  rm -rf "$out" && mv "$out.tmp" "$out"
  local raw gz
  raw=$(stat -c %s "$out/${name}_bg.wasm")
  gz=$(gzip -9 -c "$out/${name}_bg.wasm" | wc -c)
  log "$out/${name}_bg.wasm: $raw bytes raw, $gz bytes gzipped (-9)"
}

# The main page's module: small.
build_module more-wasm more_wasm web/pkg "${WASM_OPT_LEVEL:-s}" -Oz
# The same crate with the ONNX import (feature onnx), loaded by the main page only when the user imports their
# own model (web/own-model.js): the import (more-nn, the protobuf decoder) would double the page's module.
build_module more-wasm more_wasm web/pkg-onnx "${WASM_OPT_LEVEL:-s}" -Oz "" onnx
# The BFV module (more-wasm-bfv), a separate file loaded by the page only when BFV is used, so the MORE
# page's module stays small.
build_module more-wasm-bfv more_wasm_bfv web/pkg-bfv "${WASM_OPT_LEVEL:-s}" -Oz
# The training page's module (more-wasm-train): it trains networks and simulates patients in the page,
# so it is built for speed.
build_module more-wasm-train more_wasm_train web/pkg-train 3 -O3 "-C target-feature=+simd128"

scripts/vendor-katex.sh
