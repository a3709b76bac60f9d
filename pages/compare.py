"""Compare: overlay runs, aggregate seeds per ordering (mean ± 95% band), and give each arm a verdict
against the baseline (better / worse / not resolved with n seeds: paired t-test over seeds, Holm-adjusted
p-values, seeds needed). Exports curves (CSV) and the summary (JSON). Runs evaluated with ``delt runs eval``
show their lm-eval results (<run>/lm_eval.json)."""

from __future__ import annotations

import json

import polars as pl
import streamlit as st

from delt_engine.errors import DataError, DeltError
from delt_engine.experiments import forgetting, stats, verdicts
from delt_engine.experiments.summary import summarize, summary_json
from delt_engine.fileio import read_json
from delt_engine.jobs.records import metrics_frame, read_metrics
from delt_engine.training.metrics import INFO_METRICS, TABLE_METRICS, VERDICT_METRICS, split_group_metric
from delt_engine.training.metrics import label as metric_label
from delt_engine.workspace.layout import Workspace
from ui import damaged, figures, groups, state
from ui.safe import md

state.require_app("compare")
ROOT = state.workspace_root()
PREFERRED = ("val_loss", "target_loss", "train_loss", "bench_acc_norm", "bench_acc")
VERDICT_STYLE = {"better": st.success, "worse": st.warning, "unresolved": st.info}


def runs_curves(ws: Workspace, run_ids: list[str]) -> pl.DataFrame:
    """A curves frame (run, arm, seed, comparison, step, tokens, metrics) for hand-picked runs.

    A run's arm is its label; the pairing unit of the verdicts is (comparison id, seed). Runs from two
    comparisons that share an arm label and a seed stay two distinct replicates: each pairs only with
    the baseline run of its own comparison and seed, so picking shuffle runs from two comparisons next
    to the folding runs of one never pairs a folding seed twice (2 folding seeds are 2 pairs, not 4).
    Runs outside any comparison form one group ("") and pair by seed among themselves.
    """
    frames = []
    for info in ws.list_runs():
        if info.id not in run_ids:
            continue
        records, _ = read_metrics(info.dir)
        if records:
            frames.append(
                metrics_frame(records).select(
                    pl.lit(info.id).alias("run"),
                    pl.lit(str(info.arm or info.ordering or info.id)).alias("arm"),
                    pl.lit(int(info.seed or 0)).alias("seed"),
                    pl.lit(info.comparison or "").alias("comparison"),
                    pl.all(),
                )
            )
    if not frames:
        raise DataError("none of the chosen runs has recorded metrics yet; wait for them to start")
    return pl.concat(frames, how="diagonal_relaxed")


def pick_source(ws: Workspace) -> pl.DataFrame | None:
    cmps = ws.list_comparisons()[::-1]
    mode = st.radio(
        "Compare", ["A comparison", "Individual runs"], key="compare.source", persist_state="session", horizontal=True
    )
    if mode == "A comparison":
        ids = [c["id"] for c in cmps]
        if not ids:
            st.info("No comparison yet: launch one on the Train page.")
            st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
            return None
        if st.session_state.get("compare.comparison") not in ids:
            st.session_state["compare.comparison"] = (
                st.session_state.get("train.comparison") if st.session_state.get("train.comparison") in ids else ids[0]
            )
        cid = st.selectbox(
            "Comparison",
            ids,
            key="compare.comparison",
            persist_state="session",
            format_func=lambda i: f"{i} ({', '.join(next(c for c in cmps if c['id'] == i)['arms'])})",
        )
        from delt_engine.experiments.spec import describe_data

        st.caption(md("Data: " + describe_data(ws.load_comparison(cid))))
        unfinished_notice(ws.list_runs(comparison=cid))
        return ws.comparison_curves(cid)
    infos = ws.list_runs()
    labels = {i.id: f"{i.arm or i.ordering or '?'} · seed {i.seed} · {i.state} · {i.id}" for i in infos}
    state.ensure_choice("compare.runs", list(labels), multi=True)
    chosen = st.multiselect("Runs", list(labels), key="compare.runs", persist_state="session", format_func=labels.get)
    if not chosen:
        st.info("Pick one or more runs.")
        return None
    unfinished_notice([i for i in infos if i.id in chosen])
    return runs_curves(ws, chosen)


def unfinished_notice(infos) -> None:
    """Say when some runs have not finished: curves, bands and verdicts then use what they recorded so far."""
    states: dict[str, int] = {}
    for info in infos:
        if info.state != "done":
            states[info.state] = states.get(info.state, 0) + 1
    if not states:
        return
    how = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    st.warning(
        f"{sum(states.values())} of {len(infos)} runs have not finished ({how}): the curves, bands and verdicts "
        "below use what each run recorded so far, so runs that stopped early are compared at the last step "
        "they reached. Verdicts are final once every run is done (reload the page to refresh)."
    )


