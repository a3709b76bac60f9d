"""Readers for the corpus formats (corpus.py checks and normalises what they return).

Each reader returns a ``RawTable``: the records as a polars frame, as they are in the source,
plus how to name a row in an error message ("line 12", "row 3") and what was skipped or
repaired on the way. Readers only read: no input file is ever written.

JSON Lines is read in two ways. The fast path hands the bytes to pyarrow's JSON reader, which
is strict about types (a number where other lines have a string is an error, not a silent
cast). Any doubt (a parse error, a type clash, a line count that does not match, an inferred
timestamp) sends the file through the line-by-line pass with ``json.loads``, which is the
reference behaviour and the one that can name the offending line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import polars as pl

from ..errors import ConfigError, DataError

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "txt", "hf-disk", "hf")
SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
                  ".parquet": "parquet", ".txt": "txt"}
FILE_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "txt")
GZIP_SUFFIX = ".gz"  # any text format may be gzip-compressed: corpus.jsonl.gz, data.csv.gz, ...
TEXT_MODES = ("lines", "paragraphs")
MAX_LISTED = 10  # how many bad line numbers a report keeps
JSON_BLANK = " \t\r"  # JSON whitespace that may pad a line (\n is the separator)


@dataclass
class RawTable:
    """Records as read from a source, before any checks."""

    frame: pl.DataFrame
    row_label: Callable[[int], str]  # row index -> "line 12" / "row 3" for error messages
    n_bad_lines_skipped: int = 0
    bad_line_numbers: list[int] = field(default_factory=list)
    n_invalid_utf8_replaced: int = 0


def detect_format(source: str | Path) -> str:
    """Guess the format of ``source`` from its suffix or directory contents.

    Args:
        source: a file, a directory, or a Hugging Face dataset id.

    Returns:
        One of ``FORMATS``. A directory written by ``save_to_disk`` is "hf-disk", any other
        directory and anything that is not a local path is "hf" (``datasets.load_dataset``).
    """
    path = Path(source)
    if path.is_dir():
        if any((path / name).exists() for name in ("dataset_dict.json", "state.json")):
            return "hf-disk"
        return "hf"
    suffix = path.suffix.lower()
    if suffix == GZIP_SUFFIX:
        inner = Path(path.name[: -len(GZIP_SUFFIX)]).suffix.lower()
        if SUFFIX_FORMATS.get(inner, "parquet") == "parquet":
            raise DataError(f"{path}: cannot tell what is compressed from the name; name it like corpus.jsonl.gz "
                            f"(jsonl, json, csv, tsv or txt inside; Parquet files compress themselves)")
        suffix = inner
    if suffix in SUFFIX_FORMATS:
        if not path.exists():
            raise DataError(f"{path}: file not found; check the path")
        return SUFFIX_FORMATS[suffix]
    if path.exists():
        raise DataError(f"{path}: cannot tell the format from the suffix '{suffix}'; name the file "
                        f"with one of {', '.join(SUFFIX_FORMATS)} or pass the format "
                        f"(--format {'|'.join(FORMATS)})")
    return "hf"


def read_source(source: str | Path, fmt: str, *, text_field: str = "text", id_field: str | None = None,
                skip_bad_lines: bool = False, replace_invalid_utf8: bool = False,
                split: str = "train", text_mode: str = "lines") -> RawTable:
    """Read ``source`` in format ``fmt`` into a RawTable (see the module docstring)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown corpus format '{fmt}'; use one of {', '.join(FORMATS)}")
    if text_mode not in TEXT_MODES:
        raise ConfigError(f"text_mode must be one of {', '.join(TEXT_MODES)}, got '{text_mode}'")
    if fmt == "hf":
        return read_hf(source, split)
    path = Path(source)
    if fmt == "hf-disk":
        return read_hf_disk(path, split)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    if fmt == "parquet":
        return read_parquet(path)
    raw, where = read_bytes(path)
    data, n_replaced = ensure_utf8(where, raw, replace_invalid_utf8)
    if fmt == "jsonl":
        table = read_jsonl(path, data, skip_bad_lines, string_fields=(text_field,))
    elif fmt == "json":
        table = read_json_array(path, data, string_fields=(text_field,))
    elif fmt in ("csv", "tsv"):
        table = read_csv(path, data, text_field, id_field, separator="\t" if fmt == "tsv" else ",")
    else:
        table = read_txt(data, text_mode)
    table.n_invalid_utf8_replaced = n_replaced
    return table


