"""A workspace written by the version before the layout redesign (tests/fixtures/workspace_v1: a demo
comparison, 2 arms x 2 seeds, tiny-test model, made with commit 007c66a) still lists, reports and shows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from delt_engine.experiments.spec import describe_data, parse_spec
from delt_engine.experiments.summary import summarize
from delt_engine.workspace.layout import Workspace
from delt_engine.workspace.scorings import latest_done, list_scorings
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "workspace_v1"
CMP = "old-20261201-172050-284d2f3"


@pytest.fixture()
def old(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def test_runs_and_comparison_of_an_old_workspace_load(old):
    infos = old.list_runs()
    assert [i.state for i in infos] == ["done"] * 4 and {i.arm for i in infos} == {"shuffle", "folding L=3"}
    assert all(i.last_metrics.get("target_loss") is not None for i in infos)
    manifest = old.load_comparison(CMP)
    # its spec used the "orderings" shorthand with one top-level selection: it still parses
    spec = parse_spec(manifest["spec"])
    assert spec.labels == ["shuffle", "folding L=3"] and spec.selection.ratio == 0.8
    assert describe_data(manifest) == (
        "1,925 training documents · scored by length · 65 exact duplicates dropped · top-r 0.8 kept 1,488"
    )


def test_old_runs_get_todays_verdicts(old):
    summary = summarize(old.comparison_curves(CMP), baseline="shuffle")
    assert summary["baseline"] == "shuffle" and set(summary["arms"]) == {"shuffle", "folding L=3"}
    assert {(v.arm, v.metric) for v in summary["verdicts"]} == {
        ("folding L=3", "target_loss"),
        ("folding L=3", "bench_acc_norm"),
    }
    assert all(v.verdict in ("better", "worse", "unresolved") for v in summary["verdicts"])


def test_old_scoring_is_listed(old, tmp_path):
    (scoring,) = list_scorings(old.root)
    assert scoring.method == "length" and scoring.state == "done" and "length" in latest_done([scoring])


def test_cli_reports_an_old_comparison(old):
    out = subprocess.run(
        [sys.executable, "-m", "delt_engine", "runs", "report", CMP, "--workspace", str(old.root), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {v["arm"] for v in report["verdicts"]} == {"folding L=3"} and report["baseline"] == "shuffle"
    listed = subprocess.run(
        [sys.executable, "-m", "delt_engine", "runs", "list", "--workspace", str(old.root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and listed.stdout.count(" done ") == 4
