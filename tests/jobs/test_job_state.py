"""Job state that cannot lie: process identity (pid + start time + boot id), compare-and-set transitions
under a file lock, the workspace-wide job limit, and damaged status files.

Every test uses real processes: an unrelated ``sleep`` stands in for a process that reused a job's pid,
and several Python processes race on one status.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from delt_engine.fileio import write_json
from delt_engine.jobs import protocol
from delt_engine.jobs.manager import JobManager, WorkspaceSlots, _Active
from delt_engine.jobs.protocol import (
    FINAL_STATES,
    StatusConflict,
    boot_id,
    process_start,
    process_state,
    read_status,
    refresh_status,
    request_cancel,
    write_status,
)
from tests.conftest import ROOT
from tests.jobs.test_manager import FAKE_JOB, _max_overlap, _wait_state

LINUX = process_start(os.getpid()) is not None
needs_proc = pytest.mark.skipif(not LINUX, reason="process start times need Linux /proc")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


@pytest.fixture
def sleeper():
    """An unrelated process (``sleep``) that must survive everything a test does to a job."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def _run_dir(tmp_path: Path, name: str, status: dict) -> Path:
    d = tmp_path / "ws" / "runs" / name
    d.mkdir(parents=True)
    write_json(d / "config.json", {})
    write_json(d / "status.json", status)
    return d


# ----------------------------------------------------------------------------- 1. identity


@needs_proc
def test_process_identity_is_start_time_and_boot_id(tmp_path, sleeper):
    start = process_start(sleeper.pid)
    assert isinstance(start, int) and start > 0
    with open(f"/proc/{sleeper.pid}/stat") as fh:  # field 22, counted by hand
        assert int(fh.read().rsplit(")", 1)[1].split()[19]) == start
    assert boot_id() and len(boot_id()) == 36
    assert process_state(sleeper.pid, start, boot_id()) == "alive"
    assert process_state(sleeper.pid, start + 1, boot_id()) == "other"
    assert process_state(sleeper.pid, start, "another-boot") == "other"
    assert process_state(sleeper.pid) == "alive"  # nothing recorded to compare: the pid alone
    status = write_status(tmp_path / "job", "running", pid=sleeper.pid)  # recorded with every pid
    assert status["pid_start"] == start and status["boot_id"] == boot_id()


@needs_proc
@pytest.mark.parametrize("wrong", ["start", "boot"])
def test_a_reused_pid_is_reaped_as_failed_and_the_process_is_never_signalled(tmp_path, sleeper, wrong):
    start, boot = process_start(sleeper.pid), boot_id()
    identity = (
        {"pid_start": start + 7, "boot_id": boot}
        if wrong == "start"
        else {"pid_start": start, "boot_id": "00000000-0000-0000-0000-000000000000"}
    )
    running = {"state": "running", "pid": sleeper.pid, "created_at": "x", **identity}

    reaped = refresh_status(_run_dir(tmp_path, "a", running))
    assert reaped["state"] == "failed"
    assert reaped["error"] == f"process {sleeper.pid} is no longer this job (pid reused after a restart)"

    d = _run_dir(tmp_path, "b", running)
    request_cancel(d)  # the cancel file only
    assert (d / "cancel").exists()
    assert JobManager(background=False, grace_s=0.1).cancel(d) == "failed"  # reaped, never signalled
    job = _Active(d, sleeper.pid, None, cancelling=True, start=identity["pid_start"], boot=identity["boot_id"])
    manager = JobManager(background=False, grace_s=0.1)
    manager._stop(job)
    manager._hard_kill(job)  # SIGKILL only to the job's process: the sleeper is not it
    time.sleep(0.2)
    assert sleeper.poll() is None, "an unrelated process was killed"


@needs_proc
def test_a_queued_job_whose_manager_pid_was_reused_is_failed(tmp_path, sleeper):
    d = _run_dir(
        tmp_path,
        "q",
        {
            "state": "queued",
            "manager_pid": sleeper.pid,
            "manager_start": process_start(sleeper.pid) - 1,
            "boot_id": boot_id(),
        },
    )
    status = refresh_status(d)
    assert status["state"] == "failed" and "pid reused after a restart" in status["error"]


@needs_proc
def test_a_pid_without_a_recorded_start_time_is_never_signalled_on_linux(tmp_path, sleeper):
    """An older status.json (pid only): shown as running while the pid lives, but never signalled."""
    d = _run_dir(tmp_path, "old", {"state": "running", "pid": sleeper.pid})
    assert refresh_status(d)["state"] == "running"
    request_cancel(d)
    time.sleep(0.2)
    assert sleeper.poll() is None


