"""A fitted accuracy-cost frontier per family of architectures (one depth and
shape and settings, the width varying): validation error against parameters,

    error = a * params^(-b) + c,

a power law falling to a floor ``c``. The fit is on the seed means: a grid
over the floor ``c`` (below the smallest error) with, at each, a straight
line through ``log(error - c)`` against ``log params``, keeping the ``c``
whose curve has the least squared error, then refined by Levenberg-Marquardt
steps on the squared error itself (c kept >= 0). Its band is a seeded bootstrap over
seeds (each width's seeds drawn again with replacement, the fit redone).

The fit is rejected, and no figure read from it, when the errors do not fall
with cost (``b <= 0``) or when a lack-of-fit F test finds the seed means
further from the curve than their seeds' scatter allows (p < REJECT_P).
The audit fits without the largest width and predicts it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import stats

MIN_WIDTHS = 4         # 3 parameters, so that a 4th width tests the form (and the audit has 3 to fit)
REJECT_P = 0.01        # the lack-of-fit test's threshold
BOOTSTRAP = 200
SEED = 0
LEVEL = 0.95
BIG = 1e300
LM_STEPS = 30          # Levenberg-Marquardt steps from the grid's best start
GRID = 400             # floors tried, from 0 to just below the smallest error


def fit_curve(cost, err):
    """``(a, b, c)`` of ``err = a * cost^-b + c`` for arrays ``cost, err``
    (``(k,)``, k >= 3, every err > 0): the least squares, from the best of a
    grid over ``c`` in ``[0, min err)`` with a line in log space at each."""
    return tuple(float(v) for v in fit_many(cost, np.asarray(err, float)[None, :])[0])


def fit_many(cost, errs):
    """:func:`fit_curve` of each row of ``errs`` ``(B, k)``: ``(B, 3)``."""
    x = np.log(np.asarray(cost, float))
    errs = np.asarray(errs, float)
    floors = errs.min(axis=1)[:, None] * (np.arange(GRID) / GRID)[None, :]      # (B, GRID)
    y = np.log(errs[:, None, :] - floors[:, :, None])                           # (B, GRID, k)
    xc = x - x.mean()
    slope = (y * xc).sum(axis=2) / (xc ** 2).sum()                               # -b
    icpt = y.mean(axis=2) - slope * x.mean()                                     # log a
    pred = np.exp(icpt[:, :, None] + slope[:, :, None] * x) + floors[:, :, None]
    best = ((errs[:, None, :] - pred) ** 2).sum(axis=2).argmin(axis=1)
    rows = np.arange(len(errs))
    start = np.column_stack([icpt[rows, best], -slope[rows, best], floors[rows, best]])
    theta = _levenberg_marquardt(x, errs, start)
    return np.column_stack([np.exp(theta[:, 0]), theta[:, 1], theta[:, 2]])


def _levenberg_marquardt(x, errs, theta, steps=LM_STEPS):
    """Least squares in the errors' own space from the grid's start: ``theta``
    ``(B, 3)`` as (log a, b, c), each row damped on its own; c kept >= 0."""
    def sse(t):
        pred = np.exp(t[:, :1] - t[:, 1:2] * x) + t[:, 2:]
        return ((errs - pred) ** 2).sum(axis=1), errs - pred

    damping = np.full(len(errs), 1e-3)
    cost, resid = sse(theta)
    for _ in range(steps):
        power = np.exp(theta[:, :1] - theta[:, 1:2] * x)                              # (B, k)
        J = np.stack([power, -power * x, np.ones_like(power)], axis=2)                 # (B, k, 3)
        JtJ = J.transpose(0, 2, 1) @ J
        diag = np.einsum("bii->bi", JtJ)
        step = np.linalg.solve(JtJ + damping[:, None, None] * np.eye(3) * (diag[:, :, None] + 1e-12),
                               (J.transpose(0, 2, 1) @ resid[:, :, None]))[:, :, 0]
        trial = theta + step
        trial[:, 2] = np.maximum(trial[:, 2], 0.0)
        new_cost, new_resid = sse(trial)
        better = new_cost < cost
        theta = np.where(better[:, None], trial, theta)
        cost, resid = np.where(better, new_cost, cost), np.where(better[:, None], new_resid, resid)
        damping = np.where(better, damping / 3, damping * 4)
    return theta


def curve(params, cost):
    a, b, c = params
    return a * np.asarray(cost, float) ** (-b) + c


def invert(params, err):
    """The cost at which the curve reaches error ``err``: inf at or under its floor."""
    a, b, c = params
    if b <= 0 or err <= c:
        return math.inf
    return (a / (err - c)) ** (1 / b)


def f_sf(f, d1, d2):
    """P(F >= f) for Fisher's F with ``d1, d2`` degrees of freedom."""
    if f <= 0:
        return 1.0
    return stats.betainc(d2 / 2, d1 / 2, d2 / (d2 + d1 * f))


