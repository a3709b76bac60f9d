"""The app on a workspace written by the version before the layout redesign: every page opens, and
Train and Compare show its comparison (tests/fixtures/workspace_v1)."""

from __future__ import annotations

import shutil

import pytest

from tests.app.conftest import ALL_PAGES, frame_with, open_page, server_address
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "workspace_v1"


@pytest.fixture(scope="module")
def old_workspace(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    ws = tmp_path_factory.mktemp("old") / "ws"
    shutil.copytree(FIXTURE, ws)
    mp.setenv("DELT_WORKSPACE", str(ws))
    mp.setenv("DELT_DEMO_DOCS", "120")
    mp.setenv("DELT_SYNC_JOBS", "1")
    with server_address("localhost"):
        yield ws
    mp.undo()


@pytest.mark.parametrize("page", ALL_PAGES)
def test_pages_open_on_an_old_workspace(old_workspace, page):
    at = open_page(page)
    assert not at.exception, at.exception


def test_compare_shows_the_old_comparison_with_todays_verdicts(old_workspace):
    at = open_page("pages/compare.py")
    assert not at.exception, at.exception
    table = frame_with(at, "arm", "seeds")
    assert set(table["arm"]) == {"shuffle", "folding L=3"}
    verdicts = frame_with(at, "arm", "metric")
    assert set(verdicts["arm"]) == {"folding L=3"}
