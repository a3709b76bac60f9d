"""LQS/PDS scorers: config, data order, combination, rank statistics, end-to-end on the tiny-test preset."""

import dataclasses
import json

import numpy as np
import polars as pl
import pytest
import torch

from delt_engine.data.tokenizer import train_tokenizer
from delt_engine.errors import Cancelled, ConfigError, DataError, JobError
from delt_engine.models.losses import sample_losses_from_logits
from delt_engine.scoring import ScoreContext, score
from delt_engine.scoring import lqs as lqs_module
from delt_engine.scoring.distill import auroc, rankdata, spearman
from delt_engine.scoring.lqs import LQSConfig, memory_error, run_lqs, score_lqs
from delt_engine.scoring.lqs_core import (
    LQSParts,
    batch_schedule,
    combine,
    contribution_steps,
    length_chunks,
    next_checkpoint,
    sample_losses,
)

CLEAN = [
    f"The {a} cat sat on the {b} mat and looked at the {c} bird."
    for a, b, c in zip(
        ["red", "old", "small", "grey", "black", "lazy"] * 2,
        ["blue", "warm", "new", "soft"] * 3,
        ["green", "tiny", "loud"] * 4,
    )
]
NOISE = ["zq xj vv kk pp qq zz " * 3, "Click here! Subscribe now! " * 4, "", "The cat the the the mat mat bird"]
TEXTS = CLEAN + NOISE
TARGET = ["The old cat sat on the warm mat.", "A small bird looked at the black cat.", "The grey cat sat."]
OPTIONS = {"steps": 4, "delta": 2, "warmup_steps": 3, "eta": 0.3, "chunk_size": 5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS + TARGET, vocab_size=320)


def make_ctx(tokenizer, texts=TEXTS, **kw):
    frame = pl.DataFrame({"id": [f"s{i}" for i in range(len(texts))], "text": list(texts)})
    kw.setdefault("target_texts", TARGET)
    kw.setdefault("options", dict(OPTIONS))
    kw.setdefault("device", "cpu")
    return ScoreContext(frame=frame, model="tiny-test", tokenizer=tokenizer, max_length=24, batch_size=4, **kw)


@pytest.fixture(scope="module")
def scored(tokenizer):
    events = []
    lqs_module._CACHE.clear()
    result = run_lqs(make_ctx(tokenizer, on_progress=events.append), "lqs")
    return result, events


# ---------------------------------------------------------------- config


def test_config_defaults_are_valid_and_frozen():
    cfg = LQSConfig()
    assert cfg.steps >= cfg.delta and cfg.warmup_steps > 0 and cfg.final_norm == "paper"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("steps", 5, "delta"),
        ("eta", 0.0, "eta"),
        ("eta", float("nan"), "eta"),
        ("max_length", 1, "max_length"),
        ("chunk_size", 0, "chunk_size"),
        ("checkpoint", "never", "checkpoint"),
        ("final_norm", "x", "final_norm"),
        ("dtype", "float16", "dtype"),
        ("proxy_size", 0, "proxy_size"),
        ("distill", True, "proxy_size"),
        ("warmup_steps", -1, "warmup_steps"),
        ("steps", 2.5, "steps"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value, words):
    with pytest.raises(ConfigError, match=words):
        LQSConfig(**{field: value})


def test_chunk_size_by_device_unless_set():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)  # a device object; no GPU needed
    assert (LQSConfig().chunk_for(cpu), LQSConfig().chunk_for(cuda)) == (16, 64)
    assert (LQSConfig(chunk_size=5).chunk_for(cpu), LQSConfig(chunk_size=5).chunk_for(cuda)) == (5, 5)
    with pytest.raises(ConfigError, match="chunk_size=0 must be an integer >= 1 \\(e.g. --set chunk_size=16\\)"):
        LQSConfig(chunk_size=0)


