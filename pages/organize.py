"""Organize: drop duplicates, select (top-k / top-r / threshold, with a live cutoff) and order (shuffle,
sorting, folding, zigzag, window shuffle) the scored data; see the training stream's layout; export it."""

from __future__ import annotations

import io

import polars as pl
import streamlit as st

from delt_engine.errors import DeltError
from delt_engine.organize.registry import ORDERINGS, SELECTIONS
from ui import figures, groups, scores, state
from ui.safe import md

state.require_app("organize")
ROOT = state.workspace_root()
DEDUPS = {"none": "keep them", "exact": "drop exact copies", "near": "drop near copies", "edit": "drop edited copies"}


def pick_score(done: dict) -> tuple[str, bool]:
    """The score to organise by: the user's pick here or on Score, else LQS, PDS or the newest scoring."""
    from delt_engine.workspace.scorings import preferred_method

    methods = list(done)
    chosen_on_score = state.user_chose("score.view", methods)
    state.default_choice(
        "organize.score", methods, st.session_state["score.view"] if chosen_on_score else preferred_method(done)
    )
    method = st.selectbox(
        "Organise by score",
        methods,
        key="organize.score",
        persist_state="session",
        on_change=state.mark_chosen,
        args=("organize.score",),
    )
    higher_better = done[method].direction == "higher_better"
    st.caption(
        f"{md(method)}: "
        + (
            "higher = better, so selection keeps the highest scores and sorting puts them last."
            if higher_better
            else "higher = harder, so selection keeps the lowest scores (the easiest) and sorting "
            "ascending goes from easy to hard."
        )
    )
    return method, higher_better


def selection_widgets(work: pl.DataFrame) -> tuple[str, dict]:
    c1, c2 = st.columns([1, 3])
    method = c1.radio("Selection", ["none", *SELECTIONS], key="organize.method", persist_state="session")
    kwargs: dict = {}
    with c2:
        if method == "top-k":
            kwargs["k"] = int(
                st.number_input("k (documents kept)", 0, work.height, key="organize.k", persist_state="session")
            )
        elif method == "top-r":
            kwargs["ratio"] = float(
                st.slider("r (share kept)", 0.0, 1.0, step=0.05, key="organize.ratio", persist_state="session")
            )
        elif method == "threshold":
            lo, hi = float(work["score"].min()), float(work["score"].max())
            if not lo <= st.session_state["organize.threshold"] <= hi:
                st.session_state["organize.threshold"] = (lo + hi) / 2
            kwargs["threshold"] = float(
                st.slider("threshold t", lo, hi, key="organize.threshold", persist_state="session")
            )
        else:
            st.caption("No selection: every document is kept (ordering only: data efficacy).")
    return method, kwargs


@st.cache_data(max_entries=8, show_spinner="Looking for duplicates…")
def duplicate_mask(fingerprint: tuple, mode: str, options: dict, _texts: list[str]) -> list[bool]:
    """Which documents repeat an earlier one; cached by the texts' fingerprint (near mode on a large
    corpus takes seconds, and every widget on this page reruns it)."""
    from delt_engine.data.dedup import find_duplicates

    return find_duplicates(_texts, mode, **options).duplicate.tolist()


def dedup_step(work: pl.DataFrame) -> pl.DataFrame:
    """Duplicate removal before selection (LQS scores a copy like its original, so it cannot drop one)."""
    mode = st.radio(
        "Duplicates",
        list(DEDUPS),
        format_func=DEDUPS.get,
        key="organize.dedup",
        horizontal=True,
        persist_state="session",
        help="exact: the same text after lower-casing and collapsing spaces; near: MinHash estimate of "
        "the Jaccard similarity of word shingles; edited: the same words in the same order with a few "
        "changed (word edit similarity), however short the documents. The first of each group is kept, "
        "in corpus order.",
    )
    if mode == "none":
        return work
    options = {}
    if mode == "near":
        c1, c2 = st.columns(2)
        options["ngram"] = int(
            c1.number_input(
                "Words per shingle",
                1,
                20,
                key="organize.dedup_ngram",
                persist_state="session",
                help="5 suits long web text; short documents need 2-3, or one "
                "changed word breaks most of their shingles",
            )
        )
        options["threshold"] = float(
            c2.slider(
                "Jaccard similarity that counts as a copy",
                0.3,
                1.0,
                step=0.05,
                key="organize.dedup_threshold",
                persist_state="session",
            )
        )
    if mode == "edit":
        options["threshold"] = float(
            st.slider(
                "Word edit similarity that counts as a copy",
                0.7,
                1.0,
                step=0.05,
                key="organize.dedup_edit_threshold",
                persist_state="session",
                help="1 - (words substituted, inserted or deleted) / (words of the longer text): 0.8 lets "
                "one word in five differ",
            )
        )
    fingerprint = (
        work.height,
        int(work["id"].cast(pl.Utf8).hash(seed=1).sum()),
        int(work["text"].hash(seed=2).sum()),
        int(work["text"].head(1).hash(seed=3).sum()),
    )
    duplicate = duplicate_mask(fingerprint, mode, options, work["text"].to_list())
    kept = work.filter(~pl.Series(duplicate, dtype=pl.Boolean))
    st.caption(
        f"{work.height - kept.height:,} of {work.height:,} documents repeat an earlier one and are dropped "
        "before selection."
    )
    return kept


