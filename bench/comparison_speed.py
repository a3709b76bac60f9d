"""Comparison speed: K runs of one model trained together in one process (``jobs.train_job.train_group``,
what ``train --group-dir`` runs for the job manager) vs the same K runs one after another (``train_run``
each, in this process), and optionally vs K processes run P at a time (``train --run-dir`` each, as the
job manager without groups and ``--max-concurrent P`` would).

Together is stacked (one batched step for all runs, the CUDA default) or interleaved (each run's own
step in turn, the CPU default); ``--modes`` times either or both. The K runs are K seeds of a
shuffled demo ordering (each its own ordering and seed), packed rows, no evaluation sets, same steps.
Wall time covers everything a run does (reading and tokenizing its data, building its model, training);
aggregate tokens/s is all runs' tokens over that wall time. The solo wall time of one run is measured
too: the GPU goal is K = 15 runs together in <= 2x one run's time.

    .venv/bin/python bench/comparison_speed.py --modes interleaved,stacked      # CPU: K = 9, cpu-demo
    .venv/bin/python bench/comparison_speed.py --device cuda --model gpu-30m --runs 15 --steps 100 \\
        --max-length 1024

Last stdout line: JSON {"ratio": sequential wall / together wall, "loop_ratio" (training loops only, set-up
excluded), "together_s", "sequential_s", "one_s",
"together_vs_one", "together_tok_s", "sequential_tok_s", "processes_s" (with --processes P), ...}.
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

import torch  # noqa: E402


def write_orderings(tmp: Path, k: int) -> list[Path]:
    """K shuffle orderings of the demo corpus (seeds 0..K-1), as a comparison's shuffle arm writes them."""
    from delt_engine.data.corpus import write_records
    from delt_engine.demo.generate import generate_demo
    from delt_engine.organize.ordering import order

    frame = generate_demo(0).corpus.select("id", "text")
    paths = []
    for seed in range(k):
        path = tmp / f"shuffle-seed{seed}.parquet"
        write_records(order(frame, "shuffle", seed=seed, score_field="id"), path)
        paths.append(path)
    return paths


def prepare_dirs(tmp: Path, name: str, configs) -> list[Path]:
    from delt_engine.fileio import write_json

    dirs = []
    for i, config in enumerate(configs):
        d = tmp / name / f"run{i}"
        d.mkdir(parents=True)
        write_json(d / "config.json", config.to_dict())
        dirs.append(d)
    return dirs


def tokens_of(dirs: list[Path]) -> int:
    from delt_engine.fileio import read_json

    return sum(int(read_json(d / "summary.json")["tokens"]) for d in dirs)


def loop_seconds(dirs: list[Path], together: bool) -> float:
    """Training-loop time without set-up: the shared loop's time together (the longest member's
    ``train_s``), the sum of the runs' ``train_s`` one after another."""
    from delt_engine.fileio import read_json

    times = [float(read_json(d / "summary.json")["train_s"]) for d in dirs]
    return max(times) if together else sum(times)


