"""Statistics over seeds, written with numpy and the standard library: pure
functions, tested against values worked out independently.

- :func:`mean_ci`: mean and Student-t confidence interval of a sample;
- :func:`welch`: Welch's two-sample t-test (unequal variances), two-sided;
- :func:`holm`: Holm's step-down adjustment of a family of p-values;
- :func:`seeds_to_separate`: seeds per variant for a two-sided Welch test
  to detect an observed difference with a given power.
"""
from __future__ import annotations

import functools
import math

import numpy as np

_TINY = 1e-300


def _betacf(a, b, x):
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b), for a, b > 0."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf2(t, df):
    """Two-sided tail probability P(|T| >= |t|) of Student's t with ``df`` degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_cdf(t, df):
    tail = 0.5 * t_sf2(t, df)
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=4096)  # races and replays ask the same few (q, df) thousands of times
def t_ppf(q, df):
    """The ``q`` quantile of Student's t (bisection on the CDF)."""
    if not 0 < q < 1:
        raise ValueError(f"quantile {q} must be in (0, 1)")
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > q:
        lo *= 2
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def mean_ci(values, level=0.95):
    """``(n, mean, low, high)`` of a sample: the mean and its two-sided
    Student-t interval. With n < 2 there is no interval: low = high = NaN."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return n, mean, math.nan, math.nan
    half = t_ppf(0.5 + level / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return n, mean, mean - half, mean + half


def welch(a, b):
    """Welch's t-test of two samples: ``(t, df, p)``, p two-sided. NaN
    where a sample has fewer than two values. Two samples without spread
    give p = 1 if their means are equal and 0 otherwise."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan
    va, vb = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    diff = float(a.mean() - b.mean())
    if va + vb == 0:
        return (0.0 if diff == 0 else math.copysign(math.inf, diff)), math.nan, (1.0 if diff == 0 else 0.0)
    t = diff / math.sqrt(va + vb)
    df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
    return t, df, t_sf2(t, df)


def holm(pvalues):
    """Holm's step-down adjusted p-values, in the input's order. NaNs stay
    NaN and do not count in the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def welch_df(sd_a, sd_b, n):
    """Welch-Satterthwaite degrees of freedom of two samples of ``n`` each
    with standard deviations ``sd_a`` and ``sd_b`` (2n - 2 when they are equal)."""
    va, vb = sd_a**2, sd_b**2
    return (n - 1) * (va + vb) ** 2 / (va**2 + vb**2)


def seeds_to_separate(diff, sd_a, sd_b, power=0.8, alpha=0.05, most=10_000, tried=0):
    """Seeds per variant for the two-sided Welch test at ``alpha`` that the
    report runs to detect ``diff`` with ``power``, if the spreads stay
    ``sd_a`` and ``sd_b``: the smallest n with |diff| / se >= t(1 - alpha/2)
    + t(power), se = sqrt((sd_a^2 + sd_b^2) / n), both quantiles on Welch's
    degrees of freedom for n seeds each (the usual approximation).

    ``tried``: seeds each already tried without separating them. An
    estimate of no more than that is contradicted by the data, so it gives
    None, as does a difference that cannot be estimated or needs more
    than ``most``. A number returned is always above ``tried``."""
    if not all(map(math.isfinite, (diff, sd_a, sd_b))) or diff == 0:
        return None
    var = sd_a**2 + sd_b**2
    if var == 0:  # no spread at all: two seeds each tell any difference
        return 2 if tried < 2 else None
    n = 2
    while n <= most:
        df = welch_df(sd_a, sd_b, n)
        if abs(diff) / math.sqrt(var / n) >= t_ppf(1 - alpha / 2, df) + t_ppf(power, df):
            return n if n > tried else None
        n += 1 if n < 100 else n // 10
    return None
