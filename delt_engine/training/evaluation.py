"""Zero-shot multiple-choice evaluation by log-likelihood, as lm-evaluation-harness does it
(delt-method.md section 5), plus held-out LM loss for validation and target sets.

Scoring one item: every choice is a continuation of the context; its log-likelihood is the sum of the
log-probabilities of the continuation's tokens given the context (and the earlier continuation tokens).
- ``acc``: the choice with the highest log-likelihood is the answer.
- ``acc_norm``: the highest log-likelihood divided by the choice's length in characters, as lm-eval's
  ``acc_norm`` (the choice without its delimiter; characters and UTF-8 bytes agree on ASCII text).
Requests are the ones lm-eval builds for a ``multiple_choice`` task with ``doc_to_text: context``,
``doc_to_choice: choices`` and ``target_delimiter: " "`` (what ``lm_eval_bridge.export_task`` writes),
so both give the same log-likelihood for every choice:
- the continuation is ``" " + choice``, also after an empty context;
- trailing whitespace of the context moves to the front of the continuation ("Q:\n" + " A" is scored
  as "Q:" | "\n A"); a context should therefore not end in a space;
- a non-empty context is encoded with the tokenizer's default special tokens, then context +
  continuation as one string; the continuation tokens are what follows the context's tokens;
- an empty context is replaced by the prefix token (BOS, else EOS) and the continuation is encoded
  alone without special tokens (if it already starts with the prefix token, that token is the context).
Sequences longer than ``max_length`` + 1 are cut from the left. Tasks are reported separately and as
their unweighted mean.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from ..errors import DataError
from ..fileio import json_object_line
from ..models.losses import token_losses
from ..data.tokenizer import Samples, trim_batch
from .config import RunConfig
from .data import read_rows, read_texts


@dataclass(frozen=True)
class Item:
    """One multiple-choice question."""

    id: str
    task: str
    context: str
    choices: tuple[str, ...]
    answer: int


def load_benchmark(path: str | Path) -> list[Item]:
    """Read a benchmark JSONL file: one {"id"?, "task", "context" (or "question"), "choices", "answer"}
    per line. A missing ``task`` defaults to the file's stem; a missing ``id`` to the line number.

    Raises:
        DataError naming the file and line for malformed JSON, missing fields, fewer than 2 choices or
        an answer index out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"benchmark file {path} does not exist; give a JSONL file of multiple-choice items")
    items: list[Item] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                items.append(_parse_item(line, f"{path}:{line_no}", str(line_no), path.stem))
    if not items:
        raise DataError(f"benchmark file {path} has no items; add JSON lines with context, choices, answer")
    return items


def _parse_item(line: str, where: str, default_id: str, default_task: str) -> Item:
    rec = json_object_line(line, where, "context, choices and answer")
    context = rec.get("context", rec.get("question"))
    if not isinstance(context, str):
        raise DataError(f"{where}: needs a string 'context' (or 'question'); use \"\" for none")
    choices = rec.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        raise DataError(f"{where}: 'choices' must be a list of at least 2 strings, got {choices!r}")
    if not all(isinstance(c, str) and c for c in choices):
        raise DataError(f"{where}: every choice must be a non-empty string, got {choices!r}")
    answer = rec.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: 'answer'={answer!r} must be an integer index in [0, {len(choices) - 1}]")
    task = rec.get("task", default_task)
    if not isinstance(task, str) or not task:
        raise DataError(f"{where}: 'task' must be a non-empty string, got {task!r}")
    return Item(str(rec.get("id", default_id)), task, context, tuple(choices), answer)


TARGET_DELIMITER = " "  # between context and choice, as lm-eval's default target_delimiter


