"""Command-line interface. Each submodule defines ``register(subparsers)`` adding its commands,
each command parser with ``set_defaults(func=...)`` taking the parsed args and returning an exit code.
Heavy imports (torch, transformers) happen inside the command functions, not here."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import DeltError

COMMAND_MODULES = ("data", "score", "organize", "train", "runs", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m delt_engine",
                                     description="DELT Studio engine: score, select, order, train, compare.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DeltError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
