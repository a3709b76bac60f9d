"""A run's ``metrics.jsonl``: append-only records (one flushed JSON line each), read live by byte offset.

Readers poll with the offset the last read returned and get only what was appended since; an
unfinished last line (being written right now) is left for the next read, so a reader never sees a
partial record. Nested records (``bench``, ``group_loss``) flatten to ``parent.child`` keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from ..fileio import iter_jsonl_tolerant
from .protocol import METRICS_FILE

TAIL_BYTES = 16384  # enough for the last train record and the last eval record


def read_metrics(run_dir: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Complete metrics records from byte ``offset`` on, and the offset to resume from.

    A live reader polls with the returned offset; an unfinished last line is left for the next call.
    """
    records, end = [], offset
    for record, end in iter_jsonl_tolerant(Path(run_dir) / METRICS_FILE, offset):  # noqa: B007 (the last one)
        if isinstance(record, dict):
            records.append(record)
    return records, end


def last_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Latest value of every metric, from the tail of metrics.jsonl only (cheap for long runs)."""
    path = Path(run_dir) / METRICS_FILE
    try:
        size = path.stat().st_size
    except OSError:
        return {}
    start = max(0, size - TAIL_BYTES)
    if start > 0:  # resume at the first line boundary inside the tail, never mid-record
        with open(path, "rb") as fh:
            fh.seek(start - 1)
            cut = fh.read(TAIL_BYTES).find(b"\n")
        if cut < 0:
            return {}
        start += cut
    merged: dict[str, Any] = {}
    for record, _ in iter_jsonl_tolerant(path, start):
        if isinstance(record, dict):
            merged.update(record)
    return merged


def flatten_record(record: dict, sep: str = ".") -> dict:
    """Nested dicts become ``parent.child`` keys (e.g. ``bench.arc_easy``)."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            for sub, v in flatten_record(value, sep).items():
                flat[f"{key}{sep}{sub}"] = v
        else:
            flat[key] = value
    return flat


def metrics_frame(records: list[dict]) -> pl.DataFrame:
    """Metrics records as a frame: one row per record, nested ``bench`` flattened, missing -> null.

    Columns holding only integers stay Int64 (step, tokens); other numbers become Float64.
    """
    if not records:
        return pl.DataFrame({"step": pl.Series([], dtype=pl.Int64), "tokens": pl.Series([], dtype=pl.Int64)})
    flat = [flatten_record(r) for r in records]
    keys = list(dict.fromkeys(k for r in flat for k in r))
    columns = {}
    for key in keys:
        values = [r.get(key) for r in flat]
        present = [v for v in values if v is not None]
        if not present:  # e.g. val_loss when the run has no validation set: a numeric column of nulls
            columns[key] = pl.Series(key, values, dtype=pl.Float64)
        elif all(isinstance(v, bool) for v in present):
            columns[key] = pl.Series(key, values, dtype=pl.Boolean)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            columns[key] = pl.Series(key, values, dtype=pl.Int64)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            columns[key] = pl.Series(key, [None if v is None else float(v) for v in values], dtype=pl.Float64)
        else:
            columns[key] = pl.Series(key, [None if v is None else str(v) for v in values], dtype=pl.Utf8)
    return pl.DataFrame(columns)


# ----------------------------------------------------------------------------- stream make-up of runs
