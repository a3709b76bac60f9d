"""Trackers: a run's metrics in TensorBoard and MLflow, logged live or exported from metrics.jsonl.

metrics.jsonl stays the record of a run; trackers get a copy of it through one conversion
(``record_scalars`` and ``ScalarStream``) on both paths: live (``RunTrackers``, which jobs/train_job.py
wires into a training job's ``on_record``) and after the fact (``export_runs``, behind ``runs export
--format tensorboard|mlflow``).

Names. Every number of a record becomes a scalar named as metrics.jsonl and the curves CSV name it:
``train_loss``, ``lr``, ``tok_s``, ``tokens``, ``val_loss``, ``target_loss``, ``bench_acc``, per benchmark task
``bench.<task>.acc``, per group ``group_loss.<column>.<value>``; the record's ``step`` is the step.
``elapsed_s`` is not a scalar, it dates the event: live events carry the time they were logged, exported
ones the run's start (status.json ``started_at``) plus ``elapsed_s`` (time since the training loop
began, so they come out a little early by the set-up time). A name gets one value per step, the first
recorded (``tokens`` is in both the train and the eval record of a step, with the same value).
TensorBoard keeps the names as they are and stores 32-bit floats (the precision its scalar charts
read); MLflow keeps 64-bit values but allows only letters, digits, ``_ - .`` and spaces in names here,
so other characters become ``_`` there (``group_loss.kind._missing_``).

Where.

- TensorBoard: a live run writes ``<run>/tb/`` (``tensorboard --logdir <workspace>/runs`` shows every run,
  named ``<run id>/tb``); an export writes ``<out>/<arm>/seed<k>/``.
- MLflow: a file store (an ``mlruns`` folder: no server, nothing leaves the machine). A live run logs to
  ``$MLFLOW_TRACKING_URI`` when it is set, else to its workspace's store ``<workspace>/mlruns`` (for a run
  folder ``<workspace>/runs/<id>``), else to ``<run>/mlruns`` (a run folder anywhere else); an export
  writes the store ``<out>``. The experiment is the comparison id (``delt`` for a run outside any
  comparison), so a comparison's runs sit side by side; one MLflow run per DELT run, named
  ``"<arm> s<seed>"``, with the RunConfig as params (provenance flattened as ``provenance.*``) and tags
  ``delt.run_id``, ``delt.run_dir``, ``comparison``, ``arm``, ``seed`` and ``ordering``.
  MLflow 3 keeps file stores in maintenance mode and refuses them unless ``MLFLOW_ALLOW_FILE_STORE=true``:
  DELT sets that (unless it is set) before it opens one, and sets ``MLFLOW_DISABLE_TELEMETRY=true``
  (unless set) so MLflow sends nothing anywhere.

Optional dependencies: ``tensorboard`` (written through ``torch.utils.tensorboard``) and ``mlflow-skinny``,
the ``trackers`` extra. They are imported only when a tracker is asked for; when missing, a DeltError
says how to install them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..errors import Cancelled, ConfigError, DataError, DeltError
from ..fileio import read_json, write_json
from ..training.config import REPORT_TO_CHOICES
from .protocol import METRICS_FILE, file_lock, read_status
from .records import flatten_record, read_metrics

INSTALL_HINT = "pip install 'delt-studio[trackers]'"
TB_DIR = "tb"  # a live run's TensorBoard log dir, inside the run folder
MLRUNS = "mlruns"  # the MLflow file store folder (a workspace's, or a run folder's own)
TRACKERS_FILE = "trackers.json"  # where a live run's trackers write, their final state and any error
DEFAULT_EXPERIMENT = "delt"  # the MLflow experiment of runs outside any comparison
EXPORT_FORMATS = ("tensorboard", "mlflow")
NOT_SCALARS = ("step", "elapsed_s")  # the step axis and the event's time
# MLflow's status per DELT final state (an unfinished run exported as it stands stays RUNNING)
MLFLOW_STATUS = {"done": "FINISHED", "cancelled": "KILLED", "failed": "FAILED", "unknown": "FAILED"}
_MLFLOW_BAD_CHARS = re.compile(r"[^\w.\- ]")
_MLFLOW_KEY_MAX, _MLFLOW_PARAM_MAX, _MLFLOW_BATCH = 250, 6000, 100


# ---------------------------------------------------------------------------------------- conversion


def record_scalars(record: dict) -> tuple[int, dict[str, float]] | None:
    """The scalars of one metrics record: (step, {name: value}), or None for a record without a step.

    Args:
        record: a metrics.jsonl record (train or eval; nested ``bench`` / ``group_loss`` allowed).

    Returns:
        The step and every number of the record under its flattened name (``bench.<task>.acc``,
        ``group_loss.<column>.<value>``), except ``step`` and ``elapsed_s``; None values and text are left out.
    """
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        return None
    flat = flatten_record(record)
    return step, {k: float(v) for k, v in flat.items() if k not in NOT_SCALARS and _is_number(v)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ScalarStream:
    """``record_scalars`` over a run's records in order, keeping one value per name and step (the first)."""

    def __init__(self):
        self._last_step: dict[str, int] = {}

    def scalars(self, record: dict) -> tuple[int, dict[str, float]] | None:
        """(step, new scalars of this record), or None when it has no step or nothing new."""
        converted = record_scalars(record)
        if converted is None:
            return None
        step, values = converted
        fresh = {k: v for k, v in values.items() if self._last_step.get(k, -1) < step}
        self._last_step.update(dict.fromkeys(fresh, step))
        return (step, fresh) if fresh else None


