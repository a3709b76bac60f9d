"""App-side helpers that need no script run: specs, agreement statistics, estimates, labels."""

import itertools

import numpy as np
import polars as pl
import pytest

from delt_engine.scoring import agreement, cost
from delt_engine.workspace import scorings
from ui import comparisons, live, scores
from ui.datasets import category_columns, group_labels


class Job:
    id, method, direction = "length-1", "length", "higher_harder"


def test_orderings_apply_the_organize_knobs():
    orders = comparisons.orderings(["shuffle", "sorting", "folding", "zigzag"], layers=4, descending=True, window=8)
    assert [o.to_dict() for o in orders] == [
        {"method": "shuffle"},
        {"method": "sorting", "descending": True, "window": 8},
        {"method": "folding", "layers": 4, "window": 8},
        {"method": "zigzag", "layers": 4, "window": 8},
    ]


@pytest.mark.parametrize(
    "train, selection",
    [
        ({"steps": 10, "batch_size": 10}, None),
        ({"steps": 500, "batch_size": 10}, {"method": "top-r", "ratio": 0.29}),  # far more steps than 29% of the data
        ({"tokens": 900, "batch_size": 16}, {"method": "top-k", "k": 50}),
    ],
)
def test_build_spec_lets_a_step_or_token_budget_run_as_many_passes_as_it_needs(train, selection):
    from delt_engine.experiments.spec import parse_spec
    from delt_engine.organize.configs import OrderConfig

    spec = comparisons.build_spec(
        "demo-length",
        "/tmp/c.parquet",
        Job(),
        {"target": None, "benchmark": None},
        selection,
        [OrderConfig("shuffle"), OrderConfig("folding", layers=3)],
        2,
        train,
        first_seed=5,
    )
    assert spec["train"]["epochs"] is None  # no guess of the kept share or the hold-out: the budget decides
    assert spec["seeds"] == [5, 6]
    assert spec["scorer"]["score_field"] == "score" and spec["scorer"]["direction"] == "higher_harder"
    assert parse_spec(spec).labels == ["shuffle", "folding L=3"]
    epochs = comparisons.build_spec(
        "x", "/tmp/c.parquet", Job(), {}, None, [OrderConfig("shuffle")], 1, {"epochs": 2}, first_seed=0
    )
    assert epochs["train"]["epochs"] == 2


def test_spearman_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, 40).astype(float)  # many ties
    b = a + rng.normal(0, 1, 40)
    c = -a
    table = pl.DataFrame({"id": [str(i) for i in range(40)], "a": a, "b": b, "c": c})
    got = agreement.spearman_matrix(table, ["a", "b", "c"])

    def ranks(x):  # average ranks, by hand
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        i = 0
        while i < len(x):
            j = i
            while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return np.array(r)

    for (i, x), (j, y) in itertools.product(enumerate((a, b, c)), repeat=2):
        assert got[i, j] == pytest.approx(np.corrcoef(ranks(x), ranks(y))[0, 1])
    assert got[0, 2] == pytest.approx(-1.0)


def test_spearman_constant_column_is_nan():
    table = pl.DataFrame({"id": ["1", "2", "3"], "a": [1.0, 2.0, 3.0], "k": [1.0, 1.0, 1.0]})
    assert np.isnan(agreement.spearman_matrix(table, ["a", "k"])[0, 1])


def test_jaccard_top_k_by_hand():
    table = pl.DataFrame({"id": list("abcdef"), "x": [6.0, 5, 4, 3, 2, 1], "y": [1.0, 5, 6, 2, 3, 4]})
    m = agreement.jaccard_matrix(table, ["x", "y"], k=3)
    # top-3 of x = {a, b, c}; of y = {c, b, f}: overlap {b, c}, union {a, b, c, f}
    assert m[0, 1] == pytest.approx(2 / 4) and m[0, 0] == 1.0


def test_preset_parameter_count_matches_the_built_model():
    from delt_engine.models.presets import build_model, count_parameters

    model = build_model("tiny-test", vocab_size=2048, device="cpu")
    assert cost.preset_parameters("tiny-test") == count_parameters(model)


