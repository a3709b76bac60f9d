"""AppTest: every page loads on a fresh workspace, and the main flow works end to end:
demo -> score (length, random) -> select + order -> a tiny two-run comparison -> compare, learn."""

from __future__ import annotations

import json
import re
import shutil

import polars as pl
import pytest

from delt_engine.jobs.protocol import now_iso
from tests.app.conftest import (
    ALL_PAGES,
    bar_groups,
    charts,
    ensure_length_scores,
    figure,
    frame_with,
    open_page,
    rendered,
    texts,
)
from tests.conftest import ROOT

PAGES = ALL_PAGES


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_on_fresh_workspace(workspace, page):
    at = open_page(page)
    assert not at.exception
    assert at.title[0].value.lower() == page.split("/")[1][:-3]
    if page in ("pages/organize.py", "pages/train.py"):  # nothing scored yet: say so, link to Score
        assert any(t.startswith("Score the dataset first") for t in texts(at, "info")), texts(at, "info")


def test_data_page_shows_demo_summary_and_browser(workspace):
    at = open_page()
    docs = next(m for m in at.metric if m.label == "Documents")
    assert docs.value == "120"
    assert len(charts(at)) >= 1  # the length histogram
    assert any("Full text of" in e.label for e in at.expander)
    at.text_input(key="data.search").set_value("zzz-not-in-any-document").run()
    assert any("No document matches" in t for t in texts(at, "info"))


