"""`runs export --format tensorboard|mlflow` and `train --report-to`: runs converted from metrics.jsonl and
read back with TensorBoard's and MLflow's own readers."""

import json
import subprocess
import sys
from datetime import datetime

import pytest

from delt_engine.cli import main
from delt_engine.fileio import append_jsonl, write_json
from delt_engine.jobs import trackers
from delt_engine.jobs.protocol import read_status, write_status
from tests.conftest import ROOT
from tests.jobs.test_trackers import as_float32, expected_series, mlflow_series, tensorboard_series

ARMS = {"shuffle": 0.0, "folding L=3": -0.25}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """cmp-t: two arms x two seeds of hand-written metrics (nested bench and group losses, a group that
    MLflow must rename, elapsed_s), plus a run that never started."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ws = tmp_path / "ws"
    runs = []
    for arm, shift in ARMS.items():
        for seed in (0, 1):
            run_id = f"run-{arm.split()[0]}-{seed}"
            d = ws / "runs" / run_id
            write_json(
                d / "config.json",
                {
                    "input": "ordered.parquet",
                    "model": "tiny-test",
                    "seed": seed,
                    "lr": 0.003,
                    "provenance": {"comparison": "cmp-t", "arm": arm, "seed": seed},
                },
            )
            write_status(d, "done", pid=12345, started_at="2025-03-01T10:00:00.000")
            for step in (0, 2, 4):
                if step:
                    append_jsonl(
                        d / "metrics.jsonl",
                        {
                            "step": step,
                            "tokens": 100 * step,
                            "elapsed_s": 1.5 * step,
                            "train_loss": 6 - step / 3 + shift + 0.01 * seed,
                            "lr": 0.003 / step,
                            "batch_score": None,
                        },
                    )
                append_jsonl(
                    d / "metrics.jsonl",
                    {
                        "step": step,
                        "tokens": 100 * step,
                        "elapsed_s": 1.5 * step + 0.25,
                        "val_loss": 6.1 - step / 3 + shift,
                        "bench_acc": 0.3 - shift / 10,
                        "bench_acc_norm": None,
                        "bench": {"facts": {"acc": 0.25 + step / 100, "acc_norm": 0.2}},
                        "group_loss": {"kind": {"story": 6.3 - step / 4 + shift, "(missing)": 5.9 - step / 5}},
                    },
                )
            runs.append({"id": run_id, "arm": arm, "seed": seed})
    (ws / "runs" / "run-queued").mkdir()
    runs.append({"id": "run-queued", "arm": "shuffle", "seed": 2})
    write_json(
        ws / "comparisons" / "cmp-t" / "comparison.json",
        {"id": "cmp-t", "name": "t", "baseline": "shuffle", "arms": list(ARMS), "runs": runs},
    )
    return ws


def _export(ws, fmt, out, capsys):
    code = main(["runs", "export", "cmp-t", "--format", fmt, "--out", str(out), "--workspace", str(ws)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_export_mlflow_round_trips(workspace, tmp_path, capsys):
    out = tmp_path / "mlruns"
    printed = _export(workspace, "mlflow", out, capsys)
    assert "run-queued: skipped, no metrics" in printed
    trackers.import_mlflow()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=out.as_uri())
    experiment = client.get_experiment_by_name("cmp-t")
    found = {r.data.tags["delt.run_id"]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(found) == ["run-folding-0", "run-folding-1", "run-shuffle-0", "run-shuffle-1"]
    start = datetime.fromisoformat("2025-03-01T10:00:00.000").timestamp()
    for run_id, run in found.items():
        run_dir = workspace / "runs" / run_id
        expected = expected_series(run_dir)
        assert "group_loss.kind.(missing)" in expected and "bench.facts.acc" in expected
        assert mlflow_series(client, run) == {trackers.mlflow_name(k): v for k, v in expected.items()}
        arm, seed = run.data.tags["arm"], run.data.tags["seed"]
        assert (run.data.tags["comparison"], run_id) == ("cmp-t", f"run-{arm.split()[0]}-{seed}")
        assert run.info.run_name == f"{arm} s{seed}" and run.info.status == "FINISHED"
        assert run.data.params["lr"] == "0.003" and run.data.params["provenance.arm"] == arm
        assert run.info.start_time == round(start * 1000)
        # each event dated at the run's start + elapsed_s of the record that first gave it
        stamps = {m.step: m.timestamp for m in client.get_metric_history(run.info.run_id, "val_loss")}
        assert stamps == {s: round((start + 1.5 * s + 0.25) * 1000) for s in (0, 2, 4)}
        tokens = {m.step: m.timestamp for m in client.get_metric_history(run.info.run_id, "tokens")}
        assert tokens[2] == round((start + 3.0) * 1000)  # the train record of step 2 came first
    # a second export into the same store adds no copies
    again = _export(workspace, "mlflow", out, capsys)
    assert again.count("skipped, already in") == 4
    assert len(client.search_runs([experiment.experiment_id])) == 4


def test_export_tensorboard_round_trips(workspace, tmp_path, capsys):
    out = tmp_path / "tb"
    printed = _export(workspace, "tensorboard", out, capsys)
    assert "run-queued: skipped" in printed
    for arm in ARMS:
        for seed in (0, 1):
            folder = out / trackers.export_folder_name(arm) / f"seed{seed}"
            expected = expected_series(workspace / "runs" / f"run-{arm.split()[0]}-{seed}")
            assert tensorboard_series(folder) == as_float32(expected)
    assert sorted(p.name for p in out.iterdir()) == ["folding_L_3", "shuffle"]
    assert _export(workspace, "tensorboard", out, capsys).count("already holds event files") == 4


def test_export_default_stays_csv(workspace, tmp_path, capsys):
    printed = _export(workspace, "csv", tmp_path / "csv", capsys)
    assert "curves" in printed and (tmp_path / "csv" / "curves.csv").is_file()


def test_train_report_to_tensorboard_from_the_cli(tmp_path):
    from tests.jobs.test_trackers import WORDS

    rows = [{"id": f"d{i}", "text": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))} for i in range(8)]
    data = tmp_path / "ordered.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "delt_engine",
        "train",
        "--input",
        str(data),
        "--run-dir",
        str(run_dir),
        "--model",
        "tiny-test",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "12",
        "--device",
        "cpu",
    ]
    bad = subprocess.run(
        base + ["--report-to", "tensorboard,wandb"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "unknown tracker 'wandb'" in bad.stderr and not run_dir.exists()
    ok = subprocess.run(base + ["--report-to", "tensorboard"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((run_dir / "config.json").read_text())["report_to"] == ["tensorboard"]
    assert read_status(run_dir)["state"] == "done"
    assert tensorboard_series(run_dir / "tb") == as_float32(expected_series(run_dir))
