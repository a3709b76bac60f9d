"""Run registry: listing, loading, tolerant metrics reading, reaping of dead processes."""

import json
import os
import signal
import subprocess
import sys

import polars as pl
import pytest

from delt_engine.errors import DataError
from delt_engine.fileio import append_jsonl, write_json
from delt_engine.jobs import records as runsmod
from delt_engine.jobs.protocol import read_status, write_status
from delt_engine.jobs.records import read_metrics
from delt_engine.workspace import layout as wsmod
from delt_engine.workspace.layout import Workspace, default_workspace


def _make_run(ws, run_id, state="done", seed=0, arm="shuffle", comparison="cmp-a", n_metrics=3, **status):
    d = ws.runs / run_id
    d.mkdir()
    write_json(
        d / "config.json",
        {
            "input": "x.parquet",
            "model": "cpu-demo",
            "seed": seed,
            "provenance": {
                "comparison": comparison,
                "arm": arm,
                "seed": seed,
                "ordering": {"method": arm.split()[0], "label": arm},
            },
        },
    )
    write_status(d, state, **status)
    for step in range(1, n_metrics + 1):
        append_jsonl(d / "metrics.jsonl", {"step": step, "tokens": 100 * step, "train_loss": 10.0 - step})
    return d


def test_default_workspace_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DELT_WORKSPACE", str(tmp_path / "w"))
    assert default_workspace().root == tmp_path / "w"
    monkeypatch.delenv("DELT_WORKSPACE")
    assert default_workspace().root == wsmod.Path("workspace")


def test_subfolders_created_lazily(tmp_path):
    ws = Workspace(tmp_path / "w")
    assert ws.list_runs() == [] and not (tmp_path / "w").exists()
    assert ws.cache.is_dir() and ws.scores.is_dir() and not (tmp_path / "w" / "runs").exists()


def test_new_run_dir_ids_are_unique_and_time_sortable(tmp_path):
    ws = Workspace(tmp_path)
    ids = [ws.new_run_dir().name for _ in range(30)]  # far faster than one a millisecond
    assert len(set(ids)) == 30 and all(i.startswith("run-") for i in ids)
    assert sorted(ids) == ids  # made one after another, they sort in that order (the runs list order)
    import time

    first = ws.new_run_dir().name
    time.sleep(0.01)
    assert ws.new_run_dir().name > first


def test_run_info_carries_the_gpu_the_manager_gave(tmp_path):
    ws = Workspace(tmp_path)
    _make_run(ws, "run-1", gpu="5")
    _make_run(ws, "run-2")
    assert [i.gpu for i in ws.list_runs()] == ["5", None]


