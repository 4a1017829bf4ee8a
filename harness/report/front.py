"""The Pareto front as a monotone staircase: the upper envelope of accuracy
against a cost. Each step is the most accurate variant at this cost or less,
so the staircase never falls. A variant off it but within noise of it (its
95% interval reaches the step above it, or its cost spread reaches below a
step's cost) is marked, not drawn as a step; and the table groups steps that
are within noise of each other, so that it stays short."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .costs import COSTS

PLOT = "fronts"
TITLE = "The front of accuracy against each cost: training time, FLOPs, parameters, inference latency"


def envelope(points, cost):
    """Indices of ``points`` (columns ``cost`` and ``val_acc``) on the upper
    envelope, by cost: each more accurate than every point as cheap or
    cheaper (at equal cost, the most accurate one). Their accuracy rises."""
    pts = points.dropna(subset=[cost, "val_acc"])
    order = pts.sort_values([cost, "val_acc"], ascending=[True, False], kind="stable")
    steps, best = [], -math.inf
    for i, row in order.iterrows():
        if row.val_acc > best:
            steps.append(i)
            best = row.val_acc
    return steps


def level(points, steps, cost, at):
    """The envelope's accuracy at cost ``at`` (NaN below its first step)."""
    below = [points.val_acc[i] for i in steps if points[cost][i] <= at]
    return max(below) if below else math.nan


def near(points, steps, cost, lo=None, hi=None):
    """Indices off the envelope but within noise of it: the upper end of
    their 95% interval (``val_hi``) reaches the envelope at their cost, or,
    given a cost spread ``lo``/``hi`` (columns), no step at least as accurate
    is clearly cheaper (its spread wholly below theirs)."""
    out = []
    for i in points.dropna(subset=[cost, "val_acc"]).index:
        if i in steps:
            continue
        reach = points.val_hi[i] if "val_hi" in points and not math.isnan(points.val_hi[i]) else points.val_acc[i]
        noisy_acc = reach >= level(points, steps, cost, points[cost][i])
        noisy_cost = lo is not None and not any(
            points.val_acc[j] >= points.val_acc[i] and points[hi][j] < points[lo][i] for j in steps)
        if noisy_acc or noisy_cost:
            out.append(i)
    return out


def _within_noise(a, b):
    """Whether step ``b`` (more accurate) is within noise of step ``a``: one's
    mean inside the other's 95% interval. Without intervals, never."""
    def inside(x, row):
        return not math.isnan(row.val_lo) and row.val_lo <= x <= row.val_hi
    return inside(b.val_acc, a) or inside(a.val_acc, b)


def groups(points, steps):
    """The steps (in cost order) cut into runs within noise of their first
    step: ``[[index, ...], ...]``."""
    out = []
    for i in steps:
        if out and {"val_lo", "val_hi"} <= set(points) and _within_noise(points.loc[out[-1][0]], points.loc[i]):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def table(points, cost, fmt, pct, name="cost"):
    """The grouped front as a short table: per group, the costs it spans,
    its cheapest step and its most accurate one (the same when alone)."""
    steps = envelope(points, cost)
    rows = []
    grouped = groups(points, steps)
    for k, group in enumerate(grouped):
        first, last = points.loc[group[0]], points.loc[group[-1]]
        upper = points[cost][grouped[k + 1][0]] if k + 1 < len(grouped) else None
        rows.append({f"{name} from": fmt(first[cost]) + (f" to {fmt(upper)}" if upper is not None else " or more"),
                     "cheapest step": f"{first.label}, {pct(first.val_acc, first.val_lo, first.val_hi)}",
                     "most accurate step": "the same" if len(group) == 1 else
                     f"{last.label}, {pct(last.val_acc, last.val_lo, last.val_hi)} at {fmt(last[cost])}",
                     "steps": len(group)})
    return pd.DataFrame(rows)


def draw(ax, points, cost, y="acc", lo=None, hi=None):
    """The staircase of ``points`` on ``ax`` (accuracy in percent as ``y``),
    rising only, and a grey ring round each variant within noise of it.
    Returns ``(steps, near)``."""
    steps = envelope(points, cost)
    close = near(points, steps, cost, lo, hi)
    xs = list(points[cost][steps])
    ys = list(points[y][steps])
    if xs:  # carried to the right edge: the best so far stays available at any higher cost
        ax.step(xs + [points[cost].max() * 1.5], ys + [ys[-1]], where="post", color="black", linestyle="--",
                linewidth=1, zorder=2)
    ax.scatter(points[cost][close], points[y][close], s=140, facecolors="none", edgecolors="grey",
               linewidths=1.0, zorder=3)
    return steps, close


def plot(g, path):
    """One panel per cost of :data:`COSTS`: accuracy against it, log axis,
    the monotone front, variants within noise of it ringed."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .fitted import _si
    from .style import cap_percent, legend, log_ticks, save
    from .plots import _scatter_variants

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), squeeze=False)
    axes = axes.ravel()
    if g.empty:
        axes[0].text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=axes[0].transAxes)
        return save(fig, path)
    g = g.assign(acc=100 * g.val_acc)
    handles = []
    for ax, (cost, (name, unit, scale)) in zip(axes, COSTS.items()):
        pts = g[np.isfinite(g[cost].astype(float)) & (g[cost].astype(float) > 0)]
        pts = pts.assign(**{cost: pts[cost] * scale})
        handles = _scatter_variants(ax, pts, cost, "acc")
        draw(ax, pts, cost)
        ax.set_xscale("log")
        log_ticks(ax.xaxis, _si)
        cap_percent(ax, [(row[cost], row.acc, row.label) for _, row in pts.iterrows()])
        ax.set_xlabel(f"{name}" + (f" ({unit}, log scale)" if unit else " (log scale)"))
        ax.set_ylabel("validation accuracy (%)")
    handles += [Line2D([], [], color="black", linestyle="--", label="front (most accurate at this cost or less)"),
                Line2D([], [], marker="o", markersize=11, linestyle="", markerfacecolor="none",
                       markeredgecolor="grey", label="within noise of the front")]
    legend(axes[1], handles, below=False)
    fig.suptitle(TITLE, fontsize=11)
    fig.tight_layout()
    return save(fig, path)
