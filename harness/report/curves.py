"""The report's plots over iterations and seconds, small multiples with one
panel per first hidden width: learning curves, and validation accuracy
against training seconds spent (the equal-budget view)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .style import (
    DASHES,
    assign,
    depth_colours,
    empty,
    line,
    log_ticks,
    panel_legend,
    styles,
)
from .style import save as _save
from .tables import per_run_progress

LEARNING_CURVES = "Learning curves, one panel per first hidden width"
BUDGET = "Validation accuracy against training time (equal budgets), one panel per first hidden width"
PANELS_PER_ROW = 3


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

    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        NullFormatter,
        NullLocator,
    )

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
            empty(ax)
    else:
        colours, dashes, handles = _curve_encoding(sg)
        for j, w in enumerate(widths):
            for _, row in sg[sg.width == w].iterrows():
                for ax, frame, col in ((axes[0][j], val, "val_acc"), (axes[1][j], loss, "train_loss")):
                    part = frame[frame.label == row.label]
                    line(ax, part.iteration, part[col], colours[int(row.depth)], dashes[row.rest], lw=1.3)
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
    fig.suptitle(LEARNING_CURVES + " (mean over seeds)", fontsize=11)
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
        empty(axes[0][0])
    else:
        colours, dashes, handles = _curve_encoding(sg)
        for j, w in enumerate(widths):
            ax = axes[0][j]
            for _, row in sg[sg.width == w].iterrows():
                runs = prog[prog.run_id.isin(row.run_ids)]
                mean = runs.groupby("iteration", as_index=False)[["train_seconds", "val_acc"]].mean()
                line(ax, mean.train_seconds, mean.val_acc, colours[int(row.depth)], dashes[row.rest], lw=1.2)
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
    fig.suptitle(BUDGET + " (mean over seeds)", fontsize=11, y=1.03)
    return _save(fig, path)
