"""``compare``: prepare a comparison (arms x seeds), launch its runs through the job manager, wait, report.

python -m delt_engine compare --demo --workspace ws
python -m delt_engine compare --spec spec.json --max-concurrent 2 --no-wait
python -m delt_engine compare --spec spec.json --prepare-only      # one train command per run, nothing trained
python -m delt_engine compare --spec spec.json --launcher slurm --slurm-partition gpu --slurm-gpus 1
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .common import workspace, workspace_arg
from .progress import ProgressLog
from .report import print_report


def register(subparsers) -> None:
    cmp = subparsers.add_parser(
        "compare",
        help="train one run per ordering x seed and compare them",
        description="Prepare a comparison (score, select, order once), launch its runs "
        "through the job manager, wait, and print the table and verdicts.",
    )
    src = cmp.add_mutually_exclusive_group(required=True)
    src.add_argument("--spec", help="comparison spec JSON (corpus, scorer, selection, orderings, seeds, train)")
    src.add_argument("--demo", action="store_true", help="the demo: shuffle vs sorting vs folding L=3, 3 seeds")
    workspace_arg(cmp)
    cmp.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="runs at once (default: one per GPU when there are several, else 1)",
    )
    cmp.add_argument("--no-wait", action="store_true", help="return after launching; runs continue in the background")
    cmp.add_argument(
        "--prepare-only",
        action="store_true",
        help="prepare everything (scores, arms' ordered files, tokenizer, held-out sets, manifest), train "
        "nothing, and print one train command per run (to submit to any scheduler)",
    )
    cluster_args(cmp)
    cmp.add_argument("--seeds", help="override the spec's seeds, e.g. 0,1,2")
    cmp.add_argument(
        "--scorer",
        help="override the spec's scoring method, e.g. lqs (the demo uses length: "
        "LQS on the demo corpus takes minutes on a 2-core CPU)",
    )
    cmp.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a train field (JSON value), e.g. --train steps=200 --train device=cpu",
    )
    cmp.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    cmp.set_defaults(func=cmd_compare)


def cluster_args(parser) -> None:
    """``--launcher`` and the cluster jobs' resources (jobs/cluster.py)."""
    group = parser.add_argument_group(
        "cluster",
        "train the runs as cluster jobs through submitit; the workspace must be on a filesystem the "
        "compute nodes share (docs/cluster.md)",
    )
    group.add_argument(
        "--launcher",
        choices=("local", "slurm", "submitit-local"),
        default="local",
        help="local: this machine's job manager (default); slurm: one sbatch job per run (or per "
        "--runs-per-job runs); submitit-local: the same through submitit's local executor",
    )
    group.add_argument("--slurm-partition", default=None, help="Slurm partition (default: the cluster's default)")
    group.add_argument("--slurm-time", type=int, default=120, metavar="MIN", help="time limit per job (default 120)")
    group.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per job (default 0)")
    group.add_argument("--slurm-cpus", type=int, default=4, help="CPU cores per job (default 4)")
    group.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per job in GiB")
    group.add_argument(
        "--slurm-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another sbatch option, e.g. --slurm-arg account=proj --slurm-arg qos=short",
    )
    group.add_argument(
        "--runs-per-job",
        type=int,
        default=1,
        help="runs trained together in one cluster job (runs sharing a model config: one stacked model on a GPU)",
    )


def cluster_options(args):
    """The ClusterOptions of ``--launcher`` (None for the local job manager)."""
    from ..errors import ConfigError
    from ..jobs.cluster import ClusterOptions, check_launcher

    if args.launcher == "local":
        return None
    extra = {}
    for item in args.slurm_arg:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--slurm-arg {item!r} must look like KEY=VALUE, e.g. account=proj")
        extra[key.strip()] = value
    options = ClusterOptions(
        launcher=args.launcher,
        partition=args.slurm_partition,
        time_min=args.slurm_time,
        gpus=args.slurm_gpus,
        cpus=args.slurm_cpus,
        mem_gb=args.slurm_mem_gb,
        runs_per_job=args.runs_per_job,
        slurm_args=extra,
    )
    check_launcher(options)
    return options


