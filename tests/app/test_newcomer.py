"""AppTest: a newcomer's path. After LQS is scored every page starts from it; LQS and PDS chosen together
run as one job; perplexity's proxy is warmed up; an imported dataset without a target set cannot run
LQS/PDS until it is given one on the Data page. (Its own module: a workspace with no scorings yet.)"""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.app.conftest import frame_with, open_page, rendered, texts

TINY_LQS = (("score.lqs_steps", 4), ("score.lqs_delta", 2), ("score.warmup_steps", 2))


def configs(workspace) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (workspace / "scores").glob("*/config.json")}


def choose_tiny_lqs(at, methods):
    at.multiselect(key="score.methods").set_value(methods).run()
    at.selectbox(key="score.model").set_value("tiny-test").run()
    for key, value in TINY_LQS:
        at.number_input(key=key).set_value(value).run()


def test_pages_default_to_the_newest_scoring_before_lqs_exists(workspace):
    at = open_page("pages/score.py")
    at.multiselect(key="score.methods").set_value(["length"]).run()
    at.button(key="score.start").click().run()
    assert not at.exception and at.radio(key="score.view").value == "length"
    assert open_page("pages/organize.py").selectbox(key="organize.score").value == "length"
    assert open_page("pages/train.py").selectbox(key="train.score").value == "length"


def test_lqs_and_pds_run_as_one_job_and_every_page_then_defaults_to_lqs(workspace):
    from delt_engine.jobs.score_job import run_score_job
    from delt_engine.scoring import lqs as lqs_module
    from delt_engine.workspace.scorings import create_score_job

    at = open_page("pages/score.py")
    choose_tiny_lqs(at, ["pds", "length", "lqs"])
    estimate = frame_with(at, "scorer", "time", "memory")
    assert list(estimate["scorer"]) == ["lqs + pds", "length"]  # one row per job
    assert "one job" in estimate["why"][0]
    before = set(configs(workspace))
    at.button(key="score.start").click().run()
    assert not at.exception and [e.value for e in at.error] == []
    new = {name: cfg for name, cfg in configs(workspace).items() if name not in before}
    jobs = {name: cfg for name, cfg in new.items() if "made_by" not in cfg}  # what the page submitted
    assert sorted(cfg["method"] for cfg in jobs.values()) == ["length", "lqs"]
    (gradient_job,) = [name for name, cfg in jobs.items() if cfg["method"] == "lqs"]
    assert jobs[gradient_job]["methods"] == ["lqs", "pds"]
    (pds_dir,) = [name for name, cfg in new.items() if cfg.get("made_by") == gradient_job]
    assert new[pds_dir]["method"] == "pds" and len(new) == 3
    radio = at.radio(key="score.view")
    assert {"lqs (higher = better)", "pds (higher = better)"} <= {rendered(o) for o in radio.options}
    assert radio.value == "lqs"  # the paper's score first, though length finished last

    # the PDS scores equal a PDS-only job's (a fresh computation: the per-process cache is cleared)
    lqs_module._CACHE.clear()
    alone = create_score_job(
        workspace / "scores", {**{k: v for k, v in jobs[gradient_job].items() if k != "methods"}, "method": "pds"}
    )
    run_score_job(alone)
    shared = pl.read_parquet(workspace / "scores" / pds_dir / "scores.parquet")
    pds_only = pl.read_parquet(alone / "scores.parquet")
    assert pds_only["id"].to_list() == shared["id"].to_list()
    assert pds_only["score"].to_list() == pytest.approx(shared["score"].to_list(), rel=1e-9, abs=1e-12)

    # a newcomer who goes on to Organize and Train starts from LQS, not from the newest (length)
    assert open_page("pages/organize.py").selectbox(key="organize.score").value == "lqs"
    assert open_page("pages/train.py").selectbox(key="train.score").value == "lqs"


def test_an_explicit_choice_is_kept_within_the_session(workspace):
    at = open_page("pages/organize.py")
    assert at.selectbox(key="organize.score").value == "lqs"
    at.selectbox(key="organize.score").set_value("length").run()
    at.run()
    assert at.selectbox(key="organize.score").value == "length"
    at.switch_page("pages/train.py").run()
    assert at.selectbox(key="train.score").value == "length"  # the choice made on Organize carries over
    at.selectbox(key="train.score").set_value("pds").run()
    at.switch_page("pages/organize.py").run()
    assert at.selectbox(key="organize.score").value == "length"
    at.switch_page("pages/train.py").run()
    assert at.selectbox(key="train.score").value == "pds"


