"""Ordered training of one run (delt-method.md sections 1 and 5).

The model sees the ordered data exactly in file order: the i-th batch is the i-th slice of the training
rows (one document per row, or the documents packed into full rows in their order: ``RunConfig.packing``;
last partial batch kept, no reshuffle; later epochs replay the same order). AdamW, cosine schedule with
linear warm-up down to ``min_lr_frac`` of the peak, gradient clipping, bf16 autocast on CUDA, and a
compiled step where it pays (``config.uses_compile``).

``RunSteps`` is one run's bookkeeping (batches, learning rates, records, evaluations, hooks) and
``RunTrainer`` adds its model and optimiser; the solo loop and the runs trained together in one process
(``ensemble.train_together``) share both.

``train_model`` writes nothing: it reports every metrics record, its progress and each step through
``TrainHooks`` (as minGPT's trainer fires callbacks). The job layer (``jobs.train_job``) turns those
into a run directory's metrics.jsonl, progress.json, status.json and summary.json.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models.device import describe_device, resolve_device
from ..progress import Progress, ProgressFn, StopFn
from . import evaluation
from .config import RunConfig, uses_compile, uses_packing
from .data import SequentialBatches, load_ordered, plan_steps, train_rows
from .metrics import EVAL_METRICS, GROUP_METRICS

StepFn = Callable[[dict], None] | None
BatchFn = Callable[[int, list], None] | None
RecordFn = Callable[[dict], None] | None


# ---------------------------------------------------------------------------------- optimisation
def lr_at(index: int, total_steps: int, peak: float, warmup_frac: float, min_lr_frac: float) -> float:
    """Learning rate of 0-based step ``index``: linear warm-up over round(warmup_frac * total) steps
    (step i gets peak * (i + 1) / warmup), then a cosine from ``peak`` to ``min_lr_frac * peak`` that
    reaches the minimum exactly at the last step."""
    warmup = int(round(warmup_frac * total_steps))
    if index < warmup:
        return peak * (index + 1) / warmup
    progress = (index - warmup) / max(1, total_steps - warmup - 1)
    low = min_lr_frac * peak
    return low + (peak - low) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model, config: RunConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm gains are not decayed), as in nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=device.type == "cuda")


def build_run_model(config: RunConfig, tokenizer, device: torch.device):
    """The model of ``config`` with SDPA attention (faster), falling back to eager when unsupported."""
    from ..models.presets import build_model

    kwargs = dict(
        vocab_size=len(tokenizer),
        seed=config.seed,
        device=device,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    try:
        return build_model(config.model, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError):  # an architecture without SDPA; any other error repeats with eager
        return build_model(config.model, attn_implementation="eager", **kwargs)


def load_run_tokenizer(config: RunConfig, texts: list[str], cache_root: Path):
    """The configured tokenizer directory, or byte-level BPE trained on ``texts`` (order-independent)."""
    from ..data.tokenizer import load_tokenizer, train_tokenizer

    if config.tokenizer:
        return load_tokenizer(config.tokenizer)
    return train_tokenizer(texts, vocab_size=config.vocab_size, cache_root=config.cache_dir or cache_root)


# ------------------------------------------------------------------------------------- the run
@dataclass
class RunState:
    """What the run has reached so far (the summary is built from it, also on cancel or failure)."""

    steps: int = 0
    total_steps: int | None = None
    tokens: int = 0
    train_s: float = 0.0
    last_train: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # device, n_params, tokenizer, n_samples
    started: float = field(default_factory=time.perf_counter)

    def summary(self, state_name: str, error: str | None = None) -> dict[str, Any]:
        """The run's summary.json: how far it got, its last train and eval figures, speed and set-up."""
        return {
            "state": state_name,
            "steps": self.steps,
            "total_steps": self.total_steps,
            "tokens": self.tokens,
            "train_loss": self.last_train.get("train_loss"),
            "eval_step": self.last_eval.get("step"),
            **{k: self.last_eval.get(k) for k in EVAL_METRICS},
            "bench": self.last_eval.get("bench", {}),
            **{k: self.last_eval[k] for k in GROUP_METRICS if k in self.last_eval},
            "wall_s": round(time.perf_counter() - self.started, 3),
            "train_s": round(self.train_s, 3),
            "tok_s": round(self.tokens / self.train_s, 1) if self.train_s > 0 else None,
            "stopped_early": state_name != "done",
            "error": error,
            **self.info,
        }


