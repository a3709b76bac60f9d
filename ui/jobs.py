"""Background jobs from the app: one process-wide JobManager, plus a synchronous mode for tests.

The manager (``delt_engine.jobs.manager.JobManager``) launches ``python -m delt_engine score|train`` as
subprocesses; all job state is on disk, so closing the browser never stops a job and reopening the
app shows it again. With ``DELT_SYNC_JOBS=1`` (AppTest) a job runs to completion inside the calling
script instead, through the engine's job functions, so tests need no subprocess timing.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from delt_engine.errors import DeltError
from delt_engine.jobs.protocol import ACTIVE_STATES


def sync_mode() -> bool:
    return os.environ.get("DELT_SYNC_JOBS") == "1"


def max_jobs() -> int:
    """Jobs run at once: ``DELT_MAX_JOBS``; unset, one per GPU when there are several (each job gets
    its own), else 1 (one at a time with every CPU core). A value that is not a whole number >= 1
    counts as 1, and ``max_jobs_problem`` says so."""
    from delt_engine.jobs.manager import default_concurrency

    if "DELT_MAX_JOBS" not in os.environ:
        return default_concurrency()
    return 1 if max_jobs_problem() else int(os.environ["DELT_MAX_JOBS"])


def max_jobs_problem() -> str | None:
    raw = os.environ.get("DELT_MAX_JOBS", "1")
    if raw.strip().isdigit() and int(raw) >= 1:
        return None
    return f"DELT_MAX_JOBS={raw!r} is not a whole number >= 1, so jobs run one at a time; fix or unset it"


@st.cache_resource(show_spinner=False)
def manager():
    """The process-wide job manager (shared by every browser session; thread-safe)."""
    from delt_engine.jobs.manager import JobManager

    return JobManager(max_concurrent=max_jobs())


def submit_score(job_dir: Path) -> None:
    """Start the scoring job in ``job_dir`` (prepared by ``workspace.scorings.create_score_job``)."""
    if sync_mode():
        from delt_engine.jobs.score_job import run_score_job

        try:
            run_score_job(job_dir)
        except DeltError:
            pass  # the job wrote status "failed"/"cancelled" with the message; the page shows it
    else:
        manager().submit(job_dir, "score")


def submit_run(run_dir: Path) -> None:
    """Queue one training run (its run dir already holds config.json)."""
    if sync_mode():
        from delt_engine.jobs.train_job import train_run

        try:
            train_run(run_dir)
        except DeltError:
            pass  # status.json says why; the page shows it
    else:
        manager().submit(run_dir, "train")


def cancel(job_dir: Path) -> None:
    """Stop a queued or running job (it ends as 'cancelled', keeping what it recorded)."""
    if sync_mode():
        from delt_engine.jobs.protocol import request_cancel

        request_cancel(job_dir)
    else:
        manager().cancel(job_dir)


def job_dirs(root: Path) -> list[Path]:
    """Every scoring and run directory of the workspace."""
    out = []
    for sub in ("scores", "runs"):
        base = root / sub
        if base.is_dir():
            out += [p for p in sorted(base.iterdir()) if p.is_dir()]
    return out


def queue_summary(root: Path) -> dict[str, int]:
    """How many jobs are in each state (reads only status.json files; dead processes are reaped)."""
    from delt_engine.jobs.protocol import refresh_status

    counts: dict[str, int] = {}
    for path in job_dirs(root):
        state_ = refresh_status(path).get("state")
        if state_:
            counts[state_] = counts.get(state_, 0) + 1
    return counts


def is_active(status: dict) -> bool:
    """Queued or running: a job that may still change. Final states, a damaged status ("unknown")
    and a job never submitted are not, so a page never polls for them forever."""
    return bool(status) and status.get("state") in ACTIVE_STATES
