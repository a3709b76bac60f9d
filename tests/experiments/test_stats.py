"""Comparison statistics on synthetic curves with answers worked out by hand."""

import json
import math

import numpy as np
import polars as pl
import pytest

from delt_engine.errors import ConfigError, DataError
from delt_engine.experiments import forgetting, stats, tdist, verdicts
from delt_engine.experiments.summary import export_comparison, format_table, summarize, summary_json

# Two-sided 95% / 99% Student t critical values from printed tables.
T_TABLE_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 30: 2.042, 120: 1.980}
T_TABLE_99 = {1: 63.657, 2: 9.925, 5: 4.032, 30: 2.750}


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_95.items()))
def test_t_quantile_matches_table_95(df, expected):
    assert tdist.t_quantile(0.95, df) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_99.items()))
def test_t_quantile_matches_table_99(df, expected):
    assert tdist.t_quantile(0.99, df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_approaches_normal_and_rejects_bad_input():
    assert tdist.t_quantile(0.95, 5000) == pytest.approx(1.95996, abs=1e-3)
    with pytest.raises(ConfigError):
        tdist.t_quantile(0.95, 0)
    with pytest.raises(ConfigError):
        tdist.t_quantile(1.5, 3)


def test_mean_ci_by_hand():
    # values 1, 2, 4: mean 7/3, sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3
    mean, half, n = tdist.mean_ci([1.0, 2.0, 4.0])
    assert n == 3 and mean == pytest.approx(7 / 3)
    assert half == pytest.approx(4.302653 * math.sqrt(7 / 3) / math.sqrt(3), rel=1e-5)
    # two values a, b: sd = |a-b|/sqrt(2), half = 12.706 * sd / sqrt(2) = 12.706 * |a-b| / 2
    mean, half, n = tdist.mean_ci([0.5, 0.7])
    assert mean == pytest.approx(0.6) and half == pytest.approx(12.7062 * 0.1, rel=1e-4)
    mean, half, n = tdist.mean_ci([3.0, float("nan")])
    assert (mean, n) == (3.0, 1) and math.isnan(half)


def test_ema_matches_loop_and_is_bias_corrected():
    x = np.array([4.0, 2.0, np.nan, 3.0, 1.0])
    w = 0.7
    expected, s, k = [], 0.0, 0
    for v in x:
        if not np.isnan(v):
            s, k = w * s + (1 - w) * v, k + 1
        expected.append(s / (1 - w**k))
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
    curves = _curves(
        {("a", "shuffle", 0): [(0, 3.0), (100, 2.0), (200, 1.0)], ("b", "shuffle", 1): [(50, 4.0), (250, 2.0)]}
    )
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
    assert out.filter(pl.col("run") == "a")["target_loss_ema"].to_list() == pytest.approx(
        [2.0, (0.25 * 2 + 0.5 * 4) / 0.75]
    )
    assert out.filter(pl.col("run") == "b")["target_loss_ema"].to_list() == pytest.approx([10.0, 10.0])


def test_final_metrics_takes_last_recorded_value():
    curves = pl.DataFrame(
        {
            "run": ["a"] * 4,
            "arm": ["shuffle"] * 4,
            "seed": [0] * 4,
            "step": [1, 2, 2, 3],
            "tokens": [10, 20, 20, 30],
            "train_loss": [5.0, 4.0, None, 3.0],
            "target_loss": [None, None, 4.5, None],
        }
    )
    f = stats.final_metrics(curves, ["train_loss", "target_loss"])
    assert f.row(0, named=True) == {
        "run": "a",
        "arm": "shuffle",
        "seed": 0,
        "tokens": 30,
        "train_loss": 3.0,
        "target_loss": 4.5,
    }


def _finals(arm_values):
    rows = [
        {"run": f"{arm}-{s}", "arm": arm, "seed": s, "step": 1, "tokens": 100, **metrics}
        for arm, per_seed in arm_values.items()
        for s, metrics in enumerate(per_seed)
    ]
    return stats.final_metrics(pl.DataFrame(rows), [k for k in rows[0] if k not in stats.ID_COLUMNS])


def _verdict(finals, arm, baseline, metric):
    (v,) = verdicts.compare_arms(finals, baseline, [metric])
    assert v.arm == arm
    return v


def _p_df2(t):
    # Student t with 2 dof: P(|T| < t) = t / sqrt(2 + t^2)
    return 1 - abs(t) / math.sqrt(2 + t * t)


def _p_df1(t):
    # Cauchy: P(|T| < t) = (2 / pi) atan(t)
    return 1 - 2 / math.pi * math.atan(abs(t))


def test_paired_verdict_detects_a_consistent_gain():
    # folding is lower by 0.10, 0.12, 0.11 on matched seeds although seeds differ by a lot
    finals = _finals(
        {
            "shuffle": [{"target_loss": 5.0}, {"target_loss": 5.5}, {"target_loss": 4.7}],
            "folding L=3": [{"target_loss": 4.9}, {"target_loss": 5.38}, {"target_loss": 4.59}],
        }
    )
    v = _verdict(finals, "folding L=3", "shuffle", "target_loss")
    diffs = np.array([-0.10, -0.12, -0.11])
    se = diffs.std(ddof=1) / math.sqrt(3)
    half = 4.302653 * se
    assert v.n_seeds == 3 and v.delta == pytest.approx(-0.11)
    assert (v.ci_low, v.ci_high) == pytest.approx((-0.11 - half, -0.11 + half), rel=1e-5)
    assert v.p == pytest.approx(_p_df2(-0.11 / se), rel=1e-9) and v.p_adjusted == v.p  # one test: Holm = raw
    assert v.verdict == "better" and v.seeds_needed is None
    assert v.text == (
        f"folding L=3 is better than shuffle on target loss (Δ -0.1100, 95% CI {-0.11 - half:+.4f} to "
        f"{-0.11 + half:+.4f}, p = {v.p:.2g}, Holm-adjusted p = {v.p:.2g}, 3 seeds)"
    )
    assert v.to_dict() == {
        "arm": "folding L=3",
        "baseline": "shuffle",
        "metric": "target_loss",
        "n_seeds": 3,
        "delta": v.delta,
        "ci_low": v.ci_low,
        "ci_high": v.ci_high,
        "p": v.p,
        "p_adjusted": v.p_adjusted,
        "seeds_needed": None,
        "verdict": "better",
    }


def test_paired_verdict_higher_is_better_for_accuracy():
    finals = _finals(
        {
            "shuffle": [{"bench_acc_norm": 0.30}, {"bench_acc_norm": 0.40}],
            "sorting": [{"bench_acc_norm": 0.25}, {"bench_acc_norm": 0.351}],
        }
    )
    v = _verdict(finals, "sorting", "shuffle", "bench_acc_norm")
    # diffs -0.05, -0.049: mean -0.0495, sd 0.001/sqrt(2), se 0.0005, t = -99 on 1 dof
    assert v.p == pytest.approx(_p_df1(99.0), rel=1e-6) and v.p < 0.05
    assert v.verdict == "worse" and v.text.startswith("sorting is worse than shuffle on benchmark accuracy (norm)")


def test_paired_verdict_unresolved_says_so_and_estimates_seeds():
    finals = _finals(
        {
            "shuffle": [{"target_loss": 5.0}, {"target_loss": 5.0}],
            "sorting": [{"target_loss": 4.9}, {"target_loss": 5.2}],
        }
    )
    v = _verdict(finals, "sorting", "shuffle", "target_loss")
    # diffs -0.1, +0.2: mean 0.05, sd 0.3/sqrt(2), se 0.15, t = 1/3 on 1 dof
    assert v.p == pytest.approx(_p_df1(1 / 3), rel=1e-9) and v.verdict == "unresolved"
    assert v.seeds_needed == verdicts.seeds_needed(0.05, 0.3 / math.sqrt(2), 0.05) and v.seeds_needed > 2
    assert v.text.startswith("sorting vs shuffle on target loss: not resolved with 2 seeds (Δ +0.0500, 95% CI ")
    assert v.text.endswith(f"about {v.seeds_needed} seeds would resolve a difference this size")
    one = _finals({"shuffle": [{"target_loss": 5.0}], "sorting": [{"target_loss": 4.0}]})
    v1 = _verdict(one, "sorting", "shuffle", "target_loss")
    assert (v1.n_seeds, v1.delta, v1.p, v1.p_adjusted, v1.seeds_needed, v1.verdict) == (
        1,
        -1.0,
        None,
        None,
        None,
        "unresolved",
    )
    assert v1.text == (
        "sorting vs shuffle on target loss: not resolved with 1 seed; 1 seed leaves no spread to "
        "test against; run 2 or more seeds"
    )


def test_identical_differences_in_every_seed_are_not_called_a_win():
    # accuracy on a small benchmark moves in steps: 5 more right answers in both seeds is no interval
    finals = _finals(
        {
            "shuffle": [{"bench_acc_norm": 0.38}, {"bench_acc_norm": 0.40}],
            "folding L=3": [{"bench_acc_norm": 0.38 + 5 / 300}, {"bench_acc_norm": 0.40 + 5 / 300}],
        }
    )
    v = _verdict(finals, "folding L=3", "shuffle", "bench_acc_norm")
    assert v.n_seeds == 2 and v.p is None and v.verdict == "unresolved" and v.seeds_needed is None
    assert v.text == (
        "folding L=3 vs shuffle on benchmark accuracy (norm): not resolved with 2 seeds; the "
        "difference is +0.0167 in each of the 2 seeds; with no spread between seeds there is no test, "
        "run more seeds"
    )


def test_paired_verdict_matches_seeds_only():
    rows = [
        {"run": "s0", "arm": "shuffle", "seed": 0, "target_loss": 5.0},
        {"run": "s1", "arm": "shuffle", "seed": 1, "target_loss": 6.0},
        {"run": "f1", "arm": "folding L=3", "seed": 1, "target_loss": 5.0},
        {"run": "f7", "arm": "folding L=3", "seed": 7, "target_loss": 1.0},
    ]
    v = _verdict(pl.DataFrame(rows), "folding L=3", "shuffle", "target_loss")
    assert v.n_seeds == 1 and v.delta == pytest.approx(-1.0)


def test_pairing_keys_on_comparison_and_seed():
    """2 folding seeds vs 4 shuffle runs from two comparisons (same seeds 0, 1): 2 pairs, never 4."""
    rows = [
        {"run": f"f{s}", "arm": "folding L=3", "comparison": "cmp-a", "seed": s, "target_loss": 4.0 + s - 0.1 * s}
        for s in (0, 1)
    ]
    rows += [
        {"run": f"{c}-s{s}", "arm": "shuffle", "comparison": c, "seed": s, "target_loss": 4.2 + s + off}
        for c, off in (("cmp-a", 0.0), ("cmp-b", 5.0))
        for s in (0, 1)
    ]
    curves = pl.DataFrame([{**r, "step": 1, "tokens": 100} for r in rows])
    summary = summarize(curves, baseline="shuffle", metrics=["target_loss"])
    (v,) = summary["verdicts"]
    assert v.n_seeds == 2  # keyed by seed alone it would pair each folding seed with two shuffle runs: 4
    assert v.delta == pytest.approx(np.mean([-0.2, -0.3]))  # cmp-b's shuffle runs (+5) do not enter
    assert summary["arms"]["shuffle"]["n_seeds"] == 4  # four distinct runs of the arm, none merged
    assert summary["arms"]["shuffle"]["comparisons"] == ["cmp-a", "cmp-a", "cmp-b", "cmp-b"]
    # a rerun of one (arm, comparison, seed) is one replicate: averaged, counted once
    rerun = pl.concat(
        [
            curves,
            pl.DataFrame(
                [
                    {
                        "run": "f0-again",
                        "arm": "folding L=3",
                        "comparison": "cmp-a",
                        "seed": 0,
                        "target_loss": 3.6,
                        "step": 1,
                        "tokens": 100,
                    }
                ]
            ),
        ]
    )
    (v2,) = summarize(rerun, baseline="shuffle", metrics=["target_loss"])["verdicts"]
    assert v2.n_seeds == 2 and v2.delta == pytest.approx(np.mean([(4.0 + 3.6) / 2 - 4.2, -0.3]))


def test_compare_arms_requires_baseline():
    finals = _finals({"sorting": [{"target_loss": 5.0}]})
    with pytest.raises(DataError, match="baseline"):
        verdicts.compare_arms(finals, "shuffle", ["target_loss"])


def test_t_test_p_by_hand():
    for t in (0.0, 0.5, 1.0, 3.0, 12.706):
        assert verdicts.t_test_p(t, 1) == pytest.approx(_p_df1(t), abs=1e-12)
        assert verdicts.t_test_p(-t, 2) == pytest.approx(_p_df2(t), abs=1e-12)
        # df = 4: P(|T| < t) = sin(th) (1 + cos^2(th) / 2), th = atan(t / 2)
        th = math.atan(t / 2)
        assert verdicts.t_test_p(t, 4) == pytest.approx(1 - math.sin(th) * (1 + math.cos(th) ** 2 / 2), abs=1e-12)
    # the 95% critical values of the t table sit at p = 0.05
    for df, crit in T_TABLE_95.items():
        assert verdicts.t_test_p(crit, df) == pytest.approx(0.05, abs=2e-4)
    with pytest.raises(ConfigError):
        verdicts.t_test_p(1.0, 0)


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert verdicts.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert verdicts.holm([0.5, None, 0.6]) == [1.0, None, 1.0]  # capped at 1; an untested pair is not counted
    assert verdicts.holm([0.02, None]) == [0.02, None]  # one test: no adjustment
    assert verdicts.holm([0.01, 0.01, 0.04]) == pytest.approx([0.03, 0.03, 0.04])  # ties share a value
    assert verdicts.holm([]) == []


def test_seeds_needed_by_hand():
    # d = 1: n = 9 fails, (t.975,8 + t.80,8)^2 = (2.306 + 0.889)^2 = 10.21 > 9; n = 10 holds,
    # (t.975,9 + t.80,9)^2 = (2.262 + 0.883)^2 = 9.89 <= 10 (exact noncentral-t power at n = 10 is 0.80)
    assert (2.306 + 0.889) ** 2 > 9 and (2.262 + 0.883) ** 2 <= 10
    assert verdicts.seeds_needed(1.0, 1.0) == 10 and verdicts.seeds_needed(-2.0, 2.0) == 10
    # d = 0.5: n = 33 fails, ((2.0369 + 0.8530) / 0.5)^2 = 33.41; n = 34 holds, ((2.0345 + 0.8527) / 0.5)^2 = 33.34
    assert ((2.0369 + 0.8530) / 0.5) ** 2 > 33 and ((2.0345 + 0.8527) / 0.5) ** 2 <= 34
    assert verdicts.seeds_needed(0.5, 1.0) == 34
    # the default comparison: +0.28 with paired spread about 0.1, two tests (alpha 0.025 each):
    # n = 3 fails, ((t.9875,2 + t.80,2) / 2.8)^2 = ((6.205 + 1.061) / 2.8)^2 = 6.73; n = 4 holds, (4.177 + 0.978)^2 /
    # 2.8^2 = 3.39
    assert ((6.205 + 1.061) / 2.8) ** 2 > 3 and ((4.177 + 0.978) / 2.8) ** 2 <= 4
    assert verdicts.seeds_needed(0.28, 0.1, alpha=0.025) == 4
    assert verdicts.seeds_needed(1e-3, 1.0) == ">1000" and verdicts.seeds_needed(0.0, 1.0) == ">1000"
    assert verdicts.seeds_needed(0.3, 0.0) is None and verdicts.seeds_needed(math.nan, 1.0) is None
    with pytest.raises(ConfigError):
        verdicts.seeds_needed(1.0, 1.0, power=0.3)


def test_holm_runs_across_every_arm_and_metric():
    # two arms x two verdict metrics; each raw p is about 0.02-0.04 (3 seeds), so no pair survives Holm
    spread = {"target_loss": (0.0, 0.11, -0.05), "bench_acc_norm": (0.0, 0.004, -0.002)}
    shift = {
        "sorting": {"target_loss": -0.2, "bench_acc_norm": 0.01},
        "folding L=3": {"target_loss": -0.15, "bench_acc_norm": 0.008},
    }
    table = {"shuffle": [{"target_loss": 5.0 + s, "bench_acc_norm": 0.3} for s in range(3)]}
    for arm, sh in shift.items():
        table[arm] = [{m: table["shuffle"][s][m] + sh[m] + spread[m][s] for m in spread} for s in range(3)]
    found = verdicts.compare_arms(_finals(table), "shuffle", ["target_loss", "bench_acc_norm"])
    assert sorted((v.arm, v.metric) for v in found) == sorted((a, m) for a in shift for m in spread)
    raw = []
    for v in found:
        d = np.array([shift[v.arm][v.metric] + spread[v.metric][s] for s in range(3)])
        raw.append(_p_df2(d.mean() / (d.std(ddof=1) / math.sqrt(3))))
    assert [v.p for v in found] == pytest.approx(raw, rel=1e-9)
    assert min(raw) < 0.05  # significant alone ...
    assert [v.p_adjusted for v in found] == pytest.approx(verdicts.holm(raw))
    assert all(v.verdict == "unresolved" for v in found)  # ... but not once four tests are corrected for
    for v in found:  # seeds needed at the Bonferroni level alpha / m, m = 4
        d = np.array([shift[v.arm][v.metric] + spread[v.metric][s] for s in range(3)])
        assert v.seeds_needed == verdicts.seeds_needed(d.mean(), d.std(ddof=1), 0.05 / 4) and v.seeds_needed > 3


def test_wording_never_claims_no_difference():
    def arms(base, other):
        return {"shuffle": [{"target_loss": b} for b in base], "x": [{"target_loss": o} for o in other]}

    cases = [
        arms([5.0, 5.0], [4.9, 5.2]),
        arms([5.0, 5.0], [5.0, 5.0]),
        arms([5.0, 6.0], [5.0 + 1e-6, 6.0 - 1e-6]),
        arms([5.0], [5.0]),
    ]
    for table in cases:
        (v,) = verdicts.compare_arms(_finals(table), "shuffle", ["target_loss"])
        assert v.verdict == "unresolved" and "not resolved with" in v.text
        assert "no difference" not in v.text.lower() and " beats " not in v.text and "noise" not in v.text
    # a mean difference of about 0 needs more seeds than the cap
    (v,) = verdicts.compare_arms(_finals(cases[2]), "shuffle", ["target_loss"])
    assert v.seeds_needed == ">1000" and "more than 1000 seeds would resolve" in v.text


def test_p_values_and_power_against_scipy():
    """Dev-only cross-check with scipy (not a runtime dependency: add scipy to requirements-dev.txt)."""
    stats = pytest.importorskip(
        "scipy.stats", reason="scipy not installed; add scipy to requirements-dev.txt to cross-check the p-values"
    )
    for df in (1, 2, 3, 4, 5, 9, 30, 120):
        for t in (0.1, 0.7, 1.5, 2.5, 4.0, 9.0):
            assert verdicts.t_test_p(t, df) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-9, abs=1e-14)
    rng = np.random.default_rng(0)
    base = rng.normal(5.0, 0.5, size=(6, 5))
    for i in range(6):
        arm = base[i] + rng.normal(-0.1, 0.1, size=5)
        finals = _finals(
            {"shuffle": [{"target_loss": b} for b in base[i]], "folding L=3": [{"target_loss": a} for a in arm]}
        )
        v = _verdict(finals, "folding L=3", "shuffle", "target_loss")
        ref = stats.ttest_rel(arm, base[i])
        assert v.p == pytest.approx(ref.pvalue, rel=1e-8)
        lo, hi = ref.confidence_interval(0.95)
        assert (v.ci_low, v.ci_high) == pytest.approx((lo, hi), rel=1e-8)
    # the seeds-needed formula against the exact power of the paired t-test (noncentral t)
    for d, alpha in ((1.0, 0.05), (0.5, 0.05), (2.8, 0.025), (0.3, 0.0125)):
        n = verdicts.seeds_needed(d, 1.0, alpha)
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        power = stats.nct.sf(crit, n - 1, d * math.sqrt(n)) + stats.nct.cdf(-crit, n - 1, d * math.sqrt(n))
        assert 0.75 <= power <= 0.9, (d, alpha, n, power)


