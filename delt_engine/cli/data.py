"""``demo-data`` and ``import``: get a corpus into the engine's normalised form.

python -m delt_engine demo-data --out DIR [--seed S] [--n-docs N]
python -m delt_engine import --input SRC --output OUT.jsonl|OUT.parquet [options]
python -m delt_engine import --input wikitext --subset wikitext-2-raw-v1 --split "train[:2000]" --output w.jsonl
python -m delt_engine import --input owner/big-corpus --streaming --limit 10000 --output sample.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the data commands to the top-level CLI."""
    demo = subparsers.add_parser(
        "demo-data",
        help="write the generated demo corpus, target set and benchmark",
        description="Write corpus.jsonl, target.jsonl and benchmark.jsonl of the "
        "generated demo (planted structure, no download) into DIR.",
    )
    demo.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if needed)")
    demo.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    demo.add_argument(
        "--n-docs", type=_positive_int, default=None, metavar="N", help="corpus size (default: the demo's default size)"
    )
    demo.set_defaults(func=cmd_demo_data)

    imp = subparsers.add_parser(
        "import",
        help="load a corpus file/dataset and write it normalised (id, text, metadata)",
        description="Load SRC (.jsonl/.ndjson, .json, .csv, .parquet, .txt, a datasets "
        "save_to_disk folder, a local dataset folder or a Hub id), check it, "
        "and write it as JSONL or Parquet with id and text first.",
    )
    imp.add_argument("--input", required=True, metavar="SRC", help="file, folder or Hugging Face dataset id")
    imp.add_argument("--output", required=True, type=Path, metavar="OUT", help="output .jsonl or .parquet file")
    imp.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    imp.add_argument(
        "--id-field",
        default=None,
        help="field holding unique ids (default: the input's own unique 'id' field if it has one, "
        "else rows are numbered doc-000000, doc-000001, ...)",
    )
    imp.add_argument(
        "--format",
        dest="fmt",
        default=None,
        choices=("jsonl", "json", "csv", "tsv", "parquet", "txt", "hf-disk", "hf"),
        help="input format (default: from the suffix or folder contents)",
    )
    imp.add_argument(
        "--text-mode",
        default="lines",
        choices=("lines", "paragraphs", "file"),
        help=".txt input (a file, or a folder of them): one document per line, per blank-line separated "
        "paragraph, or per file (default: lines); a folder's documents get a source_file column",
    )
    imp.add_argument("--skip-bad-lines", action="store_true", help="skip (and count) malformed JSONL lines")
    imp.add_argument(
        "--replace-invalid-utf8",
        action="store_true",
        help="replace undecodable bytes with U+FFFD (counted) instead of failing",
    )
    imp.add_argument("--dedup", action="store_true", help="drop exact duplicate texts, keeping the first")
    hf_arguments(imp)
    imp.add_argument(
        "--max-decompressed-bytes",
        default=None,
        metavar="SIZE",
        help="the most a .gz input may expand to, e.g. 4GB or 8GiB (default: "
        "$DELT_MAX_DECOMPRESSED_BYTES, else 1GB; a guard against gzip bombs)",
    )
    imp.set_defaults(func=cmd_import)

    split = subparsers.add_parser(
        "split-target",
        help="split a target set into the part LQS/PDS score against and the part target_loss uses",
        description="Write SCORE.jsonl (what LQS/PDS aim at: give it to `score --target`) and EVAL.jsonl (what "
        "`train --target` measures target_loss on), disjoint, split by a hash of each text as `compare` "
        "does, so a verdict is never measured on the data its scorer aimed at.",
    )
    split.add_argument("--input", required=True, type=Path, metavar="FILE", help="the target set (JSONL, Parquet, ...)")
    split.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if needed)")
    split.add_argument(
        "--eval-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="share of the texts that go to the evaluation part, in (0, 1) (default 0.5)",
    )
    split.set_defaults(func=cmd_split_target)


def hf_arguments(parser: argparse.ArgumentParser) -> None:
    """--split, --subset/--name, --streaming and --limit: read a Hugging Face dataset as its users call it."""
    parser.add_argument(
        "--split",
        default="train",
        help="split of a dataset folder or Hub dataset, optionally sliced like load_dataset's: "
        "train, 'train[:1000]', 'train[10%%:20%%]', 'train+test' (default: train)",
    )
    parser.add_argument(
        "--subset",
        "--name",
        dest="subset",
        default=None,
        metavar="CONFIG",
        help="dataset config name, for datasets that have several (e.g. wikitext-2-raw-v1 of "
        "wikitext); default: the dataset's default config",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="stream a Hub dataset or dataset folder instead of downloading and caching the "
        "whole split (use with --limit to read only the first rows)",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="keep only the first N rows of the input (a stream stops reading there)",
    )


def hf_options(args: argparse.Namespace) -> dict:
    """The load_corpus keywords of ``hf_arguments``."""
    return {"split": args.split, "name": args.subset, "streaming": args.streaming, "limit": args.limit}


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def cmd_demo_data(args: argparse.Namespace) -> int:
    """Write the demo files and list them with their record counts."""
    from ..demo.generate import write_demo

    paths = write_demo(args.out, seed=args.seed, n_docs=args.n_docs)
    for name, path in paths.items():
        print(f"{name}: {path} ({_count_records(Path(path))} records)")
    return 0


def _count_records(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def cmd_import(args: argparse.Namespace) -> int:
    """Load, check and normalise a corpus, write it, and print what loading did."""
    from ..data.corpus import load_corpus, write_records
    from .common import check_output

    check_output(args.output, args.input)
    loaded = load_corpus(
        args.input,
        text_field=args.text_field,
        id_field=args.id_field,
        fmt=args.fmt,
        skip_bad_lines=args.skip_bad_lines,
        replace_invalid_utf8=args.replace_invalid_utf8,
        dedup=args.dedup,
        text_mode=args.text_mode,
        max_decompressed_bytes=args.max_decompressed_bytes,
        **hf_options(args),
    )
    write_records(loaded.frame, args.output)
    print(loaded.report.summary())
    print(f"wrote {loaded.frame.height} documents to {args.output}")
    return 0


def cmd_split_target(args: argparse.Namespace) -> int:
    """Write the scoring and evaluation parts of a target set and say how many texts each holds."""
    from ..data.corpus import load_corpus, write_records
    from ..errors import ConfigError, DataError
    from ..experiments.holdout import split_target

    if not 0.0 < args.eval_fraction < 1.0:
        raise ConfigError(f"--eval-fraction {args.eval_fraction} must be in (0, 1), e.g. 0.5")
    try:
        score_part, eval_part = split_target(load_corpus(args.input).frame, args.eval_fraction)
    except ValueError as exc:
        raise DataError(f"target set {args.input}: {exc}") from None
    paths = args.out / "score_target.jsonl", args.out / "eval_target.jsonl"
    for frame, path in zip((score_part, eval_part), paths):
        write_records(frame, path)
    print(f"scoring part: {score_part.height} texts -> {paths[0]} (score --target)")
    print(f"evaluation part: {eval_part.height} texts -> {paths[1]} (train --target)")
    return 0
