"""Corpus loading: any supported source -> one polars frame (``id``, ``text``, metadata columns).

``load_corpus`` reads a file, a ``save_to_disk`` folder or a Hugging Face dataset (readers in
corpus_formats.py), checks it (text column present and textual, ids present and unique), drops
empty texts and optionally exact duplicates, and reports every count so nothing is lost silently.
``read_records`` / ``write_records`` move stage outputs (scores, selections, orderings) between
the CLI commands as JSONL or Parquet files that keep every field.

Scored files carry their meaning (``read_score_meta``): which scorer made the scores, its direction
("higher_better" | "higher_harder") and its settings. Parquet keeps them in the file's key-value
metadata (key ``delt.score``); JSONL in a sidecar ``<file>.meta.json`` (JSON Lines has no place for
them), which also records the data's sha256 so a file changed after scoring is noticed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError, DataError
from ..fileio import atomic_write_bytes, write_json
from .formats import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    FILE_FORMATS,
    FORMATS,
    MAX_DECOMPRESSED_ENV,
    RawTable,
    decompression_cap,
    detect_format,
    ensure_utf8,
    missing_source_error,
    read_jsonl,
    read_parquet,
    read_source,
)

RECORD_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
SCORE_META_KEY = "delt.score"  # Parquet key-value metadata key of a scored file
SCORE_META_SUFFIX = ".meta.json"  # JSONL sidecar: scored.jsonl -> scored.jsonl.meta.json
SCORE_META_FORMAT = "delt-score-meta/1"
ID_PREFIX = "doc-"
HASH_CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class LoadReport:
    """What loading did to a corpus: counts of everything read, kept and dropped, and its hash."""

    source: str
    format: str
    n_read: int
    n_kept: int
    n_empty_dropped: int = 0
    n_duplicates_dropped: int = 0
    n_bad_lines_skipped: int = 0
    bad_line_numbers: tuple[int, ...] = ()  # the first few skipped lines
    n_invalid_utf8_replaced: int = 0
    content_hash: str = ""  # corpus_hash(frame): the corpus hash recorded in run provenance
    text_field: str = "text"
    id_field: str | None = None
    notes: tuple[str, ...] = ()  # e.g. a source column renamed to make room for id/text

    def summary(self) -> str:
        """One line for a CLI or a page caption."""
        parts = [f"{self.source} ({self.format}): {self.n_read} read, {self.n_kept} kept"]
        if self.n_empty_dropped:
            parts.append(f"{self.n_empty_dropped} empty dropped")
        if self.n_duplicates_dropped:
            parts.append(f"{self.n_duplicates_dropped} duplicates dropped")
        if self.n_bad_lines_skipped:
            lines = ", ".join(map(str, self.bad_line_numbers))
            more = ", ..." if self.n_bad_lines_skipped > len(self.bad_line_numbers) else ""
            parts.append(f"{self.n_bad_lines_skipped} bad lines skipped (lines {lines}{more})")
        if self.n_invalid_utf8_replaced:
            parts.append(f"{self.n_invalid_utf8_replaced} invalid UTF-8 sequences replaced")
        parts.extend(self.notes)
        return "; ".join(parts) + f"; hash {self.content_hash[:12]}"

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (for a dataset manifest); tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LoadedCorpus:
    """A loaded corpus: ``frame`` (id, text, metadata columns) and its ``report``."""

    frame: pl.DataFrame
    report: LoadReport


def load_corpus(
    source: str | Path,
    text_field: str = "text",
    id_field: str | None = None,
    fmt: str | None = None,
    skip_bad_lines: bool = False,
    replace_invalid_utf8: bool = False,
    dedup: bool = False,
    split: str = "train",
    text_mode: str = "lines",
    max_decompressed_bytes: int | str | None = None,
    name: str | None = None,
    streaming: bool = False,
    limit: int | None = None,
) -> LoadedCorpus:
    """Load a training corpus into a frame with ``id`` (Utf8) first, ``text`` next, then metadata.

    Args:
        source: a .jsonl/.ndjson, .json (array of objects), .csv, .parquet or .txt file, a folder
            written by ``datasets`` ``save_to_disk``, a local dataset folder, or a Hub dataset id.
        text_field: the field holding each document's text (ignored for .txt).
        id_field: a field holding unique ids. None uses the source's own ``id`` column when it
            has one whose values are present and unique, else numbers documents by row
            ("doc-000000", ...; the source column is then kept as ``source_id``).
        fmt: one of FORMATS; None guesses from the suffix or folder contents.
        skip_bad_lines: skip (and count) JSONL lines that are not JSON objects instead of failing.
        replace_invalid_utf8: replace undecodable bytes with U+FFFD (counted) instead of failing.
        dedup: drop exact duplicate texts, keeping the first.
        split: the split to take from a DatasetDict folder or a ``load_dataset`` source, optionally
            sliced as ``load_dataset`` does: "train[:1000]", "train[10%:20%]", "train+test".
        text_mode: for .txt (a file or a folder of them), "lines" (one document per line), "paragraphs"
            (blank-line separated) or "file" (one document per file).
        max_decompressed_bytes: the most bytes a .gz source may expand to (an int, or "2GB", "4GiB");
            None takes ``$DELT_MAX_DECOMPRESSED_BYTES``, else 1 GB. A guard against gzip bombs.
        name: the config of a ``load_dataset`` source (a Hub id or dataset folder with several
            configs, e.g. "wikitext-2-raw-v1" of wikitext); None takes its default.
        streaming: stream a ``load_dataset`` source instead of downloading and caching the whole
            split (with ``limit``, only the first rows are read).
        limit: keep only the first N rows of the source (before empty texts are dropped).

    Returns:
        LoadedCorpus(frame, report). Documents whose text shows nothing (empty, whitespace, control or
        format characters only) are dropped and counted. Generated ids number rows as read, before
        anything is dropped, so a document keeps its id whatever else is dropped. ``report.id_field``
        says where ids came from.

    Raises:
        DataError: a missing path (or symbolic link loop), unreadable or malformed input (the message
            names file, line or byte offset), a .gz file expanding past the cap, a missing text/id
            column (listing the columns there are), duplicate ids, or an empty result.
    """
    _check_args(text_field, id_field, fmt)
    if max_decompressed_bytes is not None:
        decompression_cap(max_decompressed_bytes)  # a bad value fails now, whatever the format
    fmt = fmt or detect_format(source)
    raw = read_source(
        source,
        fmt,
        text_field=text_field,
        id_field=id_field,
        skip_bad_lines=skip_bad_lines,
        replace_invalid_utf8=replace_invalid_utf8,
        split=split,
        text_mode=text_mode,
        max_decompressed_bytes=max_decompressed_bytes,
        name=name,
        streaming=streaming,
        limit=limit,
    )
    if limit is not None and raw.frame.height > limit:
        raw.frame = raw.frame.head(limit)
    where = str(source)
    if raw.frame.height == 0:
        skipped = f" ({raw.n_bad_lines_skipped} bad lines skipped)" if raw.n_bad_lines_skipped else ""
        raise DataError(f"{where}: no documents in this source{skipped}; check that it is the right file")
    text_field = "text" if fmt == "txt" else text_field  # plain text has no field names
    frame, notes, id_field = _normalise(raw, text_field, id_field, where)
    notes = _source_notes(fmt, split, name, streaming, limit) + notes
    n_read = frame.height
    frame, n_empty, n_dups = _drop_empty_and_duplicates(frame, dedup)
    if frame.height == 0:
        raise DataError(
            f"{where}: no documents left ({n_read} read, {n_empty} empty, {n_dups} duplicates, "
            f"{raw.n_bad_lines_skipped} bad lines skipped); check the file and --text-field"
        )
    if id_field is not None:
        _check_unique_ids(frame, id_field, where)
    report = LoadReport(
        source=where,
        format=fmt,
        n_read=n_read,
        n_kept=frame.height,
        n_empty_dropped=n_empty,
        n_duplicates_dropped=n_dups,
        n_bad_lines_skipped=raw.n_bad_lines_skipped,
        bad_line_numbers=tuple(raw.bad_line_numbers),
        n_invalid_utf8_replaced=raw.n_invalid_utf8_replaced,
        content_hash=corpus_hash(frame),
        text_field=text_field,
        id_field=id_field,
        notes=tuple(notes),
    )
    return LoadedCorpus(frame, report)


def _source_notes(fmt: str, split: str, name: str | None, streaming: bool, limit: int | None) -> list[str]:
    """What part of a dataset was read, for the report: config, split, streamed, row limit."""
    notes = []
    if fmt in ("hf", "hf-disk"):
        notes.append(f"split {split}" + (f" of config {name}" if name else ""))
    if streaming:
        notes.append("streamed")
    if limit is not None:
        notes.append(f"first {limit} rows (limit)")
    return notes


def _drop_empty_and_duplicates(frame: pl.DataFrame, dedup: bool) -> tuple[pl.DataFrame, int, int]:
    """Drop texts with nothing visible (empty, whitespace, control or format characters only), then (with
    ``dedup``) exact duplicate texts keeping the first."""
    before = frame.height
    # nothing visible: whitespace, control characters (NUL, ...) and format characters (zero-width spaces)
    frame = frame.filter(pl.col("text").str.replace_all(r"[\s\p{Cc}\p{Cf}]+", "").str.len_bytes() > 0)
    n_empty = before - frame.height
    if not dedup:
        return frame, n_empty, 0
    before = frame.height
    frame = frame.unique(subset=["text"], keep="first", maintain_order=True)
    return frame, n_empty, before - frame.height


def _check_args(text_field: str, id_field: str | None, fmt: str | None) -> None:
    if not text_field:
        raise ConfigError("text_field must name the field holding the document text, e.g. 'text'")
    if id_field is not None and id_field == text_field:
        raise ConfigError(f"id_field and text_field are both '{text_field}'; ids must come from another field")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown corpus format '{fmt}'; use one of {', '.join(FORMATS)} (or leave it unset)")


def _normalise(
    raw: RawTable, text_field: str, id_field: str | None, where: str
) -> tuple[pl.DataFrame, list[str], str | None]:
    """Put ``id`` and ``text`` first and keep every other column as metadata.

    Returns the frame, notes for the report, and the field the ids came from (None: row numbers).
    """
    notes = []
    if id_field is None and text_field != "id" and "id" in raw.frame.columns:
        # A source that already has ids (the demo corpus, a file written by `import` or `score`)
        # keeps them, so ids survive every round trip between the CLI commands.
        problem = _auto_id_problem(raw.frame.get_column("id"))
        if problem is None:
            id_field = "id"
        else:
            notes.append(f"source column 'id' not used as ids ({problem}); documents numbered by row")
    text = _text_column(raw, text_field, where)
    ids = _id_column(raw, id_field, where) if id_field else row_ids(raw.frame.height)
    meta = raw.frame.drop([c for c in (text_field, id_field) if c])
    for name in ("id", "text"):
        if name in meta.columns:  # a source column the output needs; keep it under another name
            new = _free_name(f"source_{name}", meta.columns)
            meta = meta.rename({name: new})
            notes.append(f"source column '{name}' kept as '{new}'")
    head = pl.DataFrame([ids.alias("id"), text.alias("text")])
    return pl.concat([head, meta], how="horizontal"), notes, id_field


def _auto_id_problem(col: pl.Series) -> str | None:
    """Why a source's own ``id`` column cannot serve as ids, or None when it can."""
    if col.dtype.is_nested():
        return f"it holds {col.dtype} values"
    if col.null_count():
        return f"{col.null_count()} records have none"
    if col.cast(pl.String).is_duplicated().any():
        return "its values repeat"
    return None


