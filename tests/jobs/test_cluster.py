"""Cluster launcher (jobs/cluster.py) through submitit's local executor: the runs of a comparison as
cluster jobs, written exactly as local runs; runs of one job trained together; a run cancelled while its
job waits is skipped; a job that dies is reaped from the scheduler's state; runs on another machine are
never reaped or signalled from here."""

import json
import os
import sys
import time

import pytest

from delt_engine.errors import ConfigError, DeltError, JobError
from delt_engine.fileio import read_json, write_json
from delt_engine.jobs import cluster
from delt_engine.jobs.cluster import ClusterOptions
from delt_engine.jobs.manager import JobManager
from delt_engine.jobs.protocol import read_status, refresh_status, write_status
from tests.cli.test_runs import _tiny_corpus, cli

pytest.importorskip("submitit")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = {
    "name": "tiny",
    "corpus": "corpus.jsonl",
    "scorer": {"method": "length"},
    "orderings": ["shuffle", "sorting"],
    "seeds": [0],
    "train": {
        "model": "tiny-test",
        "steps": 4,
        "eval_every": 2,
        "batch_size": 8,
        "max_length": 32,
        "vocab_size": 300,
        "device": "cpu",
    },
}


def _prepare(tmp_path, **train):
    from delt_engine.experiments.prepare import prepare_comparison
    from delt_engine.experiments.spec import parse_spec
    from delt_engine.workspace.layout import Workspace

    _tiny_corpus(tmp_path)
    spec = json.loads(json.dumps(SPEC))
    spec["train"].update(train)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    ws = Workspace(tmp_path / "ws")
    return ws, prepare_comparison(parse_spec(tmp_path / "spec.json"), ws)


