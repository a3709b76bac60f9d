"""Evaluation by group and the stream's make-up, for the pages: which column to group by (per dataset),
make-ups of a comparison's runs (cached: the live Train panel reruns every second), and engine frames
turned into figure inputs (``figures.Makeup``, ``figures.Band`` per group)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import streamlit as st

from delt_engine.training.evaluation import OTHER

from . import datasets, figures

NONE = "(none)"
DEFAULT_MIN_DOCS = 5  # RunConfig.group_min_docs (the engine's default; a test keeps them equal)
POOLING = (
    f'Groups with fewer than {DEFAULT_MIN_DOCS} held-out documents are pooled as "{OTHER}" (the '
    "demo's validation documents are clean, so its noise kinds appear only in the training stream)."
)
CHOICE_DATASET = "group_choice_dataset"  # app state: {widget key: the dataset its group column was chosen for}


def options(frame: pl.DataFrame) -> list[str]:
    """ "(none)" and the dataset's metadata columns with few enough values to group by (20 at most)."""
    return [NONE] + [c for c in datasets.category_columns(frame, max_values=20) if "." not in c]


def ensure_choice(key: str, choices: list[str], dataset: str, preferred: str | None = None) -> None:
    """Keep the group column of widget ``key`` valid: a new dataset starts from ``preferred`` (when it is
    one of its columns), else the demo's "kind", else none: an imported dataset is not grouped until the
    user picks a column."""
    chosen = st.session_state.setdefault(CHOICE_DATASET, {})
    if chosen.get(key) == dataset and st.session_state.get(key) in choices:
        return
    default = (
        preferred
        if preferred in choices and preferred != NONE
        else "kind"
        if dataset == datasets.DEMO and "kind" in choices
        else NONE
    )
    st.session_state[key] = default
    chosen[key] = dataset


def column(value: str | None) -> str | None:
    """The widget's value as a ``group_by`` (None for "(none)")."""
    return None if value in (None, NONE) else value


# ----------------------------------------------------------------------------- make-ups


@st.cache_data(max_entries=32, show_spinner=False)
def _arm_makeups(runs: tuple[tuple[str, str], ...], _steps: tuple) -> dict[str, pl.DataFrame]:
    """Cached by the runs and their planned steps (known once a run starts): the ordered files never change."""
    from delt_engine.workspace.runs import arm_makeups

    return arm_makeups([(arm, Path(d)) for arm, d in runs])


def run_makeups(runs: Sequence[tuple[str, Path]]) -> dict[str, pl.DataFrame]:
    """{arm: stream make-up} of runs given as (arm, run dir); {} when they were not grouped."""
    from delt_engine.workspace.runs import planned_steps

    key = tuple((str(arm), str(d)) for arm, d in runs)
    return _arm_makeups(key, tuple(planned_steps(d) for _, d in runs))


def tokens_of_step(curves: pl.DataFrame, arm: str):
    """step -> tokens seen by then, for ``arm``: the mean over its runs of the tokens recorded at each
    step, interpolated linearly between records (0 tokens at step 0)."""
    pts = (
        curves.filter((pl.col("arm") == arm) & pl.col("tokens").is_not_null() & pl.col("step").is_not_null())
        .group_by("step")
        .agg(pl.col("tokens").cast(pl.Float64).mean())
        .sort("step")
    )
    steps = np.concatenate([[0.0], pts["step"].cast(pl.Float64).to_numpy()])
    tokens = np.concatenate([[0.0], pts["tokens"].to_numpy()])
    # beyond the last record (a run still going): extend at the last rate
    rate = tokens[-1] / steps[-1] if steps[-1] > 0 else 0.0
    return lambda step: float(np.interp(step, steps, tokens)) if step <= steps[-1] else float(step * rate)


def figure_makeups(makeups: dict[str, pl.DataFrame], x_of_step=None) -> dict[str, figures.Makeup]:
    """Engine make-ups as figure inputs; ``x_of_step``: one mapping, or {arm: mapping}."""
    out = {}
    for arm, frame in makeups.items():
        mapping = x_of_step.get(arm) if isinstance(x_of_step, dict) else x_of_step
        out[arm] = figures.makeup_from_frame(frame, arm, mapping)
    return out


# ----------------------------------------------------------------------------- group losses


def band_panels(bands: pl.DataFrame, x: str = "step") -> dict[str, list[figures.Band]]:
    """``forgetting.group_bands`` as {group: [Band per arm]} (missing band edges drawn at the mean)."""
    panels: dict[str, list[figures.Band]] = {}
    for group in sorted(bands["group"].unique().to_list(), key=lambda g: (g == OTHER, g)):
        part = bands.filter(pl.col("group") == group)
        for (arm,), rows in part.group_by(["arm"], maintain_order=True):
            rows = rows.sort(x)
            panels.setdefault(group, []).append(
                figures.Band(
                    arm,
                    rows[x].to_list(),
                    rows["mean"].to_list(),
                    rows["lower"].fill_null(rows["mean"]).to_list(),
                    rows["upper"].fill_null(rows["mean"]).to_list(),
                    n=int(rows["n"].max()),
                )
            )
    return panels


def run_panels(runs: Sequence[tuple[str, list[dict]]], key: str = "group_loss") -> dict[str, list[figures.Band]]:
    """Live per-run group losses from metrics records: {group: [one line per run]} (label "arm s0")."""
    panels: dict[str, list[figures.Band]] = {}
    for label, records in runs:
        series: dict[str, tuple[list, list]] = {}
        for r in records:
            for groups in (r.get(key) or {}).values():
                for group, loss in groups.items():
                    if loss is not None:
                        series.setdefault(group, ([], []))
                        series[group][0].append(r["step"])
                        series[group][1].append(loss)
        for group, (xs, ys) in series.items():
            panels.setdefault(group, []).append(figures.Band(label, xs, ys, ys, ys, n=1))
    return dict(sorted(panels.items(), key=lambda kv: (kv[0] == OTHER, kv[0])))


def forgetting_table(entries: list[dict], set_name: str) -> pl.DataFrame:
    """The forgetting entries of one held-out set as the page shows them (rounded, Δ with interval)."""

    def num(v, fmt=".3f"):
        return "-" if v is None else format(v, fmt)

    rows = []
    for e in entries:
        if e["set"] != set_name:
            continue
        delta = (
            "-"
            if e["rise_delta"] is None
            else f"{e['rise_delta']:+.3f}"
            + ("" if e["rise_delta_low"] is None else f" ({e['rise_delta_low']:+.3f} .. {e['rise_delta_high']:+.3f})")
        )
        final = "-" if e["final_delta"] is None else f"{e['final_delta']:+.3f}"
        rows.append(
            {
                "arm": e["arm"],
                "group": e["group"],
                "seeds": e["n_seeds"],
                "lowest loss": num(e["min_loss"]),
                "final loss": num(e["final_loss"]),
                "rise": num(e["rise"]) + ("" if e["rise_ci"] is None else f" ± {e['rise_ci']:.3f}"),
                "Δ rise vs baseline": delta,
                "Δ final vs baseline": final,
            }
        )
    return pl.DataFrame(rows)
