"""Train: set up a comparison (orderings x seeds on the organised data), launch it as background jobs,
and watch the curves live. Closing the browser does not stop the runs; reopening shows them."""

from __future__ import annotations

import streamlit as st

from delt_engine.errors import DeltError
from delt_engine.jobs.manager import group_default
from delt_engine.models.presets import PRESETS
from delt_engine.organize.configs import describe_selection
from delt_engine.organize.registry import LAYERED, ORDERINGS, SELECTIONS
from delt_engine.training import metrics
from delt_engine.training.config import PACKED_BY_DEFAULT
from delt_engine.workspace.layout import Workspace
from ui import comparisons, damaged, datasets, figures, groups, jobs, live, presets, scores, state, widgets
from ui.safe import md

state.require_app("train")
ROOT = state.workspace_root()
# Training rows: the preset's default, or forced either way (RunConfig.packing)
ROWS = {"preset default": None, "packed": True, "one document per row": False}


def selection_choice() -> dict | None:
    """The selection set on the Organize page (None: keep every document), in the spec format."""
    method = st.session_state["organize.method"]
    if method not in SELECTIONS:
        return None
    param = SELECTIONS[method].params[0]  # validated when the comparison is launched (the error names it)
    value = st.session_state[f"organize.{param}"]
    return {"method": method, param: int(value) if param == "k" else float(value)}


def dedup_choice() -> dict | None:
    """The duplicate removal set on the Organize page (None: keep duplicates)."""
    ss = st.session_state
    mode = ss["organize.dedup"]
    if mode == "edit":
        return {"mode": mode, "threshold": float(ss["organize.dedup_edit_threshold"])}
    if mode != "near":
        return None if mode == "none" else {"mode": mode}
    return {"mode": mode, "ngram": int(ss["organize.dedup_ngram"]), "threshold": float(ss["organize.dedup_threshold"])}


def default_score(done: dict) -> None:
    """The score to organise by: the user's pick here, on Organize or on Score, else LQS, PDS or the newest."""
    from delt_engine.workspace.scorings import preferred_method

    methods = list(done)
    picked = next((st.session_state[k] for k in ("organize.score", "score.view") if state.user_chose(k, methods)), None)
    state.default_choice("train.score", methods, picked or preferred_method(done))


def eval_caption() -> None:
    """What the comparison evaluates on: an imported dataset has only the target set and benchmark it was given."""
    if st.session_state["data.dataset"] == datasets.DEMO:
        return
    paths = datasets.eval_paths(ROOT, st.session_state["data.dataset"])
    used = [
        what
        for key, what in (
            ("target", "target loss on this dataset's target set"),
            ("benchmark", "benchmark accuracy on its benchmark"),
        )
        if paths[key]
    ]
    missing = [
        what
        for key, what in (
            ("target", "target loss (it has no target set)"),
            ("benchmark", "benchmark accuracy (it has no benchmark)"),
        )
        if not paths[key]
    ]
    text = "Validation loss uses a held-out 5% of this dataset" + "".join(f"; {u}" for u in used) + "."
    if not missing:
        st.caption(text)
        return
    st.info(
        f"{text} This comparison will report no {' and no '.join(missing)}: the demo's fictional-world ones "
        'say nothing about your data. To get them, set your own on the Data page ("Target set and benchmark '
        'for this dataset") before launching.'
    )