def test_from_options_takes_context_defaults_coerces_strings_and_rejects_unknown(tokenizer):
    ctx = make_ctx(
        tokenizer,
        seed=5,
        options={
            "steps": "12",
            "delta": "4",
            "eta": "0.25",
            "distill": "false",
            "proxy_size": "none",
            "vocab_size": 320,
        },
    )
    cfg = LQSConfig.from_options(ctx)
    assert (cfg.steps, cfg.delta, cfg.eta, cfg.distill, cfg.proxy_size) == (12, 4, 0.25, False, None)
    assert (cfg.seed, cfg.max_length, cfg.batch_size, cfg.device) == (5, 24, 4, "cpu")
    with pytest.raises(ConfigError, match="unknown LQS option.*stepz.*valid options:.*steps"):
        LQSConfig.from_options(make_ctx(tokenizer, options={"stepz": 3}))
    with pytest.raises(ConfigError, match="distill"):
        LQSConfig.from_options(make_ctx(tokenizer, options={"distill": "maybe"}))


# ---------------------------------------------------------------- schedule, chunks, steps


def test_batch_schedule_is_seeded_and_walks_permutations():
    a, b, c = (batch_schedule(10, 3, 7, s) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, c))
    first_epoch = torch.cat(a[:3]).tolist()  # 3 full batches, then a new permutation
    assert len(set(first_epoch)) == 9 and all(len(set(x.tolist())) == 3 for x in a)
    assert [len(x) for x in batch_schedule(2, 5, 3, 0)] == [2, 2, 2]  # batch larger than the pool


def test_length_chunks_cover_every_sample_once_longest_first():
    lengths = torch.tensor([3, 9, 1, 9, 5, 2, 7])
    chunks = length_chunks(lengths, 3)
    flat = torch.cat(chunks).tolist()
    assert sorted(flat) == list(range(7)) and [len(c) for c in chunks] == [3, 3, 1]
    assert lengths[flat].tolist() == sorted(lengths.tolist(), reverse=True)


@pytest.mark.parametrize(
    "steps,delta,expected,last_next",
    [
        (100, 10, list(range(0, 100, 10)), 100),
        (45, 10, [0, 10, 20, 30, 40], 45),
        (41, 10, [0, 10, 20, 30, 40], 41),
        (40, 10, [0, 10, 20, 30], 40),
        (3, 1, [0, 1, 2], 3),
    ],
)
def test_contribution_steps_and_next_checkpoint(steps, delta, expected, last_next):
    assert contribution_steps(steps, delta) == expected
    assert next_checkpoint(expected[-1], steps, delta) == last_next
    assert all(next_checkpoint(t, steps, delta) == u for t, u in zip(expected, expected[1:]))


def test_sample_losses_match_lm_and_keep_float64():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=gen)
    ids = torch.randint(0, 11, (3, 6), generator=gen)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5])
    torch.testing.assert_close(sample_losses(logits, ids, mask), sample_losses_from_logits(logits, ids, mask))
    assert sample_losses(logits.double(), ids, mask).dtype == torch.float64
    assert float(sample_losses(logits, ids, mask)[2]) == 0.0  # one token: nothing to predict


def test_combine_worked_example_and_zero_gradients():
    # two steps (K = 2); sample 1 has a zero gradient everywhere (e.g. a one-token sample)
    parts = LQSParts(
        np.array([0, 1]),
        [0, 10],
        dots=np.array([[2.0, 3.0], [0.0, 0.0]]),
        sqnorms=np.array([[4.0, 1.0, 16.0], [0.0, 0.0, 0.0]]),
        lambda_norms=np.array([2.0, 5.0]),
    )
    out = combine(parts, eta=0.5)
    # c_0 = 0.5 * 2 / ||g_10|| = 1; c_1 = 0.5 * 3 / ||g_T|| = 0.375
    np.testing.assert_allclose(out["lqs"], [1.375, 0.0])
    np.testing.assert_allclose(out["pds"], [2.5, 0.0])
    np.testing.assert_allclose(out["quality"], [2 / (2 * 2) + 3 / (1 * 5), 0.0])
    np.testing.assert_allclose(out["learnability"], [2 / 1 + 1 / 4, 0.0])
    np.testing.assert_allclose(out["grad_norm"], [[2.0, 1.0], [0.0, 0.0]])
    ref = combine(parts, eta=0.5, final_norm="reference")
    np.testing.assert_allclose(ref["lqs"], [1.0 + 1.5, 0.0])
    # factorised view: c = eta * ||lambda|| * cos * ratio
    np.testing.assert_allclose(out["contribution"][0], 0.5 * parts.lambda_norms * out["cos"][0] * out["ratio"][0])