def selection(work: pl.DataFrame, higher_better: bool) -> pl.DataFrame:
    """Selection widgets, the histogram with its live cutoff line, and the survivors (original order)."""
    from delt_engine.organize.selection import select, summarize_selection

    st.subheader("Select")
    work = dedup_step(work)
    method, kwargs = selection_widgets(work)
    cutoff, kept = None, work
    if method != "none":
        summary = summarize_selection(work, method, score_field="score", higher_is_better=higher_better, **kwargs)
        cutoff = summary.cutoff
        kept = (
            select(work, method, score_field="score", higher_is_better=higher_better, **kwargs)
            if summary.n_kept
            else work.head(0)
        )
        st.caption(md(summary.describe()))
    share = kept.height / max(work.height, 1)
    st.metric("Kept", f"{kept.height:,} of {work.height:,}", f"{share:.0%} kept", delta_color="off", delta_arrow="off")
    kept_ids = set(kept["id"].to_list())
    status = ["kept" if i in kept_ids else "discarded" for i in work["id"].to_list()]
    st.plotly_chart(
        figures.histogram(
            work["score"].to_list(),
            status,
            x_title="score",
            title="Score distribution with the selection cutoff",
            cutoff=cutoff,
        ),
        key="organize.hist",
    )
    side_by_side(work, kept)
    return kept


def side_by_side(work: pl.DataFrame, kept: pl.DataFrame) -> None:
    cols = ["id", "score"] + [c for c in ("kind", "is_noise") if c in work.columns] + ["text"]
    dropped = work.filter(~pl.col("id").is_in(kept["id"].implode()))
    short = lambda f: f.select(cols).with_columns(pl.col("text").str.slice(0, 120)).head(8)  # noqa: E731
    left, right = st.columns(2)
    left.caption(f"Kept ({kept.height:,})")
    left.dataframe(short(kept), hide_index=True, key="organize.kept")
    right.caption(f"Discarded ({dropped.height:,})")
    right.dataframe(short(dropped), hide_index=True, key="organize.dropped")


def ordering_knobs() -> list[str]:
    st.subheader("Order")
    state.ensure_choice("organize.orderings", list(ORDERINGS), multi=True)
    chosen = st.multiselect(
        "Orderings to compare",
        list(ORDERINGS),
        key="organize.orderings",
        persist_state="session",
        help="; ".join(f"{m}: {info.description} ({info.source})" for m, info in ORDERINGS.items()),
    )
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.slider("Folding layers L", 1, 8, key="organize.layers", persist_state="session")
    c2.checkbox("Sorting descending", key="organize.descending", persist_state="session")
    c3.number_input(
        "Window shuffle (0 = off)",
        0,
        10_000,
        key="organize.window",
        persist_state="session",
        help="Shuffle inside consecutive windows of this many samples (beyond the paper)",
    )
    c4.number_input("Seed", 0, 10_000, key="organize.seed", persist_state="session")
    c5.number_input("Batch size (for batch means)", 1, 1024, key="organize.batch_size", persist_state="session")
    return chosen


def ordered_views(kept: pl.DataFrame, chosen: list[str]) -> dict[str, tuple[pl.DataFrame, object]]:
    """{arm label: (ordered frame, engine Layout)} for every chosen ordering."""
    from ui.comparisons import orderings

    ss, out = st.session_state, {}
    seed = int(ss["organize.seed"])
    for ordering in orderings(chosen, ss["organize.layers"], ss["organize.descending"], ss["organize.window"]):
        out[ordering.name] = (ordering.apply(kept, seed), ordering.layout(kept, seed))
    return out


