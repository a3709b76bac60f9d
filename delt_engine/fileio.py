"""Atomic writes, tolerant readers and fresh unique folders for the workspace files (JSON, JSONL, Parquet)."""

from __future__ import annotations

import errno
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import DataError

# errno values of a folder fsync that the file system does not support (the rename itself succeeded)
_DIR_FSYNC_UNSUPPORTED = {
    errno.EINVAL,
    errno.EBADF,
    errno.EACCES,
    errno.EPERM,
    getattr(errno, "ENOTSUP", -1),
    getattr(errno, "EOPNOTSUPP", -1),
}


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename (never half-written).

    The file is flushed to disk before the rename and the folder after it, so after a crash ``path``
    holds either the old or the new content. The new file gets the permissions of any new file
    (0666 less the process umask, applied by the kernel; the umask is never read or changed here).

    Raises:
        DataError: ``path`` is an existing folder.
        OSError: the write failed (no permission, disk full, ...); ``filename`` is ``path``, and no
            temp file is left behind.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is an existing folder, not a file; write to another file name, or remove the folder")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # the parent "folder" is an existing file
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from exc
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    _fsync_folder(path.parent)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty, exclusively created temp file beside ``path``: (descriptor, its path).

    Created with mode 0666 so the kernel applies the umask, as for any new file (mkstemp's 0600
    would need the umask to be read, and reading it with os.umask changes it for every thread).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not create a temp file", str(path.parent))


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is on disk)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms where a folder cannot be opened (Windows) make renames durable themselves
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise _naming(exc, folder) from exc
    finally:
        os.close(fd)


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as raised for ``path`` (a failed write on a descriptor, or a rename of the temp file,
    would otherwise name no file or the temp file), so a message can say which file and why."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))  # the errno's subclass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as pretty JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file; return ``default`` when it does not exist.

    Raises:
        DataError: the file is empty, not UTF-8 or not valid JSON, naming the file and the fix.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return default
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte offset {exc.start})"
    except json.JSONDecodeError as exc:
        problem = "empty" if not raw.strip() else f"not valid JSON ({json_problem(exc)})"
    raise DataError(
        f"{path}: damaged file: {problem}; restore it from a copy, or delete it (or the folder "
        f"holding it) if that entry is no longer needed"
    )


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Atomically write records as JSON lines; returns how many were written."""
    lines = [json.dumps(r, ensure_ascii=False, default=str) for r in records]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line and flush it to disk (readers see live data; a crash loses one line at most)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def iter_jsonl_tolerant(path: str | os.PathLike, offset: int = 0) -> Iterator[tuple[dict, int]]:
    """Yield (record, end_offset) for each complete line from byte ``offset`` on.

    A last line without its newline (being written right now) is not yielded, so a live
    reader can resume from the returned offset later and never sees a partial record.
    """
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(offset)
        pos = offset
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            pos += len(raw)
            line = raw.strip()
            if not line:
                continue
            try:
                yield json.loads(line), pos
            except json.JSONDecodeError:
                continue


def json_problem(exc: json.JSONDecodeError, line: bool = True) -> str:
    """What a JSONDecodeError says and where, as words: "Expecting ',' delimiter at line 3, column 7"
    (``json``'s own messages like "Unterminated string starting at" already end in "at")."""
    msg = exc.msg[: -len(" at")] if exc.msg.endswith(" at") else exc.msg
    return f"{msg} at line {exc.lineno}, column {exc.colno}" if line else f"{msg} at column {exc.colno}"


def json_object_line(line: str, where: str, expected: str) -> dict:
    """One JSONL line as a dict; DataError at ``where`` ("file:line") when it is not valid JSON or
    not an object (``expected`` names what the object should hold)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({json_problem(exc, line=False)}); fix or remove the line") from exc
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with {expected}")
    return record


# ----------------------------------------------------------------------------- new folders

_LAST_MS = [0]
_ID_LOCK = threading.Lock()


def new_id(prefix: str = "run") -> str:
    """A unique, time-sortable id: ``<prefix>-YYYYmmdd-HHMMSS-<ms><4 hex>``. Within a process the
    millisecond never repeats (a second id in the same millisecond takes the next one), so ids made one
    after another sort in the order they were made (a comparison's runs list in launch order)."""
    with _ID_LOCK:
        ms = max(int(time.time() * 1000), _LAST_MS[0] + 1)
        _LAST_MS[0] = ms
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(ms / 1000))
    return f"{prefix}-{stamp}-{ms % 1000:03d}{secrets.token_hex(2)}"


def new_dir(parent: Path, prefix: str) -> Path:
    """Create and return ``parent/<new_id(prefix)>`` (a fresh, unique, time-sortable folder)."""
    for _ in range(100):
        path = parent / new_id(prefix)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise DataError(f"could not create a new directory under {parent}; check that it is writable")
