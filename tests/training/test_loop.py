"""Ordered training of one run: sequential order, budgets, LR schedule, live metrics, cancel, crash."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from delt_engine.data.tokenizer import load_tokenizer
from delt_engine.errors import ConfigError, DataError
from delt_engine.fileio import iter_jsonl_tolerant, read_json, write_json
from delt_engine.jobs.protocol import read_status
from delt_engine.jobs.train_job import train
from delt_engine.training.config import RunConfig
from delt_engine.training.loop import lr_at
from tests.conftest import ROOT

WORDS = "the cat sat on a mat dog ran far away big small red blue green tree house river stone".split()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _text(i: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(3 + i % 9))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Ordered data whose file order is not the id order (ids d0..d9 permuted), with scores."""
    root = tmp_path_factory.mktemp("data")
    order = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]
    rows = [{"id": f"d{i}", "text": _text(i), "score": i / 10} for i in order]
    with open(root / "ordered.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    with open(root / "heldout.jsonl", "w") as fh:
        fh.writelines(json.dumps({"text": _text(i + 20)}) + "\n" for i in range(6))
    items = [
        {
            "task": "a" if i < 3 else "b",
            "context": "the cat" if i % 2 else "",
            "choices": ["sat on", "ran far"],
            "answer": i % 2,
        }
        for i in range(5)
    ]
    with open(root / "bench.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in items)
    return {
        "root": root,
        "rows": rows,
        "input": str(root / "ordered.jsonl"),
        "cache": str(root / "cache"),
        "heldout": str(root / "heldout.jsonl"),
        "bench": str(root / "bench.jsonl"),
    }


def _config(data, **kw) -> RunConfig:
    base = dict(
        input=data["input"],
        model="tiny-test",
        cache_dir=data["cache"],
        batch_size=4,
        max_length=16,
        device="cpu",
        lr=1e-2,
    )
    base.update(kw)
    return RunConfig(**base)


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_sequential_order_is_what_the_model_sees_across_two_epochs(data, tmp_path):
    seen = []
    summary = train(_config(data, epochs=2), tmp_path / "run", on_batch=lambda step, ids: seen.append((step, ids)))
    ids = [r["id"] for r in data["rows"]]
    expected = [ids[0:4], ids[4:8], ids[8:10]] * 2  # last partial batch kept, same order each epoch
    assert [s for s, _ in seen] == list(range(1, 7))
    assert [list(b) for _, b in seen] == expected
    assert summary["state"] == "done" and summary["steps"] == 6
    train_lines = [r for r in _lines(tmp_path / "run") if "train_loss" in r]
    scores = [r["score"] for r in data["rows"]]
    expected_scores = [sum(scores[a:b]) / (b - a) for a, b in ((0, 4), (4, 8), (8, 10))] * 2
    assert [r["batch_score"] for r in train_lines] == pytest.approx(expected_scores)
    assert [r["epoch"] for r in train_lines] == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2], abs=1e-4)
    assert read_status(tmp_path / "run")["state"] == "done"


def test_same_config_gives_same_losses(data, tmp_path):
    a = train(_config(data, steps=3), tmp_path / "a")
    b = train(_config(data, steps=3), tmp_path / "b")
    losses = [[r["train_loss"] for r in _lines(tmp_path / name)[:3]] for name in ("a", "b")]
    assert losses[0] == losses[1]
    assert a["train_loss"] == b["train_loss"]


def test_save_model_writes_a_loadable_model_with_the_runs_final_losses(data, tmp_path):
    from delt_engine.models.presets import load_model_dir
    from delt_engine.training.evaluation import load_eval_sets, run_eval

    cfg = _config(data, steps=3, target=data["heldout"], save_model=True)
    summary = train(cfg, tmp_path / "run")
    model_dir = tmp_path / "run" / "model"
    assert summary["model_dir"] == str(model_dir) and list(model_dir.glob("*.safetensors"))
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".model.tmp")]
    model, tok = load_model_dir(model_dir), load_tokenizer(model_dir)
    got = run_eval(model, tok, load_eval_sets(cfg, tok), cfg, torch.device("cpu"), None)["target_loss"]
    assert got == pytest.approx(summary["target_loss"], rel=1e-6)
    untrained = train(_config(data, steps=1, lr=1e-9, target=data["heldout"]), tmp_path / "other")
    assert untrained["target_loss"] != pytest.approx(got, rel=1e-3)  # the saved weights are the trained ones
    assert "model_dir" not in untrained and not (tmp_path / "other" / "model").exists()


