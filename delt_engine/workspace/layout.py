"""The workspace on disk and its run registry (architecture.md, "The workspace").

Layout under the root: ``datasets/``, ``scores/``, ``runs/<id>/``, ``comparisons/<id>/``, ``cache/``.
A run directory is the single source of truth for a run (config.json, status.json, progress.json,
metrics.jsonl, summary.json), so runs launched by the app, the CLI or another process all appear here.
Listing reads only the small JSON files and the tail of metrics.jsonl; it never parses whole curves.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import DataError
from ..fileio import iter_jsonl_tolerant, read_json
from ..jobs.protocol import (DAMAGED_STATE, FINAL_STATES, METRICS_FILE, log_tail, read_progress, read_status,
                             refresh_status)

SUBDIRS = ("datasets", "scores", "runs", "comparisons", "cache")
TAIL_BYTES = 16384  # enough for the last train record and the last eval record
# A run id, comparison id or dataset name: one plain folder name (never '..', a '/' or an absolute path).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def default_workspace() -> "Workspace":
    """The workspace named by the ``DELT_WORKSPACE`` environment variable, else ``./workspace``."""
    return Workspace(os.environ.get("DELT_WORKSPACE") or "workspace")


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


def check_id(value: Any, kind: str = "run id") -> str:
    """``value`` when it is a plain id usable as one folder name (``ID_PATTERN``), else DataError.

    Args:
        value: a run id, comparison id or dataset name from a user, a URL or a manifest.
        kind: what it is, for the message ("run id", "comparison id", "dataset name").

    Returns:
        ``value`` unchanged.
    """
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise DataError(f"{kind} {value!r} is not valid: it must be 1-128 letters, digits, '.', '_' or '-', "
                        f"starting with a letter or digit (no '/', no '..'); give the id as `runs list` shows it")
    return value


@dataclass(frozen=True)
class RunInfo:
    """One line of the run registry (cheap to build: no metrics parsing)."""

    id: str
    dir: Path
    state: str  # queued|running|done|failed|cancelled, or "created" before it was submitted
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    model: str | None = None
    ordering: str | None = None  # ordering label, e.g. "folding L=3"
    seed: int | None = None
    comparison: str | None = None
    arm: str | None = None
    progress: float | None = None  # fraction of the training steps done, 0..1
    phase: str | None = None  # current phase of the job (e.g. "setup", "train")
    gpu: str | None = None  # the CUDA device the job manager gave it, when jobs are spread over several
    last_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


@dataclass
class RunRecord:
    """Everything recorded for one run."""

    id: str
    dir: Path
    config: dict
    status: dict
    progress: dict
    metrics: pl.DataFrame
    summary: dict


class Workspace:
    """A workspace directory; subfolders are created on first use."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    datasets = property(lambda self: self._sub("datasets"))
    scores = property(lambda self: self._sub("scores"))
    runs = property(lambda self: self._sub("runs"))
    comparisons = property(lambda self: self._sub("comparisons"))
    cache = property(lambda self: self._sub("cache"))

    def new_run_dir(self, prefix: str = "run") -> Path:
        """Create and return an empty run directory with a fresh unique id."""
        return _new_dir(self.runs, prefix)

    def new_comparison_dir(self, prefix: str = "cmp") -> Path:
        """Create and return an empty comparison directory with a fresh unique id."""
        return _new_dir(self.comparisons, prefix)

    def run_dir(self, run_id: str | os.PathLike) -> Path:
        """The directory of run ``run_id``: a run id, the path of a folder directly inside this
        workspace's ``runs/`` (e.g. ``ws/runs/run-...``, as `runs list` shows it), or the path of a run
        folder elsewhere (one holding a ``config.json``, e.g. made by ``train --run-dir``).

        Raises:
            DataError: an id that is not a plain folder name (``..``, ``/``), a path that is neither
                inside ``<root>/runs`` nor a run folder, or a run that does not exist.
        """
        runs = self.root / "runs"
        name = str(run_id)
        path = Path(name)
        if path.is_absolute() or len(path.parts) > 1:
            if path.parent.resolve() != runs.resolve():
                if path.is_dir() and (path / "config.json").is_file():
                    return path
                raise DataError(f"{name!r} is neither a run of this workspace ({runs}) nor a run folder (no "
                                "config.json in it); give a run id as `runs list` shows it (or --workspace for "
                                "another workspace)")
            name = path.name
        check_id(name, "run id")
        path = runs / name
        if not path.is_dir():
            raise DataError(f"run {name!r} not found in {runs}; list runs with `runs list`")
        return path

    def list_runs(self, comparison: str | None = None, reap: bool = True) -> list[RunInfo]:
        """Every run in the workspace, oldest first, with reaping of dead processes.

        Args:
            comparison: keep only runs of this comparison id.
            reap: mark runs whose process died without a final status as failed.
        """
        runs_root = self.root / "runs"
        if not runs_root.is_dir():
            return []
        infos = []
        for entry in sorted(os.scandir(runs_root), key=lambda e: e.name):
            if not entry.is_dir():
                continue
            try:
                info = run_info(Path(entry.path), reap=reap)
            except (OSError, ValueError) as exc:  # a damaged file must not hide every other run
                info = RunInfo(entry.name, Path(entry.path), "unknown", error=f"unreadable run files: {exc}")
            if comparison is None or info.comparison == comparison:
                infos.append(info)
        return infos

    def load_run(self, run_id: str) -> RunRecord:
        """Config, status, progress, full metrics (as a polars frame) and summary of one run."""
        path = self.run_dir(run_id)
        status = refresh_status(path)
        records, _ = read_metrics(path)
        return RunRecord(path.name, path, read_json(path / "config.json", default={}) or {}, status,
                         read_progress(path), metrics_frame(records),
                         read_json(path / "summary.json", default={}) or {})

    def comparison_dir(self, comparison_id: str) -> Path:
        """The folder of comparison ``comparison_id`` (DataError naming the known ones when missing,
        and for an id that is not a plain folder name)."""
        check_id(comparison_id, "comparison id")
        path = self.root / "comparisons" / comparison_id
        if not (path / "comparison.json").exists():
            known = ", ".join(c["id"] for c in self.list_comparisons()) or "none yet"
            raise DataError(f"comparison {comparison_id!r} not found in {self.root / 'comparisons'} (known: {known})")
        return path

    def load_comparison(self, comparison_id: str) -> dict:
        """The comparison manifest (spec, run ids, arm labels).

        Raises:
            DataError: an unknown id, or a damaged manifest (not JSON, or runs without a valid
                id, arm and seed), naming the file.
        """
        path = self.comparison_dir(comparison_id) / "comparison.json"
        manifest = read_json(path)
        _check_manifest(manifest, path)
        return manifest

    def list_comparisons(self, include_damaged: bool = False) -> list[dict]:
        """Every comparison manifest, oldest first.

        Args:
            include_damaged: also list comparisons whose manifest cannot be read, as
                ``{"id": folder name, "damaged": message}`` (otherwise they are left out, so one damaged
                file never hides the others).
        """
        root = self.root / "comparisons"
        if not root.is_dir():
            return []
        found = []
        for folder in sorted(root.iterdir()):
            path = folder / "comparison.json"
            if not path.exists():
                continue
            try:
                manifest = read_json(path)
                _check_manifest(manifest, path)
            except (DataError, OSError) as exc:
                if include_damaged:
                    found.append({"id": folder.name, "damaged": str(exc)})
                continue
            if manifest:
                found.append(manifest)
        return found

    def comparison_curves(self, comparison_id: str) -> pl.DataFrame:
        """The curves frame (run, arm, seed, step, tokens, metrics...) of every run of a comparison."""
        manifest = self.load_comparison(comparison_id)
        frames = []
        for run in manifest.get("runs", []):
            path = self.root / "runs" / run["id"]
            records, _ = read_metrics(path)
            if not records:
                continue
            frame = metrics_frame(records)
            frames.append(frame.select(pl.lit(run["id"]).alias("run"), pl.lit(run["arm"]).alias("arm"),
                                       pl.lit(int(run["seed"])).alias("seed"), pl.all()))
        if not frames:
            raise DataError(f"no run of comparison {comparison_id!r} has recorded metrics yet; "
                            "wait for the runs to start (see `runs list --comparison ...`)")
        return pl.concat(frames, how="diagonal_relaxed")


