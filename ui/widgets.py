"""Small Streamlit pieces shared by pages: a job row (state, progress, cancel), rerun-on-finish."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from delt_engine.jobs.protocol import DAMAGED_STATE, FINAL_STATES, read_progress

from . import jobs, sidebar, state
from .safe import md

# Material icons ship with Streamlit (emoji fonts may be missing on a headless server).
STATE_ICONS = {
    "queued": ":gray[:material/schedule:]",
    "running": ":blue[:material/play_circle:]",
    "done": ":green[:material/check_circle:]",
    "failed": ":red[:material/error:]",
    "cancelled": ":orange[:material/cancel:]",
    "created": ":gray[:material/radio_button_unchecked:]",
    DAMAGED_STATE: ":red[:material/report:]",
}


def device_kind() -> str:
    """ "cpu", "cuda" or "mps" (for estimates)."""
    name = sidebar.device_name()
    return name.split(" ")[0]


def job_row(job_dir: Path, status: dict, label: str, key: str) -> None:
    """One job: its state, a progress bar with phase and ETA, a cancel button, and the error if it failed.

    ``label`` is plain text (it may hold user-controlled names); a job whose status.json is damaged
    shows the problem and a way to delete it instead."""
    state_ = status.get("state", "created")
    c1, c2, c3 = st.columns([3, 5, 1])
    gpu = status.get("gpu")  # set when jobs are spread over several GPUs
    where = status.get("where")  # a cluster job or another machine (compare --launcher slurm)
    c1.markdown(
        f"{STATE_ICONS.get(state_, '•')} **{md(state_)}** · {md(label)}"
        + (f" · GPU {md(gpu)}" if gpu else "")
        + (f" · {md(where)}" if where else "")
    )
    if state_ == DAMAGED_STATE:  # the page's damaged-entries panel offers to delete it
        c2.error(md(status.get("error") or f"{job_dir}: unreadable status file"))
        return
    progress = read_progress(job_dir)
    if state_ == "done":
        c2.progress(1.0, text="done")
    elif progress:
        eta = progress.get("eta_s")
        text = f"{progress.get('phase', '')} {progress.get('done', 0)}/{progress.get('total', 0)}"
        text += f" · {progress['message']}" if progress.get("message") else ""
        if state_ not in FINAL_STATES and isinstance(eta, (int, float)) and eta:  # a stopped job has no ETA
            from delt_engine.scoring.cost import human_seconds

            text += f" · ETA {human_seconds(eta)}"
        c2.progress(min(max(float(progress.get("fraction") or 0.0), 0.0), 1.0), text=md(text))
    elif state_ == "queued" and where:
        c2.caption(f"in the cluster's queue ({md(where)}); delt runs wait marks it failed if its job ends first")
    elif state_ == "queued":
        at_once = jobs.max_jobs()
        c2.caption(f"waiting for a free slot ({'one job' if at_once == 1 else f'{at_once} jobs'} at a time)")
    if state_ not in FINAL_STATES:
        if c3.button("Cancel", key=key):
            jobs.cancel(job_dir)
            st.toast(md(f"Cancelling {label}"))
    if state_ == "failed" and status.get("error"):
        st.error(md(f"{label} failed: {status['error']}"))


def rerun_when_finished(tag: str, states: dict[str, str]) -> None:
    """Inside a polling fragment: rerun the whole page once when a job that was active has finished,
    so what is drawn outside the fragment (results, the polling interval itself) refreshes too.

    Args:
        tag: which page's jobs these are (each page remembers its own).
        states: job id -> its current state.
    """
    seen: dict = st.session_state.setdefault(state.ACTIVE_JOBS, {})
    active_now = {job_id for job_id, s in states.items() if s not in FINAL_STATES}
    before = seen.get(tag, set())
    seen[tag] = active_now
    if before - active_now:
        st.rerun()
