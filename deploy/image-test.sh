#!/usr/bin/env bash
# Builds the repository's Dockerfile, unchanged, with podman and no container registry, runs the image and
# checks what it ships: the HEALTHCHECK, the page, an encrypted inference decrypted here, a training job
# that survives a restart of the container, and a graceful stop on SIGTERM. Run by hand, as root, on
# Debian 12; not part of scripts/test.sh (a cold run took 35 minutes here on a busy 2-core machine).
#
#   deploy/image-test.sh            # CACHE=/var/tmp/more-image-test PORT=18580 by default
#   MORE_CLI=target/release/more deploy/image-test.sh   # use a built `more` instead of building one
#   BUILD=0 deploy/image-test.sh    # check the existing more-server:test without building it again
#
# No registry is reachable here, so the two base images are made locally and tagged with the names the
# Dockerfile asks for (podman uses a local tag before any registry):
#   docker.io/library/debian:bookworm-slim        mmdebstrap --variant=minbase bookworm (docs stripped)
#   docker.io/library/rust:$RUST_VERSION-bookworm the same plus build-essential, ca-certificates, curl, git,
#                                                 pkg-config and this machine's rustup stable toolchain
# Their rootfs tarballs, the containers.conf, the CLI's build and each run's files live under $CACHE (never
# in the repository); the images stay in podman's storage for the next run. Delete them to start over:
#   podman rmi more-server:test docker.io/library/rust:1.95-bookworm docker.io/library/debian:bookworm-slim
# A build after a change in the repository leaves the previous build's images dangling (~2.5 GB): `podman
# image prune` removes them (and with them the layer cache of that build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${CACHE:-/var/tmp/more-image-test}
IMAGE=${IMAGE:-more-server:test}
CTR=${CTR:-more-image-test}
VOLUME=${VOLUME:-more-image-test-jobs}
PORT=${PORT:-18580}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
RESTART_STOP_TIMEOUT=${RESTART_STOP_TIMEOUT:-5}
MODEL=${MODEL:-mnist-cnn-relu}
DIGITS=${DIGITS:-10}
MORE_DATA=${MORE_DATA:-$ROOT/../shared/data}
TRAIN_DIGITS=${TRAIN_DIGITS:-2000}
TRAIN_EPOCHS=${TRAIN_EPOCHS:-30}
URL=http://127.0.0.1:$PORT
RUN=$CACHE/run
CA=/etc/ssl/certs/ca-certificates.crt

log() { printf '\033[1m[image-test]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
since() { echo $(( $(date +%s) - $1 )); }

# ---------------------------------------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] || die "run as root (podman import, mmdebstrap and published ports need it)"
missing=()
for tool in podman mmdebstrap runc curl python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt-get: podman buildah mmdebstrap runc curl python3)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah mmdebstrap runc curl python3 >/dev/null
fi
[ -f "$CA" ] || die "$CA missing (the host's CA bundle, mounted into the build for cargo and npm)"
[ -f "$MORE_DATA/mnist/t10k-images-idx3-ubyte.gz" ] || die "MNIST test set not found in $MORE_DATA/mnist (set MORE_DATA)"
mkdir -p "$CACHE"
# One run at a time on this machine (a build takes both cores for minutes).
exec 9>"$CACHE/lock"
flock -n 9 || die "another deploy/image-test.sh holds $CACHE/lock"

# crun cannot set rlimits in this sandbox: runc, cgroupfs and explicit ulimits.
cat >"$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF=$CACHE/containers.conf

RUST_VERSION=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
[ -n "$RUST_VERSION" ] || die "no ARG RUST_VERSION=... in the Dockerfile"
SLIM=docker.io/library/debian:bookworm-slim
RUST=docker.io/library/rust:$RUST_VERSION-bookworm

