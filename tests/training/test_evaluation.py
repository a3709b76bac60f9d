"""Multiple-choice scoring against a brute-force log-likelihood on a tiny model; loader errors; lm_loss."""

import json

import pytest
import torch

from delt_engine.data.benchmark import Item, load_benchmark
from delt_engine.data.tokenizer import encode, train_tokenizer
from delt_engine.errors import DataError
from delt_engine.models.presets import build_model
from delt_engine.training.config import RunConfig
from delt_engine.training.evaluation import (
    _accuracies,
    evaluate,
    group_means,
    group_tokens,
    lm_loss,
    lm_losses,
    load_eval_sets,
    pool_groups,
    run_eval,
    split_pair,
)

TEXTS = [
    "the cat sat on the mat.",
    "a dog ran far away from the red house.",
    "Question: what is blue?\nAnswer: the sky",
    "café au lait, naïve résumé",
    "green trees grow by the river stone",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lm():
    tok = train_tokenizer(TEXTS * 3, vocab_size=400)
    model = build_model(
        "tiny-test",
        vocab_size=len(tok),
        seed=3,
        device="cpu",
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attn_implementation="sdpa",
    )
    return model.eval(), tok


def _items():
    return [
        Item("1", "physics", "the cat sat on", ("the mat", "a river", "blue"), 0),
        Item("2", "physics", "Question: what is blue?\nAnswer: ", ("the sky", "the cat sat on the mat"), 0),
        Item("3", "physics", "", ("green trees", "red house"), 1),
        Item("4", "words", "café au", ("lait", "naïve résumé", "x"), 0),
        Item("5", "words", "a dog ran\n", ("far away", "home"), 1),
    ]


def _brute_loglik(model, tok, context: str, choice: str, max_length: int | None = None) -> float:
    """One full forward of context + continuation; sum of log-softmax at the continuation's tokens.

    Requests as lm-eval builds them: continuation " " + choice (trailing whitespace of the context moved
    in front of it); a context is encoded alone and with the continuation, the continuation's tokens are
    the rest; an empty context is the BOS (= EOS here) token before the continuation encoded alone.
    """
    stripped = context.rstrip()
    cont = context[len(stripped) :] + " " + choice
    if stripped:
        ctx_ids = tok(stripped)["input_ids"]
        cont_ids = tok(stripped + cont)["input_ids"][len(ctx_ids) :]
    else:
        ctx_ids, cont_ids = [tok.bos_token_id], tok(cont, add_special_tokens=False)["input_ids"]
    full = ctx_ids + cont_ids
    n_cont = len(cont_ids)
    if max_length is not None and len(full) > max_length + 1:
        full = full[-(max_length + 1) :]
        n_cont = min(n_cont, max_length)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].float(), dim=-1)
    total = 0.0
    for pos in range(len(full) - n_cont, len(full)):  # token at pos is predicted at pos - 1
        total += float(logp[pos - 1, full[pos]])
    return total


def _hand_accuracies(items, loglik):
    by_task = {}
    for item, ll in zip(items, loglik):
        norm = [v / len(c) for v, c in zip(ll, item.choices)]
        acc = float(max(range(len(ll)), key=lambda k: (ll[k], -k)) == item.answer)
        acc_norm = float(max(range(len(norm)), key=lambda k: (norm[k], -k)) == item.answer)
        by_task.setdefault(item.task, []).append((acc, acc_norm))
    means = {t: (sum(a for a, _ in r) / len(r), sum(b for _, b in r) / len(r)) for t, r in by_task.items()}
    return means, sum(m[0] for m in means.values()) / len(means), sum(m[1] for m in means.values()) / len(means)


def test_split_pair_follows_lm_eval():
    assert split_pair("Q:", "A") == ("Q:", " A")
    assert split_pair("Q: ", "A") == ("Q:", "  A")  # trailing whitespace moves to the continuation
    assert split_pair("Q:\n", "A") == ("Q:", "\n A")
    assert split_pair("", "A") == ("", " A")  # the delimiter also after an empty context


def test_empty_context_is_the_bos_token_then_the_delimited_choice(lm):
    from delt_engine.training.evaluation import encode_pair

    _, tok = lm
    assert encode_pair(tok, "", "green trees") == ([tok.bos_token_id], tok(" green trees")["input_ids"])
    ctx, cont = encode_pair(tok, "the cat sat on", "the mat")
    assert ctx + cont == tok("the cat sat on the mat")["input_ids"] and ctx == tok("the cat sat on")["input_ids"]


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_evaluate_matches_brute_force_loglik(lm, batch_size):
    model, tok = lm
    items = _items()
    res = evaluate(model, tok, items, "cpu", batch_size=batch_size)
    brute = [[_brute_loglik(model, tok, it.context, c) for c in it.choices] for it in items]
    for got, want in zip(res["loglik"], brute):
        assert got == pytest.approx(want, abs=1e-4)
    means, acc, acc_norm = _hand_accuracies(items, brute)
    assert res["acc"] == pytest.approx(acc) and res["acc_norm"] == pytest.approx(acc_norm)
    for task, (a, b) in means.items():
        assert res["tasks"][task]["acc"] == pytest.approx(a) and res["tasks"][task]["acc_norm"] == pytest.approx(b)
    assert res["tasks"]["physics"]["n"] == 3 and res["tasks"]["words"]["n"] == 2 and res["n"] == 5


