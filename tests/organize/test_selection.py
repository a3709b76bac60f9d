"""Selection (delt-method.md section 3): top-k, top-r, threshold; original order; edge cases."""

import math

import numpy as np
import polars as pl
import pytest

from delt_engine.errors import ConfigError, DataError
from delt_engine.organize.selection import SELECTIONS, select, select_indices, summarize_selection


def frame_of(scores, **extra):
    return pl.DataFrame({"id": [f"d{i}" for i in range(len(scores))], "score": scores, **extra})


def brute_force(scores, method, k=None, ratio=None, threshold=None, higher_is_better=True):
    """Reference: sort (score, position) pairs in plain Python, earlier position wins ties."""
    n = len(scores)
    sign = 1 if higher_is_better else -1
    if method == "threshold":
        return [i for i, s in enumerate(scores) if sign * s > sign * threshold]
    count = min(k, n) if method == "top-k" else int(ratio * n + 1e-9)
    ranked = sorted(range(n), key=lambda i: (-sign * scores[i], i))
    return sorted(ranked[:count])


def test_top_k_worked_example_keeps_original_order():
    frame = frame_of([0.3, 0.9, 0.1, 0.7, 0.5], text=list("abcde"))
    kept = select(frame, "top-k", k=3)
    assert kept["id"].to_list() == ["d1", "d3", "d4"]  # 0.9, 0.7, 0.5 in corpus order, not score order
    assert kept.columns == ["id", "score", "text"]
    assert kept["text"].to_list() == ["b", "d", "e"]


def test_lower_is_better_keeps_the_low_scores():
    frame = frame_of([30.0, 5.0, 12.0, 80.0, 7.0])  # e.g. perplexity: low = easy/clean
    assert select(frame, "top-k", k=2, higher_is_better=False)["id"].to_list() == ["d1", "d4"]
    assert select(frame, "threshold", threshold=12.0, higher_is_better=False)["id"].to_list() == ["d1", "d4"]
    assert select(frame, "threshold", threshold=12.0)["id"].to_list() == ["d0", "d3"]  # strict: 12 not kept


def test_ties_go_to_the_earlier_sample():
    scores = [1.0, 2.0, 2.0, 2.0, 0.5, 2.0]
    assert select_indices(scores, "top-k", k=3).tolist() == [1, 2, 3]
    assert select_indices(scores, "top-k", k=2, higher_is_better=False).tolist() == [0, 4]
    summary = summarize_selection(scores, "top-k", k=3)
    assert summary.cutoff == 2.0 and summary.n_tied_dropped == 1 and summary.n_kept == 3


def test_all_equal_scores_keep_the_first_rows():
    assert select(frame_of([4.0] * 8), "top-k", k=3)["id"].to_list() == ["d0", "d1", "d2"]
    assert select_indices([4.0] * 8, "top-r", ratio=0.5, higher_is_better=False).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("higher", [True, False])
def test_matches_brute_force_on_random_scores_with_ties(higher):
    rng = np.random.default_rng(3)
    for _trial in range(40):
        n = int(rng.integers(1, 60))
        scores = rng.integers(-4, 5, size=n).astype(float).tolist()  # few values: many ties
        k = int(rng.integers(1, n + 3))
        ratio = float(rng.integers(1, 11)) / 10
        t = float(rng.integers(-4, 5)) + 0.5 * float(rng.integers(0, 2))
        assert select_indices(scores, "top-k", k=k, higher_is_better=higher).tolist() == brute_force(
            scores, "top-k", k=k, higher_is_better=higher
        )
        if math.floor(ratio * n + 1e-9) > 0:
            assert select_indices(scores, "top-r", ratio=ratio, higher_is_better=higher).tolist() == brute_force(
                scores, "top-r", ratio=ratio, higher_is_better=higher
            )
        expected = brute_force(scores, "threshold", threshold=t, higher_is_better=higher)
        if expected:
            assert select_indices(scores, "threshold", threshold=t, higher_is_better=higher).tolist() == expected


def test_k_zero_and_bad_k_are_errors_not_everything():
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ConfigError, match="k="):
            select(frame_of([1.0, 2.0]), "top-k", k=bad)


def test_k_larger_than_n_keeps_all():
    assert select(frame_of([2.0, 1.0, 3.0]), "top-k", k=10)["id"].to_list() == ["d0", "d1", "d2"]
    assert summarize_selection([2.0, 1.0, 3.0], "top-k", k=10).n_kept == 3