def read_bytes(path: Path) -> tuple[bytes, str]:
    """The file's bytes, gunzipped for a ``.gz`` name, and how to name them in an error (byte offsets
    and line numbers of a compressed file count in its decompressed text)."""
    raw = path.read_bytes()
    if path.suffix.lower() != GZIP_SUFFIX:
        return raw, str(path)
    try:
        return gzip.decompress(raw), f"{path} (decompressed)"
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc}); re-compress it, or drop the .gz suffix "
                        "if it is plain text") from None


def ensure_utf8(path: Path | str, raw: bytes, replace: bool) -> tuple[bytes, int]:
    """Return ``raw`` as valid UTF-8 without a byte-order mark, and how many bad sequences were replaced.

    Raises DataError naming the byte offset and line of the first invalid byte unless ``replace``.
    """
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        raw[start:].decode("utf-8")
        return raw[start:], 0
    except UnicodeDecodeError as exc:
        if not replace:
            offset = start + exc.start
            line = raw.count(b"\n", 0, offset) + 1
            raise DataError(f"{path}: invalid UTF-8 at byte offset {offset} (line {line}): "
                            f"{exc.reason}; re-save the file as UTF-8, or pass replace_invalid_utf8=True "
                            f"(--replace-invalid-utf8) to replace bad bytes with U+FFFD") from None
    text = raw[start:].decode("utf-8", errors="replace")
    # Each invalid sequence becomes one U+FFFD; U+FFFD already in the file does not count.
    n_replaced = text.count("\ufffd") - raw.count("\ufffd".encode())
    return text.encode("utf-8"), n_replaced


def json_kind(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def read_jsonl(path: Path, data: bytes, skip_bad_lines: bool = False,
               string_fields: tuple[str | None, ...] = ()) -> RawTable:
    """Read JSON Lines (one object per line; blank lines are ignored).

    Args:
        path: the file, for messages.
        data: its bytes, valid UTF-8.
        skip_bad_lines: skip lines that are not valid JSON objects (counted) instead of failing.
        string_fields: fields that must hold strings where present (e.g. the text field).

    Returns:
        A RawTable whose rows are labelled with their line numbers.
    """
    frame = _jsonl_fast(data, string_fields)
    if frame is not None:
        return RawTable(frame, _nonblank_line_labeller(data))
    records, numbers, bad = _jsonl_slow(path, data, skip_bad_lines, string_fields)
    return RawTable(records_to_frame(records), lambda i: f"line {numbers[i]}",
                    n_bad_lines_skipped=len(bad), bad_line_numbers=bad[:MAX_LISTED])


def _jsonl_fast(data: bytes, string_fields: tuple[str | None, ...]) -> pl.DataFrame | None:
    """Parse with pyarrow; None whenever the result might differ from the line-by-line pass."""
    import pyarrow as pa
    import pyarrow.json as pajson

    block_size = min(max(len(data), 1 << 20), 1 << 28)
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=block_size))
    except (pa.ArrowException, ValueError):
        return None
    # pyarrow turns ISO-8601 strings into timestamps; keep them as the strings they are.
    if any("timestamp" in str(f.type) for f in table.schema):
        return None
    frame = pl.from_arrow(table)
    if frame.height != _count_nonblank_lines(data):  # e.g. two objects on one line, or one over two
        return None
    for name in string_fields:
        if name in frame.columns and frame.schema[name] not in (pl.String, pl.Null):
            return None
    # A line holding `null` parses as an all-null row here; the slow pass rejects it.
    if frame.width and frame.select(pl.all_horizontal(pl.all().is_null())).to_series().any():
        return None
    return frame


