#!/usr/bin/env bash
# Capacity of one more-server for a class: the lesson's requests under load, on 127.0.0.1 only, bounded in
# time. Creates one challenge, then runs wrk on what students send: GET /api/v1/challenges/{id} (the
# challenge's description), GET .../ciphertext (35.7 KB of wire format: 4 f64 planes of 18x62) and POST .../answers (a full image
# answer, 1116 values, under 500 names), plus GET /web/learn.html (the page itself).
#
#   bench/class.sh            # DURATION=10 CONNECTIONS=64 THREADS=2 PORT=18090 by default
#
# Needs wrk (apt-get install wrk) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18090}
ADDR=127.0.0.1:$PORT
TOKEN=bench-teacher-token-$RANDOM$RANDOM
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

cargo build --release -q -p more-server --bin more-server
"${CARGO_TARGET_DIR:-target}/release/more-server" --addr "$ADDR" --models models --web . \
  --teacher-token "$TOKEN" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$ADDR/api/v1/health" >/dev/null && break; sleep 0.1; done

ID=$(curl -sf -X POST -H "authorization: Bearer $TOKEN" "http://$ADDR/api/v1/challenges" | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')
echo "challenge $ID"
run() {
  echo "== $1"
  shift
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx"
}
run "GET /api/v1/challenges/{id}" "http://$ADDR/api/v1/challenges/$ID"
run "GET /api/v1/challenges/{id}/ciphertext" "http://$ADDR/api/v1/challenges/$ID/ciphertext"
CHALLENGE_PATH=/api/v1/challenges/$ID/answers run "POST /api/v1/challenges/{id}/answers" -s bench/answer.lua "http://$ADDR"
run "GET /web/learn.html" "http://$ADDR/web/learn.html"
echo "server RSS after the run: $(awk '/VmRSS/ {print $2 " kB"}' /proc/$PID/status)"