def run_processes(dirs: list[Path], at_once: int) -> None:
    """Every run as its own ``train --run-dir`` process, ``at_once`` at a time, one torch thread each
    when they share the CPU."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // at_once)),
    }
    pending, running = list(dirs), []
    while pending or running:
        while pending and len(running) < at_once:
            d = pending.pop(0)
            running.append(
                subprocess.Popen(
                    [sys.executable, "-m", "delt_engine", "train", "--run-dir", str(d)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for proc in list(running):
            if proc.poll() is not None:
                running.remove(proc)
                if proc.returncode != 0:
                    raise SystemExit(f"a training process failed with exit code {proc.returncode}")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cpu-demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=int, default=9, help="K runs (9 on the CPU, 15 on a GPU)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--processes", type=int, default=0, help="also time the runs as P processes at a time")
    ap.add_argument(
        "--modes",
        default="auto",
        help="group modes to time, comma-separated: auto (the device's), stacked, interleaved; the "
        "first one gives ratio and together_s",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from delt_engine.jobs.train_job import train_group, train_run
    from delt_engine.models.device import describe_device, resolve_device
    from delt_engine.training.config import RunConfig

    tmp = Path(tempfile.mkdtemp(prefix="comparison-speed-"))
    inputs = write_orderings(tmp, args.runs)
    cache = tmp / "cache"

    def configs():
        return [
            RunConfig(
                input=str(p),
                model=args.model,
                device=args.device,
                steps=args.steps,
                epochs=100,
                batch_size=args.batch_size,
                max_length=args.max_length,
                seed=seed,
                packing=True,
                cache_dir=str(cache),
                log_every=10,
                provenance={"comparison": "bench"},
            )
            for seed, p in enumerate(inputs)
        ]

    # warm-up, untimed: the shared tokenizer, kernels, allocator; one of each path
    warm = prepare_dirs(tmp, "warm", configs()[:2])
    train_run(warm[0])
    train_group(prepare_dirs(tmp, "warm-group", configs()[:2]))

    seq_dirs = prepare_dirs(tmp, "sequential", configs())
    start = time.perf_counter()
    train_run(seq_dirs[0])
    one_s = time.perf_counter() - start
    for d in seq_dirs[1:]:
        train_run(d)
    sequential_s = time.perf_counter() - start

    from delt_engine.training.ensemble import group_mode

    device = resolve_device(args.device)
    modes = [group_mode(device, m.strip()) for m in args.modes.split(",") if m.strip()]
    together = {}
    for mode in modes:
        group_dirs = prepare_dirs(tmp, f"together-{mode}", configs())
        start = time.perf_counter()
        summaries = train_group(group_dirs, mode=mode)
        together[mode] = (time.perf_counter() - start, group_dirs)
        assert all(s["state"] == "done" for s in summaries.values()), summaries
    main_mode = modes[0]
    together_s, group_dirs = together[main_mode]

    out = {
        "runs": args.runs,
        "model": args.model,
        "device": describe_device(device),
        "mode": main_mode,
        "steps": args.steps,
        "rows": f"{args.batch_size}x{args.max_length} packed",
        "threads": torch.get_num_threads(),
        "one_s": round(one_s, 2),
        "sequential_s": round(sequential_s, 2),
        "together_s": round(together_s, 2),
        "ratio": round(sequential_s / together_s, 3),
        "loop_ratio": round(loop_seconds(seq_dirs, False) / loop_seconds(group_dirs, True), 3),
        "together_vs_one": round(together_s / one_s, 3),
        "sequential_tok_s": round(tokens_of(seq_dirs) / sequential_s, 1),
        "together_tok_s": round(tokens_of(group_dirs) / together_s, 1),
    }
    print(
        f"{args.runs} runs of {args.model} on {out['device']}, {args.steps} steps of {out['rows']} each, "
        f"threads {out['threads']}"
    )
    print(f"{'one run alone':<34}{one_s:>9.1f} s")
    print(f"{'one after another':<34}{sequential_s:>9.1f} s   {out['sequential_tok_s']:>10.0f} tok/s")
    for mode, (seconds, dirs) in together.items():
        out[f"{mode}_s"] = round(seconds, 2)
        out[f"{mode}_loop_ratio"] = round(loop_seconds(seq_dirs, False) / loop_seconds(dirs, True), 3)
        print(
            f"{'together (' + mode + ')':<34}{seconds:>9.1f} s   {tokens_of(dirs) / seconds:>10.0f} tok/s   "
            f"training loops {out[f'{mode}_loop_ratio']:.2f}x one after another"
        )
    if args.processes:
        proc_dirs = prepare_dirs(tmp, "processes", configs())
        start = time.perf_counter()
        run_processes(proc_dirs, args.processes)
        out["processes_s"] = round(time.perf_counter() - start, 2)
        out["processes"] = args.processes
        out["processes_tok_s"] = round(tokens_of(proc_dirs) / out["processes_s"], 1)
        print(
            f"{f'{args.processes} processes at a time':<34}{out['processes_s']:>9.1f} s   "
            f"{out['processes_tok_s']:>10.0f} tok/s"
        )
    print(
        f"together ({main_mode}): {out['ratio']:.2f}x faster than one after another ({out['loop_ratio']:.2f}x in "
        f"the training loops alone, set-up excluded); {out['together_vs_one']:.2f}x the time of one run (GPU "
        "goal: <= 2x for 15 runs)"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
