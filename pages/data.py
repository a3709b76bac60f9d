"""Data: the corpus every later step works on (the demo, or an imported file / Hugging Face dataset),
its summary and a sample browser."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from delt_engine.errors import DeltError
from ui import damaged, datasets, figures, state
from ui.safe import md

state.require_app("data")
ROOT = state.workspace_root()
PAGE_SIZES = (10, 25, 50)


def import_panel() -> None:
    """Upload / path / Hugging Face import into ``datasets/<name>/``."""
    with st.expander(
        "Import a dataset (file upload, local path or Hugging Face id)",
        expanded=bool(st.session_state.get(state.IMPORT_ERROR)),
    ):
        # the open tab is the source: a file left in the uploader never wins over a path typed on another tab
        tab_upload, tab_path, tab_hub = st.tabs(list(SOURCES), key="data.source", on_change="rerun")
        with tab_upload:
            upload = st.file_uploader(
                "JSONL, JSON, CSV, TSV, Parquet or TXT (also gzipped: corpus.jsonl.gz)",
                key="data.upload",
                type=["jsonl", "json", "csv", "tsv", "parquet", "txt", "gz"],
            )
        with tab_path:
            path = st.text_input(
                "File or folder on this machine",
                key="data.path",
                persist_state="session",
                placeholder="/data/corpus.jsonl",
            )
        with tab_hub:
            h1, h2 = st.columns([3, 1])
            hub = h1.text_input(
                "Dataset id", key="data.hub", persist_state="session", placeholder="roneneldan/TinyStories"
            )
            h2.text_input("Split", key="data.split", persist_state="session")
            st.caption("Needs network access or a local Hugging Face cache.")
        c1, c2, c3 = st.columns([2, 2, 1])
        text_field = c1.text_input("Text column", key="data.text_field", persist_state="session")
        name = c2.text_input("Save as", key="data.name", persist_state="session", placeholder="my-corpus")
        c3.write("")
        go = c3.button("Import", key="data.import", type="primary", width="stretch")
        if go:
            chosen = {"upload": tab_upload.open, "path": tab_path.open, "hub": tab_hub.open}
            source = _import_source(
                upload if chosen["upload"] else None, path if chosen["path"] else "", hub if chosen["hub"] else ""
            )
            if source is not None:
                _do_import(source, text_field, name or _default_name(upload.name if upload is not None else source))
        if st.session_state.get(state.IMPORT_ERROR):
            st.error(md(st.session_state[state.IMPORT_ERROR]))
            if st.button("Dismiss", key="data.import_dismiss"):  # else it stays until an import succeeds
                st.session_state[state.IMPORT_ERROR] = None
                st.rerun()


SOURCES = ("Upload a file", "Local path", "Hugging Face dataset")


def _import_source(upload, path: str, hub: str) -> str | None:
    """The source of the open tab (the others are passed empty)."""
    if upload is not None:  # kept in the workspace under a name of its own (never replaced), never edited
        try:
            return str(datasets.save_upload(ROOT, upload.name, upload.getvalue()))
        except (DeltError, OSError) as exc:
            st.session_state[state.IMPORT_ERROR] = f"Could not store the upload {upload.name!r}: {exc}"
            return None
    if path.strip():
        return path.strip()
    if hub.strip():
        return hub.strip()
    st.session_state[state.IMPORT_ERROR] = (
        "Nothing to import on the open tab: upload a file, type a path, or give a Hugging Face dataset id "
        "(on its tab), then press Import."
    )
    return None


def _default_name(source: str) -> str:
    plain = source[:-3] if source.lower().endswith(".gz") else source
    stem = Path(plain).stem if "/" in plain or "." in plain else plain
    base = stem.split(":")[0].split("/")[-1]
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in base)[:64] or "corpus"


def _do_import(source: str, text_field: str, name: str) -> None:
    from delt_engine.data.corpus import load_corpus

    try:
        name = datasets.check_name(name, ROOT)
        split = st.session_state["data.split"] or "train"
        with st.spinner(f"Importing {source}…"):  # reading a file: I/O, not training; usually a second or two
            loaded = load_corpus(source, text_field=text_field or "text", split=split)
            datasets.save_import(ROOT, name, loaded, source, text_field)
    except (DeltError, OSError, UnicodeDecodeError) as exc:
        st.session_state[state.IMPORT_ERROR] = f"Import failed: {exc}"
        return
    st.session_state[state.IMPORT_ERROR] = None
    st.session_state[state.PENDING_DATASET] = name  # applied before the selectbox is drawn (next run)
    st.toast(md(f"Imported {loaded.frame.height} documents as '{name}'"))
    st.rerun()


def eval_panel(name: str) -> None:
    """An imported dataset's own target set (LQS/PDS, target loss) and benchmark; none until set (the demo's
    fictional-world ones say nothing about a user's data, so they are never lent)."""
    if name == datasets.DEMO:
        return
    paths, info = datasets.eval_paths(ROOT, name), datasets.manifest(ROOT, name)
    with st.expander("Target set and benchmark for this dataset (LQS and evaluation)", expanded=not paths["target"]):
        for kind, what, without in (
            (
                "target",
                "clean text the model should get good at (LQS's J, target loss)",
                "none yet: LQS and PDS cannot run and comparisons report no target loss",
            ),
            (
                "benchmark",
                "multiple-choice JSONL: task, context, choices, answer",
                "none yet: comparisons report no benchmark accuracy",
            ),
        ):
            own = info.get(kind)
            origin = f"its own, from {info.get(kind + '_source', own)}" if own else without
            st.caption(f"**{kind}**: {md(origin)} ({what})")
        c1, c2, c3 = st.columns([3, 1, 1])
        path = c1.text_input("File on this machine", key="data.eval_path", placeholder="/data/my_target.jsonl")
        kind = c2.selectbox("Use as", ["target", "benchmark"], key="data.eval_kind")
        c3.write("")
        if c3.button("Set", key="data.eval_set") and path.strip():
            try:
                datasets.set_eval_file(ROOT, name, kind, path.strip(), st.session_state["data.text_field"] or "text")
            except (DeltError, OSError, UnicodeDecodeError) as exc:
                st.error(md(f"Could not set the {kind}: {exc}"))
                return
            st.toast(md(f"{name} now uses its own {kind}"))
            st.rerun()
        st.caption(md(f"In use now: target {paths['target'] or '(none)'}, benchmark {paths['benchmark'] or '(none)'}"))


