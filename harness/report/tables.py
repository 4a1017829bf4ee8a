"""The report's tables, from the CSV files alone: runs grouped into variants
with intervals over seeds, ties with the best, the verdict, equal-budget
views and the Pareto front. Accuracies are fractions in the frames and
percent once shown."""
from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..status import RunStatus, in_comparison, mask
from . import decisions, stats

ALPHA = decisions.ALPHA
NEAR_POINTS = 0.5      # "within 0.5 points of the best"
DEFAULT_TARGET = 0.97  # validation accuracy the equal-budget view asks for, unless [report] target says
# Settings that tell variants apart when they vary: every RunConfig field
# but the architecture (its own key), the seed (what a variant is averaged
# over) and those that never change the numbers. "sweep" is the folder of
# a run in a cross-sweep comparison.
NOT_VARIANT = ("layers", "seed", "timeout", "dataset", "path")
VARIANT_SETTINGS = ("sweep",) + tuple(f.name for f in fields(RunConfig) if f.name not in NOT_VARIANT)


# --- variants ---------------------------------------------------------------------

def variant_keys(summary):
    """The columns that tell runs apart apart from their seed: the layers and
    every setting that varies among them (derived from the runs themselves)."""
    varying = [c for c in VARIANT_SETTINGS if c in summary and summary[c].astype(str).nunique() > 1]
    return ["layers"] + varying


# A setting that is another way of saying one shown beside it: the
# iterations an ``epochs`` value comes to, say.
RESTATES = {"iterations": ("epochs",), "eval_every": ("epochs",)}


def label_keys(frame, keys):
    """The ``keys`` a label shows: every setting that varies among the
    variants of ``frame``, except one that only restates the sweep (in a
    comparison of sweeps) or another key (:data:`RESTATES`). A setting that
    merely happens to follow from the layers or another setting (a momentum
    variant's own lr) is still shown: the reader cannot know it follows."""
    frame = frame[keys].astype(str)
    kept = list(keys)
    for key in reversed([k for k in keys[1:] if k != "sweep"]):
        basis = [k for k in ("sweep", *RESTATES.get(key, ())) if k in kept and k != key]
        if basis and (frame.groupby(basis)[key].nunique() <= 1).all():
            kept.remove(key)
    return kept


def variant_label(row, keys):
    """"784-256-10" alone, or with the settings that tell its variants apart."""
    return ", ".join([str(row["layers"])] + [f"{k} {row[k]}" for k in keys[1:]])


def _bounded(lo, hi):
    """An interval clipped to accuracy's bounds [0, 1] for display, and
    whether it had to be."""
    if math.isnan(lo):
        return lo, hi, False
    return max(lo, 0.0), min(hi, 1.0), bool(lo < 0.0 or hi > 1.0)


def _minibatched(runs):
    """Whether every run trained on minibatches (labels may hold settings as text)."""
    import pandas as pd

    batch = pd.to_numeric(runs.batch_size, errors="coerce").fillna(0)
    return bool(((batch > 0) & (batch < pd.to_numeric(runs.n_train, errors="coerce"))).all())


