"""Ordering (delt-method.md section 4): shuffle, sorting, folding, zigzag, window shuffle, layout."""

import numpy as np
import polars as pl
import pytest

from delt_engine.errors import ConfigError, DataError
from delt_engine.organize.ordering import (
    ORDERINGS,
    PACKED_SORT_MIN,
    WINDOW_SHUFFLE,
    layer_sizes,
    layout,
    order,
    order_indices,
    stable_argsort,
)


def brute_force(scores, method, layers=3, descending=False):
    """Reference in plain Python: stable sort, then layer l = sorted positions l, l+L, l+2L, ..."""
    ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=descending)  # stable both ways
    if method == "sorting":
        return ranked
    out = []
    for layer in range(layers):
        part = ranked[layer::layers]
        out += part[::-1] if method == "zigzag" and layer % 2 == 1 else part
    return out


def is_permutation(perm, n):
    return sorted(perm.tolist()) == list(range(n))


def test_folding_worked_example():
    assert order_indices(np.arange(10.0), "folding", layers=3).tolist() == [0, 3, 6, 9, 1, 4, 7, 2, 5, 8]


def test_zigzag_worked_example():
    assert order_indices(np.arange(10.0), "zigzag", layers=3).tolist() == [0, 3, 6, 9, 7, 4, 1, 2, 5, 8]


def test_folding_of_unsorted_scores_uses_sample_positions():
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])  # ascending ids: 1, 5, 3, 2, 4, 0
    assert order_indices(scores, "folding", layers=2).tolist() == [1, 3, 4, 5, 2, 0]


@pytest.mark.parametrize("method", ["sorting", "folding", "zigzag"])
@pytest.mark.parametrize("descending", [False, True])
def test_matches_brute_force_with_ties(method, descending):
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(1, 50))
        scores = rng.integers(0, 6, size=n).astype(float)  # many ties
        layers = int(rng.integers(1, 8))
        perm = order_indices(scores, method, layers=layers, descending=descending)
        assert perm.tolist() == brute_force(scores.tolist(), method, layers, descending)
        assert is_permutation(perm, n)


@pytest.mark.parametrize("kind", ["uniform", "signed", "few values", "near ties", "signed zeros", "wide", "equal"])
def test_fast_stable_argsort_equals_numpy_stable(kind):
    rng = np.random.default_rng(11)
    n = 3 * PACKED_SORT_MIN + 17  # large enough for the packed-key path
    values = {
        "uniform": rng.random(n),
        "signed": rng.normal(size=n),
        "few values": rng.integers(-5, 5, size=n).astype(float),
        "near ties": 1.0 + rng.integers(0, 64, size=n) * 2.0**-52,  # differ only in the lowest bits
        "signed zeros": np.where(rng.random(n) < 0.5, -0.0, 0.0) + rng.integers(0, 2, size=n),
        "wide": rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, size=n),
        "equal": np.full(n, 2.5),
    }[kind]
    assert stable_argsort(values).tolist() == np.argsort(values, kind="stable").tolist()


@pytest.mark.parametrize("method", ["sorting", "folding", "zigzag"])
def test_large_input_matches_brute_force(method):
    scores = np.round(np.random.default_rng(2).normal(size=2 * PACKED_SORT_MIN + 5), 2)  # ties
    for descending in (False, True):
        expected = brute_force(scores.tolist(), method, 4, descending)
        assert order_indices(scores, method, layers=4, descending=descending).tolist() == expected


def test_layers_one_is_ascending_sort_and_layers_above_n_too():
    scores = np.array([3.0, 1.0, 2.0, 1.0])
    ascending = [1, 3, 2, 0]
    assert order_indices(scores, "folding", layers=1).tolist() == ascending
    assert order_indices(scores, "folding", layers=9).tolist() == ascending
    assert order_indices(scores, "zigzag", layers=9).tolist() == ascending
    out = layout(scores, "folding", layers=9)
    assert out.layers.tolist() == [0, 1, 2, 3] and out.layer_starts.tolist() == [0, 1, 2, 3]
    assert layer_sizes(4, "folding", 9).tolist() == [1, 1, 1, 1]


def test_single_sample_and_empty_input():
    for method in ORDERINGS:
        assert order_indices([5.0], method, layers=3).tolist() == [0]
    with pytest.raises(DataError, match="no samples"):
        order_indices(np.array([]), "folding")
    with pytest.raises(DataError, match="no samples"):
        order(pl.DataFrame({"id": [], "score": []}), "shuffle")


def test_bad_configuration():
    with pytest.raises(ConfigError, match="layers=0"):
        order_indices([1.0, 2.0], "folding", layers=0)
    with pytest.raises(ConfigError, match="window=0"):
        order_indices([1.0, 2.0], "sorting", window=0)
    with pytest.raises(ConfigError, match="seed=-1"):
        order_indices([1.0, 2.0], "shuffle", seed=-1)
    with pytest.raises(ConfigError, match="not known"):
        order_indices([1.0, 2.0], "random")


