"""Per-sample gradient dots and squared norms from one batched backward pass (module hooks).

For the layers a decoder LM is built from, a sample's parameter gradient is a sum over its tokens
of (what the layer saw) x (the gradient at the layer's output):

- Linear ``y = x W^T (+ b)``: ``dW_n = sum_t g_t x_t^T`` (``db_n = sum_t g_t``);
- RMSNorm ``y = w * xhat`` (or ``(1 + w) * xhat``): ``dw_n = sum_t g_t * xhat_t``;
- Embedding: row ``v`` of ``dE_n`` is the sum of ``g_t`` over the sample's tokens equal to ``v``
  (none for ``padding_idx``); a tied output projection adds its Linear term to the same tensor.

One forward and one backward of the *sum* of the per-sample losses (samples never interact: causal
attention, right padding, no batch statistics) gives every ``x_t`` and ``g_t``; the weights do not
require grad, so the batched weight-gradient products are skipped and the per-sample ones take their
place. That costs about one batched forward+backward, where ``vmap(grad)`` costs ~1.3-1.6x on a CPU.
Each layer's per-sample gradient lives only inside its hook (a tied tensor until both terms are in).

``HookedStats.supports(model)`` says whether every parameter belongs to one of these layers; other
models use the ``vmap(grad)`` path. The two are checked against each other in the tests.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]


class UnsupportedModel(RuntimeError):
    """The model does something the hooks cannot follow (a layer run twice in one forward)."""


def _is_rmsnorm(module: nn.Module) -> bool:
    return "RMSNorm" in type(module).__name__ and \
        [n for n, _ in module.named_parameters(recurse=False)] == ["weight"]


def _owners(model: nn.Module) -> Optional[dict[str, list[tuple[nn.Module, str]]]]:
    """Canonical parameter name -> [(module, "weight"|"bias"), ...]; None when a parameter sits in a
    module type the hooks do not cover, or the model has other than one Embedding."""
    canonical = {id(p): name for name, p in model.named_parameters()}
    out: dict[str, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for attr, p in module.named_parameters(recurse=False):
            ok = (isinstance(module, nn.Linear) and attr in ("weight", "bias")) or \
                 (type(module) is nn.Embedding and attr == "weight" and module.max_norm is None) or \
                 (_is_rmsnorm(module) and attr == "weight")
            if not ok:
                return None
            out.setdefault(canonical[id(p)], []).append((module, attr))
    embeddings = {id(m) for pairs in out.values() for m, _ in pairs if type(m) is nn.Embedding}
    return out if len(embeddings) == 1 else None


def _up(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (half-precision activations under autocast); float64 stays float64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _norm_slope(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``dy/dw`` of an RMSNorm at input ``x``: the layer run with its weight at 1 minus at 0, so it is
    exactly the layer's own normalisation (its dtype handling included), for ``w * f(x)`` and for
    ``(1 + w) * f(x)`` alike."""
    w = module.weight
    with torch.no_grad():
        one = functional_call(module, {"weight": torch.ones_like(w)}, (x,))
        zero = functional_call(module, {"weight": torch.zeros_like(w)}, (x,))
    return one - zero