@needs_proc
def test_the_real_job_is_still_found_and_stopped(tmp_path):
    """The identity check does not get in the way of a cancel: a job started elsewhere is signalled."""
    script = tmp_path / "job.py"
    script.write_text(FAKE_JOB)
    d = tmp_path / "ws" / "runs" / "real"
    d.mkdir(parents=True)
    write_json(d / "config.json", {"mode": "forever"})
    proc = subprocess.Popen([sys.executable, str(script), str(d)], env=ENV, start_new_session=True)
    try:
        _wait_state(d, "running", key="t0")
        status = read_status(d)
        assert status["pid"] == proc.pid and status["pid_start"] == process_start(proc.pid)
        (d / "cancel").unlink(missing_ok=True)
        request_cancel(d)
        assert proc.wait(timeout=20) == 0
        assert read_status(d)["state"] == "cancelled"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("pid", [0, -1, "0", "-1", True])
def test_pid_zero_or_negative_is_never_signalled(tmp_path, pid):
    """os.kill(0, ...) would signal this process group and os.kill(-1, ...) every process we may."""
    d = _run_dir(tmp_path, "z", {"state": "running", "pid": pid})
    request_cancel(d)  # must not kill the test run
    assert refresh_status(d)["state"] in ("running", "unknown")


# ----------------------------------------------------------------------------- 2. compare-and-set


def test_write_status_is_compare_and_set(tmp_path):
    d = tmp_path / "job"
    write_status(d, "queued")
    write_status(d, "running", expect=("queued",), pid=os.getpid())
    with pytest.raises(StatusConflict, match="is running, so it cannot become cancelled"):
        write_status(d, "cancelled", expect=("queued",))
    write_status(d, "done")
    for state in ("failed", "cancelled", "running", "queued"):
        with pytest.raises(StatusConflict, match="is done"):
            write_status(d, state)
    assert read_status(d)["state"] == "done"
    write_status(d, "queued", expect=("done",))  # only an explicit expect of a final state replaces it
    assert read_status(d)["state"] == "queued"
    (d / "status.json").write_text("")  # damaged: a job's own transition may repair it
    write_status(d, "failed", error="x")
    assert read_status(d)["state"] == "failed"


def test_reaper_racing_a_finishing_job_keeps_done(tmp_path, monkeypatch):
    """The interleaving of the bug, forced: the reaper reads "running", then the job writes "done" and
    exits, then the reaper finds the pid gone. The re-check under the lock keeps "done"."""
    d = tmp_path / "job"
    write_status(d, "running", pid=os.getpid())
    real = protocol.pid_alive

    def job_finishes_meanwhile(pid):
        if read_status(d)["state"] == "running":
            write_status(d, "done", n_scored=3)
        return False if pid == os.getpid() else real(pid)

    monkeypatch.setattr(protocol, "pid_alive", job_finishes_meanwhile)
    assert refresh_status(d)["state"] == "done"
    assert read_status(d)["state"] == "done" and read_status(d)["n_scored"] == 3


def test_second_manager_never_cancels_a_job_that_was_launched_meanwhile(tmp_path, monkeypatch):
    """Manager B saw the job "queued"; manager A launched it before B wrote. B must not mark the running
    job cancelled: its compare-and-set fails, and it stops the job as a running one instead."""
    from delt_engine.jobs import manager as manager_module

    script = tmp_path / "job.py"
    script.write_text(FAKE_JOB)
    d = tmp_path / "ws" / "runs" / "r"
    d.mkdir(parents=True)
    write_json(d / "config.json", {"mode": "forever"})
    a = JobManager(command_builder=lambda job_dir, kind: [sys.executable, str(script), str(job_dir)], background=False)
    a.submit(d)
    _wait_state(d, "running", key="t0")
    b = JobManager(background=False, grace_s=10)
    stale = iter([{"state": "queued", "manager_pid": os.getpid()}])
    real = manager_module.refresh_status
    monkeypatch.setattr(
        manager_module, "refresh_status", lambda job_dir, reap=True: next(stale, None) or real(job_dir, reap)
    )
    assert b.cancel(d) == "stopping"
    assert read_status(d)["state"] in ("running", "cancelled")
    status = b.wait([d], timeout=30)[d.resolve()]
    assert status["state"] == "cancelled" and status["message"] == "job stopped itself"
    a.wait([d], timeout=30)


HAMMER = r"""
import json, os, random, sys, time
from delt_engine.jobs.protocol import StatusConflict, write_status, STATES, FINAL_STATES
dirs, me, go, out = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3], sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.001)
rng = random.Random(me)
wins = []
for i in range(150):
    d = rng.choice(dirs)
    state = rng.choice(["running", "running", "queued", "done", "failed", "cancelled"])
    try:
        write_status(d, state, writer=me, seq=i, **{f"w{me}_{i}": 1})
    except StatusConflict:
        continue
    wins.append([d, state, i])
with open(out, "w") as fh:
    json.dump(wins, fh)
"""


