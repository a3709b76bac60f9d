"""LQS numerics (delt-method.md section 2): proxy SGD trajectory, co-state, per-sample contributions.

Notation as in the method page: ``theta_t`` (t = 0..T) are the parameters of T plain-SGD steps,
``lambda_t`` the co-state, ``g_{n,t}`` the gradient of sample n's loss at ``theta_t``. The model is
used as a pure function of a parameter dict (``torch.func.functional_call``), so per-sample
gradients (``vmap(grad)``), Hessian-vector products and SGD steps never touch module state.

Index set. Contribution steps are ``C = {0, Delta, 2*Delta, ...} < T``. The "next checkpoint" of
``t in C`` is ``next(t) = min(t + Delta, T)``: the following contribution step, or ``theta_T`` for
the last one (when ``T - 1`` is not a multiple of Delta this is closer than Delta steps away, e.g.
T = 45, Delta = 10: C = {0, 10, 20, 30, 40} and next(40) = 45). So per-sample gradient passes are
needed at every ``t in C`` (dot with ``lambda_{t+1}`` and norm) plus one norm-only pass at
``theta_T`` (paper final norm); each pass's norms serve as the denominators of the step before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vmap

from ..progress import PhaseTimer, ProgressFn, StopFn, check_stop
from .per_sample import HookedStats, UnsupportedModel

Params = dict[str, torch.Tensor]
HVP_MODES = ("double-backward", "forward-over-reverse")
PER_SAMPLE_MODES = ("auto", "hooks", "vmap")


def sample_losses(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token CE of each sample over its real tokens, shape [N] (as ``lm.sample_losses_from_logits``).

    Unlike ``lm`` this keeps float64 logits in float64 (``lm`` casts to float32), which the fp64
    brute-force checks need; half-precision logits are still computed in float32.
    """
    logits = logits[:, :-1, :]
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    targets = input_ids[:, 1:]
    mask = attention_mask[:, 1:].to(logits.dtype)
    token = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
    token = token.view_as(targets) * mask
    return token.sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def tree_axpy(a: float, x: Params, y: Params) -> Params:
    """``y + a * x`` key by key."""
    return {k: y[k] + a * x[k] for k in y}


def tree_dot(x: Params, y: Params) -> float:
    return float(sum(torch.sum(x[k].double() * y[k].double()) for k in x))


def tree_norm(x: Params) -> float:
    return tree_dot(x, x) ** 0.5


