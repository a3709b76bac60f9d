"""Damaged entries of the workspace in the app: a dataset, scoring, run or comparison whose JSON file
cannot be read is shown with its folder and the problem, and can be deleted (that folder only, after a
confirmation) instead of breaking a page.

What counts as damaged: a dataset's ``manifest.json``, a scoring's or run's ``config.json`` or
``status.json``, a comparison's ``comparison.json`` that is empty, not UTF-8, not JSON, or not what it
should hold (see ``fileio.read_json``, ``jobs.protocol.refresh_status``, ``Workspace.list_comparisons``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from delt_engine.errors import DataError
from delt_engine.fileio import read_json
from delt_engine.jobs.protocol import refresh_status

from . import state
from .safe import md

# kind -> the workspace folder its entries live in
FOLDERS = {"dataset": "datasets", "scoring": "scores", "run": "runs", "comparison": "comparisons"}


@dataclass(frozen=True)
class Damaged:
    """One damaged entry: what it is, its folder, and what is wrong (with the file)."""

    kind: str
    folder: Path
    problem: str


def _json_problem(path: Path, want_dict: bool = True) -> str | None:
    try:
        value = read_json(path)
    except (DataError, OSError) as exc:
        return str(exc)
    if want_dict and value is not None and not isinstance(value, dict):
        return f"{path}: damaged file: holds a JSON {type(value).__name__}, not an object"
    return None


def _entries(root: Path, kind: str) -> list[Path]:
    base = root / FOLDERS[kind]
    try:
        return sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        return []


def find(root: Path, kinds: tuple[str, ...] = tuple(FOLDERS)) -> list[Damaged]:
    """Every damaged entry of the given kinds in the workspace ``root`` (reads only small JSON files)."""
    found = []
    comparisons = {}
    if "comparison" in kinds:
        from delt_engine.workspace.layout import Workspace

        comparisons = {
            c["id"]: c["damaged"] for c in Workspace(root).list_comparisons(include_damaged=True) if c.get("damaged")
        }
    for kind in kinds:
        for folder in _entries(root, kind):
            problem = None
            if kind == "dataset" and (folder / "manifest.json").exists():
                problem = _json_problem(folder / "manifest.json")
            elif kind in ("scoring", "run"):
                problem = _json_problem(folder / "config.json")
                if problem is None:
                    status = refresh_status(folder, reap=False)
                    problem = status.get("error") if status.get("damaged") else None
            elif kind == "comparison":
                problem = comparisons.get(folder.name)
            if problem:
                found.append(Damaged(kind, folder, problem))
    return found


def remove(item: Damaged, root: Path | None = None) -> None:
    """Delete the entry's folder, which must be directly inside the workspace folder of its kind.

    Raises:
        DataError: the folder is anywhere else (nothing is deleted).
    """
    root = Path(root) if root is not None else state.workspace_root()
    base = (root / FOLDERS[item.kind]).resolve()
    folder = Path(item.folder)
    if folder.is_symlink() or folder.resolve().parent != base or folder.name in ("", ".", ".."):
        raise DataError(f"{folder} is not an entry of {base}; nothing was deleted")
    shutil.rmtree(folder)


def entry(item: Damaged, key: str) -> None:
    """One damaged entry: the problem, its folder, and "Delete this damaged entry" with a confirmation."""
    with st.container(border=True):
        st.warning(md(f"Damaged {item.kind} {item.folder.name}: {item.problem}"))
        st.code(str(item.folder), language=None, wrap_lines=True)
        confirm = f"{key}.confirm"
        if not st.session_state.get(confirm):
            if st.button("Delete this damaged entry", key=f"{key}.delete"):
                st.session_state[confirm] = True
                st.rerun()
            return
        st.error(md(f"Delete the folder {item.folder} and everything in it? This cannot be undone."))
        c1, c2 = st.columns(2)
        if c1.button("Yes, delete it", key=f"{key}.yes", type="primary"):
            st.session_state.pop(confirm, None)
            try:
                remove(item)
            except (DataError, OSError) as exc:
                st.error(md(f"Could not delete it: {exc}"))
                return
            st.toast(md(f"Deleted {item.folder.name}"))
            st.rerun()
        if c2.button("Keep it", key=f"{key}.keep"):
            st.session_state.pop(confirm, None)
            st.rerun()


def panel(root: Path, kinds: tuple[str, ...], key: str) -> None:
    """Every damaged entry of ``kinds`` (nothing when there is none)."""
    for item in find(root, kinds):
        entry(item, key=f"{key}.{item.kind}.{item.folder.name}")
