"""Duplicate removal before selection: keep the first of each group of (near-)identical documents.

LQS cannot see a copy (it scores like its original) and web corpora are full of them, so the pipeline
can drop them first. Two modes, both keeping corpus order and the first occurrence:

- ``exact``: the same text after lower-casing and collapsing whitespace;
- ``near``: Jaccard similarity of word n-gram sets at least ``threshold`` with an earlier document.
  Documents with fewer than ``ngram`` words use the whole text as one shingle. One changed word breaks
  ``ngram`` shingles, so in short documents a light edit already falls below the threshold (at 5-grams
  and 0.7 a text needs 34 words for one changed word to stay a copy);
- ``edit``: word edit similarity ``1 - levenshtein(words, other words) / longer length`` at least
  ``threshold`` (default 0.8: at most one word in five substituted, inserted or deleted) with an
  earlier document, whatever their length; candidates come from MinHash on word bigrams.

Words are what spaces separate, except in scripts written without spaces (Chinese, Japanese, Thai):
there each character counts as a word (``split_unspaced``), so their copies are found too.

The ``near`` machinery (stable hashes, MinHash, LSH, the exact check) is in ``minhash.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from ..errors import ConfigError

MODES = ("exact", "near", "edit")
DEFAULT_THRESHOLD = {"near": 0.7, "edit": 0.8}
EDIT_MIN_THRESHOLD = 0.7  # below it, bigram candidates (Jaccard >= 0.25) stop being selective


@dataclass(frozen=True)
class DedupResult:
    """``duplicate[i]``: document i repeats an earlier one (``of[i]`` is that one's position, else -1)."""

    duplicate: np.ndarray
    of: np.ndarray
    mode: str

    @property
    def n_dropped(self) -> int:
        return int(self.duplicate.sum())


# scripts written without spaces between words (Thai, CJK punctuation, kana, ideographs, full-width forms):
# near and edit mode take each such character as a word, or a whole paragraph would be one "word"
_UNSPACED = re.compile(r"([\u0e00-\u0e7f\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef])")


def split_unspaced(norm: str) -> str:
    """A normalised text with every character of a script written without spaces made a word of its own."""
    if norm.isascii() or not _UNSPACED.search(norm):
        return norm
    return " ".join(_UNSPACED.sub(r" \1 ", norm).split())


def normalize(text: str) -> str:
    """Lower-case and collapse runs of whitespace (``str.isspace``) to single spaces, stripped."""
    low = text.lower()
    # fast path: a printable string has no whitespace but " " (every other whitespace character is in
    # a non-printable Unicode category), so with no double, leading or trailing space it is done
    if low.isprintable() and "  " not in low and low[:1] != " " and low[-1:] != " ":
        return low
    return " ".join(low.split())


def find_duplicates(
    texts: Sequence[str],
    mode: str = "exact",
    threshold: float | None = None,
    ngram: int = 5,
    num_perm: int = 128,
    seed: int = 0,
) -> DedupResult:
    """Mark every document that repeats an earlier one (see the module docstring for the two modes).

    Args:
        texts: the documents, in corpus order.
        mode: ``"exact"`` (same normalised text), ``"near"`` (word n-gram Jaccard >= threshold) or
            ``"edit"`` (word edit similarity >= threshold).
        threshold: near: the Jaccard similarity that counts as a copy, in (0, 1] (default 0.7); edit:
            the edit similarity, in [0.7, 1] (default 0.8).
        ngram: near: words per shingle.
        num_perm: near, edit: MinHash permutations available to LSH (more: higher recall, slower).
        seed: near, edit: seed of the permutations.

    Returns:
        DedupResult: ``duplicate`` mask and ``of`` (position of the kept original, -1 for kept ones).
    """
    threshold = DEFAULT_THRESHOLD.get(mode, 1.0) if threshold is None else threshold
    _check(mode, threshold, ngram, num_perm, seed)
    norm = [normalize(t) for t in texts]
    first: dict[str, int] = {}
    of = np.fromiter((first.setdefault(t, i) for i, t in enumerate(norm)), dtype=np.int64, count=len(norm))
    of[of == np.arange(len(norm))] = -1
    if mode == "near" and len(norm) > 1:
        from .minhash import mark_near_duplicates

        mark_near_duplicates([split_unspaced(t) for t in norm], of, threshold, ngram, num_perm, seed)
    elif mode == "edit" and len(norm) > 1:
        from .minhash import mark_edit_duplicates

        mark_edit_duplicates([split_unspaced(t) for t in norm], of, threshold, num_perm, seed)
    marked = np.flatnonzero(of >= 0)  # an exact copy of a text marked since as a near copy: to its kept root
    of[marked] = np.where(of[of[marked]] >= 0, of[of[marked]], of[marked])
    return DedupResult(of >= 0, of, mode)


def drop_duplicates(
    frame: pl.DataFrame, mode: str = "exact", text_field: str = "text", **options
) -> tuple[pl.DataFrame, DedupResult]:
    """``frame`` without the documents that repeat an earlier one (order kept), and what was found."""
    if text_field not in frame.columns:
        raise ConfigError(f"no text column {text_field!r} to deduplicate (columns: {', '.join(frame.columns)})")
    result = find_duplicates(frame[text_field].to_list(), mode, **options)
    return frame.filter(pl.Series(~result.duplicate)), result


def _check(mode, threshold, ngram, num_perm, seed) -> None:
    if mode not in MODES:
        raise ConfigError(f"dedup mode {mode!r} is not one of {', '.join(MODES)}")
    number = isinstance(threshold, (int, float, np.integer, np.floating)) and not isinstance(threshold, bool)
    if not number or not 0 < threshold <= 1:
        raise ConfigError(f"dedup threshold={threshold!r} must be in (0, 1], e.g. 0.7")
    if mode == "edit" and threshold < EDIT_MIN_THRESHOLD:
        raise ConfigError(
            f"dedup threshold={threshold!r} is too low for mode 'edit': use {EDIT_MIN_THRESHOLD} to 1 (0.8 = at "
            "most one word in five changed), or mode 'near' with a low Jaccard threshold for looser matches"
        )
    for name, value, example in (("ngram", ngram, "5 (words per shingle)"), ("num_perm", num_perm, "128")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"dedup {name}={value!r} must be a whole number >= 1, e.g. {example}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"dedup seed={seed!r} must be a whole number >= 0")


@dataclass(frozen=True)
class DedupConfig:
    """A duplicate removal as comparison specs write it: ``{"mode": "exact"}``, ``{"mode": "near",
    "threshold": 0.7, "ngram": 5}`` or ``{"mode": "edit", "threshold": 0.8}`` (``num_perm`` and ``seed``
    rarely need changing; a missing threshold is the mode's default)."""

    mode: str
    threshold: float | None = None
    ngram: int = 5
    num_perm: int = 128
    seed: int = 0

    def __post_init__(self):
        if self.threshold is None:
            object.__setattr__(self, "threshold", DEFAULT_THRESHOLD.get(self.mode, 1.0))
        _check(self.mode, self.threshold, self.ngram, self.num_perm, self.seed)

    @classmethod
    def from_dict(cls, data: Any) -> DedupConfig:
        if not isinstance(data, dict) or data.get("mode") not in MODES:
            raise ConfigError(
                f'dedup {data!r} needs a \'mode\' in {", ".join(MODES)} (e.g. {{"mode": "exact"}}), '
                "or null to keep duplicates"
            )
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown dedup key(s) {', '.join(unknown)}; allowed: {', '.join(known)}")
        return cls(**data)

    def to_dict(self) -> dict:
        """The spec format: the mode, and for near and edit mode the settings that differ from the defaults."""
        out: dict = {"mode": self.mode}
        if self.mode != "exact":
            defaults = {f.name: f.default for f in fields(self)[1:]} | {"threshold": DEFAULT_THRESHOLD[self.mode]}
            if self.mode == "edit":
                defaults.pop("ngram")  # edit mode's candidates always use word bigrams
            out.update({k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v})
        return out

    @property
    def label(self) -> str:
        if self.mode == "edit":
            return f"near duplicates (word edit similarity >= {self.threshold:g})"
        return "exact duplicates" if self.mode == "exact" else f"near duplicates (Jaccard >= {self.threshold:g})"

    def apply(self, frame: pl.DataFrame, text_field: str = "text") -> tuple[pl.DataFrame, DedupResult]:
        options = (
            {}
            if self.mode == "exact"
            else {"threshold": self.threshold, "ngram": self.ngram, "num_perm": self.num_perm, "seed": self.seed}
        )
        return drop_duplicates(frame, self.mode, text_field=text_field, **options)
