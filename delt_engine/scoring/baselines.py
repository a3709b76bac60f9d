"""Baseline scorers (delt-method.md sections 1 and 6.4): random, length, compression, perplexity.

Each is ``fn(ctx: ScoreContext) -> pl.DataFrame`` with ``id`` (Utf8), ``score`` (Float64) and
component columns, one row per corpus sample in corpus order. Their directions are registered in
``scoring/registry.py``: random and compression "higher_better", length and perplexity "higher_harder".
"""

from __future__ import annotations

import gzip
import math

import numpy as np
import polars as pl
import torch

from ..progress import PhaseTimer, ProgressFn, StopFn, check_stop
from . import ScoreContext
from .runner import prepare_model, prepare_samples, prepare_tokenizer

CHUNK = 256  # documents between progress reports / stop checks for the cheap scorers
# Perplexity's proxy warm-up: LQS's (LQSConfig's defaults), so both score with an equally trained proxy.
PERPLEXITY_WARMUP = {"warmup_steps": 100, "warmup_lr": 3e-3}


def _table(ids, score, **components) -> pl.DataFrame:
    columns = {
        "id": pl.Series("id", [str(i) for i in ids], dtype=pl.Utf8),
        "score": pl.Series("score", score, dtype=pl.Float64),
    }
    columns.update(components)
    return pl.DataFrame(columns)


def score_random(ctx: ScoreContext) -> pl.DataFrame:
    """Uniform random scores in [0, 1) from ``numpy.random.default_rng(ctx.seed)``, drawn in corpus
    order: the control every real score must beat."""
    timer = PhaseTimer("random", ctx.frame.height, ctx.on_progress)
    check_stop(ctx.should_stop)
    values = np.random.default_rng(ctx.seed).random(ctx.frame.height)
    timer.update(ctx.frame.height, force=True)
    return _table(ctx.frame["id"].to_list(), values)


def score_length(ctx: ScoreContext) -> pl.DataFrame:
    """Length in tokens: ``len(tokenizer(text, add_special_tokens=False).input_ids)``.

    The full document is counted (no truncation to ``max_length``, no EOS), so the score ranks
    documents by how much text they hold. Components: ``n_tokens`` (the score as an integer) and
    ``n_chars`` (Unicode characters).
    """
    tokenizer = prepare_tokenizer(ctx)
    texts = ctx.frame["text"].to_list()
    timer = PhaseTimer("length", len(texts), ctx.on_progress)
    counts: list[int] = []
    for start in range(0, len(texts), CHUNK):
        check_stop(ctx.should_stop)
        encoded = tokenizer(texts[start : start + CHUNK], add_special_tokens=False)["input_ids"]
        counts.extend(len(toks) for toks in encoded)
        timer.update(len(counts))
    timer.update(len(counts), force=True)
    return _table(
        ctx.frame["id"].to_list(),
        [float(c) for c in counts],
        n_tokens=pl.Series(counts, dtype=pl.Int64),
        n_chars=pl.Series([len(t) for t in texts], dtype=pl.Int64),
    )


def compression_ratio(text: str) -> float | None:
    """``len(gzip.compress(b, compresslevel=9, mtime=0)) / len(b)`` with ``b = text.encode("utf-8")``.

    Low = repetitive (boilerplate compresses well). The gzip container adds 18 bytes (header and
    trailer), so very short texts have ratios above 1. None for the empty text.
    """
    n_bytes, gzip_bytes = gzip_sizes(text)
    return gzip_bytes / n_bytes if n_bytes else None


