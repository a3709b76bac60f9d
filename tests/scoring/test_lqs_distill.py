"""Distilled LQS: exact scores on a proxy subset, a regressor for the rest (delt-method.md section 2)."""

import numpy as np
import polars as pl
import pytest
import torch

from delt_engine.data.tokenizer import encode, train_tokenizer
from delt_engine.errors import ConfigError
from delt_engine.models.presets import build_model
from delt_engine.scoring import ScoreContext
from delt_engine.scoring import lqs as lqs_module
from delt_engine.scoring.distill import spearman, train_regressor
from delt_engine.scoring.lqs import run_lqs, score_lqs

ANIMALS = ["cat", "dog", "owl", "fox", "hen", "cow"]
TEXTS = [
    f"The {a} walked to the {p} and saw {n} {b}s."
    for n, (a, p, b) in enumerate(zip(ANIMALS * 5, ["mill", "river", "barn", "hill", "road"] * 6, ANIMALS[::-1] * 5))
]
TEXTS += ["qq zz xx " * 4, "Buy now! Click here! " * 3, "the the the mat"]
TARGET = ["The fox walked to the river.", "A hen saw two owls at the barn."]
OPTIONS = {"steps": 4, "delta": 2, "warmup_steps": 2, "eta": 0.3, "chunk_size": 4, "proxy_size": 12}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS + TARGET, vocab_size=320)


def make_ctx(tokenizer, **options):
    frame = pl.DataFrame({"id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS})
    return ScoreContext(
        frame=frame,
        model="tiny-test",
        tokenizer=tokenizer,
        device="cpu",
        max_length=24,
        batch_size=4,
        target_texts=TARGET,
        options={**OPTIONS, **options},
    )


def test_distilled_table_rescores_every_sample_and_keeps_exact_scores_aside(tokenizer):
    lqs_module._CACHE.clear()
    proxy_only = score_lqs(make_ctx(tokenizer))
    result = run_lqs(make_ctx(tokenizer, distill=True, distill_epochs=3), "lqs")
    t = result.frame
    assert t["id"].to_list() == [f"d{i}" for i in range(len(TEXTS))]  # corpus order, every sample
    exact = t.filter(pl.col("source") == "exact")
    assert exact.height == 12 and exact["exact"].all() and not t.filter(~pl.col("exact"))["exact"].any()
    assert (t["source"] == "distilled").sum() == len(TEXTS) - 12
    # the raw exact scores stay in their own column; components of exact samples are kept as computed
    joined = proxy_only.join(exact, on="id", suffix="_d")
    assert joined.height == 12 and joined["lqs"].to_list() == joined["exact_score"].to_list()
    assert joined["quality"].to_list() == joined["quality_d"].to_list()
    assert t.filter(pl.col("source") == "distilled")["exact_score"].is_null().all()
    # every score, the exact samples' included, is the regressor's prediction (on the label scale)
    reg = regressor_of(tokenizer, "lqs", proxy_only, epochs=3)
    samples = encode(TEXTS, [f"d{i}" for i in range(len(TEXTS))], tokenizer, max_length=24)
    facts = result.meta["distill"]
    with torch.no_grad():
        expected = [
            facts["label_mean"]
            + facts["label_std"] * float(reg(samples.input_ids[i : i + 1], samples.attention_mask[i : i + 1]))
            for i in range(len(TEXTS))
        ]
    assert t["score"].to_list() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert t["lqs"].to_list() == t["score"].to_list()
    assert exact["score"].to_list() != exact["exact_score"].to_list()  # the raw scores are no longer used
    distilled = t.filter(pl.col("source") == "distilled")
    assert distilled["pds"].is_null().all() and distilled["cos"].is_null().all()
    assert facts["n_train"] + facts["n_val"] == 12 and 1 <= facts["best_epoch"] <= 3
    assert len(facts["val_spearman_by_epoch"]) == 3 and -1 <= facts["exact_spearman"] <= 1
    assert t["distill_val_spearman"].n_unique() == 1
    assert t["distill_val_spearman"][0] == facts["val_spearman"] == max(facts["val_spearman_by_epoch"])


def regressor_of(tokenizer, method, proxy_only, epochs):
    """The regressor distillation trains, rebuilt by hand from the cached exact computation's proxy LM."""
    exact = next(iter(lqs_module._CACHE.values()))
    positions = np.asarray(exact.parts.positions)
    by_id = dict(zip(proxy_only["id"].to_list(), proxy_only[method].to_list()))
    labels = np.array([by_id[exact.samples.ids[p]] for p in positions])
    reg, _ = train_regressor(
        exact.flm.model,
        exact.samples,
        positions,
        labels,
        epochs=epochs,
        lr=1e-3,
        batch_size=4,
        val_fraction=0.2,
        seed=0,
    )
    return reg.eval()


def test_pds_distils_its_own_column(tokenizer):
    t = run_lqs(make_ctx(tokenizer, distill=True, distill_epochs=1), "pds").frame
    assert t["score"].to_list() == t["pds"].to_list() and t["score"].is_not_null().all()
    distilled = t.filter(pl.col("source") == "distilled")
    assert distilled["lqs"].is_null().all()
    exact = t.filter(pl.col("exact"))
    assert exact["exact_score"].is_not_null().all() and exact["lqs"].is_not_null().all()


def test_distill_needs_a_proxy_of_useful_size(tokenizer):
    with pytest.raises(ConfigError, match="proxy_size"):
        score_lqs(make_ctx(tokenizer, proxy_size=None, distill=True))
    with pytest.raises(ConfigError, match="proxy_size >= 4"):
        score_lqs(make_ctx(tokenizer, proxy_size=3, distill=True))


def test_regressor_learns_a_learnable_label(tokenizer):
    """Label = 1 for texts about a cat or a dog, 0 otherwise (plus noise): pooled states can read that."""
    samples = encode(TEXTS, [str(i) for i in range(len(TEXTS))], tokenizer, max_length=24)
    rng = np.random.default_rng(0)
    labels = np.array([1.0 if (" cat " in t or " dog " in t) else 0.0 for t in TEXTS]) + 0.05 * rng.normal(
        size=len(TEXTS)
    )
    lm = build_model(
        "tiny-test",
        vocab_size=len(tokenizer),
        seed=0,
        device="cpu",
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    reg, facts = train_regressor(
        lm, samples, np.arange(len(TEXTS)), labels, epochs=12, lr=3e-3, batch_size=8, val_fraction=0.3, seed=1
    )
    assert facts["val_spearman"] > 0.5, facts
    assert facts["val_spearman"] == max(facts["val_spearman_by_epoch"])
    assert np.isfinite(spearman(labels, labels))
