"""The report's plots, one small function each, read from the report's frames.

Legible with 20-50 variants: colour tells the first hidden width (an
ordered palette without pale ends), marker or line style tells depth and the
other settings that vary; legends sit outside the axes; no point labels;
log axes get plain 1-2-5 ticks; learning curves are small multiples, one
panel per width. Accuracies are in percent.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from .. import store
from ..status import in_comparison
from .tables import label_keys, pareto, pct, per_run_progress, variant_keys

PLOTS = {
    "acc_vs_depth": "Validation accuracy against depth",
    "acc_vs_width": "Validation accuracy against width",
    "acc_vs_time": "Accuracy against time per iteration, with the Pareto front",
    "time_vs_flops": "Time per iteration against FLOPs per iteration",
    "learning_curves": "Learning curves, one panel per first hidden width",
    "budget": "Validation accuracy against training time (equal budgets)",
    "confusion": "Confusion matrix of the best run (validation data)",
}
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*", "<", ">", "h", "p", "d", "H", "8", "x", "+", "1"]
PANELS_PER_ROW = 5
DASHES = ["", (4, 2), (1, 1.5), (6, 2, 1, 2), (2, 2, 6, 2), (8, 3), (1, 3), (5, 1, 1, 1, 1, 1), (10, 2, 2, 2), (3, 1),
          (2, 4), (12, 3, 3, 3)]


def setup():
    import matplotlib

    matplotlib.use("Agg")
    sns = import_seaborn()
    sns.set_theme(style="whitegrid", context="notebook")


def import_seaborn():
    """seaborn, imported without scipy when scipy is not loaded yet. seaborn
    imports scipy.stats and scipy.cluster at once (0.8 s of CPU, more than
    all of seaborn) for KDEs and clustered heatmaps, which no plot here
    draws; without scipy it falls back to its own code for those. Nothing
    else in the process is affected: scipy can be imported as usual after."""
    import sys

    if "seaborn" in sys.modules or "scipy" in sys.modules:
        import seaborn
        return seaborn
    sys.modules["scipy"] = None  # makes "import scipy..." raise ImportError, which seaborn catches
    try:
        import seaborn
    finally:
        del sys.modules["scipy"]
    return seaborn


def _save(fig, path):
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    store.atomic_write_bytes(path, buf.getvalue())
    return path


def _empty(ax, text="no finished runs"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def width_colours(widths):
    """An ordered colour per first width: viridis without its pale yellow end."""
    import seaborn as sns

    widths = sorted(set(int(w) for w in widths))
    return dict(zip(widths, sns.color_palette("viridis", as_cmap=True)(np.linspace(0.0, 0.8, max(2, len(widths))))))


def _log_ticks(axis):
    """1-2-5 ticks with plain labels (0.002, not 2×10⁻³)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def styles(g):
    """``g`` with ``style``: what tells a variant apart beyond its first width
    (depth, halving widths, other settings), for markers and line styles."""
    g = g.copy()
    keys = [k for k in label_keys(g, variant_keys(g)) if k != "layers"] if not g.empty else []

    def style(row):
        hidden = str(row["layers"]).split("-")[1:-1]
        shape = " halving" if len(set(hidden)) > 1 else ""
        return ", ".join([f"depth {row['depth']}{shape}"] + [f"{k} {row[k]}" for k in keys])
    g["style"] = [style(row) for _, row in g.iterrows()] if not g.empty else []
    return g


def _cap_percent(ax, g=None):
    """An accuracy axis never reaches past 100% (an interval may), nor far
    below the worst mean: a wide interval runs off the plot instead of
    squashing every other point."""
    lo, hi = ax.get_ylim()
    if g is not None and len(g):
        worst = 100 * float(np.nanmin(g.val_acc))
        lo = max(lo, worst - max(1.0, 0.25 * (100 * float(np.nanmax(g.val_acc)) - worst)))
    ax.set_ylim(lo, min(hi, 100.2))


def _legend_outside(ax, **kw):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, borderaxespad=0, **kw)


