"""The job manager: launches, queues, cancels and reaps scoring/training jobs as subprocesses.

One manager per process (the app keeps it in ``st.cache_resource``; the CLI makes its own). State lives
in the job directories (jobstate protocol), so jobs started by another process show up in the run
registry too. A small daemon thread calls ``tick()`` while there is work; it touches only files and
processes, never any UI. Readers (pages, the CLI) may call ``tick()``/``poll()`` as well.

Lifecycle: ``submit`` writes status "queued" at once (FIFO queue, ``max_concurrent`` jobs at a time);
``tick`` launches queued jobs when a slot frees, reaps exited processes (a job that exited without a
final status is marked failed with its exit code and the tail of ``job.log``) and hard-kills jobs that
ignored a cancel for ``grace_s`` seconds. ``cancel``: queued -> cancelled immediately; running ->
SIGTERM (the job stops at its next check and writes "cancelled"), then SIGKILL after the grace period
and "cancelled" written by the manager.

State changes go through the job's status lock (``protocol.write_status`` compare-and-set): a launch
happens only from "queued", a final state is never replaced, and a job is only ever signalled while its
recorded process (pid, start time, boot id) is still that job.

Workspace-wide limit: every job this manager launches holds a lease file in
``<workspace>/cache/jobs/leases/`` (the job process's pid, start time and boot id) from its launch until
it is reaped, and a launch happens only while fewer than ``max_concurrent`` live leases exist. So the app
and the CLI (or two CLIs) on one workspace together run at most that many jobs. A lease whose process is
gone is stale and removed at the next count. The workspace is ``workspace=`` or, for a job directory
``<root>/runs/<id>`` or ``<root>/scores/<id>``, ``<root>``; other job directories count only against
this manager's own limit.

GPUs: with several visible CUDA devices each launched job gets one of its own through
``CUDA_VISIBLE_DEVICES`` (the least busy, lowest first), so a comparison's runs spread over the GPUs;
with one GPU or none the variable is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import JobError
from ..fileio import read_json, write_json
from .protocol import (
    CANCEL_FILE,
    CONFIG_FILE,
    DAMAGED_STATE,
    FINAL_STATES,
    LOG_FILE,
    STATUS_FILE,
    StatusConflict,
    as_pid,
    elsewhere,
    file_lock,
    log_tail,
    now_iso,
    process_fields,
    process_state,
    refresh_status,
    request_cancel,
    signal_process,
    status_lock,
    write_status,
)

JOB_FLAGS = {"train": "--run-dir", "score": "--job-dir"}
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so `python -m delt_engine` works from any cwd

CommandBuilder = Callable[[Path, str], list]


def engine_command(python: str = sys.executable) -> CommandBuilder:
    """The default command builder: ``[python, -m, delt_engine, train|score, --run-dir|--job-dir, DIR]``;
    its ``group(dirs)`` is the command of training runs together: ``train --group-dir D1 --group-dir D2 ...``."""

    def build(job_dir: Path, kind: str) -> list:
        if kind not in JOB_FLAGS:
            raise JobError(f"unknown job kind {kind!r}; use one of {', '.join(JOB_FLAGS)}")
        return [python, "-m", "delt_engine", kind, JOB_FLAGS[kind], str(job_dir)]

    def group(job_dirs: list) -> list:
        return [python, "-m", "delt_engine", "train"] + [x for d in job_dirs for x in ("--group-dir", str(d))]

    build.group = group
    return build


@dataclass
class _Active:
    dir: Path
    pid: int
    proc: subprocess.Popen | None  # None for a job another process launched (cancelled from here)
    kill_at: float | None = None  # when to SIGKILL a job that ignores SIGTERM
    cancelling: bool = False
    killed: bool = False
    gpu: str | None = None  # the CUDA device this job was given, when jobs are spread over several
    start: int | None = None  # the process's start time (clock ticks since boot), when known
    boot: str | None = None  # the boot id when it started
    slots: WorkspaceSlots | None = None  # the workspace lease this job holds (jobs this manager launched)
    group: tuple | None = None  # the job dirs trained together in this job's process (train_group)


class JobManager:
    """Process-wide, thread-safe launcher with a FIFO queue and bounded concurrency.

    Args:
        max_concurrent: jobs running at once (default 1: one job at a time on a CPU / per device).
        python: interpreter for the job subprocesses.
        command_builder: ``(job_dir, kind) -> argv``; tests inject small scripts here.
        grace_s: seconds between SIGTERM and SIGKILL when cancelling a running job.
        poll_interval_s: how often the background thread ticks.
        background: run the daemon thread (False: only explicit ``tick()`` calls advance jobs).
        gpus: CUDA device ids to spread jobs over (None: ``visible_gpus()`` at the first launch).
        workspace: the workspace root whose job slots ``max_concurrent`` counts (None: derived from
            each job directory, ``<root>/runs/<id>`` or ``<root>/scores/<id>``).
        group_training: train the queued runs of one comparison that share a model config and device in
            one process, as one stacked model (``jobs.train_job.train_group``); None: ``group_default()``.
        max_group: at most this many runs in one group.
    """

    def __init__(
        self,
        max_concurrent: int = 1,
        python: str = sys.executable,
        command_builder: CommandBuilder | None = None,
        grace_s: float = 10.0,
        poll_interval_s: float = 0.5,
        background: bool = True,
        gpus: list[str] | None = None,
        workspace: str | os.PathLike | None = None,
        group_training: bool | None = None,
        max_group: int = 32,
    ):
        if max_concurrent < 1:
            raise JobError(f"max_concurrent={max_concurrent} must be at least 1")
        self.max_concurrent = int(max_concurrent)
        self.command_builder = command_builder or engine_command(python)
        self.grace_s, self.poll_interval_s, self.background = float(grace_s), float(poll_interval_s), background
        self._lock = threading.RLock()
        self._queue: deque[tuple[Path, str]] = deque()
        self._active: dict[Path, _Active] = {}
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None  # last unexpected error inside the background thread
        self.gpus = None if gpus is None else [str(g) for g in gpus]
        self.workspace = None if workspace is None else Path(workspace).resolve()
        self.group_training = group_default() if group_training is None else bool(group_training)
        self.max_group = max(1, int(max_group))

    # -------------------------------------------------------------- public API

    def submit(self, job_dir: str | os.PathLike, kind: str = "train") -> Path:
        """Queue a job directory (it must hold config.json); status "queued" is written at once."""
        job_dir = Path(job_dir).resolve()
        if not (job_dir / CONFIG_FILE).exists():
            raise JobError(f"{job_dir} has no config.json; prepare the run before submitting it")
        self.command_builder(job_dir, kind)  # fail early on an unknown kind
        with self._lock:
            if job_dir in self._active or any(d == job_dir for d, _ in self._queue):
                return job_dir
            with status_lock(job_dir):  # an explicit (re)start: the one change that may replace a final state
                old = refresh_status(job_dir)
                if old.get("state") == "running":
                    raise JobError(f"{job_dir.name} is already running (process {old.get('pid')}); cancel it first")
                if old.get("state") == "queued" and old.get("cluster"):
                    info = old["cluster"]
                    raise JobError(
                        f"{job_dir.name} is queued as {info.get('launcher')} job {info.get('job_id')}; "
                        f"cancel it first (`runs cancel {job_dir.name}`) to run it here"
                    )
                (job_dir / CANCEL_FILE).unlink(missing_ok=True)
                write_json(
                    job_dir / STATUS_FILE,
                    {
                        "state": "queued",
                        "created_at": old.get("created_at") or now_iso(),
                        "queued_at": now_iso(),
                        "kind": kind,
                        **process_fields(os.getpid(), "manager_pid", "manager_start"),
                    },
                )
            self._queue.append((job_dir, kind))
            if not self._groups_later(kind):
                self._tick_locked()
            self._ensure_thread()
        return job_dir

    def cancel(self, job_dir: str | os.PathLike) -> str:
        """Cancel a job: queued -> "cancelled"; running -> "stopping" (SIGTERM, SIGKILL after grace_s).

        Returns the resulting state ("cancelled", "stopping", or the final state it already had).
        """
        job_dir = Path(job_dir).resolve()
        with self._lock:
            queued = [item for item in self._queue if item[0] == job_dir]
            if queued:
                self._queue.remove(queued[0])
                (job_dir / CANCEL_FILE).touch()
                try:
                    write_status(
                        job_dir, "cancelled", expect=("queued",), error=None, message="cancelled before it started"
                    )
                    return "cancelled"
                except StatusConflict:  # another manager launched it meanwhile, or it ended: cancel that
                    return self._cancel_foreign(job_dir)
            if job_dir in self._active:
                self._stop(self._active[job_dir])
                self._ensure_thread()
                return "stopping"
            return self._cancel_foreign(job_dir)

    def tick(self) -> None:
        """Reap exited jobs, hard-kill overdue cancels, launch queued jobs into free slots."""
        with self._lock:
            self._tick_locked()

    poll = tick

    def running(self) -> list[Path]:
        with self._lock:
            return [d for d, a in self._active.items() if a.proc is not None]

    def queued(self) -> list[Path]:
        with self._lock:
            return [d for d, _ in self._queue]

    def idle(self) -> bool:
        with self._lock:
            return not self._queue and not self._active

    def wait(
        self,
        job_dirs: Iterable[str | os.PathLike],
        timeout: float | None = None,
        on_tick: Callable[[dict[Path, dict]], None] | None = None,
        interval_s: float = 0.5,
    ) -> dict[Path, dict]:
        """Block until every job in ``job_dirs`` has a final state; returns {dir: status}.

        A job whose status.json is damaged counts as final (state "unknown", with the error naming
        the file): no process will ever change it.

        Args:
            timeout: seconds; raises JobError when exceeded (the jobs keep running).
            on_tick: called with the current statuses after every poll (e.g. to draw progress bars).
        """
        dirs = [Path(d).resolve() for d in job_dirs]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.tick()
            with self._lock:
                mine = set(self._active) | {d for d, _ in self._queue}
            # a damaged status.json is final for waiting: nothing will change it (its error says why)
            statuses = {d: refresh_status(d, reap=d not in mine) for d in dirs}
            if on_tick is not None:
                on_tick(statuses)
            if all(_settled(s) for s in statuses.values()):
                return statuses
            if deadline is not None and time.monotonic() > deadline:
                left = sum(not _settled(s) for s in statuses.values())
                raise JobError(
                    f"{left} job(s) still unfinished after {timeout:.0f} s; they keep running "
                    "(see `runs list`, or cancel them with `runs cancel ID`)"
                )
            time.sleep(interval_s)

    def cancel_all(self) -> None:
        """Cancel every queued and running job of this manager."""
        with self._lock:
            dirs = [d for d, _ in self._queue] + list(self._active)
        for d in dirs:
            self.cancel(d)

    # -------------------------------------------------------------- internals (lock held)

    def _tick_locked(self) -> None:
        now = time.monotonic()
        for job in list(self._active.values()):
            if job.kill_at is not None and now >= job.kill_at:
                self._hard_kill(job)
            if self._exited(job):
                self._reap(job)
        while self._queue and self._n_running() < self.max_concurrent:
            if not self._launch(*self._queue[0]):
                break  # every slot of the workspace is taken (maybe by another process): try at the next tick
            self._queue.popleft()

    def _n_running(self) -> int:
        return len({a.pid for a in self._active.values() if a.proc is not None})  # a group is one process

    def _launch(self, job_dir: Path, kind: str) -> bool:
        """Start a queued job if a workspace slot is free; False (nothing done) when none is.

        The slot count, the check that the job is still "queued" and the start happen under the
        workspace's slot lock and the status lock of every job the process will run (``job_dir`` and,
        for training, the queued runs that train with it: ``_take_group``), so a cancel from another
        process either comes first (the job never starts) or finds it running (and stops it)."""
        slots = self._slots(job_dir)
        with contextlib.ExitStack() as held:
            if slots is not None:
                held.enter_context(slots.lock())
            held.enter_context(status_lock(job_dir))
            if not self._still_queued(job_dir):
                return True  # cancelled, launched by another manager, or damaged: not ours to start
            if slots is not None and slots.count() >= self.max_concurrent:
                return False
            group = [job_dir]
            for other in self._take_group(job_dir, kind)[1:]:
                held.enter_context(status_lock(other))
                if self._still_queued(other):
                    group.append(other)
            gpu = self._pick_gpu()
            env = self._job_env()
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
            try:
                command = self.command_builder(job_dir, kind) if len(group) == 1 else self.command_builder.group(group)
                with open(job_dir / LOG_FILE, "ab") as log:
                    proc = subprocess.Popen(
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                        env=env,
                    )
            except (OSError, JobError) as exc:
                for d in group:
                    write_status(d, "failed", expect=("queued",), error=f"could not start the job: {exc}")
                return True
            # The child's own first write waits for these locks, so "running" with its pid comes first.
            together = {"group": [str(g) for g in group]} if len(group) > 1 else {}
            for d in group:
                written = write_status(
                    d,
                    "running",
                    expect=("queued",),
                    pid=proc.pid,
                    **process_fields(os.getpid(), "manager_pid", "manager_start"),
                    **({"gpu": gpu} if gpu else {}),
                    **together,
                )
                if slots is not None:
                    slots.take(d, written)
                self._active[d] = _Active(
                    d,
                    proc.pid,
                    proc,
                    gpu=gpu,
                    start=written.get("pid_start"),
                    boot=written.get("boot_id"),
                    slots=slots,
                    group=tuple(group) if len(group) > 1 else None,
                )
        return True

    def _still_queued(self, job_dir: Path) -> bool:
        """Whether a job may start (call under its status lock); one with a cancel file is marked cancelled."""
        status = refresh_status(job_dir, reap=False)
        if status.get("state") != "queued":
            return False
        if (job_dir / CANCEL_FILE).exists():
            write_status(job_dir, "cancelled", expect=("queued",), message="cancelled before it started")
            return False
        return True

    def _slots(self, job_dir: Path) -> WorkspaceSlots | None:
        root = self.workspace or (job_dir.parent.parent if job_dir.parent.name in ("runs", "scores") else None)
        return None if root is None else WorkspaceSlots(root)

    def _groups_later(self, kind: str) -> bool:
        """Whether a submitted training run waits for the next background tick (at most ``poll_interval_s``)
        instead of launching at once, so that the runs of a comparison submitted one after another are all
        queued when the first launches and can train together (``_take_group``)."""
        return kind == "train" and self.group_training and self.background and hasattr(self.command_builder, "group")

    def _take_group(self, job_dir: Path, kind: str) -> list[Path]:
        """``job_dir`` and the queued training runs that can train with it in one process (one stacked
        model: the same comparison, model config and device; ``training.config.group_key``), taken off the
        queue. Only with ``group_training`` on and a command builder that can build a group command. The
        runs are split evenly over the free GPUs when there are several, else over the free ``max_concurrent``
        slots (on a CPU: one process per core, each one thread, rather than one process with a thread per
        core)."""
        group = [job_dir]
        if kind != "train" or not self.group_training or not hasattr(self.command_builder, "group"):
            return group
        from ..training.config import RunConfig, group_key

        def key(d: Path):
            try:
                return group_key(RunConfig.from_dict(read_json(d / CONFIG_FILE)))
            except Exception:  # a bad config.json fails in its own job, with its own message
                return None

        mine = key(job_dir)
        if mine is None:
            return group
        candidates = [
            (d, k)
            for d, k in self._queue
            if d != job_dir
            and k == "train"
            and not (d / CANCEL_FILE).exists()
            and refresh_status(d, reap=False).get("state") == "queued"
            and key(d) == mine
        ]
        slots = len(self.gpus) if len(self.gpus or []) > 1 else self.max_concurrent
        share = -(-(len(candidates) + 1) // max(1, slots - self._n_running()))
        for d, k in candidates[: max(0, min(share, self.max_group) - 1)]:
            self._queue.remove((d, k))
            group.append(d)
        return group

    def _pick_gpu(self) -> str | None:
        """The least busy of several GPUs (lowest first on a tie); None with one GPU or none."""
        if self.gpus is None:
            self.gpus = visible_gpus()
        if len(self.gpus) < 2:
            return None
        busy = {g: 0 for g in self.gpus}
        for job in self._active.values():
            if job.gpu in busy:
                busy[job.gpu] += 1
        return min(self.gpus, key=lambda g: busy[g])

    def _job_env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # Concurrent CPU jobs share the cores instead of each spawning one thread per core.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.max_concurrent)))
        return env

    def _exited(self, job: _Active) -> bool:
        if job.proc is not None:
            return job.proc.poll() is not None
        return process_state(job.pid, job.start, job.boot) != "alive"

    def _reap(self, job: _Active) -> None:
        del self._active[job.dir]
        if job.slots is not None:
            job.slots.release(job.dir)
        try:
            self._write_end(job)
        except StatusConflict:  # the job wrote its own final state (or another process did first)
            pass

    def _write_end(self, job: _Active) -> None:
        """The final state of a job whose process has exited without writing one (compare-and-set)."""
        if job.cancelling:
            how = f"killed after ignoring SIGTERM for {self.grace_s:.0f} s" if job.killed else "stopped on SIGTERM"
            write_status(job.dir, "cancelled", message=f"cancelled: {how}")
            return
        rc = job.proc.returncode if job.proc is not None else None
        tail = log_tail(job.dir)
        reason = (
            f"exited with code {rc}"
            if rc is not None and rc >= 0
            else (f"was killed by signal {-rc} ({_signal_name(-rc)})" if rc is not None else "exited")
        )
        last = "; ".join(line for line in tail.splitlines()[-3:] if line.strip())
        write_status(
            job.dir,
            "failed",
            exit_code=rc,
            log_tail=tail,
            error=f"process {job.pid} {reason} without finishing" + (f": {last}" if last else ""),
        )

    def _stop(self, job: _Active) -> None:
        if job.cancelling:
            return
        job.cancelling = True
        (job.dir / CANCEL_FILE).touch()
        if job.group and any(not a.cancelling for d, a in self._active.items() if d in job.group):
            return  # the group process stops this run alone at its next step (its cancel file)
        self._signal(job, signal.SIGTERM)
        job.kill_at = time.monotonic() + self.grace_s

    def _signal(self, job: _Active, signum: int, group: bool = False) -> None:
        """Signal the job's process, never another one: a child of this manager only while it has not
        been reaped (until then its pid cannot be reused); any other only while its pid, start time and
        boot id still match (``signal_process``)."""
        if job.proc is not None:
            if job.proc.poll() is not None:
                return
            try:
                # Jobs run in their own session, so the group id is the pid: kill its children too.
                os.killpg(job.pid, signum) if group else job.proc.send_signal(signum)
            except (ProcessLookupError, PermissionError):
                pass
            return
        signal_process(job.pid, job.start, job.boot, signum, group=group)

    def _hard_kill(self, job: _Active) -> None:
        job.kill_at = None
        if self._exited(job):
            return
        job.killed = True
        self._signal(job, signal.SIGKILL, group=True)
        if job.proc is not None:
            try:
                job.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        else:
            for _ in range(50):
                if self._exited(job):
                    break
                time.sleep(0.1)

    def _cancel_foreign(self, job_dir: Path) -> str:
        """Cancel a job this manager did not launch (e.g. started by the CLI in another process).

        A running job is asked to stop (cancel file, SIGTERM to its process if that is still the job)
        and watched until it ends; it is marked cancelled only once its process is gone. A queued one
        is marked cancelled only while it is still queued (compare-and-set); if it was launched
        meanwhile, it is stopped as a running job.
        """
        for _ in range(3):
            status = refresh_status(job_dir)
            state = status.get("state")
            if state in FINAL_STATES or state == DAMAGED_STATE:
                return state
            if status.get("cluster") or elsewhere(status):  # a cluster job: no process of it runs here
                from .cluster import cancel_run

                return cancel_run(job_dir, status)
            if state == "running" and as_pid(status.get("pid")) is not None:
                if _others_of_group_running(job_dir, status):
                    (job_dir / CANCEL_FILE).touch()  # its group process stops this run alone at its next step
                    return "stopping"
                request_cancel(job_dir)
                job = _Active(
                    job_dir,
                    as_pid(status["pid"]),
                    None,
                    time.monotonic() + self.grace_s,
                    cancelling=True,
                    start=status.get("pid_start"),
                    boot=status.get("boot_id"),
                )
                self._active[job_dir] = job
                self._ensure_thread()
                return "stopping"
            # queued by another manager, or never submitted: the cancel file stops its launch
            (job_dir / CANCEL_FILE).touch()
            try:
                write_status(job_dir, "cancelled", expect=(state,), message="cancelled before it started")
                return "cancelled"
            except StatusConflict:
                continue  # it changed meanwhile (launched, or ended): look again
        return refresh_status(job_dir).get("state") or "cancelled"

    def _ensure_thread(self) -> None:
        if not self.background or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._loop, name="delt-job-manager", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.poll_interval_s)
            with self._lock:
                try:
                    self._tick_locked()
                except Exception as exc:  # keep ticking; surfaced through last_error
                    self.last_error = f"{type(exc).__name__}: {exc}"
                if not self._queue and not self._active:
                    self._thread = None
                    return


def _settled(status: dict) -> bool:
    """Nothing will change this job's state any more: it is final, or its status file is damaged."""
    return status.get("state") in FINAL_STATES or bool(status.get("damaged"))


