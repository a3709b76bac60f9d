"""Duplicate removal on the demo corpus (what each mode drops, by planted kind) and its speed on a
larger synthetic corpus, near mode against the exact pass measured in the same run.

    .venv/bin/python bench/dedup.py [--docs 50000]

Last stdout line: JSON {"demo": {mode: {"dropped", "by_kind"}}, "synthetic": {...}, "near_vs_exact": ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delt_engine.data.dedup import find_duplicates  # noqa: E402
from delt_engine.demo.generate import generate_demo  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def synthetic(n: int, seed: int = 0) -> list[str]:
    """n documents of 30-120 words; 10% exact copies and 10% copies with 1-3 words changed."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    docs: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if docs and roll < 0.1:
            docs.append(rng.choice(docs))
        elif docs and roll < 0.2:
            words = rng.choice(docs).split(" ")
            for i in rng.sample(range(len(words)), min(len(words), rng.randint(1, 3))):
                words[i] = rng.choice(vocab)
            docs.append(" ".join(words))
        else:
            docs.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(30, 120))))
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=50_000, help="synthetic corpus size for the timing")
    parser.add_argument("--ngram", type=int, default=5, help="near mode: words per shingle (default 5)")
    args = parser.parse_args()
    corpus = generate_demo(0).corpus
    demo = {}
    for mode in ("exact", "near"):
        options = {"ngram": args.ngram} if mode == "near" else {}
        res, seconds = timed(lambda: find_duplicates(corpus["text"].to_list(), mode, **options))
        kinds = corpus.with_columns(pl.Series("dup", res.duplicate)).group_by("kind").agg(pl.col("dup").sum())
        demo[mode] = {"dropped": res.n_dropped, "seconds": round(seconds, 3),
                      "by_kind": {k: int(v) for k, v in kinds.sort("kind").rows() if v}}
        print(f"demo ({corpus.height} docs), {mode}{' ngram=%d' % args.ngram if options else ''}: dropped {res.n_dropped} in {seconds:.2f} s; by kind "
              f"{demo[mode]['by_kind']}")
    print("(a pair of copies loses whichever comes second in corpus order, so some dropped documents are the "
          "clean originals of a planted copy)")
    texts = synthetic(args.docs)
    exact, t_exact = timed(lambda: find_duplicates(texts, "exact"))
    near, t_near = timed(lambda: find_duplicates(texts, "near", ngram=args.ngram))
    print(f"synthetic {args.docs} docs (10% exact copies, 10% with 1-3 words changed): exact dropped "
          f"{exact.n_dropped} in {t_exact:.2f} s, near dropped {near.n_dropped} in {t_near:.2f} s "
          f"({t_near / t_exact:.0f}x the exact pass)")
    print(json.dumps({"ngram": args.ngram, "demo": demo, "synthetic": {"docs": args.docs, "exact_dropped": exact.n_dropped,
                                                  "near_dropped": near.n_dropped, "exact_s": round(t_exact, 2),
                                                  "near_s": round(t_near, 2)},
                      "near_vs_exact": round(t_near / t_exact, 1)}))


if __name__ == "__main__":
    main()
