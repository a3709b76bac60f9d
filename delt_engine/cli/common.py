"""What the CLI's command modules share: the workspace option and plain-text tables."""

from __future__ import annotations


def workspace_arg(parser) -> None:
    parser.add_argument("--workspace", default=None, help="workspace folder (default: $DELT_WORKSPACE or ./workspace)")


def workspace(args):
    """The workspace of ``--workspace``, else ``$DELT_WORKSPACE``, else ./workspace."""
    from ..workspace.layout import Workspace, default_workspace

    return Workspace(args.workspace) if args.workspace else default_workspace()


def fmt(value) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4f}"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header] + rows]
    return "\n".join(lines)
