#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer, nightly Rust): the targets in fuzz/fuzz_targets, one per decoder of
# untrusted bytes. Installs the nightly toolchain and cargo-fuzz if they are missing.
#
#   scripts/fuzz.sh TARGET [SECONDS]   # run one target (default 60 s) from its seed corpus
#   scripts/fuzz.sh --smoke [SECONDS]  # every target for SECONDS each (default 10): the test-suite stage
#   scripts/fuzz.sh --list             # the targets
#
# Seeds: fuzz/corpus/TARGET (committed, read only). Inputs the fuzzer finds interesting go to
# fuzz/work/TARGET and crashes to fuzz/artifacts/TARGET (both ignored by git); a crash fails the run and
# prints the command that reproduces it. Extra libFuzzer flags: FUZZ_ARGS="-max_len=4096 ...".
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*" >&2; }

if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain (minimal profile)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (a few minutes, once)"
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^more-fuzz$'; }

run() {
  local target=$1 seconds=$2
  [ -d "fuzz/corpus/$target" ] || { log "no seed corpus fuzz/corpus/$target"; exit 2; }
  mkdir -p "fuzz/work/$target" "fuzz/artifacts/$target"
  log "$target: ${seconds}s"
  # -rss_limit_mb: the decoders must refuse huge declared sizes long before 2 GB.
  (cd fuzz && cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" ${FUZZ_ARGS:-}) 2>&1 | tee "fuzz/work/$target.log" |
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
    # Optimised, as the long runs: an unoptimised build (--dev) compiles in less than half the time but
    # spends over a minute on one input of the BFV targets (fhe.rs's parameter set-up under coverage
    # instrumentation), past libFuzzer's timeout.
    (cd fuzz && cargo +nightly fuzz build) >&2
    failed=0
    for t in $(targets); do run "$t" "$seconds" || failed=1; done
    exit $failed ;;
  ""|-h|--help) sed -n '2,13p' "$0"; exit 2 ;;
  *)
    targets | grep -qx "$1" || { log "unknown target $1 (scripts/fuzz.sh --list)"; exit 2; }
    run "$1" "${2:-60}" ;;
esac
