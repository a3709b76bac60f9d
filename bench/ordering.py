"""Selection + ordering speed: the engine's vectorised code vs. a plain-Python implementation.

Workload (delt-method.md sections 3-4): N random float64 scores, top-r selection with r = 0.5
(survivors in original order), then Folding Ordering with L = 3 of the survivors.
- engine (arrays): ``select_indices`` + ``order_indices`` on a numpy array.
- engine (frame): ``select`` + ``order`` on a polars frame (string ids, score, position).
- baseline: a list of dicts and ``sorted`` with a key (stable), the same semantics step by step.
Building the inputs (array, frame, list of dicts) is not timed. All three must give the same order.
Engine timings are the median of ``--repeat`` runs; the baseline runs once. CPU time (all threads)
is printed beside wall-clock time because the machine may be shared: it moves less with the load.

    .venv/bin/python bench/ordering.py                 # 10 million rows (baseline takes a while)
    .venv/bin/python bench/ordering.py --rows 200000

Last stdout line: {"rows", "engine_s", "baseline_s", "ratio" (baseline / engine wall time, goal >= 30),
"engine_frame_s", "ratio_frame", "engine_cpu_s", "baseline_cpu_s", "ratio_cpu", "kept", "identical"}.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from delt_engine.organize.ordering import order, order_indices  # noqa: E402
from delt_engine.organize.selection import select, select_indices  # noqa: E402

RATIO = 0.5
LAYERS = 3


def engine_arrays(scores: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Final order (input positions) and the select / order times."""
    t0 = time.perf_counter()
    kept = select_indices(scores, "top-r", ratio=RATIO)
    t1 = time.perf_counter()
    final = kept[order_indices(scores[kept], "folding", layers=LAYERS)]
    t2 = time.perf_counter()
    return final, t1 - t0, t2 - t1


def engine_frame(frame: pl.DataFrame) -> tuple[np.ndarray, float, float]:
    t0 = time.perf_counter()
    kept = select(frame, "top-r", ratio=RATIO)
    t1 = time.perf_counter()
    ordered = order(kept, "folding", layers=LAYERS)
    t2 = time.perf_counter()
    return ordered.get_column("pos").to_numpy(), t1 - t0, t2 - t1


def baseline(records: list[dict]) -> tuple[list[int], float, float]:
    """The same semantics in plain Python: stable sorts with a key, slicing for the layers."""
    t0 = time.perf_counter()
    count = math.floor(RATIO * len(records))
    # sorted(..., reverse=True) stays stable: among equal scores the earlier record comes first.
    best = sorted(records, key=lambda r: r["score"], reverse=True)[:count]
    kept = sorted(best, key=lambda r: r["pos"])
    t1 = time.perf_counter()
    ascending = sorted(kept, key=lambda r: r["score"])
    folded = []
    for layer in range(LAYERS):
        folded.extend(ascending[layer::LAYERS])
    final = [r["pos"] for r in folded]
    t2 = time.perf_counter()
    return final, t1 - t0, t2 - t1


def timed(fn, arg, repeat: int):
    """(order, select s, order s, total wall s, total CPU s) of the median-time run."""
    runs = []
    for _ in range(repeat):
        cpu0 = time.process_time()
        out, sel_s, ord_s = fn(arg)
        runs.append((out, sel_s, ord_s, sel_s + ord_s, time.process_time() - cpu0))
    totals = [r[3] for r in runs]
    return runs[totals.index(statistics.median_low(totals))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="number of scores (default 10,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="engine repetitions, median reported (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    scores = np.random.Generator(np.random.PCG64(args.seed)).random(args.rows)
    arr_order, arr_sel, arr_ord, arr_s, arr_cpu = timed(engine_arrays, scores, args.repeat)
    frame = pl.DataFrame(
        {
            "id": pl.int_range(args.rows, eager=True).cast(pl.Utf8).str.pad_start(9, "0"),
            "score": scores,
            "pos": np.arange(args.rows),
        }
    )
    frm_order, frm_sel, frm_ord, frm_s, frm_cpu = timed(engine_frame, frame, args.repeat)
    del frame
    records = [{"pos": i, "score": s} for i, s in enumerate(scores.tolist())]
    base_order, base_sel, base_ord, base_s, base_cpu = timed(baseline, records, 1)
    del records

    identical = bool(np.array_equal(arr_order, np.asarray(base_order)) and np.array_equal(frm_order, arr_order))
    rows = [
        ("engine (numpy arrays)", arr_sel, arr_ord, arr_s, arr_cpu),
        ("engine (polars frame)", frm_sel, frm_ord, frm_s, frm_cpu),
        ("baseline (pure Python)", base_sel, base_ord, base_s, base_cpu),
    ]
    print(
        f"top-r {RATIO} + folding L={LAYERS} on {args.rows:,} random float64 scores "
        f"({len(arr_order):,} kept); engine: median of {args.repeat}; wall-clock s unless marked CPU"
    )
    print(f"{'implementation':<24}{'select':>9}{'order':>9}{'total':>9}{'CPU':>9}{'speed-up':>10}{'CPU x':>8}")
    for name, sel_s, ord_s, total, cpu in rows:
        print(
            f"{name:<24}{sel_s:>9.3f}{ord_s:>9.3f}{total:>9.3f}{cpu:>9.3f}{base_s / total:>9.1f}x"
            f"{base_cpu / cpu:>7.1f}x"
        )
    print(f"identical orders: {identical}")
    print(
        json.dumps(
            {
                "rows": args.rows,
                "kept": int(len(arr_order)),
                "engine_s": round(arr_s, 4),
                "engine_frame_s": round(frm_s, 4),
                "baseline_s": round(base_s, 3),
                "ratio": round(base_s / arr_s, 1),
                "ratio_frame": round(base_s / frm_s, 1),
                "engine_cpu_s": round(arr_cpu, 4),
                "baseline_cpu_s": round(base_cpu, 3),
                "ratio_cpu": round(base_cpu / arr_cpu, 1),
                "identical": identical,
            }
        )
    )
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
