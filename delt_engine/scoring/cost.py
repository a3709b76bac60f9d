"""Rough time and memory estimates shown before a scoring job starts (data-juicer has none; users ask).

Cost model: a forward+backward pass costs ~6 x parameters x tokens FLOPs (a forward ~2x); per-sample
gradients cost ~1.3x a batched backward (delt-method.md, "Cost"); LQS also takes grad J over the
whole target set at every proxy step. Throughput is a rough constant per device class (the CPU one
calibrated on the demo: default LQS, 2000 documents, measured 88 s on 2 cores, estimated ~110 s),
so the numbers are order-of-magnitude guides, labelled as such in the UI.

Memory of the LQS per-sample pass is the activations of one chunk: ~160 bytes per (token x layer x
hidden unit), calibrated on the peaks bench/lqs_speed.py measured (cpu-demo, chunk 16: 102 MB;
gpu-30m, chunk 64: 3.3 GB); for a model folder without a readable config, chunk x parameters (what
vmap would hold) bounds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .lqs_config import default_chunk_size, keeps_every_step
from .registry import get_scorer

FLOPS_PER_S = {"cpu": 6e10, "mps": 2e12, "cuda": 3e13}
# Seconds per batched pass a GPU spends on launches and Python whatever the model size (the CPU constant
# above already includes it). cuda: default demo LQS with cpu-demo measured 11.6 s on an H200, which
# FLOPs alone put at ~3 s; its ~500 passes (warm-up, trajectory, co-state, contribution chunks) add ~8 s.
PASS_OVERHEAD_S = {"cpu": 0.0, "mps": 0.02, "cuda": 0.016}
BYTES_PER_PARAM = 4  # float32
DEFAULT_WARMUP_STEPS = 100  # the proxy warm-up perplexity and LQS/PDS run unless told otherwise (LQSConfig)


def preset_parameters(name: str, vocab_size: int = 2048) -> int:
    """Parameters of a model preset (tied embeddings; Mistral blocks with full key/value heads)."""
    from ..models.presets import PRESETS

    p = PRESETS[name]
    h, i = p.hidden_size, p.intermediate_size
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    return vocab_size * h + p.num_layers * per_layer + h


@dataclass(frozen=True)
class Estimate:
    seconds: float
    memory_bytes: int
    note: str


def estimate(
    method: str,
    n_docs: int,
    mean_tokens: float,
    model: str,
    device: str = "cpu",
    steps: int = 20,
    delta: int = 5,
    batch_size: int = 16,
    warmup_steps: int | None = None,
    target_docs: int = 200,
    proxy_size: int | None = None,
    distill_epochs: int = 8,
    chunk_size: int = 0,
    checkpoint: str = "auto",
) -> Estimate:
    """Order-of-magnitude time and peak memory of one scoring job (``target_docs``: LQS/PDS target set
    size; ``proxy_size``: LQS/PDS scores that many samples exactly and distils the rest; ``chunk_size``
    (0 = by device) and ``checkpoint`` as the LQS options of those names; ``warmup_steps``: the proxy's
    warm-up before perplexity or LQS/PDS, None = the engine's default, ``DEFAULT_WARMUP_STEPS``)."""
    kind = device.split(":")[0].split(" ")[0]
    speed, per_pass = FLOPS_PER_S.get(kind, FLOPS_PER_S["cpu"]), PASS_OVERHEAD_S.get(kind, 0.0)
    tokens = n_docs * mean_tokens
    kind_of_cost = get_scorer(method).cost  # ConfigError for an unknown scorer: never priced as another
    if kind_of_cost == "text":
        return Estimate(0.5 + n_docs * 2e-5, int(tokens * 16), "no model: a single pass over the texts")
    if warmup_steps is None:
        warmup_steps = DEFAULT_WARMUP_STEPS
    params = preset_parameters(model) if _is_preset(model) else folder_parameters(model)
    weights = params * BYTES_PER_PARAM
    batch_tokens = batch_size * mean_tokens
    flops = 6 * params * batch_tokens * warmup_steps
    if kind_of_cost == "forward":
        flops += 2 * params * tokens
        passes = warmup_steps + n_docs / batch_size
        note = "one forward pass per sample" + (f", after {warmup_steps} warm-up steps" if warmup_steps else "")
        return Estimate(2 + flops / speed + passes * per_pass, int(weights * 3 + tokens * 8), note)
    checkpoints = len(range(0, steps, max(delta, 1))) + 1
    flops += 6 * params * batch_tokens * steps * 3  # trajectory + co-state (HVPs ~2x a backward)
    flops += 6 * params * target_docs * mean_tokens * (steps + 1)  # grad J over the target set, every step
    exact_tokens = tokens if proxy_size is None else min(proxy_size, n_docs) * mean_tokens
    flops += 6 * params * exact_tokens * checkpoints * 1.3  # per-sample gradients at each checkpoint
    if proxy_size is not None:  # the regressor: a few epochs on the exact subset, one pass over the corpus
        flops += 6 * params * exact_tokens * distill_epochs + 2 * params * tokens
    every = keeps_every_step(checkpoint, steps, weights)
    copies = steps + 1 if every else checkpoints
    chunk = chunk_size or default_chunk_size(kind)
    exact_docs = n_docs if proxy_size is None else min(proxy_size, n_docs)
    passes = warmup_steps + steps * (2 + target_docs / batch_size) + checkpoints * exact_docs / chunk
    memory = weights * (copies + 3) + pass_bytes(model, chunk, mean_tokens, params)
    note = f"{steps} proxy steps, per-sample gradients at {checkpoints} checkpoints"
    if proxy_size is not None:
        note += f" for {min(proxy_size, n_docs):,} samples, distilled to the rest"
    return Estimate(3 + flops / speed + passes * per_pass, int(memory), note)


def pass_bytes(model: str, chunk: int, mean_tokens: float, params: int) -> int:
    """Activation memory of one per-sample chunk (see the module docstring)."""
    shape = None
    if _is_preset(model):
        from ..models.presets import PRESETS

        shape = PRESETS[model].num_layers, PRESETS[model].hidden_size
    else:
        try:
            config = json.loads((Path(model).expanduser() / "config.json").read_text())
            shape = int(config["num_hidden_layers"]), int(config["hidden_size"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if shape is None:
        return chunk * params * BYTES_PER_PARAM
    return int(chunk * mean_tokens * 1.2 * shape[0] * shape[1] * 160)


def folder_parameters(model: str, default: int = 10_000_000) -> int:
    """Parameters of a model folder, from its safetensors sizes (fp32: 4 bytes each); ``default`` when unknown."""
    folder = Path(model).expanduser()
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) if folder.is_dir() else 0
    return size // BYTES_PER_PARAM if size else default


def _is_preset(model: str) -> bool:
    from ..models.presets import PRESETS

    return model in PRESETS


def human_seconds(s: float) -> str:
    if s < 60:
        return f"~{max(s, 1):.0f} s"
    if s < 3600:
        return f"~{s / 60:.0f} min"
    return f"~{s / 3600:.1f} h"


def human_bytes(b: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024:
            return f"{b:.0f} {unit}"
        b /= 1024
    return f"{b:.1f} TB"
