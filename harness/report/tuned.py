"""The "Tuned comparison" of a sweep with ``[tune]``: read from ``tuned.csv``,
``summary.csv`` and the grid as run (``sweep.toml``)."""
from __future__ import annotations

import textwrap
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from .. import layout, tune as tunemod
from ..config import RunConfig, coerce
from ..status import Role, RunStatus, mask
from .tables import pct

SLICES = "tune_slices"
SLICES_TITLE = ("Validation accuracy of every trial against each tuned setting, one panel per first width, "
                "one line per grid point (dashed: tapered widths)")


def load_tuned(folder):
    """``(tuned, tune)``: ``tuned.csv`` and the [tune] table it came from, or
    None when the folder is not a tuned sweep's (or its search is unfinished)."""
    folder = Path(folder)
    try:
        table = (layout.settings(folder) or {}).get("tune")
        tuned = pd.read_csv(folder / layout.TUNED)
    except (OSError, pd.errors.EmptyDataError):
        return None
    if not table:
        return None
    kinds = {f.name: f.type for f in fields(RunConfig)}
    return tuned, tunemod.parse(table, "[tune]", list(kinds), kinds, coerce, set())


def scientific(tuned: pd.DataFrame):
    """The columns of ``tuned`` that name a grid point (those before ``trial``)."""
    return list(tuned.columns[:list(tuned.columns).index("trial")])


def compared(summary: pd.DataFrame, tuned, tune):
    """The runs a tuned sweep compares: its confirmation runs, or with
    ``confirm_seeds = 0`` the selected trials' search runs, without the tuned
    settings' columns, so that variants are the grid points."""
    if tuned is None or "role" not in summary:
        return summary
    runs = summary[summary.role == Role.CONFIRM.value]
    if runs.empty:
        chosen = set(zip(tuned.point, tuned.trial))
        runs = summary[[(p, t) in chosen for p, t in zip(summary.point, summary.trial)]]
    return runs.drop(columns=[k for k in tune.dists if k in runs])


def label(tuned):
    keys = scientific(tuned)
    return lambda row: ", ".join(str(row[k]) for k in keys)


def blocks(tuned, tune, summary, halved=False):
    """The section's blocks: what was done, the table, the warnings and the
    slice plot. Under successive halving (``halved``) a point's trials are
    only those halving did not stop, and the table's columns say so."""
    n_search = int((summary.role == Role.SEARCH.value).sum()) if "role" in summary else 0
    n_confirm = int((summary.role == Role.CONFIRM.value).sum()) if "role" in summary else 0
    keys = list(tune.dists)
    out = [("h2", "Tuned comparison"),
           ("p", f"Each grid point had its own {', '.join(keys)} tuned: {tune.trials} quasi-random trials, the "
                 f"same for every point, in {n_search} search runs. Each point's trial with the best mean "
                 "validation accuracy over seeds was then trained again on new seeds "
                 f"({n_confirm} confirmation runs); only those enter the comparison above and the plots of "
                 "accuracy against depth and width, so no point's figure is inflated by having been chosen. "
                 "The test split was held out of both choices.")]
    shown = tuned.drop(columns="point")
    for col in ("search_val_acc", "confirm_val_acc", "confirm_test_acc"):
        shown[col] = [pct(v) for v in shown[col]]
    for key in keys:
        if shown[key].dtype.kind == "f":
            shown[key] = [f"{v:.3g}" for v in shown[key]]
        edge = shown[f"{key}_edge"]
        shown[f"{key}_edge"] = edge.astype(object).where(edge.notna(), "")  # all-NaN reads as float
    # under halving a point's trials are those not stopped by it, not all it began with
    out.append(("table", shown.rename(columns={
        "trials": "trials not stopped by halving" if halved else "trials (all)",
        "search_val_acc": "search val acc", "confirm_val_acc": "confirmation val acc",
        "confirm_test_acc": "confirmation test acc", "confirm_runs": "confirmation runs",
        "diverged_trials": "of these, with a seed diverged" if halved else "trials with a seed diverged",
        **{f"{k}_edge": f"{k} at an edge" for k in keys}})))
    notes = tunemod.warnings(tune, tuned, label(tuned))
    out += [("p", "**Warning:** " + w) for w in notes] or [("p", "No selected value sits at the edge of its "
                                                                 "range, and no point had most trials diverge.")]
    out.append(("image", (SLICES_TITLE, f"plots/{SLICES}.png")))
    return out


