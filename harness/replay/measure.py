"""What a replay found, per setting: how often the answer is right, what
it costs, and which setting is the cheapest reliable one; and the A/A
check of the report's test."""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..report import decisions, stats
from . import simulate

ALPHA = 0.05
Z95 = 1.959963984540054


def wilson(hits, n):
    """``(low, high)``: the 95% Wilson score interval of a proportion."""
    if n == 0:
        return math.nan, math.nan
    if hits in (0, n):  # the closed forms, without rounding noise at the end that is exact
        edge = n / (n + Z95**2)
        return (0.0, 1 - edge) if hits == 0 else (edge, 1.0)
    p = hits / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _proportion(row, name, flags):
    flags = np.asarray(flags, bool).ravel()
    row[name] = float(flags.mean())
    row[f"{name}_lo"], row[f"{name}_hi"] = wilson(int(flags.sum()), len(flags))


def _regret(row, points):
    row["regret_mean"] = float(np.mean(points))
    row["regret_p95"] = float(np.percentile(points, 95))


def strategy_row(setting, out, recorded):
    """One row of replay.csv for a halving or grid setting: P(the winner is
    in the full sweep's tie set), P(it is its best), regret in points of
    mean validation accuracy, and the FLOPs spent."""
    w = out["winner"]
    unit = recorded.unit[w]
    row = {"strategy": setting.strategy, "eta": setting.eta or None, "min_iterations": setting.min_iterations or None,
           "seeds": setting.seeds}
    _proportion(row, "p_tied", recorded.tied[unit])
    _proportion(row, "p_best", recorded.best[unit])
    _regret(row, 100 * (recorded.truth_mean.max() - recorded.truth_mean[w]))
    full = float(recorded.flops.sum()) * recorded.total
    row["flops_share"] = float(out["flops"].mean()) / (full * len(recorded.seeds))
    row["flops_vs_grid"] = float(out["flops"].mean()) / (full * setting.seeds)
    return row


def _trial_ties(recorded, best):
    """(configs,) whether each configuration is tied with its point's best
    trial: Welch's test on all recorded seeds, Holm-adjusted over the point's
    trials, as the report tests variants against its best."""
    final = recorded.curves[:, :, -1]
    tied = np.zeros(len(recorded.names), bool)
    for p in np.unique(recorded.point):
        rows = np.flatnonzero(recorded.point == p)
        b = rows[recorded.trial[rows] == best[p]][0]
        raw = [math.nan if c == b else stats.welch(final[b], final[c])[2] for c in rows]
        adjusted = stats.holm(raw)
        for c, q in zip(rows, adjusted):
            tied[c] = c == b or (not math.isnan(q) and q >= ALPHA) or (math.isnan(q) and final[c].mean() == final[b].mean())
    return tied


def tune_rows(recorded, search_seeds, resamples, seed):
    """Rows of replay.csv for ``[tune]`` on each number of search seeds:
    P(a point's choice is tied with its best trial), P(it is the best
    trial), regret, and how often the comparison's winner changes."""
    best = simulate.truth_trials(recorded)
    tied = _trial_ties(recorded, best)
    at = {(int(p), int(t)): c for c, (p, t) in enumerate(zip(recorded.point, recorded.trial))}
    points = np.arange(len(best))
    truth_cfg = np.array([at[(p, best[p])] for p in points])
    top = recorded.truth_mean[truth_cfg].argmax()
    rows = []
    for k in search_seeds:
        chosen = simulate.tune_replay(recorded, k, resamples, seed)
        cfg = np.vectorize(lambda p, t: at[(int(p), int(t))])(points[None, :], chosen)
        row = {"strategy": "tune", "eta": None, "min_iterations": None, "seeds": k}
        _proportion(row, "p_tied", tied[cfg])
        _proportion(row, "p_best", chosen == best[None, :])
        _regret(row, 100 * (recorded.truth_mean[truth_cfg][None, :] - recorded.truth_mean[cfg]))
        _proportion(row, "p_winner_changes", recorded.truth_mean[cfg].argmax(axis=1) != top)
        row["flops_share"] = k / len(recorded.seeds)
        row["flops_vs_grid"] = 1.0
        rows.append(row)
    return rows


def recommend(rows, target):
    """The cheapest halving or grid row whose P(tied) reaches ``target``
    (the lower end of its interval need not), or None."""
    ok = [r for r in rows if r["strategy"] != "tune" and r["p_tied"] >= target]
    return min(ok, key=lambda r: (r["flops_share"], -r["p_tied"])) if ok else None


# --- the A/A check ------------------------------------------------------------------

def differs(a, b, alpha=ALPHA, margin=decisions.DEFAULT_MARGIN / 100):
    """The report's verdict on two samples (fractions): True when its
    classes call ``b`` worse or better than ``a`` (:func:`decisions.classify`,
    Welch's test, TOST within ``margin``); equivalent and undecided are not
    different. The one place to switch to another rule."""
    decision = decisions.classify(np.asarray(a, float), np.asarray(b, float), margin, alpha, paired=False)[0]
    return decision in ("worse", "better")


def _halves(n, splits, rng):
    """Index sets of the first half of each split of ``n`` values: all
    ``C(n, n // 2)`` of them when there are at most ``splits``, else
    ``splits`` random ones."""
    half = n // 2
    if math.comb(n, half) <= splits:
        return [list(c) for c in itertools.combinations(range(n), half)]
    return [rng.permutation(n)[:half] for _ in range(splits)]


def aa_check(groups, splits=200, seed=0, alpha=ALPHA):
    """Split each group's values (one variant's seeds) into two halves and
    apply :func:`differs`: every split when there are at most ``splits``,
    else ``splits`` random ones. Groups of fewer than 4 values are skipped.
    Returns ``{tests, different, rate, lo, hi, groups, per_group: [rates], alpha}``."""
    rng = np.random.default_rng([seed, 4242])
    per, calls, tests = [], 0, 0
    for values in groups:
        values = np.asarray(values, float)
        if len(values) < 4:
            continue
        hits, ways = 0, _halves(len(values), splits, rng)
        for first in ways:
            other = np.ones(len(values), bool)
            other[first] = False
            hits += differs(values[first], values[other], alpha)
        per.append(hits / len(ways))
        calls, tests = calls + hits, tests + len(ways)
    lo, hi = wilson(calls, tests)
    return {"tests": tests, "different": calls, "rate": calls / tests if tests else math.nan, "lo": lo, "hi": hi,
            "groups": len(per), "per_group": per, "alpha": alpha}