def lack_of_fit(cost, seeds, params):
    """``(F, p)`` of the lack-of-fit F test: the seed means' squared distance
    from the curve (``k - 3`` degrees of freedom) against the seeds' scatter
    round their means (``N - k``). NaN when either has none."""
    k, n = len(seeds), sum(len(s) for s in seeds)
    if k <= 3 or n <= k:
        return math.nan, math.nan
    means = np.array([np.mean(s) for s in seeds])
    lof = float(np.sum([len(s) * (m - f) ** 2 for s, m, f in zip(seeds, means, curve(params, cost))])) / (k - 3)
    pure = float(sum(np.sum((np.asarray(s) - np.mean(s)) ** 2) for s in seeds)) / (n - k)
    if pure <= 0:
        return math.inf, 0.0
    f = lof / pure
    return f, f_sf(f, k - 3, n - k)


@dataclass(frozen=True)
class Fit:
    """A family's fit: ``params`` (a, b, c) on the seed means, ``boot``
    ``(B, 3)`` the bootstrap's, ``p`` the lack-of-fit test's p-value and
    ``rejected`` the reason it is not used, or ""."""

    cost: np.ndarray
    means: np.ndarray
    params: tuple
    boot: np.ndarray
    p: float
    rejected: str

    def interval(self, fn):
        """``(lo, hi)``: the central LEVEL share of ``fn(params)`` over the bootstrap."""
        values = np.array([fn(p) for p in self.boot], float)
        tail = 100 * (1 - LEVEL) / 2
        big = np.where(np.isinf(values), BIG, values)  # inf (never reached) sorts last, and stays inf
        return tuple(math.inf if v >= BIG else float(v) for v in np.percentile(big, [tail, 100 - tail]))

    def band(self, xs):
        """``(lo, hi)`` ``(len(xs),)`` each: the bootstrap band of the curve."""
        preds = np.array([curve(p, xs) for p in self.boot])
        tail = 100 * (1 - LEVEL) / 2
        return np.percentile(preds, tail, axis=0), np.percentile(preds, 100 - tail, axis=0)


def bootstrap(cost, seeds, n=BOOTSTRAP, seed=SEED):
    """``(n, 3)`` fits of seed means redrawn with replacement within each width."""
    rng = np.random.default_rng(seed)
    means = np.column_stack([rng.choice(s, (n, len(s))).mean(axis=1) for s in seeds])
    return fit_many(cost, means)


def fit(cost, seeds, n=BOOTSTRAP, seed=SEED):
    """The :class:`Fit` of per-width seed errors ``seeds`` (a list of arrays,
    one per width, fractions) at costs ``cost`` ``(k,)``."""
    cost = np.asarray(cost, float)
    seeds = [np.asarray(s, float) for s in seeds]
    means = np.array([np.mean(s) for s in seeds])
    params = fit_curve(cost, means)
    _, p = lack_of_fit(cost, seeds, params)
    rejected = ""
    if params[1] <= 0 or params[0] <= 0:
        rejected = "the error does not fall as the cost grows"
    elif not math.isnan(p) and p < REJECT_P:
        rejected = f"the seed means stray from the curve more than their seeds scatter (lack-of-fit p = {p:.2g})"
    return Fit(cost, means, params, bootstrap(cost, seeds, n, seed), p, rejected)


def audit(cost, seeds, n=BOOTSTRAP, seed=SEED):
    """Fit without the largest cost and predict it: ``(predicted, lo, hi,
    measured, miss)`` in error fractions; the interval is the bootstrap's
    spread of the prediction (its variance, corrected for few seeds) plus
    the scatter of a mean of as many seeds as the held-out width has (pooled
    over the fitted widths), a t interval on the pooled degrees of freedom;
    ``miss`` is how
    far the measured mean lies outside it (0 inside)."""
    order = np.argsort(cost)
    cost = np.asarray(cost, float)[order]
    seeds = [np.asarray(seeds[i], float) for i in order]
    held, rest = seeds[-1], seeds[:-1]
    part = fit(cost[:-1], rest, n, seed)
    pooled = [s - np.mean(s) for s in rest if len(s) > 1]
    dof = sum(len(s) - 1 for s in pooled)
    sd = math.sqrt(sum(float(np.sum(s ** 2)) for s in pooled) / dof) if dof else 0.0
    predicted = float(curve(part.params, cost[-1]))
    boot = np.array([curve(p, cost[-1]) for p in part.boot])
    m = min(len(s) for s in rest)  # a bootstrap of m seeds understates the spread by sqrt((m - 1) / m)
    spread = math.sqrt(float(np.var(boot)) * m / max(m - 1, 1) + sd ** 2 / len(held))
    half = stats.t_ppf(1 - (1 - LEVEL) / 2, max(dof, 1)) * spread
    lo, hi = predicted - half, predicted + half
    measured = float(np.mean(held))
    miss = max(lo - measured, measured - hi, 0.0)
    return predicted, lo, hi, measured, miss
