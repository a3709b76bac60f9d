"""The on-disk state of a job (scoring or training): status.json, progress.json, cancel handling.

Protocol shared by every job type, the job manager, the CLI and the app:
- ``<job_dir>/config.json``: what to do (written before launch, never changed after).
- ``<job_dir>/status.json``: {"state": queued|running|done|failed|cancelled, "pid", "created_at",
  "started_at", "ended_at", "error"} written atomically at every change of state.
- ``<job_dir>/progress.json``: the latest Progress as a dict (phase, done, total, fraction, eta_s).
- Cancel: SIGTERM to the pid (or a file ``<job_dir>/cancel``) sets the stop flag; loops stop at the
  next check, keep what they recorded, and the job ends with state "cancelled".
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from ..fileio import read_json, write_json
from ..progress import Progress

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"


def read_status(job_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(job_dir) / "status.json", default={}) or {}


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
    write_json(Path(job_dir) / "status.json", status)
    return status


def write_progress(job_dir: str | os.PathLike, progress: Progress) -> None:
    write_json(Path(job_dir) / "progress.json", progress.to_dict())


def read_progress(job_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(job_dir) / "progress.json", default={}) or {}


def request_cancel(job_dir: str | os.PathLike) -> None:
    """Ask a job to stop: drop a cancel file and signal its process if it is alive."""
    Path(job_dir, "cancel").touch()
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
        if not self.stopped and self.job_dir is not None and (self.job_dir / "cancel").exists():
            self.stopped = True
        return self.stopped
