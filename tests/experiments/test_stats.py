"""Comparison statistics on synthetic curves with answers worked out by hand."""

import json
import math

import numpy as np
import polars as pl
import pytest

from delt_engine.experiments import stats
from delt_engine.errors import ConfigError, DataError

# Two-sided 95% / 99% Student t critical values from printed tables.
T_TABLE_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 30: 2.042, 120: 1.980}
T_TABLE_99 = {1: 63.657, 2: 9.925, 5: 4.032, 30: 2.750}


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_95.items()))
def test_t_quantile_matches_table_95(df, expected):
    assert stats.t_quantile(0.95, df) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_99.items()))
def test_t_quantile_matches_table_99(df, expected):
    assert stats.t_quantile(0.99, df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_approaches_normal_and_rejects_bad_input():
    assert stats.t_quantile(0.95, 5000) == pytest.approx(1.95996, abs=1e-3)
    with pytest.raises(ConfigError):
        stats.t_quantile(0.95, 0)
    with pytest.raises(ConfigError):
        stats.t_quantile(1.5, 3)


def test_mean_ci_by_hand():
    # values 1, 2, 4: mean 7/3, sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3
    mean, half, n = stats.mean_ci([1.0, 2.0, 4.0])
    assert n == 3 and mean == pytest.approx(7 / 3)
    assert half == pytest.approx(4.302653 * math.sqrt(7 / 3) / math.sqrt(3), rel=1e-5)
    # two values a, b: sd = |a-b|/sqrt(2), half = 12.706 * sd / sqrt(2) = 12.706 * |a-b| / 2
    mean, half, n = stats.mean_ci([0.5, 0.7])
    assert mean == pytest.approx(0.6) and half == pytest.approx(12.7062 * 0.1, rel=1e-4)
    mean, half, n = stats.mean_ci([3.0, float("nan")])
    assert (mean, n) == (3.0, 1) and math.isnan(half)


def test_ema_matches_loop_and_is_bias_corrected():
    x = np.array([4.0, 2.0, np.nan, 3.0, 1.0])
    w = 0.7
    expected, s, k = [], 0.0, 0
    for v in x:
        if not np.isnan(v):
            s, k = w * s + (1 - w) * v, k + 1
        expected.append(s / (1 - w ** k))
    np.testing.assert_allclose(stats.ema(x, w), expected)
    assert stats.ema([5.0, 5.0, 5.0], 0.9).tolist() == pytest.approx([5.0, 5.0, 5.0])  # no pull to 0
    np.testing.assert_allclose(stats.ema([1.0, 3.0], 0.0), [1.0, 3.0])


def _curves(spec):
    """spec: {(run, arm, seed): [(tokens, target_loss), ...]} -> curves frame with steps."""
    rows = []
    for (run, arm, seed), points in spec.items():
        for step, (tokens, value) in enumerate(points, start=1):
            rows.append({"run": run, "arm": arm, "seed": seed, "step": step, "tokens": tokens, "target_loss": value})
    return pl.DataFrame(rows)


def test_align_by_tokens_interpolates_on_common_range():
    curves = _curves({("a", "shuffle", 0): [(0, 3.0), (100, 2.0), (200, 1.0)],
                      ("b", "shuffle", 1): [(50, 4.0), (250, 2.0)]})
    grid = stats.token_grid(curves, "target_loss", n_points=3)
    np.testing.assert_allclose(grid, [50, 125, 200])  # max of starts .. min of ends
    aligned = stats.align_by_tokens(curves, "target_loss", grid=[50, 150])
    a = aligned.filter(pl.col("run") == "a")["value"].to_list()
    b = aligned.filter(pl.col("run") == "b")["value"].to_list()
    assert a == pytest.approx([2.5, 1.5]) and b == pytest.approx([4.0, 3.0])
    outside = stats.align_by_tokens(curves, "target_loss", grid=[0, 100])
    assert outside.filter(pl.col("run") == "b")["value"].to_list()[0] is None  # no extrapolation


def test_aggregate_seeds_mean_and_band():
    # three seeds of one arm, offsets -1, 0, +2 on top of a common line
    offsets = {0: -1.0, 1: 0.0, 2: 2.0}
    spec = {(f"r{s}", "folding L=3", s): [(t, 10 - t / 100 + o) for t in (0, 100, 200)] for s, o in offsets.items()}
    agg = stats.aggregate_seeds(stats.align_by_tokens(_curves(spec), "target_loss", grid=[0, 100, 200]))
    sd = np.std(list(offsets.values()), ddof=1)
    half = 4.302653 * sd / math.sqrt(3)
    assert agg["n"].to_list() == [3, 3, 3]
    assert agg["mean"].to_list() == pytest.approx([10 + 1 / 3, 9 + 1 / 3, 8 + 1 / 3])
    assert agg["half_width"].to_list() == pytest.approx([half] * 3, rel=1e-5)
    assert (agg["upper"] - agg["lower"]).to_list() == pytest.approx([2 * half] * 3, rel=1e-5)


def test_smooth_adds_ema_per_run():
    curves = _curves({("a", "x", 0): [(1, 2.0), (2, 4.0)], ("b", "x", 1): [(1, 10.0), (2, 10.0)]})
    out = stats.smooth(curves, "target_loss", weight=0.5)
    assert out.filter(pl.col("run") == "a")["target_loss_ema"].to_list() == pytest.approx([2.0, (0.25 * 2 + 0.5 * 4) / 0.75])
    assert out.filter(pl.col("run") == "b")["target_loss_ema"].to_list() == pytest.approx([10.0, 10.0])


def test_final_metrics_takes_last_recorded_value():
    curves = pl.DataFrame({"run": ["a"] * 4, "arm": ["shuffle"] * 4, "seed": [0] * 4, "step": [1, 2, 2, 3],
                           "tokens": [10, 20, 20, 30], "train_loss": [5.0, 4.0, None, 3.0],
                           "target_loss": [None, None, 4.5, None]})
    f = stats.final_metrics(curves, ["train_loss", "target_loss"])
    assert f.row(0, named=True) == {"run": "a", "arm": "shuffle", "seed": 0, "tokens": 30,
                                    "train_loss": 3.0, "target_loss": 4.5}


def _finals(arm_values):
    rows = [{"run": f"{arm}-{s}", "arm": arm, "seed": s, "step": 1, "tokens": 100, **metrics}
            for arm, per_seed in arm_values.items() for s, metrics in enumerate(per_seed)]
    return stats.final_metrics(pl.DataFrame(rows), [k for k in rows[0] if k not in stats.ID_COLUMNS])


def test_paired_comparison_detects_a_consistent_gain():
    # folding is lower by 0.10, 0.12, 0.11 on matched seeds although seeds differ by a lot
    finals = _finals({"shuffle": [{"target_loss": 5.0}, {"target_loss": 5.5}, {"target_loss": 4.7}],
                      "folding L=3": [{"target_loss": 4.9}, {"target_loss": 5.38}, {"target_loss": 4.59}]})
    r = stats.paired_comparison(finals, "folding L=3", "shuffle", "target_loss")
    diffs = np.array([-0.10, -0.12, -0.11])
    half = 4.302653 * diffs.std(ddof=1) / math.sqrt(3)
    assert r.n == 3 and r.mean_diff == pytest.approx(-0.11) and r.half_width == pytest.approx(half, rel=1e-5)
    assert r.significant and r.winner == "folding L=3"
    assert r.verdict == f"folding L=3 beats shuffle on target loss by 0.1100 ± {half:.4f} (3 seeds)"


def test_paired_comparison_higher_is_better_for_accuracy():
    finals = _finals({"shuffle": [{"bench_acc": 0.30}, {"bench_acc": 0.40}],
                      "sorting": [{"bench_acc": 0.25}, {"bench_acc": 0.351}]})
    r = stats.paired_comparison(finals, "sorting", "shuffle", "bench_acc")
    # diffs -0.05, -0.049: half = 12.706 * 0.001/sqrt(2)/sqrt(2) = 0.00635 < 0.0495
    assert r.winner == "shuffle" and r.verdict.startswith("shuffle beats sorting on benchmark accuracy by 0.0495 ± ")


def test_paired_comparison_within_noise_and_single_seed():
    finals = _finals({"shuffle": [{"target_loss": 5.0}, {"target_loss": 5.0}],
                      "sorting": [{"target_loss": 4.9}, {"target_loss": 5.2}]})
    r = stats.paired_comparison(finals, "sorting", "shuffle", "target_loss")
    assert not r.significant and r.winner is None
    assert "no difference beyond seed noise (+0.0500 ± " in r.verdict and "2 seeds" in r.verdict
    one = _finals({"shuffle": [{"target_loss": 5.0}], "sorting": [{"target_loss": 4.0}]})
    r1 = stats.paired_comparison(one, "sorting", "shuffle", "target_loss")
    assert r1.n == 1 and r1.winner is None and "from 1 seed" in r1.verdict


def test_identical_differences_in_every_seed_are_not_called_a_win():
    # accuracy on a small benchmark moves in steps: 5 more right answers in both seeds is no interval
    finals = _finals({"shuffle": [{"bench_acc": 0.38}, {"bench_acc": 0.40}],
                      "folding L=3": [{"bench_acc": 0.38 + 5 / 300}, {"bench_acc": 0.40 + 5 / 300}]})
    r = stats.paired_comparison(finals, "folding L=3", "shuffle", "bench_acc")
    assert r.n == 2 and r.half_width == pytest.approx(0.0, abs=1e-12)
    assert not r.significant and r.winner is None
    assert r.verdict == ("folding L=3 vs shuffle on benchmark accuracy: +0.0167 in each of the 2 seeds; with no "
                         "spread between seeds there is no interval to judge it by, run more seeds")


def test_paired_comparison_matches_seeds_only():
    rows = [{"run": "s0", "arm": "shuffle", "seed": 0, "target_loss": 5.0},
            {"run": "s1", "arm": "shuffle", "seed": 1, "target_loss": 6.0},
            {"run": "f1", "arm": "folding L=3", "seed": 1, "target_loss": 5.0},
            {"run": "f7", "arm": "folding L=3", "seed": 7, "target_loss": 1.0}]
    r = stats.paired_comparison(pl.DataFrame(rows), "folding L=3", "shuffle", "target_loss")
    assert r.n == 1 and r.mean_diff == pytest.approx(-1.0)


def test_compare_arms_requires_baseline():
    finals = _finals({"sorting": [{"target_loss": 5.0}]})
    with pytest.raises(DataError, match="baseline"):
        stats.compare_arms(finals, "shuffle")


def _synthetic_comparison():
    rows = []
    for arm, base in (("shuffle", 0.0), ("sorting", 0.3), ("folding L=3", -0.2)):
        for seed in (0, 1, 2):
            shift = base + (0.01 * (seed - 1) if base else 0.0)  # the arm effect varies a little by seed
            for step in (1, 2, 3, 4):
                tokens = step * 1000 + seed * 7  # runs see slightly different token counts
                rows.append({"run": f"{arm}-{seed}", "arm": arm, "seed": seed, "step": step, "tokens": tokens,
                             "train_loss": 6.0 - step * 0.5 + shift, "lr": 0.001})
                rows.append({"run": f"{arm}-{seed}", "arm": arm, "seed": seed, "step": step, "tokens": tokens,
                             "target_loss": 6.5 - step * 0.5 + shift + 0.01 * seed + 0.001 * seed ** 2,
                             "bench_acc": 0.25 + 0.01 * step - shift / 10 + 0.001 * seed})
    return pl.DataFrame(rows)


def test_summarize_and_export(tmp_path):
    curves = _synthetic_comparison()
    paths = stats.export_comparison(curves, tmp_path / "out")
    exported = pl.read_csv(paths["curves"])
    assert exported.columns[:5] == ["run", "arm", "seed", "step", "tokens"]
    assert exported.height == curves.height and "target_loss" in exported.columns
    by_arm = pl.read_csv(paths["curves_by_arm"])
    assert set(by_arm["metric"].unique()) == {"train_loss", "target_loss", "bench_acc"}
    assert set(by_arm["arm"].unique()) == {"shuffle", "sorting", "folding L=3"}
    summary = json.loads(paths["summary"].read_text())
    assert summary["baseline"] == "shuffle" and "lr" not in summary["metrics"]
    final_shuffle = [6.5 - 2.0 + 0.01 * s + 0.001 * s ** 2 for s in (0, 1, 2)]
    got = summary["arms"]["shuffle"]["target_loss"]
    assert got["mean"] == pytest.approx(np.mean(final_shuffle))
    assert got["ci_half_width"] == pytest.approx(4.302653 * np.std(final_shuffle, ddof=1) / math.sqrt(3), rel=1e-5)
    delta = next(d for d in summary["deltas"] if d["arm"] == "folding L=3" and d["metric"] == "target_loss")
    # seed effects cancel in the pairing: the differences are -0.21, -0.20, -0.19
    assert delta["mean_diff"] == pytest.approx(-0.2) and delta["winner"] == "folding L=3"
    assert delta["half_width"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    assert summary["verdicts"]["sorting vs shuffle: target_loss"].startswith("shuffle beats sorting on target loss by 0.3000")
    assert summary["verdicts"]["folding L=3 vs shuffle: bench_acc"].startswith("folding L=3 beats shuffle")


def test_format_table_lists_each_arm():
    curves = _synthetic_comparison()
    finals = stats.final_metrics(curves, ["target_loss"])
    text = stats.format_table(stats.arm_table(finals, ["target_loss"]), ["target_loss"])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["arm", "seeds", "target"] and len(lines) == 5
    assert "folding L=3" in text and " ± " in text


def test_missing_columns_are_reported():
    with pytest.raises(DataError, match="lacks column"):
        stats.align_by_tokens(pl.DataFrame({"run": ["a"]}), "target_loss")
    empty = pl.DataFrame({"run": ["a"], "arm": ["x"], "seed": [0], "step": [1], "tokens": [1],
                          "target_loss": [None]}, schema_overrides={"target_loss": pl.Float64})
    with pytest.raises(DataError, match="no run has recorded"):
        stats.align_by_tokens(empty, "target_loss")
