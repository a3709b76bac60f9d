"""Setting up comparisons from the app: spec from the page's choices, preparation off the script
thread, runs handed to the job manager.

The app trains on exactly what the user scored and organised: the active dataset joined with the
chosen scoring job's scores is written once as a *scored corpus* (``cache/scored/<dataset>-<job>.parquet``)
and the spec uses it with ``scorer = {"score_field": "score"}``, so preparing never re-scores.
Preparing (validation split, selection, shared tokenizer, ordered files) can take seconds on a big
corpus, so it runs in a daemon thread that touches only files and the job manager, never Streamlit;
its progress sits in a process-wide registry that every session can read.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import streamlit as st

from delt_engine.errors import DeltError
from delt_engine.organize.configs import OrderConfig
from delt_engine.organize.registry import ORDERINGS

from . import jobs, state


def scored_corpus(root: Path, dataset: str, frame: pl.DataFrame, job) -> Path:
    """Write (once) the dataset with the job's ``score`` column; returns the Parquet path."""
    from delt_engine.data.corpus import write_records

    from .scores import read_scores

    path = root / "cache" / "scored" / f"{dataset}-{job.id}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        scores = read_scores(job).select("id", "score")
        base = frame.with_columns(pl.col("id").cast(pl.Utf8)).drop([c for c in ("score",) if c in frame.columns])
        write_records(base.join(scores, on="id", how="inner", maintain_order="left"), path)
    return path


def orderings(methods: list[str], layers: int, descending: bool, window: int) -> list[OrderConfig]:
    """One ordering per chosen method, with the Organize page's knobs: L for the layered orderings, the
    "sorting descending" box for sorting, the window shuffle for every ordering but shuffle itself."""
    return [
        OrderConfig(
            m,
            layers=int(layers) if "layers" in ORDERINGS[m].params else 3,
            descending=bool(descending) and m == "sorting",
            window=int(window) if window and m != "shuffle" else None,
        )
        for m in methods
    ]


def build_spec(
    name: str,
    corpus: Path,
    scoring,
    targets: dict,
    selection: dict | None,
    orders: list[OrderConfig],
    n_seeds: int,
    train: dict,
    first_seed: int = 0,
    dedup: dict | None = None,
    group_by: str | None = None,
) -> dict:
    """A comparison spec (``experiments.spec.parse_spec`` input) for the app's choices: every arm gets the
    same selection and duplicate removal (set on Organize) and its own ordering; ``group_by``: the
    metadata column every run is also evaluated by (None for none).

    A step or token budget trains as many passes as it needs (``epochs`` null), so a selection that
    keeps few documents never runs out of data.
    """
    train = dict(train)
    if "steps" in train or "tokens" in train:
        train["epochs"] = None
    return {
        "name": name,
        "corpus": str(corpus),
        "target": targets.get("target"),
        "benchmark": targets.get("benchmark"),
        "scorer": {
            "score_field": "score",
            "direction": scoring.direction,
            "scores_job": scoring.id,
            "scorer_method": scoring.method,
        },
        "selection": selection,
        "dedup": dedup,
        "orderings": [o.to_dict() for o in orders],
        "seeds": list(range(int(first_seed), int(first_seed) + int(n_seeds))),
        "train": train,
        "group_by": group_by,
    }


@dataclass
class Preparation:
    """A comparison being prepared in the background (process-wide, read by every session)."""

    token: str
    name: str
    state: str = "preparing"  # preparing | launched | failed
    message: str = "starting"
    fraction: float = 0.0
    comparison_id: str | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)


class Preparations:
    """Thread-safe registry of background preparations."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: dict[str, Preparation] = {}

    def add(self, prep: Preparation) -> None:
        with self._lock:
            self._items[prep.token] = prep

    def update(self, token: str, **fields) -> None:
        with self._lock:
            for k, v in fields.items():
                setattr(self._items[token], k, v)

    def active(self) -> list[Preparation]:
        with self._lock:
            return [Preparation(**vars(p)) for p in self._items.values() if p.state == "preparing"]

    def get(self, token: str) -> Preparation | None:
        with self._lock:
            p = self._items.get(token)
            return Preparation(**vars(p)) if p else None


@st.cache_resource(show_spinner=False)
def registry() -> Preparations:
    return Preparations()


def _prepare_and_launch(spec: dict, root: Path, token: str, reg: Preparations, submit) -> None:
    """Prepare the comparison, then queue its runs with ``submit(run_dir)`` (in a worker thread, or
    inline in tests). Everything it needs is passed in: it never calls Streamlit."""
    from delt_engine.experiments.prepare import prepare_comparison
    from delt_engine.workspace.layout import Workspace

    def on_progress(p) -> None:
        if p.phase == "prepare":
            reg.update(token, message=p.message, fraction=p.done / max(p.total, 1))

    try:
        comparison = prepare_comparison(spec, Workspace(root), on_progress=on_progress)
        reg.update(token, comparison_id=comparison.id, message=f"{len(comparison.run_dirs)} runs queued")
        for run_dir in comparison.run_dirs:
            submit(run_dir)
        reg.update(token, state="launched", fraction=1.0)
    except DeltError as exc:
        reg.update(token, state="failed", error=str(exc))
    except Exception as exc:  # a bug: keep the trace for the page, never kill the server
        reg.update(token, state="failed", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")


def start(spec: dict, root: Path) -> str:
    """Validate ``spec`` now (errors show at once), then prepare and launch in the background.

    Returns:
        The preparation token (``registry().get(token)`` tells its state and the comparison id).
    """
    from delt_engine.experiments.spec import parse_spec

    parse_spec(spec)  # raises ConfigError with the fix before any thread starts
    reg = registry()
    token = f"prep-{time.time_ns()}"
    reg.add(Preparation(token, spec.get("name", "comparison")))
    if jobs.sync_mode():
        _prepare_and_launch(spec, root, token, reg, jobs.submit_run)
    else:
        manager = jobs.manager()  # fetched here, in the script thread, and handed to the worker
        threading.Thread(
            target=_prepare_and_launch,
            daemon=True,
            name=f"delt-prepare-{token}",
            args=(spec, root, token, reg, lambda run_dir: manager.submit(run_dir, "train")),
        ).start()
    return token


def follow(token: str) -> None:
    """Remember the preparation this session just started, and show its comparison on the Train page."""
    st.session_state[state.PREP_TOKEN] = token
    prep = registry().get(token)
    if prep and prep.comparison_id:
        st.session_state["train.comparison"] = prep.comparison_id
