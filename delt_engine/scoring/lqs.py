"""Learnability-Quality Scoring (LQS) and PDS scorers (delt-method.md section 2).

``score_lqs(ctx)`` / ``score_pds(ctx)`` return one row per scored sample: id, score (LQS or PDS),
lqs, pds, quality, learnability, per-contribution-step lists (contribution, cos, ratio,
lambda_norm, grad_norm), exact and source ("exact" | "distilled"). With ``distill`` every sample's
score is the regressor's prediction and ``exact_score`` keeps the exact subset's raw scores (see
``distill``). Both share one computation per process (cached by config and data), so a job that asks
for LQS and then PDS computes the trajectory once. Options (``ctx.options``) are the fields of ``LQSConfig``.
The settings live in ``lqs_config``, the numerics in ``lqs_core``, the scale-out in ``distributed`` and
``distill``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch

from ..errors import ConfigError, DataError, JobError
from ..progress import PhaseTimer
from . import ScoreContext
from .lqs_config import PASS_THROUGH, LQSConfig, keeps_every_step


@dataclass
class LQSResult:
    """A scores table (one row per scored sample) and facts about how it was made (``meta``)."""

    frame: pl.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


_CACHE: dict[Any, Any] = {}  # one entry: the last exact computation of this process


def score_lqs(ctx: ScoreContext) -> pl.DataFrame | None:
    """LQS of every sample (or the proxy subset / distilled), score = lqs (higher = better).

    Args:
        ctx: corpus frame, proxy model, tokenizer, ``target_texts`` (required) and options (LQSConfig).

    Returns:
        The scores table on rank 0 (or without torchrun); None on other torchrun ranks.
    """
    result = run_lqs(ctx, "lqs")
    return None if result is None else result.frame


def score_pds(ctx: ScoreContext) -> pl.DataFrame | None:
    """PDS (the un-normalised LQS numerator) of every sample; same table as ``score_lqs``, score = pds."""
    result = run_lqs(ctx, "pds")
    return None if result is None else result.frame


def run_lqs(ctx: ScoreContext, method: str = "lqs") -> LQSResult | None:
    """Compute LQS/PDS for ``ctx`` and return the table plus ``meta`` (config, steps, distillation figures).

    Args:
        ctx: as for ``score_lqs``.
        method: "lqs" or "pds": which column becomes ``score`` (and is distilled, with distill=True).

    Returns:
        LQSResult on rank 0; None on other torchrun ranks.
    """
    if method not in ("lqs", "pds"):
        raise ConfigError(f"method={method!r}: use 'lqs' or 'pds'")
    cfg = LQSConfig.from_options(ctx)
    texts = check_target(ctx.target_texts)
    key = (
        cfg,
        str(ctx.model),
        _identity(ctx.tokenizer),
        _frame_hash(ctx.frame),
        _texts_hash(texts),
        tuple(sorted((k, str(v)) for k, v in ctx.options.items() if k in PASS_THROUGH)),
    )
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = compute_exact(ctx, cfg, texts)
    exact = _CACHE[key]
    if exact is None:
        return None
    return _finish(ctx, cfg, exact, method)


def check_target(texts) -> list[str]:
    """The target set as a list of texts; DataError with the fix when it is missing or empty."""
    fix = "give a clean target set: --target FILE (JSONL/Parquet with a text field), or the demo's target.jsonl"
    if texts is None:
        raise DataError(f"LQS/PDS need a target set (the text the model should get good at); {fix}")
    texts = [str(t) for t in texts if t is not None and str(t).strip()]  # blank texts have nothing to predict
    if not texts:
        raise DataError(f"the target set is empty (no non-blank text); {fix}")
    return texts


def _identity(tokenizer) -> Any:
    return tokenizer if tokenizer is None or isinstance(tokenizer, str) else id(tokenizer)


def _texts_hash(texts) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(str(t).encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()


def _frame_hash(frame: pl.DataFrame) -> str:
    return _texts_hash([*frame["id"].cast(pl.Utf8).to_list(), "\x01", *frame["text"].to_list()])


def _finish(ctx: ScoreContext, cfg: LQSConfig, exact, method: str) -> LQSResult:
    """Turn the exact parts into the output table; distil to the rest of the corpus when asked."""
    from .lqs_core import combine

    cols = combine(exact.parts, cfg.eta, cfg.final_norm)
    ids = [exact.samples.ids[p] for p in exact.parts.positions]
    table = exact_table(ids, cols, method)
    meta = {"method": method, "config": dataclasses.asdict(cfg), **exact.meta, "n_exact": len(ids)}
    if cfg.distill:
        from .distill import distill_scores

        table, dmeta = distill_scores(exact, table, method, cfg, ctx.on_progress, ctx.should_stop)
        meta["distill"] = dmeta
    return LQSResult(table, meta)


def exact_table(ids: list[str], cols: dict[str, np.ndarray], method: str) -> pl.DataFrame:
    """The output table of exactly scored samples from ``lqs_core.combine``'s columns."""
    n, k = cols["cos"].shape
    lists = {
        name: pl.Series(name, cols[name].tolist(), dtype=pl.List(pl.Float64))
        for name in ("contribution", "cos", "ratio", "grad_norm")
    }
    lists["lambda_norm"] = pl.Series("lambda_norm", [cols["lambda_norm"].tolist()] * n, dtype=pl.List(pl.Float64))
    return pl.DataFrame(
        {
            "id": pl.Series("id", ids, dtype=pl.Utf8),
            "score": pl.Series("score", cols[method], dtype=pl.Float64),
            **{
                name: pl.Series(name, cols[name], dtype=pl.Float64)
                for name in ("lqs", "pds", "quality", "learnability")
            },
            **lists,
            "exact": pl.Series("exact", [True] * n, dtype=pl.Boolean),
            "source": pl.Series("source", ["exact"] * n, dtype=pl.Utf8),
        }
    )