def test_estimates_grow_with_the_method_cost():
    cheap = cost.estimate("length", 2000, 60, "cpu-demo")
    ppl = cost.estimate("perplexity", 2000, 60, "cpu-demo")
    lqs = cost.estimate("lqs", 2000, 60, "cpu-demo", steps=40, delta=10)
    assert cheap.seconds < ppl.seconds < lqs.seconds
    assert lqs.memory_bytes > ppl.memory_bytes
    bigger_target = cost.estimate("lqs", 2000, 60, "cpu-demo", steps=40, delta=10, target_docs=2000)
    assert bigger_target.seconds > lqs.seconds * 1.5  # grad J over the target set at every step
    # the default demo LQS (88-101 s measured on the 2-core CPU) is estimated within a factor of 3
    demo = cost.estimate("lqs", 2000, 64, "cpu-demo", "cpu", steps=20, delta=10, warmup_steps=100)
    assert 30 < demo.seconds < 300
    gpu = cost.estimate("lqs", 2000, 64, "cpu-demo", "cuda", steps=20, delta=10, warmup_steps=100)
    assert 11.6 / 3 < gpu.seconds < 11.6 * 3  # measured on an H200
    assert cost.human_seconds(90) == "~2 min" and cost.human_bytes(2048) == "2 KB"
    # perplexity's proxy is warmed up as LQS's is (by default 100 steps): the estimate counts those steps
    cold = cost.estimate("perplexity", 2000, 60, "gpu-160m", warmup_steps=0)
    warm = cost.estimate("perplexity", 2000, 60, "gpu-160m", warmup_steps=100)
    assert cost.estimate("perplexity", 2000, 60, "gpu-160m").seconds == warm.seconds
    step_flops = 6 * cost.preset_parameters("gpu-160m") * 16 * 60
    assert warm.seconds - cold.seconds == pytest.approx(100 * step_flops / cost.FLOPS_PER_S["cpu"])
    assert "100 warm-up steps" in warm.note and "warm-up" not in cold.note
    # fewer parameter copies with checkpoint=delta, less per-sample memory with a smaller chunk
    big = dict(n_docs=2000, mean_tokens=64, model="gpu-160m", device="cuda", steps=40, delta=10)
    every = cost.estimate("lqs", **big, checkpoint="every")
    delta = cost.estimate("lqs", **big, checkpoint="delta")
    weights = cost.preset_parameters("gpu-160m") * cost.BYTES_PER_PARAM
    assert every.memory_bytes - delta.memory_bytes == (41 - 5) * weights  # T+1 copies vs T/delta+1
    assert cost.estimate("lqs", **big, chunk_size=2).memory_bytes < cost.estimate("lqs", **big).memory_bytes
    # the pass's activations as measured by bench/lqs_speed.py, within a factor of 2
    assert 50e6 < cost.pass_bytes("cpu-demo", 16, 67, 0) < 200e6  # measured 102 MB
    assert 1.6e9 < cost.pass_bytes("gpu-30m", 64, 67, 0) < 6.6e9  # measured 3.3 GB on an H200


def test_labels_and_category_columns():
    frame = pl.DataFrame(
        {
            "id": ["1", "2"],
            "text": ["a", "b"],
            "is_noise": [True, False],
            "kind": ["x", "y"],
            "difficulty": [1, 2],
            "length": [0.5, 0.7],
        }
    )
    assert group_labels(frame, "is_noise") == ["noise", "clean"]
    assert group_labels(frame, "kind") == ["x", "y"]
    assert category_columns(frame) == ["is_noise", "kind", "difficulty"]


def test_metric_series_keeps_only_records_with_the_metric():
    records = [
        {"step": 1, "tokens": 10, "train_loss": 3.0},
        {"step": 2, "tokens": 20, "train_loss": 2.5},
        {"step": 2, "tokens": 20, "val_loss": 2.9},
    ]
    assert live.metric_series(records, "train_loss") == ([1.0, 2.0], [3.0, 2.5])
    assert live.metric_series(records, "val_loss", x="tokens") == ([20.0], [2.9])


def test_score_page_lqs_defaults_are_the_engines():
    from delt_engine.scoring.lqs import LQSConfig
    from ui.state import DEFAULTS

    cfg = LQSConfig()
    assert (
        DEFAULTS["score.lqs_steps"],
        DEFAULTS["score.lqs_delta"],
        DEFAULTS["score.lqs_eta"],
        DEFAULTS["score.warmup_steps"],
    ) == (cfg.steps, cfg.delta, cfg.eta, cfg.warmup_steps)
    from delt_engine.scoring.baselines import PERPLEXITY_WARMUP

    assert cost.DEFAULT_WARMUP_STEPS == PERPLEXITY_WARMUP["warmup_steps"] == cfg.warmup_steps


