"""The app's view of the workspace's datasets (``delt_engine.workspace.datasets``): the demo folder and
corpus frames cached per process (frames per file path and modification time, so a re-import is
picked up and an unchanged file is read once), plus small display helpers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from delt_engine.workspace import datasets as engine
from delt_engine.workspace.datasets import (
    DEMO,
    check_name,
    imported_names,
    manifest,
    names,
    save_import,
    save_upload,
    set_eval_file,
)

from . import state

__all__ = [
    "DEMO",
    "TARGET_HELP",
    "check_name",
    "corpus_path",
    "demo_folder",
    "eval_paths",
    "imported_names",
    "load",
    "manifest",
    "names",
    "save_import",
    "save_upload",
    "set_eval_file",
    "word_counts",
    "category_columns",
    "group_labels",
]

# How a user gives an imported dataset its own target set (the Data page's control), for messages elsewhere.
TARGET_HELP = (
    'give this dataset a target set on the Data page: open "Target set and benchmark for this '
    'dataset", enter the file, choose "Use as: target" and press Set'
)


@st.cache_resource(show_spinner="Generating the demo corpus…", max_entries=4)
def _demo_folder(root: str, n_docs: int | None) -> str:
    return str(engine.demo_folder(Path(root), n_docs))


def demo_folder(root: Path) -> Path:
    """Folder with the demo's corpus.jsonl, target.jsonl and benchmark.jsonl (made on first use)."""
    folder = Path(_demo_folder(str(root), state.demo_docs()))
    if not (folder / "corpus.jsonl").exists():  # deleted behind our back: make it again
        _demo_folder.clear()
        folder = Path(_demo_folder(str(root), state.demo_docs()))
    return folder


def corpus_path(root: Path, name: str) -> Path:
    """The corpus file of dataset ``name``."""
    return engine.corpus_path(root, name, demo=demo_folder(root) if name == DEMO else None)


def eval_paths(root: Path, name: str) -> dict[str, str | None]:
    """Target set and benchmark of dataset ``name`` (see the engine's ``eval_paths``): None for an
    imported dataset that was not given its own."""
    return engine.eval_paths(root, name, demo=demo_folder(root))


@st.cache_resource(show_spinner=False, max_entries=8)
def _read(path: str, mtime_ns: int) -> pl.DataFrame:
    from delt_engine.data.corpus import read_records

    return read_records(path)


def load(root: Path, name: str) -> pl.DataFrame:
    """The corpus frame of dataset ``name`` (id, text, metadata); read once per file version."""
    path = corpus_path(root, name)
    return _read(str(path), path.stat().st_mtime_ns)


def word_counts(frame: pl.DataFrame) -> pl.Series:
    """Whitespace-separated words per document (cheap: no tokenizer needed for the first chart)."""
    return frame.select(pl.col("text").str.count_matches(r"\S+").alias("words"))["words"]


def category_columns(frame: pl.DataFrame, max_values: int = 12) -> list[str]:
    """Metadata columns worth filtering and colouring by (booleans and small categorical columns)."""
    out = []
    for col, dtype in frame.schema.items():
        if col in ("id", "text"):
            continue
        if dtype == pl.Boolean or (
            dtype in (pl.Utf8, pl.Categorical, pl.Int64, pl.Int32) and frame[col].n_unique() <= max_values
        ):
            out.append(col)
    return out


def group_labels(frame: pl.DataFrame, column: str) -> list[str]:
    """Legend labels for colouring by ``column``; the demo's ``is_noise`` flag reads "clean" / "noise"."""
    if column == "is_noise" and frame.schema[column] == pl.Boolean:
        return ["noise" if v else "clean" for v in frame[column].to_list()]
    return [str(v) for v in frame[column].to_list()]
