"""The report's plots, one small function each, read from the report's frames.

Legible with 20-50 variants (see :mod:`.style` for the encoding): colour
tells the first hidden width, or within a panel of one width the depth;
marker and line style tell the shape and the other settings that vary;
legends sit outside the axes; log axes get plain ticks; learning curves and
budgets are small multiples, one panel per width. Accuracies are in percent.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import curves, fitted, front as frontmod
from .curves import plot_budget, plot_learning_curves
from .style import (DASHES, MARKERS, assign, cap_percent, depth_colours, empty, legend, log_ticks, save as _save, setup,
                    si, styles, width_colours)
from .tables import pct

PLOTS = {
    "acc_vs_depth": "Validation accuracy against depth",
    "acc_vs_width": "Validation accuracy against width",
    "acc_vs_time": "Accuracy against time per iteration, with the Pareto front",
    "time_vs_flops": "Time per iteration against FLOPs per iteration",
    "learning_curves": curves.LEARNING_CURVES,
    "budget": curves.BUDGET,
    "confusion": "Confusion matrix of a run of the best variant (validation data)",
    frontmod.PLOT: frontmod.TITLE,
    fitted.PLOT: fitted.TITLE,
}


def plot_acc_vs(g, x, path):
    """Mean validation accuracy with its 95% interval against depth (one line
    per first width and shape/settings) or width (one per depth and
    shape/settings)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if g.empty:
        empty(ax)
    else:
        g = styles(g)
        by = "width" if x == "depth" else "depth"
        colours = width_colours(g.width) if by == "width" else depth_colours(g.depth)
        markers, dashes = assign(g.rest, MARKERS), assign(g.rest, DASHES)
        groups = list(g.groupby([by, "rest"], sort=True))
        for i, ((key, rest), part) in enumerate(groups):
            part = part.sort_values(x)
            yerr = np.array([100 * (part.val_acc - part.val_lo), 100 * (part.val_hi - part.val_acc)])
            shift = (i - (len(groups) - 1) / 2) * 0.04  # dodged, so that intervals do not hide each other
            xs = part[x] * 2**shift if x == "width" else part[x] + shift
            bars = ax.errorbar(xs, 100 * part.val_acc, yerr=np.nan_to_num(yerr), color=colours[int(key)], capsize=3,
                               marker=markers[rest], markersize=6, markeredgecolor="black", markeredgewidth=0.4)
            bars.lines[0].set_dashes(dashes[rest]) if dashes[rest] else None
        if x == "width" and g.width.min() > 0:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(g.width.unique()))
            ax.set_xticklabels([str(w) for w in sorted(g.width.unique())])
        else:
            ax.set_xticks(sorted(g[x].unique()))
        handles = [Line2D([], [], color=c, marker="o", label=f"{by} {k}") for k, c in colours.items()]
        if len(markers) > 1:
            handles += [Line2D([], [], color="grey", marker=markers[r], dashes=dashes[r] or (None, None), label=r)
                        for r in markers]
        legend(ax, handles, title="colour: first width" if by == "width" else "colour: depth")
        cap_percent(ax, [(row[x], 100 * row.val_acc, row.label) for _, row in g.iterrows()])
    ax.set_xlabel("depth (hidden layers)" if x == "depth" else "first hidden width (units, log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(PLOTS[f"acc_vs_{x}"] + "\n(mean and 95% interval over seeds)", fontsize=11)
    return _save(fig, path)


def _scatter_variants(ax, g, x, y, xerr=None, yerr=None):
    """One point per variant: colour by first width, marker by depth, shape
    and settings (hollow once the markers run out)."""
    from matplotlib.lines import Line2D

    g = styles(g)
    colours = width_colours(g.width)
    order = sorted(g["style"].unique())
    markers = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(order)}
    hollow = {s: i >= len(MARKERS) for i, s in enumerate(order)}
    for _, row in g.iterrows():
        c = colours[int(row.width)]
        ax.errorbar(row[x], row[y], xerr=None if xerr is None else xerr(row), yerr=None if yerr is None else yerr(row),
                    fmt=markers[row["style"]], color=c, markersize=6, capsize=2, elinewidth=0.7, alpha=0.85,
                    markerfacecolor="white" if hollow[row["style"]] else c, markeredgecolor="black",
                    markeredgewidth=0.4, zorder=4)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=f"width {w}") for w, c in colours.items()]
    handles += [Line2D([], [], marker=markers[s], linestyle="", color="grey",
                       markerfacecolor="white" if hollow[s] else "grey", label=s) for s in order]
    return handles