def split_pair(context: str, choice: str) -> tuple[str, str]:
    """The (context, continuation) strings scored for one choice (lm-eval's rules; see module doc)."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + TARGET_DELIMITER + choice


def prefix_token_id(tokenizer) -> int:
    """The token that stands in for an empty context: BOS when the tokenizer has one, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_pair(tokenizer, context: str, choice: str) -> tuple[list[int], list[int]]:
    """Context and continuation token ids for one choice, as lm-eval's Hugging Face backend encodes them.

    Raises:
        DataError when the choice adds no token of its own (it merged into the context's last token).
    """
    ctx, cont = split_pair(context, choice)
    if not ctx:
        prefix = prefix_token_id(tokenizer)
        cont_ids = list(tokenizer(cont, add_special_tokens=False)["input_ids"])
        ctx_ids, cont_ids = (cont_ids[:1], cont_ids[1:]) if cont_ids[0] == prefix else ([prefix], cont_ids)
    else:
        ctx_ids = _encode_default(tokenizer, ctx)
        cont_ids = _encode_default(tokenizer, ctx + cont)[len(ctx_ids):]
    if not cont_ids:
        raise DataError(f"choice {choice!r} after context {context!r} encodes to no tokens of its own")
    return ctx_ids, cont_ids


def _encode_default(tokenizer, text: str) -> list[int]:
    """The tokenizer's default encoding (special tokens as it adds them), except that a text already
    starting with the prefix token's string gets no second one (lm-eval's rule)."""
    prefix = tokenizer.decode([prefix_token_id(tokenizer)])
    specials = {"add_special_tokens": False} if prefix and text.startswith(prefix) else {}
    return list(tokenizer(text, **specials)["input_ids"])


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def encode_requests(items: Sequence[Item], tokenizer, max_length: int) -> list:
    """Per (item, choice): input token ids and how many of the last positions are scored."""
    requests = []
    for i, item in enumerate(items):
        for j, choice in enumerate(item.choices):
            ctx_ids, cont_ids = encode_pair(tokenizer, item.context, choice)
            full = (ctx_ids + cont_ids)[-(max_length + 1):]
            n_cont = min(len(cont_ids), len(full) - 1)  # a continuation longer than the window is cut too
            requests.append((i, j, full, n_cont))
    return requests


@torch.inference_mode()
def _score_requests(model, requests, device, batch_size: int, pad_id: int, autocast_dtype) -> list[float]:
    """Summed continuation log-likelihood of every request, batched longest-first to limit padding."""
    order = sorted(range(len(requests)), key=lambda k: -len(requests[k][2]))
    scores = [0.0] * len(requests)
    for start in range(0, len(order), batch_size):
        chunk = [requests[k] for k in order[start:start + batch_size]]
        width = max(len(r[2]) for r in chunk) - 1
        inputs = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        targets = torch.zeros((len(chunk), width), dtype=torch.long)
        scored = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, (_, _, full, n_cont) in enumerate(chunk):
            n = len(full) - 1
            inputs[row, :n] = torch.tensor(full[:-1])
            targets[row, :n] = torch.tensor(full[1:])
            scored[row, n - n_cont:n] = True
        with autocast_context(device, autocast_dtype):
            logits = model(input_ids=inputs.to(device)).logits
        logits = logits.float()
        picked = logits.gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
        logp = (picked - torch.logsumexp(logits, dim=-1)) * scored.to(device)
        for k, value in zip(order[start:start + batch_size], logp.sum(dim=1).tolist()):
            scores[k] = value
    return scores


def evaluate(model, tokenizer, items: Sequence[Item], device: str | torch.device = "cpu", batch_size: int = 32,
             max_length: int | None = None, autocast_dtype: torch.dtype | None = None,
             requests: list | None = None) -> dict:
    """Multiple-choice accuracy of ``model`` on ``items`` (lm-eval style log-likelihood scoring).

    Args:
        items: from ``load_benchmark``.
        max_length: longest input window; default the model's ``max_position_embeddings``.
        autocast_dtype: e.g. ``torch.bfloat16`` on CUDA; log-probabilities are summed in float32.
        requests: the items already encoded for this tokenizer and ``max_length`` (``encode_requests``),
            so that a run evaluated many times tokenizes its benchmark once.

    Returns:
        {"acc", "acc_norm" (unweighted means over tasks), "n", "tasks": {task: {"acc", "acc_norm", "n"}},
         "loglik": [[per-choice log-likelihood] per item]}.
    """
    if not items:
        raise DataError("no benchmark items to evaluate; check the benchmark file")
    device = torch.device(device)
    max_length = max_length or int(getattr(model.config, "max_position_embeddings", 2048))
    if requests is None:
        requests = encode_requests(items, tokenizer, max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        flat = _score_requests(model, requests, device, batch_size, pad, autocast_dtype)
    finally:
        model.train(was_training)
    loglik: list[list[float]] = [[] for _ in items]
    for (i, _, _, _), value in zip(requests, flat):
        loglik[i].append(value)
    return _accuracies(items, loglik)


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda k: (values[k], -k))  # first index wins ties, as np.argmax