def gzip_sizes(text: str) -> tuple[int, int]:
    """(UTF-8 bytes, gzip bytes at level 9 with a fixed header time) of ``text``."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw), len(gzip.compress(raw, compresslevel=9, mtime=0))


def score_compression(ctx: ScoreContext) -> pl.DataFrame:
    """gzip compression ratio of each text (see ``compression_ratio``). Components: ``n_bytes`` (UTF-8
    bytes) and ``gzip_bytes`` (compressed size); the empty text has a null score."""
    texts = ctx.frame["text"].to_list()
    timer = PhaseTimer("compression", len(texts), ctx.on_progress)
    n_bytes: list[int] = []
    gz_bytes: list[int] = []
    for start in range(0, len(texts), CHUNK):
        check_stop(ctx.should_stop)
        for text in texts[start : start + CHUNK]:
            raw_size, gz_size = gzip_sizes(text)
            n_bytes.append(raw_size)
            gz_bytes.append(gz_size)
        timer.update(len(n_bytes))
    timer.update(len(n_bytes), force=True)
    ratios = [g / n if n else None for g, n in zip(gz_bytes, n_bytes)]
    return _table(
        ctx.frame["id"].to_list(),
        ratios,
        n_bytes=pl.Series(n_bytes, dtype=pl.Int64),
        gzip_bytes=pl.Series(gz_bytes, dtype=pl.Int64),
    )


def sample_mean_losses(
    model,
    samples,
    *,
    batch_size: int = 16,
    bf16: bool = False,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
    phase: str = "perplexity",
    sort_by_length: bool = True,
) -> torch.Tensor:
    """Mean next-token cross-entropy of every sample over its real tokens (padding masked), shape [N].

    Samples are sorted by length (longest first, so an out-of-memory error shows at once) and cut
    into batches of ``batch_size``; each batch is trimmed to its longest sample, then the losses go
    back to the samples' original positions. Right padding cannot change a causal LM's outputs at
    real tokens, so the result does not depend on batch size or batching.

    Args:
        model: a causal LM in eval mode; its device is used.
        samples: ``tokenize.Samples``.
        bf16: autocast the forward pass to bfloat16 on CUDA (faster, slightly less exact).
        sort_by_length: bucket samples of similar length (False: corpus order; for benchmarks).

    Returns:
        float64 tensor on the CPU; 0 for samples with fewer than 2 tokens (nothing to predict).
    """
    from ..data.tokenizer import trim_batch
    from ..models.losses import sample_losses

    device = next(model.parameters()).device
    order = (
        torch.argsort(samples.lengths, descending=True, stable=True) if sort_by_length else torch.arange(len(samples))
    )
    out = torch.zeros(len(samples), dtype=torch.float64)
    timer = PhaseTimer(phase, len(samples), on_progress)
    autocast = bf16 and device.type == "cuda"
    with torch.inference_mode():
        for start in range(0, len(samples), batch_size):
            check_stop(should_stop)
            idx = order[start : start + batch_size]
            ids, mask = trim_batch(samples.input_ids[idx], samples.attention_mask[idx])
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                losses = sample_losses(model, ids.to(device), mask.to(device))
            out[idx] = losses.double().cpu()
            timer.update(min(start + batch_size, len(samples)))
    timer.update(len(samples), force=True)
    return out


def perplexity_options(ctx: ScoreContext) -> dict:
    """``ctx.options`` with the warm-up defaults filled in where not set: ``PERPLEXITY_WARMUP`` for a
    preset (a random model, whose perplexity says nothing about the text until it has seen the corpus),
    ``warmup_steps=0`` for a model folder or Hub model (a trained model is scored as it is)."""
    from ..models.presets import PRESETS

    preset = isinstance(ctx.model, str) and ctx.model in PRESETS
    return {**(PERPLEXITY_WARMUP if preset else {"warmup_steps": 0}), **ctx.options}


def score_perplexity(ctx: ScoreContext) -> pl.DataFrame:
    """Perplexity ``exp(mean next-token CE)`` of each sample under the proxy model (higher = harder).

    The sample is the document truncated to ``ctx.max_length`` tokens with EOS appended (as in
    training). Model: ``prepare_model`` (a seeded preset, or a local model directory), first warmed up
    on the corpus as LQS's proxy is (options ``warmup_steps`` and ``warmup_lr``, defaults in
    ``PERPLEXITY_WARMUP``), since a random preset's perplexity says nothing about the text; a model
    folder or Hub model is scored as it is unless ``warmup_steps`` is set. The options used, defaults
    included, are written back to ``ctx.options`` (so the scoring's recorded settings show them). Options:
    ``bf16`` (CUDA autocast, default False), ``attn_implementation`` (default "sdpa").

    Under ``torchrun`` the samples are sharded across the processes and rank 0 returns the merged
    table (other ranks return None), as for LQS.

    Components: ``loss`` (mean CE, nats) and ``n_tokens`` (real tokens in the truncated sample; the
    loss averages ``n_tokens - 1`` predictions). A sample of one token has a null score and loss.
    """
    import dataclasses

    from ..models.device import resolve_device
    from .distributed import gather, init_world, leave, local_device, shard

    device = local_device(resolve_device(ctx.device))
    world = init_world(device)  # under torchrun every rank scores a share of the samples
    used = perplexity_options(ctx)
    ctx.options.update(used)  # recorded with the scores (run_scoring's config holds this dict)
    ctx = dataclasses.replace(ctx, device=str(device), options=used)
    tokenizer = prepare_tokenizer(ctx)
    samples = prepare_samples(ctx, tokenizer)
    model = prepare_model(
        ctx, tokenizer, samples=samples, attn_implementation=str(ctx.options.get("attn_implementation", "sdpa"))
    )
    mine = torch.tensor(
        shard(torch.argsort(samples.lengths, descending=True, stable=True).tolist(), world), dtype=torch.long
    )  # round robin over length order: balanced shards
    part = sample_mean_losses(
        model,
        samples.subset(mine),
        batch_size=ctx.batch_size,
        bf16=bool(ctx.options.get("bf16", False)),
        on_progress=ctx.on_progress,
        should_stop=ctx.should_stop,
    )
    shards = gather((mine, part), world)
    leave(world)
    if not world.is_lead:
        return None
    losses = torch.zeros(len(samples), dtype=torch.float64)
    for positions, values in shards:
        losses[positions] = values
    n_tokens = samples.lengths.tolist()
    loss = [float(v) if n >= 2 else None for v, n in zip(losses.tolist(), n_tokens)]
    ppl = [math.exp(v) if v is not None and v < 700 else (math.inf if v is not None else None) for v in loss]
    return _table(
        samples.ids, ppl, loss=pl.Series(loss, dtype=pl.Float64), n_tokens=pl.Series(n_tokens, dtype=pl.Int64)
    )
