"""``runs list|show|cancel|wait|export|report|launch|eval``: the run registry of a workspace.

python -m delt_engine runs list --comparison ID
python -m delt_engine runs show RUN_ID
python -m delt_engine runs cancel RUN_ID
python -m delt_engine runs wait --comparison ID      # e.g. after compare --launcher slurm --no-wait
python -m delt_engine runs report COMPARISON_ID --json
python -m delt_engine runs export COMPARISON_ID --out DIR
python -m delt_engine runs export COMPARISON_ID --format tensorboard --out DIR   # or --format mlflow
python -m delt_engine runs eval RUN --include-path DIR --tasks delt_benchmark
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import fmt, text_table, workspace, workspace_arg
from .compare import launch_and_wait
from .report import comparison_makeups, print_report


def register(subparsers) -> None:
    runs = subparsers.add_parser("runs", help="list, show, cancel, wait for, export and evaluate training runs")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="every run of the workspace with its state and last metrics")
    workspace_arg(p)
    p.add_argument("--comparison", help="only the runs of this comparison id")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.set_defaults(func=cmd_list, needs_existing_workspace=True)
    p = sub.add_parser("show", help="config, status, last metrics and summary of one run")
    p.add_argument("run_id", help="the run's id (see `runs list`)")
    workspace_arg(p)
    p.set_defaults(func=cmd_show, needs_existing_workspace=True)
    p = sub.add_parser("cancel", help="cancel a queued or running run (SIGTERM, SIGKILL after a grace period)")
    p.add_argument("run_id", help="the run's id (see `runs list`)")
    workspace_arg(p)
    p.add_argument("--grace", type=float, default=10.0, help="seconds before a hard kill (default 10)")
    p.set_defaults(func=cmd_cancel, needs_existing_workspace=True)
    p = sub.add_parser(
        "wait",
        help="wait until runs end (local runs, or cluster jobs submitted with compare --no-wait); "
        "runs whose cluster job ended without them are marked failed",
    )
    p.add_argument("run_ids", nargs="*", help="ids of runs to wait for (or none, with --comparison)")
    p.add_argument("--comparison", help="every run of this comparison (its report is printed at the end)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (the runs go on)")
    workspace_arg(p)
    p.set_defaults(func=cmd_wait, needs_existing_workspace=True)
    p = sub.add_parser(
        "export",
        help="curves CSV and summary JSON of a comparison (with group_by: group curves, "
        "forgetting and the stream's make-up as CSV too), or its runs for "
        "TensorBoard / MLflow",
    )
    p.add_argument("comparison_id", help="the comparison's id (printed by `compare`)")
    p.add_argument("--out", required=True, help="output folder (for mlflow: the file store, e.g. OUT/mlruns)")
    p.add_argument(
        "--format",
        dest="export_format",
        choices=("csv", "tensorboard", "mlflow"),
        default="csv",
        help="csv (default): curves and summary tables; tensorboard: event files in OUT/<arm>/seed<k>/ "
        "(tensorboard --logdir OUT); mlflow: one MLflow run per run in the file store OUT, "
        "experiment = the comparison id. Both from the runs' metrics.jsonl; they need pip install "
        "'delt-studio[trackers]'",
    )
    workspace_arg(p)
    p.set_defaults(func=cmd_export, needs_existing_workspace=True)
    p = sub.add_parser("report", help="the comparison table and verdicts (also for unfinished comparisons)")
    p.add_argument("comparison_id", help="the comparison's id (printed by `compare`)")
    workspace_arg(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON object: per-arm table, deltas, a "verdicts" list '
        "(arm, baseline, metric, n_seeds, delta, ci_low, ci_high, p, p_adjusted, seeds_needed, verdict) "
        'and, for runs evaluated by group, a "forgetting" list '
        "(arm, group, min_loss, final_loss, rise, ...)",
    )
    p.set_defaults(func=cmd_report, needs_existing_workspace=True)
    p = sub.add_parser("launch", help="queue runs (or the runs of a comparison that never started) and wait for them")
    p.add_argument("run_ids", nargs="*", help="ids of runs to queue (or none, with --comparison)")
    p.add_argument("--comparison", help="launch every run of this comparison that has not finished")
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="runs at once (default: one per GPU when there are several, else 1)",
    )
    workspace_arg(p)
    p.set_defaults(func=cmd_launch, needs_existing_workspace=True)
    p = sub.add_parser(
        "eval",
        help="evaluate a run's kept model with lm-evaluation-harness (lm_eval.json)",
        description="Evaluate the model a run kept (--save-model) through lm-eval's Hugging Face "
        "backend, offline, and store lm-eval's results in <run>/lm_eval.json. Needs "
        "lm-eval: pip install 'delt-studio[eval]'.",
    )
    p.add_argument("run", metavar="RUN", help="run id or run folder")
    p.add_argument(
        "--tasks",
        required=True,
        help="lm-eval tasks or groups, comma-separated (e.g. delt_benchmark "
        "after `benchmark export --format lm-eval --out DIR`)",
    )
    p.add_argument("--include-path", default=None, metavar="DIR", help="folder of extra task YAMLs (an export)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N documents per task (the first)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=16, help="requests per forward pass (default 16)")
    workspace_arg(p)
    p.set_defaults(func=cmd_eval, needs_existing_workspace=True)


def cmd_list(args) -> int:
    ws = workspace(args)
    infos = ws.list_runs(comparison=args.comparison)
    if args.json:
        for info in infos:
            print(
                json.dumps(
                    {
                        "id": info.id,
                        "state": info.state,
                        "arm": info.arm,
                        "seed": info.seed,
                        "model": info.model,
                        "comparison": info.comparison,
                        "progress": info.progress,
                        "where": info.where,
                        "created_at": info.created_at,
                        "ended_at": info.ended_at,
                        "error": info.error,
                        "last_metrics": info.last_metrics,
                    },
                    default=str,
                )
            )
        return 0
    if not infos:
        print(f"no runs in {ws.root / 'runs'}" + (f" for comparison {args.comparison}" if args.comparison else ""))
        return 0
    header = ["id", "state", "progress", "arm", "seed", "model", "train_loss", "target_loss", "bench_acc", "comparison"]
    rows = [
        [
            info.id,
            info.state,
            "" if info.progress is None else f"{info.progress:.0%}",
            info.arm or "-",
            "-" if info.seed is None else str(info.seed),
            info.model or "-",
            *(fmt(info.last_metrics.get(k)) for k in ("train_loss", "target_loss", "bench_acc")),
            info.comparison or "-",
        ]
        for info in infos
    ]
    print(text_table(header, rows))
    for info in infos:
        if info.state in ("failed", "unknown") and info.error:
            print(f"{info.id}: {info.error.splitlines()[0]}")
    return 0


def cmd_show(args) -> int:
    from ..jobs.records import last_metrics

    ws = workspace(args)
    record = ws.load_run(args.run_id)
    print(f"run {record.id}  ({record.dir})")
    print(
        f"state: {record.status.get('state', 'created')}"
        + (f"  error: {record.status['error']}" if record.status.get("error") else "")
    )
    for key in ("created_at", "started_at", "ended_at", "pid"):
        if record.status.get(key) is not None:
            print(f"{key}: {record.status[key]}")
    if record.progress:
        print(
            f"progress: {record.progress.get('done')}/{record.progress.get('total')} ({record.progress.get('phase')})"
        )
    print(f"metrics: {record.metrics.height} records")
    print("last metrics: " + json.dumps(last_metrics(record.dir), default=str))
    print("config: " + json.dumps(record.config, indent=2, default=str))
    if record.summary:
        print("summary: " + json.dumps(record.summary, indent=2, default=str))
    return 0


def cmd_cancel(args) -> int:
    from ..jobs.manager import JobManager

    ws = workspace(args)
    run_dir = ws.run_dir(args.run_id)
    manager = JobManager(grace_s=args.grace, background=False)
    state = manager.cancel(run_dir)
    if state == "stopping":
        print(
            f"run {run_dir.name}: stop requested; waiting up to {args.grace:.0f} s before a hard kill", file=sys.stderr
        )
        state = manager.wait([run_dir], timeout=args.grace + 30, interval_s=0.2)[run_dir.resolve()].get("state")
    print(f"run {run_dir.name}: {state}")
    return 0 if state == "cancelled" else 1


def cmd_wait(args) -> int:
    from ..errors import ConfigError, JobError
    from ..jobs import cluster
    from ..jobs.protocol import refresh_status
    from .compare import report_failures, runs_bar, show_runs

    ws = workspace(args)
    dirs = [ws.run_dir(r) for r in args.run_ids]
    if args.comparison:
        dirs += [ws.root / "runs" / r["id"] for r in ws.load_comparison(args.comparison)["runs"]]
    elif not dirs:
        raise ConfigError("give run ids or --comparison ID to wait for")
    jobs, others = cluster.jobs_of(dirs)
    never = [d.name for d in others if refresh_status(d).get("state") is None]
    if never:
        raise JobError(
            f"{len(never)} run(s) never started, so nothing would end them: {', '.join(never)}; "
            "train them first (`runs launch ID ...` or `runs launch --comparison ID`)"
        )
    bar = runs_bar()
    try:
        statuses = cluster.wait(jobs, timeout=args.timeout, on_tick=lambda s: show_runs(bar, s), others=others)
    finally:
        bar.close()
    if args.comparison:
        print_report(ws, args.comparison)
    return 0 if report_failures(statuses) else 1


def cmd_export(args) -> int:
    from ..experiments.summary import export_comparison

    ws = workspace(args)
    if args.export_format != "csv":
        return _export_trackers(ws, args.comparison_id, args.export_format, args.out)
    manifest = ws.load_comparison(args.comparison_id)
    paths = export_comparison(ws.comparison_curves(args.comparison_id), args.out, baseline=manifest.get("baseline"))
    from ..errors import DeltError

    try:
        makeups = comparison_makeups(ws, manifest)
    except DeltError as exc:  # the other files are written; say why this one is not
        print(f"makeup.csv not written: {exc}", file=sys.stderr)
        makeups = {}
    if makeups:
        import polars as pl

        from ..fileio import atomic_write_text

        paths["makeup"] = Path(args.out) / "makeup.csv"
        frame = pl.concat(
            [m.select(pl.lit(arm).alias("arm"), pl.all()) for arm, m in makeups.items()], how="vertical_relaxed"
        )
        atomic_write_text(paths["makeup"], frame.write_csv())
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _export_trackers(ws, comparison_id: str, fmt: str, out: str) -> int:
    """``runs export --format tensorboard|mlflow``: every run of the comparison, from its metrics.jsonl."""
    from ..jobs.trackers import RunLabels, export_runs

    manifest = ws.load_comparison(comparison_id)
    runs = [
        RunLabels(r["id"], ws.root / "runs" / r["id"], comparison_id, r["arm"], int(r["seed"]))
        for r in manifest["runs"]
    ]
    exported = export_runs(runs, fmt, out)
    for item in exported:
        print(f"{item.run_id}: " + (f"skipped, {item.skipped}" if item.skipped else item.target))
    written = sum(item.skipped is None for item in exported)
    how = (
        f"tensorboard --logdir {out}"
        if fmt == "tensorboard"
        else f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {Path(out).resolve().as_uri()}"
    )
    print(f"{written} of {len(exported)} runs written to {out}; open them with: {how}", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    print_report(workspace(args), args.comparison_id, as_json=args.json)
    return 0


def cmd_launch(args) -> int:
    from ..errors import ConfigError
    from ..jobs.protocol import read_status

    ws = workspace(args)
    dirs = [ws.run_dir(r) for r in args.run_ids]
    if args.comparison:
        manifest = ws.load_comparison(args.comparison)
        pending = [ws.root / "runs" / r["id"] for r in manifest["runs"]]
        # runs that started once keep their metrics; training never resumes a run dir
        dirs += [d for d in pending if _launchable(read_status(d))]
        skipped = len(pending) - len(dirs)
        if skipped:
            print(
                f"skipping {skipped} run(s) that already started (see `runs list --comparison {args.comparison}`)",
                file=sys.stderr,
            )
    elif not dirs:
        raise ConfigError("give run ids or --comparison ID to launch")
    ok = launch_and_wait(dirs, args.max_concurrent) if dirs else True
    return 0 if ok else 1


def _launchable(status: dict) -> bool:
    """A run that never started and is not waiting in a cluster job's queue."""
    return status.get("state") is None or (status.get("state") == "queued" and not status.get("cluster"))


def cmd_eval(args) -> int:
    from ..training.harness import eval_run

    run_dir = _run_folder(workspace(args), args.run)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    path, record = eval_run(
        run_dir, tasks, include_path=args.include_path, limit=args.limit, device=args.device, batch_size=args.batch_size
    )
    rows = [
        [name, fmt(res.get("acc,none")), fmt(res.get("acc_norm,none")), str(res.get("sample_len", "-"))]
        for name, res in record["results"].items()
    ]
    print(text_table(["task", "acc", "acc_norm", "n"], rows))
    print(f"wrote {path}")
    return 0


def _run_folder(ws, run: str) -> Path:
    """A run of the workspace by id, else ``run`` as a folder (``./my-run`` too, which looks like an id)."""
    if (ws.root / "runs" / run).is_dir() or not Path(run).is_dir():
        return ws.run_dir(run)
    return Path(run)
