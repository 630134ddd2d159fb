#!/usr/bin/env bash
# One-command check of hdrbench on a machine with one CUDA GPU (under 8 minutes).
#
#   bash scripts/gpu_check.sh            # from the repository root, with hdrbench's dependencies installed
#
# Steps (each timed, each under its own time limit, all under one overall deadline of GPU_CHECK_BUDGET_S
# seconds, default 470; a step that no longer fits is recorded as "skipped (out of time)"):
#   cuda-tests      the test suite's CUDA tests (pytest -k cuda: CPU-vs-CUDA checks of the camera model, the
#                   synthesis layer, tone mapping, HDR-VDP-2 and the proposed networks)
#   agreement       CPU-vs-CUDA max differences of HDR-VDP-2 (Q, P_det) and of the synthesis layer (library
#                   and official options), written as numbers
#   predict         the official fixture's seeded weights (make_weights.py) through `hdrbench predict` on
#                   CUDA and on the CPU; the float outputs must agree within 1e-4 (TF32 off), and match
#                   the fixture's expected stack
#   train-resume    30 iterations of `train --preset paper` (fidelity official, pre-training ends at 20 so
#                   both phases run), checkpoint every 10; then 20 iterations and `--resume` to 30 in
#                   another folder: the two final checkpoints must hold identical weights
#   bench-train     `bench train --preset paper` in fp32, bf16 and torch.compile: step time per phase, peak
#                   memory and projected GPU-hours of the 80k-iteration schedule (results/bench-train.csv)
#   bench-hdrvdp2   `bench hdrvdp2`: batch 16 at 1024x768 on CUDA, pairs/s (results/bench-hdrvdp2.csv)
#
# Rows: one per step in results/gpu-check.csv (time, step, status, seconds, limit, GPU, torch, commit,
# detail, log); logs and outputs under results/gpu-check/<UTC stamp>/. Without VGG19 weights
# (HDRBENCH_VGG19_WEIGHTS) the paper preset's CoBi cannot run as specified: the training steps then opt into
# the RGB-patch CoBi explicitly (loss.cobi_features=rgb-patch) and their rows say so.
#
# Exit status: 0 when every step passed, 1 when one failed or timed out, 3 without CUDA (nothing run).
set -u -o pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OPENCV_IO_ENABLE_OPENEXR=1

if ! command -v timeout >/dev/null 2>&1; then
  echo "gpu_check: needs the 'timeout' command (GNU coreutils)" >&2
  exit 3
fi
if ! timeout 60 "$PY" - <<'EOF'
import sys
try:
    import torch
except Exception as exc:  # noqa: BLE001
    print(f"gpu_check: cannot import torch ({exc})", file=sys.stderr)
    sys.exit(1)
if not torch.cuda.is_available():
    print(f"gpu_check: no CUDA device (torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
          "this check needs a machine with a CUDA GPU. Nothing was run.", file=sys.stderr)
    sys.exit(1)
EOF
then
  exit 3
fi

BUDGET=${GPU_CHECK_BUDGET_S:-470}
START=$(date +%s)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/results/gpu-check/$STAMP"
ROWS="$ROOT/results/gpu-check.csv"
mkdir -p "$OUT"
export HDRBENCH_RESULTS="$ROOT/results"
export HDRBENCH_RUNS="$OUT/runs"
export HDRBENCH_CACHE="${HDRBENCH_CACHE:-$OUT/cache}"
FIXTURE="${HDRBENCH_SHARED_DATA:-$ROOT/../shared/data}/official-proposed"
GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))" 2>/dev/null | tr ',' ';')
TORCH=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -s "$ROWS" ] || echo "time_utc,step,status,seconds,limit_s,gpu,torch,commit,detail,log" > "$ROWS"