def _synthetic_comparison():
    rows = []
    for arm, base in (("shuffle", 0.0), ("sorting", 0.3), ("folding L=3", -0.2)):
        for seed in (0, 1, 2):
            shift = base + (0.01 * (seed - 1) if base else 0.0)  # the arm effect varies a little by seed
            for step in (1, 2, 3, 4):
                tokens = step * 1000 + seed * 7  # runs see slightly different token counts
                rows.append(
                    {
                        "run": f"{arm}-{seed}",
                        "arm": arm,
                        "seed": seed,
                        "step": step,
                        "tokens": tokens,
                        "train_loss": 6.0 - step * 0.5 + shift,
                        "lr": 0.001,
                    }
                )
                rows.append(
                    {
                        "run": f"{arm}-{seed}",
                        "arm": arm,
                        "seed": seed,
                        "step": step,
                        "tokens": tokens,
                        "target_loss": 6.5 - step * 0.5 + shift + 0.01 * seed + 0.001 * seed**2,
                        "bench_acc": 0.25 + 0.01 * step - shift / 10 + 0.001 * seed,
                        "bench_acc_norm": 0.26 + 0.01 * step - shift / 10 + 0.001 * seed,
                    }
                )
    return pl.DataFrame(rows)


def test_summarize_and_export(tmp_path):
    curves = _synthetic_comparison()
    paths = export_comparison(curves, tmp_path / "out")
    exported = pl.read_csv(paths["curves"])
    assert exported.columns[:5] == ["run", "arm", "seed", "step", "tokens"]
    assert exported.height == curves.height and "target_loss" in exported.columns
    by_arm = pl.read_csv(paths["curves_by_arm"])
    assert set(by_arm["metric"].unique()) == {"train_loss", "target_loss", "bench_acc", "bench_acc_norm"}
    assert set(by_arm["arm"].unique()) == {"shuffle", "sorting", "folding L=3"}
    summary = json.loads(paths["summary"].read_text())
    assert summary["baseline"] == "shuffle" and "lr" not in summary["metrics"]
    final_shuffle = [6.5 - 2.0 + 0.01 * s + 0.001 * s**2 for s in (0, 1, 2)]
    got = summary["arms"]["shuffle"]["target_loss"]
    assert got["mean"] == pytest.approx(np.mean(final_shuffle))
    assert got["ci_half_width"] == pytest.approx(4.302653 * np.std(final_shuffle, ddof=1) / math.sqrt(3), rel=1e-5)
    delta = next(d for d in summary["deltas"] if d["arm"] == "folding L=3" and d["metric"] == "target_loss")
    # seed effects cancel in the pairing: the differences are -0.21, -0.20, -0.19
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert delta["delta"] == pytest.approx(-0.2) and delta["n_seeds"] == 3
    assert (delta["ci_low"], delta["ci_high"]) == pytest.approx((-0.2 - half, -0.2 + half), rel=1e-5)
    assert {d["metric"] for d in summary["deltas"]} == {"train_loss", "target_loss", "bench_acc", "bench_acc_norm"}
    # verdicts: every non-baseline arm x verdict metric, each entry exactly the report's keys
    assert summary["verdict_metrics"] == ["target_loss", "bench_acc_norm"]
    got = {(v["arm"], v["metric"]): v for v in summary["verdicts"]}
    assert set(got) == {(a, m) for a in ("sorting", "folding L=3") for m in ("target_loss", "bench_acc_norm")}
    assert all(set(v) == set(verdicts.JSON_KEYS) for v in summary["verdicts"])
    t = -0.2 / (0.01 / math.sqrt(3))
    fold = got[("folding L=3", "target_loss")]
    assert fold["p"] == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), rel=1e-6)
    adjusted = verdicts.holm([v["p"] for v in summary["verdicts"]])
    assert fold["p_adjusted"] == pytest.approx(adjusted[summary["verdicts"].index(fold)])
    assert fold["verdict"] == "better" and fold["seeds_needed"] is None
    assert got[("sorting", "target_loss")]["verdict"] == "worse"
    assert got[("folding L=3", "bench_acc_norm")]["verdict"] == "better"  # higher accuracy is better
    assert "sorting is worse than shuffle on target loss (Δ +0.3000" in " ".join(summary["verdict_texts"])
    assert len(summary["verdict_texts"]) == 4


