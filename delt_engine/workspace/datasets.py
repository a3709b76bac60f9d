"""Datasets of the workspace: the demo corpus (generated on demand) and imported corpora.

An imported dataset lives in ``<workspace>/datasets/<name>/`` as ``corpus.parquet`` plus
``manifest.json`` (source, text field, counts, content hash, import report), and optionally its own
target set and benchmark under ``eval/``. The demo lives in ``datasets/demo-s<seed>-n<docs>/`` (JSONL,
see ``demo.generate.ensure_demo``). Functions that resolve the demo take its folder when the caller
already has it (the app caches it), else they make sure it exists.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from ..errors import DataError
from ..fileio import atomic_write_bytes, read_json, write_json
from .layout import check_id

DEMO = "demo"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UPLOADS = ("cache", "uploads")  # where the app keeps uploaded files, under the workspace
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def demo_folder(root: Path, n_docs: int | None = None) -> Path:
    """Folder with the demo's corpus.jsonl, target.jsonl and benchmark.jsonl (generated when missing)."""
    from ..demo.generate import ensure_demo

    return ensure_demo(root, n_docs=n_docs)


def imported_names(root: Path) -> list[str]:
    base = root / "datasets"
    if not base.is_dir():
        return []
    # The demo's own folders (datasets/demo-s*-n*/) hold JSONL, not corpus.parquet, so they are not listed.
    return sorted(
        p.name
        for p in base.iterdir()
        if (p / "manifest.json").exists() and (p / "corpus.parquet").exists() and p.name != DEMO
    )


def names(root: Path) -> list[str]:
    """Every dataset the app can use, demo first."""
    return [DEMO] + imported_names(root)


def corpus_path(root: Path, name: str, demo: Path | None = None) -> Path:
    """The corpus file of dataset ``name`` (``demo``: the demo's folder, when the caller has it)."""
    if name == DEMO:
        return (demo or demo_folder(root)) / "corpus.jsonl"
    check_id(name, "dataset name")
    path = root / "datasets" / name / "corpus.parquet"
    if not path.exists():
        raise DataError(f"dataset {name!r} has no corpus file at {path}; import it again on the Data page")
    return path


def manifest(root: Path, name: str) -> dict:
    """The dataset's manifest (source, text field, counts, hash, its own target/benchmark paths)."""
    if name == DEMO:
        return {"name": DEMO, "source": "generated demo corpus (planted structure: clean / noise / difficulty)"}
    check_id(name, "dataset name")
    return read_json(root / "datasets" / name / "manifest.json", default={}) or {}


def eval_paths(root: Path, name: str, demo: Path | None = None) -> dict[str, str | None]:
    """Target set and benchmark of dataset ``name`` for LQS/PDS and evaluation.

    The demo has its own (``target.jsonl``, ``benchmark.jsonl`` in its folder). An imported dataset has
    only what was given it on the Data page (``set_eval_file``); the demo's fictional-world target and
    benchmark say nothing about a user's data, so they are never lent to it.

    Returns:
        {"target": path or None, "benchmark": path or None}. With no target, LQS/PDS cannot run and a
        comparison reports no ``target_loss``; with no benchmark it reports no benchmark accuracy.
    """
    info = manifest(root, name)
    if name != DEMO:
        return {key: info.get(key) or None for key in ("target", "benchmark")}
    folder = demo or demo_folder(root)
    return {
        key: str(folder / f"{key}.jsonl") if (folder / f"{key}.jsonl").exists() else None
        for key in ("target", "benchmark")
    }


def check_name(name: str, root: Path | None = None) -> str:
    """A new dataset's name, stripped; DataError unless it is a plain folder name of at most 64 characters."""
    name = (name or "").strip()
    if name == DEMO or not NAME_RE.match(name):
        raise DataError(
            f"dataset name {name!r} is not allowed; use letters, digits, '-', '_' or '.' (at most 64, not 'demo')"
        )
    return name