# ----------------------------------------------------------------------------------------------- base images
# Debian's apt sources and options as this host uses them (its mirror may need Check-Valid-Until off).
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
aptopts=()
for f in /etc/apt/apt.conf.d/*; do
  grep -q -E '^[[:space:]]*Acquire::' "$f" 2>/dev/null && aptopts+=("--aptopt=$f")
done
# As debian:bookworm-slim: no documentation, man pages or locales.
slim_opts=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
           --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
           --dpkgopt='path-include=/usr/share/locale/locale.alias' --dpkgopt='path-exclude=/usr/share/info/*')

base_start=$(date +%s)
made_base=()
if ! podman image exists "$SLIM"; then
  if [ ! -s "$CACHE/debian-slim.tar" ]; then
    log "making $SLIM: mmdebstrap --variant=minbase bookworm"
    nice mmdebstrap --quiet --format=tar --variant=minbase "${aptopts[@]}" "${slim_opts[@]}" bookworm \
      "$CACHE/debian-slim.tar.tmp" "$sources"
    mv "$CACHE/debian-slim.tar.tmp" "$CACHE/debian-slim.tar"
  fi
  podman import --quiet --change 'CMD ["bash"]' "$CACHE/debian-slim.tar" "$SLIM" >/dev/null
  made_base+=("$SLIM")
fi
if ! podman image exists "$RUST"; then
  if [ ! -s "$CACHE/rust-bookworm.tar" ]; then
    command -v rustup >/dev/null || die "rustup not found: the Rust image copies this machine's stable toolchain"
    sysroot=$(rustc +stable --print sysroot)
    have=$(rustc +stable --version | awk '{print $2}')
    case "$have" in
      "$RUST_VERSION" | "$RUST_VERSION".*) ;;
      *) die "the host's stable rustc is $have, the Dockerfile asks for $RUST_VERSION: install it with rustup" ;;
    esac
    rustup_bin=$(command -v rustup)
    tree=$CACHE/rust-rootfs
    rm -rf "$tree"
    log "making $RUST: mmdebstrap bookworm + build-essential etc. + the host's $(basename "$sysroot") ($have)"
    nice mmdebstrap --quiet --format=directory --variant=minbase "${aptopts[@]}" "${slim_opts[@]}" \
      --include=build-essential,ca-certificates,curl,git,pkg-config,xz-utils bookworm "$tree" "$sources"
    tc=$(basename "$sysroot")
    mkdir -p "$tree/usr/local/rustup/toolchains/$tc" "$tree/usr/local/cargo/bin"
    tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$tree/usr/local/rustup/toolchains/$tc" -xf -
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\nauto_self_update = "disable"\n\n[overrides]\n' \
      "$tc" >"$tree/usr/local/rustup/settings.toml"
    cp "$rustup_bin" "$tree/usr/local/cargo/bin/rustup"
    for proxy in cargo rustc rustdoc rust-gdb rust-lldb cargo-clippy clippy-driver rustfmt cargo-fmt; do
      ln -sf rustup "$tree/usr/local/cargo/bin/$proxy"
    done
    chmod -R a+w "$tree/usr/local/rustup" "$tree/usr/local/cargo"
    tar -C "$tree" -cf "$CACHE/rust-bookworm.tar.tmp" .
    mv "$CACHE/rust-bookworm.tar.tmp" "$CACHE/rust-bookworm.tar"
    rm -rf "$tree"
  fi
  podman import --quiet \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change "ENV RUST_VERSION=$RUST_VERSION" \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$CACHE/rust-bookworm.tar" "$RUST" >/dev/null
  made_base+=("$RUST")
fi
if [ ${#made_base[@]} -gt 0 ]; then
  BASE_NOTE="made ${made_base[*]} in $(since "$base_start") s"
else
  BASE_NOTE="cached ($SLIM, $RUST)"
fi
log "base images: $BASE_NOTE"

# --------------------------------------------------------------------------------------------------- the image
# --format docker: the OCI image format has no HEALTHCHECK (podman drops it with a warning); docker build
# keeps it, so this build does too. The CA bundle: cargo and npm inside the build reach their registries
# through this machine's TLS proxy.
if [ "${BUILD:-1}" = 0 ]; then
  podman image exists "$IMAGE" || die "BUILD=0 but there is no image $IMAGE"
  BUILD_NOTE="skipped (BUILD=0): the existing $IMAGE, built $(podman image inspect --format '{{.Created}}' "$IMAGE" | cut -d. -f1)"
else
  log "podman build -t $IMAGE . (log: $CACHE/build.log)"
  build_start=$(date +%s)
  if ! nice -n 10 podman build --format docker -t "$IMAGE" -v "$CA:$CA:ro" -f Dockerfile . >"$CACHE/build.log" 2>&1; then
    tail -n 40 "$CACHE/build.log" >&2
    die "podman build failed (full log: $CACHE/build.log)"
  fi
  steps=$(grep -c 'STEP [0-9]' "$CACHE/build.log" || true)
  cached=$(grep -c '^--> Using cache' "$CACHE/build.log" || true)
  BUILD_NOTE="podman build --format docker: $(since "$build_start") s ($cached of $steps steps from the layer cache)"
fi
IMAGE_BYTES=$(podman image inspect --format '{{.Size}}' "$IMAGE")
IMAGE_MB=$(( IMAGE_BYTES / 1000000 ))
log "image $IMAGE: $IMAGE_MB MB; build: $BUILD_NOTE"

# ------------------------------------------------------------------------------------------------ the CLI
# The data owner's side runs here: `more classify --server` and `more train mnist --encrypted --server`.
if [ -n "${MORE_CLI:-}" ]; then
  CLI=$MORE_CLI
else
  log "cargo build --release -p more-cli (target: $CACHE/target)"
  CARGO_TARGET_DIR=$CACHE/target nice cargo build --release --locked -q -p more-cli
  CLI=$CACHE/target/release/more
fi
[ -x "$CLI" ] || die "$CLI is not an executable"

# --------------------------------------------------------------------------------------------------- the run
RESULTS=()
FAILED=0
check() { # check NAME PASS|FAIL|WARN DETAIL (WARN: worth knowing, not a failure)
  RESULTS+=("$1|$2|$3")
  [ "$2" = PASS ] || [ "$2" = WARN ] || FAILED=$((FAILED + 1))
  printf '%s: %s — %s\n' "$2" "$1" "$3"
}
TRAIN_PID=
cleanup() {
  if [ -n "$TRAIN_PID" ]; then kill "$TRAIN_PID" 2>/dev/null || true; fi
  podman logs "$CTR" >"$RUN/server.log" 2>&1 || true
  podman rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
  podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
podman rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
rm -rf "$RUN" && mkdir -p "$RUN"
podman volume create "$VOLUME" >/dev/null

# wait_health SECONDS: until GET /api/v1/health answers 200.
wait_health() {
  local i
  for ((i = 0; i < $1 * 5; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/health")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}

log "podman run $IMAGE on 127.0.0.1:$PORT, volume $VOLUME on /var/lib/more/jobs"
# (podman without systemd says it cannot schedule the periodic healthchecks: run.log; check 1 runs one.)
if ! podman run -d --name "$CTR" -p "127.0.0.1:$PORT:8080" -v "$VOLUME:/var/lib/more/jobs" "$IMAGE" >"$RUN/run.log" 2>&1; then
  cat "$RUN/run.log" >&2
  die "podman run failed"
fi
start=$(date +%s)
if ! wait_health 60; then
  podman logs "$CTR" >&2 || true
  die "the server did not answer /api/v1/health within 60 s"
fi
log "healthy after $(since "$start") s; $(podman logs "$CTR" 2>/dev/null | grep -m1 'memory bound:' || true)"

# (1) The image's HEALTHCHECK, run by podman inside the container, and the route it calls.
hc=$(podman image inspect "$IMAGE" | python3 -c 'import json, sys; print(" ".join((json.load(sys.stdin)[0].get("Healthcheck") or {}).get("Test", [])))')
health=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/health")
if [ -z "$hc" ]; then
  check "healthcheck" FAIL "the image has no HEALTHCHECK"
elif out=$(podman healthcheck run "$CTR" 2>&1) && [ "$health" = 200 ]; then
  check "healthcheck" PASS "podman healthcheck run (the image's HEALTHCHECK, bash /dev/tcp): exit 0${out:+ ($out)}; GET /api/v1/health -> $health"
else
  check "healthcheck" FAIL "podman healthcheck run: $out; GET /api/v1/health -> $health"
fi

# (2) The page: index.html, the module it loads, and the wasm.
fetch() { # fetch PATH FILE -> "code type bytes"
  curl -s -o "$2" -w '%{http_code} %{content_type} %{size_download}\n' "$URL$1"
}
read -r c1 t1 b1 < <(fetch / "$RUN/index.html")
module=$(sed -n 's/.*<script type="module" src="\([^"]*\)".*/\1/p' "$RUN/index.html" | head -n1)
read -r c2 t2 b2 < <(fetch "/${module:-web/app.js}" "$RUN/module.js")
read -r c3 t3 b3 < <(fetch /web/pkg/more_wasm_bg.wasm "$RUN/module.wasm")
magic=$(head -c4 "$RUN/module.wasm" | od -An -tx1 | tr -d ' \n')
if [ "$c1" = 200 ] && [[ $t1 == text/html* ]] && grep -q '<script type="module"' "$RUN/index.html" &&
   [ "$c2" = 200 ] && [[ $t2 == *javascript* ]] && [ "$c3" = 200 ] && [ "$t3" = application/wasm ] &&
   [ "$magic" = 0061736d ]; then
  check "page" PASS "/ $c1 $t1 ($b1 B); /$module $c2 $t2 ($b2 B); /web/pkg/more_wasm_bg.wasm $c3 $t3 ($b3 B, \\0asm)"
