"""The sidebar every page shares: workspace, device, and a live summary of the job queue."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from . import jobs, serving, state


@st.cache_resource(show_spinner=False)
def device_name() -> str:
    """The device jobs will use ("cpu" or the GPU name); torch is imported once per process."""
    from delt_engine.models.device import describe_device, resolve_device

    return describe_device(resolve_device("auto"))


def _summary_text(counts: dict[str, int]) -> str:
    running, queued = counts.get("running", 0), counts.get("queued", 0)
    if running or queued:
        return f"Jobs: **{running} running**, {queued} queued, {counts.get('done', 0)} done"
    return f"Jobs: none running ({counts.get('done', 0)} done, {counts.get('failed', 0)} failed)"


def job_summary(root: Path) -> None:
    """Job counts, refreshed every 2 s while any job is queued or running (a sidebar fragment)."""
    counts = jobs.queue_summary(root)
    busy = bool(counts.get("running") or counts.get("queued"))

    @st.fragment(run_every=2.0 if busy else None)
    def summary() -> None:
        st.caption(_summary_text(jobs.queue_summary(root)))

    summary()


def render() -> None:
    """Draw the shared sidebar (below the page navigation)."""
    root = state.workspace_root()
    with st.sidebar:
        st.caption("Workspace")
        st.code(str(root), language=None, wrap_lines=True)
        st.caption(f"Device: **{device_name()}**")
        job_summary(root)
        if not serving.is_loopback(serving.address()):  # only with DELT_ALLOW_REMOTE=1 (else app.py refused)
            st.warning(
                f"Served to the network ({serving.ALLOW_ENV}=1): no authentication; anyone who reaches "
                "this port can read files through the path inputs and launch jobs."
            )