@dataclass
class TrainHooks:
    """How ``train_model`` reports (every hook optional).

    Attributes:
        on_record: every metrics record, train and eval, in the order they are made.
        on_progress: Progress of the "setup" and "train" phases (every step; throttle when writing).
        on_step: after every optimizer step, {"step", "total_steps", "tokens", "lr", "train": the train
            record when one was logged, "eval": the eval record when one was made}.
        on_batch: ``on_batch(step, sample_ids)`` before each step (what the model sees).
        should_stop: checked before every step; when true the run ends "cancelled".
    """

    on_record: RecordFn = None
    on_progress: ProgressFn = None
    on_step: StepFn = None
    on_batch: BatchFn = None
    should_stop: StopFn = None

    def record(self, record: dict) -> None:
        if self.on_record is not None:
            self.on_record(record)

    def progress(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)


@dataclass
class TrainResult:
    """How ``train_model`` ended ("done" or "cancelled") and what it trained."""

    state: str
    model: Any
    tokenizer: Any


def train_model(
    config: RunConfig,
    hooks: TrainHooks | None = None,
    state: RunState | None = None,
    cache_root: str | Path | None = None,
) -> TrainResult:
    """Train ``config`` on its ordered data, reporting through ``hooks``; writes no files itself.

    Args:
        config: the run (input file, model, budget, evaluation sets).
        hooks: where records, progress and steps go.
        state: filled in as the run goes (pass one to keep what was reached when it fails).
        cache_root: where a tokenizer trained on the input is cached when ``config.cache_dir`` is unset.

    Returns:
        TrainResult: "done", or "cancelled" when ``hooks.should_stop`` became true.
    """
    hooks, state = hooks or TrainHooks(), state if state is not None else RunState()
    return _run(config, hooks, state, cache_root)


@dataclass
class PreparedRun:
    """A run ready to train: its ordered data as rows and batches, tokenizer, evaluation sets, device and
    precision (everything but the model, so that several runs can share one stacked model)."""

    config: RunConfig
    data: Any  # OrderedData
    tokenizer: Any
    rows: Any  # TrainRows
    batches: SequentialBatches
    sets: Any  # evaluation.EvalSets
    device: torch.device
    amp: torch.dtype | None


def prepare_run(config: RunConfig, hooks: TrainHooks, state: RunState, cache_root) -> PreparedRun:
    """Read, tokenize and batch ``config``'s ordered data, load its evaluation sets; fills
    ``state.total_steps`` and the data half of ``state.info``."""
    hooks.progress(Progress("setup", 0, 1, None, "tokenizing the ordered data"))
    data = load_ordered(config)
    tokenizer = load_run_tokenizer(config, data.texts, cache_root)
    rows = train_rows(data, tokenizer, config.max_length, uses_packing(config))
    batches = SequentialBatches(len(rows), config.batch_size, rows.lengths)
    state.total_steps = plan_steps(batches, config)
    sets = evaluation.load_eval_sets(config, tokenizer)
    device = resolve_device(config.device)
    amp = torch.bfloat16 if (config.bf16 if config.bf16 is not None else device.type == "cuda") else None
    state.info = {
        "device": describe_device(device),
        "model": config.model,
        "tokenizer": str(getattr(tokenizer, "name_or_path", "") or ""),
        "vocab_size": len(tokenizer),
        "n_samples": len(data.ids),
        "packing": rows.packed,
        "n_rows": len(rows),
        "batches_per_epoch": batches.per_epoch,
        "bf16": amp is not None,
        **({"groups": sets.groups_info} if sets.groups_info else {}),
    }
    return PreparedRun(config, data, tokenizer, rows, batches, sets, device, amp)


def _setup(config: RunConfig, hooks: TrainHooks, state: RunState, cache_root):
    from ..models.presets import count_parameters

    run = prepare_run(config, hooks, state, cache_root)
    torch.manual_seed(config.seed)
    model = build_run_model(config, run.tokenizer, run.device)
    model.train()
    state.info.update(n_params=count_parameters(model), attn_implementation=model.config._attn_implementation)
    return run, model


