"""The run registry: one cheap entry per run directory and the metrics it has recorded.

Listing reads only the small JSON files and the tail of metrics.jsonl; it never parses whole curves.
A reader that polls a live run keeps a byte offset and reads only what was appended since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..fileio import read_json
from ..jobs.protocol import (
    CONFIG_FILE,
    DAMAGED_STATE,
    FINAL_STATES,
    PROGRESS_FILE,
    SUMMARY_FILE,
    elsewhere,
    read_progress,
    read_status,
    refresh_status,
)
from ..jobs.records import last_metrics


@dataclass(frozen=True)
class RunInfo:
    """One line of the run registry (cheap to build: no metrics parsing)."""

    id: str
    dir: Path
    state: str  # queued|running|done|failed|cancelled, or "created" before it was submitted
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    model: str | None = None
    ordering: str | None = None  # ordering label, e.g. "folding L=3"
    seed: int | None = None
    comparison: str | None = None
    arm: str | None = None
    progress: float | None = None  # fraction of the training steps done, 0..1
    phase: str | None = None  # current phase of the job (e.g. "setup", "train")
    gpu: str | None = None  # the CUDA device the job manager gave it, when jobs are spread over several
    where: str | None = None  # a run not in this machine's job manager: "slurm job 123", "slurm job 123 on node-17"
    last_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Nothing will change this run's state any more: it is final, or its status.json is damaged
        ("unknown", shown with the error), so pages stop polling for it."""
        return self.state in FINAL_STATES or self.state == DAMAGED_STATE


@dataclass
class RunRecord:
    """Everything recorded for one run."""

    id: str
    dir: Path
    config: dict
    status: dict
    progress: dict
    metrics: pl.DataFrame
    summary: dict


def run_info(run_dir: Path, reap: bool = True) -> RunInfo:
    """The registry entry of one run directory."""
    status = refresh_status(run_dir) if reap else read_status(run_dir)
    config = read_json(run_dir / "config.json", default={}) or {}
    prov = config.get("provenance") or {}
    prog = read_progress(run_dir)
    return RunInfo(
        id=run_dir.name,
        dir=run_dir,
        state=status.get("state", "created"),
        created_at=status.get("created_at"),
        started_at=status.get("started_at"),
        ended_at=status.get("ended_at"),
        error=status.get("error"),
        gpu=status.get("gpu"),
        where=_where(status),
        model=_pick(config, prov, "model"),
        ordering=_ordering_label(prov.get("ordering")) or _ordering_label(config.get("ordering")),
        seed=_pick(config, prov, "seed"),
        comparison=_pick(prov, config, "comparison"),
        arm=_pick(prov, config, "arm"),
        progress=_fraction(status.get("state"), prog),
        phase=prog.get("phase"),
        last_metrics=last_metrics(run_dir),
    )


def _where(status: dict) -> str | None:
    """Where a cluster job, or a process on another machine, runs the run (None: here)."""
    info = status.get("cluster") or {}
    parts = [f"{info.get('launcher', 'cluster')} job {info.get('job_id')}"] if info else []
    if status.get("state") == "running" and elsewhere(status):
        parts.append(f"on {status.get('host')}")
    return " ".join(parts) or None


def _fraction(state: str | None, progress: dict) -> float | None:
    if state == "done":
        return 1.0
    if progress.get("phase") == "train":
        return progress.get("fraction")
    return 0.0 if state == "running" else None


def _pick(first: dict, second: dict, *keys: str):
    for key in keys:
        for source in (first, second):
            if isinstance(source, dict) and source.get(key) is not None:
                return source[key]
    return None


def _ordering_label(ordering) -> str | None:
    if isinstance(ordering, dict):
        return ordering.get("label") or ordering.get("method")
    return ordering if isinstance(ordering, str) else None


# ----------------------------------------------------------------------------- metrics


def planned_steps(run_dir: str | Path) -> int | None:
    """The steps a run takes: its config's ``steps``, else what the run reported (summary, progress),
    else ``epochs`` passes over its input (a token budget ends earlier); None when unknown."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / CONFIG_FILE, default={}) or {}
    if config.get("steps"):
        return int(config["steps"])
    summary = read_json(run_dir / SUMMARY_FILE, default={}) or {}
    if summary.get("total_steps"):
        return int(summary["total_steps"])
    progress = read_json(run_dir / PROGRESS_FILE, default={}) or {}
    if progress.get("phase") == "train" and progress.get("total"):
        return int(progress["total"])
    return None


def arm_makeups(
    runs: Sequence[tuple[str, str | Path]], window_steps: int | None = None, n_windows: int = 25
) -> dict[str, pl.DataFrame]:
    """The stream make-up of every arm of a comparison, from its runs' ordered data files.

    Args:
        runs: (arm label, run directory) pairs; each run's config.json names its ordered input,
            ``group_by``, ``batch_size`` and ``score_field``.
        window_steps: steps per window; default ``default_window`` of the longest run (one window
            size for every arm, so their windows line up).
        n_windows: about how many windows the default makes.
    Returns:
        {arm: make-up} in the order the arms first appear; the seeds of an arm with one file per seed
        (shuffle) are averaged (``average_makeups``). Empty when the runs have no ``group_by``.
    """
    from ..data.corpus import read_records
    from ..organize.makeup import average_makeups, default_window, steps_per_epoch, stream_makeup

    plans = []
    for arm, run_dir in runs:
        config = read_json(Path(run_dir) / CONFIG_FILE, default={}) or {}
        if not config.get("group_by") or not config.get("input"):
            continue
        batch = int(config.get("batch_size", 16))
        steps = planned_steps(run_dir)
        if steps is None:
            steps = int(config.get("epochs") or 1) * steps_per_epoch(read_records(config["input"]).height, batch)
        plans.append((arm, config, batch, steps))
    if not plans:
        return {}
    window = window_steps or default_window(max(p[3] for p in plans), n_windows)
    per_arm: dict[str, dict[tuple, pl.DataFrame]] = {}
    for arm, config, batch, steps in plans:
        key = (str(config["input"]), config["group_by"], batch, steps)
        files = per_arm.setdefault(arm, {})
        if key not in files:  # the seeds of a deterministic ordering share one file
            files[key] = stream_makeup(
                read_records(config["input"]),
                config["group_by"],
                batch,
                window,
                config.get("score_field", "score"),
                steps,
            )
    return {arm: average_makeups(list(files.values())) for arm, files in per_arm.items()}