class WorkspaceSlots:
    """The job slots of one workspace, shared by every process that launches jobs in it.

    A lease is ``<root>/cache/jobs/leases/<runs|scores>-<id>.json`` holding the job process's pid,
    start time and boot id. ``count`` (under ``lock``) removes leases whose process is gone or is
    now another process (a crashed manager, a restart) and counts the rest.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.dir = self.root / "cache" / "jobs"

    def lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        return file_lock(self.dir / "slots.lock")

    def _lease(self, job_dir: Path) -> Path:
        return self.dir / "leases" / f"{job_dir.parent.name}-{job_dir.name}.json"

    def count(self) -> int:
        """Processes holding live leases (call under ``lock``); stale leases are deleted."""
        folder = self.dir / "leases"
        if not folder.is_dir():
            return 0
        live = set()
        for path in folder.glob("*.json"):
            try:
                lease = read_json(path, default=None)
            except (OSError, ValueError):
                lease = None
            if (
                isinstance(lease, dict)
                and process_state(lease.get("pid"), lease.get("pid_start"), lease.get("boot_id")) == "alive"
            ):
                live.add((lease.get("pid"), lease.get("pid_start"), lease.get("boot_id")))
            else:
                path.unlink(missing_ok=True)
        return len(live)  # a group of runs trained in one process holds one slot

    def take(self, job_dir: Path, status: dict) -> None:
        """Record the lease of a job just started (``status``: what its status.json now says)."""
        write_json(
            self._lease(job_dir),
            {
                "job_dir": str(job_dir),
                "pid": status.get("pid"),
                "pid_start": status.get("pid_start"),
                "boot_id": status.get("boot_id"),
                "manager_pid": os.getpid(),
                "taken_at": now_iso(),
            },
        )

    def release(self, job_dir: Path) -> None:
        self._lease(job_dir).unlink(missing_ok=True)


def _others_of_group_running(job_dir: Path, status: dict) -> bool:
    """Whether ``job_dir`` trains in a group process with other runs still running there (not cancelling)."""
    others = [Path(d) for d in status.get("group") or [] if Path(d) != job_dir]
    for other in others:
        seen = refresh_status(other, reap=False)
        if (
            seen.get("state") == "running"
            and seen.get("pid") == status.get("pid")
            and not (other / CANCEL_FILE).exists()
        ):
            return True
    return False


def visible_gpus() -> list[str]:
    """CUDA device ids jobs can use: the entries of ``CUDA_VISIBLE_DEVICES`` when it is set, else
    0..n-1 for the n devices torch sees (none on a CPU-only machine)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [d.strip() for d in listed.split(",") if d.strip()]
        return [] if not ids or ids[0] == "-1" else ids
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no usable CUDA runtime: run jobs as they are
        return []


def group_default() -> bool:
    """Whether the job manager trains a comparison's runs together by default: ``DELT_GROUP_TRAINING``
    (1/0) when set, else on (bench/comparison_speed.py, docs/benchmarks.md)."""
    value = os.environ.get("DELT_GROUP_TRAINING", "").strip().lower()
    return value not in ("0", "false", "no", "off") if value else True


def default_concurrency() -> int:
    """Jobs at once when nothing says otherwise: one per GPU when there are several, else 1."""
    return max(1, len(visible_gpus()))


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown signal"


_SHARED: JobManager | None = None
_SHARED_LOCK = threading.Lock()


def shared_manager(max_concurrent: int | None = None) -> JobManager:
    """The process-wide manager (created on first call); ``max_concurrent`` updates its limit."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = JobManager(max_concurrent or 1)
        elif max_concurrent:
            _SHARED.max_concurrent = int(max_concurrent)
        return _SHARED
