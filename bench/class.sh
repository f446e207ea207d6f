#!/usr/bin/env bash
# A class on 127.0.0.1 only, bounded in time. Two modes:
#
#   bench/class.sh          # the class simulation (below); STUDENTS=200 CONCURRENCY=16 BFV_EVERY=5 PORT=18380
#   bench/class.sh --wrk    # one server's capacity for the lesson's requests under wrk (the second section)
#
# The class simulation: Debian's redis-server (no persistence), two more-server replicas sharing it
# (--state redis://…, the same --teacher-token, --trusted-proxy 127.0.0.1/32, a --jobs-dir each) behind
# nginx with the reference deploy/nginx.conf, and `more-class-sim` (crates/class-sim) running STUDENTS
# students through nginx, all from one address: each loads the lesson, breaks the challenge and answers it
# wrong then right, every BFV_EVERY-th classifies a digit under BFV, each trains a small job on encrypted
# patients and checks the decrypted model. When half the students are done, the first replica is
# restarted (SIGTERM, wait for its exit, start it again, wait for /api/v1/health). Prints the
# simulation's JSON and the peak resident set (VmHWM) of every process, read before it is stopped, as
# one JSON object (also in $OUT/result.json); exits 1 if anything was lost.
#
# Needs nginx, redis-server and curl (scripts/setup.sh ops installs them); --wrk needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