COBI_OPT=()
COBI_NOTE="CoBi on VGG19 features"
if [ -z "${HDRBENCH_VGG19_WEIGHTS:-}" ]; then
  COBI_OPT=(--method-option loss.cobi_features=rgb-patch)
  COBI_NOTE="no VGG19 weights: paper preset with loss.cobi_features=rgb-patch"
fi

FAILED=0
# step NAME LIMIT_S DETAIL COMMAND...: run COMMAND under min(LIMIT_S, time left), log to $OUT/NAME.log, one row.
step() {
  local name=$1 limit=$2 detail=$3
  shift 3
  local left=$((BUDGET - ($(date +%s) - START)))
  local log="$OUT/$name.log"
  if [ "$left" -lt 20 ]; then
    echo "$(date -u +%FT%TZ),$name,skipped (out of time),0,$limit,$GPU,$TORCH,$COMMIT,$detail," >> "$ROWS"
    echo "[$name] skipped: out of time"
    FAILED=1
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "[$name] (limit ${limit} s) $*"
  local t0 t1 rc status
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  case $rc in
    0) status=pass ;;
    124|137) status=timeout; FAILED=1 ;;
    *) status="fail (rc $rc)"; FAILED=1 ;;
  esac
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  local last
  last=$(grep -v '^\s*$' "$log" | tail -n 1 | tr ',\n' '; ' | cut -c1-200)
  echo "$(date -u +%FT%TZ),$name,$status,$secs,$limit,$GPU,$TORCH,$COMMIT,$detail: $last,${log#"$ROOT"/}" >> "$ROWS"
  echo "[$name] $status in ${secs} s: $last"
}

# 1. The CUDA tests of the suite.
step cuda-tests 90 "pytest -k cuda" \
  "$PY" -m pytest -q -p no:cacheprovider -k cuda \
  tests/test_imaging_camera.py tests/test_imaging_synthesis.py tests/test_imaging_tonemap.py \
  tests/test_metrics_hdrvdp2_api.py tests/test_models_proposed.py