def setup_form(frame, done: dict) -> None:
    st.subheader("Set up a comparison")
    default_score(done)
    methods = list(done)
    c1, c2, c3, c4 = st.columns([2, 3, 1, 1])
    c1.selectbox(
        "Organise by score",
        methods,
        key="train.score",
        persist_state="session",
        on_change=state.mark_chosen,
        args=("train.score",),
    )
    state.ensure_choice("train.orderings", list(ORDERINGS), multi=True)
    c2.multiselect("Orderings (arms)", ORDERINGS, key="train.orderings", persist_state="session")
    c3.number_input("Seeds per arm", 1, 10, key="train.seeds", persist_state="session")
    c4.number_input("First seed", 0, 100_000, key="train.first_seed", persist_state="session")
    sel = selection_choice()
    dedup = dedup_choice()
    st.caption(
        "Selection from Organize: "
        + (f"**{describe_selection(sel)}**" if sel else "none (all documents)")
        + (f" after dropping **{dedup['mode']} duplicates**" if dedup else "")
        + f" · {'/'.join(LAYERED)} L = {st.session_state['organize.layers']}"
        + (
            f" · window shuffle w = {st.session_state['organize.window']}"
            if st.session_state["organize.window"]
            else ""
        )
    )
    budget_form()
    tracker_form()
    group_form(frame)
    eval_caption()
    arms = st.session_state["train.orderings"]
    n_runs = len(arms) * int(st.session_state["train.seeds"])
    at_once = jobs.max_jobs()
    slots = "one process" if at_once == 1 else f"{at_once} processes at a time (DELT_MAX_JOBS)"
    pace = (
        f"trained together in {slots} (DELT_GROUP_TRAINING=0 trains them one by one)"
        if group_default()
        else "one at a time"
        if at_once == 1
        else f"{at_once} at a time (DELT_MAX_JOBS)"
    )
    st.caption(
        f"{n_runs} runs ({len(arms)} arms × {st.session_state['train.seeds']} seeds), {pace}, "
        f"each with the same budget: {budget_text()}."
    )
    if problem := jobs.max_jobs_problem():
        st.warning(problem)
    if st.button("Launch comparison", key="train.launch", type="primary", disabled=not arms):
        launch(frame, done[st.session_state["train.score"]], sel, arms, dedup)


def budget_form() -> None:
    c1, c2, c3, c4, c5, c6 = st.columns([3, 2, 2, 2, 2, 2])
    c1.selectbox(
        "Model preset",
        list(PRESETS),
        key="train.model",
        persist_state="session",
        help="; ".join(f"{k}: {p.note}" for k, p in PRESETS.items()),
    )
    c2.selectbox(
        "Budget in",
        ("epochs", "steps", "tokens"),
        key="train.budget_kind",
        persist_state="session",
        help="epochs: every arm sees all of the (selected) data once per epoch, so the whole ordering "
        "is trained on and every arm gets exactly the same tokens. steps/tokens cut runs short.",
    )
    if st.session_state["train.budget_kind"] == "epochs":
        c3.number_input("Epochs (budget)", 1, 100, key="train.max_epochs", persist_state="session")
    elif st.session_state["train.budget_kind"] == "steps":
        c3.number_input("Steps (budget)", 1, 1_000_000, key="train.max_steps", persist_state="session")
    else:
        c3.number_input("Tokens (budget)", 1, 10**12, step=1000, key="train.max_tokens", persist_state="session")
    c4.number_input("Batch size", 1, 1024, key="train.batch_size", persist_state="session")
    c5.number_input(
        "Evaluate every (steps)",
        1,
        100_000,
        key="train.eval_every",
        persist_state="session",
        help="Held-out losses and benchmarks; also once before the first step (the untrained "
        "model, the same for every ordering of a seed) and after the last",
    )
    c6.number_input("Peak learning rate", 1e-5, 1.0, format="%.4f", key="train.lr", persist_state="session")
    c1, c2 = st.columns([3, 9])
    if st.session_state.get("train.rows") not in ROWS:
        st.session_state["train.rows"] = "preset default"
    packed = PACKED_BY_DEFAULT.get(st.session_state["train.model"], True)
    c1.selectbox(
        "Training rows",
        list(ROWS),
        key="train.rows",
        persist_state="session",
        help="packed: documents concatenated in their order (EOS between them) and cut into full rows "
        "of 128 tokens, as the paper trains: no padding, every step the same number of tokens, "
        "~2x the tokens per second on a CPU. One document per row: padded to the longest row of "
        f"its batch. The preset default for {st.session_state['train.model']} is "
        f"{'packed' if packed else 'one document per row'}.",
    )
    c2.checkbox(
        "Keep each trained model",
        key="train.save_model",
        persist_state="session",
        help="Saves every finished run's model and tokenizer to workspace/runs/<run>/model/ (safetensors); "
        "usable as a model directory for scoring or further training",
    )