def _accuracies(items: Sequence[Item], loglik: list[list[float]]) -> dict:
    per_task: dict[str, list[tuple[bool, bool]]] = {}
    for item, ll in zip(items, loglik):
        normed = [v / len(c) for v, c in zip(ll, item.choices)]  # characters, as lm-eval's acc_norm
        per_task.setdefault(item.task, []).append((_argmax(ll) == item.answer, _argmax(normed) == item.answer))
    tasks = {t: {"acc": sum(a for a, _ in r) / len(r), "acc_norm": sum(b for _, b in r) / len(r), "n": len(r)}
             for t, r in per_task.items()}
    return {"acc": sum(t["acc"] for t in tasks.values()) / len(tasks),
            "acc_norm": sum(t["acc_norm"] for t in tasks.values()) / len(tasks),
            "n": len(items), "tasks": tasks, "loglik": loglik}


@torch.inference_mode()
def lm_loss(model, samples: Samples, batch_size: int = 32, device: str | torch.device | None = None,
            autocast_dtype: torch.dtype | None = None) -> float:
    """Mean next-token loss over all real tokens of ``samples`` (held-out validation/target loss).

    Token-weighted over the whole set (not a mean of per-sample means), padding excluded. Samples are
    batched longest first, so that each batch is trimmed to lengths close to its own (about half the
    padding of file-order batches on the demo); the result is the same sum in another order.
    """
    if len(samples) == 0:
        raise DataError("no held-out samples to evaluate")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    order = torch.argsort(samples.lengths, descending=True, stable=True)
    try:
        for start in range(0, len(samples), batch_size):
            rows = order[start:start + batch_size]
            ids, mask = trim_batch(samples.input_ids[rows], samples.attention_mask[rows])
            ids, mask = ids.to(device), mask.to(device)
            with autocast_context(device, autocast_dtype):
                logits = model(input_ids=ids).logits
            losses, counted = token_losses(logits, ids, mask)
            total += float(losses.sum())
            count += float(counted.sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise DataError("held-out samples have no token pairs to score (every sample is one token long)")
    return total / count


# ----------------------------------------------------------------------------------------- a run's evaluation
@dataclass
class EvalSets:
    validation: object = None  # Samples
    target: object = None  # Samples
    items: list = field(default_factory=list)  # benchmark Items, capped per task
    encoded: dict = field(default_factory=dict)  # max_length -> the items' requests (encode_requests), once


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
        for item in load_benchmark(config.benchmark):
            per_task[item.task] = per_task.get(item.task, 0) + 1
            if per_task[item.task] <= config.eval_max_samples:
                sets.items.append(item)
    return sets


def run_eval(model, tokenizer, sets: EvalSets, config: RunConfig, device, amp) -> dict:
    """One eval record's metrics: val_loss, target_loss, bench_acc(_norm) and per-task bench results."""
    bs = config.eval_batch_size
    out = {"val_loss": None, "target_loss": None, "bench_acc": None, "bench_acc_norm": None, "bench": {}}
    if sets.validation is not None:
        out["val_loss"] = lm_loss(model, sets.validation, bs, device, amp)
    if sets.target is not None:
        out["target_loss"] = lm_loss(model, sets.target, bs, device, amp)
    if sets.items:
        max_length = int(getattr(model.config, "max_position_embeddings", 2048))
        if max_length not in sets.encoded:
            sets.encoded[max_length] = encode_requests(sets.items, tokenizer, max_length)
        res = evaluate(model, tokenizer, sets.items, device, bs, autocast_dtype=amp,
                       requests=sets.encoded[max_length])
        out.update(bench_acc=res["acc"], bench_acc_norm=res["acc_norm"],
                   bench={t: {"acc": r["acc"], "acc_norm": r["acc_norm"]} for t, r in res["tasks"].items()})
    return out