def test_token_budget_stops_at_the_first_step_that_reaches_it(data, tmp_path):
    first = train(_config(data, steps=1), tmp_path / "probe")
    tok = load_tokenizer(first["tokenizer"])
    # Brute force: real tokens per row = text tokens + EOS, truncated to max_length.
    lengths = [min(len(tok(r["text"], add_special_tokens=False)["input_ids"]) + 1, 16) for r in data["rows"]]
    per_batch = [sum(lengths[a:b]) for a, b in ((0, 4), (4, 8), (8, 10))] * 2
    cumulative = [sum(per_batch[: k + 1]) for k in range(len(per_batch))]
    budget = cumulative[3] + 1  # needs the 5th step, in the second epoch
    summary = train(_config(data, tokens=budget, epochs=2), tmp_path / "run")
    assert summary["steps"] == 5 and summary["total_steps"] == 5
    assert summary["tokens"] == cumulative[4] >= budget > cumulative[3]
    assert [r["tokens"] for r in _lines(tmp_path / "run") if "train_loss" in r] == cumulative[:5]
    with pytest.raises(ConfigError, match="raise epochs"):
        train(_config(data, tokens=cumulative[-1] + 1, epochs=2), tmp_path / "too-many")


def test_lr_schedule_warmup_cosine_and_floor():
    # 100 steps, 5 warm-up steps, peak 1, floor 0.1: hand-computed values.
    assert [lr_at(i, 100, 1.0, 0.05, 0.1) for i in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lr_at(5, 100, 1.0, 0.05, 0.1) == pytest.approx(1.0)
    assert lr_at(52, 100, 1.0, 0.05, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lr_at(28, 100, 1.0, 0.05, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 23 / 94)))
    assert lr_at(99, 100, 1.0, 0.05, 0.1) == pytest.approx(0.1)
    decay = [lr_at(i, 100, 1.0, 0.05, 0.1) for i in range(5, 100)]
    assert all(a >= b for a, b in zip(decay, decay[1:])) and min(decay) == pytest.approx(0.1)


def test_logged_lr_follows_the_schedule(data, tmp_path):
    cfg = _config(data, epochs=4, warmup_frac=0.25, lr=0.01)  # 12 steps, 3 warm-up
    train(cfg, tmp_path / "run")
    logged = [r["lr"] for r in _lines(tmp_path / "run") if "train_loss" in r]
    assert logged == pytest.approx([lr_at(i, 12, 0.01, 0.25, 0.1) for i in range(12)])
    assert logged[:3] == pytest.approx([0.01 / 3, 0.02 / 3, 0.01]) and logged[-1] == pytest.approx(0.001)


def test_eval_lines_every_n_steps_and_at_the_end(data, tmp_path):
    cfg = _config(
        data,
        steps=5,
        epochs=2,
        eval_every=2,
        log_every=2,
        validation=data["heldout"],
        target=data["heldout"],
        benchmark=data["bench"],
        bf16=True,
    )
    summary = train(cfg, tmp_path / "run")
    lines = _lines(tmp_path / "run")
    evals = [r for r in lines if "val_loss" in r]
    assert [r["step"] for r in evals] == [0, 2, 4, 5]  # step 0: the untrained model
    assert evals[0]["tokens"] == 0 and lines[0] is evals[0]
    assert [r["step"] for r in lines if "train_loss" in r] == [2, 4, 5]
    last = evals[-1]
    assert last["val_loss"] == pytest.approx(last["target_loss"]) and last["val_loss"] > 0
    assert set(last["bench"]) == {"a", "b"} and set(last["bench"]["a"]) == {"acc", "acc_norm"}
    assert last["bench_acc"] == pytest.approx((last["bench"]["a"]["acc"] + last["bench"]["b"]["acc"]) / 2)
    assert summary["val_loss"] == last["val_loss"] and summary["eval_step"] == 5 and summary["bf16"] is True
    assert read_json(tmp_path / "run" / "summary.json") == summary


