"""What a training run reads: the ordered data, as training rows (one document per row, or documents
packed into full rows), cut into batches in file order (the step or token budget decides where the run
ends), and the held-out sets and benchmark items it is evaluated on."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..fileio import json_object_line
from .config import RunConfig


# ----------------------------------------------------------------------------------------- data
@dataclass
class OrderedData:
    """The ordered documents, in training order."""

    ids: list[str]
    texts: list[str]
    scores: list[float | None] | None  # None when no row has the score field


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


@dataclass
class TrainRows:
    """A run's training rows in training order, and which documents each row holds.

    Attributes:
        input_ids, attention_mask: int64 [rows, width], right-padded (mask 1 = real token).
        first_doc, last_doc: per row, the position in the ordering of the document of its first and of
            its last real token (equal for one-document rows).
        packed: documents packed into full rows (True) or one document per row.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    first_doc: list[int]
    last_doc: list[int]
    packed: bool

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def lengths(self) -> list[int]:
        """Real tokens of every row."""
        return self.attention_mask.sum(dim=1).tolist()

    def docs(self, rows: slice) -> range:
        """Positions (in the ordering) of the documents with at least one token in ``rows``, in order.

        Documents are contiguous in the ordering and every one has at least its EOS token, so the
        documents of consecutive rows are a contiguous range."""
        return range(self.first_doc[rows.start], self.last_doc[rows.stop - 1] + 1)


def document_rows(texts: Sequence[str], ids: Sequence[str], tokenizer, max_length: int) -> TrainRows:
    """One document per row (EOS appended, truncated to ``max_length``, right-padded)."""
    from ..data.tokenizer import encode

    samples = encode(texts, ids, tokenizer, max_length)
    positions = list(range(len(samples)))
    return TrainRows(samples.input_ids, samples.attention_mask, positions, positions, packed=False)


def pack_documents(token_lists: Sequence[Sequence[int]], max_length: int, pad_id: int) -> TrainRows:
    """Concatenate documents (each already ending with EOS) in the given order and cut the stream into
    rows of ``max_length`` tokens; only the last row can be shorter (right-padded with ``pad_id``).

    Raises:
        DataError when there are no tokens; ConfigError when ``max_length`` < 2.
    """
    if max_length < 2:
        raise ConfigError(f"max_length={max_length} is too small; a row needs at least 2 tokens (try 128)")
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    total = int(lengths.sum())
    if total == 0:
        raise DataError("no tokens to pack: the ordered data is empty")
    if (lengths == 0).any():
        raise DataError("a document has no tokens (not even EOS); encode documents with EOS appended")
    stream = np.full(-(-total // max_length) * max_length, pad_id, dtype=np.int64)
    stream[:total] = np.fromiter(itertools.chain.from_iterable(token_lists), dtype=np.int64, count=total)
    doc_of_token = np.repeat(np.arange(len(lengths)), lengths)
    n_rows = stream.size // max_length
    starts = np.arange(n_rows) * max_length
    ends = np.minimum(starts + max_length, total) - 1
    mask = np.zeros(stream.size, dtype=np.int64)
    mask[:total] = 1
    return TrainRows(
        torch.from_numpy(stream.reshape(n_rows, max_length)),
        torch.from_numpy(mask.reshape(n_rows, max_length)),
        doc_of_token[starts].tolist(),
        doc_of_token[ends].tolist(),
        packed=True,
    )


def packed_rows(texts: Sequence[str], tokenizer, max_length: int) -> TrainRows:
    """Documents tokenized whole (EOS appended, never truncated) and packed into rows (``pack_documents``)."""
    if not texts:
        raise DataError("no documents to pack: the ordered data is empty")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return pack_documents([list(toks) + [eos] for toks in encoded], max_length, pad)


def train_rows(data: OrderedData, tokenizer, max_length: int, packed: bool) -> TrainRows:
    """The training rows of ``data``: packed (``packed_rows``) or one document per row (``document_rows``)."""
    if packed:
        return packed_rows(data.texts, tokenizer, max_length)
    return document_rows(data.texts, data.ids, tokenizer, max_length)


class SequentialBatches:
    """The i-th batch is the i-th slice of the ordering; every epoch replays the same order."""

    def __init__(self, n_rows: int, batch_size: int, row_tokens: list[int]):
        self.n_rows, self.batch_size = n_rows, batch_size
        self.per_epoch = math.ceil(n_rows / batch_size)
        self.tokens = [sum(row_tokens[s : s + batch_size]) for s in range(0, n_rows, batch_size)]
        self.cum_tokens = list(itertools.accumulate(self.tokens))

    def rows(self, index: int) -> tuple[int, slice]:
        """(epoch, row slice) of the batch at 0-based step ``index``."""
        epoch, b = divmod(index, self.per_epoch)
        return epoch, slice(b * self.batch_size, min((b + 1) * self.batch_size, self.n_rows))

    def batch_tokens(self, index: int) -> int:
        return self.tokens[index % self.per_epoch]


def plan_steps(batches: SequentialBatches, config: RunConfig) -> int:
    """Total optimizer steps from ``steps`` / ``tokens`` (first step whose cumulative real tokens reach
    the budget) / ``epochs``. Raises ConfigError when the budget needs more than ``epochs`` passes
    (``epochs`` None: no limit)."""
    available = math.inf if config.epochs is None else config.epochs * batches.per_epoch
    if config.steps is not None:
        total = config.steps
        if total > available:
            raise ConfigError(
                f"steps={total} needs {math.ceil(total / batches.per_epoch)} passes over the "
                f"{batches.per_epoch} batches of the input but epochs={config.epochs}; raise epochs"
            )
        return total
    if config.tokens is None:
        return available
    per_epoch_tokens = batches.cum_tokens[-1]
    full_epochs = (config.tokens - 1) // per_epoch_tokens
    rest = config.tokens - full_epochs * per_epoch_tokens
    if config.epochs is not None and full_epochs + 1 > config.epochs:
        raise ConfigError(
            f"tokens={config.tokens} needs {full_epochs + 1} passes over the input "
            f"({per_epoch_tokens} tokens each) but epochs={config.epochs}; raise epochs"
        )
    return full_epochs * batches.per_epoch + bisect.bisect_left(batches.cum_tokens, rest) + 1


# ----------------------------------------------------------------------------------------- files
def read_rows(path: str | Path, what: str = "input") -> list[dict]:
    """Rows of a JSONL or Parquet file, in file order (DataError naming file and line when malformed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist; give a JSONL or Parquet file")
    if path.suffix.lower() == ".parquet":
        import polars as pl

        try:
            return pl.read_parquet(path).to_dicts()
        except Exception as exc:  # polars raises several unrelated types for bad files
            raise DataError(f"{what} file {path} is not a readable Parquet file: {exc}") from exc
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                rows.append(json_object_line(line, f"{path}:{line_no}", "a text field"))
    return rows


def read_texts(rows: list[dict], field_name: str, path, fallback: str = "text") -> list[str]:
    """The ``field_name`` strings of ``rows`` (``fallback`` when the first row lacks ``field_name``)."""
    key = field_name if not rows or field_name in rows[0] else fallback
    out = []
    for i, row in enumerate(rows):
        text = row.get(key)
        if not isinstance(text, str):
            raise DataError(
                f"{path}: row {i + 1} has no string {key!r} field; name the text column with text_field "
                "(`delt import --text-field NAME` writes a copy with it as 'text')"
            )
        out.append(text)
    return out
