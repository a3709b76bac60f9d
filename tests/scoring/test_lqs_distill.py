"""Distilled LQS: exact scores on a proxy subset, a regressor for the rest (delt-method.md section 2)."""

import numpy as np
import polars as pl
import pytest
import torch

from delt_engine.errors import ConfigError
from delt_engine.models.presets import build_model
from delt_engine.scoring import ScoreContext
from delt_engine.scoring import lqs as lqs_module
from delt_engine.scoring.distill import spearman, train_regressor
from delt_engine.scoring.lqs import run_lqs, score_lqs
from delt_engine.data.tokenizer import encode, train_tokenizer

ANIMALS = ["cat", "dog", "owl", "fox", "hen", "cow"]
TEXTS = [f"The {a} walked to the {p} and saw {n} {b}s." for n, (a, p, b) in
         enumerate(zip(ANIMALS * 5, ["mill", "river", "barn", "hill", "road"] * 6, ANIMALS[::-1] * 5))]
TEXTS += ["qq zz xx " * 4, "Buy now! Click here! " * 3, "the the the mat"]
TARGET = ["The fox walked to the river.", "A hen saw two owls at the barn."]
OPTIONS = {"steps": 4, "delta": 2, "warmup_steps": 2, "eta": 0.3, "chunk_size": 4, "proxy_size": 12}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS + TARGET, vocab_size=320)


def make_ctx(tokenizer, **options):
    frame = pl.DataFrame({"id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS})
    return ScoreContext(frame=frame, model="tiny-test", tokenizer=tokenizer, device="cpu", max_length=24,
                        batch_size=4, target_texts=TARGET, options={**OPTIONS, **options})


def test_distilled_table_keeps_exact_scores_and_marks_sources(tokenizer):
    lqs_module._CACHE.clear()
    proxy_only = score_lqs(make_ctx(tokenizer))
    result = run_lqs(make_ctx(tokenizer, distill=True, distill_epochs=3), "lqs")
    t = result.frame
    assert t["id"].to_list() == [f"d{i}" for i in range(len(TEXTS))]  # corpus order, every sample
    exact = t.filter(pl.col("source") == "exact")
    assert exact.height == 12 and exact["exact"].all() and not t.filter(~pl.col("exact"))["exact"].any()
    assert (t["source"] == "distilled").sum() == len(TEXTS) - 12
    joined = proxy_only.join(exact, on="id", suffix="_d")
    assert joined.height == 12 and joined["lqs"].to_list() == joined["lqs_d"].to_list()  # exact scores kept
    distilled = t.filter(pl.col("source") == "distilled")
    assert distilled["score"].is_not_null().all() and distilled["score"].to_list() == distilled["lqs"].to_list()
    assert distilled["pds"].is_null().all() and distilled["cos"].is_null().all()
    facts = result.meta["distill"]
    assert facts["n_train"] + facts["n_val"] == 12 and 1 <= facts["best_epoch"] <= 3
    assert len(facts["val_spearman_by_epoch"]) == 3
    assert t["distill_val_spearman"].n_unique() == 1
    assert t["distill_val_spearman"][0] == facts["val_spearman"] == max(facts["val_spearman_by_epoch"])


def test_pds_distils_its_own_column(tokenizer):
    t = run_lqs(make_ctx(tokenizer, distill=True, distill_epochs=1), "pds").frame
    distilled = t.filter(pl.col("source") == "distilled")
    assert distilled["score"].to_list() == distilled["pds"].to_list() and distilled["lqs"].is_null().all()


def test_distill_needs_a_proxy_of_useful_size(tokenizer):
    with pytest.raises(ConfigError, match="proxy_size"):
        score_lqs(make_ctx(tokenizer, proxy_size=None, distill=True))
    with pytest.raises(ConfigError, match="proxy_size >= 4"):
        score_lqs(make_ctx(tokenizer, proxy_size=3, distill=True))


def test_regressor_learns_a_learnable_label(tokenizer):
    """Label = 1 for texts about a cat or a dog, 0 otherwise (plus noise): pooled states can read that."""
    samples = encode(TEXTS, [str(i) for i in range(len(TEXTS))], tokenizer, max_length=24)
    rng = np.random.default_rng(0)
    labels = np.array([1.0 if (" cat " in t or " dog " in t) else 0.0 for t in TEXTS]) + 0.05 * rng.normal(size=len(TEXTS))
    lm = build_model("tiny-test", vocab_size=len(tokenizer), seed=0, device="cpu",
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    reg, facts = train_regressor(lm, samples, np.arange(len(TEXTS)), labels, epochs=12, lr=3e-3, batch_size=8,
                                 val_fraction=0.3, seed=1)
    assert facts["val_spearman"] > 0.5, facts
    assert facts["val_spearman"] == max(facts["val_spearman_by_epoch"])
    assert np.isfinite(spearman(labels, labels))