class FunctionalLM:
    """A causal LM as pure functions of a parameter dict: losses, gradients, HVPs, per-sample stats.

    Args:
        model: a Hugging Face causal LM (eager attention, so torch.func transforms work).
        autocast: a low-precision dtype (torch.bfloat16) to autocast forward passes to, or None.
        hvp_mode: "double-backward" (reverse-over-reverse) or "forward-over-reverse" (jvp of grad).
    """

    def __init__(
        self, model, autocast: torch.dtype | None = None, hvp_mode: str = "double-backward", per_sample: str = "auto"
    ):
        if per_sample not in PER_SAMPLE_MODES:
            raise ValueError(f"per_sample={per_sample!r} is not one of {', '.join(PER_SAMPLE_MODES)}")
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.autocast = autocast
        self.hvp_mode = hvp_mode
        self._grad = grad(self.batch_loss)
        self._sample_grads = vmap(grad(self._one_loss), in_dims=(None, 0, 0))
        self._hooked = None
        if per_sample != "vmap":
            try:
                self._hooked = HookedStats(model, self.losses)
            except ValueError:  # layers the hooks do not cover: "auto" takes vmap, "hooks" says why
                if per_sample == "hooks":
                    raise
        self._hooks_requested = per_sample == "hooks"
        self.per_sample = "vmap" if self._hooked is None else "hooks"

    def params(self) -> Params:
        """A detached copy of the model's current parameters (tied weights appear once)."""
        return {k: p.detach().clone() for k, p in self.model.named_parameters()}

    def _context(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    def losses(self, params: Params, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sample losses [N]; no attention mask is passed (right padding + causal attention)."""
        with self._context():
            logits = functional_call(self.model, params, args=(), kwargs={"input_ids": ids}).logits
        return sample_losses(logits, ids, mask)

    def batch_loss(self, params: Params, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``L_t``: the mean of the per-sample losses of the batch."""
        return self.losses(params, ids, mask).mean()

    def _one_loss(self, params: Params, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.losses(params, ids[None], mask[None])[0]

    def _split_loss(self, params: Params, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``batch_loss``, on a CPU computed over the batch's two length halves when that cuts its padding
        (``length_split``; the same mean up to float rounding, ~40% faster on a random demo batch)."""
        from ..data.tokenizer import length_split

        parts = length_split(ids, mask)
        if len(parts) == 1:
            return self.batch_loss(params, ids, mask)
        return sum(self.losses(params, i, m).sum() for i, m in parts) / ids.shape[0]

    def grad(self, params: Params, ids: torch.Tensor, mask: torch.Tensor) -> Params:
        """Gradient of the batch loss (plain reverse mode: on CPU ~20% faster than ``torch.func.grad``)."""
        with torch.enable_grad():
            leaves = {k: t.detach().requires_grad_(True) for k, t in params.items()}
            grads = torch.autograd.grad(self._split_loss(leaves, ids, mask), list(leaves.values()), allow_unused=True)
        return {k: torch.zeros_like(t) if g is None else g for (k, t), g in zip(params.items(), grads)}

    def hvp(self, params: Params, ids: torch.Tensor, mask: torch.Tensor, v: Params) -> Params:
        """Exact Hessian-vector product ``H(params) @ v`` of the batch loss; no Hessian is formed."""
        if self.hvp_mode == "forward-over-reverse":
            return jvp(lambda p: self._grad(p, ids, mask), (params,), (v,))[1]
        with torch.enable_grad():
            leaves = {k: t.detach().requires_grad_(True) for k, t in params.items()}
            keys = list(leaves)
            g = torch.autograd.grad(self._split_loss(leaves, ids, mask), [leaves[k] for k in keys], create_graph=True)
            hv = torch.autograd.grad(g, [leaves[k] for k in keys], grad_outputs=[v[k] for k in keys])
        return {k: h.detach() for k, h in zip(keys, hv)}

    def mean_grad(self, params: Params, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> Params:
        """Gradient of the mean loss over all samples of ``batches`` (e.g. ``grad J`` over the target set)."""
        total = sum(int(ids.shape[0]) for ids, _ in batches)
        out: Params | None = None
        for ids, mask in batches:
            g = self.grad(params, ids, mask)
            w = ids.shape[0] / total
            out = {k: w * g[k] for k in g} if out is None else tree_axpy(w, g, out)
        return out

    def sample_stats(
        self, params: Params, ids: torch.Tensor, mask: torch.Tensor, lam: Params | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ``lambda^T g_n`` and ``||g_n||^2`` (float64 [B]) of one chunk; gradients are discarded.

        ``lam=None`` computes the squared norms only (dots are returned as zeros). Uses one batched
        backward with per-layer hooks (``per_sample.HookedStats``) when the model allows, else ``vmap(grad)``.
        """
        if self._hooked is not None:
            try:
                with self._context():
                    return self._hooked.stats(params, ids, mask, lam)
            except UnsupportedModel:
                if self._hooks_requested:
                    raise
                self._hooked, self.per_sample = None, "vmap"  # "auto": this model needs the general path
        g = self._sample_grads(params, ids, mask)
        b = ids.shape[0]
        dot = torch.zeros(b, dtype=torch.float64, device=ids.device)
        sq = torch.zeros(b, dtype=torch.float64, device=ids.device)
        for k, gk in g.items():
            flat = gk.reshape(b, -1)
            sq += flat.pow(2).sum(dim=1).double()
            if lam is not None:
                dot += (flat @ lam[k].reshape(-1).to(flat.dtype)).double()
        return dot, sq


def contribution_steps(steps: int, delta: int) -> list[int]:
    """``C = {0, Delta, 2*Delta, ...} < T``."""
    return list(range(0, steps, delta))


def next_checkpoint(t: int, steps: int, delta: int) -> int:
    """The checkpoint whose gradient norm is the denominator of contribution step ``t``."""
    return min(t + delta, steps)


def batch_schedule(n: int, batch_size: int, steps: int, seed: int) -> list[torch.Tensor]:
    """Sample positions of each of ``steps`` batches: consecutive slices of seeded permutations.

    A new permutation starts when the current one cannot fill a batch, so no batch repeats a sample.
    """
    size = min(batch_size, n)
    gen = torch.Generator().manual_seed(seed)
    order, pos, out = torch.randperm(n, generator=gen), 0, []
    for _ in range(steps):
        if pos + size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        out.append(order[pos : pos + size])
        pos += size
    return out


def length_chunks(lengths: torch.Tensor, chunk_size: int) -> list[torch.Tensor]:
    """Sample positions grouped into chunks of similar length (longest first), to cut padded compute."""
    order = torch.argsort(lengths, descending=True, stable=True)
    return [order[i : i + chunk_size] for i in range(0, len(order), chunk_size)]


class Trajectory:
    """``theta_0..theta_T`` of T plain-SGD steps ``theta_{t+1} = theta_t - eta * grad L_t(theta_t)``.

    With ``keep_every`` all parameters are kept; otherwise only ``theta_t`` for t a multiple of
    Delta (and ``theta_T``), and the steps inside a segment are replayed on demand with the very
    same step function, so both settings give bit-identical parameters (on deterministic kernels).

    Args:
        flm: the proxy model as functions.
        theta0: parameters after warm-up.
        batches: (input_ids, attention_mask) of each step's training batch, on the model's device.
    """

    def __init__(self, flm: FunctionalLM, theta0: Params, batches, eta: float, delta: int, keep_every: bool):
        self.flm, self.batches, self.eta, self.delta, self.keep_every = flm, batches, eta, delta, keep_every
        self.steps = len(batches)
        self.saved: dict[int, Params] = {0: theta0}
        self._segment: tuple[int | None, dict[int, Params]] = (None, {})

    def step(self, t: int, theta: Params) -> Params:
        return tree_axpy(-self.eta, self.flm.grad(theta, *self.batches[t]), theta)

    def run(self, on_step: Callable[[int], None] = lambda t: None, should_stop=None) -> None:
        theta = self.saved[0]
        for t in range(self.steps):
            check_stop(should_stop)
            theta = self.step(t, theta)
            if self.keep_every or (t + 1) % self.delta == 0 or t + 1 == self.steps:
                self.saved[t + 1] = theta
            on_step(t + 1)

    def theta(self, t: int) -> Params:
        """``theta_t``; in checkpoint mode this replays t's segment once and keeps it until the next one."""
        if t in self.saved:
            return self.saved[t]
        start = (t // self.delta) * self.delta
        if self._segment[0] != start:
            self._segment = (None, {})  # free the old segment before building the new one
            seg, theta = {}, self.saved[start]
            for u in range(start, min(start + self.delta, self.steps) - 1):
                theta = self.step(u, theta)
                seg[u + 1] = theta
            self._segment = (start, seg)
        return self._segment[1][t]


def costate(
    flm: FunctionalLM,
    traj: Trajectory,
    target_batches,
    eta: float,
    needed: set[int],
    on_step: Callable[[int], None] = lambda i: None,
    should_stop=None,
) -> dict[int, Params]:
    """Backward recursion ``lambda_T = grad J(theta_T)``,
    ``lambda_t = lambda_{t+1} + grad J(theta_t) - eta * H_t(theta_t) lambda_{t+1}``, down to ``min(needed)``.

    Returns:
        ``{t: lambda_t}`` for t in ``needed`` (the steps ``t_k + 1`` of the contribution steps).
    """
    steps = traj.steps
    lam = flm.mean_grad(traj.theta(steps), target_batches)
    out = {steps: lam} if steps in needed else {}
    on_step(1)
    for i, t in enumerate(range(steps - 1, min(needed) - 1, -1)):
        check_stop(should_stop)
        theta = traj.theta(t)
        hv = flm.hvp(theta, *traj.batches[t], lam)
        gj = flm.mean_grad(theta, target_batches)
        lam = {k: lam[k] + gj[k] - eta * hv[k] for k in lam}
        if t in needed:
            out[t] = lam
        on_step(i + 2)
    return out


def contribution_pass(
    flm: FunctionalLM,
    params: Params,
    samples,
    chunks: list[torch.Tensor],
    lam: Params | None,
    on_chunk: Callable[[], None] = lambda: None,
    should_stop=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample dots with ``lam`` and squared gradient norms at ``params`` over ``chunks`` (in chunk order).

    Each chunk is trimmed to its longest sample; per-sample gradients live for one chunk only.
    """
    from ..data.tokenizer import trim_batch

    dots, sqs = [], []
    for idx in chunks:
        check_stop(should_stop)
        ids, mask = trim_batch(samples.input_ids[idx], samples.attention_mask[idx])
        dot, sq = flm.sample_stats(params, ids.to(flm.device), mask.to(flm.device), lam)
        dots.append(dot.cpu().numpy())
        sqs.append(sq.cpu().numpy())
        on_chunk()
    if not dots:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(dots), np.concatenate(sqs)


@dataclass
class LQSParts:
    """Raw per-sample quantities of LQS for some samples (a shard, or all after merging).

    Attributes:
        positions: sample positions (into the scored Samples) of the rows.
        steps: contribution steps ``t_k`` (C).
        dots: [n, K] ``lambda_{t_k+1}^T g_{n,t_k}``.
        sqnorms: [n, K+1] ``||g_{n,t}||^2`` for t in C, then at ``theta_T`` (NaN when not computed).
        lambda_norms: [K] ``||lambda_{t_k+1}||``.
    """

    positions: np.ndarray
    steps: list[int]
    dots: np.ndarray
    sqnorms: np.ndarray
    lambda_norms: np.ndarray

    @staticmethod
    def merge(parts: list[LQSParts]) -> LQSParts:
        """Concatenate shards and sort the rows by sample position."""
        pos = np.concatenate([p.positions for p in parts])
        order = np.argsort(pos, kind="stable")
        return LQSParts(
            pos[order],
            parts[0].steps,
            np.concatenate([p.dots for p in parts])[order],
            np.concatenate([p.sqnorms for p in parts])[order],
            parts[0].lambda_norms,
        )


def contributions(
    flm: FunctionalLM,
    traj: Trajectory,
    samples,
    chunks: list[torch.Tensor],
    lambdas: dict[int, Params],
    steps: list[int],
    final_pass: bool,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
) -> LQSParts:
    """Per-sample passes at every contribution step (dots with ``lambda_{t+1}`` and norms) and, with
    ``final_pass`` (the paper's final norm), a norm-only pass at ``theta_T``.

    Args:
        samples, chunks: the scored Samples and the chunks of positions this process handles.
        lambdas: ``{t + 1: lambda_{t+1}}`` for t in ``steps`` (from ``costate``).

    Returns:
        LQSParts for the samples of ``chunks`` (rows in chunk order; NaN norms at theta_T without the pass).
    """
    checkpoints = steps + ([traj.steps] if final_pass else [])
    timer = PhaseTimer("contributions", len(checkpoints) * len(chunks), on_progress)
    done = [0]

    def tick():
        done[0] += 1
        timer.update(done[0])

    local = np.concatenate(chunks).astype(np.int64) if chunks else np.zeros(0, dtype=np.int64)
    dots = np.zeros((len(local), len(steps)))
    sqnorms = np.full((len(local), len(steps) + 1), np.nan)
    for k, t in enumerate(checkpoints):
        lam = lambdas[t + 1] if t < traj.steps else None
        dot, sq = contribution_pass(flm, traj.theta(t), samples, chunks, lam, tick, should_stop)
        sqnorms[:, k] = sq
        if lam is not None:
            dots[:, k] = dot
    return LQSParts(local, steps, dots, sqnorms, np.array([tree_norm(lambdas[t + 1]) for t in steps]))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (a sample with no predicted token has a zero gradient)."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=np.broadcast_to(den, out.shape) > 0)
    return out


def combine(parts: LQSParts, eta: float, final_norm: str = "paper") -> dict[str, np.ndarray]:
    """LQS and its factors from the raw parts (delt-method.md section 2).

    ``c_{n,t} = eta * lambda_{t+1}^T g_{n,t} / ||g_{n,next(t)}||``; with ``final_norm="reference"``
    the last step divides by 1 instead of ``||g_{n,T}||``.

    Returns:
        Arrays: lqs, pds, quality, learnability [n]; contribution, cos, ratio, grad_norm [n, K];
        lambda_norm [K].
    """
    norms = np.sqrt(parts.sqnorms)
    grad_norm = norms[:, :-1]
    next_norm = norms[:, 1:].copy()
    if final_norm == "reference":
        next_norm[:, -1] = 1.0
    contribution = eta * _safe_div(parts.dots, next_norm)
    ratio = _safe_div(grad_norm, next_norm)
    cos = _safe_div(parts.dots, grad_norm * parts.lambda_norms[None, :])
    return {
        "lqs": contribution.sum(axis=1),
        "pds": eta * parts.dots.sum(axis=1),
        "quality": cos.sum(axis=1),
        "learnability": ratio.sum(axis=1),
        "contribution": contribution,
        "cos": cos,
        "ratio": ratio,
        "grad_norm": grad_norm,
        "lambda_norm": parts.lambda_norms,
    }
