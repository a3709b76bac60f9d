"""Scorers: one function per method, a name -> ScorerInfo registry (delt-method.md sections 1-2).

A scorer takes a ``ScoreContext`` and returns a polars DataFrame with an ``id`` column (Utf8, one row
per scored sample, every corpus sample unless the method scores a subset), a ``score`` column
(Float64) and optional component columns (e.g. LQS ``quality``, ``learnability``, ``pds``).
Direction: "higher_better" (keep/late = high) or "higher_harder" (e.g. perplexity).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..progress import ProgressFn, StopFn


@dataclass
class ScoreContext:
    """Everything a scorer may need; heavy objects are built lazily by the caller's helpers."""

    frame: Any  # polars DataFrame: id, text, metadata
    model: str = "cpu-demo"  # preset name or local model directory
    tokenizer: Any = None  # PreTrainedTokenizerFast (trained on the corpus when None; see baselines)
    device: str = "auto"
    seed: int = 0
    max_length: int = 128
    batch_size: int = 16
    target_texts: list[str] | None = None  # LQS/PDS target set
    options: dict[str, Any] = field(default_factory=dict)  # method-specific knobs
    cache_dir: str | None = None  # workspace cache (tokenizers)
    on_progress: ProgressFn = None
    should_stop: StopFn = None


COSTS = ("text", "forward", "gradient")


@dataclass(frozen=True)
class ScorerInfo:
    """One scorer, as the CLI's choices, the app's widgets, spec validation and the cost estimate see it.

    Attributes:
        name: the method name (``score --method NAME``).
        direction: "higher_better" (keep / place late the high scores) or "higher_harder" (e.g. perplexity).
        description: one line for menus and ``--help``.
        needs_model: it runs a proxy model (the app shows the model settings).
        module, function: where the scorer lives, imported on first use.
        needs_target: it needs a clean target set (LQS, PDS).
        cost: how ``cost.estimate`` prices it: "text" (one pass over the texts, no model), "forward"
            (a forward pass per sample) or "gradient" (LQS/PDS: a proxy trajectory and per-sample gradients).
        options: the ``options`` keys it reads (``check_options`` refuses others), or None when the
            scorer checks its options itself (LQS/PDS: ``LQSConfig.from_options``).
    """

    name: str
    direction: str
    description: str
    needs_model: bool
    module: str
    function: str
    needs_target: bool = False
    cost: str = "text"
    options: tuple[str, ...] | None = ()

    def __post_init__(self):
        if self.direction not in ("higher_better", "higher_harder"):
            raise ValueError(f"scorer {self.name!r}: direction {self.direction!r} is not higher_better/higher_harder")
        if self.cost not in COSTS:
            raise ValueError(f"scorer {self.name!r}: cost {self.cost!r} is not one of {', '.join(COSTS)}")

    def load(self) -> Callable[[ScoreContext], Any]:
        return getattr(importlib.import_module(self.module), self.function)


SCORERS: dict[str, ScorerInfo] = {}

# A scoring job's config.json: these keys with these defaults, plus "input" and "method" (and optionally
# "methods": several scorers run by one job, see jobs/score_job.py).
JOB_DEFAULTS: dict[str, Any] = {
    "text_field": "text",
    "model": "cpu-demo",
    "tokenizer": None,
    "device": "auto",
    "seed": 0,
    "max_length": 128,
    "batch_size": 16,
    "target": None,
    "options": {},
    "cache_dir": None,
}


def register(info: ScorerInfo) -> None:
    SCORERS[info.name] = info


def get_scorer(name: str) -> ScorerInfo:
    if name not in SCORERS:
        raise ConfigError(f"scoring method {name!r} is not known; use one of {', '.join(sorted(SCORERS))}")
    return SCORERS[name]


def check_options(method: str, options: dict) -> None:
    """ConfigError naming the keys of ``options`` that scorer ``method`` does not read, and those it does."""
    info = get_scorer(method)
    if info.options is None:
        return
    unknown = sorted(str(k) for k in options if k not in info.options)
    if unknown:
        valid = ", ".join(info.options) if info.options else "none"
        raise ConfigError(f"unknown {method} option(s) {', '.join(unknown)}; valid options: {valid}")


def score(method: str, ctx: ScoreContext):
    """Run scorer ``method`` on ``ctx`` and return its scores table (id, score, components)."""
    return get_scorer(method).load()(ctx)


# Built-in scorers; modules are imported lazily by ScorerInfo.load.
for _info in (
    ScorerInfo(
        "random",
        "higher_better",
        "seeded uniform random scores (a control)",
        False,
        "delt_engine.scoring.baselines",
        "score_random",
    ),
    ScorerInfo(
        "length",
        "higher_harder",
        "number of tokens in the sample",
        False,
        "delt_engine.scoring.baselines",
        "score_length",
        options=("vocab_size",),
    ),
    ScorerInfo(
        "compression",
        "higher_better",
        "gzip compression ratio of the text (low = repetitive)",
        False,
        "delt_engine.scoring.baselines",
        "score_compression",
    ),
    ScorerInfo(
        "perplexity",
        "higher_harder",
        "perplexity under the proxy model",
        True,
        "delt_engine.scoring.baselines",
        "score_perplexity",
        cost="forward",
        options=("warmup_steps", "warmup_lr", "bf16", "attn_implementation", "vocab_size"),
    ),
    ScorerInfo(
        "lqs",
        "higher_better",
        "Learnability-Quality Score (DELT): gradient consistency with a target set",
        True,
        "delt_engine.scoring.lqs",
        "score_lqs",
        needs_target=True,
        cost="gradient",
        options=None,
    ),
    ScorerInfo(
        "pds",
        "higher_better",
        "PDS: un-normalised LQS numerator (Gu et al. 2025)",
        True,
        "delt_engine.scoring.lqs",
        "score_pds",
        needs_target=True,
        cost="gradient",
        options=None,
    ),
):
    register(_info)
