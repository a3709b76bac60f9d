"""The on-disk state of a job (scoring or training): status.json, progress.json, cancel handling.

Protocol shared by every job type, the job manager, the CLI, the workspace registry and the app:
- ``<job_dir>/config.json``: what to do (written before launch, never changed after).
- ``<job_dir>/status.json``: {"state": queued|running|done|failed|cancelled, "pid", "created_at",
  "started_at", "ended_at", "error"} written atomically at every change of state.
- ``<job_dir>/progress.json``: the latest Progress as a dict (phase, done, total, fraction, eta_s).
- ``<job_dir>/metrics.jsonl`` (training runs): append-only records; ``summary.json``: final figures;
  ``job.log``: the job process's stdout and stderr (written by the job manager).
- Cancel: SIGTERM to the pid (or a file ``<job_dir>/cancel``) sets the stop flag; loops stop at the
  next check, keep what they recorded, and the job ends with state "cancelled".
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from ..errors import DataError, DeltError
from ..fileio import read_json, write_json
from ..progress import Progress

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
DAMAGED_STATE = "unknown"  # the registry state of a job whose status.json cannot be read

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOG_FILE = "job.log"
CANCEL_FILE = "cancel"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"


def read_status(job_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(job_dir) / STATUS_FILE, default={}) or {}


def write_status(job_dir: str | os.PathLike, state: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json with the new state (atomic)."""
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}")
    status = read_status(job_dir)
    status.update(fields)
    status["state"] = state
    status.setdefault("created_at", now_iso())
    if state == "running":
        status.setdefault("started_at", now_iso())
    if state in FINAL_STATES:
        status["ended_at"] = now_iso()
    write_json(Path(job_dir) / STATUS_FILE, status)
    return status


def write_progress(job_dir: str | os.PathLike, progress: Progress) -> None:
    write_json(Path(job_dir) / PROGRESS_FILE, progress.to_dict())


def read_progress(job_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(job_dir) / PROGRESS_FILE, default={}) or {}


class ProgressFile:
    """An ``on_progress`` callback that keeps ``<job_dir>/progress.json`` current without rewriting it
    for every step: at most every ``min_interval_s``, and always at a phase change or a phase's end."""

    def __init__(self, job_dir: str | os.PathLike, min_interval_s: float = 0.5, also=None):
        self.job_dir, self.min_interval_s, self.also = Path(job_dir), min_interval_s, also
        self.phase, self.last = None, 0.0

    def __call__(self, progress: Progress) -> None:
        if self.also is not None:
            self.also(progress)
        now = time.monotonic()
        if progress.phase != self.phase or progress.done >= progress.total or now - self.last >= self.min_interval_s:
            self.phase, self.last = progress.phase, now
            write_progress(self.job_dir, progress)


def error_message(exc: BaseException) -> str:
    """What status.json says about a failure: a DeltError's own message (it names the fix), else the
    exception type and message (a bug or a system error)."""
    return str(exc) if isinstance(exc, DeltError) else f"{type(exc).__name__}: {exc}"


class JobRun:
    """The status transitions of one job run in this process, shared by training and scoring jobs.

    ``with JobRun(job_dir) as job:`` writes "running" (with this pid); the body ends it with
    ``job.finish("done" | "cancelled", **fields)``. When an exception escapes instead, the job ends
    "cancelled" (Cancelled, KeyboardInterrupt) or "failed" with the message, and the exception goes on.
    With ``lead=False`` (a torchrun rank other than 0) nothing is written.
    """

    def __init__(self, job_dir: str | os.PathLike, lead: bool = True):
        self.job_dir, self.lead, self.state = Path(job_dir), lead, None

    def __enter__(self) -> "JobRun":
        if self.lead:
            write_status(self.job_dir, "running", pid=os.getpid(), error=None)
        return self

    def finish(self, state: str, **fields: Any) -> None:
        self.state = state
        if self.lead:
            write_status(self.job_dir, state, **{"error": None, **fields})

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or self.state is not None:
            return False
        from ..errors import Cancelled

        if isinstance(exc, (Cancelled, KeyboardInterrupt)):
            self.finish("cancelled")
        else:
            self.finish("failed", error=error_message(exc))
        return False


def request_cancel(job_dir: str | os.PathLike) -> None:
    """Ask a job to stop: drop a cancel file and signal its process if it is alive."""
    Path(job_dir, CANCEL_FILE).touch()
    pid = read_status(job_dir).get("pid")
    if pid and pid_alive(int(pid)):
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class StopFlag:
    """Callable stop flag for a job: true after SIGTERM/SIGINT or when ``<job_dir>/cancel`` exists."""

    def __init__(self, job_dir: str | os.PathLike | None = None, install_signals: bool = True):
        self.job_dir = Path(job_dir) if job_dir else None
        self.stopped = False
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    signal.signal(sig, self._on_signal)
                except ValueError:  # not in the main thread
                    pass

    def _on_signal(self, signum, frame) -> None:
        self.stopped = True

    def __call__(self) -> bool:
        if not self.stopped and self.job_dir is not None and (self.job_dir / CANCEL_FILE).exists():
            self.stopped = True
        return self.stopped


def refresh_status(job_dir: str | os.PathLike) -> dict:
    """Read status.json, first marking a job whose process is gone as failed (never 'running' forever).

    A running job whose ``pid`` is not alive, and a queued job whose job manager (``manager_pid``) is
    not alive, can never finish: they are marked failed with the reason. A status.json that cannot be
    read (empty, not JSON) gives ``{"state": "unknown", "error": <file, problem and fix>}`` and is left
    as it is, so a listing shows the damaged entry instead of failing.
    """
    job_dir = Path(job_dir)
    try:
        status = read_status(job_dir)
    except (DataError, OSError) as exc:
        return {"state": DAMAGED_STATE, "error": f"unreadable status file: {exc}", "damaged": True}
    if not isinstance(status, dict):
        return {"state": DAMAGED_STATE, "error": f"unreadable status file: {job_dir / STATUS_FILE} holds a JSON "
                f"{type(status).__name__}, not an object; delete the folder {job_dir} if it is no longer needed",
                "damaged": True}
    state = status.get("state")
    if state == "running" and status.get("pid") and not pid_alive(int(status["pid"])):
        return write_status(job_dir, "failed", error=f"process {status['pid']} exited without finishing "
                            "(killed or crashed)", log_tail=log_tail(job_dir))
    if state == "queued" and status.get("manager_pid") and not pid_alive(int(status["manager_pid"])):
        return write_status(job_dir, "failed", error=f"the job manager (process {status['manager_pid']}) exited "
                            "before launching this job; start it again")
    return status


def log_tail(job_dir: str | os.PathLike, n_lines: int = 20, max_bytes: int = 4096) -> str:
    """The last lines of ``<job_dir>/job.log`` (stdout and stderr of the job), or ''."""
    try:
        with open(Path(job_dir) / LOG_FILE, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-n_lines:])