def test_step_zero_eval_is_the_same_for_every_ordering_of_a_seed(data, tmp_path):
    reversed_input = tmp_path / "reversed.jsonl"
    reversed_input.write_text("".join(json.dumps(r) + "\n" for r in reversed(data["rows"])))
    firsts = []
    for name, path in (("a", data["input"]), ("b", str(reversed_input))):
        train(_config(data, input=path, steps=2, eval_every=2, target=data["heldout"]), tmp_path / name)
        evals = [r for r in _lines(tmp_path / name) if "target_loss" in r]
        assert [r["step"] for r in evals] == [0, 2]
        firsts.append(evals[0]["target_loss"])
        assert evals[1]["target_loss"] != evals[0]["target_loss"]  # training moved the model
    assert firsts[0] == firsts[1]  # same seed, same tokenizer: the same untrained model
    train(_config(data, steps=2, eval_every=2, target=data["heldout"], eval_at_start=False), tmp_path / "c")
    assert [r["step"] for r in _lines(tmp_path / "c") if "target_loss" in r] == [2]


def test_crash_in_a_hook_marks_the_run_failed_and_keeps_metrics(data, tmp_path):
    def boom(step, ids):
        if step == 3:
            raise RuntimeError("forced crash at step 3")

    with pytest.raises(RuntimeError, match="forced crash"):
        train(_config(data, epochs=2), tmp_path / "run", on_batch=boom)
    status = read_status(tmp_path / "run")
    assert status["state"] == "failed" and "forced crash at step 3" in status["error"]
    assert [r["step"] for r in _lines(tmp_path / "run")] == [1, 2]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["state"] == "failed" and summary["steps"] == 2 and "forced crash" in summary["error"]