def grouped(summary):
    """Runs in a comparison grouped over seeds, one row per variant, ranked by
    mean validation accuracy: ``runs`` (seeds), ``seeds`` (those with an
    accuracy), mean and 95% t interval of validation (and test) accuracy,
    clipped to [0, 1] (``clipped`` says where), and the costs. ``accs``
    holds each variant's per-seed validation accuracies, ``seed_ids`` their
    seeds and ``minibatched`` whether its runs drew minibatches (None: not
    recorded), for the tests against the best (:mod:`.decisions`)."""
    ok = summary[in_comparison(summary.status)].copy()
    keys = variant_keys(ok)
    ok[keys] = ok[keys].astype(str).where(ok[keys].notna(), "")  # groupable, NaN-free keys
    rows = []
    for values, runs in ok.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        n, mean, lo, hi = stats.mean_ci(runs.final_val_acc)
        lo, hi, clipped = _bounded(lo, hi)
        row = dict(zip(keys, values))
        row.update(runs=len(runs), seeds=n, val_acc=mean, val_lo=lo, val_hi=hi, val_sd=runs.final_val_acc.std(),
                   accs=runs.final_val_acc.dropna().to_numpy(float),
                   seed_ids=list(runs.seed[runs.final_val_acc.notna()]) if "seed" in runs else [],
                   minibatched=(None if not {"batch_size", "n_train"} <= set(runs.columns) else
                                _minibatched(runs)),
                   train_acc=runs.final_train_acc.mean(), depth=runs.depth.iloc[0], width=runs.width.iloc[0],
                   n_params=runs.n_params.iloc[0], flops_per_iter=runs.flops_per_iter.iloc[0],
                   s_per_iter=runs.median_iter_seconds.median(),
                   diverged=int(mask(runs.status, RunStatus.DIVERGED).sum()), run_ids=list(runs.run_id))
        if "test_acc" in runs and runs.test_acc.notna().any():
            _, row["test_acc"], lo, hi = stats.mean_ci(runs.test_acc)
            row["test_lo"], row["test_hi"], test_clipped = _bounded(lo, hi)
            clipped = clipped or test_clipped
        row["clipped"] = clipped
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    short = label_keys(out, keys)
    out["label"] = [variant_label(row, short) for _, row in out.iterrows()]
    return out.sort_values("val_acc", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def with_ties(g, margin=decisions.DEFAULT_MARGIN):
    """``g`` with each variant classed against the best (:mod:`.decisions`):
    ``decision`` (worse, equivalent, undecided, better; "untested" where a
    side has fewer than two seeds), ``diff`` (its mean minus the best's, a
    fraction) and its 95% interval ``diff_lo``, ``diff_hi``, ``p_vs_best`` (the test of no
    difference, Holm-adjusted over the table) and ``p_equiv`` (TOST within
    ± ``margin`` points, Holm-adjusted). Paired over seeds where the design
    is; ``g.attrs["analysis"]`` says which and why, ``g.attrs["margin"]``
    the margin in points."""
    g = g.copy()
    if g.empty:
        return g
    varying = set(g.columns) & set(VARIANT_SETTINGS) | ({"layers"} if g.layers.nunique() > 1 else set())
    known = g.minibatched.notna().all()
    paired, why = decisions.design(list(g.seed_ids), bool(g.minibatched.all()) if known else None, varying)
    # paired: each variant's accuracies in one seed order (accs and seed_ids are in the same row order)
    values = [a[np.argsort(s, kind="stable")] for a, s in zip(g.accs, g.seed_ids)] if paired else list(g.accs)
    found = decisions.classify_family(values[0], values[1:], margin / 100, ALPHA, paired)
    g["decision"] = ["best"] + [f[0] or "untested" for f in found]
    for col, get in (("diff", "diff"), ("diff_lo", "low"), ("diff_hi", "high")):
        g[col] = [0.0] + [getattr(f[1], get) for f in found]
    g["p_vs_best"] = [math.nan] + [f[2] for f in found]
    g["p_equiv"] = [math.nan] + [f[3] for f in found]
    g.attrs.update(paired=paired, analysis=why, margin=margin)
    return g


def comparison_csv(g, keys):
    """The rows of ``comparison.csv``: validation accuracies in percent,
    as the ``_pct`` in their column names says."""
    frame = pd.DataFrame({"variant": g.label})
    for k in keys:
        frame[k] = g[k]
    frame["n"] = g.seeds
    frame["val_acc_pct"] = 100 * g.val_acc
    frame["ci_low_pct"] = 100 * g.val_lo
    frame["ci_high_pct"] = 100 * g.val_hi
    frame["diff_pct"] = 100 * g["diff"]
    frame["diff_low_pct"] = 100 * g.diff_lo
    frame["diff_high_pct"] = 100 * g.diff_hi
    frame["p_vs_best"] = g.p_vs_best
    frame["decision"] = g.decision
    return frame


# --- the verdict --------------------------------------------------------------------

def pct(mean, lo=None, hi=None):
    """"97.83%" or "97.83% [97.60, 98.06]" (a 95% interval); "n/a" for NaN."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    text = f"{100 * mean:.2f}%"
    if lo is not None and not math.isnan(lo):
        text += f" [{100 * lo:.2f}, {100 * hi:.2f}]"
    return text


def _si(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


# --- equal budgets and the Pareto front ---------------------------------------------

def per_run_progress(metrics):
    """Each run's evaluations with the training seconds spent up to them:
    columns run_id, iteration, val_acc, train_seconds."""
    if metrics.empty:
        return pd.DataFrame(columns=["run_id", "iteration", "val_acc", "train_seconds"])
    m = metrics.sort_values(["run_id", "iteration"]).copy()
    if "train_seconds" not in m:  # a packed sweep's rows carry it, summed over all iterations
        m["train_seconds"] = m.groupby("run_id").iter_seconds.cumsum()
    return m[m.val_acc.notna()][["run_id", "iteration", "val_acc", "train_seconds"]]


def budgets(g, metrics, target):
    """Equal-budget views per variant: ``(to_target, at_budget, budget_secs)``.

    ``to_target``: the median training seconds and iterations at which a
    variant's seeds first reach validation accuracy ``target``, and how many
    did. ``at_budget``: the mean validation accuracy each variant had at the
    last evaluation within each of three training-time budgets (a quarter,
    half and all of the quickest variant's training time)."""
    prog = per_run_progress(metrics)
    reach, at = [], []
    totals = {}
    for _, row in g.iterrows():
        runs = prog[prog.run_id.isin(row.run_ids)]
        firsts = runs[runs.val_acc >= target].groupby("run_id").first()
        reach.append({"variant": row.label, "seeds reaching": f"{len(firsts)} of {row.seeds}",
                      "training seconds": firsts.train_seconds.median() if len(firsts) else math.nan,
                      "iterations": firsts.iteration.median() if len(firsts) else math.nan})
        totals[row.label] = runs.groupby("run_id").train_seconds.max().median() if not runs.empty else math.nan
    quickest = np.nanmin(list(totals.values())) if totals and not all(map(math.isnan, totals.values())) else math.nan
    secs = [quickest * f for f in (0.25, 0.5, 1.0)] if not math.isnan(quickest) else []
    for _, row in g.iterrows():
        runs = prog[prog.run_id.isin(row.run_ids)]
        entry = {"variant": row.label}
        for b in secs:
            within = runs[runs.train_seconds <= b].groupby("run_id").val_acc.last()
            entry[f"{b:.3g} s"] = within.mean() if len(within) else math.nan
        at.append(entry)
    return pd.DataFrame(reach), pd.DataFrame(at), secs


def time_spread(g, metrics):
    """``g`` with each variant's time per iteration from its runs' metric
    rows, all iterations and seeds pooled: ``s_per_iter`` their median and
    ``s_lo``, ``s_hi`` their 25th and 75th percentiles. The same rows give
    the point and its spread, so the point lies inside it. A variant without
    metric rows keeps the median of its runs' medians, spread-free."""
    g = g.copy()
    mid, lo, hi = [], [], []
    for _, row in g.iterrows():
        t = metrics[metrics.run_id.isin(row.run_ids)].iter_seconds.dropna()
        q = t.quantile([0.25, 0.5, 0.75]).to_numpy() if len(t) else [row.s_per_iter] * 3
        lo.append(q[0])
        mid.append(q[1])
        hi.append(q[2])
    g["s_lo"], g["s_per_iter"], g["s_hi"] = lo, mid, hi
    return g


def pareto(points):
    """Rows of ``points`` (s_per_iter, val_acc; optionally s_lo and s_hi,
    the spread of its time) on the Pareto front, sorted by time: no other
    point is at least as accurate and clearly cheaper, its time spread
    wholly below this one's. Without spreads, clearly cheaper is cheaper."""
    lo = points.s_lo if "s_lo" in points else points.s_per_iter
    hi = points.s_hi if "s_hi" in points else points.s_per_iter
    front = []
    for i in points.index:
        beaten = ((points.val_acc >= points.val_acc[i]) & (hi < lo[i]) & (points.index != i)).any()
        if not beaten and not math.isnan(points.val_acc[i]):
            front.append(i)
    return points.loc[front].sort_values("s_per_iter")
