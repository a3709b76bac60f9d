"""GPU checks in one short run (for a lent CUDA machine): correctness of LQS on CUDA against the CPU
fast path (which the test suite checks against a brute-force reference), bf16 agreement, and a
bf16-autocast training run. Throughput figures come from bench/lqs_speed.py and
bench/train_overhead.py with --device cuda (run them all with bench/gpu_check.sh).

Last line: one JSON object with the figures.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delt_engine.demo.generate import generate_demo  # noqa: E402
from delt_engine.scoring.distill import spearman  # noqa: E402
from delt_engine.scoring.runner import run_scoring  # noqa: E402

COLUMNS = ("lqs", "pds", "quality", "learnability")


def lqs_table(frame, target, device, dtype, model="tiny-test", n_steps=20, cache=None, per_sample="auto"):
    opts = {"steps": n_steps, "delta": 5, "warmup_steps": 20, "dtype": dtype, "chunk_size": 16,
            "per_sample": per_sample}
    res = run_scoring(frame, "lqs", model=model, device=device, seed=0, max_length=64, batch_size=8,
                      target_texts=target, options=opts, cache_dir=cache)
    return res.scores.sort("id")


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device; nothing to check")
        print(json.dumps({"device": "cpu", "skipped": True}))
        return
    name = torch.cuda.get_device_name(0)
    demo = generate_demo(seed=0, n_docs=200)
    frame = demo.corpus.head(96)
    target = demo.target["text"].to_list()[:32]
    cache = tempfile.mkdtemp()
    out = {"device": name}
    t0 = time.perf_counter()
    cpu64 = lqs_table(frame, target, "cpu", "float64", cache=cache)
    gpu64 = lqs_table(frame, target, "cuda", "float64", cache=cache)
    out["lqs_fp64_cuda_vs_cpu_max_rel_err"] = {c: rel_err(gpu64[c], cpu64[c]) for c in COLUMNS}
    gpu32 = lqs_table(frame, target, "cuda", "float32", cache=cache)
    out["lqs_fp32_cuda_vs_fp64_max_rel_err"] = {c: rel_err(gpu32[c], cpu64[c]) for c in COLUMNS}
    vm32 = lqs_table(frame, target, "cuda", "float32", cache=cache, per_sample="vmap")
    out["lqs_fp32_cuda_hooks_vs_vmap_max_rel_err"] = {c: rel_err(gpu32[c], vm32[c]) for c in COLUMNS}
    gbf = lqs_table(frame, target, "cuda", "bfloat16", cache=cache)
    out["lqs_bf16_vs_fp32_spearman"] = spearman(gbf["lqs"].to_numpy(), gpu32["lqs"].to_numpy())
    out["correctness_s"] = round(time.perf_counter() - t0, 1)
    print(f"{'check':45s} value")
    for k, v in out.items():
        print(f"{k:45s} {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
