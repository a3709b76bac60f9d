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
import errno
import gzip
import io
import json
import logging
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError, DataError
from ..fileio import json_problem

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "txt", "hf-disk", "hf")
SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".txt": "txt",
}
FILE_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "txt")
GZIP_SUFFIX = ".gz"  # any text format may be gzip-compressed: corpus.jsonl.gz, data.csv.gz, ...
TEXT_MODES = ("lines", "paragraphs", "file")
MAX_LISTED = 10  # how many bad line numbers a report keeps
JSON_BLANK = " \t\r"  # JSON whitespace that may pad a line (\n is the separator)
# Decompressed bytes a .gz source may expand to. Parsing a text of N bytes holds a few times N in memory
# (in the app: inside the server process), and a gzip bomb turns 1 MB into 1 GB; past the cap the read
# stops with a DataError. Raise it with the environment variable or the max_decompressed_bytes argument.
MAX_DECOMPRESSED_ENV = "DELT_MAX_DECOMPRESSED_BYTES"
DEFAULT_MAX_DECOMPRESSED_BYTES = 1_000_000_000  # 1 GB
READ_CHUNK = 1 << 20  # bytes decompressed per step
SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 10**6,
    "MB": 10**6,
    "G": 10**9,
    "GB": 10**9,
    "T": 10**12,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
# A Hugging Face Hub dataset id: owner/name, each part starting with a letter or digit, one slash.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# A split with an optional row slice that a stream can serve: train, train[:1000], train[100:200]
STREAM_SPLIT = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[\s*(\d*)\s*:\s*(\d*)\s*\])?\s*")


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
        source: a file, a directory, or a Hugging Face dataset id (``owner/name``).

    Returns:
        One of ``FORMATS``. A directory written by ``save_to_disk`` is "hf-disk", any other
        directory and a source that is not a local path but looks like a Hub id is "hf"
        (``datasets.load_dataset``).

    Raises:
        DataError: a path that does not exist (and is not shaped like a Hub id), a symbolic link
            loop or a broken link, or a file whose suffix names no format.
    """
    path = Path(source)
    if _stat_errno(path) == errno.ELOOP:
        raise missing_source_error(path)
    if path.is_dir():
        if any((path / name).exists() for name in ("dataset_dict.json", "state.json")):
            return "hf-disk"
        return "hf"
    suffix = path.suffix.lower()
    if suffix == GZIP_SUFFIX:
        inner = Path(path.name[: -len(GZIP_SUFFIX)]).suffix.lower()
        if SUFFIX_FORMATS.get(inner, "parquet") == "parquet":
            raise DataError(
                f"{path}: cannot tell what is compressed from the name; name it like corpus.jsonl.gz "
                f"(jsonl, json, csv, tsv or txt inside; Parquet files compress themselves)"
            )
        suffix = inner
    if suffix in SUFFIX_FORMATS:
        if not path.exists():
            raise missing_source_error(path)
        return SUFFIX_FORMATS[suffix]
    if path.exists():
        raise DataError(
            f"{path}: cannot tell the format from the suffix '{suffix}'; name the file "
            f"with one of {', '.join(SUFFIX_FORMATS)} or pass the format "
            f"(--format {'|'.join(FORMATS)})"
        )
    if looks_like_hub_id(source):
        return "hf"
    raise missing_source_error(path)


def looks_like_hub_id(source: str | Path) -> bool:
    """True when ``source`` has the shape of a Hugging Face Hub dataset id and is no local path.

    The shape: ``owner/name`` with exactly one slash, not starting with '.', '/' or '~', and no file
    suffix (a suffix with a letter, like ``.jsonl`` or ``.xyz``; a version like ``v1.2`` is fine).
    A source whose ``owner`` is a local folder is a path (``data/corpus`` with no such file), not an id.
    Only such sources are ever handed to ``datasets.load_dataset`` as a Hub id, so a mistyped path
    is reported as missing instead of being looked up on the Hub.
    """
    text = str(source)
    if not HUB_ID.fullmatch(text) or os.path.lexists(text) or os.path.isdir(text.split("/")[0]):
        return False
    suffix = Path(text).suffix
    return not any(c.isalpha() for c in suffix)


def _stat_errno(path: Path) -> int | None:
    """None when ``path`` can be stat'ed (it exists), else the errno that stat gave."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno or errno.ENOENT
    except ValueError:  # an embedded NUL byte
        return errno.EINVAL
    return None


