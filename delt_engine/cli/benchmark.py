"""``benchmark export``: a multiple-choice benchmark as lm-evaluation-harness tasks.

python -m delt_engine benchmark export --format lm-eval --out DIR            # the demo's benchmark
python -m delt_engine benchmark export --format lm-eval --input bench.jsonl --out DIR
lm_eval --model hf --model_args pretrained=RUN/model --include_path DIR --tasks delt_benchmark
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the benchmark commands to the top-level CLI."""
    bench = subparsers.add_parser("benchmark", help="export a multiple-choice benchmark (e.g. as lm-eval tasks)")
    sub = bench.add_subparsers(dest="benchmark_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "export",
        help="write a benchmark JSONL as lm-evaluation-harness tasks",
        description="Write one lm-eval task per benchmark task (a YAML beside its items as JSONL) "
        "and a group over them, for `lm_eval --include_path DIR --tasks NAME` or "
        "`runs eval RUN --include-path DIR --tasks NAME`. lm-eval scores them exactly "
        "as the built-in evaluation does.",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        default="lm-eval",
        choices=("lm-eval",),
        help="export format (default and only one: lm-eval)",
    )
    p.add_argument(
        "--input",
        type=Path,
        default=None,
        metavar="FILE",
        help="benchmark JSONL ({task, context, choices, answer} per line; default: the demo's benchmark)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if needed)")
    p.add_argument(
        "--prefix",
        default="delt_",
        help="put before every task name (default: delt_, which keeps clear of lm-eval's own task names)",
    )
    p.add_argument(
        "--group",
        default="delt_benchmark",
        help="name of the group over all tasks (default: delt_benchmark; its acc is the unweighted "
        "mean over tasks, as the built-in bench_acc)",
    )
    p.add_argument("--no-group", action="store_true", help="write no group")
    p.add_argument("--seed", type=int, default=0, help="demo seed when no --input is given (default 0)")
    p.add_argument(
        "--n-docs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="demo corpus size when no --input is given (its benchmark skips what the corpus contains; "
        "default: the demo's default size)",
    )
    p.set_defaults(func=cmd_export)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def cmd_export(args: argparse.Namespace) -> int:
    """Export the benchmark and print the task names and how to run them."""
    from ..data.benchmark import load_benchmark
    from ..training.harness import export_task

    if args.input is not None:
        items, source = load_benchmark(args.input), str(args.input)
    else:
        items, source = _demo_items(args.seed, args.n_docs), f"demo benchmark (seed {args.seed})"
    exported = export_task(items, args.out, prefix=args.prefix, group=None if args.no_group else args.group)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.task] = counts.get(item.task, 0) + 1
    print(f"exported {len(items)} items of {source} to {exported.out_dir}")
    for task, name in exported.tasks.items():
        print(f"  {name}: {counts[task]} items (task {task!r})")
    names = exported.group or ",".join(exported.tasks.values())
    if exported.group:
        print(f"  {exported.group}: group of {len(exported.tasks)} tasks (unweighted mean)")
    print(f"run: python -m delt_engine runs eval RUN --include-path {exported.out_dir} --tasks {names}")
    print(
        f" or: lm_eval --model hf --model_args pretrained=RUN_DIR/model --include_path {exported.out_dir} "
        f"--tasks {names}"
    )
    return 0


def _demo_items(seed: int, n_docs: int | None) -> list:
    from ..data.benchmark import Item
    from ..demo.generate import generate_demo

    frame = generate_demo(seed=seed, n_docs=n_docs).benchmark
    return [
        Item(str(r["id"]), r["task"], r["context"], tuple(r["choices"]), int(r["answer"]))
        for r in frame.iter_rows(named=True)
    ]
