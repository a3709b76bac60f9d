"""The workspace on disk (architecture.md, "The workspace"): its folders, its one id scheme, and the
registries of runs and comparisons.

Layout under the root: ``datasets/``, ``scores/<id>/``, ``runs/<id>/``, ``comparisons/<id>/``, ``cache/``.
A run directory is the single source of truth for a run (config.json, status.json, progress.json,
metrics.jsonl, summary.json), so runs launched by the app, the CLI or another process all appear here.
Every new folder (run, comparison, scoring) gets an id from ``fileio.new_id``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import DataError
from ..fileio import new_dir, read_json
from ..jobs.protocol import read_progress, refresh_status
from ..jobs.records import metrics_frame, read_metrics
from .runs import RunInfo, RunRecord, run_info

SUBDIRS = ("datasets", "scores", "runs", "comparisons", "cache")
# A run id, comparison id or dataset name: one plain folder name (never '..', a '/' or an absolute path).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def default_workspace() -> Workspace:
    """The workspace named by the ``DELT_WORKSPACE`` environment variable, else ``./workspace``."""
    return Workspace(os.environ.get("DELT_WORKSPACE") or "workspace")


def check_id(value: Any, kind: str = "run id") -> str:
    """``value`` when it is a plain id usable as one folder name (``ID_PATTERN``), else DataError.

    Args:
        value: a run id, comparison id or dataset name from a user, a URL or a manifest.
        kind: what it is, for the message ("run id", "comparison id", "dataset name").

    Returns:
        ``value`` unchanged.
    """
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise DataError(
            f"{kind} {value!r} is not valid: it must be 1-128 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (no '/', no '..'); give the id as `runs list` shows it"
        )
    return value


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
        return new_dir(self.runs, prefix)

    def new_comparison_dir(self, prefix: str = "cmp") -> Path:
        """Create and return an empty comparison directory with a fresh unique id."""
        return new_dir(self.comparisons, prefix)

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
                raise DataError(
                    f"{name!r} is neither a run of this workspace ({runs}) nor a run folder (no "
                    "config.json in it); give a run id as `runs list` shows it (or --workspace for "
                    "another workspace)"
                )
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
        return RunRecord(
            path.name,
            path,
            read_json(path / "config.json", default={}) or {},
            status,
            read_progress(path),
            metrics_frame(records),
            read_json(path / "summary.json", default={}) or {},
        )

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
            frames.append(
                frame.select(
                    pl.lit(run["id"]).alias("run"),
                    pl.lit(run["arm"]).alias("arm"),
                    pl.lit(int(run["seed"])).alias("seed"),
                    pl.all(),
                )
            )
        if not frames:
            raise DataError(
                f"no run of comparison {comparison_id!r} has recorded metrics yet; "
                "wait for the runs to start (see `runs list --comparison ...`)"
            )
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