def test_evaluate_truncates_from_the_left(lm):
    model, tok = lm
    items = _items()
    res = evaluate(model, tok, items, "cpu", batch_size=4, max_length=5)
    brute = [[_brute_loglik(model, tok, it.context, c, max_length=5) for c in it.choices] for it in items]
    for got, want in zip(res["loglik"], brute):
        assert got == pytest.approx(want, abs=1e-4)


def test_acc_norm_divides_by_characters_as_lm_eval_and_tasks_are_unweighted():
    items = [
        Item("1", "a", "q", ("éé", "abc"), 0),
        Item("2", "b", "q", ("x", "y"), 1),
        Item("3", "b", "q", ("x", "y"), 1),
    ]
    # Item 1: raw -3.0 > -4.0 picks "éé" (right); per character -1.5 < -1.33 picks "abc" (wrong), while
    # per UTF-8 byte ("éé" is 4 bytes) -0.75 would pick "éé".
    out = _accuracies(items, [[-3.0, -4.0], [-1.0, -2.0], [-2.0, -1.0]])
    assert out["tasks"]["a"] == {"acc": 1.0, "acc_norm": 0.0, "n": 1}
    assert out["tasks"]["b"]["acc"] == 0.5 and out["tasks"]["b"]["acc_norm"] == 0.5
    assert out["acc"] == pytest.approx((1.0 + 0.5) / 2) and out["acc_norm"] == pytest.approx(0.25)


def test_lm_loss_is_token_weighted_mean_over_real_tokens(lm):
    model, tok = lm
    samples = encode(TEXTS, [str(i) for i in range(len(TEXTS))], tok, max_length=12)
    total, count = 0.0, 0
    with torch.no_grad():
        for row, n in zip(samples.input_ids, samples.lengths.tolist()):
            ids = row[:n].unsqueeze(0)
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            total += -sum(float(logp[p - 1, ids[0, p]]) for p in range(1, n))
            count += n - 1
    assert lm_loss(model, samples, batch_size=2) == pytest.approx(total / count, rel=1e-5)


def _brute_sample_losses(model, samples):
    """(summed loss, token pairs) of each sample, one sample per forward, no padding at all."""
    out = []
    with torch.no_grad():
        for row, n in zip(samples.input_ids, samples.lengths.tolist()):
            ids = row[:n].unsqueeze(0)
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            out.append((-sum(float(logp[p - 1, ids[0, p]]) for p in range(1, n)), n - 1))
    return out


def test_lm_losses_per_sample_match_brute_force_and_their_mean_is_lm_loss(lm):
    model, tok = lm
    samples = encode(TEXTS, [str(i) for i in range(len(TEXTS))], tok, max_length=12)
    res = lm_losses(model, samples, batch_size=2)
    brute = _brute_sample_losses(model, samples)
    assert res.sums.tolist() == pytest.approx([s for s, _ in brute], rel=1e-5)
    assert res.counts.tolist() == [n for _, n in brute]
    assert res.mean == pytest.approx(lm_loss(model, samples, batch_size=3), rel=1e-6)


def test_group_means_are_token_weighted_and_average_back_to_the_overall_loss(lm):
    model, tok = lm
    samples = encode(TEXTS, [str(i) for i in range(len(TEXTS))], tok, max_length=12)
    labels = ["a", "b", "a", "b", "b"]
    res = lm_losses(model, samples, batch_size=2)
    means, tokens = group_means(res, labels), group_tokens(samples, labels)
    brute = _brute_sample_losses(model, samples)
    for g in ("a", "b"):
        picked = [brute[i] for i, label in enumerate(labels) if label == g]
        assert means[g] == pytest.approx(sum(s for s, _ in picked) / sum(n for _, n in picked), rel=1e-5)
        assert tokens[g] == sum(n for _, n in picked)
    back = sum(means[g] * tokens[g] for g in means) / sum(tokens.values())
    assert back == pytest.approx(res.mean, rel=1e-12)  # the same numbers, regrouped: float rounding only
    assert list(means) == ["a", "b"]


def test_small_groups_are_pooled_as_other():
    labels = ["x"] * 5 + ["y"] * 4 + ["z", "other"]
    assert pool_groups(labels, 5) == ["x"] * 5 + ["other"] * 6
    assert pool_groups(labels, 1) == labels


