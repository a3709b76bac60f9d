"""The paper's presets: each is a valid spec for the CLI, and one click on Train or Learn launches it as one
comparison on the active dataset's LQS scoring."""

from __future__ import annotations

import json

import polars as pl
import pytest

from delt_engine.experiments.spec import parse_spec
from tests.app.conftest import ensure_length_scores, open_page, texts
from tests.conftest import ROOT

PRESETS = sorted((ROOT / "assets" / "presets").glob("*.json"))
EXPECTED = {
    "paper-conventional-vs-delt": ["conventional", "DELT"],
    "paper-ordering-ablation": ["shuffle", "descending", "ascending", "folding L=3"],
    "paper-folding-sweep": ["shuffle"] + [f"folding L={k}" for k in range(1, 6)],
    "selection-ratio-sweep": ["all data", "top-r 0.8", "top-r 0.6", "top-r 0.4"],
}


def test_the_four_presets_are_valid_specs_with_the_papers_arms():
    assert sorted(p.stem for p in PRESETS) == sorted(EXPECTED)
    for path in PRESETS:
        spec = parse_spec(path)
        assert spec.labels == EXPECTED[path.stem] and spec.scorer.method == "lqs" and spec.seeds == (0, 1, 2)
        assert spec.description and spec.corpus == "demo"


def _lqs_scoring(workspace) -> None:
    """A finished "lqs" scoring of the app's demo (random numbers: the presets' wiring is under test)."""
    from delt_engine.workspace.score_import import import_scores
    from ui.datasets import DEMO, corpus_path

    corpus = corpus_path(workspace, DEMO)
    ids = pl.read_ndjson(corpus)["id"].cast(pl.Utf8)
    scores = workspace / "lqs-scores.jsonl"
    scores.write_text(
        "".join(json.dumps({"id": i, "score": (k * 37 % 101) / 101}) + "\n" for k, i in enumerate(ids.to_list()))
    )
    import_scores(workspace / "scores", corpus, scores, name="lqs")


def test_a_preset_launches_as_one_comparison_from_the_train_page(workspace, monkeypatch):
    from ui import presets

    small = {
        "model": "tiny-test",
        "device": "cpu",
        "steps": 2,
        "epochs": None,
        "batch_size": 8,
        "max_length": 32,
        "eval_every": 2,
        "eval_max_samples": 8,
    }
    loaded = {p.stem: {**json.loads(p.read_text()), "train": small} for p in PRESETS}
    monkeypatch.setattr(presets, "load_presets", lambda: loaded)
    open_page()
    ensure_length_scores(workspace)
    at = open_page("pages/train.py")
    assert any(b.key == "train.preset.paper-ordering-ablation" and b.disabled for b in at.button)  # no LQS yet
    _lqs_scoring(workspace)
    at = open_page("pages/train.py")
    at.button(key="train.preset.paper-ordering-ablation").click().run()
    assert not at.exception and texts(at, "error") == []
    manifests = [json.loads(p.read_text()) for p in (workspace / "comparisons").glob("*/comparison.json")]
    (manifest,) = [m for m in manifests if m["name"].startswith("paper-ordering-ablation")]
    assert manifest["arms"] == EXPECTED["paper-ordering-ablation"] and manifest["seeds"] == [0, 1, 2]
    assert manifest["scores"]["score_field"] == "score" and manifest["spec"]["scorer"]["scorer_method"] == "lqs"
    states = [json.loads((workspace / "runs" / r["id"] / "status.json").read_text())["state"] for r in manifest["runs"]]
    assert states == ["done"] * 12  # 4 arms x 3 seeds, trained (jobs run inline in these tests)


@pytest.mark.parametrize("page", ["pages/learn.py"])
def test_the_learn_page_offers_the_presets_too(workspace, page):
    at = open_page(page)
    assert not at.exception
    keys = {b.key for b in at.button if b.key and b.key.startswith("learn.preset.paper")}
    assert {"learn.preset.paper-conventional-vs-delt", "learn.preset.paper-folding-sweep"} <= keys