def _slice_axes(keys, widths):
    """Panels: for each tuned setting, one per first width, two side by side
    (wide enough to read in the HTML report), a legend under each."""
    import matplotlib.pyplot as plt

    cols = min(2, len(widths))
    rows = -(-len(widths) // cols)
    fig, grid = plt.subplots(len(keys) * rows, cols, figsize=(5.6 * cols, 5.2 * rows * len(keys)), squeeze=False,
                             sharey=True)
    for k in range(len(widths), rows * cols):
        for r in range(len(keys)):
            grid[r * rows + k // cols, k % cols].set_visible(False)
    return fig, grid, [[grid[r * rows + k // cols, k % cols] for k in range(len(widths))] for r in range(len(keys))]


def plot_slices(summary, tuned, tune, path):
    """Mean validation accuracy of each trial (search runs, over seeds)
    against each tuned setting: a group of panels per setting, one panel per
    first hidden width, one line per grid point (coloured by depth, dashed
    when tapered), its selected trial ringed. Trials that halving stopped are
    left out."""
    from .style import accuracy_floor, depth_colours, log_ticks, save

    keys = list(tune.dists)
    # trials stopped early by halving were measured at another iteration: left out
    search = summary[(summary.role == Role.SEARCH.value) & ~mask(summary.status, RunStatus.STOPPED)]
    means = tunemod.trial_means(search).rename(columns={"val_mean": "acc"})
    tuned = tuned[tuned.point.isin(means.point)]  # under halving, points with a trial that finished
    hidden = {row.point: str(row.layers).split("-")[1:-1] if "layers" in tuned else [] for row in tuned.itertuples()}
    widths = sorted({int(h[0]) if h else 0 for h in hidden.values()})
    colour = depth_colours({len(h) for h in hidden.values()})
    fig, grid, axes = _slice_axes(keys, widths)
    draws = pd.DataFrame(tune.draws())
    for row_axes, key in zip(axes, keys):
        for ax, width in zip(row_axes, widths):
            for row in tuned.itertuples():
                h = hidden[row.point]
                if (int(h[0]) if h else 0) != width:
                    continue
                part = means[means.point == row.point].assign(x=lambda d: d.trial.map(draws[key])).sort_values("x")
                c = colour[len(h)]
                ax.plot(part.x, 100 * part.acc, marker="o", ms=3, lw=1.3, color=c, ls="--" if len(set(h)) > 1 else "-",
                        label=f"{row.layers}" + (f" ({label(tuned)(row._asdict())})" if len(scientific(tuned)) > 1
                                                 else ""))
                chosen = part[part.trial == row.trial]
                ax.scatter(chosen.x, 100 * chosen.acc, s=90, facecolors="none", edgecolors=c, linewidths=1.5)
            if isinstance(tune.dists[key], tunemod.LogUniform):
                ax.set_xscale("log")
                log_ticks(ax.xaxis)
            ax.set_title(f"first width {width}", fontsize=10)
            ax.set_xlabel(key + (" (log scale)" if isinstance(tune.dists[key], tunemod.LogUniform) else ""))
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        for ax in row_axes:
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel("validation accuracy (%)\nmean over seeds; ringed: selected")
    finite = 100 * means.acc[means.acc > 0]
    if len(finite):
        floor = accuracy_floor(list(finite))
        grid[0][0].set_ylim(floor - max(0.5, 0.15 * (float(finite.max()) - floor)), min(100.2, float(finite.max()) + 0.5))
    fig.suptitle(textwrap.fill(SLICES_TITLE, 90), fontsize=11, y=1.0)
    fig.tight_layout()
    return save(fig, path)