def mlflow_name(name: str) -> str:
    """``name`` as MLflow accepts it: characters other than letters, digits, ``_ - .`` and space become
    ``_`` (no ``/``, so a name never reads as a path in the file store), at most 250 characters."""
    return _MLFLOW_BAD_CHARS.sub("_", name)[:_MLFLOW_KEY_MAX] or "_"


# ---------------------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class RunLabels:
    """How a DELT run is named in the trackers."""

    run_id: str
    run_dir: Path
    comparison: str | None = None
    arm: str | None = None
    seed: int | None = None
    ordering: str | None = None

    @classmethod
    def from_config(cls, run_dir: str | os.PathLike, config: dict) -> RunLabels:
        """Labels from a run's config.json (its provenance names the comparison, arm and seed)."""
        prov = config.get("provenance") if isinstance(config.get("provenance"), dict) else {}
        ordering = prov.get("ordering")
        ordering = (ordering.get("label") or ordering.get("method")) if isinstance(ordering, dict) else ordering
        seed = prov.get("seed", config.get("seed"))
        return cls(
            Path(run_dir).name,
            Path(run_dir),
            prov.get("comparison"),
            prov.get("arm") or ordering,
            seed if _is_number(seed) else None,
            ordering if isinstance(ordering, str) else None,
        )

    @property
    def run_name(self) -> str:
        return f"{self.arm} s{self.seed}" if self.arm is not None else self.run_id

    @property
    def experiment(self) -> str:
        return self.comparison or DEFAULT_EXPERIMENT

    def tags(self) -> dict[str, str]:
        tags = {
            "delt.run_id": self.run_id,
            "delt.run_dir": str(Path(self.run_dir).resolve()),
            "comparison": self.comparison,
            "arm": self.arm,
            "seed": self.seed,
            "ordering": self.ordering,
        }
        return {k: str(v) for k, v in tags.items() if v is not None}

    def text(self) -> str:
        return "  \n".join(f"**{k}**: {v}" for k, v in self.tags().items())


def mlflow_params(config: dict) -> dict[str, str]:
    """The run config as MLflow params: flattened (``provenance.ordering.method``), values as text
    (JSON for numbers, lists and null), names and lengths as MLflow allows."""
    params = {}
    for key, value in flatten_record(config).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        params[mlflow_name(key)] = text[:_MLFLOW_PARAM_MAX]
    return params


# ---------------------------------------------------------------------------------------- imports


def import_tensorboard():
    """``torch.utils.tensorboard.SummaryWriter``, or a DeltError naming the extra when tensorboard is missing."""
    try:
        import tensorboard  # noqa: F401  (torch's writer needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise DeltError(
            f"report_to tensorboard needs the tensorboard package ({exc}); install it with {INSTALL_HINT}"
        ) from None
    return SummaryWriter


