"""Figure builders: traces, downsampling, cutoff lines, bands (no browser, no Streamlit)."""

import numpy as np
import pytest

from ui import figures


def test_downsample_caps_points_and_keeps_ends():
    x = np.arange(10_000)
    xs, ys = figures.downsample(x, x * 2.0)
    assert len(xs) <= figures.MAX_POINTS
    assert xs[0] == 0 and xs[-1] == 9_999
    assert np.all(ys == xs * 2)
    assert np.all(np.diff(xs) > 0)


def test_downsample_short_series_untouched():
    xs, ys = figures.downsample([1, 2, 3], [4, 5, 6])
    assert xs.tolist() == [1, 2, 3] and ys.tolist() == [4, 5, 6]


def test_downsample_length_mismatch():
    with pytest.raises(ValueError):
        figures.downsample([1, 2], [1])


def test_batch_means_matches_brute_force():
    scores = np.random.default_rng(0).normal(size=37)
    starts, means = figures.batch_means(scores, 8)
    assert starts.tolist() == [0, 8, 16, 24, 32]
    for s, m in zip(starts, means):
        assert m == pytest.approx(float(np.mean(scores[s:s + 8])))


def test_histogram_groups_and_cutoff():
    vals = list(range(100))
    groups = ["noise" if v % 5 == 0 else "clean" for v in vals]
    fig = figures.histogram(vals, groups, cutoff=42.0)
    names = sorted(t.name for t in fig.data)
    assert names == ["clean", "noise"]
    assert sum(len(t.x) for t in fig.data) == 100
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].x0 == 42.0


def test_histogram_without_groups_skips_nan():
    fig = figures.histogram([1.0, float("nan"), 3.0])
    assert len(fig.data) == 1 and len(fig.data[0].x) == 2
    assert not fig.layout.shapes


def test_data_map_hover_has_text_and_ids():
    fig = figures.data_map([0.1, 0.2, 0.3], [1, 2, 3], ["a" * 300, "short", "mid"], groups=[True, False, False],
                         ids=["x1", "x2", "x3"])
    assert {t.name for t in fig.data} == {"True", "False"}
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["True"].customdata) == ["x1"]
    assert by_name["True"].text[0].endswith("…") and len(by_name["True"].text[0]) == 201


def test_heatmap_shape_checked_and_annotated():
    fig = figures.heatmap([[1.0, 0.5], [0.5, 1.0]], ["lqs", "length"])
    assert fig.data[0].text[0][1] == "0.50"
    with pytest.raises(ValueError):
        figures.heatmap([[1.0]], ["a", "b"])


def test_ordering_layout_has_scores_batch_line_and_layers():
    scores = np.tile(np.linspace(0, 1, 10), 3)  # a folding saw-tooth with 3 layers
    fig = figures.ordering_layout(scores, layer_starts=[10, 20], batch_size=5, name="folding")
    assert [t.name for t in fig.data] == ["sample score", "batch mean"]
    assert len(fig.data[0].y) == 30
    assert len(fig.data[1].y) == 6
    assert len([s for s in fig.layout.shapes if s.type == "line"]) == 2


def test_ordering_grid_one_panel_per_ordering_downsampled():
    long = np.random.default_rng(1).random(5000)
    fig = figures.ordering_grid({"shuffle": (long, []), "sorting": (np.sort(long), [])}, batch_size=50)
    assert len(fig.data) == 4
    assert all(len(t.x) <= figures.MAX_POINTS for t in fig.data)
    assert fig.layout.annotations[0].text == "shuffle"


def test_curves_smoothing_draws_raw_faint_behind():
    s = figures.Series("folding s0", list(range(100)), list(np.random.default_rng(2).random(100)), group="folding")
    fig = figures.curves([s], smoothing=0.8)
    assert len(fig.data) == 2
    raw, smooth = fig.data
    assert raw.showlegend is False and "0.25" in raw.line.color
    assert np.std(np.diff(smooth.y)) < np.std(np.diff(raw.y))
    assert smooth.line.color == figures.color_for("folding")


def test_curves_downsample_long_runs():
    n = 20_000
    fig = figures.curves([figures.Series("a", list(range(n)), list(range(n)))])
    assert len(fig.data[0].x) <= figures.MAX_POINTS


def test_bands_fill_only_with_several_seeds():
    b2 = figures.Band("folding", [0, 1, 2], [3, 2, 1], [2.5, 1.5, 0.5], [3.5, 2.5, 1.5], n=3)
    b1 = figures.Band("shuffle", [0, 1, 2], [3, 2.5, 2], [3, 2.5, 2], [3, 2.5, 2], n=1)
    fig = figures.bands([b2, b1])
    fills = [t for t in fig.data if t.fill == "toself"]
    assert len(fills) == 1 and len(fills[0].x) == 6
    assert [t.name for t in fig.data if t.fill != "toself"] == ["folding (n=3)", "shuffle"]


def test_curves_with_trace_two_rows():
    top = [figures.Series("shuffle", [0, 1, 2], [3, 2, 1], group="shuffle")]
    bottom = [figures.Series("shuffle", [0, 1, 2], [0.1, 0.5, 0.2], group="shuffle")]
    fig = figures.curves_with_trace(top, bottom)
    assert fig.data[0].yaxis == "y" and fig.data[1].yaxis == "y2"


def test_step_components_one_panel_each():
    fig = figures.step_components([0, 5, 10], {"cos": [0.1, 0.2, 0.3], "ratio": [1.0, 1.1, 0.9]})
    assert len(fig.data) == 2 and fig.data[1].yaxis == "y2"
    with pytest.raises(ValueError):
        figures.step_components([0], {})


def test_colors_stable_and_distinct():
    assert figures.color_for("folding L=3") == figures.color_for("folding")
    assert figures.color_for("sorting-desc") != figures.color_for("sorting")
    assert figures.color_for("shuffle") != figures.color_for("folding")


def test_smooth_ema_zero_weight_is_identity():
    y = [1.0, 5.0, 2.0]
    assert figures.smooth_ema(y, 0.0).tolist() == y


def test_histogram_piles_heavy_tails_into_edge_bins():
    vals = list(np.random.default_rng(4).normal(0, 1, 1000)) + [1e6, -1e6]
    fig = figures.histogram(vals)
    xs = np.asarray(fig.data[0].x)
    assert len(xs) == 1002 and xs.max() < 10 and xs.min() > -10  # the two outliers sit in the edge bins
    assert "percentile" in fig.layout.xaxis.title.text
    plain = figures.histogram(list(range(100)), x_title="score")
    assert plain.layout.xaxis.title.text == "score"
