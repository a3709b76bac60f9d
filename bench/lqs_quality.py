"""LQS quality on the demo corpus: how well does each scorer separate planted noise from clean text?

For every scorer (lqs, pds, perplexity, length, compression, random) this prints the AUROC of
"the score says clean" (the score itself for "higher_better" scorers, minus the score for
"higher_harder" ones such as perplexity), the sign-free max(AUROC, 1 - AUROC), the Spearman
correlation matrix between scorers, and the mean score per document kind. Nothing is tuned to
the generator: LQS runs with its defaults unless --lqs-options says otherwise.

    .venv/bin/python bench/lqs_quality.py [--n-docs 2000] [--lqs-options '{"steps": 20}']

Also prints the AUROC an oracle reaches that ranks every broken-text noise document last and is at
chance on the fluent kinds (duplicates, near-duplicates, contradictions).

Last stdout line: JSON {"auroc": {...}, "broken_text_oracle_auroc": ..., "auroc_signfree": {...}, "n": ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delt_engine.data.tokenizer import train_tokenizer  # noqa: E402
from delt_engine.demo.generate import generate_demo  # noqa: E402
from delt_engine.scoring import SCORERS, ScoreContext, score  # noqa: E402
from delt_engine.scoring.distill import auroc, spearman  # noqa: E402
from delt_engine.scoring.lqs import LQSConfig  # noqa: E402

METHODS = ("lqs", "pds", "perplexity", "length", "compression", "random")


def run_scorers(demo, args) -> tuple[pl.DataFrame, dict]:
    """One column per method (joined on id), and each method's seconds."""
    tokenizer = train_tokenizer(demo.corpus["text"].to_list())
    lqs_options = json.loads(args.lqs_options)
    warm = LQSConfig(**{k: v for k, v in lqs_options.items() if k in ("warmup_steps", "warmup_lr")})
    options = {
        "lqs": lqs_options,
        "pds": lqs_options,
        # the same warm-up as LQS, so perplexity comes from an equally trained proxy model
        "perplexity": {"warmup_steps": warm.warmup_steps, "warmup_lr": warm.warmup_lr},
    }
    table = demo.corpus.select("id", "kind", "is_noise")
    seconds = {}
    for method in METHODS:
        ctx = ScoreContext(
            frame=demo.corpus.select("id", "text"),
            model=args.model,
            tokenizer=tokenizer,
            device=args.device,
            seed=args.seed,
            target_texts=demo.target["text"].to_list(),
            options=dict(options.get(method, {})),
        )
        start = time.perf_counter()
        scores = score(method, ctx)
        seconds[method] = time.perf_counter() - start
        table = table.join(
            scores.select("id", pl.col("score").alias(method)), on="id", how="left", maintain_order="left"
        )
    return table, seconds


FLUENT_NOISE = ("duplicate", "near_duplicate", "contradiction")  # planted noise that reads as clean text


def fluent_ceiling(table: pl.DataFrame, seed: int = 0, repeats: int = 20) -> float:
    """AUROC of an oracle that ranks every broken-text noise document last and is at chance on the rest.

    A score computed from one document's text gives a copy the score of its original, and a fluent
    false statement needs a proxy that knows the facts; this is what a scorer that only tells broken
    text from clean text can reach on this corpus (mean over ``repeats`` random tie-breaks).
    """
    clean = ~table["is_noise"].to_numpy()
    broken = table["is_noise"].to_numpy() & ~np.isin(table["kind"].to_numpy(), FLUENT_NOISE)
    rng = np.random.default_rng(seed)
    return float(np.mean([auroc(np.where(broken, -1.0, rng.random(table.height)), clean) for _ in range(repeats)]))


def auroc_table(table: pl.DataFrame) -> tuple[dict, dict]:
    clean = ~table["is_noise"].to_numpy()
    signed, free = {}, {}
    for method in METHODS:
        values = table[method].to_numpy().astype(np.float64)
        ok = np.isfinite(values)  # e.g. compression of an empty text is null
        sign = 1.0 if SCORERS[method].direction == "higher_better" else -1.0
        signed[method] = auroc(sign * values[ok], clean[ok])
        free[method] = max(signed[method], 1.0 - signed[method])
    return signed, free


def print_report(table: pl.DataFrame, signed: dict, free: dict, seconds: dict) -> None:
    print(f"{table.height} documents, {int(table['is_noise'].sum())} planted noise")
    print(f"{'scorer':<13}{'direction':<15}{'AUROC(clean)':>13}{'sign-free':>11}{'time s':>9}")
    for m in METHODS:
        print(f"{m:<13}{SCORERS[m].direction:<15}{signed[m]:>13.3f}{free[m]:>11.3f}{seconds[m]:>9.1f}")
    print("\nSpearman correlation between scorers")
    print(" " * 13 + "".join(f"{m:>12}" for m in METHODS))
    for a in METHODS:
        row = []
        for b in METHODS:
            ok = table[a].is_not_null() & table[b].is_not_null() & table[a].is_not_nan() & table[b].is_not_nan()
            row.append(spearman(table.filter(ok)[a].to_numpy(), table.filter(ok)[b].to_numpy()))
        print(f"{a:<13}" + "".join(f"{v:>12.3f}" for v in row))
    print("\nAUROC(clean) of each noise kind alone against all clean documents")
    clean = table.filter(~pl.col("is_noise"))
    print(f"{'noise kind':<16}{'n':>5}" + "".join(f"{m:>12}" for m in METHODS))
    for kind in sorted(table.filter(pl.col("is_noise"))["kind"].unique().to_list()):
        part = pl.concat([clean, table.filter(pl.col("kind") == kind)])
        row = auroc_table(part)[0]
        print(f"{kind:<16}{part.height - clean.height:>5}" + "".join(f"{row[m]:>12.3f}" for m in METHODS))
    print("\nMean score per kind (sorted by LQS)")
    kinds = (
        table.group_by("kind")
        .agg(pl.len().alias("n"), pl.col("is_noise").first().alias("noise"), *[pl.col(m).mean() for m in METHODS])
        .sort("lqs")
    )
    print(f"{'kind':<16}{'n':>5}{'noise':>7}" + "".join(f"{m:>12}" for m in METHODS))
    for row in kinds.iter_rows(named=True):
        print(f"{row['kind']:<16}{row['n']:>5}{str(row['noise']):>7}" + "".join(f"{row[m]:>12.4g}" for m in METHODS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-docs", type=int, default=None, help="demo corpus size (default: the demo's)")
    parser.add_argument("--model", default="cpu-demo")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--lqs-options", default="{}", help="JSON options for lqs/pds (default: LQSConfig defaults)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    demo = generate_demo(args.seed, args.n_docs)
    table, seconds = run_scorers(demo, args)
    signed, free = auroc_table(table)
    print_report(table, signed, free, seconds)
    ceiling = fluent_ceiling(table)
    print(
        f"\nOracle that ranks all broken-text noise last and is at chance on {', '.join(FLUENT_NOISE)}: "
        f"AUROC {ceiling:.3f} (what telling broken text from clean text alone can reach here)"
    )
    print(
        json.dumps(
            {
                "auroc": {m: round(v, 4) for m, v in signed.items()},
                "broken_text_oracle_auroc": round(ceiling, 4),
                "auroc_signfree": {m: round(v, 4) for m, v in free.items()},
                "n": table.height,
                "lqs_options": json.loads(args.lqs_options),
                "seconds": {m: round(v, 1) for m, v in seconds.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
