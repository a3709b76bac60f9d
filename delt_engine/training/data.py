"""What a training run reads: the ordered data, cut into batches in file order (the step or token
budget decides where the run ends), and the held-out sets and benchmark items it is evaluated on."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from typing import Optional

from . import evaluation
from ..errors import ConfigError, DataError
from .config import RunConfig, read_rows, read_texts


# ----------------------------------------------------------------------------------------- data
@dataclass
class OrderedData:
    """The ordered documents, in training order."""

    ids: list[str]
    texts: list[str]
    scores: Optional[list[Optional[float]]]  # None when no row has the score field


def load_ordered(config: RunConfig) -> OrderedData:
    """Read ``config.input`` in file order: ids (row number when absent), texts and optional scores."""
    rows = read_rows(config.input)
    if not rows:
        raise DataError(f"input file {config.input} has no rows; the ordered data must not be empty")
    texts = read_texts(rows, config.text_field, config.input, fallback=config.text_field)
    ids = [str(row.get("id", i)) for i, row in enumerate(rows)]
    scores = None
    if any(config.score_field in row for row in rows):
        scores = [row.get(config.score_field) for row in rows]
        scores = [float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None for s in scores]
    return OrderedData(ids, texts, scores)


class SequentialBatches:
    """The i-th batch is the i-th slice of the ordering; every epoch replays the same order."""

    def __init__(self, n_rows: int, batch_size: int, row_tokens: list[int]):
        self.n_rows, self.batch_size = n_rows, batch_size
        self.per_epoch = math.ceil(n_rows / batch_size)
        self.tokens = [sum(row_tokens[s:s + batch_size]) for s in range(0, n_rows, batch_size)]
        self.cum_tokens = list(itertools.accumulate(self.tokens))

    def rows(self, index: int) -> tuple[int, slice]:
        """(epoch, row slice) of the batch at 0-based step ``index``."""
        epoch, b = divmod(index, self.per_epoch)
        return epoch, slice(b * self.batch_size, min((b + 1) * self.batch_size, self.n_rows))

    def batch_tokens(self, index: int) -> int:
        return self.tokens[index % self.per_epoch]


def plan_steps(batches: SequentialBatches, config: RunConfig) -> int:
    """Total optimizer steps from ``steps`` / ``tokens`` (first step whose cumulative real tokens reach
    the budget) / ``epochs``. Raises ConfigError when the budget needs more than ``epochs`` passes."""
    available = config.epochs * batches.per_epoch
    if config.steps is not None:
        total = config.steps
        if total > available:
            raise ConfigError(f"steps={total} needs {math.ceil(total / batches.per_epoch)} passes over the "
                              f"{batches.per_epoch} batches of the input but epochs={config.epochs}; raise epochs")
        return total
    if config.tokens is None:
        return available
    per_epoch_tokens = batches.cum_tokens[-1]
    full_epochs = (config.tokens - 1) // per_epoch_tokens
    rest = config.tokens - full_epochs * per_epoch_tokens
    if full_epochs + 1 > config.epochs:
        raise ConfigError(f"tokens={config.tokens} needs {full_epochs + 1} passes over the input "
                          f"({per_epoch_tokens} tokens each) but epochs={config.epochs}; raise epochs")
    return full_epochs * batches.per_epoch + bisect.bisect_left(batches.cum_tokens, rest) + 1


# ----------------------------------------------------------------------------------------- eval
@dataclass
class EvalSets:
    validation: object = None  # Samples
    target: object = None  # Samples
    items: list = field(default_factory=list)  # benchmark Items, capped per task


def load_eval_sets(config: RunConfig, tokenizer) -> EvalSets:
    """Held-out sets (first ``eval_max_samples`` rows) and benchmark items (first N per task)."""
    from ..data.tokenizer import encode

    sets = EvalSets()
    for name in ("validation", "target"):
        path = getattr(config, name)
        if path:
            rows = read_rows(path, what=name)[: config.eval_max_samples]
            if not rows:
                raise DataError(f"{name} file {path} has no rows; give held-out texts or leave {name} unset")
            texts = read_texts(rows, config.text_field, path)
            setattr(sets, name, encode(texts, [str(i) for i in range(len(texts))], tokenizer, config.max_length))
    if config.benchmark:
        per_task: dict[str, int] = {}
        for item in evaluation.load_benchmark(config.benchmark):
            per_task[item.task] = per_task.get(item.task, 0) + 1
            if per_task[item.task] <= config.eval_max_samples:
                sets.items.append(item)
    return sets


def run_eval(model, tokenizer, sets: EvalSets, config: RunConfig, device, amp) -> dict:
    """One eval record's metrics: val_loss, target_loss, bench_acc(_norm) and per-task bench results."""
    bs = config.eval_batch_size
    out = {"val_loss": None, "target_loss": None, "bench_acc": None, "bench_acc_norm": None, "bench": {}}
    if sets.validation is not None:
        out["val_loss"] = evaluation.lm_loss(model, sets.validation, bs, device, amp)
    if sets.target is not None:
        out["target_loss"] = evaluation.lm_loss(model, sets.target, bs, device, amp)
    if sets.items:
        res = evaluation.evaluate(model, tokenizer, sets.items, device, bs, autocast_dtype=amp)
        out.update(bench_acc=res["acc"], bench_acc_norm=res["acc_norm"],
                   bench={t: {"acc": r["acc"], "acc_norm": r["acc_norm"]} for t, r in res["tasks"].items()})
    return out
