"""Baseline scorers (random, length, compression, perplexity) on a tiny corpus with the tiny-test preset."""

import gzip
import math

import polars as pl
import pytest
import torch

from delt_engine.data.tokenizer import train_tokenizer
from delt_engine.errors import Cancelled
from delt_engine.models.presets import build_model
from delt_engine.scoring import SCORERS, ScoreContext
from delt_engine.scoring.baselines import (
    PERPLEXITY_WARMUP,
    compression_ratio,
    score_compression,
    score_length,
    score_perplexity,
    score_random,
)

PROSE = [
    "The river bends twice before it reaches the old mill, where herons wait in the reeds.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside leaves.",
    "She counted the coins again: seven copper, three silver, and one she could not name.",
    "A prime number has exactly two divisors, one and itself; 2 is the only even prime.",
    "Winter arrived early that year, and the harbour froze before the last boats came home.",
    "Short one.",
    "Glaciers carve valleys slowly, grinding rock into flour that tints the lakes a milky blue, "
    "and every summer the meltwater carries a little more of the mountain down to the sea.",
    "Why do cats purr? Nobody is entirely sure, but the vibration may help heal their bones.",
]
BOILERPLATE = ["Click here to subscribe! " * 12, "Cookie policy. Accept all. " * 10]
TEXTS = PROSE + BOILERPLATE
COLD = {"warmup_steps": 0}  # the random proxy: tests of the scoring pass itself


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=400)


def make_ctx(texts=TEXTS, **kw):
    frame = pl.DataFrame({"id": [f"s{i}" for i in range(len(texts))], "text": list(texts)})
    kw.setdefault("model", "tiny-test")
    kw.setdefault("device", "cpu")
    return ScoreContext(frame=frame, **kw)


def test_random_is_seeded_uniform_and_deterministic():
    a = score_random(make_ctx(seed=3))
    b = score_random(make_ctx(seed=3))
    c = score_random(make_ctx(seed=4))
    assert a["id"].to_list() == [f"s{i}" for i in range(len(TEXTS))]
    assert a.schema["id"] == pl.Utf8 and a.schema["score"] == pl.Float64
    assert a["score"].to_list() == b["score"].to_list()
    assert a["score"].to_list() != c["score"].to_list()
    assert all(0.0 <= v < 1.0 for v in a["score"])
    assert a["score"].n_unique() == len(TEXTS)


def test_length_is_the_full_token_count(tokenizer):
    out = score_length(make_ctx(tokenizer=tokenizer, max_length=8))
    for text, n_tok, n_chars, score in zip(TEXTS, out["n_tokens"], out["n_chars"], out["score"]):
        expected = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert n_tok == expected and score == float(expected)
        assert n_chars == len(text)
    # not truncated to max_length: the long glacier document keeps all its tokens
    assert out["n_tokens"].max() > 8
    assert SCORERS["length"].direction == "higher_harder"


def test_compression_formula_matches_gzip_by_hand():
    out = score_compression(make_ctx())
    for text, score, n_bytes, gz in zip(TEXTS, out["score"], out["n_bytes"], out["gzip_bytes"]):
        raw = text.encode("utf-8")
        packed = gzip.compress(raw, compresslevel=9, mtime=0)
        assert gzip.decompress(packed) == raw
        assert (n_bytes, gz) == (len(raw), len(packed))
        assert score == pytest.approx(len(packed) / len(raw), rel=1e-12)
    assert compression_ratio("naïve café") == pytest.approx(
        len(gzip.compress("naïve café".encode(), 9, mtime=0)) / len("naïve café".encode())
    )


def test_compression_ranks_boilerplate_below_prose():
    out = score_compression(make_ctx())
    scores = dict(zip(out["id"], out["score"]))
    prose = [scores[f"s{i}"] for i in range(len(PROSE)) if len(PROSE[i]) > 60]
    boiler = [scores[f"s{i}"] for i in range(len(PROSE), len(TEXTS))]
    assert max(boiler) < min(prose)
    assert compression_ratio("") is None


def brute_force_perplexity(model, tokenizer, text, max_length):
    """One sample at a time, no padding: exp of the mean next-token CE over the sample's tokens."""
    ids = (tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])[:max_length]
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x).logits[0].double(), dim=-1)
    nll = [-logp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]
    loss = sum(nll) / len(nll)
    return loss, math.exp(loss), len(ids)


def test_perplexity_matches_brute_force(tokenizer):
    max_length = 24
    out = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=max_length, batch_size=4, seed=5, options=COLD))
    model = build_model(
        "tiny-test",
        vocab_size=len(tokenizer),
        seed=5,
        device="cpu",
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).eval()
    assert out["id"].to_list() == [f"s{i}" for i in range(len(TEXTS))]
    for text, score, loss, n_tok in zip(TEXTS, out["score"], out["loss"], out["n_tokens"]):
        ref_loss, ref_ppl, ref_n = brute_force_perplexity(model, tokenizer, text, max_length)
        assert n_tok == ref_n
        assert loss == pytest.approx(ref_loss, abs=1e-5)
        assert score == pytest.approx(ref_ppl, rel=1e-5)
    assert SCORERS["perplexity"].direction == "higher_harder"


def test_perplexity_independent_of_batch_size_and_padding(tokenizer):
    base = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=32, batch_size=1, options=COLD))
    for bs in (3, 16):
        other = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=32, batch_size=bs, options=COLD))
        assert other["score"].to_list() == pytest.approx(base["score"].to_list(), rel=1e-5)
    # A much longer neighbour widens every batch it joins (more padding); nobody else's score moves.
    padded = score_perplexity(
        make_ctx(TEXTS + [" ".join(PROSE)], tokenizer=tokenizer, max_length=32, batch_size=16, options=COLD)
    )
    assert padded["score"].to_list()[:-1] == pytest.approx(base["score"].to_list(), rel=1e-5)


