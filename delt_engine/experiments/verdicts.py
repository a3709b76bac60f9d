"""Verdicts on a comparison: paired t-tests over seeds, Holm's correction, and the seeds a pair needs.

Each arm is compared with the baseline on each verdict metric (``compare.VERDICT_METRICS``), paired
by seed. A pair is one replicate: the same seed of the same comparison (same model init, same data
preparation). The two-sided paired t-test gives a p-value; the p-values of every arm x metric of the
comparison are Holm-adjusted together (step-down, so the chance of any false "better"/"worse" stays
at ``alpha`` however many arms and metrics there are). The verdict says only what the seeds support:

- ``better`` / ``worse``: Holm-adjusted p < ``alpha`` (0.05), in the metric's direction;
- ``unresolved``: otherwise, worded "not resolved with n seeds" (never "no difference": a wide
  interval around zero is not evidence that the orderings are equivalent).

An unresolved pair with a p-value gets an estimate of the seeds needed (see ``seeds_needed``) at the
level ``alpha / m`` for the m tests of the comparison: the Bonferroni bound, Holm's first step, which
is conservative (a pair that beats it is resolved whatever the other pairs show) and does not depend
on a rank among the others that would change as seeds are added.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..errors import ConfigError, DataError
from ..training.metrics import label as metric_label
from ..training.metrics import lower_is_better
from .tdist import _t_central_prob, t_quantile

ALPHA = 0.05
POWER = 0.8
SEEDS_CAP = 1000
VERDICTS = ("better", "worse", "unresolved")
JSON_KEYS = (
    "arm",
    "baseline",
    "metric",
    "n_seeds",
    "delta",
    "ci_low",
    "ci_high",
    "p",
    "p_adjusted",
    "seeds_needed",
    "verdict",
)


# ----------------------------------------------------------------------------- tests and corrections


def t_test_p(t: float, df: int) -> float:
    """Two-sided p-value of Student t with integer ``df``: ``1 - P(|T| < |t|)`` (exact CDF, no scipy).

    Args:
        t: the t statistic (sign ignored).
        df: degrees of freedom, a positive integer (n - 1 for n paired seeds).
    Returns:
        p in [0, 1], e.g. 0.5 for t=1, df=1 (Cauchy).
    """
    if int(df) != df or df < 1:
        raise ConfigError(f"degrees of freedom df={df} must be a positive integer")
    if math.isnan(t):
        raise ConfigError("t statistic is NaN; the paired differences need a finite mean and spread")
    return min(1.0, max(0.0, 1.0 - _t_central_prob(abs(t), int(df))))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (monotone, capped at 1); ``None`` entries stay ``None``.

    The family is the non-None p-values (a pair without a test cannot be rejected, so it does not count):
    with m of them sorted ascending, the i-th smallest (0-based) gets ``max_{j <= i} min(1, (m - j) p_(j))``.

    Args:
        pvalues: raw p-values in any order.
    Returns:
        adjusted p-values in the same order.
    """
    tested = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(tested)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(tested, key=lambda k: pvalues[k])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def _z_quantile(level: float) -> float:
    """Two-sided normal critical value z with P(|Z| < z) = ``level`` (bisection on erf)."""
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if math.erf(mid / math.sqrt(2.0)) < level else (lo, mid)
    return 0.5 * (lo + hi)


def seeds_needed(
    delta: float, sd: float, alpha: float = ALPHA, power: float = POWER, cap: int = SEEDS_CAP
) -> int | str | None:
    """Seeds a paired t-test needs to detect a mean difference ``delta`` given the paired spread ``sd``.

    The smallest n >= 2 with ``n >= ((t(1 - alpha/2, n-1) + t(power, n-1)) * sd / |delta|) ** 2``, where
    ``t(q, df)`` is the one-sided q quantile of Student t: the usual normal-approximation formula with
    the z quantiles replaced by t quantiles at the n being tried. It ignores the skew of the noncentral
    t and the far rejection tail: for delta/sd = 1 and 0.5 at alpha 0.05 it gives 10 and 34, as the
    exact noncentral-t power does (0.803 and 0.808 there); where the exact power at the answer lands
    just under 0.8 (0.7999 for delta/sd = 0.3 at alpha 0.0125, n = 127) it can be one seed short. The
    left side rises and the right side falls with n, so the smallest n is found by bisection between
    the normal bound and ``cap``.

    ``delta`` and ``sd`` are the observed ones, so the answer is a rough guide (an observed effect is
    noisy), and it counts all seeds, including those already run.

    Args:
        delta: observed mean paired difference.
        sd: observed standard deviation of the paired differences (> 0).
        alpha: two-sided level of the test. Verdicts pass ``0.05 / m`` for m tests (Bonferroni, the
            first step of Holm): a pair whose p-value beats it is resolved whatever the others show.
        power: the chance of detecting a true ``delta`` of this size, in (0.5, 1).
        cap: the largest n searched.
    Returns:
        n; the string ``">cap"`` when more than ``cap`` seeds are needed (delta about 0); ``None`` when
        ``sd`` is not a positive finite number (nothing to estimate from).
    """
    if not 0.0 < alpha < 1.0 or not 0.5 < power < 1.0:
        raise ConfigError(f"alpha={alpha} must be in (0, 1) and power={power} in (0.5, 1)")
    if not (math.isfinite(delta) and math.isfinite(sd)) or sd <= 0:
        return None
    if delta == 0 or sd / abs(delta) > 1e6:
        return f">{cap}"
    ratio = sd / abs(delta)

    def enough(n: int) -> bool:
        # t(1 - alpha/2) is the two-sided (1 - alpha) critical value; t(power) is two-sided 2 * power - 1
        return n >= ((t_quantile(1.0 - alpha, n - 1) + t_quantile(2.0 * power - 1.0, n - 1)) * ratio) ** 2

    # t quantiles exceed the normal ones, so the normal-approximation n is a lower bound
    lo = max(2, math.ceil(((_z_quantile(1.0 - alpha) + _z_quantile(2.0 * power - 1.0)) * ratio) ** 2))
    if lo > cap or not enough(cap):
        return f">{cap}"
    hi = cap
    while lo < hi:  # smallest n in [lo, hi] with enough(n); enough(hi) holds
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return lo


