"""Data ordering (delt-method.md section 4): the training order of the selected samples.

Methods:
- shuffle(seed): the conventional baseline; a seeded permutation (numpy PCG64). Reads no scores.
- sorting: stable ascending argsort (curriculum, easy -> hard); ``descending`` sorts stably on
  ``-score``, so ties keep their original order either way.
- folding (Folding Ordering, L layers): stable ascending argsort, then layer l takes the sorted
  positions p with p mod L == l, for l = 0..L-1, concatenated. Scores 0..9 with L = 3 give
  [0,3,6,9, 1,4,7, 2,5,8]. L = 1 is the ascending sort. L > N is allowed: the definition still
  holds, every layer has at most one sample and layers l >= N are empty, so the result is the
  ascending sort (same as L = N); a small selection with the paper's L = 3 must not fail.
- zigzag (beyond the paper): folding with every odd layer reversed.
- window shuffle (beyond the paper): ``window=W`` on top of any method shuffles within consecutive
  blocks of W training positions (W = 1 changes nothing), keeping the coarse order.
Every result is a permutation: no sample is duplicated or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import polars as pl

from ..errors import ConfigError, DataError
from .registry import LAYERED, ORDERINGS, WINDOW_SHUFFLE
from .selection import check_scores, check_unique_ids, score_array, scores_of

PACKED_SORT_MIN = 4096  # below this numpy's stable argsort is fast enough


def order(
    frame: pl.DataFrame,
    method: str = "shuffle",
    layers: int = 3,
    descending: bool = False,
    window: int | None = None,
    seed: int = 0,
    score_field: str = "score",
) -> pl.DataFrame:
    """Rows of ``frame`` in training order (paper section 4), with ``position`` and ``layer`` columns.

    Args:
        frame: samples; needs a finite numeric ``score_field`` except for shuffle, which reads (and
            checks) no scores, so an unscored corpus can be shuffled.
        method: "shuffle", "sorting", "folding" or "zigzag".
        layers: L for folding/zigzag (>= 1; paper default 3); ignored by the other methods.
        descending: sort on -score (sorting; folding/zigzag fold the descending sort); ignored by shuffle.
        window: optional W >= 1: shuffle within consecutive blocks of W positions (beyond the paper).
        seed: seed (>= 0) for shuffle and the window shuffle.
        score_field: the column holding the scores.

    Returns:
        All rows, reordered, plus ``position`` (0..N-1, the training position) and ``layer`` (the
        sample's folding layer; 0 for shuffle and sorting). Existing columns of those names are replaced.

    Raises:
        ConfigError: unknown method, bad layers/window/seed.
        DataError: empty frame, repeated ids, missing/non-numeric score field, null/NaN/inf scores.
    """
    check_order_config(method, layers, window, seed)
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"expected a polars DataFrame of samples, got {type(frame).__name__}")
    check_unique_ids(frame, action="order")
    if method == "shuffle":
        if frame.height == 0:
            raise DataError("there are no samples to order: the input has no rows")
        scores = np.zeros(frame.height)  # shuffle reads no scores, so an unscored corpus can be shuffled
    else:
        scores = score_array(frame, score_field, action="order")
    perm, layer = _order(scores, method, layers, descending, window, seed)
    return frame[perm].with_columns(
        pl.Series("position", np.arange(perm.size, dtype=np.int64)), pl.Series("layer", layer)
    )


def order_indices(
    scores: np.ndarray | Sequence[float],
    method: str = "shuffle",
    layers: int = 3,
    descending: bool = False,
    window: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The training order as a permutation: ``perm[i]`` is the input position trained at step i.

    Args:
        scores: one finite score per sample (shuffle only uses their count).
        method, layers, descending, window, seed: as in ``order``.

    Returns:
        int64 permutation of 0..N-1.
    """
    check_order_config(method, layers, window, seed)
    arr = np.asarray(scores) if method == "shuffle" else check_scores(scores, action="order")
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"there are no samples to order: expected one score per sample, got shape {arr.shape}")
    return _order(arr, method, layers, descending, window, seed, with_layers=False)[0]


