"""``dedup``, ``select`` and ``order``: organise a scored records file (delt-method.md sections 3-4).

    python -m delt_engine dedup --input scored.jsonl --mode near --output unique.jsonl
    python -m delt_engine select --input unique.jsonl --method top-r --ratio 0.5 --output kept.jsonl
    python -m delt_engine order --input kept.jsonl --method folding --layers 3 --output ordered.parquet

All read and write JSONL or Parquet (by suffix) and print a one-line summary on stderr. A scored file
records its scorer's direction (``score`` writes it): ``select`` keeps the better end by it (low
perplexity, high LQS) unless --higher-is-better / --lower-is-better says otherwise, and ``order`` names
the end that comes first. Outputs keep the input's score metadata.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.dedup import MODES as DEDUP_MODES
from ..organize.registry import LAYERED, ORDERINGS, SELECTIONS

SELECT_METHODS = tuple(SELECTIONS)
ORDER_METHODS = tuple(ORDERINGS)


def register(subparsers) -> None:
    """Add the organize commands (dedup, select, order) to the top-level CLI."""
    dedup = subparsers.add_parser(
        "dedup",
        help="drop exact or near duplicates, keeping the first of each in corpus order",
        description="Drop records whose text repeats an earlier one: exact (after lower-casing and collapsing "
        "whitespace), near (word n-gram Jaccard similarity >= threshold, by MinHash) or edit (word edit "
        "similarity >= threshold: a copy with a few words changed, however short the documents).",
    )
    _io_arguments(dedup, scored=False)
    dedup.add_argument("--mode", required=True, choices=DEDUP_MODES, help="what counts as a duplicate")
    dedup.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="S",
        help="near: Jaccard similarity of word n-gram sets that counts as a duplicate (default 0.7); edit: "
        "1 - word edits / longer length (default 0.8: at most one word in five changed; 0.7 to 1)",
    )
    dedup.add_argument("--ngram", type=int, default=None, metavar="N", help="near: words per shingle (default 5)")
    dedup.add_argument("--text-field", default="text", metavar="NAME", help="field holding the text (default: text)")
    dedup.set_defaults(func=cmd_dedup)

    sel = subparsers.add_parser(
        "select",
        help=f"keep the best-scored samples ({', '.join(SELECT_METHODS)}), in their original order",
        description="Keep the best-scored records of a scored file, in their original order (DELT selection).",
    )
    _io_arguments(sel)
    sel.add_argument("--method", required=True, choices=SELECT_METHODS, help="selection method")
    sel.add_argument("--k", type=int, default=None, metavar="N", help="top-k: how many samples to keep")
    sel.add_argument(
        "--ratio", type=float, default=None, metavar="R", help="top-r: share to keep, in (0, 1]; keeps floor(R * N)"
    )
    sel.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="T",
        help="threshold: keep score > T (score < T with --lower-is-better)",
    )
    side = sel.add_mutually_exclusive_group()
    side.add_argument(
        "--lower-is-better",
        dest="higher_is_better",
        action="store_const",
        const=False,
        help="keep the lowest scores (e.g. perplexity, where higher = harder); default: the direction "
        "the scored file records, else higher is better",
    )
    side.add_argument(
        "--higher-is-better",
        dest="higher_is_better",
        action="store_const",
        const=True,
        help="keep the highest scores, whatever the file records",
    )
    sel.set_defaults(func=cmd_select, higher_is_better=None)

    order = subparsers.add_parser(
        "order",
        help=f"put samples in training order ({', '.join(ORDER_METHODS)})",
        description="Reorder the records of a scored file for training (DELT ordering); adds position "
        "and layer fields.",
    )
    _io_arguments(order)
    order.add_argument(
        "--method",
        required=True,
        choices=ORDER_METHODS,
        help="ordering method; beyond the paper: "
        + ", ".join(m for m, info in ORDERINGS.items() if info.source != "paper"),
    )
    order.add_argument(
        "--layers", type=int, default=None, metavar="L", help=f"layers of {'/'.join(LAYERED)} (default: 3)"
    )
    order.add_argument("--descending", action="store_true", help="sort (or fold) by descending score")
    order.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="W",
        help="then shuffle within blocks of W positions (beyond the paper)",
    )
    order.add_argument("--seed", type=int, default=0, metavar="S", help="seed for shuffle and --window (default: 0)")
    order.set_defaults(func=cmd_order)


def _io_arguments(parser: argparse.ArgumentParser, scored: bool = True) -> None:
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        metavar="FILE",
        help=f"{'scored ' if scored else ''}records, .jsonl or .parquet",
    )
    parser.add_argument("--output", required=True, type=Path, metavar="OUT", help="output file, .jsonl or .parquet")
    if scored:
        parser.add_argument(
            "--score-field", default="score", metavar="NAME", help="field holding the score (default: score)"
        )


def _read_input(args: argparse.Namespace, action: str | None = None):
    """The input records; with ``action`` ("select", "order") their ids must be unique (the message
    names the input file and some repeated ids)."""
    from ..data.corpus import read_records
    from ..organize.selection import check_unique_ids
    from .common import check_output

    check_output(args.output, args.input)
    frame = read_records(args.input)
    if action:
        check_unique_ids(frame, action=action, where=str(args.input))
    return frame


def cmd_dedup(args: argparse.Namespace) -> int:
    """Drop duplicates, write the rest in corpus order, and say how many went."""
    from ..data.corpus import write_records
    from ..data.dedup import DedupConfig
    from ..errors import ConfigError

    given = [flag for flag, value in (("--threshold", args.threshold), ("--ngram", args.ngram)) if value is not None]
    unused = given if args.mode == "exact" else [f for f in given if f == "--ngram" and args.mode == "edit"]
    if unused:
        why = {"exact": "it compares whole normalised texts", "edit": "its candidates always come from word bigrams"}
        raise ConfigError(
            f"{' and '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to --mode {args.mode} "
            f"({why[args.mode]}); drop {'it' if len(unused) == 1 else 'them'}, or use --mode near"
        )
    config = DedupConfig(args.mode, args.threshold, 5 if args.ngram is None else args.ngram)
    frame = _read_input(args)
    kept, result = config.apply(frame, text_field=args.text_field)
    write_records(kept, args.output, score_meta=_carried_meta(_read_meta(args.input)))
    print(
        f"dropped {result.n_dropped} of {frame.height} records as {config.label} of earlier ones, "
        f"kept {kept.height}; wrote {args.output}",
        file=sys.stderr,
    )
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    """Select, write the survivors, and print what was kept."""
    from ..data.corpus import write_records
    from ..errors import DataError
    from ..organize.selection import select, summarize_selection

    frame = _read_input(args, action="select")
    meta = _read_meta(args.input)
    higher, why = _direction(args, meta)
    options = dict(
        k=args.k, ratio=args.ratio, threshold=args.threshold, score_field=args.score_field, higher_is_better=higher
    )
    try:
        kept = select(frame, args.method, **options)
    except DataError as exc:
        raise DataError(f"{args.input}: {exc}") from None
    summary = summarize_selection(frame, args.method, **options)
    write_records(kept, args.output, score_meta=_carried_meta(meta))
    end = "highest" if higher else "lowest"
    print(f"keeping the {end} {_score_name(args, meta)} ({why})", file=sys.stderr)
    print(f"{summary.describe()}; wrote {args.output}", file=sys.stderr)
    return 0


def cmd_order(args: argparse.Namespace) -> int:
    """Order, write the records in training order, and say which order was made."""
    from ..data.corpus import write_records
    from ..errors import ConfigError, DataError
    from ..organize.ordering import LAYERED, order

    if args.layers is not None and args.method not in LAYERED:
        raise ConfigError(f"--layers applies to {', '.join(LAYERED)}, not to --method {args.method}; drop it")
    args.layers = 3 if args.layers is None else args.layers
    frame = _read_input(args, action="order")
    try:
        ordered = order(
            frame,
            args.method,
            layers=args.layers,
            descending=args.descending,
            window=args.window,
            seed=args.seed,
            score_field=args.score_field,
        )
    except DataError as exc:
        raise DataError(f"{args.input}: {exc}") from None
    meta = _read_meta(args.input)
    write_records(ordered, args.output, score_meta=_carried_meta(meta))
    label = args.method
    if args.method in LAYERED:
        label += f" L={args.layers} ({int(ordered['layer'].max()) + 1} non-empty layers)"
    if args.method == "shuffle":
        label += f" seed={args.seed}"
    elif args.descending:
        label += " descending"
    if args.window and args.window > 1:
        label += f", window shuffle W={args.window} seed={args.seed}"
    print(f"ordered {ordered.height} samples by {label}{_first_end(args, meta)}; wrote {args.output}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- score direction


def _read_meta(path: Path) -> dict | None:
    from ..data.corpus import read_score_meta

    return read_score_meta(path)


def _carried_meta(meta: dict | None) -> dict | None:
    """The input's score metadata for the output (what the scores mean does not change)."""
    return None if meta is None else {k: v for k, v in meta.items() if k != "matches_file"}