def test_format_table_lists_each_arm():
    curves = _synthetic_comparison()
    finals = stats.final_metrics(curves, ["target_loss"])
    text = format_table(stats.arm_table(finals, ["target_loss"]), ["target_loss"])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["arm", "seeds", "target"] and len(lines) == 5
    assert "folding L=3" in text and " ± " in text


def test_missing_columns_are_reported():
    with pytest.raises(DataError, match="lacks column"):
        stats.align_by_tokens(pl.DataFrame({"run": ["a"]}), "target_loss")
    empty = pl.DataFrame(
        {"run": ["a"], "arm": ["x"], "seed": [0], "step": [1], "tokens": [1], "target_loss": [None]},
        schema_overrides={"target_loss": pl.Float64},
    )
    with pytest.raises(DataError, match="no run has recorded"):
        stats.align_by_tokens(empty, "target_loss")


# ----------------------------------------------------------------------------- forgetting
# Validation loss of two groups at evaluation steps 0, 10, 20, 30 (seed s adds 0.1 * s everywhere).
# "story" falls to its lowest at step 10 and rises again under folding (forgetting); shuffle keeps falling.
GROUP_LOSSES = {
    "shuffle": {"story": [6.0, 4.0, 3.5, 3.0], "arith": [6.0, 5.0, 4.0, 3.5]},
    "folding L=3": {"story": [6.0, 3.0, 3.8, 4.2], "arith": [6.0, 5.5, 3.2, 3.4]},
}
FOLD_RISE = {0: 0.0, 1: 0.0, 2: 0.3}  # folding's extra rise on "story" per seed: its final loss is 4.2 + extra


