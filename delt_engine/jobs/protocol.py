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

Job identity: a pid alone does not name a process for long (after a restart, containers hand out the
same small pids again), so status.json records with every pid the process's start time (``pid_start``,
clock ticks since boot, /proc/<pid>/stat field 22) and the machine's boot id (``boot_id``), and the job
manager's as ``manager_pid`` / ``manager_start``. A pid whose start time or boot id differs is another
process: the job is dead, and nothing here ever signals that process. Where /proc is missing (macOS,
Windows) the start time is unknown and a live pid counts as the job, as before. The host name is
recorded too (``host``): a process on another machine (a cluster job, ``jobs/cluster.py``, on a shared
filesystem) cannot be checked from here, so it is never reaped or signalled from here; its launcher
watches it, and a cancel file stops it.

Transitions: every read-modify-write of status.json holds an exclusive lock (``flock`` on
``<job_dir>/status.lock``), and ``write_status`` is a compare-and-set: by default a final state
(done, failed, cancelled) is never replaced, and ``expect`` names the states a change may start from.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere (Windows) transitions are not locked, see status_lock
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None

from ..errors import DataError, DeltError, JobError
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
LOCK_FILE = "status.lock"  # flock'ed around every read-modify-write of status.json
ACTIVE_STATES = ("queued", "running")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"


def read_status(job_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(job_dir) / STATUS_FILE, default={}) or {}


class StatusConflict(JobError):
    """A status change that the current state does not allow (compare-and-set failed)."""

    def __init__(self, job_dir: Path, current: str | None, wanted: str):
        self.job_dir, self.current, self.wanted = Path(job_dir), current, wanted
        super().__init__(
            f"job {self.job_dir.name} is {current or 'not started'}, so it cannot become {wanted} "
            f"({self.job_dir / STATUS_FILE}); a final state is kept, start a new job instead"
        )


_HELD = threading.local()  # lock files this thread holds, with their nesting depth


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created when missing), shared by every process on this machine.

    Re-entrant within a thread (a nested acquisition of the same file only counts); other threads
    and other processes wait. Where ``fcntl`` is missing (Windows) nothing is locked.
    """
    key = os.path.abspath(path)
    held = _HELD.__dict__.setdefault("depth", {})
    if key in held or fcntl is None:
        held[key] = held.get(key, 0) + 1
        try:
            yield
        finally:
            held[key] -= 1
            if not held[key]:
                del held[key]
        return
    fd = os.open(key, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held[key] = 1
        try:
            yield
        finally:
            del held[key]
    finally:
        os.close(fd)  # releases the lock


def status_lock(job_dir: str | os.PathLike):
    """The lock around a read-modify-write of ``<job_dir>/status.json`` (see ``file_lock``)."""
    return file_lock(Path(job_dir) / LOCK_FILE)


def _current(job_dir: Path) -> tuple[dict, str | None]:
    """status.json and its state; a damaged file reads as ({}, DAMAGED_STATE)."""
    try:
        status = read_status(job_dir)
    except (DataError, UnicodeDecodeError):
        return {}, DAMAGED_STATE
    if not isinstance(status, dict):
        return {}, DAMAGED_STATE
    return status, status.get("state")


def write_status(
    job_dir: str | os.PathLike, state: str, expect: Iterable[str | None] | str | None = None, **fields: Any
) -> dict[str, Any]:
    """Merge ``fields`` into status.json with the new state: atomic, under the job's lock, compare-and-set.

    A ``pid`` (or ``manager_pid``) among the fields gets its process's start time and the boot id
    recorded beside it (``process_fields``), unless the caller gives them.

    Args:
        state: the new state (one of STATES).
        expect: the states the current one must be in (None in it: no status yet; DAMAGED_STATE: a
            file that cannot be read). Default: any state but a final one, so done, failed and
            cancelled are never replaced.

    Returns:
        The status written.

    Raises:
        StatusConflict: the current state is not allowed; nothing is written.
    """
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}")
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    with status_lock(job_dir):
        status, current = _current(job_dir)
        allowed = (
            current not in FINAL_STATES
            if expect is None
            else current in ((expect,) if isinstance(expect, str) else tuple(expect))
        )
        if not allowed:
            raise StatusConflict(job_dir, current, state)
        for key, start_key in (("pid", "pid_start"), ("manager_pid", "manager_start")):
            if key in fields and start_key not in fields:
                fields.update(process_fields(fields[key], key, start_key))
        status.update(fields)
        status["state"] = state
        status.setdefault("created_at", now_iso())
        if state == "running":
            status.setdefault("started_at", now_iso())
        if state in FINAL_STATES:
            status["ended_at"] = now_iso()
        write_json(job_dir / STATUS_FILE, status)
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

    def __enter__(self) -> JobRun:
        if self.lead:  # never over a final state: a job cancelled (or finished) before it started stays so
            write_status(
                self.job_dir, "running", expect=(None, "queued", "running", DAMAGED_STATE), pid=os.getpid(), error=None
            )
        return self

    def finish(self, state: str, **fields: Any) -> None:
        self.state = state
        if self.lead:
            try:
                write_status(self.job_dir, state, **{"error": None, **fields})
            except StatusConflict:  # already final (the first final state wins); nothing to add
                pass

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
    """Ask a job to stop: drop a cancel file and SIGTERM its process, but only when that process is
    still the job's (same start time and boot id); a pid that now names another process is left alone."""
    Path(job_dir, CANCEL_FILE).touch()
    status, _ = _current(Path(job_dir))
    if elsewhere(status):
        return  # a process on another machine: the cancel file stops it at its next check
    signal_process(status.get("pid"), status.get("pid_start"), status.get("boot_id"), signal.SIGTERM)


