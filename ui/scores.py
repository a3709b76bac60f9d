"""The app's view of the workspace's scorings (``delt_engine.workspace.scorings``): scores read once per
file version, and the "load the scored dataset or explain why not" guard the Organize and Train pages share."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from delt_engine.workspace import scorings as engine
from delt_engine.workspace.scorings import SCORES_FILE, Scoring, latest_done, list_scorings
from ui import datasets


@st.cache_resource(show_spinner=False, max_entries=32)
def _read_scores(path: str, mtime_ns: int) -> pl.DataFrame:
    return pl.read_parquet(path).with_columns(pl.col("id").cast(pl.Utf8))


def read_scores(scoring: Scoring) -> pl.DataFrame:
    """``engine.read_scores``, cached per file version."""
    path = scoring.dir / SCORES_FILE
    return _read_scores(str(path), path.stat().st_mtime_ns)


def score_table(frame: pl.DataFrame, scorings: dict[str, Scoring]) -> pl.DataFrame:
    """``engine.score_table`` with the cached reader."""
    return engine.score_table(frame, scorings, reader=read_scores)


def dataset_with_scores(root: Path, name: str) -> tuple[pl.DataFrame, dict[str, Scoring]]:
    """The dataset ``name`` and its latest finished scoring job per method (raises DeltError)."""
    frame = datasets.load(root, name)
    datasets.manifest(root, name)  # a damaged manifest is reported here, before a page reads it
    return frame, latest_done(list_scorings(root, datasets.corpus_path(root, name)))


def dataset_with_scores_or_explain(
    root: Path, name: str, unscored: str
) -> tuple[pl.DataFrame, dict[str, Scoring]] | None:
    """``dataset_with_scores`` for a page: None after showing the error when the dataset cannot be
    loaded; when nothing is scored yet, shows ``unscored`` with a link to Score (and the scores are {})."""
    from delt_engine.errors import DeltError
    from ui import damaged
    from ui.safe import md

    try:
        frame, done = dataset_with_scores(root, name)
    except (DeltError, OSError) as exc:
        st.error(md(exc))
        damaged.panel(root, ("dataset",), key="scores.damaged")
        return None
    if not done:
        st.info(unscored)
        st.page_link("pages/score.py", label="Go to Score", icon=":material/insights:")
    return frame, done