# ----------------------------------------------------------------------------- pairing


def pairing_keys(finals: pl.DataFrame) -> list[str]:
    """What makes one replicate: (comparison, seed) when the frame says which comparison a run is from.

    Runs hand-picked from several comparisons can share an arm label and a seed while being different
    runs (each comparison prepares its own data); keyed by seed alone, one folding seed would pair with
    the shuffle runs of both comparisons and be counted twice. Keyed by (comparison, seed), a run pairs
    only with the baseline run of its own comparison and seed.
    """
    return ["comparison", "seed"] if "comparison" in finals.columns else ["seed"]


def _per_unit(finals: pl.DataFrame, arm: str, metric: str, keys: list[str], name: str) -> pl.DataFrame:
    rows = finals.filter((pl.col("arm") == arm) & pl.col(metric).is_not_null())
    if "comparison" in keys:
        rows = rows.with_columns(pl.col("comparison").cast(pl.String).fill_null(""))
    # two runs of one arm and replicate (a rerun) are one replicate: averaged, so the seed counts once
    return rows.group_by(keys, maintain_order=True).agg(pl.col(metric).cast(pl.Float64).mean().alias(name))


def paired_differences(finals: pl.DataFrame, arm: str, baseline: str, metric: str) -> np.ndarray:
    """``arm - baseline`` on ``metric`` for every replicate both have (see ``pairing_keys``), in seed order."""
    for col in ("arm", "seed", metric):
        if col not in finals.columns:
            raise DataError(f"final metrics lack column {col!r}; they have {', '.join(finals.columns)}")
    keys = pairing_keys(finals)
    pairs = (
        _per_unit(finals, arm, metric, keys, "a")
        .join(_per_unit(finals, baseline, metric, keys, "b"), on=keys, how="inner")
        .sort(keys)
    )
    diffs = (pairs["a"] - pairs["b"]).to_numpy()
    return diffs[np.isfinite(diffs)]


def paired_delta(finals: pl.DataFrame, arm: str, baseline: str, metric: str, level: float = 0.95) -> dict:
    """The paired difference and its t interval, without a test: {arm, baseline, metric, n_seeds, delta,
    ci_low, ci_high} (None where it cannot be computed). Used for the descriptive Δ of every metric."""
    stats = _paired_stats(paired_differences(finals, arm, baseline, metric), level)
    return {
        "arm": arm,
        "baseline": baseline,
        "metric": metric,
        "n_seeds": stats["n"],
        "delta": stats["delta"],
        "ci_low": stats["ci_low"],
        "ci_high": stats["ci_high"],
    }


def _paired_stats(diffs: np.ndarray, level: float) -> dict:
    n = len(diffs)
    out = {"n": n, "delta": None, "sd": None, "ci_low": None, "ci_high": None, "p": None, "reason": None}
    if n == 0:
        out["reason"] = "no seed has both arms' values"
        return out
    out["delta"] = float(np.mean(diffs))
    if n == 1:
        out["reason"] = "1 seed leaves no spread to test against; run 2 or more seeds"
        return out
    sd = float(np.std(diffs, ddof=1))
    # identical differences in every seed (accuracy on a small benchmark moves in steps) leave no spread:
    # a zero-width interval is not evidence
    if sd <= 1e-9 * max(abs(out["delta"]), 1e-12):
        out["reason"] = (
            f"the difference is {out['delta']:+.4f} in each of the {n} seeds; with no spread "
            "between seeds there is no test, run more seeds"
        )
        return out
    se = sd / math.sqrt(n)
    half = t_quantile(level, n - 1) * se
    out.update(sd=sd, ci_low=out["delta"] - half, ci_high=out["delta"] + half, p=t_test_p(out["delta"] / se, n - 1))
    return out


