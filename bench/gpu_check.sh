#!/usr/bin/env bash
# All GPU checks of the issues in one short run, for a lent CUDA machine (see docs/benchmarks.md).
# Usage (repo root, environment already installed): bash bench/gpu_check.sh
# Each step has its own time limit so one slow step cannot eat the rest; logs go to $OUT (or ./gpu-out).
set -u
PY=${PY:-.venv/bin/python}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "rc=$?"; tail -n 1 "$OUT/$name.log"
}
step correctness 150 "$PY" bench/gpu_check.py
step lqs_speed 150 "$PY" bench/lqs_speed.py --device cuda --model gpu-30m --e2e-model cpu-demo --repeats 3
step lqs_speed_bf16 120 "$PY" bench/lqs_speed.py --device cuda --model gpu-30m --dtype bfloat16 --skip-e2e --repeats 3
step train_overhead 120 "$PY" bench/train_overhead.py --device cuda --model gpu-30m --steps 200
step cuda_tests 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_lqs.py tests/test_lqs_reference.py tests/test_per_sample.py -k "cuda or per_sample"
