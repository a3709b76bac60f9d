"""Training speed: tokens/s of one-document rows (padded to the longest row of each batch) vs packed rows
(documents concatenated in order with EOS, cut into full rows) on the shuffled demo corpus, and on CUDA the
model FLOP utilisation against the card's bf16 dense peak.

Both run the engine's own loop (``jobs.train_job.train``, no evaluation sets) for the same number of steps
on the same shuffled ordering; tokens/s is real (non-padding) tokens over the loop's training time. Runs
alternate padded/packed (order flipped each repeat) after an untimed warm-up; medians are reported, and
the ratio is the median of the per-repeat ratios (each repeat runs both back to back, so a load swing on
a shared machine hits both).

    .venv/bin/python bench/train_speed.py                                   # CPU, cpu-demo, 128-token rows
    .venv/bin/python bench/train_speed.py --device cuda --model gpu-160m --max-length 1024 --steps 30

MFU = (6 x parameters + 12 x layers x hidden x row length) x tokens/s / peak (the PaLM appendix count:
forward + backward, attention scores and values counted in full). Peak: --peak-tflops, else the bf16 dense
figure of a known card (H100/H200 SXM 989, A100 312 TFLOP/s), printed with the result.

Last stdout line: JSON {"ratio": packed / padded tokens/s, "padding_frac" (padded path), "padded_tok_s",
"packed_tok_s", "mfu" (CUDA), "peak_tflops", ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

# bf16 dense tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name
BF16_PEAKS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 125.0),
    ("L4", 121.0),
)


def write_shuffled_demo(path: Path, seed: int = 0) -> list[str]:
    """The demo corpus in the shuffle ordering (as a comparison's shuffle arm trains it)."""
    from delt_engine.data.corpus import write_records
    from delt_engine.demo.generate import generate_demo
    from delt_engine.organize.ordering import order

    demo = generate_demo(0)
    frame = demo.corpus.select("id", "text")
    ordered = order(frame, "shuffle", seed=seed, score_field="id")
    write_records(ordered, path)
    return ordered["text"].to_list()


def padding_fraction(config, tokenizer, texts: list[str]) -> float:
    """Share of padding in the trimmed batches of one epoch of one-document rows."""
    from delt_engine.training.data import SequentialBatches, document_rows

    rows = document_rows(texts, [str(i) for i in range(len(texts))], tokenizer, config.max_length)
    lengths = rows.lengths
    batches = SequentialBatches(len(rows), config.batch_size, lengths)
    slots = real = 0
    for index in range(batches.per_epoch):
        _, sl = batches.rows(index)
        chunk = lengths[sl]
        slots += max(chunk) * len(chunk)
        real += sum(chunk)
    return 1.0 - real / slots


def peak_tflops(device: torch.device, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak (not CUDA)"
    name = torch.cuda.get_device_name(device)
    for key, value in BF16_PEAKS:
        if key in name:
            return value, f"bf16 dense peak of {key}"
    return None, f"unknown card {name!r}: pass --peak-tflops"


def flops_per_token(summary: dict, model: str, max_length: int) -> float:
    from delt_engine.models.presets import PRESETS

    n = summary["n_params"]
    attn = 0.0
    if model in PRESETS:
        p = PRESETS[model]
        attn = 12.0 * p.num_layers * p.hidden_size * max_length
    return 6.0 * n + attn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cpu-demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 steadies timings on a busy shared machine)",
    )
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's bf16 dense peak, TFLOP/s")
    ap.add_argument("--only-packed", action="store_true", help="time packed rows only (MFU runs on a GPU)")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time packed rows with the training step compiled (compile time counted)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from delt_engine.data.tokenizer import load_tokenizer
    from delt_engine.jobs.train_job import train
    from delt_engine.models.device import describe_device, resolve_device
    from delt_engine.training.config import RunConfig

    tmp = Path(tempfile.mkdtemp(prefix="train-speed-"))
    texts = write_shuffled_demo(tmp / "shuffled.parquet")
    base = dict(
        input=str(tmp / "shuffled.parquet"),
        model=args.model,
        device=args.device,
        steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        cache_dir=str(tmp / "cache"),
        log_every=10**9,
        epochs=100,
    )
    configs = {"packed": RunConfig(**base, packing=True, compile=False)}
    if not args.only_packed:
        configs["padded"] = RunConfig(**base, packing=False, compile=False)
    if args.compile:
        configs["packed+compile"] = RunConfig(**base, packing=True, compile=True)
    runs = {name: [] for name in configs}
    summaries = {}
    for name, config in configs.items():  # warm-up: tokenizer, kernels, allocator (not the compilation)
        if not config.compile:
            train(RunConfig(**{**config.to_dict(), "steps": 3}), tmp / f"warm-{name}")
    for r in range(args.repeats):
        names = list(configs) if r % 2 == 0 else list(configs)[::-1]
        for name in names:
            summary = train(configs[name], tmp / f"{name}-{r}")
            runs[name].append(summary["tokens"] / summary["train_s"])
            summaries[name] = summary
    med = {name: statistics.median(v) for name, v in runs.items()}
    # each repeat times every variant back to back: the median of per-repeat ratios resists load swings
    pair = {name: statistics.median(a / b for a, b in zip(runs[name], runs["packed"])) for name in runs}
    device = resolve_device(args.device)
    packed = summaries["packed"]
    tok = load_tokenizer(packed["tokenizer"])
    pad_frac = padding_fraction(configs["packed"], tok, texts)
    print(
        f"model={args.model} ({packed['n_params']:,} params) device={describe_device(device)} steps={args.steps} "
        f"batch={args.batch_size}x{args.max_length} repeats={args.repeats} threads={torch.get_num_threads()} "
        f"bf16={packed['bf16']} attn={packed['attn_implementation']}"
    )
    print(f"{'rows':<26}{'median tok/s':>14}   runs")
    for name in runs:
        print(f"{name:<26}{med[name]:>14.0f}   " + ", ".join(f"{v:.0f}" for v in runs[name]))
    out = {
        "packed_tok_s": round(med["packed"], 1),
        "padding_frac": round(pad_frac, 4),
        "model": args.model,
        "device": describe_device(device),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
    }
    if "packed+compile" in med:
        first = summaries["packed+compile"].get("first_step_s")
        out.update(
            compiled_tok_s=round(med["packed+compile"], 1),
            compile=summaries["packed+compile"]["compile"],
            compile_first_step_s=first,
            compile_ratio=round(pair["packed+compile"], 3),
        )
        print(
            f"compiled/eager packed = {out['compile_ratio']:.2f} (compile time counted: first step {first} s "
            f"in the first run, from the inductor cache after)"
        )
    if "padded" in med:
        out.update(
            ratio=round(1 / pair["padded"], 3),
            padded_tok_s=round(med["padded"], 1),
            ratio_of_medians=round(med["packed"] / med["padded"], 3),
        )
        print(
            f"ratio packed/padded = {out['ratio']:.2f} (goal >= 1.8); padding in the padded batches: "
            f"{pad_frac:.1%} (bounds the ratio at ~{1 / (1 - pad_frac):.2f}x)"
        )
    peak, why = peak_tflops(device, args.peak_tflops)
    if peak:
        achieved = flops_per_token(packed, args.model, args.max_length) * med["packed"] / 1e12
        out.update(mfu=round(achieved / peak, 4), achieved_tflops=round(achieved, 1), peak_tflops=peak)
        print(f"MFU (packed) = {achieved:.1f} TFLOP/s of {peak:.0f} ({why}) = {achieved / peak:.1%} (goal >= 35%)")
    else:
        print(f"MFU not computed: {why}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