def test_compare_on_the_local_executor_writes_runs_as_local_runs_do(tmp_path):
    _tiny_corpus(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    out = cli(
        "compare",
        "--spec",
        tmp_path / "spec.json",
        "--workspace",
        tmp_path / "ws",
        "--launcher",
        "submitit-local",
        "--json",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("submitit-local job ") == 2  # one cluster job per run
    summary = json.loads(out.stdout)
    runs = sorted((tmp_path / "ws" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        status = read_status(run)
        assert status["state"] == "done" and status["cluster"]["launcher"] == "submitit-local"
        assert status["cluster"]["runs"] == 1 and status["pid"] != os.getpid()
        assert read_json(run / "summary.json")["steps"] == 4
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in lines if "val_loss" in r] == [0, 2, 4]
    assert set(summary["arms"]) == {"shuffle", "sorting"}


def test_runs_per_job_trains_a_jobs_runs_together(tmp_path):
    ws, comparison = _prepare(tmp_path)
    jobs = cluster.submit_runs(
        comparison.run_dirs, ClusterOptions(launcher="submitit-local", runs_per_job=2), tmp_path / "submitit"
    )
    assert len(jobs) == 1 and jobs[0].run_dirs == [d.resolve() for d in comparison.run_dirs]
    assert [f.name for f in (tmp_path / "submitit").iterdir()] == [jobs[0].job_id]  # no stray "%j" folder
    statuses = cluster.wait(jobs, timeout=300, interval_s=0.2)
    assert [s["state"] for s in statuses.values()] == ["done", "done"], statuses
    assert len({s["pid"] for s in statuses.values()}) == 1  # one process trained both
    assert all(read_json(d / "summary.json")["group_size"] == 2 for d in comparison.run_dirs)
    with pytest.raises(JobError, match="already done"):  # a run that ran is never submitted again
        cluster.submit_runs(comparison.run_dirs[:1], ClusterOptions(launcher="submitit-local"), tmp_path / "s2")


def test_a_run_cancelled_while_queued_is_skipped_by_its_job(tmp_path):
    ws, comparison = _prepare(tmp_path)
    first, second = comparison.run_dirs
    # what the scheduler's queue looks like from the workspace: both runs queued, their job not started
    for d in (first, second):
        write_status(d, "queued", expect=(None,), cluster={"launcher": "slurm", "job_id": "123", "runs": 2})
    assert JobManager(background=False).cancel(second) == "cancelled"
    assert (second / "cancel").exists() and read_status(second)["state"] == "cancelled"
    result = cluster.run_cluster_job([str(first), str(second)])  # the job body, here in this process
    assert result == {str(first): "done"}
    assert read_status(first)["state"] == "done" and not (second / "metrics.jsonl").exists()


def test_a_job_that_dies_marks_its_runs_failed(tmp_path, monkeypatch):
    """The job's process is on a compute node (here: this test sees itself as another host), so only the
    scheduler's state can tell that it died."""
    from delt_engine.jobs import protocol

    monkeypatch.setattr(protocol, "host_name", lambda: "login-node")
    ws, comparison = _prepare(tmp_path, steps=100000, epochs=None, eval_every=None)
    jobs = cluster.submit_runs(comparison.run_dirs[:1], ClusterOptions(launcher="submitit-local"), tmp_path / "s")
    run = comparison.run_dirs[0]
    deadline = time.monotonic() + 120
    while read_status(run).get("state") != "running":
        assert time.monotonic() < deadline, read_status(run)
        time.sleep(0.1)
    os.kill(read_status(run)["pid"], 9)  # the node dies: the run never writes a final state
    statuses = cluster.wait(jobs, timeout=120, interval_s=0.2)
    status = statuses[run.resolve()]
    assert status["state"] == "failed" and f"cluster job {jobs[0].job_id} ended" in status["error"], status
    assert status["host"] != "login-node"


def test_a_process_on_another_machine_is_never_reaped_or_signalled_here(tmp_path):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    write_json(run / "config.json", {})
    # pid 1 with a foreign host and boot id: locally that pid is another process (or none)
    write_json(
        run / "status.json",
        {"state": "running", "pid": 1, "pid_start": 1, "boot_id": "elsewhere-boot", "host": "node-17"},
    )
    assert refresh_status(run)["state"] == "running"  # cannot be checked from here: left as it is
    assert JobManager(background=False).cancel(run) == "stopping"
    assert (run / "cancel").exists() and read_status(run)["state"] == "running"  # the job stops itself


def test_bad_options_and_a_missing_submitit_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="launcher 'pbs'"):
        ClusterOptions(launcher="pbs")
    with pytest.raises(ConfigError, match="runs_per_job=0"):
        ClusterOptions(runs_per_job=0)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun: not a Slurm login node
    out = cli("compare", "--demo", "--workspace", tmp_path / "ws", "--launcher", "slurm")
    assert out.returncode == 2 and "needs Slurm's sbatch and srun on PATH" in out.stderr, out.stderr
    assert "--launcher submitit-local" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "ws" / "comparisons").exists()  # refused before anything was prepared
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(DeltError, match="pip install"):
        cluster.import_submitit()
    out = cli("compare", "--demo", "--workspace", tmp_path / "ws", "--launcher", "slurm", "--slurm-arg", "x")
    assert out.returncode == 2 and "--slurm-arg 'x' must look like KEY=VALUE" in out.stderr
    assert not (tmp_path / "ws" / "comparisons").exists()  # refused before anything was prepared


def test_slurm_parameters(tmp_path, monkeypatch):
    params = cluster._parameters(
        ClusterOptions(partition="gpu", gpus=1, cpus=8, mem_gb=32, time_min=30, slurm_args={"account": "p"}), "n"
    )
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 1 and params["cpus_per_task"] == 8
    assert params["mem_gb"] == 32 and params["timeout_min"] == 30
    assert params["slurm_additional_parameters"] == {"account": "p"}
    assert any(line.startswith("export PYTHONPATH=") for line in params["slurm_setup"])
    # the sbatch file submitit would write from them (no Slurm here: srun's presence check is skipped)
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", staticmethod(lambda: 1))
    executor = cluster.import_submitit().AutoExecutor(folder=tmp_path / "%j", cluster="slurm")
    executor.update_parameters(**params)
    text = executor._executor._make_submission_file_text("echo job", "uid")
    for line in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=32GB",
        "--time=30",
        "--account=p",
        "--job-name=n",
    ):
        assert f"#SBATCH {line}" in text, (line, text)
    assert "export PYTHONPATH=" in text and "export OMP_NUM_THREADS=8" in text


