#!/usr/bin/env bash
# The GPU path, exercised in one go (< 5 min on one GPU): the test suite's device subset, the
# training-throughput bench (fp32, bf16 autocast, torch.compile), a digits DDPM run, the splat
# training bench and the splat viewer at 1M Gaussians (fps including the CPU sort); one table at
# the end. Without a CUDA GPU it refuses, unless --cpu asks for the same checks on the CPU (small
# sizes: a check of the script, not of a GPU).
#
#   bench/gpu_check.sh            # needs torch.cuda.is_available()
#   bench/gpu_check.sh --cpu      # the CPU fallback (minutes on a laptop)
#
# Run from the repository root (PYTHONPATH is set to it). The viewer step needs a display: a real
# one, or xvfb-run (then GL is software and its fps are not the GPU's); it is skipped without one.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
OUT="${GPU_CHECK_OUT:-$(mktemp -d -t gpu-check-XXXX)}"
export GENSTUDIO_DATA_DIR="$OUT/data"
mkdir -p "$OUT"

DEV=cuda
if [ "${1:-}" = "--cpu" ]; then
  DEV=cpu
elif [ -n "${1:-}" ]; then
  echo "usage: bench/gpu_check.sh [--cpu]" >&2
  exit 2
fi
if [ "$DEV" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA GPU ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'))." >&2
  echo "gpu_check: refusing to pretend; run 'bench/gpu_check.sh --cpu' to exercise the script on the CPU." >&2
  exit 3
fi

# sizes: a GPU gets the real ones, the CPU fallback small ones
if [ "$DEV" = cuda ]; then
  STEPS=3000; DIGITS=2000; BUDGET=30; SPLATS=1000000; FRAMES=20; SIZES="20000 100000 1000000"
  OPTS=("" "--amp bf16" "--compile")
else  # torch.compile is left out: inductor's C++ build alone takes minutes on a small CPU
  STEPS=300; DIGITS=10; BUDGET=10; SPLATS=100000; FRAMES=3; SIZES="1000 5000"
  OPTS=("" "--amp bf16")
fi

ROWS=()
row() { ROWS+=("$(printf '%-34s | %-6s | %8s s | %s' "$1" "$2" "$3" "$4")"); }

# step NAME LOGFILE COMMAND...: runs it, times it, keeps its log, records ok/FAIL
step() {
  local name=$1 log=$2; shift 2
  echo "== $name: $*" >&2
  local t0=$SECONDS
  if "$@" >"$OUT/$log" 2>&1; then STATUS=ok; else STATUS=FAIL; fi
  ELAPSED=$((SECONDS - t0))
  tail -n 3 "$OUT/$log" >&2
}

# 1. the device subset of the test suite (tests taking the ``device`` fixture: plugin contract, rasteriser)
step "tests -m device --device $DEV" tests.log "$PY" -m pytest -q -p no:cacheprovider -m device --device "$DEV" \
  tests/plugins/test_contract.py tests/core/test_scene_gaussians.py
row "tests (device subset)" "$STATUS" "$ELAPSED" "$(grep -Eo '[0-9]+ (passed|failed)[^=]*' "$OUT/tests.log" | tail -1)"

# 2. training throughput: jobs.train vs a bare loop; fp32, bf16 autocast, torch.compile
for opt in "${OPTS[@]}"; do
  # shellcheck disable=SC2086  # $opt is one or two words on purpose
  step "throughput ${opt:-fp32}" "throughput${opt// /_}.log" "$PY" bench/bench_throughput.py --device "$DEV" --steps "$STEPS" $opt
  row "throughput ddpm 8gaussians ${opt:-fp32}" "$STATUS" "$ELAPSED" \
    "$(grep -E '^(bare loop|jobs.train|ratio)' "$OUT/throughput${opt// /_}.log" | tr -s ' ' | paste -sd';' -)"
done

# 3. a digits DDPM run through the CLI (the job a user starts), with its previews
step "digits DDPM" digits.log "$PY" -m genstudio train ddpm --data digits --steps "$DIGITS" --device "$DEV" \
  --sample-every 500 --log-every 50
row "train ddpm digits ($DIGITS steps)" "$STATUS" "$ELAPSED" "$(grep -Eo 'finished [0-9]+ steps in [0-9.]+s' "$OUT/digits.log" | tail -1)"

# 4. splat training (and NeRF) on the procedural scene, rasteriser iterations/s by size
# shellcheck disable=SC2086
step "3-D bench" bench3d.log "$PY" bench/bench_3d.py --device "$DEV" --budget "$BUDGET" --sizes $SIZES
row "splat/NeRF training, rasteriser" "$STATUS" "$ELAPSED" "$(grep -E ' dB |^ +[0-9]+ +[0-9.]+ +[0-9.]+$' "$OUT/bench3d.log" | tr -s ' ' | paste -sd';' -)"

# 5. the splat viewer at 1M Gaussians (fps incl. the CPU sort): needs a display
if [ -n "${DISPLAY:-}" ] || [ "$(uname)" = Darwin ]; then
  step "viewer" viewer.log env QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-xcb}" "$PY" bench/bench_viewer.py --sizes "$SPLATS" --frames "$FRAMES"
  row "splat viewer $SPLATS Gaussians" "$STATUS" "$ELAPSED" "$(grep -E '^ *[0-9]+ +[a-z]+ +[a-z]+ +[0-9.]+' "$OUT/viewer.log" | tr -s ' ' | paste -sd';' -)"
elif command -v xvfb-run >/dev/null; then
  step "viewer (xvfb)" viewer.log xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb "$PY" bench/bench_viewer.py --sizes "$SPLATS" --frames "$FRAMES"
  row "splat viewer $SPLATS (xvfb: software GL)" "$STATUS" "$ELAPSED" "$(grep -E '^ *[0-9]+ +[a-z]+ +[a-z]+ +[0-9.]+' "$OUT/viewer.log" | tr -s ' ' | paste -sd';' -)"
else
  row "splat viewer" "skip" 0 "no display and no xvfb-run"
fi

echo
echo "GPU check on $DEV: $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU", "| torch", torch.__version__)')"
printf '%-34s | %-6s | %10s | %s\n' "check" "status" "time" "result"
printf '%s\n' "${ROWS[@]}"
echo "logs: $OUT"
! printf '%s\n' "${ROWS[@]}" | grep -q '| FAIL '
