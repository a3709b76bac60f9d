"""``demo-data`` and ``import``: get a corpus into the engine's normalised form.

    python -m delt_engine demo-data --out DIR [--seed S] [--n-docs N]
    python -m delt_engine import --input SRC --output OUT.jsonl|OUT.parquet [options]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the data commands to the top-level CLI."""
    demo = subparsers.add_parser("demo-data", help="write the generated demo corpus, target set and benchmark",
                                 description="Write corpus.jsonl, target.jsonl and benchmark.jsonl of the "
                                             "generated demo (planted structure, no download) into DIR.")
    demo.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if needed)")
    demo.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    demo.add_argument("--n-docs", type=_positive_int, default=None, metavar="N",
                      help="corpus size (default: the demo's default size)")
    demo.set_defaults(func=cmd_demo_data)

    imp = subparsers.add_parser("import", help="load a corpus file/dataset and write it normalised (id, text, metadata)",
                                description="Load SRC (.jsonl/.ndjson, .json, .csv, .parquet, .txt, a datasets "
                                            "save_to_disk folder, a local dataset folder or a Hub id), check it, "
                                            "and write it as JSONL or Parquet with id and text first.")
    imp.add_argument("--input", required=True, metavar="SRC", help="file, folder or Hugging Face dataset id")
    imp.add_argument("--output", required=True, type=Path, metavar="OUT", help="output .jsonl or .parquet file")
    imp.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    imp.add_argument("--id-field", default=None, help="field holding unique ids (default: the input's own unique 'id' field if it has one, "
                          "else rows are numbered doc-000000, doc-000001, ...)")
    imp.add_argument("--format", dest="fmt", default=None,
                     choices=("jsonl", "json", "csv", "tsv", "parquet", "txt", "hf-disk", "hf"),
                     help="input format (default: from the suffix or folder contents)")
    imp.add_argument("--text-mode", default="lines", choices=("lines", "paragraphs"),
                     help=".txt input: one document per line, or per blank-line separated paragraph")
    imp.add_argument("--skip-bad-lines", action="store_true", help="skip (and count) malformed JSONL lines")
    imp.add_argument("--replace-invalid-utf8", action="store_true",
                     help="replace undecodable bytes with U+FFFD (counted) instead of failing")
    imp.add_argument("--dedup", action="store_true", help="drop exact duplicate texts, keeping the first")
    imp.add_argument("--split", default="train", help="split of a dataset folder or Hub dataset (default: train)")
    imp.add_argument("--max-decompressed-bytes", default=None, metavar="SIZE",
                     help="the most a .gz input may expand to, e.g. 4GB or 8GiB (default: "
                          "$DELT_MAX_DECOMPRESSED_BYTES, else 1GB; a guard against gzip bombs)")
    imp.set_defaults(func=cmd_import)


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
    from ..data.corpus import load_corpus, records_format, write_records
    from ..errors import DataError

    records_format(args.output)  # a wrong suffix fails now, not after a long load
    if args.output.is_dir():
        raise DataError(f"{args.output}: is an existing folder, not a file; choose another --output file name, "
                        "or remove the folder")
    source = Path(args.input)
    if source.exists() and args.output.exists() and source.resolve() == args.output.resolve():
        raise DataError(f"{args.output}: the output would overwrite the input; choose another --output")
    loaded = load_corpus(args.input, text_field=args.text_field, id_field=args.id_field, fmt=args.fmt,
                         skip_bad_lines=args.skip_bad_lines, replace_invalid_utf8=args.replace_invalid_utf8,
                         dedup=args.dedup, split=args.split, text_mode=args.text_mode,
                         max_decompressed_bytes=args.max_decompressed_bytes)
    write_records(loaded.frame, args.output)
    print(loaded.report.summary())
    print(f"wrote {loaded.frame.height} documents to {args.output}")
    return 0