def _group_comparison():
    from delt_engine.jobs.records import metrics_frame

    frames = []
    for arm, groups in GROUP_LOSSES.items():
        for seed in (0, 1, 2):
            records = []
            for i, step in enumerate((0, 10, 20, 30)):
                losses = {g: v[i] + 0.1 * seed for g, v in groups.items()}
                if arm == "folding L=3" and step == 30:
                    losses["story"] += FOLD_RISE[seed]
                records.append(
                    {
                        "step": step,
                        "tokens": 100 * step + seed,
                        "val_loss": sum(losses.values()) / 2,
                        "group_loss": {"kind": losses},
                        "target_group_loss": {"kind": {"story": losses["story"] + 1.0}},
                    }
                )
                records.append({"step": step + 1, "tokens": 100 * step + 50, "train_loss": 5.0})
            frames.append(
                metrics_frame(records).select(
                    pl.lit(f"{arm}-{seed}").alias("run"), pl.lit(arm).alias("arm"), pl.lit(seed).alias("seed"), pl.all()
                )
            )
    return pl.concat(frames, how="diagonal_relaxed")


def test_group_curves_unpack_the_flattened_group_columns():
    long = forgetting.group_curves(_group_comparison())
    assert set(long["set"]) == {"validation", "target"} and set(long["column"]) == {"kind"}
    assert long.filter(pl.col("set") == "validation")["group"].unique().sort().to_list() == ["arith", "story"]
    assert long.height == 2 * 3 * 4 * 3  # arms x seeds x evaluations x (2 validation + 1 target group)
    row = long.filter(
        (pl.col("run") == "shuffle-1")
        & (pl.col("group") == "arith")
        & (pl.col("step") == 20)
        & (pl.col("set") == "validation")
    )
    assert row["loss"].to_list() == pytest.approx([4.1])