def layer_sizes(n: int, method: str, layers: int = 3) -> np.ndarray:
    """Samples per non-empty layer: ``ceil((n - l) / L)`` for folding/zigzag, else ``[n]``.

    Args:
        n: number of samples (>= 1).
        method: the ordering method.
        layers: L.

    Returns:
        int64 array of layer sizes, summing to n.
    """
    if method not in LAYERED:
        return np.array([n], dtype=np.int64)
    fold = min(int(layers), n)  # L > n: layers beyond n are empty, identical to L = n
    return (n - np.arange(fold, dtype=np.int64) + fold - 1) // fold


@dataclass(frozen=True)
class Layout:
    """An ordering described for plotting: pure data, one entry per training position.

    Attributes:
        method: the ordering method.
        order: the permutation (input position at each training position).
        scores: the score of the sample at each training position.
        layers: the folding layer of the sample at each training position (0 when unlayered).
        layer_starts: first training position of every non-empty layer (starts with 0).
    """

    method: str
    order: np.ndarray
    scores: np.ndarray
    layers: np.ndarray
    layer_starts: np.ndarray

    @property
    def n_layers(self) -> int:
        """Number of non-empty layers."""
        return int(self.layer_starts.size)

    def batch_means(self, batch_size: int) -> np.ndarray:
        """Mean score of each consecutive batch of ``batch_size`` positions (the last may be shorter).

        Args:
            batch_size: positions per batch, >= 1.

        Returns:
            float64 array of length ceil(N / batch_size).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
        starts = np.arange(0, self.scores.size, batch_size)
        counts = np.diff(np.append(starts, self.scores.size))
        return np.add.reduceat(self.scores, starts) / counts


def layout(
    frame_or_scores: pl.DataFrame | np.ndarray | Sequence[float],
    method: str = "folding",
    layers: int = 3,
    descending: bool = False,
    window: int | None = None,
    seed: int = 0,
    score_field: str = "score",
) -> Layout:
    """Describe an ordering for plots: score and layer per training position, layer boundaries.

    Args:
        frame_or_scores: a frame with ``score_field`` or the scores themselves (checked, even for shuffle).
        method, layers, descending, window, seed, score_field: as in ``order``.

    Returns:
        A ``Layout``.
    """
    check_order_config(method, layers, window, seed)
    scores = scores_of(frame_or_scores, score_field, action="order")
    perm, layer = _order(scores, method, layers, descending, window, seed)
    sizes = layer_sizes(scores.size, method, layers)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return Layout(method, perm, scores[perm], layer, starts)


def check_order_config(method: str, layers, window, seed) -> None:
    """ConfigError unless ``method`` is a known ordering and its layers, window and seed are in range."""
    if method not in ORDERINGS:
        raise ConfigError(f"ordering method {method!r} is not known; use one of {', '.join(ORDERINGS)}")
    if method in LAYERED and not _is_int(layers, 1):
        raise ConfigError(f"layers={layers!r} must be an integer >= 1 (L = 1 is the ascending sort; the paper uses 3)")
    if window is not None and not _is_int(window, 1):
        raise ConfigError(f"window={window!r} must be an integer >= 1 (1 changes nothing), or None for no window")
    if not _is_int(seed, 0):
        raise ConfigError(f"seed={seed!r} must be an integer >= 0")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= minimum


def _order(
    scores: np.ndarray,
    method: str,
    layers: int,
    descending: bool,
    window: int | None,
    seed: int,
    with_layers: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(permutation, layer of the sample at each position or None); inputs already checked."""
    n = scores.size
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    if method == "shuffle":
        perm = rng.permutation(n)
    else:
        # Stable sort: equal scores keep their original order, also when descending.
        perm = stable_argsort(-scores if descending else scores)
        if method in LAYERED:
            perm = _fold(perm, int(layers), zigzag=method == "zigzag")
    layer = _layer_labels(n, method, layers) if with_layers else None
    if window is not None and window > 1:
        blocks = _window_permutation(n, int(window), rng)
        perm = perm[blocks]
        layer = None if layer is None else layer[blocks]
    return perm.astype(np.int64, copy=False), layer


def _layer_labels(n: int, method: str, layers: int) -> np.ndarray:
    """Layer of each position before any window shuffle: 0..L-1 in blocks (folding/zigzag), else 0."""
    sizes = layer_sizes(n, method, layers)
    return np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)