# ---------------------------------------------------------------- rank statistics (used by distill and bench)


def test_rank_statistics_against_brute_force():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 40).astype(float)  # many ties
    y = x + rng.normal(0, 2, 40)
    labels = rng.random(40) < 0.4
    ranks = rankdata(x)
    for i in range(40):  # average rank: 1 + #smaller + (#equal - 1) / 2
        assert ranks[i] == 1 + (x < x[i]).sum() + ((x == x[i]).sum() - 1) / 2
    pos, neg = x[labels], x[~labels]
    pairs = np.mean([1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg])
    assert auroc(x, labels) == pytest.approx(pairs, abs=1e-12)
    rx, ry = rankdata(x), rankdata(y)
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-12)
    assert spearman(y, 3 * y + 1) == pytest.approx(1.0) and spearman(y, -y) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(5), np.arange(5))) and np.isnan(auroc(x, np.zeros(40, bool)))


# ---------------------------------------------------------------- end to end


def test_score_lqs_table(scored, tokenizer):
    result, _ = scored
    t = result.frame
    assert t["id"].to_list() == [f"s{i}" for i in range(len(TEXTS))]
    assert t.schema["score"] == pl.Float64 and t.schema["cos"] == pl.List(pl.Float64)
    assert t["score"].to_list() == t["lqs"].to_list()
    assert t["exact"].all() and set(t["source"]) == {"exact"}
    k = len(contribution_steps(OPTIONS["steps"], OPTIONS["delta"]))
    assert all(len(v) == k for v in t["cos"]) and result.meta["contribution_steps"] == [0, 2]
    for col in ("lqs", "pds", "quality", "learnability"):
        assert np.isfinite(t[col].to_numpy()).all(), col
    quality = np.array([sum(v) for v in t["cos"].to_list()])
    np.testing.assert_allclose(t["quality"].to_numpy(), quality)
    assert (np.abs(np.array(t["cos"].to_list())) <= 1 + 1e-9).all()
    assert t.filter(pl.col("id") == "s14")["lqs"][0] == 0.0  # "": EOS only, no predicted token, zero gradient


def test_progress_phases_in_order(scored):
    _, events = scored
    phases = [e.phase for e in events]
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert [p for p in order if p in ("warm-up", "trajectory", "co-state", "contributions")] == [
        "warm-up",
        "trajectory",
        "co-state",
        "contributions",
    ]
    last = {e.phase: e for e in events}
    assert last["contributions"].fraction == 1.0 and last["co-state"].done == OPTIONS["steps"]


def test_pds_shares_the_computation_and_registry_dispatches(scored, tokenizer, monkeypatch):
    result, _ = scored
    calls = []
    monkeypatch.setattr(lqs_module, "compute_exact", lambda *a: calls.append(1))
    pds = score("pds", make_ctx(tokenizer))  # same config and data: served from the cache
    assert calls == []
    assert pds["score"].to_list() == pds["pds"].to_list()
    assert pds["lqs"].to_list() == result.frame["lqs"].to_list()


def test_reproducible_and_seed_sensitive(scored, tokenizer):
    result, _ = scored
    lqs_module._CACHE.clear()
    again = score_lqs(make_ctx(tokenizer))
    assert again["lqs"].to_list() == result.frame["lqs"].to_list()
    other = score_lqs(make_ctx(tokenizer, seed=1))
    assert other["lqs"].to_list() != result.frame["lqs"].to_list()


def test_proxy_subset_without_distill(tokenizer):
    out = score_lqs(make_ctx(tokenizer, options={**OPTIONS, "proxy_size": 6}))
    assert out.height == 6 and set(out["id"]) <= {f"s{i}" for i in range(len(TEXTS))}
    again = score_lqs(make_ctx(tokenizer, options={**OPTIONS, "proxy_size": 6, "chunk_size": 2}))
    assert again["id"].to_list() == out["id"].to_list()