def memory_error(exc: BaseException, cfg: LQSConfig) -> JobError | None:
    """A JobError with the fix when ``exc`` is an out-of-memory error, else None."""
    text = str(exc).lower()
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text or "can't allocate" in text:
        chunk = cfg.chunk_size or "by device"
        return JobError(
            f"LQS ran out of memory ({type(exc).__name__}); lower chunk_size (now {chunk}), "
            f"batch_size (now {cfg.batch_size}) or max_length (now {cfg.max_length}), or keep fewer "
            "parameter copies with checkpoint=delta (CLI: --set chunk_size=2 --set checkpoint=delta; "
            "app: Score page, Advanced LQS settings)"
        )
    return None


# ---------------------------------------------------------------- the exact computation


@dataclass
class ExactLQS:
    """Merged raw parts of the exactly scored samples, with what distillation needs."""

    parts: Any  # lqs_core.LQSParts, rows sorted by position in ``samples``
    samples: Any  # tokenize.Samples of the whole corpus
    flm: Any  # lqs_core.FunctionalLM (its module holds the warmed-up theta_0)
    meta: dict[str, Any]


def _torch_dtypes(cfg: LQSConfig, device: torch.device) -> tuple[torch.dtype, torch.dtype | None]:
    """(parameter dtype, autocast dtype) of ``cfg.dtype``."""
    if cfg.dtype == "float64":
        return torch.float64, None
    if cfg.dtype == "bfloat16":
        return torch.float32, torch.bfloat16
    return torch.float32, None


def _proxy_positions(n: int, cfg: LQSConfig) -> np.ndarray:
    if cfg.proxy_size is None or cfg.proxy_size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(cfg.seed).choice(n, size=cfg.proxy_size, replace=False))