# ----------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """``arm`` against ``baseline`` on one metric, paired over ``n_seeds`` seeds.

    ``delta`` is the mean of ``arm - baseline``; (``ci_low``, ``ci_high``) its per-pair t interval at
    ``level`` (not adjusted for multiplicity); ``p`` the two-sided paired t-test p-value and
    ``p_adjusted`` its Holm adjustment across every arm x verdict metric of the comparison;
    ``seeds_needed`` the estimate for an unresolved pair (None when resolved or when there is no spread
    to estimate from, ``">1000"`` past the cap); ``verdict`` one of "better", "worse", "unresolved";
    ``reason`` why an unresolved pair has no p-value.
    """

    arm: str
    baseline: str
    metric: str
    n_seeds: int
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    p_adjusted: float | None
    seeds_needed: int | str | None
    verdict: str
    reason: str | None = None
    level: float = 0.95
    alpha: float = ALPHA

    def to_dict(self) -> dict:
        """The JSON entry: exactly the keys of ``JSON_KEYS``."""
        return {k: getattr(self, k) for k in JSON_KEYS}

    @property
    def text(self) -> str:
        """One sentence, e.g. "folding L=3 is better than shuffle on target loss: Δ -0.1100 ..."."""
        label, n = metric_label(self.metric), self.n_seeds
        seeds = f"{n} seed{'s' if n != 1 else ''}"
        if self.p is None:
            return f"{self.arm} vs {self.baseline} on {label}: not resolved with {seeds}; {self.reason}"
        numbers = (
            f"Δ {self.delta:+.4f}, {self.level:.0%} CI {self.ci_low:+.4f} to {self.ci_high:+.4f}, "
            f"p = {_fmt_p(self.p)}, Holm-adjusted p = {_fmt_p(self.p_adjusted)}"
        )
        if self.verdict != "unresolved":
            return f"{self.arm} is {self.verdict} than {self.baseline} on {label} ({numbers}, {seeds})"
        need = (
            f"more than {self.seeds_needed[1:]} seeds"
            if isinstance(self.seeds_needed, str)
            else f"about {self.seeds_needed} seeds"
        )
        return (
            f"{self.arm} vs {self.baseline} on {label}: not resolved with {seeds} ({numbers}); "
            f"{need} would resolve a difference this size"
        )


def _fmt_p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def compare_arms(
    finals: pl.DataFrame, baseline: str, metrics: Sequence[str], level: float = 0.95, alpha: float = ALPHA
) -> list[Verdict]:
    """Verdicts of every other arm against ``baseline`` on each of ``metrics`` that was recorded.

    Args:
        finals: ``compare.final_metrics`` output (run, arm, seed, [comparison], metrics...).
        baseline: the baseline arm label, e.g. "shuffle".
        metrics: the verdict metrics; the Holm family is every (arm, metric) pair that gets a p-value.
        level: coverage of the reported intervals.
        alpha: family-wise error rate of the verdicts.
    Returns:
        One ``Verdict`` per (arm, metric), arms in order of appearance.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha={alpha} must be between 0 and 1 (e.g. 0.05)")
    arms = finals["arm"].unique(maintain_order=True).to_list()
    if baseline not in arms:
        raise DataError(f"baseline arm {baseline!r} has no finished runs; arms present: {', '.join(arms)}")
    present = [m for m in metrics if m in finals.columns and finals[m].drop_nulls().len() > 0]
    cells = [
        (arm, m, _paired_stats(paired_differences(finals, arm, baseline, m), level))
        for arm in arms
        if arm != baseline
        for m in present
    ]
    adjusted = holm([s["p"] for _, _, s in cells])
    n_tests = sum(p is not None for p in adjusted)
    out = []
    for (arm, m, s), p_adj in zip(cells, adjusted):
        verdict, needed = "unresolved", None
        if p_adj is not None and p_adj < alpha:
            verdict = "better" if (s["delta"] < 0) == lower_is_better(m) else "worse"
        elif p_adj is not None:
            needed = seeds_needed(s["delta"], s["sd"], alpha / n_tests)
        out.append(
            Verdict(
                arm,
                baseline,
                m,
                s["n"],
                s["delta"],
                s["ci_low"],
                s["ci_high"],
                s["p"],
                p_adj,
                needed,
                verdict,
                s["reason"],
                level,
                alpha,
            )
        )
    return out


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    """A plain-text table: arm, metric, seeds, Δ, interval, p, adjusted p, seeds needed, verdict."""
    level = verdicts[0].level if verdicts else 0.95
    header = ["arm", "metric", "seeds", "delta", f"{level:.0%} CI", "p", "Holm p", "seeds needed", "verdict"]
    rows = []
    for v in verdicts:
        ci = "-" if v.ci_low is None else f"{v.ci_low:+.4f} .. {v.ci_high:+.4f}"
        rows.append(
            [
                v.arm,
                metric_label(v.metric),
                str(v.n_seeds),
                "-" if v.delta is None else f"{v.delta:+.4f}",
                ci,
                "-" if v.p is None else _fmt_p(v.p),
                "-" if v.p_adjusted is None else _fmt_p(v.p_adjusted),
                "-" if v.seeds_needed is None else str(v.seeds_needed),
                v.verdict,
            ]
        )
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header] + rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])
