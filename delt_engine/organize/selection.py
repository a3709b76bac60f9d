"""Data selection (delt-method.md section 3): keep the best-scored samples, in their original order.

Methods (the paper's words):
- top-k: keep the k best scores.
- top-r: keep the ``floor(r * N)`` best scores.
- threshold: keep scores strictly better than t (``score > t``, or ``score < t`` for lower-is-better).

Rules that the reference implementation broke and we keep (section 6, defect 3):
- survivors stay in their original corpus order (selection alone must not become a curriculum);
- k = 0, or a ratio that rounds to 0, is an error, never "keep everything" (the ``x[-0:]`` bug);
- the score direction is explicit (``higher_is_better``, or the scorer's ``direction`` as a scored file
  records it: "higher_harder" keeps the low scores), e.g. low perplexity is "better".
Ties at the cutoff are broken by original position: the earlier sample wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Context, Decimal
from numbers import Integral, Real

import numpy as np
import polars as pl

from ..errors import ConfigError, DataError
from .registry import SELECTIONS

N_EXAMPLES = 5  # how many offending ids an error message lists
DIRECTIONS = ("higher_better", "higher_harder")  # a scorer's direction, as scored files record it


def resolve_higher_is_better(higher_is_better: bool | None = None, direction: str | None = None) -> bool:
    """Whether higher scores are better: ``higher_is_better`` when given, else from a scorer's
    ``direction`` ("higher_better" -> True, "higher_harder" -> False, e.g. perplexity), else True.

    Raises:
        ConfigError: an unknown direction.
    """
    if direction is not None and direction not in DIRECTIONS:
        raise ConfigError(f"direction {direction!r} is not known; use one of {', '.join(DIRECTIONS)}")
    if higher_is_better is not None:
        return bool(higher_is_better)
    return direction != "higher_harder"


@dataclass(frozen=True)
class SelectionSummary:
    """What a selection keeps, for the app's live cutoff line and the CLI's summary.

    ``cutoff`` is the score of the worst kept sample (top-k, top-r) or the threshold t; samples whose
    score equals the cutoff but were left out (ties broken by position, or equal to t) are counted in
    ``n_tied_dropped``.
    """

    method: str
    n_total: int
    n_kept: int
    cutoff: float | None
    higher_is_better: bool
    n_tied_dropped: int = 0

    @property
    def share(self) -> float:
        """Kept fraction of the input, 0..1."""
        return self.n_kept / self.n_total if self.n_total else 0.0

    def describe(self) -> str:
        """One line, e.g. ``kept 500 of 1000 samples (50.0%) by top-r; cutoff score 0.42 (higher is better)``."""
        side = "higher is better" if self.higher_is_better else "lower is better"
        text = f"kept {self.n_kept} of {self.n_total} samples ({100 * self.share:.1f}%) by {self.method}"
        if self.cutoff is not None:
            text += f"; cutoff score {self.cutoff:.6g} ({side})"
        if self.n_tied_dropped:
            text += f"; {self.n_tied_dropped} tied at the cutoff left out"
        return text


def select(
    frame: pl.DataFrame,
    method: str = "top-k",
    k: int | None = None,
    ratio: float | None = None,
    threshold: float | None = None,
    score_field: str = "score",
    higher_is_better: bool | None = None,
    direction: str | None = None,
) -> pl.DataFrame:
    """Keep the best-scored rows of ``frame`` (paper section 3), in their original order.

    Args:
        frame: samples with a numeric ``score_field`` column (an ``id`` column names samples in errors).
        method: "top-k", "top-r" or "threshold".
        k: top-k count, >= 1; k larger than the frame keeps every row (no error).
        ratio: top-r share in (0, 1]; keeps floor(ratio * N) rows (ratio read as the decimal you typed,
            so 0.29 of 100 keeps 29), 1 keeps all.
        threshold: keep score > threshold (or < threshold when ``higher_is_better`` is False).
        score_field: the column holding the scores.
        higher_is_better: False for "higher = harder" scores such as perplexity, to keep the low ones.
        direction: the scorer's direction ("higher_better" | "higher_harder", e.g. from
            ``read_score_meta``), used when ``higher_is_better`` is None; with neither, higher is better.

    Returns:
        The surviving rows, all columns, in their original order.

    Raises:
        ConfigError: unknown method, missing/extra/out-of-range parameter, a count that rounds to 0.
        DataError: empty frame, repeated ids, missing or non-numeric score field, null/NaN/inf scores,
            nothing kept.
    """
    check_select_config(method, k, ratio, threshold)
    check_unique_ids(frame, action="select")
    scores = score_array(frame, score_field, action="select")
    kept, _ = _select(scores, method, k, ratio, threshold, resolve_higher_is_better(higher_is_better, direction))
    _require_kept(kept, method, threshold, scores.size)
    return frame[kept]


def select_indices(
    scores: np.ndarray | Sequence[float],
    method: str = "top-k",
    k: int | None = None,
    ratio: float | None = None,
    threshold: float | None = None,
    higher_is_better: bool | None = None,
    direction: str | None = None,
) -> np.ndarray:
    """Positions kept by a selection, sorted ascending (the vectorised core of ``select``).

    Args:
        scores: one finite score per sample (1-D).
        method, k, ratio, threshold, higher_is_better, direction: as in ``select``.

    Returns:
        int64 array of kept positions, ascending.

    Raises:
        ConfigError / DataError: as in ``select`` (positions name the bad scores).
    """
    check_select_config(method, k, ratio, threshold)
    arr = check_scores(scores, action="select")
    kept, _ = _select(arr, method, k, ratio, threshold, resolve_higher_is_better(higher_is_better, direction))
    _require_kept(kept, method, threshold, arr.size)
    return kept


def summarize_selection(
    frame_or_scores: pl.DataFrame | np.ndarray | Sequence[float],
    method: str = "top-k",
    k: int | None = None,
    ratio: float | None = None,
    threshold: float | None = None,
    score_field: str = "score",
    higher_is_better: bool | None = None,
    direction: str | None = None,
) -> SelectionSummary:
    """How many samples a selection keeps and where its cutoff lies, without building the result.

    Unlike ``select`` this does not raise when a threshold keeps nothing (``n_kept`` is 0), so a page
    can show the cutoff line while the user drags the threshold.

    Args:
        frame_or_scores: a frame with ``score_field`` or the scores themselves.
        method, k, ratio, threshold, score_field, higher_is_better, direction: as in ``select``.

    Returns:
        A ``SelectionSummary``.
    """
    check_select_config(method, k, ratio, threshold)
    scores = scores_of(frame_or_scores, score_field, action="select")
    _, summary = _select(scores, method, k, ratio, threshold, resolve_higher_is_better(higher_is_better, direction))
    return summary


def score_array(frame: pl.DataFrame, score_field: str = "score", action: str = "select") -> np.ndarray:
    """The checked float64 scores of ``frame`` (errors name the offending ids).

    Args:
        frame: samples with a numeric ``score_field`` column.
        score_field: the column to read.
        action: the verb for error messages ("select", "order").

    Returns:
        float64 array, one finite score per row.

    Raises:
        DataError: empty frame, missing or non-numeric column, null or non-finite scores.
    """
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"expected a polars DataFrame of samples, got {type(frame).__name__}")
    if frame.height == 0:
        raise DataError(f"there are no samples to {action}: the input has no rows")
    if score_field not in frame.columns:
        raise DataError(
            f"score field {score_field!r} not found; columns are {', '.join(frame.columns) or '(none)'}; "
            f"score the corpus first or pass the right score field"
        )
    column = frame.get_column(score_field)
    if column.null_count():
        where = np.flatnonzero(column.is_null().to_numpy())
        raise DataError(
            f"{column.null_count()} sample(s) have no {score_field!r} (null), e.g. "
            f"{_names(frame, where)}; JSONL stores NaN as null: drop or rescore those samples"
        )
    if not column.dtype.is_numeric():
        if column.dtype == pl.Boolean:
            what = "true/false values"
        else:
            bad = np.flatnonzero(column.cast(pl.Float64, strict=False).is_null().to_numpy())
            first = bad[:1] if bad.size else np.arange(1)
            value = column.gather(first).to_list()[0]
            what = (
                f"{column.dtype} values ({_names(frame, bad)}: {value!r})"
                if bad.size
                else f"{column.dtype} values (numbers written as text, e.g. {value!r})"
            )
        raise DataError(f"score field {score_field!r} holds {what}, not numbers; pick a numeric field or rescore")
    return check_scores(column.cast(pl.Float64).to_numpy(), frame=frame, action=action)


def check_unique_ids(frame: pl.DataFrame, action: str = "select", where: str | None = None) -> None:
    """Refuse a frame whose ``id`` column repeats a value (a sample twice would be trained twice and
    every later join by id would be ambiguous). A frame without an ``id`` column passes.

    Args:
        frame: the samples.
        action: the verb for the message ("select", "order").
        where: the file the frame came from, for the message.

    Raises:
        DataError: naming the first few repeated ids, how many there are, and the fix.
    """
    if not isinstance(frame, pl.DataFrame) or "id" not in frame.columns:
        return
    ids = frame.get_column("id")
    repeated = ids.filter(ids.is_duplicated()).unique(maintain_order=True)
    if repeated.len():
        shown = ", ".join(repr(v) for v in repeated.head(N_EXAMPLES).to_list())
        more = f" and {repeated.len() - N_EXAMPLES} more" if repeated.len() > N_EXAMPLES else ""
        prefix = f"{where}: " if where else ""
        raise DataError(
            f"{prefix}{repeated.len()} id(s) appear more than once: {shown}{more}; every sample needs "
            f"a unique id to {action}: remove the repeated records or give them new ids (importing the "
            f"file again without --id-field numbers the documents by row)"
        )


def scores_of(frame_or_scores, score_field: str = "score", action: str = "select") -> np.ndarray:
    """Checked scores from a frame's ``score_field`` or from the scores themselves."""
    if isinstance(frame_or_scores, pl.DataFrame):
        return score_array(frame_or_scores, score_field, action=action)
    return check_scores(frame_or_scores, action=action)


