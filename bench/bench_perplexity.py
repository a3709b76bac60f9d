"""Perplexity scoring throughput: length-bucketed vs corpus-order batches, fp32 vs bf16 autocast (CUDA).

    .venv/bin/python bench/bench_perplexity.py --device cpu --preset cpu-demo --n 512
    python3 bench/bench_perplexity.py --device cuda --preset gpu-30m --n 8192 --batch-size 128 --max-length 512

Prints a table, then one JSON line of figures. Also checks that bucketing does not change the losses and,
on CUDA, how far bf16 autocast and the GPU are from fp32 on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:
    import polars  # noqa: F401
except ImportError:  # the GPU image has no polars; sample_mean_losses does not use it
    sys.modules["polars"] = types.ModuleType("polars")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from delt_engine.data.tokenizer import encode, train_tokenizer  # noqa: E402
from delt_engine.models.presets import build_model, count_parameters  # noqa: E402
from delt_engine.scoring.baselines import sample_mean_losses  # noqa: E402

WORDS = (
    "the of and to in is was for on that with as by at from his her they this which river light "
    "number theory market ancient protein signal network harbour winter method result energy"
).split()


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """Documents with a long-tailed length distribution (like web text): many short, a few long."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=3.5, sigma=1.0, size=n), 3, 2000).astype(int)
    return [" ".join(rng.choice(WORDS, size=k)) + "." for k in lengths]


def timed(fn, device: torch.device, repeats: int = 2) -> tuple[float, torch.Tensor]:
    """Best wall time of ``repeats`` runs after one untimed run (kernel selection for new shapes)."""
    out, best = fn(), float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--attn", default="sdpa")
    args = ap.parse_args()

    texts = synthetic_texts(args.n)
    tok = train_tokenizer(texts[:2000], vocab_size=2048)
    samples = encode(texts, [str(i) for i in range(len(texts))], tok, max_length=args.max_length)
    model = build_model(
        args.preset,
        vocab_size=len(tok),
        seed=0,
        device=args.device,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attn_implementation=args.attn,
    ).eval()
    device = next(model.parameters()).device
    run = lambda **kw: sample_mean_losses(model, samples, batch_size=args.batch_size, **kw)  # noqa: E731
    rows, figures = (
        [],
        {
            "device": str(device),
            "preset": args.preset,
            "params": count_parameters(model),
            "n": args.n,
            "real_tokens": samples.n_tokens,
            "max_length": args.max_length,
            "batch_size": args.batch_size,
        },
    )
    t_sorted, l_sorted = timed(lambda: run(), device)
    t_plain, l_plain = timed(lambda: run(sort_by_length=False), device)
    rows += [("bucketed fp32", t_sorted), ("corpus order fp32", t_plain)]
    figures["bucketing_speedup"] = round(t_plain / t_sorted, 3)
    figures["bucketing_max_abs_diff"] = float((l_sorted - l_plain).abs().max())
    if device.type == "cuda":
        t_bf16, l_bf16 = timed(lambda: run(bf16=True), device)
        rows.append(("bucketed bf16 autocast", t_bf16))
        figures["bf16_speedup"] = round(t_sorted / t_bf16, 3)
        figures["bf16_max_rel_ppl_diff"] = float(((l_bf16 - l_sorted).exp() - 1).abs().max())
        sub = samples.subset(range(min(256, len(samples))))
        cpu_model = model.to("cpu")
        l_cpu = sample_mean_losses(cpu_model, sub, batch_size=args.batch_size)
        figures["cuda_vs_cpu_max_abs_loss_diff"] = float((l_cpu - l_sorted[: len(sub)]).abs().max())
    print(f"{'variant':<26}{'seconds':>10}{'samples/s':>12}{'tokens/s':>12}")
    for name, secs in rows:
        print(f"{name:<26}{secs:>10.3f}{args.n / secs:>12.0f}{samples.n_tokens / secs:>12.0f}")
        figures[f"{name.replace(' ', '_')}_samples_per_s"] = round(args.n / secs, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