def summary(frame: pl.DataFrame, cats: list[str]) -> None:
    words = datasets.word_counts(frame)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Documents", f"{frame.height:,}")
    c2.metric("Words", f"{int(words.sum()):,}")
    c3.metric("Median words / doc", f"{float(words.median() or 0):.0f}")
    c4.metric("Metadata columns", len(frame.columns) - 2)
    left, right = st.columns([3, 2])
    with left:
        color_by = None
        if cats:
            if st.session_state.get("data.color_by") not in cats:  # clean vs noise tells the most at a glance
                st.session_state["data.color_by"] = "is_noise" if "is_noise" in cats else cats[0]
            color_by = st.selectbox("Colour by", cats, key="data.color_by", persist_state="session")
        groups = datasets.group_labels(frame, color_by) if color_by else None
        st.plotly_chart(
            figures.histogram(words.to_list(), groups, title="Document length", x_title="words per document"),
            key="data.length_hist",
        )
    with right:
        if cats:
            if st.session_state.get("data.count_by") not in cats:
                st.session_state["data.count_by"] = "kind" if "kind" in cats else cats[0]
            col = st.selectbox("Count documents by", cats, key="data.count_by", persist_state="session")
            counts = frame.group_by(col).len().sort(col)
            st.plotly_chart(
                figures.bar(
                    counts[col].to_list(), counts["len"].to_list(), title=f"Documents by {col}", y_title="documents"
                ),
                key="data.count_bar",
            )
        else:
            st.info("This corpus has no categorical metadata columns to break it down by.")


def browser(frame: pl.DataFrame, cats: list[str]) -> None:
    st.subheader("Browse samples")
    cols = st.columns([3] + [2] * len(cats[:3]))
    query = cols[0].text_input("Search text", key="data.search", persist_state="session", placeholder="word or phrase")
    view = frame
    if query:
        view = view.filter(pl.col("text").str.contains(query, literal=True))
    for col, widget_col in zip(cats[:3], cols[1:]):
        values = sorted({str(v) for v in frame[col].to_list()})
        chosen = widget_col.multiselect(md(col), values, key=f"data.filter_{col}", placeholder="all")
        if chosen:
            view = view.filter(pl.col(col).cast(pl.Utf8).is_in(chosen))
    size = st.session_state["data.page_size"]
    n_pages = max(1, -(-view.height // size))
    if st.session_state["data.page"] > n_pages:
        st.session_state["data.page"] = 1
    p1, p2, p3 = st.columns([1, 1, 4])
    page = p1.number_input("Page", min_value=1, max_value=n_pages, step=1, key="data.page", persist_state="session")
    p2.selectbox("Rows", PAGE_SIZES, key="data.page_size", persist_state="session")
    p3.caption(f"{view.height:,} matching documents · page {page} of {n_pages}")
    if view.height == 0:
        st.info("No document matches; clear the search or the filters.")
        return
    rows = view.slice((page - 1) * size, size)
    preview = rows.with_columns(pl.col("text").str.slice(0, 160).alias("text"))
    event = st.dataframe(
        preview, key="data.table", hide_index=True, on_select="rerun", selection_mode="single-row", width="stretch"
    )
    picked = [i for i in getattr(getattr(event, "selection", None), "rows", None) or [] if i < rows.height]
    doc = rows.row(picked[0] if picked else 0, named=True)
    with st.expander(
        f"Full text of {md(doc['id'])}" + ("" if picked else " (click a row to pick another)"), expanded=True
    ):
        meta = ", ".join(f"{k}={v}" for k, v in doc.items() if k not in ("id", "text"))
        if meta:
            st.caption(md(meta))
        st.text(doc["text"])


def main() -> None:
    st.title("Data")
    st.caption("The corpus every later step works on: the demo (ready on first load) or your own data.")
    options = datasets.names(ROOT)
    if st.session_state.get(state.PENDING_DATASET):
        st.session_state["data.dataset"] = st.session_state.pop(state.PENDING_DATASET)
    if st.session_state["data.dataset"] not in options:
        st.session_state["data.dataset"] = datasets.DEMO
    st.selectbox(
        "Dataset",
        options,
        key="data.dataset",
        persist_state="session",
        format_func=lambda n: "demo (generated, planted structure)" if n == datasets.DEMO else n,
    )
    import_panel()
    damaged.panel(ROOT, ("dataset",), key="data.damaged")
    try:
        frame = datasets.load(ROOT, st.session_state["data.dataset"])
        info = datasets.manifest(ROOT, st.session_state["data.dataset"])
    except (DeltError, OSError) as exc:
        st.error(md(exc))
        return
    st.caption(md(f"Source: {info.get('source', '?')}"))
    eval_panel(st.session_state["data.dataset"])
    cats = datasets.category_columns(frame)
    summary(frame, cats)
    browser(frame, cats)


main()
