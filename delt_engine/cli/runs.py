"""``compare`` and ``runs list|show|cancel|export|report|launch|eval``: comparisons of orderings and the run registry.

    python -m delt_engine compare --demo --workspace ws
    python -m delt_engine compare --spec spec.json --max-concurrent 2 --no-wait
    python -m delt_engine runs list --comparison ID
    python -m delt_engine runs show RUN_ID
    python -m delt_engine runs cancel RUN_ID
    python -m delt_engine runs export COMPARISON_ID --out DIR
    python -m delt_engine runs export COMPARISON_ID --format tensorboard --out DIR   # or --format mlflow
    python -m delt_engine runs eval RUN --include-path DIR --tasks delt_benchmark
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .progress import ProgressLog


def register(subparsers) -> None:
    cmp = subparsers.add_parser("compare", help="train one run per ordering x seed and compare them",
                                description="Prepare a comparison (score, select, order once), launch its runs "
                                            "through the job manager, wait, and print the table and verdicts.")
    src = cmp.add_mutually_exclusive_group(required=True)
    src.add_argument("--spec", help="comparison spec JSON (corpus, scorer, selection, orderings, seeds, train)")
    src.add_argument("--demo", action="store_true", help="the demo: shuffle vs sorting vs folding L=3, 3 seeds")
    _workspace_arg(cmp)
    cmp.add_argument("--max-concurrent", type=int, default=None,
                     help="runs at once (default: one per GPU when there are several, else 1)")
    cmp.add_argument("--no-wait", action="store_true", help="return after launching; runs continue in the background")
    cmp.add_argument("--prepare-only", action="store_true",
                     help="prepare everything (scores, arms' ordered files, tokenizer, held-out sets, manifest), train "
                          "nothing, and print one train command per run (to submit to any scheduler)")
    cmp.add_argument("--seeds", help="override the spec's seeds, e.g. 0,1,2")
    cmp.add_argument("--scorer", help="override the spec's scoring method, e.g. lqs (the demo uses length: "
                                      "LQS on the demo corpus takes minutes on a 2-core CPU)")
    cmp.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                     help="override a train field (JSON value), e.g. --train steps=200 --train device=cpu")
    cmp.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    cmp.set_defaults(func=cmd_compare)

    runs = subparsers.add_parser("runs", help="list, show, cancel, export and evaluate training runs")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="every run of the workspace with its state and last metrics")
    _workspace_arg(p)
    p.add_argument("--comparison", help="only the runs of this comparison id")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="config, status, last metrics and summary of one run")
    p.add_argument("run_id", help="the run's id (see `runs list`)")
    _workspace_arg(p)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("cancel", help="cancel a queued or running run (SIGTERM, SIGKILL after a grace period)")
    p.add_argument("run_id", help="the run's id (see `runs list`)")
    _workspace_arg(p)
    p.add_argument("--grace", type=float, default=10.0, help="seconds before a hard kill (default 10)")
    p.set_defaults(func=cmd_cancel)
    p = sub.add_parser("export", help="curves CSV and summary JSON of a comparison (with group_by: group curves, "
                                      "forgetting and the stream's make-up as CSV too), or its runs for "
                                      "TensorBoard / MLflow")
    p.add_argument("comparison_id", help="the comparison's id (printed by `compare`)")
    p.add_argument("--out", required=True, help="output folder (for mlflow: the file store, e.g. OUT/mlruns)")
    p.add_argument("--format", dest="export_format", choices=("csv", "tensorboard", "mlflow"), default="csv",
                   help="csv (default): curves and summary tables; tensorboard: event files in OUT/<arm>/seed<k>/ "
                        "(tensorboard --logdir OUT); mlflow: one MLflow run per run in the file store OUT, "
                        "experiment = the comparison id. Both from the runs' metrics.jsonl; they need pip install "
                        "'delt-studio[trackers]'")
    _workspace_arg(p)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("report", help="the comparison table and verdicts (also for unfinished comparisons)")
    p.add_argument("comparison_id", help="the comparison's id (printed by `compare`)")
    _workspace_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object: per-arm table, deltas, a \"verdicts\" list "
                   "(arm, baseline, metric, n_seeds, delta, ci_low, ci_high, p, p_adjusted, seeds_needed, verdict) "
                   "and, for runs evaluated by group, a \"forgetting\" list "
                   "(arm, group, min_loss, final_loss, rise, ...)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("launch", help="queue runs (or the runs of a comparison that never started) and wait for them")
    p.add_argument("run_ids", nargs="*", help="ids of runs to queue (or none, with --comparison)")
    p.add_argument("--comparison", help="launch every run of this comparison that has not finished")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="runs at once (default: one per GPU when there are several, else 1)")
    _workspace_arg(p)
    p.set_defaults(func=cmd_launch)
    p = sub.add_parser("eval", help="evaluate a run's kept model with lm-evaluation-harness (lm_eval.json)",
                       description="Evaluate the model a run kept (--save-model) through lm-eval's Hugging Face "
                                   "backend, offline, and store lm-eval's results in <run>/lm_eval.json. Needs "
                                   "lm-eval: pip install 'delt-studio[eval]'.")
    p.add_argument("run", metavar="RUN", help="run id or run folder")
    p.add_argument("--tasks", required=True, help="lm-eval tasks or groups, comma-separated (e.g. delt_benchmark "
                                                  "after `benchmark export --format lm-eval --out DIR`)")
    p.add_argument("--include-path", default=None, metavar="DIR", help="folder of extra task YAMLs (an export)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N documents per task (the first)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=16, help="requests per forward pass (default 16)")
    _workspace_arg(p)
    p.set_defaults(func=cmd_eval)


def _workspace_arg(parser) -> None:
    parser.add_argument("--workspace", default=None, help="workspace folder (default: $DELT_WORKSPACE or ./workspace)")


def _workspace(args):
    from ..workspace.layout import Workspace, default_workspace

    return Workspace(args.workspace) if args.workspace else default_workspace()


# ----------------------------------------------------------------------------- compare

def cmd_compare(args) -> int:
    import time

    from ..experiments.prepare import prepare_comparison
    from ..experiments.spec import demo_spec, parse_spec

    ws = _workspace(args)
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
    print(f"comparison {comparison.id}: {len(comparison.run_dirs)} runs ({arms}; seeds "
          f"{comparison.manifest['seeds']}) in {ws.root}; prepared in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    if args.prepare_only:
        for run_dir in comparison.run_dirs:
            print(f"{sys.executable} -m delt_engine train --run-dir {run_dir}")
        print(f"then: python -m delt_engine runs report {comparison.id} --workspace {ws.root}", file=sys.stderr)
        return 0
    if args.no_wait:
        pid = _spawn_launcher(ws, comparison.id, args.max_concurrent)
        print(f"launched in the background (launcher pid {pid}); follow with "
              f"`python -m delt_engine runs list --workspace {ws.root} --comparison {comparison.id}`")
        print(comparison.id)
        return 0
    ok = _launch_and_wait(comparison.run_dirs, args.max_concurrent)
    _print_report(ws, comparison.id, as_json=args.json)
    return 0 if ok else 1


def _apply_overrides(spec, args):
    from ..experiments.spec import parse_spec
    from ..errors import ConfigError

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
        proc = subprocess.Popen([sys.executable, "-m", "delt_engine", "runs", "launch", "--workspace", str(ws.root),
                                 "--comparison", comparison_id]
                                + ([] if max_concurrent is None else ["--max-concurrent", str(max_concurrent)]),
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    return proc.pid


def _launch_and_wait(run_dirs, max_concurrent: int | None) -> bool:
    """Submit every run, show progress on stderr, wait; Ctrl+C cancels them. True when all are done."""
    from ..jobs.manager import JobManager, default_concurrency
    from ..jobs.protocol import read_progress

    manager = JobManager(max_concurrent=default_concurrency() if max_concurrent is None else max_concurrent)
    for d in run_dirs:
        manager.submit(d, "train")
    bar = ProgressLog(mininterval=1.0, bar_format="{desc}: {n:.2f}/{total} |{bar}| [{elapsed}<{remaining}] {postfix}")

    def on_tick(statuses):
        states = [s.get("state", "?") for s in statuses.values()]
        done = sum(1.0 if s.get("state") in ("done", "failed", "cancelled") else _train_fraction(read_progress(d))
                   for d, s in statuses.items())
        counts = " ".join(f"{k} {states.count(k)}" for k in dict.fromkeys(states))
        bar.update("runs", float(done), len(run_dirs), counts)

    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill`/`timeout` on this command cancels its runs too
    try:
        statuses = manager.wait(run_dirs, on_tick=on_tick)
    except KeyboardInterrupt:
        bar.close()
        print("interrupted: cancelling the runs (use --no-wait to keep runs going without this terminal)",
              file=sys.stderr)
        manager.cancel_all()
        manager.wait(run_dirs, timeout=manager.grace_s + 30)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.close()
    failed = {d: s for d, s in statuses.items() if s.get("state") != "done"}
    for d, s in failed.items():
        print(f"run {Path(d).name} {s.get('state')}: {s.get('error') or ''}", file=sys.stderr)
    return not failed


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _train_fraction(progress: dict) -> float:
    return float(progress.get("fraction") or 0.0) if progress.get("phase") == "train" else 0.0


def _print_report(ws, comparison_id: str, as_json: bool = False) -> None:
    from ..experiments import stats
    from ..experiments.spec import describe_data
    from ..training.metrics import TABLE_METRICS

    curves = ws.comparison_curves(comparison_id)
    manifest = ws.load_comparison(comparison_id)
    unfinished = [i.id for i in ws.list_runs(comparison=comparison_id) if i.state != "done"]
    summary = stats.summarize(curves, baseline=manifest.get("baseline"))
    if as_json:
        print(json.dumps(stats.summary_json(summary), indent=2))
        return
    finals = stats.final_metrics(curves, summary["metrics"])
    shown = [m for m in TABLE_METRICS if m in summary["metrics"]]
    print(f"comparison {comparison_id} (final metrics, mean ± 95% CI over seeds)")
    print(f"data: {describe_data(manifest)}")
    if unfinished:
        print(f"note: {len(unfinished)} of {len(manifest['runs'])} runs are not done; their latest values are used")
    print(stats.format_table(stats.arm_table(finals, shown, summary["level"]), shown))
    print()
    _print_verdicts(summary)
    _print_groups(ws, manifest, curves, summary)


def _print_groups(ws, manifest: dict, curves, summary: dict) -> None:
    """Loss by group at every evaluation, forgetting, and the stream's make-up (runs with group_by)."""
    from ..experiments import stats

    if not summary["forgetting"]:
        return
    for set_name in ("validation", "target"):
        entries = [e for e in summary["forgetting"] if e["set"] == set_name]
        if not entries:
            continue
        column = entries[0]["column"]
        print()
        print(f"{set_name} loss by {column} (mean over seeds at each evaluation step)")
        print(_group_loss_table(stats.group_bands(curves, set_name, level=summary["level"])))
        print()
        print(f"forgetting on the {set_name} set by {column}: lowest loss reached, final loss, rise = final - lowest "
              f"(means over seeds); Δ rise: paired over seeds against {summary['baseline']}")
        print(stats.format_forgetting(entries, set_name, summary["level"]))
    from ..errors import DeltError

    try:
        makeups = _comparison_makeups(ws, manifest, eval_windows=True)
    except DeltError as exc:  # e.g. an ordered data file deleted since: the tables above still stand
        print(f"\nno stream make-up: {exc}")
        makeups = {}
    if makeups:
        print()
        print(f"stream make-up: share of the documents of each {_group_column(manifest)} in every window of steps "
              "between two evaluations, and the window's mean score (an arm with one ordering per seed: mean "
              "over seeds)")
    for arm, makeup in makeups.items():
        print(f"{arm}:")
        print(_makeup_text(makeup))


