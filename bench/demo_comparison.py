"""Bench: the default demo comparison end to end through the CLI and the job manager, timed.

    .venv/bin/python bench/demo_comparison.py [--workspace DIR] [--seeds 0,1,2] [--max-concurrent N]
                                              [--train KEY=VALUE ...]

Runs ``python -m delt_engine compare --demo`` (shuffle vs sorting vs folding L=3, 3 seeds each by default,
cpu-demo model on packed rows, one epoch, benchmark evaluated several times per run) in a fresh workspace,
through the job manager as the CLI runs it (a comparison's runs train together in one process unless
DELT_GROUP_TRAINING=0), prints the comparison table, per-phase timings and, as the last line, one JSON
object: {"wall_s", "prepare_s", "runs", "runs_done", "evals_per_run", "max_concurrent", "cpu_count",
"load_avg_start", "verdicts", "group_training"}. Goal: wall_s <= 120 for 3 arms x 3 seeds on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", help="workspace folder (default: a fresh temporary folder)")
    parser.add_argument("--max-concurrent", type=int, default=2,
                        help="processes at once (default 2: one per core of a 2-core CPU, each one thread)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds per arm (default 0,1,2: 3 arms x 3 seeds)")
    parser.add_argument("--train", action="append", default=[], help="override a demo train field, KEY=VALUE")
    args = parser.parse_args()

    from delt_engine.experiments import stats
    from delt_engine.workspace.layout import Workspace
    from delt_engine.workspace.runs import read_metrics

    ws_dir = Path(args.workspace or tempfile.mkdtemp(prefix="delt-bench-"))
    load_start = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "delt_engine", "compare", "--demo", "--workspace", str(ws_dir),
           "--max-concurrent", str(args.max_concurrent), "--seeds", args.seeds]
    cmd += [x for kv in args.train for x in ("--train", kv)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)

    ws = Workspace(ws_dir)
    comparisons = ws.list_comparisons()
    verdicts, evals, started = {}, [], []
    done = 0
    if comparisons:
        cid = comparisons[-1]["id"]
        infos = ws.list_runs(comparison=cid)
        done = sum(i.state == "done" for i in infos)
        for info in infos:
            records, _ = read_metrics(info.dir)
            evals.append(sum(1 for r in records if "target_loss" in r))
        started = sorted(i.started_at for i in infos if i.started_at)
        try:
            summary = stats.summarize(ws.comparison_curves(cid), comparisons[-1].get("baseline"))
            verdicts = stats.summary_json(summary)["verdicts"]
        except Exception as exc:  # report what we have
            verdicts = {"error": str(exc)}
        print()
        print(f"{'run':<32} {'arm':<12} {'seed':>4} {'state':<9} {'evals':>5} {'started':<24} ended")
        for info, n_eval in zip(infos, evals):
            print(f"{info.id:<32} {info.arm or '-':<12} {info.seed!s:>4} {info.state:<9} {n_eval:>5} "
                  f"{info.started_at or '-':<24} {info.ended_at or '-'}")
    prepare_s = _prepare_seconds(proc.stderr)
    print(f"\nwall {wall:.1f} s for {len(evals)} runs ({done} done), max_concurrent={args.max_concurrent}, "
          f"{os.cpu_count()} CPUs, load average at start {load_start:.2f}; workspace {ws_dir}")
    print(json.dumps({"wall_s": round(wall, 1), "prepare_s": prepare_s, "runs": len(evals), "runs_done": done,
                      "evals_per_run": min(evals) if evals else 0, "max_concurrent": args.max_concurrent,
                      "cpu_count": os.cpu_count(), "load_avg_start": round(load_start, 2), "returncode": proc.returncode,
                      "group_training": os.environ.get("DELT_GROUP_TRAINING", "default (on)"), "verdicts": verdicts}))
    return proc.returncode


def _prepare_seconds(stderr: str):
    """Seconds of the preparation phase (scoring, selection, tokenizer, orderings) as `compare` reports it."""
    import re

    found = re.findall(r"prepared in ([0-9.]+) s", stderr)
    return float(found[-1]) if found else None


if __name__ == "__main__":
    sys.exit(main())
