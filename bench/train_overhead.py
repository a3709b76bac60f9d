"""Training-loop overhead: tokens/s of the engine's run loop vs. a bare torch loop on the same batches.

Both train the same model preset (SDPA attention, same seed) on the same ordered batches (sequential
slices, padding trimmed) with AdamW, gradient clipping at 1.0 and the same number of steps; bf16
autocast on CUDA for both. The bare loop has no schedule, no metrics, no status files. The engine is
timed by its own ``train_s`` (loop time without evaluation), the bare loop around its loop (with a
device sync at the end). Runs alternate engine/bare (order flipped each repeat) after an untimed
warm-up; medians are reported.

    .venv/bin/python bench/train_overhead.py                       # CPU, cpu-demo
    .venv/bin/python bench/train_overhead.py --device cuda --model gpu-30m --steps 200

Last stdout line: {"ratio": engine/bare (goal >= 0.9), "engine_tok_s", "bare_tok_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from delt_engine.data.tokenizer import encode, load_tokenizer, trim_batch  # noqa: E402
from delt_engine.jobs.train_job import train  # noqa: E402
from delt_engine.models.device import describe_device, resolve_device  # noqa: E402
from delt_engine.models.losses import token_mean_loss  # noqa: E402
from delt_engine.models.presets import build_model  # noqa: E402
from delt_engine.training.config import RunConfig  # noqa: E402
from delt_engine.training.evaluation import autocast_context  # noqa: E402

WORDS = (
    "the a model data order score learn token train small large river stone city night light water "
    "quickly slowly because however therefore market science history music number"
).split()


def write_corpus(path: Path, n_docs: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 160))) + "." for _ in range(n_docs)]
    with open(path, "w") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": f"d{i}", "text": t, "score": rng.random()}) + "\n")
    return texts


def run_engine(config: RunConfig, run_dir: Path) -> tuple[float, dict]:
    summary = train(config, run_dir)
    return summary["tokens"] / summary["train_s"], summary


def run_bare(config: RunConfig, tokenizer, texts: list[str]) -> float:
    device = resolve_device(config.device)
    samples = encode(texts, [str(i) for i in range(len(texts))], tokenizer, config.max_length)
    model = build_model(
        config.model,
        vocab_size=len(tokenizer),
        seed=config.seed,
        device=device,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
        fused=device.type == "cuda",
    )
    amp = torch.bfloat16 if device.type == "cuda" else None
    n, bs, tokens = len(samples), config.batch_size, 0
    start = time.perf_counter()
    for step in range(config.steps):
        a = (step * bs) % (-(-n // bs) * bs)
        ids, mask = trim_batch(samples.input_ids[a : a + bs], samples.attention_mask[a : a + bs])
        with autocast_context(device, amp):
            loss = token_mean_loss(model, ids.to(device), mask.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cpu-demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1 on CPU: on a shared machine, oversubscribed OpenMP "
        "threads make timings swing by 10x; both loops use the same setting)",
    )
    args = ap.parse_args()
    threads = args.threads or (1 if args.device == "cpu" else torch.get_num_threads())
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="train-overhead-"))
    texts = write_corpus(tmp / "ordered.jsonl", args.docs)
    epochs = -(-args.steps * args.batch_size // args.docs)
    base = dict(
        input=str(tmp / "ordered.jsonl"),
        model=args.model,
        device=args.device,
        steps=args.steps,
        epochs=epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        cache_dir=str(tmp / "cache"),
        packing=False,
        compile=False,
    )  # the bare loop's rows, eager
    quiet = RunConfig(**base, log_every=10**9)  # one train line (the last step), no eval sets
    logged = RunConfig(**base, log_every=1)
    # Warm-up, not timed: tokenizer training, and every batch shape once (the first run to meet a new
    # shape pays for kernel selection and allocator growth, which on a GPU skews the first timed run).
    _, summary = run_engine(quiet, tmp / "warm")
    tokenizer = load_tokenizer(summary["tokenizer"])
    run_bare(RunConfig(**{**base, "steps": 3}), tokenizer, texts)
    engine, bare, engine_logged = [], [], []
    for r in range(args.repeats):  # alternate which loop goes first
        runs = [
            lambda: engine.append(run_engine(quiet, tmp / f"engine-{r}")[0]),
            lambda: bare.append(run_bare(quiet, tokenizer, texts)),
            lambda: engine_logged.append(run_engine(logged, tmp / f"logged-{r}")[0]),
        ]
        for run in runs if r % 2 == 0 else runs[::-1]:
            run()
    med = {k: statistics.median(v) for k, v in (("engine", engine), ("bare", bare), ("logged", engine_logged))}
    device = describe_device(resolve_device(args.device))
    print(
        f"model={args.model} device={device} steps={args.steps} batch={args.batch_size}x{args.max_length} "
        f"repeats={args.repeats} threads={threads} attn={summary['attn_implementation']}"
    )
    print(f"{'loop':<28}{'median tok/s':>14}   runs")
    for name, key, vals in (
        ("bare torch", "bare", bare),
        ("engine (log/eval off)", "engine", engine),
        ("engine (log_every=1)", "logged", engine_logged),
    ):
        print(f"{name:<28}{med[key]:>14.0f}   " + ", ".join(f"{v:.0f}" for v in vals))
    ratio, ratio_logged = med["engine"] / med["bare"], med["logged"] / med["bare"]
    print(f"ratio engine/bare = {ratio:.3f} (goal >= 0.9); with per-step metrics = {ratio_logged:.3f}")
    print(
        json.dumps(
            {
                "ratio": round(ratio, 4),
                "engine_tok_s": round(med["engine"], 1),
                "bare_tok_s": round(med["bare"], 1),
                "ratio_log_every_1": round(ratio_logged, 4),
                "model": args.model,
                "device": device,
                "steps": args.steps,
                "repeats": args.repeats,
                "threads": threads,
            }
        )
    )


if __name__ == "__main__":
    main()
