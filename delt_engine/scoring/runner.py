"""Running a scorer: shared preparation (tokenizer, samples, proxy model) and the score_frame entry point.

Every model-based scorer (perplexity here, LQS/PDS in ``lqs.py``) builds its inputs with the same three
helpers, so all methods see one tokenizer, one truncation and one seeded proxy model:

    tokenizer = prepare_tokenizer(ctx)
    samples = prepare_samples(ctx, tokenizer)
    model = prepare_model(ctx, tokenizer, samples=samples)

``run_scoring`` validates the input, runs one registered scorer and returns a ``ScoreResult`` (the
input frame with the score columns joined on id, plus the config that made it). Scoring as a
background job (``score --job-dir``) lives in ``score_jobs``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from ..errors import ConfigError, DataError
from ..progress import PhaseTimer, ProgressFn, StopFn, check_stop
from . import ScoreContext, get_scorer
from .registry import check_options

KEY = "__delt_score_key"  # temporary join key (the id as a string), never left in an output


def rank() -> int:
    """This process's rank under torchrun (0 when not distributed)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


# ---------------------------------------------------------------- shared preparation helpers


def _model_dir_tokenizer(spec: str) -> Path | None:
    path = Path(spec)
    if path.is_dir() and any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json")):
        return path
    return None


def prepare_tokenizer(ctx: ScoreContext):
    """The tokenizer every scorer of ``ctx`` uses.

    Args:
        ctx: ``ctx.tokenizer`` may be a tokenizer object (used as is), a directory path (loaded with
            ``load_tokenizer``) or None. With None, a local model directory's own tokenizer is loaded
            when ``ctx.model`` has one; otherwise a byte-level BPE is trained on the corpus texts
            (cached under ``ctx.cache_dir``; ``ctx.options["vocab_size"]``, default 2048).

    Returns:
        A Hugging Face fast tokenizer with eos and pad tokens set.
    """
    from ..data.tokenizer import DEFAULT_VOCAB_SIZE, load_tokenizer, train_tokenizer

    if ctx.tokenizer is not None and not isinstance(ctx.tokenizer, (str, os.PathLike)):
        return ctx.tokenizer
    timer = PhaseTimer("tokenizer", 1, ctx.on_progress)
    if ctx.tokenizer is not None:
        tok = load_tokenizer(ctx.tokenizer)
    elif _model_dir_tokenizer(str(ctx.model)) is not None:
        tok = load_tokenizer(_model_dir_tokenizer(str(ctx.model)))
    else:
        vocab_size = int(ctx.options.get("vocab_size", DEFAULT_VOCAB_SIZE))
        tok = train_tokenizer(ctx.frame["text"].to_list(), vocab_size=vocab_size, cache_root=ctx.cache_dir)
    timer.update(1, force=True)
    return tok


def prepare_samples(ctx: ScoreContext, tokenizer):
    """Encode the corpus of ``ctx`` as ``Samples`` (one per document, EOS appended, truncated to
    ``ctx.max_length``, right-padded), in corpus order with the corpus ids."""
    from ..data.tokenizer import encode

    timer = PhaseTimer("encode", 1, ctx.on_progress)
    samples = encode(ctx.frame["text"].to_list(), ctx.frame["id"].to_list(), tokenizer, max_length=ctx.max_length)
    timer.update(1, force=True)
    return samples