def _on_device(samples, index_batches, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from ..data.tokenizer import trim_batch

    out = []
    for idx in index_batches:
        ids, mask = trim_batch(samples.input_ids[idx], samples.attention_mask[idx])
        out.append((ids.to(device), mask.to(device)))
    return out


def _target_batches(texts: list[str], tokenizer, cfg: LQSConfig, device):
    from ..data.tokenizer import encode
    from .lqs_core import length_chunks

    target = encode(texts, [f"target-{i}" for i in range(len(texts))], tokenizer, max_length=cfg.max_length)
    return _on_device(target, length_chunks(target.lengths, cfg.batch_size), device), len(target)


def compute_exact(ctx: ScoreContext, cfg: LQSConfig, texts: list[str]) -> ExactLQS | None:
    """Warm-up, trajectory, co-state and contributions (sharded under torchrun); merged on rank 0.

    Returns:
        ExactLQS on rank 0 (or without torchrun), None on other ranks.
    """
    from ..models.device import resolve_device
    from .distributed import init_world, local_device
    from .runner import prepare_model, prepare_samples, prepare_tokenizer

    device = local_device(resolve_device(cfg.device))
    world = init_world(device)
    param_dtype, autocast = _torch_dtypes(cfg, device)
    tokenizer = prepare_tokenizer(ctx)
    lctx = dataclasses.replace(
        ctx,
        tokenizer=tokenizer,
        device=str(device),
        seed=cfg.seed,
        max_length=cfg.max_length,
        batch_size=cfg.batch_size,
        options={"warmup_steps": cfg.warmup_steps, "warmup_lr": cfg.warmup_lr},
    )
    samples = prepare_samples(lctx, tokenizer)
    positions = _proxy_positions(len(samples), cfg)
    pool = samples.subset(positions)
    try:
        model = prepare_model(lctx, tokenizer, samples=pool, attn_implementation="eager", dtype=param_dtype)
        target_batches, n_target = _target_batches(texts, tokenizer, cfg, device)
        parts, meta, flm = exact_parts(
            model, pool, target_batches, cfg, world, autocast, on_progress=ctx.on_progress, should_stop=ctx.should_stop
        )
    except (RuntimeError, MemoryError) as exc:
        oom = memory_error(exc, cfg)
        if oom is None:
            raise
        raise oom from exc
    from .distributed import gather, leave
    from .lqs_core import LQSParts

    shards = gather(parts, world)
    leave(world)
    if not world.is_lead:
        return None
    merged = LQSParts.merge(shards)
    merged.positions = positions[merged.positions]  # pool positions -> corpus positions
    meta.update(n_samples=len(samples), n_target=n_target, world_size=world.size, device=str(device))
    return ExactLQS(merged, samples, flm, meta)


def exact_parts(
    model, pool, target_batches, cfg: LQSConfig, world=None, autocast=None, *, on_progress=None, should_stop=None
):
    """Trajectory, co-state and this rank's contributions, starting from ``model``'s current weights.

    Args:
        model: the (warmed-up) proxy causal LM; its parameters are theta_0 and are not modified.
        pool: Samples to train the trajectory on and to score (positions in the result refer to it).
        target_batches: (input_ids, attention_mask) batches of the target set, on the model's device.
        cfg: steps, delta, eta, batch_size, seed, chunk_size, checkpoint, final_norm, hvp.
        world: distributed.World (None = one process); contributions are sharded by chunk.
        autocast: torch.bfloat16 to autocast forward passes, or None.

    Returns:
        (LQSParts of this rank's samples, meta dict, the FunctionalLM).
    """
    from .distributed import World, shard
    from .lqs_core import (
        FunctionalLM,
        Trajectory,
        batch_schedule,
        contribution_steps,
        contributions,
        costate,
        length_chunks,
    )

    world = world or World()
    flm = FunctionalLM(model, autocast=autocast, hvp_mode=cfg.hvp, per_sample=cfg.per_sample)
    theta0 = flm.params()
    n_params = sum(p.numel() for p in theta0.values())
    keep_every = keeps_every_step(cfg.checkpoint, cfg.steps, n_params * theta0[next(iter(theta0))].element_size())
    batches = _on_device(pool, batch_schedule(len(pool), cfg.batch_size, cfg.steps, cfg.seed + 1), flm.device)
    traj = Trajectory(flm, theta0, batches, cfg.eta, cfg.delta, keep_every)
    timer = PhaseTimer("trajectory", cfg.steps, on_progress)
    traj.run(timer.update, should_stop)
    steps = contribution_steps(cfg.steps, cfg.delta)
    timer = PhaseTimer("co-state", cfg.steps, on_progress)
    lambdas = costate(flm, traj, target_batches, cfg.eta, {t + 1 for t in steps}, timer.update, should_stop)
    chunks = shard(length_chunks(pool.lengths, cfg.chunk_for(flm.device)), world)
    parts = contributions(flm, traj, pool, chunks, lambdas, steps, cfg.final_norm == "paper", on_progress, should_stop)
    meta = {"contribution_steps": steps, "n_params": n_params, "checkpoint": "every" if keep_every else "delta"}
    return parts, meta, flm
