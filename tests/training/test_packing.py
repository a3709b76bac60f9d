"""Packed training rows: documents concatenated in training order with EOS, cut into full rows; the
ordering, budgets and batch score stay exact (checked against brute force over the token stream)."""

import json
import math

import pytest
import torch

from delt_engine.data.tokenizer import load_tokenizer
from delt_engine.errors import ConfigError, DataError
from delt_engine.jobs.train_job import train
from delt_engine.models.losses import token_mean_loss
from delt_engine.models.presets import build_model
from delt_engine.training.config import PACKED_BY_DEFAULT, RunConfig, uses_packing
from delt_engine.training.data import pack_documents

WORDS = "the cat sat on a mat dog ran far away big small red blue green tree house river stone".split()
MAX_LEN, BATCH = 16, 3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _text(i: int) -> str:
    # lengths 2..40 words: some documents are longer than a row, most shorter
    return " ".join(WORDS[(i * 5 + k * 3) % len(WORDS)] for k in range(2 + (i * 7) % 39))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """23 documents whose file order is not their id order, with scores (one missing)."""
    root = tmp_path_factory.mktemp("packing")
    order = [(i * 11) % 23 for i in range(23)]
    rows = [{"id": f"d{i}", "text": _text(i), **({"score": i / 23} if i != 4 else {})} for i in order]
    with open(root / "ordered.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return {"rows": rows, "input": str(root / "ordered.jsonl"), "cache": str(root / "cache")}


def _config(data, **kw) -> RunConfig:
    base = dict(
        input=data["input"],
        model="tiny-test",
        cache_dir=data["cache"],
        batch_size=BATCH,
        max_length=MAX_LEN,
        device="cpu",
        lr=1e-2,
        packing=True,
    )
    base.update(kw)
    return RunConfig(**base)


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stream(data, tmp_path_factory):
    """Brute force: the token stream (every document whole, EOS after each) and its document per token."""
    summary = train(_config(data, steps=1), tmp_path_factory.mktemp("probe") / "run")
    tok = load_tokenizer(summary["tokenizer"])
    tokens, owner = [], []
    for pos, row in enumerate(data["rows"]):
        ids = tok(row["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        tokens += ids
        owner += [pos] * len(ids)
    return {"tokenizer": tok, "tokens": tokens, "owner": owner}


def _batches(stream):
    """Per batch of BATCH rows of MAX_LEN tokens: (positions of its documents, real tokens)."""
    per_batch = MAX_LEN * BATCH
    out = []
    for a in range(0, len(stream["tokens"]), per_batch):
        owners = stream["owner"][a : a + per_batch]
        out.append((sorted(set(owners)), len(owners)))
    return out


def test_pack_documents_matches_the_concatenated_stream():
    docs = [[5, 6, 7, 0], [8, 0], [9, 9, 9, 9, 9, 9, 9, 0], [3, 0]]
    rows = pack_documents(docs, 5, pad_id=1)
    flat = [t for d in docs for t in d]
    assert rows.input_ids.shape == (math.ceil(len(flat) / 5), 5)
    assert rows.input_ids.flatten().tolist()[: len(flat)] == flat
    assert rows.input_ids.flatten().tolist()[len(flat) :] == [1] * (rows.input_ids.numel() - len(flat))
    assert rows.lengths == [5, 5, 5, 1]
    owner = [i for i, d in enumerate(docs) for _ in d]
    assert rows.first_doc == [owner[r * 5] for r in range(4)]
    assert rows.last_doc == [owner[min(r * 5 + 4, len(flat) - 1)] for r in range(4)]
    assert list(rows.docs(slice(1, 3))) == [1, 2, 3] and list(rows.docs(slice(3, 4))) == [3]
    assert list(rows.docs(slice(0, 4))) == [0, 1, 2, 3]
    with pytest.raises(DataError, match="no tokens"):
        pack_documents([[], [3, 0]], 5, pad_id=1)
    with pytest.raises(ConfigError, match="max_length"):
        pack_documents(docs, 1, pad_id=1)


def test_packed_rows_keep_the_file_order_exactly(data, stream, tmp_path):
    seen = []
    summary = train(_config(data, epochs=1), tmp_path / "run", on_batch=lambda step, ids: seen.append((step, ids)))
    expected = _batches(stream)
    assert summary["state"] == "done" and summary["steps"] == len(expected)
    ids = [r["id"] for r in data["rows"]]
    assert [list(b) for _, b in seen] == [[ids[p] for p in docs] for docs, _ in expected]
    # the documents reconstructed from the packed batches, consecutive repeats merged, are the file
    merged = [i for _, batch in seen for i in batch]
    merged = [i for k, i in enumerate(merged) if k == 0 or merged[k - 1] != i]
    assert merged == ids
    # every document whole, no truncation: the epoch's tokens are the whole stream
    assert summary["tokens"] == len(stream["tokens"]) and summary["packing"] is True


def test_packed_rows_hold_the_stream_and_split_back_into_the_documents(data, stream):
    from delt_engine.training.data import load_ordered, packed_rows

    rows = packed_rows(load_ordered(_config(data)).texts, stream["tokenizer"], MAX_LEN)
    real = rows.input_ids[rows.attention_mask.bool()].tolist()
    assert real == stream["tokens"]
    assert (rows.attention_mask[:-1] == 1).all()  # only the last row can hold padding
    eos = stream["tokenizer"].eos_token_id
    docs, current = [], []
    for t in real:
        current.append(t)
        if t == eos:
            docs.append(current)
            current = []
    tok = stream["tokenizer"]
    assert [tok.decode(d[:-1]) for d in docs] == [r["text"] for r in data["rows"]]


def test_batch_score_is_the_mean_over_documents_present_in_the_batch(data, stream, tmp_path):
    train(_config(data, epochs=1), tmp_path / "run")
    scores = [r.get("score") for r in data["rows"]]
    expected = []
    for docs, _ in _batches(stream):
        present = [scores[p] for p in docs if scores[p] is not None]
        expected.append(sum(present) / len(present))
    got = [r["batch_score"] for r in _lines(tmp_path / "run") if "train_loss" in r]
    assert got == pytest.approx(expected)


def test_token_and_step_budgets_count_real_tokens_of_packed_rows(data, stream, tmp_path):
    per_batch = [n for _, n in _batches(stream)] * 2
    cumulative = [sum(per_batch[: k + 1]) for k in range(len(per_batch))]
    n = len(per_batch) // 2
    budget = cumulative[n + 1] + 1  # in the second epoch
    summary = train(_config(data, tokens=budget, epochs=2), tmp_path / "tokens")
    assert summary["steps"] == n + 3 and summary["tokens"] == cumulative[n + 2] >= budget
    assert [r["tokens"] for r in _lines(tmp_path / "tokens") if "train_loss" in r] == cumulative[: n + 3]
    steps = train(_config(data, steps=n + 1, epochs=2), tmp_path / "steps")
    assert steps["tokens"] == cumulative[n] and steps["batches_per_epoch"] == n
    with pytest.raises(ConfigError, match="raise epochs"):
        train(_config(data, steps=n + 1), tmp_path / "too-many")


def test_first_step_trains_on_the_first_packed_rows(data, stream, tmp_path):
    train(_config(data, steps=1, log_every=1), tmp_path / "run")
    loss = _lines(tmp_path / "run")[0]["train_loss"]
    tok = stream["tokenizer"]
    model = build_model(
        "tiny-test",
        vocab_size=len(tok),
        seed=0,
        device="cpu",
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attn_implementation="sdpa",
    )
    ids = torch.tensor(stream["tokens"][: MAX_LEN * BATCH]).view(BATCH, MAX_LEN)
    with torch.no_grad():
        expected = token_mean_loss(model, ids, torch.ones_like(ids))
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_packing_defaults_per_preset_and_validation():
    assert uses_packing(RunConfig(input="x", model="tiny-test")) is False
    assert uses_packing(RunConfig(input="x", model="cpu-demo")) is True
    assert uses_packing(RunConfig(input="x", model="cpu-demo", packing=False)) is False
    assert uses_packing(RunConfig(input="x", model="tiny-test", packing=True)) is True
    assert uses_packing(RunConfig(input="x", model="/some/model/dir")) is True
    assert set(PACKED_BY_DEFAULT) >= {"tiny-test", "cpu-demo", "cpu-small", "gpu-30m", "gpu-160m"}
    with pytest.raises(ConfigError, match="packing='yes'"):
        RunConfig(input="x", packing="yes")
    cfg = RunConfig(input="x", packing=True)
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_cli_packing_flags_reach_the_run_config(data, tmp_path):
    import argparse

    from delt_engine.cli import train as cli_train

    parser = argparse.ArgumentParser()
    cli_train.register(parser.add_subparsers())
    for flags, expected in ((["--packing"], True), (["--no-packing"], False), ([], None)):
        args = parser.parse_args(["train", "--run-dir", str(tmp_path / "r"), "--input", data["input"], *flags])
        assert cli_train._config_from_args(args).packing is expected
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--run-dir", "r", "--packing", "--no-packing"])


def test_compile_defaults_and_fallback_to_eager_when_compiling_fails(data, tmp_path, monkeypatch):
    from delt_engine.training.config import COMPILE_MIN_STEPS, uses_compile

    cfg = _config(data, steps=3)
    assert not uses_compile(cfg, "cpu", 10**6)  # never by default on a CPU
    assert uses_compile(cfg, "cuda", COMPILE_MIN_STEPS) and not uses_compile(cfg, "cuda", COMPILE_MIN_STEPS - 1)
    assert not uses_compile(_config(data, packing=False), "cuda", 10**6)  # one shape per step needed
    assert uses_compile(_config(data, compile=True), "cpu", 1) and not uses_compile(
        _config(data, compile=False), "cuda", 10**6
    )
    with pytest.raises(ConfigError, match="compile='on'"):
        _config(data, compile="on")
    eager = train(_config(data, steps=3, log_every=1), tmp_path / "eager")

    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("inductor is not available here")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    summary = train(_config(data, steps=3, log_every=1, compile=True), tmp_path / "fallback")
    assert summary["compile"].startswith("failed (RuntimeError: inductor is not available here)")
    assert summary["first_step_s"] > 0 and eager["compile"] is False
    losses = [[r["train_loss"] for r in _lines(tmp_path / name) if "train_loss" in r] for name in ("fallback", "eager")]
    assert losses[0] == losses[1] and len(losses[0]) == 3