def prepare_model(
    ctx: ScoreContext,
    tokenizer,
    *,
    samples=None,
    attn_implementation: str = "eager",
    dtype: torch.dtype = torch.float32,
):
    """The proxy causal LM of ``ctx``, on ``ctx.device``, in eval mode.

    A preset is randomly initialised from ``ctx.seed``; a directory is loaded as is. With
    ``ctx.options["warmup_steps"] > 0`` the model is first trained that many AdamW steps
    (lr ``options["warmup_lr"]``, default 1e-3) on batches of ``samples`` (the corpus) drawn in a
    seeded order, so that scores come from a model that has seen the data, not from noise.

    Args:
        ctx: model spec, seed, device, max_length, batch_size, options, progress/stop callbacks.
        tokenizer: from ``prepare_tokenizer``; sets the vocabulary size and eos/pad ids.
        samples: the corpus samples (needed only for warm-up; encoded here when missing).
        attn_implementation: "eager" (works with torch.func; LQS) or "sdpa" (faster forward passes).
        dtype: parameter dtype (float32 unless you know better).

    Returns:
        The model (``model.eval()`` applied).
    """
    from ..models.presets import build_model

    model = build_model(
        str(ctx.model),
        vocab_size=len(tokenizer),
        seed=ctx.seed,
        device=ctx.device,
        dtype=dtype,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation=attn_implementation,
    )
    n_embed = model.get_input_embeddings().num_embeddings
    if n_embed < len(tokenizer):
        raise DataError(
            f"model {ctx.model} has {n_embed} token embeddings but the tokenizer has {len(tokenizer)} "
            "tokens; give the tokenizer that belongs to the model (--tokenizer DIR)"
        )
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos is not None and ctx.max_length > max_pos:
        raise ConfigError(
            f"max_length={ctx.max_length} exceeds the {max_pos} positions of model {ctx.model}; "
            f"use --max-length {max_pos} or less"
        )
    steps = _int_option(ctx.options, "warmup_steps", 0, minimum=0)
    if steps > 0:
        if samples is None:
            samples = prepare_samples(ctx, tokenizer)
        warm_up(
            model,
            samples,
            steps=steps,
            lr=float(ctx.options.get("warmup_lr", 1e-3)),
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            on_progress=ctx.on_progress,
            should_stop=ctx.should_stop,
        )
    return model.eval()


