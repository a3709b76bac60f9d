"""The app on a workspace written by the version before the layout redesign: every page opens, and
Train and Compare show its comparison (tests/fixtures/workspace_v1)."""

from __future__ import annotations

import shutil

import pytest

from tests.app.conftest import ALL_PAGES, frame_with, open_page, server_address, texts
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


def test_train_says_where_a_cluster_run_is(tmp_path, monkeypatch):
    """A run queued in a Slurm job (compare --launcher slurm) is shown with its job, in the cluster's
    queue, not as waiting for a local slot; one running on another machine names that machine."""
    from delt_engine.fileio import read_json, write_json

    ws = tmp_path / "ws"
    shutil.copytree(FIXTURE, ws)
    monkeypatch.setenv("DELT_WORKSPACE", str(ws))
    monkeypatch.setenv("DELT_SYNC_JOBS", "1")
    queued, running = sorted((ws / "runs").iterdir())[:2]
    info = {"launcher": "slurm", "job_id": "4242", "runs": 1, "folder": str(ws / "submitit" / "4242")}
    for run, extra in ((queued, {"state": "queued"}), (running, {"state": "running", "pid": 7, "host": "node-17"})):
        status = {**read_json(run / "status.json"), **extra, "cluster": info, "manager_pid": None}
        write_json(run / "status.json", status)
    (queued / "progress.json").unlink(missing_ok=True)  # a run still in the scheduler's queue has no progress
    with server_address("localhost"):
        at = open_page("pages/train.py")
    assert not at.exception, at.exception
    shown = " ".join(texts(at, "markdown") + texts(at, "caption"))
    assert "in the cluster's queue (slurm job 4242)" in shown, shown
    assert "slurm job 4242 on node-17" in shown, shown
    assert "waiting for a free slot" not in shown


def test_compare_says_when_runs_have_not_finished(tmp_path, monkeypatch):
    """Verdicts on runs that were cancelled (or still run) say so, instead of reading as final."""
    from delt_engine.fileio import read_json, write_json

    ws = tmp_path / "ws"
    shutil.copytree(FIXTURE, ws)
    monkeypatch.setenv("DELT_WORKSPACE", str(ws))
    monkeypatch.setenv("DELT_SYNC_JOBS", "1")
    with server_address("localhost"):
        at = open_page("pages/compare.py")
        assert not any("have not finished" in w.value for w in at.warning)  # all done: no notice
        run = sorted((ws / "runs").iterdir())[0]
        write_json(run / "status.json", {**read_json(run / "status.json"), "state": "cancelled"})
        at = open_page("pages/compare.py")
    notices = [w.value.replace("\\", "") for w in at.warning if "have not finished" in w.value]
    assert len(notices) == 1 and notices[0].startswith("1 of ") and "(1 cancelled)" in notices[0], notices
