"""The stream's make-up (group shares and mean score per window of training steps) against tables
worked out by hand."""

import polars as pl
import pytest

from delt_engine.data.corpus import group_label
from delt_engine.errors import ConfigError, DataError
from delt_engine.organize.makeup import default_window, makeup_table, stream_makeup
from delt_engine.organize.ordering import order

# Nine documents scored 0..8; the six easiest are "a", the three hardest "b" (as noise or hard kinds
# often sit at one end of a score).
TOY = pl.DataFrame(
    {"id": [f"d{i}" for i in range(9)], "score": [float(i) for i in range(9)], "kind": ["a"] * 6 + ["b"] * 3}
)


def _rows(makeup):
    return [
        (r["start_step"], r["end_step"], r["group"], r["n_docs"], r["share"], r["mean_score"])
        for r in makeup.iter_rows(named=True)
    ]


def test_folding_l3_makeup_matches_the_hand_table():
    folded = order(TOY.sample(fraction=1.0, shuffle=True, seed=5), "folding", layers=3)
    # folding L=3 of scores 0..8: layers [0,3,6] [1,4,7] [2,5,8] -> kinds a a b | a a b | a a b
    assert folded["score"].to_list() == [0, 3, 6, 1, 4, 7, 2, 5, 8]
    # batch size 2 -> 5 steps (the last holds one document); windows of 2 steps = 4 documents
    got = stream_makeup(folded, "kind", batch_size=2, window_steps=2)
    assert _rows(got) == [
        (1, 2, "a", 3, 0.75, 2.5),
        (1, 2, "b", 1, 0.25, 2.5),  # 0 3 6 1
        (3, 4, "a", 3, 0.75, 4.5),
        (3, 4, "b", 1, 0.25, 4.5),  # 4 7 2 5
        (5, 5, "a", 0, 0.0, 8.0),
        (5, 5, "b", 1, 1.0, 8.0),  # 8
    ]
    assert got["window"].to_list() == [0, 0, 1, 1, 2, 2]


def test_sorting_puts_group_b_at_the_end_and_shuffle_spreads_it():
    sorted_ = stream_makeup(order(TOY, "sorting"), "kind", batch_size=3, window_steps=1)
    assert [r[4] for r in _rows(sorted_) if r[2] == "b"] == [0.0, 0.0, 1.0]  # all of b in the last step
    assert sorted_.filter(pl.col("group") == "a")["mean_score"].to_list() == [1.0, 4.0, 7.0]
    one = stream_makeup(order(TOY, "shuffle", seed=3), "kind", batch_size=3, window_steps=3)
    assert _rows(one) == [(1, 3, "a", 6, 6 / 9, 4.0), (1, 3, "b", 3, 3 / 9, 4.0)]  # one window: the corpus


def test_more_steps_than_one_pass_replay_the_order_and_table_pivots():
    folded = order(TOY, "folding", layers=3)
    got = stream_makeup(folded, "kind", batch_size=4, window_steps=2, total_steps=5)
    # 3 batches per pass: [0 3 6 1] [4 7 2 5] [8], one "b" each; steps 1..5 read batches 0 1 2 0 1
    # (later epochs replay the same order), so the windows hold batches (0 1), (2 0), (1)
    assert got.filter(pl.col("group") == "b")["n_docs"].to_list() == [2, 2, 1]
    assert got.filter(pl.col("group") == "b")["share"].to_list() == pytest.approx([2 / 8, 2 / 5, 1 / 4])
    table = makeup_table(got)
    assert table.columns == ["start_step", "end_step", "mean_score", "a", "b"]
    assert table["start_step"].to_list() == [1, 3, 5] and table["end_step"].to_list() == [2, 4, 5]
    assert table["a"].to_list() == pytest.approx([0.75, 0.6, 0.75])
    assert table["mean_score"].to_list() == pytest.approx([28 / 8, (8 + 10) / 5, 18 / 4])


def test_missing_values_no_scores_and_bad_input():
    frame = pl.DataFrame({"id": ["1", "2", "3"], "flag": [True, None, False]})
    got = stream_makeup(frame, "flag", batch_size=1, window_steps=3, score_field="score")
    assert got["group"].to_list() == ["(missing)", "false", "true"] and got["mean_score"].is_null().all()
    assert group_label(None) == "(missing)" and group_label(3) == "3" and group_label(True) == "true"
    with pytest.raises(DataError, match="no column 'topic'"):
        stream_makeup(frame, "topic", 1, 1)
    with pytest.raises(ConfigError, match="window_steps=0"):
        stream_makeup(frame, "flag", 1, 0)
    with pytest.raises(DataError, match="no rows"):
        stream_makeup(frame.head(0), "flag", 1, 1)
    assert default_window(120) == 5 and default_window(3) == 1


def test_describe_makeup_names_the_most_uneven_window():
    from delt_engine.organize.makeup import describe_makeup

    sorted_ = stream_makeup(order(TOY, "sorting"), "kind", batch_size=3, window_steps=1)
    # b is 3 of 9 documents overall (33%) but 100% of step 3; a is 100% of steps 1-2 (67% overall): the
    # largest gap (67 points) is b in step 3 and a's gap in steps 1-2 is 33 points
    assert describe_makeup(sorted_, "sorting") == "In sorting, step 3 is 100% b (33% of the whole stream)."
    even = stream_makeup(pl.DataFrame({"id": list("abcdef"), "kind": ["x", "y"] * 3}), "kind", 2, 1)
    assert describe_makeup(even, "shuffle") == (
        "In shuffle, no window's mix strays from the whole stream's by more "
        "than chance would (largest: step 1, 50% x against 50%)."
    )
    # 4 documents per window: even 3 of 4 "x" (75% against 50%) is within twice the binomial spread (50 points)
    lumpy = stream_makeup(pl.DataFrame({"id": list("abcdefgh"), "kind": list("xxxyxyyy")}), "kind", 4, 1)
    assert "by more than chance would (largest: step 1, 75% x against 50%)" in describe_makeup(lumpy, "shuffle")
