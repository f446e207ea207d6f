#!/usr/bin/env bash
# Fuzzing with libFuzzer: the targets in fuzz/fuzz_targets, one per decoder of untrusted bytes.
#
#   scripts/fuzz.sh TARGET [SECONDS]   # run one target (default 60 s) from its seed corpus: cargo-fuzz,
#                                      # nightly Rust, AddressSanitizer (installs both if missing)
#   scripts/fuzz.sh --smoke [SECONDS]  # every target for SECONDS each (default 10): the test-suite stage.
#                                      # Stable Rust, coverage instrumentation only, no sanitizer: nothing
#                                      # to install, and a panic is what the targets look for (the crates
#                                      # are safe Rust; the long runs keep AddressSanitizer for the rest)
#   scripts/fuzz.sh --list             # the targets
#
# Seeds: fuzz/corpus/TARGET (committed, read only). Inputs the fuzzer finds interesting go to
# fuzz/work/TARGET and crashes to fuzz/artifacts/TARGET (both ignored by git); a crash fails the run and
# prints the command that reproduces it. Extra libFuzzer flags: FUZZ_ARGS="-max_len=4096 ...".
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*" >&2; }

# The smoke build: the instrumentation cargo-fuzz asks rustc for (SanitizerCoverage counters, comparison
# tracing, `--cfg fuzzing`) without its sanitizer, which is the one nightly-only flag, and with the release
# profile's usual codegen units but no debug information (a smaller, faster build; a panic still names its
# file and line). libfuzzer-sys brings libFuzzer itself.
SMOKE_TARGET_DIR=fuzz/target/smoke
smoke_build() {
  local triple
  triple=$(rustc -vV | sed -n 's/^host: //p')
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Cdebug-assertions" \
    CARGO_PROFILE_RELEASE_DEBUG=0 cargo build --manifest-path fuzz/Cargo.toml --release --bins --target "$triple" \
    --target-dir "$SMOKE_TARGET_DIR" >&2
  SMOKE_BIN_DIR="$SMOKE_TARGET_DIR/$triple/release"
}

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^more-fuzz$'; }

# run TARGET SECONDS [BINARY]: through cargo-fuzz, or the smoke build's binary when one is given.
run() {
  local target=$1 seconds=$2 binary=${3:-}
  [ -d "fuzz/corpus/$target" ] || { log "no seed corpus fuzz/corpus/$target"; exit 2; }
  mkdir -p "fuzz/work/$target" "fuzz/artifacts/$target"
  log "$target: ${seconds}s"
  # -rss_limit_mb: the decoders must refuse huge declared sizes long before 2 GB.
  local flags=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    -artifact_prefix="artifacts/$target/" ${FUZZ_ARGS:-})
  if [ -n "$binary" ]; then
    (cd fuzz && "../$binary" "work/$target" "corpus/$target" "${flags[@]}")
  else
    (cd fuzz && cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- "${flags[@]}")
  fi 2>&1 | tee "fuzz/work/$target.log" |
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|Done |==[0-9]+==|SUMMARY|thread .* panicked|Test unit written|artifact_prefix)' || true
  # tee hides cargo-fuzz's status: a crash leaves its input in artifacts/ and libFuzzer's "Test unit
  # written" line in the log.
  if grep -q 'Test unit written\|deadly signal\|panicked' "fuzz/work/$target.log"; then
    log "$target: FAILED (full log: fuzz/work/$target.log)"
    return 1
  fi
}

case "${1:-}" in
  --list) targets ;;
  --smoke)
    seconds=${2:-10}
    # Optimised, as the long runs: an unoptimised build compiles in less than half the time but spends
    # over a minute on one input of the BFV targets (fhe.rs's parameter set-up under coverage
    # instrumentation), past libFuzzer's timeout.
    smoke_build
    failed=0
    for t in $(targets); do run "$t" "$seconds" "$SMOKE_BIN_DIR/$t" || failed=1; done
    exit $failed ;;
  ""|-h|--help) sed -n '2,14p' "$0"; exit 2 ;;
  *)
    targets | grep -qx "$1" || { log "unknown target $1 (scripts/fuzz.sh --list)"; exit 2; }
    scripts/setup.sh fuzz
    run "$1" "${2:-60}" ;;
esac
