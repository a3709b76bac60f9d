"""Many runs, one device: the stacked model, optimiser and loop against the Hugging Face model, torch's
AdamW and each member's solo run (same seed, same data: equal losses to fp32 tolerance)."""

import json

import pytest
import torch

from delt_engine.models.losses import token_mean_loss
from delt_engine.models.presets import build_model
from delt_engine.training.config import RunConfig
from delt_engine.training.ensemble import (
    Member,
    StackedAdamW,
    StackedMistral,
    clip_per_member,
    stackable,
    train_together,
)
from delt_engine.training.loop import RunState, TrainHooks, train_model

WORDS = "the cat sat on a mat dog ran far away big small red blue green tree house river stone".split()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _text(i: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(2 + (i * 5) % 30))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three orderings of 40 scored documents and a held-out file."""
    root = tmp_path_factory.mktemp("ensemble")
    paths = []
    for a, mult in enumerate((3, 7, 9)):
        order = [(i * mult) % 40 for i in range(40)]  # 3, 7, 9 are coprime with 40: permutations
        with open(root / f"ordered{a}.jsonl", "w") as fh:
            fh.writelines(json.dumps({"id": f"d{i}", "text": _text(i), "score": i / 40}) + "\n" for i in order)
        paths.append(str(root / f"ordered{a}.jsonl"))
    with open(root / "heldout.jsonl", "w") as fh:
        fh.writelines(json.dumps({"text": _text(i + 50)}) + "\n" for i in range(6))
    return {"inputs": paths, "heldout": str(root / "heldout.jsonl"), "cache": str(root / "cache")}


def _configs(data, packing: bool, **kw):
    """Three members: different orderings, seeds, learning rates and budgets (one ends early)."""
    base = dict(
        model="tiny-test",
        batch_size=4,
        max_length=24,
        device="cpu",
        cache_dir=data["cache"],
        epochs=4,
        eval_every=7,
        validation=data["heldout"],
        packing=packing,
    )
    base.update(kw)
    return [
        RunConfig(input=data["inputs"][0], seed=0, steps=20, lr=3e-3, **base),
        RunConfig(input=data["inputs"][1], seed=1, steps=20, lr=1e-2, **base),
        RunConfig(input=data["inputs"][2], seed=2, steps=12, lr=5e-3, grad_clip=None, **base),
    ]


def _collect(config=None):
    records = []
    return records, TrainHooks(on_record=records.append)


def _assert_same_records(solo: list[dict], together: list[dict], exact: bool = False):
    assert len(solo) == len(together)
    if exact:  # interleaved: each member's own solo step, bit for bit
        assert [{k: v for k, v in r.items() if k not in ("tok_s", "elapsed_s")} for r in together] == [
            {k: v for k, v in r.items() if k not in ("tok_s", "elapsed_s")} for r in solo
        ]
    for a, b in zip(solo, together):
        assert set(a) == set(b)
        for key in ("step", "tokens", "epoch", "lr", "bench"):
            assert a.get(key) == b.get(key), key
        if a.get("batch_score") is not None:
            assert b["batch_score"] == pytest.approx(a["batch_score"], rel=1e-12)
        for key in ("train_loss", "val_loss"):
            if a.get(key) is not None:
                assert b[key] == pytest.approx(a[key], rel=2e-5, abs=1e-6), (key, a["step"])


@pytest.mark.parametrize("mode", ["stacked", "interleaved"])
@pytest.mark.parametrize("packing", [False, True], ids=["document-rows", "packed-rows"])
def test_members_match_their_solo_runs(data, tmp_path, packing, mode):
    configs = _configs(data, packing)
    solo = []
    for config in configs:
        records, hooks = _collect()
        assert train_model(config, hooks, RunState(), tmp_path).state == "done"
        solo.append(records)
    collected = [_collect() for _ in configs]
    states = [RunState() for _ in configs]
    members = [Member(c, h, s, tmp_path) for c, (_, h), s in zip(configs, collected, states)]
    outcomes = train_together(members, mode)
    assert [o.state for o in outcomes] == ["done"] * 3 and all(o.error is None for o in outcomes)
    assert [s.steps for s in states] == [20, 20, 12]
    assert all(s.info["group_size"] == 3 and s.info["group_mode"] == mode for s in states)
    for records, (together, _) in zip(solo, collected):
        _assert_same_records(records, together, exact=mode == "interleaved")


def test_group_mode_by_device_and_environment(monkeypatch):
    from delt_engine.training.ensemble import group_mode

    assert group_mode(torch.device("cpu")) == "interleaved" and group_mode(torch.device("cuda")) == "stacked"
    assert group_mode(torch.device("cpu"), "stacked") == "stacked"
    monkeypatch.setenv("DELT_GROUP_MODE", "stacked")
    assert group_mode(torch.device("cpu")) == "stacked"
    with pytest.raises(ValueError, match="not one of"):
        group_mode(torch.device("cpu"), "sideways")


def test_a_member_whose_setup_fails_fails_alone_and_one_left_trains_solo(data, tmp_path):
    good, bad = _configs(data, False)[0], RunConfig(input=str(tmp_path / "missing.jsonl"), model="tiny-test")
    records, hooks = _collect()
    state = RunState()
    outcomes = train_together(
        [Member(bad, TrainHooks(), RunState(), tmp_path), Member(good, hooks, state, tmp_path)], "stacked"
    )
    assert outcomes[0].state == "failed" and "does not exist" in str(outcomes[0].error)
    assert outcomes[1].state == "done" and records[-1]["step"] == 20
    assert state.info["group_mode"] == "interleaved"  # a stack of one is its solo loop


@pytest.mark.parametrize("mode", ["stacked", "interleaved"])
def test_stopping_one_member_leaves_the_others_running_unchanged(data, tmp_path, mode):
    configs = _configs(data, True)
    reference, hooks = _collect()
    train_model(configs[1], hooks, RunState(), tmp_path)
    seen = {"steps": 0}

    def on_step(info):
        seen["steps"] = info["step"]

    stop_hooks = TrainHooks(on_step=on_step, should_stop=lambda: seen["steps"] >= 5)
    collected = _collect()
    states = [RunState() for _ in configs]
    members = [
        Member(configs[0], stop_hooks, states[0], tmp_path),
        Member(configs[1], collected[1], states[1], tmp_path),
        Member(configs[2], TrainHooks(), states[2], tmp_path),
    ]
    outcomes = train_together(members, mode)
    assert [o.state for o in outcomes] == ["cancelled", "done", "done"]
    assert [s.steps for s in states] == [5, 20, 12]
    _assert_same_records(reference, collected[0])
    # the model handed back is the member's own, at the step it stopped
    assert outcomes[0].model is not outcomes[1].model


def test_stacked_forward_equals_the_hugging_face_model():
    torch.manual_seed(0)
    models = [
        build_model(
            "tiny-test", vocab_size=97, seed=s, device="cpu", eos_token_id=0, pad_token_id=1, attn_implementation="sdpa"
        )
        for s in (3, 4)
    ]
    ids = torch.randint(2, 97, (2, 3, 11))
    mask = torch.ones_like(ids)
    mask[0, 1, 7:] = 0  # right padding in one row
    ids[0, 1, 7:] = 1
    params = {
        n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
        for n, _ in models[0].named_parameters()
    }
    stacked = StackedMistral(models[0].config)
    got = stacked.losses(params, ids, mask)
    hidden = stacked.hidden(params, ids)
    for k, model in enumerate(models):
        with torch.no_grad():
            expected = token_mean_loss(model, ids[k], mask[k])
            ref_hidden = model.model(input_ids=ids[k]).last_hidden_state
        assert float(got[k]) == pytest.approx(float(expected), rel=1e-6)
        torch.testing.assert_close(hidden[k], ref_hidden, rtol=1e-5, atol=1e-5)


def test_pad_embedding_gets_no_gradient_as_in_nn_embedding_padding_idx():
    model = build_model("tiny-test", vocab_size=50, seed=0, device="cpu", eos_token_id=0, pad_token_id=1)
    params = {n: p.detach()[None].clone().requires_grad_(True) for n, p in model.named_parameters()}
    ids = torch.tensor([[[5, 6, 1, 1]]])
    StackedMistral(model.config).losses(params, ids, torch.ones_like(ids)).sum().backward()
    model.zero_grad()
    token_mean_loss(model, ids[0], torch.ones_like(ids[0])).backward()
    torch.testing.assert_close(
        params["model.embed_tokens.weight"].grad[0], model.model.embed_tokens.weight.grad, rtol=1e-5, atol=1e-7
    )


def test_stacked_adamw_and_clipping_equal_torch_per_member():
    torch.manual_seed(0)
    shapes = {"w": (5, 3), "b": (3,)}
    members = [{n: torch.randn(s, requires_grad=True) for n, s in shapes.items()} for _ in range(3)]
    lrs, clips = [1e-2, 3e-3, 5e-2], [0.5, None, 2.0]
    opts = [
        torch.optim.AdamW(
            [{"params": [m["w"]], "weight_decay": 0.1}, {"params": [m["b"]], "weight_decay": 0.0}],
            lr=lr,
            betas=(0.9, 0.95),
        )
        for m, lr in zip(members, lrs)
    ]
    params = {n: torch.stack([m[n].detach() for m in members]).requires_grad_(True) for n in shapes}
    opt = StackedAdamW(params, {"w": True, "b": False}, (0.9, 0.95), 0.1)
    for step in range(4):
        grads = [{n: torch.randn(s) * (step + 1) for n, s in shapes.items()} for _ in members]
        for m, g, o, clip in zip(members, grads, opts, clips):
            for n in shapes:
                m[n].grad = g[n].clone()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(list(m.values()), clip)
            o.step()
        for n in shapes:
            params[n].grad = torch.stack([g[n] for g in grads])
        clip_per_member(params, clips)
        opt.step(lrs)
    for k, m in enumerate(members):
        for n in shapes:
            torch.testing.assert_close(params[n][k].detach(), m[n].detach(), rtol=1e-6, atol=1e-7)


def test_only_mistral_models_are_stacked():
    from transformers import GPT2Config, GPT2LMHeadModel

    assert stackable(build_model("tiny-test", vocab_size=50, seed=0, device="cpu")) is None
    other = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=32))
    assert "Mistral" in stackable(other)


def test_a_stack_too_big_for_the_device_is_split_in_halves():
    from delt_engine.training.ensemble import split_to_fit

    tried = []

    def probe(group):
        tried.append(len(group))
        if len(group) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    assert [len(g) for g in split_to_fit(list(range(11)), probe)] == [2, 3, 3, 3]
    assert tried == [11, 5, 2, 3, 6, 3, 3]
    assert split_to_fit([7], probe) == [[7]]
