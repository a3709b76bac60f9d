"""Group training jobs: runs trained together write their run folders exactly as solo runs do, stop alone
on their own cancel file, and the job manager packs a comparison's compatible runs into one process."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

from delt_engine.fileio import read_json, write_json
from delt_engine.jobs.manager import JobManager, engine_command
from delt_engine.jobs.protocol import read_status
from delt_engine.jobs.train_job import train, train_group
from delt_engine.training.config import RunConfig, group_key
from tests.conftest import ROOT

WORDS = "the cat sat on a mat dog ran far away big small red blue green tree house river stone".split()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("group-data")
    inputs = []
    for a, mult in enumerate((3, 7)):
        with open(root / f"ordered{a}.jsonl", "w") as fh:
            for i in ((k * mult) % 20 for k in range(20)):
                text = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(3 + i % 11))
                fh.write(json.dumps({"id": f"d{i}", "text": text, "score": i / 20}) + "\n")
        inputs.append(str(root / f"ordered{a}.jsonl"))
    return {"inputs": inputs, "cache": str(root / "cache")}


def _config(data, a: int, seed: int, comparison: str = "cmp-1", **kw) -> RunConfig:
    base = dict(
        input=data["inputs"][a],
        model="tiny-test",
        cache_dir=data["cache"],
        batch_size=4,
        max_length=16,
        device="cpu",
        lr=1e-2,
        seed=seed,
        steps=8,
        epochs=3,
        eval_every=4,
        validation=data["inputs"][0],
        provenance={"comparison": comparison, "seed": seed},
    )
    base.update(kw)
    return RunConfig(**base)


def _prepared(tmp_path, name: str, config: RunConfig) -> Path:
    d = tmp_path / "runs" / name
    d.mkdir(parents=True)
    write_json(d / "config.json", config.to_dict())
    return d


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_group_writes_each_run_folder_as_a_solo_run_would(data, tmp_path):
    configs = [_config(data, 0, 0), _config(data, 1, 1, packing=True)]
    solo = [train(c, tmp_path / f"solo{i}") for i, c in enumerate(configs)]
    dirs = [_prepared(tmp_path, f"g{i}", c) for i, c in enumerate(configs)]
    summaries = train_group(dirs)
    for i, d in enumerate(dirs):
        assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in (tmp_path / f"solo{i}").iterdir())
        assert read_status(d)["state"] == "done" and read_status(d)["pid"] == os.getpid()
        summary = read_json(d / "summary.json")
        assert summary == summaries[d] and set(summary) - set(solo[i]) == {"group_size", "group_mode"}
        assert summary["steps"] == solo[i]["steps"] == 8 and summary["tokens"] == solo[i]["tokens"]
        got, expected = _metrics(d), _metrics(tmp_path / f"solo{i}")
        assert [r["step"] for r in got] == [r["step"] for r in expected]
        for a, b in zip(expected, got):
            for key in ("train_loss", "val_loss"):
                if a.get(key) is not None:
                    assert b[key] == pytest.approx(a[key], rel=2e-5)


def test_a_cancel_file_stops_only_that_member(data, tmp_path):
    dirs = [_prepared(tmp_path, f"g{i}", _config(data, i % 2, i, steps=12)) for i in range(3)]

    def on_step(run_dir, info):
        if run_dir == dirs[1] and info["step"] == 3:
            (run_dir / "cancel").touch()

    summaries = train_group(dirs, on_step=on_step)
    assert [summaries[d]["state"] for d in dirs] == ["done", "cancelled", "done"]
    assert [summaries[d]["steps"] for d in dirs] == [12, 3, 12]
    assert [read_status(d)["state"] for d in dirs] == ["done", "cancelled", "done"]
    assert summaries[dirs[1]]["stopped_early"] is True


def test_members_that_cannot_start_do_not_stop_the_group(data, tmp_path):
    good = _prepared(tmp_path, "good", _config(data, 0, 0))
    bad = tmp_path / "runs" / "bad"
    bad.mkdir(parents=True)
    write_json(bad / "config.json", {"input": data["inputs"][0], "stepz": 3})
    missing = _prepared(tmp_path, "missing", _config(data, 0, 1, input=str(tmp_path / "nope.jsonl")))
    summaries = train_group([good, bad, missing])
    assert summaries[good]["state"] == "done"
    assert summaries[bad]["state"] == "not started" and read_status(bad)["state"] == "failed"
    assert summaries[missing]["state"] == "failed" and "does not exist" in read_status(missing)["error"]


def test_group_key_separates_what_cannot_share_a_stack(data):
    a = _config(data, 0, 0)
    assert group_key(a) == group_key(_config(data, 1, 5, lr=3e-3, steps=4, grad_clip=None))
    for other in (
        _config(data, 0, 0, comparison="cmp-2"),
        _config(data, 0, 0, model="cpu-demo"),
        _config(data, 0, 0, packing=True),
        _config(data, 0, 0, batch_size=8),
        _config(data, 0, 0, bf16=True),
    ):
        assert group_key(other) != group_key(a)


def _wait_all(manager, dirs, timeout=240):
    return manager.wait(dirs, timeout=timeout, interval_s=0.1)


def test_manager_packs_a_comparisons_runs_into_one_process(data, tmp_path):
    together = [_prepared(tmp_path, f"c1-{i}", _config(data, i % 2, i)) for i in range(3)]
    apart = _prepared(tmp_path, "c2-0", _config(data, 0, 0, comparison="cmp-2"))
    manager = JobManager(
        max_concurrent=1, command_builder=engine_command(sys.executable), poll_interval_s=0.1, group_training=True
    )
    for d in together + [apart]:
        manager.submit(d, "train")
    statuses = _wait_all(manager, together + [apart])
    assert all(s["state"] == "done" for s in statuses.values()), statuses
    pids = {read_status(d)["pid"] for d in together}
    assert len(pids) == 1 and read_status(apart)["pid"] not in pids
    assert read_status(together[0])["group"] == [str(d.resolve()) for d in together]
    assert "group" not in read_status(apart)
    assert all(read_json(d / "summary.json")["group_size"] == 3 for d in together)


def test_manager_cancels_one_member_of_a_running_group(data, tmp_path):
    dirs = [
        _prepared(tmp_path, f"c1-{i}", _config(data, i % 2, i, steps=400, epochs=100, eval_every=None))
        for i in range(3)
    ]
    manager = JobManager(
        max_concurrent=1, command_builder=engine_command(sys.executable), poll_interval_s=0.1, group_training=True
    )
    for d in dirs:
        manager.submit(d, "train")
    deadline = time.monotonic() + 120
    while not (dirs[1] / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager.cancel(dirs[1]) == "stopping"
    statuses = _wait_all(manager, dirs)
    assert [statuses[d.resolve()]["state"] for d in dirs] == ["done", "cancelled", "done"]
    assert read_json(dirs[0] / "summary.json")["steps"] == 400
    assert read_json(dirs[1] / "summary.json")["steps"] < 400


def test_solo_managers_and_custom_builders_do_not_group(tmp_path):
    assert not JobManager(group_training=False)._groups_later("train")
    assert not JobManager(command_builder=lambda d, k: ["true"], group_training=True)._groups_later("train")
    assert JobManager(group_training=True)._groups_later("train")
    assert not JobManager(group_training=True)._groups_later("score")
    build = engine_command("/usr/bin/python3")
    assert build.group([Path("a"), Path("b")]) == [
        "/usr/bin/python3",
        "-m",
        "delt_engine",
        "train",
        "--group-dir",
        "a",
        "--group-dir",
        "b",
    ]


def test_cli_group_mode_exit_code_and_lines(data, tmp_path):
    import subprocess

    dirs = [_prepared(tmp_path, f"g{i}", _config(data, i % 2, i)) for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "delt_engine", "train"] + [x for d in dirs for x in ("--group-dir", str(d))]
    proc = subprocess.run(
        cmd + ["--group-dir", str(tmp_path / "nothing")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    assert "nothing: not started" in proc.stderr and proc.stderr.count("done: 8/8 steps") == 2
    again = subprocess.run(cmd + ["--steps", "3"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "no training flags" in again.stderr


def test_manager_splits_a_comparison_over_its_free_slots(data, tmp_path):
    dirs = [_prepared(tmp_path, f"c1-{i}", _config(data, i % 2, i, steps=4, eval_every=None)) for i in range(5)]
    manager = JobManager(
        max_concurrent=2, command_builder=engine_command(sys.executable), poll_interval_s=0.1, group_training=True
    )
    for d in dirs:
        manager.submit(d, "train")
    statuses = _wait_all(manager, dirs)
    assert all(s["state"] == "done" for s in statuses.values()), statuses
    groups = sorted(len(read_status(d).get("group", [d])) for d in dirs)
    assert groups == [2, 2, 3, 3, 3]  # 3 + 2: one process per slot, each a group
    assert len({read_status(d)["pid"] for d in dirs}) == 2
