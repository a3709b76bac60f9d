"""Job manager: FIFO queue with bounded concurrency, cancel (graceful and hard), reaping, waiting.

Jobs here are tiny Python scripts (injected through ``command_builder``), not training runs.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from delt_engine.errors import JobError
from delt_engine.fileio import write_json
from delt_engine.jobs.manager import JobManager, engine_command
from delt_engine.jobs.protocol import read_status, write_status

FAKE_JOB = r"""
import os, signal, sys, time
from delt_engine.fileio import read_json
from delt_engine.jobs.protocol import StopFlag, write_status

job_dir = sys.argv[1]
cfg = read_json(os.path.join(job_dir, "config.json"))
mode = cfg.get("mode", "ok")
if mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
stop = StopFlag(job_dir, install_signals=mode != "ignore_term")
write_status(job_dir, "running", pid=os.getpid(), t0=time.time())
print("started", flush=True)
end = time.time() + cfg.get("sleep_s", 0.3)
while time.time() < end or mode in ("ignore_term", "forever"):
    if mode != "ignore_term" and stop():
        write_status(job_dir, "cancelled", t1=time.time(), message="job stopped itself")
        sys.exit(0)
    time.sleep(0.02)
if mode == "crash":
    print("boom: the fake job broke", flush=True)
    sys.exit(3)
write_status(job_dir, "done", t1=time.time())
"""


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_job.py"
    script.write_text(FAKE_JOB)

    def builder(job_dir, kind):
        return [sys.executable, str(script), str(job_dir)]

    def make(name, **cfg):
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        write_json(d / "config.json", cfg)
        return d

    return builder, make


def _wait_state(d, state, timeout=20.0, key=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = read_status(d)
        if s.get("state") == state and (key is None or key in s):
            return s
        time.sleep(0.02)
    raise AssertionError(f"{d.name} never reached {state}: {read_status(d)}")


def _max_overlap(intervals):
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    cur = best = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def test_queue_runs_one_at_a_time_in_fifo_order(fake):
    builder, make = fake
    dirs = [make(f"j{i}", sleep_s=0.3) for i in range(3)]
    m = JobManager(max_concurrent=1, command_builder=builder)
    for d in dirs:
        m.submit(d, "train")
    assert read_status(dirs[0])["state"] == "running"
    assert [read_status(d)["state"] for d in dirs[1:]] == ["queued", "queued"]
    assert read_status(dirs[1])["manager_pid"] == os.getpid()
    statuses = m.wait(dirs, timeout=60)
    assert [s["state"] for s in statuses.values()] == ["done"] * 3
    intervals = [(read_status(d)["t0"], read_status(d)["t1"]) for d in dirs]
    assert _max_overlap(intervals) == 1
    assert [a for a, _ in intervals] == sorted(a for a, _ in intervals)  # FIFO
    _wait_idle(m)  # a job may write "done" a moment before its process exits


def _wait_idle(m, timeout=10.0):
    end = time.monotonic() + timeout
    while not m.idle():
        assert time.monotonic() < end, "manager still busy"
        m.tick()
        time.sleep(0.02)


def test_concurrency_limit_two(fake):
    builder, make = fake
    dirs = [make(f"j{i}", sleep_s=0.6) for i in range(4)]
    m = JobManager(max_concurrent=2, command_builder=builder)
    for d in dirs:
        m.submit(d)
    assert len(m.running()) == 2 and len(m.queued()) == 2
    m.wait(dirs, timeout=60)
    assert _max_overlap([(read_status(d)["t0"], read_status(d)["t1"]) for d in dirs]) == 2


def test_background_thread_advances_the_queue(fake):
    builder, make = fake
    dirs = [make(f"j{i}", sleep_s=0.1) for i in range(2)]
    m = JobManager(max_concurrent=1, command_builder=builder, poll_interval_s=0.05)
    for d in dirs:
        m.submit(d)
    _wait_state(dirs[1], "done")  # nobody calls tick(): the daemon thread launched the second job
    deadline = time.monotonic() + 5
    while not m.idle() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert m.idle() and m._thread is None  # the thread ends once there is no work


def test_cancel_queued_job_is_immediate(fake):
    builder, make = fake
    first, second = make("a", mode="forever"), make("b")
    m = JobManager(max_concurrent=1, command_builder=builder, grace_s=5)
    m.submit(first)
    m.submit(second)
    assert m.cancel(second) == "cancelled"
    assert read_status(second)["state"] == "cancelled" and not (second / "job.log").exists()
    _wait_state(first, "running", key="t0")
    assert m.cancel(first) == "stopping"
    m.wait([first, second], timeout=20)
    assert not (second / "job.log").exists()  # never launched, even after the slot freed


def test_cancel_running_job_that_honours_sigterm(fake):
    builder, make = fake
    d = make("a", mode="forever")
    m = JobManager(command_builder=builder, grace_s=10)
    m.submit(d)
    _wait_state(d, "running", key="t0")
    t = time.monotonic()
    assert m.cancel(d) == "stopping"
    status = m.wait([d], timeout=20)[d.resolve()]
    assert status["state"] == "cancelled" and status["message"] == "job stopped itself"
    assert time.monotonic() - t < 5  # stopped well before the hard-kill deadline


def test_cancel_running_job_that_ignores_sigterm_is_killed(fake):
    builder, make = fake
    d = make("a", mode="ignore_term")
    m = JobManager(command_builder=builder, grace_s=0.5)
    m.submit(d)
    _wait_state(d, "running", key="t0")
    pid = read_status(d)["pid"]
    m.cancel(d)
    status = m.wait([d], timeout=20)[d.resolve()]
    assert status["state"] == "cancelled" and "killed after ignoring SIGTERM" in status["message"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_crashed_job_is_failed_with_exit_code_and_log_tail(fake):
    builder, make = fake
    d = make("a", mode="crash", sleep_s=0.05)
    m = JobManager(command_builder=builder)
    m.submit(d)
    status = m.wait([d], timeout=20)[d.resolve()]
    assert status["state"] == "failed" and status["exit_code"] == 3
    assert "exited with code 3" in status["error"] and "boom: the fake job broke" in status["error"]
    assert status["log_tail"].splitlines() == ["started", "boom: the fake job broke"]


def test_killed_job_is_failed_with_signal(fake):
    builder, make = fake
    d = make("a", mode="forever")
    m = JobManager(command_builder=builder)
    m.submit(d)
    _wait_state(d, "running", key="t0")
    os.kill(read_status(d)["pid"], signal.SIGKILL)
    status = m.wait([d], timeout=20)[d.resolve()]
    assert status["state"] == "failed" and "signal 9 (SIGKILL)" in status["error"]


def test_cancel_job_started_by_another_process(fake):
    builder, make = fake
    d = make("a", mode="forever")
    proc = subprocess.Popen(
        builder(d, "train"),
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(__import__("delt_engine").__path__[0] + "/..")},
    )
    try:
        _wait_state(d, "running", key="t0")
        m = JobManager(background=False, grace_s=5)
        with pytest.raises(JobError, match="already running"):
            m.submit(d)  # never a second process on one run dir
        assert m.cancel(d) == "stopping"
        assert m.wait([d], timeout=20)[d.resolve()]["state"] == "cancelled"
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cancel_queued_by_another_manager_and_final_states(fake):
    builder, make = fake
    d = make("a")
    write_status(d, "queued", manager_pid=os.getpid())
    m = JobManager(command_builder=builder)
    assert m.cancel(d) == "cancelled" and (d / "cancel").exists()
    assert m.cancel(d) == "cancelled"  # already final: nothing to do


def test_wait_timeout_and_bad_submissions(fake, tmp_path):
    builder, make = fake
    d = make("a", mode="forever")
    m = JobManager(command_builder=builder, grace_s=1)
    m.submit(d)
    with pytest.raises(JobError, match="still unfinished"):
        m.wait([d], timeout=0.3)
    m.cancel(d)
    m.wait([d], timeout=20)
    (tmp_path / "empty").mkdir()
    with pytest.raises(JobError, match="no config.json"):
        m.submit(tmp_path / "empty")
    with pytest.raises(JobError, match="unknown job kind"):
        JobManager().submit(d, "dance")
    with pytest.raises(JobError):
        JobManager(max_concurrent=0)


def test_engine_command_and_job_env(tmp_path):
    build = engine_command("/usr/bin/python3")
    assert build(tmp_path, "train") == ["/usr/bin/python3", "-m", "delt_engine", "train", "--run-dir", str(tmp_path)]
    assert build(tmp_path, "score")[3:5] == ["score", "--job-dir"]
    env = JobManager(max_concurrent=2)._job_env()
    assert str(__import__("delt_engine.jobs.manager").jobs.manager.PACKAGE_ROOT) in env["PYTHONPATH"].split(os.pathsep)


def test_shared_manager_is_one_per_process():
    from delt_engine.jobs.manager import shared_manager

    first = shared_manager()
    assert shared_manager() is first
    limit = first.max_concurrent
    try:
        assert shared_manager(3) is first and first.max_concurrent == 3
    finally:
        first.max_concurrent = limit


GPU_JOB = r"""
import os, sys, time
from delt_engine.fileio import read_json
from delt_engine.jobs.protocol import write_status

