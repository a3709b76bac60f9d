"""Duplicate removal: near-duplicate recall on edited copies of real text, what each mode drops on the
demo corpus, and the speed of both modes on 50,000 documents (near against the exact pass, same run).

Real text (no network): the English text files already on this machine, in this order while they
last (a file whose text came before is skipped): /usr/share/common-licenses/*,
/usr/share/doc/*/copyright, /usr/share/doc/**/changelog*.gz, then the docstrings of Python's standard
library (present wherever Python is).

- Recall: ``--pairs`` pieces of 150-450 consecutive words (each shares < 10% of its shingles with the
  ones before it), each followed later in the corpus by one copy edited by random word substitutions,
  deletions, insertions and moved spans until its TRUE shingle Jaccard with the original reaches a
  target (uniform in [t - 0.15, t + 0.2] for each t in turn). For t in 0.5 ... 0.9: recall = share of
  copies with Jaccard >= t + 0.05 that ``near`` marks (goal >= 0.95), false-positive rate = share of
  copies with Jaccard < t - 0.05 that it marks, and the LSH S-curve at t + 0.05 that the chosen bands
  promise.
- Speed: ``--docs`` documents of 30-120 consecutive words of that text (10% exact copies, 10% copies
  with 1-3 words changed), and the synthetic corpus of earlier versions (random words). Wall time is the
  best of ``--repeat`` runs, CPU time (all threads) beside it; the load average says how busy the
  machine was.

    .venv/bin/python bench/dedup.py [--docs 50000] [--pairs 2000] [--ngram 5] [--repeat 3] [--mode near|edit]

With ``--mode edit`` the recall table and the timing are those of edit mode: the copies are edited to a
target word edit similarity (t = 0.7 ... 0.9), recall is the share of copies with similarity >= t + 0.05
marked, and the JSON's ``near_*`` speed keys hold edit mode's figures (``"mode": "edit"`` says so).

Goals: recall >= 0.95 for every t; near mode on 50,000 documents in <= 2 s (``speed_goal_met`` is null
for another ``--docs``).

Last stdout line: JSON {"ngram", "recall": {t: {...}}, "speed": {...}, "demo": {...}, "recall_goal_met",
"speed_goal_met"}.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import random
import re
import sys
import sysconfig
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delt_engine.data.dedup import find_duplicates, normalize  # noqa: E402
from delt_engine.data.minhash import edit_candidate_jaccard, lsh_parameters  # noqa: E402
from delt_engine.demo.generate import generate_demo  # noqa: E402

THRESHOLDS = {"near": (0.5, 0.6, 0.7, 0.8, 0.9), "edit": (0.7, 0.75, 0.8, 0.85, 0.9)}
MARGIN = 0.05
GOAL_RECALL, GOAL_SECONDS = 0.95, 2.0


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def best_of(fn, repeat: int):
    runs = [timed(fn) for _ in range(repeat)]
    return runs[0][0], min(r[1] for r in runs), min(r[2] for r in runs)


# ---- real text -------------------------------------------------------------------------------------


def _read(path: str) -> str:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _docstrings(path: str) -> str:
    return "\n\n".join(m.group(2) for m in re.finditer(r'("""|\'\'\')(.*?)\1', _read(path), re.S))


def _sources():
    yield from ((p, _read) for p in sorted(glob.glob("/usr/share/common-licenses/*")))
    yield from ((p, _read) for p in sorted(glob.glob("/usr/share/doc/*/copyright")))
    yield from ((p, _read) for p in sorted(glob.glob("/usr/share/doc/**/changelog*.gz", recursive=True)))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if not {"site-packages", "test", "tests"} & set(path.parts):
            yield str(path), _docstrings


def real_texts():
    """(source, text) of the real English text files on this machine, in a fixed order; a file whose
    text came before (sibling packages ship the same changelog) is skipped."""
    seen = set()
    for path, read in _sources():
        text = read(path)
        digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()
        if text.strip() and digest not in seen:
            seen.add(digest)
            yield path, text