else
  check "page" FAIL "/ $c1 $t1; /${module:-?} $c2 $t2; wasm $c3 $t3 magic $magic"
fi

# (3) Encrypted inference: the first DIGITS MNIST test digits as PNG files, each encrypted here under a fresh
# key, run by the container on ciphertexts, decrypted here, compared with the labels.
python3 - "$MORE_DATA/mnist" "$RUN/digits" "$DIGITS" <<'PY'
import gzip, os, struct, sys, zlib
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
images = gzip.open(os.path.join(src, "t10k-images-idx3-ubyte.gz")).read()
labels = gzip.open(os.path.join(src, "t10k-labels-idx1-ubyte.gz")).read()
_, count, rows, cols = struct.unpack(">IIII", images[:16])
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
for i in range(min(n, count)):
    px = images[16 + i * rows * cols:16 + (i + 1) * rows * cols]
    raw = b"".join(b"\0" + px[r * cols:(r + 1) * cols] for r in range(rows))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    open(os.path.join(out, f"t10k-{i:05d}-label{labels[8 + i]}.png"), "wb").write(png)
PY
if "$CLI" classify --server "$URL" --model-id "$MODEL" --json "$RUN"/digits/*.png >"$RUN/classify.json" 2>"$RUN/classify.log"; then
  summary=$(python3 - "$RUN/classify.json" <<'PY'
import json, re, sys
answers = json.load(open(sys.argv[1]))
right = sum(a["label"] == re.search(r"label(\d)", a["file"]).group(1) for a in answers)
ms = sorted(a["ms"][2] for a in answers)
print(right, len(answers), f"{ms[len(ms) // 2]:.1f}", " ".join(a["label"] for a in answers))
PY
)
  read -r right total median got <<<"$summary"
  if [ "$right" = "$total" ] && [ "$total" -gt 0 ]; then
    check "encrypted inference" PASS "$MODEL: $right/$total MNIST test digits right after decryption here (answers $got; median round trip $median ms)"
  else
    check "encrypted inference" FAIL "$MODEL: $right/$total right (answers $got)"
  fi
else
  check "encrypted inference" FAIL "more classify failed: $(tail -n3 "$RUN/classify.log")"
fi

# (4) A training job that outlives the container's process: `more train mnist --encrypted --server` (the key
# owner: encrypts TRAIN_DIGITS digits here, uploads them and follows the job's events) starts a job; once the
# server has reported two epochs, the container is stopped (`podman stop -t RESTART_STOP_TIMEOUT`, as an
# orchestrator's stop timeout would) and started again on the same volume. The job must still be known (GET
# /api/v1/jobs/{id} 200), train again from epoch 1 (a `resumed` event: "the server restarted"), and its
# encrypted model be downloaded and decrypted by the CLI, which tests it beside the same network trained here
# on plaintext (same seed and data). The server finishes open requests on SIGTERM, and an event stream stays
# open until its job ends, so this stop is expected to end in SIGKILL (a WARN line, not a failure).
"$CLI" train mnist --encrypted --server "$URL" --data "$MORE_DATA" --limit "$TRAIN_DIGITS" \
  --epochs "$TRAIN_EPOCHS" --out "$RUN/trained.morenn" --force >"$RUN/train.out" 2>"$RUN/train.log" &
TRAIN_PID=$!
for _ in $(seq 900); do
  grep -q '^epoch 2/' "$RUN/train.log" && break
  kill -0 "$TRAIN_PID" 2>/dev/null || break
  sleep 0.2
done
job=$(sed -n 's/^job \([0-9a-f]\{32\}\) queued.*/\1/p' "$RUN/train.log")
if [ -z "$job" ] || ! grep -q '^epoch 2/' "$RUN/train.log"; then
  check "restart keeps jobs" FAIL "the job did not reach epoch 2: $(tail -n3 "$RUN/train.log" | tr '\n' ' ')"