def _gone_local_job(tmp_path) -> dict:
    """The ``cluster`` entry of a submitit-local job whose process has ended without a word."""
    import subprocess

    from delt_engine.jobs.protocol import process_fields

    proc = subprocess.Popen(["sleep", "30"])
    fields = process_fields(proc.pid)
    proc.kill()
    proc.wait()
    folder = tmp_path / "submitit" / str(proc.pid)
    return {"launcher": "submitit-local", "job_id": str(proc.pid), "folder": str(folder), "runs": 1, **fields}


def test_runs_wait_reaps_a_job_that_ended_from_another_process(tmp_path):
    """After compare --no-wait the submitting process is gone: `runs wait` rebuilds the jobs from the runs'
    status and marks a run failed whose job ended before it started (its status still says queued)."""
    ws, comparison = _prepare(tmp_path)
    dead, foreign = comparison.run_dirs
    write_status(dead, "queued", expect=(None,), manager_pid=None, cluster=_gone_local_job(tmp_path))
    elsewhere = {**_gone_local_job(tmp_path), "host": "node-9"}  # the same, on a machine not checkable from here
    write_status(foreign, "queued", expect=(None,), manager_pid=None, cluster=elsewhere)
    assert refresh_status(dead)["state"] == "queued"  # no process of it to check: only its job can tell

    out = cli("runs", "wait", dead.name, "--workspace", ws.root, timeout=120)
    assert out.returncode == 1, out.stderr
    status = read_status(dead)
    assert status["state"] == "failed" and f"cluster job {status['cluster']['job_id']} ended" in status["error"]
    assert f"run {dead.name} failed" in out.stderr

    never = tmp_path / "ws" / "runs" / "never"
    never.mkdir()
    write_json(never / "config.json", {})
    out = cli("runs", "wait", "never", "--workspace", ws.root, timeout=120)  # nothing would ever end it
    assert out.returncode != 0 and "1 run(s) never started" in out.stderr and "runs launch" in out.stderr

    out = cli("runs", "wait", foreign.name, "--timeout", "1", "--workspace", ws.root, timeout=120)
    assert out.returncode != 0 and "still unfinished" in out.stderr, out.stderr
    assert read_status(foreign)["state"] == "queued"  # never reaped from here


def test_a_run_queued_in_a_cluster_job_is_not_launched_here_too(tmp_path):
    ws, comparison = _prepare(tmp_path)
    queued, fresh = comparison.run_dirs
    info = {"launcher": "slurm", "job_id": "123", "runs": 1, "folder": str(tmp_path / "s")}
    write_status(queued, "queued", expect=(None,), manager_pid=None, cluster=info)
    with pytest.raises(JobError, match="queued as slurm job 123; cancel it first"):
        JobManager(background=False).submit(queued)
    out = cli("runs", "launch", "--comparison", comparison.id, "--workspace", ws.root, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "skipping 1 run(s)" in out.stderr
    assert read_status(fresh)["state"] == "done" and read_status(queued)["state"] == "queued"
    # the cluster job's body, when it starts, trains only what is still queued for it
    assert cluster.run_cluster_job([str(fresh)]) == {}  # already done here: skipped


def test_a_job_the_scheduler_refuses_is_a_clear_error(tmp_path, monkeypatch):
    ws, comparison = _prepare(tmp_path)
    submitit = cluster.import_submitit()
    calls = []
    real = submitit.AutoExecutor.submit

    def refuse_second(self, fn, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("sbatch: error: invalid partition specified: gpuz")
        return real(self, fn, *args, **kwargs)

    monkeypatch.setattr(submitit.AutoExecutor, "submit", refuse_second)
    with pytest.raises(JobError, match="invalid partition") as err:
        cluster.submit_runs(comparison.run_dirs, ClusterOptions(launcher="submitit-local"), tmp_path / "s")
    first, second = comparison.run_dirs
    assert second.name in str(err.value) and "1 job(s) submitted before it go on" in str(err.value)
    assert read_status(second) == {}  # never submitted: still only prepared
    assert read_status(first)["state"] in ("queued", "running", "done")
    jobs, _ = cluster.jobs_of([first])
    cluster.wait(jobs, timeout=300, interval_s=0.2)  # let it end before the test's folder goes
