"""Teaching presets: one click sets every page's knobs to reproduce a scenario, and the URL carries
it (``?scenario=NAME&seed=S``), so a shared link restores the exact set-up, seed included."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from . import state


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    story: str
    values: dict  # widget key -> value


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "quick",
            "Quick look: folding vs shuffle (CPU, a few minutes)",
            "Length as the score (instant), no selection, a tiny model: does putting the data in folded "
            "layers change the curves at all, with three seeds to tell effect from noise?",
            {
                "score.methods": ["length"],
                "organize.method": "none",
                "organize.orderings": ["shuffle", "folding"],
                "organize.layers": 3,
                "train.orderings": ["shuffle", "folding"],
                "train.seeds": 3,
                "train.model": "tiny-test",
                "train.budget_kind": "tokens",
                "train.max_tokens": 30_000,
                "train.eval_every": 10,
                "train.batch_size": 16,
                "train.lr": 3e-3,
            },
        ),
        Scenario(
            "paper",
            "The paper's recipe: LQS + folding L=3",
            "Score with LQS (gradient agreement with a clean target set, times learnability), keep everything, "
            "compare shuffle, sorting and folding with three layers on the CPU demo model.",
            {
                "score.methods": ["lqs"],
                "score.model": "cpu-demo",
                "score.model_dir": "",
                "score.lqs_steps": 20,
                "score.lqs_delta": 10,
                "score.lqs_eta": 0.05,
                "score.warmup_steps": 100,
                "score.distill": False,
                "organize.method": "none",
                "organize.orderings": ["shuffle", "sorting", "folding"],
                "organize.layers": 3,
                "train.orderings": ["shuffle", "sorting", "folding"],
                "train.seeds": 3,
                "train.model": "cpu-demo",
                "train.budget_kind": "epochs",
                "train.max_epochs": 1,
                "train.eval_every": 20,
                "train.batch_size": 16,
                "train.lr": 3e-3,
            },
        ),
        Scenario(
            "selection",
            "Efficiency: drop the worst 30% (compression score)",
            "Gzip compression ratio flags repetitive noise; keep the top 70% and see whether training on less "
            "data loses anything against shuffle on everything.",
            {
                "score.methods": ["compression"],
                "organize.method": "top-r",
                "organize.ratio": 0.7,
                "organize.orderings": ["shuffle", "sorting"],
                "train.orderings": ["shuffle", "sorting"],
                "train.seeds": 3,
                "train.model": "tiny-test",
                "train.budget_kind": "tokens",
                "train.max_tokens": 30_000,
                "train.eval_every": 10,
                "train.batch_size": 16,
                "train.lr": 3e-3,
            },
        ),
    )
}


def apply(name: str, seed: int | None = None) -> Scenario:
    """Copy a scenario into session state and the URL (a button callback: runs before any widget is drawn).

    Args:
        name: a key of SCENARIOS.
        seed: the scenario's seed; None takes the Learn page's seed.
    """
    scenario = SCENARIOS[name]
    seed = int(st.session_state.get("learn.seed", 0)) if seed is None else int(seed)
    for key, value in scenario.values.items():
        st.session_state[key] = value
    st.session_state["score.seed"] = seed
    st.session_state["organize.seed"] = seed
    st.session_state["learn.seed"] = seed
    st.session_state["train.first_seed"] = seed
    st.query_params.update({"scenario": name, "seed": str(seed)})
    st.session_state[state.SCENARIO_APPLIED] = (name, seed)
    return scenario


def restore_from_url() -> None:
    """At app start: a link with ``?scenario=NAME&seed=S`` restores that scenario once per session."""
    name = st.query_params.get("scenario")
    if name not in SCENARIOS:
        return
    raw = st.query_params.get("seed", "0")
    seed = int(raw) if raw.isdigit() else 0
    if st.session_state.get(state.SCENARIO_APPLIED) != (name, seed):
        apply(name, seed)
