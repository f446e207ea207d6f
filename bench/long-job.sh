#!/usr/bin/env bash
# A long training job followed end to end by the CLI, directly and through the reference nginx config, on
# 127.0.0.1 only: the release server (default flags, so event streams live with the 60 s idle timeout and
# nginx's 30 s read timeout), `more train mnist --encrypted --server URL` with enough digits and epochs to
# run about MINUTES minutes, and a check that every epoch arrived exactly once and the decrypted model
# classifies as the plaintext one would (the CLI's own report).
#
#   bench/long-job.sh              # MINUTES=10 VIA=nginx PORT=18480 by default; VIA=direct skips nginx
#
# Needs nginx (scripts/setup.sh ops) and the MNIST data in ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-10}
VIA=${VIA:-nginx}
PORT=${PORT:-18480}
DIGITS=${DIGITS:-4000}
OUT=${OUT:-/tmp/more-long-job}
REPLICA=127.0.0.1:$((PORT + 1))
rm -rf "$OUT" && mkdir -p "$OUT/lb/tmp" "$OUT/jobs"
chmod 755 "$OUT" "$OUT/lb" "$OUT/lb/tmp"
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p more-server -p more-cli

"$target/release/more-server" --addr "$REPLICA" --models models --jobs-dir "$OUT/jobs" --trusted-proxy 127.0.0.1 \
  --max-epochs 1000 --max-train-seconds $((MINUTES * 60 * 3)) --log-json >"$OUT/server.log" 2>&1 &
PID=$!
cleanup() {
  kill $PID 2>/dev/null || true
  [ -f "$OUT/lb/nginx.pid" ] && kill "$(cat "$OUT/lb/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://$REPLICA/api/v1/health" >/dev/null && break; sleep 0.1; done
URL=http://$REPLICA
if [ "$VIA" = nginx ]; then
  sed -e "s/listen 127.0.0.1:8080;/listen 127.0.0.1:$PORT;/" -e "s/server 127.0.0.1:8081 /server $REPLICA /" \
      -e "/server 127.0.0.1:8082 /d" deploy/nginx.conf >"$OUT/lb/nginx.conf"
  nginx -p "$OUT/lb/" -c "$OUT/lb/nginx.conf"
  URL=http://127.0.0.1:$PORT
fi

# Seconds per epoch on this machine now, from a 2-epoch job, then epochs for MINUTES.
probe=$("$target/release/more" train mnist --encrypted --server "$URL" --limit "$DIGITS" --epochs 2 \
  --out "$OUT/probe.morenn" --json 2>/dev/null)
per_epoch=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["server_epoch_seconds"])' "$probe")
epochs=$(python3 -c "print(max(3, min(1000, int($MINUTES * 60 / $per_epoch))))")
echo "via $VIA ($URL): $DIGITS digits, $per_epoch s per epoch -> $epochs epochs (about $MINUTES min)"
start=$(date +%s)
"$target/release/more" train mnist --encrypted --server "$URL" --limit "$DIGITS" --epochs "$epochs" \
  --out "$OUT/model.morenn" --json >"$OUT/result.json" 2>"$OUT/cli.log"
echo "finished in $(( $(date +%s) - start )) s"
python3 - "$OUT/result.json" "$epochs" "$OUT/cli.log" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); epochs = int(sys.argv[2])
log = open(sys.argv[3]).read()
losses = r["encrypted_losses"]
print(f"epochs reported: {len(losses)} of {epochs}; reconnections: {log.count('reconnecting')}")
print(json.dumps({k: v for k, v in r.items() if not isinstance(v, list)}, indent=1)[:1500])
assert len(losses) == epochs, "an epoch was lost or repeated"
PY
