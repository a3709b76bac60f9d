"""Trackers: live TensorBoard / MLflow logging of a training job, read back with each tool's own reader
and compared with metrics.jsonl; cancelled, failed and broken-tracker runs; missing packages."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from delt_engine.errors import ConfigError, DeltError
from delt_engine.fileio import read_json, write_json
from delt_engine.jobs import trackers
from delt_engine.jobs.protocol import read_status
from delt_engine.jobs.train_job import train, train_run
from delt_engine.training.config import RunConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
WORDS = "the cat sat on a mat dog ran far away big small red blue green tree house river stone".split()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rows = [
        {
            "id": f"d{i}",
            "text": " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(3 + i % 9)),
            "score": i / 10,
        }
        for i in range(12)
    ]
    (root / "ordered.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # a group value MLflow cannot take as it is: "(missing)" (the documents without a kind)
    val = [{"text": r["text"], **({"kind": ["story", "fact"][i % 2]} if i % 3 else {})} for i, r in enumerate(rows)]
    (root / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    items = [
        {
            "task": "facts" if i < 3 else "grammar",
            "context": "the cat" if i % 2 else "",
            "choices": ["sat on", "ran far"],
            "answer": i % 2,
        }
        for i in range(6)
    ]
    (root / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    return root


@pytest.fixture(autouse=True)
def no_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _config(data, **kw) -> RunConfig:
    base = dict(
        input=str(data / "ordered.jsonl"),
        model="tiny-test",
        cache_dir=str(data / "cache"),
        batch_size=4,
        max_length=16,
        device="cpu",
        lr=1e-2,
        steps=6,
        epochs=None,
        eval_every=2,
        validation=str(data / "val.jsonl"),
        benchmark=str(data / "bench.jsonl"),
        group_by="kind",
        group_min_docs=1,
        report_to=("tensorboard", "mlflow"),
        provenance={"comparison": "cmp-t", "arm": "folding L=3", "seed": 1},
    )
    base.update(kw)
    return RunConfig(**base)


def _flat(record: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in record.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def expected_series(run_dir) -> dict[str, list[tuple[int, float]]]:
    """What the trackers should hold, straight from metrics.jsonl: every number under its flattened name
    (not step, not elapsed_s) at its record's step, the first value where a step repeats a name."""
    series: dict[str, dict[int, float]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for name, value in _flat(record).items():
            if name in ("step", "elapsed_s") or value is None or isinstance(value, (bool, str)):
                continue
            series.setdefault(name, {}).setdefault(record["step"], float(value))
    return {name: sorted(points.items()) for name, points in series.items()}


def tensorboard_series(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def as_float32(series: dict) -> dict:
    return {name: [(s, float(np.float32(v))) for s, v in points] for name, points in series.items()}


def mlflow_run(store, experiment: str):
    """(client, the single MLflow run) of ``experiment`` in the file store ``store``."""
    trackers.import_mlflow()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {store}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, runs
    return client, runs[0]


def mlflow_series(client, run) -> dict[str, list[tuple[int, float]]]:
    return {
        name: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
        for name in run.data.metrics
    }


def test_report_to_is_validated_and_round_trips():
    assert RunConfig(input="x").report_to == ()
    config = RunConfig(input="x", report_to="tensorboard, mlflow")
    assert config.report_to == ("tensorboard", "mlflow") and config.to_dict()["report_to"] == ["tensorboard", "mlflow"]
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert RunConfig(input="x", report_to="none").report_to == ()
    with pytest.raises(ConfigError, match="unknown tracker 'wandb'; use any of tensorboard, mlflow"):
        RunConfig(input="x", report_to=["wandb"])
    with pytest.raises(ConfigError, match="names a tracker twice"):
        RunConfig(input="x", report_to=["mlflow", "mlflow"])
    with pytest.raises(ConfigError, match="must be a list of tracker names"):
        RunConfig(input="x", report_to=[1])


def test_one_value_per_name_and_step_the_first():
    stream = trackers.ScalarStream()
    assert stream.scalars(
        {"step": 2, "tokens": 60, "train_loss": 5.0, "lr": 1e-3, "elapsed_s": 0.2, "batch_score": None}
    ) == (2, {"tokens": 60.0, "train_loss": 5.0, "lr": 1e-3})
    assert stream.scalars(
        {
            "step": 2,
            "tokens": 60,
            "val_loss": 4.0,
            "elapsed_s": 0.3,
            "bench": {"a": {"acc": 0.5}},
            "group_loss": {"kind": {"(missing)": 4.5}},
        }
    ) == (2, {"val_loss": 4.0, "bench.a.acc": 0.5, "group_loss.kind.(missing)": 4.5})
    assert stream.scalars({"step": 3, "tokens": 90}) == (3, {"tokens": 90.0})
    assert stream.scalars({"tokens": 5}) is None
    assert trackers.mlflow_name("group_loss.kind.(missing)") == "group_loss.kind._missing_"
    assert trackers.mlflow_name("bench.a/b.acc") == "bench.a_b.acc"


def test_live_run_logs_the_same_values_as_metrics_jsonl(data, tmp_path):
    run_dir = tmp_path / "ws" / "runs" / "run-live"
    summary = train(_config(data), run_dir)
    assert summary["state"] == "done"
    expected = expected_series(run_dir)
    assert {
        "train_loss",
        "lr",
        "tokens",
        "val_loss",
        "bench_acc",
        "bench_acc_norm",
        "bench.facts.acc",
        "bench.grammar.acc_norm",
        "group_loss.kind.story",
        "group_loss.kind.(missing)",
    } <= set(expected)
    assert [s for s, _ in expected["val_loss"]] == [0, 2, 4, 6] and len(expected["train_loss"]) == 6

    # TensorBoard: the run's tb/ folder, read by TensorBoard's own reader (32-bit floats)
    assert tensorboard_series(run_dir / "tb") == as_float32(expected)

    # MLflow: the workspace's file store, experiment = the comparison, the exact values
    client, run = mlflow_run(tmp_path / "ws" / "mlruns", "cmp-t")
    assert run.info.status == "FINISHED" and run.info.run_name == "folding L=3 s1"
    assert mlflow_series(client, run) == {trackers.mlflow_name(k): v for k, v in expected.items()}
    tags = run.data.tags
    assert (tags["comparison"], tags["arm"], tags["seed"], tags["delt.run_id"]) == (
        "cmp-t",
        "folding L=3",
        "1",
        "run-live",
    )
    params = run.data.params
    assert params["lr"] == "0.01" and params["report_to"] == '["tensorboard", "mlflow"]'
    assert params["provenance.arm"] == "folding L=3" and params["validation"] == str(data / "val.jsonl")
    info = read_json(run_dir / "trackers.json")
    assert info["state"] == "done" and info["errors"] == {} and info["mlflow"]["run_id"] == run.info.run_id
    assert info["tensorboard"]["log_dir"] == str((run_dir / "tb").resolve())


def test_cancelled_run_closes_its_trackers_with_what_it_recorded(data, tmp_path):
    run_dir = tmp_path / "ws" / "runs" / "run-cancel"
    done = []
    summary = train(
        _config(data), run_dir, on_step=lambda info: done.append(info["step"]), should_stop=lambda: len(done) >= 3
    )
    assert summary["state"] == "cancelled" and summary["steps"] == 3
    expected = expected_series(run_dir)
    assert max(s for points in expected.values() for s, _ in points) == 3
    assert tensorboard_series(run_dir / "tb") == as_float32(expected)
    client, run = mlflow_run(tmp_path / "ws" / "mlruns", "cmp-t")
    assert run.info.status == "KILLED"
    assert mlflow_series(client, run) == {trackers.mlflow_name(k): v for k, v in expected.items()}
    assert read_json(run_dir / "trackers.json")["state"] == "cancelled"


def test_failed_run_closes_its_trackers_failed(data, tmp_path):
    run_dir = tmp_path / "run-fail"  # a run folder outside a workspace: its own mlruns

    def crash(step, ids):
        if step == 4:
            raise RuntimeError("boom at step 4")

    with pytest.raises(RuntimeError, match="boom"):
        train(_config(data, report_to=("mlflow", "tensorboard"), provenance={}), run_dir, on_batch=crash)
    expected = expected_series(run_dir)
    assert max(s for points in expected.values() for s, _ in points) == 3
    client, run = mlflow_run(run_dir / "mlruns", "delt")
    assert run.info.status == "FAILED" and run.info.run_name == "run-fail"
    assert mlflow_series(client, run) == {trackers.mlflow_name(k): v for k, v in expected.items()}
    assert tensorboard_series(run_dir / "tb") == as_float32(expected)
    assert read_json(run_dir / "trackers.json")["state"] == "failed"
    assert read_status(run_dir)["state"] == "failed"


def test_a_failing_tracker_never_stops_the_run(data, tmp_path, monkeypatch, capfd):
    def broken(self, step, scalars, wall_time=None):
        raise OSError("No space left on device")

    monkeypatch.setattr(trackers.TensorBoardWriter, "log", broken)
    run_dir = tmp_path / "ws" / "runs" / "run-broken"
    summary = train(_config(data, steps=2), run_dir)
    assert summary["state"] == "done" and summary["steps"] == 2
    info = read_json(run_dir / "trackers.json")
    assert "No space left on device" in info["errors"]["tensorboard"] and "tensorboard" not in info
    assert "tensorboard tracker stopped" in capfd.readouterr().err
    client, run = mlflow_run(tmp_path / "ws" / "mlruns", "cmp-t")  # the other tracker carried on
    assert run.info.status == "FINISHED"
    assert mlflow_series(client, run) == {trackers.mlflow_name(k): v for k, v in expected_series(run_dir).items()}


@pytest.mark.parametrize("name, module", [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_missing_tracker_package_names_the_extra(data, tmp_path, monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` now raises ImportError
    assert trackers.missing_packages([name]) == [name]
    with pytest.raises(DeltError, match=r"pip install 'delt-studio\[trackers\]'"):
        train(_config(data, report_to=(name,)), tmp_path / "new")
    assert not (tmp_path / "new").exists()  # nothing written
    # job mode (a queued run's config.json): the run fails at once, with the same message
    job = tmp_path / "job"
    write_json(job / "config.json", _config(data, report_to=(name,)).to_dict())
    with pytest.raises(DeltError):
        train_run(job)
    status = read_status(job)
    assert status["state"] == "failed" and "delt-studio[trackers]" in status["error"]
    assert not (job / "metrics.jsonl").exists()


def test_no_report_to_writes_no_tracker_files(data, tmp_path):
    run_dir = tmp_path / "ws" / "runs" / "run-plain"
    assert train(_config(data, steps=1, report_to=()), run_dir)["state"] == "done"
    assert not (run_dir / "tb").exists() and not (run_dir / "trackers.json").exists()
    assert not (tmp_path / "ws" / "mlruns").exists()


def _open_at_once(store: str, i: int, barrier, results) -> None:
    barrier.wait()  # every process opens the store at the same moment
    try:
        labels = trackers.RunLabels(f"run-{i}", Path(f"run-{i}"), "cmp-race", "shuffle", i)
        trackers.MlflowWriter(store, labels, {"seed": str(i)}).close("done")
        results.put("ok")
    except Exception as exc:  # noqa: BLE001  (reported by the test)
        results.put(repr(exc))


def test_runs_starting_together_share_one_experiment(tmp_path):
    """A comparison's runs (separate processes) open a new store at the same moment: one experiment and
    one MLflow run each (without the store lock, six such processes made several experiments, or failed
    making the store's default experiment)."""
    import multiprocessing

    trackers.import_mlflow()  # imported once here, so the forked processes start at once
    store = (tmp_path / "mlruns").as_uri()
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_open_at_once, args=(store, i, barrier, results)) for i in range(6)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert outcomes == ["ok"] * 6
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    named = [e for e in client.search_experiments() if e.name == "cmp-race"]
    assert len(named) == 1
    runs = client.search_runs([named[0].experiment_id])
    assert sorted(r.data.tags["delt.run_id"] for r in runs) == [f"run-{i}" for i in range(6)]
    assert {r.info.status for r in runs} == {"FINISHED"}
