#!/usr/bin/env bash
# Runs the HomomorphicEncryption.org ML-inference harness on this submission, offline, and prints the
# harness's step timings, sizes and accuracies as a table and as JSON.
#
#   bench/heorg/run.sh PATH_TO_HARNESS_CHECKOUT [INSTANCE ...]      # default instances: 0 1 2 3
#
# PATH_TO_HARNESS_CHECKOUT is an existing checkout of the suite's ml-inference repository (nothing is cloned).
# The script
#   1. makes a virtual environment (HEORG_VENV, default CHECKOUT/bmenv) with the harness's requirements.txt
#      from PyPI, less torch and torchvision; HEORG_TORCH=1 installs the full requirements instead;
#   2. installs the submission the way the suite asks: scripts/build_task.sh (a wrapper around
#      bench/heorg/build_task.sh), scripts/get_openfhe.sh (nothing to fetch) and submission/README.md; the
#      originals are kept once as *.orig / submission.orig;
#   3. feeds MNIST from the local data directory ($MORE_DATA/mnist, default ../shared/data/mnist beside the
#      repository), never from the network: without PyTorch through harness_shim/ (a numpy stand-in for
#      harness/mnist/mnist.py, loaded by PYTHONPATH, the checkout's files unchanged); with HEORG_TORCH=1 by
#      unpacking the IDX files where torchvision looks for them, so that it finds them and downloads nothing;
#   4. runs `python3 harness/run_submission.py INSTANCE --seed HEORG_SEED (default 3) --num_runs
#      HEORG_NUM_RUNS (default 1)` per instance, logs in CHECKOUT/measurements/heorg-instance-N.log;
#   5. prints the harness's measurements (measurements/<name>/results-<run>.json, the log's PASS/FAIL for the
#      single instance), the exact byte sizes of io/<name>/{public_keys,ciphertexts_upload,
#      ciphertexts_download} and the harness model's accuracy recomputed from its predictions file (the
#      harness's own figure repeats the encrypted model's: utils.calculate_quality reads the encrypted
#      predictions whatever file it is given), as a table and as JSON (also measurements/heorg-summary.json).
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd -- "$HERE/../.." && pwd)"