def _free_name(name: str, taken: list[str]) -> str:
    while name in taken:
        name += "_"
    return name


def _require_column(frame: pl.DataFrame, name: str, where: str, option: str, role: str) -> None:
    if name not in frame.columns:
        available = ", ".join(f"'{c}'" for c in frame.columns) or "none"
        raise DataError(
            f"{where}: no {role} field '{name}'; available fields: {available}; name the right one with {option}"
        )


def _text_column(raw: RawTable, name: str, where: str) -> pl.Series:
    _require_column(raw.frame, name, where, "--text-field (text_field=)", "text")
    col = raw.frame.get_column(name)
    if isinstance(col.dtype, (pl.Categorical, pl.Enum)):
        col = col.cast(pl.String)
    if col.dtype not in (pl.String, pl.Null):
        row = int(col.is_not_null().arg_true()[0]) if col.is_not_null().any() else 0
        value = repr(col[row])[:60]
        raise DataError(
            f"{where}: field '{name}' holds {col.dtype} values, not text ({raw.row_label(row)}: "
            f"{value}); pick the text column with --text-field"
        )
    _forbid_nulls(col, raw, where, name, "remove that record or give it a text")
    return col.cast(pl.String)


def _id_column(raw: RawTable, name: str, where: str) -> pl.Series:
    _require_column(raw.frame, name, where, "--id-field (id_field=)", "id")
    col = raw.frame.get_column(name)
    if col.dtype.is_nested():
        raise DataError(f"{where}: id field '{name}' holds {col.dtype} values; ids must be strings or numbers")
    _forbid_nulls(col, raw, where, name, "every document needs an id when id_field is set (or leave it unset)")
    return col.cast(pl.String)


