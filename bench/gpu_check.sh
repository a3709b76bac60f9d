#!/usr/bin/env bash
# All GPU checks of the issues in one short run, for a lent CUDA machine (see docs/benchmarks.md).
# Usage (repo root, environment installed): bash bench/gpu_check.sh [STEP ...]   (default: all steps)
# Steps: correctness cuda_tests lqs_speed lqs_speed_chunks lqs_speed_bf16 train_overhead
#        training_checks train_speed train_speed_compile comparison_speed   (issue 12: packing, groups, MFU)
# Issue 12 alone (about 6-9 minutes): bash bench/gpu_check.sh training_checks train_speed comparison_speed
# Each step has its own time limit so one slow step cannot eat the rest; logs go to $OUT (or ./gpu-out).
set -u
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
ALL="correctness cuda_tests lqs_speed lqs_speed_chunks lqs_speed_bf16 train_overhead"
ALL="$ALL training_checks train_speed train_speed_compile comparison_speed"
STEPS=${*:-$ALL}
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "rc=$? in $((SECONDS - start))s"; tail -n 1 "$OUT/$name.log"
}
SPEED=("$PY" bench/lqs_speed.py --device cuda --model gpu-30m --repeats 3)
wanted correctness && step correctness 120 "$PY" bench/gpu_check.py --checks lqs
wanted cuda_tests && step cuda_tests 90 "$PY" -m pytest -q -p no:cacheprovider tests/scoring/test_lqs.py \
  tests/scoring/test_lqs_reference.py tests/scoring/test_per_sample.py -k "cuda or per_sample or chunk"
# the default chunk on CUDA (64, baseline batch 64) and the end-to-end demo scoring on CUDA
wanted lqs_speed && step lqs_speed 150 "${SPEED[@]}" --e2e-model cpu-demo
if wanted lqs_speed_chunks; then
  for c in 16 32 128; do step "lqs_speed_chunk$c" 60 "${SPEED[@]}" --chunk-size "$c" --skip-e2e; done
fi
wanted lqs_speed_bf16 && step lqs_speed_bf16 60 "${SPEED[@]}" --dtype bfloat16 --skip-e2e
wanted train_overhead && step train_overhead 120 "$PY" bench/train_overhead.py --device cuda --model gpu-30m --steps 200
# issue 12: stacked runs vs solo runs on CUDA (fp32, bf16) and a compiled step vs the eager one
wanted training_checks && step training_checks 150 "$PY" bench/gpu_check.py --checks training
# the paper's scale: gpu-160m, packed 1,024-token rows, bf16 autocast; MFU against the card's bf16 dense peak
TRAIN=("$PY" bench/train_speed.py --device cuda --model gpu-160m --max-length 1024 --steps 30 --repeats 2)
wanted train_speed && step train_speed 180 "${TRAIN[@]}"
wanted train_speed_compile && step train_speed_compile 240 "${TRAIN[@]}" --only-packed --compile --repeats 1
# 15 runs of gpu-30m together vs one after another (goal: together <= 2x the wall time of one run)
wanted comparison_speed && step comparison_speed 300 "$PY" bench/comparison_speed.py --device cuda --model gpu-30m \
  --runs 15 --steps 40 --max-length 1024
exit 0