def save_upload(root: Path, filename: str, data: bytes) -> Path:
    """Store an uploaded file's bytes as a new file under ``<root>/cache/uploads/`` and return its path.

    Every upload gets a file of its own (``<time>-<random>-<name>``), written atomically, so a second
    upload with the same name never replaces the first one, which an earlier dataset's manifest
    names as its source. The name keeps only letters, digits, '.', '_' and '-' of the uploaded
    name's last part, and its suffixes (``.jsonl.gz``), which tell the reader the format; a name
    like ``..`` or ``/`` becomes ``upload``.

    Raises:
        OSError: the file could not be written (its ``filename`` is the target).
    """
    from ..fileio import atomic_write_bytes

    name = _UNSAFE.sub("-", str(filename).replace("\\", "/").rsplit("/", 1)[-1])
    if not name.strip(".-_"):
        name = "upload"
    elif name.startswith("."):
        name = "upload" + name
    if len(name) > 120:  # keep the suffixes, shorten the stem (file names are limited to 255 bytes)
        suffix = "".join(Path(name).suffixes)[-24:]
        name = name[: 120 - len(suffix)] + suffix
    folder = Path(root).joinpath(*UPLOADS)
    for _ in range(100):
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}-{name}"
        if not path.exists():
            atomic_write_bytes(path, data)
            return path
    raise DataError(f"could not find a free file name in {folder}; check that it is writable")


def save_import(root: Path, name: str, loaded, source: str, text_field: str) -> Path:
    """Store a loaded corpus as ``datasets/<name>/corpus.parquet`` + ``manifest.json``; returns the folder."""
    from ..data.corpus import write_records

    name = check_name(name, root)
    folder = root / "datasets" / name
    if (folder / "manifest.json").exists():  # scores and runs refer to it: never replace it in place
        raise DataError(f"a dataset named {name!r} already exists; choose another name (or delete {folder})")
    folder.mkdir(parents=True, exist_ok=True)
    frame = loaded.frame
    write_records(frame, folder / "corpus.parquet")
    write_json(
        folder / "manifest.json",
        {
            "name": name,
            "source": source,
            "text_field": text_field,
            "n_documents": frame.height,
            "columns": frame.columns,
            "imported_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "report": loaded.report.to_dict(),
            "summary": loaded.report.summary(),
            "content_hash": loaded.report.content_hash,
        },
    )
    return folder


def set_eval_file(root: Path, name: str, kind: str, source: str, text_field: str = "text") -> Path:
    """Give dataset ``name`` its own target set (``kind="target"``: clean text for LQS/PDS and
    target_loss) or benchmark (``kind="benchmark"``: multiple-choice JSONL), checked and copied into the
    dataset folder (the source file is only read); the manifest then points at the copy.

    Raises:
        DataError naming the file, line and fix (as corpus import and benchmark loading do).
    """
    from ..data.corpus import load_corpus, write_records

    if name == DEMO:
        raise DataError("the demo brings its own target set and benchmark; import a dataset to give it others")
    folder = root / "datasets" / name
    info = manifest(root, name)
    if not info:
        raise DataError(f"dataset {name!r} has no manifest in {folder}; import it again on the Data page")
    if kind == "target":
        frame = load_corpus(source, text_field=text_field or "text").frame.select("id", "text")
        out = folder / "eval" / "target.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_records(frame, out)
    elif kind == "benchmark":
        from ..data.benchmark import load_benchmark

        items = load_benchmark(source)  # raises DataError naming the line
        if not items:
            raise DataError(f"benchmark file {source} holds no items")
        out = folder / "eval" / Path(source).name  # same file name: items without "task" keep its stem
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, Path(source).read_bytes())
    else:
        raise ValueError(f"kind must be 'target' or 'benchmark', not {kind!r}")
    write_json(folder / "manifest.json", {**info, kind: str(out), f"{kind}_source": str(source)})
    return out