# 2. CPU-vs-CUDA agreement in numbers.
step agreement 60 "CPU vs CUDA max differences" "$PY" - <<'EOF'
import torch
from hdrbench.imaging.synthesis import OFFICIAL_LAYER, merge_stack
from hdrbench.metrics.hdrvdp2 import hdrvdp2

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
g = torch.Generator().manual_seed(0)
ref = torch.rand(2, 3, 128, 160, generator=g, dtype=torch.float64) * 200 + 0.5
test = ref * (1 + 0.1 * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp(0.5, 1.5)
cpu = hdrvdp2(test, ref, color_encoding="rgb-bt.709", ppd=30)
gpu = hdrvdp2(test.cuda(), ref.cuda(), color_encoding="rgb-bt.709", ppd=30)
dq = float((gpu.Q.cpu() - cpu.Q).abs().max())
dp = float((gpu.P_det.cpu() - cpu.P_det).abs().max())
stack = (torch.rand(2, 7, 3, 64, 64, generator=g) * 255).round() / 255
times = torch.pow(2.0, torch.arange(-3, 4, dtype=torch.float64))
out = []
for label, kw in (("library", {}), ("official", dict(OFFICIAL_LAYER))):
    a = merge_stack(stack, times, **kw).hdr
    b = merge_stack(stack.cuda(), times.cuda(), **kw).hdr.cpu()
    out.append(f"merge[{label}] max rel {float(((b - a).abs() / a.abs().clamp_min(1e-6)).max()):.2e}")
print(f"hdrvdp2 max |dQ| {dq:.2e}, max |dP_det| {dp:.2e}; " + "; ".join(out))
ok = dq <= 1e-6 and all(float(s.split()[-1]) <= 1e-4 for s in out)
raise SystemExit(0 if ok else 1)
EOF

# 3. predict with the official fixture's weights on CUDA and on the CPU.
WEIGHTS="$OUT/official-weights"
step predict 120 "hdrbench predict --weights (fixture) CUDA vs CPU" bash -c '
set -e
"$0" "$1/make_weights.py" "$2" > /dev/null
for dev in cpu cuda; do
  "$0" -m hdrbench predict --method proposed --weights "$2" --input "$1/input_stack/ev+0.png" --float \
    --device "$dev" -o "$3/predict-$dev"
done
"$0" - "$1" "$3" <<"PYEOF"
import sys
from pathlib import Path
import numpy as np
from hdrbench.imaging.io import read_image
fix, out = Path(sys.argv[1]), Path(sys.argv[2])
evs = ["-3", "-2", "-1", "+0", "+1", "+2", "+3"]
def stack(dev):
    return np.stack([read_image(next((out / f"predict-{dev}").glob(f"ev{e}.pfm"))).data for e in evs])
cpu, cuda = stack("cpu"), stack("cuda")
expected = (np.load(fix / "expected_pred_stack.npy").transpose(0, 2, 3, 1) + 1) / 2
d_dev = float(np.abs(cpu - cuda).max())
d_fix = float(np.abs(cuda - expected).max())
print(f"max |CUDA - CPU| {d_dev:.2e}; max |CUDA - fixture| {d_fix:.2e} (limit 1e-4)")
sys.exit(0 if d_dev <= 1e-4 and d_fix <= 1e-4 else 1)
PYEOF
rm -rf "$2"' "$PY" "$FIXTURE" "$WEIGHTS" "$OUT"

# 4. 30 paper-preset iterations, a checkpoint, and an exact --resume.
TRAIN_OPTS=(--method proposed --dataset synthetic --preset paper --device cuda --no-progress
            --dataset-option n_train=2 --dataset-option n_test=1
            --method-option schedule.pretrain_iters=20 --method-option schedule.save_every=10 ${COBI_OPT[@]+"${COBI_OPT[@]}"})
step train-resume 150 "train --preset paper 30 it + exact --resume ($COBI_NOTE)" bash -c '
set -e
py=$0; out=$1; shift
"$py" -m hdrbench train "$@" --iters 30 --out "$out/runs/straight"
"$py" -m hdrbench train "$@" --iters 20 --out "$out/runs/resumed"
"$py" -m hdrbench train "$@" --iters 30 --out "$out/runs/resumed" --resume
"$py" - "$out" <<"PYEOF"
import sys
import torch
a = torch.load(sys.argv[1] + "/runs/straight/checkpoint.pt", map_location="cpu", weights_only=False)
b = torch.load(sys.argv[1] + "/runs/resumed/checkpoint.pt", map_location="cpu", weights_only=False)
assert a["iteration"] == b["iteration"] == 30, (a["iteration"], b["iteration"])
nets = sorted(a["modules"])
diff = [k for k in nets if any(not torch.equal(x, b["modules"][k][n]) for n, x in a["modules"][k].items())]
print("iteration 30 straight vs 20 + resume:", len(nets) - len(diff), "of", len(nets), "networks bit-identical",
      ("; differ: " + " ".join(diff)) if diff else "")
sys.exit(1 if diff else 0)
PYEOF' "$PY" "$OUT" "${TRAIN_OPTS[@]}"

# 5. Training speed at the paper preset.
step bench-train 200 "bench train paper fp32/bf16/compile ($COBI_NOTE)" \
  "$PY" -m hdrbench bench train --presets paper --device cuda --variants fp32,bf16,compile \
  --warmup 1 --repeat 3 ${COBI_OPT[@]+"${COBI_OPT[@]}"}

# 6. HDR-VDP-2 throughput on CUDA (the CPU part at one small size).
step bench-hdrvdp2 90 "bench hdrvdp2 CUDA batch 16 at 1024x768" \
  "$PY" -m hdrbench bench hdrvdp2 --sizes 512x384 --repeat 2 --cuda-batch 16 --cuda-size 1024x768

echo "rows: $ROWS; logs: $OUT ($(( $(date +%s) - START )) s)"
exit $FAILED
