"""Training runs as cluster jobs through submitit: Slurm, or submitit's local executor (the same code
path on one machine, which is how it is tested).

``compare --launcher slurm`` prepares a comparison as usual, then submits its runs here instead of to
the job manager: one cluster job per run, or ``runs_per_job`` runs of one ``group_key`` trained together
in one job (one stacked model on a GPU, ``jobs.train_job.train_group``). Each run folder is written by
the job exactly as a local run writes it, so the app, ``runs list`` and ``runs report`` read cluster
runs like any other; the workspace must be on a filesystem the login node and the compute nodes share.

status.json of a submitted run: "queued" with ``cluster`` = {launcher, job_id, folder, runs, stdout}
and no job-manager pid (nothing on the login node has to stay alive), then the job's own "running"
with its pid and ``host`` (``protocol.elsewhere``: never reaped or signalled from another machine).

Cancel (``cancel_run``, used by ``runs cancel`` and the app): the run's cancel file stops it at its next
step wherever it runs; a run still queued is marked cancelled at once and, when its job holds no other
run, the job is cancelled in the scheduler too (``scancel`` through submitit). A job that the scheduler
ends without the run finishing (time limit, node failure) is marked failed by ``wait`` with the job's
state and the tail of its log; ``jobs_of`` rebuilds the jobs from the runs' status files, so any later
process can wait (``runs wait``, after ``compare --no-wait``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DeltError, JobError
from .protocol import (
    CANCEL_FILE,
    CONFIG_FILE,
    FINAL_STATES,
    StatusConflict,
    host_name,
    now_iso,
    process_fields,
    process_state,
    refresh_status,
    signal_process,
    status_lock,
    write_status,
)

LAUNCHERS = ("slurm", "submitit-local")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "pip install 'delt-studio[cluster]' (or: pip install submitit)"


@dataclass
class ClusterOptions:
    """Where and how the runs' cluster jobs run.

    Args:
        launcher: "slurm" (sbatch through submitit) or "submitit-local" (submitit's local executor:
            each job a local process; for trying a set-up on one machine, and for the tests).
        partition: Slurm partition (None: the cluster's default).
        time_min: the jobs' time limit in minutes.
        gpus: GPUs per job; cpus: CPU cores per job; mem_gb: memory per job (None: the default).
        runs_per_job: runs trained together in one job (runs of one comparison sharing a model
            configuration; 1: one job per run).
        slurm_args: extra sbatch options, e.g. {"account": "proj", "qos": "short"}.
    """

    launcher: str = "slurm"
    partition: str | None = None
    time_min: int = 120
    gpus: int = 0
    cpus: int = 4
    mem_gb: float | None = None
    runs_per_job: int = 1
    slurm_args: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"launcher {self.launcher!r} is not one of {', '.join(LAUNCHERS)}")
        for name, low in (("time_min", 1), ("gpus", 0), ("cpus", 1), ("runs_per_job", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name}={value!r} must be an integer of at least {low}")
        if self.mem_gb is not None and not (isinstance(self.mem_gb, int | float) and self.mem_gb > 0):
            raise ConfigError(f"mem_gb={self.mem_gb!r} must be a positive number of GiB")


@dataclass
class ClusterJob:
    """One submitted cluster job and the run folders it trains."""

    job: object  # a submitit Job
    run_dirs: list[Path]

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)


def import_submitit():
    try:
        import submitit
    except ImportError as exc:
        raise DeltError(f"the cluster launcher needs submitit, not installed here ({exc}); {INSTALL_HINT}") from None
    return submitit


def check_launcher(options: ClusterOptions) -> None:
    """Fail at once, before anything is prepared, when the launcher cannot run here: submitit missing, or
    for Slurm no ``sbatch``/``srun`` on PATH (not a cluster's login node)."""
    import shutil

    import_submitit()
    if options.launcher == "slurm":
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise ConfigError(
                f"--launcher slurm needs Slurm's {' and '.join(missing)} on PATH, not found on this machine; run "
                "compare on the cluster's login node, or try the set-up here with --launcher submitit-local"
            )


def submit_runs(
    run_dirs: Iterable[str | os.PathLike], options: ClusterOptions, folder: str | os.PathLike, name: str = "delt"
) -> list[ClusterJob]:
    """Submit prepared run folders (each with a config.json) as cluster jobs; returns the jobs.

    A run that already ended (done, failed, cancelled) or is queued or running elsewhere is refused
    with the reason, before anything is submitted.
    """
    dirs = [Path(d).resolve() for d in run_dirs]
    for d in dirs:
        if not (d / CONFIG_FILE).is_file():
            raise JobError(f"{d} has no config.json; prepare the run before submitting it")
        state = refresh_status(d).get("state")
        if state is not None:
            raise JobError(
                f"run {d.name} is already {state}; cluster jobs start prepared runs that never ran "
                "(prepare the comparison again for new runs)"
            )
    submitit = import_submitit()
    folder = Path(folder)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm" if options.launcher == "slurm" else "local")
    executor.update_parameters(**_parameters(options, name))
    jobs = []
    for batch in _batches(dirs, options.runs_per_job):
        with contextlib.ExitStack() as held:  # the job's first status write waits until "queued" is written
            for d in batch:
                held.enter_context(status_lock(d))
            try:
                job = executor.submit(run_cluster_job, [str(d) for d in batch])
            except Exception as exc:  # sbatch refused it (a bad partition or account, a full queue...)
                sent = f"; the {len(jobs)} job(s) submitted before it go on (`runs wait`)" if jobs else ""
                raise JobError(
                    f"{options.launcher} refused the job for run(s) {', '.join(d.name for d in batch)}: {exc}"
                    f"{sent}. The runs not submitted stay prepared: fix the option and run "
                    "`python -m delt_engine train --run-dir DIR` for each, or prepare the comparison again"
                ) from exc
            info = {
                "launcher": options.launcher,
                "job_id": str(job.job_id),
                "folder": str(job.paths.folder),
                "runs": len(batch),
                "stdout": str(job.paths.stdout),
            }
            if options.launcher == "submitit-local":  # its job id is the pid of a process on this machine
                info.update(process_fields(job.job_id))
            for d in batch:
                (d / CANCEL_FILE).unlink(missing_ok=True)
                write_status(
                    d, "queued", expect=(None,), kind="train", queued_at=now_iso(), manager_pid=None, cluster=info
                )
        jobs.append(ClusterJob(job, batch))
    with contextlib.suppress(OSError):  # the executor makes its folder pattern as a folder too; only job folders stay
        (folder / "%j").rmdir()
    return jobs


def run_cluster_job(run_dirs: list[str]) -> dict[str, str]:
    """The body of one cluster job: train its runs (together when several), each written as a local run
    is. A run cancelled while its job waited in the scheduler's queue is skipped. Returns {run: state}."""
    from .protocol import StopFlag
    from .train_job import train_group, train_run

    live = [Path(d) for d in run_dirs if _may_start(Path(d))]
    if not live:
        return {}
    if len(live) == 1:
        summary = train_run(live[0], should_stop=StopFlag(live[0]))
        return {str(live[0]): summary["state"]}
    return {str(d): s["state"] for d, s in train_group(live, should_stop=StopFlag()).items()}


def jobs_of(run_dirs: Iterable[str | os.PathLike]) -> tuple[list[ClusterJob], list[Path]]:
    """The cluster jobs of run folders (from the ``cluster`` entry that ``submit_runs`` wrote into their
    status), for waiting on them from another process (``runs wait``), and the folders of the runs that
    are not cluster runs. Runs that already ended belong to no job."""
    by_job: dict[tuple[str, str], tuple[dict, list[Path]]] = {}
    local: list[Path] = []
    for d in (Path(x).resolve() for x in run_dirs):
        status = refresh_status(d)
        info = status.get("cluster")
        if not info or status.get("state") in FINAL_STATES:
            local.append(d)
            continue
        by_job.setdefault((info.get("launcher"), str(info.get("job_id"))), (info, []))[1].append(d)
    jobs = []
    for (launcher, job_id), (info, dirs) in by_job.items():
        submitit = import_submitit()
        if launcher == "slurm":
            job = submitit.SlurmJob(folder=info["folder"], job_id=job_id)
        else:
            job = _LocalJobByPid(submitit, info)
        jobs.append(ClusterJob(job, dirs))
    return jobs, local


def wait(
    jobs: list[ClusterJob],
    timeout: float | None = None,
    interval_s: float = 2.0,
    on_tick: Callable[[dict[Path, dict]], None] | None = None,
    others: Iterable[Path] = (),
) -> dict[Path, dict]:
    """Block until every run of ``jobs`` (and the local runs ``others``) has a final state; returns
    {run_dir: status}.

    A run whose job the scheduler has ended without the run's own final status (time limit, node
    failure, out of memory, a crash before training) is marked failed with the job's state and log tail.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    dirs = [d for j in jobs for d in j.run_dirs] + [Path(d) for d in others]
    while True:
        for j in jobs:
            if _ended(j.job):
                for d in j.run_dirs:
                    _reap(d, j)
        statuses = {d: refresh_status(d) for d in dirs}
        if on_tick is not None:
            on_tick(statuses)
        if all(s.get("state") in FINAL_STATES or s.get("damaged") for s in statuses.values()):
            return statuses
        if deadline is not None and time.monotonic() > deadline:
            left = [d.name for d, s in statuses.items() if s.get("state") not in FINAL_STATES]
            raise JobError(
                f"{len(left)} run(s) still unfinished after {timeout:.0f} s; their cluster jobs go on "
                f"(follow them with `runs list`, cancel with `runs cancel ID`): {', '.join(left)}"
            )
        time.sleep(interval_s)


def cancel_jobs(jobs: list[ClusterJob]) -> None:
    """Stop every run of ``jobs``: cancel files, queued runs marked cancelled, the jobs cancelled in the
    scheduler (a job that already runs gets SIGTERM and stops at its next step, keeping its metrics)."""
    for j in jobs:
        for d in j.run_dirs:
            (d / CANCEL_FILE).touch()
            with contextlib.suppress(StatusConflict):
                write_status(d, "cancelled", expect=("queued",), message="cancelled before it started")
        with contextlib.suppress(Exception):  # a job that already ended
            j.job.cancel(check=False)


def cancel_run(job_dir: str | os.PathLike, status: dict) -> str:
    """Cancel one run of a cluster job from any machine sharing the workspace (``JobManager.cancel`` of a
    run it did not launch). Returns "cancelled" (it had not started) or "stopping"."""
    job_dir = Path(job_dir)
    (job_dir / CANCEL_FILE).touch()  # the job stops this run at its next step, or skips it at its start
    try:
        write_status(job_dir, "cancelled", expect=("queued",), message="cancelled before it started")
    except StatusConflict:
        state = refresh_status(job_dir).get("state")
        return state if state in FINAL_STATES else "stopping"
    info = status.get("cluster") or {}
    if info.get("runs") == 1 and info.get("launcher") == "slurm" and info.get("job_id"):
        with contextlib.suppress(Exception):  # no scheduler reachable from here: the job skips the run
            submitit = import_submitit()
            submitit.SlurmJob(folder=info["folder"], job_id=str(info["job_id"])).cancel(check=False)
    return "cancelled"


# ----------------------------------------------------------------------------------------------- internals


def _parameters(options: ClusterOptions, name: str) -> dict:
    params = {
        "name": name,
        "timeout_min": options.time_min,
        "cpus_per_task": options.cpus,
        "gpus_per_node": options.gpus,
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if options.mem_gb is not None:
        params["mem_gb"] = options.mem_gb
    if options.launcher == "slurm":
        # the job imports delt_engine from this checkout too, wherever its Python was started
        params["slurm_setup"] = [
            f"export PYTHONPATH={PACKAGE_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}",
            f"export OMP_NUM_THREADS={options.cpus}",
        ]
        if options.partition:
            params["slurm_partition"] = options.partition
        if options.slurm_args:
            params["slurm_additional_parameters"] = dict(options.slurm_args)
    return params


def _batches(dirs: list[Path], size: int) -> list[list[Path]]:
    """Runs in jobs of at most ``size``, each job's runs sharing one ``group_key`` (they can train together)."""
    if size == 1:
        return [[d] for d in dirs]
    from ..fileio import read_json
    from ..training.config import RunConfig, group_key

    by_key: dict = {}
    for d in dirs:
        by_key.setdefault(group_key(RunConfig.from_dict(read_json(d / CONFIG_FILE))), []).append(d)
    return [runs[i : i + size] for runs in by_key.values() for i in range(0, len(runs), size)]


def _may_start(run_dir: Path) -> bool:
    """Whether this job should train the run: it is still queued as a cluster job (not ended, not
    cancelled, not taken over by another process)."""
    with status_lock(run_dir):
        status = refresh_status(run_dir, reap=False)
        if status.get("state") != "queued" or not status.get("cluster"):
            return False
        if (run_dir / CANCEL_FILE).exists():
            with contextlib.suppress(StatusConflict):
                write_status(run_dir, "cancelled", expect=(None, "queued"), message="cancelled before it started")
            return False
    return True


class _LocalJobByPid:
    """A submitit-local job seen from a process that did not submit it (submitit itself only knows the
    processes it started): its job id is the pid of a process on the submitting machine, recorded with
    its start time, boot id and host, so it ends when that process is gone or is another one. From
    another machine it cannot be checked, and it never counts as ended."""

    def __init__(self, submitit, info: dict):
        self._job = submitit.LocalJob(folder=info["folder"], job_id=str(info["job_id"]))
        self._info = info
        self.job_id, self.paths = self._job.job_id, self._job.paths

    def _here(self) -> bool:
        return self._info.get("host") == host_name()

    def done(self) -> bool:
        if not self._here():
            return False
        return process_state(self._info.get("pid"), self._info.get("pid_start"), self._info.get("boot_id")) != "alive"

    @property
    def state(self) -> str:
        return "ENDED" if self.done() else ("RUNNING" if self._here() else "UNKNOWN")

    def stderr(self) -> str | None:
        return self._job.stderr()

    def cancel(self, check: bool = False) -> None:
        if self._here():
            import signal

            signal_process(self._info.get("pid"), self._info.get("pid_start"), self._info.get("boot_id"), signal.SIGINT)


def _ended(job) -> bool:
    try:
        return bool(job.done())
    except Exception:  # the scheduler cannot be asked right now: look again at the next tick
        return False


def _reap(run_dir: Path, j: ClusterJob) -> None:
    """Mark a run failed when its job has ended and the run never wrote a final state."""
    if refresh_status(run_dir).get("state") in FINAL_STATES:
        return
    try:
        state = j.job.state
    except Exception:
        state = "ended"
    tail = ""
    with contextlib.suppress(Exception):
        lines = [line for line in (j.job.stderr() or "").splitlines() if line.strip()]
        tail = "; ".join(lines[-3:])
    with contextlib.suppress(StatusConflict):
        write_status(
            run_dir,
            "failed",
            expect=("queued", "running"),
            error=f"cluster job {j.job_id} ended ({state}) without finishing this run"
            + (f": {tail}" if tail else f"; its log: {j.job.paths.stderr}"),
        )
