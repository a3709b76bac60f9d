"""Zero-shot multiple-choice evaluation by log-likelihood, as lm-evaluation-harness does it
(delt-method.md section 5), plus held-out LM loss for validation and target sets.

Scoring one item: every choice is a continuation of the context; its log-likelihood is the sum of the
log-probabilities of the continuation's tokens given the context (and the earlier continuation tokens).
- ``acc``: the choice with the highest log-likelihood is the answer.
- ``acc_norm``: the highest log-likelihood divided by the choice's length in characters, as lm-eval's
  ``acc_norm`` (the choice without its delimiter; characters and UTF-8 bytes agree on ASCII text).
Requests are the ones lm-eval builds for a ``multiple_choice`` task with ``doc_to_text: context``,
``doc_to_choice: choices`` and ``target_delimiter: " "`` (what ``harness.export_task`` writes),
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
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.benchmark import Item, load_benchmark
from ..data.tokenizer import Samples, trim_batch
from ..errors import DataError
from ..models.losses import token_losses
from .config import RunConfig
from .data import read_rows, read_texts

TARGET_DELIMITER = " "  # between context and choice, as lm-eval's default target_delimiter


def split_pair(context: str, choice: str) -> tuple[str, str]:
    """The (context, continuation) strings scored for one choice (lm-eval's rules; see module doc)."""
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + TARGET_DELIMITER + choice


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
        cont_ids = _encode_default(tokenizer, ctx + cont)[len(ctx_ids) :]
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
            full = (ctx_ids + cont_ids)[-(max_length + 1) :]
            n_cont = min(len(cont_ids), len(full) - 1)  # a continuation longer than the window is cut too
            requests.append((i, j, full, n_cont))
    return requests


@torch.inference_mode()
def _score_requests(model, requests, device, batch_size: int, pad_id: int, autocast_dtype) -> list[float]:
    """Summed continuation log-likelihood of every request, batched longest-first to limit padding."""
    order = sorted(range(len(requests)), key=lambda k: -len(requests[k][2]))
    scores = [0.0] * len(requests)
    for start in range(0, len(order), batch_size):
        chunk = [requests[k] for k in order[start : start + batch_size]]
        width = max(len(r[2]) for r in chunk) - 1
        inputs = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        targets = torch.zeros((len(chunk), width), dtype=torch.long)
        scored = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, (_, _, full, n_cont) in enumerate(chunk):
            n = len(full) - 1
            inputs[row, :n] = torch.tensor(full[:-1])
            targets[row, :n] = torch.tensor(full[1:])
            scored[row, n - n_cont : n] = True
        with autocast_context(device, autocast_dtype):
            logits = model(input_ids=inputs.to(device)).logits
        logits = logits.float()
        picked = logits.gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
        logp = (picked - torch.logsumexp(logits, dim=-1)) * scored.to(device)
        for k, value in zip(order[start : start + batch_size], logp.sum(dim=1).tolist()):
            scores[k] = value
    return scores


def evaluate(
    model,
    tokenizer,
    items: Sequence[Item],
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    max_length: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    requests: list | None = None,
) -> dict:
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
    tasks = {
        t: {"acc": sum(a for a, _ in r) / len(r), "acc_norm": sum(b for _, b in r) / len(r), "n": len(r)}
        for t, r in per_task.items()
    }
    return {
        "acc": sum(t["acc"] for t in tasks.values()) / len(tasks),
        "acc_norm": sum(t["acc_norm"] for t in tasks.values()) / len(tasks),
        "n": len(items),
        "tasks": tasks,
        "loglik": loglik,
    }


@dataclass(frozen=True)
class HeldOutLosses:
    """One forward pass over a held-out set: each sample's summed next-token loss and the number of
    token pairs it counted (padding excluded), in sample order."""

    sums: np.ndarray  # float64 [N]
    counts: np.ndarray  # float64 [N]

    @property
    def mean(self) -> float:
        """Token-weighted mean loss over the whole set (not a mean of per-sample means)."""
        count = float(self.counts.sum())
        if count == 0:
            raise DataError("held-out samples have no token pairs to score (every sample is one token long)")
        return float(self.sums.sum()) / count


@torch.inference_mode()
def lm_losses(
    model,
    samples: Samples,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> HeldOutLosses:
    """Per-sample summed next-token loss and counted tokens of ``samples`` (one forward pass each).

    ``.mean`` is the held-out loss (``lm_loss``); ``group_means`` splits the same numbers by group.

    Samples are batched longest first, so that each batch is trimmed to lengths close to its own (about
    half the padding of file-order batches on the demo); the results come back in sample order.
    """
    if len(samples) == 0:
        raise DataError("no held-out samples to evaluate")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(samples), dtype=torch.float64)
    counts = torch.zeros(len(samples), dtype=torch.float64)
    order = torch.argsort(samples.lengths, descending=True, stable=True)
    try:
        for start in range(0, len(samples), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = trim_batch(samples.input_ids[rows], samples.attention_mask[rows])
            ids, mask = ids.to(device), mask.to(device)
            with autocast_context(device, autocast_dtype):
                logits = model(input_ids=ids).logits
            losses, counted = token_losses(logits, ids, mask)
            sums[rows] = losses.sum(dim=1).double().cpu()
            counts[rows] = counted.sum(dim=1).double().cpu()
    finally:
        model.train(was_training)
    return HeldOutLosses(sums.numpy(), counts.numpy())


def lm_loss(
    model,
    samples: Samples,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Mean next-token loss over all real tokens of ``samples`` (held-out validation/target loss).

    Token-weighted over the whole set (not a mean of per-sample means), padding excluded.
    """
    return lm_losses(model, samples, batch_size, device, autocast_dtype).mean


# ----------------------------------------------------------------------------------------- groups
OTHER = "other"


def pool_groups(labels: Sequence[str], min_docs: int) -> list[str]:
    """``labels`` with every group of fewer than ``min_docs`` documents renamed ``"other"``."""
    sizes: dict[str, int] = {}
    for label in labels:
        sizes[label] = sizes.get(label, 0) + 1
    return [label if sizes[label] >= min_docs else OTHER for label in labels]


def group_means(losses: HeldOutLosses, labels: Sequence[str]) -> dict[str, float | None]:
    """Token-weighted mean loss of each group's samples, groups sorted by name (None for a group with no
    token pairs). Weighted by ``group_tokens``, they average back to ``losses.mean``."""
    if len(labels) != len(losses.sums):
        raise DataError(f"{len(labels)} group labels for {len(losses.sums)} held-out samples")
    totals: dict[str, list[float]] = {}
    for label, loss, count in zip(labels, losses.sums.tolist(), losses.counts.tolist()):
        acc = totals.setdefault(label, [0.0, 0.0])
        acc[0] += loss
        acc[1] += count
    return {g: (s / c if c > 0 else None) for g, (s, c) in sorted(totals.items())}


def group_tokens(samples: Samples, labels: Sequence[str]) -> dict[str, int]:
    """Token pairs each group's samples count in the held-out loss (the weights of ``group_means``)."""
    pairs = samples.attention_mask[:, 1:].sum(dim=1).tolist()
    out: dict[str, int] = {}
    for label, n in zip(labels, pairs):
        out[label] = out.get(label, 0) + int(n)
    return out


def _group_labels(rows: list[dict], config: RunConfig, name: str, path) -> list[str] | None:
    """Pooled group labels of a held-out set's rows; None when the target file lacks the column.

    Raises:
        DataError: the validation file lacks the ``group_by`` column (the run was asked to group it).
    """
    from ..data.corpus import group_label

    column = config.group_by
    if not any(column in row for row in rows):
        if name == "target":
            return None
        raise DataError(
            f"{name} file {path} has no column {column!r} to evaluate by group; give a validation "
            f"file with that column, or pick another group_by (or none)"
        )
    return pool_groups([group_label(row.get(column)) for row in rows], config.group_min_docs)


# ----------------------------------------------------------------------------------------- a run's evaluation
@dataclass
class EvalSets:
    validation: object = None  # Samples
    target: object = None  # Samples
    items: list = field(default_factory=list)  # benchmark Items, capped per task
    validation_groups: list | None = None  # pooled group label per validation sample (group_by)
    target_groups: list | None = None
    validation_bytes: int = 0  # UTF-8 bytes of the tokens the held-out loss predicts (bits per byte)
    target_bytes: int = 0
    groups_info: dict = field(default_factory=dict)  # documents and token pairs per group, for the summary
    encoded: dict = field(default_factory=dict)  # max_length -> the items' requests (encode_requests), once


def load_eval_sets(config: RunConfig, tokenizer) -> EvalSets:
    """Held-out sets (``eval_max_samples`` rows spread evenly over each file, so a file that lists its
    kinds in blocks is still evaluated on all of them), their group labels when ``group_by`` is set,
    and benchmark items (first N per task)."""
    from ..data.tokenizer import encode

    sets = EvalSets()
    for name in ("validation", "target"):
        path = getattr(config, name)
        if path:
            rows = spread(read_rows(path, what=name), config.eval_max_samples)
            if not rows:
                raise DataError(f"{name} file {path} has no rows; give held-out texts or leave {name} unset")
            texts = read_texts(rows, config.text_field, path)
            samples = encode(texts, [str(i) for i in range(len(texts))], tokenizer, config.max_length)
            setattr(sets, name, samples)
            setattr(sets, f"{name}_bytes", predicted_bytes(samples, tokenizer))
            if config.group_by:
                _attach_groups(sets, name, rows, samples, config, path)
    if config.benchmark:
        per_task: dict[str, int] = {}
        for item in load_benchmark(config.benchmark):
            per_task[item.task] = per_task.get(item.task, 0) + 1
            if per_task[item.task] <= config.eval_max_samples:
                sets.items.append(item)
    return sets


def spread(rows: list, n: int) -> list:
    """``n`` of ``rows`` at evenly spaced positions, in file order (all of them when there are few enough)."""
    if len(rows) <= n:
        return rows
    return [rows[(i * len(rows)) // n] for i in range(n)]


def _attach_groups(sets: EvalSets, name: str, rows: list[dict], samples, config: RunConfig, path) -> None:
    labels = _group_labels(rows, config, name, path)
    sets.groups_info.update(group_by=config.group_by, min_docs=config.group_min_docs)
    if labels is None:
        sets.groups_info[name] = {"note": f"{path} has no column {config.group_by!r}; no {name} loss by group"}
        return
    setattr(sets, f"{name}_groups", labels)
    docs: dict[str, int] = {}
    for label in labels:
        docs[label] = docs.get(label, 0) + 1
    sets.groups_info[name] = {"docs": docs, "tokens": group_tokens(samples, labels)}


def predicted_bytes(samples: Samples, tokenizer) -> int:
    """UTF-8 bytes of the tokens a held-out loss predicts (every real token but each sample's first;
    special tokens such as EOS count 0 bytes), for bits per byte."""

    def n_bytes(ids: list[int]) -> int:
        text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return len(text.encode("utf-8"))

    # all tokens minus the first, decoded whole: a character split across tokens is counted once
    return sum(
        n_bytes(ids[:n]) - n_bytes(ids[:1]) for ids, n in zip(samples.input_ids.tolist(), samples.lengths.tolist())
    )


def bits_per_byte(losses: HeldOutLosses, n_bytes: int) -> float | None:
    """Summed loss in nats over the bytes it predicts, in bits: comparable across tokenizers and models."""
    return float(losses.sums.sum()) / math.log(2) / n_bytes if n_bytes else None


def run_eval(model, tokenizer, sets: EvalSets, config: RunConfig, device, amp) -> dict:
    """One eval record's metrics: val_loss, target_loss (and as bits per byte), bench_acc(_norm), per-task
    bench results and, with ``group_by``, ``group_loss`` / ``target_group_loss`` from the same forward passes."""
    bs = config.eval_batch_size
    out = {
        "val_loss": None,
        "target_loss": None,
        "val_bpb": None,
        "target_bpb": None,
        "bench_acc": None,
        "bench_acc_norm": None,
        "bench": {},
    }
    for name, key, group_key in (
        ("validation", "val_loss", "group_loss"),
        ("target", "target_loss", "target_group_loss"),
    ):
        samples = getattr(sets, name)
        if samples is None:
            continue
        losses = lm_losses(model, samples, bs, device, amp)
        out[key] = losses.mean
        out[key.replace("_loss", "_bpb")] = bits_per_byte(losses, getattr(sets, f"{name}_bytes"))
        labels = getattr(sets, f"{name}_groups")
        if labels is not None:
            out[group_key] = {config.group_by: group_means(losses, labels)}
    if sets.items:
        max_length = int(getattr(model.config, "max_position_embeddings", 2048))
        if max_length not in sets.encoded:
            sets.encoded[max_length] = encode_requests(sets.items, tokenizer, max_length)
        res = evaluate(model, tokenizer, sets.items, device, bs, autocast_dtype=amp, requests=sets.encoded[max_length])
        out.update(
            bench_acc=res["acc"],
            bench_acc_norm=res["acc_norm"],
            bench={t: {"acc": r["acc"], "acc_norm": r["acc_norm"]} for t, r in res["tasks"].items()},
        )
    return out