def tracker_form() -> None:
    """Trackers every run also logs to live (report_to): TensorBoard event files and an MLflow file store."""
    from delt_engine.jobs import trackers

    st.session_state.setdefault("train.report_to", [])
    c1, c2 = st.columns([1, 3])
    chosen = c1.multiselect(
        "Also log to",
        list(trackers.REPORT_TO_CHOICES),
        key="train.report_to",
        persist_state="session",
        help="Every run also sends its metrics, as it records them, to "
        "TensorBoard and/or MLflow (metrics.jsonl stays the record). Needs the trackers extra: "
        "pip install 'delt-studio[trackers]'",
    )
    if missing := trackers.missing_packages(chosen):
        c2.warning(
            md(
                f"Not installed: {', '.join(missing)}; runs would fail at start. Install them with "
                f"{trackers.INSTALL_HINT}, or clear this choice."
            )
        )
    elif chosen:
        where = {
            "tensorboard": f"TensorBoard: tensorboard --logdir {ROOT / 'runs'}",
            "mlflow": f"MLflow: the file store {ROOT / trackers.MLRUNS}, experiment = the comparison id "
            "(docs/ecosystem.md says how to open it)",
        }
        c2.caption(md(" · ".join(where[name] for name in chosen)))


def tracker_settings() -> dict:
    """``report_to`` for the spec's train settings (left out when no tracker is chosen)."""
    chosen = list(st.session_state.get("train.report_to") or [])
    return {"report_to": chosen} if chosen else {}


def group_form(frame) -> None:
    """The metadata column every run is also evaluated by (validation and target loss per group)."""
    choices = groups.options(frame)
    groups.ensure_choice(
        "train.group_by", choices, st.session_state["data.dataset"], preferred=st.session_state.get("organize.group_by")
    )
    c1, c2 = st.columns([1, 3])
    c1.selectbox(
        "Evaluate by group",
        choices,
        key="train.group_by",
        persist_state="session",
        help="Every evaluation also records the validation and target loss of each value of this column "
        "(from the same forward pass), and the Train and Compare pages show the training stream's "
        "make-up by it: what each ordering showed the model when, and what it forgot.",
    )
    column = groups.column(st.session_state["train.group_by"])
    c2.caption(
        f"Loss by **{column}** at every evaluation, and the share of each {column} in every window of "
        f"training. {groups.POOLING}"
        if column
        else "No evaluation by group: pick a metadata column to see each group's loss and the stream's make-up."
    )


def rows_choice() -> bool | None:
    """The form's RunConfig.packing: True, False, or None for the preset's default."""
    return ROWS.get(st.session_state.get("train.rows"))


def packed_rows() -> bool:
    """Whether the runs will train on packed rows (the choice, else the preset's default)."""
    choice = rows_choice()
    return PACKED_BY_DEFAULT.get(st.session_state["train.model"], True) if choice is None else choice


def budget_text() -> str:
    ss = st.session_state
    if ss["train.budget_kind"] == "epochs":
        n = int(ss["train.max_epochs"])
        return f"{n} full pass{'es' if n > 1 else ''} over the data (identical tokens for every ordering)"
    if ss["train.budget_kind"] == "tokens":
        return f"{int(ss['train.max_tokens']):,} real (non-padding) tokens"
    unit = "packed rows of 128 tokens" if packed_rows() else "documents"
    return f"{int(ss['train.max_steps']):,} steps of {int(ss['train.batch_size'])} {unit}"


def train_settings() -> dict:
    """RunConfig fields from the form (the same for every arm: a matched budget by construction)."""
    ss = st.session_state
    kind = ss["train.budget_kind"]
    budget = (
        {"epochs": int(ss["train.max_epochs"])}
        if kind == "epochs"
        else {"tokens": int(ss["train.max_tokens"])}
        if kind == "tokens"
        else {"steps": int(ss["train.max_steps"])}
    )
    return {
        "model": ss["train.model"],
        **budget,
        "batch_size": int(ss["train.batch_size"]),
        "eval_every": int(ss["train.eval_every"]),
        "lr": float(ss["train.lr"]),
        "max_length": 128,
        "eval_max_samples": 128,
        "save_model": bool(ss["train.save_model"]),
        **tracker_settings(),
        **({} if rows_choice() is None else {"packing": rows_choice()}),
    }