def import_mlflow():
    """``mlflow`` (from mlflow-skinny or mlflow), or a DeltError naming the extra when it is missing.

    Before the import: file stores allowed (MLflow 3 refuses them otherwise) and telemetry off, each
    unless already set in the environment.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        import mlflow
        import mlflow.entities  # noqa: F401
        import mlflow.tracking  # noqa: F401
    except ImportError as exc:
        raise DeltError(
            f"report_to mlflow needs MLflow ({exc}); install it with {INSTALL_HINT} (mlflow-skinny is enough)"
        ) from None
    return mlflow


_IMPORTS = {"tensorboard": import_tensorboard, "mlflow": import_mlflow}


def missing_packages(names: Iterable[str]) -> list[str]:
    """The trackers in ``names`` whose package is not installed (looked up, not imported: cheap)."""
    import importlib.util

    modules = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
    return [name for name in names if name in modules and importlib.util.find_spec(modules[name]) is None]


def check_installed(names: Iterable[str]) -> None:
    """Raise a DeltError naming the ``trackers`` extra unless every tracker in ``names`` can be imported."""
    for name in names:
        if name not in _IMPORTS:
            raise ConfigError(f"unknown tracker {name!r}; use any of {', '.join(REPORT_TO_CHOICES)}")
        _IMPORTS[name]()


# ---------------------------------------------------------------------------------------- writers


class TensorBoardWriter:
    """Scalars of one run as TensorBoard event files in ``log_dir`` (32-bit ``simple_value`` scalars:
    what every TensorBoard reads, its fast Rust loader included)."""

    name = "tensorboard"

    def __init__(self, log_dir: str | os.PathLike, labels: RunLabels, flush_secs: int = 5):
        summary_writer = import_tensorboard()
        self.log_dir = Path(log_dir)
        self.writer = summary_writer(log_dir=str(self.log_dir), flush_secs=flush_secs)
        self.writer.add_text("delt/run", labels.text(), 0)

    def log(self, step: int, scalars: dict[str, float], wall_time: float | None = None) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step, walltime=wall_time)

    def close(self, state: str | None, end_time: float | None = None) -> None:
        self.writer.close()

    def info(self) -> dict:
        return {"log_dir": str(self.log_dir.resolve())}


class MlflowWriter:
    """One MLflow run: created in the experiment (made on first use) with params and tags, then metrics."""

    name = "mlflow"

    def __init__(self, tracking_uri: str, labels: RunLabels, params: dict[str, str], start_time: float | None = None):
        mlflow = import_mlflow()
        self._entities = mlflow.entities
        self.tracking_uri = tracking_uri
        try:
            self.client, self.experiment_id = open_experiment(tracking_uri, labels.experiment)
            run = self.client.create_run(
                self.experiment_id, run_name=labels.run_name, tags=labels.tags(), start_time=_ms(start_time)
            )
        except DeltError:
            raise
        except Exception as exc:  # a store it cannot open (a bad URI, a server not reachable, ...)
            raise DeltError(
                f"could not open the MLflow store {tracking_uri}: {exc}; check MLFLOW_TRACKING_URI "
                f"(unset: the workspace's {MLRUNS} folder)"
            ) from None
        self.experiment, self.run_id = labels.experiment, run.info.run_id
        self._keys: dict[str, str] = {}
        items = [self._entities.Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _MLFLOW_BATCH])

    def _key(self, name: str) -> str:
        """The MLflow name of ``name``, unique within the run (``_2``, ... when two names clean to one)."""
        key = self._keys.get(name)
        if key is None:
            base = key = mlflow_name(name)
            taken = set(self._keys.values())
            n = 1
            while key in taken:
                n += 1
                key = f"{base[: _MLFLOW_KEY_MAX - 8]}_{n}"
            self._keys[name] = key
        return key

    def log(self, step: int, scalars: dict[str, float], wall_time: float | None = None) -> None:
        stamp = _ms(wall_time if wall_time is not None else time.time())
        metrics = [self._entities.Metric(self._key(k), v, stamp, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + _MLFLOW_BATCH])

    def close(self, state: str | None, end_time: float | None = None) -> None:
        if state in MLFLOW_STATUS:
            self.client.set_terminated(self.run_id, MLFLOW_STATUS[state], end_time=_ms(end_time))

    def info(self) -> dict:
        return {
            "tracking_uri": self.tracking_uri,
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
        }


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1000))


def open_experiment(tracking_uri: str, name: str):
    """(an MlflowClient of ``tracking_uri``, the id of experiment ``name``), the experiment created when
    missing. For a file store, opening it (which makes its default experiment the first time) and the
    check-then-create hold a lock on the store, so the runs of a comparison starting together make one
    experiment, not one each."""
    mlflow = import_mlflow()
    store = local_store(tracking_uri)
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
    with file_lock(store / ".delt-experiments.lock") if store is not None else contextlib.nullcontext():
        client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                return client, client.create_experiment(name)
            except Exception:  # another process made it first (a server or database: no lock of ours)
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise
    if found.lifecycle_stage != "active":
        raise DeltError(
            f"the MLflow experiment {name!r} in {tracking_uri} is deleted; restore it (mlflow "
            "experiments restore) or empty that store's .trash folder"
        )
    return client, found.experiment_id


def local_store(tracking_uri: str) -> Path | None:
    """The folder of a file store URI (``file:...`` or a plain path), else None (a database or server)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if not parsed.scheme or len(parsed.scheme) == 1:  # a path (a Windows drive letter reads as a scheme)
        return Path(tracking_uri)
    return None