def cmd_compare(args) -> int:
    import time

    from ..experiments.prepare import prepare_comparison
    from ..experiments.spec import demo_spec, parse_spec

    ws = workspace(args)
    options = cluster_options(args)  # a bad option fails before anything is prepared
    spec = parse_spec(demo_spec() if args.demo else args.spec)
    spec = _apply_overrides(spec, args)
    start = time.perf_counter()
    progress = ProgressLog(leave=False)

    def on_progress(p):
        if p.phase == "prepare":
            progress(p)

    try:
        comparison = prepare_comparison(spec, ws, on_progress=on_progress)
    finally:
        progress.close()
    arms = ", ".join(comparison.manifest["arms"])
    print(
        f"comparison {comparison.id}: {len(comparison.run_dirs)} runs ({arms}; seeds "
        f"{comparison.manifest['seeds']}) in {ws.root}; prepared in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    if args.prepare_only:
        for run_dir in comparison.run_dirs:
            print(f"{sys.executable} -m delt_engine train --run-dir {run_dir}")
        print(f"then: python -m delt_engine runs report {comparison.id} --workspace {ws.root}", file=sys.stderr)
        return 0
    if options is not None:
        return _on_cluster(ws, comparison, options, args)
    if args.no_wait:
        pid = _spawn_launcher(ws, comparison.id, args.max_concurrent)
        print(
            f"launched in the background (launcher pid {pid}); follow with "
            f"`python -m delt_engine runs list --workspace {ws.root} --comparison {comparison.id}`"
        )
        print(comparison.id)
        return 0
    ok = launch_and_wait(comparison.run_dirs, args.max_concurrent)
    print_report(ws, comparison.id, as_json=args.json)
    return 0 if ok else 1


def _on_cluster(ws, comparison, options, args) -> int:
    """Submit the runs as cluster jobs; wait for them (Ctrl+C cancels them) unless --no-wait."""
    from ..jobs import cluster

    jobs = cluster.submit_runs(
        comparison.run_dirs, options, ws.comparison_dir(comparison.id) / "submitit", name=f"delt-{comparison.id}"
    )
    for j in jobs:
        print(f"{options.launcher} job {j.job_id}: {', '.join(d.name for d in j.run_dirs)}", file=sys.stderr)
    if args.no_wait:
        print(
            f"follow with `python -m delt_engine runs list --workspace {ws.root} --comparison {comparison.id}`; "
            f"wait for them (runs whose job ended without them are marked failed) and see the report with "
            f"`runs wait --comparison {comparison.id}`",
            file=sys.stderr,
        )
        print(comparison.id)
        return 0
    bar = runs_bar()
    previous = _catch_stop_signals()
    try:
        statuses = cluster.wait(jobs, on_tick=lambda s: show_runs(bar, s))
    except KeyboardInterrupt:
        bar.close()
        print("interrupted: cancelling the cluster jobs (use --no-wait to leave them running)", file=sys.stderr)
        cluster.cancel_jobs(jobs)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    bar.close()
    print_report(ws, comparison.id, as_json=args.json)
    return 0 if report_failures(statuses) else 1


def _apply_overrides(spec, args):
    from ..errors import ConfigError
    from ..experiments.spec import parse_spec

    raw = spec.to_dict()
    if args.scorer:
        raw["scorer"] = {"method": args.scorer}
    if args.seeds:
        try:
            raw["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds {args.seeds!r} must be integers separated by commas, e.g. 0,1,2") from None
    for item in args.train:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--train {item!r} must look like KEY=VALUE, e.g. steps=200")
        try:
            raw["train"][key] = json.loads(value)
        except json.JSONDecodeError:
            raw["train"][key] = value
    # paths in ``raw`` are already absolute, so parsing again resolves nothing differently
    return parse_spec(raw) if (args.seeds or args.train or args.scorer) else spec


def _spawn_launcher(ws, comparison_id: str, max_concurrent: int | None) -> int:
    """A detached `runs launch` process that owns the queue after this command returns."""
    from ..jobs.manager import PACKAGE_ROOT

    log = ws.comparison_dir(comparison_id) / "launcher.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "delt_engine",
                "runs",
                "launch",
                "--workspace",
                str(ws.root),
                "--comparison",
                comparison_id,
            ]
            + ([] if max_concurrent is None else ["--max-concurrent", str(max_concurrent)]),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return proc.pid


def launch_and_wait(run_dirs, max_concurrent: int | None) -> bool:
    """Submit every run, show progress on stderr, wait; Ctrl+C cancels them. True when all are done."""
    from ..jobs.manager import JobManager, default_concurrency

    manager = JobManager(max_concurrent=default_concurrency() if max_concurrent is None else max_concurrent)
    for d in run_dirs:
        manager.submit(d, "train")
    bar = runs_bar()

    previous = _catch_stop_signals()  # `kill`/`timeout` on this command cancels its runs too
    try:
        statuses = manager.wait(run_dirs, on_tick=lambda s: show_runs(bar, s))
    except KeyboardInterrupt:
        bar.close()
        print(
            "interrupted: cancelling the runs (use --no-wait to keep runs going without this terminal)", file=sys.stderr
        )
        manager.cancel_all()
        manager.wait(run_dirs, timeout=manager.grace_s + 30)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    bar.close()
    return report_failures(statuses)


def runs_bar() -> ProgressLog:
    """The progress line of waiting runs (``show_runs`` updates it)."""
    return ProgressLog(mininterval=1.0, bar_format="{desc}: {n:.2f}/{total} |{bar}| [{elapsed}<{remaining}] {postfix}")


def show_runs(bar, statuses: dict) -> None:
    """One progress line for the runs: finished runs count 1, running ones their training fraction."""
    from ..jobs.protocol import read_progress

    states = [s.get("state", "?") for s in statuses.values()]
    done = sum(
        1.0 if s.get("state") in ("done", "failed", "cancelled") else _train_fraction(read_progress(d))
        for d, s in statuses.items()
    )
    counts = " ".join(f"{k} {states.count(k)}" for k in dict.fromkeys(states))
    bar.update("runs", float(done), len(statuses), counts)


def report_failures(statuses: dict) -> bool:
    """Print each run that did not finish; True when all are done."""
    failed = {d: s for d, s in statuses.items() if s.get("state") != "done"}
    for d, s in failed.items():
        print(f"run {Path(d).name} {s.get('state')}: {s.get('error') or ''}", file=sys.stderr)
    return not failed


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _catch_stop_signals() -> dict:
    """SIGTERM and SIGINT raise KeyboardInterrupt while this command waits (also a SIGINT the shell set to
    be ignored, as for a job started with & from a script: `train` stops on it, so `compare` does too);
    returns the previous handlers."""
    return {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}


def _train_fraction(progress: dict) -> float:
    return float(progress.get("fraction") or 0.0) if progress.get("phase") == "train" else 0.0