def test_ratio_one_keeps_all_and_floor_is_applied():
    scores = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert select_indices(scores, "top-r", ratio=1).tolist() == [0, 1, 2, 3, 4]
    assert select_indices(scores, "top-r", ratio=0.5).tolist() == [0, 2]  # floor(2.5) = 2
    assert select_indices(scores, "top-r", ratio=0.39).tolist() == [0]  # floor(1.95) = 1


def test_ratio_reads_the_decimal_typed():
    # 0.29 * 100 is 28.999999999999996 in floating point; the user asked for 29.
    assert select_indices(np.arange(100.0), "top-r", ratio=0.29).size == 29
    assert select_indices(np.arange(100.0), "top-r", ratio=np.float64(0.57)).size == 57


def test_ratio_rounding_to_zero_is_an_error():
    with pytest.raises(ConfigError, match="keeps floor.*= 0.*at least 0.25"):
        select(frame_of([1.0, 2.0, 3.0, 4.0]), "top-r", ratio=0.2)
    with pytest.raises(ConfigError, match="at least 0.333334"):
        select_indices([1.0, 2.0, 3.0], "top-r", ratio=0.3)
    assert select_indices([1.0, 2.0, 3.0], "top-r", ratio=0.333334).tolist() == [2]  # the suggestion works


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan"), float("inf"), True])
def test_ratio_outside_unit_interval_is_an_error(ratio):
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        select_indices([1.0, 2.0], "top-r", ratio=ratio)


def test_threshold_keeping_nothing_is_an_error_but_summary_reports_zero():
    with pytest.raises(DataError, match="keeps none of the 3 samples"):
        select(frame_of([1.0, 2.0, 3.0]), "threshold", threshold=3.0)
    summary = summarize_selection(frame_of([1.0, 2.0, 3.0]), "threshold", threshold=3.0)
    assert (summary.n_kept, summary.share, summary.cutoff, summary.n_tied_dropped) == (0, 0.0, 3.0, 1)
    with pytest.raises(ConfigError, match="finite"):
        select_indices([1.0], "threshold", threshold=float("nan"))


def test_summary_for_live_cutoff_line():
    scores = np.arange(10.0)
    top = summarize_selection(scores, "top-r", ratio=0.3)
    assert (top.n_total, top.n_kept, top.share, top.cutoff) == (10, 3, 0.3, 7.0)
    low = summarize_selection(scores, "top-k", k=4, higher_is_better=False)
    assert low.cutoff == 3.0 and not low.higher_is_better
    assert low.describe() == "kept 4 of 10 samples (40.0%) by top-k; cutoff score 3 (lower is better)"


def test_nan_and_inf_name_count_and_ids():
    frame = frame_of([1.0, float("nan"), 2.0, float("inf"), float("-inf")])
    with pytest.raises(DataError, match=r"3 score\(s\) are not finite \(1 NaN, 2 inf\), e.g. id d1, id d3, id d4"):
        select(frame, "top-k", k=1)
    with pytest.raises(DataError, match="row 1"):
        select_indices([1.0, float("nan")], "top-k", k=1)


def test_null_scores_are_an_error():
    frame = frame_of([1.0, None, 3.0])
    with pytest.raises(DataError, match=r"1 sample\(s\) have no 'score' \(null\), e.g. id d1"):
        select(frame, "top-k", k=1)


def test_missing_and_non_numeric_score_field():
    frame = frame_of([1.0, 2.0], text=["a", "b"])
    with pytest.raises(DataError, match="'lqs' not found; columns are id, score, text"):
        select(frame, "top-k", k=1, score_field="lqs")
    with pytest.raises(DataError, match="'text' holds String"):
        select(frame, "top-k", k=1, score_field="text")


def test_integer_scores_and_custom_field():
    frame = pl.DataFrame({"id": ["a", "b", "c"], "length": [10, 30, 20]})
    assert select(frame, "top-k", k=2, score_field="length")["id"].to_list() == ["b", "c"]


def test_empty_input_is_an_error():
    with pytest.raises(DataError, match="no samples"):
        select(frame_of([]).cast({"score": pl.Float64}), "top-k", k=1)
    with pytest.raises(DataError, match="no samples"):
        select_indices(np.array([]), "top-k", k=1)


def test_config_mistakes():
    with pytest.raises(ConfigError, match="not known"):
        select_indices([1.0], "bottom-k", k=1)
    with pytest.raises(ConfigError, match="top-k needs k"):
        select_indices([1.0], "top-k")
    with pytest.raises(ConfigError, match="takes only k; unset ratio"):
        select_indices([1.0], "top-k", k=1, ratio=0.5)


def test_registry_labels():
    assert set(SELECTIONS) == {"top-k", "top-r", "threshold"}
    assert all(info.source == "paper" and info.description for info in SELECTIONS.values())