def test_load_run_tolerates_partial_last_line(tmp_path):
    ws = Workspace(tmp_path)
    d = _make_run(ws, "run-1", state="running", pid=os.getpid())
    append_jsonl(
        d / "metrics.jsonl",
        {
            "step": 3,
            "tokens": 300,
            "target_loss": 6.5,
            "bench_acc": 0.3,
            "bench": {"arc": {"acc": 0.25, "acc_norm": 0.3}},
        },
    )
    with open(d / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 4, "tokens": 4')  # a writer mid-line
    rec = ws.load_run("run-1")
    m = rec.metrics
    assert m.height == 4 and m["step"].to_list() == [1, 2, 3, 3]
    assert m.schema["tokens"] == pl.Int64 and m.schema["train_loss"] == pl.Float64
    assert m["bench.arc.acc"].to_list() == [None, None, None, 0.25]
    assert runsmod.metrics_frame([{"step": 1, "val_loss": None}]).schema["val_loss"] == pl.Float64
    assert rec.status["state"] == "running" and rec.config["model"] == "cpu-demo"


def test_read_metrics_resumes_from_offset(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    records, off = read_metrics(d)
    assert records == [] and off == 0
    append_jsonl(d / "metrics.jsonl", {"step": 1, "train_loss": 2.0})
    with open(d / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 2, "train_')
    records, off = read_metrics(d)
    assert [r["step"] for r in records] == [1]
    with open(d / "metrics.jsonl", "a") as fh:
        fh.write('loss": 1.5}\n')
    records, off2 = read_metrics(d, off)
    assert records == [{"step": 2, "train_loss": 1.5}] and off2 == (d / "metrics.jsonl").stat().st_size
    assert read_metrics(d, off2) == ([], off2)


def test_last_metrics_reads_only_the_tail(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    lines = [json.dumps({"step": s, "tokens": s * 10, "train_loss": 1000.0 / s}) for s in range(1, 2000)]
    lines.insert(5, json.dumps({"step": 5, "target_loss": 9.0}))
    lines.append(json.dumps({"step": 1999, "target_loss": 3.25, "bench": {"t": {"acc": 0.5}}}))
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n" + '{"step": 2000, "trai')
    assert (d / "metrics.jsonl").stat().st_size > runsmod.TAIL_BYTES
    last = runsmod.last_metrics(d)
    assert last["step"] == 1999 and last["target_loss"] == 3.25 and last["train_loss"] == pytest.approx(1000 / 1999)


def test_list_100_runs(tmp_path):
    ws = Workspace(tmp_path)
    expected = {}
    for i in range(100):
        state = ("done", "failed", "cancelled", "running")[i % 4]
        extra = {"pid": os.getpid()} if state == "running" else {}
        arm = "shuffle" if i % 2 else "folding L=3"
        d = _make_run(
            ws,
            f"run-{i:03d}",
            state=state,
            seed=i % 3,
            arm=arm,
            comparison=f"cmp-{i % 5}",
            n_metrics=1 + i % 4,
            **extra,
        )
        fraction = {"done": 1.0, "running": 0.0}.get(state)
        if i % 8 == 3:  # a running run in its training phase
            write_json(d / "progress.json", {"phase": "train", "done": i, "total": 100, "fraction": i / 100})
            fraction = i / 100
        expected[f"run-{i:03d}"] = (state, i % 3, arm, f"cmp-{i % 5}", 10.0 - (1 + i % 4), fraction)
    (ws.runs / "stray-file.txt").write_text("not a run")
    (ws.runs / "run-999-broken").mkdir()
    (ws.runs / "run-999-broken" / "status.json").write_text("{not json")
    infos = ws.list_runs()
    broken = infos.pop()
    assert broken.id == "run-999-broken" and broken.state == "unknown" and "unreadable" in broken.error
    assert [i.id for i in infos] == sorted(expected)
    for info in infos:
        state, seed, arm, cmp, loss, fraction = expected[info.id]
        assert (info.state, info.seed, info.arm, info.comparison, info.model) == (state, seed, arm, cmp, "cpu-demo")
        assert info.ordering == arm and info.last_metrics["train_loss"] == loss
        assert info.progress == fraction
    only = ws.list_runs(comparison="cmp-3")
    assert [i.id for i in only] == [k for k, v in sorted(expected.items()) if v[3] == "cmp-3"] and len(only) == 20


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reaping_a_killed_process(tmp_path):
    ws = Workspace(tmp_path)
    d = ws.new_run_dir()
    write_json(d / "config.json", {"model": "tiny-test"})
    code = (
        "import sys, os, time\nsys.path.insert(0, sys.argv[2])\n"
        "from delt_engine.jobs.protocol import write_status\n"
        "write_status(sys.argv[1], 'running', pid=os.getpid())\n"
        "print('working', flush=True)\nwhile True: time.sleep(0.05)\n"
    )
    with open(d / "job.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(d), str(wsmod.Path(wsmod.__file__).parents[2])],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(200):
            if read_status(d).get("state") == "running":
                break
            proc.wait(timeout=0.05) if proc.poll() is not None else __import__("time").sleep(0.05)
        assert ws.list_runs()[0].state == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    info = ws.list_runs()[0]
    assert info.state == "failed"
    assert info.error == f"process {proc.pid} exited without finishing (killed or crashed)"
    assert read_status(d)["log_tail"] == "working" and read_status(d)["ended_at"]


def test_reaping_queued_run_whose_manager_died(tmp_path):
    ws = Workspace(tmp_path)
    d = _make_run(ws, "run-q", state="queued", manager_pid=_dead_pid())
    _make_run(ws, "run-alive", state="queued", manager_pid=os.getpid())
    states = {i.id: (i.state, i.error) for i in ws.list_runs()}
    assert states["run-alive"] == ("queued", None)
    assert states["run-q"][0] == "failed" and "job manager" in states["run-q"][1]
    assert read_status(d)["state"] == "failed"
    assert {i.id: i.state for i in ws.list_runs(reap=False)}["run-q"] == "failed"


def test_run_dir_errors_and_comparisons(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(DataError, match="not found"):
        ws.load_run("nope")
    with pytest.raises(DataError, match="comparison 'c1' not found"):
        ws.load_comparison("c1")
    _make_run(ws, "run-a", arm="shuffle", seed=0)
    _make_run(ws, "run-b", arm="folding L=3", seed=0, n_metrics=0)
    write_json(
        ws.comparisons / "c1" / "comparison.json",
        {
            "id": "c1",
            "runs": [{"id": "run-a", "arm": "shuffle", "seed": 0}, {"id": "run-b", "arm": "folding L=3", "seed": 0}],
        },
    )
    curves = ws.comparison_curves("c1")
    assert curves.columns[:5] == ["run", "arm", "seed", "step", "tokens"]
    assert curves["run"].to_list() == ["run-a"] * 3  # run-b has no metrics yet
    assert [c["id"] for c in ws.list_comparisons()] == ["c1"]
