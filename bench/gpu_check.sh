#!/usr/bin/env bash
# All GPU checks of the issues in one short run, for a lent CUDA machine (see docs/benchmarks.md).
# Usage (repo root, environment installed): bash bench/gpu_check.sh [STEP ...]   (default: all steps)
# Steps: correctness cuda_tests lqs_speed lqs_speed_chunks lqs_speed_bf16 train_overhead
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
STEPS=${*:-correctness cuda_tests lqs_speed lqs_speed_chunks lqs_speed_bf16 train_overhead}
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "rc=$? in $((SECONDS - start))s"; tail -n 1 "$OUT/$name.log"
}
SPEED=("$PY" bench/lqs_speed.py --device cuda --model gpu-30m --repeats 3)
wanted correctness && step correctness 120 "$PY" bench/gpu_check.py
wanted cuda_tests && step cuda_tests 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_lqs.py \
  tests/test_lqs_reference.py tests/test_per_sample.py -k "cuda or per_sample or chunk"
# the default chunk on CUDA (64, baseline batch 64) and the end-to-end demo scoring on CUDA
wanted lqs_speed && step lqs_speed 150 "${SPEED[@]}" --e2e-model cpu-demo
if wanted lqs_speed_chunks; then
  for c in 16 32 128; do step "lqs_speed_chunk$c" 60 "${SPEED[@]}" --chunk-size "$c" --skip-e2e; done
fi
wanted lqs_speed_bf16 && step lqs_speed_bf16 60 "${SPEED[@]}" --dtype bfloat16 --skip-e2e
wanted train_overhead && step train_overhead 120 "$PY" bench/train_overhead.py --device cuda --model gpu-30m --steps 200
exit 0