def makeup_choice(work: pl.DataFrame) -> str | None:
    """The metadata column whose make-up is drawn under each ordering (the demo: kind)."""
    choices = groups.options(work)
    groups.ensure_choice("organize.group_by", choices, st.session_state["data.dataset"])
    value = st.selectbox(
        "Stream make-up by",
        choices,
        key="organize.group_by",
        persist_state="session",
        help="Under each ordering: the share of each value of this column in every window of "
        "training steps (distribution bias: does one kind come in a block?). A comparison "
        "launched from Train is evaluated by the column chosen there.",
    )
    return groups.column(value)


def makeups_of(views: dict, column: str, batch_size: int) -> tuple[dict, int]:
    """{label: figures.Makeup on the training-position axis} and the steps per window."""
    from delt_engine.organize.makeup import default_window, steps_per_epoch, stream_makeup

    out, window = {}, 1
    for label, (ordered, _) in views.items():
        n = ordered.height
        window = default_window(steps_per_epoch(n, batch_size))
        frame = stream_makeup(ordered, column, batch_size, window, "score")
        out[label] = figures.makeup_from_frame(frame, label, lambda step, n=n: min(step * batch_size, n))
    return out, window


def show_layout(views: dict, column: str | None = None) -> None:
    batch_size = int(st.session_state["organize.batch_size"])
    makeups, window = makeups_of(views, column, batch_size) if column else (None, 0)
    title = "Score against training position (dots: samples; line: batch mean; dotted: layer starts)"
    if makeups:
        title += f", and the share of each {column} below"
    st.plotly_chart(
        figures.ordering_grid(
            {label: (lay.scores, lay.layer_starts) for label, (_, lay) in views.items()},
            batch_size=batch_size,
            title=title,
            makeups=makeups,
        ),
        key="organize.layout",
    )
    if makeups:
        st.caption(
            f"Stream make-up: each bar is a window of {window} training step{'s' if window > 1 else ''} of "
            f"{batch_size} documents (the batch size above), split by {column} into shares that add up "
            "to 100%. A block of one colour is a stretch of training that sees mostly one group: the "
            "distribution bias the paper's folding ordering is meant to avoid."
        )


def export(views: dict[str, pl.DataFrame], dataset: str, method: str) -> None:
    st.subheader("Export")
    labels = list(views)
    state.ensure_choice("organize.export", labels)
    label = st.selectbox("Ordering to export", labels, key="organize.export", persist_state="session")
    frame = views[label][0]
    stem = f"{dataset}-{method}-{label.replace(' ', '_').replace('=', '')}"
    jsonl, parquet = io.BytesIO(), io.BytesIO()
    frame.write_ndjson(jsonl)
    frame.write_parquet(parquet)
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download JSONL", jsonl.getvalue(), file_name=f"{stem}.jsonl", mime="application/jsonl", key="organize.dl_jsonl"
    )
    c2.download_button(
        "Download Parquet",
        parquet.getvalue(),
        file_name=f"{stem}.parquet",
        mime="application/octet-stream",
        key="organize.dl_parquet",
    )


def main() -> None:
    st.title("Organize")
    st.caption("Selection makes training cheaper; ordering makes the same data work better.")
    name = st.session_state["data.dataset"]
    loaded = scores.dataset_with_scores_or_explain(
        ROOT, name, "Score the dataset first; selection and ordering need a score for every document."
    )
    if loaded is None or not loaded[1]:
        return
    frame, done = loaded
    method, higher_better = pick_score(done)
    table = scores.score_table(frame, done)
    columns = [c for c in frame.columns if c != "score"] + [pl.col(method).alias("score")]
    work = table.select(columns).drop_nulls("score")
    if work.height < frame.height:
        st.warning(
            f"The {method} scores cover {work.height:,} of the {frame.height:,} documents: the "
            f"{frame.height - work.height:,} without a score are left out of selection and ordering "
            "(score the whole dataset to keep them)."
        )
    try:
        kept = selection(work, higher_better)
        if kept.height == 0:
            st.warning("The selection keeps no document: raise r or move the threshold.")
            return
        chosen = ordering_knobs()
        if not chosen:
            st.info("Pick at least one ordering.")
            return
        views = ordered_views(kept, chosen)
        column = makeup_choice(kept)
    except DeltError as exc:
        st.error(md(exc))
        return
    show_layout(views, column)
    export(views, name, method)


main()