def plot_acc_vs_time(g, path):
    """Accuracy against median time per iteration: x error bars span the
    middle half of the iterations' times, y error bars the 95% interval;
    the Pareto front is dashed and variants equivalent to the best are ringed."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    if g.empty:
        empty(ax)
    else:
        g = g.assign(acc=100 * g.val_acc)
        handles = _scatter_variants(
            ax, g, "s_per_iter", "acc",
            xerr=lambda r: [[r.s_per_iter - r.s_lo], [r.s_hi - r.s_per_iter]],
            yerr=lambda r: [[np.nan_to_num(100 * (r.val_acc - r.val_lo))], [np.nan_to_num(100 * (r.val_hi - r.val_acc))]])
        tied = g[g.decision == "equivalent"]
        ax.scatter(tied.s_per_iter, tied.acc, s=200, facecolors="none", edgecolors="crimson", linewidths=1.3, zorder=3)
        frontmod.draw(ax, g, "s_per_iter", lo="s_lo", hi="s_hi")
        if len(tied):  # a legend names only what the plot shows
            handles.append(Line2D([], [], marker="o", markersize=11, linestyle="", markerfacecolor="none",
                                  markeredgecolor="crimson", label="equivalent to best"))
        handles += [Line2D([], [], color="black", linestyle="--", label="Pareto front (never falls)"),
                    Line2D([], [], marker="o", markersize=11, linestyle="", markerfacecolor="none",
                           markeredgecolor="grey", label="within noise of the front")]
        ax.set_xscale("log")
        cap_percent(ax, [(row.s_per_iter, row.acc, row.label) for _, row in g.iterrows()])
        log_ticks(ax.xaxis)
        legend(ax, handles)
    ax.set_xlabel("median time per training iteration (s, log scale; bars: middle half of iterations)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(PLOTS["acc_vs_time"], fontsize=11)
    return _save(fig, path)


def plot_time_vs_flops(g, path):
    """Time per iteration against FLOPs, with lines of equal GFLOP/s."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    if g.empty:
        empty(ax)
    else:
        handles = _scatter_variants(ax, g, "flops_per_iter", "s_per_iter")
        xs = np.logspace(np.log10(g.flops_per_iter.min() / 2), np.log10(g.flops_per_iter.max() * 2), 50)
        top = g.s_per_iter.max() * 2
        for rate in (1e9, 1e10, 1e11):
            ax.plot(xs, xs / rate, color="grey", linewidth=0.7, linestyle=":")
            inside = xs[xs / rate <= top / 1.5]
            if len(inside):
                ax.annotate(f"{rate / 1e9:g} GFLOP/s", (inside[-1], inside[-1] / rate), fontsize=7, color="grey",
                            xytext=(-4, 2), textcoords="offset points", ha="right")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(g.s_per_iter.min() / 2, top)
        log_ticks(ax.xaxis, si)
        log_ticks(ax.yaxis)
        legend(ax, handles)
    ax.set_xlabel("FLOPs per training iteration (log scale)")
    ax.set_ylabel("median time per iteration (s, log scale)")
    ax.set_title(PLOTS["time_vs_flops"] + " (dotted: equal GFLOP/s)", fontsize=11)
    return _save(fig, path)