def _count_nonblank_lines(data: bytes) -> int:
    blank = JSON_BLANK.encode()
    return sum(1 for line in data.split(b"\n") if line.strip(blank))


def _nonblank_line_labeller(data: bytes) -> Callable[[int], str]:
    """Row index -> "line N", computed only when an error message needs it."""
    numbers: list[int] = []

    def label(row: int) -> str:
        if not numbers:
            blank = JSON_BLANK.encode()
            numbers.extend(n for n, line in enumerate(data.split(b"\n"), 1) if line.strip(blank))
        return f"line {numbers[row]}"
    return label


def _jsonl_slow(path: Path, data: bytes, skip_bad_lines: bool,
                string_fields: tuple[str | None, ...]) -> tuple[list[dict], list[int], list[int]]:
    """Line-by-line parse; returns (records, their line numbers, skipped bad line numbers)."""
    records, numbers, bad = [], [], []
    for number, line in enumerate(data.decode("utf-8").split("\n"), start=1):
        if not line.strip(JSON_BLANK):
            continue
        try:
            record = json.loads(line)
            problem = None if isinstance(record, dict) else f"is a JSON {json_kind(record)}, not an object"
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({exc.msg} at column {exc.colno})"
        if problem is not None:
            if not skip_bad_lines:
                raise DataError(f"{path}: line {number} {problem}; each line must hold one JSON object: "
                                f"fix that line, or pass skip_bad_lines=True (--skip-bad-lines) to skip such lines")
            bad.append(number)
            continue
        check_string_fields(record, string_fields, f"{path}: line {number}")
        records.append(record)
        numbers.append(number)
    return records, numbers, bad


def check_string_fields(record: dict, string_fields: tuple[str | None, ...], where: str) -> None:
    """Raise DataError when a field that must be text holds a number, list or object."""
    for name in string_fields:
        value = record.get(name) if name else None
        if value is not None and not isinstance(value, str):
            shown = json.dumps(value, ensure_ascii=False)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise DataError(f"{where}: field '{name}' is a JSON {json_kind(value)} ({shown}), not a string; "
                            f"store the text as a string, or pick another field with --text-field")


def records_to_frame(records: list[dict]) -> pl.DataFrame:
    """Build a frame from parsed JSON objects without silent casts.

    Columns appear in order of first appearance; a field missing from a record is null. A field
    whose values mix JSON types (e.g. numbers and strings) is kept as text, each non-string value
    written as JSON, rather than coerced (polars would turn ``true`` into 1).
    """
    names = dict.fromkeys(name for record in records for name in record)
    return pl.DataFrame([_column(name, [r.get(name) for r in records]) for name in names])


def _column(name: str, values: list) -> pl.Series:
    kinds = {json_kind(v) for v in values if v is not None}
    if len(kinds) <= 1:
        if kinds == {"number"} and any(isinstance(v, float) for v in values):
            values = [float(v) if v is not None else None for v in values]
        try:
            return pl.Series(name, values, strict=True)
        except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
            pass  # nested values with clashing shapes, or integers past 64 bits
    as_text = [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values]
    return pl.Series(name, as_text, dtype=pl.String)


