#!/usr/bin/env bash
# Scale-out check on 127.0.0.1 only, bounded in time: 2 more-server replicas behind nginx
# (deploy/nginx.conf), a wrk load through nginx, and a rolling restart during it (SIGTERM one replica, wait
# for it to finish its open requests and exit, start it again, wait for /api/v1/health, then the next).
# Passes when no request failed: wrk counts non-2xx answers and socket errors (connect, read, write,
# timeout).
#
#   bench/scale.sh          # DURATION=24 CONNECTIONS=16 MODEL=mnist-cnn-relu PORT=18280 by default
#   NGINX_CONF=my.conf bench/scale.sh   # another config with the same listen/server lines
#
# Needs nginx and wrk (scripts/setup.sh ops installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-24}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-18280}
MODEL=${MODEL:-mnist-cnn-relu}
WORKERS=${WORKERS:-1}
NGINX_CONF=${NGINX_CONF:-deploy/nginx.conf}
OUT=${OUT:-/tmp/more-scale}
REPLICAS=(127.0.0.1:$((PORT + 1)) 127.0.0.1:$((PORT + 2)))
for tool in nginx wrk curl; do
  command -v $tool >/dev/null || { echo "$tool is not installed (scripts/setup.sh ops)" >&2; exit 1; }
done
rm -rf "$OUT" && mkdir -p "$OUT/lb/tmp"
target=${CARGO_TARGET_DIR:-target}

cargo build --release -q -p more-server --bin more-server --example bench_body
"$target/release/examples/bench_body" write "$OUT/body.bin" "models/$MODEL.morenn" 0

declare -A PIDS
start_replica() {
  local addr=$1
  "$target/release/more-server" --addr "$addr" --models models --workers "$WORKERS" --trusted-proxy 127.0.0.1 --log-json \
    >>"$OUT/replica-${addr##*:}.log" 2>&1 &
  PIDS[$addr]=$!
  for _ in $(seq 100); do curl -sf "http://$addr/api/v1/health" >/dev/null && return 0; sleep 0.1; done
  echo "replica $addr did not start" >&2; return 1
}
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$OUT/lb/nginx.pid" ] && kill "$(cat "$OUT/lb/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

for r in "${REPLICAS[@]}"; do start_replica "$r"; done
# The reference config with this run's ports.
sed -e "s/listen 127.0.0.1:8080;/listen 127.0.0.1:$PORT;/" \
    -e "s/server 127.0.0.1:8081 /server ${REPLICAS[0]} /" \
    -e "s/server 127.0.0.1:8082 /server ${REPLICAS[1]} /" "$NGINX_CONF" >"$OUT/lb/nginx.conf"
nginx -t -q -p "$OUT/lb/" -c "$OUT/lb/nginx.conf"
nginx -p "$OUT/lb/" -c "$OUT/lb/nginx.conf"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
echo "2 replicas (${REPLICAS[*]}, $WORKERS worker(s) each) behind nginx on 127.0.0.1:$PORT"

# Correctness through the balancer: one request, decrypted and checked.
curl -sf -H 'content-type: application/x-more-tensor' --data-binary @"$OUT/body.bin" \
  -o "$OUT/answer.bin" "http://127.0.0.1:$PORT/api/v1/models/$MODEL/infer"
"$target/release/examples/bench_body" check "$OUT/answer.bin" "models/$MODEL.morenn" 0

echo "== wrk through nginx: $CONNECTIONS connections, ${DURATION}s, rolling restart during it"
BODY="$OUT/body.bin" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/post.lua \
  "http://127.0.0.1:$PORT/api/v1/models/$MODEL/infer" >"$OUT/wrk.txt" &
WRK=$!
sleep $((DURATION / 6))
for r in "${REPLICAS[@]}"; do
  t0=$(date +%s.%N)
  kill -TERM "${PIDS[$r]}"
  wait "${PIDS[$r]}" && code=0 || code=$?
  t1=$(date +%s.%N)
  start_replica "$r"
  t2=$(date +%s.%N)
  printf 'restarted %s: SIGTERM -> exit %d in %.2f s, back up (health 200) in %.2f s\n' \
    "$r" "$code" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)"
  sleep $((DURATION / 4))
done
wait $WRK
grep RESULT "$OUT/wrk.txt"
for r in "${REPLICAS[@]}"; do
  n=$(grep -c '"inferred"' "$OUT/replica-${r##*:}.log" || true)
  echo "replica $r answered $n inferences (both runs)"
done
retried=$(grep -c 'upstream' "$OUT/lb/error.log" 2>/dev/null || true)
echo "nginx error-log lines naming an upstream (connection refused/closed, retried elsewhere): $retried"
read -r non2xx errors < <(sed -n 's/.*non2xx=\([0-9]*\) connect=\([0-9]*\) read=\([0-9]*\) write=\([0-9]*\) timeout=\([0-9]*\).*/\1 \2+\3+\4+\5/p' "$OUT/wrk.txt" | awk '{split($2, a, "+"); print $1, a[1]+a[2]+a[3]+a[4]}')
requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$OUT/wrk.txt")
echo "requests $requests, non-2xx $non2xx, socket errors $errors"
if [ "$non2xx" = 0 ] && [ "$errors" = 0 ] && [ "${requests:-0}" -gt 0 ]; then
  echo "PASS: zero failed requests through the rolling restart"
else
  echo "FAIL: failed requests through the rolling restart" >&2; exit 1
fi