def test_data_import_errors_then_success(workspace, tmp_path):
    at = open_page()
    at.session_state["data.source"] = "Local path"  # the open tab is the source
    at.text_input(key="data.path").set_value(str(tmp_path / "missing.jsonl"))
    at.text_input(key="data.name").set_value("mini")
    at.button(key="data.import").click().run()
    assert any("Import failed" in t and "missing.jsonl" in t for t in texts(at, "error"))
    at.button(key="data.import_dismiss").click().run()
    assert not any("Import failed" in t for t in texts(at, "error"))

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{not json\n')
    at.session_state["data.source"] = "Local path"  # the open tab is the source
    at.text_input(key="data.path").set_value(str(bad))
    at.button(key="data.import").click().run()
    assert any("line 2" in t for t in texts(at, "error")), texts(at, "error")

    good = tmp_path / "good.jsonl"
    good.write_text(
        "".join(
            json.dumps({"text": f"document number {i} " * (i + 1), "kind": "a" if i % 2 else "b"}) + "\n"
            for i in range(7)
        )
    )
    at.session_state["data.source"] = "Hugging Face dataset"  # a path typed on another tab is not used
    at.text_input(key="data.path").set_value(str(good))
    at.button(key="data.import").click().run()
    assert any("Nothing to import on the open tab" in t for t in texts(at, "error")), texts(at, "error")
    at.session_state["data.source"] = "Local path"  # the open tab is the source
    at.text_input(key="data.name").set_value("demo")  # reserved name
    at.button(key="data.import").click().run()
    assert any("not allowed" in t for t in texts(at, "error"))
    at.text_input(key="data.name").set_value("mini")
    at.button(key="data.import").click().run()
    assert not at.exception
    assert at.selectbox(key="data.dataset").value == "mini"
    assert next(m for m in at.metric if m.label == "Documents").value == "7"
    assert (workspace / "datasets" / "mini" / "manifest.json").exists()
    at.button(key="data.import").click().run()  # the same name again: refused, the first import is kept
    assert any("already exists" in t for t in texts(at, "error"))

    # its own target set and benchmark (never the demo's): checked, copied, used by the eval paths
    from ui.datasets import eval_paths

    assert eval_paths(workspace, "mini") == {"target": None, "benchmark": None}
    bench = tmp_path / "mybench.jsonl"
    bench.write_text(json.dumps({"context": "the cat", "choices": ["sat"], "answer": 0}) + "\n")
    at.text_input(key="data.eval_path").set_value(str(bench))
    at.selectbox(key="data.eval_kind").set_value("benchmark")
    at.button(key="data.eval_set").click().run()
    assert any("Could not set the benchmark" in t and "mybench.jsonl:1" in t for t in texts(at, "error"))
    bench.write_text(json.dumps({"context": "the cat", "choices": ["sat", "flew"], "answer": 0}) + "\n")
    at.button(key="data.eval_set").click().run()
    target = tmp_path / "clean.jsonl"
    target.write_text("".join(json.dumps({"text": f"a clean sentence number {i}."}) + "\n" for i in range(4)))
    at.text_input(key="data.eval_path").set_value(str(target))
    at.selectbox(key="data.eval_kind").set_value("target")
    at.button(key="data.eval_set").click().run()
    assert not at.exception and not [t for t in texts(at, "error") if "Could not set" in t]
    assert sum("its own, from" in rendered(c.value) for c in at.caption) == 2
    paths = eval_paths(workspace, "mini")
    assert paths["target"].endswith("mini/eval/target.jsonl") and paths["benchmark"].endswith("mini/eval/mybench.jsonl")
    from delt_engine.data.benchmark import load_benchmark

    assert [i.task for i in load_benchmark(paths["benchmark"])] == ["mybench"]  # task from the kept file name
    at.selectbox(key="data.dataset").set_value("demo").run()  # back to the demo for the next tests


def test_score_length_and_random_then_results(workspace):
    at = open_page("pages/score.py")
    at.multiselect(key="score.methods").set_value(["length", "random"]).run()
    estimate = frame_with(at, "scorer", "time", "memory")
    assert list(estimate["scorer"]) == ["length", "random"]
    at.button(key="score.start").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    states = [json.loads(p.read_text())["state"] for p in (workspace / "scores").glob("*/status.json")]
    assert sorted(states) == ["done", "done"]
    radio = at.radio(key="score.view")
    assert {rendered(o) for o in radio.options} == {"length (higher = harder)", "random (higher = better)"}
    keys = [c.proto.id for c in charts(at)]
    assert len(keys) >= 3  # histogram, Spearman, Jaccard
    radio.set_value("length").run()
    top, bottom = frame_with(at, "id", "length", "text"), frame_with(at, "id", "length", "text", index=1)
    assert len(top) == 10 and list(top["length"]) == sorted(top["length"], reverse=True)
    assert top["length"].min() >= bottom["length"].max()


def test_score_with_a_local_model_folder(workspace, tmp_path):
    from delt_engine.data.tokenizer import train_tokenizer
    from delt_engine.models.presets import build_model
    from delt_engine.training.loop import save_trained

    tok = train_tokenizer(["the cat sat on the mat", "a dog ran in the park"] * 20, vocab_size=300)
    folder = save_trained(build_model("tiny-test", len(tok), device="cpu"), tok, tmp_path / "kept")
    at = open_page("pages/score.py")
    at.multiselect(key="score.methods").set_value(["perplexity"]).run()
    at.text_input(key="score.model_dir").set_value(str(tmp_path / "nowhere")).run()
    at.button(key="score.start").click().run()
    assert any("Model folder" in e.value and "nowhere" in e.value for e in at.error)
    at.text_input(key="score.model_dir").set_value(str(folder)).run()
    at.button(key="score.start").click().run()
    assert not at.exception and [e.value for e in at.error] == []
    jobs = [json.loads(p.read_text()) for p in (workspace / "scores").glob("perplexity-*/config.json")]
    assert [j["model"] for j in jobs] == [str(folder)]
    (job_dir,) = (workspace / "scores").glob("perplexity-*")
    assert json.loads((job_dir / "status.json").read_text())["state"] == "done"
    at.text_input(key="score.model_dir").set_value("").run()  # back to the preset for later tests


def test_score_precision_choice_on_a_gpu(workspace, monkeypatch):
    import ui.widgets

    at = open_page("pages/score.py")
    at.multiselect(key="score.methods").set_value(["perplexity", "lqs"]).run()
    assert "score.precision" not in [r.key for r in at.radio]  # on a CPU there is nothing to choose
    monkeypatch.setattr(ui.widgets, "device_kind", lambda: "cuda")  # the jobs themselves still run on the CPU
    at.run()
    at.radio(key="score.precision").set_value("bfloat16").run()
    at.selectbox(key="score.model").set_value("tiny-test").run()
    for key, value in (("score.lqs_steps", 4), ("score.lqs_delta", 2), ("score.warmup_steps", 2)):
        at.number_input(key=key).set_value(value).run()
    before = set((workspace / "scores").iterdir())
    at.button(key="score.start").click().run()
    assert not at.exception and [e.value for e in at.error] == []
    new = {d.name.split("-")[0]: d for d in set((workspace / "scores").iterdir()) - before}
    assert sorted(new) == ["lqs", "perplexity"]
    options = {m: json.loads((d / "config.json").read_text())["options"] for m, d in new.items()}
    assert options["perplexity"] == {"warmup_steps": 2, "bf16": True} and options["lqs"]["dtype"] == "bfloat16"
    for d in new.values():
        assert json.loads((d / "status.json").read_text())["state"] == "done"
        shutil.rmtree(d)  # later tests count their own perplexity/lqs jobs
    at.radio(key="score.precision").set_value("float32").run()


def test_score_lqs_on_a_subset_and_distil_the_rest(workspace):
    at = open_page("pages/score.py")
    at.multiselect(key="score.methods").set_value(["lqs"]).run()
    at.selectbox(key="score.model").set_value("tiny-test").run()
    at.checkbox(key="score.distill").check().run()  # the subset size is editable only then
    for key, value in (
        ("score.lqs_steps", 4),
        ("score.lqs_delta", 2),
        ("score.warmup_steps", 2),
        ("score.proxy_size", 40),
        ("score.chunk_size", 3),
    ):
        at.number_input(key=key).set_value(value).run()
    at.selectbox(key="score.checkpoint").set_value("delta").run()
    estimate = frame_with(at, "scorer", "time", "memory")
    assert "40 samples, distilled to the rest" in estimate["why"][0]
    at.button(key="score.start").click().run()
    assert not at.exception and [e.value for e in at.error] == []
    (job_dir,) = (workspace / "scores").glob("lqs-2*")
    options = json.loads((job_dir / "config.json").read_text())["options"]
    assert (options["proxy_size"], options["chunk_size"], options["checkpoint"]) == (40, 3, "delta")
    assert "final_norm" not in options  # left at the engine's default
    scores = pl.read_parquet(job_dir / "scores.parquet")
    assert scores.group_by("source").len().sort("source").rows() == [("distilled", scores.height - 40), ("exact", 40)]
    assert "lqs.source" in at.selectbox(key="score.color_by").options  # exact vs distilled can colour the plots
    distilled = scores.filter(pl.col("source") == "distilled")["id"][0]
    at.selectbox(key="score.sample").set_value(distilled).run()
    assert any("is distilled" in i.value for i in at.info)


def test_job_rows_name_the_gpu_a_job_was_given(workspace):
    import os

    from delt_engine.fileio import write_json
    from ui.datasets import DEMO, corpus_path

    job = workspace / "scores" / "length-20991231-000000-gpu"  # a job the manager put on GPU 3
    job.mkdir(parents=True)
    write_json(job / "config.json", {"input": str(corpus_path(workspace, DEMO)), "method": "length"})
    write_json(job / "status.json", {"state": "running", "pid": os.getpid(), "gpu": "3", "created_at": now_iso()})
    try:
        at = open_page("pages/score.py")
        assert any("running" in m.value and "GPU 3" in m.value for m in at.markdown), [m.value for m in at.markdown]
    finally:
        shutil.rmtree(job)


def test_score_page_adds_scores_made_elsewhere(workspace, tmp_path):
    from delt_engine.data.corpus import load_corpus
    from ui.datasets import DEMO, corpus_path

    open_page()
    corpus = load_corpus(corpus_path(workspace, DEMO)).frame
    src = tmp_path / "mine.parquet"
    corpus.select("id", pl.col("text").str.len_chars().cast(pl.Float64).alias("score")).write_parquet(src)
    at = open_page("pages/score.py")
    at.text_input(key="score.import_path").set_value(str(tmp_path / "missing.parquet"))
    at.button(key="score.import").click().run()
    assert any("file not found" in e.value for e in at.error)  # the error, with the path, on the page
    at.text_input(key="score.import_path").set_value(str(src))
    at.text_input(key="score.import_name").set_value("chars")
    at.button(key="score.import").click().run()
    assert not at.exception and [e.value for e in at.error] == []
    assert "chars (higher = better)" in [rendered(o) for o in at.radio(key="score.view").options]
    assert at.radio(key="score.view").value == "chars"
    top = frame_with(at, "id", "chars", "text")
    assert (
        list(top["chars"]) == sorted(top["chars"], reverse=True)
        and top["chars"].max() == corpus["text"].str.len_chars().max()
    )
    # the same name again would hide the first scores: refused, with another name to use
    at.button(key="score.import").click().run()
    errors = [e.value.replace("\\", "") for e in at.error]  # md() escapes markdown characters
    assert any("already has scores named 'chars'" in e and "chars-2" in e for e in errors), errors
    # scores of part of the dataset: the page says how many documents they leave out, here and on Organize
    half = tmp_path / "half.parquet"
    corpus.head(30).select("id", pl.lit(1.0).alias("score")).write_parquet(half)
    at.text_input(key="score.import_path").set_value(str(half))
    at.text_input(key="score.import_name").set_value("partial")
    at.button(key="score.import").click().run()
    assert any(f"partial scores 30 of the {corpus.height:,} documents" in w.value.replace("\\", "") for w in at.warning)
    org = open_page("pages/organize.py")
    org.selectbox(key="organize.score").set_value("partial").run()
    assert any(f"cover 30 of the {corpus.height:,} documents" in w.value.replace("\\", "") for w in org.warning)


def test_organize_selection_cutoff_and_orderings(workspace):
    open_page()
    ensure_length_scores(workspace)
    at = open_page("pages/organize.py")
    assert not at.exception, at.exception
    at.selectbox(key="organize.score").set_value("length").run()
    at.radio(key="organize.method").set_value("top-r").run()
    at.slider(key="organize.ratio").set_value(0.5).run()
    kept = next(m for m in at.metric if m.label == "Kept")
    assert kept.value == "60 of 120"
    at.multiselect(key="organize.orderings").set_value(["shuffle", "folding"]).run()
    assert at.selectbox(key="organize.export").options == ["shuffle", "folding L=3"]
    # the stream make-up by kind (the demo's default) under each ordering, on its training-position axis
    from ui.datasets import DEMO, load

    assert at.selectbox(key="organize.group_by").value == "kind"
    layout = figure(at, "Score against training position")
    kept_kinds = set(load(workspace, DEMO)["kind"])
    assert bar_groups(layout) and bar_groups(layout) <= kept_kinds
    bars = [t for t in layout["data"] if t.get("type") == "bar"]
    assert {t["xaxis"] for t in bars} == {"x3", "x4"} and layout["layout"]["xaxis"]["matches"] == "x3"
    assert any(t.startswith("Stream make-up: each bar is a window of") for t in texts(at, "caption"))
    at.selectbox(key="organize.group_by").set_value("(none)").run()
    assert not bar_groups(figure(at, "Score against training position"))
    at.selectbox(key="organize.group_by").set_value("kind").run()
    at.radio(key="organize.method").set_value("top-k").run()
    at.number_input(key="organize.k").set_value(0).run()
    assert any("k=0" in t for t in texts(at, "error")), texts(at, "error")  # a ConfigError with its fix
    at.radio(key="organize.method").set_value("none").run()
    assert not at.exception
    at.radio(key="organize.dedup").set_value("exact").run()  # the 120-document demo has 4 exact copies
    assert any(t.startswith("4 of 120 documents repeat an earlier one") for t in texts(at, "caption"))
    assert next(m for m in at.metric if m.label == "Kept").value == "116 of 116"
    from delt_engine.data.dedup import find_duplicates
    from ui.datasets import DEMO, load

    at.radio(key="organize.dedup").set_value("near").run()
    at.number_input(key="organize.dedup_ngram").set_value(2).run()
    at.slider(key="organize.dedup_threshold").set_value(0.6).run()
    n = find_duplicates(load(workspace, DEMO)["text"].to_list(), "near", threshold=0.6, ngram=2).n_dropped
    assert n > 4 and any(t.startswith(f"{n} of 120 documents repeat") for t in texts(at, "caption"))
    at.radio(key="organize.dedup").set_value("edit").run()
    at.slider(key="organize.dedup_edit_threshold").set_value(0.75).run()
    n = find_duplicates(load(workspace, DEMO)["text"].to_list(), "edit", threshold=0.75).n_dropped
    assert n > 4 and any(t.startswith(f"{n} of 120 documents repeat") for t in texts(at, "caption"))
    at.radio(key="organize.dedup").set_value("none").run()


def test_train_tiny_comparison_then_compare(workspace):
    open_page()
    ensure_length_scores(workspace)
    at = open_page("pages/train.py")
    at.selectbox(key="train.model").set_value("tiny-test")
    at.multiselect(key="train.orderings").set_value(["shuffle", "folding"])
    at.number_input(key="train.seeds").set_value(1)
    at.selectbox(key="train.budget_kind").set_value("steps").run()
    at.number_input(key="train.max_steps").set_value(6)
    at.number_input(key="train.eval_every").set_value(3)
    at.number_input(key="train.batch_size").set_value(8).run()
    at.session_state["organize.dedup"] = "exact"  # set on the Organize page
    at.button(key="train.launch").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    (manifest,) = (workspace / "comparisons").glob("*/comparison.json")
    manifest = json.loads(manifest.read_text())
    assert manifest["spec"]["dedup"] == {"mode": "exact"}
    assert all(d["n_duplicates"] >= 1 for d in manifest["arm_data"].values())
    runs = sorted((workspace / "runs").iterdir())
    assert len(runs) == 2
    assert all(json.loads((r / "status.json").read_text())["state"] == "done" for r in runs)
    assert sum("done" in m.value for m in at.markdown) == 2
    launched = [c for c in texts(at, "caption") if c.startswith("Last launch:")]  # what really runs, in words
    assert launched and "model tiny-test, 6 steps, batch 8" in launched[0] and "seed 0." in launched[0]
    assert {c.proto.id for c in charts(at)}  # live charts drawn from the run files
    assert manifest["spec"]["group_by"] == "kind"  # the demo's default, from the Train page's choice
    assert at.selectbox(key="train.group_by").value == "kind"
    # the stream make-up of each arm under the train loss, and each kind's validation loss per run
    loss = figure(at, "Train loss (and mean score of each batch), and the stream's make-up per arm")
    assert bar_groups(loss) and [a["text"] for a in loss["layout"]["annotations"]] == [
        "stream make-up: shuffle",
        "stream make-up: folding L=3",
    ]
    panels = figure(at, "Validation loss by kind, per run")
    assert {a["text"] for a in panels["layout"]["annotations"]} >= {"other"}  # 120 documents: few held out
    cmp = open_page("pages/compare.py")
    assert not cmp.exception, cmp.exception
    assert len(charts(cmp)) >= 3  # per-run curves with batch-score trace and make-up, seed bands, groups
    table = frame_with(cmp, "arm", "seeds")
    assert set(table["arm"]) == {"shuffle", "folding L=3"}
    assert bar_groups(figure(cmp, "validation loss per run"))  # the make-up under the curves (tokens axis)
    groups_fig = figure(cmp, "Validation loss by kind: mean ± 95% interval across seeds")
    assert {t["name"] for t in groups_fig["data"] if t.get("showlegend")} == {"shuffle", "folding L=3"}
    forgetting = frame_with(cmp, "arm", "group", "lowest loss", "final loss", "rise")
    assert set(forgetting["arm"]) == {"shuffle", "folding L=3"} and set(forgetting["group"]) == {"other"}
    cmp.radio(key="compare.group_set").set_value("target").run()
    target = frame_with(cmp, "arm", "group", "rise")
    assert len(set(target["group"])) >= 2  # the demo's target set: more documents, several kinds
    labels = [b.proto.label for b in cmp.get("download_button")]
    assert labels == [
        "Download curves (CSV)",
        "Download summary (JSON)",
        "Download the spec (JSON)",
        "Download forgetting (CSV)",
    ]
    from delt_engine.experiments.spec import parse_spec
    from delt_engine.workspace.layout import Workspace

    spec = Workspace(workspace).load_comparison(cmp.selectbox(key="compare.comparison").value)["spec"]
    assert parse_spec(spec).labels == ["shuffle", "folding L=3"]  # the download reruns
    cmp.radio(key="compare.x").set_value("step").run()
    cmp.radio(key="compare.source").set_value("Individual runs").run()
    cmp.multiselect(key="compare.runs").set_value([r.name for r in runs]).run()
    assert not cmp.exception


def test_train_selection_error_is_shown(workspace):
    open_page()
    ensure_length_scores(workspace)
    at = open_page("pages/train.py")
    at.session_state["organize.method"] = "top-k"
    at.session_state["organize.k"] = 0
    at.selectbox(key="train.model").set_value("tiny-test").run()
    at.button(key="train.launch").click().run()
    assert not at.exception
    assert any("Could not launch" in t and "k=0" in t for t in texts(at, "error")), texts(at, "error")  # at once


def test_learn_folding_presets_and_prediction(workspace):
    at = open_page("pages/learn.py")
    at.slider(key="learn.layers").set_value(3)
    at.slider(key="learn.n_docs").set_value(10).run()
    caption = next(c.value for c in at.caption if c.value.startswith("Folding, as ranks"))
    assert caption.endswith("0 · 3 · 6 · 9 · 1 · 4 · 7 · 2 · 5 · 8")
    at.button(key="learn.preset.quick").click().run()
    assert at.query_params["scenario"] == "quick"
    assert at.session_state["train.model"] == "tiny-test"
    at.radio(key="learn.prediction").set_value("folding").run()
    at.button(key="learn.reveal").click().run()
    shown = texts(at, "success") + texts(at, "warning") + texts(at, "info")
    # Revealed against the newest finished comparison, or (run alone) locked in until one finishes.
    assert any("**folding**" in t and ("You predicted" in t or "locked in" in t) for t in shown), shown


def test_scenario_link_restores_state(workspace):
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import APP, TIMEOUT

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["scenario"] = "selection"
    at.query_params["seed"] = "7"
    at.run()
    assert at.session_state["organize.ratio"] == 0.7
    assert at.session_state["train.first_seed"] == 7


def write_lqs_job(workspace, corpus, ids, delta=5, steps=3):
    """A finished LQS scoring job built by hand (the real LQS is exercised by the engine's tests): the
    app must draw the data map and the per-step explanation from any job with these columns."""
    import numpy as np
    import polars as pl

    from delt_engine.fileio import write_json

    rng = np.random.default_rng(0)
    n = len(ids)
    cos, ratio = rng.uniform(-1, 1, (n, steps)), rng.uniform(0.5, 2, (n, steps))
    lam = np.tile([3.0, 2.0, 1.0][:steps], (n, 1))
    contribution = 0.5 * lam * cos * ratio
    job = workspace / "scores" / "lqs-fixture"
    job.mkdir(parents=True)
    pl.DataFrame(
        {
            "id": ids,
            "score": contribution.sum(1),
            "lqs": contribution.sum(1),
            "quality": cos.sum(1),
            "learnability": ratio.sum(1),
            "contribution": contribution.tolist(),
            "cos": cos.tolist(),
            "ratio": ratio.tolist(),
            "grad_norm": rng.uniform(1, 3, (n, steps)).tolist(),
            "lambda_norm": lam.tolist(),
            "source": ["exact"] * n,
        }
    ).write_parquet(job / "scores.parquet")
    write_json(job / "config.json", {"input": str(corpus), "method": "lqs", "options": {"delta": delta}})
    write_json(
        job / "status.json", {"state": "done", "direction": "higher_better", "method": "lqs", "created_at": now_iso()}
    )  # the newest LQS job, as a real one would be
    return job


def test_lqs_data_map_and_explanation(workspace):
    from ui.datasets import DEMO, corpus_path, load

    at = open_page("pages/score.py")
    corpus = corpus_path(workspace, DEMO)
    write_lqs_job(workspace, corpus, load(workspace, DEMO)["id"].to_list())
    at.run()
    at.radio(key="score.view").set_value("lqs").run()
    assert not at.exception, at.exception
    assert "lqs.source" in at.selectbox(key="score.color_by").options
    sample = at.selectbox(key="score.sample")
    assert len(sample.options) == 120
    steps_chart = [c for c in charts(at) if "proxy training step" in c.proto.spec]
    assert steps_chart, "no per-step explanation chart"
    spec = json.loads(steps_chart[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["contribution", "cos", "ratio", "grad_norm", "lambda_norm"]
    assert spec["data"][0]["x"] == [0, 5, 10]  # contribution steps 0, Δ, 2Δ of the job's own Δ
    assert any("quality against learnability" in s.value for s in at.subheader)
    # With other scorings present (earlier tests), the agreement view compares them all.
    n_methods = len(at.radio(key="score.view").options)
    assert len([c for c in charts(at) if "Spearman" in c.proto.spec]) == (1 if n_methods > 1 else 0)


def test_running_job_can_be_cancelled_and_failure_is_shown(workspace):
    import subprocess
    import sys

    from delt_engine.fileio import write_json
    from ui.datasets import DEMO, corpus_path

    corpus = str(corpus_path(workspace, DEMO))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = workspace / "scores" / "perplexity-running"
        failed = workspace / "scores" / "perplexity-failed"
        from delt_engine.jobs.protocol import process_fields

        # a job's status records its process's start time with the pid (without one it is never signalled)
        for job, status in (
            (running, {"state": "running", **process_fields(sleeper.pid), "created_at": now_iso()}),
            (
                failed,
                {"state": "failed", "error": "model cpu-demo needs 4 GB; pick tiny-test", "created_at": now_iso()},
            ),
        ):
            job.mkdir(parents=True)
            write_json(job / "config.json", {"input": corpus, "method": "perplexity"})
            write_json(job / "status.json", status)
        write_json(running / "progress.json", {"phase": "perplexity", "done": 3, "total": 10, "fraction": 0.3})
        at = open_page("pages/score.py")
        assert any("needs 4 GB" in t for t in texts(at, "error"))
        at.button(key="score.cancel.perplexity-running").click().run()
        assert (running / "cancel").exists()
        assert sleeper.wait(timeout=10) != 0  # SIGTERM reached the job's process
    finally:
        sleeper.kill()


def test_settings_survive_page_switches(workspace):
    open_page()  # the demo exists
    ensure_length_scores(workspace)
    at = open_page("pages/organize.py")
    at.radio(key="organize.method").set_value("top-r").run()
    at.slider(key="organize.ratio").set_value(0.35).run()
    at.switch_page("pages/data.py").run()
    at.text_input(key="data.search").set_value("river").run()
    at.switch_page("pages/train.py").run()
    assert "top-r, r = 0.35" in " ".join(c.value for c in at.caption)  # Train reads Organize's choice
    at.switch_page("pages/organize.py").run()
    assert at.slider(key="organize.ratio").value == 0.35
    at.switch_page("pages/data.py").run()
    assert at.text_input(key="data.search").value == "river"


def test_every_page_script_is_in_the_navigation():
    registered = set(re.findall(r'st\.Page\("(pages/[a-z_]+\.py)"', (ROOT / "app.py").read_text()))
    assert registered == set(ALL_PAGES)