def test_non_finite_scores_rejected():
    with pytest.raises(DataError, match=r"1 NaN.*id b"):
        order(pl.DataFrame({"id": ["a", "b"], "score": [1.0, float("nan")]}), "folding")
    with pytest.raises(DataError, match="inf"):
        order_indices([1.0, float("inf")], "sorting")


def test_descending_sort_is_stable():
    scores = np.array([2.0, 5.0, 2.0, 5.0, 1.0])
    assert order_indices(scores, "sorting").tolist() == [4, 0, 2, 1, 3]
    assert order_indices(scores, "sorting", descending=True).tolist() == [1, 3, 0, 2, 4]


def test_shuffle_is_seeded_and_a_permutation():
    scores = np.zeros(200)
    a, b = order_indices(scores, "shuffle", seed=1), order_indices(scores, "shuffle", seed=1)
    c = order_indices(scores, "shuffle", seed=2)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert is_permutation(a, 200) and a.tolist() != list(range(200))
    expected = np.random.Generator(np.random.PCG64(1)).permutation(200)
    assert a.tolist() == expected.tolist()


def test_shuffle_needs_no_scores():
    frame = pl.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"]})
    out = order(frame, "shuffle", seed=3)
    assert sorted(out["id"].to_list()) == ["a", "b", "c"] and out["layer"].to_list() == [0, 0, 0]


@pytest.mark.parametrize("method", list(ORDERINGS))
def test_window_shuffle_keeps_blocks(method):
    n, w = 23, 5
    scores = np.random.default_rng(0).random(n)
    base = order_indices(scores, method, seed=4)
    windowed = order_indices(scores, method, window=w, seed=4)
    assert is_permutation(windowed, n) and windowed.tolist() != base.tolist()
    for start in range(0, n, w):  # last block (20..22) is shorter
        assert sorted(windowed[start : start + w].tolist()) == sorted(base[start : start + w].tolist())
    assert order_indices(scores, method, window=w, seed=4).tolist() == windowed.tolist()
    assert order_indices(scores, method, window=1, seed=4).tolist() == base.tolist()


def test_window_larger_than_n_shuffles_everything():
    perm = order_indices(np.arange(30.0), "sorting", window=100, seed=0)
    assert is_permutation(perm, 30) and perm.tolist() != list(range(30))


def test_order_frame_adds_position_and_layer():
    frame = pl.DataFrame(
        {"id": [f"d{i}" for i in range(7)], "score": [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0], "layer": ["old"] * 7}
    )
    out = order(frame, "folding", layers=3)
    assert out["id"].to_list() == ["d6", "d3", "d0", "d5", "d2", "d4", "d1"]
    assert out["position"].to_list() == list(range(7))
    assert out["layer"].to_list() == [0, 0, 0, 1, 1, 2, 2]
    assert out.columns == ["id", "score", "layer", "position"]
    assert order(frame, "sorting")["layer"].to_list() == [0] * 7


def test_window_layer_labels_move_with_samples():
    frame = pl.DataFrame({"id": [str(i) for i in range(12)], "score": np.arange(12.0)})
    out = order(frame, "folding", layers=3, window=4, seed=1)
    assert all(int(i) % 3 == layer for i, layer in zip(out["id"], out["layer"]))


def test_layout_describes_the_order():
    scores = np.array([0.5, 0.1, 0.9, 0.3, 0.7])
    out = layout(pl.DataFrame({"score": scores}), "folding", layers=2)
    assert out.order.tolist() == [1, 0, 2, 3, 4]  # sorted 1,3,0,4,2 -> [1,0,2] + [3,4]
    assert out.scores.tolist() == [0.1, 0.5, 0.9, 0.3, 0.7]
    assert out.layers.tolist() == [0, 0, 0, 1, 1]
    assert out.layer_starts.tolist() == [0, 3] and out.n_layers == 2
    assert layout(scores, "shuffle").layer_starts.tolist() == [0]


def test_batch_means_match_brute_force():
    scores = np.random.default_rng(5).random(23)
    out = layout(scores, "zigzag", layers=3)
    for size in (1, 4, 23, 50):
        expected = [float(np.mean(out.scores[i : i + size])) for i in range(0, 23, size)]
        assert np.allclose(out.batch_means(size), expected)
    with pytest.raises(ConfigError):
        out.batch_means(0)


def test_registries_label_the_source():
    assert [name for name, info in ORDERINGS.items() if info.source == "paper"] == ["shuffle", "sorting", "folding"]
    assert ORDERINGS["zigzag"].source == "beyond the paper" and WINDOW_SHUFFLE.source == "beyond the paper"
