#!/usr/bin/env bash
# The GPU check (docs/gpu.md), one command from the repository root:
#
#     bash benchmarks/gpu_check.sh             # on a GPU machine, with .gpu/ (make gpu-pack) carried
#     bash benchmarks/gpu_check.sh --dry-run   # on a CPU: the same stages, tiny, in seconds
#
# Stages: the carried wheels, the kernel build report (python -m cuda_ext), the kernel tests
# (tests/cuda_ext), a quality-preset training of the carried subject (up to 5 minutes, less
# when the stages before it ran long), its held-out PSNR, then training rays/s and frames/s
# with the kernels and with the PyTorch reference (AVATAR3D_BACKEND=torch); then the same
# preset with the Gaussian head (--backend gaussians, GAUSSIAN_MINUTES), its held-out PSNR,
# and both backends' frames/s (benchmarks/backends.py). Each stage runs
# under a time limit, whatever failed before it; the whole check ends within BUDGET_S.
# Writes $OUT/gpu_check.log (everything), $OUT/gpu_check.md (the table) and the raw numbers.
# Exit status: 0 all passed, 1 a stage failed, 2 bad input (no .gpu/, no GPU without --dry-run).
set -u -o pipefail

USAGE="usage: bash benchmarks/gpu_check.sh [--dry-run] [--subject DIR]"
DRY=0
SUBJECT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --subject)
      [ $# -ge 2 ] || { echo "gpu_check: --subject needs a folder; $USAGE" >&2; exit 2; }
      SUBJECT=$2; shift ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1'; $USAGE" >&2; exit 2 ;;
  esac
  shift
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 2
OUT=${OUT:-$REPO/out/gpu_check}
WHEELS=.gpu/wheels
TINY="head.grid.levels=4 head.grid.log2_table_size=12 head.grid.finest_resolution=64 march.grid_resolution=16
      march.steps_per_diagonal=64 frames_per_batch=2 rays_per_frame=256"  # tests/conftest.py's TINY_RENDER

# Project dependencies (pyproject.toml) that the GPU machine's image lacks and .gpu/wheels does not
# carry (/work/.library/device/KINDS.md lists what it has): the dry run makes them unimportable.
ABSENT_ON_GPU=mediapipe,av,pocketsphinx,espeakng_loader,audiomentations,pyroomacoustics

if [ "$DRY" = 1 ]; then
  if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
  DEVICE=cpu
  BUDGET_S=240           # the whole check
  TRAIN_MINUTES=1        # upper bound; the step counts below end it first
  TRAIN_ARGS="--preset fast $TINY head_steps=30 torso_steps=10"
  GAUSSIAN_ARGS="--preset fast head_steps=20 torso_steps=5 gaussians.face_count=800 gaussians.shell_count=800
                 gaussians.mouth_count=100 gaussians.hidden=16"  # tests/conftest.py's TINY_GAUSSIANS
  GAUSSIAN_MINUTES=0.5
  TRAIN_OVERHEAD_S=30    # start, loading, final validation and checkpoint
  AFTER_TRAIN_S=100      # kept for eval, both speed runs and the Gaussian stages
  EVAL_FRAMES=2
  BENCH_ARGS="--preset fast --sizes 64,128 --steps 3 --repeats 1 $TINY"
  BACKENDS_ARGS="--sizes 64,128 --repeats 1"
  TEST_ARGS="--collect-only"  # the CPU cases run in make test; here only the path is checked
  LIMIT_KERNELS_S=120; LIMIT_TESTS_S=60; LIMIT_EVAL_S=30; LIMIT_BENCH_S=60; BENCH_RESERVE_S=20
  export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
else
  PY=${PYTHON:-python3}
  DEVICE=cuda
  BUDGET_S=470           # under 8 minutes on the device, start and transfers aside
  TRAIN_MINUTES=5
  TRAIN_ARGS="--preset quality"
  GAUSSIAN_ARGS="--preset quality"
  GAUSSIAN_MINUTES=1
  TRAIN_OVERHEAD_S=40
  AFTER_TRAIN_S=210      # kept for eval, both speed runs and the Gaussian stages
  EVAL_FRAMES=25
  BENCH_ARGS="--preset quality --sizes 256,512 --steps 10 --repeats 3"
  BACKENDS_ARGS="--sizes 256,512 --repeats 3"
  TEST_ARGS=""           # plus -n 4 where pytest-xdist is installed (the image has it)
  LIMIT_KERNELS_S=150; LIMIT_TESTS_S=90; LIMIT_EVAL_S=45; LIMIT_BENCH_S=60; BENCH_RESERVE_S=35
  SUBJECT=${SUBJECT:-.gpu/subject}
fi

# --- bad input: one line, exit 2 ---------------------------------------------------------------
command -v "$PY" >/dev/null || { echo "gpu_check: no Python at '$PY' (set PYTHON)" >&2; exit 2; }
if [ "$DRY" = 0 ]; then
  [ -e "$SUBJECT/subject.json" ] || { echo "gpu_check: $SUBJECT/subject.json is missing: run \`make gpu-pack\` on the development machine and carry .gpu (docs/gpu.md)" >&2; exit 2; }
  "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || { echo "gpu_check: no CUDA GPU visible to $PY's torch; on a CPU run it with --dry-run" >&2; exit 2; }
elif [ -n "$SUBJECT" ] && [ ! -e "$SUBJECT/subject.json" ]; then
  echo "gpu_check: $SUBJECT is not a prepared subject (no subject.json)" >&2; exit 2
fi
mkdir -p "$OUT" || { echo "gpu_check: cannot write $OUT" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
SITE=$WORK/site
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ "$DRY" = 1 ]; then
  export PYTHONPATH="$PYTHONPATH:$REPO/benchmarks/gpu_dry_run" AVATAR3D_ABSENT_MODULES=$ABSENT_ON_GPU
else  # a fresh kernel cache: no lock or build left by an earlier, killed run on a warm machine
  export AVATAR3D_KERNEL_CACHE=$WORK/kernels
fi
AVATAR3D=("$PY" -m avatar3d.cli --device "$DEVICE")
RUN=$WORK/run
GAUSSIAN_RUN=$WORK/gaussians

declare -A STATUS SECONDS_TAKEN
ORDER=()
FAILED=0
DEADLINE=$((SECONDS + BUDGET_S))

record() {  # KEY STATUS SECONDS
  STATUS[$1]=$2; SECONDS_TAKEN[$1]=$3; ORDER+=("$1")
  case "$2" in FAILED*) FAILED=1 ;; esac
  echo "=== $1: $2 (${3} s)"
}

