"""AppTest fixtures: a fresh workspace per test module, a small demo, jobs run inside the test."""

from __future__ import annotations

import contextlib
import re

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")
TIMEOUT = 60
# Every page script (a new one is covered by the page-level tests without editing them)
ALL_PAGES = tuple(sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One workspace for the whole module, so later tests see what earlier flows wrote (as a user would)."""
    mp = pytest.MonkeyPatch()
    ws = tmp_path_factory.mktemp("ws")
    mp.setenv("DELT_WORKSPACE", str(ws))
    mp.setenv("DELT_DEMO_DOCS", "120")
    mp.setenv("DELT_SYNC_JOBS", "1")  # score/train jobs run to completion inside the script run
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.delenv("DELT_ALLOW_REMOTE", raising=False)
    with server_address("localhost"):  # as .streamlit/config.toml says, from whatever folder pytest runs
        yield ws
    mp.undo()


@contextlib.contextmanager
def server_address(address):
    """Streamlit's ``server.address`` option set to ``address`` (None: unset) for AppTest, then restored."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        yield
    finally:
        config.set_option("server.address", before)


def open_page(page: str | None = None) -> AppTest:
    """A fresh session on ``page`` (e.g. "pages/score.py"), after the app's first run."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
    return at


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def rendered(markdown: str) -> str:
    """The characters a markdown string shows once ``ui.safe.md``'s escapes are resolved (what a user
    reads), so tests can look for a file name or a value inside an escaped message."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(markdown)).replace("\u2060", "").replace("  \n", "\n")


def figure(at: AppTest, title_start: str) -> dict:
    """The plotly figure (as JSON) of the first chart on the page whose title starts with ``title_start``."""
    import json

    specs = [json.loads(c.proto.spec) for c in charts(at)]
    found = [s for s in specs if str(s.get("layout", {}).get("title", {}).get("text", "")).startswith(title_start)]
    titles = [s.get("layout", {}).get("title", {}).get("text") for s in specs]
    assert found, f"no chart titled {title_start!r}...; the page has {titles}"
    return found[0]


def bar_groups(fig: dict) -> set[str]:
    """The names of a figure's bar traces (the groups of a stream make-up)."""
    return {t["name"] for t in fig["data"] if t.get("type") == "bar"}


def texts(at: AppTest, kind: str) -> list[str]:
    return [rendered(e.value) for e in getattr(at, kind)]


def frames(at: AppTest) -> list:
    """The values (pandas frames) of every st.dataframe on the page, in page order."""
    return [d.value for d in at.dataframe]


def frame_with(at: AppTest, *columns: str, index: int = 0):
    """The ``index``-th dataframe on the page that has all of ``columns``."""
    found = [f for f in frames(at) if all(c in f.columns for c in columns)]
    assert len(found) > index, f"no dataframe with columns {columns}; have {[list(f.columns) for f in frames(at)]}"
    return found[index]


def ensure_length_scores(workspace) -> None:
    """A finished length scoring of the demo (made with the engine directly when no test made one)."""
    from delt_engine.jobs.score_job import run_score_job
    from delt_engine.workspace.scorings import create_score_job, latest_done, list_scorings
    from ui.datasets import DEMO, corpus_path

    corpus = corpus_path(workspace, DEMO)
    if "length" not in latest_done(list_scorings(workspace, corpus)):
        run_score_job(
            create_score_job(
                workspace / "scores", {"input": str(corpus), "method": "length", "cache_dir": str(workspace / "cache")}
            )
        )