def test_processes_racing_on_transitions_never_replace_a_final_state(tmp_path):
    """Four processes write random transitions to three jobs at once. Per job, at most one write to a
    final state succeeds, nothing succeeds after it, and no update of another process is lost."""
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    dirs = [tmp_path / f"j{i}" for i in range(3)]
    for d in dirs:
        write_status(d, "running")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), ",".join(map(str, dirs)), str(k), str(go), str(tmp_path / f"out{k}.json")],
            env=ENV,
        )
        for k in range(4)
    ]
    time.sleep(1.0)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    wins = [
        (d, state, k, seq) for k in range(4) for d, state, seq in json.loads((tmp_path / f"out{k}.json").read_text())
    ]
    for d in dirs:
        status = read_status(d)
        mine = [w for w in wins if w[0] == str(d)]
        finals = [w for w in mine if w[1] in FINAL_STATES]
        assert len(finals) <= 1, f"{d.name}: a final state was replaced: {finals}"
        if finals:
            _, state, k, seq = finals[0]
            assert (status["state"], status["writer"], status["seq"]) == (state, k, seq)
        # every successful write is still there (no lost update): its marker key is in the file
        lost = [w for w in mine if f"w{w[2]}_{w[3]}" not in status]
        assert not lost, f"{d.name}: {len(lost)} successful writes were lost"


FINISHER = r"""
import os, sys
from delt_engine.jobs.protocol import write_status
write_status(sys.argv[1], "running", pid=os.getpid())
write_status(sys.argv[1], "done")
os._exit(0)
"""

REAPER = r"""
import os, sys, time
from delt_engine.jobs import protocol
real = protocol.pid_alive
def slow(pid):  # a reaper that gets descheduled between reading the status and checking the process
    time.sleep(0.003)
    return real(pid)
protocol.pid_alive = slow
dirs, stop = sys.argv[1].split(","), sys.argv[2]
while not os.path.exists(stop):
    for d in dirs:
        protocol.refresh_status(d)
"""


def test_real_finishing_jobs_and_a_real_reaper_never_turn_done_into_failed(tmp_path):
    finisher, reaper = tmp_path / "finisher.py", tmp_path / "reaper.py"
    finisher.write_text(FINISHER)
    reaper.write_text(REAPER)
    dirs = [tmp_path / f"j{i}" for i in range(24)]
    for d in dirs:
        write_status(d, "queued")
    stop = tmp_path / "stop"
    reapers = [
        subprocess.Popen([sys.executable, str(reaper), ",".join(map(str, dirs)), str(stop)], env=ENV) for _ in range(2)
    ]
    try:
        time.sleep(1.5)  # the reapers are looping
        for d in dirs:
            assert subprocess.run([sys.executable, str(finisher), str(d)], env=ENV).returncode == 0
    finally:
        stop.touch()
        for r in reapers:
            r.wait(timeout=30)
    assert [read_status(d)["state"] for d in dirs] == ["done"] * len(dirs)


# ----------------------------------------------------------------------------- 3. the workspace-wide limit


MANAGER = r"""
import os, sys, time
from delt_engine.jobs.manager import JobManager
script, go, dirs = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
m = JobManager(max_concurrent=1, command_builder=lambda d, kind: [sys.executable, script, str(d)],
               poll_interval_s=0.02)
while not os.path.exists(go):
    time.sleep(0.005)
for d in dirs:
    m.submit(d)
states = [s["state"] for s in m.wait(dirs, timeout=120, interval_s=0.02).values()]
assert states == ["done"] * len(dirs), states
"""


def test_two_managers_in_two_processes_share_the_workspace_limit(tmp_path):
    """The app and the CLI, each limited to 1 job: together they run one job at a time."""
    script, manager = tmp_path / "job.py", tmp_path / "manager.py"
    script.write_text(FAKE_JOB)
    manager.write_text(MANAGER)
    runs = tmp_path / "ws" / "runs"
    groups = []
    for who in ("app", "cli"):
        group = []
        for i in range(2):
            d = runs / f"{who}{i}"
            d.mkdir(parents=True)
            write_json(d / "config.json", {"sleep_s": 0.6})
            group.append(d)
        groups.append(group)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, str(manager), str(script), str(go), ",".join(map(str, g))], env=ENV)
        for g in groups
    ]
    time.sleep(1.0)
    go.touch()
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    dirs = groups[0] + groups[1]
    intervals = [(read_status(d)["t0"], read_status(d)["t1"]) for d in dirs]
    assert _max_overlap(intervals) == 1, intervals
    # a manager that returns as soon as its jobs say "done" may leave a lease behind while the job's
    # process exits; it is stale then, and the next count removes it
    slots, deadline = WorkspaceSlots(tmp_path / "ws"), time.monotonic() + 20
    while True:
        with slots.lock():
            if slots.count() == 0:
                break
        assert time.monotonic() < deadline, "a lease outlived its job's process"
        time.sleep(0.05)
    assert not list((tmp_path / "ws" / "cache" / "jobs" / "leases").glob("*.json"))