def stable_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` for finite floats, several times faster on large arrays.

    Why: numpy's stable argsort is a merge sort on (value, index) pairs, the slowest step of ordering
    millions of samples. Here each value's order-preserving 64-bit image keeps its high bits and
    gives its low bits to the sample's position; one plain sort of those packed integers orders the
    samples by value, ties by position. Samples whose values differ only in the dropped low bits are
    then put in exact order (a small set unless many values nearly tie).

    Args:
        values: 1-D finite float64 array.

    Returns:
        int64 positions, ascending by value, equal values in original order.
    """
    n = values.size
    if n < PACKED_SORT_MIN:
        return np.argsort(values, kind="stable")
    key = _sortable_bits(values)
    shift = np.uint64(int(n - 1).bit_length())
    packed = key >> shift
    packed <<= shift
    packed |= np.arange(n, dtype=np.uint64)
    # Keys are unique (they hold the position), so any sort gives the same result. Polars' integer sort
    # takes about a third of np.sort's time here; one thread, because on a shared 2-core machine
    # (the app, a training job) extra sort threads cost more than they save.
    packed = pl.Series(packed).sort(multithreaded=False).to_numpy()
    high = packed >> shift
    same_high = high[1:] == high[:-1]
    del high
    idx = (packed & ((np.uint64(1) << shift) - np.uint64(1))).view(np.int64)  # positions < 2**63
    if same_high.any():
        _order_near_ties(idx, key, same_high)
    return idx


def _sortable_bits(values: np.ndarray) -> np.ndarray:
    """uint64 images ordered like the floats: flip every bit of negatives, only the sign bit of the rest."""
    bits = (values + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0 (they compare equal); a new array
    flip = (bits.view(np.int64) >> 63).view(np.uint64)  # all ones for negatives, 0 otherwise
    flip |= np.uint64(1 << 63)
    bits ^= flip
    return bits


def _order_near_ties(idx: np.ndarray, key: np.ndarray, same_high: np.ndarray) -> None:
    """In place: inside runs of equal high bits (now in position order) sort by the full key, stably."""
    pair = np.flatnonzero(same_high)  # sorted slots p whose high bits equal those of slot p + 1
    differs = key[idx[pair]] != key[idx[pair + 1]]
    if not differs.any():
        return  # only exact ties: position order is already right
    where = np.union1d(pair, pair + 1)  # every slot of a run of equal high bits
    starts = np.ones(where.size, dtype=bool)
    starts[1:] = ~same_high[where[1:] - 1]
    run = np.cumsum(starts)
    broken = np.zeros(int(run[-1]) + 1, dtype=bool)
    broken[run[np.searchsorted(where, pair[differs])]] = True
    fix = broken[run]  # fix only runs holding different values
    where, run = where[fix], run[fix]
    sub = idx[where]
    idx[where] = sub[np.lexsort((key[sub], run))]  # lexsort is stable: equal keys keep position order


def _fold(sorted_idx: np.ndarray, layers: int, zigzag: bool) -> np.ndarray:
    """Folding: layer l takes sorted positions l, l + L, l + 2L, ... (zigzag: odd layers reversed).

    Vectorised for any L: the sorted positions fill a grid row by row, L per row, so layer l is column
    l; reading the columns one after another concatenates the layers. Unfilled cells (-1) are dropped.
    """
    n = sorted_idx.size
    fold = min(layers, n)  # L > n: the extra layers are empty, same as L = n
    rows = -(-n // fold)
    grid = np.full(rows * fold, -1, dtype=np.int64)
    grid[:n] = sorted_idx
    columns = grid.reshape(rows, fold).T
    if zigzag:
        columns[1::2] = columns[1::2, ::-1]
    perm = columns.ravel()
    return perm if rows * fold == n else perm[perm >= 0]


def _window_permutation(n: int, window: int, rng: np.random.Generator) -> np.ndarray:
    """Positions shuffled within consecutive blocks of ``window`` (the last block may be shorter)."""
    full = n // window * window
    head = rng.permuted(np.arange(full, dtype=np.int64).reshape(-1, window), axis=1).ravel()
    tail = full + rng.permutation(n - full)
    return np.concatenate([head, tail])


__all__ = [
    "LAYERED",
    "Layout",
    "ORDERINGS",
    "WINDOW_SHUFFLE",
    "layer_sizes",
    "layout",
    "order",
    "order_indices",
    "stable_argsort",
]