def median_run(g, summary, run_dir):
    """``(row, path)``: the run of the best variant whose validation accuracy
    is the median of its seeds' (the lower of the two middle ones), among
    those that recorded a confusion matrix; None if none did."""
    if g.empty:
        return None
    runs = summary[summary.run_id.isin(g.run_ids.iloc[0])]
    runs = runs[[(run_dir(r) / "confusion.csv").is_file() for r in runs.run_id]]
    runs = runs.sort_values(["final_val_acc", "seed"], kind="stable")
    if runs.empty:
        return None
    row = runs.iloc[(len(runs) - 1) // 2]
    return row, run_dir(row.run_id) / "confusion.csv"


def plot_confusion(g, summary, run_dir, path):
    """The confusion matrix of one run of the best variant: its median seed."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    chosen = median_run(g, summary, run_dir)
    if chosen is not None:
        row, cpath = chosen
        counts = pd.read_csv(cpath, index_col=0)
        counts.columns = [c.replace("pred_", "") for c in counts.columns]
        from matplotlib.colors import LogNorm

        # a log colour scale, so that the few mistakes off the diagonal show, not only the diagonal
        sns.heatmap(counts, annot=len(counts) <= 20, fmt="d", cmap="Blues", ax=ax, mask=counts.to_numpy() == 0,
                    norm=LogNorm(vmin=1, vmax=max(2, int(counts.to_numpy().max()))), linewidths=0.3,
                    linecolor="#eee", cbar_kws={"label": "examples (log scale; blank: none)"},
                    annot_kws={"fontsize": 7})
        ax.tick_params(axis="y", labelrotation=0)
        log_ticks(ax.collections[0].colorbar.ax.yaxis)
        n = g.runs.iloc[0]
        ax.set_title(f"{PLOTS['confusion']}\n{g.label.iloc[0]}, seed {row.seed}: {pct(row.final_val_acc)}"
                     + (f" (median of its {n} seeds)" if n > 1 else ""), fontsize=11)
    else:
        empty(ax, "no confusion matrix recorded")
        ax.set_title(PLOTS["confusion"])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return _save(fig, path)


def plot_all(g, summary, metrics, run_dir, plots_dir, target, secs):
    """Write every plot as PNG into ``plots_dir``; returns {name: path}.
    ``run_dir(run_id)``: the folder of a run."""
    setup()
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = {name: plots_dir / f"{name}.png" for name in PLOTS}
    draw_all([  # costliest first, so that the two halves of draw_all come out even
        (plot_learning_curves, (g, metrics, out["learning_curves"])),
        (plot_confusion, (g, summary, run_dir, out["confusion"])),
        (plot_time_vs_flops, (g, out["time_vs_flops"])),
        (plot_acc_vs_time, (g, out["acc_vs_time"])),
        (plot_budget, (g, metrics, target, secs, out["budget"])),
        (plot_acc_vs, (g, "depth", out["acc_vs_depth"])),
        (plot_acc_vs, (g, "width", out["acc_vs_width"])),
        (frontmod.plot, (g, out[frontmod.PLOT])),
        (fitted.plot, (g, out[fitted.PLOT])),
    ])
    return out


def draw_all(calls):
    """Make the plot calls ``[(function, args), ...]``, on two cores when
    there are two: a forked child makes every other call (matplotlib is
    single-threaded; drawing is most of a report's time). The child starts
    with the parent's settings and frames, so every file is what one
    process would have drawn. If the child fails, its calls are made here."""
    import os

    ours, theirs = calls, []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    pid = 0
    if cores > 1 and len(calls) > 1 and hasattr(os, "fork"):
        ours, theirs = calls[1::2], calls[0::2]
        pid = os.fork()
        if pid == 0:  # the child: draw, then leave without running the parent's exit handlers
            code = 1
            try:
                for fn, args in theirs:
                    fn(*args)
                code = 0
            finally:
                os._exit(code)
    try:
        for fn, args in ours:
            fn(*args)
    finally:
        if pid:
            _, status = os.waitpid(pid, 0)
    if pid and os.waitstatus_to_exitcode(status) != 0:
        for fn, args in theirs:
            fn(*args)
