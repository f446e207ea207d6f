#!/usr/bin/env bash
# Hostile clients and a normal one, on 127.0.0.1 only, bounded in time: the release server with default
# flags; a normal client (wrk, 1 thread, 2 connections) posting one encrypted MNIST image to
# mnist-cnn-relu, first alone for BASELINE seconds, then for DURATION seconds while bench/hostile.py runs
# four attacks at once (slow training uploads, silent chunked key uploads, key messages sent and the socket
# closed, replays of a job's event stream). Prints what the normal client saw (answers, p50/p99, alone and
# under attack), what the attackers got, and the server's peak RSS against the bound it printed; the same
# as JSON in $OUT/hostile.json.
#
#   bench/hostile.sh          # DURATION=60 BASELINE=10 PORT=18380 by default
#
# Needs wrk, curl and python3, and the MNIST test set in ../shared/data (or $MORE_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
BASELINE=${BASELINE:-10}
PORT=${PORT:-18380}
ADDR=127.0.0.1:$PORT
MODEL=mnist-cnn-relu
OUT=${OUT:-/tmp/more-hostile}
for tool in wrk curl python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (scripts/setup.sh ops installs wrk)" >&2; exit 1; }
done
rm -rf "$OUT" && mkdir -p "$OUT/jobs"
target=${CARGO_TARGET_DIR:-target}
echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

cargo build --release -q -p more-server --bin more-server --example bench_body
"$target/release/examples/bench_body" write "$OUT/body.bin" "models/$MODEL.morenn" 0 >/dev/null
"$target/release/examples/bench_body" bfv-keys "$OUT/keys.bin" >/dev/null
# 2,000 rows in batches of one: a step event per row.
"$target/release/examples/bench_body" job "$OUT/job.bin" 2000 200 1 >/dev/null

"$target/release/more-server" --addr "$ADDR" --models models --web . --jobs-dir "$OUT/jobs" --log-json \
  >"$OUT/stdout.txt" 2>"$OUT/server.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$ADDR/api/v1/health" >/dev/null && break; sleep 0.1; done
bound_bytes=$(curl -sf "http://$ADDR/api/v1/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory"]["bound_bytes"])')
( while kill -0 $PID 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$PID/status >> "$OUT/rss.txt" 2>/dev/null || true; sleep 0.1; done ) &

normal() { BODY="$OUT/body.bin" wrk -t1 -c2 -d"$1s" --latency -s bench/post.lua "http://$ADDR/api/v1/models/$MODEL/infer" | grep RESULT; }
echo "normal client alone, ${BASELINE}s:"
alone=$(normal "$BASELINE"); echo "  $alone"
python3 bench/hostile.py "$ADDR" "$DURATION" "$OUT/keys.bin" "$OUT/job.bin" >"$OUT/attacks.json" &
ATTACK=$!
sleep 1
echo "normal client under the four attacks, $((DURATION - 2))s:"
attacked=$(normal $((DURATION - 2))); echo "  $attacked"
wait $ATTACK
peak_kb=$(sort -n "$OUT/rss.txt" | tail -1)
curl -sf -H 'content-type: application/x-more-tensor' --data-binary @"$OUT/body.bin" -o "$OUT/answer.bin" \
  "http://$ADDR/api/v1/models/$MODEL/infer"
"$target/release/examples/bench_body" check "$OUT/answer.bin" "models/$MODEL.morenn" 0

python3 - "$alone" "$attacked" "$OUT/attacks.json" "$peak_kb" "$bound_bytes" "$OUT/hostile.json" <<'PY'
import json, sys
def parse(line):
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
alone, attacked = parse(sys.argv[1]), parse(sys.argv[2])
attacks = json.load(open(sys.argv[3]))
peak, bound = int(sys.argv[4]) * 1024, int(sys.argv[5])
out = {"alone": alone, "attacked": attacked, "attacks": attacks, "peak_rss_bytes": peak, "bound_bytes": bound,
       "p99_ratio": attacked["p99_ms"] / alone["p99_ms"], "rss_within_bound": peak <= bound}
json.dump(out, open(sys.argv[6], "w"), indent=1)
print("| normal client | requests | non-2xx | socket errors | p50 | p99 |")
print("|---|---|---|---|---|---|")
for name, r in (("alone", alone), ("under attack", attacked)):
    errors = int(r["connect"] + r["read"] + r["write"] + r["timeout"])
    print(f"| {name} | {int(r['requests'])} | {int(r['non2xx'])} | {errors} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms |")
print(f"p99 under attack / alone: {out['p99_ratio']:.2f}x")
for name, a in attacks.items():
    print(f"attack {name}: {a['connections']} connections, answers {a['answers']}")
print(f"peak RSS {peak / 2**20:.1f} MiB of the printed bound {bound / 2**20:.1f} MiB ({'within' if peak <= bound else 'OVER'})")
PY
