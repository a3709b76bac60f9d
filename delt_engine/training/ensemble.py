"""Several runs trained together in one process (many runs, one device): stacked or interleaved.

A comparison is many runs of the same small model; one at a time they leave a GPU mostly idle, and on a
CPU each run's process spends seconds importing torch and transformers before its first step.

Stacked (CUDA by default, ``group_mode``): the K members' parameters are stacked along a new first
dimension and every step runs one batched forward and backward for all of them: the same Mistral
computation as the Hugging Face model (RMSNorm, rotary attention through SDPA, SiLU MLP, tied head),
written over stacked weights with batched matmuls, so the attention kernels stay the fast ones
(``torch.func.vmap`` over ``functional_call`` falls back to a per-member loop for SDPA: measured slower
on the CPU than training the runs one after another). A stack that does not fit in GPU memory is split
in halves (``split_to_fit``).

Each member keeps everything that makes it its own run: its ordered data and batches, its seed (its
initial weights are those of its solo run), its learning-rate schedule and budget, its gradient clipping
(per member norm) and AdamW state (elementwise, so stacking changes nothing), its evaluation sets and its
hooks (metrics, progress, stop flag). A member that finishes, is cancelled or fails leaves the stack; the
others go on. Members see exactly the batches of their solo run, so their losses equal the solo run's to
float tolerance (tests/training/test_ensemble.py). Only Mistral-architecture models (every preset) can be
stacked; ``stackable`` says why not otherwise.

Interleaved (elsewhere, and for what cannot be stacked): each member takes its own solo step in turn
(``loop.RunTrainer``), so its numerics are its solo run's bit for bit; on a CPU this is as fast as the
stacked step and as running the runs one after another in one process (bench/comparison_speed.py), and
it saves each run's process start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .config import RunConfig, uses_compile
from .loop import (
    CompiledStep,
    LoopClock,
    PreparedRun,
    RunState,
    RunSteps,
    RunTrainer,
    TrainHooks,
    build_run_model,
    prepare_run,
)


# ------------------------------------------------------------------------------------- the stacked model
def stackable(model) -> str | None:
    """None when ``model`` can be trained stacked, else the reason it cannot."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "mistral":
        return f"only Mistral-architecture models can be stacked, not {getattr(cfg, 'model_type', type(model))!r}"
    if not getattr(cfg, "tie_word_embeddings", False):
        return "the model's output head is not tied to its embeddings"
    if getattr(cfg, "sliding_window", None) is not None:
        return "sliding-window attention is not supported stacked"
    rope = getattr(cfg, "rope_parameters", None) or {"rope_type": "default"}
    if rope.get("rope_type", "default") != "default" or cfg.hidden_act != "silu":
        return "only default rotary embeddings and SiLU MLPs are supported stacked"
    if any(getattr(m, "bias", None) is not None for m in model.modules() if isinstance(m, torch.nn.Linear)):
        return "linear layers with biases are not supported stacked"
    return None


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """MistralRMSNorm over the last dimension; ``weight`` [K, H] broadcast over [K, N, H]."""
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight[:, None, :] * x.to(dtype)


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [K, N, in] @ weight[k].T for each member: [K, N, out]."""
    return torch.bmm(x, weight.transpose(1, 2))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StackedMistral:
    """The forward pass and token-mean loss of K Mistral models whose parameters are stacked.

    Args:
        config: the (shared) transformers MistralConfig of the members.
    """

    def __init__(self, config):
        self.config = config
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.eps = config.rms_norm_eps
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", getattr(config, "rope_theta", 1e4))
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float) / self.head_dim))
        self.pad_id = config.pad_token_id

    def _rotary(self, length: int, device, dtype):
        positions = torch.arange(length, device=device).float()
        freqs = positions[:, None] * self.inv_freq.to(device)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def _attention(self, h, p: dict, prefix: str, shape, cos, sin):
        k_, b, t = shape
        q = _linear(h, p[prefix + "q_proj.weight"]).view(k_ * b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = _linear(h, p[prefix + "k_proj.weight"]).view(k_ * b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = _linear(h, p[prefix + "v_proj.weight"]).view(k_ * b, t, self.n_kv, self.head_dim).transpose(1, 2)
        q = q * cos.to(q.dtype) + _rotate_half(q) * sin.to(q.dtype)
        k = k * cos.to(k.dtype) + _rotate_half(k) * sin.to(k.dtype)
        if self.n_kv != self.n_heads:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1, scale=self.head_dim**-0.5)
        out = out.transpose(1, 2).reshape(k_, b * t, self.n_heads * self.head_dim)
        return _linear(out, p[prefix + "o_proj.weight"])

    def hidden(self, params: dict, input_ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states [K, B, T, H] for input_ids [K, B, T]."""
        k_, b, t = input_ids.shape
        emb = params["model.embed_tokens.weight"]  # [K, V, H]
        vocab = emb.shape[1]
        offsets = (torch.arange(k_, device=input_ids.device) * vocab).view(k_, 1, 1)
        x = F.embedding(input_ids + offsets, emb.reshape(k_ * vocab, -1)).view(k_, b * t, -1)
        if self.pad_id is not None:  # nn.Embedding(padding_idx=pad): no gradient reaches the pad row
            x = torch.where((input_ids == self.pad_id).view(k_, b * t, 1), x.detach(), x)
        cos, sin = self._rotary(t, input_ids.device, x.dtype)
        for i in range(self.config.num_hidden_layers):
            pre = f"model.layers.{i}."
            h = _rms_norm(x, params[pre + "input_layernorm.weight"], self.eps)
            x = x + self._attention(h, params, pre + "self_attn.", (k_, b, t), cos, sin)
            h = _rms_norm(x, params[pre + "post_attention_layernorm.weight"], self.eps)
            gate = _linear(h, params[pre + "mlp.gate_proj.weight"])
            up = _linear(h, params[pre + "mlp.up_proj.weight"])
            x = x + _linear(F.silu(gate) * up, params[pre + "mlp.down_proj.weight"])
        return _rms_norm(x, params["model.norm.weight"], self.eps).view(k_, b, t, -1)

    def losses(self, params: dict, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token-mean next-token loss of every member over its real tokens (``losses.token_mean_loss``), [K].

        The head runs only on positions that predict a token (all but the last of each row)."""
        k_, b, t = input_ids.shape
        h = self.hidden(params, input_ids)[:, :, :-1].reshape(k_, b * (t - 1), -1)
        logits = _linear(h, params["model.embed_tokens.weight"]).float()
        targets = input_ids[:, :, 1:].reshape(-1)
        token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="none").view(k_, -1)
        mask = attention_mask[:, :, 1:].reshape(k_, -1).to(token.dtype)
        return (token * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


# ------------------------------------------------------------------------------------- the stacked optimizer
class StackedAdamW:
    """AdamW over stacked parameters with a learning rate per member (torch.optim.AdamW's update, step by
    step the same operations); weight decay on matrices only, as ``loop.make_optimizer``."""

    def __init__(self, params: dict, decay: dict, betas: tuple[float, float], weight_decay: float, eps: float = 1e-8):
        self.params, self.decay = params, decay
        self.betas, self.weight_decay, self.eps = betas, weight_decay, eps
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.step_count = 0

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        self.step_count += 1
        beta1, beta2 = self.betas
        bc1, bc2 = 1 - beta1**self.step_count, 1 - beta2**self.step_count
        factors: dict = {}  # per (dtype, device): the members' decay and step-size factors, made once a step

        def per_member(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            key = (p.dtype, p.device)
            if key not in factors:
                # computed in Python floats and rounded once, as torch's AdamW passes Python scalars
                values = [[1 - lr * self.weight_decay for lr in lrs], [-lr / bc1 for lr in lrs]]
                factors[key] = torch.tensor(values, dtype=p.dtype).to(p.device, non_blocking=True)
            shape = (len(lrs),) + (1,) * (p.dim() - 1)
            return factors[key][0].view(shape), factors[key][1].view(shape)

        for name, p in self.params.items():
            decay, step_size = per_member(p)
            if self.decay[name] and self.weight_decay:
                p.mul_(decay)
            m, v, g = self.exp_avg[name], self.exp_avg_sq[name], p.grad
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bc2**0.5).add_(self.eps)
            p.add_((m / denom) * step_size)

    def keep(self, index: torch.Tensor, params: dict) -> None:
        """Keep only the members at ``index`` (new stacked ``params``, same names)."""
        self.params = params
        self.exp_avg = {n: t[index] for n, t in self.exp_avg.items()}
        self.exp_avg_sq = {n: t[index] for n, t in self.exp_avg_sq.items()}


@torch.no_grad()
def clip_per_member(params: dict, max_norms: list[float | None]) -> torch.Tensor:
    """Scale each member's gradients as ``clip_grad_norm_`` would on its own parameters; returns the norms."""
    grads = [p.grad for p in params.values()]
    k_ = grads[0].shape[0]
    per_tensor = torch.stack([torch.linalg.vector_norm(g.reshape(k_, -1), 2, dim=1) for g in grads])
    norms = torch.linalg.vector_norm(per_tensor, 2, dim=0)
    limits = torch.tensor([float("inf") if m is None else m for m in max_norms], device=norms.device)
    coef = torch.clamp(limits / (norms + 1e-6), max=1.0).to(grads[0].dtype)
    for g in grads:
        g.mul_(coef.view((k_,) + (1,) * (g.dim() - 1)))
    return norms


# ------------------------------------------------------------------------------------- members and the loop
@dataclass
class Member:
    """One run of a group: its config, hooks and state (as ``loop.train_model`` takes them) and its cache root."""

    config: RunConfig
    hooks: TrainHooks
    state: RunState
    cache_root: Any = None


@dataclass
class Outcome:
    """How a member ended: "done", "cancelled" or "failed" (``error`` set), with its model and tokenizer."""

    state: str
    model: Any = None
    tokenizer: Any = None
    error: BaseException | None = None


@dataclass
class _Slot:
    """A member set up for the stacked loop."""

    index: int  # position in the members list
    run: PreparedRun
    model: Any  # its Hugging Face model: initial weights, and where its weights go when it is read
    steps: RunSteps = None
    names: list = field(default_factory=list)


GROUP_MODES = ("auto", "stacked", "interleaved")


def group_mode(device: torch.device, mode: str = "auto") -> str:
    """How runs on ``device`` train together: "stacked" (one batched model step for all) on CUDA,
    "interleaved" (each run's own solo step in turn, in one process) elsewhere: on a CPU the stacked step
    is no faster than the runs' own steps (bench/comparison_speed.py), and in turn they keep solo numerics
    bit for bit. ``mode`` (or the DELT_GROUP_MODE environment variable, when ``mode`` is "auto") forces one."""
    import os

    if mode == "auto":
        mode = os.environ.get("DELT_GROUP_MODE", "auto").strip().lower() or "auto"
    if mode not in GROUP_MODES:
        raise ValueError(f"group mode {mode!r} is not one of {', '.join(GROUP_MODES)}")
    if mode != "auto":
        return mode
    return "stacked" if device.type == "cuda" else "interleaved"


def train_together(members: list[Member], mode: str = "auto") -> list[Outcome]:
    """Train ``members`` together in this process: stacked where they share a model configuration on a
    device where that pays (``group_mode``), the others interleaved (each its own solo step in turn).

    Members whose setup fails end "failed" alone. Members that cannot share a stack (a different
    vocabulary, architecture or device, or a model that cannot be stacked) train in a stack of their
    own or interleaved.

    Args:
        members: the runs, each with its config, hooks and state.
        mode: "auto", "stacked" or "interleaved" (see ``group_mode``).

    Returns:
        One Outcome per member, in order. An error of a shared step itself (e.g. out of memory in a
        stacked step) is raised: every member still running then failed.
    """
    outcomes: list[Outcome | None] = [None] * len(members)
    slots = []
    for i, member in enumerate(members):
        try:
            run = prepare_run(member.config, member.hooks, member.state, member.cache_root)
            torch.manual_seed(member.config.seed)
            model = build_run_model(member.config, run.tokenizer, run.device)
            model.train()
            slots.append(_Slot(i, run, model))
        except Exception as exc:  # this member's data, tokenizer or model: the others go on
            outcomes[i] = Outcome("failed", error=exc)
    stacks, interleaved = [], []
    for group in _partition(slots):
        if len(group) > 1 and group_mode(group[0].run.device, mode) == "stacked" and stackable(group[0].model) is None:
            stacks.append(group)
        else:
            interleaved += group
    if stacks and stacks[0][0].run.device.type == "cuda":  # as many members per stack as the memory takes
        stacks = [part for group in stacks for part in split_to_fit(group, _probe)]
    work = [("stacked", g) for g in stacks if len(g) > 1] + [("interleaved", g) for g in stacks if len(g) == 1]
    work += [("interleaved", interleaved)] if interleaved else []
    for how, group in work:
        for slot in group:
            _note_group(members[slot.index].state, slot, len(group), how)
        done = _train_stack(group, members) if how == "stacked" else _train_interleaved(group, members)
        for slot in group:
            outcomes[slot.index] = done[slot.index]
    return outcomes


def split_to_fit(group: list, probe: Callable[[list], None]) -> list[list]:
    """``group`` as stacks that ``probe`` runs without running out of device memory: the whole group when
    it fits, else its halves, each split again as needed (a stack of one member always "fits": it then
    trains in its own solo loop, which fails with the usual out-of-memory message if even that is too big)."""
    if len(group) == 1:
        return [group]
    try:
        probe(group)
        return [group]
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
    half = len(group) // 2
    return split_to_fit(group[:half], probe) + split_to_fit(group[half:], probe)


def _probe(slots: list[_Slot]) -> None:
    """One stacked forward and backward on the members' first batches, with room for the optimiser's
    state: raises torch.cuda.OutOfMemoryError when this stack does not fit (nothing is kept)."""
    from ..data.tokenizer import trim_batch
    from .evaluation import autocast_context

    run0 = slots[0].run
    params, _ = _stack(slots)
    state = [torch.zeros_like(p) for p in params.values() for _ in range(2)]  # AdamW's two moments
    parts = [
        trim_batch(s.run.rows.input_ids[s.run.batches.rows(0)[1]], s.run.rows.attention_mask[s.run.batches.rows(0)[1]])
        for s in slots
    ]
    pad = run0.tokenizer.pad_token_id if run0.tokenizer.pad_token_id is not None else run0.tokenizer.eos_token_id
    ids, mask = _pad_stack(parts, pad)
    try:
        with autocast_context(run0.device, run0.amp):
            losses = StackedMistral(slots[0].model.config).losses(params, ids.to(run0.device), mask.to(run0.device))
        losses.sum().backward()
    finally:
        del params, state
        torch.cuda.empty_cache()


def _train_interleaved(slots: list[_Slot], members: list[Member]) -> dict[int, Outcome]:
    """Each member's solo training step in turn (``loop.RunTrainer``): solo numerics exactly, one process."""
    clock = LoopClock()
    outcomes: dict[int, Outcome] = {}
    active = []
    for slot in slots:
        member = members[slot.index]
        try:
            trainer = RunTrainer(slot.run, slot.model, member.hooks, member.state, clock)
            trainer.start()
            active.append((slot, trainer))
        except Exception as exc:
            outcomes[slot.index] = Outcome("failed", error=exc)
    index = 0
    while active:
        still = []
        for slot, trainer in active:
            if trainer.steps.stop_requested():
                outcomes[slot.index] = Outcome("cancelled", slot.model, slot.run.tokenizer)
                continue
            try:
                trainer.step(index)
            except Exception as exc:  # this member's step or evaluation: the rest go on
                outcomes[slot.index] = Outcome("failed", error=exc)
                continue
            if index + 1 == trainer.steps.total:
                outcomes[slot.index] = Outcome("done", slot.model, slot.run.tokenizer)
            else:
                still.append((slot, trainer))
        active, index = still, index + 1
    return outcomes


def _partition(slots: list[_Slot]) -> list[list[_Slot]]:
    """Slots that can share one stack: same architecture config, vocabulary, device, precision, optimizer."""
    groups: dict[Any, list[_Slot]] = {}
    for slot in slots:
        cfg = slot.model.config.to_dict()
        for volatile in ("_name_or_path", "transformers_version"):
            cfg.pop(volatile, None)
        c = slot.run.config
        key = (repr(sorted(cfg.items())), str(slot.run.device), slot.run.amp, tuple(c.betas), c.weight_decay)
        groups.setdefault(key, []).append(slot)
    return list(groups.values())


def _note_group(state: RunState, slot: _Slot, size: int, how: str) -> None:
    from ..models.presets import count_parameters

    attn = slot.model.config._attn_implementation
    state.info.update(
        n_params=count_parameters(slot.model),
        group_size=size,
        group_mode=how,
        attn_implementation=f"{attn} (stacked)" if how == "stacked" else attn,
    )


def _stack(slots: list[_Slot]) -> tuple[dict, dict]:
    """Stacked leaf parameters {name: [K, ...]} (tied weights once) and which of them weight decay applies to."""
    named = [dict(s.model.named_parameters()) for s in slots]
    params = {n: torch.stack([m[n].detach() for m in named]).requires_grad_(True) for n in named[0]}
    decay = {n: named[0][n].dim() >= 2 for n in named[0]}
    return params, decay


@torch.no_grad()
def _write_back(slot: _Slot, params: dict, position: int) -> Any:
    """Copy the member at ``position`` of the stack into its own model (to evaluate or keep it)."""
    for name, p in slot.model.named_parameters():
        p.copy_(params[name][position])
    return slot.model


def _batch(slots: list[_Slot], index: int, pad_id: int):
    """The step's batch of every member, padded to one [K, rows, width] (padding is masked out)."""
    parts = [slot.steps.batch(index) for slot in slots]
    ids, mask = _pad_stack([(i, m) for i, m, _ in parts], pad_id)
    return ids, mask, [p[2] for p in parts]


def _pad_stack(parts: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = max(i.shape[0] for i, _ in parts)
    width = max(i.shape[1] for i, _ in parts)
    ids = torch.full((len(parts), rows, width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(parts), rows, width), dtype=torch.long)
    for k, (i, m) in enumerate(parts):
        ids[k, : i.shape[0], : i.shape[1]] = i
        mask[k, : m.shape[0], : m.shape[1]] = m
    return ids, mask


def _train_stack(slots: list[_Slot], members: list[Member]) -> dict[int, Outcome]:
    """The stacked training loop of ``slots`` (all stackable, one configuration)."""
    from .evaluation import autocast_context

    clock = LoopClock()
    run0 = slots[0].run
    device, amp = run0.device, run0.amp
    stacked = StackedMistral(slots[0].model.config)
    pad_id = run0.tokenizer.pad_token_id if run0.tokenizer.pad_token_id is not None else run0.tokenizer.eos_token_id
    outcomes: dict[int, Outcome] = {}
    active = []
    for slot in slots:
        slot.steps = RunSteps(slot.run, members[slot.index].hooks, members[slot.index].state, clock)
        try:
            slot.steps.start(slot.model)
            active.append(slot)
        except Exception as exc:
            outcomes[slot.index] = Outcome("failed", error=exc)
    params, decay = _stack(active) if active else ({}, {})
    c0 = run0.config
    optimizer = StackedAdamW(params, decay, tuple(c0.betas), c0.weight_decay)
    longest = max((slot.steps.total for slot in active), default=0)
    compiled = CompiledStep(
        stacked.losses,
        uses_compile(c0, device.type, longest),
        members[slots[0].index].state,
        reset=lambda: [setattr(p, "grad", None) for p in params.values()],
    )
    for slot in slots[1:]:
        members[slot.index].state.info["compile"] = compiled.compiled
    index = 0
    while active:
        ending = {}
        for pos, slot in enumerate(active):
            if slot.steps.stop_requested():
                ending[pos] = Outcome("cancelled", _write_back(slot, params, pos), slot.run.tokenizer)
        if ending:
            active, params = _drop(active, params, optimizer, ending, outcomes)
            continue
        ids, mask, lrs = _batch(active, index, pad_id)

        def step(loss_fn):
            with autocast_context(device, amp):
                out = loss_fn(params, ids.to(device, non_blocking=True), mask.to(device, non_blocking=True))
            out.sum().backward()
            return out

        losses = compiled.run(index, step)
        clip_per_member(params, [slot.run.config.grad_clip for slot in active])
        optimizer.step(lrs)
        for p in params.values():
            p.grad = None
        losses = losses.detach()
        for pos, slot in enumerate(active):
            try:
                slot.steps.done_step(
                    index, losses[pos], lrs[pos], lambda slot=slot, pos=pos: _write_back(slot, params, pos)
                )
            except Exception as exc:  # e.g. its benchmark file vanished: this member fails, the rest go on
                ending[pos] = Outcome("failed", error=exc)
                continue
            if index + 1 == slot.steps.total:
                ending[pos] = Outcome("done", _write_back(slot, params, pos), slot.run.tokenizer)
        if ending:
            active, params = _drop(active, params, optimizer, ending, outcomes)
        index += 1
    return outcomes


def _drop(
    active: list[_Slot], params: dict, optimizer: StackedAdamW, ending: dict[int, Outcome], outcomes: dict[int, Outcome]
) -> tuple[list[_Slot], dict]:
    """Take the members at the positions in ``ending`` out of the stack (and the optimizer state)."""
    for pos, outcome in ending.items():
        outcomes[active[pos].index] = outcome
    keep = [pos for pos in range(len(active)) if pos not in ending]
    if not keep:
        return [], {}
    index = torch.tensor(keep, device=next(iter(params.values())).device)
    params = {n: p.detach()[index].requires_grad_(True) for n, p in params.items()}
    optimizer.keep(index, params)
    return [active[pos] for pos in keep], params