def _check_manifest(manifest: Any, path: Path) -> None:
    """DataError naming ``path`` unless it holds an object whose runs each have a plain run id, an arm
    and an integer seed (the ids become folder names under runs/)."""
    fix = "restore the file, or delete its comparison folder"
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: damaged manifest: expected a JSON object; {fix}")
    runs = manifest.get("runs", [])
    if not isinstance(runs, list):
        raise DataError(f"{path}: damaged manifest: 'runs' is not a list; {fix}")
    for number, run in enumerate(runs, start=1):
        if not (isinstance(run, dict) and isinstance(run.get("id"), str) and "arm" in run and "seed" in run):
            raise DataError(f"{path}: damaged manifest: run {number} lacks an id, arm or seed; {fix}")
        try:
            check_id(run["id"], "run id")
            int(run["seed"])
        except (DataError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: damaged manifest: run {number}: {exc}; {fix}") from None


def _new_dir(parent: Path, prefix: str) -> Path:
    for _ in range(100):
        path = parent / new_id(prefix)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise DataError(f"could not create a new directory under {parent}; check that it is writable")


# ----------------------------------------------------------------------------- status and reaping

def run_info(run_dir: Path, reap: bool = True) -> RunInfo:
    """The registry entry of one run directory."""
    status = refresh_status(run_dir) if reap else read_status(run_dir)
    config = read_json(run_dir / "config.json", default={}) or {}
    prov = config.get("provenance") or {}
    prog = read_progress(run_dir)
    return RunInfo(
        id=run_dir.name, dir=run_dir, state=status.get("state", "created"),
        created_at=status.get("created_at"), started_at=status.get("started_at"), ended_at=status.get("ended_at"),
        error=status.get("error"), gpu=status.get("gpu"), model=_pick(config, prov, "model"),
        ordering=_ordering_label(prov.get("ordering")) or _ordering_label(config.get("ordering")),
        seed=_pick(config, prov, "seed"), comparison=_pick(prov, config, "comparison"),
        arm=_pick(prov, config, "arm"), progress=_fraction(status.get("state"), prog), phase=prog.get("phase"),
        last_metrics=last_metrics(run_dir))


def _fraction(state: str | None, progress: dict) -> float | None:
    if state == "done":
        return 1.0
    if progress.get("phase") == "train":
        return progress.get("fraction")
    return 0.0 if state == "running" else None


def _pick(first: dict, second: dict, *keys: str):
    for key in keys:
        for source in (first, second):
            if isinstance(source, dict) and source.get(key) is not None:
                return source[key]
    return None


def _ordering_label(ordering) -> str | None:
    if isinstance(ordering, dict):
        return ordering.get("label") or ordering.get("method")
    return ordering if isinstance(ordering, str) else None


# ----------------------------------------------------------------------------- metrics

def read_metrics(run_dir: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Complete metrics records from byte ``offset`` on, and the offset to resume from.

    A live reader polls with the returned offset; an unfinished last line is left for the next call.
    """
    records, end = [], offset
    for record, end in iter_jsonl_tolerant(Path(run_dir) / METRICS_FILE, offset):
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
