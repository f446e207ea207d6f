#!/usr/bin/env bash
# Load test of more-server on 127.0.0.1 only, bounded in time: encrypted MNIST inferences/s, latency
# percentiles at 32 connections, peak server RSS, and RSS while a flood of oversized bodies is rejected.
#
#   bench/load.sh                 # DURATION=10 CONNECTIONS=32 THREADS=2 PORT=18080 by default
#
# Needs wrk (apt-get install wrk) and the MNIST test set in ../shared/data (or $MORE_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
MODEL=${MODEL:-mnist-cnn-relu}
OUT=${OUT:-/tmp/more-bench}
ADDR=127.0.0.1:$PORT
mkdir -p "$OUT"
echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p more-server --bin more-server --example bench_body
BIN=${CARGO_TARGET_DIR:-target}/release
"$BIN"/examples/bench_body write "$OUT/body.bin" "models/$MODEL.morenn" 0
head -c $((4 << 20)) /dev/zero > "$OUT/oversized.bin"   # 4 MiB: above the per-model limit

"$BIN"/more-server --addr "$ADDR" --models models --log-json \
  ${SERVER_ARGS:-} >"$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; kill $SAMPLER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$ADDR/api/v1/health" >/dev/null && break; sleep 0.1; done

# Peak RSS sampler (kB), every 50 ms, from /proc.
: > "$OUT/rss.txt"
( while kill -0 $PID 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$PID/status >> "$OUT/rss.txt" 2>/dev/null || true; sleep 0.05; done ) &
SAMPLER=$!
peak() { sort -n "$OUT/rss.txt" | tail -1; }

# Correctness first: one request, decrypted and compared with the plaintext model.
curl -sf -H 'content-type: application/x-more-tensor' --data-binary @"$OUT/body.bin" \
  -D "$OUT/headers.txt" -o "$OUT/answer.bin" "http://$ADDR/api/v1/models/$MODEL/infer"
grep -i '^server-timing' "$OUT/headers.txt"
"$BIN"/examples/bench_body check "$OUT/answer.bin" "models/$MODEL.morenn" 0
echo "idle RSS: $(peak) kB"

echo "== warm-up (2 s)"
BODY="$OUT/body.bin" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s bench/post.lua "http://$ADDR/api/v1/models/$MODEL/infer" | grep RESULT
echo "== encrypted $MODEL inference: $CONNECTIONS connections, ${DURATION}s"
BODY="$OUT/body.bin" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/post.lua \
  "http://$ADDR/api/v1/models/$MODEL/infer" | tee "$OUT/wrk-infer.txt" | grep RESULT
echo "peak RSS under load: $(peak) kB"
# Server-side time per request (decode + queue + compute) from the JSON log lines, vs wrk's end-to-end.
python3 - "$OUT/server.log" <<'PY'
import json, sys
t = []
for line in open(sys.argv[1]):
    try:
        f = json.loads(line)["fields"]
    except Exception:
        continue
    if f.get("message") == "inferred":
        t.append((f["decode_us"] + f["queue_us"] + f["compute_us"]) / 1000)
t.sort()
if t:
    q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
    print(f"server-side (decode+queue+compute) over {len(t)} requests: p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms")
PY

: > "$OUT/rss.txt"
echo "== flood of 4 MiB bodies (answered 413): $CONNECTIONS connections, 5s"
BODY="$OUT/oversized.bin" wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s bench/post.lua \
  "http://$ADDR/api/v1/models/$MODEL/infer" | tee "$OUT/wrk-flood.txt" | grep RESULT
echo "peak RSS during the flood: $(peak) kB"

# Still answers correctly afterwards.
curl -sf -H 'content-type: application/x-more-tensor' --data-binary @"$OUT/body.bin" \
  -o "$OUT/answer.bin" "http://$ADDR/api/v1/models/$MODEL/infer"
"$BIN"/examples/bench_body check "$OUT/answer.bin" "models/$MODEL.morenn" 0
kill -TERM $PID; wait $PID 2>/dev/null || true
echo "server stopped (SIGTERM)"
