"""Duplicate removal before selection: keep the first of each group of (near-)identical documents.

LQS cannot see a copy (it scores like its original) and web corpora are full of them, so the pipeline
can drop them first. Two modes, both keeping corpus order and the first occurrence:

- ``exact``: the same text after lower-casing and collapsing whitespace;
- ``near``: estimated Jaccard similarity of word n-gram sets (MinHash, ``num_perm`` multiply-shift
  hashes) at least ``threshold`` with an earlier document. Candidates come from LSH banding (bands of
  ``rows`` signature values, chosen so that (1/bands)^(1/rows) is near the threshold); each candidate
  pair is then checked on the whole signature, so the result does not depend on the banding beyond
  which pairs get checked. Documents with fewer than ``ngram`` words use the whole text as one shingle.
  Bucket members are compared pairwise, so ``near`` suits corpora up to ~10^5 documents; ``exact`` is a
  single hash pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import polars as pl

from ..errors import ConfigError

MODES = ("exact", "near")
_SPACE = re.compile(r"\s+")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class DedupResult:
    """``duplicate[i]``: document i repeats an earlier one (``of[i]`` is that one's position, else -1)."""

    duplicate: np.ndarray
    of: np.ndarray
    mode: str

    @property
    def n_dropped(self) -> int:
        return int(self.duplicate.sum())


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def find_duplicates(texts: Sequence[str], mode: str = "exact", threshold: float = 0.7, ngram: int = 5,
                    num_perm: int = 128, seed: int = 0) -> DedupResult:
    """Mark every document that repeats an earlier one (see the module docstring for the two modes)."""
    if mode not in MODES:
        raise ConfigError(f"dedup mode {mode!r} is not one of {', '.join(MODES)}")
    if not 0 < threshold <= 1:
        raise ConfigError(f"dedup threshold={threshold!r} must be in (0, 1], e.g. 0.7")
    if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
        raise ConfigError(f"dedup ngram={ngram!r} must be a whole number >= 1 (words per shingle), e.g. 5")
    norm = [normalize(t) for t in texts]
    of = np.full(len(norm), -1, dtype=np.int64)
    first: dict[str, int] = {}
    for i, t in enumerate(norm):
        of[i] = first.setdefault(t, i)
    of[of == np.arange(len(norm))] = -1
    if mode == "near" and len(norm) > 1:
        _near(norm, of, threshold, ngram, num_perm, seed)
    return DedupResult(of >= 0, of, mode)


def drop_duplicates(frame: pl.DataFrame, mode: str = "exact", text_field: str = "text",
                    **options) -> tuple[pl.DataFrame, DedupResult]:
    """``frame`` without the documents that repeat an earlier one (order kept), and what was found."""
    if text_field not in frame.columns:
        raise ConfigError(f"no text column {text_field!r} to deduplicate (columns: {', '.join(frame.columns)})")
    result = find_duplicates(frame[text_field].to_list(), mode, **options)
    return frame.filter(pl.Series(~result.duplicate)), result


def _shingles(text: str, ngram: int) -> list[str]:
    words = text.split(" ")
    if len(words) <= ngram:
        return [text]
    return [" ".join(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]


def _signatures(norm: list[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """[N, num_perm] MinHash signatures: min over a document's shingles of multiply-shift hashes."""
    shingles = [_shingles(t, ngram) for t in norm]
    owner = np.repeat(np.arange(len(norm)), [len(s) for s in shingles])
    flat = pl.Series([s for group in shingles for s in group], dtype=pl.Utf8)
    base = flat.hash(seed=seed).to_numpy().astype(np.uint64)  # polars' hash: stable for a polars version
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)  # odd multipliers
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    sig = np.empty((len(norm), num_perm), dtype=np.uint64)
    for lo in range(0, num_perm, 16):  # 16 hash functions at a time bounds the memory
        with np.errstate(over="ignore"):
            values = (a[lo:lo + 16, None] * base[None, :] + b[lo:lo + 16, None]) & _MASK64
        sig[:, lo:lo + 16] = np.minimum.reduceat(values >> np.uint64(32), starts, axis=1).T
    return sig


def _bands(num_perm: int, threshold: float) -> int:
    """Rows per LSH band whose threshold (1/bands)^(1/rows) is closest to ``threshold``."""
    options = [r for r in range(1, num_perm + 1) if num_perm % r == 0]
    return min(options, key=lambda r: abs((1 / (num_perm // r)) ** (1 / r) - threshold))


def _near(norm: list[str], of: np.ndarray, threshold: float, ngram: int, num_perm: int, seed: int) -> None:
    """Mark near-duplicates in ``of`` (exact ones are already marked and stay out of the buckets, since
    their originals share every bucket with them)."""
    sig = _signatures(norm, ngram, num_perm, seed)
    rows = _bands(num_perm, threshold)
    candidates: dict[int, set[int]] = {}
    for lo in range(0, num_perm, rows):
        buckets: dict[bytes, list[int]] = {}
        for i in np.flatnonzero(of < 0):
            members = buckets.setdefault(sig[i, lo:lo + rows].tobytes(), [])
            if members:
                candidates.setdefault(int(i), set()).update(members)
            members.append(int(i))
    for i in sorted(candidates):  # ascending: an earlier document's mark is final before it is used
        for j in sorted(candidates[i]):
            if float(np.mean(sig[i] == sig[j])) >= threshold:
                of[i] = of[j] if of[j] >= 0 else j
                break