def _group_column(manifest: dict) -> str:
    return str((manifest.get("spec") or {}).get("group_by") or "group")


def _comparison_makeups(ws, manifest: dict, eval_windows: bool = False) -> dict:
    """{arm: stream make-up} of a comparison's runs; windows of ``eval_every`` steps with ``eval_windows``
    (what the model saw between two evaluations), else about 25 windows (as the app draws them)."""
    from ..fileio import read_json
    from ..organize.makeup import arm_makeups

    runs = [(r["arm"], ws.root / "runs" / r["id"]) for r in manifest.get("runs", [])]
    window = None
    if eval_windows and runs:
        window = (read_json(runs[0][1] / "config.json", default={}) or {}).get("eval_every")
    return arm_makeups(runs, window_steps=window)


def _group_loss_table(bands) -> str:
    """Rows arm x group, one column per evaluation step: the mean over seeds."""
    steps = sorted(set(bands["step"].to_list()))
    header = ["arm", "group"] + [f"step {int(s)}" for s in steps]
    rows = []
    for (arm, group), part in bands.group_by(["arm", "group"], maintain_order=True):
        at = dict(zip(part["step"].to_list(), part["mean"].to_list()))
        rows.append([arm, group] + [_fmt(at.get(s)) for s in steps])
    return _table(header, rows)