def chunks(n_words: int, lo: int, hi: int, rng: random.Random, paragraphs: bool):
    """Pieces of lo-hi consecutive words of real text, with their original line breaks and spacing
    (within one paragraph when ``paragraphs``, else anywhere in a file), until ``n_words`` were given."""
    given = 0
    for _, text in real_texts():
        for part in re.split(r"\n\s*\n", text) if paragraphs else [text]:
            spans = [m.span() for m in re.finditer(r"\S+", part)]
            at = 0
            while len(spans) - at >= lo:
                size = min(rng.randint(lo, hi), len(spans) - at)
                yield part[spans[at][0] : spans[at + size - 1][1]]
                at += size
                given += size
                if given >= n_words:
                    return


def shingle_set(text: str, ngram: int) -> set[str]:
    """The brute-force definition: word n-grams of the normalised text (whole text if shorter)."""
    words = normalize(text).split(" ")
    if len(words) <= ngram:
        return {" ".join(words)}
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def similarity(mode: str, ngram: int):
    """``(original, copy) -> similarity`` of ``mode``: shingle Jaccard (near) or word edit similarity
    (edit: 1 - word Levenshtein distance / longer length, by rapidfuzz; the tests check the engine
    against a textbook dynamic programme)."""
    if mode == "near":
        return lambda a, b: jaccard(shingle_set(a, ngram), shingle_set(b, ngram))
    from rapidfuzz.distance import Levenshtein

    def edit(a: str, b: str) -> float:
        x, y = normalize(a).split(" "), normalize(b).split(" ")
        return 1 - Levenshtein.distance(x, y) / max(len(x), len(y))

    return edit


def novel_bases(n: int, ngram: int, rng: random.Random) -> list[str]:
    """n pieces of 150-450 words, each sharing < 10% of its shingles with all pieces before it."""
    seen: set[str] = set()
    bases = []
    for piece in chunks(10**12, 150, 450, rng, paragraphs=False):
        shingles = shingle_set(piece, ngram)
        if len(shingles & seen) < 0.1 * len(shingles):
            bases.append(piece)
            seen |= shingles
            if len(bases) == n:
                return bases
    raise SystemExit(f"only {len(bases)} distinct pieces of real text found here; ask for fewer --pairs")


def edit_ops(words: list[str], vocab: list[str], rng: random.Random, count: int) -> list[tuple]:
    """A random sequence of edits: substitute, delete, insert a word, or move a span of 2-6 words."""
    ops = []
    for _ in range(count):
        kind = rng.choices(("sub", "del", "ins", "move"), weights=(40, 25, 20, 15))[0]
        ops.append((kind, rng.random(), rng.random(), rng.choice(vocab), rng.randint(2, 6)))
    return ops


def apply_ops(words: list[str], ops: list[tuple]) -> list[str]:
    out = list(words)
    for kind, u, v, word, span in ops:
        i = int(u * len(out))
        if kind == "sub":
            out[i] = word
        elif kind == "del" and len(out) > 10:
            del out[i]
        elif kind == "ins":
            out.insert(i, word)
        elif kind == "move":
            piece, rest = out[i : i + span], out[:i] + out[i + span :]
            j = int(v * len(rest))
            out = rest[:j] + piece + rest[j:]
    return out


def edited_copy(base: str, target: float, vocab: list[str], measure, rng: random.Random) -> tuple[str, float]:
    """A copy of ``base`` with the fewest edits (bisection on a random edit sequence) that bring its
    similarity (``measure``) with ``base`` to ``target`` or below; returns the copy and its true similarity."""
    words = base.split()
    ops = edit_ops(words, vocab, rng, 4 * len(words))

    def sim(k: int) -> float:
        return measure(base, " ".join(apply_ops(words, ops[:k])))

    lo, hi = 1, 1
    while hi < len(ops) and sim(hi) > target:
        lo, hi = hi, min(2 * hi, len(ops))
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if sim(mid) > target else (lo, mid)
    text = " ".join(apply_ops(words, ops[:hi]))
    return text, measure(base, text)