def mlflow_store_for(run_dir: str | os.PathLike) -> str:
    """Where a live run logs to MLflow: ``$MLFLOW_TRACKING_URI``, else ``<workspace>/mlruns`` for a run
    folder ``<workspace>/runs/<id>``, else ``<run_dir>/mlruns``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    run_dir = Path(run_dir).resolve()
    root = run_dir.parent.parent if run_dir.parent.name == "runs" else run_dir
    return (root / MLRUNS).as_uri()


def _open(name: str, run_dir: Path, labels: RunLabels, config: dict):
    if name == "tensorboard":
        return TensorBoardWriter(run_dir / TB_DIR, labels)
    return MlflowWriter(mlflow_store_for(run_dir), labels, mlflow_params(config))


# ---------------------------------------------------------------------------------------- live


class RunTrackers:
    """The trackers one training job reports to (none when ``report_to`` is empty).

    ``on_record = trackers.wrap(write)`` sends every record to ``write`` (metrics.jsonl) and then to the
    trackers; ``with trackers:`` closes them however the block ends, after ``open()`` (a missing package
    raises DeltError there, before any training). ``finish(state)`` closes them with the run's outcome;
    an exception leaving the block closes them "failed" ("cancelled" for Cancelled or KeyboardInterrupt).
    A tracker that fails while the run goes never stops the run: its first error disables it, goes to
    stderr and into ``<run>/trackers.json`` (which also says where each tracker writes).
    """

    def __init__(self, config, run_dir: str | os.PathLike):
        self.names = tuple(config.report_to)
        self.config = config.to_dict()
        self.run_dir = Path(run_dir)
        self.writers: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.state: str | None = None
        self._stream = ScalarStream()

    def wrap(self, write: Callable[[dict], None]) -> Callable[[dict], None]:
        """``write`` followed by the trackers (``write`` alone when there are none)."""
        if not self.names:
            return write

        def on_record(record: dict) -> None:
            write(record)
            self.log(record)

        return on_record

    def open(self) -> None:
        """Open every tracker of ``report_to`` (all or none: one that fails closes the others)."""
        if not self.names:
            return
        labels = RunLabels.from_config(self.run_dir, self.config)
        try:
            for name in self.names:
                self.writers[name] = _open(name, self.run_dir, labels, self.config)
        except BaseException:
            for writer in self.writers.values():
                with contextlib.suppress(Exception):
                    writer.close("failed")
            self.writers = {}
            raise
        self._save()

    def log(self, record: dict, wall_time: float | None = None) -> None:
        """Send one record's scalars to every open tracker."""
        converted = self._stream.scalars(record) if self.writers else None
        if converted is None:
            return
        for name, writer in list(self.writers.items()):
            try:
                writer.log(*converted, wall_time)
            except Exception as exc:  # metrics.jsonl has the record: the run goes on without this tracker
                self._drop(name, f"writing step {converted[0]}: {exc}")

    def _drop(self, name: str, error: str) -> None:
        writer = self.writers.pop(name)
        self.errors[name] = error
        print(f"warning: {name} tracker stopped ({error}); metrics.jsonl keeps every record", file=sys.stderr)
        with contextlib.suppress(Exception):
            writer.close("failed")
        with contextlib.suppress(OSError):
            self._save()

    def finish(self, state: str) -> None:
        """Flush and close every tracker with the run's outcome ("done", "cancelled", "failed")."""
        if self.state is not None:
            return
        self.state = state
        for name, writer in list(self.writers.items()):
            try:
                writer.close(state)
            except Exception as exc:
                self.errors[name] = f"closing: {exc}"
        if self.names:
            self._save()

    def _save(self) -> None:
        write_json(
            self.run_dir / TRACKERS_FILE,
            {
                "report_to": list(self.names),
                "state": self.state,
                "errors": self.errors,
                **{name: writer.info() for name, writer in self.writers.items()},
            },
        )

    def __enter__(self) -> RunTrackers:
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            self.finish(self.state or "done")
        else:
            self.finish("cancelled" if isinstance(exc, (Cancelled, KeyboardInterrupt)) else "failed")
        return False


# ---------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportedRun:
    """One run of an export: where it went, or why it was skipped."""

    run_id: str
    target: str | None
    skipped: str | None = None