def controls(curves: pl.DataFrame) -> tuple[str, str, float]:
    metrics = [
        m for m in stats.metric_columns(curves) if m not in INFO_METRICS and split_group_metric(m) is None
    ]  # group losses have their own panels below
    metrics = sorted(metrics, key=lambda m: (PREFERRED.index(m) if m in PREFERRED else len(PREFERRED), m))
    state.ensure_choice("compare.metric", metrics)
    c1, c2, c3 = st.columns([2, 1, 2])
    metric = c1.selectbox("Metric", metrics, key="compare.metric", persist_state="session", format_func=metric_label)
    x = c2.radio("x axis", ["tokens", "step"], key="compare.x", persist_state="session", horizontal=True)
    smoothing = c3.slider("EMA smoothing", 0.0, 0.95, step=0.05, key="compare.smoothing", persist_state="session")
    return metric, x, smoothing


def stream_makeups(ws: Workspace, curves: pl.DataFrame, x: str) -> dict:
    """{arm: figures.Makeup} of the runs in ``curves`` on the chosen x axis ({} without group_by)."""
    runs = curves.select("run", "arm").unique(maintain_order=True)
    try:
        makeups = groups.run_makeups([(arm, ws.root / "runs" / run) for run, arm in runs.iter_rows()])
    except DeltError as exc:  # e.g. an ordered data file deleted since: the curves still show
        st.caption(f"No stream make-up: {exc}")
        return {}
    if x == "tokens":  # window edges at the tokens the arm's runs had seen at those steps
        return groups.figure_makeups(makeups, {arm: groups.tokens_of_step(curves, arm) for arm in makeups})
    return groups.figure_makeups(makeups)


def run_curves(curves: pl.DataFrame, metric: str, x: str, smoothing: float, makeups: dict | None = None) -> None:
    top, bottom = [], []
    for (_run, arm, seed), part in curves.sort("step").group_by(["run", "arm", "seed"], maintain_order=True):
        pts = part.filter(pl.col(metric).is_not_null())
        top.append(figures.Series(f"{arm} s{seed}", pts[x].to_list(), pts[metric].to_list(), group=arm))
        if "batch_score" in part.columns:
            bs = part.filter(pl.col("batch_score").is_not_null())
            bottom.append(figures.Series(f"{arm} s{seed}", bs[x].to_list(), bs["batch_score"].to_list(), group=arm))
    fig = figures.curves_with_trace(
        top,
        bottom,
        title=f"{metric_label(metric)} per run",
        x_title=x,
        top_title=metric_label(metric),
        smoothing=smoothing,
        makeups=makeups,
    )
    st.plotly_chart(fig, key="compare.runs_chart")
    if makeups:
        st.caption(
            "Under the curves, each arm's stream make-up: the share of each group in every window of training "
            "steps (an arm with one ordering per seed: mean over seeds) and the window's mean score (dotted). "
            + (
                "On the tokens axis a window spans the tokens the arm's runs had seen (mean over seeds) at its "
                "first and last step."
                if x == "tokens"
                else ""
            )
        )


def seed_bands(curves: pl.DataFrame, metric: str, smoothing: float) -> None:
    try:
        agg = stats.aggregate_seeds(stats.align_by_tokens(curves, metric, n_points=60))
    except DeltError as exc:
        st.info(md(f"No seed bands: {exc}"))
        return
    items = []
    for (arm,), part in agg.group_by(["arm"], maintain_order=True):
        lower = part["lower"].fill_null(part["mean"])
        upper = part["upper"].fill_null(part["mean"])
        items.append(
            figures.Band(
                arm,
                part["tokens"].to_list(),
                part["mean"].to_list(),
                lower.to_list(),
                upper.to_list(),
                n=int(part["n"].max()),
            )
        )
    st.plotly_chart(
        figures.bands(
            items,
            title=f"{metric_label(metric)}: mean ± 95% interval across seeds",
            x_title="tokens (runs aligned)",
            y_title=metric_label(metric),
            smoothing=smoothing,
        ),
        key="compare.bands",
    )


def summary_table(summary: dict) -> pl.DataFrame:
    """One row per arm: seeds, then per metric the final value (mean ± 95% CI over seeds) and the
    paired difference against the baseline (Δ, over matched seeds)."""
    deltas = {(d["arm"], d["metric"]): d for d in summary["deltas"]}
    metrics = [m for m in TABLE_METRICS if m in summary["metrics"]]
    rows = []
    for arm, info in summary["arms"].items():
        row = {"arm": arm, "seeds": info["n_seeds"]}
        for m in metrics:
            row[metric_label(m)] = _cell(
                info[m]["mean"], info[m]["ci_half_width"], deltas.get((arm, m)), arm == summary["baseline"]
            )
        rows.append(row)
    return pl.DataFrame(rows)


