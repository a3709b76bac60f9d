"""Peak memory of loading a gzip bomb: the old whole-file gunzip vs the capped streaming read.

    .venv/bin/python bench/gzip_bomb.py                 # the issue's bomb: ~1 MB that expands to 1 GiB
    .venv/bin/python bench/gzip_bomb.py --gib 4 --cap 256MB

Each case runs in a fresh process and reports its peak resident memory (ru_maxrss) above the same
process's resident memory after the imports. "old read" is what the loader did before the cap
(``gzip.decompress(path.read_bytes())``, before any parsing, so a lower bound of the old peak);
"capped" is ``load_corpus`` with the default cap (1 GB) and with ``--cap``. Prints a table, then one
JSON line with the figures and the ratios capped / old.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import resource, sys, time
sys.path.insert(0, sys.argv[1])
import gzip
from pathlib import Path
from delt_engine.data.corpus import load_corpus
from delt_engine.errors import DataError

def rss_kib():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

base = rss_kib()
path, case, cap = Path(sys.argv[2]), sys.argv[3], sys.argv[4]
start = time.perf_counter()
outcome = "ok"
if case == "old":
    data = gzip.decompress(path.read_bytes())
    outcome = f"{len(data)} bytes in memory"
    del data
else:
    try:
        load_corpus(path, max_decompressed_bytes=None if cap == "default" else cap)
    except DataError as exc:
        outcome = "refused: " + str(exc).split(";")[0].split(": ", 1)[1]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, time.perf_counter() - start, outcome, sep="\\t")
"""


def make_bomb(path: Path, n_bytes: int) -> None:
    """``n_bytes`` of zero bytes, gzipped at level 9 (about 1 kB on disk per MB)."""
    chunk = bytes(1 << 24)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for _ in range(n_bytes // len(chunk)):
            fh.write(chunk)
        fh.write(bytes(n_bytes % len(chunk)))


def measure(path: Path, case: str, cap: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(path), case, cap], capture_output=True, text=True, check=True
    )
    base, peak, seconds, outcome = out.stdout.strip().split("\t")
    return {"extra_peak_mb": (int(peak) - int(base)) / 1024, "seconds": float(seconds), "outcome": outcome}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0, help="decompressed size of the bomb in GiB (default 1)")
    ap.add_argument("--cap", default="64MB", help="a small cap to compare with the default (default 64MB)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.jsonl.gz"
        start = time.perf_counter()
        make_bomb(bomb, int(args.gib * 2**30))
        print(
            f"bomb: {bomb.stat().st_size / 1e6:.2f} MB on disk -> {args.gib:g} GiB "
            f"(made in {time.perf_counter() - start:.1f} s)",
            file=sys.stderr,
        )
        cases = {
            "old read": measure(bomb, "old", ""),
            "capped (default 1 GB)": measure(bomb, "new", "default"),
            f"capped ({args.cap})": measure(bomb, "new", args.cap),
        }
    old = cases["old read"]["extra_peak_mb"]
    print(f"{'case':<24}{'extra peak MB':>14}{'seconds':>9}  outcome")
    for name, row in cases.items():
        print(f"{name:<24}{row['extra_peak_mb']:>14.0f}{row['seconds']:>9.2f}  {row['outcome']}")
    ratios = {name: round(row["extra_peak_mb"] / old, 3) for name, row in cases.items() if name != "old read"}
    print(
        json.dumps(
            {"bench": "gzip_bomb", "gib": args.gib, "cap": args.cap, "cases": cases, "peak_ratio_vs_old": ratios}
        )
    )


if __name__ == "__main__":
    main()
