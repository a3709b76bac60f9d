"""Learn: a guided tour for teaching. What data efficacy is, what LQS and folding do (with a live
folding illustration from the engine), one-click scenarios that a link can restore, and a
"predict which ordering wins" prompt before the results are revealed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import streamlit as st

from delt_engine.errors import DeltError
from delt_engine.experiments import forgetting
from delt_engine.experiments.summary import summarize
from delt_engine.training import metrics
from delt_engine.workspace.layout import Workspace
from ui import figures, groups, scenarios, scores, state
from ui import presets as ui_presets
from ui.safe import md

state.require_app("learn")
ROOT = state.workspace_root()
UNRESOLVED = "not resolved with these seeds"  # the prediction that no ordering wins clearly


def intro() -> None:
    st.header("1 · Data efficacy")
    st.markdown(
        "Most work on training data asks **which** samples to keep (data *efficiency*: train on less). "
        "DELT (*Data Efficacy for Language Model Training*, Dai et al. 2025) also asks **in what order** "
        "the model should see them (data *efficacy*: the same data, better organised). It has three steps:\n\n"
        "1. **Scoring** gives every sample one number, higher = better.\n"
        "2. **Selection** (optional) keeps the best: top-k, top-r (a ratio) or a threshold.\n"
        "3. **Ordering** decides the training stream: shuffle (the usual baseline), sorting "
        "(a curriculum) or **folding**.\n\n"
        "Training then reads the data exactly in that order: no reshuffling."
    )


def lqs() -> None:
    st.header("2 · Learnability-Quality Score (LQS)")
    st.markdown(
        "A small proxy model takes a few plain SGD steps on the corpus. At every Δ-th step, each sample's "
        "gradient is compared with the direction that would most improve the loss on a small **clean target "
        "set** (the co-state λ). A sample's contribution at step t factors into three readable parts:"
    )
    st.latex(
        r"c_{n,t} = \eta\;\underbrace{\lVert\lambda_{t+1}\rVert}_{\text{reliability}}\;"
        r"\underbrace{\cos(\lambda_{t+1}, g_{n,t})}_{\text{quality}}\;"
        r"\underbrace{\frac{\lVert g_{n,t}\rVert}{\lVert g_{n,t+\Delta}\rVert}}_{\text{learnability}}"
        r"\qquad \mathrm{LQS}_n = \sum_t c_{n,t}"
    )
    st.markdown(
        "High LQS: the sample pulls the model towards the target *and* the model can learn it (its gradient "
        "shrinks). The Score page shows these factors step by step for any sample."
    )


def folding_demo() -> None:
    from delt_engine.organize.ordering import layout

    st.header("3 · Folding ordering")
    st.markdown(
        "Sort the samples by score (ascending), then deal them into **L layers** like cards: position p goes "
        "to layer p mod L. Training reads layer 1, then 2, …: each layer is a gentle easy → hard ramp, "
        "so the model revisits the whole range L times instead of seeing the hard samples only at the end."
    )
    c1, c2, c3 = st.columns(3)
    layers = c1.slider("Layers L", 1, 6, key="learn.layers", persist_state="session")
    n = c2.slider("Samples", 6, 60, key="learn.n_docs", persist_state="session")
    seed = c3.number_input("Seed", 0, 10_000, key="learn.seed", persist_state="session")
    scores = np.round(np.random.default_rng(int(seed)).random(n), 2)
    frame = pl.DataFrame({"id": [f"s{i}" for i in range(n)], "score": scores})
    views = {
        (f"folding L={layers}" if m == "folding" else m): layout(frame, m, layers=layers, seed=int(seed))
        for m in ("shuffle", "sorting", "folding")
    }
    folded = views[f"folding L={layers}"]
    rank = np.empty(n, dtype=int)
    rank[np.argsort(scores, kind="stable")] = np.arange(n)
    st.caption("Folding, as ranks from easiest (0) to hardest: " + " · ".join(str(rank[i]) for i in folded.order))
    st.plotly_chart(
        figures.ordering_grid(
            {name: (lay.scores, lay.layer_starts) for name, lay in views.items()},
            batch_size=max(2, n // 10),
            title="Score against training position",
        ),
        key="learn.folding",
    )


def presets() -> None:
    st.header("4 · Try a scenario")
    st.markdown(
        "Each button sets every page's knobs (and the page URL, seed included: share the link to give "
        "someone the exact same set-up). Then go through **Score → Organize → Train**."
    )
    for sc in scenarios.SCENARIOS.values():
        with st.container(border=True):
            c1, c2 = st.columns([4, 1])
            c1.markdown(f"**{sc.title}**  \n{sc.story}")
            c2.button("Use this", key=f"learn.preset.{sc.name}", on_click=scenarios.apply, args=(sc.name,))
    applied = st.session_state.get(state.SCENARIO_APPLIED)
    if applied:
        st.success(
            f"Active scenario: **{scenarios.SCENARIOS[applied[0]].title}** (seed {applied[1]}). Next: score the data."
        )
        st.page_link("pages/score.py", label="Go to Score", icon=":material/insights:")
    st.markdown(
        "Or run the paper's own experiments on the demo as one comparison each (they organise by LQS, so "
        "score the demo with LQS first); what this small setting found so far is in section 7."
    )
    loaded = scores.dataset_with_scores_or_explain(
        ROOT, st.session_state["data.dataset"], "Score the dataset first to launch the paper's experiments."
    )
    if loaded is not None:
        ui_presets.panel("learn", *loaded)


def latest_comparison() -> tuple[str, pl.DataFrame, dict] | None:
    """(id, curves, summary) of the newest comparison whose runs have all finished (None when there is none)."""
    ws = Workspace(ROOT)
    for manifest in ws.list_comparisons()[::-1]:
        runs = ws.list_runs(comparison=manifest["id"])
        if runs and all(r.state == "done" for r in runs):
            try:
                curves = ws.comparison_curves(manifest["id"])
                return manifest["id"], curves, summarize(curves, baseline=manifest.get("baseline"))
            except DeltError:
                continue
    return None


def latest_summary() -> dict | None:
    """The summary of the newest comparison whose runs have all finished (None when there is none)."""
    found = latest_comparison()
    return found[2] if found else None


def predict() -> None:
    st.header("5 · Predict, then reveal")
    st.markdown("Before you look at the curves: which ordering will reach the **lowest target loss**?")
    options = ["shuffle", "sorting", "folding", UNRESOLVED]
    if st.session_state.get("learn.prediction") not in options:
        st.session_state["learn.prediction"] = None  # no answer is pre-selected
    guess = st.radio("My prediction", options, key="learn.prediction", persist_state="session", horizontal=True)
    if st.button("Lock in and reveal", key="learn.reveal", disabled=guess is None):
        st.session_state[state.PREDICTION] = guess
    locked = st.session_state.get(state.PREDICTION)
    if not locked:
        return
    summary = latest_summary()
    if summary is None:
        st.info(
            f"Your prediction, **{locked}**, is locked in. No comparison has finished yet: run a scenario "
            "(Train → Launch), then come back here."
        )
        return
    reveal(summary, locked)


def reveal(summary: dict, locked: str) -> None:
    metric = "target_loss" if "target_loss" in summary["metrics"] else summary["metrics"][0]
    means = {
        arm: info[metric]["mean"]
        for arm, info in summary["arms"].items()
        if info.get(metric, {}).get("mean") is not None
    }
    best = min(means, key=means.get) if metrics.lower_is_better(metric) else max(means, key=means.get)
    verdicts = [v for v in summary["verdicts"] if v.metric == metric]
    noise = bool(verdicts) and all(v.verdict == "unresolved" for v in verdicts)
    right = (locked == UNRESOLVED and noise) or (not noise and best.split()[0] == locked)
    (st.success if right else st.warning)(
        f"You predicted **{md(locked)}**. Lowest {metrics.label(metric)}: **{md(best)}** ({means[best]:.4f})."
        + (" None of the gaps is resolved with these seeds." if noise else "")
    )
    for v in verdicts:
        st.caption(md(v.text))
    st.page_link("pages/compare.py", label="See the curves on Compare", icon=":material/compare_arrows:")


def why() -> None:
    """Section 6: the newest finished comparison explained by group (forgetting) and by its stream's make-up
    (distribution bias), in words computed from its runs."""
    st.header("6 · Why did it win or lose?")
    st.markdown(
        "The paper gives two reasons why the order of the data matters. **Forgetting**: what the model "
        "learned early fades when the stream moves on to other data. **Distribution bias**: a sorted stream "
        "shows one kind of data at a time. A comparison evaluated *by group* (the demo: by kind of document) "
        "shows both: each kind's loss over training, and what each ordering fed the model when."
    )
    if not st.session_state.get(state.PREDICTION):
        st.caption("Lock in a prediction above first: this section explains the result.")
        return
    found = latest_comparison()
    if found is None or not found[2]["forgetting"]:
        st.info(
            "No finished comparison was evaluated by group yet. Comparisons on the demo are (Train → Evaluate "
            "by group: kind); run one, then come back."
        )
        return
    cid, curves, summary = found
    set_name = "validation" if any(e["set"] == "validation" for e in summary["forgetting"]) else "target"
    column = next(e["column"] for e in summary["forgetting"] if e["set"] == set_name)
    bands = forgetting.group_bands(curves, set_name)
    st.plotly_chart(
        figures.group_panels(
            groups.band_panels(bands),
            title=f"{set_name.capitalize()} loss by {column} in comparison {cid} (mean ± 95% interval across seeds)",
            x_title="step",
        ),
        key="learn.groups",
    )
    st.markdown("**What the groups say.**")
    for sentence in forgetting.explain_groups(summary, set_name):
        st.markdown(f"- {sentence}")
    try:
        makeups = groups.run_makeups(
            [
                (arm, Workspace(ROOT).root / "runs" / run)
                for run, arm in curves.select("run", "arm").unique(maintain_order=True).iter_rows()
            ]
        )
    except DeltError:
        makeups = {}
    if makeups:
        from delt_engine.organize.makeup import describe_makeup

        st.markdown("**What each ordering fed the model.**")
        for arm, frame in makeups.items():
            st.markdown(f"- {describe_makeup(frame, arm)}")
        top, bottom = (
            [
                figures.Series(f"{arm} s{seed}", part["step"].to_list(), part[m].to_list(), group=arm)
                for (run, arm, seed), part in curves.filter(pl.col(m).is_not_null())
                .sort("step")
                .group_by(["run", "arm", "seed"], maintain_order=True)
            ]
            for m in ("train_loss", "batch_score" if "batch_score" in curves.columns else "train_loss")
        )
        st.plotly_chart(
            figures.curves_with_trace(
                top,
                bottom if "batch_score" in curves.columns else [],
                title="Train loss and the stream's make-up per arm",
                top_title="train loss",
                smoothing=0.6,
                makeups=groups.figure_makeups(makeups),
            ),
            key="learn.makeup",
        )
    st.caption(
        "Read the panels with the make-up: a kind whose loss climbs while the stream holds little of it is "
        "being forgotten; a kind that an ordering shows only late has had few steps to be learned. The same "
        "numbers are in `python -m delt_engine runs report " + cid + "` (and `runs export`)."
    )


PAPER_RESULT = Path(__file__).resolve().parents[1] / "assets" / "paper_ablation.json"


def paper() -> None:
    """Section 7: the paper's ordering ablation and folding sweep next to what bench/paper_ablation.py measured
    on the demo (assets/paper_ablation.json), with its verdicts."""
    st.header("7 · The paper's result, at this scale")
    if not PAPER_RESULT.is_file():
        st.caption("Run `python bench/paper_ablation.py` to measure the paper's ablation on the demo.")
        return
    result = json.loads(PAPER_RESULT.read_text(encoding="utf-8"))
    st.markdown(md(result["setting"]))
    rows = []
    for row in result["arms"]:
        cells = {"arm": row["arm"], "paper: avg accuracy (%)": row.get("paper_acc")}
        for metric, name in (("target_loss", "target loss"), ("bench_acc_norm", "acc_norm")):
            mean, ci = row.get(metric), row.get(f"{metric}_ci")
            cells[f"demo: {name}"] = "-" if mean is None else f"{mean:.4f} ± {ci or 0:.4f}"
            cells[f"{name} vs shuffle"] = row.get(f"{metric}_verdict", "baseline")
        rows.append(cells)
    st.dataframe(pl.DataFrame(rows), hide_index=True, key="learn.paper")
    for line in result["meaning"]:
        st.markdown(f"- {md(line)}")


def main() -> None:
    st.title("Learn")
    st.caption("A 10-minute guided tour: the idea, the score, the ordering, then an experiment of your own.")
    intro()
    lqs()
    folding_demo()
    presets()
    predict()
    why()
    paper()


main()