def plot_acc_vs(g, x, path):
    """Mean validation accuracy with its 95% interval against depth or width."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if g.empty:
        _empty(ax)
    else:
        g = styles(g)
        colours = width_colours(g.width)
        by = "width" if x == "depth" else "style"
        groups = list(g.groupby(by, sort=True))
        for i, (key, part) in enumerate(groups):
            part = part.sort_values(x)
            colour = colours[int(key)] if by == "width" else None
            yerr = np.array([100 * (part.val_acc - part.val_lo), 100 * (part.val_hi - part.val_acc)])
            # dodged sideways a little, so that the intervals do not hide each other
            shift = (i - (len(groups) - 1) / 2) * 0.04
            xs = part[x] * 2**shift if x == "width" else part[x] + shift
            ax.errorbar(xs, 100 * part.val_acc, yerr=np.nan_to_num(yerr), color=colour, capsize=3,
                        marker=MARKERS[i % len(MARKERS)], label=f"width {key}" if by == "width" else key,
                        linestyle="-" if by == "width" else "--")
        if x == "width" and g.width.min() > 0:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(g.width.unique()))
            ax.set_xticklabels([str(w) for w in sorted(g.width.unique())])
        else:
            ax.set_xticks(sorted(g[x].unique()))
        _legend_outside(ax, title="first width" if by == "width" else "depth and settings")
        _cap_percent(ax, g)
    ax.set_xlabel("depth (hidden layers)" if x == "depth" else "first hidden width (units, log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(PLOTS[f"acc_vs_{x}"] + "\n(mean and 95% interval over seeds)", fontsize=11)
    return _save(fig, path)


def _scatter_variants(ax, g, x, y, xerr=None, yerr=None):
    """One point per variant: colour by first width, marker by style."""
    g = styles(g)
    colours = width_colours(g.width)
    markers = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(sorted(g["style"].unique()))}
    for _, row in g.iterrows():
        ax.errorbar(row[x], row[y], xerr=None if xerr is None else xerr(row), yerr=None if yerr is None else yerr(row),
                    fmt=markers[row["style"]], color=colours[int(row.width)], markersize=7, capsize=2,
                    elinewidth=0.8, markeredgecolor="black", markeredgewidth=0.4)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=f"width {w}") for w, c in colours.items()]
    handles += [Line2D([], [], marker=m, linestyle="", color="grey", label=s) for s, m in markers.items()]
    return handles


def plot_acc_vs_time(g, path):
    """Accuracy against median time per iteration: x error bars span the
    middle half of the iterations' times, y error bars the 95% interval;
    the Pareto front is dashed and variants tied with the best are ringed."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 5))
    if g.empty:
        _empty(ax)
    else:
        g = g.assign(acc=100 * g.val_acc)
        handles = _scatter_variants(
            ax, g, "s_per_iter", "acc",
            xerr=lambda r: [[r.s_per_iter - r.s_lo], [r.s_hi - r.s_per_iter]],
            yerr=lambda r: [[np.nan_to_num(100 * (r.val_acc - r.val_lo))], [np.nan_to_num(100 * (r.val_hi - r.val_acc))]])
        tied = g[g.tied_with_best == True]  # noqa: E712
        ax.scatter(tied.s_per_iter, tied.acc, s=260, facecolors="none", edgecolors="crimson", linewidths=1.5, zorder=3)
        front = pareto(g)
        ax.step(front.s_per_iter, front.acc, where="post", color="black", linestyle="--", linewidth=1)
        handles += [Line2D([], [], marker="o", markersize=12, linestyle="", markerfacecolor="none",
                           markeredgecolor="crimson", label="tied with best"),
                    Line2D([], [], color="black", linestyle="--", label="Pareto front")]
        ax.set_xscale("log")
        _log_ticks(ax.xaxis)
        _cap_percent(ax, g)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, borderaxespad=0)
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
        ax.set_ylim(g.s_per_iter.min() / 2, top)
        _log_ticks(ax.yaxis)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, borderaxespad=0)
    ax.set_xlabel("FLOPs per training iteration (log scale)")
    ax.set_ylabel("median time per iteration (s, log scale)")
    ax.set_title(PLOTS["time_vs_flops"] + " (dotted: equal GFLOP/s)", fontsize=11)
    return _save(fig, path)


