"""Scoring jobs of the workspace, their scores joined to the corpus, and scorer agreement.

A scoring job (``scores/<id>/``, made by ``scoring.score_jobs.create_score_job``) belongs to a dataset
when its ``config.json`` input is that dataset's corpus file. The *score table* of a dataset has the
corpus columns plus, for the newest finished job of each method, a column ``<method>`` (the score)
and ``<method>.<component>`` columns (e.g. ``lqs.quality``, list columns for per-step factors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import streamlit as st

from delt_engine.fileio import read_json
from delt_engine.jobs.protocol import refresh_status
from ui import datasets


@dataclass(frozen=True)
class ScoreJob:
    id: str
    dir: Path
    method: str
    state: str
    config: dict
    status: dict

    @property
    def direction(self) -> str:
        return self.status.get("direction") or self.config.get("direction") or "higher_better"


def list_jobs(root: Path, corpus: Path | None = None) -> list[ScoreJob]:
    """Scoring jobs (oldest first, by creation time), optionally only those that scored ``corpus``."""
    base = root / "scores"
    if not base.is_dir():
        return []
    want = str(Path(corpus).absolute()) if corpus else None
    jobs = []
    for path in sorted(p for p in base.iterdir() if p.is_dir()):
        config = read_json(path / "config.json", default=None)
        if not isinstance(config, dict) or "input" not in config:
            continue  # not a scoring of a corpus file (an old cache entry without "input")
        if want and str(Path(config["input"]).absolute()) != want:
            continue
        status = refresh_status(path)
        jobs.append(ScoreJob(path.name, path, str(config.get("method")), status.get("state", "created"),
                             config, status))
    return sorted(jobs, key=lambda j: (j.status.get("created_at") or "", j.id))


def latest_done(jobs: list[ScoreJob]) -> dict[str, ScoreJob]:
    """The newest finished job per method. A comparison's cached scoring (config ``score_hash``) covers
    only the documents left after its validation hold-out, so it is used only when no scoring of the
    whole dataset by that method exists."""
    whole: dict[str, ScoreJob] = {}
    partial: dict[str, ScoreJob] = {}
    for job in jobs:
        if job.state == "done" and (job.dir / "scores.parquet").exists():
            (partial if "score_hash" in job.config else whole)[job.method] = job
    return {**partial, **whole}


@st.cache_resource(show_spinner=False, max_entries=32)
def _read_scores(path: str, mtime_ns: int) -> pl.DataFrame:
    return pl.read_parquet(path).with_columns(pl.col("id").cast(pl.Utf8))


def read_scores(job: ScoreJob) -> pl.DataFrame:
    path = job.dir / "scores.parquet"
    return _read_scores(str(path), path.stat().st_mtime_ns)


def score_table(frame: pl.DataFrame, jobs: dict[str, ScoreJob]) -> pl.DataFrame:
    """Corpus + one score column per method (``<method>``) and its components (``<method>.<name>``)."""
    table = frame.with_columns(pl.col("id").cast(pl.Utf8))
    for method, job in jobs.items():
        scores = read_scores(job)
        renamed = scores.rename({c: (method if c == "score" else f"{method}.{c}") for c in scores.columns if c != "id"})
        table = table.drop([c for c in renamed.columns if c != "id" and c in table.columns])
        table = table.join(renamed, on="id", how="left", maintain_order="left")
    return table


def numeric_components(table: pl.DataFrame, method: str) -> list[str]:
    """Scalar numeric component columns of ``method`` (``lqs.quality``, ...)."""
    prefix = f"{method}."
    return [c for c, dt in table.schema.items() if c.startswith(prefix) and dt.is_numeric()]


def category_components(table: pl.DataFrame, method: str, max_values: int = 6) -> list[str]:
    """Categorical component columns of ``method`` worth colouring by (e.g. ``lqs.source``: exact/distilled)."""
    prefix = f"{method}."
    return [c for c, dt in table.schema.items() if c.startswith(prefix) and dt in (pl.Boolean, pl.Utf8)
            and table[c].n_unique() <= max_values]


def list_components(table: pl.DataFrame, method: str) -> list[str]:
    """Per-step list columns of ``method`` (``lqs.cos``, ``lqs.ratio``, ...)."""
    prefix = f"{method}."
    return [c for c, dt in table.schema.items() if c.startswith(prefix) and isinstance(dt, pl.List)]


def spearman_matrix(table: pl.DataFrame, methods: list[str]) -> np.ndarray:
    """Spearman rank correlation between every pair of score columns (rows with all scores finite).

    Ties get average ranks, so the result equals Pearson correlation of the ranks (the textbook
    definition); a constant column gives NaN against everything.
    """
    clean = table.select(methods).drop_nulls()
    clean = clean.filter(pl.all_horizontal([pl.col(m).cast(pl.Float64).is_finite() for m in methods]))
    ranks = np.column_stack([clean[m].rank("average").to_numpy().astype(float) for m in methods]) if clean.height else \
        np.zeros((0, len(methods)))
    out = np.full((len(methods), len(methods)), np.nan)
    for i in range(len(methods)):
        for j in range(len(methods)):
            a, b = ranks[:, i], ranks[:, j]
            if len(a) > 1 and a.std() > 0 and b.std() > 0:
                out[i, j] = float(np.corrcoef(a, b)[0, 1])
    return out


def top_ids(table: pl.DataFrame, method: str, k: int) -> set[str]:
    """Ids of the ``k`` highest scores of ``method`` (ties broken by id for determinism)."""
    ranked = table.select("id", method).drop_nulls().sort([method, "id"], descending=[True, False])
    return set(ranked["id"].head(k).to_list())


def jaccard_matrix(table: pl.DataFrame, methods: list[str], k: int) -> np.ndarray:
    """Top-k overlap |A ∩ B| / |A ∪ B| between the top-k sets of every pair of methods."""
    sets = [top_ids(table, m, k) for m in methods]
    out = np.full((len(methods), len(methods)), np.nan)
    for i, a in enumerate(sets):
        for j, b in enumerate(sets):
            union = a | b
            out[i, j] = len(a & b) / len(union) if union else np.nan
    return out


def dataset_with_scores(root: Path, name: str) -> tuple[pl.DataFrame, dict[str, ScoreJob]]:
    """The dataset ``name`` and its latest finished scoring job per method (raises DeltError)."""
    frame = datasets.load(root, name)
    return frame, latest_done(list_jobs(root, datasets.corpus_path(root, name)))


def dataset_with_scores_or_explain(root: Path, name: str,
                                   unscored: str) -> tuple[pl.DataFrame, dict[str, ScoreJob]] | None:
    """``dataset_with_scores`` for a page: None after showing the error when the dataset cannot be
    loaded; when nothing is scored yet, shows ``unscored`` with a link to Score (and the scores are {})."""
    from delt_engine.errors import DeltError

    try:
        frame, done = dataset_with_scores(root, name)
    except DeltError as exc:
        st.error(f"{exc}")
        return None
    if not done:
        st.info(unscored)
        st.page_link("pages/score.py", label="Go to Score", icon=":material/insights:")
    return frame, done
