"""The scoring registry: the method pages default to, and one job scoring LQS and PDS together."""

import json

import polars as pl
import pytest

from delt_engine.errors import ConfigError
from delt_engine.fileio import read_json
from delt_engine.jobs.score_job import run_score_job
from delt_engine.scoring import lqs as lqs_module
from delt_engine.workspace.scorings import (
    Scoring,
    create_score_job,
    latest_done,
    list_scorings,
    preferred_method,
    read_scores,
    score_table,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = [
    f"The {a} walked to the {p} and saw {n} birds."
    for n, (a, p) in enumerate(
        zip(["cat", "dog", "owl", "fox", "hen", "cow"] * 2, ["mill", "river", "barn", "hill"] * 3)
    )
]
TEXTS += ["qq zz xx qq zz xx", "Buy now! Click here! Buy now!"]
TARGET = ["The fox walked to the river.", "A hen saw two owls at the barn."]
LQS_OPTIONS = {"steps": 4, "delta": 2, "warmup_steps": 2, "eta": 0.3, "chunk_size": 4, "vocab_size": 300}


def scoring(method, created_at, id_=None):
    return Scoring(id_ or f"{method}-x", None, method, "done", {}, {"created_at": created_at})


def test_preferred_method_is_lqs_then_pds_then_the_newest():
    old, new = scoring("length", "2024-01-01T00:00:00"), scoring("compression", "2024-02-01T00:00:00")
    assert preferred_method({}) is None
    assert preferred_method({"length": old}) == "length"
    assert preferred_method({"length": old, "compression": new}) == "compression"
    assert preferred_method({"compression": new, "length": old}) == "compression"  # not dict order
    pds = scoring("pds", "2023-01-01T00:00:00")
    assert preferred_method({"length": old, "pds": pds, "compression": new}) == "pds"  # though oldest
    lqs = scoring("lqs", "2022-01-01T00:00:00")
    assert preferred_method({"pds": pds, "lqs": lqs, "compression": new}) == "lqs"


@pytest.fixture
def files(tmp_path):
    corpus, target = tmp_path / "corpus.jsonl", tmp_path / "target.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in TARGET))
    return corpus, target


def job_config(corpus, target, tmp_path, **options):
    return {
        "input": str(corpus),
        "target": str(target),
        "model": "tiny-test",
        "device": "cpu",
        "max_length": 24,
        "batch_size": 4,
        "cache_dir": str(tmp_path / "cache"),
        "options": {**LQS_OPTIONS, **options},
    }


def test_create_score_job_checks_methods_and_target(tmp_path, files):
    corpus, target = files
    base = job_config(corpus, target, tmp_path)
    job = create_score_job(tmp_path / "scores", {**base, "methods": ["lqs", "pds", "lqs"]})
    config = read_json(job / "config.json")
    assert job.name.startswith("lqs-") and config["method"] == "lqs" and config["methods"] == ["lqs", "pds"]
    single = read_json(create_score_job(tmp_path / "scores", {**base, "methods": ["pds"]}) / "config.json")
    assert single["method"] == "pds" and "methods" not in single  # one method: a plain job
    with pytest.raises(ConfigError, match="first of methods"):
        create_score_job(tmp_path / "scores", {**base, "method": "pds", "methods": ["lqs", "pds"]})
    with pytest.raises(ConfigError, match="not known"):
        create_score_job(tmp_path / "scores", {**base, "methods": ["lqs", "nope"]})
    for methods in (["lqs"], ["length", "pds"]):
        with pytest.raises(ConfigError, match="needs a target set"):
            create_score_job(tmp_path / "scores", {**base, "target": None, "methods": methods})
    create_score_job(tmp_path / "scores", {**base, "target": None, "method": "length"})  # needs none


@pytest.mark.parametrize(
    "options", [{}, {"proxy_size": 10, "distill": True, "distill_epochs": 2}], ids=["exact", "distilled"]
)
def test_one_job_writes_lqs_and_pds_and_pds_equals_a_pds_only_job(tmp_path, files, options):
    corpus, target = files
    config = job_config(corpus, target, tmp_path, **options)
    lqs_module._CACHE.clear()
    job = create_score_job(tmp_path / "scores", {**config, "methods": ["lqs", "pds"]})
    result = run_score_job(job)
    assert result.method == "lqs"
    status = read_json(job / "status.json")
    assert status["state"] == "done" and status["method"] == "lqs" and set(status["also"]) == {"pds"}
    sibling = tmp_path / "scores" / status["also"]["pds"]
    assert read_json(sibling / "config.json")["made_by"] == job.name
    assert read_json(sibling / "status.json")["state"] == "done"

    done = latest_done(list_scorings(tmp_path, corpus))
    assert set(done) == {"lqs", "pds"} and done["lqs"].dir == job and done["pds"].dir == sibling
    both = {m: read_scores(s) for m, s in done.items()}
    assert both["lqs"]["score"].to_list() == both["lqs"]["lqs"].to_list()
    assert both["pds"]["score"].to_list() == both["pds"]["pds"].to_list()
    table = score_table(pl.read_ndjson(corpus), done)
    assert table["lqs"].to_list() == both["lqs"]["score"].to_list()
    assert table["pds"].to_list() == both["pds"]["score"].to_list()

    lqs_module._CACHE.clear()  # a fresh process would compute everything again
    alone = create_score_job(tmp_path / "scores", {**config, "method": "pds"})
    run_score_job(alone)
    assert "also" not in read_json(alone / "status.json")
    pds_only = pl.read_parquet(alone / "scores.parquet")
    assert pds_only["id"].to_list() == both["pds"]["id"].to_list()
    assert pds_only["score"].to_list() == pytest.approx(both["pds"]["score"].to_list(), rel=1e-9, abs=1e-12)


def test_a_failing_second_method_writes_nothing(tmp_path, files, monkeypatch):
    from delt_engine.jobs import score_job

    corpus, target = files
    job = create_score_job(
        tmp_path / "scores",
        {**job_config(corpus, target, tmp_path), "method": "length", "methods": ["length", "compression"]},
    )
    real = score_job._run_job_config

    def broken(config, on_progress, should_stop, method=None):
        if method == "compression":
            raise ConfigError("compression broke")
        return real(config, on_progress, should_stop, method=method)

    monkeypatch.setattr(score_job, "_run_job_config", broken)
    with pytest.raises(ConfigError):
        run_score_job(job)
    assert read_json(job / "status.json")["state"] == "failed"
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [job.name]
    assert not (job / "scores.parquet").exists()
