"""Scorings of the workspace: ``scores/<id>/`` folders, each a scoring job (config.json, status.json,
progress.json, scores.parquet when done), made by the app, the CLI or a comparison's cache.

A scoring belongs to a dataset when its ``config.json`` input is that dataset's corpus file. The *score
table* of a dataset has the corpus columns plus, for the newest finished scoring of each method, a
column ``<method>`` (the score) and ``<method>.<component>`` columns (e.g. ``lqs.quality``, list
columns for per-step factors).

Every ``scores/<id>/`` folder holds one method's scores (``score`` is that method's). A job that runs
several methods at once (config ``"methods": ["lqs", "pds"]``: PDS is LQS's numerator, so both come
from one proxy trajectory) keeps the first method's scores in its own folder and writes each other
method's as a finished scoring folder of its own (config ``"made_by": <job id>``), so every reader of
one-method folders, old workspaces included, keeps working unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..errors import ConfigError, DataError
from ..fileio import new_dir, read_json, write_json
from ..jobs.protocol import CONFIG_FILE, refresh_status, write_status
from ..scoring import get_scorer
from ..scoring.registry import JOB_DEFAULTS

SCORES_FILE = "scores.parquet"


@dataclass(frozen=True)
class Scoring:
    """One scoring of the workspace (``scores/<id>/``): its method, state, config and status."""

    id: str
    dir: Path
    method: str
    state: str
    config: dict
    status: dict

    @property
    def direction(self) -> str:
        return self.status.get("direction") or self.config.get("direction") or "higher_better"


def list_scorings(root: Path, corpus: Path | None = None) -> list[Scoring]:
    """Scoring jobs (oldest first, by creation time), optionally only those that scored ``corpus``."""
    base = root / "scores"
    if not base.is_dir():
        return []
    want = str(Path(corpus).absolute()) if corpus else None
    jobs = []
    for path in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            config = read_json(path / "config.json", default=None)
        except (DataError, OSError):  # damaged: left out here, so one bad file hides no other scoring
            continue
        if not isinstance(config, dict) or "input" not in config:
            continue  # not a scoring of a corpus file (an old cache entry without "input")
        if want and str(Path(config["input"]).absolute()) != want:
            continue
        status = refresh_status(path)
        jobs.append(Scoring(path.name, path, str(config.get("method")), status.get("state", "created"), config, status))
    return sorted(jobs, key=lambda j: (j.status.get("created_at") or "", j.id))


def latest_done(jobs: list[Scoring]) -> dict[str, Scoring]:
    """The newest finished job per method. A comparison's cached scoring (config ``score_hash``) covers
    only the documents left after its validation hold-out, so it is used only when no scoring of the
    whole dataset by that method exists."""
    whole: dict[str, Scoring] = {}
    partial: dict[str, Scoring] = {}
    for job in jobs:
        if job.state == "done" and (job.dir / "scores.parquet").exists():
            (partial if "score_hash" in job.config else whole)[job.method] = job
    return {**partial, **whole}


# The scorings a newcomer most likely wants a page to start from: the paper's method, then its numerator.
PREFERRED_METHODS = ("lqs", "pds")


def preferred_method(done: dict[str, Scoring]) -> str | None:
    """The method pages should default to among ``done`` (from ``latest_done``).

    Args:
        done: method -> its newest finished scoring.

    Returns:
        "lqs" when it is scored, else "pds", else the method of the newest scoring (by creation time);
        None when nothing is scored.
    """
    for method in PREFERRED_METHODS:
        if method in done:
            return method
    if not done:
        return None
    return max(done.values(), key=lambda s: (s.status.get("created_at") or "", s.id)).method


def read_scores(scoring: Scoring) -> pl.DataFrame:
    """The scores table (id as text, score, components) of a finished scoring."""
    return pl.read_parquet(scoring.dir / SCORES_FILE).with_columns(pl.col("id").cast(pl.Utf8))


def score_table(
    frame: pl.DataFrame, scorings: dict[str, Scoring], reader: Callable[[Scoring], pl.DataFrame] | None = None
) -> pl.DataFrame:
    """Corpus + one score column per method (``<method>``) and its components (``<method>.<name>``).

    ``reader`` reads a scoring's scores (default ``read_scores``; the app passes a cached one)."""
    table = frame.with_columns(pl.col("id").cast(pl.Utf8))
    for method, scoring in scorings.items():
        scores = (reader or read_scores)(scoring)
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
    return [
        c
        for c, dt in table.schema.items()
        if c.startswith(prefix) and dt in (pl.Boolean, pl.Utf8) and table[c].n_unique() <= max_values
    ]


def list_components(table: pl.DataFrame, method: str) -> list[str]:
    """Per-step list columns of ``method`` (``lqs.cos``, ``lqs.ratio``, ...)."""
    prefix = f"{method}."
    return [c for c, dt in table.schema.items() if c.startswith(prefix) and isinstance(dt, pl.List)]


def create_score_job(workspace_scores_dir, config: dict) -> Path:
    """Make ``<workspace_scores_dir>/<id>/`` with ``config.json`` and status "queued".

    Args:
        workspace_scores_dir: the workspace ``scores/`` folder (created when missing).
        config: {"input": path, "method": name} plus any of JOB_DEFAULTS' keys; paths are made absolute.
            ``"methods": [name, ...]`` instead runs several scorers in one job (one scores folder each,
            see the module docstring); ``method`` is then the first of them.

    Returns:
        The job directory; run it with ``python -m delt_engine score --job-dir DIR``.

    Raises:
        ConfigError when the input or method is missing, a method is unknown, or a method that needs a
        target set (LQS, PDS) has none.
    """
    methods = list(dict.fromkeys(config.get("methods") or ([config["method"]] if config.get("method") else [])))
    if not config.get("input") or not methods:
        raise ConfigError("a scoring job needs 'input' (a corpus file) and 'method' in its config")
    if config.get("method") and config["method"] != methods[0]:
        raise ConfigError(f"method {config['method']!r} must be the first of methods {methods}")
    for method in methods:
        if get_scorer(method).needs_target and not config.get("target"):
            raise ConfigError(
                f"{method} needs a target set (clean text the model should get good at): give "
                "'target' (a JSONL/Parquet file with a text field) in the job config"
            )
    config = {**JOB_DEFAULTS, **config, "method": methods[0]}
    if len(methods) > 1:
        config["methods"] = methods
    else:
        config.pop("methods", None)
    for key in ("input", "target", "cache_dir", "tokenizer"):
        if config.get(key):
            config[key] = str(Path(config[key]).expanduser().absolute())
    if not Path(config["input"]).exists():
        raise DataError(f"input file {config['input']} does not exist")
    job_dir = new_dir(Path(workspace_scores_dir), config["method"])
    write_json(job_dir / CONFIG_FILE, config)
    write_status(job_dir, "queued")
    return job_dir
