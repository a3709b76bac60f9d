"""The paper's experiments as one-click comparisons (``assets/presets/*.json``), on the Train and Learn pages.

A preset is a complete comparison spec (the CLI runs it as is: ``delt compare --spec assets/presets/X.json``,
which scores the demo with LQS itself). In the app a preset keeps its arms, seeds, budget and grouping and
runs on what the user has: the active dataset and its finished scoring by the preset's scorer (LQS), like
any comparison launched from the Train page, so nothing is scored twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from delt_engine.errors import DeltError

from . import comparisons, datasets, state
from .safe import md

PRESET_DIR = Path(__file__).resolve().parents[1] / "assets" / "presets"
KEPT = ("arms", "orderings", "selection", "dedup", "seeds", "baseline", "train", "group_by", "description")


@st.cache_data(show_spinner=False)
def load_presets(folder: str = str(PRESET_DIR)) -> dict[str, dict]:
    """{file stem: spec} of every preset, in file-name order."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.json"))}


def app_spec(preset: dict, dataset: str, columns: list[str], corpus: Path, scoring, targets: dict) -> dict:
    """The preset on the app's data: its arms, seeds, budget and grouping, with the active dataset's scored
    corpus (``comparisons.scored_corpus``) and evaluation files instead of the demo it names."""
    spec = {k: preset[k] for k in KEPT if k in preset}
    if spec.get("group_by") and spec["group_by"] not in columns:
        spec["group_by"] = None  # an imported dataset without the demo's column: evaluate without groups
    return {
        **spec,
        "name": f"{preset['name']}-{dataset}",
        "corpus": str(corpus),
        "target": targets.get("target"),
        "benchmark": targets.get("benchmark"),
        "scorer": {
            "score_field": "score",
            "direction": scoring.direction,
            "scores_job": scoring.id,
            "scorer_method": scoring.method,
        },
    }


def panel(page: str, frame, done: dict) -> None:
    """An expander listing the presets, each with a Launch button (``page``: the widget key prefix)."""
    root, dataset = state.workspace_root(), st.session_state["data.dataset"]
    with st.expander("The paper's experiments, one click each (3 seeds, the CPU demo model)"):
        for stem, preset in load_presets().items():
            method = preset.get("scorer", {}).get("method", "lqs")
            c1, c2 = st.columns([5, 1])
            c1.markdown(f"**{md(preset['name'])}**: {md(preset.get('description', ''))}")
            ready = method in done
            if c2.button(
                "Launch",
                key=f"{page}.preset.{stem}",
                disabled=not ready,
                help=None if ready else f"score this dataset with {method} first (Score page)",
            ):
                _launch(preset, dataset, frame, done[method], root)
        missing = {p.get("scorer", {}).get("method", "lqs") for p in load_presets().values()} - set(done)
        if missing:
            st.caption(
                md(
                    f"The presets organise by {', '.join(sorted(missing))} scores: run that scorer on the Score "
                    "page first (the default LQS takes about a minute and a half on a 2-core CPU)."
                )
            )


def _launch(preset: dict, dataset: str, frame, scoring, root: Path) -> None:
    try:
        corpus = comparisons.scored_corpus(root, dataset, frame, scoring)
        spec = app_spec(preset, dataset, frame.columns, corpus, scoring, datasets.eval_paths(root, dataset))
        token = comparisons.start(spec, root)
    except (DeltError, OSError) as exc:
        st.error(md(f"Could not launch {preset['name']}: {exc}"))
        return
    comparisons.follow(token)
    st.toast(md(f"{preset['name']} launched: follow it on the Train page"))