class LoopClock:
    """Training time of a loop: wall time since ``start`` less the time spent evaluating (shared by the
    runs of one loop, so one run's evaluation is not counted as another run's training)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.eval_s = 0.0

    def train_s(self) -> float:
        return time.perf_counter() - self.start - self.eval_s

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start


@dataclass
class _Window:
    """Train metrics accumulated since the last train line (log_every > 1 averages over the window)."""

    start: float  # training time (LoopClock.train_s) when the window began
    loss: object = 0.0  # a device tensor once steps ran: one sync per logged line, not per step
    steps: int = 0
    tokens: int = 0
    scores: list = field(default_factory=list)


class RunSteps:
    """One run's side of a training loop: its batches in order, learning rates, metrics records,
    evaluations, progress and hooks. The loop owns the model(s) and the optimizer step."""

    def __init__(self, run: PreparedRun, hooks: TrainHooks, state: RunState, clock: LoopClock):
        self.run, self.hooks, self.state, self.clock = run, hooks, state, clock
        self.config, self.total = run.config, state.total_steps
        self.window = _Window(clock.train_s())

    def start(self, model) -> None:
        """The step-0 evaluation, when asked for."""
        if self.config.eval_every and self.config.eval_at_start:
            self.evaluate(model, 0)

    def stop_requested(self) -> bool:
        return self.hooks.should_stop is not None and self.hooks.should_stop()

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(input_ids, attention_mask, lr) of 0-based step ``index``, padding columns trimmed; reports the
        documents of the batch to ``on_batch``."""
        from ..data.tokenizer import trim_batch

        _, rows = self.run.batches.rows(index)
        if self.hooks.on_batch is not None:
            docs = self.run.rows.docs(rows)
            self.hooks.on_batch(index + 1, self.run.data.ids[docs.start : docs.stop])
        input_ids, mask = trim_batch(self.run.rows.input_ids[rows], self.run.rows.attention_mask[rows])
        lr = lr_at(index, self.total, self.config.lr, self.config.warmup_frac, self.config.min_lr_frac)
        return input_ids, mask, lr

    def done_step(self, index: int, loss, lr: float, model_fn: Callable[[], Any]) -> None:
        """After the optimizer step of ``index``: tokens, batch score, train record, evaluation, progress.

        Args:
            loss: the step's detached loss (a device tensor; read only when a train line is written).
            model_fn: returns the model to evaluate, called only when this step has an evaluation (a
                stacked loop builds the run's model then).
        """
        config, state, window, batches = self.config, self.state, self.window, self.run.batches
        step, tokens = index + 1, batches.batch_tokens(index)
        window.loss = window.loss + loss
        state.steps, state.tokens = step, state.tokens + tokens
        window.steps, window.tokens = window.steps + 1, window.tokens + tokens
        scores = self.run.data.scores
        if scores is not None:
            docs = self.run.rows.docs(batches.rows(index)[1])
            window.scores += [s for s in scores[docs.start : docs.stop] if s is not None]
        record = eval_record = None
        if step % config.log_every == 0 or step == self.total:
            record = state.last_train = self._train_record(step, lr)
            self.hooks.record(record)
            self.window = _Window(self.clock.train_s())
        if (config.eval_every and step % config.eval_every == 0) or step == self.total:
            eval_record = self.evaluate(model_fn(), step)
        state.train_s = self.clock.train_s()
        self.hooks.progress(
            Progress("train", step, self.total, state.train_s / step * (self.total - step), f"{state.tokens} tokens")
        )
        if self.hooks.on_step is not None:
            self.hooks.on_step(
                {
                    "step": step,
                    "total_steps": self.total,
                    "tokens": state.tokens,
                    "lr": lr,
                    "train": record,
                    "eval": eval_record,
                }
            )

    def evaluate(self, model, step: int) -> dict:
        eval_start = time.perf_counter()
        run = self.run
        record = {
            "step": step,
            "tokens": self.state.tokens,
            **evaluation.run_eval(model, run.tokenizer, run.sets, self.config, run.device, run.amp),
        }
        record["elapsed_s"] = round(self.clock.elapsed_s(), 3)
        self.hooks.record(record)
        self.state.last_eval = record
        self.clock.eval_s += time.perf_counter() - eval_start  # eval time is not training time (tok_s)
        return record

    def _train_record(self, step: int, lr: float) -> dict:
        window = self.window
        return {
            "step": step,
            "tokens": self.state.tokens,
            "epoch": round(step / self.run.batches.per_epoch, 4),
            "train_loss": float(window.loss) / window.steps,
            "lr": lr,
            "tok_s": round(window.tokens / max(self.clock.train_s() - window.start, 1e-9), 1),
            "batch_score": sum(window.scores) / len(window.scores) if window.scores else None,
            "elapsed_s": round(self.clock.elapsed_s(), 3),
        }


