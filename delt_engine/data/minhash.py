"""Near-duplicate detection for ``dedup``: stable hashes, MinHash signatures, LSH candidates, exact check.

How ``near`` works (every step is fixed integer arithmetic written here, so results do not change
with numpy, polars or Python versions, nor with the platform):

1. Hashes. A word's UTF-8 bytes, read as 8-byte little-endian blocks ``m`` (at least one, the last
   zero-padded), hash to ``h = mix64(length ^ 0x5851F42D4C957F2D)`` then ``h = mix64(h ^ m)`` per
   block (``mix64``: the splitmix64 finaliser). A shingle of words ``w_1..w_n`` hashes to
   ``H = sum_k h(w_k) * P^(n-k) mod 2^64`` (Horner, ``P = 0x9E3779B97F4A7C15``). MinHash takes the
   key ``x = H >> 32`` through ``num_perm`` bijections of 32-bit values ``(a_j * x + b_j) mod 2^32``
   (``a_j`` odd), ``a_j, b_j`` the high halves of a splitmix64 stream started at ``seed``; keys are
   already uniform, so these cheap maps give independent minima (a test compares the LSH collision
   rate with the S-curve below). Tests pin known hash and signature values.
2. Candidates. LSH splits ``bands * rows <= num_perm`` signature values into bands; two documents are
   candidates when all ``rows`` values of some band agree, which for Jaccard ``s`` happens with
   probability ``S(s) = 1 - (1 - s^rows)^bands`` (see :func:`lsh_parameters` for the choice).
3. Check. A candidate pair whose ``num_perm`` signature values agree too rarely for Jaccard t (a
   binomial test that drops a pair at the threshold with probability <= 1e-4) is dropped; the others
   are checked on their exact shingle sets (64-bit hashes), so nothing below the threshold is marked
   (up to 64-bit collisions) and recall is what ``S`` promises.

Edit mode (``mark_edit_duplicates``) finds candidates the same way on word bigrams and checks them by
word edit similarity ``1 - levenshtein(words_a, words_b) / max(len_a, len_b)`` (rapidfuzz) instead of
shingle Jaccard: a copy with a few words changed anywhere, however short the documents. Its LSH
threshold is the lowest bigram-set Jaccard two such texts can have (:func:`edit_candidate_jaccard`).

A document is a near duplicate when some earlier candidate (itself kept or not) passes the check; it
points at the kept document its earliest passing candidate points at. Two limits keep boilerplate-
heavy corpora (many documents sharing a header, so sharing buckets) linear in time: in a bucket a
document is paired with at most the 100 members just before it, and it gets at most 32 exact checks,
on the candidates whose signatures agree most. Copies still share the buckets of the text they
share beyond the boilerplate, so they are found (tests plant some); only a copy whose every shared
bucket is crowded could be missed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

_M64 = 0xFFFFFFFFFFFFFFFF
_P = np.uint64(0x9E3779B97F4A7C15)  # Horner multiplier for shingle hashes (odd: keeps every word's weight)
_WORD_SEED = 0x5851F42D4C957F2D
_TAIL_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_M64], dtype=np.uint64)  # keep k low bytes
_FP_WEIGHT = 0.05  # cost of a candidate pair below the threshold relative to a missed pair above it
_MAX_THREADS = 4  # MinHash threads at most (one per CPU)
_CHUNK = 4096  # shingles per MinHash block ([num_perm, _CHUNK] uint32: a few MB, in the CPU cache)
_PAIR_BLOCK = 65536  # candidate pairs per signature comparison (two [block, num_perm] uint8 gathers)
_MAX_CHECKS = 32  # exact checks per document at most (see _Check.first_passing)
_BUCKET_WINDOW = 100  # a document in a crowded LSH bucket is paired with the 100 members before it
_PAIR_BATCH = 4_000_000  # candidate pairs generated at a time (bounds the memory of crowded buckets)


def lsh_parameters(threshold: float, num_perm: int) -> tuple[int, int]:
    """LSH ``(bands, rows)`` for a Jaccard ``threshold`` t, using at most ``num_perm`` signature values.

    Two documents with Jaccard s become candidates with probability ``S(s) = 1 - (1 - s^r)^b``. Every
    candidate is then checked exactly, so a pair below t costs only time while a missed pair above t is
    lost for good. The choice minimises, over ``b, r >= 1`` with ``b * r <= num_perm``,

        cost(b, r) = integral_t^1 (1 - S(s)) ds  +  w * integral_0^t S(s) ds,       w = 0.05,

    the expected share of missed pairs above t plus a small charge for candidate pairs below it (both
    integrals under a uniform prior on s; ties go to fewer hash values). With 128 values this puts
    S(t + 0.05) at 0.98 or more for t in 0.5-0.9 (e.g. t = 0.7: 21 bands of 6 rows, S(0.75) = 0.984).

    Args:
        threshold: the Jaccard threshold t in (0, 1].
        num_perm: MinHash values available.

    Returns:
        (bands, rows).
    """
    return _lsh_parameters(float(threshold), int(num_perm))


@lru_cache(maxsize=64)
def _lsh_parameters(threshold: float, num_perm: int) -> tuple[int, int]:
    above, below = np.linspace(threshold, 1.0, 501), np.linspace(0.0, threshold, 501)
    best = (np.inf, 0, 0)
    for r in range(1, num_perm + 1):  # all b for one r at a time: memory stays O(num_perm * grid)
        b = np.arange(1, num_perm // r + 1, dtype=float)[:, None]
        missed = np.trapezoid(1 - _s_curve(above, b, r), above, axis=1)
        extra = np.trapezoid(_s_curve(below, b, r), below, axis=1)
        cost = np.round(missed + _FP_WEIGHT * extra, 12)  # rounded: float noise does not break exact ties
        for k in np.flatnonzero(cost == cost.min()):  # ties go to fewer hash values, then fewer bands
            candidate = (cost[k], (k + 1) * r, k + 1)
            best = min(best, candidate)
    _, used, bands = best
    return int(bands), int(used // bands)


def _s_curve(s: np.ndarray, b, r) -> np.ndarray:
    return 1 - (1 - s**r) ** b


def _splitmix64(seed: int, n: int) -> list[int]:
    """``n`` values of the splitmix64 generator started at ``seed`` (a fixed, documented stream)."""
    out, state = [], seed & _M64
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & _M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        out.append(z ^ (z >> 31))
    return out


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array, in place (a bijection that spreads every input bit)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


_START = _mix64(np.arange(64, dtype=np.uint64) ^ np.uint64(_WORD_SEED))


def word_hashes(words: Sequence[str]) -> np.ndarray:
    """The uint64 hash of each word (see :func:`_byte_hashes`) of its UTF-8 bytes."""
    encoded = [w.encode("utf-8", "surrogatepass") for w in words]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    return _byte_hashes(b"".join(encoded), np.cumsum(lengths) - lengths, lengths)


def _byte_hashes(data: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """uint64 hash of each byte string ``data[start:start + length]``, vectorised.

    ``h = mix64(length ^ 0x5851F42D4C957F2D)``, then for each 8-byte block ``m`` of the string read as a
    little-endian integer (at least one block; the last padded with zero bytes): ``h = mix64(h ^ m)``.
    """
    padded = data + bytes(8)
    at = np.ndarray(shape=(len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))  # 8 bytes at each offset
    h = _START[np.minimum(lengths, len(_START) - 1)]  # mix64(length ^ seed), from a table for short words
    longer = np.flatnonzero(lengths >= len(_START) - 1)
    h[longer] = _mix64(lengths[longer].astype(np.uint64) ^ np.uint64(_WORD_SEED))
    h ^= at[starts] & _TAIL_MASKS[np.minimum(lengths, 8)]
    h = _mix64(h)
    long = np.flatnonzero(lengths > 8)  # words longer than one block: few, handled block by block
    for k in range(8, int(lengths.max(initial=0)), 8):
        long = long[lengths[long] > k]
        block = at[starts[long] + k] & _TAIL_MASKS[np.minimum(lengths[long] - k, 8)]
        h[long] = _mix64(h[long] ^ block)
    return h


def _tokens(norm: Sequence[str]) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """The UTF-8 bytes of the normalised texts joined by newlines (which they cannot contain), each
    word's start and length in them, and each text's word count (its words: ``text.split(" ")``)."""
    data = "\n".join(norm).encode("utf-8", "surrogatepass")
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero((raw == 32) | (raw == 10))
    text_ends = np.r_[np.flatnonzero(raw[ends] == 10), len(ends)]  # index of each text's last word
    if len(text_ends) != len(norm):
        raise ValueError("shingle_hashes needs normalised texts (see normalize): one had a line break")
    ends = np.r_[ends, len(data)]
    starts = np.r_[0, ends[:-1] + 1]
    return data, starts, ends - starts, np.diff(np.r_[-1, text_ends])


def shingle_hashes(norm: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every document's shingles (see the module docstring), in document order.

    Args:
        norm: normalised texts (:func:`normalize`).
        ngram: words per shingle.

    Returns:
        (hashes uint64 [total shingles], offsets int64 [len(norm) + 1]): document i owns
        ``hashes[offsets[i]:offsets[i + 1]]`` (one per shingle position, repeats included).
    """
    if len(norm) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.int64)
    return _shingles(*_words(norm), ngram)


