"""The training stream's make-up: which groups of documents, and how high-scoring, a model sees when.

The paper motivates Folding Ordering by two effects, model forgetting and distribution bias (a sorted
stream shows one kind of data at a time). This module measures the second from the ordered data
alone, before any training: the stream is cut into the batches training will read (the i-th batch is
the i-th slice of ``batch_size`` rows; later epochs replay the same order, as ``training.data``
does), consecutive batches are grouped into windows of ``window_steps`` steps, and for every window
it gives the share of the window's documents in each group of a metadata column (e.g. the demo's
``kind``) and the window's mean score.

Shares count documents, not tokens. A missing group value is the group ``"(missing)"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import numpy as np
import polars as pl

from ..data.corpus import group_label
from ..errors import ConfigError, DataError

COLUMNS = ("window", "start_step", "end_step", "group", "n_docs", "share", "mean_score")


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Batches in one pass over ``n_rows`` rows (the last, partial batch counts)."""
    return -(-int(n_rows) // int(batch_size))


def default_window(total_steps: int, n_windows: int = 25) -> int:
    """Steps per window so that ``total_steps`` make about ``n_windows`` windows (at least 1 step)."""
    return max(1, int(round(int(total_steps) / max(int(n_windows), 1))))


def stream_makeup(
    frame: pl.DataFrame,
    group_col: str,
    batch_size: int,
    window_steps: int,
    score_field: str | None = "score",
    total_steps: int | None = None,
) -> pl.DataFrame:
    """Share of each group and the mean score in every window of training steps.

    Args:
        frame: the documents in training order (an ordered data file, or ``ordering.order``'s output).
        group_col: the metadata column whose values are the groups.
        batch_size: documents per training step (the run's ``batch_size``).
        window_steps: consecutive steps per window (the last window may be shorter).
        score_field: the score column for the mean score per window; None, or a column the frame does
            not have, gives null means.
        total_steps: how many steps training takes; default one pass over the data. More steps than
            one pass replay the same order (epochs), as training does.

    Returns:
        Long frame, one row per (window, group) in window order, groups sorted by name:
        ``window`` (0-based), ``start_step``, ``end_step`` (1-based, inclusive, as the ``step`` of the
        run's metrics), ``group``, ``n_docs`` (the group's documents in the window), ``share`` (of the
        window's documents; 0 when the group is absent) and ``mean_score`` (of the window's documents with a
        finite score, null when none has one). Every group appears in every window.

    Raises:
        ConfigError: batch_size, window_steps or total_steps not a positive integer.
        DataError: an empty frame or a missing group column.
    """
    for name, value in (("batch_size", batch_size), ("window_steps", window_steps)):
        _check_positive(name, value)
    if total_steps is not None:
        _check_positive("total_steps", total_steps)
    if not isinstance(frame, pl.DataFrame) or frame.height == 0:
        raise DataError("there is no ordered data to describe: the frame has no rows")
    if group_col not in frame.columns:
        raise DataError(
            f"the ordered data has no column {group_col!r} to group by "
            f"(columns: {', '.join(frame.columns)}); pick one of them"
        )
    labels = np.asarray([group_label(v) for v in frame[group_col].to_list()], dtype=object)
    scores = _scores(frame, score_field)
    per_epoch = steps_per_epoch(frame.height, batch_size)
    total = per_epoch if total_steps is None else int(total_steps)
    rows = _step_rows(frame.height, int(batch_size), per_epoch, total)
    groups = sorted(set(labels.tolist()))
    code = {g: i for i, g in enumerate(groups)}
    codes = np.asarray([code[g] for g in labels], dtype=np.int64)
    out = {c: [] for c in COLUMNS}
    for w, start in enumerate(range(0, total, int(window_steps))):
        end = min(start + int(window_steps), total)
        picked = np.concatenate(rows[start:end])
        counts = np.bincount(codes[picked], minlength=len(groups))
        window_scores = scores[picked]
        finite = window_scores[np.isfinite(window_scores)]
        mean = float(finite.mean()) if finite.size else None
        for g, n in zip(groups, counts.tolist()):
            for key, value in zip(COLUMNS, (w, start + 1, end, g, n, n / picked.size, mean)):
                out[key].append(value)
    return pl.DataFrame(
        out,
        schema={
            "window": pl.Int64,
            "start_step": pl.Int64,
            "end_step": pl.Int64,
            "group": pl.Utf8,
            "n_docs": pl.Int64,
            "share": pl.Float64,
            "mean_score": pl.Float64,
        },
    )


def makeup_table(makeup: pl.DataFrame) -> pl.DataFrame:
    """``stream_makeup``'s long frame as one row per window: start_step, end_step, mean_score, then one
    share column per group (named by the group), for tables and CSV."""
    missing = [c for c in COLUMNS if c not in makeup.columns]
    if missing:
        raise DataError(f"not a stream make-up frame: it lacks {', '.join(missing)} (build it with stream_makeup)")
    if makeup.is_empty():
        return pl.DataFrame({"start_step": [], "end_step": [], "mean_score": []})
    wide = makeup.pivot(
        on="group", index=["window", "start_step", "end_step", "mean_score"], values="share", sort_columns=False
    )
    return wide.sort("window").drop("window")


def average_makeups(makeups: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The mean of several make-ups over the same windows (e.g. the per-seed files of a shuffle arm):
    ``n_docs``, ``share`` and ``mean_score`` averaged per (window, group); a group missing from one
    make-up counts as 0 documents there."""
    if not makeups:
        raise DataError("no stream make-ups to average")
    if len(makeups) == 1:
        return makeups[0]
    keys = ["window", "start_step", "end_step"]
    groups = sorted({g for m in makeups for g in m["group"].unique().to_list()})
    full = []
    for m in makeups:  # every group in every window of every make-up, so the mean counts absences as 0
        grid = m.select(keys + ["mean_score"]).unique(keys).join(pl.DataFrame({"group": groups}), how="cross")
        full.append(
            grid.join(m.select(keys + ["group", "n_docs", "share"]), on=keys + ["group"], how="left").with_columns(
                pl.col("n_docs").fill_null(0), pl.col("share").fill_null(0.0)
            )
        )
    return (
        pl.concat(full, how="vertical_relaxed")
        .group_by(keys + ["group"])
        .agg(pl.col("n_docs").cast(pl.Float64).mean(), pl.col("share").mean(), pl.col("mean_score").mean())
        .sort(["window", "group"])
        .select(COLUMNS)
    )


def describe_makeup(makeup: pl.DataFrame, name: str = "this ordering") -> str:
    """One sentence on how uneven a stream is: the window and group whose share exceeds that group's
    share of the whole stream the most (distribution bias; the first such window on ties), e.g. "In
    sorting, steps 1-24 are 38% fragment (4% of the whole stream)". A gap within what a random order
    gives (twice the binomial spread of a window that size) is called chance."""
    windows = makeup.group_by("window").agg(pl.col("n_docs").sum().alias("in_window"))
    worst = (
        makeup.join(_overall_shares(makeup), on="group")
        .join(windows, on="window")
        .with_columns((pl.col("share") - pl.col("all")).alias("gap"))
        .sort(["gap", "window", "group"], descending=[True, False, False])
        .row(0, named=True)
    )
    steps = (
        f"step {worst['start_step']}"
        if worst["start_step"] == worst["end_step"]
        else f"steps {worst['start_step']}-{worst['end_step']}"
    )
    p, n = worst["all"], max(float(worst["in_window"]), 1.0)
    chance = 2.0 * math.sqrt(p * (1.0 - p) / n)
    if worst["gap"] <= chance:
        return (
            f"In {name}, no window's mix strays from the whole stream's by more than chance would (largest: "
            f"{steps}, {worst['share']:.0%} {worst['group']} against {p:.0%})."
        )
    verb = "is" if worst["start_step"] == worst["end_step"] else "are"
    return f"In {name}, {steps} {verb} {worst['share']:.0%} {worst['group']} ({p:.0%} of the whole stream)."


def _overall_shares(makeup: pl.DataFrame) -> pl.DataFrame:
    """Each group's share of all documents the stream shows (windows weighted by their documents)."""
    total = float(makeup["n_docs"].sum())
    return makeup.group_by("group").agg((pl.col("n_docs").sum() / total).alias("all"))


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1")


def _scores(frame: pl.DataFrame, score_field: str | None) -> np.ndarray:
    if not score_field or score_field not in frame.columns or not frame.schema[score_field].is_numeric():
        return np.full(frame.height, np.nan)
    return frame[score_field].cast(pl.Float64).fill_null(np.nan).to_numpy()


def _step_rows(n_rows: int, batch_size: int, per_epoch: int, total: int) -> list[np.ndarray]:
    """Row indices of every step 0..total-1: step i reads batch i mod per_epoch (epochs replay the order)."""
    batches = [np.arange(b * batch_size, min((b + 1) * batch_size, n_rows)) for b in range(per_epoch)]
    return [batches[i % per_epoch] for i in range(total)]


__all__ = [
    "COLUMNS",
    "average_makeups",
    "default_window",
    "describe_makeup",
    "makeup_table",
    "steps_per_epoch",
    "stream_makeup",
]
