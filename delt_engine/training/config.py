"""RunConfig: everything one training run needs, validated up front, stored as the run's config.json;
and readers for the files it names (ordered data, held-out sets: JSONL or Parquet).

A run trains a causal LM on ordered data exactly in file order (delt-method.md section 1: "training
must then consume the data in exactly that order"), as in the paper's set-up (section 5): AdamW,
cosine schedule with linear warm-up, minimum LR = 10% of peak.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from ..models.device import DEVICE_CHOICES

# Trackers a run can also log to (jobs/trackers.py); metrics.jsonl is written either way.
REPORT_TO_CHOICES = ("tensorboard", "mlflow")


@dataclass(frozen=True)
class RunConfig:
    """One training run.

    Budget: ``steps`` (optimizer steps) or ``tokens`` (stop once the real, non-padding tokens seen
    reach it); with neither, the run is ``epochs`` passes over the ordered data. Every epoch replays
    the same ordering (no reshuffle), so a curriculum repeats; a budget larger than ``epochs`` passes
    is an error (raise ``epochs``), unless ``epochs`` is None: then the step or token budget alone
    decides how many passes there are.

    Evaluation: every ``eval_every`` steps and always at the end, plus once before the first step
    (step 0, the untrained model: every ordering of one seed starts from that same point) when
    ``eval_at_start`` and ``eval_every`` is set. ``validation`` (held-out general
    text) gives ``val_loss``, ``target`` gives ``target_loss``, ``benchmark`` (multiple-choice JSONL)
    gives ``bench_acc``/``bench_acc_norm``; whatever is not given is reported as null (a held-out split
    is never carved out of the ordered data, because that would change what the run trains on).
    Relative paths resolve against the working directory of the training process.

    Evaluation by group: with ``group_by`` (a metadata column of the validation file, e.g. the demo's
    ``kind``), every eval record also carries ``group_loss`` = {column: {value: loss}}: the
    token-weighted mean loss of that group's validation documents, from the same forward pass as
    ``val_loss`` (so the groups' losses, weighted by their token counts, average back to it). The
    target file gets ``target_group_loss`` likewise when it has the column. Groups with fewer than
    ``group_min_docs`` evaluated documents are pooled as ``"other"`` (a real group named "other" joins
    that pool); documents without a value form the group ``"(missing)"``. Counts per group go to
    the summary (``groups``).

    ``report_to``: trackers that also receive every metrics record while the run goes, e.g.
    ``("tensorboard", "mlflow")`` (a comma-separated string is accepted too): TensorBoard event files in
    ``<run_dir>/tb/`` and one MLflow run in a file store (jobs/trackers.py says where). They need the
    ``trackers`` extra; metrics.jsonl stays the record of the run.

    ``save_model``: when the run completes, the trained model and its tokenizer are saved to
    ``<run_dir>/model/`` (safetensors, loadable with ``model=<that folder>``, e.g. to score with it).

    Rows: with ``packing`` the documents are concatenated in their training order (each ends with EOS)
    and cut into rows of exactly ``max_length`` tokens, as the paper trains: no padding (except in the
    very last row), no truncation (a long document continues in the next row), every batch the same
    size. Attention is causal over the whole row, across document boundaries (as the paper packs,
    without per-document masks). Without it every row is one document, truncated to ``max_length``
    and padded to the longest row of its batch. ``None`` takes the preset's default
    (``PACKED_BY_DEFAULT``: packed, except ``tiny-test``).

    Tokenizer: ``None`` trains a byte-level BPE tokenizer on the input texts (cached under
    ``cache_dir``); it does not depend on document order, so every ordering of one corpus shares it.
    Runs on different selections of a corpus get different tokenizers and their losses are then not
    comparable: give them one ``tokenizer`` directory (e.g. trained on the full corpus).
    """

    input: str
    text_field: str = "text"
    score_field: str = "score"
    model: str = "cpu-demo"
    tokenizer: str | None = None
    vocab_size: int = 2048
    cache_dir: str | None = None
    max_length: int = 128
    batch_size: int = 16
    packing: bool | None = None  # None: the preset's default (PACKED_BY_DEFAULT)
    steps: int | None = None
    tokens: int | None = None
    epochs: int | None = 1
    lr: float = 3e-3
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    bf16: bool | None = None  # None: bf16 autocast on CUDA, full fp32 elsewhere
    compile: bool | None = None  # torch.compile the training forward+backward; None: see uses_compile
    log_every: int = 1
    eval_every: int | None = None
    eval_at_start: bool = True
    save_model: bool = False
    validation: str | None = None
    target: str | None = None
    benchmark: str | None = None
    eval_max_samples: int = 256  # per held-out set, and per benchmark task
    eval_batch_size: int = 32
    group_by: str | None = None
    group_min_docs: int = 5  # smaller groups are pooled as "other"
    report_to: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        _check_text("input", self.input)
        for name in ("text_field", "score_field", "model"):
            _check_text(name, getattr(self, name))
        for name in ("tokenizer", "cache_dir", "validation", "target", "benchmark"):
            if getattr(self, name) is not None:
                _check_text(name, getattr(self, name))
        _check_int("vocab_size", self.vocab_size, 300, 1_000_000)
        _check_int("max_length", self.max_length, 2, 1_000_000)
        _check_int("batch_size", self.batch_size, 1, 1_000_000)
        _check_int("steps", self.steps, 1, 10**12, optional=True)
        _check_int("tokens", self.tokens, 1, 10**15, optional=True)
        if self.steps is not None and self.tokens is not None:
            raise ConfigError(
                f"steps={self.steps} and tokens={self.tokens} were both given; "
                "give one budget (steps or tokens), or neither for whole epochs"
            )
        _check_int("epochs", self.epochs, 1, 1_000_000, optional=True)
        if self.epochs is None and self.steps is None and self.tokens is None:
            raise ConfigError(
                "epochs=null needs a steps or tokens budget (it means: as many passes as the budget "
                "needs); give one, or epochs >= 1"
            )
        _check_float("lr", self.lr, 0.0, 10.0, low_open=True)
        _check_float("warmup_frac", self.warmup_frac, 0.0, 1.0, high_open=True)
        _check_float("min_lr_frac", self.min_lr_frac, 0.0, 1.0)
        _check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise ConfigError(f"betas={self.betas!r} must be two numbers in [0, 1), e.g. [0.9, 0.95]")
        for i, b in enumerate(self.betas):
            _check_float(f"betas[{i}]", b, 0.0, 1.0, high_open=True)
        _check_float("grad_clip", self.grad_clip, 0.0, 1e6, low_open=True, optional=True)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if not isinstance(self.device, str) or self.device.split(":")[0].lower() not in DEVICE_CHOICES:
            raise ConfigError(f"device={self.device!r} is not known; use one of {', '.join(DEVICE_CHOICES)}")
        if self.bf16 is not None and not isinstance(self.bf16, bool):
            raise ConfigError(f"bf16={self.bf16!r} must be true, false or null (auto: on for CUDA)")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise ConfigError(
                f"compile={self.compile!r} must be true, false or null (auto: long CUDA runs on packed rows)"
            )
        if self.packing is not None and not isinstance(self.packing, bool):
            raise ConfigError(
                f"packing={self.packing!r} must be true (packed rows), false (one document "
                "per row) or null (the preset's default)"
            )
        _check_int("log_every", self.log_every, 1, 10**12)
        _check_int("eval_every", self.eval_every, 1, 10**12, optional=True)
        for name in ("eval_at_start", "save_model"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} must be true or false")
        _check_int("eval_max_samples", self.eval_max_samples, 1, 10**9)
        _check_int("eval_batch_size", self.eval_batch_size, 1, 1_000_000)
        if self.group_by is not None:
            _check_text("group_by", self.group_by)
            if "." in self.group_by:  # records are flattened as group_loss.<column>.<value>
                raise ConfigError(
                    f"group_by={self.group_by!r}: a column name with '.' cannot be grouped by; "
                    "rename the column (e.g. with '_')"
                )
        _check_int("group_min_docs", self.group_min_docs, 1, 10**9)
        object.__setattr__(self, "report_to", _check_report_to(self.report_to))
        if not isinstance(self.provenance, dict):
            raise ConfigError(f"provenance={self.provenance!r} must be a dict (corpus_hash, scorer, ordering, ...)")
        try:
            json.dumps(self.provenance)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"provenance must be JSON-serialisable (strings, numbers, lists, dicts): {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the run's config.json)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["report_to"] = list(self.report_to)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict such as config.json; unknown keys are an error (likely a typo)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown run config key(s) {', '.join(unknown)}; allowed keys are {', '.join(sorted(known))}"
            )
        if "input" not in data:
            raise ConfigError("run config has no 'input' (path of the ordered data JSONL/Parquet)")
        return cls(**data)


def _check_report_to(value: Any) -> tuple[str, ...]:
    """``report_to`` as a tuple of known tracker names: a list/tuple, or a string "tensorboard,mlflow"
    ("" or "none": no tracker)."""
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'report_to={value!r} must be a list of tracker names, e.g. ["tensorboard", "mlflow"]')
    unknown = [v for v in value if v not in REPORT_TO_CHOICES]
    if unknown:
        raise ConfigError(f"report_to: unknown tracker {unknown[0]!r}; use any of {', '.join(REPORT_TO_CHOICES)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"report_to={list(value)!r} names a tracker twice; name each once")
    return tuple(value)


# Row format of each preset when ``packing`` is None (bench/train_speed.py, docs/benchmarks.md): packed
# rows train ~2x the tokens per second of padded document rows on the shuffled demo and give every step
# of every ordering the same number of tokens; tiny-test (the unit-test preset) keeps one document per
# row so that tests can state batches as documents. Model directories are packed.
PACKED_BY_DEFAULT: dict[str, bool] = {
    "tiny-test": False,
    "cpu-demo": True,
    "cpu-small": True,
    "gpu-30m": True,
    "gpu-160m": True,
}


def uses_packing(config: RunConfig) -> bool:
    """Whether ``config`` trains on packed rows: its ``packing``, else its preset's default."""
    if config.packing is not None:
        return config.packing
    return PACKED_BY_DEFAULT.get(config.model, True)


# torch.compile pays back its compile time (tens of seconds) only over many steps of one shape.
COMPILE_MIN_STEPS = 300


def uses_compile(config: RunConfig, device_type: str, total_steps: int) -> bool:
    """Whether the training step is compiled: ``compile`` when set, else on for CUDA runs of at least
    ``COMPILE_MIN_STEPS`` steps on packed rows (one shape every step); never by default on a CPU, where
    the compile time is not paid back on demo-sized runs."""
    if config.compile is not None:
        return config.compile
    return device_type == "cuda" and uses_packing(config) and total_steps >= COMPILE_MIN_STEPS


# Fields that must be equal for runs to train together in one stacked model (training/ensemble.py); the
# comparison id keeps runs of different comparisons apart. Data, seed, budget, lr, clipping, evaluation differ.
GROUP_FIELDS = (
    "model",
    "tokenizer",
    "vocab_size",
    "device",
    "bf16",
    "max_length",
    "batch_size",
    "betas",
    "weight_decay",
)


def group_key(config: RunConfig) -> tuple:
    """Runs whose keys are equal can train together (``jobs.train_job.train_group``): same comparison,
    model, tokenizer, device, precision, row format and shape, and optimiser constants."""
    values = tuple(repr(getattr(config, name)) for name in GROUP_FIELDS)
    return (str(config.provenance.get("comparison")), uses_packing(config)) + values


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}={value!r} must be a non-empty string")


def _check_int(name: str, value: Any, low: int, high: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        extra = " or null" if optional else ""
        raise ConfigError(f"{name}={value!r} is out of range; use an integer in [{low}, {high}]{extra}")


def _check_float(
    name: str,
    value: Any,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        extra = " or null" if optional else ""
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        problem = "is out of range" if number else "is not a number"
        raise ConfigError(f"{name}={value!r} {problem}; use a number in {lo}{low}, {high}{hi}{extra}")
