"""LQS/PDS settings: ``LQSConfig`` (every field a ``ctx.options`` key), validated with errors that name
the option and show a value that works."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .registry import ScoreContext

if TYPE_CHECKING:  # torch is imported only where tensors are made (the app's estimate reads this module)
    import torch

CHECKPOINTS = ("auto", "every", "delta")
FINAL_NORMS = ("paper", "reference")
DTYPES = ("float32", "float64", "bfloat16")
PASS_THROUGH = ("vocab_size",)  # read by runner.prepare_tokenizer
AUTO_EVERY_BYTES = 1 << 30  # "auto" keeps every step while T+1 parameter copies fit in 1 GiB


def default_chunk_size(device_type: str) -> int:
    """Samples per per-sample chunk when none is set: 16 on the CPU, 64 on a GPU (small chunks leave it idle)."""
    return 16 if device_type == "cpu" else 64


def keeps_every_step(checkpoint: str, steps: int, param_bytes: int) -> bool:
    """Whether the trajectory keeps all T+1 parameter copies ("every", or "auto" while they fit in
    ``AUTO_EVERY_BYTES``) rather than every Delta-th with replay."""
    return checkpoint == "every" or (checkpoint == "auto" and (steps + 1) * param_bytes <= AUTO_EVERY_BYTES)


@dataclass(frozen=True)
class LQSConfig:
    """Settings of one LQS/PDS computation; every field is a ``ctx.options`` key.

    Attributes:
        steps: T, plain-SGD steps of the proxy trajectory (the paper: 100; 20 fits the CPU budget:
            the co-state needs grad J over the whole target set at every step).
        delta: Delta, steps between contribution steps (and checkpoints); T >= Delta. Each
            contribution step costs one per-sample-gradient pass over the scored samples (plus one
            norm-only pass at theta_T with the paper's final norm).
        eta: constant SGD learning rate of the trajectory (batch loss = mean of per-sample losses).
            It must keep SGD stable along the sharpest directions (|1 - eta * h| <= 1 for Hessian
            eigenvalues h), or the co-state (I - eta H) products blow up and the scores turn into
            noise. On the demo with cpu-demo: eta = 0.5 gave |lambda_1| ~ 40 x |lambda_11| and
            near-chance scores; 0.1 was stable for two seeds of three (|lambda_1| = 191 on the third);
            0.05 was stable on every seed tried, so it is the default.
        warmup_steps, warmup_lr: AdamW steps (and lr) on corpus batches before the trajectory, so the
            gradients come from a model that has seen the data rather than from random weights.
        batch_size: samples per trajectory / warm-up batch.
        max_length: tokens per sample (truncated); at least 2.
        proxy_size: score a seeded random subset of this many samples (None = all).
        chunk_size: samples per per-sample-gradient chunk (memory ~ chunk_size x the largest layer with
            hooks, chunk_size x all parameters with vmap). None = by device: 16 on the CPU, 64 on a GPU,
            where small chunks leave it idle (gpu-30m on an H200: the pass took 0.7-0.9 s over 256 samples
            in chunks of 16 and 0.21 s in chunks of 64). Results do not depend on it.
        checkpoint: "every" (keep all theta_t), "delta" (keep every Delta-th, replay the segment) or
            "auto" ("every" while T+1 parameter copies fit in 1 GiB). Identical results on CPU; on CUDA
            non-deterministic kernels (e.g. embedding backward) can make the replay differ in the last bits.
        final_norm: last step's denominator: "paper" (||grad l(x, theta_T)||) or "reference" (1).
        dtype: "float32", "float64" (checks; note HF Mistral still runs softmax and RMSNorm in float32)
            or "bfloat16" (autocast, meant for CUDA; float32 master weights, co-state and sums).
        hvp: "double-backward" or "forward-over-reverse" (both exact).
        per_sample: how per-sample gradient dots/norms are computed: "hooks" (one batched backward,
            per-layer products; Linear/Embedding/RMSNorm models such as the Mistral presets), "vmap"
            (``torch.func.vmap(grad)``, any model) or "auto" (hooks when the model allows).
        seed, device: as in ScoreContext (defaults taken from it).
        distill: with proxy_size, distil the proxy's exact scores into a regressor that scores the rest.
        distill_epochs, distill_lr, distill_val_fraction: the regressor's training.
    """

    steps: int = 20
    delta: int = 10
    eta: float = 0.05
    warmup_steps: int = 100
    warmup_lr: float = 3e-3
    batch_size: int = 16
    max_length: int = 128
    proxy_size: int | None = None
    chunk_size: int | None = None
    checkpoint: str = "auto"
    final_norm: str = "paper"
    dtype: str = "float32"
    hvp: str = "double-backward"
    per_sample: str = "auto"
    seed: int = 0
    device: str = "auto"
    distill: bool = False
    distill_epochs: int = 8
    distill_lr: float = 1e-3
    distill_val_fraction: float = 0.2

    def __post_init__(self):
        for name, low in (
            ("steps", 1),
            ("delta", 1),
            ("warmup_steps", 0),
            ("batch_size", 1),
            ("max_length", 2),
            ("distill_epochs", 1),
            ("seed", 0),
        ):
            _check_int(name, getattr(self, name), low)
        for name in ("proxy_size", "chunk_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        for name in ("eta", "warmup_lr", "distill_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(
                    f"LQS option {name}={value!r} must be a number > 0 (e.g. --set {name}={_default(name)})"
                )
        if self.steps < self.delta:
            raise ConfigError(
                f"LQS option steps={self.steps} is smaller than delta={self.delta}: the trajectory needs "
                f"at least one segment; use steps >= {self.delta} or a smaller delta"
            )
        for name, allowed in (
            ("checkpoint", CHECKPOINTS),
            ("final_norm", FINAL_NORMS),
            ("dtype", DTYPES),
            ("hvp", ("double-backward", "forward-over-reverse")),
            ("per_sample", ("auto", "hooks", "vmap")),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"LQS option {name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not 0 < self.distill_val_fraction <= 0.5:
            raise ConfigError(f"LQS option distill_val_fraction={self.distill_val_fraction!r} must be in (0, 0.5]")
        if self.distill and self.proxy_size is None:
            raise ConfigError(
                "LQS option distill=True needs proxy_size=M (the exactly scored subset); "
                "e.g. --set proxy_size=1000 --set distill=true"
            )
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"LQS option device={self.device!r} must be a device name (auto, cpu, cuda, mps)")

    def chunk_for(self, device: torch.device) -> int:
        """The chunk size to use on ``device``: the one set, else ``default_chunk_size``."""
        return self.chunk_size if self.chunk_size is not None else default_chunk_size(device.type)

    @classmethod
    def from_options(cls, ctx: ScoreContext) -> LQSConfig:
        """The config of ``ctx``: seed/device/max_length/batch_size from the context, then ``ctx.options``.

        Raises ConfigError for unknown keys (listing the valid ones) and values of the wrong type.
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in ctx.options if k not in names and k not in PASS_THROUGH)
        if unknown:
            raise ConfigError(
                f"unknown LQS option(s) {', '.join(unknown)}; valid options: "
                f"{', '.join(sorted(list(names) + list(PASS_THROUGH)))}"
            )
        values: dict[str, Any] = {
            "seed": ctx.seed,
            "device": ctx.device,
            "max_length": ctx.max_length,
            "batch_size": ctx.batch_size,
        }
        values.update({k: v for k, v in ctx.options.items() if k in names})
        return cls(**{k: _coerce(k, v, names[k].type) for k, v in values.items()})


_EXAMPLES = {"proxy_size": 1000, "chunk_size": 16}  # for options whose default (None) makes no example


def _default(name: str):
    value = {f.name: f.default for f in dataclasses.fields(LQSConfig)}[name]
    return _EXAMPLES.get(name, value) if value is None else value


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(
            f"LQS option {name}={value!r} must be an integer >= {low} (e.g. --set {name}={_default(name)})"
        )


def _coerce(name: str, value, annotation: str):
    """Values from the CLI arrive as strings; turn them into the field's type (validated later)."""
    if not isinstance(value, str) or "str" in annotation:
        return value
    text = value.strip().lower()
    if text in ("none", "null", ""):
        return None
    if annotation == "bool":
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"LQS option {name}={value!r} must be true or false")
    try:
        return float(text) if annotation == "float" else int(text)
    except ValueError:
        raise ConfigError(
            f"LQS option {name}={value!r} must be a number (e.g. --set {name}={_default(name)})"
        ) from None
