"""Per-sample gradient dots/norms from hooks (one batched backward) against a per-sample loop and vmap."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from delt_engine.scoring.lqs_core import FunctionalLM, sample_losses
from delt_engine.scoring.per_sample import HookedStats


class OnePlusRMSNorm(nn.Module):
    """A Gemma-style norm, ``(1 + w) * x / rms(x)``."""

    def __init__(self, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size) * 0.1)

    def forward(self, x):
        return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class TinyLM(nn.Module):
    """Embedding (with padding_idx) -> Linear with bias -> tanh -> (1+w) RMSNorm -> untied head with bias,
    plus a tied head term, so every hooked case appears once. Causal by construction: a token sees
    itself and the previous token only."""

    def __init__(self, vocab=11, dim=6, tied=True):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.mix = nn.Linear(2 * dim, dim, bias=True)
        self.norm = OnePlusRMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=True)
        self.tied = nn.Linear(dim, vocab, bias=False)
        if tied:
            self.tied.weight = self.embed.weight

    def forward(self, input_ids):
        e = self.embed(input_ids)
        prev = torch.cat([torch.zeros_like(e[:, :1]), e[:, :-1]], dim=1)
        h = self.norm(torch.tanh(self.mix(torch.cat([e, prev], dim=-1))))
        return self.head(h) + self.tied(h)


def losses_of(model):
    def losses(params, ids, mask):
        return sample_losses(functional_call(model, params, (ids,)), ids, mask)

    return losses


def loop_stats(model, params, ids, mask, lam):
    """Brute force: one autograd call per sample."""
    dots, sqs = [], []
    for n in range(ids.shape[0]):
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        loss = losses_of(model)(leaves, ids[n : n + 1], mask[n : n + 1])[0]
        grads = torch.autograd.grad(loss, list(leaves.values()))
        dots.append(sum(float((g * lam[k]).sum()) for k, g in zip(leaves, grads)))
        sqs.append(sum(float(g.pow(2).sum()) for g in grads))
    return torch.tensor(dots, dtype=torch.float64), torch.tensor(sqs, dtype=torch.float64)


@pytest.fixture
def batch():
    torch.manual_seed(0)
    ids = torch.randint(1, 11, (5, 7))
    mask = torch.ones_like(ids)
    for n, length in enumerate([7, 5, 3, 6, 2]):  # right padding with token 0 (padding_idx)
        ids[n, length:], mask[n, length:] = 0, 0
    ids[1, 2] = 0  # a real token equal to padding_idx: the embedding gets no gradient from it
    return ids, mask


@pytest.mark.parametrize("mode", ["auto", "gram", "materialize"])
@pytest.mark.parametrize("tied", [True, False])
def test_hooks_match_a_per_sample_loop(batch, tied, mode):
    torch.manual_seed(1)
    model = TinyLM(tied=tied).double()
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    assert ("tied.weight" in params) is not tied  # tied weights appear once
    lam = {k: torch.randn_like(v) for k, v in params.items()}
    ids, mask = batch
    hooked = HookedStats(model, losses_of(model), mode)
    dot, sq = hooked.stats(params, ids, mask, lam)
    ref_dot, ref_sq = loop_stats(model, params, ids, mask, lam)
    torch.testing.assert_close(dot, ref_dot, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sq, ref_sq, rtol=1e-10, atol=1e-12)
    dot0, sq0 = hooked.stats(params, ids, mask, None)
    assert torch.all(dot0 == 0) and torch.allclose(sq0, sq, rtol=1e-12)
    assert not (dot.requires_grad or sq.requires_grad)
    # the check has teeth: dropping the bias terms or the padding rule changes the norms
    assert float(sq.min()) > 0 and len(set(sq.tolist())) == ids.shape[0]


def test_hooks_leave_no_hooks_or_grads_behind(batch):
    model = TinyLM().double()
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    HookedStats(model, losses_of(model)).stats(params, *batch, None)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_unsupported_layers_fall_back_to_vmap():
    model = nn.Sequential(nn.Embedding(5, 3), nn.LayerNorm(3))
    assert not HookedStats.supports(model)
    with pytest.raises(ValueError, match="Linear"):
        HookedStats(model, lambda *a: None)


def test_mistral_preset_hooks_equal_vmap_in_float64():
    from delt_engine.models.presets import build_model

    model = build_model("tiny-test", 40, device="cpu", dtype=torch.float64)
    assert HookedStats.supports(model)
    vm, hk = FunctionalLM(model, per_sample="vmap"), FunctionalLM(model, per_sample="auto")
    assert (vm.per_sample, hk.per_sample) == ("vmap", "hooks")
    torch.manual_seed(2)
    ids = torch.randint(1, 40, (4, 9))
    mask = torch.ones_like(ids)
    mask[2, 5:] = 0
    params = vm.params()
    lam = {k: torch.randn_like(v) for k, v in params.items()}
    for a, b in zip(vm.sample_stats(params, ids, mask, lam), hk.sample_stats(params, ids, mask, lam)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="per_sample"):
        FunctionalLM(model, per_sample="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_hooks_equal_vmap_on_cuda_and_under_bf16_autocast():
    from delt_engine.models.presets import build_model

    model = build_model("tiny-test", 40, device="cuda")
    torch.manual_seed(3)
    ids = torch.randint(1, 40, (6, 12), device="cuda")
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    vm, hk = FunctionalLM(model, per_sample="vmap"), FunctionalLM(model, per_sample="hooks")
    params = vm.params()
    lam = {k: torch.randn_like(v) for k, v in params.items()}
    for a, b in zip(vm.sample_stats(params, ids, mask, lam), hk.sample_stats(params, ids, mask, lam)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    bf = FunctionalLM(model, autocast=torch.bfloat16, per_sample="hooks")
    dot, sq = bf.sample_stats(params, ids, mask, lam)
    ref_dot, ref_sq = hk.sample_stats(params, ids, mask, lam)
    assert torch.allclose(sq, ref_sq, rtol=0.05) and torch.corrcoef(torch.stack([dot, ref_dot]))[0, 1] > 0.99


class TwiceLM(TinyLM):
    """Runs ``mix`` twice per forward (a shared layer) and returns an HF-style output with ``.logits``."""

    def forward(self, input_ids):
        from types import SimpleNamespace

        e = self.embed(input_ids)
        h = torch.tanh(self.mix(torch.cat([e, e], dim=-1)))
        h = self.norm(torch.tanh(self.mix(torch.cat([h, e], dim=-1))))
        return SimpleNamespace(logits=self.head(h) + self.tied(h))


class FlatLM(TinyLM):
    """Runs ``mix`` on the tokens flattened to [batch * tokens, features] (as mixture-of-experts routing does)."""

    def forward(self, input_ids):
        from types import SimpleNamespace

        e = self.embed(input_ids)
        b, t, _ = e.shape
        x = torch.cat([e, torch.cat([torch.zeros_like(e[:, :1]), e[:, :-1]], dim=1)], dim=-1)
        h = self.norm(torch.tanh(self.mix(x.reshape(b * t, -1)).reshape(b, t, -1)))
        return SimpleNamespace(logits=self.head(h) + self.tied(h))


@pytest.mark.parametrize("model_cls,words", [(TwiceLM, "more than once"), (FlatLM, r"shape \(35, 12\)")])
def test_layers_the_hooks_cannot_split_are_refused_and_auto_falls_back_to_vmap(batch, model_cls, words):
    """A layer run twice per forward (shared), or one that sees tokens flattened to [batch * tokens, ...]."""
    from delt_engine.scoring.per_sample import UnsupportedModel

    model = model_cls().double()
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    lam = {k: torch.randn_like(v) for k, v in params.items()}
    ids, mask = batch
    assert HookedStats.supports(model)  # every layer type is known; the problem shows only when it runs
    with pytest.raises(UnsupportedModel, match=words + ".*vmap"):
        FunctionalLM(model, per_sample="hooks").sample_stats(params, ids, mask, lam)
    auto, vm = FunctionalLM(model, per_sample="auto"), FunctionalLM(model, per_sample="vmap")
    got = auto.sample_stats(params, ids, mask, lam)
    assert auto.per_sample == "vmap"
    for a, b in zip(got, vm.sample_stats(params, ids, mask, lam)):
        torch.testing.assert_close(a, b)
    assert all(not m._forward_hooks for m in model.modules())
