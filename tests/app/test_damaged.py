"""AppTest: a damaged dataset manifest, scoring, run or comparison is shown as a damaged entry (its folder,
the problem, "Delete this damaged entry" with a confirmation), never as an exception on a page."""

from __future__ import annotations

import json

import polars as pl
import pytest

from delt_engine.errors import DataError
from tests.app.conftest import ALL_PAGES, open_page, texts

PAGES = ALL_PAGES


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def damaged_workspace(workspace):
    open_page()  # the demo exists
    from ui.datasets import DEMO, corpus_path

    corpus = str(corpus_path(workspace, DEMO))
    _write(workspace / "runs" / "run-empty-status" / "config.json", "{}")
    _write(workspace / "runs" / "run-empty-status" / "status.json", "")
    _write(workspace / "runs" / "run-bad-pid" / "config.json", "{}")
    _write(workspace / "runs" / "run-bad-pid" / "status.json", json.dumps({"state": "running", "pid": "abc"}))
    _write(workspace / "runs" / "run-bad-config" / "config.json", "{")
    _write(workspace / "runs" / "run-bad-config" / "status.json", json.dumps({"state": "done"}))
    _write(workspace / "scores" / "length-bad-config" / "config.json", "{not json")
    _write(
        workspace / "scores" / "length-empty-status" / "config.json", json.dumps({"input": corpus, "method": "length"})
    )
    _write(workspace / "scores" / "length-empty-status" / "status.json", "")
    _write(workspace / "comparisons" / "cmp-bad" / "comparison.json", "[1, 2")
    (workspace / "datasets" / "bad-ds").mkdir(parents=True)
    pl.DataFrame({"id": ["a"], "text": ["x"]}).write_parquet(workspace / "datasets" / "bad-ds" / "corpus.parquet")
    (workspace / "datasets" / "bad-ds" / "manifest.json").write_bytes(b"\xff\xfe not utf-8")
    return workspace


def _codes(at):
    return [c.value for c in at.code]


@pytest.mark.parametrize("page", PAGES)
def test_no_page_raises_on_damaged_entries(damaged_workspace, page):
    at = open_page(page)
    assert not at.exception, at.exception
    ws = damaged_workspace
    runs = [
        ws / "runs" / "run-bad-config",
        ws / "runs" / "run-bad-pid",
        ws / "runs" / "run-empty-status",
        ws / "comparisons" / "cmp-bad",
    ]
    shown = {
        "pages/data.py": [ws / "datasets" / "bad-ds"],
        "pages/score.py": [ws / "scores" / "length-bad-config", ws / "scores" / "length-empty-status"],
        "pages/train.py": runs,
        "pages/compare.py": runs,
    }.get(page, [])
    for folder in shown:  # the folder, the problem naming the file, and a way to remove it
        assert str(folder) in _codes(at), (folder, _codes(at))
        assert any("Damaged" in t and folder.name in t for t in texts(at, "warning")), texts(at, "warning")
    assert len([b for b in at.button if b.label == "Delete this damaged entry"]) == len(shown)


def test_selecting_a_damaged_dataset_shows_the_problem_and_the_entry(damaged_workspace):
    at = open_page()
    at.selectbox(key="data.dataset").set_value("bad-ds").run()
    assert not at.exception
    assert any("manifest.json" in t and "not UTF-8" in t for t in texts(at, "error")), texts(at, "error")
    at.switch_page("pages/score.py").run()
    assert not at.exception and any("manifest.json" in t for t in texts(at, "error"))
    at.switch_page("pages/train.py").run()
    assert not at.exception and any("manifest.json" in t for t in texts(at, "error"))
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data.dataset").set_value("demo").run()


def test_delete_asks_first_and_removes_only_that_folder(damaged_workspace):
    ws = damaged_workspace
    folder = ws / "datasets" / "bad-ds"
    others = sorted(p for p in ws.rglob("*") if folder not in p.parents and p != folder)
    at = open_page()
    key = "data.damaged.dataset.bad-ds"
    at.button(key=f"{key}.delete").click().run()
    assert any("cannot be undone" in t and str(folder) in t for t in texts(at, "error"))
    at.button(key=f"{key}.keep").click().run()  # changed my mind: nothing deleted
    assert folder.is_dir() and not any("cannot be undone" in t for t in texts(at, "error"))
    at.button(key=f"{key}.delete").click().run()
    at.button(key=f"{key}.yes").click().run()
    assert not at.exception and not folder.exists()
    assert sorted(p for p in ws.rglob("*") if p.exists() and "uploads" not in p.parts) == [
        p for p in others if "uploads" not in p.parts
    ]  # everything else is still there
    assert str(folder) not in _codes(at)

    at.switch_page("pages/train.py").run()
    at.button(key="train.damaged.comparison.cmp-bad.delete").click().run()
    at.button(key="train.damaged.comparison.cmp-bad.yes").click().run()
    assert not (ws / "comparisons" / "cmp-bad").exists() and (ws / "runs" / "run-bad-pid").is_dir()


def test_remove_refuses_anything_but_an_entry_of_the_workspace(workspace, tmp_path):
    from ui.damaged import Damaged, remove

    outside = tmp_path / "precious"
    outside.mkdir()
    (workspace / "runs").mkdir(exist_ok=True)
    link = workspace / "runs" / "link-to-precious"
    link.symlink_to(outside)
    for item in (
        Damaged("run", outside, "x"),
        Damaged("run", link, "x"),
        Damaged("run", workspace / "runs", "x"),
        Damaged("dataset", workspace / "runs" / "..", "x"),
        Damaged("scoring", workspace / "datasets", "x"),
    ):
        with pytest.raises(DataError, match="nothing was deleted"):
            remove(item, workspace)
    assert outside.is_dir() and link.is_symlink() and (workspace / "runs").is_dir()
    link.unlink()


def test_a_damaged_run_is_settled_not_active(damaged_workspace):
    from delt_engine.workspace.layout import Workspace
    from ui.jobs import is_active, queue_summary

    infos = {i.id: i for i in Workspace(damaged_workspace).list_runs()}
    for run_id in ("run-empty-status", "run-bad-pid"):
        assert infos[run_id].state == "unknown" and infos[run_id].finished  # pages stop polling for it
    assert queue_summary(damaged_workspace).get("running", 0) == 0
    assert not is_active({"state": "unknown", "damaged": True})