def test_group_pooling_threshold_shown_is_the_engines():
    import polars as pl

    from delt_engine.training.config import RunConfig
    from ui import groups

    assert groups.DEFAULT_MIN_DOCS == RunConfig(input="x").group_min_docs
    assert f"fewer than {RunConfig(input='x').group_min_docs} held-out documents" in groups.POOLING
    frame = pl.DataFrame({"id": ["1", "2"], "text": ["a", "b"], "kind": ["x", "y"], "a.b": ["p", "q"], "n": [1.5, 2.5]})
    assert groups.options(frame) == ["(none)", "kind"]  # no float column, no dotted name
    assert groups.column("(none)") is None and groups.column("kind") == "kind"


def test_tokens_of_step_interpolates_the_arms_records():
    import polars as pl

    from ui import groups

    curves = pl.DataFrame(
        {"arm": ["a", "a", "a", "a", "b"], "step": [1, 2, 1, 2, 1], "tokens": [100, 220, 120, 240, 50]}
    )
    at = groups.tokens_of_step(curves, "a")  # mean over runs: step 1 -> 110, step 2 -> 230
    assert (at(0), at(1), at(1.5), at(2), at(4)) == pytest.approx((0.0, 110.0, 170.0, 230.0, 460.0))


@pytest.mark.parametrize(
    "raw, expected, problem", [(None, 1, False), ("2", 2, False), ("0", 1, True), ("two", 1, True), ("-3", 1, True)]
)
def test_max_jobs_from_the_environment(monkeypatch, raw, expected, problem):
    from ui import jobs

    if raw is None:
        monkeypatch.delenv("DELT_MAX_JOBS", raising=False)
    else:
        monkeypatch.setenv("DELT_MAX_JOBS", raw)
    assert jobs.max_jobs() == expected
    assert bool(jobs.max_jobs_problem()) is problem


def test_scenarios_pin_what_they_compare():
    """A shared link must reproduce the set-up: every scenario fixes the learning rate, and the paper's
    recipe fixes the LQS knobs at the engine's defaults whatever the user changed before."""
    from delt_engine.scoring.lqs import LQSConfig
    from ui.scenarios import SCENARIOS

    assert all(s.values["train.lr"] == 3e-3 for s in SCENARIOS.values())
    paper, cfg = SCENARIOS["paper"].values, LQSConfig()
    assert (
        paper["score.lqs_steps"],
        paper["score.lqs_delta"],
        paper["score.lqs_eta"],
        paper["score.warmup_steps"],
    ) == (cfg.steps, cfg.delta, cfg.eta, cfg.warmup_steps)
    assert paper["score.model_dir"] == "" and paper["score.distill"] is False


def test_scores_a_comparison_computed_are_listed_with_its_dataset(tmp_path):
    from delt_engine.demo.generate import ensure_demo
    from delt_engine.experiments.prepare import prepare_comparison
    from delt_engine.workspace.layout import Workspace

    spec = {
        "name": "t",
        "corpus": "demo",
        "scorer": {"method": "length"},
        "orderings": [{"method": "shuffle"}],
        "seeds": [0],
        "train": {"model": "tiny-test", "steps": 1},
    }
    prepare_comparison(spec, Workspace(tmp_path))
    corpus = ensure_demo(tmp_path) / "corpus.jsonl"
    (job,) = scorings.list_scorings(tmp_path, corpus)
    assert job.method == "length" and job.state == "done"
    table = scores.read_scores(job)
    assert 0.9 * 2000 <= table.height < 2000  # the corpus minus the validation hold-out


def test_latest_done_prefers_scorings_of_the_whole_dataset(tmp_path):
    def job(name, method, created, **config):
        d = tmp_path / name
        d.mkdir()
        (d / "scores.parquet").write_bytes(b"")
        return scorings.Scoring(name, d, method, "done", {"method": method, **config}, {"created_at": created})

    app = job("length-app", "length", "1")
    holdout = job("length-cmp", "length", "2", score_hash="abc")  # newer, but a comparison's partial scoring
    only = job("lqs-cmp", "lqs", "3", score_hash="def")
    picked = scores.latest_done([app, holdout, only])
    assert picked == {"length": app, "lqs": only}
    newer = job("length-app2", "length", "4")
    assert scores.latest_done([app, holdout, newer])["length"] is newer
