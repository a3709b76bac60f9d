"""Bench: the default demo comparison end to end through the CLI and the job manager, timed.

    .venv/bin/python bench/demo_comparison.py [--workspace DIR] [--seeds 0,1,2] [--max-concurrent N]
                                              [--train KEY=VALUE ...]

Runs ``python -m delt_engine compare --demo`` (shuffle vs sorting vs folding L=3, 3 seeds each by default,
cpu-demo model on packed rows, one epoch, benchmark evaluated several times per run) in a fresh workspace,
through the job manager as the CLI runs it (a comparison's runs train together in one process unless
DELT_GROUP_TRAINING=0), prints the comparison table, per-phase timings and, as the last line, one JSON
object: {"wall_s", "cpu_s" (CPU seconds of all the comparison's processes, sampled every 0.2 s), "prepare_s", "runs",
"runs_done", "evals_per_run", "max_concurrent", "cpu_count", "load_avg_start", "load_avg_end", "verdicts",
"group_training"}. Goal: wall_s <= 120 for 3 arms x 3 seeds on a 2-core CPU.
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
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=2,
        help="processes at once (default 2: one per core of a 2-core CPU, each one thread)",
    )
    parser.add_argument("--seeds", default="0,1,2", help="seeds per arm (default 0,1,2: 3 arms x 3 seeds)")
    parser.add_argument("--train", action="append", default=[], help="override a demo train field, KEY=VALUE")
    args = parser.parse_args()

    from delt_engine.experiments.summary import summarize, summary_json
    from delt_engine.jobs.records import read_metrics
    from delt_engine.workspace.layout import Workspace

    ws_dir = Path(args.workspace or tempfile.mkdtemp(prefix="delt-bench-"))
    load_start = os.getloadavg()[0]
    cmd = [
        sys.executable,
        "-m",
        "delt_engine",
        "compare",
        "--demo",
        "--workspace",
        str(ws_dir),
        "--max-concurrent",
        str(args.max_concurrent),
        "--seeds",
        args.seeds,
    ]
    cmd += [x for kv in args.train for x in ("--train", kv)]
    start = time.perf_counter()
    out_file, err_file = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=out_file, stderr=err_file, text=True)
    # CPU seconds of every process of the comparison (the CLI and the job processes it starts, sampled
    # from /proc while they run): on a shared machine the wall time depends on the others' load, this less
    cpu = {}
    while child.poll() is None:
        _sample_tree_cpu(child.pid, cpu)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    cpu_s = sum(cpu.values())
    out_file.seek(0)
    err_file.seek(0)
    proc = subprocess.CompletedProcess(cmd, child.returncode, out_file.read(), err_file.read())
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)

    ws = Workspace(ws_dir)
    comparisons = ws.list_comparisons()
    verdicts, evals = {}, []
    done = 0
    if comparisons:
        cid = comparisons[-1]["id"]
        infos = ws.list_runs(comparison=cid)
        done = sum(i.state == "done" for i in infos)
        for info in infos:
            records, _ = read_metrics(info.dir)
            evals.append(sum(1 for r in records if "target_loss" in r))
        try:
            summary = summarize(ws.comparison_curves(cid), comparisons[-1].get("baseline"))
            verdicts = summary_json(summary)["verdicts"]
        except Exception as exc:  # report what we have
            verdicts = {"error": str(exc)}
        print()
        print(f"{'run':<32} {'arm':<12} {'seed':>4} {'state':<9} {'evals':>5} {'started':<24} ended")
        for info, n_eval in zip(infos, evals):
            print(
                f"{info.id:<32} {info.arm or '-':<12} {info.seed!s:>4} {info.state:<9} {n_eval:>5} "
                f"{info.started_at or '-':<24} {info.ended_at or '-'}"
            )
    prepare_s = _prepare_seconds(proc.stderr)
    load_end = os.getloadavg()[0]
    print(
        f"\nwall {wall:.1f} s for {len(evals)} runs ({done} done), max_concurrent={args.max_concurrent}, "
        f"{os.cpu_count()} CPUs, load average at start {load_start:.2f}, at the end {load_end:.2f}; "
        f"workspace {ws_dir}"
    )
    print(
        f"CPU time of the comparison's processes: {cpu_s:.1f} s ({cpu_s / (os.cpu_count() or 1):.1f} s per core: "
        "the wall time on an otherwise idle machine, if the work spread evenly)"
    )
    print(
        json.dumps(
            {
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu_s, 1),
                "load_avg_end": round(load_end, 2),
                "prepare_s": prepare_s,
                "runs": len(evals),
                "runs_done": done,
                "evals_per_run": min(evals) if evals else 0,
                "max_concurrent": args.max_concurrent,
                "cpu_count": os.cpu_count(),
                "load_avg_start": round(load_start, 2),
                "returncode": proc.returncode,
                "verdicts": verdicts,
                "group_training": os.environ.get("DELT_GROUP_TRAINING", "default (on)"),
            }
        )
    )
    return proc.returncode


def _sample_tree_cpu(root: int, cpu: dict) -> None:
    """Record in ``cpu`` {pid: user + system seconds} of ``root`` and every process below it (Linux /proc).
    The job processes run in their own sessions but stay children of the CLI's job manager."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)  # ppid, utime+stime
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, (ppid, _) in stats.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    for pid in tree:
        if pid in stats:
            cpu[pid] = max(cpu.get(pid, 0.0), stats[pid][1])


def _prepare_seconds(stderr: str):
    """Seconds of the preparation phase (scoring, selection, tokenizer, orderings) as `compare` reports it."""
    import re

    found = re.findall(r"prepared in ([0-9.]+) s", stderr)
    return float(found[-1]) if found else None


if __name__ == "__main__":
    sys.exit(main())