MIN_TRAIN_S=30
GAUSSIAN_MINUTES_S=$(awk "BEGIN { printf \"%d\", $GAUSSIAN_MINUTES * 60 }")
GAUSSIAN_RESERVE_S=$((GAUSSIAN_MINUTES_S + TRAIN_OVERHEAD_S + LIMIT_EVAL_S + BENCH_RESERVE_S))  # kept by the NeRF's speed runs
BEFORE_TRAIN_S=$((MIN_TRAIN_S + TRAIN_OVERHEAD_S + AFTER_TRAIN_S))  # kept by the stages before training

limit() {  # CAP RESERVE: a stage's limit, CAP or less so that RESERVE seconds stay for later stages; at least 20
  local left=$((DEADLINE - SECONDS - $2))
  local chosen=$(( $1 < left ? $1 : left ))
  echo $(( chosen > 20 ? chosen : 20 ))
}

stage() {  # KEY LIMIT_S COMMAND...: runs COMMAND under the limit; output to the log and $WORK/KEY.out
  local key=$1 seconds=$2 start=$SECONDS rc status
  shift 2
  local command="$*"
  command=${command//$'\n'/ }
  echo "=== $key (limit ${seconds} s): ${command:0:400}"
  timeout --kill-after=10 "$seconds" "$@" 2>&1 | tee "$WORK/$key.out"
  rc=${PIPESTATUS[0]}
  case $rc in
    0) status=ok ;;
    124|137) status="FAILED (over its ${seconds} s)" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  record "$key" "$status" $((SECONDS - start))
  return "$rc"
}

