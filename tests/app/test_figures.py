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
        assert m == pytest.approx(float(np.mean(scores[s : s + 8])))


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
    fig = figures.data_map(
        [0.1, 0.2, 0.3], [1, 2, 3], ["a" * 300, "short", "mid"], groups=[True, False, False], ids=["x1", "x2", "x3"]
    )
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


def _toy_makeup():
    import polars as pl

    from delt_engine.organize.makeup import stream_makeup
    from delt_engine.organize.ordering import order

    toy = pl.DataFrame(
        {"id": [f"d{i}" for i in range(9)], "score": [float(i) for i in range(9)], "kind": ["a"] * 6 + ["b"] * 3}
    )
    return stream_makeup(order(toy, "folding", layers=3), "kind", batch_size=2, window_steps=2)


def test_makeup_from_frame_maps_windows_onto_the_x_axis():
    m = figures.makeup_from_frame(_toy_makeup(), "folding L=3")
    assert (m.start, m.end) == ([0.0, 2.0, 4.0], [2.0, 4.0, 5.0])  # steps 1-2, 3-4, 5
    assert m.shares == {"a": [0.75, 0.75, 0.0], "b": [0.25, 0.25, 1.0]} and m.mean_score == [2.5, 4.5, 8.0]
    positions = figures.makeup_from_frame(_toy_makeup(), "f", x_of_step=lambda s: min(2 * s, 9))
    assert (positions.start, positions.end) == ([0.0, 4.0, 8.0], [4.0, 8.0, 9.0])


def test_ordering_grid_with_makeup_adds_a_stacked_row_per_ordering():
    m = figures.makeup_from_frame(_toy_makeup(), "folding", x_of_step=lambda s: min(2 * s, 9))
    fig = figures.ordering_grid(
        {"folding": (np.arange(9.0), [0, 3, 6]), "sorting": (np.arange(9.0), [])},
        batch_size=2,
        makeups={"folding": m, "sorting": m},
    )
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["a", "b", "a", "b"] and [t.showlegend for t in bars] == [True, True, False, False]
    assert bars[0].xaxis == "x3" and bars[2].xaxis == "x4"  # second row, under each ordering
    assert list(bars[0].width) == [4.0, 4.0, 1.0] and list(bars[1].y) == [0.25, 0.25, 1.0]
    assert fig.layout.barmode == "stack" and bars[0].marker.color == figures.group_colors(["a", "b"])["a"]
    assert fig.layout.xaxis.matches == "x3" and fig.layout.xaxis2.matches == "x4"  # one x axis per ordering


def test_curves_with_trace_adds_makeup_rows_with_mean_score():
    m = figures.makeup_from_frame(_toy_makeup(), "folding")
    top = [figures.Series("folding s0", [1, 2, 3, 4, 5], [5, 4, 3, 3.5, 3.2], group="folding")]
    fig = figures.curves_with_trace(top, top, makeups={"folding": m, "shuffle": m})
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 4 and {t.xaxis for t in bars} == {"x3", "x4"}
    scores = [t for t in fig.data if t.name == "mean score per window"]
    assert len(scores) == 2 and list(scores[0].y) == [2.5, 4.5, 8.0] and scores[0].showlegend
    assert not scores[1].showlegend
    assert fig.layout.xaxis.matches == fig.layout.xaxis2.matches == fig.layout.xaxis3.matches == "x4"  # one x axis
    assert [a.text for a in fig.layout.annotations] == ["stream make-up: folding", "stream make-up: shuffle"]


def test_group_panels_one_panel_per_group_arms_coloured_alike():
    band = lambda arm, n: figures.Band(arm, [0, 10, 20], [6, 4, 4.5], [5.5, 3.5, 4], [6.5, 4.5, 5], n=n)  # noqa
    fig = figures.group_panels(
        {
            "story": [band("shuffle", 2), band("folding L=3", 2)],
            "arithmetic": [band("shuffle", 2), band("folding L=3", 1)],
        },
        cols=2,
    )
    assert [a.text for a in fig.layout.annotations] == ["story", "arithmetic"]
    lines = [t for t in fig.data if t.fill != "toself"]
    assert [(t.name, t.showlegend, t.xaxis) for t in lines] == [
        ("shuffle (n=2)", True, "x"),
        ("folding L=3 (n=2)", True, "x"),
        ("shuffle (n=2)", False, "x2"),
        ("folding L=3", False, "x2"),
    ]
    assert len([t for t in fig.data if t.fill == "toself"]) == 3  # no band for the single seed
    assert lines[1].line.color == lines[3].line.color == figures.color_for("folding")
    with pytest.raises(ValueError):
        figures.group_panels({})


def test_group_colors_are_stable_and_pool_grey():
    a = figures.group_colors(["story", "arithmetic", "other"])
    b = figures.group_colors(["arithmetic", "story"])
    assert a["story"] == b["story"] and a["other"] == "#b0b0b0" and a["story"] != a["arithmetic"]


def test_arm_colours_are_distinct_within_a_figure():
    names = ["shuffle", "folding L=1", "folding L=2", "folding L=3", "folding L=4", "folding L=5", "DELT", "x"]
    colors = figures.arm_colors(names)
    assert len(set(colors.values())) == len(names)  # the folding sweep no longer draws five identical oranges
    assert colors["shuffle"] == figures.NAMED_COLORS["shuffle"]  # the only shuffle arm keeps shuffle's colour
    assert figures.arm_colors(["shuffle", "folding L=3"])["folding L=3"] == figures.NAMED_COLORS["folding"]
    assert {colors["DELT"], colors["x"]}.isdisjoint(figures._ORDERING_COLORS)  # never an ordering's own colour


def test_arms_of_one_unnamed_ordering_get_shades_of_one_colour():
    colors = figures.arm_colors(["shuffle", "reverse-folding L=2", "reverse-folding L=3", "other"])
    assert len(set(colors.values())) == 4
    first, second = colors["reverse-folding L=2"], colors["reverse-folding L=3"]
    lum = [sum(int(c.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)) for c in (first, second)]
    assert lum[0] > lum[1]  # light to dark, one family
