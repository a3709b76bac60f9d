"""Ordered training of one run (delt-method.md sections 1 and 5).

The model sees the ordered data exactly in file order: the i-th batch is the i-th slice of the ordering
(last partial batch kept, no reshuffle; later epochs replay the same order). AdamW, cosine schedule with
linear warm-up down to ``min_lr_frac`` of the peak, gradient clipping, bf16 autocast on CUDA. Metrics
stream to ``<run_dir>/metrics.jsonl`` (one flushed JSON line each) so a reader sees the run live.

Run directory (docs/engine-contracts.md): config.json (RunConfig.to_dict), status.json and
progress.json (jobstate), metrics.jsonl, summary.json.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from . import evaluation
from ..models.device import describe_device, resolve_device
from ..errors import Cancelled, ConfigError, DataError
from ..fileio import append_jsonl, read_json, write_json
from ..jobs.protocol import write_progress, write_status
from ..progress import Progress, StopFn
from .config import RunConfig
from .data import SequentialBatches, load_eval_sets, load_ordered, plan_steps, run_eval

StepFn = Optional[Callable[[dict], None]]
BatchFn = Optional[Callable[[int, list], None]]


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
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=device.type == "cuda")


def build_run_model(config: RunConfig, tokenizer, device: torch.device):
    """The model of ``config`` with SDPA attention (faster), falling back to eager when unsupported."""
    from ..models.presets import build_model

    kwargs = dict(vocab_size=len(tokenizer), seed=config.seed, device=device,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
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
    total_steps: Optional[int] = None
    tokens: int = 0
    train_s: float = 0.0
    last_train: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # device, n_params, tokenizer, n_samples
    started: float = field(default_factory=time.perf_counter)


def train(config: RunConfig, run_dir: str | Path, on_step: StepFn = None, should_stop: StopFn = None,
          on_batch: BatchFn = None) -> dict:
    """Write ``config`` as ``run_dir/config.json`` and train the run (see ``train_run``).

    Raises:
        ConfigError when ``run_dir`` already holds metrics of an earlier run (choose a new run dir) or
        the model is unknown; DataError when the input file is missing. Nothing is written then.
    """
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists() and metrics.stat().st_size > 0:
        raise ConfigError(f"run dir {run_dir} already has metrics from an earlier run; "
                          "choose a new --run-dir (or delete that folder)")
    if not Path(config.input).is_file():
        raise DataError(f"input file {config.input} does not exist; give the ordered data JSONL/Parquet")
    from ..models.presets import PRESETS

    if config.model not in PRESETS and not Path(config.model).is_dir():
        raise ConfigError(f"model={config.model!r} is neither a preset ({', '.join(PRESETS)}) "
                          "nor a model directory")
    write_json(run_dir / "config.json", config.to_dict())
    return train_run(run_dir, on_step=on_step, should_stop=should_stop, on_batch=on_batch)


def train_run(run_dir: str | Path, on_step: StepFn = None, should_stop: StopFn = None,
              on_batch: BatchFn = None) -> dict:
    """Train the run described by ``run_dir/config.json``; the job entry point.

    Args:
        on_step: called after every optimizer step with {"step", "total_steps", "tokens", "lr",
            "train": the train record when one was logged, "eval": the eval record when one was made}.
        should_stop: checked before every step; when true the run ends "cancelled" with its metrics.
        on_batch: called as ``on_batch(step, sample_ids)`` before each step (what the model sees).

    Returns:
        The summary (also written to summary.json). An exception marks the run "failed" (with the
        error, metrics kept, summary written) and is re-raised.
    """
    run_dir = Path(run_dir)
    raw = read_json(run_dir / "config.json")
    if raw is None:
        raise ConfigError(f"run dir {run_dir} has no config.json; start a run with --input (or write config.json)")
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists() and metrics.stat().st_size > 0:  # left as it is: it belongs to an earlier run
        raise ConfigError(f"run dir {run_dir} already has metrics; runs cannot resume, start a new run dir")
    try:
        config = RunConfig.from_dict(raw)
    except ConfigError as exc:  # a queued job with a bad config.json ends failed, not stuck in "queued"
        write_status(run_dir, "failed", error=f"config.json: {exc}")
        raise
    write_status(run_dir, "running", pid=os.getpid(), error=None)
    state = RunState()
    try:
        state_name = _run(config, run_dir, state, on_step, should_stop, on_batch)
    except Cancelled:  # a hook or helper that honours a stop flag by raising (progress.check_stop)
        return _finish(run_dir, state, "cancelled")
    except KeyboardInterrupt:
        _finish(run_dir, state, "cancelled")
        raise
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        try:
            _finish(run_dir, state, "failed", error=message)
        finally:
            write_status(run_dir, "failed", error=message)
        raise
    return _finish(run_dir, state, state_name)


def _finish(run_dir: Path, state: RunState, state_name: str, error: str | None = None) -> dict:
    summary = {
        "state": state_name, "steps": state.steps, "total_steps": state.total_steps, "tokens": state.tokens,
        "train_loss": state.last_train.get("train_loss"), "eval_step": state.last_eval.get("step"),
        **{k: state.last_eval.get(k) for k in ("val_loss", "target_loss", "bench_acc", "bench_acc_norm")},
        "bench": state.last_eval.get("bench", {}),
        "wall_s": round(time.perf_counter() - state.started, 3), "train_s": round(state.train_s, 3),
        "tok_s": round(state.tokens / state.train_s, 1) if state.train_s > 0 else None,
        "stopped_early": state_name != "done", "error": error, **state.info,
    }
    write_json(run_dir / "summary.json", summary)
    if state_name != "failed":
        write_status(run_dir, state_name, error=None)
    return summary


def _setup(config: RunConfig, run_dir: Path, state: RunState):
    from ..models.presets import count_parameters
    from ..data.tokenizer import encode

    write_progress(run_dir, Progress("setup", 0, 1, None, "tokenizing the ordered data"))
    data = load_ordered(config)
    tokenizer = load_run_tokenizer(config, data.texts, run_dir)
    samples = encode(data.texts, data.ids, tokenizer, config.max_length)
    batches = SequentialBatches(len(samples), config.batch_size, samples.lengths.tolist())
    state.total_steps = plan_steps(batches, config)
    sets = load_eval_sets(config, tokenizer)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_run_model(config, tokenizer, device)
    model.train()
    amp = torch.bfloat16 if (config.bf16 if config.bf16 is not None else device.type == "cuda") else None
    state.info = {"device": describe_device(device), "n_params": count_parameters(model), "model": config.model,
                  "tokenizer": str(getattr(tokenizer, "name_or_path", "") or ""), "vocab_size": len(tokenizer),
                  "n_samples": len(samples), "batches_per_epoch": batches.per_epoch,
                  "attn_implementation": model.config._attn_implementation, "bf16": amp is not None}
    return data, tokenizer, samples, batches, sets, device, model, amp


@dataclass
class _Window:
    """Train metrics accumulated since the last train line (log_every > 1 averages over the window)."""

    start: float
    loss: object = 0.0  # a device tensor once steps ran: one sync per logged line, not per step
    steps: int = 0
    tokens: int = 0
    scores: list = field(default_factory=list)


def _train_step(model, optimizer, input_ids, mask, lr: float, config: RunConfig, device, amp):
    """One AdamW step on one batch; returns the detached token-mean loss."""
    from ..models.losses import token_mean_loss

    for group in optimizer.param_groups:
        group["lr"] = lr
    with evaluation.autocast_context(device, amp):
        loss = token_mean_loss(model, input_ids.to(device, non_blocking=True), mask.to(device, non_blocking=True))
    loss.backward()
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _train_record(step: int, lr: float, state: RunState, window: _Window, per_epoch: int,
                  loop_start: float) -> dict:
    now = time.perf_counter()
    return {"step": step, "tokens": state.tokens, "epoch": round(step / per_epoch, 4),
            "train_loss": float(window.loss) / window.steps, "lr": lr,
            "tok_s": round(window.tokens / max(now - window.start, 1e-9), 1),
            "batch_score": sum(window.scores) / len(window.scores) if window.scores else None,
            "elapsed_s": round(now - loop_start, 3)}


def _run(config, run_dir, state, on_step, should_stop, on_batch) -> str:
    """The training loop; returns "done" or "cancelled"."""
    from ..data.tokenizer import trim_batch

    data, tokenizer, samples, batches, sets, device, model, amp = _setup(config, run_dir, state)
    optimizer = make_optimizer(model, config, device)
    metrics, total = run_dir / "metrics.jsonl", state.total_steps
    loop_start = last_progress = time.perf_counter()
    window, eval_s = _Window(loop_start), 0.0

    def evaluate(step: int) -> dict:
        nonlocal eval_s
        eval_start = time.perf_counter()
        record = {"step": step, "tokens": state.tokens, **run_eval(model, tokenizer, sets, config, device, amp)}
        record["elapsed_s"] = round(time.perf_counter() - loop_start, 3)
        append_jsonl(metrics, record)
        state.last_eval = record
        eval_s += time.perf_counter() - eval_start
        window.start = time.perf_counter()  # eval time is not training time (tok_s)
        return record

    if config.eval_every and config.eval_at_start:
        evaluate(0)
    for index in range(total):
        if should_stop is not None and should_stop():
            return "cancelled"
        step, (_, rows) = index + 1, batches.rows(index)
        if on_batch is not None:
            on_batch(step, data.ids[rows])
        input_ids, mask = trim_batch(samples.input_ids[rows], samples.attention_mask[rows])
        lr = lr_at(index, total, config.lr, config.warmup_frac, config.min_lr_frac)
        window.loss = window.loss + _train_step(model, optimizer, input_ids, mask, lr, config, device, amp)
        state.steps, state.tokens = step, state.tokens + batches.batch_tokens(index)
        window.steps, window.tokens = window.steps + 1, window.tokens + batches.batch_tokens(index)
        if data.scores is not None:
            window.scores += [s for s in data.scores[rows] if s is not None]
        record = eval_record = None
        if step % config.log_every == 0 or step == total:
            record = state.last_train = _train_record(step, lr, state, window, batches.per_epoch, loop_start)
            append_jsonl(metrics, record)
            window = _Window(time.perf_counter())
        if (config.eval_every and step % config.eval_every == 0) or step == total:
            eval_record = evaluate(step)
        now = time.perf_counter()
        state.train_s = now - loop_start - eval_s
        if now - last_progress >= 0.5 or step == total:
            eta = state.train_s / step * (total - step)
            write_progress(run_dir, Progress("train", step, total, eta, f"{state.tokens} tokens"))
            last_progress = now
        if on_step is not None:
            on_step({"step": step, "total_steps": total, "tokens": state.tokens, "lr": lr,
                     "train": record, "eval": eval_record})
    if config.save_model:
        write_progress(run_dir, Progress("save", 0, 1, None, "saving the trained model"))
        state.info["model_dir"] = str(save_trained(model, tokenizer, run_dir / "model"))
    return "done"


def save_trained(model, tokenizer, out: Path) -> Path:
    """Save ``model`` (safetensors) and ``tokenizer`` to ``out`` atomically: written beside it, then renamed."""
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