# Imports what the later stages need (building no kernel: that is the next stage's job and time).
SETUP_PY='
import importlib, platform, sys
import torch
found, missing = [], []
for name in ["numpy", "scipy", "skimage", "cv2", "yaml", "rich", "tensorboard", "trimesh", "PIL"]:
    try:
        version = getattr(importlib.import_module(name), "__version__", "?")
        found.append(f"{name} {version}")
    except ImportError as error:
        missing.append(f"{name} ({error})")
import avatar3d.train.render, avatar3d.train.render_eval
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"device: {gpu}; python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda})")
print("packages:", ", ".join(found))
if missing:
    sys.exit("missing: " + ", ".join(missing))
'

main() {
  echo "gpu_check $([ "$DRY" = 1 ] && echo '--dry-run ')at $(date -u +%FT%TZ) in $REPO ($(git rev-parse --short HEAD 2>/dev/null || echo 'no git')), work $WORK"
  if [ "$DRY" = 0 ]; then timeout 20 nvidia-smi; fi

  # 1. The project runs from the checkout (PYTHONPATH; pyproject.toml pins Python 3.11, the GPU
  # machine has 3.12, and an install would want the registry), plus the carried wheels.
  if compgen -G "$WHEELS/*.whl" >/dev/null; then
    stage wheels "$(limit 60 $((BEFORE_TRAIN_S + 60)))" "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps \
      --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  else
    echo "no wheels in $WHEELS"; record wheels "none carried" 0
  fi
  stage setup "$(limit 60 $((BEFORE_TRAIN_S + 40)))" "$PY" -c "$SETUP_PY"
  if [ -z "$SUBJECT" ]; then  # dry run: tests/conftest.py's tiny virtual actor, made here
    SUBJECT=$WORK/subject
    stage subject "$(limit 120 $((BEFORE_TRAIN_S + 40)))" env -u AVATAR3D_ABSENT_MODULES bash -c '
      "$@" synth --out "$0/actor" --seconds 4 --resolution 256 --seed 3 --supersample 1 &&
      "$@" prep "$0/actor/video.mp4" --out "$0/subject" --resolution 128 --allow-short' "$WORK" "${AVATAR3D[@]}"
  fi

  # 2. Kernels: the build report and the twin tests.
  if stage kernels "$(limit "$LIMIT_KERNELS_S" $((BEFORE_TRAIN_S + 20)))" "$PY" -m cuda_ext && [ "$DRY" = 0 ] \
      && ! grep -q '^cuda: built' "$WORK/kernels.out"; then
    STATUS[kernels]="FAILED (no 'cuda: built' line)"; FAILED=1
  fi
  if [ "$DRY" = 0 ] && "$PY" -c "import xdist" 2>/dev/null; then TEST_ARGS="$TEST_ARGS -n 4"; fi
  # shellcheck disable=SC2086
  stage tests "$(limit "$LIMIT_TESTS_S" "$BEFORE_TRAIN_S")" "$PY" -m pytest -q -p no:cacheprovider $TEST_ARGS tests/cuda_ext

  # 3. Training, as long as the budget allows (at most TRAIN_MINUTES), then the held-out scores.
  local train_s=$((DEADLINE - SECONDS - AFTER_TRAIN_S - TRAIN_OVERHEAD_S))
  local cap_s=$((TRAIN_MINUTES * 60))
  train_s=$(( train_s < cap_s ? train_s : cap_s ))
  train_s=$(( train_s > MIN_TRAIN_S ? train_s : MIN_TRAIN_S ))
  local minutes
  minutes=$(awk "BEGIN { printf \"%.2f\", $train_s / 60 }")
  echo "$minutes" > "$WORK/train_minutes"
  # shellcheck disable=SC2086
  stage train $((train_s + TRAIN_OVERHEAD_S)) "${AVATAR3D[@]}" train render "$SUBJECT" --run "$RUN" --fresh \
    $TRAIN_ARGS max_minutes="$minutes"
  stage eval "$(limit "$LIMIT_EVAL_S" $((2 * BENCH_RESERVE_S)))" "${AVATAR3D[@]}" eval render "$SUBJECT" --run "$RUN" \
    --out "$WORK/metrics.json" --max-frames "$EVAL_FRAMES" --no-video --no-lmd

  # 4. Speed: the kernels (the default choice) against the PyTorch reference, on the trained avatar.
  local run_arg=()
  [ -f "$RUN/checkpoint.pt" ] && run_arg=(--run "$RUN")
  # shellcheck disable=SC2086
  stage bench-kernels "$(limit "$LIMIT_BENCH_S" "$BENCH_RESERVE_S")" env -u AVATAR3D_BACKEND "$PY" benchmarks/render.py "$SUBJECT" \
    ${run_arg[@]+"${run_arg[@]}"} --device "$DEVICE" --json "$WORK/bench-kernels.json" $BENCH_ARGS
  # shellcheck disable=SC2086
  stage bench-torch "$(limit "$LIMIT_BENCH_S" "$GAUSSIAN_RESERVE_S")" env AVATAR3D_BACKEND=torch "$PY" benchmarks/render.py "$SUBJECT" \
    ${run_arg[@]+"${run_arg[@]}"} --device "$DEVICE" --json "$WORK/bench-torch.json" $BENCH_ARGS

  # 5. The Gaussian head: the same preset for GAUSSIAN_MINUTES, its held-out scores, both backends' frames/s.
  # shellcheck disable=SC2086
  stage train-gaussians "$(limit $((GAUSSIAN_MINUTES_S + TRAIN_OVERHEAD_S)) $((LIMIT_EVAL_S + BENCH_RESERVE_S)))" \
    "${AVATAR3D[@]}" train render "$SUBJECT" --run "$GAUSSIAN_RUN" --fresh --backend gaussians $GAUSSIAN_ARGS \
    max_minutes="$GAUSSIAN_MINUTES"
  stage eval-gaussians "$(limit "$LIMIT_EVAL_S" "$BENCH_RESERVE_S")" "${AVATAR3D[@]}" eval render "$SUBJECT" \
    --run "$GAUSSIAN_RUN" --out "$WORK/metrics-gaussians.json" --max-frames "$EVAL_FRAMES" --no-video --no-lmd
  # shellcheck disable=SC2086
  stage bench-backends "$(limit "$LIMIT_BENCH_S" 0)" "$PY" benchmarks/backends.py "$SUBJECT" --nerf "$RUN" \
    --gaussians "$GAUSSIAN_RUN" --device "$DEVICE" --json "$WORK/bench-backends.json" $BACKENDS_ARGS

  # 6. The table.
  for key in "${ORDER[@]}"; do
    printf '%s\t%s\t%s\n' "$key" "${STATUS[$key]}" "${SECONDS_TAKEN[$key]}"
  done > "$WORK/stages.tsv"
  local sizes
  sizes=$(sed -n 's/.*--sizes \([0-9,]*\).*/\1/p' <<< "$BENCH_ARGS")
  if ! "$PY" benchmarks/gpu_table.py "$WORK" --sizes "$sizes" > "$OUT/gpu_check.md"; then
    FAILED=1
    { echo "gpu_table.py failed; the stages:"; sed 's/^/    /' "$WORK/stages.tsv"; } > "$OUT/gpu_check.md"
  fi
  cp "$WORK"/bench-*.json "$WORK"/metrics*.json "$RUN/curve.json" "$OUT"/ 2>/dev/null
  echo
  cat "$OUT/gpu_check.md"
  echo "gpu_check: $([ "$FAILED" = 0 ] && echo 'all passed' || echo 'FAILED (see the table)') in $SECONDS s; $OUT"
  [ "$FAILED" = 0 ]
}

main 2>&1 | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
rm -rf "$WORK"
exit "$rc"