job_dir = sys.argv[1]
with open(os.path.join(job_dir, "gpu.txt"), "w") as fh:
    fh.write(os.environ.get("CUDA_VISIBLE_DEVICES", "-"))
time.sleep(read_json(os.path.join(job_dir, "config.json"))["sleep_s"])
write_status(job_dir, "done")
"""


def test_jobs_spread_over_several_gpus_one_each(tmp_path, fake, monkeypatch):
    _, make = fake
    script = tmp_path / "gpu_job.py"
    script.write_text(GPU_JOB)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # what the app was started with; a job gets its own
    mgr = JobManager(
        max_concurrent=2,
        command_builder=lambda d, kind: [sys.executable, str(script), str(d)],
        gpus=["3", "5"],
        poll_interval_s=0.05,
    )
    dirs = [make("a", sleep_s=0.3), make("b", sleep_s=3.0), make("c", sleep_s=0.1)]
    for d in dirs:
        mgr.submit(d)
    assert all(s["state"] == "done" for s in mgr.wait(dirs, timeout=60).values())
    # a and b start together on the two GPUs; c takes the one a freed while b still runs
    assert [(d / "gpu.txt").read_text() for d in dirs] == ["3", "5", "3"]

    one = JobManager(command_builder=lambda d, kind: [sys.executable, str(script), str(d)], gpus=["0"])
    d = make("d", sleep_s=0.0)
    one.submit(d)
    one.wait([d], timeout=60)
    assert (d / "gpu.txt").read_text() == "7"  # one GPU: the environment is left as it is


def test_visible_gpus_and_default_concurrency(monkeypatch):
    from delt_engine.jobs.manager import default_concurrency, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 4,6")
    assert visible_gpus() == ["2", "4", "6"] and default_concurrency() == 3
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert visible_gpus() == [] and default_concurrency() == 1
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    import torch

    assert len(visible_gpus()) == torch.cuda.device_count()
