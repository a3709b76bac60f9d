"""Comparison statistics over training runs: align curves by tokens, aggregate seeds, final metrics.

Pure functions on polars frames. The input is a *curves* frame, one row per metrics record of every
run: ``run`` (id), ``arm`` (label such as "folding L=3"), ``seed``, ``step``, ``tokens`` and metric
columns (``train_loss``, ``val_loss``, ``target_loss``, ``bench_acc``, ...; null where a record does
not carry that metric). ``workspace.Workspace.comparison_curves`` builds it from run directories.

Seeds are the unit of replication; bands are Student t intervals (``tdist``). The paired tests,
Holm's correction and the verdicts are in ``verdicts``; forgetting by group in ``forgetting``; the
summary a report prints and exports in ``summary``. An optional ``comparison`` column (runs
hand-picked from several comparisons) makes the replicate (comparison, seed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from ..errors import ConfigError, DataError
from ..training.metrics import is_quality
from .tdist import t_half_widths

ID_COLUMNS = ("run", "arm", "seed", "step", "tokens", "comparison")


def ema(values: Sequence[float], weight: float = 0.6) -> np.ndarray:
    """Bias-corrected exponential moving average (as Adam's moment estimates).

    ``s_t = weight * s_{t-1} + (1 - weight) * x_t`` from ``s_0 = 0``, divided by ``1 - weight**t`` so
    the first points are not pulled towards zero. NaNs are skipped (they keep the previous value).
    """
    if not 0.0 <= weight < 1.0:
        raise ConfigError(f"smoothing weight={weight} must be in [0, 1); 0 means no smoothing")
    x = np.asarray(values, dtype=float)
    out = np.full(x.shape, np.nan)
    s, count = 0.0, 0
    for i, v in enumerate(x):
        if np.isfinite(v):
            s, count = weight * s + (1.0 - weight) * v, count + 1
        if count:
            out[i] = s / (1.0 - weight**count)
    return out


def smooth(curves: pl.DataFrame, metric: str, weight: float = 0.6) -> pl.DataFrame:
    """Add ``<metric>_ema``: the bias-corrected EMA of ``metric`` within each run, in step order."""
    _require(curves, ("run", "step", metric))
    parts = []
    for _, part in curves.sort(["run", "step"]).group_by("run", maintain_order=True):
        col = part[metric].cast(pl.Float64).to_numpy()
        parts.append(part.with_columns(pl.Series(f"{metric}_ema", ema(col, weight))))
    return pl.concat(parts) if parts else curves.with_columns(pl.lit(None, pl.Float64).alias(f"{metric}_ema"))


def _metric_points(curves: pl.DataFrame, metric: str) -> pl.DataFrame:
    _require(curves, ("run", "arm", "seed", "tokens", metric))
    pts = curves.select("run", "arm", "seed", "tokens", pl.col(metric).cast(pl.Float64).alias("value")).filter(
        pl.col("value").is_not_null() & pl.col("value").is_finite() & pl.col("tokens").is_not_null()
    )
    if pts.is_empty():
        raise DataError(f"no run has recorded {metric!r} yet; wait for the first evaluation or pick another metric")
    return pts.sort(["run", "tokens"])


def token_grid(curves: pl.DataFrame, metric: str, n_points: int = 50) -> np.ndarray:
    """Evenly spaced token counts over the range every run covers for ``metric`` (no extrapolation)."""
    spans = (
        _metric_points(curves, metric)
        .group_by("run")
        .agg(pl.col("tokens").min().alias("lo"), pl.col("tokens").max().alias("hi"))
    )
    lo, hi = float(spans["lo"].max()), float(spans["hi"].min())
    if lo > hi:
        raise DataError(
            f"the runs' {metric!r} curves do not overlap in tokens ({lo:.0f} > {hi:.0f}); "
            "compare runs with the same token budget"
        )
    return np.linspace(lo, hi, max(int(n_points), 1)) if hi > lo else np.array([lo])


def align_by_tokens(
    curves: pl.DataFrame, metric: str, grid: Sequence[float] | None = None, n_points: int = 50
) -> pl.DataFrame:
    """Interpolate each run's ``metric`` linearly onto a common token grid.

    Args:
        curves: curves frame (run, arm, seed, tokens, metric).
        grid: token counts to evaluate at; default ``token_grid(curves, metric, n_points)``.
    Returns:
        Frame (run, arm, seed, tokens, value); values outside a run's range are null.
    """
    pts = _metric_points(curves, metric)
    grid_arr = np.asarray(grid if grid is not None else token_grid(curves, metric, n_points), dtype=float)
    out = []
    for (run, arm, seed), part in pts.group_by(["run", "arm", "seed"], maintain_order=True):
        x, y = part["tokens"].cast(pl.Float64).to_numpy(), part["value"].to_numpy()
        vals = np.interp(grid_arr, x, y)
        vals[(grid_arr < x[0]) | (grid_arr > x[-1])] = np.nan
        out.append(
            pl.DataFrame(
                {
                    "run": [run] * len(grid_arr),
                    "arm": [arm] * len(grid_arr),
                    "seed": [seed] * len(grid_arr),
                    "tokens": grid_arr,
                    "value": vals,
                }
            )
        )
    return pl.concat(out).with_columns(pl.col("value").fill_nan(None))


def aggregate_seeds(aligned: pl.DataFrame, level: float = 0.95) -> pl.DataFrame:
    """Mean over seeds per (arm, tokens) with a Student-t band.

    Returns:
        Frame (arm, tokens, mean, half_width, lower, upper, n), sorted by arm order of appearance, tokens.
    """
    _require(aligned, ("arm", "tokens", "value"))
    agg = (
        aligned.filter(pl.col("value").is_not_null())
        .group_by(["arm", "tokens"], maintain_order=True)
        .agg(pl.col("value").mean().alias("mean"), pl.col("value").std(ddof=1).alias("std"), pl.len().alias("n"))
    )
    half = t_half_widths(agg["std"].fill_null(np.nan).to_numpy(), agg["n"].to_numpy(), level)
    return (
        agg.with_columns(pl.Series("half_width", half).fill_nan(None))
        .with_columns(
            (pl.col("mean") - pl.col("half_width")).alias("lower"),
            (pl.col("mean") + pl.col("half_width")).alias("upper"),
        )
        .select("arm", "tokens", "mean", "half_width", "lower", "upper", "n")
    )


def metric_columns(curves: pl.DataFrame) -> list[str]:
    """The numeric metric columns of a curves frame (everything but the id columns)."""
    return [c for c, dt in curves.schema.items() if c not in ID_COLUMNS and dt.is_numeric()]


def quality_metrics(curves: pl.DataFrame) -> list[str]:
    """The losses and accuracies (not lr, throughput or timing) a curves frame records."""
    return [c for c in metric_columns(curves) if is_quality(c)]


def final_metrics(curves: pl.DataFrame, metrics: Iterable[str] | None = None) -> pl.DataFrame:
    """The last recorded value of each metric per run (the final evaluation).

    Returns:
        Frame (run, arm, seed, [comparison,] tokens, <metrics>...), one row per run; tokens = the run's
        last count; ``comparison`` when the curves have it.
    """
    _require(curves, ("run", "arm", "seed", "step", "tokens"))
    metrics = list(metrics) if metrics is not None else metric_columns(curves)
    ordered = curves.sort(["run", "step"])
    keys = ["run", "arm", "seed"] + (["comparison"] if "comparison" in curves.columns else [])
    aggs = [pl.col("tokens").drop_nulls().last().alias("tokens")]
    aggs += [pl.col(m).cast(pl.Float64).drop_nulls().last().alias(m) for m in metrics if m in curves.columns]
    return ordered.group_by(keys, maintain_order=True).agg(aggs)


def arm_table(finals: pl.DataFrame, metrics: Sequence[str], level: float = 0.95) -> pl.DataFrame:
    """Per arm: seeds, and mean and t half-width of each final metric (columns m_mean, m_ci)."""
    metrics = [m for m in metrics if m in finals.columns]
    aggs = [pl.len().alias("n_seeds")]
    for m in metrics:
        aggs += [
            pl.col(m).mean().alias(f"{m}_mean"),
            pl.col(m).std(ddof=1).alias(f"{m}_std"),
            pl.col(m).count().alias(f"{m}_n"),
        ]
    table = finals.group_by("arm", maintain_order=True).agg(aggs)
    for m in metrics:
        half = t_half_widths(table[f"{m}_std"].fill_null(np.nan).to_numpy(), table[f"{m}_n"].to_numpy(), level)
        table = table.with_columns(pl.Series(f"{m}_ci", half).fill_nan(None)).drop(f"{m}_std", f"{m}_n")
    return table


def pick_baseline(arms: Sequence[str]) -> str:
    """The shuffle arm if there is one (the paper's conventional baseline), else the first arm."""
    if not arms:
        raise DataError("no arms to compare: the comparison has no runs with metrics")
    return next((a for a in arms if a.split()[0] == "shuffle"), arms[0])


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _require(frame: pl.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"curves frame lacks column(s) {', '.join(missing)}; "
            f"it has {', '.join(frame.columns) or 'none'} (build it with Workspace.comparison_curves)"
        )


def finite_or_none(value):
    """A JSON-ready number: float, or None for None, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