def _curves(g, metrics):
    """Per-variant mean curves: validation accuracy (%) at evaluations and
    training loss (rolling mean for minibatch runs, thinned)."""
    label_of = {r: (row.label, row.width, row["style"]) for _, row in styles(g).iterrows() for r in row.run_ids}
    m = metrics[metrics.run_id.isin(label_of)].sort_values(["run_id", "iteration"]).copy()
    if m.empty:
        return m, m, 1
    n_iter = int(m.iteration.max())
    smooth = max(1, n_iter // 50)
    m["train_loss"] = m.groupby("run_id").train_loss.transform(lambda c: c.rolling(smooth, min_periods=1).mean())
    for i, col in enumerate(("variant", "width", "style")):
        m[col] = m.run_id.map(lambda r: label_of[r][i])
    val = m[m.val_acc.notna()].groupby(["variant", "width", "style", "iteration"], as_index=False).val_acc.mean()
    val["val_acc"] *= 100
    step = max(1, n_iter // 200)
    loss = m[m.iteration % step == 0].groupby(["variant", "width", "style", "iteration"],
                                              as_index=False).train_loss.mean()
    return val, loss, smooth


def plot_learning_curves(g, metrics, path):
    """Small multiples: a column per first width, validation accuracy above,
    training loss below; line style tells depth and settings."""
    import matplotlib.pyplot as plt

    val, loss, smooth = _curves(g, metrics) if not g.empty else (pd.DataFrame(), pd.DataFrame(), 1)
    widths = sorted(val.width.unique()) if not val.empty else [0]
    # at most PANELS_PER_ROW widths side by side; each band of them has an accuracy row and a loss row
    cols = min(len(widths), PANELS_PER_ROW)
    bands = -(-len(widths) // cols)
    fig, grid = plt.subplots(2 * bands, cols, figsize=(3.6 * cols + 2.5, 3.3 * 2 * bands), squeeze=False,
                             sharex=True, gridspec_kw={"hspace": 0.3 if bands == 1 else 0.45})
    for k in range(len(widths), bands * cols):
        grid[2 * (k // cols), k % cols].set_visible(False)
        grid[2 * (k // cols) + 1, k % cols].set_visible(False)
    axes = np.array([[grid[2 * (k // cols) + r, k % cols] for k in range(len(widths))] for r in (0, 1)])
    if val.empty:
        for ax in axes.flat:
            _empty(ax)
    else:
        colours = width_colours(widths)
        style_list = sorted(val["style"].unique())
        dashes = {s: DASHES[i % len(DASHES)] for i, s in enumerate(style_list)}
        for j, w in enumerate(widths):
            for s in style_list:
                for ax, frame, col in ((axes[0, j], val, "val_acc"), (axes[1, j], loss, "train_loss")):
                    part = frame[(frame.width == w) & (frame["style"] == s)]
                    if not part.empty:
                        line, = ax.plot(part.iteration, part[col], color=colours[w], linewidth=1.3, label=s)
                        line.set_dashes(dashes[s]) if dashes[s] else None
            axes[0, j].set_title(f"first width {w}", fontsize=10)
            axes[1, j].set_xlabel("iteration")
            axes[1, j].set_yscale("log")
        lo = max(0.0, float(np.nanpercentile(val.val_acc, 10)) - 2)
        for ax in axes[0]:
            ax.set_ylim(lo, 100.2)
        low, high = float(loss.train_loss[loss.train_loss > 0].min()), float(loss.train_loss.max())
        for ax in axes[1]:
            ax.set_ylim(low / 1.5, high * 1.5)
        handles = [plt.Line2D([], [], color="black", dashes=dashes[s] or (None, None), label=s) for s in style_list]
        grid[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.04, 1), fontsize=8,
                           title="line style", borderaxespad=0)
    for band in range(bands):
        grid[2 * band, 0].set_ylabel("validation accuracy (%)")
        grid[2 * band + 1, 0].set_ylabel("training loss (log)" + (f",\nrolling mean of {smooth}" if smooth > 1 else ""))
    fig.suptitle(PLOTS["learning_curves"] + " (mean over seeds)", fontsize=11)
    return _save(fig, path)


def plot_budget(g, metrics, target, secs, path):
    """Validation accuracy against training seconds spent (mean over seeds),
    the target accuracy and the equal budgets marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    prog = per_run_progress(metrics)
    if g.empty or prog.empty:
        _empty(ax)
    else:
        sg = styles(g)
        colours = width_colours(sg.width)
        style_list = sorted(sg["style"].unique())
        dashes = {s: DASHES[i % len(DASHES)] for i, s in enumerate(style_list)}
        for _, row in sg.iterrows():
            runs = prog[prog.run_id.isin(row.run_ids)]
            mean = runs.groupby("iteration", as_index=False)[["train_seconds", "val_acc"]].mean()
            line, = ax.plot(mean.train_seconds, 100 * mean.val_acc, color=colours[int(row.width)], linewidth=1.2)
            line.set_dashes(dashes[row["style"]]) if dashes[row["style"]] else None
        ax.axhline(100 * target, color="crimson", linewidth=0.8, linestyle=":")
        for b in secs:
            ax.axvline(b, color="grey", linewidth=0.7, linestyle=":")
        ax.set_xscale("log")
        _log_ticks(ax.xaxis)
        ax.set_ylim(max(0.0, float(np.nanpercentile(100 * prog.val_acc, 10)) - 2), 100)
        handles = [plt.Line2D([], [], color=c, label=f"width {w}") for w, c in colours.items()]
        handles += [plt.Line2D([], [], color="black", dashes=dashes[s] or (None, None), label=s) for s in style_list]
        handles += [plt.Line2D([], [], color="crimson", linestyle=":", label=f"target {100 * target:g}%"),
                    plt.Line2D([], [], color="grey", linestyle=":", label="budgets in the table")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, borderaxespad=0)
    ax.set_xlabel("training seconds spent (log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(PLOTS["budget"], fontsize=11)
    return _save(fig, path)


def plot_confusion(summary, folder, path):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ok = summary[in_comparison(summary.status)]
    best = ok.sort_values("final_val_acc", ascending=False).head(1)
    cpath = folder / "runs" / best.run_id.iloc[0] / "confusion.csv" if not best.empty else None
    if cpath is not None and cpath.is_file():
        counts = pd.read_csv(cpath, index_col=0)
        counts.columns = [c.replace("pred_", "") for c in counts.columns]
        sns.heatmap(counts, annot=len(counts) <= 20, fmt="d", cmap="Blues", cbar_kws={"label": "examples"}, ax=ax,
                    annot_kws={"fontsize": 7})
        ax.set_title(f"{PLOTS['confusion']}\n{best.layers.iloc[0]} seed {best.seed.iloc[0]}: "
                     f"{pct(best.final_val_acc.iloc[0])}", fontsize=11)
    else:
        _empty(ax, "no confusion matrix recorded")
        ax.set_title(PLOTS["confusion"])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return _save(fig, path)


def plot_all(g, summary, metrics, folder, plots_dir, target, secs):
    """Write every plot as PNG into ``plots_dir``; returns {name: path}."""
    setup()
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = {name: plots_dir / f"{name}.png" for name in PLOTS}
    draw_all([  # costliest first, so that the two halves of draw_all come out even
        (plot_learning_curves, (g, metrics, out["learning_curves"])),
        (plot_confusion, (summary, folder, out["confusion"])),
        (plot_time_vs_flops, (g, out["time_vs_flops"])),
        (plot_acc_vs_time, (g, out["acc_vs_time"])),
        (plot_budget, (g, metrics, target, secs, out["budget"])),
        (plot_acc_vs, (g, "depth", out["acc_vs_depth"])),
        (plot_acc_vs, (g, "width", out["acc_vs_width"])),
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