def _makeup_text(makeup) -> str:
    from ..organize.makeup import makeup_table

    table = makeup_table(makeup)
    groups = [c for c in table.columns if c not in ("start_step", "end_step", "mean_score")]
    header = ["steps", "mean score"] + groups
    rows = [[f"{r['start_step']}-{r['end_step']}", _fmt(r["mean_score"])] + [f"{r[g]:.0%}" for g in groups]
            for r in table.iter_rows(named=True)]
    return _table(header, rows)


def _print_verdicts(summary: dict) -> None:
    from ..experiments import stats
    from ..experiments.verdicts import format_verdicts

    verdicts = summary["verdicts"]
    if not verdicts:
        print(f"no verdicts: they need an arm besides {summary['baseline']} and one of "
              f"{', '.join(stats.VERDICT_METRICS)} recorded")
        return
    n_tests = sum(v.p is not None for v in verdicts)
    print(f"verdicts vs {summary['baseline']}: paired t-test over seeds, p Holm-adjusted across {n_tests} "
          f"test{'s' if n_tests != 1 else ''} (arms x metrics), better/worse when adjusted p < {summary['alpha']}")
    print(format_verdicts(verdicts))
    print()
    for verdict in verdicts:
        print(f"- {verdict.text}")


# ----------------------------------------------------------------------------- runs