def read_json_array(path: Path, data: bytes, string_fields: tuple[str | None, ...] = ()) -> RawTable:
    """Read a .json file holding one array of objects; rows are labelled "record N" (1-based)."""
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        hint = ("; it looks like JSON Lines (one object per line): rename it to .jsonl or pass --format jsonl"
                if exc.msg == "Extra data" else "; fix the file")
        raise DataError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}){hint}") from None
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON array of objects ([{{...}}, ...]), found a JSON "
                        f"{json_kind(value)}; for one object per line use a .jsonl file")
    for index, record in enumerate(value, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {index} of the array is a JSON {json_kind(record)}, not an object")
        check_string_fields(record, string_fields, f"{path}: record {index}")
    return RawTable(records_to_frame(value), lambda i: f"record {i + 1}")


def read_csv(path: Path, data: bytes, text_field: str = "text", id_field: str | None = None,
             separator: str = ",") -> RawTable:
    """Read a CSV (or, with ``separator="\\t"``, TSV) file with a header row; rows are labelled
    "row N" (1-based, header not counted).

    The text and id columns are read as strings (ids like "007" keep their zeros); an empty text
    cell is an empty text (dropped later and counted), not a missing one.
    """
    overrides = {name: pl.String for name in (text_field, id_field) if name}
    try:
        frame = pl.read_csv(io.BytesIO(data), schema_overrides=overrides, infer_schema_length=10000,
                            separator=separator)
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: the file is empty; a CSV corpus needs a header row and one row per document") from None
    except pl.exceptions.PolarsError:
        frame = _read_csv_as_text(path, data, separator)
    if text_field in frame.columns and frame.schema[text_field] == pl.String:
        frame = frame.with_columns(pl.col(text_field).fill_null(""))
    return RawTable(frame, lambda i: f"row {i + 1}")


def _read_csv_as_text(path: Path, data: bytes, separator: str = ",") -> pl.DataFrame:
    """Second try with every column as text (type inference failed); else name the bad line."""
    try:
        return pl.read_csv(io.BytesIO(data), infer_schema=False, separator=separator)
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).strip().splitlines()[0]
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=separator)
    header = next(reader, [])
    for row in reader:
        if row and len(row) != len(header):
            reason = f"line {reader.line_num} has {len(row)} fields but the header has {len(header)}"
            break
    raise DataError(f"{path}: cannot parse as CSV: {reason}; fix that line (quote fields that contain the separator)")


def read_parquet(path: Path) -> RawTable:
    """Read a Parquet file; rows are labelled "row N" (1-based)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from None
    return RawTable(frame, lambda i: f"row {i + 1}")


def read_txt(data: bytes, text_mode: str = "lines") -> RawTable:
    """Plain text: one document per line ("lines") or per blank-line separated block ("paragraphs")."""
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    lines = [line.removesuffix("\r") for line in lines]
    if text_mode == "lines":
        docs, starts = lines, list(range(1, len(lines) + 1))
    else:
        docs, starts, block = [], [], []
        for number, line in enumerate(lines + [""], start=1):
            if line.strip():
                if not block:
                    starts.append(number)
                block.append(line)
            elif block:
                docs.append("\n".join(block))
                block = []
    frame = pl.DataFrame({"text": docs}, schema={"text": pl.String})
    return RawTable(frame, lambda i: f"line {starts[i]}")


def read_hf_disk(path: Path, split: str) -> RawTable:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` (takes ``split``)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read this datasets.save_to_disk folder: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{path}: no split '{split}' in this dataset; available splits: "
                            f"{', '.join(loaded)}; choose one with split= (--split)")
        loaded = loaded[split]
    return RawTable(loaded.to_polars(), lambda i: f"row {i + 1}")


def read_hf(source: str | Path, split: str) -> RawTable:
    """A Hugging Face dataset id, or a local dataset folder/script, via ``datasets.load_dataset``."""
    import datasets

    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the engine never prints
    try:
        loaded = datasets.load_dataset(str(source), split=split)
    # datasets raises many unrelated types here (ConnectionError, FileNotFoundError, ValueError,
    # DatasetNotFoundError, ...); all of them mean "this source cannot be loaded".
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        raise DataError(f"could not load '{source}' with datasets.load_dataset(split='{split}'): "
                        f"{type(exc).__name__}: {reason}. Offline, a Hugging Face Hub id loads only from the "
                        f"local cache; otherwise save the data as a local .jsonl/.csv/.parquet file "
                        f"(or a save_to_disk folder) and pass that path") from None
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return RawTable(loaded.to_polars(), lambda i: f"row {i + 1}")