def test_cancel_stops_between_chunks_and_caches_nothing(tokenizer):
    lqs_module._CACHE.clear()
    seen = []

    def on_progress(p):
        seen.append(p.phase)

    with pytest.raises(Cancelled):
        score_lqs(make_ctx(tokenizer, on_progress=on_progress, should_stop=lambda: "contributions" in seen))
    assert lqs_module._CACHE == {}


@pytest.mark.parametrize("target,words", [(None, "--target"), ([], "empty"), (["  ", "", None], "empty")])
def test_bad_target_set(tokenizer, target, words):
    with pytest.raises(DataError, match=words):
        score_lqs(make_ctx(tokenizer, target_texts=target))


def test_bad_settings_and_model(tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="max_length"):
        score_lqs(make_ctx(tokenizer, options={**OPTIONS, "max_length": 1}))
    with pytest.raises(ConfigError, match="delta"):
        score_lqs(make_ctx(tokenizer, options={**OPTIONS, "steps": 1, "delta": 2}))
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    ctx = make_ctx(tokenizer)
    ctx.model = str(tmp_path)
    with pytest.raises(DataError, match="not a causal LM"):
        score_lqs(ctx)


def test_out_of_memory_becomes_job_error_with_the_fix(tokenizer, monkeypatch):
    cfg = LQSConfig(chunk_size=8)
    err = memory_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), cfg)
    assert isinstance(err, JobError) and "chunk_size" in str(err) and "max_length" in str(err)
    assert memory_error(RuntimeError("shape mismatch"), cfg) is None
    from delt_engine.scoring import lqs_core

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(lqs_core.FunctionalLM, "sample_stats", boom)
    lqs_module._CACHE.clear()
    with pytest.raises(JobError, match="chunk_size"):
        score_lqs(make_ctx(tokenizer))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_float32_and_bfloat16_agree_with_cpu(scored, tokenizer):
    cpu = scored[0].frame
    lqs_module._CACHE.clear()
    gpu = score_lqs(make_ctx(tokenizer, device="cuda"))
    np.testing.assert_allclose(gpu["lqs"].to_numpy(), cpu["lqs"].to_numpy(), rtol=1e-3, atol=1e-4)
    bf16 = score_lqs(make_ctx(tokenizer, device="cuda", options={**OPTIONS, "dtype": "bfloat16"}))
    assert spearman(bf16["lqs"].to_numpy(), cpu["lqs"].to_numpy()) > 0.8


def _ragged_batch(lengths, vocab=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(2, vocab, (n,), generator=gen)
        mask[i, :n] = 1
    return ids, mask


def test_length_split_halves_by_length_only_when_it_cuts_padding():
    from delt_engine.data.tokenizer import length_split

    ids, mask = _ragged_batch([30, 3, 28, 4, 5, 29, 2, 31])
    parts = length_split(ids, mask)
    assert len(parts) == 2
    (short, short_mask), (long, long_mask) = parts
    assert short_mask.sum(1).tolist() == [2, 3, 4, 5] and short.shape[1] == 5  # sorted, trimmed to its longest
    assert long_mask.sum(1).tolist() == [28, 29, 30, 31] and long.shape[1] == 31
    rows = {tuple(r[m.bool()].tolist()) for p, pm in parts for r, m in zip(p, pm)}
    assert rows == {tuple(r[m.bool()].tolist()) for r, m in zip(ids, mask)}  # every sample once, unchanged
    even, even_mask = _ragged_batch([20, 19, 18, 20, 17, 20, 19, 18])
    assert len(length_split(even, even_mask)) == 1  # < 20% of the positions saved: the batch as it is
    assert len(length_split(*_ragged_batch([30, 2, 2]))) == 1  # too small to split
    on_gpu = (ids.to("meta"), mask.to("meta"))  # a batch off the CPU (no GPU here): padding costs little there
    assert length_split(*on_gpu) == [on_gpu]