def cmd_list(args) -> int:
    ws = _workspace(args)
    infos = ws.list_runs(comparison=args.comparison)
    if args.json:
        for info in infos:
            print(json.dumps({"id": info.id, "state": info.state, "arm": info.arm, "seed": info.seed,
                              "model": info.model, "comparison": info.comparison, "progress": info.progress,
                              "created_at": info.created_at, "ended_at": info.ended_at, "error": info.error,
                              "last_metrics": info.last_metrics}, default=str))
        return 0
    if not infos:
        print(f"no runs in {ws.root / 'runs'}" + (f" for comparison {args.comparison}" if args.comparison else ""))
        return 0
    header = ["id", "state", "progress", "arm", "seed", "model", "train_loss", "target_loss", "bench_acc", "comparison"]
    rows = [[info.id, info.state, "" if info.progress is None else f"{info.progress:.0%}", info.arm or "-",
             "-" if info.seed is None else str(info.seed), info.model or "-",
             *(_fmt(info.last_metrics.get(k)) for k in ("train_loss", "target_loss", "bench_acc")),
             info.comparison or "-"] for info in infos]
    print(_table(header, rows))
    for info in infos:
        if info.state == "failed" and info.error:
            print(f"{info.id}: {info.error.splitlines()[0]}")
    return 0


def cmd_show(args) -> int:
    from ..workspace.runs import last_metrics

    ws = _workspace(args)
    record = ws.load_run(args.run_id)
    print(f"run {record.id}  ({record.dir})")
    print(f"state: {record.status.get('state', 'created')}" +
          (f"  error: {record.status['error']}" if record.status.get("error") else ""))
    for key in ("created_at", "started_at", "ended_at", "pid"):
        if record.status.get(key) is not None:
            print(f"{key}: {record.status[key]}")
    if record.progress:
        print(f"progress: {record.progress.get('done')}/{record.progress.get('total')} ({record.progress.get('phase')})")
    print(f"metrics: {record.metrics.height} records")
    print("last metrics: " + json.dumps(last_metrics(record.dir), default=str))
    print("config: " + json.dumps(record.config, indent=2, default=str))
    if record.summary:
        print("summary: " + json.dumps(record.summary, indent=2, default=str))
    return 0