# ---- Section 1: the class simulation through nginx and two replicas, with a restart half-way ----
class_simulation() {
  # Globals: the exit trap needs them after this function has returned.
  STUDENTS=${STUDENTS:-200} CONCURRENCY=${CONCURRENCY:-16} BFV_EVERY=${BFV_EVERY:-5}
  PORT=${PORT:-18380} OUT=${OUT:-/tmp/more-class}
  REDIS_PORT=$((PORT + 9))
  REPLICAS=(127.0.0.1:$((PORT + 1)) 127.0.0.1:$((PORT + 2)))
  TOKEN=bench-teacher-token-$RANDOM$RANDOM
  for tool in nginx redis-server curl; do
    command -v $tool >/dev/null || { echo "$tool is not installed (scripts/setup.sh ops)" >&2; exit 1; }
  done
  echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  rm -rf "$OUT" && mkdir -p "$OUT/lb/tmp"
  cargo build --release -q -p more-server --bin more-server -p more-class-sim --bin more-class-sim

  declare -gA PIDS=()
  REDIS_PID=
  cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$OUT/lb/nginx.pid" ] && kill "$(cat "$OUT/lb/nginx.pid")" 2>/dev/null || true
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  }
  trap cleanup EXIT

  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break; sleep 0.1; done

  start_replica() {
    local addr=$1
    "$target/release/more-server" --addr "$addr" --models models --web . \
      --state "redis://127.0.0.1:$REDIS_PORT/0" --teacher-token "$TOKEN" --trusted-proxy 127.0.0.1/32 \
      --jobs-dir "$OUT/jobs-${addr##*:}" --workers 1 --max-jobs 1 \
      --max-jobs-per-client 256 --bfv-key-memory-mb 1024 --log-json \
      >>"$OUT/replica-${addr##*:}.log" 2>&1 &
    PIDS[$addr]=$!
    for _ in $(seq 300); do curl -sf "http://$addr/api/v1/health" >/dev/null && return 0; sleep 0.1; done
    echo "replica $addr did not start" >&2; return 1
  }
  # VmHWM of a process in MiB.
  peak() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo null; }

  for r in "${REPLICAS[@]}"; do start_replica "$r"; done
  sed -e "s/listen 127.0.0.1:8080;/listen 127.0.0.1:$PORT;/" \
      -e "s/server 127.0.0.1:8081 /server ${REPLICAS[0]} /" \
      -e "s/server 127.0.0.1:8082 /server ${REPLICAS[1]} /" deploy/nginx.conf >"$OUT/lb/nginx.conf"
  nginx -t -q -e "$OUT/lb/error.log" -p "$OUT/lb/" -c "$OUT/lb/nginx.conf"
  nginx -e "$OUT/lb/error.log" -p "$OUT/lb/" -c "$OUT/lb/nginx.conf"
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
  echo "2 replicas (${REPLICAS[*]}) on redis 127.0.0.1:$REDIS_PORT behind nginx on 127.0.0.1:$PORT;" \
    "$STUDENTS students, $CONCURRENCY at once, every ${BFV_EVERY}th with BFV" >&2

  # The simulation calls its hook when half the students are done; the hook waits for this script to
  # restart the first replica and reports how it went.
  local hook="touch '$OUT/halfway'; while [ ! -s '$OUT/restarted' ]; do sleep 0.1; done; cat '$OUT/restarted'"
  "$target/release/more-class-sim" --url "http://127.0.0.1:$PORT" --token "$TOKEN" --students "$STUDENTS" \
    --concurrency "$CONCURRENCY" --bfv-every "$BFV_EVERY" --halfway-cmd "$hook" --json >"$OUT/class.json" &
  local SIM=$! restarted='' before_restart=null
  while kill -0 "$SIM" 2>/dev/null; do
    if [ -z "$restarted" ] && [ -f "$OUT/halfway" ]; then
      restarted=1
      local r=${REPLICAS[0]} pid=${PIDS[${REPLICAS[0]}]} code=0
      before_restart=$(peak "$pid")
      local t0 t1 t2
      t0=$(date +%s.%N)
      kill -TERM "$pid"
      for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && { echo "replica $r still running 60 s after SIGTERM: killed" >&2; kill -KILL "$pid"; }
      wait "$pid" || code=$?
      t1=$(date +%s.%N)
      start_replica "$r"
      t2=$(date +%s.%N)
      printf 'restarted %s: SIGTERM -> exit %d in %.2f s, back up (health 200) in %.2f s\n' \
        "$r" "$code" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" | tee "$OUT/restarted" >&2
    fi
    sleep 0.2
  done
  local status=0
  wait "$SIM" || status=$?

  # Peak resident sets, read before anything is stopped.
  local nginx_master nginx_workers=""
  nginx_master=$(cat "$OUT/lb/nginx.pid")
  for w in $(pgrep -P "$nginx_master"); do nginx_workers+="${nginx_workers:+, }$(peak "$w")"; done
  local rss="{\"replica ${REPLICAS[0]} before restart\": $before_restart"
  rss+=", \"replica ${REPLICAS[0]}\": $(peak "${PIDS[${REPLICAS[0]}]}")"
  rss+=", \"replica ${REPLICAS[1]}\": $(peak "${PIDS[${REPLICAS[1]}]}")"
  rss+=", \"redis\": $(peak "$REDIS_PID"), \"nginx master\": $(peak "$nginx_master"), \"nginx workers\": [$nginx_workers]}"
  local retried
  retried=$(grep -c 'upstream' "$OUT/lb/error.log" 2>/dev/null || true)
  if [ -s "$OUT/class.json" ]; then
    printf '{"class": %s, "peak_rss_mib": %s, "nginx_upstream_errors": %s}\n' \
      "$(cat "$OUT/class.json")" "$rss" "${retried:-0}" | tee "$OUT/result.json"
  else
    echo "the simulation printed no report (exit $status)" >&2
    echo "peak RSS (MiB): $rss" >&2
  fi
  if [ "$status" = 0 ]; then
    echo "PASS: nothing lost (requests, jobs, answers, BFV keys) through the restart" >&2
  else
    echo "FAIL: the simulation exited $status (see \"problems\" and \"errors\" in $OUT/class.json)" >&2
  fi
  return "$status"
}

# ---- Section 2 (--wrk): capacity of one more-server for the lesson's requests under wrk ----
# Creates one challenge, then runs wrk on what students send: GET /api/v1/challenges/{id} (the
# challenge's description), GET .../ciphertext (35.7 KB of wire format: 4 f64 planes of 18x62) and POST
# .../answers (a full image answer, 1116 values, under 500 names), plus GET /web/learn.html (the page
# itself). DURATION=10 CONNECTIONS=64 THREADS=2 PORT=18090 by default.
wrk_capacity() {
  local DURATION=${DURATION:-10} CONNECTIONS=${CONNECTIONS:-64} THREADS=${THREADS:-2} PORT=${PORT:-18090}
  local ADDR=127.0.0.1:$PORT
  local TOKEN=bench-teacher-token-$RANDOM$RANDOM
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

  cargo build --release -q -p more-server --bin more-server
  "$target/release/more-server" --addr "$ADDR" --models models --web . \
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
}

case "${1:-}" in
  --wrk) wrk_capacity ;;
  "") class_simulation ;;
  *) echo "usage: bench/class.sh [--wrk]" >&2; exit 2 ;;
esac