def test_forgetting_by_hand():
    curves = _group_comparison()
    per_run = forgetting.forgetting_runs(curves)
    fold0 = per_run.filter(
        (pl.col("run") == "folding L=3-0") & (pl.col("group") == "story") & (pl.col("set") == "validation")
    ).row(0, named=True)
    assert (fold0["min_loss"], fold0["min_step"], fold0["final_loss"], fold0["final_step"]) == pytest.approx(
        (3.0, 10, 4.2, 30)
    )
    assert fold0["rise"] == pytest.approx(1.2)
    entries = forgetting.forgetting(curves, baseline="shuffle")
    assert [(e["set"], e["arm"], e["group"]) for e in entries] == [
        ("validation", "shuffle", "arith"),
        ("validation", "shuffle", "story"),
        ("validation", "folding L=3", "arith"),
        ("validation", "folding L=3", "story"),
        ("target", "shuffle", "story"),
        ("target", "folding L=3", "story"),
    ]
    got = {(e["set"], e["arm"], e["group"]): e for e in entries}
    fold = got[("validation", "folding L=3", "story")]
    rises = [1.2 + FOLD_RISE[s] for s in (0, 1, 2)]  # the seed offset cancels within a run
    assert fold["n_seeds"] == 3 and fold["min_loss"] == pytest.approx(3.1)
    assert fold["final_loss"] == pytest.approx(4.2 + 0.1 + 0.1)  # mean of 4.2, 4.3, 4.4 + 0.3 / 3
    assert fold["rise"] == pytest.approx(np.mean(rises))
    assert fold["rise_ci"] == pytest.approx(4.302653 * np.std(rises, ddof=1) / math.sqrt(3), rel=1e-5)
    # paired over seeds: shuffle's story never rises, so the differences are the rises themselves
    half = 4.302653 * np.std(rises, ddof=1) / math.sqrt(3)
    assert fold["rise_delta"] == pytest.approx(np.mean(rises))
    assert (fold["rise_delta_low"], fold["rise_delta_high"]) == pytest.approx(
        (np.mean(rises) - half, np.mean(rises) + half), rel=1e-5
    )
    assert fold["final_delta"] == pytest.approx(4.2 - 3.0 + 0.1)
    arith = got[("validation", "folding L=3", "arith")]
    assert arith["rise"] == pytest.approx(0.2) and arith["min_loss"] == pytest.approx(3.3)
    base = got[("validation", "shuffle", "story")]
    assert base["rise"] == 0 and base["rise_delta"] is None and base["final_delta"] is None
    assert got[("target", "folding L=3", "story")]["rise"] == pytest.approx(np.mean(rises))
    text = forgetting.format_forgetting(entries)
    assert text.splitlines()[0].split()[:3] == ["arm", "group", "seeds"] and len(text.splitlines()) == 6
    assert "folding L=3  story" in text and "+1.3000 [" in text