def launch(frame, job, sel, arms: list[str], dedup: dict | None = None) -> None:
    ss, name = st.session_state, st.session_state["data.dataset"]
    try:
        corpus = comparisons.scored_corpus(ROOT, name, frame, job)
        orders = comparisons.orderings(arms, ss["organize.layers"], ss["organize.descending"], ss["organize.window"])
        spec = comparisons.build_spec(
            f"{name}-{job.method}",
            corpus,
            job,
            datasets.eval_paths(ROOT, name),
            sel,
            orders,
            ss["train.seeds"],
            train_settings(),
            ss["train.first_seed"],
            dedup,
            groups.column(ss["train.group_by"]),
        )
        token = comparisons.start(spec, ROOT)
    except (DeltError, OSError) as exc:
        st.error(md(f"Could not launch: {exc}"))
        return
    comparisons.follow(token)
    ss["train.launched_with"] = launched_with(ss)
    st.rerun()


def launched_with(ss) -> str:
    """The settings a launch used, in words: a field left red (out of range) keeps its last valid value,
    so the user sees what really runs."""
    train = train_settings()
    budget = next(f"{train[k]:,} {k}" for k in ("epochs", "steps", "tokens") if k in train)
    first, n = int(ss["train.first_seed"]), int(ss["train.seeds"])
    seeds = f"seed {first}" if n == 1 else f"seeds {first}-{first + n - 1}"
    return (
        f"Last launch: model {train['model']}, {budget}, batch {train['batch_size']}, peak learning rate "
        f"{train['lr']:g}, evaluation every {train['eval_every']:,} steps, {seeds}."
    )


def preparation_status() -> None:
    launched = st.session_state.get("train.launched_with")  # kept: the fragment reruns every second
    if launched:
        st.caption(md(launched))
    for prep in comparisons.registry().active():
        st.progress(prep.fraction, text=md(f"Preparing {prep.name}: {prep.message}"))
    token = st.session_state.get(state.PREP_TOKEN)
    prep = comparisons.registry().get(token) if token else None
    if prep and prep.state == "failed":
        st.error(md(f"Preparing {prep.name} failed: {prep.error}"))
        if st.session_state.get(state.PREP_APPLIED) != token:  # once: the full rerun stops the polling
            st.session_state[state.PREP_APPLIED] = token
            st.rerun()
    if prep and prep.comparison_id and st.session_state.get(state.PREP_APPLIED) != token:
        st.session_state[state.PREP_APPLIED] = token
        st.session_state["train.comparison"] = prep.comparison_id


def run_table(infos) -> None:
    for info in infos:
        loss = info.last_metrics.get("train_loss")
        label = f"{info.arm or info.ordering} · seed {info.seed}" + (f" · loss {loss:.3f}" if loss else "")
        widgets.job_row(
            info.dir,
            {"state": info.state, "error": info.error, "gpu": info.gpu, "where": info.where},
            label,
            key=f"train.cancel.{info.id}",
        )
    if any(not i.finished for i in infos):
        if st.button("Cancel all runs of this comparison", key="train.cancel_all"):
            for i in infos:
                if not i.finished:
                    jobs.cancel(i.dir)


