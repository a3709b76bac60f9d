"""A comparison's summary: per-arm final metrics with intervals, paired deltas, verdicts and forgetting,
as ``runs report`` prints it, ``runs report --json`` and the Compare page read it, and ``runs export``
writes it with the curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ..errors import DataError
from ..fileio import atomic_write_text, write_json
from ..training.metrics import METRICS, VERDICT_METRICS, is_quality
from ..training.metrics import label as metric_label
from .forgetting import forgetting, forgetting_frame, group_bands
from .stats import (
    ID_COLUMNS,
    aggregate_seeds,
    align_by_tokens,
    arm_table,
    final_metrics,
    finite_or_none,
    metric_columns,
    pick_baseline,
    quality_metrics,
)
from .verdicts import compare_arms, paired_delta


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


def summarize(
    curves: pl.DataFrame,
    baseline: str | None = None,
    metrics: Sequence[str] | None = None,
    level: float = 0.95,
    alpha: float = 0.05,
    verdict_metrics: Sequence[str] = VERDICT_METRICS,
) -> dict:
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

    metrics = [m for m in (metrics or quality_metrics(curves)) if m in curves.columns]
    finals = final_metrics(curves, metrics)
    arms = finals["arm"].unique(maintain_order=True).to_list()
    baseline = baseline or pick_baseline(arms)
    table = arm_table(finals, metrics, level)
    per_arm = {}
    for r in table.iter_rows(named=True):
        runs = finals.filter(pl.col("arm") == r["arm"])
        per_arm[r["arm"]] = {
            "n_seeds": r["n_seeds"],
            "runs": runs["run"].to_list(),
            "seeds": runs["seed"].to_list(),
            **({"comparisons": runs["comparison"].to_list()} if "comparison" in runs.columns else {}),
            **{
                m: {
                    "mean": finite_or_none(r[f"{m}_mean"]),
                    "ci_half_width": finite_or_none(r[f"{m}_ci"]),
                    "values": [finite_or_none(v) for v in runs[m].to_list()],
                }
                for m in metrics
            },
        }
    if baseline not in arms:
        raise DataError(f"baseline arm {baseline!r} has no runs with metrics; arms present: {', '.join(arms)}")
    deltas = [
        paired_delta(finals, arm, baseline, m, level)
        for arm in arms
        if arm != baseline
        for m in metrics
        if m in METRICS and is_quality(m)
    ]
    tested = [m for m in verdict_metrics if m in metrics]
    return {
        "baseline": baseline,
        "level": level,
        "alpha": alpha,
        "metrics": metrics,
        "verdict_metrics": tested,
        "arms": per_arm,
        "deltas": deltas,
        "verdicts": compare_arms(finals, baseline, tested, level, alpha),
        "forgetting": forgetting(curves, baseline, level),
    }


def summary_json(summary: dict) -> dict:
    """``summarize``'s output as plain JSON values: each verdict becomes its ``to_dict()`` entry (exactly
    the keys of ``verdicts.JSON_KEYS``), the sentences go to ``verdict_texts``, non-finite numbers to None."""
    out = {k: v for k, v in summary.items() if k != "verdicts"}
    out["verdicts"] = [v.to_dict() for v in summary["verdicts"]]
    out["verdict_texts"] = [v.text for v in summary["verdicts"]]
    return json.loads(json.dumps(out, default=finite_or_none), parse_constant=lambda _: None)


def export_comparison(
    curves: pl.DataFrame, out_dir: str | Path, baseline: str | None = None, level: float = 0.95, n_points: int = 50
) -> dict[str, Path]:
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