def cmd_cancel(args) -> int:
    from ..jobs.manager import JobManager

    ws = _workspace(args)
    run_dir = ws.run_dir(args.run_id)
    manager = JobManager(grace_s=args.grace, background=False)
    state = manager.cancel(run_dir)
    if state == "stopping":
        print(f"run {run_dir.name}: stop requested; waiting up to {args.grace:.0f} s before a hard kill",
              file=sys.stderr)
        state = manager.wait([run_dir], timeout=args.grace + 30, interval_s=0.2)[run_dir.resolve()].get("state")
    print(f"run {run_dir.name}: {state}")
    return 0 if state == "cancelled" else 1


def cmd_export(args) -> int:
    from ..experiments import stats

    ws = _workspace(args)
    if args.export_format != "csv":
        return _export_trackers(ws, args.comparison_id, args.export_format, args.out)
    manifest = ws.load_comparison(args.comparison_id)
    paths = stats.export_comparison(ws.comparison_curves(args.comparison_id), args.out,
                                      baseline=manifest.get("baseline"))
    from ..errors import DeltError

    try:
        makeups = _comparison_makeups(ws, manifest)
    except DeltError as exc:  # the other files are written; say why this one is not
        print(f"makeup.csv not written: {exc}", file=sys.stderr)
        makeups = {}
    if makeups:
        import polars as pl

        from ..fileio import atomic_write_text

        paths["makeup"] = Path(args.out) / "makeup.csv"
        frame = pl.concat([m.select(pl.lit(arm).alias("arm"), pl.all()) for arm, m in makeups.items()],
                          how="vertical_relaxed")
        atomic_write_text(paths["makeup"], frame.write_csv())
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _export_trackers(ws, comparison_id: str, fmt: str, out: str) -> int:
    """``runs export --format tensorboard|mlflow``: every run of the comparison, from its metrics.jsonl."""
    from ..training.trackers import RunLabels, export_runs

    manifest = ws.load_comparison(comparison_id)
    runs = [RunLabels(r["id"], ws.root / "runs" / r["id"], comparison_id, r["arm"], int(r["seed"]))
            for r in manifest["runs"]]
    exported = export_runs(runs, fmt, out)
    for item in exported:
        print(f"{item.run_id}: " + (f"skipped, {item.skipped}" if item.skipped else item.target))
    written = sum(item.skipped is None for item in exported)
    how = f"tensorboard --logdir {out}" if fmt == "tensorboard" else \
        f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {Path(out).resolve().as_uri()}"
    print(f"{written} of {len(exported)} runs written to {out}; open them with: {how}", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    _print_report(_workspace(args), args.comparison_id, as_json=args.json)
    return 0


def cmd_launch(args) -> int:
    from ..errors import ConfigError
    from ..jobs.protocol import read_status

    ws = _workspace(args)
    dirs = [ws.run_dir(r) for r in args.run_ids]
    if args.comparison:
        manifest = ws.load_comparison(args.comparison)
        pending = [ws.root / "runs" / r["id"] for r in manifest["runs"]]
        # runs that started once keep their metrics; training never resumes a run dir
        dirs += [d for d in pending if read_status(d).get("state") in (None, "queued")]
        skipped = len(pending) - len(dirs)
        if skipped:
            print(f"skipping {skipped} run(s) that already started (see `runs list --comparison {args.comparison}`)",
                  file=sys.stderr)
    elif not dirs:
        raise ConfigError("give run ids or --comparison ID to launch")
    ok = _launch_and_wait(dirs, args.max_concurrent) if dirs else True
    return 0 if ok else 1


def cmd_eval(args) -> int:
    from ..training.harness import eval_run

    run_dir = _run_folder(_workspace(args), args.run)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    path, record = eval_run(run_dir, tasks, include_path=args.include_path, limit=args.limit, device=args.device,
                            batch_size=args.batch_size)
    rows = [[name, _fmt(res.get("acc,none")), _fmt(res.get("acc_norm,none")), str(res.get("sample_len", "-"))]
            for name, res in record["results"].items()]
    print(_table(["task", "acc", "acc_norm", "n"], rows))
    print(f"wrote {path}")
    return 0


def _run_folder(ws, run: str) -> Path:
    """A run of the workspace by id, else ``run`` as a folder (``./my-run`` too, which looks like an id)."""
    if (ws.root / "runs" / run).is_dir() or not Path(run).is_dir():
        return ws.run_dir(run)
    return Path(run)


def _fmt(value) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header] + rows]
    return "\n".join(lines)