def check_scores(
    scores: np.ndarray | Sequence[float], frame: pl.DataFrame | None = None, action: str = "select"
) -> np.ndarray:
    """Scores as a 1-D float64 array, refusing empty input and NaN/inf.

    Args:
        scores: the scores.
        frame: optional frame whose ``id`` column names bad samples in errors (else positions).
        action: the verb for error messages.

    Returns:
        The scores as a float64 array.
    """
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"scores must be numbers: {exc}") from None
    if arr.ndim != 1:
        raise DataError(f"scores must be one number per sample (1-D), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"there are no samples to {action}: the scores are empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.flatnonzero(bad)
        n_nan = int(np.isnan(arr[where]).sum())
        raise DataError(
            f"{where.size} score(s) are not finite ({n_nan} NaN, {where.size - n_nan} inf), e.g. "
            f"{_names(frame, where)}; drop or rescore those samples"
        )
    return arr


def _names(frame: pl.DataFrame | None, where: np.ndarray) -> str:
    first = where[:N_EXAMPLES]
    if frame is not None and "id" in frame.columns:
        names = [f"id {v}" for v in frame.get_column("id").gather(first).to_list()]
    else:
        names = [f"row {int(i)}" for i in first]
    return ", ".join(names) + (", ..." if where.size > N_EXAMPLES else "")


def check_select_config(method: str, k, ratio, threshold) -> None:
    """ConfigError unless ``method`` is a known selection given exactly its one parameter, in range."""
    if method not in SELECTIONS:
        raise ConfigError(f"selection method {method!r} is not known; use one of {', '.join(SELECTIONS)}")
    needed = SELECTIONS[method].params[0]
    given = {"k": k, "ratio": ratio, "threshold": threshold}
    extra = [name for name, value in given.items() if value is not None and name != needed]
    if extra:
        raise ConfigError(f"{method} takes only {needed}; unset {', '.join(extra)} (they belong to other methods)")
    if given[needed] is None:
        raise ConfigError(
            f"{method} needs {needed} (e.g. "
            + {"k": "k=1000", "ratio": "ratio=0.5", "threshold": "threshold=0.0"}[needed]
            + ")"
        )
    if method == "top-k" and (isinstance(k, bool) or not isinstance(k, Integral) or k < 1):
        raise ConfigError(f"k={k!r} must be an integer >= 1 (k = 0 would keep nothing)")
    if method == "top-r" and not (_is_real(ratio, finite=True) and 0 < ratio <= 1):
        raise ConfigError(f"ratio={ratio!r} must be a share in (0, 1]; e.g. 0.5 keeps half, 1 keeps all")
    if method == "threshold" and not _is_real(threshold, finite=True):
        raise ConfigError(f"threshold={threshold!r} must be a finite number")


def _is_real(value, finite: bool) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and (not finite or math.isfinite(value))


def top_count(n_total: int, method: str, k, ratio) -> int:
    """How many of ``n_total`` samples top-k / top-r keep (ConfigError when r rounds to 0)."""
    if method == "top-k":
        return min(int(k), n_total)
    # floor(r * N) on the decimal the user typed: float 0.29 is 0.28999..., and 0.29 * 100 must keep 29.
    count = math.floor(Decimal(repr(float(ratio))) * n_total)
    if count == 0:
        smallest = Context(prec=6, rounding=ROUND_CEILING).divide(Decimal(1), Decimal(n_total))
        raise ConfigError(
            f"ratio={ratio} of {n_total} samples keeps floor({ratio} * {n_total}) = 0; "
            f"use a ratio of at least {float(smallest):g}"
        )
    return count


def _select(
    scores: np.ndarray, method: str, k, ratio, threshold, higher_is_better: bool
) -> tuple[np.ndarray, SelectionSummary]:
    """Kept positions (ascending) and the summary; scores are already checked."""
    n = scores.size
    if method == "threshold":
        mask = scores > threshold if higher_is_better else scores < threshold
        kept = np.flatnonzero(mask)
        tied = int(np.count_nonzero(scores == threshold))
        cutoff = float(threshold)
    else:
        # "best" = largest key; negating lower-is-better scores keeps one code path.
        key = scores if higher_is_better else -scores
        kept, cutoff_key, tied = _top_positions(key, top_count(n, method, k, ratio))
        cutoff = float(cutoff_key if higher_is_better else -cutoff_key)
    summary = SelectionSummary(method, n, int(kept.size), cutoff, bool(higher_is_better), tied)
    return kept, summary


def _top_positions(key: np.ndarray, count: int) -> tuple[np.ndarray, float, int]:
    """Positions of the ``count`` largest keys, ties at the cutoff going to earlier positions.

    O(N): ``np.partition`` finds the cutoff value; everything strictly above it is kept, and the
    remaining places go to the first positions holding exactly the cutoff value.
    """
    n = key.size
    cutoff = np.partition(key, n - count)[n - count]
    mask = key > cutoff
    at_cutoff = np.flatnonzero(key == cutoff)
    places = count - int(np.count_nonzero(mask))
    mask[at_cutoff[:places]] = True
    return np.flatnonzero(mask), float(cutoff), int(at_cutoff.size - places)


def _require_kept(kept: np.ndarray, method: str, threshold, n_total: int) -> None:
    # Only a threshold can keep nothing (counts are >= 1); an empty selection would break training.
    if kept.size == 0:
        raise DataError(
            f"threshold {threshold} keeps none of the {n_total} samples; move the threshold "
            f"(or flip the score direction)"
        )


__all__ = [
    "DIRECTIONS",
    "SELECTIONS",
    "SelectionSummary",
    "check_select_config",
    "check_scores",
    "resolve_higher_is_better",
    "score_array",
    "select",
    "select_indices",
    "summarize_selection",
]
