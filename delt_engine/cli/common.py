"""What the CLI's command modules share: the workspace option and plain-text tables."""

from __future__ import annotations


def workspace_arg(parser) -> None:
    parser.add_argument("--workspace", default=None, help="workspace folder (default: $DELT_WORKSPACE or ./workspace)")


def workspace(args):
    """The workspace of ``--workspace``, else ``$DELT_WORKSPACE``, else ./workspace."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..workspace.layout import Workspace, default_workspace

    if args.workspace:
        folder = Path(args.workspace)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--workspace {folder} is a file, not a workspace folder; give the folder")
        if not folder.exists() and getattr(args, "needs_existing_workspace", False):
            raise ConfigError(f"--workspace {folder} does not exist; give the folder holding runs/ (or create it)")
    return Workspace(args.workspace) if args.workspace else default_workspace()


def check_output(output, *inputs) -> None:
    """Before any work: ``output`` is a .jsonl/.parquet file name, not an existing folder, not one of
    ``inputs`` (the same file by any path), and its folder can be written (or created). DataError says
    which and how to fix it."""
    import tempfile
    from pathlib import Path

    from ..data.corpus import records_format
    from ..errors import DataError

    output = Path(output)
    records_format(output)  # a wrong suffix fails now, not after a long job
    if output.is_dir():
        raise DataError(
            f"{output}: is an existing folder, not a file; choose another --output file name, or remove the folder"
        )
    for source in inputs:
        if source and Path(source).exists() and output.exists() and Path(source).resolve() == output.resolve():
            raise DataError(f"{output}: the output would overwrite the input {source}; choose another --output")
    folder = output.resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the first folder that exists must let us create the rest
    if not folder.is_dir():
        raise DataError(f"{output}: a part of this path is a file, not a folder; check the path")
    try:  # a real probe: permissions, read-only file systems and root's exceptions all show
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise DataError(f"{output}: cannot write in {folder} ({reason}); choose another --output") from None


def fmt(value) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4f}"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header] + rows]
    return "\n".join(lines)