def _recorded_direction(args, meta: dict | None) -> str | None:
    """The direction the file records for the score field in use, or None."""
    if meta is None or meta.get("score_field", "score") != args.score_field:
        return None
    return meta["direction"]


def _score_name(args, meta: dict | None) -> str:
    if _recorded_direction(args, meta) is not None and meta.get("scorer"):
        return f"{meta['scorer']} scores"
    return "scores" if args.score_field == "score" else f"{args.score_field!r} values"


def _direction(args, meta: dict | None) -> tuple[bool, str]:
    """Whether higher is better for ``select``, and why (for the message)."""
    recorded = _recorded_direction(args, meta)
    stale = (
        ""
        if recorded is None or meta.get("matches_file", True)
        else f"; note: {args.input} changed after its scores were recorded, check that this still holds"
    )
    if args.higher_is_better is not None:
        flag = "--higher-is-better" if args.higher_is_better else "--lower-is-better"
        if recorded is not None and (recorded == "higher_better") != args.higher_is_better:
            side = "higher" if recorded == "higher_better" else "lower"
            return args.higher_is_better, f"{flag}; the scores record {side} = better for {meta.get('scorer')}"
        return args.higher_is_better, flag
    if recorded is not None:
        side = "higher" if recorded == "higher_better" else "lower"
        return recorded == "higher_better", f"{side} = better for this scorer{stale}"
    why = (
        f"no direction recorded for {args.score_field!r} in {args.input}"
        if meta is not None
        else f"no direction recorded in {args.input}"
    )
    return True, f"{why}: higher = better assumed; pass --lower-is-better for scores like perplexity"


def _first_end(args, meta: dict | None) -> str:
    """ "; lowest perplexity scores first (lower = better for this scorer)" for the order message."""
    if args.method == "shuffle":
        return ""
    recorded = _recorded_direction(args, meta)
    name = _score_name(args, meta)
    low, high = ("highest", "lowest") if args.descending else ("lowest", "highest")
    if args.method == "sorting":
        text = f"; {low} {name} first"
    elif args.method == "folding":
        text = f"; each layer from {low} to {high} {name}"
    elif args.method == "zigzag":
        text = f"; layers alternate from {low} to {high} {name} and back"
    else:  # an ordering added to the registry: its own description says how it runs
        text = f"; {ORDERINGS[args.method].description} ({name})"
    if recorded is not None:
        text += f" ({'higher' if recorded == 'higher_better' else 'lower'} = better for this scorer)"
    return text
