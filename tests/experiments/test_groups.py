"""Evaluation by group end to end: a tiny comparison on the demo with ``group_by: "kind"`` records every
kind's validation and target loss at every evaluation, the kinds' losses average back to the overall
loss (token-weighted), and `runs report --json` / `runs export` give forgetting per arm and kind and the
stream's make-up."""

import json

import polars as pl
import pytest

from delt_engine.experiments.prepare import prepare_comparison
from delt_engine.experiments.spec import demo_spec
from delt_engine.fileio import read_json
from delt_engine.jobs.train_job import train_run
from delt_engine.workspace.layout import Workspace
from tests.cli.test_runs import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    spec = demo_spec(
        orderings=[{"method": "shuffle"}, {"method": "folding", "layers": 3}],
        seeds=[0, 1],
        train={
            "model": "tiny-test",
            "device": "cpu",
            "batch_size": 16,
            "max_length": 32,
            "steps": 6,
            "eval_every": 3,
            "eval_max_samples": 200,
            "vocab_size": 512,
        },
    )
    assert spec["group_by"] == "kind"  # the demo's default
    cmp = prepare_comparison(spec, ws)
    for run_dir in cmp.run_dirs:
        assert train_run(run_dir)["state"] == "done"
    return ws, cmp


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_every_evaluation_records_the_loss_of_each_kind(comparison):
    ws, cmp = comparison
    for run_dir in cmp.run_dirs:
        assert read_json(run_dir / "config.json")["group_by"] == "kind"
        evals = [r for r in _records(run_dir) if "val_loss" in r]
        assert [r["step"] for r in evals] == [0, 3, 6]
        summary = read_json(run_dir / "summary.json")
        info = summary["groups"]
        assert info["group_by"] == "kind" and info["min_docs"] == 5
        for set_name, key, overall in (
            ("validation", "group_loss", "val_loss"),
            ("target", "target_group_loss", "target_loss"),
        ):
            tokens = info[set_name]["tokens"]
            assert len(tokens) >= 3 and all(n >= 5 for n in info[set_name]["docs"].values())
            for r in evals:
                groups = r[key]["kind"]
                assert set(groups) == set(tokens) and len(groups) >= 3
                back = sum(groups[g] * tokens[g] for g in groups) / sum(tokens.values())
                assert back == pytest.approx(r[overall], rel=1e-9)  # same forward pass, regrouped
        assert summary["group_loss"] == evals[-1]["group_loss"]
    # the held-out validation documents are clean: their kinds are the demo's clean kinds (all four here)
    kinds = set(read_json(cmp.run_dirs[0] / "summary.json")["groups"]["validation"]["docs"])
    assert kinds == {"encyclopedia", "story", "arithmetic", "dialogue"}


def test_report_json_lists_forgetting_per_arm_and_kind(comparison):
    ws, cmp = comparison
    out = cli("runs", "report", cmp.id, "--workspace", ws.root, "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    entries = [e for e in report["forgetting"] if e["set"] == "validation"]
    kinds = set(read_json(cmp.run_dirs[0] / "summary.json")["groups"]["validation"]["docs"])
    assert {(e["arm"], e["group"]) for e in entries} == {(a, k) for a in ("shuffle", "folding L=3") for k in kinds}
    for e in entries:
        assert {"arm", "group", "min_loss", "final_loss", "rise"} <= set(e) and e["n_seeds"] == 2
        assert e["rise"] == pytest.approx(e["final_loss"] - e["min_loss"]) and e["rise"] >= 0
        assert (e["rise_delta"] is None) == (e["arm"] == "shuffle")
    # the numbers are the runs' own: min and final of the recorded group loss, averaged over the 2 seeds
    fold = next(e for e in entries if e["arm"] == "folding L=3")
    runs = [d for d, r in zip(cmp.run_dirs, cmp.manifest["runs"]) if r["arm"] == "folding L=3"]
    per_run = [[r["group_loss"]["kind"][fold["group"]] for r in _records(d) if "group_loss" in r] for d in runs]
    assert fold["min_loss"] == pytest.approx(sum(min(v) for v in per_run) / 2)
    assert fold["final_loss"] == pytest.approx(sum(v[-1] for v in per_run) / 2)

    text = cli("runs", "report", cmp.id, "--workspace", ws.root, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "validation loss by kind" in text.stdout and "forgetting on the validation set by kind" in text.stdout
    assert "stream make-up: share of the documents of each kind" in text.stdout
    assert "steps  mean score" in text.stdout and "folding L=3:" in text.stdout


def test_export_writes_forgetting_group_curves_and_makeup(comparison, tmp_path):
    ws, cmp = comparison
    out = cli("runs", "export", cmp.id, "--out", tmp_path / "exp", "--workspace", ws.root, timeout=120)
    assert out.returncode == 0, out.stderr
    forgetting = pl.read_csv(tmp_path / "exp" / "forgetting.csv")
    assert {"arm", "group", "min_loss", "final_loss", "rise"} <= set(forgetting.columns)
    bands = pl.read_csv(tmp_path / "exp" / "group_curves_by_arm.csv")
    assert sorted(bands["step"].unique().to_list()) == [0, 3, 6]
    makeup = pl.read_csv(tmp_path / "exp" / "makeup.csv")
    assert set(makeup["arm"]) == {"shuffle", "folding L=3"}
    # shares of each window sum to 1; the 6 steps of 16 documents are the first 96 of each ordering
    sums = makeup.group_by(["arm", "window"]).agg(pl.col("share").sum(), pl.col("n_docs").sum())
    assert sums["share"].to_list() == pytest.approx([1.0] * sums.height)
    assert makeup.group_by("arm").agg(pl.col("n_docs").sum())["n_docs"].to_list() == pytest.approx([96, 96])
    assert makeup["end_step"].max() == 6


def test_spec_group_by_is_checked_and_reaches_every_run(tmp_path):
    from delt_engine.errors import ConfigError
    from delt_engine.experiments.spec import parse_spec
    from tests.cli.test_runs import _tiny_corpus

    assert parse_spec(demo_spec()).group_by == "kind" and parse_spec(demo_spec(group_by=None)).group_by is None
    with pytest.raises(ConfigError, match="a column name with '.'"):
        parse_spec(demo_spec(group_by="meta.kind"))
    with pytest.raises(ConfigError, match=r"train.group_by is set by the comparison itself"):
        parse_spec(demo_spec(train={"group_by": "kind"}))
    _tiny_corpus(tmp_path)  # 60 documents with an "is_noise" column
    spec = {
        "name": "tiny",
        "corpus": str(tmp_path / "corpus.jsonl"),
        "scorer": {"method": "length"},
        "orderings": ["shuffle"],
        "seeds": [0],
        "group_by": "topic",
        "train": {"model": "tiny-test", "steps": 2, "batch_size": 8, "max_length": 16, "vocab_size": 300},
    }
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(
        ConfigError,
        match=r"group_by='topic': the corpus .* has no such column \(metadata columns: "
        r"is_noise\)",
    ):
        prepare_comparison(spec, ws)
    assert not list((tmp_path / "ws" / "comparisons").glob("*"))  # nothing half-made
    cmp = prepare_comparison({**spec, "group_by": "is_noise", "train": {**spec["train"], "group_min_docs": 2}}, ws)
    config = read_json(cmp.run_dirs[0] / "config.json")
    assert config["group_by"] == "is_noise" and config["group_min_docs"] == 2
    assert cmp.manifest["spec"]["group_by"] == "is_noise"
    held = pl.read_ndjson(config["validation"])
    assert "is_noise" in held.columns  # the held-out split keeps the corpus' columns