def _forbid_nulls(col: pl.Series, raw: RawTable, where: str, name: str, fix: str) -> None:
    nulls = col.is_null()
    if nulls.any():
        row = int(nulls.arg_true()[0])
        raise DataError(f"{where}: {raw.row_label(row)} has no '{name}' value (missing or null); {fix}")


def _check_unique_ids(frame: pl.DataFrame, id_field: str, where: str) -> None:
    repeated = frame.filter(pl.col("id").is_duplicated()).get_column("id").unique(maintain_order=True)
    if repeated.len():
        shown = ", ".join(repr(v) for v in repeated.head(5).to_list())
        more = f" and {repeated.len() - 5} more" if repeated.len() > 5 else ""
        raise DataError(
            f"{where}: id field '{id_field}' has duplicate ids: {shown}{more}; ids must be unique: "
            f"fix them, or leave id_field unset to number documents by row"
        )


def row_ids(n: int) -> pl.Series:
    """Deterministic ids for ``n`` rows: "doc-000000", ... (wider when n needs more digits)."""
    width = max(6, len(str(max(n - 1, 0))))
    number = pl.int_range(0, n, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    return pl.select((pl.lit(ID_PREFIX) + number).alias("id")).to_series()


def corpus_hash(frame: pl.DataFrame) -> str:
    """sha256 hex digest of the (id, text) pairs in frame order: the corpus hash used in provenance.

    The hashed bytes are, for each row, ``f"{len(id)}:{id}{len(text)}:{text}"`` in UTF-8 with
    lengths in bytes, so no two different corpora produce the same byte stream.
    """
    pieces = frame.select(
        pl.concat_str(
            [
                pl.col("id").str.len_bytes().cast(pl.String),
                pl.lit(":"),
                pl.col("id"),
                pl.col("text").str.len_bytes().cast(pl.String),
                pl.lit(":"),
                pl.col("text"),
            ]
        ).alias("piece")
    )
    digest = hashlib.sha256()
    for start in range(0, frame.height, HASH_CHUNK_ROWS):  # chunks bound the size of the joined string
        joined = pieces.slice(start, HASH_CHUNK_ROWS).get_column("piece").str.join("").item()
        digest.update(joined.encode("utf-8"))
    return digest.hexdigest()


def records_format(path: str | Path) -> str:
    """ "jsonl" or "parquet" from a records file's suffix; DataError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise DataError(f"{path}: records files must end in .jsonl or .parquet (got '{suffix or 'no suffix'}')")
    return RECORD_SUFFIXES[suffix]


def read_records(path: str | Path) -> pl.DataFrame:
    """Read a JSONL or Parquet records file (format from the suffix) with every field it holds.

    Args:
        path: a .jsonl/.ndjson or .parquet file, e.g. written by ``write_records``.

    Returns:
        The records as a frame (an empty JSONL file gives a frame with no columns).

    Raises:
        DataError: missing file, wrong suffix, invalid UTF-8 (byte offset) or a bad JSONL line (line number).
    """
    path = Path(path)
    fmt = records_format(path)
    if not path.is_file():
        raise missing_source_error(path)
    if fmt == "parquet":
        return read_parquet(path).frame
    data, _ = ensure_utf8(path, path.read_bytes(), replace=False)
    return read_jsonl(path, data).frame


def write_records(frame: pl.DataFrame, path: str | Path, score_meta: dict | None = None) -> None:
    """Atomically write ``frame`` as JSONL (one object per line, all fields) or Parquet, by suffix.

    JSONL keeps nested lists/objects; float NaN becomes null (JSON has no NaN).

    Args:
        frame: the records, e.g. a corpus with a ``score`` column.
        path: the output file, ending in .jsonl/.ndjson or .parquet.
        score_meta: what the scores mean (``scoring.runner.score_metadata``: scorer, direction, settings),
            kept in the Parquet metadata or, for JSONL, in ``<path>.meta.json``. Without it a JSONL
            file's old sidecar is removed, so it cannot describe data it was not written for.
    """
    fmt = records_format(path)
    buffer = io.BytesIO()
    if fmt == "parquet":
        metadata = {SCORE_META_KEY: json.dumps(score_meta, default=str)} if score_meta else None
        frame.write_parquet(buffer, metadata=metadata)
        atomic_write_bytes(path, buffer.getvalue())
        return
    frame.write_ndjson(buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    sidecar = score_meta_path(path)
    if score_meta:
        write_json(
            sidecar,
            {
                "format": SCORE_META_FORMAT,
                "file": Path(path).name,
                "n_records": frame.height,
                "sha256": hashlib.sha256(data).hexdigest(),
                "score": score_meta,
            },
        )
    elif sidecar.is_file():
        sidecar.unlink()


def score_meta_path(path: str | Path) -> Path:
    """The sidecar of a JSONL records file: ``scored.jsonl`` -> ``scored.jsonl.meta.json``."""
    return Path(str(path) + SCORE_META_SUFFIX)


def read_score_meta(path: str | Path) -> dict | None:
    """What the scores of a records file mean, as ``write_records`` recorded them, or None.

    Args:
        path: a .jsonl/.ndjson file (its ``.meta.json`` sidecar is read) or a .parquet file.

    Returns:
        The recorded dict ({"scorer", "direction", "score_field", "settings", ...}) or None when the
        file records nothing. For JSONL, ``"matches_file"`` says whether the file is still the one the
        sidecar was written for (False: it was changed since; the direction may still hold).

    Raises:
        DataError: a damaged sidecar or metadata entry (not JSON, or no direction in it), with the fix.
    """
    path = Path(path)
    if records_format(path) == "parquet":
        try:
            raw = pl.read_parquet_metadata(path).get(SCORE_META_KEY)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataError(f"{path}: cannot read the Parquet metadata: {exc}") from None
        return None if raw is None else _parse_score_meta(raw, f"{path} (Parquet metadata {SCORE_META_KEY!r})")
    sidecar = score_meta_path(path)
    if not sidecar.is_file():
        return None
    where = str(sidecar)
    wrapper = _parse_score_meta(sidecar.read_text(encoding="utf-8", errors="replace"), where, key="score")
    meta = dict(wrapper["score"])
    meta["matches_file"] = path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == wrapper.get("sha256")
    return meta


def _parse_score_meta(text: str, where: str, key: str | None = None) -> dict:
    fix = "delete it (the scores stay usable; pass the direction with --higher-is-better or --lower-is-better)"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: damaged score metadata (not JSON: {exc.msg} at line {exc.lineno}); {fix}") from None
    meta = value.get(key) if key and isinstance(value, dict) else value
    if not isinstance(meta, dict) or meta.get("direction") not in ("higher_better", "higher_harder"):
        raise DataError(f"{where}: damaged score metadata (no direction higher_better or higher_harder); {fix}")
    return value


__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "FILE_FORMATS",
    "FORMATS",
    "MAX_DECOMPRESSED_ENV",
    "LoadReport",
    "LoadedCorpus",
    "SCORE_META_KEY",
    "corpus_hash",
    "detect_format",
    "load_corpus",
    "read_records",
    "read_score_meta",
    "records_format",
    "row_ids",
    "score_meta_path",
    "write_records",
]


MISSING = "(missing)"  # the group label of a missing metadata value


def group_label(value: Any) -> str:
    """The label of one metadata value: booleans as "true"/"false", None as "(missing)", else ``str``.

    Evaluation by group (``training.evaluation``) and the stream make-up (``organize.makeup``) use the
    same labels, so a make-up and a run's ``group_loss`` name their groups alike.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