if [[ $# -lt 1 || ! -f "${1:-}/harness/run_submission.py" ]]; then
    echo "usage: $0 PATH_TO_HARNESS_CHECKOUT [INSTANCE ...]  (a checkout of the suite's ml-inference repository)" >&2
    exit 2
fi
H="$(cd -- "$1" && pwd)"
shift
INSTANCES=("$@")
[[ ${#INSTANCES[@]} -gt 0 ]] || INSTANCES=(0 1 2 3)
for i in "${INSTANCES[@]}"; do
    [[ "$i" =~ ^[0-3]$ ]] || { echo "instance $i: expected 0, 1, 2 or 3" >&2; exit 2; }
done
NAMES=(single small medium large)
SEED="${HEORG_SEED:-3}"
NUM_RUNS="${HEORG_NUM_RUNS:-1}"
VENV="${HEORG_VENV:-$H/bmenv}"
MNIST="${MORE_DATA:-$REPO/../shared/data}/mnist"
for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte train-images-idx3-ubyte train-labels-idx1-ubyte; do
    [[ -f "$MNIST/$f.gz" ]] || { echo "MNIST file $MNIST/$f.gz not found (set MORE_DATA)" >&2; exit 1; }
done

# 1. Python environment.
if [[ ! -x "$VENV/bin/python3" ]]; then
    python3 -m venv "$VENV"
fi
if [[ "${HEORG_TORCH:-0}" == 1 ]]; then
    "$VENV/bin/pip" install --quiet -r "$H/requirements.txt"
else
    grep -viE '^[[:space:]]*(torch|torchvision)([=<>!~ ;[]|$)' "$H/requirements.txt" > "$VENV/heorg-requirements.txt"
    echo "[heorg] installing the harness's requirements without torch/torchvision: $(tr "\n" " " < "$VENV/heorg-requirements.txt")"
    "$VENV/bin/pip" install --quiet -r "$VENV/heorg-requirements.txt"
fi

# 2. The submission, where the harness expects it.
for f in build_task.sh get_openfhe.sh; do
    if [[ -f "$H/scripts/$f" && ! -e "$H/scripts/$f.orig" ]] && ! grep -q "more-heorg" "$H/scripts/$f"; then
        mv "$H/scripts/$f" "$H/scripts/$f.orig"
    fi
done
if [[ -f "$H/submission/CMakeLists.txt" && ! -e "$H/submission.orig" ]]; then
    mv "$H/submission" "$H/submission.orig"
fi
mkdir -p "$H/scripts" "$H/submission"
cat > "$H/scripts/build_task.sh" <<EOF
#!/usr/bin/env bash
# more-heorg: installed by bench/heorg/run.sh of the more repository; builds the Rust submission.
exec "$HERE/build_task.sh" "\$@"
EOF
cat > "$H/scripts/get_openfhe.sh" <<'EOF'
#!/usr/bin/env bash
# more-heorg: installed by bench/heorg/run.sh; this submission uses fhe.rs (a Rust crate), not OpenFHE.
echo "[get_openfhe] not needed: the more-heorg submission builds with cargo"
EOF
chmod +x "$H/scripts/build_task.sh" "$H/scripts/get_openfhe.sh"
cp -f "$HERE/README.md" "$H/submission/README.md"

# 3. MNIST from the local files.
if [[ "${HEORG_TORCH:-0}" == 1 ]]; then
    raw_dirs=("$H/harness/mnist/data/MNIST/raw")
    for i in "${INSTANCES[@]}"; do
        raw_dirs+=("$H/datasets/${NAMES[$i]}/MNIST/raw")
    done
    for d in "${raw_dirs[@]}"; do
        mkdir -p "$d"
        for f in "$MNIST"/*.gz; do
            base="$(basename "$f" .gz)"
            [[ -f "$d/$base" ]] || gunzip -c "$f" > "$d/$base"
        done
    done
    unset HEORG_MNIST_DIR
else
    export HEORG_MNIST_DIR="$MNIST"
    export PYTHONPATH="$HERE/harness_shim${PYTHONPATH:+:$PYTHONPATH}"
fi

# 4. The harness, one instance after the other.
export PATH="$VENV/bin:$PATH"
if [[ "${HEORG_TORCH:-0}" != 1 ]]; then
    # The harness trains its reference MLP on first use, inside a timed step; train it before any timing.
    (cd "$H" && python3 -c 'from heorg_mnist import ensure_reference_model as e; e("harness/mnist/mnist_ffnn_model.pth")')
fi
mkdir -p "$H/measurements"
for i in "${INSTANCES[@]}"; do
    log="$H/measurements/heorg-instance-$i.log"
    echo "[heorg] instance $i (${NAMES[$i]}): python3 harness/run_submission.py $i --seed $SEED --num_runs $NUM_RUNS"
    (cd "$H" && python3 -u harness/run_submission.py "$i" --seed "$SEED" --num_runs "$NUM_RUNS") 2>&1 | tee "$log"
    io="$H/io/${NAMES[$i]}"
    for d in public_keys ciphertexts_upload ciphertexts_download; do
        du -sb "$io/$d" | cut -f1 > "$H/measurements/heorg-instance-$i.$d.bytes"
    done
done

# 5. Summary.
python3 - "$H" "$NUM_RUNS" "${INSTANCES[@]}" <<'EOF'
import json, re, sys
from pathlib import Path

root, runs, instances = Path(sys.argv[1]), int(sys.argv[2]), [int(i) for i in sys.argv[3:]]
names = ["single", "small", "medium", "large"]
images = [1, 15, 1000, 10000]
summary = {}
for i in instances:
    m = root / "measurements"
    res = json.loads((m / names[i] / f"results-{runs}.json").read_text())
    log = (m / f"heorg-instance-{i}.log").read_text()
    entry = {"instance": i, "images": images[i], "harness": res,
             "bytes": {d: int((m / f"heorg-instance-{i}.{d}.bytes").read_text())
                       for d in ["public_keys", "ciphertexts_upload", "ciphertexts_download"]}}
    # utils.calculate_quality of the harness reads the encrypted model's predictions whatever file it is
    # given, so its "Harness model quality" repeats the encrypted model's; recompute it from the files.
    io, data = root / "io" / names[i], root / "datasets" / names[i] / "intermediate"
    if (io / "harness_model_predictions.txt").exists():
        labels = (data / "test_labels.txt").read_text().split()
        preds = (io / "harness_model_predictions.txt").read_text().split()
        correct = sum(a == b for a, b in zip(labels, preds))
        entry["harness_model_quality_recomputed"] = {
            "correct_predictions": correct, "total_samples": len(preds), "accuracy": correct / len(preds)}
    verdict = re.findall(r"\[harness\] (PASS|FAIL)\s+\(expected=(\d+), got=(\d+)\)", log)
    if verdict:
        entry["single_verdict"] = verdict[-1][0]
    summary[names[i]] = entry

stages = []
for e in summary.values():
    for s in e["harness"]["per_stage"]:
        if s not in stages:
            stages.append(s)
cols = list(summary)
w = max(len(s) for s in stages + ["total_latency_ms (harness's sum of all steps, in s)"]) + 2
print("\n" + "".ljust(w) + "".join(c.rjust(20) for c in cols))
for s in stages:
    print(s.ljust(w) + "".join(summary[c]["harness"]["per_stage"].get(s, "-").rjust(20) for c in cols))
def fhe_total(e):
    return sum(float(v.rstrip("s")) for k, v in e["harness"]["per_stage"].items() if k.startswith(("Client:", "Server:")))
for e in summary.values():
    e["fhe_stages_total_s"] = round(fhe_total(e), 4)
print("total, client and server steps 2-3, 5-9 (s)".ljust(w) + "".join(f'{summary[c]["fhe_stages_total_s"]:.3f}'.rjust(20) for c in cols))
print("total_latency_ms (harness's sum of all steps, in s)".ljust(w) + "".join(f'{summary[c]["harness"]["total_latency_ms"]:.3f}'.rjust(20) for c in cols))
for key, label in [("public_keys", "public + evaluation keys (bytes)"), ("ciphertexts_upload", "encrypted input (bytes)"),
                   ("ciphertexts_download", "encrypted results (bytes)")]:
    print(label.ljust(w) + "".join(f'{summary[c]["bytes"][key]:,}'.rjust(20) for c in cols))
def acc(e, tag):
    q = e["harness"].get("mnist_model_quality", {}).get(f"{tag} quality")
    if q:
        return f'{100 * q["accuracy"]:.2f}% {q["correct_predictions"]}/{q["total_samples"]}'
    if tag == "Encrypted model" and "single_verdict" in e:
        return e["single_verdict"]
    return "-"
for tag in ["Encrypted model", "Harness model"]:
    print(f"{tag} accuracy (harness)".ljust(w) + "".join(acc(summary[c], tag).rjust(20) for c in cols))
def recomputed(e):
    q = e.get("harness_model_quality_recomputed")
    return f'{100 * q["accuracy"]:.2f}% {q["correct_predictions"]}/{q["total_samples"]}' if q else "-"
print("Harness model accuracy (recomputed)".ljust(w) + "".join(recomputed(summary[c]).rjust(20) for c in cols))
(root / "measurements" / "heorg-summary.json").write_text(json.dumps(summary, indent=2))
print("\n" + json.dumps(summary, indent=2))
EOF
