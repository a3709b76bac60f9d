"""What a comparison holds out so that its verdicts are measured on data nothing else saw
(delt-method.md section 7, "Judging an ordering honestly").

- The validation split is duplicate-aware: documents are grouped with their exact and near copies
  (word 3-gram Jaccard >= 0.4, deliberately loose: the demo's synonym-swapped copies go down to 0.40;
  or word edit similarity >= 0.8, which also holds a short text with a word changed, where one edit
  breaks most 3-grams),
  a seeded share of the clean documents is held out, and every member of a held-out document's group
  leaves the training data, so no validation text has a copy in any arm's training data.
- The target set is split into a scoring part (J, what LQS/PDS aim at) and an evaluation part
  (``target_loss``), disjoint, by a hash of each text, so the same target file always splits the same
  way (the app's scoring jobs and its comparisons agree without sharing state).
- ``overlap`` counts, after preparation, how many held-out texts still have an exact or near copy in
  a set of training texts; a comparison records these counts (they must be 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..data.dedup import find_duplicates, normalize

HOLDOUT_SEED = 0  # the validation split does not depend on the run seeds: every arm sees the same one
COPY_NGRAM = 3  # near copies for the hold-out: word 3-gram shingles ...
COPY_THRESHOLD = 0.4  # ... with Jaccard >= 0.4 (loose on purpose: a false match only moves a document)
COPY_EDIT = 0.8  # or word edit similarity >= 0.8 (a short text with one word in five changed)
EVAL_TARGET_FRACTION = 0.5


@dataclass(frozen=True)
class Holdout:
    """A validation split: the held-out documents (clean ones only) and every id that left training."""

    validation: pl.DataFrame
    removed_ids: list[str]

    @property
    def n_copies_removed(self) -> int:
        """Documents that left training only because they copy a held-out one."""
        return len(self.removed_ids) - self.validation.height


def copy_groups(texts: list[str]) -> np.ndarray:
    """The group of every text: the position of the earliest text linked to it by a chain of copies
    (exact, near by shingle Jaccard, or near by word edit similarity), else its own."""
    parent = np.arange(len(texts))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    near = find_duplicates(texts, "near", threshold=COPY_THRESHOLD, ngram=COPY_NGRAM)
    edit = find_duplicates(texts, "edit", threshold=COPY_EDIT)
    for result in (near, edit):
        for i in np.flatnonzero(result.of >= 0).tolist():
            a, b = root(i), root(int(result.of[i]))
            parent[max(a, b)] = min(a, b)  # the earlier text stays the root
    return np.array([root(i) for i in range(len(texts))], dtype=np.int64)


def validation_split(frame: pl.DataFrame, fraction: float, seed: int = HOLDOUT_SEED) -> Holdout:
    """Hold out a seeded ``fraction`` of the clean documents together with their copy groups.

    Args:
        frame: the corpus (id, text, and ``is_noise`` when known: only clean documents are held out).
        fraction: share of the clean documents to hold out, in [0, 0.5).
        seed: seed of the draw.

    Returns:
        Holdout: the validation documents (clean, in corpus order) and the ids of every document that
        must leave training (those and all members of their copy groups).
    """
    ids = frame["id"].cast(pl.Utf8).to_list()
    clean = ~frame["is_noise"].fill_null(False) if "is_noise" in frame.columns else pl.Series([True] * frame.height)
    pool = np.flatnonzero(clean.to_numpy())
    n = int(round(fraction * pool.size))
    if fraction > 0 and n == 0 and pool.size > 1:
        n = 1
    if n == 0:
        return Holdout(frame.head(0), [])
    picked = np.sort(np.random.default_rng(seed).choice(pool.size, size=n, replace=False))
    texts = frame["text"].to_list()
    groups = copy_groups(texts)
    leaving = np.isin(groups, groups[pool[picked]])
    held = leaving & clean.to_numpy()
    # Copy groups follow each text's first match only, and "similar" is not transitive: a text can be
    # grouped with an earlier training text yet also copy a held-out one. Matching the remaining texts
    # against the held-out ones (held-out first, so they are the earliest candidates) finds those.
    for _ in range(5):
        rest = np.flatnonzero(~leaving)
        found = copies_of([texts[i] for i in np.flatnonzero(held)], [texts[i] for i in rest])
        if not found.size:
            break
        leaving[rest[found]] = True
    return Holdout(frame.filter(pl.Series(held)), [i for i, out in zip(ids, leaving) if out])


def copies_of(held: list[str], training: list[str]) -> np.ndarray:
    """Positions in ``training`` of the texts that copy (exactly or nearly) one of ``held``."""
    groups = copy_groups(list(held) + list(training))
    return np.flatnonzero(groups[len(held) :] < len(held))


def split_target(frame: pl.DataFrame, eval_fraction: float = EVAL_TARGET_FRACTION) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(scoring part, evaluation part) of a target set: each text goes to the evaluation part when a
    hash of its normalised text falls below ``eval_fraction`` (a text and its copies on one side). A small
    set whose hashes all fall on one side gives its lowest (or highest) hash to the other part, so both
    parts hold at least one text; the split still depends on the texts alone.

    Raises ValueError for fewer than two distinct texts."""
    keys = np.array(
        [
            int.from_bytes(hashlib.sha256(normalize(t).encode()).digest()[:8], "big") / 2**64
            for t in frame["text"].to_list()
        ]
    )
    if len(set(keys.tolist())) < 2:
        raise ValueError(
            f"a target set of {frame.height} text(s) ({len(set(keys.tolist()))} distinct) cannot be "
            "split into a scoring part and an evaluation part; give at least two different target "
            "texts, or a separate evaluation file"
        )
    to_eval = keys < eval_fraction
    if not to_eval.any():
        to_eval = keys == keys.min()
    elif to_eval.all():
        to_eval = keys != keys.max()
    return frame.filter(pl.Series(~to_eval)), frame.filter(pl.Series(to_eval))


def target_part_files(
    target: str | Path, out_dir: str | Path, eval_fraction: float = EVAL_TARGET_FRACTION
) -> tuple[Path, Path]:
    """The scoring and evaluation parts of a target file, written once as JSONL under ``out_dir`` (named by
    the file's content, so every caller that splits the same file gets the same two files).

    The app scores LQS/PDS against the scoring part and its comparisons measure ``target_loss`` on the
    evaluation part; ``compare`` splits its target set the same way itself.
    """
    from ..data.corpus import load_corpus, write_records
    from ..errors import DataError

    target = Path(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()[:16]
    paths = (
        Path(out_dir) / f"{digest}-{eval_fraction:g}-score.jsonl",
        Path(out_dir) / f"{digest}-{eval_fraction:g}-eval.jsonl",
    )
    if not all(p.is_file() for p in paths):
        try:
            parts = split_target(load_corpus(target).frame, eval_fraction)
        except ValueError as exc:
            raise DataError(f"target set {target}: {exc}") from None
        for frame, path in zip(parts, paths):
            write_records(frame, path)
    return paths


def overlap(held: list[str], training: list[str]) -> dict[str, int]:
    """How many ``held`` texts have an exact copy / a near copy (same rule as the hold-out) in ``training``."""
    exact_train = {normalize(t) for t in training}
    exact = sum(normalize(t) in exact_train for t in held)
    groups = copy_groups(list(held) + list(training))
    n = len(held)
    return {"exact": int(exact), "near": len({int(g) for g in groups[n:] if g < n})}