def missing_source_error(path: Path) -> DataError:
    """The DataError for a source path that cannot be read as a file: a symbolic link loop, a broken
    link, a part of the path that is a file, a folder, or a path that does not exist."""
    code = _stat_errno(path)
    if code is None and os.path.isdir(path):
        return DataError(
            f"{path}: is a folder, not a file; give the file itself (a dataset folder needs --format hf-disk or hf)"
        )
    if code == errno.ELOOP:
        return DataError(
            f"{path}: symbolic link loop (too many levels of symbolic links); a link in this path "
            f"points back to itself: fix or remove the link"
        )
    if os.path.islink(path):
        return DataError(
            f"{path}: broken symbolic link to {os.readlink(path)} (the target does not exist); "
            f"fix the link or give the file itself"
        )
    if code == errno.ENOTDIR:
        return DataError(f"{path}: a part of this path is a file, not a folder; check the path")
    if code in (errno.EACCES, errno.EPERM):
        return DataError(f"{path}: permission denied; make the file readable or copy it somewhere readable")
    hint = "" if os.path.isabs(path) else f" (relative to {Path.cwd()})"
    return DataError(
        f"{path}: file not found{hint}; check the path (a Hugging Face Hub dataset id looks like owner/name)"
    )


def read_source(
    source: str | Path,
    fmt: str,
    *,
    text_field: str = "text",
    id_field: str | None = None,
    skip_bad_lines: bool = False,
    replace_invalid_utf8: bool = False,
    split: str = "train",
    text_mode: str = "lines",
    max_decompressed_bytes: int | str | None = None,
    name: str | None = None,
    streaming: bool = False,
    limit: int | None = None,
) -> RawTable:
    """Read ``source`` in format ``fmt`` into a RawTable (see the module docstring).

    ``max_decompressed_bytes`` caps what a ``.gz`` file may expand to (see ``decompression_cap``).
    ``name`` (a dataset config, e.g. "wikitext-2-raw-v1") and ``streaming`` apply to ``load_dataset``
    sources (fmt "hf"); ``split`` may slice rows ("train[:1000]", "train[10%:20%]") for "hf" and
    "hf-disk"; ``limit`` keeps the first N rows of any source (a stream stops reading there).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown corpus format '{fmt}'; use one of {', '.join(FORMATS)}")
    if text_mode not in TEXT_MODES:
        raise ConfigError(f"text_mode must be one of {', '.join(TEXT_MODES)}, got '{text_mode}'")
    _check_hf_options(fmt, name, streaming, limit)
    path = Path(source)
    if fmt == "hf":
        if _stat_errno(path) is not None and not looks_like_hub_id(source):
            raise missing_source_error(path)  # neither a local dataset folder/script nor a Hub id
        txt = _txt_folder_files(path)
        if txt and split == "train" and not streaming:
            return read_txt_folder(path, txt, text_mode, replace_invalid_utf8, max_decompressed_bytes, limit)
        return read_hf(source, split, name=name, streaming=streaming, limit=limit)
    if _stat_errno(path) is not None:
        raise missing_source_error(path)
    if fmt == "hf-disk":
        return read_hf_disk(path, split)
    if not path.is_file():
        raise missing_source_error(path)
    if fmt == "parquet":
        return read_parquet(path)
    raw, where = read_bytes(path, max_decompressed_bytes)
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


def read_bytes(path: Path, max_decompressed_bytes: int | str | None = None) -> tuple[bytes, str]:
    """The file's bytes, gunzipped for a ``.gz`` name, and how to name them in an error (byte offsets
    and line numbers of a compressed file count in its decompressed text).

    A ``.gz`` file is decompressed a chunk at a time and the read stops as soon as the text grows past
    ``decompression_cap(max_decompressed_bytes)`` bytes, so a gzip bomb never fills the memory.
    """
    if path.suffix.lower() != GZIP_SUFFIX:
        return path.read_bytes(), str(path)
    cap = decompression_cap(max_decompressed_bytes)
    out = io.BytesIO()
    with open(path, "rb") as packed:  # an unreadable file is an OSError here, not "not a gzip file"
        try:
            with gzip.GzipFile(fileobj=packed, mode="rb") as unpacked:
                while chunk := unpacked.read(min(READ_CHUNK, cap + 1 - out.tell())):
                    out.write(chunk)
                    if out.tell() > cap:
                        raise _over_cap_error(path, cap)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path}: not a complete gzip file ({exc}); re-compress it, or drop the .gz suffix if it is plain text"
            ) from None
    return out.getvalue(), f"{path} (decompressed)"


def decompression_cap(value: int | str | None = None) -> int:
    """Bytes a compressed source may expand to: ``value``, else ``$DELT_MAX_DECOMPRESSED_BYTES``,
    else ``DEFAULT_MAX_DECOMPRESSED_BYTES`` (1 GB).

    Args:
        value: a byte count, or a size such as "2GB", "4GiB", "500MB" (None: the environment or default).

    Returns:
        The cap in bytes (>= 1).

    Raises:
        ConfigError: a value that is not a positive size, naming where it came from.
    """
    if value is not None:
        return parse_size(value, "max_decompressed_bytes (--max-decompressed-bytes)")
    env = os.environ.get(MAX_DECOMPRESSED_ENV, "").strip()
    if env:
        return parse_size(env, f"the environment variable {MAX_DECOMPRESSED_ENV}")
    return DEFAULT_MAX_DECOMPRESSED_BYTES


def parse_size(value: int | str, where: str) -> int:
    """A positive byte count from an int or a string like "1500000", "2GB", "4 GiB", "0.5G"."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", str(value))
        unit = match.group(2).upper() if match else None
        if unit not in SIZE_UNITS:
            raise ConfigError(
                f"{where}: {value!r} is not a size; give bytes or a number with a unit, e.g. 2000000000, 2GB or 4GiB"
            )
        number = int(float(match.group(1)) * SIZE_UNITS[unit])
    if number < 1:
        raise ConfigError(f"{where}: the size must be at least 1 byte, got {value!r}")
    return number


