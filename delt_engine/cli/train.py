"""``train``: train one run on ordered data (new run from flags, or job mode from an existing config.json).

    python -m delt_engine train --input ordered.jsonl --run-dir runs/r1 --steps 200 --eval-every 40
    python -m delt_engine train --run-dir runs/r1          # job mode: runs/r1/config.json already written
    python -m delt_engine train --group-dir runs/r1 --group-dir runs/r2   # several runs together (job mode)

Cancel: SIGTERM/SIGINT or a file ``<run-dir>/cancel`` stops the run after the current step; status.json
says "cancelled", metrics stay, and the exit code is 130. A finished run exits 0; a bad configuration or
input exits 2 (``error: ...``); a crash exits 1 with status.json "failed" and the error message.

A group (``--group-dir``, once per run; the job manager starts these) trains its runs in one process,
stacked where they share a model configuration (training/ensemble.py); each run is written as if it had
trained alone, ``<dir>/cancel`` stops that run only, SIGTERM/SIGINT stops them all, and the exit code is
0 when every run is done, 130 when some were cancelled and none failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_CANCELLED = 130


def register(subparsers) -> None:
    """Add the train command to the top-level CLI."""
    from . import help_text

    p = subparsers.add_parser(
        "train",
        help="train a causal LM on ordered data (one run dir)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", help="run directory (created); alone = job mode")
    where.add_argument(
        "--group-dir",
        action="append",
        metavar="RUN_DIR",
        help="a run directory with its config.json, trained together with the other --group-dir "
        "runs in this process (repeat the flag)",
    )
    p.add_argument("--input", help="ordered data JSONL/Parquet (id, text, optional score), trained in file order")
    p.add_argument(
        "--model",
        help="model preset (tiny-test, cpu-demo, cpu-small, gpu-30m, gpu-160m), a local model "
        "folder, or a Hugging Face Hub id owner/name (fetched once into the HF cache: safetensors only, "
        "no remote code; HF_HUB_OFFLINE=1 uses the cache only)",
    )
    p.add_argument(
        "--tokenizer",
        help="tokenizer folder or Hub id (default: the model folder's own, else byte-level BPE trained on the input)",
    )
    p.add_argument("--cache-dir", help="where trained tokenizers are cached (default: the run dir)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimizer steps")
    budget.add_argument("--tokens", type=int, help="token budget: stop once this many real tokens were seen")
    p.add_argument("--epochs", type=int, help="passes over the ordered data, each in the same order (default 1)")
    p.add_argument("--batch-size", type=int, help="rows per optimizer step, taken in file order (default 16)")
    p.add_argument(
        "--max-length", type=int, help="tokens per row (one-document rows truncate longer documents; default 128)"
    )
    rows = p.add_mutually_exclusive_group()
    rows.add_argument(
        "--packing",
        dest="packing",
        action="store_const",
        const=True,
        help="pack documents in their order (EOS between them) into full rows of --max-length "
        "tokens, as the paper trains (default for every preset but tiny-test)",
    )
    rows.add_argument(
        "--no-packing",
        dest="packing",
        action="store_const",
        const=False,
        help="one document per row, padded to the longest row of its batch",
    )
    p.add_argument("--lr", type=float, help="peak learning rate (cosine to 10%% of it after warm-up; default 0.003)")
    p.add_argument("--log-every", type=int, help="steps between train metric lines (default 1)")
    p.add_argument(
        "--eval-every",
        type=int,
        help="steps between evaluations (default: only at the end); with it, also one at step 0 (the untrained model)",
    )
    p.add_argument(
        "--no-eval-at-start", dest="eval_at_start", action="store_const", const=False, help="skip the step-0 evaluation"
    )
    p.add_argument(
        "--save-model",
        dest="save_model",
        action="store_const",
        const=True,
        help="save the trained model + tokenizer to RUN_DIR/model/ (safetensors) when the run completes",
    )
    p.add_argument("--validation", help="held-out general text JSONL/Parquet -> val_loss")
    p.add_argument("--target", help="target set JSONL/Parquet -> target_loss")
    p.add_argument("--benchmark", help="multiple-choice benchmark JSONL -> bench_acc, bench_acc_norm")
    p.add_argument("--eval-max-samples", type=int, help="cap per held-out set and per benchmark task (default 256)")
    p.add_argument(
        "--group-by",
        metavar="COL",
        help="also evaluate the validation (and target) loss per value of "
        "this metadata column (e.g. kind): group_loss in every eval record",
    )
    p.add_argument(
        "--group-min-docs",
        type=int,
        metavar="N",
        help="groups with fewer evaluated documents are pooled as 'other' (default 5)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="seed of the model initialisation (presets) and the run (default 0); "
        "the data order is the file's, whatever the seed",
    )
    p.add_argument("--device", help="auto (default), cpu, cuda, mps")
    p.add_argument(
        "--report-to",
        metavar="TRACKERS",
        help="also log every metric live to tensorboard (RUN_DIR/tb/) "
        "and/or mlflow (a file store: $MLFLOW_TRACKING_URI, else WORKSPACE/mlruns for a run in "
        "WORKSPACE/runs/, else RUN_DIR/mlruns), comma-separated, e.g. tensorboard,mlflow; needs "
        "pip install 'delt-studio[trackers]'",
    )
    p.set_defaults(func=run_train)


# CLI flag -> RunConfig field, for flags given explicitly.
_FIELDS = (
    "model",
    "tokenizer",
    "cache_dir",
    "steps",
    "tokens",
    "epochs",
    "batch_size",
    "max_length",
    "packing",
    "lr",
    "log_every",
    "eval_every",
    "eval_at_start",
    "save_model",
    "validation",
    "target",
    "benchmark",
    "eval_max_samples",
    "seed",
    "device",
    "group_by",
    "group_min_docs",
    "report_to",
)
_PATHS = ("input", "tokenizer", "cache_dir", "validation", "target", "benchmark")


def _config_from_args(args):
    from ..training.config import RunConfig

    values = {"input": args.input}
    values.update({name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None})
    values.update(_resolve_hub_ids(values))
    for name in _PATHS:  # absolute, so the run dir's config.json works from any directory
        if values.get(name):
            values[name] = os.path.abspath(values[name])
    if values.get("model") and Path(values["model"]).is_dir():
        values["model"] = os.path.abspath(values["model"])
        if not values.get("tokenizer") and any(
            (Path(values["model"]) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")
        ):
            values["tokenizer"] = values["model"]  # the model's own tokenizer, not a BPE trained on the input
    return RunConfig(**values)


def _resolve_hub_ids(values: dict) -> dict:
    """Hub ids of --model / --tokenizer as the cache folders of their snapshots (config.json then holds
    local paths, so the run never needs the network again); the ids and commits go into provenance."""
    from ..models.presets import looks_like_hub_id, resolve_model_spec, resolve_tokenizer_spec

    if not any(values.get(k) and looks_like_hub_id(values[k]) for k in ("model", "tokenizer")):
        return {}
    changed, provenance = {}, {}
    tokenizer, tok_snapshot = resolve_tokenizer_spec(values.get("tokenizer"))
    if tok_snapshot is not None:
        changed["tokenizer"] = tokenizer
        provenance.update(tokenizer_id=tok_snapshot.repo_id, tokenizer_revision=tok_snapshot.revision)
    if values.get("model"):
        model, snapshot = resolve_model_spec(values["model"], with_tokenizer=values.get("tokenizer") is None)
        if snapshot is not None:
            changed["model"] = model
            provenance.update(model_id=snapshot.repo_id, model_revision=snapshot.revision)
            if values.get("tokenizer") is None:
                changed["tokenizer"] = model  # the model's own tokenizer, not a BPE trained on the input
    changed["provenance"] = provenance
    return changed


def run_train(args) -> int:
    if args.group_dir:
        return run_group(args)
    from ..errors import ConfigError
    from ..jobs.protocol import StopFlag
    from ..jobs.train_job import train, train_run
    from .progress import ProgressLog

    stop = StopFlag(args.run_dir)
    progress = ProgressLog(unit="step")
    last = {"loss": None}

    def on_step(info: dict) -> None:
        if info["train"] is not None:
            last["loss"] = info["train"]["train_loss"]
        loss = "" if last["loss"] is None else f"loss={last['loss']:.3f} "
        progress.update("train", info["step"], info["total_steps"], f"{loss}tokens={info['tokens']}")

    try:
        if args.input:
            summary = train(_config_from_args(args), args.run_dir, on_step=on_step, should_stop=stop)
        else:
            if any(getattr(args, name) is not None for name in _FIELDS):
                raise ConfigError("training flags need --input; job mode (--run-dir alone) reads config.json")
            summary = train_run(args.run_dir, on_step=on_step, should_stop=stop)
    finally:
        progress.close()
    print(_describe(summary), file=sys.stderr)
    return EXIT_CANCELLED if summary["state"] == "cancelled" else 0


def run_group(args) -> int:
    """``--group-dir`` job mode: the runs train together; one line per run at the end."""
    from ..errors import ConfigError
    from ..jobs.protocol import StopFlag
    from ..jobs.train_job import train_group

    if args.input or any(getattr(args, name) is not None for name in _FIELDS):
        raise ConfigError("--group-dir trains prepared run dirs (their config.json); give no training flags")
    summaries = train_group(args.group_dir, should_stop=StopFlag())
    states = []
    for run_dir, summary in summaries.items():
        if summary["state"] == "not started":
            print(f"{run_dir}: not started: {summary['error']}", file=sys.stderr)
        else:
            print(f"{run_dir}: {_describe(summary)}", file=sys.stderr)
        states.append(summary["state"])
    if all(s == "done" for s in states):
        return 0
    return EXIT_CANCELLED if all(s in ("done", "cancelled") for s in states) else 1


def _describe(summary: dict) -> str:
    parts = [f"{summary['state']}: {summary['steps']}/{summary['total_steps']} steps, {summary['tokens']} tokens"]
    for key in ("train_loss", "val_loss", "target_loss", "bench_acc", "bench_acc_norm"):
        if summary.get(key) is not None:
            parts.append(f"{key}={summary[key]:.4f}")
    return ", ".join(parts)
