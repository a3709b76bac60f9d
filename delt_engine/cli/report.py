"""A comparison's report as the CLI prints it (``compare`` when its runs finish, ``runs report``): the
per-arm table, the verdicts, and for runs evaluated by group the group losses, forgetting and make-up."""

from __future__ import annotations

import json

from .common import fmt, text_table


def print_report(ws, comparison_id: str, as_json: bool = False) -> None:
    from ..experiments.spec import describe_data
    from ..experiments.stats import arm_table, final_metrics
    from ..experiments.summary import format_table, summarize, summary_json
    from ..training.metrics import TABLE_METRICS

    curves = ws.comparison_curves(comparison_id)
    manifest = ws.load_comparison(comparison_id)
    unfinished = [i.id for i in ws.list_runs(comparison=comparison_id) if i.state != "done"]
    summary = summarize(curves, baseline=manifest.get("baseline"))
    if as_json:
        print(json.dumps(summary_json(summary), indent=2))
        return
    finals = final_metrics(curves, summary["metrics"])
    shown = [m for m in TABLE_METRICS if m in summary["metrics"]]
    print(f"comparison {comparison_id} (final metrics, mean ± 95% CI over seeds)")
    print(f"data: {describe_data(manifest)}")
    if unfinished:
        print(f"note: {len(unfinished)} of {len(manifest['runs'])} runs are not done; their latest values are used")
    print(format_table(arm_table(finals, shown, summary["level"]), shown))
    print()
    _print_verdicts(summary)
    _print_groups(ws, manifest, curves, summary)


def _print_groups(ws, manifest: dict, curves, summary: dict) -> None:
    """Loss by group at every evaluation, forgetting, and the stream's make-up (runs with group_by)."""
    from ..experiments import forgetting

    if not summary["forgetting"]:
        return
    for set_name in ("validation", "target"):
        entries = [e for e in summary["forgetting"] if e["set"] == set_name]
        if not entries:
            continue
        column = entries[0]["column"]
        print()
        print(f"{set_name} loss by {column} (mean over seeds at each evaluation step)")
        print(_group_loss_table(forgetting.group_bands(curves, set_name, level=summary["level"])))
        print()
        print(
            f"forgetting on the {set_name} set by {column}: lowest loss reached, final loss, rise = final - lowest "
            f"(means over seeds); Δ rise: paired over seeds against {summary['baseline']}"
        )
        print(forgetting.format_forgetting(entries, set_name, summary["level"]))
    from ..errors import DeltError

    try:
        makeups = comparison_makeups(ws, manifest, eval_windows=True)
    except DeltError as exc:  # e.g. an ordered data file deleted since: the tables above still stand
        print(f"\nno stream make-up: {exc}")
        makeups = {}
    if makeups:
        print()
        print(
            f"stream make-up: share of the documents of each {_group_column(manifest)} in every window of steps "
            "between two evaluations, and the window's mean score (an arm with one ordering per seed: mean "
            "over seeds)"
        )
    for arm, makeup in makeups.items():
        print(f"{arm}:")
        print(_makeup_text(makeup))


def _group_column(manifest: dict) -> str:
    return str((manifest.get("spec") or {}).get("group_by") or "group")


def comparison_makeups(ws, manifest: dict, eval_windows: bool = False) -> dict:
    """{arm: stream make-up} of a comparison's runs; windows of ``eval_every`` steps with ``eval_windows``
    (what the model saw between two evaluations), else about 25 windows (as the app draws them)."""
    from ..fileio import read_json
    from ..workspace.runs import arm_makeups

    runs = [(r["arm"], ws.root / "runs" / r["id"]) for r in manifest.get("runs", [])]
    window = None
    if eval_windows and runs:
        window = (read_json(runs[0][1] / "config.json", default={}) or {}).get("eval_every")
    return arm_makeups(runs, window_steps=window)


def _group_loss_table(bands) -> str:
    """Rows arm x group, one column per evaluation step: the mean over seeds."""
    steps = sorted(set(bands["step"].to_list()))
    header = ["arm", "group"] + [f"step {int(s)}" for s in steps]
    rows = []
    for (arm, group), part in bands.group_by(["arm", "group"], maintain_order=True):
        at = dict(zip(part["step"].to_list(), part["mean"].to_list()))
        rows.append([arm, group] + [fmt(at.get(s)) for s in steps])
    return text_table(header, rows)


def _makeup_text(makeup) -> str:
    from ..organize.makeup import makeup_table

    table = makeup_table(makeup)
    groups = [c for c in table.columns if c not in ("start_step", "end_step", "mean_score")]
    header = ["steps", "mean score"] + groups
    rows = [
        [f"{r['start_step']}-{r['end_step']}", fmt(r["mean_score"])] + [f"{r[g]:.0%}" for g in groups]
        for r in table.iter_rows(named=True)
    ]
    return text_table(header, rows)


def _print_verdicts(summary: dict) -> None:
    from ..experiments.verdicts import format_verdicts
    from ..training import metrics

    verdicts = summary["verdicts"]
    if not verdicts:
        print(
            f"no verdicts: they need an arm besides {summary['baseline']} and one of "
            f"{', '.join(metrics.VERDICT_METRICS)} recorded"
        )
        return
    n_tests = sum(v.p is not None for v in verdicts)
    print(
        f"verdicts vs {summary['baseline']}: paired t-test over seeds, p Holm-adjusted across {n_tests} "
        f"test{'s' if n_tests != 1 else ''} (arms x metrics), better/worse when adjusted p < {summary['alpha']}"
    )
    print(format_verdicts(verdicts))
    print()
    for verdict in verdicts:
        print(f"- {verdict.text}")