def _words(norm: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every word's hash in document order, and each document's word count."""
    data, word_start, word_len, n_words = _tokens(norm)
    return _byte_hashes(data, word_start, word_len), n_words


def _shingles(w: np.ndarray, n_words: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """``shingle_hashes`` from the word hashes and word counts of ``_words``."""
    ends = np.cumsum(n_words)
    starts = ends - n_words
    # every window of ngram consecutive words in the flat word list (Horner), then drop the windows that
    # cross the end of their document: the last min(ngram - 1, words) start positions of each
    n_windows = max(len(w) - ngram + 1, 0)
    windows = w[:n_windows].copy()
    with np.errstate(over="ignore"):
        for k in range(1, ngram):
            windows *= _P
            windows += w[k : n_windows + k]
    inside = np.ones(len(w), dtype=bool)
    tail = np.maximum(starts, ends - ngram + 1)
    inside[_ranges(tail, ends - tail)] = False
    hashes = windows[inside[:n_windows]]
    n_shingles = np.maximum(n_words - ngram + 1, 1)
    short = np.flatnonzero(n_words < ngram)  # fewer words than ngram: the whole text is the one shingle
    if len(short):
        hashes = np.insert(
            hashes,
            (np.cumsum(n_shingles) - n_shingles)[short] - np.arange(len(short)),
            _short_hashes(w, starts[short], n_words[short]),
        )
    return hashes, np.r_[0, np.cumsum(n_shingles)]


def _short_hashes(w: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Horner hash of each whole (shorter than ngram) document, as for a full shingle."""
    h = w[start].copy()
    with np.errstate(over="ignore"):
        for k in range(1, int(count.max())):
            more = count > k
            h[more] = h[more] * _P + w[start[more] + k]
    return h


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start s and length n, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    return np.arange(total) + np.repeat(starts - first, lengths)


def permutations(num_perm: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The MinHash maps ``h_j(x) = (a_j * x + b_j) mod 2^32``: ``(a, b)`` uint32 arrays, ``a`` odd."""
    stream = _splitmix64(seed, 2 * num_perm)
    a = np.array([(v >> 32) | 1 for v in stream[0::2]], dtype=np.uint32)
    b = np.array([v >> 32 for v in stream[1::2]], dtype=np.uint32)
    return a, b


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int = 0) -> np.ndarray:
    """MinHash signatures [num_perm, N] uint32: per document the minimum of each map over its shingles.

    Args:
        hashes, offsets: as returned by :func:`shingle_hashes` (every document has at least one shingle).
        num_perm: how many maps (the first ``num_perm`` of the seed's stream).
        seed: seed of the maps.
    """
    a, b = (v[:, None] for v in permutations(num_perm, seed))
    keys = (hashes >> np.uint64(32)).astype(np.uint32)
    sig = np.empty((num_perm, len(offsets) - 1), dtype=np.uint32)
    if sig.size == 0:
        return sig
    # blocks of whole documents, about _CHUNK shingles each; threads take runs of blocks (numpy releases
    # the GIL inside each operation)
    cuts = np.unique(np.r_[np.searchsorted(offsets[:-1], np.arange(0, offsets[-1], _CHUNK)), len(offsets) - 1])
    workers = max(1, min(_cpus(), _MAX_THREADS, len(cuts) // 16))
    parts = np.array_split(np.arange(len(cuts) - 1), workers)
    if workers == 1:
        _minhash_blocks(keys, offsets, cuts, a, b, sig)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda part: _minhash_blocks(keys, offsets, cuts[part[0] : part[-1] + 2], a, b, sig), parts))
    return sig


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _minhash_blocks(keys, offsets, cuts, a, b, sig) -> None:
    """Fill ``sig`` for the documents cuts[0]..cuts[-1], block by block through one reused
    [num_perm, block] buffer (so that reduceat runs along contiguous rows held in the CPU cache)."""
    block = np.empty((len(a), int(np.max(np.diff(offsets[cuts])))), dtype=np.uint32)
    for d0, d1 in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        lo, hi = offsets[d0], offsets[d1]
        values = block[:, : hi - lo]
        np.multiply(a, keys[None, lo:hi], out=values)
        values += b
        sig[:, d0:d1] = np.minimum.reduceat(values, offsets[d0:d1] - lo, axis=1)


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """[bands, N] uint64 key of each band: a fixed linear combination of its rows (equal rows, equal key;
    a rare unequal collision only adds a candidate, which the exact check removes)."""
    mult = np.array(_splitmix64(0x5EED, rows), dtype=np.uint64) | np.uint64(1)
    keys = np.zeros((bands, sig.shape[1]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(rows):
            keys += sig[k : bands * rows : rows].astype(np.uint64) * mult[k]
    return keys


class _Check:
    """The check of candidate pairs: a signature filter, then the exact Jaccard of the shingle sets.

    The filter drops a pair whose signatures agree in fewer than ``min_agree`` of their K values, the
    count below which Binomial(K, t) falls with probability <= 1e-4: each value agrees with probability
    J (being a candidate only raises the count), so a pair at the threshold is dropped at most that
    often and one at t + 0.05 about a hundred times less (K = 128), while the many candidates well
    below t, common in boilerplate-heavy corpora, cost a vector comparison instead of a set
    intersection. Exact sets are built on first use."""

    def __init__(self, sig: np.ndarray, hashes: np.ndarray, offsets: np.ndarray, threshold: float):
        # [N, K] low bytes (a minimum's high bits are mostly zero, its low ones uniform), one document's side
        # by side: a quarter of the memory traffic of the full values; unequal values that share their
        # low byte (1 in 256) only make the filter more lenient
        self.sig = np.ascontiguousarray(sig.astype(np.uint8).T)
        self.min_agree = _min_agreements(sig.shape[0], threshold)
        self.hashes, self.offsets, self.threshold, self.sets = hashes, offsets, threshold, {}

    def first_passing(self, later: np.ndarray, before: np.ndarray) -> tuple[list[int], list[int]]:
        """Pairs (later[k], before[k]) sorted by later then before: for each later document, the first
        ``before`` that passes, as two lists (documents, matches). A document with more than
        _MAX_CHECKS pairs through the filter gets the exact check on the _MAX_CHECKS whose signatures
        agree most (a crowd of candidates all just below t would otherwise cost time quadratic in it)."""
        agree = np.concatenate(
            [
                self._agreements(later[k : k + _PAIR_BLOCK], before[k : k + _PAIR_BLOCK])
                for k in range(0, len(later), _PAIR_BLOCK)
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
        keep = agree >= self.min_agree
        later, before, agree = later[keep], before[keep], agree[keep]
        if len(later) and np.bincount(later).max() > _MAX_CHECKS:
            later, before = self._most_agreeing(later, before, agree)
        docs, matches, done = [], [], -1
        for i, j in zip(later.tolist(), before.tolist()):
            if i != done and self._similar(i, j):
                docs.append(i)
                matches.append(j)
                done = i
        return docs, matches

    def _most_agreeing(self, later, before, agree) -> tuple[np.ndarray, np.ndarray]:
        """Per document its _MAX_CHECKS pairs of highest agreement, back in (later, before) order."""
        n, k = len(self.sig), self.sig.shape[1] + 1
        code = np.sort((later * k + (k - 1 - agree)) * n + before)  # one sort of (later, -agree, before)
        later, before = code // (k * n), code % n
        starts = np.flatnonzero(np.r_[True, later[1:] != later[:-1]])
        rank = np.arange(len(later)) - np.repeat(starts, np.diff(np.r_[starts, len(later)]))
        kept = np.sort(later[rank < _MAX_CHECKS] * n + before[rank < _MAX_CHECKS])
        return kept // n, kept % n

    def _agreements(self, later: np.ndarray, before: np.ndarray) -> np.ndarray:
        return (self.sig[later] == self.sig[before]).sum(axis=1, dtype=np.int64)

    def _set(self, i: int) -> set:
        found = self.sets.get(i)
        if found is None:
            found = self.sets[i] = set(self.hashes[self.offsets[i] : self.offsets[i + 1]].tolist())
        return found

    def _similar(self, i: int, j: int) -> bool:
        a, b = self._set(i), self._set(j)
        common = len(a & b)
        return common / (len(a) + len(b) - common) >= self.threshold


@lru_cache(maxsize=256)
def _min_agreements(k: int, threshold: float, risk: float = 1e-4) -> int:
    """Largest c with P(Binomial(k, threshold) < c) <= risk (0 when even c = 1 is too likely)."""
    if threshold >= 1:
        return k
    log_p, log_q = math.log(threshold), math.log1p(-threshold)
    below = 0.0  # P(X < c)
    for c in range(k + 1):
        below += math.exp(
            math.lgamma(k + 1) - math.lgamma(c + 1) - math.lgamma(k - c + 1) + c * log_p + (k - c) * log_q
        )
        if below > risk:  # now P(X < c + 1): c + 1 is too many
            return c
    return k


def edit_candidate_jaccard(threshold: float) -> float:
    """The lowest word-bigram-set Jaccard of two texts at word edit similarity ``threshold`` (t > 1/2).

    An n-word text within edit similarity t of another is at most ``s = floor((1 - t) * n)`` edits
    away; each edit changes at most two bigrams on each side, and substitutions spread apart are the
    worst case: ``J = (n - 1 - 2s) / (n - 1 + 2s)``. That tends to ``(2t - 1) / (3 - 2t)`` for long texts
    and dips below it for short ones (t = 0.8: 1/3 at n = 5, 0.385 at n = 10, 0.43 in the limit), so
    this returns the minimum over every length (a text that repeats bigrams can fall lower still; its
    copies still share most buckets)."""
    return _edit_candidate_jaccard(float(threshold))


@lru_cache(maxsize=64)
def _edit_candidate_jaccard(threshold: float) -> float:
    n = np.arange(2, 4096)
    s = np.floor((1 - threshold) * n + 1e-9)
    j = (n - 1 - 2 * s) / (n - 1 + 2 * s)
    return float(max(j[s >= 1].min(initial=1.0), 1e-3))


class _EditCheck(_Check):
    """The signature filter at the candidate Jaccard, then the word edit similarity of the two texts."""

    def __init__(self, sig, hashes, offsets, words: np.ndarray, word_offsets: np.ndarray, threshold: float):
        super().__init__(sig, hashes, offsets, edit_candidate_jaccard(threshold))
        self.words, self.word_offsets, self.edit_threshold, self.seqs = words, word_offsets, threshold, {}

    def _seq(self, i: int) -> list[int]:
        found = self.seqs.get(i)
        if found is None:
            found = self.seqs[i] = self.words[self.word_offsets[i] : self.word_offsets[i + 1]].tolist()
        return found

    def _similar(self, i: int, j: int) -> bool:
        from rapidfuzz.distance import Levenshtein

        a, b = self._seq(i), self._seq(j)
        budget = math.floor((1 - self.edit_threshold) * max(len(a), len(b)) + 1e-9)  # edits allowed
        if abs(len(a) - len(b)) > budget:  # the length difference alone needs more edits
            return False
        return Levenshtein.distance(a, b, score_cutoff=budget) <= budget


def mark_near_duplicates(
    norm: list[str], of: np.ndarray, threshold: float, ngram: int, num_perm: int, seed: int
) -> None:
    """Mark near-duplicates (word n-gram Jaccard >= threshold) in ``of`` (exact ones are already marked
    and stay out, since their originals share every band with them)."""
    _mark(
        norm,
        of,
        threshold,
        ngram,
        num_perm,
        seed,
        lambda sig, hashes, offsets, words: _Check(sig, hashes, offsets, threshold),
    )


def mark_edit_duplicates(norm: list[str], of: np.ndarray, threshold: float, num_perm: int, seed: int) -> None:
    """Mark near copies by word edit similarity >= threshold (in [0.7, 1]) in ``of``, like
    :func:`mark_near_duplicates`; candidates come from word bigrams."""

    def check(sig, hashes, offsets, words):
        w, n_words = words
        return _EditCheck(sig, hashes, offsets, w, np.r_[0, np.cumsum(n_words)], threshold)

    _mark(norm, of, edit_candidate_jaccard(threshold), 2, num_perm, seed, check)


def _mark(norm: list[str], of: np.ndarray, jaccard: float, ngram: int, num_perm: int, seed: int, make_check) -> None:
    """LSH candidates at shingle Jaccard ``jaccard``, checked by ``make_check(sig, hashes, offsets, words)``
    (``words``: the word hashes and counts of the documents still unmarked, from ``_words``)."""
    active = np.flatnonzero(of < 0)
    if len(active) < 2:
        return
    words = _words([norm[i] for i in active])
    hashes, offsets = _shingles(*words, ngram)
    bands, rows = lsh_parameters(jaccard, num_perm)
    sig = signatures(hashes, offsets, num_perm, seed)  # LSH uses the first bands * rows, the filter all
    buckets = [_buckets(k) for k in _band_keys(sig, bands, rows)]
    match = _first_matches(buckets, make_check(sig, hashes, offsets, words), len(active))
    found = np.flatnonzero(match >= 0)
    for g, j in zip(active[found].tolist(), active[match[found]].tolist()):  # ascending: j's mark is final
        of[g] = of[j] if of[j] >= 0 else j


def _first_matches(buckets: list, check: _Check, n: int) -> np.ndarray:
    """For each document, its earliest candidate that passes the check (-1: none).

    Most duplicates pass with their earliest candidate (the first member of a shared bucket), so that
    one is checked for every document first; only the documents it fails for get their other pairs, a
    batch of documents at a time so that memory stays bounded."""
    earliest = np.arange(n)
    for order, bucket, bounds in buckets:
        band = np.empty(n, dtype=np.int64)
        band[order] = order[bounds[bucket]]  # buckets list their members in corpus order
        np.minimum(earliest, band, out=earliest)
    match = np.full(n, -1, dtype=np.int64)
    has = np.flatnonzero(earliest < np.arange(n))
    docs, matches = check.first_passing(has, earliest[has])
    match[docs] = matches
    retry = has[match[has] < 0]
    for batch in _batches(retry, _pair_bounds(buckets, n)[retry]):
        wanted = np.zeros(n, dtype=bool)
        wanted[batch] = True
        later, before = _pairs(buckets, wanted, n)
        other = before != earliest[later]  # that one failed already
        docs, matches = check.first_passing(later[other], before[other])
        match[docs] = matches
    return match


def _buckets(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One band's buckets: documents sorted by key and, within a bucket, by position in the corpus; the
    bucket of each sorted position; the bucket bounds (bucket k is ``order[bounds[k]:bounds[k + 1]]``)."""
    order = np.argsort(key)
    sorted_key = key[order]
    new = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    bucket = np.cumsum(new) - 1
    order = np.sort(bucket * len(key) + order) % len(key)  # corpus order inside each bucket
    return order, bucket, np.r_[np.flatnonzero(new), len(key)]


def _window(buckets: list, n: int) -> list[np.ndarray]:
    """Per band and sorted position, how many earlier bucket members are paired with it: all of them,
    or the _BUCKET_WINDOW just before it in a crowded bucket."""
    return [np.minimum(np.arange(n) - bounds[bucket], _BUCKET_WINDOW) for _, bucket, bounds in buckets]


def _pair_bounds(buckets: list, n: int) -> np.ndarray:
    """Per document, how many (not necessarily distinct) candidate pairs :func:`_pairs` gives it."""
    bound = np.zeros(n, dtype=np.int64)
    for (order, _, _), count in zip(buckets, _window(buckets, n)):
        bound[order] += count
    return bound


def _batches(docs: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
    """``docs`` cut into consecutive batches of at most _PAIR_BATCH candidate pairs (by their bounds)."""
    if len(docs) == 0:
        return []
    batch_of = np.cumsum(bounds) // _PAIR_BATCH
    return np.split(docs, np.flatnonzero(np.diff(batch_of)) + 1)


def _pairs(buckets: list, wanted: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The (document, earlier bucket member) pairs of the ``wanted`` documents over all bands, unique,
    sorted by document then member: all earlier members, or the _BUCKET_WINDOW just before it in a
    crowded bucket (whose shared values mostly come from boilerplate shared by its members)."""
    codes = []
    for (order, _, _), count in zip(buckets, _window(buckets, n)):
        pos = np.flatnonzero(wanted[order] & (count > 0))
        members = order[_ranges(pos - count[pos], count[pos])]
        codes.append(np.repeat(order[pos], count[pos]) * n + members)
    code = np.sort(np.concatenate(codes))
    code = code[np.r_[True, code[1:] != code[:-1]]]
    return code // n, code % n
