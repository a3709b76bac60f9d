"""LQS speed: one contribution pass (per-sample gradient dots with lambda and norms, by layer hooks or
vmap) vs a plain batched forward+backward over the same samples (batch = the chunk size unless set),
peak memory, and end-to-end scoring of the demo corpus.

    .venv/bin/python bench/lqs_speed.py                      # CPU, cpu-demo, max_length 128
    .venv/bin/python bench/lqs_speed.py --device cuda --dtype bfloat16 --model gpu-30m

Timings on a shared machine are noisy: each timing is the best of --repeats runs. Last stdout line:
JSON {"ratio", "peak_mb", "demo_score_s", "device", ...}.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delt_engine.data.tokenizer import encode, train_tokenizer, trim_batch  # noqa: E402
from delt_engine.demo.generate import generate_demo  # noqa: E402
from delt_engine.models.device import describe_device, resolve_device  # noqa: E402
from delt_engine.models.losses import batch_loss  # noqa: E402
from delt_engine.models.presets import build_model  # noqa: E402
from delt_engine.scoring import ScoreContext  # noqa: E402
from delt_engine.scoring.lqs import LQSConfig, run_lqs  # noqa: E402
from delt_engine.scoring.lqs_core import FunctionalLM, length_chunks  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_mb(fn, device) -> float:
    """Peak extra memory while ``fn`` runs: CUDA max allocated above the start, or on CPU the
    peak resident set size above the start, sampled every millisecond by a thread (Linux /proc)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0] - base, 0) / 2**20


def pass_vs_batched(args, device, corpus, tokenizer) -> dict:
    samples = encode(
        corpus["text"].to_list()[: args.n_samples],
        corpus["id"].to_list()[: args.n_samples],
        tokenizer,
        max_length=args.max_length,
    )
    model = build_model(
        args.model,
        vocab_size=len(tokenizer),
        seed=0,
        device=device,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    autocast = torch.bfloat16 if args.dtype == "bfloat16" else None
    flm = FunctionalLM(model, autocast=autocast, per_sample=args.per_sample)
    params = flm.params()
    lam = {k: torch.randn_like(v) for k, v in params.items()}
    chunks = [
        (ids.to(device), mask.to(device))
        for ids, mask in (
            trim_batch(samples.input_ids[i], samples.attention_mask[i])
            for i in length_chunks(samples.lengths, args.chunk_size)
        )
    ]
    batches = [
        (ids.to(device), mask.to(device))
        for ids, mask in (
            trim_batch(samples.input_ids[i], samples.attention_mask[i])
            for i in length_chunks(samples.lengths, args.batch_size)
        )
    ]

    def contribution_pass():
        for ids, mask in chunks:
            flm.sample_stats(params, ids, mask, lam)

    def batched():
        for ids, mask in batches:
            model.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast is not None):
                loss = batch_loss(model, ids, mask)
            loss.backward()

    contribution_pass()  # warm-up (vmap tracing, allocator caches)
    mem = peak_mb(contribution_pass, device)
    mem_batched = peak_mb(batched, device)
    t_pass = timed(contribution_pass, device, args.repeats)
    batched()
    t_batched = timed(batched, device, args.repeats)
    return {
        "per_sample": flm.per_sample,
        "n_samples": len(samples),
        "n_params": sum(p.numel() for p in params.values()),
        "mean_tokens": float(samples.lengths.float().mean()),
        "pass_s": t_pass,
        "batched_s": t_batched,
        "ratio": t_pass / t_batched,
        "peak_mb": mem,
        "peak_mb_batched": mem_batched,
        "grad_chunk_mb": args.chunk_size * sum(p.numel() for p in params.values()) * 4 / 2**20,
    }