def _int_option(options: dict, name: str, default: int, minimum: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise ConfigError(
            f"option {name}={value!r} must be an integer >= {minimum} (e.g. --set {name}={max(default, minimum)})"
        )
    return int(value)


def warm_up(
    model,
    samples,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
) -> list[float]:
    """Train ``model`` for ``steps`` AdamW steps on ``samples`` (mean loss over real tokens).

    Batches cycle through a seeded permutation of the samples, so the warm-up is reproducible. On a CPU
    a batch is run as its two length halves when that cuts its padding (``length_split``): the same loss.

    Returns:
        The training loss of each step.
    """
    from ..data.tokenizer import length_split, trim_batch
    from ..models.losses import token_loss_sum

    if lr <= 0:
        raise ConfigError(f"option warmup_lr={lr} must be > 0 (e.g. --set warmup_lr=0.001)")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(samples), generator=gen)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    timer, losses, pos = PhaseTimer("warm-up", steps, on_progress), [], 0
    for step in range(steps):
        check_stop(should_stop)
        if pos + batch_size > len(samples):
            pos, order = 0, torch.randperm(len(samples), generator=gen)
        idx = order[pos : pos + batch_size]
        pos += batch_size
        ids, mask = trim_batch(samples.input_ids[idx], samples.attention_mask[idx])
        parts = length_split(ids.to(device), mask.to(device))  # less padding, on a CPU
        sums = [token_loss_sum(model, i, m) for i, m in parts]
        loss = sum(total for total, _ in sums) / sum(count for _, count in sums).clamp_min(1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        timer.update(step + 1, message=f"loss {losses[-1]:.3f}")
    model.eval()
    return losses


# ---------------------------------------------------------------- running a scorer


@dataclass
class ScoreResult:
    """Output of one scoring run.

    Attributes:
        frame: the input frame with the score columns left-joined on id (input row order; a scorer
            column whose name the input already uses for its own data is renamed, see ``join_scores``).
        scores: the scorer's own table (id, score, components), one row per scored sample.
        method, direction: the scorer's name and its direction ("higher_better" | "higher_harder").
        config: the settings that produced the scores (for provenance).
        elapsed_s: wall-clock seconds of the scorer.
    """

    frame: pl.DataFrame
    scores: pl.DataFrame
    method: str
    direction: str
    config: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0


def score_metadata(result: ScoreResult, score_field: str = "score") -> dict[str, Any]:
    """What a scored file records about its scores (``write_records(..., score_meta=)``, scores.parquet).

    Args:
        result: the scoring run.
        score_field: the column the scores are in.

    Returns:
        {"scorer", "direction" ("higher_better" | "higher_harder"), "score_field", "settings" (the run's
        config: model, tokenizer, seed, max_length, options, ...), "n_scored", "elapsed_s", "created_at"}.
    """
    settings = {k: v for k, v in result.config.items() if k not in ("method", "direction", "n_scored")}
    return {
        "scorer": result.method,
        "direction": result.direction,
        "score_field": score_field,
        "settings": settings,
        "n_scored": result.scores.height,
        "elapsed_s": round(result.elapsed_s, 3),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def check_frame(frame) -> pl.DataFrame:
    """Validate a corpus frame for scoring and return it with ``id`` as Utf8 (DataError otherwise)."""
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"scoring needs a polars DataFrame, got {type(frame).__name__}")
    if frame.height == 0:
        raise DataError("the corpus is empty: nothing to score; load a file with at least one record")
    for column in ("id", "text"):
        if column not in frame.columns:
            raise DataError(
                f"the corpus has no {column!r} column (columns: {', '.join(frame.columns)}); "
                "load it with load_corpus(..., text_field=...) or rename the column"
            )
    if frame["text"].null_count():
        row = frame["text"].is_null().arg_true()[0]
        raise DataError(f"record {row} (id {frame['id'][row]!r}) has no text; drop it or fill it in")
    frame = frame.with_columns(pl.col("id").cast(pl.Utf8), pl.col("text").cast(pl.Utf8))
    if frame["id"].n_unique() != frame.height:
        dup = frame.filter(pl.col("id").is_duplicated())["id"][0]
        raise DataError(
            f"sample id {dup!r} occurs more than once; ids must be unique (load_corpus(dedup=True) "
            "or give an id field with unique values)"
        )
    return frame


def _check_scores(scores, frame: pl.DataFrame, method: str) -> pl.DataFrame:
    if not isinstance(scores, pl.DataFrame) or "id" not in scores.columns or "score" not in scores.columns:
        raise TypeError(f"scorer {method!r} must return a polars DataFrame with id and score columns")
    scores = scores.with_columns(pl.col("id").cast(pl.Utf8), pl.col("score").cast(pl.Float64))
    if scores["id"].n_unique() != scores.height:
        raise RuntimeError(f"scorer {method!r} returned duplicate ids")
    unknown = scores.join(frame.select("id"), on="id", how="anti")
    if unknown.height:
        raise RuntimeError(f"scorer {method!r} returned ids not in the corpus, e.g. {unknown['id'][0]!r}")
    return scores


def join_scores(frame: pl.DataFrame, scores: pl.DataFrame, method: str = "score") -> pl.DataFrame:
    """``frame`` with ``scores`` left-joined on id, in ``frame`` row order; ``frame``'s id dtype is kept.

    A ``score`` column of ``frame`` (an earlier scoring's) is replaced, and so are the other columns of
    ``scores`` when ``frame`` holds all of them (this scorer's output, scored again). Otherwise a column of
    ``frame`` that shares a name with one of the scorer's (user metadata such as ``source`` or ``loss``)
    is kept, and the scorer's is written as ``{method}_{name}`` (``renamed_columns`` says which)."""
    scores = scores.rename(renamed_columns(frame, scores, method))
    value_cols = [c for c in scores.columns if c != "id"]
    base = frame.drop([c for c in value_cols if c in frame.columns])
    base = base.with_columns(pl.col("id").cast(pl.Utf8).alias(KEY))
    right = scores.rename({"id": KEY})
    return base.join(right, on=KEY, how="left", maintain_order="left").drop(KEY)


def renamed_columns(frame: pl.DataFrame, scores: pl.DataFrame, method: str) -> dict[str, str]:
    """{scorer column: new name} for the scorer's columns that would replace metadata of ``frame`` (see
    ``join_scores``)."""
    value_cols = [c for c in scores.columns if c != "id"]
    clash = [c for c in value_cols if c in frame.columns and c != "score"]
    if not clash or set(value_cols) <= set(frame.columns):
        return {}
    taken, out = set(frame.columns) | set(value_cols), {}
    for c in clash:
        name, k = f"{method}_{c}", 2
        while name in taken:
            name, k = f"{method}_{c}_{k}", k + 1
        out[c] = name
        taken.add(name)
    return out


def run_scoring(
    frame,
    method: str,
    *,
    model: str = "cpu-demo",
    tokenizer=None,
    device: str = "auto",
    seed: int = 0,
    max_length: int = 128,
    batch_size: int = 16,
    target_texts=None,
    options: dict | None = None,
    cache_dir=None,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
) -> ScoreResult | None:
    """Score every sample of ``frame`` with scorer ``method`` (see ``SCORERS``).

    Args:
        frame: polars DataFrame with ``id`` and ``text`` columns (``corpus.load_corpus(...).frame``).
        method: a registered scorer name (random, length, compression, perplexity, lqs, pds, ...).
        model: proxy model preset name or local model directory (model-based methods only).
        tokenizer: tokenizer object, tokenizer directory, or None (trained on the corpus).
        device, seed, max_length, batch_size: as in ``ScoreContext``.
        target_texts: the clean target set (LQS/PDS).
        options: method-specific knobs (e.g. warmup_steps, bf16, proxy_size, distill).
        cache_dir: workspace cache folder (tokenizers).
        on_progress, should_stop: progress callback and stop flag (raises Cancelled when set).

    Returns:
        A ScoreResult, or None on a non-zero torchrun rank (the scorer left the output to rank 0).
    """
    info = get_scorer(method)
    frame_in = frame
    frame = check_frame(frame)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer (e.g. 16)")
    for name, value, least, example in (("seed", seed, 0, 0), ("max_length", max_length, 2, 128)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ConfigError(f"{name}={value!r} must be a whole number >= {least} (e.g. {example})")
    check_options(method, options or {})
    ctx = ScoreContext(
        frame=frame,
        model=model,
        tokenizer=tokenizer,
        device=device,
        seed=int(seed),
        max_length=int(max_length),
        batch_size=batch_size,
        target_texts=list(target_texts) if target_texts is not None else None,
        options=dict(options or {}),
        cache_dir=str(cache_dir) if cache_dir else None,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    check_stop(should_stop)
    start = time.perf_counter()
    scores = info.load()(ctx)
    elapsed = time.perf_counter() - start
    if scores is None:
        return None
    scores = _check_scores(scores, frame, method)
    tok_name = (
        None
        if tokenizer is None
        else str(tokenizer)
        if isinstance(tokenizer, (str, os.PathLike))
        else getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    )
    config = {
        "method": method,
        "direction": info.direction,
        "model": str(model),
        "tokenizer": tok_name,
        "device": str(device),
        "seed": int(seed),
        "max_length": int(max_length),
        "batch_size": batch_size,
        "n_target": None if target_texts is None else len(ctx.target_texts),
        "options": ctx.options,
        "n_samples": frame.height,
        "n_scored": scores.height,
    }
    return ScoreResult(join_scores(frame_in, scores, method), scores, method, info.direction, config, elapsed)


def score_frame(
    frame,
    method: str,
    *,
    model: str = "cpu-demo",
    tokenizer=None,
    device: str = "auto",
    seed: int = 0,
    max_length: int = 128,
    batch_size: int = 16,
    target_texts=None,
    options: dict | None = None,
    cache_dir=None,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
) -> pl.DataFrame | None:
    """The input frame with the score columns left-joined on id (input row order kept; samples the
    method did not score have a null score). Arguments as in ``run_scoring``.

    Returns:
        The joined frame, or None on a non-zero torchrun rank.
    """
    result = run_scoring(
        frame,
        method,
        model=model,
        tokenizer=tokenizer,
        device=device,
        seed=seed,
        max_length=max_length,
        batch_size=batch_size,
        target_texts=target_texts,
        options=options,
        cache_dir=cache_dir,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    return None if result is None else result.frame
