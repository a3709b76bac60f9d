"""Student t intervals and tests for small numbers of seeds (seeds are the unit of replication).

The t distribution's central probability is computed exactly for integer degrees of freedom
(Abramowitz & Stegun 26.7.3 / 26.7.4), so scipy is not a dependency; a dev-only test checks it against
scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..errors import ConfigError


def _t_central_prob(t: float, df: int) -> float:
    """P(|T| < t) for Student t with integer ``df`` (Abramowitz & Stegun 26.7.3 / 26.7.4, exact)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        # odd df: (2/pi) * (theta + sin*cos * (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + s * math.cos(theta) * total)
    # even df: sin * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    term, total = 1.0, 1.0
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


@lru_cache(maxsize=256)
def t_quantile(level: float, df: int) -> float:
    """Two-sided critical value t* with P(|T| < t*) = ``level`` for Student t with ``df`` dof.

    Args:
        level: coverage in (0, 1), e.g. 0.95.
        df: degrees of freedom, a positive integer (n - 1 for n seeds).
    Returns:
        t*, e.g. 12.706 for df=1 and 4.303 for df=2 at level 0.95.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"confidence level={level} must be between 0 and 1 (e.g. 0.95)")
    if int(df) != df or df < 1:
        raise ConfigError(f"degrees of freedom df={df} must be a positive integer")
    df = int(df)
    # P(|T| < t) rises monotonically in theta = atan(t / sqrt(df)) over [0, pi/2): bisect theta.
    lo, hi = 0.0, math.pi / 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_central_prob(math.sqrt(df) * math.tan(mid), df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return math.sqrt(df) * math.tan(0.5 * (lo + hi))


def t_half_widths(std: np.ndarray, n: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Half-widths t*(n-1) * std / sqrt(n), vectorised; NaN where n < 2 (no spread to estimate)."""
    std, n = np.asarray(std, dtype=float), np.asarray(n, dtype=float)
    crit = np.full(n.shape, np.nan)
    for k in np.unique(n[n >= 2]):
        crit[n == k] = t_quantile(level, int(k) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return crit * std / np.sqrt(n)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, t-interval half-width and count of the finite ``values`` (half-width NaN for n < 2)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    std = float(np.std(x, ddof=1)) if n > 1 else math.nan
    return float(np.mean(x)), float(t_half_widths(np.array([std]), np.array([n]), level)[0]), n
