"""Session-state keys (one place), their defaults, and the workspace the app works in.

Widget keys follow ``"<page>.<field>"``. Widgets whose value other pages read are drawn with
``persist_state="session"`` (Streamlit 1.67), so their values survive page switches; their defaults
live here (set once per session), never in the widget call, so Streamlit never sees two sources for
one value, and pages can read a setting even before the page that owns its widget was opened.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

# ---------------------------------------------------------------- app state (not widgets)
METRIC_TAILS = "metric_tails"  # run id -> {"offset": int, "records": list} (incremental metrics reads)
IMPORT_ERROR = "import_error"  # last import error message (shown until the next import)
PENDING_DATASET = "pending_dataset"  # a just-imported dataset, selected at the start of the next run
PREDICTION = "learn_prediction"  # the ordering the learner predicted would win
SCENARIO_APPLIED = "scenario_applied"  # query-param scenario already copied into the widgets
COLOR_DEFAULTED = "score_color_defaulted"  # the Score page's "colour by" got its first-visit default
MAP_PICK = "score_map_pick"  # the sample last clicked on the data map (to explain it)
ACTIVE_JOBS = "active_jobs"  # per page: ids of the jobs that were active at the last poll
PREP_TOKEN = "prep_token"  # the comparison preparation this session started last
APP_READY = "app_ready"  # app.py has run in this session (set before its first page runs)
PENDING_PAGE = "pending_page"  # (url_path, query params) a page asked for before app.py had run
PREP_APPLIED = "prep_applied"  # that preparation's comparison was already selected on the Train page
USER_CHOSEN = "user_chosen"  # widget keys whose value the user picked (kept; others follow their default)
JUST_SCORED = "just_scored"  # the method the Score page shows after the user started or added it

# ---------------------------------------------------------------- widget defaults (persisted)
DEFAULTS: dict[str, object] = {
    "data.dataset": "demo",
    "data.text_field": "text",
    "data.split": "train",
    "data.search": "",
    "data.page": 1,
    "data.page_size": 10,
    "score.methods": ["length"],
    "score.model": "cpu-demo",
    "score.model_dir": "",
    "score.max_length": 128,
    "score.batch_size": 16,
    "score.seed": 0,
    "score.precision": "float32",
    # the engine's LQSConfig defaults (a test keeps them equal; importing lqs here would load torch)
    "score.lqs_steps": 20,
    "score.lqs_delta": 10,
    "score.lqs_eta": 0.05,
    "score.warmup_steps": 100,
    "score.distill": False,
    "score.proxy_size": 2000,
    "score.chunk_size": 0,
    "score.checkpoint": "auto",
    "score.final_norm": "paper",
    "score.view": None,
    "score.sample": None,
    "score.topk": 100,
    "score.color_by": "(none)",
    "organize.score": None,
    "organize.dedup": "none",
    "organize.dedup_ngram": 5,
    "organize.dedup_threshold": 0.7,
    "organize.dedup_edit_threshold": 0.8,
    "organize.method": "top-r",
    "organize.ratio": 0.8,
    "organize.k": 100,
    "organize.threshold": 0.0,
    "organize.orderings": ["shuffle", "sorting", "folding"],
    "organize.layers": 3,
    "organize.descending": False,
    "organize.window": 0,
    "organize.seed": 0,
    "organize.batch_size": 16,
    "organize.export": None,
    "organize.group_by": None,  # set per dataset by ui.groups.ensure_choice
    "train.score": None,
    "train.comparison": None,
    "train.orderings": ["shuffle", "folding"],
    "train.seeds": 3,
    "train.model": "cpu-demo",
    # One full epoch: every arm trains on the whole ordering (folding's layers are all seen) with the same tokens.
    "train.budget_kind": "epochs",
    "train.max_epochs": 1,
    "train.max_steps": 120,
    "train.max_tokens": 100_000,
    "train.batch_size": 16,
    "train.eval_every": 20,
    "train.lr": 3e-3,
    "train.first_seed": 0,
    "train.save_model": False,
    "train.group_by": None,
    "compare.source": "A comparison",
    "compare.comparison": None,
    "compare.runs": [],
    "compare.x": "tokens",
    "compare.smoothing": 0.6,
    "compare.metric": "val_loss",
    "compare.group_set": "validation",
    "learn.layers": 3,
    "learn.n_docs": 12,
    "learn.seed": 0,
    "learn.prediction": None,
}


def init_state() -> None:
    """Fill in the defaults that this session does not have yet."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value
    st.session_state.setdefault(METRIC_TAILS, {})


def workspace_root() -> Path:
    """The workspace folder: ``$DELT_WORKSPACE`` if set, else ``./workspace`` (as the engine's CLI)."""
    return Path(os.environ.get("DELT_WORKSPACE") or "workspace").expanduser().resolve()


def demo_docs() -> int | None:
    """Demo corpus size override (``$DELT_DEMO_DOCS``, used by tests to keep the demo small)."""
    value = os.environ.get("DELT_DEMO_DOCS")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def ensure_choice(key: str, options: list, multi: bool = False) -> None:
    """Keep a persisted selectbox/multiselect value valid when its options change (e.g. a new dataset)."""
    value = st.session_state.get(key)
    if multi:
        kept = [v for v in (value or []) if v in options]
        if kept != value:
            st.session_state[key] = kept
    elif value not in options:
        st.session_state[key] = options[0] if options else None


def mark_chosen(key: str) -> None:
    """``on_change`` of a choice widget: the user picked this value, so ``default_choice`` keeps it."""
    st.session_state.setdefault(USER_CHOSEN, set()).add(key)


def user_chose(key: str, options: list) -> bool:
    """Whether the user picked ``key``'s value in this session and it is still one of ``options``."""
    return key in st.session_state.get(USER_CHOSEN, set()) and st.session_state.get(key) in options


def default_choice(key: str, options: list, preferred) -> None:
    """Give a selectbox/radio ``key`` its default ``preferred`` unless the user picked a value that is still
    valid; draw the widget with ``on_change=mark_chosen, args=(key,)``. Unlike ``ensure_choice`` the
    default follows ``preferred`` as it changes (e.g. to LQS once a scoring of it exists)."""
    if user_chose(key, options):
        return
    st.session_state[key] = preferred if preferred in options else (options[0] if options else None)


def require_app(url_path: str) -> None:
    """Route a page that Streamlit ran on its own through app.py.

    On a freshly started server, the very first request for e.g. ``/train`` is served by Streamlit's
    legacy ``pages/`` routing, which runs the page script without app.py (no navigation, no state
    defaults). Remember where the user was going (with the URL's query parameters, so shared
    scenario links survive) and hand over to app.py, which switches back to that page.
    """
    if st.session_state.get(APP_READY):
        return
    st.session_state[PENDING_PAGE] = (url_path, dict(st.query_params))
    st.switch_page("app.py")
