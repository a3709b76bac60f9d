"""GPU checks in one short run (for a lent CUDA machine): correctness of LQS on CUDA against the CPU
fast path (which the test suite checks against a brute-force reference) and bf16 agreement (``--checks
lqs``); runs trained together (one stacked model) against their solo runs on CUDA, in fp32 and in bf16,
and a compiled training step against the eager one (``--checks training``). Throughput figures come from
bench/lqs_speed.py, bench/train_overhead.py, bench/train_speed.py and bench/comparison_speed.py with
--device cuda (run them all with bench/gpu_check.sh).

Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
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
    opts = {
        "steps": n_steps,
        "delta": 5,
        "warmup_steps": 20,
        "dtype": dtype,
        "chunk_size": 16,
        "per_sample": per_sample,
    }
    res = run_scoring(
        frame,
        "lqs",
        model=model,
        device=device,
        seed=0,
        max_length=64,
        batch_size=8,
        target_texts=target,
        options=opts,
        cache_dir=cache,
    )
    return res.scores.sort("id")


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def training_checks(out: dict, device: str = "cuda") -> None:
    """Stacked (ensemble) training vs solo runs on CUDA, fp32 and bf16; compiled vs eager solo step."""
    from delt_engine.training.config import RunConfig
    from delt_engine.training.ensemble import Member, train_together
    from delt_engine.training.loop import RunState, TrainHooks, train_model

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp())
    demo = generate_demo(seed=0, n_docs=300)
    paths = []
    for seed in range(3):
        path = tmp / f"ordered{seed}.jsonl"
        texts = demo.corpus.sample(fraction=1.0, shuffle=True, seed=seed)
        path.write_text(
            "".join(
                json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(texts["id"].to_list(), texts["text"].to_list())
            )
        )
        paths.append(str(path))

    def configs(**kw):
        return [
            RunConfig(
                input=p,
                model="cpu-demo",
                device=device,
                steps=20,
                batch_size=8,
                max_length=128,
                seed=seed,
                cache_dir=str(tmp / "cache"),
                packing=True,
                **kw,
            )
            for seed, p in enumerate(paths)
        ]

    def losses(records):
        return [r["train_loss"] for r in records if "train_loss" in r]

    for name, kw in (("fp32", {"bf16": False}), ("bf16", {"bf16": True})):
        solo = []
        for config in configs(**kw):
            records = []
            train_model(config, TrainHooks(on_record=records.append), RunState(), tmp)
            solo.append(losses(records))
        collected = [[] for _ in paths]
        outcomes = train_together(
            [Member(c, TrainHooks(on_record=r.append), RunState(), tmp) for c, r in zip(configs(**kw), collected)],
            "stacked",
        )
        assert all(o.state == "done" for o in outcomes), [o.error for o in outcomes]
        out[f"ensemble_{name}_vs_solo_max_rel_err"] = max(rel_err(losses(r), s) for r, s in zip(collected, solo))
    eager, compiled = [], []
    train_model(configs(bf16=True)[0], TrainHooks(on_record=eager.append), RunState(), tmp)
    state = RunState()
    train_model(configs(bf16=True, compile=True)[0], TrainHooks(on_record=compiled.append), state, tmp)
    out["compile"] = state.info.get("compile")
    out["compile_first_step_s"] = state.info.get("first_step_s")
    out["compiled_vs_eager_bf16_max_rel_err"] = rel_err(losses(compiled), losses(eager))
    out["training_checks_s"] = round(time.perf_counter() - t0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", default="lqs,training", help="comma-separated: lqs, training")
    parser.add_argument("--dry-run-cpu", action="store_true", help="run the training checks on the CPU (script test)")
    args = parser.parse_args()
    checks = {c.strip() for c in args.checks.split(",") if c.strip()}
    if args.dry_run_cpu:
        out = {"device": "cpu (dry run)"}
        training_checks(out, "cpu")
        print(json.dumps(out))
        return
    if not torch.cuda.is_available():
        print("no CUDA device; nothing to check")
        print(json.dumps({"device": "cpu", "skipped": True}))
        return
    name = torch.cuda.get_device_name(0)
    out = {"device": name}
    if "lqs" in checks:
        lqs_checks(out)
    if "training" in checks:
        training_checks(out)
    print(f"{'check':45s} value")
    for k, v in out.items():
        print(f"{k:45s} {v}")
    print(json.dumps(out))


def lqs_checks(out: dict) -> None:
    demo = generate_demo(seed=0, n_docs=200)
    frame = demo.corpus.head(96)
    target = demo.target["text"].to_list()[:32]
    cache = tempfile.mkdtemp()
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


if __name__ == "__main__":
    main()