def _cell(mean, ci, delta, is_baseline: bool) -> str:
    if mean is None:
        return "-"
    text = f"{mean:.3f}" + (f" ± {ci:.3f}" if ci else "")
    if is_baseline:
        return text + " (baseline)"
    if delta and delta.get("delta") is not None:
        half = f" ± {(delta['ci_high'] - delta['ci_low']) / 2:.3f}" if delta.get("ci_low") is not None else ""
        text += f" · Δ {delta['delta']:+.3f}{half}"
    return text


def verdict_table(found: list[verdicts.Verdict]) -> pl.DataFrame:
    """One row per verdict: arm, metric, seeds, Δ and its interval, p, Holm-adjusted p, seeds needed."""

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    return pl.DataFrame(
        [
            {
                "arm": v.arm,
                "metric": metric_label(v.metric),
                "seeds": v.n_seeds,
                "Δ": num(v.delta, "+.4f"),
                f"{v.level:.0%} CI": "-" if v.ci_low is None else f"{v.ci_low:+.4f} .. {v.ci_high:+.4f}",
                "p": num(v.p, ".3g"),
                "Holm-adjusted p": num(v.p_adjusted, ".3g"),
                "seeds needed": "-" if v.seeds_needed is None else str(v.seeds_needed),
                "verdict": v.verdict if v.verdict != "unresolved" else f"not resolved ({v.n_seeds} seeds)",
            }
            for v in found
        ]
    )


def summary_panel(curves: pl.DataFrame) -> dict | None:
    st.subheader("Summary")
    try:
        summary = summarize(curves)
    except DeltError as exc:
        st.info(md(f"No summary yet: {exc}"))
        return None
    st.dataframe(summary_table(summary), hide_index=True, key="compare.summary")
    found = summary["verdicts"]
    if not found:
        st.caption(
            f"Verdicts compare each arm with {md(summary['baseline'])} over matched seeds "
            f"({', '.join(map(metric_label, VERDICT_METRICS))}); run two or more arms "
            "to see them."
        )
        return summary
    st.dataframe(verdict_table(found), hide_index=True, key="compare.verdicts")
    for v in found:
        VERDICT_STYLE[v.verdict](md(v.text))  # colour from the verdict field, never from the wording
    st.caption(
        f"Paired t-test over seeds; p-values Holm-adjusted across every arm × metric "
        f"({sum(v.p is not None for v in found)} tests); better/worse when the adjusted p < "
        f"{summary['alpha']}. Seeds needed: total seeds for {verdicts.POWER:.0%} power to resolve the observed "
        "difference, from the observed paired spread (a rough guide)."
    )
    return summary


def group_section(curves: pl.DataFrame, summary: dict | None, x: str, smoothing: float) -> None:
    """Why did it win or lose: each group's loss per arm (small multiples, mean ± 95% band over seeds),
    the forgetting table and the result in words."""
    entries = summary["forgetting"] if summary is not None else forgetting.forgetting(curves)
    if not entries:
        return
    st.subheader("Why? Loss by group")
    sets = list(dict.fromkeys(e["set"] for e in entries))
    state.ensure_choice("compare.group_set", sets)
    set_name = (
        st.radio(
            "Held-out set",
            sets,
            key="compare.group_set",
            persist_state="session",
            horizontal=True,
            format_func=lambda s: f"{s} loss",
        )
        if len(sets) > 1
        else sets[0]
    )
    column = next(e["column"] for e in entries if e["set"] == set_name)
    try:
        bands = forgetting.group_bands(curves, set_name, x=x, n_points=40)
    except DeltError as exc:
        st.info(f"No group curves: {exc}")
        return
    st.plotly_chart(
        figures.group_panels(
            groups.band_panels(bands, x),
            title=f"{set_name.capitalize()} loss by {column}: mean ± 95% interval across seeds",
            x_title=x,
            y_title="loss",
            smoothing=smoothing if x == "tokens" else 0.0,
        ),
        key="compare.group_panels",
    )
    st.caption(
        f"One panel per {column}, the same arms in each. A curve that reaches a low point and climbs again is "
        f"forgetting; one that stays above the others never learned that {column} as well. {groups.POOLING}"
    )
    st.dataframe(groups.forgetting_table(entries, set_name), hide_index=True, key="compare.forgetting")
    base = summary["baseline"] if summary is not None else stats.pick_baseline(curves["arm"].unique().to_list())
    st.caption(
        f"Forgetting per arm and {column} (means over seeds): the lowest loss any evaluation reached, the "
        f"final loss, and the rise between them (± 95% interval over seeds). Δ: paired over seeds against "
        f"{base}, with its 95% interval."
    )
    if summary is not None:
        for sentence in forgetting.explain_groups(summary, set_name):
            st.markdown(f"- {sentence}")