def live_charts(infos) -> None:
    runs = [(i, live.run_records(i.dir)) for i in infos]
    top, bottom = [], []
    for info, records in runs:
        label, arm = f"{info.arm} s{info.seed}", info.arm or "run"
        top.append(figures.Series(label, *live.metric_series(records, "train_loss"), group=arm))
        bottom.append(figures.Series(label, *live.metric_series(records, "batch_score"), group=arm))
    if not any(len(s.x) for s in top):
        st.info("Waiting for the first training steps…")
        return
    try:
        makeups = groups.figure_makeups(groups.run_makeups([(i.arm or "run", i.dir) for i in infos]))
    except DeltError as exc:  # e.g. an ordered data file deleted since: the curves still show
        st.caption(md(f"No stream make-up: {exc}"))
        makeups = {}
    title = "Train loss (and mean score of each batch)" + (", and the stream's make-up per arm" if makeups else "")
    st.plotly_chart(
        figures.curves_with_trace(top, bottom, title=title, smoothing=0.6, makeups=makeups), key="train.chart.loss"
    )
    if makeups:
        st.caption(
            "Stream make-up: for each arm, the share of each group in every window of training steps "
            "(stacked to 100%; an arm with one ordering per seed shows the mean over seeds) and the "
            "window's mean score (dotted, right axis), on the same step axis as the loss above."
        )
    cols = st.columns(len(metrics.LIVE_METRICS))
    unmeasured = not_measured(infos)
    for col, metric in zip(cols, metrics.LIVE_METRICS):
        title = metrics.label(metric).capitalize()
        series = [figures.Series(f"{i.arm} s{i.seed}", *live.metric_series(r, metric), group=i.arm) for i, r in runs]
        with col:
            if metric in unmeasured:
                st.caption(f"{title}: not measured ({unmeasured[metric]})")
            elif any(len(s.x) for s in series):
                fig = figures.curves(series, title=title).update_layout(showlegend=False)  # legend: big chart
                st.plotly_chart(fig, key=f"train.chart.{metric}")
            else:
                st.caption(f"{title}: no evaluation yet")
    panels = groups.run_panels([(f"{i.arm} s{i.seed}", r) for i, r in runs])
    if panels:
        column = next((g for _, r in runs for rec in r for g in (rec.get("group_loss") or {})), "group")
        st.plotly_chart(
            figures.group_panels(panels, title=f"Validation loss by {column}, per run", x_title="step", y_title="loss"),
            key="train.chart.groups",
        )
        st.caption(f"One panel per {column}: a loss that falls and then rises is forgetting. {groups.POOLING}")


def not_measured(infos) -> dict[str, str]:
    """Evaluation metrics the runs cannot report (their config has no target set / benchmark), with why."""
    from delt_engine.fileio import read_json

    configs = [read_json(i.dir / "config.json", default={}) or {} for i in infos[:1]]
    if not configs:
        return {}
    why = {
        "target_loss": ("target", "this comparison has no target set"),
        "bench_acc": ("benchmark", "this comparison has no benchmark"),
    }
    return {metric: text for metric, (key, text) in why.items() if not configs[0].get(key)}


def live_panel() -> None:
    ws = Workspace(ROOT)
    cmps = ws.list_comparisons()[::-1]
    ids = [c["id"] for c in cmps]
    selected = (
        st.session_state.get("train.comparison")
        if st.session_state.get("train.comparison") in ids
        else (ids[0] if ids else None)
    )
    busy = bool(comparisons.registry().active()) or (
        selected is not None and any(not i.finished for i in ws.list_runs(comparison=selected))
    )

    @st.fragment(run_every=1.0 if busy else None)
    def panel() -> None:
        preparation_status()
        all_ids = [c["id"] for c in Workspace(ROOT).list_comparisons()[::-1]]
        if not all_ids:
            st.info("No comparison yet: set one up above and press Launch.")
            return
        state.ensure_choice("train.comparison", all_ids)
        cid = st.selectbox("Comparison", all_ids, key="train.comparison", persist_state="session")
        infos = Workspace(ROOT).list_runs(comparison=cid)
        run_table(infos)
        live_charts(infos)
        widgets.rerun_when_finished("train", {i.id: i.state for i in infos})

    st.subheader("Runs")
    panel()
    damaged.panel(ROOT, ("run", "comparison"), key="train.damaged")


def main() -> None:
    st.title("Train")
    st.caption("Train small causal LMs on the same data in different orders; curves update live.")
    loaded = scores.dataset_with_scores_or_explain(
        ROOT,
        st.session_state["data.dataset"],
        "Score the dataset first (any scorer; length takes seconds), then come back to launch a comparison.",
    )
    if loaded is None:
        return
    if loaded[1]:
        setup_form(*loaded)
        presets.panel("train", *loaded)
    st.divider()
    live_panel()


main()