def demo_end_to_end(args, device, demo) -> dict:
    phases, last = {}, [None, time.perf_counter()]

    def on_progress(p):
        now = time.perf_counter()
        if p.phase != last[0]:
            if last[0] is not None:
                phases[last[0]] = phases.get(last[0], 0.0) + now - last[1]
            last[0], last[1] = p.phase, now

    options = json.loads(args.lqs_options)
    if args.dtype == "bfloat16":
        options.setdefault("dtype", "bfloat16")
    ctx = ScoreContext(
        frame=demo.corpus.select("id", "text"),
        model=args.e2e_model,
        device=str(device),
        target_texts=demo.target["text"].to_list(),
        options=options,
        on_progress=on_progress,
    )
    start = time.perf_counter()
    result = run_lqs(ctx, "lqs")
    sync(device)
    total = time.perf_counter() - start
    phases[last[0]] = phases.get(last[0], 0.0) + time.perf_counter() - last[1]
    return {
        "demo_score_s": total,
        "phases": {k: round(v, 2) for k, v in phases.items()},
        "n_docs": demo.corpus.height,
        "n_target": demo.target.height,
        "config": result.meta["config"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="cpu-demo", help="model for the pass-vs-batched timing")
    parser.add_argument("--e2e-model", default="cpu-demo", help="model for the end-to-end demo scoring")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--n-samples", type=int, default=256)
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="samples per per-sample chunk (default: LQS's default on the device, 16 CPU / 64 GPU)",
    )
    parser.add_argument("--per-sample", default="auto", choices=("auto", "hooks", "vmap"))
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="batch of the plain forward+backward baseline (default: the chunk size)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--lqs-options", default="{}", help="JSON options for the end-to-end run")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.chunk_size = args.chunk_size or LQSConfig().chunk_for(device)
    args.batch_size = args.batch_size or args.chunk_size
    demo = generate_demo(0)
    tokenizer = train_tokenizer(demo.corpus["text"].to_list())
    speed = pass_vs_batched(args, device, demo.corpus, tokenizer)
    print(
        f"device {describe_device(device)}, threads {torch.get_num_threads()}, model {args.model} "
        f"({speed['n_params']:,} params), dtype {args.dtype}, {speed['n_samples']} samples "
        f"(mean {speed['mean_tokens']:.1f} tokens, max_length {args.max_length}), chunk {args.chunk_size}"
    )
    print(f"{'contribution pass (' + speed['per_sample'] + ': grads + dot + norm)':<46}{speed['pass_s']:>9.3f} s")
    print(f"{'plain batched forward+backward (batch ' + str(args.batch_size) + ')':<46}{speed['batched_s']:>9.3f} s")
    print(f"{'ratio':<46}{speed['ratio']:>9.2f}   (goal <= 1.5)")
    print(
        f"{'peak extra memory of the pass':<46}{speed['peak_mb']:>9.1f} MB "
        f"(vmap would hold chunk x all parameters: {speed['grad_chunk_mb']:.1f} MB)"
    )
    print(f"{'peak extra memory of the batched baseline':<46}{speed['peak_mb_batched']:>9.1f} MB")
    e2e = {"demo_score_s": None}
    if not args.skip_e2e:
        e2e = demo_end_to_end(args, device, demo)
        print(
            f"end to end, default LQS on the demo ({e2e['n_docs']} docs, {e2e['n_target']} target docs, "
            f"model {args.e2e_model}): {e2e['demo_score_s']:.1f} s (goal <= 120 s on the 2-core CPU)"
        )
        for phase, seconds in e2e["phases"].items():
            print(f"  {phase:<20}{seconds:>8.1f} s")
    print(
        json.dumps(
            {
                "ratio": round(speed["ratio"], 3),
                "peak_mb": round(speed["peak_mb"], 1),
                "peak_mb_batched": round(speed["peak_mb_batched"], 1),
                "demo_score_s": None if e2e["demo_score_s"] is None else round(e2e["demo_score_s"], 1),
                "device": describe_device(device),
                "threads": torch.get_num_threads(),
                "pass_s": round(speed["pass_s"], 3),
                "batched_s": round(speed["batched_s"], 3),
                "phases": e2e.get("phases"),
                "dtype": args.dtype,
                "model": args.model,
                "per_sample": speed["per_sample"],
                "chunk_size": args.chunk_size,
                "batch_size": args.batch_size,
            }
        )
    )


if __name__ == "__main__":
    main()
