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
export CARGO_PROFILE_RELEASE_OPT_LEVEL=${WASM_OPT_LEVEL:-s}
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
log "cargo build --release -p more-wasm --target wasm32-unknown-unknown (opt-level $CARGO_PROFILE_RELEASE_OPT_LEVEL, LTO)"
cargo build --release -p more-wasm --target wasm32-unknown-unknown
out=web/pkg
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
wasm-bindgen --target web --no-typescript --out-dir "$out.tmp" --out-name more_wasm \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/more_wasm.wasm"
log "wasm-opt -Oz"
"$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --strip-debug --strip-producers \
  -o "$out.tmp/more_wasm_bg.opt.wasm" "$out.tmp/more_wasm_bg.wasm"
mv "$out.tmp/more_wasm_bg.opt.wasm" "$out.tmp/more_wasm_bg.wasm"
rm -rf "$out" && mv "$out.tmp" "$out"
raw=$(stat -c %s "$out/more_wasm_bg.wasm")
gz=$(gzip -9 -c "$out/more_wasm_bg.wasm" | wc -c)
log "web/pkg/more_wasm_bg.wasm: $raw bytes raw, $gz bytes gzipped (-9)"
# The BFV module (more-wasm-bfv), a separate file loaded by the page only when BFV is used, so the MORE
# page's module stays small. Same size-tuned profile.
log "cargo build --release -p more-wasm-bfv --target wasm32-unknown-unknown"
cargo build --release -p more-wasm-bfv --target wasm32-unknown-unknown
target_dir=${CARGO_TARGET_DIR:-target}
bfv_out=web/pkg-bfv
rm -rf "$bfv_out.tmp" && mkdir -p "$bfv_out.tmp"
wasm-bindgen --target web --no-typescript --out-dir "$bfv_out.tmp" --out-name more_wasm_bfv \
  "$target_dir/wasm32-unknown-unknown/release/more_wasm_bfv.wasm"
"$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --strip-debug --strip-producers \
  -o "$bfv_out.tmp/more_wasm_bfv_bg.opt.wasm" "$bfv_out.tmp/more_wasm_bfv_bg.wasm"
mv "$bfv_out.tmp/more_wasm_bfv_bg.opt.wasm" "$bfv_out.tmp/more_wasm_bfv_bg.wasm"
rm -rf "$bfv_out" && mv "$bfv_out.tmp" "$bfv_out"
raw=$(stat -c %s "$bfv_out/more_wasm_bfv_bg.wasm")
gz=$(gzip -9 -c "$bfv_out/more_wasm_bfv_bg.wasm" | wc -c)
log "web/pkg-bfv/more_wasm_bfv_bg.wasm: $raw bytes raw, $gz bytes gzipped (-9)"

scripts/vendor-katex.sh