def test_perplexity_of_a_one_token_sample_is_null(tokenizer):
    out = score_perplexity(make_ctx(["", PROSE[0]], tokenizer=tokenizer, options=COLD))
    assert out["score"][0] is None and out["loss"][0] is None and out["n_tokens"][0] == 1
    assert out["score"][1] > 1.0


def test_warmup_trains_the_proxy_on_the_corpus(tokenizer):
    cold = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=32, seed=1, options=COLD))
    opts = {"warmup_steps": 10, "warmup_lr": 2e-2}
    warm = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=32, seed=1, options=opts))
    again = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=32, seed=1, options=dict(opts)))
    assert warm["loss"].mean() < cold["loss"].mean() - 0.5
    assert warm["score"].to_list() == pytest.approx(again["score"].to_list(), rel=1e-6)


def test_perplexity_warms_the_proxy_up_by_default_as_lqs_does(tokenizer):
    """Without options the proxy gets LQS's warm-up: the scores equal a brute-force pass over a model
    warmed up by hand with LQS's default steps and learning rate, and beat the random proxy's."""
    from delt_engine.scoring.lqs_config import LQSConfig
    from delt_engine.scoring.runner import prepare_samples, warm_up

    assert PERPLEXITY_WARMUP == {"warmup_steps": LQSConfig.warmup_steps, "warmup_lr": LQSConfig.warmup_lr}
    default = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=24, batch_size=4, seed=2))
    cold = score_perplexity(make_ctx(tokenizer=tokenizer, max_length=24, batch_size=4, seed=2, options=COLD))
    model = build_model(
        "tiny-test",
        vocab_size=len(tokenizer),
        seed=2,
        device="cpu",
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    samples = prepare_samples(make_ctx(tokenizer=tokenizer, max_length=24), tokenizer)
    warm_up(model, samples, steps=LQSConfig.warmup_steps, lr=LQSConfig.warmup_lr, batch_size=4, seed=2)
    model.eval()
    for text, loss in zip(TEXTS, default["loss"]):
        assert loss == pytest.approx(brute_force_perplexity(model, tokenizer, text, 24)[0], abs=1e-4)
    assert default["loss"].mean() < cold["loss"].mean() - 1.0


def test_progress_reports_phases_and_stop_flag_cancels(tokenizer):
    events = []
    score_perplexity(make_ctx(tokenizer=tokenizer, batch_size=4, on_progress=events.append))
    phases = [e.phase for e in events]
    assert "encode" in phases and "warm-up" in phases and "perplexity" in phases
    last = [e for e in events if e.phase == "perplexity"][-1]
    assert last.done == last.total == len(TEXTS)
    calls = []

    def stop_after_first_batch():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        score_perplexity(make_ctx(tokenizer=tokenizer, batch_size=4, should_stop=stop_after_first_batch))
    for fn in (score_random, score_compression):
        with pytest.raises(Cancelled):
            fn(make_ctx(should_stop=lambda: True))


def test_warmup_on_length_halves_trains_as_the_whole_batches(tokenizer, monkeypatch):
    """The CPU warm-up runs a ragged batch as its two length halves: the losses and the weights equal
    those of the same warm-up on whole batches (float rounding apart: the loss is taken in float32)."""
    from delt_engine.data import tokenizer as tokenizer_module
    from delt_engine.scoring.runner import prepare_samples, warm_up

    texts = [PROSE[5] if i % 2 else " ".join(PROSE) for i in range(24)]  # "Short one." and the whole prose
    ctx = make_ctx(texts, tokenizer=tokenizer, max_length=64, batch_size=8, options=COLD)
    samples = prepare_samples(ctx, tokenizer)

    def trained():
        model = build_model("tiny-test", len(tokenizer), seed=3, device="cpu", dtype=torch.float64)
        return model, warm_up(model, samples, steps=4, lr=1e-2, batch_size=8, seed=5)

    calls, real_split = [], tokenizer_module.length_split

    def counted(ids, mask):
        parts = real_split(ids, mask)
        calls.append(len(parts))
        return parts

    monkeypatch.setattr(tokenizer_module, "length_split", counted)
    split_model, split_losses = trained()
    assert 2 in calls  # some batch was split
    monkeypatch.setattr(tokenizer_module, "length_split", lambda i, m: [(i, m)])
    whole_model, whole_losses = trained()
    assert split_losses == pytest.approx(whole_losses, rel=1e-6)
    for (name, a), (_, b) in zip(split_model.named_parameters(), whole_model.named_parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name


def test_perplexity_warms_up_only_a_random_preset_and_records_what_it_used(tmp_path):
    from delt_engine.scoring.baselines import perplexity_options
    from delt_engine.scoring.runner import run_scoring

    frame = pl.DataFrame({"id": ["a", "b"], "text": ["x y z", "y z x"]})
    assert perplexity_options(ScoreContext(frame=frame, model="cpu-demo")) == PERPLEXITY_WARMUP
    folder = ScoreContext(frame=frame, model=str(tmp_path))  # a trained model folder: scored as it is
    assert perplexity_options(folder) == {"warmup_steps": 0}
    assert (
        perplexity_options(ScoreContext(frame=frame, model=str(tmp_path), options={"warmup_steps": 5}))["warmup_steps"]
        == 5
    )
    result = run_scoring(frame, "perplexity", model="tiny-test", options={"warmup_steps": 1}, max_length=16)
    assert result.config["options"] == {"warmup_steps": 1, "warmup_lr": PERPLEXITY_WARMUP["warmup_lr"]}