def format_size(n_bytes: int) -> str:
    """A byte count for messages: "1 GB", "1.5 MB", "512 bytes"."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n_bytes >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{n_bytes} bytes"


def _over_cap_error(path: Path, cap: int) -> DataError:
    return DataError(
        f"{path}: decompresses to more than {format_size(cap)} ({cap:,} bytes), the cap on "
        f"decompressed input that guards against gzip bombs; if the file is genuine, raise the cap: "
        f"set {MAX_DECOMPRESSED_ENV} (e.g. {MAX_DECOMPRESSED_ENV}=8GB) or pass "
        f"--max-decompressed-bytes (max_decompressed_bytes=), or convert the corpus to Parquet"
    )


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
            raise DataError(
                f"{path}: invalid UTF-8 at byte offset {offset} (line {line}): "
                f"{exc.reason}; re-save the file as UTF-8, or replace bad bytes with U+FFFD: "
                f"replace_invalid_utf8=True (`delt import --replace-invalid-utf8` writes a repaired copy)"
            ) from None
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


def read_jsonl(
    path: Path, data: bytes, skip_bad_lines: bool = False, string_fields: tuple[str | None, ...] = ()
) -> RawTable:
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
    return RawTable(
        records_to_frame(records),
        lambda i: f"line {numbers[i]}",
        n_bad_lines_skipped=len(bad),
        bad_line_numbers=bad[:MAX_LISTED],
    )


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


def _jsonl_slow(
    path: Path, data: bytes, skip_bad_lines: bool, string_fields: tuple[str | None, ...]
) -> tuple[list[dict], list[int], list[int]]:
    """Line-by-line parse; returns (records, their line numbers, skipped bad line numbers)."""
    records, numbers, bad = [], [], []
    for number, line in enumerate(data.decode("utf-8").split("\n"), start=1):
        if not line.strip(JSON_BLANK):
            continue
        try:
            record = json.loads(line)
            problem = None if isinstance(record, dict) else f"is a JSON {json_kind(record)}, not an object"
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({json_problem(exc, line=False)})"
        if problem is not None:
            if not skip_bad_lines:
                raise DataError(
                    f"{path}: line {number} {problem}; each line must hold one JSON object: "
                    f"fix that line, or skip such lines: skip_bad_lines=True (`delt import --skip-bad-lines` "
                    f"writes a copy without them)"
                )
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
            raise DataError(
                f"{where}: field '{name}' is a JSON {json_kind(value)} ({shown}), not a string; "
                f"store the text as a string, or pick another field with --text-field"
            )


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
        hint = (
            "; it looks like JSON Lines (one object per line): rename it to .jsonl or pass --format jsonl"
            if exc.msg == "Extra data"
            else "; fix the file"
        )
        raise DataError(f"{path}: not valid JSON ({json_problem(exc)}){hint}") from None
    if not isinstance(value, list):
        raise DataError(
            f"{path}: expected a JSON array of objects ([{{...}}, ...]), found a JSON "
            f"{json_kind(value)}; for one object per line use a .jsonl file"
        )
    for index, record in enumerate(value, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {index} of the array is a JSON {json_kind(record)}, not an object")
        check_string_fields(record, string_fields, f"{path}: record {index}")
    return RawTable(records_to_frame(value), lambda i: f"record {i + 1}")


def read_csv(
    path: Path, data: bytes, text_field: str = "text", id_field: str | None = None, separator: str = ","
) -> RawTable:
    """Read a CSV (or, with ``separator="\\t"``, TSV) file with a header row; rows are labelled
    "row N" (1-based, header not counted).

    The text and id columns are read as strings (ids like "007" keep their zeros); an empty text
    cell is an empty text (dropped later and counted), not a missing one.
    """
    overrides = {name: pl.String for name in (text_field, id_field) if name}
    try:
        frame = pl.read_csv(
            io.BytesIO(data), schema_overrides=overrides, infer_schema_length=10000, separator=separator
        )
    except pl.exceptions.NoDataError:
        raise DataError(
            f"{path}: the file is empty; a CSV corpus needs a header row and one row per document"
        ) from None
    except pl.exceptions.PolarsError:
        frame = _read_csv_as_text(path, data, separator)
    if text_field in frame.columns and frame.schema[text_field] == pl.String:
        if frame[text_field].null_count():  # an empty cell, or a row too short to reach the column
            problem = _csv_problem(data, separator)
            if problem:
                raise DataError(f"{path}: cannot parse as CSV: {problem}; fix that line")
        frame = frame.with_columns(pl.col(text_field).fill_null(""))
    return RawTable(frame, lambda i: f"row {i + 1}")


def _csv_problem(data: bytes, separator: str) -> str | None:
    """The first line whose field count differs from the header's, or whose quote is never closed."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=separator, strict=True)
    try:
        header = next(reader, [])
        start = reader.line_num + 1
        for row in reader:
            if row and len(row) != len(header):
                return f"line {start} has {len(row)} fields but the header has {len(header)}"
            start = reader.line_num + 1
    except csv.Error as exc:
        if "end of data" in str(exc):
            return f"line {start} opens a quote that is never closed"
        return f"line {start}: {exc}"
    return None


