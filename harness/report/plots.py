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

from ..status import in_comparison
from . import fitted, front as frontmod
from .style import (DASHES, MARKERS, assign, cap_percent, depth_colours, legend, log_ticks, panel_legend,
                    save as _save, setup, si, styles, width_colours)
from .tables import pct, per_run_progress

PLOTS = {
    "acc_vs_depth": "Validation accuracy against depth",
    "acc_vs_width": "Validation accuracy against width",
    "acc_vs_time": "Accuracy against time per iteration, with the Pareto front",
    "time_vs_flops": "Time per iteration against FLOPs per iteration",
    "learning_curves": "Learning curves, one panel per first hidden width",
    "budget": "Validation accuracy against training time (equal budgets), one panel per first hidden width",
    "confusion": "Confusion matrix of a run of the best variant (validation data)",
    frontmod.PLOT: frontmod.TITLE,
    fitted.PLOT: fitted.TITLE,
}
PANELS_PER_ROW = 3


def _empty(ax, text="no finished runs"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def _line(ax, x, y, colour, dashes, **kw):
    line, = ax.plot(x, y, color=colour, **kw)
    if dashes:
        line.set_dashes(dashes)
    return line


def plot_acc_vs(g, x, path):
    """Mean validation accuracy with its 95% interval against depth (one line
    per first width and shape/settings) or width (one per depth and
    shape/settings)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if g.empty:
        _empty(ax)
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
        _empty(ax)
    else:
        g = g.assign(acc=100 * g.val_acc)
        handles = _scatter_variants(
            ax, g, "s_per_iter", "acc",
            xerr=lambda r: [[r.s_per_iter - r.s_lo], [r.s_hi - r.s_per_iter]],
            yerr=lambda r: [[np.nan_to_num(100 * (r.val_acc - r.val_lo))], [np.nan_to_num(100 * (r.val_hi - r.val_acc))]])
        tied = g[g.decision == "equivalent"]
        ax.scatter(tied.s_per_iter, tied.acc, s=200, facecolors="none", edgecolors="crimson", linewidths=1.3, zorder=3)
        frontmod.draw(ax, g, "s_per_iter", lo="s_lo", hi="s_hi")
        handles += [Line2D([], [], marker="o", markersize=11, linestyle="", markerfacecolor="none",
                           markeredgecolor="crimson", label="equivalent to best"),
                    Line2D([], [], color="black", linestyle="--", label="Pareto front (never falls)"),
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
        _empty(ax)
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


def _panels(n, rows_per_band, height, sharex=True, sharey="row"):
    """A figure of small multiples, one per first width, at most
    PANELS_PER_ROW side by side: ``(fig, grid, axes)`` where ``axes[r][k]``
    is row ``r`` of width ``k``'s band."""
    import matplotlib.pyplot as plt

    cols = min(max(n, 1), PANELS_PER_ROW)
    bands = -(-max(n, 1) // cols)
    fig, grid = plt.subplots(rows_per_band * bands, cols, figsize=(3.8 * cols + 3, height * rows_per_band * bands),
                             squeeze=False, sharex=sharex, sharey=sharey,
                             gridspec_kw={"hspace": 0.3 if bands == 1 else 0.45})
    for k in range(n, bands * cols):
        for r in range(rows_per_band):
            grid[rows_per_band * (k // cols) + r, k % cols].set_visible(False)
    axes = [[grid[rows_per_band * (k // cols) + r, k % cols] for k in range(max(n, 1))] for r in range(rows_per_band)]
    return fig, grid, axes


def _logit_percent(ax, values):
    """An accuracy axis (fractions plotted, percent shown), on a logit scale
    so that the whole curve from chance up is visible and the last points
    stay apart; linear when some value is 0 or 100% (a logit cannot show it)."""
    import warnings

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if len(values) and (values.min() <= 0 or values.max() >= 0.999):
        ax.set_ylim(max(0.0, float(values.min()) - 0.02), min(1.0, float(values.max())) + 0.01)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}"))
        return "validation accuracy (%)"
    lo = max(0.05, float(values.min()) * 0.9) if len(values) else 0.5
    hi = min(0.999, 1 - (1 - float(values.max())) / 1.6) if len(values) else 0.99
    with warnings.catch_warnings():  # a panel may have no line yet: nothing to scale, and no harm
        warnings.simplefilter("ignore", UserWarning)
        ax.set_yscale("logit")
    ax.set_ylim(lo, hi)
    ticks = [t for t in (0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998) if lo <= t <= hi]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())
    return "validation accuracy (%,\nlogit scale)"


def _curve_encoding(sg):
    """Within a width's panel: colour by depth, line style by the shape and
    other settings. Returns the colours, dashes and the legend's handles."""
    import matplotlib.pyplot as plt

    colours, dashes = depth_colours(sg.depth), assign(sg.rest, DASHES)
    handles = [plt.Line2D([], [], color=c, lw=2, label=f"depth {d}") for d, c in colours.items()]
    if len(dashes) > 1:
        handles += [plt.Line2D([], [], color="black", dashes=dashes[r] or (None, None), label=r) for r in dashes]
    return colours, dashes, handles


def _curves(g, metrics):
    """Per-variant mean curves: validation accuracy (a fraction) at
    evaluations and training loss (rolling mean for minibatch runs, thinned)."""
    label_of = {r: row.label for _, row in g.iterrows() for r in row.run_ids}
    m = metrics[metrics.run_id.isin(label_of)].sort_values(["run_id", "iteration"]).copy()
    if m.empty:
        return m, m, 1
    n_iter = int(m.iteration.max())
    smooth = max(1, n_iter // 50)
    m["train_loss"] = m.groupby("run_id").train_loss.transform(lambda c: c.rolling(smooth, min_periods=1).mean())
    m["label"] = m.run_id.map(label_of)
    val = m[m.val_acc.notna()].groupby(["label", "iteration"], as_index=False).val_acc.mean()
    step = max(1, n_iter // 200)
    loss = m[m.iteration % step == 0].groupby(["label", "iteration"], as_index=False).train_loss.mean()
    return val, loss, smooth


def plot_learning_curves(g, metrics, path):
    """Small multiples: a column per first width, validation accuracy above,
    training loss below; colour tells depth, line style the rest."""
    sg = styles(g) if not g.empty else g
    val, loss, smooth = _curves(sg, metrics) if not g.empty else (pd.DataFrame(), pd.DataFrame(), 1)
    ylabel = "validation accuracy (%)"
    widths = sorted(sg.width.unique()) if not val.empty else [0]
    fig, grid, axes = _panels(len(widths), 2, 3.3)
    if val.empty:
        for ax in axes[0] + axes[1]:
            _empty(ax)
    else:
        colours, dashes, handles = _curve_encoding(sg)
        for j, w in enumerate(widths):
            for _, row in sg[sg.width == w].iterrows():
                for ax, frame, col in ((axes[0][j], val, "val_acc"), (axes[1][j], loss, "train_loss")):
                    part = frame[frame.label == row.label]
                    _line(ax, part.iteration, part[col], colours[int(row.depth)], dashes[row.rest], lw=1.3)
            axes[0][j].set_title(f"first width {w}", fontsize=10)
            axes[1][j].set_xlabel("iteration")
            axes[1][j].set_yscale("log")
            axes[1][j].tick_params(labelbottom=True)
        positive = loss.train_loss[loss.train_loss > 0]
        for acc_ax, loss_ax in zip(axes[0], axes[1]):  # the same scales in every band
            ylabel = _logit_percent(acc_ax, val.val_acc)
            loss_ax.set_ylim(float(positive.min()) / 1.5, float(positive.max()) * 1.5)
        panel_legend(fig, grid[0, -1], handles, title="colour and line style")
    for band in range(grid.shape[0] // 2):
        grid[2 * band, 0].set_ylabel(ylabel)
        grid[2 * band + 1, 0].set_ylabel("training loss (log)" + (f",\nrolling mean of {smooth}" if smooth > 1 else ""))
    fig.suptitle(PLOTS["learning_curves"] + " (mean over seeds)", fontsize=11)
    return _save(fig, path)


def plot_budget(g, metrics, target, secs, path):
    """Validation accuracy against training seconds spent (mean over seeds),
    one panel per first width, the target accuracy and the equal budgets
    marked."""
    prog = per_run_progress(metrics)
    sg = styles(g) if not g.empty else g
    widths = sorted(sg.width.unique()) if not (g.empty or prog.empty) else [0]
    fig, grid, axes = _panels(len(widths), 1, 3.8, sharey=True)
    ylabel = "validation accuracy (%)"
    if g.empty or prog.empty:
        _empty(axes[0][0])
    else:
        colours, dashes, handles = _curve_encoding(sg)
        for j, w in enumerate(widths):
            ax = axes[0][j]
            for _, row in sg[sg.width == w].iterrows():
                runs = prog[prog.run_id.isin(row.run_ids)]
                mean = runs.groupby("iteration", as_index=False)[["train_seconds", "val_acc"]].mean()
                _line(ax, mean.train_seconds, mean.val_acc, colours[int(row.depth)], dashes[row.rest], lw=1.2)
            ax.axhline(target, color="crimson", linewidth=0.8, linestyle=":")
            for b in secs:
                ax.axvline(b, color="grey", linewidth=0.7, linestyle=":")
            ax.set_xscale("log")
            ax.set_title(f"first width {w}", fontsize=10)
            ax.set_xlabel("training seconds spent (log)")
        for ax in axes[0]:
            ylabel = _logit_percent(ax, list(prog.val_acc) + [target])
            log_ticks(ax.xaxis)
            ax.tick_params(labelbottom=True)
        import matplotlib.pyplot as plt
        handles += [plt.Line2D([], [], color="crimson", linestyle=":", label=f"target {100 * target:g}%"),
                    plt.Line2D([], [], color="grey", linestyle=":", label="budgets in the table")]
        panel_legend(fig, grid[0, -1], handles, title="colour and line style")
    for band in range(grid.shape[0]):
        grid[band, 0].set_ylabel(ylabel.replace("\n", " "))
    fig.suptitle(PLOTS["budget"] + " (mean over seeds)", fontsize=11, y=1.03)
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
        _empty(ax, "no confusion matrix recorded")
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