def test_summary_and_export_carry_forgetting(tmp_path):
    curves = _group_comparison()
    summary = summary_json(summarize(curves))
    assert [e["group"] for e in summary["forgetting"] if e["set"] == "validation"] == ["arith", "story"] * 2
    assert all({"arm", "group", "min_loss", "final_loss", "rise"} <= set(e) for e in summary["forgetting"])
    assert "group_loss.kind.story" not in summary["metrics"]  # groups stay out of the main table
    paths = export_comparison(curves, tmp_path / "out")
    table = pl.read_csv(paths["forgetting"])
    assert table.columns == list(forgetting.FORGETTING_KEYS) and table.height == 6
    bands = pl.read_csv(paths["group_curves_by_arm"])
    story = bands.filter(
        (pl.col("set") == "validation") & (pl.col("group") == "story") & (pl.col("arm") == "shuffle")
    ).sort("step")
    assert story["step"].to_list() == [0, 10, 20, 30]
    assert story["mean"].to_list() == pytest.approx([6.1, 4.1, 3.6, 3.1]) and set(story["n"]) == {3}


def test_group_bands_on_tokens_align_runs_first():
    bands = forgetting.group_bands(_group_comparison(), "validation", x="tokens", n_points=4)
    shuffle_story = bands.filter((pl.col("arm") == "shuffle") & (pl.col("group") == "story")).sort("tokens")
    # every run spans tokens 2..3002 at most (seed offsets 0..2): the common grid is [2, 3000]
    assert shuffle_story["tokens"].to_list() == pytest.approx([2.0, 1001.3333, 2000.6667, 3000.0], rel=1e-4)
    assert shuffle_story["mean"][0] == pytest.approx(6.1, abs=0.01)