def test_perplexity_proxy_is_warmed_up_with_the_knob(workspace):
    at = open_page("pages/score.py")
    at.multiselect(key="score.methods").set_value(["perplexity"]).run()
    at.selectbox(key="score.model").set_value("tiny-test").run()
    at.number_input(key="score.warmup_steps").set_value(3).run()
    assert "after 3 warm-up steps" in frame_with(at, "scorer", "time", "memory")["why"][0]
    before = set(configs(workspace))
    at.button(key="score.start").click().run()
    assert not at.exception and [e.value for e in at.error] == []
    (config,) = [cfg for name, cfg in configs(workspace).items() if name not in before]
    assert config["method"] == "perplexity" and config["options"]["warmup_steps"] == 3
    assert at.radio(key="score.view").value == "perplexity"  # the Score page shows what was just run


def test_imported_dataset_needs_its_own_target_for_lqs(workspace, tmp_path):
    from ui.datasets import eval_paths

    corpus = tmp_path / "mine.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"text": f"note {i}: the {w} grew by the wall in spring."}) + "\n"
            for i, w in enumerate(["rose", "ivy", "moss", "fern", "oak", "elm"] * 4)
        )
    )
    at = open_page()
    at.session_state["data.source"] = "Local path"  # the open tab is the source
    at.text_input(key="data.path").set_value(str(corpus))
    at.text_input(key="data.name").set_value("garden")
    at.button(key="data.import").click().run()
    assert at.selectbox(key="data.dataset").value == "garden"
    assert eval_paths(workspace, "garden") == {"target": None, "benchmark": None}  # never the demo's
    assert any("none yet: LQS and PDS cannot run" in c for c in texts(at, "caption"))

    at.switch_page("pages/score.py").run()
    assert not at.exception
    options = at.multiselect(key="score.methods").options
    assert "lqs" not in " ".join(options) and "pds" not in " ".join(options) and options
    (warning,) = [w for w in texts(at, "warning") if "LQS and PDS are not available" in w]
    assert "Data page" in warning and "Target set and benchmark for this dataset" in warning
    assert "Use as: target" in warning

    at.multiselect(key="score.methods").set_value(["length"]).run()  # something to train on
    at.button(key="score.start").click().run()
    at.switch_page("pages/train.py").run()
    assert any("will report no target loss" in i and "no benchmark accuracy" in i for i in texts(at, "info"))

    target = tmp_path / "clean.jsonl"
    target.write_text(
        "".join(json.dumps({"text": f"The {w} grew by the wall."}) + "\n" for w in ("rose", "fern", "oak"))
    )
    at.switch_page("pages/data.py").run()
    at.text_input(key="data.eval_path").set_value(str(target))
    at.selectbox(key="data.eval_kind").set_value("target")
    at.button(key="data.eval_set").click().run()
    assert not [t for t in texts(at, "error") if "Could not set" in t]

    at.switch_page("pages/score.py").run()
    assert not any("not available" in w for w in texts(at, "warning"))
    before = set(configs(workspace))
    choose_tiny_lqs(at, ["lqs"])
    at.button(key="score.start").click().run()
    assert not at.exception and [e.value for e in at.error] == []
    (name,) = [n for n in configs(workspace) if n not in before]
    config = configs(workspace)[name]
    # LQS aims at the scoring part of the dataset's own target set; comparisons measure target_loss on the rest
    from delt_engine.experiments.holdout import target_part_files

    own = workspace / "datasets" / "garden" / "eval" / "target.jsonl"
    score_part, eval_part = target_part_files(own, workspace / "cache" / "targets")
    assert config["target"] == str(score_part)
    score_texts = [json.loads(line)["text"] for line in score_part.read_text().splitlines()]
    eval_texts = [json.loads(line)["text"] for line in eval_part.read_text().splitlines()]
    assert score_texts and eval_texts and not set(score_texts) & set(eval_texts)
    assert json.loads((workspace / "scores" / name / "status.json").read_text())["state"] == "done"
    assert at.radio(key="score.view").value == "lqs"
    at.switch_page("pages/train.py").run()
    assert not any("will report no target loss" in i for i in texts(at, "info"))
    assert any("no benchmark accuracy" in i for i in texts(at, "info"))  # still none of its own
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data.dataset").set_value("demo").run()