else
  before=$(curl -s "$URL/api/v1/jobs/$job" | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["state"], j["epochs_done"])')
  stop_start=$(date +%s.%N)
  podman stop -t "$RESTART_STOP_TIMEOUT" "$CTR" >/dev/null 2>>"$RUN/run.log"
  stop1_s=$(python3 -c "import time; print(f'{time.time() - $stop_start:.1f}')")
  stop1_code=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
  podman start "$CTR" >/dev/null 2>>"$RUN/run.log"
  wait_health 60 || log "the restarted server did not answer /api/v1/health within 60 s"
  code=$(curl -s -o "$RUN/job.json" -w '%{http_code}' "$URL/api/v1/jobs/$job")
  after=$(python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(j["state"], j["epochs_done"], j["attempts"])' \
    "$RUN/job.json" 2>/dev/null || echo "? ? ?")
  read -r b_state b_epochs <<<"$before"
  read -r a_state a_epochs a_attempts <<<"$after"
  log "job $job: $b_state at epoch $b_epochs; podman stop -> exit $stop1_code in $stop1_s s; restarted: GET -> $code, $a_state at epoch $a_epochs, attempt $a_attempts"
  rc=0
  wait "$TRAIN_PID" || rc=$?
  TRAIN_PID=
  gone=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/jobs/$job")
  resumed=$(grep -c 'the server restarted: training starts again' "$RUN/train.log" || true)
  # "... on 2000 encrypted images (20 epochs): ..." and "test accuracy (10000 images): plaintext-trained
  # 91.23%, encrypted-trained 91.20%".
  epochs=$(sed -n 's/.* encrypted images (\([0-9]*\) epochs).*/\1/p' "$RUN/train.out")
  read -r acc_plain acc_enc < <(sed -n 's/^test accuracy .*plaintext-trained \([0-9.]*\)%, encrypted-trained \([0-9.]*\)%.*/\1 \2/p' \
    "$RUN/train.out") || true
  shown=$(grep -c '^epoch ' "$RUN/train.log" || true)
  detail="stop begun at epoch $b_epochs of $TRAIN_EPOCHS; after the restart GET -> $code ($a_state, attempt $a_attempts); CLI exit $rc"
  if [ "$code" = 200 ] && [ "${a_attempts:-0}" -ge 2 ] && [ "$rc" = 0 ] && [ "$epochs" = "$TRAIN_EPOCHS" ] && [ "$gone" = 404 ] &&
     python3 -c "import sys; sys.exit(0 if abs($acc_plain - $acc_enc) < 1.0 else 1)"; then
    check "restart keeps jobs" PASS "$detail; model downloaded and decrypted here: test accuracy $acc_enc% vs $acc_plain% trained here on plaintext ($TRAIN_DIGITS digits, $epochs epochs); job deleted after the download (GET -> $gone)"
  else
    check "restart keeps jobs" FAIL "$detail; epochs $epochs, accuracy ${acc_enc:-?}% vs ${acc_plain:-?}%, GET after download -> $gone; $(tail -n2 "$RUN/train.log" | tr '\n' ' ')"
  fi
  # The CLI follows the events with Last-Event-ID; the restarted job's `resumed` event should reach it.
  if [ "$resumed" -ge 1 ]; then
    check "events across the restart" PASS "the CLI got the resumed event (\"the server restarted: training starts again\") and $shown epoch events"
  else
    check "events across the restart" WARN "the CLI never got the resumed event: it reconnected with the Last-Event-ID from before the restart, and the restarted job's event ids start again, so its first events were skipped ($shown epoch events shown for $TRAIN_EPOCHS epochs, two attempts stitched together)"
  fi
  if [ "$stop1_code" = 0 ]; then
    check "stop while training" PASS "podman stop -t $RESTART_STOP_TIMEOUT with a job training and the CLI on its event stream: exit 0 in $stop1_s s"
  else
    check "stop while training" WARN "podman stop -t $RESTART_STOP_TIMEOUT with a job training and the CLI on its event stream: not stopped by SIGTERM, killed after $stop1_s s (exit $stop1_code); the job resumed after the restart"
  fi
fi

# (5) SIGTERM (the image's STOPSIGNAL) on an idle server: exit 0 well within the timeout, and the log says so.
stopsig=$(podman image inspect --format '{{.Config.StopSignal}}' "$IMAGE")
lines_before=$(podman logs "$CTR" 2>&1 | wc -l)
stop_start=$(date +%s.%N)
podman stop -t "$STOP_TIMEOUT" "$CTR" >/dev/null 2>>"$RUN/run.log"
stop_s=$(python3 -c "import time; print(f'{time.time() - $stop_start:.1f}')")
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
tail_log=$(podman logs "$CTR" 2>&1 | tail -n +"$((lines_before + 1))")
if [ "$exit_code" = 0 ] && grep -q 'shutting down: finishing open requests' <<<"$tail_log" &&
   grep -q '"message":"stopped"' <<<"$tail_log"; then
  check "graceful SIGTERM" PASS "podman stop ($stopsig): exit 0 in $stop_s s; log: shutting down: finishing open requests, stopped"
else
  check "graceful SIGTERM" FAIL "podman stop ($stopsig): exit $exit_code in $stop_s s; log tail: $(tail -n2 <<<"$tail_log" | tr '\n' ' ')"
fi

# ------------------------------------------------------------------------------------------------- summary
echo
echo "| check | result | detail |"
echo "|---|---|---|"
for r in "${RESULTS[@]}"; do
  IFS='|' read -r name verdict detail <<<"$r"
  echo "| $name | $verdict | $detail |"
done
echo "| base images | — | $BASE_NOTE |"
echo "| build | — | $BUILD_NOTE |"
echo "| image size | — | $IMAGE $IMAGE_MB MB ($IMAGE_BYTES bytes) |"
echo
warned=$(printf '%s\n' "${RESULTS[@]}" | grep -c '|WARN|' || true)
if [ "$FAILED" = 0 ]; then
  echo "PASS: no check failed, $warned warning(s), of ${#RESULTS[@]} (files of this run: $RUN)"
else
  echo "FAIL: $FAILED of ${#RESULTS[@]} checks failed, $warned warning(s) (files of this run: $RUN)"
  exit 1
fi
