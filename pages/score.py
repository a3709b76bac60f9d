"""Score: run scorers as background jobs, then look at the scores (distributions, LQS data map,
per-sample explanation, top/bottom samples, scorer agreement)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from delt_engine.errors import ConfigError, DeltError
from delt_engine.experiments.holdout import EVAL_TARGET_FRACTION
from delt_engine.models.presets import PRESETS
from delt_engine.scoring import SCORERS, cost
from delt_engine.scoring import agreement as score_agreement
from delt_engine.scoring.lqs_config import CHECKPOINTS, FINAL_NORMS, LQSConfig
from delt_engine.workspace import scorings
from delt_engine.workspace.scorings import latest_done, list_scorings, preferred_method
from ui import damaged, datasets, figures, jobs, scores, state, widgets
from ui.safe import md

state.require_app("score")
ROOT = state.workspace_root()
DIRECTION = {"higher_better": "higher = better", "higher_harder": "higher = harder"}
MODEL_BASED = tuple(n for n, info in SCORERS.items() if info.needs_model)
GRADIENT = tuple(n for n, info in SCORERS.items() if info.cost == "gradient")  # LQS's settings; one job together
NEEDS_TARGET = tuple(n for n, info in SCORERS.items() if info.needs_target)
PRECISIONS = {"float32": "float32 (exact)", "bfloat16": "bfloat16 (faster)"}


def proxy_model() -> str:
    """The local model folder when one is given, else the preset."""
    return st.session_state.get("score.model_dir", "").strip() or st.session_state["score.model"]


def knobs(methods: list[str]) -> dict:
    """Widgets for the settings the chosen methods use; returns the job config fields."""
    cfg: dict = {"seed": int(st.session_state["score.seed"])}
    if any(m in MODEL_BASED for m in methods):
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.selectbox(
            "Proxy model",
            list(PRESETS),
            key="score.model",
            persist_state="session",
            help="; ".join(f"{k}: {p.note}" for k, p in PRESETS.items()),
        )
        c2.number_input("Max tokens per sample", 8, 2048, step=8, key="score.max_length", persist_state="session")
        c3.number_input("Batch size", 1, 512, key="score.batch_size", persist_state="session")
        c4.number_input("Seed", 0, 10_000, key="score.seed", persist_state="session")
        c5.number_input(
            "Warm-up steps",
            0,
            100_000,
            key="score.warmup_steps",
            persist_state="session",
            help="Steps of training on this corpus before scoring (perplexity, LQS, PDS), so scores "
            "come from a model that has seen the data, not from random weights; 0 = score "
            "with the model as it is (e.g. a trained model folder)",
        )
        st.text_input(
            "…or a local model folder (Hugging Face format, safetensors), used instead of the preset",
            key="score.model_dir",
            persist_state="session",
            placeholder="workspace/runs/<run>/model (a run kept with 'Keep each trained model')",
        )
        if widgets.device_kind() == "cuda":
            st.radio(
                "Precision on the GPU",
                PRECISIONS,
                key="score.precision",
                horizontal=True,
                persist_state="session",
                format_func=PRECISIONS.get,
                help="bfloat16 autocast: faster; on an H200 it changed perplexities by at most 0.84% and "
                "ranked LQS like float32 (Spearman 0.9999). LQS sums and co-state stay float32.",
            )
        cfg.update(
            model=proxy_model(),
            max_length=int(st.session_state["score.max_length"]),
            batch_size=int(st.session_state["score.batch_size"]),
            seed=int(st.session_state["score.seed"]),
        )
    else:
        st.number_input("Seed", 0, 10_000, key="score.seed", persist_state="session")
    if any(m in GRADIENT for m in methods):
        st.caption("LQS / PDS: proxy SGD trajectory of T steps, contributions every Δ steps (delt-method §2).")
        c1, c2, c3 = st.columns(3)
        c1.number_input("T (proxy steps)", 1, 10_000, key="score.lqs_steps", persist_state="session")
        c2.number_input("Δ (steps between contributions)", 1, 10_000, key="score.lqs_delta", persist_state="session")
        c3.number_input(
            "η (SGD learning rate)", 1e-4, 10.0, format="%.4f", key="score.lqs_eta", persist_state="session"
        )
        d1, d2 = st.columns([3, 1])
        d1.checkbox(
            "Large corpus: score a random subset exactly, distil the rest (the paper's route)",
            key="score.distill",
            persist_state="session",
            help="A small regressor learns the exact scores of the subset (validation Spearman reported) "
            "and scores every other sample; each sample is marked exact or distilled",
        )
        d2.number_input(
            "Subset size",
            10,
            10_000_000,
            step=500,
            key="score.proxy_size",
            persist_state="session",
            disabled=not st.session_state["score.distill"],
        )
        advanced_lqs_knobs()
    return cfg


def advanced_lqs_knobs() -> None:
    """Memory/exactness settings of LQS/PDS that rarely need changing (the engine's defaults)."""
    with st.expander("Advanced LQS settings (memory, checkpoints, last-step norm)"):
        a1, a2, a3 = st.columns(3)
        a1.number_input(
            "Chunk size (0 = by device: 16 CPU, 64 GPU)",
            0,
            4096,
            key="score.chunk_size",
            persist_state="session",
            help="Samples per per-sample-gradient pass; lower it if scoring runs out of memory. "
            "Scores do not depend on it.",
        )
        a2.selectbox(
            "Parameter checkpoints",
            CHECKPOINTS,
            key="score.checkpoint",
            persist_state="session",
            help="every: keep the parameters of every proxy step; delta: keep every Δ-th and replay "
            "(T/Δ times less memory); auto: every while it fits in 1 GiB",
        )
        a3.selectbox(
            "Last step's denominator",
            FINAL_NORMS,
            key="score.final_norm",
            persist_state="session",
            help="paper: the sample's gradient norm at θ_T; reference: 1, as the public reference code",
        )


def options_for(method: str) -> dict:
    bf16 = widgets.device_kind() == "cuda" and st.session_state["score.precision"] == "bfloat16"
    if method in GRADIENT:
        return {
            "steps": int(st.session_state["score.lqs_steps"]),
            "delta": int(st.session_state["score.lqs_delta"]),
            "eta": float(st.session_state["score.lqs_eta"]),
            "warmup_steps": int(st.session_state["score.warmup_steps"]),
            **(
                {"proxy_size": int(st.session_state["score.proxy_size"]), "distill": True}
                if st.session_state["score.distill"]
                else {}
            ),
            **({"dtype": "bfloat16"} if bf16 else {}),
            **advanced_options(),
        }
    if method in MODEL_BASED:  # a proxy model's scorer (perplexity, or one added to the registry)
        return {"warmup_steps": int(st.session_state["score.warmup_steps"]), **({"bf16": True} if bf16 else {})}
    return {}


def advanced_options() -> dict:
    """The advanced LQS settings that differ from the engine's defaults."""
    ss, out = st.session_state, {}
    if int(ss["score.chunk_size"]) > 0:
        out["chunk_size"] = int(ss["score.chunk_size"])
    for key in ("checkpoint", "final_norm"):
        if ss[f"score.{key}"] != getattr(LQSConfig, key):  # the dataclass field's default
            out[key] = ss[f"score.{key}"]
    return out


def target_docs() -> int:
    """Documents in the dataset's target set (LQS/PDS take grad J over all of them at every step)."""
    path = datasets.eval_paths(ROOT, st.session_state["data.dataset"]).get("target")
    if not path or not Path(path).is_file():
        return 0
    with open(path, "rb") as fh:
        # LQS/PDS aim at the scoring part of the target set (about half of it; see experiments.holdout)
        return round(sum(1 for line in fh if line.strip()) * (1 - EVAL_TARGET_FRACTION))


def job_groups(methods: list[str]) -> list[list[str]]:
    """The jobs to start: LQS and PDS chosen together are one job (one proxy trajectory gives both),
    every other method a job of its own."""
    gradient = [m for m in GRADIENT if m in methods]  # LQS first: the job's folder and row carry its name
    groups, placed = [], False
    for m in methods:
        if m not in GRADIENT:
            groups.append([m])
        elif not placed:
            groups.append(gradient)
            placed = True
    return groups


def estimates(methods: list[str], frame: pl.DataFrame) -> None:
    words = datasets.word_counts(frame)
    mean_tokens = min(float(words.mean() or 0) * 1.3 + 1, float(st.session_state["score.max_length"]))
    device = widgets.device_kind()
    rows = []
    for group in job_groups(methods):
        m = group[0]
        e = cost.estimate(
            m,
            frame.height,
            mean_tokens,
            proxy_model(),
            device,
            steps=int(st.session_state["score.lqs_steps"]),
            delta=int(st.session_state["score.lqs_delta"]),
            batch_size=int(st.session_state["score.batch_size"]),
            warmup_steps=int(st.session_state["score.warmup_steps"]) if m in MODEL_BASED else 0,
            target_docs=target_docs(),
            proxy_size=int(st.session_state["score.proxy_size"])
            if m in GRADIENT and st.session_state["score.distill"]
            else None,
            chunk_size=int(st.session_state["score.chunk_size"]),
            checkpoint=st.session_state["score.checkpoint"],
        )
        why = e.note + ("; one job: PDS comes from the same proxy run" if len(group) > 1 else "")
        rows.append(
            {
                "scorer": " + ".join(group),
                "time": cost.human_seconds(e.seconds),
                "memory": cost.human_bytes(e.memory_bytes),
                "why": why,
            }
        )
    st.caption(f"Rough estimate on {device} for {frame.height:,} documents (order of magnitude):")
    st.dataframe(pl.DataFrame(rows), hide_index=True, key="score.estimate")


def target_missing() -> bool:
    """The active dataset has no target set (an imported one without its own): LQS/PDS cannot run."""
    return not datasets.eval_paths(ROOT, st.session_state["data.dataset"]).get("target")


def launch_panel(frame: pl.DataFrame, corpus: Path) -> None:
    st.subheader("Run scorers")
    names = list(SCORERS)
    if target_missing():
        names = [n for n in names if n not in NEEDS_TARGET]
        st.warning(
            f"{' and '.join(m.upper() for m in NEEDS_TARGET)} are not available for this dataset: they "
            "score each document by how much it helps the model on a target set (clean text like what "
            f"you want it to get good at), and this dataset has none. To use them, {datasets.TARGET_HELP}."
        )
        st.page_link("pages/data.py", label="Go to Data", icon=":material/dataset:")
    state.ensure_choice("score.methods", names, multi=True)
    methods = st.multiselect(
        "Scorers",
        names,
        key="score.methods",
        persist_state="session",
        format_func=lambda n: f"{n} ({SCORERS[n].description})",
    )  # options: plain text
    if not methods:
        st.info("Pick at least one scorer (length is instant; LQS is the paper's).")
        return
    cfg = knobs(methods)
    estimates(methods, frame)
    if st.button("Start scoring", key="score.start", type="primary"):
        start_jobs(methods, cfg, corpus)


def start_jobs(methods: list[str], cfg: dict, corpus: Path) -> None:
    from delt_engine.experiments.holdout import target_part_files
    from delt_engine.workspace.scorings import create_score_job

    targets = datasets.eval_paths(ROOT, st.session_state["data.dataset"])
    model = cfg.get("model")
    if model and model not in PRESETS and not (Path(model).expanduser() / "config.json").is_file():
        st.error(
            md(
                f"Model folder {model} not found (or it has no config.json): give a Hugging Face model folder "
                "with safetensors weights, or clear the field to use the preset."
            )
        )
        return
    try:
        for group in job_groups(methods):
            config = {
                **cfg,
                "input": str(corpus),
                "method": group[0],
                "device": "auto",
                "options": options_for(group[0]),
                "cache_dir": str(ROOT / "cache"),
            }
            if len(group) > 1:
                config["methods"] = group
            if any(m in NEEDS_TARGET for m in group):
                if not targets["target"]:
                    raise ConfigError(f"{' and '.join(group)} need a target set; {datasets.TARGET_HELP}")
                # only the scoring part: comparisons measure target_loss on the other part, which LQS never saw
                config["target"] = str(target_part_files(targets["target"], ROOT / "cache" / "targets")[0])
            jobs.submit_score(create_score_job(ROOT / "scores", config))
    except (DeltError, OSError) as exc:
        st.error(md(f"Could not start scoring: {exc}"))
        return
    show_next(next((m for m in scorings.PREFERRED_METHODS if m in methods), methods[-1]))
    st.rerun()


def show_next(method: str) -> None:
    """Show ``method``'s scores once they exist (what the user just started or added), until they pick another."""
    st.session_state[state.JUST_SCORED] = method
    st.session_state.get(state.USER_CHOSEN, set()).discard("score.view")


def _n_documents(corpus: Path) -> int:
    """Documents in a dataset's corpus file (JSONL or Parquet), counted without loading the texts."""
    scan = pl.scan_parquet(corpus) if corpus.suffix == ".parquet" else pl.scan_ndjson(corpus)
    return int(scan.select(pl.len()).collect().item())


def import_panel(corpus: Path) -> None:
    """Scores made elsewhere (``python -m delt_engine score --output``, another tool) added as a finished job."""
    from delt_engine.workspace.score_import import import_scores

    note = st.session_state.pop("score.import_note", None)
    if note:
        st.warning(note)
    with st.expander("Add scores made elsewhere (a JSONL/Parquet file with id and score)"):
        st.caption(
            md(
                f"The ids must be this dataset's (its file: {corpus}); other columns are kept as components. "
                "From a terminal: python -m delt_engine import-scores --scores FILE --corpus "
                f"{corpus} --name NAME"
            )
        )
        upload = st.file_uploader("Scores file", type=["jsonl", "parquet"], key="score.import_file")
        path = st.text_input("…or a path on this machine", key="score.import_path")
        c1, c2 = st.columns(2)
        name = c1.text_input(
            "Name shown here",
            value="custom",
            key="score.import_name",
            help="Use lqs for a CLI LQS file to get the data map and per-step views",
        )
        direction = c2.selectbox("Direction", list(DIRECTION), format_func=DIRECTION.get, key="score.import_dir")
        if not st.button("Add scores", key="score.import"):
            return
        taken = latest_done(list_scorings(ROOT, corpus))
        if name.strip() in taken:
            st.error(
                md(
                    f"This dataset already has scores named {name.strip()!r}; adding these under the same name "
                    f"would hide them. Give these another name (e.g. {name.strip()}-2)."
                )
            )
            return
        try:
            source = Path(path).expanduser() if path.strip() else None
            if upload is not None:  # a file of its own, written atomically (see datasets.save_upload)
                source = datasets.save_upload(ROOT, upload.name, upload.getvalue())
            if source is None:
                st.info("Choose a file or give a path first.")
                return
            job = import_scores(ROOT / "scores", corpus, source, name=name.strip(), direction=direction)
            n_scored = pl.read_parquet(job / "scores.parquet").height
            n_docs = _n_documents(corpus)
            if n_docs and n_scored < n_docs:
                st.session_state["score.import_note"] = (
                    f"{name.strip()} scores {n_scored:,} of the {n_docs:,} documents; the others are left out "
                    "of selection and ordering by it."
                )
        except (DeltError, OSError, UnicodeDecodeError) as exc:
            st.error(md(f"Could not add the scores: {exc}"))
            return
        show_next(name.strip())
        st.rerun()


def jobs_panel(corpus: Path) -> None:
    """Live list of this dataset's scoring jobs (a fragment that polls only while one is active)."""
    active = any(jobs.is_active(j.status) for j in list_scorings(ROOT, corpus))

    @st.fragment(run_every=1.0 if active else None)
    def panel() -> None:
        listed = list_scorings(ROOT, corpus)[-6:][::-1]
        if not listed:
            return
        with st.container(border=True):
            st.caption("Scoring jobs (newest first)")
            for job in listed:
                widgets.job_row(job.dir, job.status, f"{job.method} · {job.id}", key=f"score.cancel.{job.id}")
        widgets.rerun_when_finished("score", {j.id: j.state for j in listed})

    panel()


def distribution(table: pl.DataFrame, method: str, cats: list[str]) -> None:
    opts = ["(none)"] + cats
    if st.session_state.get("score.color_by") not in opts or st.session_state.get(state.COLOR_DEFAULTED) is None:
        st.session_state[state.COLOR_DEFAULTED] = True  # first visit: clean vs noise is the telling split
        st.session_state["score.color_by"] = "is_noise" if "is_noise" in cats else opts[0]
    color_by = st.selectbox("Colour by", opts, key="score.color_by", persist_state="session")
    groups = datasets.group_labels(table, color_by) if color_by != "(none)" else None
    st.plotly_chart(
        figures.histogram(table[method].to_list(), groups, title=f"{method} score distribution", x_title=method),
        key="score.hist",
    )


def data_map(table: pl.DataFrame, method: str, cats: list[str]) -> None:
    q, l_ = f"{method}.quality", f"{method}.learnability"
    if q not in table.columns or l_ not in table.columns:
        return
    st.subheader("Data map: quality against learnability")
    st.caption(
        "Each point is a sample (hover for its text; click one to explain it below). Quality = Σ cos(λ, g), "
        "learnability = Σ ‖g_t‖ / ‖g_t+Δ‖."
    )
    color = st.session_state["score.color_by"]
    groups = datasets.group_labels(table, color) if color != "(none)" else None
    fig = figures.data_map(
        table[l_].to_list(), table[q].to_list(), table["text"].to_list(), groups, ids=table["id"].to_list()
    )
    event = st.plotly_chart(fig, key="score.map", on_select="rerun", selection_mode=("points",))
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if points and points[0].get("customdata") and points[0]["customdata"] != st.session_state.get(state.MAP_PICK):
        st.session_state[state.MAP_PICK] = points[0]["customdata"]
        st.session_state["score.sample"] = points[0]["customdata"]


def explanation(table: pl.DataFrame, method: str, job) -> None:
    lists = scorings.list_components(table, method)
    if not lists:
        return
    st.subheader("Why this score? Per-step LQS factors of one sample")
    ids = table.sort(method, descending=True)["id"].to_list()
    state.ensure_choice("score.sample", ids)
    sid = st.selectbox("Sample (sorted by score)", ids, key="score.sample", persist_state="session")
    row = table.filter(pl.col("id") == sid).row(0, named=True)
    left, right = st.columns([2, 3])
    with left:
        st.metric(f"{md(method)} score", f"{row[method]:.4g}")
        if row.get(f"{method}.exact_score") is not None:  # distilled scoring: every score is the regressor's
            st.caption(
                md(
                    f"Exact {method} {row[f'{method}.exact_score']:.4g}; the score above is the distilled "
                    "regressor's prediction, as for every sample, so exact and distilled samples share one "
                    "scale."
                )
            )
        meta = ", ".join(f"{k}={row[k]}" for k in ("kind", "is_noise", "difficulty") if k in row)
        st.caption(md(meta))
        st.text(row["text"][:1500])
    with right:
        comps = {c.split(".", 1)[1]: list(row[c] or []) for c in lists}
        n = max((len(v) for v in comps.values()), default=0)
        comps = {k: v for k, v in comps.items() if len(v) == n and n > 0}
        if comps:
            delta = int((job.config.get("options") or {}).get("delta", 10))  # as the job ran, not the widget
            st.plotly_chart(figures.step_components([i * delta for i in range(n)], comps), key="score.steps")
        elif row.get(f"{method}.source") == "distilled":
            st.info(
                "This sample's score is distilled (predicted by the regressor trained on the exactly scored "
                "subset), so it has no per-step factors; pick an exact sample to see them."
            )


def extremes(table: pl.DataFrame, method: str) -> None:
    st.subheader("Top and bottom samples")
    cols = ["id", method] + [c for c in ("kind", "is_noise", "difficulty") if c in table.columns] + ["text"]
    ranked = table.select(cols).drop_nulls(method).sort(method, descending=True)
    view = lambda f: f.with_columns(pl.col("text").str.slice(0, 140))  # noqa: E731
    left, right = st.columns(2)
    left.caption(f"Highest {md(method)}")
    left.dataframe(view(ranked.head(10)), hide_index=True, key="score.top")
    right.caption(f"Lowest {md(method)}")
    right.dataframe(view(ranked.tail(10).reverse()), hide_index=True, key="score.bottom")


def agreement(table: pl.DataFrame, methods: list[str]) -> None:
    if len(methods) < 2:
        st.caption("Score with two or more methods to see how much they agree.")
        return
    st.subheader("Scorer agreement")
    k = int(st.number_input("k for top-k overlap", 1, max(table.height, 1), key="score.topk", persist_state="session"))
    left, right = st.columns(2)
    left.plotly_chart(
        figures.heatmap(score_agreement.spearman_matrix(table, methods), methods, title="Spearman rank correlation"),
        key="score.spearman",
    )
    right.plotly_chart(
        figures.heatmap(
            score_agreement.jaccard_matrix(table, methods, k),
            methods,
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            title=f"Top-{k} overlap (Jaccard)",
        ),
        key="score.jaccard",
    )


def results(frame: pl.DataFrame, corpus: Path) -> None:
    done = latest_done(list_scorings(ROOT, corpus))
    if not done:
        st.info("No scores for this dataset yet: pick a scorer above and press Start scoring (length takes seconds).")
        return
    table = scores.score_table(frame, done)
    methods = list(done)
    st.divider()
    just = st.session_state.get(state.JUST_SCORED)
    state.default_choice("score.view", methods, just if just in done else preferred_method(done))
    method = st.radio(
        "Show scores of",
        methods,
        key="score.view",
        persist_state="session",
        horizontal=True,
        format_func=lambda m: md(f"{m} ({DIRECTION.get(done[m].direction, done[m].direction)})"),
        on_change=state.mark_chosen,
        args=("score.view",),
    )
    cats = datasets.category_columns(frame) + scorings.category_components(table, method)
    distribution(table, method, cats)
    data_map(table, method, cats)
    explanation(table, method, done[method])
    extremes(table, method)
    agreement(table, methods)


def main() -> None:
    st.title("Score")
    st.caption("Give every sample a score (LQS and baselines). Scoring runs as a background job.")
    name = st.session_state["data.dataset"]
    damaged.panel(ROOT, ("scoring",), key="score.damaged")
    try:
        frame = datasets.load(ROOT, name)
        corpus = datasets.corpus_path(ROOT, name)
        datasets.manifest(ROOT, name)  # its target set is read from it
    except (DeltError, OSError) as exc:
        st.error(md(exc))
        damaged.panel(ROOT, ("dataset",), key="score.damaged")
        return
    st.caption(f"Dataset **{md(name)}** · {frame.height:,} documents")
    launch_panel(frame, corpus)
    import_panel(corpus)
    jobs_panel(corpus)
    results(frame, corpus)


main()