def export_runs(runs: Sequence[RunLabels], fmt: str, out_dir: str | os.PathLike) -> list[ExportedRun]:
    """Write finished or running runs, from their metrics.jsonl, as TensorBoard event files or MLflow runs.

    Args:
        runs: the runs (their folders and names), e.g. a comparison's.
        fmt: "tensorboard" (``<out_dir>/<arm>/seed<k>/``) or "mlflow" (the file store ``<out_dir>``,
            experiment = the comparison id).
        out_dir: the output folder (created).

    Returns:
        One entry per run. A run without metrics yet, or one already in ``out_dir`` (an earlier export,
        or a run that logged there live) is skipped, with the reason: a second copy would double its
        curves (delete its folder / MLflow run to write it again).
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"export format {fmt!r} is not known; use one of {', '.join(EXPORT_FORMATS)} (or csv)")
    check_installed([fmt])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = _tb_folders(runs)
    done = []
    for labels in runs:
        records, _ = read_metrics(labels.run_dir)
        if not records:
            done.append(ExportedRun(labels.run_id, None, f"no metrics in {Path(labels.run_dir) / METRICS_FILE}"))
        elif fmt == "tensorboard":
            done.append(_export_tensorboard(labels, records, out_dir / folders[labels.run_id]))
        else:
            done.append(_export_mlflow(labels, records, out_dir))
    return done


def _tb_folders(runs: Sequence[RunLabels]) -> dict[str, str]:
    """``<arm>/seed<k>`` per run (the run id where that is missing or repeats), as safe folder names."""
    names = {}
    for labels in runs:
        arm = export_folder_name(labels.arm) if labels.arm else None
        names[labels.run_id] = f"{arm}/seed{labels.seed}" if arm and labels.seed is not None else labels.run_id
    counts = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {run: (name if counts[name] == 1 else f"{name}-{run}") for run, name in names.items()}


def export_folder_name(arm: str) -> str:
    """An arm label as a folder name: runs of characters other than letters, digits, ``. _ -`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", arm).strip("._") or "arm"


def _run_times(run_dir: Path) -> tuple[float | None, float | None, str | None]:
    """(start, end) of a run as epoch seconds from its status.json, and its state."""
    status = read_status(run_dir)
    return _epoch(status.get("started_at")), _epoch(status.get("ended_at")), status.get("state")


def _epoch(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if isinstance(stamp, str) else None
    except ValueError:
        return None


def _replay(writer, records: list[dict], start: float | None) -> None:
    stream = ScalarStream()
    for record in records:
        converted = stream.scalars(record)
        if converted is None:
            continue
        elapsed = record.get("elapsed_s")
        wall = start + elapsed if start is not None and _is_number(elapsed) and math.isfinite(elapsed) else None
        writer.log(*converted, wall)


def _export_tensorboard(labels: RunLabels, records: list[dict], folder: Path) -> ExportedRun:
    if folder.is_dir() and any(folder.glob("events.out.tfevents.*")):
        return ExportedRun(labels.run_id, str(folder), f"{folder} already holds event files")
    start, end, state = _run_times(Path(labels.run_dir))
    writer = TensorBoardWriter(folder, labels, flush_secs=60)
    try:
        _replay(writer, records, start)
    finally:
        writer.close(state)
    return ExportedRun(labels.run_id, str(folder))


def _export_mlflow(labels: RunLabels, records: list[dict], out_dir: Path) -> ExportedRun:
    uri = out_dir.resolve().as_uri()
    existing = _mlflow_run_of(uri, labels)
    if existing is not None:
        return ExportedRun(labels.run_id, f"{uri} run {existing}", f"already in {uri} (MLflow run {existing})")
    config = read_json(Path(labels.run_dir) / "config.json", default={}) or {}
    if not isinstance(config, dict):
        raise DataError(f"{Path(labels.run_dir) / 'config.json'} is not a JSON object; restore it")
    start, end, state = _run_times(Path(labels.run_dir))
    writer = MlflowWriter(uri, labels, mlflow_params(config), start_time=start)
    try:
        _replay(writer, records, start)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close("failed")
        raise
    writer.close(state, end_time=end)
    return ExportedRun(labels.run_id, f"{uri} run {writer.run_id}")


def _mlflow_run_of(uri: str, labels: RunLabels) -> str | None:
    """The MLflow run that already holds DELT run ``labels.run_id`` in its experiment, if any."""
    client, experiment = open_experiment(uri, labels.experiment)
    hits = client.search_runs([experiment], filter_string=f"tags.`delt.run_id` = '{labels.run_id}'", max_results=1)
    return hits[0].info.run_id if hits else None