def lm_eval_rows(results: dict) -> list[dict]:
    """One row per task of an lm_eval.json ``results`` dict: its name (lm-eval's alias), acc and acc_norm
    with their standard errors, formatted as lm-eval reported them ("-" where it gave none)."""

    def cell(res: dict, metric: str) -> str:
        key = (
            f"{metric},none" if f"{metric},none" in res else next((k for k in res if k.startswith(f"{metric},")), None)
        )
        value = res.get(key) if key else None
        return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"

    return [
        {
            "task": str(res.get("alias") or name).strip(),
            "acc": cell(res, "acc"),
            "± acc": cell(res, "acc_stderr"),
            "acc_norm": cell(res, "acc_norm"),
            "± acc_norm": cell(res, "acc_norm_stderr"),
        }
        for name, res in results.items()
        if isinstance(res, dict)
    ]


def lm_eval_section(ws: Workspace, curves: pl.DataFrame) -> None:
    """lm-evaluation-harness results of the runs that have one (``delt runs eval`` writes <run>/lm_eval.json):
    per arm, one row per seed and task. Read-only: nothing here runs lm-eval."""
    from delt_engine.training.harness import RESULTS_FILE

    tables, problems = {}, []
    for run, arm, seed in curves.select("run", "arm", "seed").unique(maintain_order=True).sort("arm", "seed").rows():
        path = ws.root / "runs" / run / RESULTS_FILE
        try:
            record = read_json(path)
        except DeltError as exc:  # a damaged file: say which, show the others
            problems.append(str(exc))
            continue
        if isinstance(record, dict) and isinstance(record.get("results"), dict):
            tables.setdefault(arm, []).extend(
                {"seed": seed, **row, "run": run} for row in lm_eval_rows(record["results"])
            )
        elif record is not None:
            problems.append(f'{path}: no lm-eval "results" in it; run delt runs eval again')
    if not tables and not problems:
        return
    st.subheader("lm-evaluation-harness")
    st.caption("Results of delt runs eval (the runs' kept models through lm-eval), as lm-eval reported them.")
    for arm, rows in tables.items():
        st.markdown(f"**{md(arm)}**")
        st.dataframe(pl.DataFrame(rows), hide_index=True, key=f"compare.lm_eval.{arm}")
    for problem in problems:
        st.caption(md(f"Not shown: {problem}"))


def downloads(ws: Workspace, curves: pl.DataFrame, summary: dict | None) -> None:
    cols = [c for c in stats.ID_COLUMNS if c in curves.columns] + stats.metric_columns(curves)
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button(
        "Download curves (CSV)",
        curves.sort(["arm", "seed", "step"]).select(cols).write_csv(),
        file_name="curves.csv",
        mime="text/csv",
        key="compare.dl_curves",
    )
    if summary is not None:
        c2.download_button(
            "Download summary (JSON)",
            json.dumps(summary_json(summary), indent=2),
            file_name="summary.json",
            mime="application/json",
            key="compare.dl_summary",
        )
    cid = st.session_state.get("compare.comparison")
    if st.session_state.get("compare.source") == "A comparison" and cid:
        spec = (ws.load_comparison(cid) or {}).get("spec")
        if spec:
            c3.download_button(
                "Download the spec (JSON)",
                json.dumps(spec, indent=2),
                file_name=f"{cid}-spec.json",
                mime="application/json",
                key="compare.dl_spec",
                help="Rerun it headless, e.g. with more seeds: python -m delt_engine compare --spec "
                "FILE --workspace WORKSPACE (paths in it point into this workspace)",
            )
    if summary is not None and summary["forgetting"]:
        c4.download_button(
            "Download forgetting (CSV)",
            forgetting.forgetting_frame(summary["forgetting"]).write_csv(),
            file_name="forgetting.csv",
            mime="text/csv",
            key="compare.dl_forgetting",
        )


def main() -> None:
    st.title("Compare")
    st.caption("Same data, different orders: did the ordering matter more than the seed?")
    ws = Workspace(ROOT)
    damaged.panel(ROOT, ("run", "comparison"), key="compare.damaged")
    try:
        curves = pick_source(ws)
    except DeltError as exc:  # nothing recorded yet: information, not a failure
        st.info(md(exc))
        return
    if curves is None:
        return
    metric, x, smoothing = controls(curves)
    run_curves(curves, metric, x, smoothing, stream_makeups(ws, curves, x))
    seed_bands(curves, metric, smoothing)
    summary = summary_panel(curves)
    group_section(curves, summary, x, smoothing)
    lm_eval_section(ws, curves)
    downloads(ws, curves, summary)


main()