def share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def recall_table(pairs: int, ngram: int, seed: int, mode: str = "near") -> dict:
    """Recall / false-positive rate of ``mode`` on originals followed by their edited copies."""
    rng = random.Random(seed)
    bases = novel_bases(pairs, ngram, rng)
    vocab = sorted({w for b in bases for w in b.split()})
    # targets spread around each threshold in turn, so that every row of the table has pairs near it
    thresholds = THRESHOLDS[mode]
    targets = [min(0.99, rng.uniform(t - 0.15, t + 0.2)) for t in thresholds * (pairs // len(thresholds) + 1)]
    measure = similarity(mode, ngram)
    copies = [edited_copy(b, target, vocab, measure, rng) for b, target in zip(bases, targets)]
    order = list(range(pairs))
    rng.shuffle(order)  # originals first, then the copies in another order
    texts = bases + [copies[i][0] for i in order]
    sims = [copies[i][1] for i in order]
    table = {}
    for t in thresholds:
        marked = find_duplicates(texts, mode, threshold=t, ngram=ngram).duplicate[pairs:].tolist()
        above = [m for m, s in zip(marked, sims) if s >= t + MARGIN]
        edge = [m for m, s in zip(marked, sims) if t + MARGIN <= s < t + 2 * MARGIN]
        below = [m for m, s in zip(marked, sims) if s < t - MARGIN]
        bands, rows = lsh_parameters(t if mode == "near" else edit_candidate_jaccard(t), 128)
        table[t] = {
            "recall": share(above),
            "pairs_above": len(above),
            "recall_edge": share(edge),
            "pairs_edge": len(edge),
            "fp_rate": share(below),
            "pairs_below": len(below),
            "marked_below_t": sum(m for m, s in zip(marked, sims) if s < t),
            "bands": bands,
            "rows": rows,
            "s_curve": round(1 - (1 - (t + MARGIN) ** rows) ** bands, 4) if mode == "near" else None,
        }
    return table


# ---- speed -----------------------------------------------------------------------------------------


def with_copies(originals: list[str], n: int, rng: random.Random) -> list[str]:
    """n documents: 10% exact copies (some in another case), 10% copies with 1-3 words changed."""
    vocab = sorted({w for d in originals[:2000] for w in d.split()})
    source = iter(originals)
    docs: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if docs and roll < 0.1:
            docs.append(rng.choice(docs) if roll < 0.08 else rng.choice(docs).upper())
        elif docs and roll < 0.2:
            words = rng.choice(docs).split()
            for i in rng.sample(range(len(words)), min(len(words), rng.randint(1, 3))):
                words[i] = rng.choice(vocab)
            docs.append(" ".join(words))
        else:
            docs.append(next(source))
    return docs


def synthetic(n: int, seed: int = 0) -> list[str]:
    """n documents of 30-120 random words; 10% exact copies and 10% copies with 1-3 words changed."""
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


def speed(texts: list[str], ngram: int, repeat: int, mode: str = "near") -> dict:
    """Exact vs ``mode`` on ``texts``; the keys of ``mode``'s figures are named near_* for both modes."""
    exact, t_exact, c_exact = best_of(lambda: find_duplicates(texts, "exact"), repeat)
    near, t_near, c_near = best_of(lambda: find_duplicates(texts, mode, ngram=ngram), repeat)
    return {
        "docs": len(texts),
        "mode": mode,
        "exact_dropped": exact.n_dropped,
        "near_dropped": near.n_dropped,
        "exact_s": round(t_exact, 3),
        "near_s": round(t_near, 3),
        "exact_cpu_s": round(c_exact, 3),
        "near_cpu_s": round(c_near, 3),
        "near_vs_exact": round(t_near / t_exact, 1),
    }


def demo_drops(ngram: int) -> dict:
    corpus = generate_demo(0).corpus
    out = {}
    for mode in ("exact", "near", "edit"):
        options = {"ngram": ngram} if mode == "near" else {}
        res, seconds, _ = timed(lambda: find_duplicates(corpus["text"].to_list(), mode, **options))
        kinds = corpus.with_columns(pl.Series("dup", res.duplicate)).group_by("kind").agg(pl.col("dup").sum())
        out[mode] = {
            "dropped": res.n_dropped,
            "seconds": round(seconds, 3),
            "by_kind": {k: int(v) for k, v in kinds.sort("kind").rows() if v},
        }
        print(
            f"demo ({corpus.height} docs), {mode}{f' ngram={ngram}' if options else ''}: dropped "
            f"{res.n_dropped} in {seconds:.2f} s; by kind {out[mode]['by_kind']}"
        )
    print(
        "(a pair of copies loses whichever comes second in corpus order, so some dropped documents are the "
        "clean originals of a planted copy)"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=50_000, help="corpus size for the timing (default 50000)")
    parser.add_argument("--pairs", type=int, default=2000, help="original/copy pairs for the recall table")
    parser.add_argument("--ngram", type=int, default=5, help="near mode: words per shingle (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each mode (best is kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the copies and edits")
    parser.add_argument(
        "--mode",
        default="near",
        choices=("near", "edit"),
        help="mode of the recall table and the timing: near (shingle Jaccard) or edit (word edit similarity); "
        "the copies are edited to a target of that similarity",
    )
    args = parser.parse_args()
    demo = demo_drops(args.ngram)

    table = recall_table(args.pairs, args.ngram, args.seed, args.mode)
    what = "J" if args.mode == "near" else "E"
    print(
        f"\n{args.mode} recall on {args.pairs} real-text originals + edited copies (ngram={args.ngram}, "
        f"num_perm=128{'' if args.mode == 'near' else '; E = word edit similarity'})"
    )
    print(
        f"{'t':>4} {'bands x rows':>12} {'S(t+.05)':>8} {f'recall {what}>=t+.05':>16} {f'{what} in [t+.05,t+.1)':>18} "
        f"{f'FP rate {what}<t-.05':>16} {f'marked {what}<t':>10}"
    )
    for t, row in table.items():
        s_curve = "n/a" if row["s_curve"] is None else f"{row['s_curve']:.4f}"
        print(
            f"{t:>4} {row['bands']:>7} x {row['rows']:<3} {s_curve:>8} "
            f"{rate(row['recall']):>9} ({row['pairs_above']:>4}) {rate(row['recall_edge']):>11} "
            f"({row['pairs_edge']:>3}) {rate(row['fp_rate']):>9} ({row['pairs_below']:>4}) "
            f"{row['marked_below_t']:>10}"
        )

    rng = random.Random(args.seed)
    real = with_copies(list(chunks(args.docs * 80, 30, 120, rng, paragraphs=False)), args.docs, rng)
    load = os.getloadavg()[0]
    real_speed = speed(real, args.ngram, args.repeat, args.mode)
    synth_speed = speed(synthetic(args.docs, args.seed), args.ngram, args.repeat, args.mode)
    for name, row in (("real text", real_speed), ("synthetic", synth_speed)):
        print(
            f"{name}, {row['docs']} docs (10% exact copies, 10% with 1-3 words changed): exact dropped "
            f"{row['exact_dropped']} in {row['exact_s']:.2f} s (cpu {row['exact_cpu_s']:.2f}), {args.mode} dropped "
            f"{row['near_dropped']} in {row['near_s']:.2f} s (cpu {row['near_cpu_s']:.2f}; "
            f"{row['near_vs_exact']}x the exact pass)"
        )
    print(f"load average before timing: {load:.2f} on {os.cpu_count()} CPUs")
    recall_met = all((row["recall"] or 0) >= GOAL_RECALL for row in table.values())
    speed_met = (max(real_speed["near_s"], synth_speed["near_s"]) <= GOAL_SECONDS) if args.docs == 50_000 else None
    print(
        json.dumps(
            {
                "mode": args.mode,
                "ngram": args.ngram,
                "recall": {str(t): row for t, row in table.items()},
                "speed": {
                    "real": real_speed,
                    "synthetic": synth_speed,
                    "load_avg": round(load, 2),
                    "cpus": os.cpu_count(),
                },
                "demo": demo,
                "recall_goal_met": recall_met,
                "speed_goal_met": speed_met,
            }
        )
    )


if __name__ == "__main__":
    main()