def _train_step(model, optimizer, input_ids, mask, lr: float, config: RunConfig, device, amp, loss_fn=None):
    """One AdamW step on one batch; returns the detached token-mean loss (``loss_fn(ids, mask)``, by
    default ``losses.token_mean_loss`` of ``model``)."""
    from ..models.losses import token_mean_loss

    for group in optimizer.param_groups:
        group["lr"] = lr
    with evaluation.autocast_context(device, amp):
        ids, mask = input_ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        loss = loss_fn(ids, mask) if loss_fn is not None else token_mean_loss(model, ids, mask)
    loss.backward()
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


class CompiledStep:
    """A loss function compiled with ``torch.compile`` when ``uses_compile`` says so, falling back to the
    eager one (and saying why in ``state.info["compile"]``) when compiling fails at the first step. The
    first step's time, compilation included, is ``state.info["first_step_s"]`` (and counts as training)."""

    def __init__(self, eager: Callable, enabled: bool, state: RunState, reset: Callable[[], None] = lambda: None):
        self.eager, self.state, self.reset = eager, state, reset
        self.fn = torch.compile(eager) if enabled else eager
        self.compiled = enabled
        state.info["compile"] = enabled

    def run(self, index: int, step: Callable[[Callable], Any]):
        """``step(loss_fn)`` for 0-based step ``index``; the first compiled step falls back on an error."""
        if index > 0 or not self.compiled:
            return step(self.fn)
        start = time.perf_counter()
        try:
            out = step(self.fn)
        except Exception as exc:  # a model or torch version inductor cannot compile: train eagerly
            self.fn, self.compiled = self.eager, False
            self.reset()  # no gradient of the failed attempt may remain
            self.state.info["compile"] = f"failed ({type(exc).__name__}: {str(exc)[:200]}); trained eagerly"
            out = step(self.fn)
        self.state.info["first_step_s"] = round(time.perf_counter() - start, 3)
        return out


class RunTrainer:
    """One run's model, AdamW optimiser and bookkeeping: the solo training loop, one step at a time (so
    that several runs can also take their steps in turn in one process, ``ensemble.train_together``)."""

    def __init__(self, run: PreparedRun, model, hooks: TrainHooks, state: RunState, clock: LoopClock):
        from ..models.losses import token_mean_loss

        self.run, self.model = run, model
        self.optimizer = make_optimizer(model, run.config, run.device)
        self.steps = RunSteps(run, hooks, state, clock)
        self.compiled = CompiledStep(
            lambda ids, mask: token_mean_loss(model, ids, mask),
            uses_compile(run.config, run.device.type, self.steps.total),
            state,
            reset=lambda: self.optimizer.zero_grad(set_to_none=True),
        )

    def start(self) -> None:
        self.steps.start(self.model)

    def step(self, index: int) -> None:
        """Optimizer step ``index`` (0-based) and what follows it (records, evaluation, hooks)."""
        run = self.run
        input_ids, mask, lr = self.steps.batch(index)
        loss = self.compiled.run(
            index,
            lambda fn: _train_step(
                self.model, self.optimizer, input_ids, mask, lr, run.config, run.device, run.amp, fn
            ),
        )
        self.steps.done_step(index, loss, lr, lambda: self.model)


def _run(config: RunConfig, hooks: TrainHooks, state: RunState, cache_root) -> TrainResult:
    """The training loop."""
    run, model = _setup(config, hooks, state, cache_root)
    trainer = RunTrainer(run, model, hooks, state, LoopClock())
    trainer.start()
    for index in range(trainer.steps.total):
        if trainer.steps.stop_requested():
            return TrainResult("cancelled", model, run.tokenizer)
        trainer.step(index)
    return TrainResult("done", model, run.tokenizer)


def save_trained(model, tokenizer, out: Path) -> Path:
    """Save ``model`` (safetensors) and ``tokenizer`` to ``out`` atomically: written beside it, then renamed."""
    import os
    import shutil

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