def _read_csv_as_text(path: Path, data: bytes, separator: str = ",") -> pl.DataFrame:
    """Second try with every column as text (type inference failed); else name the bad line."""
    try:
        return pl.read_csv(io.BytesIO(data), infer_schema=False, separator=separator)
    except pl.exceptions.PolarsError as exc:
        reason = _csv_problem(data, separator) or str(exc).strip().splitlines()[0]
    raise DataError(f"{path}: cannot parse as CSV: {reason}; fix that line (quote fields that contain the separator)")


def read_parquet(path: Path) -> RawTable:
    """Read a Parquet file; rows are labelled "row N" (1-based)."""
    if not path.is_file():
        raise missing_source_error(path)
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from None
    return RawTable(frame, lambda i: f"row {i + 1}")


def read_txt(data: bytes, text_mode: str = "lines") -> RawTable:
    """Plain text: one document per line ("lines"), per blank-line separated block ("paragraphs"), or the
    whole file ("file")."""
    if text_mode == "file":
        text = data.decode("utf-8").replace("\r\n", "\n").rstrip("\n")
        return RawTable(pl.DataFrame({"text": [text]}, schema={"text": pl.String}), lambda i: "the file")
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


MAX_FOLDER_ENTRIES = 100_000  # a dataset folder holds data files, not a file system


