"""Comparison statistics over training runs: align by tokens, aggregate seeds, paired verdicts, export.

Pure functions on polars frames. The input is a *curves* frame, one row per metrics record of every
run: ``run`` (id), ``arm`` (label such as "folding L=3"), ``seed``, ``step``, ``tokens`` and metric
columns (``train_loss``, ``val_loss``, ``target_loss``, ``bench_acc``, ...; null where a record does
not carry that metric). ``workspace.Workspace.comparison_curves`` builds it from run directories.

Statistics: seeds are the unit of replication. A 95% interval is the Student t interval with n-1
degrees of freedom (t quantile computed here; scipy is not a dependency). Two orderings are compared
*paired* over matched seeds (same seed = same model init), which removes the init noise they share;
the tests, Holm's correction and the verdicts are in ``verdicts.py``. An optional ``comparison``
column (runs hand-picked from several comparisons) makes the replicate (comparison, seed).

Forgetting: runs evaluated by group (``group_by``) record ``group_loss.<column>.<group>`` (validation)
and ``target_group_loss.<column>.<group>``. Per run and group, the lowest loss any evaluation reached,
the final (last recorded) loss and the rise between them measure what was learned and then lost;
per arm they are averaged over seeds, with the paired difference against the baseline arm (seeds
are the unit, as for the verdicts). ``forgetting`` gives those entries; ``summarize`` includes them.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import polars as pl

from ..errors import ConfigError, DataError
from ..fileio import atomic_write_text, write_json
from ..training.metrics import METRICS, VERDICT_METRICS, is_quality, split_group_metric
from ..training.metrics import label as metric_label

ID_COLUMNS = ("run", "arm", "seed", "step", "tokens", "comparison")
GROUP_SETS = {"group_loss": "validation", "target_group_loss": "target"}  # group metric -> held-out set
NOTABLE_RISE = 0.01  # a rise below this (nats per token) is worded "nothing measurable was forgotten"
FORGETTING_KEYS = ("set", "column", "arm", "group", "n_seeds", "min_loss", "final_loss", "rise", "rise_ci",
                   "rise_delta", "rise_delta_low", "rise_delta_high", "final_delta", "final_delta_low",
                   "final_delta_high")


# ----------------------------------------------------------------------------- Student t

def _t_central_prob(t: float, df: int) -> float:
    """P(|T| < t) for Student t with integer ``df`` (Abramowitz & Stegun 26.7.3 / 26.7.4, exact)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        # odd df: (2/pi) * (theta + sin*cos * (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + s * math.cos(theta) * total)
    # even df: sin * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    term, total = 1.0, 1.0
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


