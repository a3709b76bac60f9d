"""Command-line interface. Each submodule defines ``register(subparsers)`` adding its commands,
each command parser with ``set_defaults(func=...)`` taking the parsed args and returning an exit code.
Heavy imports (torch, transformers) happen inside the command functions, not here."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys

from .. import __version__
from ..errors import DeltError

COMMAND_MODULES = ("data", "score", "organize", "train", "compare", "runs", "benchmark", "app")
DEFAULT_PROG = "python -m delt_engine"


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    """The whole CLI: one sub-command per ``register`` of ``COMMAND_MODULES``."""
    parser = argparse.ArgumentParser(prog=prog, description="DELT Studio engine: score, select, order, train, compare.")
    parser.add_argument(
        "--version", action="version", version=f"delt-studio {__version__}", help="print the installed version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def help_text(doc: str | None) -> str:
    """A module docstring as plain text for ``--help`` (with RawDescriptionHelpFormatter): reST inline
    literals (double backticks) become plain words, and the indentation of the examples is kept."""
    return re.sub(r"``([^`]+)``", r"\1", doc or "").strip()


def main(argv: list[str] | None = None, prog: str = DEFAULT_PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DeltError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`delt runs report | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return 141
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(
            f"error: a file this command read is not UTF-8 text ({exc.reason} at byte offset {exc.start}); "
            "re-save it as UTF-8",
            file=sys.stderr,
        )
        return 2


def exit_with(code: int) -> None:
    """Leave the process with ``code`` (used by ``python -m delt_engine`` and the ``delt`` script)."""
    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        # Under torchrun the results are written and the process group is left by now. Skip the
        # interpreter's teardown: gloo's background threads can abort it ("terminate called without an
        # active exception"), which torchrun would report as a failed worker after a successful run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def console_main() -> None:
    """Entry point of the ``delt`` console script."""
    exit_with(main(prog="delt"))


# What to do about the usual file errors, by errno.
OS_ERROR_FIXES = {
    errno.ENOENT: "no such file or folder; check the path",
    errno.EISDIR: "is a folder, not a file; give a file path (or remove the folder if it is in the way)",
    errno.ENOTDIR: "a part of this path is a file, not a folder; check the path",
    errno.EACCES: "permission denied; choose a path you may read (or write), or change its permissions",
    errno.EPERM: "operation not permitted; choose another path, or change its permissions",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.ENOSPC: "no space left on the device; free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded; free some space or write somewhere else",
    errno.ELOOP: "symbolic link loop (a link points back to itself); fix or remove the link",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter path",
    errno.EEXIST: "already exists; choose another path or remove it",
}


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: the path, what went wrong and what to do."""
    fix = OS_ERROR_FIXES.get(exc.errno) or f"{exc.strerror or exc}; check the path and try again"
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if n is not None]
    if exc.errno in (errno.EISDIR, errno.EEXIST) and len(names) == 2:
        names = names[1:]  # a rename onto a folder: the destination is the one in the way
    return f"{' -> '.join(names)}: {fix}" if names else fix