def signal_process(pid: Any, start: Any, boot: Any, signum: int, group: bool = False) -> bool:
    """Send ``signum`` to the recorded process only if it still runs and is the same process
    (``process_state`` "alive"); returns whether it was sent. Where start times can be read (Linux), a
    pid recorded without one is never signalled: it cannot be told from a process that reused it.

    On Linux the process is first pinned with a pidfd, so the pid cannot be handed to another process
    between the check and the signal. ``group``: signal its whole process group when it leads one (a
    job started in its own session), so its children stop too.
    """
    pid = as_pid(pid)
    if pid is None:
        return False
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except OSError:  # ProcessLookupError: gone; other errors: kernel without pidfds, check as before
        if not pid_alive(pid):
            return False
    try:
        if process_state(pid, start, boot) != "alive":
            return False
        if start is None and process_start(pid) is not None:
            return False  # no start time recorded (an older status file) where one could be: unverifiable
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        elif pidfd is not None:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


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


# ----------------------------------------------------------------------------- process identity


def as_pid(value: Any) -> int | None:
    """``value`` as a process id (a positive int, or its decimal text), else None. Never 0 or negative:
    ``os.kill`` would signal a whole process group (0) or every process it may (-1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and 0 < value < 2**31 else None  # pid_t is 32 bits


@functools.lru_cache(maxsize=1)
def boot_id() -> str | None:
    """This boot of the machine (Linux: /proc/sys/kernel/random/boot_id), None where unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (/proc/<pid>/stat field 22); None when
    there is no such process or no /proc (not Linux)."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            raw = fh.read()
        # "pid (comm) state ppid ...": comm may hold spaces and ')', so split after the last ')'
        return int(raw[raw.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_fields(pid: Any, key: str = "pid", start_key: str = "pid_start") -> dict[str, Any]:
    """``{key: pid, start_key: its start time, "boot_id": this boot, "host": this machine}`` to record with a pid."""
    valid = as_pid(pid)
    return {
        key: pid,
        start_key: None if valid is None else process_start(valid),
        "boot_id": boot_id(),
        "host": host_name(),
    }


def host_name() -> str:
    """This machine's name (``socket.gethostname``), recorded with every pid."""
    return socket.gethostname()


def elsewhere(status: dict) -> bool:
    """Whether the status's recorded process runs on another machine (its pid means nothing here)."""
    host = status.get("host")
    return bool(host) and host != host_name()


def process_state(pid: int, start: Any = None, boot: Any = None) -> str:
    """Whether the recorded process still runs: "alive" (the same process), "gone" (no such process,
    or a zombie), or "other" (the pid now names another process: a different start time or boot).

    Without a recorded start time (an old status file, or no /proc) a live pid counts as "alive".
    """
    pid = as_pid(pid)
    if pid is None or not pid_alive(pid):
        return "gone"
    now_boot = boot_id()
    if boot and now_boot and boot != now_boot:
        return "other"
    if start is not None:
        actual = process_start(pid)
        if actual is not None and str(actual) != str(start):
            return "other"
    return "alive"


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


def refresh_status(job_dir: str | os.PathLike, reap: bool = True) -> dict:
    """Read status.json, first marking a job whose process is gone as failed (never 'running' forever).

    A running job whose process (``pid``, with its start time and boot id) is gone or is now another
    process, and a queued job whose job manager (``manager_pid``) is, can never finish: they are marked
    failed with the reason. The check is made again under the job's lock before anything is written,
    so a job that finished meanwhile keeps its final state. A status.json that cannot be read (empty,
    not JSON, an unknown state, a pid that is not a number) gives ``{"state": "unknown", "error":
    <file, problem and fix>, "damaged": True}`` and is left as it is, so a listing shows the damaged
    entry instead of failing.

    Args:
        reap: False only reads (tolerantly), never writes.
    """
    job_dir = Path(job_dir)
    status = _tolerant(job_dir)
    if not reap or status.get("damaged") or _dead_reason(status) is None:
        return status
    try:
        with status_lock(job_dir):
            status = _tolerant(job_dir)  # again, under the lock: the job may have finished meanwhile
            reason = None if status.get("damaged") else _dead_reason(status)
            if reason is None:
                return status
            extra = {"log_tail": log_tail(job_dir)} if status.get("state") == "running" else {}
            return write_status(job_dir, "failed", expect=(status.get("state"),), error=reason, **extra)
    except FileNotFoundError:  # the folder was deleted meanwhile
        return status
    except OSError as exc:  # a read-only workspace: show what is known, write nothing
        reason = None if status.get("damaged") else _dead_reason(status)
        return status if reason is None else {**status, "state": "failed", "error": f"{reason} (not recorded: {exc})"}


def _tolerant(job_dir: Path) -> dict:
    """status.json as a dict, or the damaged entry that stands for it."""
    fix = f"delete the folder {job_dir} if it is no longer needed"
    try:
        status = read_status(job_dir)
    except (DataError, OSError, UnicodeDecodeError) as exc:
        return _damaged(f"unreadable status file: {exc}")
    if not isinstance(status, dict):
        return _damaged(
            f"unreadable status file: {job_dir / STATUS_FILE} holds a JSON "
            f"{type(status).__name__}, not an object; {fix}"
        )
    state = status.get("state")
    if state is not None and state not in STATES:
        return _damaged(
            f"damaged status file: {job_dir / STATUS_FILE} has the unknown state {state!r} "
            f"(expected one of {', '.join(STATES)}); {fix}"
        )
    for key, needed in (("pid", "running"), ("manager_pid", "queued")):
        if state == needed and status.get(key) is not None and as_pid(status[key]) is None:
            return _damaged(
                f"damaged status file: {job_dir / STATUS_FILE} gives {key} {status[key]!r}, "
                f"which is not a process id; {fix}"
            )
    return status


def _damaged(error: str) -> dict:
    return {"state": DAMAGED_STATE, "error": error, "damaged": True}


def _dead_reason(status: dict) -> str | None:
    """Why the job's recorded process can no longer finish it, or None while it may (or when that
    process runs on another machine, where it cannot be checked from here)."""
    if elsewhere(status):
        return None
    state = status.get("state")
    if state == "running" and status.get("pid") is not None:
        pid, start_key, who = status["pid"], "pid_start", "process"
    elif state == "queued" and status.get("manager_pid") is not None:
        pid, start_key, who = status["manager_pid"], "manager_start", "the job manager (process"
    else:
        return None
    found = process_state(pid, status.get(start_key), status.get("boot_id"))
    if found == "alive":
        return None
    restarted = bool(status.get("boot_id") and boot_id() and status["boot_id"] != boot_id())
    if state == "queued":
        if found == "other":
            return f"{who} {pid}) is no longer running (pid reused after a restart); start the job again"
        return f"{who} {pid}) exited before launching this job; start it again"
    if found == "other":
        return f"process {pid} is no longer this job (pid reused after a restart)"
    if restarted:
        return f"process {pid} ended with a restart of the machine without finishing"
    return f"process {pid} exited without finishing (killed or crashed)"


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