@needs_proc
def test_a_live_lease_holds_the_slot_and_a_stale_one_is_reclaimed(tmp_path, sleeper):
    script = tmp_path / "job.py"
    script.write_text(FAKE_JOB)
    d = tmp_path / "ws" / "runs" / "r"
    d.mkdir(parents=True)
    write_json(d / "config.json", {"sleep_s": 0.05})
    leases = tmp_path / "ws" / "cache" / "jobs" / "leases"
    # a stale lease (its pid was reused by the sleeper) and a damaged one: both reclaimed
    write_json(
        leases / "runs-stale.json",
        {"pid": sleeper.pid, "pid_start": process_start(sleeper.pid) + 3, "boot_id": boot_id()},
    )
    (leases / "runs-damaged.json").write_text("{")
    # a live lease of another process's job (the sleeper stands in for it)
    write_json(
        leases / "runs-other.json", {"pid": sleeper.pid, "pid_start": process_start(sleeper.pid), "boot_id": boot_id()}
    )
    m = JobManager(command_builder=lambda job_dir, kind: [sys.executable, str(script), str(job_dir)], background=False)
    m.submit(d)
    assert read_status(d)["state"] == "queued" and m.queued() == [d.resolve()]  # the only slot is taken
    assert sorted(p.name for p in leases.glob("*.json")) == ["runs-other.json"]
    sleeper.kill()
    sleeper.wait()
    m.tick()  # the other job ended: its lease is stale now and the slot is free
    assert read_status(d)["state"] == "running"
    assert m.wait([d], timeout=30)[d.resolve()]["state"] == "done"


def test_slots_count_per_workspace_and_explicit_workspace(tmp_path):
    slots = WorkspaceSlots(tmp_path / "ws")
    with slots.lock():
        assert slots.count() == 0
        slots.take(tmp_path / "ws" / "runs" / "a", write_status(tmp_path / "a", "running", pid=os.getpid()))
        assert slots.count() == 1
        slots.release(tmp_path / "ws" / "runs" / "a")
        assert slots.count() == 0
        # the runs of a group train in one process: their leases hold one slot between them
        for name in ("g1", "g2", "g3"):
            slots.take(tmp_path / "ws" / "runs" / name, write_status(tmp_path / name, "running", pid=os.getpid()))
        assert slots.count() == 1
        assert len(list((tmp_path / "ws" / "cache" / "jobs" / "leases").glob("*.json"))) == 3
    m = JobManager(workspace=tmp_path / "ws", background=False)
    assert m._slots(tmp_path / "elsewhere" / "job").root == (tmp_path / "ws").resolve()
    assert JobManager(background=False)._slots(tmp_path / "elsewhere" / "job") is None


# ----------------------------------------------------------------------------- 4. damaged status files


@pytest.mark.parametrize(
    "status",
    [
        {"state": "running", "pid": "abc"},
        {"state": "running", "pid": [1]},
        {"state": "queued", "manager_pid": "x1"},
        {"state": "runnning"},
    ],
)
def test_a_status_that_is_not_valid_is_a_damaged_entry(tmp_path, status):
    d = _run_dir(tmp_path, "bad", status)
    before = (d / "status.json").read_bytes()
    got = refresh_status(d)
    assert got["state"] == "unknown" and got["damaged"] and str(d / "status.json") in got["error"]
    assert (d / "status.json").read_bytes() == before  # left as it is


def test_waiting_on_a_foreign_job_with_a_damaged_status_ends_with_the_reason(tmp_path):
    d = _run_dir(tmp_path, "bad", {})
    (d / "status.json").write_text("")
    got = JobManager(background=False).wait([d], timeout=5, interval_s=0.01)[d.resolve()]
    assert got["state"] == "unknown" and "status.json" in got["error"]
    d2 = _run_dir(tmp_path, "bad2", {"state": "running", "pid": "not-a-pid"})
    got = JobManager(background=False).wait([d2], timeout=5, interval_s=0.01)[d2.resolve()]
    assert got["state"] == "unknown" and "not a process id" in got["error"]


def test_ui_is_active_only_for_queued_and_running():
    from ui.jobs import is_active

    assert is_active({"state": "queued"}) and is_active({"state": "running"})
    for status in (
        {},
        {"state": "unknown", "damaged": True},
        {"state": "done"},
        {"state": "failed"},
        {"error": "no state"},
    ):
        assert not is_active(status), status