def test_no_group_columns_no_forgetting():
    curves = _synthetic_comparison()
    assert forgetting.forgetting(curves) == [] and forgetting.group_curves(curves).is_empty()
    assert summarize(curves)["forgetting"] == []


def test_explain_groups_tells_forgetting_from_never_learning():
    summary = summarize(_group_comparison())
    story, top = forgetting.explain_groups(summary)  # one sentence per arm against the baseline, then the largest rise
    # folding ends behind on story by 1.1 + 0.1 (0.3 on one seed of three) and most of it is a rise from 3.1
    assert story.startswith(
        "folding L=3 ends furthest behind shuffle on story: validation loss 4.400 against 3.100 (+1.300, 95% CI"
    )
    assert "Most of that gap is forgetting: folding L=3 had brought story down to 3.100 and lost 1.300" in story
    assert "It ends ahead on arith (-0.100)." in story
    assert top == "The largest rise after a lowest point: folding L=3 on story, +1.300 (mean over 3 seeds)."
    target = forgetting.explain_groups(summary, "target")
    assert target[0].startswith("folding L=3 ends furthest behind shuffle on story: target loss 5.400")
    assert forgetting.explain_groups({"baseline": "shuffle", "forgetting": []}) == []


def test_explain_groups_when_the_arm_never_got_as_low():
    curves = _group_comparison().with_columns(
        pl.when(pl.col("arm") == "folding L=3")
        .then(pl.col("group_loss.kind.story") * 0 + 5.0)
        .otherwise(pl.col("group_loss.kind.story"))
        .alias("group_loss.kind.story")
    )
    first = forgetting.explain_groups(summarize(curves))[0]
    assert (
        "None of it is forgetting (neither loss on story rose from its lowest point by 0.01 or more): folding "
        "L=3 never got as low there (lowest 5.000 against 3.100)." in first
    )
    # a rise that is real but smaller than half the gap: "little of it"
    curves = curves.with_columns(
        pl.when((pl.col("arm") == "folding L=3") & (pl.col("step") == 30))
        .then(pl.col("group_loss.kind.story") + 0.2)
        .otherwise(pl.col("group_loss.kind.story"))
        .alias("group_loss.kind.story")
    )
    first = forgetting.explain_groups(summarize(curves))[0]
    assert (
        "Little of it is forgetting (folding L=3's loss there rose 0.200 from its lowest, shuffle's 0.000): "
        "folding L=3 never got as low on story (lowest 5.000 against 3.100)." in first
    )


def test_explain_groups_calls_tiny_rises_unmeasurable():
    curves = _group_comparison()
    # every group's loss: 5.0, 4.9, 4.8 at steps 0, 10, 20, then 4.804 at step 30 (a rise of 0.004)
    tiny = pl.when(pl.col("step") == 30).then(pl.lit(4.804)).otherwise(5.0 - pl.col("step") / 100.0)
    for col in ("group_loss.kind.story", "group_loss.kind.arith"):
        curves = curves.with_columns(pl.when(pl.col(col).is_not_null()).then(tiny + 0.1 * pl.col("seed")).alias(col))
    last = forgetting.explain_groups(summarize(curves))[-1]
    assert last.startswith(
        "No arm's validation loss rose by 0.01 or more on any kind after its lowest point (largest: "
    )
    assert last.endswith(", +0.004, mean over 3 seeds): nothing measurable was forgotten.")