def test_benchmark_deleted_mid_run_fails_with_its_name(data, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text((data["root"] / "bench.jsonl").read_text())

    def delete(step, ids):
        if step == 2:
            bench.unlink()

    # The benchmark is read at set-up; deleting it mid-run is harmless. A missing file at set-up fails.
    train(_config(data, steps=3, eval_every=1, benchmark=str(bench)), tmp_path / "ok", on_batch=delete)
    with pytest.raises(DataError, match="bench.jsonl"):
        train(_config(data, steps=3, benchmark=str(bench)), tmp_path / "run")
    assert read_status(tmp_path / "run")["state"] == "failed"
    assert "bench.jsonl" in read_status(tmp_path / "run")["error"]


def test_refuses_a_run_dir_with_metrics(data, tmp_path):
    train(_config(data, steps=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="new --run-dir"):
        train(_config(data, steps=1), tmp_path / "run")


def test_bad_input_rows_name_the_problem(data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "ok"}\n{"id": "b", "body": "no text"}\n')
    with pytest.raises(DataError, match="row 2"):
        train(_config(data, input=str(bad)), tmp_path / "run")
    bad.write_text('{"id": "a", "text": "ok"}\n{"id": \n')
    with pytest.raises(DataError, match="bad.jsonl:2"):
        train(_config(data, input=str(bad)), tmp_path / "run2")


def test_parquet_input_keeps_file_order(data, tmp_path):
    import polars as pl

    path = tmp_path / "ordered.parquet"
    pl.DataFrame(data["rows"]).write_parquet(path)
    seen = []
    train(_config(data, input=str(path)), tmp_path / "run", on_batch=lambda s, ids: seen.extend(ids))
    assert seen == [r["id"] for r in data["rows"]]


# ----------------------------------------------------------------------------------- config
def test_config_round_trip_and_unknown_keys(data):
    cfg = _config(data, steps=7, betas=(0.8, 0.9), provenance={"ordering": "folding", "layers": 3})
    d = json.loads(json.dumps(cfg.to_dict()))
    assert RunConfig.from_dict(d) == cfg
    with pytest.raises(ConfigError, match="unknown run config key.*stepz"):
        RunConfig.from_dict({**d, "stepz": 3})
    with pytest.raises(ConfigError, match="input"):
        RunConfig.from_dict({"steps": 3})


@pytest.mark.parametrize(
    "field,value",
    [
        ("batch_size", 0),
        ("max_length", 1),
        ("steps", 0),
        ("tokens", -5),
        ("epochs", 0),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("warmup_frac", 1.0),
        ("min_lr_frac", 1.5),
        ("weight_decay", -0.1),
        ("betas", (0.9, 1.0)),
        ("grad_clip", 0.0),
        ("seed", -1),
        ("device", "tpu"),
        ("log_every", 0),
        ("eval_every", 0),
        ("eval_max_samples", 0),
        ("batch_size", 2.5),
        ("steps", True),
        ("bf16", "yes"),
        ("provenance", {"x": object()}),
        ("model", ""),
    ],
)
def test_config_validation_names_field_and_value(field, value):
    with pytest.raises(ConfigError) as err:
        RunConfig(input="x.jsonl", **{field: value})
    assert field.split("[")[0] in str(err.value)


def test_config_rejects_two_budgets():
    with pytest.raises(ConfigError, match="steps=3 and tokens=100"):
        RunConfig(input="x.jsonl", steps=3, tokens=100)


# ------------------------------------------------------------------------- subprocess (CLI)
def _env():
    # One torch thread: on a busy machine oversubscribed OpenMP threads slow tiny models down ~10x.
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def test_metrics_grow_live_while_a_job_runs(data, tmp_path):
    run = tmp_path / "run"
    write_json(run / "config.json", _config(data, steps=150, epochs=50).to_dict())
    proc = subprocess.Popen(
        [sys.executable, "-m", "delt_engine", "train", "--run-dir", str(run)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    counts, deadline = [], time.time() + 60
    while proc.poll() is None and time.time() < deadline:
        n = sum(1 for _ in iter_jsonl_tolerant(run / "metrics.jsonl"))
        if n and (not counts or n > counts[-1]):
            counts.append(n)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert len(counts) >= 3, f"saw the file grow only {len(counts) - 1} times: {counts}"  # first count + 2 growths
    assert read_status(run)["state"] == "done" and read_status(run)["pid"] == proc.pid
    assert len(_lines(run)) == 151  # 150 train lines + the final eval


def test_sigterm_cancels_gracefully_with_metrics_intact(data, tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "delt_engine",
        "train",
        "--input",
        data["input"],
        "--run-dir",
        str(run),
        "--model",
        "tiny-test",
        "--cache-dir",
        data["cache"],
        "--batch-size",
        "4",
        "--max-length",
        "16",
        "--steps",
        "100000",
        "--epochs",
        "40000",
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while sum(1 for _ in iter_jsonl_tolerant(run / "metrics.jsonl")) < 3 and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    status = read_status(run)
    assert status["state"] == "cancelled" and status["error"] is None
    lines = _lines(run)  # every line parses
    assert len(lines) >= 3 and [r["step"] for r in lines] == list(range(1, len(lines) + 1))
    summary = read_json(run / "summary.json")
    assert summary["state"] == "cancelled" and summary["stopped_early"] and summary["steps"] == lines[-1]["step"]
    assert summary["total_steps"] == 100000 and summary["tokens"] == lines[-1]["tokens"]


def test_stop_flag_in_process_cancels_and_keeps_what_was_reached(data, tmp_path):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 4  # checked before every step: 4 steps run

    summary = train(_config(data, epochs=3, log_every=2), tmp_path / "run", should_stop=should_stop)
    assert summary["state"] == "cancelled" and summary["steps"] == 4 and summary["total_steps"] == 9
    assert read_status(tmp_path / "run")["state"] == "cancelled"
    assert [r["step"] for r in _lines(tmp_path / "run")] == [2, 4]  # no final eval on cancel


def test_unknown_model_is_refused_before_anything_is_written(data, tmp_path):
    with pytest.raises(ConfigError, match="neither a preset"):
        train(_config(data, model="no-such-model"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_job_with_a_bad_config_json_ends_failed(tmp_path):
    from delt_engine.jobs.train_job import train_run

    write_json(tmp_path / "config.json", {"input": "x.jsonl", "batch_size": 0})
    with pytest.raises(ConfigError, match="batch_size=0"):
        train_run(tmp_path)
    status = read_status(tmp_path)
    assert status["state"] == "failed" and "batch_size=0" in status["error"]
