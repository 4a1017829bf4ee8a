"""The report's tables, from the CSV files alone: runs grouped into variants
with intervals over seeds, ties with the best, the verdict, equal-budget
views and the Pareto front. Accuracies are fractions in the frames and
percent once shown."""
from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from .. import store
from ..config import RunConfig
from ..errors import ConfigError
from ..status import in_comparison
from . import stats

ALPHA = 0.05
NEAR_POINTS = 0.5      # "within 0.5 points of the best"
DEFAULT_TARGET = 0.97  # validation accuracy the equal-budget view asks for, unless [report] target says
# Settings that tell variants apart when they vary: every RunConfig field
# but the architecture (its own key), the seed (what a variant is averaged
# over) and those that never change the numbers. "sweep" is the folder of
# a run in a cross-sweep comparison.
NOT_VARIANT = ("layers", "seed", "timeout", "dataset", "path")
VARIANT_SETTINGS = ("sweep",) + tuple(f.name for f in fields(RunConfig) if f.name not in NOT_VARIANT)


# --- reading --------------------------------------------------------------------

def load(folder):
    """``(summary, metrics, folder)``: the summary (one row per run) and all
    runs' metrics rows with their run id. Raises ConfigError for a folder
    that holds no sweep results."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such results folder")
    path = folder / "summary.csv"
    if not path.is_file():
        raise ConfigError(f"{folder}: no summary.csv here; is this a sweep's results folder (results/<name>)?")
    try:
        summary = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        summary = pd.DataFrame()
    if summary.empty:
        raise ConfigError(f"{path}: no runs recorded yet; run the sweep first")
    frames = []
    for run_id in summary.run_id:
        mpath = folder / "runs" / run_id / "metrics.csv"
        if mpath.is_file():
            m = pd.read_csv(mpath)
            m["run_id"] = run_id
            frames.append(m)
    columns = list(store.METRIC_COLUMNS) + ["run_id"]
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return summary, metrics, folder


def run_configs(folder, summary):
    """``{run_id: config.json}`` for the runs of ``summary`` that have one."""
    out = {}
    for run_id in summary.run_id:
        path = Path(folder) / "runs" / run_id / "config.json"
        if path.is_file():
            out[run_id] = json.loads(path.read_text())
    return out


def environment(configs):
    for conf in configs.values():
        return {
            "CPU": conf.get("cpu", "?"),
            "cores": conf.get("cores", "?"),
            "host": conf.get("host", "?"),
            "numpy": conf.get("numpy", "?"),
            "BLAS": f"{conf.get('blas', '?')} ({conf.get('blas_threads', '?')} thread per chunk)",
            "threads per run": conf.get("threads", "?"),
            "harness": conf.get("harness", "?"),
        }
    return {}


def row_counts(summary, configs):
    """Distinct (training, validation, test) row counts of the runs, as text:
    from summary.csv, or from config.json for a summary without them."""
    if {"n_train", "n_val", "n_test"} <= set(summary.columns):
        seen = dict.fromkeys(zip(summary.n_train, summary.n_val, summary.n_test))
    else:
        seen = dict.fromkeys((c.get("n_train"), c.get("n_val"), c.get("n_test")) for c in configs.values())
    parts = []
    for n_train, n_val, n_test in seen:
        text = f"{int(n_train):,} training rows, {int(n_val):,} validation rows" if n_train is not None else ""
        if n_test:
            text += f", {int(n_test):,} test rows held out"
        if text:
            parts.append(text)
    return "; ".join(parts)


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


def grouped(summary):
    """Runs in a comparison grouped over seeds, one row per variant, ranked by
    mean validation accuracy: n, mean and 95% t interval of validation (and
    test) accuracy, and the costs. ``accs`` holds each variant's per-seed
    validation accuracies (for the tests of ties)."""
    ok = summary[in_comparison(summary.status)].copy()
    keys = variant_keys(ok)
    ok[keys] = ok[keys].astype(str).where(ok[keys].notna(), "")  # groupable, NaN-free keys
    rows = []
    for values, runs in ok.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        n, mean, lo, hi = stats.mean_ci(runs.final_val_acc)
        row = dict(zip(keys, values))
        row.update(seeds=n, val_acc=mean, val_lo=lo, val_hi=hi, val_sd=runs.final_val_acc.std(),
                   accs=runs.final_val_acc.dropna().to_numpy(float),
                   train_acc=runs.final_train_acc.mean(), depth=runs.depth.iloc[0], width=runs.width.iloc[0],
                   n_params=runs.n_params.iloc[0], flops_per_iter=runs.flops_per_iter.iloc[0],
                   s_per_iter=runs.median_iter_seconds.median(),
                   diverged=int((runs.status == "diverged").sum()), run_ids=list(runs.run_id))
        if "test_acc" in runs and runs.test_acc.notna().any():
            _, row["test_acc"], row["test_lo"], row["test_hi"] = stats.mean_ci(runs.test_acc)
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    short = label_keys(out, keys)
    out["label"] = [variant_label(row, short) for _, row in out.iterrows()]
    return out.sort_values("val_acc", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def with_ties(g):
    """``g`` with ``p_vs_best`` (Welch's test of each variant's validation
    accuracy against the best variant's, Holm-adjusted over the table) and
    ``tied_with_best`` (True, False, or None where a side has one seed)."""
    g = g.copy()
    if g.empty:
        return g
    best = g.accs.iloc[0]
    raw = [math.nan] + [stats.welch(best, accs)[2] for accs in g.accs.iloc[1:]]
    adjusted = stats.holm(raw)
    g["p_vs_best"] = adjusted
    g["tied_with_best"] = [True] + [None if math.isnan(p) else bool(p >= ALPHA) for p in adjusted[1:]]
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
    frame["p_vs_best"] = g.p_vs_best
    frame["tied_with_best"] = g.tied_with_best
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


def verdict(g):
    """Plain sentences deciding the comparison, from ``with_ties(grouped(...))``."""
    if g.empty:
        return ["No finished runs to compare yet."]
    best = g.iloc[0]
    over = (f"mean and 95% interval over {best.seeds} seeds" if best.seeds > 1
            else "1 seed: no interval")
    lines = [f"**Best:** {best.label}, {pct(best.val_acc, best.val_lo, best.val_hi)} validation accuracy ({over})."]
    if len(g) == 1:
        return lines
    if best.seeds < 2:
        lines.append("With one seed per variant there are no intervals and no test of ties: "
                     "add seeds to tell the variants apart.")
    tied = g[g.tied_with_best == True]  # noqa: E712 (None means untested)
    if len(tied) > 1:
        by_time = tied.sort_values("s_per_iter").iloc[0]
        by_flops = tied.sort_values("flops_per_iter").iloc[0]
        lines.append(f"**Tied with it** (Welch's test, Holm-adjusted, α = {ALPHA}): {len(tied) - 1} other "
                     f"variant{'s' if len(tied) > 2 else ''}. The cheapest of these by time per iteration is "
                     f"{by_time.label} ({by_time.s_per_iter:.3g} s, {pct(by_time.val_acc, by_time.val_lo, by_time.val_hi)}); "
                     f"by FLOPs, {by_flops.label} ({_si(by_flops.flops_per_iter)} FLOPs per iteration).")
        gap = 100 * (best.val_acc - by_time.val_acc)
        if gap > NEAR_POINTS:
            lines.append(f"Read that tie with care: {by_time.label}'s mean is {gap:.2f} points lower, and it "
                         "is tied only because its seeds vary too much to tell it apart, not because it "
                         "does as well.")
    elif best.seeds >= 2:
        lines.append(f"No other variant is tied with it (Welch's test, Holm-adjusted, α = {ALPHA}).")
    near = g[g.val_acc >= best.val_acc - NEAR_POINTS / 100].sort_values("s_per_iter").iloc[0]
    lines.append(f"**Cheapest within {NEAR_POINTS} points of it:** {near.label}, {pct(near.val_acc)} at "
                 f"{near.s_per_iter:.3g} s per iteration ({best.s_per_iter / near.s_per_iter:.1f}× less time "
                 f"per iteration than the best)." if near.label != best.label else
                 f"**Cheapest within {NEAR_POINTS} points of it:** the best itself; every cheaper variant is "
                 f"further behind.")
    second = g.iloc[1]
    if second.tied_with_best:
        n = stats.seeds_to_separate(best.val_acc - second.val_acc, best.val_sd, second.val_sd)
        gap = 100 * (best.val_acc - second.val_acc)
        lines.append(f"#1 and #2 ({second.label}) are {gap:.2f} points apart and tied; "
                     + (f"about {n} seeds each would separate them (80% power, at the spread seen here)."
                        if n else "their spread is too large to say how many seeds would separate them."))
    return lines


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
    """``g`` with s_lo, s_hi: the 25th and 75th percentiles of each variant's
    time per iteration over all its iterations and seeds."""
    g = g.copy()
    lo, hi = [], []
    for _, row in g.iterrows():
        t = metrics[metrics.run_id.isin(row.run_ids)].iter_seconds
        lo.append(t.quantile(0.25) if len(t) else row.s_per_iter)
        hi.append(t.quantile(0.75) if len(t) else row.s_per_iter)
    g["s_lo"], g["s_hi"] = lo, hi
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
