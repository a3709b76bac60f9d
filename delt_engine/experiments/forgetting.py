"""Forgetting and distribution bias, by group (issue: why did an ordering win or lose?).

Runs evaluated by group (``group_by``) record ``group_loss.<column>.<group>`` (validation) and
``target_group_loss.<column>.<group>``. Per run and group, the lowest loss any evaluation reached, the
final (last recorded) loss and the rise between them measure what was learned and then lost; per arm
they are averaged over seeds, with the paired difference against the baseline arm (seeds are the
unit, as for the verdicts). ``forgetting`` gives those entries; ``summary.summarize`` includes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ..errors import ConfigError
from ..training.metrics import split_group_metric
from .stats import _require, aggregate_seeds, align_by_tokens, finite_or_none, pick_baseline
from .tdist import mean_ci
from .verdicts import paired_delta

GROUP_SETS = {"group_loss": "validation", "target_group_loss": "target"}  # group metric -> held-out set
NOTABLE_RISE = 0.01  # a rise below this (nats per token) is worded "nothing measurable was forgotten"
FORGETTING_KEYS = (
    "set",
    "column",
    "arm",
    "group",
    "n_seeds",
    "min_loss",
    "final_loss",
    "rise",
    "rise_ci",
    "rise_delta",
    "rise_delta_low",
    "rise_delta_high",
    "final_delta",
    "final_delta_low",
    "final_delta_high",
)


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
        parts.append(
            curves.select(
                *keys,
                pl.lit(GROUP_SETS[metric]).alias("set"),
                pl.lit(column).alias("column"),
                pl.lit(group).alias("group"),
                pl.col(name).cast(pl.Float64).alias("loss"),
            ).filter(pl.col("loss").is_not_null() & pl.col("loss").is_finite())
        )
    if not parts:
        schema = {
            **{k: curves.schema[k] for k in keys},
            "set": pl.Utf8,
            "column": pl.Utf8,
            "group": pl.Utf8,
            "loss": pl.Float64,
        }
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).sort(["set", "column", "group", "run", "step"])


def forgetting_runs(curves: pl.DataFrame) -> pl.DataFrame:
    """Per run and group: the lowest loss of any evaluation, the final loss and the rise between them.

    Returns:
        Frame (run, arm, seed, [comparison,] set, column, group, min_loss, min_step, final_loss,
        final_step, rise), rise = final_loss - min_loss >= 0 (0 when the last evaluation is the lowest).
    """
    long = group_curves(curves)
    keys = (
        ["run", "arm", "seed"] + (["comparison"] if "comparison" in long.columns else []) + ["set", "column", "group"]
    )
    if long.is_empty():
        return long.select(keys).with_columns(
            *(pl.lit(None, pl.Float64).alias(c) for c in ("min_loss", "min_step", "final_loss", "final_step", "rise"))
        )
    return (
        long.sort("step")
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("loss").min().alias("min_loss"),
            pl.col("step").get(pl.col("loss").arg_min()).alias("min_step"),
            pl.col("loss").last().alias("final_loss"),
            pl.col("step").last().alias("final_step"),
        )
        .with_columns((pl.col("final_loss") - pl.col("min_loss")).alias("rise"))
    )


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
                    entry[key] = finite_or_none(mine[key].mean())
                entry["rise_ci"] = finite_or_none(mean_ci(mine["rise"].to_list(), level)[1])
                for key, metric in (("rise_delta", "rise"), ("final_delta", "final_loss")):
                    d = paired_delta(part, arm, baseline, metric, level) if arm != baseline else {}
                    entry[key], entry[f"{key}_low"], entry[f"{key}_high"] = (
                        d.get("delta"),
                        d.get("ci_low"),
                        d.get("ci_high"),
                    )
                out.append(entry)
    order = {arm: i for i, arm in enumerate(arms)}
    return sorted(out, key=lambda e: (e["set"] != "validation", e["column"], order[e["arm"]], e["group"]))


def forgetting_frame(entries: Sequence[dict]) -> pl.DataFrame:
    """``forgetting`` entries as a frame (columns ``FORGETTING_KEYS``), e.g. for CSV."""
    schema = {
        k: (pl.Utf8 if k in ("set", "column", "arm", "group") else pl.Int64 if k == "n_seeds" else pl.Float64)
        for k in FORGETTING_KEYS
    }
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
        delta = (
            "-"
            if e["rise_delta"] is None
            else f"{e['rise_delta']:+.4f}"
            + ("" if e["rise_delta_low"] is None else f" [{e['rise_delta_low']:+.4f}, {e['rise_delta_high']:+.4f}]")
        )
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
            out.append(
                f"{arm} ends with a lower {loss} than {base} on every {column} ({len(mine)} of them); "
                f"the largest lead is on {best['group']} ({best['final_delta']:+.3f}{_interval(best, level)})."
            )
            continue
        b = at[(base, worst["group"])]
        text = (
            f"{arm} ends furthest behind {base} on {worst['group']}: {loss} {worst['final_loss']:.3f} against "
            f"{b['final_loss']:.3f} ({worst['final_delta']:+.3f}{_interval(worst, level)})."
        )
        extra_rise = worst["rise"] - b["rise"]
        if extra_rise >= 0.5 * worst["final_delta"]:
            text += (
                f" Most of that gap is forgetting: {arm} had brought {worst['group']} down to "
                f"{worst['min_loss']:.3f} and lost {worst['rise']:.3f} of it by the end ({base} lost "
                f"{b['rise']:.3f})."
            )
        elif max(worst["rise"], b["rise"]) < NOTABLE_RISE:
            text += (
                f" None of it is forgetting (neither loss on {worst['group']} rose from its lowest point by "
                f"{NOTABLE_RISE} or more): {arm} never got as low there (lowest {worst['min_loss']:.3f} against "
                f"{b['min_loss']:.3f})."
            )
        else:
            text += (
                f" Little of it is forgetting ({arm}'s loss there rose {worst['rise']:.3f} from its lowest, "
                f"{base}'s {b['rise']:.3f}): {arm} never got as low on {worst['group']} (lowest "
                f"{worst['min_loss']:.3f} against {b['min_loss']:.3f})."
            )
        ahead = [e for e in mine if e["final_delta"] < 0]
        if ahead:
            best = min(ahead, key=lambda e: e["final_delta"])
            text += f" It ends ahead on {best['group']} ({best['final_delta']:+.3f})."
        out.append(text)
    top = max(rows, key=lambda e: e["rise"] or 0.0)
    seeds = f"mean over {top['n_seeds']} seed{'s' if top['n_seeds'] != 1 else ''}"
    if (top["rise"] or 0.0) >= NOTABLE_RISE:
        out.append(
            f"The largest rise after a lowest point: {top['arm']} on {top['group']}, +{top['rise']:.3f} ({seeds})."
        )
    elif (top["rise"] or 0.0) > 0:
        out.append(
            f"No arm's {loss} rose by {NOTABLE_RISE} or more on any {column} after its lowest point "
            f"(largest: {top['arm']} on {top['group']}, +{top['rise']:.3f}, {seeds}): nothing measurable "
            "was forgotten."
        )
    else:
        out.append(f"No arm's {loss} rose on any {column} after its lowest point: nothing learned was forgotten.")
    return out


def _interval(entry: dict, level: float) -> str:
    if entry.get("final_delta_low") is None:
        return ""
    return f", {level:.0%} CI {entry['final_delta_low']:+.3f} to {entry['final_delta_high']:+.3f}"


def group_bands(
    curves: pl.DataFrame, set_name: str | None = None, x: str = "step", level: float = 0.95, n_points: int = 50
) -> pl.DataFrame:
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
        out.append(
            agg.select(
                pl.lit(set_).alias("set"), pl.lit(column).alias("column"), pl.lit(group).alias("group"), pl.all()
            )
        )
    if not out:
        return pl.DataFrame(
            schema={
                "set": pl.Utf8,
                "column": pl.Utf8,
                "group": pl.Utf8,
                "arm": pl.Utf8,
                x: pl.Float64,
                "mean": pl.Float64,
                "half_width": pl.Float64,
                "lower": pl.Float64,
                "upper": pl.Float64,
                "n": pl.UInt32,
            }
        )
    return pl.concat(out, how="vertical_relaxed")