def folder_files(folder: Path) -> list[Path]:
    """The files under a dataset folder, hidden ones (and those in hidden folders) aside, in path order.

    DataError, instead of a walk through a whole file system, when the folder holds more than
    ``MAX_FOLDER_ENTRIES`` entries or a part of it cannot be read (e.g. ``/`` with its ``/proc``)."""
    files, seen = [], 0
    for root, dirs, names in os.walk(folder, onerror=_raise_walk_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        seen += len(dirs) + len(names)
        if seen > MAX_FOLDER_ENTRIES:
            raise DataError(
                f"{folder}: holds more than {MAX_FOLDER_ENTRIES:,} files and folders; give the folder that "
                "holds the data files themselves"
            )
        files += [Path(root) / n for n in names if not n.startswith(".") and os.path.isfile(os.path.join(root, n))]
    return sorted(files)


def _raise_walk_error(exc: OSError) -> None:
    raise DataError(
        f"{exc.filename}: cannot be read while looking through the dataset folder ({exc.strerror or exc}); "
        "give the folder that holds the data files themselves"
    )


def _txt_folder_files(folder: Path) -> list[Path]:
    """The files of a local folder when every data file in it (hidden ones aside) is plain text
    (.txt, .txt.gz), in path order; else []."""
    if not folder.is_dir():
        return []
    files = folder_files(folder)
    txt = [p for p in files if p.name.lower().endswith((".txt", ".txt.gz"))]
    return txt if txt and len(txt) == len(files) else []


def read_txt_folder(
    folder: Path,
    files: list[Path],
    text_mode: str = "lines",
    replace_invalid_utf8: bool = False,
    max_decompressed_bytes: int | str | None = None,
    limit: int | None = None,
) -> RawTable:
    """A folder of text files, each read as ``read_txt`` reads one file (``text_mode``: a document per
    line, per paragraph, or per file), in path order; ``source_file`` says which file (relative path)
    each document came from. Rows are labelled "file.txt line N"."""
    frames, labels, replaced = [], [], 0
    for file in files:
        table = read_source(
            file,
            "txt",
            text_mode=text_mode,
            replace_invalid_utf8=replace_invalid_utf8,
            max_decompressed_bytes=max_decompressed_bytes,
        )
        replaced += table.n_invalid_utf8_replaced
        rel = file.relative_to(folder).as_posix()
        frames.append(table.frame.with_columns(pl.lit(rel, dtype=pl.String).alias("source_file")))
        labels += [f"{rel} {table.row_label(i)}" for i in range(table.frame.height)]
        if limit is not None and len(labels) >= limit:
            break
    frame = pl.concat(frames) if frames else pl.DataFrame(schema={"text": pl.String, "source_file": pl.String})
    if limit is not None:
        frame = frame.head(limit)
    table = RawTable(frame, lambda i: labels[i])
    table.n_invalid_utf8_replaced = replaced
    return table


def _check_hf_options(fmt: str, name: str | None, streaming: bool, limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r} must be a positive number of rows (--limit N)")
    if fmt != "hf" and (name is not None or streaming):
        given = " and ".join(o for o, v in (("a config name (--subset)", name), ("--streaming", streaming)) if v)
        raise ConfigError(
            f"{given} applies to datasets loaded with datasets.load_dataset (a Hub id or a dataset "
            f"folder), not to {fmt} input; drop it (--limit N keeps the first N rows of any input)"
        )


def read_hf_disk(path: Path, split: str) -> RawTable:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` (takes ``split``,
    which may slice rows like ``load_dataset``'s: "train[:100]", "train[10%:20%]", "train+test")."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read this datasets.save_to_disk folder: {exc}") from None
    if not isinstance(loaded, datasets.DatasetDict):
        if "[" not in split:
            return RawTable(loaded.to_polars(), lambda i: f"row {i + 1}")
        # one saved Dataset: the slice applies to it whatever the split's name
        loaded = datasets.DatasetDict({split.split("[")[0].strip(): loaded})
    try:
        instructions = datasets.ReadInstruction.from_spec(split).to_absolute({n: len(d) for n, d in loaded.items()})
    except (ValueError, AssertionError) as exc:
        raise DataError(
            f"{path}: split {split!r} does not fit this dataset ({exc}); available splits: "
            f"{', '.join(loaded)}; choose one with split= (--split), e.g. "
            f"{next(iter(loaded))} or {next(iter(loaded))}[:1000]"
        ) from None
    parts = [loaded[i.splitname].select(range(i.from_, i.to)) for i in instructions]
    chosen = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return RawTable(chosen.to_polars(), lambda i: f"row {i + 1}")


def read_hf(
    source: str | Path, split: str, name: str | None = None, streaming: bool = False, limit: int | None = None
) -> RawTable:
    """A Hugging Face dataset id, or a local dataset folder/script, via ``datasets.load_dataset``.

    Args:
        source: a Hub id ("wikitext", "owner/name") or a local dataset folder.
        split: a split, optionally sliced ("train[:1000]", "train[10%:20%]"; a stream takes
            "train[:N]" or "train[A:B]" only).
        name: the dataset config ("wikitext-2-raw-v1"); None takes the dataset's default.
        streaming: read rows as they come (no download of the whole split, no Arrow cache); with
            ``limit`` it stops after that many rows.
        limit: keep the first N rows.
    """
    import datasets

    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the engine never prints
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # its own error lines repeat what the DataError below says
    try:
        if streaming:
            frame = _read_stream(source, split, name, limit)
        else:
            loaded = datasets.load_dataset(str(source), name=name, split=split)
            if limit is not None and limit < len(loaded):
                loaded = loaded.select(range(limit))
            frame = loaded.to_polars()
    except (ConfigError, DataError):
        raise
    # datasets raises many unrelated types here (ConnectionError, FileNotFoundError, ValueError,
    # DatasetNotFoundError, ...); all of them mean "this source cannot be loaded".
    except Exception as exc:
        if Path(source).is_dir():
            _check_folder_files(Path(source))  # a file of a local folder that fails: named, with its line
        raise _load_dataset_error(source, split, name, streaming, exc) from None
    finally:
        logger.setLevel(level)
        if bars_were_on:
            datasets.enable_progress_bars()
    return RawTable(frame, lambda i: f"row {i + 1}")


def _check_folder_files(folder: Path) -> None:
    """Read every data file of a local dataset folder (by suffix, hidden ones skipped) with this module's
    own readers and raise the first one's DataError (file, line, byte), named as part of ``folder``."""
    for file in folder_files(folder):
        try:
            fmt = detect_format(file)
        except DataError:
            continue  # no data suffix: load_dataset ignores it too
        try:
            read_source(file, fmt, text_field=None)
        except DataError as exc:
            raise DataError(f"{folder}: one of its files cannot be loaded: {exc}") from None


def _read_stream(source: str | Path, split: str, name: str | None, limit: int | None) -> pl.DataFrame:
    """Rows of a streamed split (a plain split name, or a slice of non-negative row numbers)."""
    import datasets

    match = STREAM_SPLIT.fullmatch(split)
    if not match:
        raise ConfigError(
            f"split {split!r} cannot be streamed: a stream reads rows in order, so give a split "
            f"name with an optional row range (train, train[:1000], train[100:200]; no percent), "
            f"or drop --streaming"
        )
    base, start, stop = match.group(1), int(match.group(2) or 0), match.group(3)
    stream = datasets.load_dataset(str(source), name=name, split=base, streaming=True)
    count = None if not stop else max(int(stop) - start, 0)
    if limit is not None:
        count = limit if count is None else min(count, limit)
    if start:
        stream = stream.skip(start)
    if count is not None:
        stream = stream.take(count)
    rows = list(stream)
    if not rows:
        return pl.DataFrame()
    return datasets.Dataset.from_list(rows, features=stream.features).to_polars()


def _load_dataset_error(source, split: str, name: str | None, streaming: bool, exc: Exception) -> DataError:
    reason = " ".join(str(exc).split())[:400]
    call = f"split='{split}'" + (f", name='{name}'" if name else "") + (", streaming=True" if streaming else "")
    hint = ""
    if "config" in reason.lower():
        hint = " Pick the dataset's config with --subset NAME (name=), e.g. wikitext-2-raw-v1 for wikitext."
    elif "split" in reason.lower():
        hint = " Choose an existing split with --split (split=), e.g. train or train[:1000]."
    flags = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v, "") not in ("", "0")]
    offline = f" ({' and '.join(f'{v}=1' for v in flags)} set here)" if flags else ""
    return DataError(
        f"could not load '{source}' with datasets.load_dataset({call}): {type(exc).__name__}: "
        f"{reason}.{hint} Offline{offline}, a Hugging Face Hub id loads only from the local cache; "
        f"otherwise save the data as a local .jsonl/.csv/.parquet file (or a save_to_disk folder) "
        f"and pass that path"
    )
