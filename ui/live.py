"""Incremental reading of run metrics for live charts (byte offsets kept in session state).

A poll reads only the lines appended since the previous poll (``workspace.read_metrics`` from the
stored offset), so a fragment that reruns every second costs the same at step 10 and at step 10 000.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from delt_engine.jobs.protocol import METRICS_FILE
from delt_engine.jobs.records import read_metrics

from . import state


def run_records(run_dir: Path) -> list[dict]:
    """All metrics records of a run so far, reading only what was appended since the last call."""
    tails: dict = st.session_state.setdefault(state.METRIC_TAILS, {})
    key = str(run_dir)
    entry = tails.get(key)
    try:
        size = (Path(run_dir) / METRICS_FILE).stat().st_size
    except OSError:
        size = 0
    if entry is None or size < entry["offset"]:  # new run, or the file was rewritten: start over
        entry = tails[key] = {"offset": 0, "records": []}
    records, end = read_metrics(run_dir, entry["offset"])
    entry["records"].extend(records)
    entry["offset"] = end
    return entry["records"]


def metric_series(records: list[dict], metric: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(x values, metric values) of the records that carry ``metric`` (train and eval lines differ)."""
    xs, ys = [], []
    for r in records:
        value = r.get(metric)
        if value is None or r.get(x) is None:
            continue
        xs.append(float(r[x]))
        ys.append(float(value))
    return xs, ys