def test_run_eval_records_group_loss_from_the_validation_column(lm, tmp_path):
    model, tok = lm
    rows = [{"text": t, "kind": k} for t, k in zip(TEXTS * 2, ["a", "b", None, "a", "b"] * 2)]
    rows.append({"text": "a lonely tree", "kind": "rare"})
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    config = RunConfig(
        input="x.jsonl",
        validation=str(val),
        target=str(target),
        group_by="kind",
        group_min_docs=2,
        max_length=12,
        eval_batch_size=4,
    )
    sets = load_eval_sets(config, tok)
    assert sets.validation_groups.count("other") == 1 and sets.validation_groups.count("(missing)") == 2
    assert sets.target_groups is None and "no column 'kind'" in sets.groups_info["target"]["note"]
    assert sets.groups_info["validation"]["docs"] == {"a": 4, "b": 4, "(missing)": 2, "other": 1}
    out = run_eval(model, tok, sets, config, "cpu", None)
    groups = out["group_loss"]["kind"]
    assert set(groups) == {"a", "b", "(missing)", "other"} and "target_group_loss" not in out
    tokens = sets.groups_info["validation"]["tokens"]
    back = sum(groups[g] * tokens[g] for g in groups) / sum(tokens.values())
    assert back == pytest.approx(out["val_loss"], rel=1e-12)
    with pytest.raises(DataError, match="no column 'topic'"):
        load_eval_sets(RunConfig(input="x.jsonl", validation=str(val), group_by="topic"), tok)


def test_bits_per_byte_are_the_summed_nats_over_the_predicted_bytes(lm, tmp_path):
    """val_bpb by hand: each sample's loss summed in nats (brute force, one sample per forward), over the
    UTF-8 bytes of every token it predicts (byte-level BPE: the tokens of the text after the first one)."""
    import math

    model, tok = lm
    texts = TEXTS + ["naïve café: ünïcödé costs more bytes"]
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    config = RunConfig(input="x.jsonl", validation=str(val), max_length=64, eval_batch_size=4)
    sets = load_eval_sets(config, tok)
    brute = _brute_sample_losses(model, sets.validation)
    assert all(n < 64 for n in sets.validation.lengths.tolist())  # nothing truncated: the whole text is predicted
    first = [tok.decode(ids[:1]) for ids in sets.validation.input_ids.tolist()]
    n_bytes = sum(len(text.encode("utf-8")) - len(f.encode("utf-8")) for text, f in zip(texts, first))
    assert sets.validation_bytes == n_bytes > 0
    out = run_eval(model, tok, sets, config, "cpu", None)
    assert out["val_bpb"] == pytest.approx(sum(s for s, _ in brute) / math.log(2) / n_bytes, rel=1e-5)
    assert out["target_bpb"] is None  # no target set given
    # the same loss per token, but more bytes per token in the non-ASCII text: bpb is not a rescaled loss
    assert out["val_bpb"] != pytest.approx(out["val_loss"] / math.log(2), rel=1e-3)


def _write(tmp_path, lines):
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"task": "t", "context": "c", "choices": ["a", "b"], "answer": 1})


@pytest.mark.parametrize(
    "bad,message",
    [
        ('{"task": "t", "context": "c", "choices": ["a", "b"], "answer": 1', "not valid JSON"),
        (json.dumps({"task": "t", "context": "c", "choices": ["a", "b"], "answer": 2}), "answer"),
        (json.dumps({"task": "t", "context": "c", "choices": ["a", "b"], "answer": -1}), "answer"),
        (json.dumps({"task": "t", "context": "c", "choices": ["a"], "answer": 0}), "at least 2"),
        (json.dumps({"task": "t", "choices": ["a", "b"], "answer": 0}), "context"),
        (json.dumps({"task": "t", "context": "c", "choices": ["a", ""], "answer": 0}), "non-empty"),
        (json.dumps({"task": "t", "context": "c", "choices": ["a", "b"], "answer": "a"}), "answer"),
    ],
)
def test_bad_benchmark_lines_name_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path, [GOOD, "", bad])
    with pytest.raises(DataError, match=message) as err:
        load_benchmark(path)
    assert "bench.jsonl:3" in str(err.value)


def test_load_benchmark_defaults_and_question_alias(tmp_path):
    path = _write(tmp_path, [GOOD, json.dumps({"question": "q?", "choices": ["a", "b"], "answer": 0})])
    items = load_benchmark(path)
    assert items[0] == Item("1", "t", "c", ("a", "b"), 1)
    assert items[1] == Item("2", "bench", "q?", ("a", "b"), 0)
    with pytest.raises(DataError, match="no items"):
        load_benchmark(_write(tmp_path, [""]))
    with pytest.raises(DataError, match="does not exist"):
        load_benchmark(tmp_path / "missing.jsonl")