@lru_cache(maxsize=256)
def t_quantile(level: float, df: int) -> float:
    """Two-sided critical value t* with P(|T| < t*) = ``level`` for Student t with ``df`` dof.

    Args:
        level: coverage in (0, 1), e.g. 0.95.
        df: degrees of freedom, a positive integer (n - 1 for n seeds).
    Returns:
        t*, e.g. 12.706 for df=1 and 4.303 for df=2 at level 0.95.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"confidence level={level} must be between 0 and 1 (e.g. 0.95)")
    if int(df) != df or df < 1:
        raise ConfigError(f"degrees of freedom df={df} must be a positive integer")
    df = int(df)
    # P(|T| < t) rises monotonically in theta = atan(t / sqrt(df)) over [0, pi/2): bisect theta.
    lo, hi = 0.0, math.pi / 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_central_prob(math.sqrt(df) * math.tan(mid), df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return math.sqrt(df) * math.tan(0.5 * (lo + hi))


def t_half_widths(std: np.ndarray, n: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Half-widths t*(n-1) * std / sqrt(n), vectorised; NaN where n < 2 (no spread to estimate)."""
    std, n = np.asarray(std, dtype=float), np.asarray(n, dtype=float)
    crit = np.full(n.shape, np.nan)
    for k in np.unique(n[n >= 2]):
        crit[n == k] = t_quantile(level, int(k) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return crit * std / np.sqrt(n)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, t-interval half-width and count of the finite ``values`` (half-width NaN for n < 2)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    std = float(np.std(x, ddof=1)) if n > 1 else math.nan
    return float(np.mean(x)), float(t_half_widths(np.array([std]), np.array([n]), level)[0]), n


# ----------------------------------------------------------------------------- curves

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
            out[i] = s / (1.0 - weight ** count)
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
    pts = (curves.select("run", "arm", "seed", "tokens", pl.col(metric).cast(pl.Float64).alias("value"))
           .filter(pl.col("value").is_not_null() & pl.col("value").is_finite() & pl.col("tokens").is_not_null()))
    if pts.is_empty():
        raise DataError(f"no run has recorded {metric!r} yet; wait for the first evaluation or pick another metric")
    return pts.sort(["run", "tokens"])


def token_grid(curves: pl.DataFrame, metric: str, n_points: int = 50) -> np.ndarray:
    """Evenly spaced token counts over the range every run covers for ``metric`` (no extrapolation)."""
    spans = _metric_points(curves, metric).group_by("run").agg(pl.col("tokens").min().alias("lo"),
                                                                pl.col("tokens").max().alias("hi"))
    lo, hi = float(spans["lo"].max()), float(spans["hi"].min())
    if lo > hi:
        raise DataError(f"the runs' {metric!r} curves do not overlap in tokens ({lo:.0f} > {hi:.0f}); "
                        "compare runs with the same token budget")
    return np.linspace(lo, hi, max(int(n_points), 1)) if hi > lo else np.array([lo])


def align_by_tokens(curves: pl.DataFrame, metric: str, grid: Sequence[float] | None = None,
                    n_points: int = 50) -> pl.DataFrame:
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
        out.append(pl.DataFrame({"run": [run] * len(grid_arr), "arm": [arm] * len(grid_arr),
                                 "seed": [seed] * len(grid_arr), "tokens": grid_arr, "value": vals}))
    return pl.concat(out).with_columns(pl.col("value").fill_nan(None))


def aggregate_seeds(aligned: pl.DataFrame, level: float = 0.95) -> pl.DataFrame:
    """Mean over seeds per (arm, tokens) with a Student-t band.

    Returns:
        Frame (arm, tokens, mean, half_width, lower, upper, n), sorted by arm order of appearance, tokens.
    """
    _require(aligned, ("arm", "tokens", "value"))
    agg = (aligned.filter(pl.col("value").is_not_null())
           .group_by(["arm", "tokens"], maintain_order=True)
           .agg(pl.col("value").mean().alias("mean"), pl.col("value").std(ddof=1).alias("std"),
                pl.len().alias("n")))
    half = t_half_widths(agg["std"].fill_null(np.nan).to_numpy(), agg["n"].to_numpy(), level)
    return (agg.with_columns(pl.Series("half_width", half).fill_nan(None))
            .with_columns((pl.col("mean") - pl.col("half_width")).alias("lower"),
                          (pl.col("mean") + pl.col("half_width")).alias("upper"))
            .select("arm", "tokens", "mean", "half_width", "lower", "upper", "n"))


# ----------------------------------------------------------------------------- final metrics

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
        aggs += [pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std(ddof=1).alias(f"{m}_std"),
                 pl.col(m).count().alias(f"{m}_n")]
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


# ----------------------------------------------------------------------------- report and export

def format_table(table: pl.DataFrame, metrics: Sequence[str]) -> str:
    """A plain-text table: arm, seeds, and ``mean ± ci`` per metric."""
    metrics = [m for m in metrics if f"{m}_mean" in table.columns]
    header = ["arm", "seeds"] + [metric_label(m) for m in metrics]
    rows = []
    for r in table.iter_rows(named=True):
        cells = [str(r["arm"]), str(r["n_seeds"])]
        for m in metrics:
            mean, ci = r[f"{m}_mean"], r[f"{m}_ci"]
            cells.append("-" if mean is None else f"{mean:.4f}" + ("" if ci is None else f" ± {ci:.4f}"))
        rows.append(cells)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in [header] + rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def summarize(curves: pl.DataFrame, baseline: str | None = None, metrics: Sequence[str] | None = None,
              level: float = 0.95, alpha: float = 0.05, verdict_metrics: Sequence[str] = VERDICT_METRICS) -> dict:
    """Per-arm final metrics (mean, CI), paired deltas vs the baseline, and verdicts.

    Args:
        curves: curves frame (see the module docstring).
        baseline: the baseline arm; default ``pick_baseline``.
        metrics: metrics to report; default every loss and accuracy recorded.
        level: coverage of the intervals.
        alpha: family-wise error rate of the verdicts (Holm across every arm x verdict metric).
        verdict_metrics: the metrics that get a verdict, default ``VERDICT_METRICS``.
    Returns:
        {"baseline", "level", "alpha", "metrics", "verdict_metrics", "arms": {arm: {...}}, "deltas": [paired
        Δ of every loss/accuracy, descriptive], "verdicts": [verdicts.Verdict], "forgetting": [``forgetting``
        entries, empty without group losses]}; ``summary_json`` makes it JSON-ready.
    """
    from .verdicts import compare_arms, paired_delta

    metrics = [m for m in (metrics or quality_metrics(curves)) if m in curves.columns]
    finals = final_metrics(curves, metrics)
    arms = finals["arm"].unique(maintain_order=True).to_list()
    baseline = baseline or pick_baseline(arms)
    table = arm_table(finals, metrics, level)
    per_arm = {}
    for r in table.iter_rows(named=True):
        runs = finals.filter(pl.col("arm") == r["arm"])
        per_arm[r["arm"]] = {"n_seeds": r["n_seeds"], "runs": runs["run"].to_list(), "seeds": runs["seed"].to_list(),
                             **({"comparisons": runs["comparison"].to_list()} if "comparison" in runs.columns else {}),
                             **{m: {"mean": _num(r[f"{m}_mean"]), "ci_half_width": _num(r[f"{m}_ci"]),
                                    "values": [_num(v) for v in runs[m].to_list()]} for m in metrics}}
    if baseline not in arms:
        raise DataError(f"baseline arm {baseline!r} has no runs with metrics; arms present: {', '.join(arms)}")
    deltas = [paired_delta(finals, arm, baseline, m, level) for arm in arms if arm != baseline
              for m in metrics if m in METRICS and is_quality(m)]
    tested = [m for m in verdict_metrics if m in metrics]
    return {"baseline": baseline, "level": level, "alpha": alpha, "metrics": metrics, "verdict_metrics": tested,
            "arms": per_arm, "deltas": deltas, "verdicts": compare_arms(finals, baseline, tested, level, alpha),
            "forgetting": forgetting(curves, baseline, level)}


def summary_json(summary: dict) -> dict:
    """``summarize``'s output as plain JSON values: each verdict becomes its ``to_dict()`` entry (exactly
    the keys of ``verdicts.JSON_KEYS``), the sentences go to ``verdict_texts``, non-finite numbers to None."""
    out = {k: v for k, v in summary.items() if k != "verdicts"}
    out["verdicts"] = [v.to_dict() for v in summary["verdicts"]]
    out["verdict_texts"] = [v.text for v in summary["verdicts"]]
    return json.loads(json.dumps(out, default=_num), parse_constant=lambda _: None)


def export_comparison(curves: pl.DataFrame, out_dir: str | Path, baseline: str | None = None,
                      level: float = 0.95, n_points: int = 50) -> dict[str, Path]:
    """Write ``curves.csv`` (every record), ``curves_by_arm.csv`` (seed means and bands on a token grid
    per metric), ``summary.json`` and, for runs evaluated by group, ``group_curves_by_arm.csv`` (seed means
    and bands of each group's loss per evaluation step) and ``forgetting.csv`` into ``out_dir``.

    Returns:
        {"curves": path, "curves_by_arm": path, "summary": path, ["group_curves_by_arm": path,
        "forgetting": path]}
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = [c for c in ID_COLUMNS if c in curves.columns] + metric_columns(curves)
    paths = {"curves": out / "curves.csv", "curves_by_arm": out / "curves_by_arm.csv", "summary": out / "summary.json"}
    atomic_write_text(paths["curves"], curves.sort(["arm", "seed", "step"]).select(cols).write_csv())
    bands = []
    for m in quality_metrics(curves):
        try:
            agg = aggregate_seeds(align_by_tokens(curves, m, n_points=n_points), level)
        except DataError:
            continue  # a metric no run has recorded yet
        bands.append(agg.select(pl.lit(m).alias("metric"), pl.all()))
    atomic_write_text(paths["curves_by_arm"], pl.concat(bands).write_csv() if bands else "")
    summary = summarize(curves, baseline, None, level)
    write_json(paths["summary"], summary_json(summary))
    if summary["forgetting"]:
        paths["group_curves_by_arm"] = out / "group_curves_by_arm.csv"
        atomic_write_text(paths["group_curves_by_arm"], group_bands(curves, level=level).write_csv())
        paths["forgetting"] = out / "forgetting.csv"
        atomic_write_text(paths["forgetting"], forgetting_frame(summary["forgetting"]).write_csv())
    return paths


# ----------------------------------------------------------------------------- groups and forgetting

def group_curves(curves: pl.DataFrame) -> pl.DataFrame:
    """The group losses of a curves frame in long form, one row per evaluation, run and group.

    Returns:
        Frame (run, arm, seed, [comparison,] step, tokens, set, column, group, loss): ``set`` is
        "validation" (``group_loss``) or "target" (``target_group_loss``); empty when nothing was grouped.
    """
    _require(curves, ("run", "arm", "seed", "step", "tokens"))
    keys = ["run", "arm", "seed"] + (["comparison"] if "comparison" in curves.columns else []) + ["step", "tokens"]
    parts = []
    for name in curves.columns:
        split = split_group_metric(name)
        if split is None or not curves.schema[name].is_numeric():
            continue
        metric, column, group = split
        parts.append(curves.select(*keys, pl.lit(GROUP_SETS[metric]).alias("set"), pl.lit(column).alias("column"),
                                   pl.lit(group).alias("group"), pl.col(name).cast(pl.Float64).alias("loss"))
                     .filter(pl.col("loss").is_not_null() & pl.col("loss").is_finite()))
    if not parts:
        schema = {**{k: curves.schema[k] for k in keys}, "set": pl.Utf8, "column": pl.Utf8, "group": pl.Utf8,
                  "loss": pl.Float64}
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).sort(["set", "column", "group", "run", "step"])


def forgetting_runs(curves: pl.DataFrame) -> pl.DataFrame:
    """Per run and group: the lowest loss of any evaluation, the final loss and the rise between them.

    Returns:
        Frame (run, arm, seed, [comparison,] set, column, group, min_loss, min_step, final_loss,
        final_step, rise), rise = final_loss - min_loss >= 0 (0 when the last evaluation is the lowest).
    """
    long = group_curves(curves)
    keys = ["run", "arm", "seed"] + (["comparison"] if "comparison" in long.columns else []) + \
        ["set", "column", "group"]
    if long.is_empty():
        return long.select(keys).with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in
                                                ("min_loss", "min_step", "final_loss", "final_step", "rise")))
    return (long.sort("step").group_by(keys, maintain_order=True)
            .agg(pl.col("loss").min().alias("min_loss"), pl.col("step").get(pl.col("loss").arg_min()).alias("min_step"),
                 pl.col("loss").last().alias("final_loss"), pl.col("step").last().alias("final_step"))
            .with_columns((pl.col("final_loss") - pl.col("min_loss")).alias("rise")))


def forgetting(curves: pl.DataFrame, baseline: str | None = None, level: float = 0.95) -> list[dict]:
    """Forgetting per arm and group: means over seeds of the lowest and final group loss and the rise,
    with the paired difference against ``baseline`` (matched seeds) on the rise and on the final loss.

    Args:
        curves: curves frame with ``group_loss.*`` / ``target_group_loss.*`` columns.
        baseline: the baseline arm; default ``pick_baseline``.
        level: coverage of the intervals (``rise_ci``: t half-width over seeds; the deltas' low/high:
            paired t interval, as ``verdicts.paired_delta``).
    Returns:
        One dict per (set, column, arm, group) with the keys of ``FORGETTING_KEYS``, validation first,
        arms in order of appearance, groups by name; ``*_delta*`` are None for the baseline itself and
        where no seed pairs. Empty when no run was evaluated by group.
    """
    from .verdicts import paired_delta

    per_run = forgetting_runs(curves)
    if per_run.is_empty():
        return []
    grouped = set(per_run["arm"].to_list())
    arms = [a for a in curves["arm"].unique(maintain_order=True).to_list() if a in grouped]
    baseline = baseline or pick_baseline(arms)  # a baseline without group losses leaves the deltas None
    out = []
    for set_name in ("validation", "target"):
        rows = per_run.filter(pl.col("set") == set_name)
        for (column, group), part in rows.group_by(["column", "group"], maintain_order=True):
            for arm in arms:
                mine = part.filter(pl.col("arm") == arm)
                if mine.is_empty():
                    continue
                entry = {"set": set_name, "column": column, "arm": arm, "group": group, "n_seeds": mine.height}
                for key in ("min_loss", "final_loss", "rise"):
                    entry[key] = _num(mine[key].mean())
                entry["rise_ci"] = _num(mean_ci(mine["rise"].to_list(), level)[1])
                for key, metric in (("rise_delta", "rise"), ("final_delta", "final_loss")):
                    d = paired_delta(part, arm, baseline, metric, level) if arm != baseline else {}
                    entry[key], entry[f"{key}_low"], entry[f"{key}_high"] = (d.get("delta"), d.get("ci_low"),
                                                                              d.get("ci_high"))
                out.append(entry)
    order = {arm: i for i, arm in enumerate(arms)}
    return sorted(out, key=lambda e: (e["set"] != "validation", e["column"], order[e["arm"]], e["group"]))


def forgetting_frame(entries: Sequence[dict]) -> pl.DataFrame:
    """``forgetting`` entries as a frame (columns ``FORGETTING_KEYS``), e.g. for CSV."""
    schema = {k: (pl.Utf8 if k in ("set", "column", "arm", "group") else pl.Int64 if k == "n_seeds" else pl.Float64)
              for k in FORGETTING_KEYS}
    return pl.DataFrame([{k: e.get(k) for k in FORGETTING_KEYS} for e in entries], schema=schema)


def format_forgetting(entries: Sequence[dict], set_name: str = "validation", level: float = 0.95) -> str:
    """A plain-text forgetting table of one held-out set: arm, group, seeds, lowest, final, rise ± CI and
    the paired Δ rise against the baseline with its interval."""
    rows = [e for e in entries if e["set"] == set_name]
    header = ["arm", "group", "seeds", "lowest", "final", f"rise ± {level:.0%} CI", "Δ rise vs baseline"]

    def f(v, fmt=".4f"):
        return "-" if v is None else format(v, fmt)

    body = []
    for e in rows:
        rise = f(e["rise"]) + ("" if e["rise_ci"] is None else f" ± {e['rise_ci']:.4f}")
        delta = "-" if e["rise_delta"] is None else f"{e['rise_delta']:+.4f}" + (
            "" if e["rise_delta_low"] is None else f" [{e['rise_delta_low']:+.4f}, {e['rise_delta_high']:+.4f}]")
        body.append([e["arm"], e["group"], str(e["n_seeds"]), f(e["min_loss"]), f(e["final_loss"]), rise, delta])
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header] + body]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def explain_groups(summary: dict, set_name: str | None = None) -> list[str]:
    """The comparison's result by group, in plain sentences computed from ``summarize``'s output:
    for every arm against the baseline, the group where it ends furthest behind (or ahead) and whether
    that gap is forgetting (its loss there rose from a lower point) or never having got as low.

    Args:
        summary: ``summarize`` output (needs its ``forgetting`` entries).
        set_name: "validation" or "target"; default validation when recorded, else target.
    Returns:
        Sentences (empty when nothing was evaluated by group).
    """
    entries = summary.get("forgetting") or []
    sets = [e["set"] for e in entries]
    set_name = set_name or ("validation" if "validation" in sets else "target" if sets else None)
    rows = [e for e in entries if e["set"] == set_name]
    if not rows:
        return []
    base, level = summary["baseline"], summary.get("level", 0.95)
    column, loss = rows[0]["column"], f"{set_name} loss"
    at = {(e["arm"], e["group"]): e for e in rows}
    out = []
    for arm in dict.fromkeys(e["arm"] for e in rows):
        if arm == base:
            continue
        mine = [e for e in rows if e["arm"] == arm and e["final_delta"] is not None and (base, e["group"]) in at]
        if not mine:
            continue
        worst = max(mine, key=lambda e: e["final_delta"])
        if worst["final_delta"] <= 0:
            best = min(mine, key=lambda e: e["final_delta"])
            out.append(f"{arm} ends with a lower {loss} than {base} on every {column} ({len(mine)} of them); "
                       f"the largest lead is on {best['group']} ({best['final_delta']:+.3f}{_interval(best, level)}).")
            continue
        b = at[(base, worst["group"])]
        text = (f"{arm} ends furthest behind {base} on {worst['group']}: {loss} {worst['final_loss']:.3f} against "
                f"{b['final_loss']:.3f} ({worst['final_delta']:+.3f}{_interval(worst, level)}).")
        extra_rise = worst["rise"] - b["rise"]
        if extra_rise >= 0.5 * worst["final_delta"]:
            text += (f" Most of that gap is forgetting: {arm} had brought {worst['group']} down to "
                     f"{worst['min_loss']:.3f} and lost {worst['rise']:.3f} of it by the end ({base} lost "
                     f"{b['rise']:.3f}).")
        elif max(worst["rise"], b["rise"]) < NOTABLE_RISE:
            text += (f" None of it is forgetting (neither loss on {worst['group']} rose from its lowest point by "
                     f"{NOTABLE_RISE} or more): {arm} never got as low there (lowest {worst['min_loss']:.3f} against "
                     f"{b['min_loss']:.3f}).")
        else:
            text += (f" Little of it is forgetting ({arm}'s loss there rose {worst['rise']:.3f} from its lowest, "
                     f"{base}'s {b['rise']:.3f}): {arm} never got as low on {worst['group']} (lowest "
                     f"{worst['min_loss']:.3f} against {b['min_loss']:.3f}).")
        ahead = [e for e in mine if e["final_delta"] < 0]
        if ahead:
            best = min(ahead, key=lambda e: e["final_delta"])
            text += f" It ends ahead on {best['group']} ({best['final_delta']:+.3f})."
        out.append(text)
    top = max(rows, key=lambda e: e["rise"] or 0.0)
    seeds = f"mean over {top['n_seeds']} seed{'s' if top['n_seeds'] != 1 else ''}"
    if (top["rise"] or 0.0) >= NOTABLE_RISE:
        out.append(f"The largest rise after a lowest point: {top['arm']} on {top['group']}, +{top['rise']:.3f} "
                   f"({seeds}).")
    elif (top["rise"] or 0.0) > 0:
        out.append(f"No arm's {loss} rose by {NOTABLE_RISE} or more on any {column} after its lowest point "
                   f"(largest: {top['arm']} on {top['group']}, +{top['rise']:.3f}, {seeds}): nothing measurable "
                   "was forgotten.")
    else:
        out.append(f"No arm's {loss} rose on any {column} after its lowest point: nothing learned was forgotten.")
    return out


def _interval(entry: dict, level: float) -> str:
    if entry.get("final_delta_low") is None:
        return ""
    return f", {level:.0%} CI {entry['final_delta_low']:+.3f} to {entry['final_delta_high']:+.3f}"


def group_bands(curves: pl.DataFrame, set_name: str | None = None, x: str = "step", level: float = 0.95,
                n_points: int = 50) -> pl.DataFrame:
    """Each arm's loss per group over training: mean and t band over seeds.

    Args:
        curves: curves frame with group losses.
        set_name: "validation" or "target"; None for both.
        x: "step" (runs evaluated at the same steps are averaged there) or "tokens" (each run's curve
            interpolated onto a common token grid first, as ``align_by_tokens``).
        level: coverage of the band.
        n_points: token grid size (x="tokens").
    Returns:
        Frame (set, column, group, arm, <x>, mean, half_width, lower, upper, n).
    """
    if x not in ("step", "tokens"):
        raise ConfigError(f"x={x!r} must be 'step' or 'tokens'")
    long = group_curves(curves)
    if set_name is not None:
        long = long.filter(pl.col("set") == set_name)
    out = []
    for (set_, column, group), part in long.group_by(["set", "column", "group"], maintain_order=True):
        pts = part.select("run", "arm", "seed", pl.col(x).alias("tokens"), pl.col("loss").alias("value"))
        if x == "tokens":
            pts = align_by_tokens(pts.rename({"value": "loss"}), "loss", n_points=n_points)
        agg = aggregate_seeds(pts, level).rename({"tokens": x})
        out.append(agg.select(pl.lit(set_).alias("set"), pl.lit(column).alias("column"), pl.lit(group).alias("group"),
                              pl.all()))
    if not out:
        return pl.DataFrame(schema={"set": pl.Utf8, "column": pl.Utf8, "group": pl.Utf8, "arm": pl.Utf8,
                                    x: pl.Float64, "mean": pl.Float64, "half_width": pl.Float64,
                                    "lower": pl.Float64, "upper": pl.Float64, "n": pl.UInt32})
    return pl.concat(out, how="vertical_relaxed")


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _require(frame: pl.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"curves frame lacks column(s) {', '.join(missing)}; "
                        f"it has {', '.join(frame.columns) or 'none'} (build it with Workspace.comparison_curves)")
