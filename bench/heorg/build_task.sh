#!/usr/bin/env bash
# Builds the submission's seven stage executables (cargo, release) and copies them, with the model file
# they read, into TASK_DIR/build — where the suite's harness runs them (it calls
# `scripts/build_task.sh ./submission` and then `submission/build/<stage>`).
#
#   bench/heorg/build_task.sh [TASK_DIR]      # default TASK_DIR: bench/heorg
#
# Honours CARGO_TARGET_DIR and CARGO_BUILD_JOBS (e.g. CARGO_BUILD_JOBS=1 on a loaded machine).
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd -- "$HERE/../.." && pwd)"
TASK_DIR="${1:-$HERE}"
BUILD="$TASK_DIR/build"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
STAGES=(client_key_generation server_preprocess_model client_preprocess_input client_encode_encrypt_input
        server_encrypted_compute client_decrypt_decode client_postprocess)

cargo build --release --locked --manifest-path "$REPO/Cargo.toml" -p more-heorg --bins
mkdir -p "$BUILD"
for s in "${STAGES[@]}"; do
    cp -f "$TARGET/release/$s" "$BUILD/$s"
done
cp -f "$REPO/models/mnist-bfv-square.bfv.json" "$BUILD/"
echo "[build_task] ${#STAGES[@]} executables and the model in $BUILD"
