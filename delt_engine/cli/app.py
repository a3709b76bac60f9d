"""``app``: launch the DELT Studio app (Streamlit) on localhost.

    delt app                              # http://localhost:8501, workspace ./workspace
    delt app --port 8600 --workspace ~/delt-ws

The app's files (app.py, pages/, ui/, assets/, .streamlit/) are installed with the package as
``delt_studio_app`` (package data), so this works from any directory after ``pip install
'delt-studio[app]'``. When this engine runs from a source checkout, the checkout's own app is used.
The current directory stays the working directory (relative paths typed in the app, and the default
./workspace, are relative to where you started it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tomllib
from pathlib import Path

from ..errors import ConfigError

APP_PACKAGE = "delt_studio_app"
APP_PARTS = ("app.py", "pages", "ui")  # what makes a folder the app


def register(subparsers) -> None:
    """Add the app command to the top-level CLI."""
    from . import help_text

    p = subparsers.add_parser(
        "app",
        help="launch the DELT Studio app (Streamlit) on localhost",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument(
        "--workspace",
        metavar="DIR",
        help="workspace folder (default: $DELT_WORKSPACE, else ./workspace of the current directory)",
    )
    p.add_argument(
        "--print-command",
        action="store_true",
        help="print the streamlit command (and the app folder) instead of running it",
    )
    p.add_argument(
        "streamlit_args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="after --: more options for `streamlit run`, e.g. -- --server.headless false",
    )
    p.set_defaults(func=cmd_app)


def app_dir() -> Path:
    """The folder holding the app's app.py: this engine's checkout when it runs from one, else the
    installed ``delt_studio_app`` package.

    Raises:
        ConfigError: neither exists (an engine installed without the app files).
    """
    checkout = Path(__file__).resolve().parents[2]
    if all((checkout / part).exists() for part in APP_PARTS) and (checkout / "delt_engine").is_dir():
        return checkout
    spec = importlib.util.find_spec(APP_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "app.py").is_file():
            return Path(location)
    raise ConfigError(
        "the app's files are not installed with this engine; reinstall with "
        "pip install 'delt-studio[app]' (or run `streamlit run app.py` in a source checkout)"
    )


def streamlit_options(folder: Path) -> list[str]:
    """The app's .streamlit/config.toml as `streamlit run` flags, so it applies from any directory
    (Streamlit itself reads config.toml only from the current directory and ~/.streamlit)."""
    config = folder / ".streamlit" / "config.toml"
    if not config.is_file():
        return []
    with open(config, "rb") as fh:
        sections = tomllib.load(fh)
    flags = []
    for section, values in sections.items():
        for key, value in values.items():
            if f"{section}.{key}" in ("server.address", "server.port"):
                continue  # set by app_command: always localhost, on --port
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{key}={text}")
    return flags


def app_command(port: int, extra: list[str]) -> tuple[list[str], Path]:
    """The `python -m streamlit run` command line for the app, and the app folder."""
    folder = app_dir()
    extra = extra[1:] if extra[:1] == ["--"] else extra
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(folder / "app.py"),
        *streamlit_options(folder),
        "--server.address=localhost",
        f"--server.port={port}",
        *extra,
    ]
    return command, folder


def cmd_app(args: argparse.Namespace) -> int:
    """Replace this process with the Streamlit server (Ctrl+C stops it)."""
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} must be between 1 and 65535")
    command, folder = app_command(args.port, list(args.streamlit_args))
    if args.print_command:
        print(f"app: {folder}")
        print(" ".join(command))
        return 0
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("plotly") is None:
        raise ConfigError("the app needs Streamlit and Plotly: pip install 'delt-studio[app]'")
    if args.workspace:
        os.environ["DELT_WORKSPACE"] = str(Path(args.workspace).expanduser().resolve())
    print(
        f"DELT Studio on http://localhost:{args.port} (workspace "
        f"{os.environ.get('DELT_WORKSPACE') or Path('workspace').resolve()}); Ctrl+C stops it",
        file=sys.stderr,
    )
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return 0  # not reached