class HookedStats:
    """``lambda^T g_n`` and ``||g_n||^2`` for every sample of a batch from one backward pass.

    Args:
        model: the proxy LM (its modules get temporary hooks during ``stats``).
        losses: ``(params, ids, mask) -> per-sample losses [B]`` calling the model functionally.
    """

    def __init__(self, model: nn.Module, losses: Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]):
        owners = _owners(model)
        if owners is None:
            raise ValueError("per-sample hooks need a model made of Linear, one Embedding and RMSNorm layers")
        self.owners, self.losses = owners, losses
        self.roles: dict[int, dict[str, str]] = {}  # id(module) -> {"weight": name, "bias": name}
        for name, pairs in self.owners.items():
            for module, attr in pairs:
                self.roles.setdefault(id(module), {})[attr] = name
        self.modules = {id(m): m for pairs in self.owners.values() for m, _ in pairs}
        (self.embedding,) = [m for m in self.modules.values() if type(m) is nn.Embedding]

    @staticmethod
    def supports(model: nn.Module) -> bool:
        return _owners(model) is not None

    def stats(self, params: Params, ids: torch.Tensor, mask: torch.Tensor,
              lam: Optional[Params]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample dots with ``lam`` (zeros when None) and squared gradient norms, float64 [B]."""
        params = {k: v.detach() for k, v in params.items()}
        acc = _Accumulator(ids.shape[0], ids.device, lam, {k: len(v) for k, v in self.owners.items()})
        with torch.enable_grad(), self._hooks(acc) as (leaf, calls):
            total = self.losses(params, ids, mask).sum()
            if len(leaf) != 1 or any(n > 1 for n in calls.values()):
                raise UnsupportedModel("a layer ran more than once in one forward pass (shared layers); "
                                       "per-sample hooks cannot split its gradient, use per_sample='vmap'")
            (emb_grad,) = torch.autograd.grad(total, [leaf[0]])
        self._embedding_term(params, ids, emb_grad, acc)
        return acc.dot, acc.sq

    @contextlib.contextmanager
    def _hooks(self, acc: "_Accumulator"):
        leaf: list[torch.Tensor] = []
        calls: dict[int, int] = {}  # forward calls per hooked module: each must run once
        busy = [False]  # the RMSNorm re-evaluation in _norm_slope must not hook itself

        def on_embedding(module, args, output):
            out = output.detach().requires_grad_(True)  # the backward starts here; weights need no grad
            leaf.append(out)
            return out

        def on_forward(module, args, output):
            if busy[0]:
                return
            calls[id(module)] = calls.get(id(module), 0) + 1
            x, role = args[0], self.roles[id(module)]
            if isinstance(module, nn.Linear):
                output.register_hook(lambda g: acc.linear(x, g, role.get("weight"), role.get("bias")))
                return
            busy[0] = True
            try:
                slope = _norm_slope(module, x)
            finally:
                busy[0] = False
            output.register_hook(lambda g: acc.add(role["weight"], torch.einsum(
                "bth,bth->bh", _up(g), _up(slope).to(_up(g).dtype))))

        handles = [self.embedding.register_forward_hook(on_embedding)]
        handles += [m.register_forward_hook(on_forward) for m in self.modules.values() if m is not self.embedding]
        try:
            yield leaf, calls
        finally:
            for h in handles:
                h.remove()

    def _embedding_term(self, params: Params, ids: torch.Tensor, g: torch.Tensor, acc: "_Accumulator") -> None:
        name = self.roles[id(self.embedding)]["weight"]
        b, t = ids.shape
        vocab = params[name].shape[0]
        g = _up(g)
        if self.embedding.padding_idx is not None:
            g = g * (ids != self.embedding.padding_idx).unsqueeze(-1).to(g.dtype)
        grad = torch.zeros(b * vocab, g.shape[-1], dtype=g.dtype, device=g.device)
        rows = (torch.arange(b, device=ids.device).unsqueeze(1) * vocab + ids).reshape(-1)
        grad.index_add_(0, rows, g.reshape(b * t, -1))
        acc.add(name, grad.view(b, vocab, -1))


class _Accumulator:
    """Per-sample dot/norm sums; a tensor with several owners (tied weights) waits for all its terms."""

    def __init__(self, b: int, device, lam: Optional[Params], n_terms: dict[str, int]):
        self.dot = torch.zeros(b, dtype=torch.float64, device=device)
        self.sq = torch.zeros(b, dtype=torch.float64, device=device)
        self.lam, self.n_terms = lam, n_terms
        self.pending: dict[str, tuple[torch.Tensor, int]] = {}

    def linear(self, x: torch.Tensor, g: torch.Tensor, weight_name: Optional[str], bias_name: Optional[str]) -> None:
        g = _up(g)
        if weight_name is not None:
            self.add(weight_name, torch.einsum("bto,bti->boi", g, _up(x).to(g.dtype)))
        if bias_name is not None:
            self.add(bias_name, g.sum(dim=1))

    def add(self, name: str, per_sample: torch.Tensor) -> None:
        prev, seen = self.pending.pop(name, (None, 0))
        total = per_sample if prev is None else prev + per_sample
        if seen + 1 < self.n_terms[name]:
            self.pending[name] = (total, seen + 1)
            return
        flat = total.reshape(total.shape[0], -1)
        self.sq += flat.pow(2).sum(dim=1).double()
        if self.lam is not None:
            self.dot += (flat @ self.lam[name].reshape(-1).to(flat.dtype)).double()
