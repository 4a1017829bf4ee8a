"""Each variant classed against the best: worse, equivalent, undecided or
better, with the difference and its 95% interval, paired over seeds where
the design is paired. Pure functions of per-seed accuracies, so the
report, racing (:mod:`harness.racing`) and the replay's A/A check decide
alike.

- :func:`difference`: the difference of two variants, its interval, the
  two-sided test of no difference and the equivalence test (TOST);
- :func:`classify`: one comparison, a family of one;
- :func:`classify_family`: many comparisons against one reference, Holm
  over the family (the difference tests and the equivalence tests each);
- :func:`design`: whether a table of variants is paired, and why;
- :func:`superiority`: P(A > B) with a seeded bootstrap interval.

Values are in whatever unit they come in (the report passes fractions);
``margin`` is in the same unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from . import stats

ALPHA = 0.05
DEFAULT_MARGIN = 0.2  # points of validation accuracy: [report] margin
# The four classes, and None: a side with fewer than two seeds is untested.
DECISIONS = ("worse", "equivalent", "undecided", "better")
# Settings that change a seed's minibatch order (or the rows it runs over):
# variants that differ in one of them do not share their seeds' data order.
ORDER_SETTINGS = ("batch_size", "train_size", "data_seed", "validation")
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 25  # fixed: the same seeds give the same interval, every time


def check_margin(value, where):
    """``[report] margin`` in points: a number in (0, 100). Returns it as a
    float; raises ConfigError naming ``where`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 100:
        raise ConfigError(f"{where} margin: must be a number of accuracy points in (0, 100) such as 0.2, "
                          f"got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Difference:
    """``other - reference``: its mean ``diff``, 95% interval ``low``,
    ``high``, the two-sided p of no difference and the TOST p of a
    difference within ±margin; ``paired`` says which analysis gave them."""
    diff: float
    low: float
    high: float
    p_diff: float
    p_equiv: float
    paired: bool


def _untested(paired):
    return Difference(math.nan, math.nan, math.nan, math.nan, math.nan, paired)


def _se_df(reference, other, paired):
    """The difference's mean, standard error and degrees of freedom: of the
    per-seed differences when paired, Welch's otherwise."""
    if paired:
        d = other - reference
        return float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d)), len(d) - 1.0
    va, vb = float(reference.var(ddof=1)) / len(reference), float(other.var(ddof=1)) / len(other)
    diff = float(other.mean() - reference.mean())
    if va + vb == 0:
        return diff, 0.0, math.nan
    df = (va + vb) ** 2 / (va**2 / (len(reference) - 1) + vb**2 / (len(other) - 1))
    return diff, math.sqrt(va + vb), df


def difference(reference, other, margin, paired=False, level=0.95):
    """``Difference`` of ``other`` against ``reference`` (arrays of per-seed
    values, shape (n,) each; paired: the same seeds in the same order).
    TOST: the larger of the one-sided p of H0 diff <= -margin and of H0
    diff >= margin. Without spread the answers are exact: p = 0 or 1."""
    a, b = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    if paired and len(a) != len(b):
        raise ValueError(f"paired samples must be as long: {len(a)} and {len(b)}")
    if len(a) < 2 or len(b) < 2:
        return _untested(paired)
    diff, se, df = _se_df(a, b, paired)
    if se == 0:
        return Difference(diff, diff, diff, 0.0 if diff != 0 else 1.0, 0.0 if abs(diff) < margin else 1.0, paired)
    half = stats.t_ppf(0.5 + level / 2, df) * se
    p_low = 1.0 - stats.t_cdf((diff + margin) / se, df)  # H0: diff <= -margin
    p_high = stats.t_cdf((diff - margin) / se, df)       # H0: diff >= +margin
    return Difference(diff, diff - half, diff + half, stats.t_sf2(diff / se, df), max(p_low, p_high), paired)


def decide(diff, p_diff, p_equiv, alpha=ALPHA):
    """The class from (adjusted) p-values. Equivalent first: a difference
    shown smaller than the margin does not matter, by the margin's own
    definition, even when it is also shown not to be zero."""
    if math.isnan(p_diff) or math.isnan(p_equiv):
        return None
    if p_equiv < alpha:
        return "equivalent"
    if p_diff < alpha:
        return "worse" if diff < 0 else "better"
    return "undecided"


def classify_family(reference, others, margin, alpha=ALPHA, paired=False):
    """Each of ``others`` (a list of per-seed arrays) against ``reference``:
    a list of ``(decision, Difference, p_diff_holm, p_equiv_holm)``, Holm's
    adjustment over the family for the difference tests and, apart, for the
    equivalence tests."""
    found = [difference(reference, o, margin, paired) for o in others]
    p_diff = stats.holm([d.p_diff for d in found])
    p_equiv = stats.holm([d.p_equiv for d in found])
    return [(decide(d.diff, pd_, pe, alpha), d, pd_, pe) for d, pd_, pe in zip(found, p_diff, p_equiv)]


def classify(best_values, other_values, margin, alpha=ALPHA, paired=False):
    """One comparison (a family of one): ``(decision, diff, (low, high))``,
    ``diff`` = mean of other - best (per-seed when ``paired``), its 95%
    interval; decision one of :data:`DECISIONS`, or None with fewer than
    two values a side."""
    decision, d, _, _ = classify_family(best_values, [other_values], margin, alpha, paired)[0]
    return decision, d.diff, (d.low, d.high)


def design(seeds, minibatched, varying):
    """``(paired, why)``: whether the variants of a table are compared seed by
    seed. ``seeds``: each variant's seeds that have an accuracy (a list
    each); ``minibatched``: whether every variant trains on minibatches
    (None: not recorded); ``varying``: the settings that tell them apart.

    A seed fixes the minibatch order (``train.Batches``: the generator
    ``[seed, 1]`` over the training rows, which ``data_seed``,
    ``train_size`` and ``validation`` choose), whatever the architecture.
    Initial weights and dropout masks are shared only by variants of the
    same layers: their shapes, and the dropout chunks, follow the layers."""
    if len(seeds) < 2:
        return False, "one variant: nothing to compare"
    if any(len(set(s)) < len(s) for s in seeds):
        return False, "Welch's test: a variant ran one seed more than once, so its seeds do not pair"
    sets = [frozenset(s) for s in seeds]
    if len(set(sets)) > 1 or len(sets[0]) < 2:
        return False, ("Welch's test: the variants do not all have the same seeds (with an accuracy), so "
                       "there are no per-seed pairs")
    if "sweep" in varying:  # sweeps may be trained on different data (compare --allow-different-data)
        return False, ("Welch's test: the variants come from different sweeps, and across sweeps the report "
                       "does not check that a seed gives them the same training rows")
    order = [k for k in ORDER_SETTINGS if k in varying]
    if order:
        return False, (f"Welch's test: the variants differ in {', '.join(order)}, so one seed does not give "
                       "them the same training rows and minibatch order")
    if minibatched is None:
        return False, ("Welch's test: the runs do not record their batch size and training rows, so whether "
                       "a seed gives the variants the same minibatch order cannot be checked")
    if not minibatched and "layers" in varying:
        return False, ("Welch's test: full-batch training has no minibatch order, and architectures that "
                       "differ share neither initial weights nor dropout masks, so a seed pairs nothing")
    shared = "the same minibatch order" if minibatched else "the same initial weights"
    return True, (f"paired over seeds: every variant ran the same {len(sets[0])} seeds, and a seed gives "
                  f"them {shared}, so the per-seed differences are used (paired t interval)")


def _auc(a, b):
    """P(a fresh value of a beats one of b), ties counted half."""
    return float(((a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])).mean())


def superiority(a, b, paired=False, level=0.95, resamples=BOOTSTRAP, seed=BOOTSTRAP_SEED):
    """``(p, low, high)``: the probability that a seed of ``a`` beats a seed
    of ``b`` and its percentile bootstrap interval. Paired: the share of
    seeds on which a beats b (ties half), seeds resampled; otherwise the
    share of all (a, b) pairs, each sample resampled on its own. The
    generator is seeded, so the interval is the same on every call."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    if paired:
        wins = (a > b) + 0.5 * (a == b)
        boot = wins[rng.integers(0, len(a), (resamples, len(a)))].mean(axis=1)
        point = float(wins.mean())
    else:
        ia, ib = rng.integers(0, len(a), (resamples, len(a))), rng.integers(0, len(b), (resamples, len(b)))
        boot = np.array([_auc(a[i], b[j]) for i, j in zip(ia, ib)])
        point = _auc(a, b)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)


def seeds_to_separate_paired(diff, sd_diff, power=0.8, alpha=ALPHA, most=10_000, tried=0):
    """Seeds for the paired t-test at ``alpha`` to detect ``diff`` with
    ``power`` if the per-seed differences keep the spread ``sd_diff``: the
    smallest n with |diff| / (sd_diff / sqrt(n)) >= t(1 - alpha/2) + t(power)
    on n - 1 degrees of freedom. None as :func:`stats.seeds_to_separate`
    gives it: a count not above ``tried``, or none to be had."""
    if not (math.isfinite(diff) and math.isfinite(sd_diff)) or diff == 0:
        return None
    if sd_diff == 0:
        return 2 if tried < 2 else None
    n = 2
    while n <= most:
        if abs(diff) * math.sqrt(n) / sd_diff >= stats.t_ppf(1 - alpha / 2, n - 1) + stats.t_ppf(power, n - 1):
            return n if n > tried else None
        n += 1 if n < 100 else n // 10
    return None
