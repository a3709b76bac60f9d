"""``score``: score every sample of a corpus file, or run a scoring job directory.

    python -m delt_engine score --input corpus.jsonl --method perplexity --output scored.jsonl
    python -m delt_engine score --job-dir workspace/scores/<id>      # used by the job manager and the app

The output holds every input record plus ``score`` and the method's component columns.
"""

from __future__ import annotations

import json
import sys

from ..errors import Cancelled, ConfigError
from ..scoring.registry import SCORERS
from .data import hf_arguments, hf_options
from .progress import ProgressLog

OUTPUT_SUFFIXES = (".jsonl", ".ndjson", ".parquet")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help=f"score samples ({', '.join(SCORERS)})",
        description="Score every sample of a corpus; writes each record plus score and component fields.",
    )
    p.add_argument("--input", metavar="FILE", help="corpus file (JSONL, Parquet, ...) read with load_corpus")
    p.add_argument(
        "--method",
        metavar="NAME",
        help="scoring method: " + "; ".join(f"{name} ({info.description})" for name, info in SCORERS.items()),
    )
    p.add_argument("--output", metavar="OUT", help="output file, .jsonl or .parquet")
    p.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    hf_arguments(p)
    p.add_argument(
        "--model",
        default="cpu-demo",
        metavar="PRESET|DIR|ID",
        help="proxy model: a preset (default cpu-demo), a local model folder, or a Hugging Face Hub id "
        "owner/name (fetched once into the HF cache: safetensors only, no remote code; "
        "HF_HUB_OFFLINE=1 uses the cache only)",
    )
    p.add_argument(
        "--tokenizer",
        metavar="DIR|ID",
        help="tokenizer folder or Hub id (default: the model folder's own, else byte-level BPE trained on the corpus)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--max-length", type=int, default=128, metavar="N", help="tokens per sample (default: 128)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="samples per batch (default: 16)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    p.add_argument("--target", metavar="FILE", help="target set file (LQS/PDS), read with load_corpus")
    p.add_argument("--proxy-size", type=int, metavar="M", help="score M samples exactly, distil the rest (LQS)")
    p.add_argument("--distill", action="store_true", help="distil exact scores into a small scorer (LQS)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="settings",
        help="method option (JSON value when it parses: 3, 0.1, true; else a string); repeatable",
    )
    p.add_argument("--cache-dir", metavar="DIR", help="cache folder for trained tokenizers")
    p.add_argument("--job-dir", metavar="DIR", help="run the scoring job in DIR (config.json) instead")
    p.set_defaults(func=run)

    imp = subparsers.add_parser(
        "import-scores",
        help="register a scores file as a finished scoring job of the workspace (for the app)",
        description="Copy a scores file (JSONL/Parquet with id and score, e.g. from `score --output`) into the "
        "workspace as a finished scoring job of CORPUS, so the app's Score/Organize/Train pages use "
        "it. The file itself is never modified.",
    )
    imp.add_argument("--scores", required=True, metavar="FILE", help="JSONL or Parquet with id and score columns")
    imp.add_argument(
        "--corpus",
        required=True,
        metavar="FILE",
        help="the corpus file the scores belong to (the app's demo: WORKSPACE/datasets/demo-s0-n2000/corpus.jsonl)",
    )
    imp.add_argument("--name", required=True, help="method name shown in the app, e.g. lqs or lqs-cli")
    imp.add_argument(
        "--direction",
        default=None,
        choices=("higher_better", "higher_harder"),
        help="which end is better: higher_better (e.g. lqs) or higher_harder (e.g. perplexity); "
        "default: the direction recorded in the scores file, else higher_better",
    )
    imp.add_argument("--id-field", default="id", help="field holding the sample ids (default: id)")
    imp.add_argument("--score-field", default="score", help="field holding the scores (default: score)")
    imp.add_argument("--workspace", metavar="DIR", help="workspace folder (default: $DELT_WORKSPACE or ./workspace)")
    imp.set_defaults(func=run_import)


def run_import(args) -> int:
    from ..data.corpus import read_score_meta
    from ..workspace.layout import Workspace, default_workspace
    from ..workspace.score_import import import_scores

    ws = Workspace(args.workspace) if args.workspace else default_workspace()
    direction, source = args.direction, "--direction"
    if direction is None:
        meta = read_score_meta(args.scores)
        direction, source = (meta["direction"], "recorded in the file") if meta else ("higher_better", "default")
    job_dir = import_scores(
        ws.scores,
        args.corpus,
        args.scores,
        name=args.name,
        direction=direction,
        id_field=args.id_field,
        score_field=args.score_field,
    )
    print(f"registered {args.scores} as {args.name!r} scores of {args.corpus} ({direction}, {source}) -> {job_dir}")
    return 0


def parse_settings(items: list[str]) -> dict:
    """``["k=3", "lr=0.1", "flag=true", "name=abc"]`` -> {"k": 3, "lr": 0.1, "flag": True, "name": "abc"}."""
    options: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE (e.g. --set warmup_steps=20)")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"True": True, "False": False}.get(raw, raw)
        options[key] = value
    return options


def _resolve_hub_ids(args, needs_model: bool) -> tuple[str, str | None, dict]:
    """--model / --tokenizer with Hub ids fetched to their cache folders (only for model-based methods),
    and what to record about them ({"model_id", "model_revision", "tokenizer_id", ...})."""
    if not needs_model:
        return args.model, args.tokenizer, {}
    from ..models.presets import resolve_model_spec, resolve_tokenizer_spec

    tokenizer, tok_snapshot = resolve_tokenizer_spec(args.tokenizer)
    model, snapshot = resolve_model_spec(args.model, with_tokenizer=tokenizer is None)
    hub = {}
    for key, snap in (("model", snapshot), ("tokenizer", tok_snapshot)):
        if snap is not None:
            hub.update({f"{key}_id": snap.repo_id, f"{key}_revision": snap.revision})
    return model, tokenizer, hub


def _check_args(args) -> None:
    if args.job_dir:
        if args.input or args.output:
            raise ConfigError("--job-dir reads everything from DIR/config.json; drop --input/--output")
        return
    missing = [
        flag
        for flag, value in (("--input", args.input), ("--method", args.method), ("--output", args.output))
        if not value
    ]
    if missing:
        raise ConfigError(f"score needs {', '.join(missing)} (or --job-dir DIR)")
    if not args.output.lower().endswith(OUTPUT_SUFFIXES):
        raise ConfigError(f"--output {args.output} must end in .jsonl or .parquet")
    from .common import check_output

    check_output(args.output, args.input, args.target)  # before minutes of scoring, not after


def _options(args) -> dict:
    options = parse_settings(args.settings)
    if args.proxy_size is not None:
        if args.proxy_size < 1:
            raise ConfigError(f"--proxy-size {args.proxy_size} must be a positive number of samples")
        options["proxy_size"] = args.proxy_size
    if args.distill:
        options["distill"] = True
    return options


def run(args) -> int:
    """Entry point of ``score``; returns the exit code (0 done, 130 cancelled)."""
    _check_args(args)
    from ..scoring.runner import rank

    bars = ProgressLog(enabled=rank() == 0)
    try:
        return _run_job(args, bars) if args.job_dir else _run_file(args, bars)
    except Cancelled:
        bars.close()
        print("cancelled: no scores were written", file=sys.stderr)
        return 130
    finally:
        bars.close()


def _run_job(args, bars: ProgressLog) -> int:
    from ..jobs.score_job import run_score_job

    result = run_score_job(args.job_dir, on_progress=bars)
    if result is not None:
        bars.close()
        print(
            f"scored {result.scores.height} samples with {result.method} in {result.elapsed_s:.1f}s "
            f"-> {args.job_dir}/scores.parquet",
            file=sys.stderr,
        )
    return 0


def _run_file(args, bars: ProgressLog) -> int:
    from ..data.corpus import load_corpus, write_records
    from ..scoring import get_scorer
    from ..scoring.runner import rank, run_scoring, score_metadata

    options = _options(args)
    info = get_scorer(args.method)  # fail on a bad name before reading anything
    if info.needs_target and not args.target:
        raise ConfigError(
            f"--method {args.method} scores each sample by how much it helps a target set (the text "
            "the model should get good at), and none was given: add --target FILE (JSONL/Parquet "
            "with a text field, clean text like what you want the model to learn); a dataset "
            "imported without one has none"
        )
    model, tokenizer, hub = _resolve_hub_ids(args, info.needs_model)
    frame = load_corpus(args.input, text_field=args.text_field, **hf_options(args)).frame
    target = load_corpus(args.target).frame["text"].to_list() if args.target else None
    result = run_scoring(
        frame,
        args.method,
        model=model,
        tokenizer=tokenizer,
        device=args.device,
        seed=args.seed,
        max_length=args.max_length,
        batch_size=args.batch_size,
        target_texts=target,
        options=options,
        cache_dir=args.cache_dir,
        on_progress=bars,
    )
    if result is None or rank() != 0:
        return 0  # a non-zero torchrun rank: rank 0 writes the output
    meta = score_metadata(result)
    meta["settings"].update(hub)  # the Hub ids and commits behind snapshot folders
    write_records(result.frame, args.output, score_meta=meta)
    bars.close()
    from ..scoring.runner import renamed_columns

    renamed = renamed_columns(frame, result.scores, result.method)
    if renamed:
        print(
            "kept the input's own column(s) "
            + ", ".join(f"{c!r} (the scorer's is written as {n!r})" for c, n in renamed.items()),
            file=sys.stderr,
        )
    print(
        f"scored {result.scores.height} of {result.frame.height} samples with {result.method} "
        f"({result.direction}) in {result.elapsed_s:.1f}s -> {args.output}",
        file=sys.stderr,
    )
    return 0
