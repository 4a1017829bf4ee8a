"""How the report's plots encode variants, shared by every plot.

One meaning per channel, the same in every plot: colour is the first hidden
width (viridis), or within a panel that already names the width, the depth
(plasma); marker and line style are the shape (constant or tapered) and the
other settings that vary. Legends never sit on the data; an accuracy axis is
cut at the bulk of the variants, and a variant far below it is drawn at the
bottom edge and named, not allowed to squash the others."""
from __future__ import annotations

import io
import math
import textwrap

import numpy as np

from .. import store
from .tables import label_keys, variant_keys

MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*", "<", ">", "h", "p", "d", "H", "8"]
# solid, dashed, dotted, dash-dot, long dash, dash-dot-dot, loose dash: no two alike
DASHES = ["", (5, 2), (1, 1.6), (7, 2, 1.5, 2), (12, 3), (6, 2, 1.5, 2, 1.5, 2), (3, 4)]
LEGEND_WRAP = 48  # characters: a longer legend entry wraps, so a legend stays narrower than its plot


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


def save(fig, path):
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    store.atomic_write_bytes(path, buf.getvalue())
    return path


def width_colours(widths):
    """An ordered colour per first width: viridis without its pale yellow end."""
    import matplotlib.pyplot as plt

    widths = sorted(set(int(w) for w in widths))
    return dict(zip(widths, plt.get_cmap("viridis")(np.linspace(0.0, 0.8, max(2, len(widths))))))


def depth_colours(depths):
    """An ordered colour per depth, from another palette than the widths'."""
    import matplotlib.pyplot as plt

    depths = sorted(set(int(d) for d in depths))
    return dict(zip(depths, plt.get_cmap("plasma")(np.linspace(0.0, 0.8, max(2, len(depths))))))


def styles(g):
    """``g`` with ``shape`` ("constant" or "tapered"), ``rest`` (the shape and
    every other setting that tells variants apart, the layers aside) and
    ``style`` (the depth and ``rest``): what markers and line styles tell."""
    g = g.copy()
    keys = [k for k in label_keys(g, variant_keys(g)) if k != "layers"] if not g.empty else []

    def shape(row):
        return "tapered" if len(set(str(row["layers"]).split("-")[1:-1])) > 1 else "constant"
    g["shape"] = [shape(row) for _, row in g.iterrows()] if not g.empty else []
    tapered = (g["shape"] == "tapered").any() if not g.empty else False
    g["rest"] = [", ".join(([row["shape"]] if tapered else []) + [f"{k} {row[k]}" for k in keys]) or "as in the grid"
                 for _, row in g.iterrows()] if not g.empty else []
    g["style"] = [f"depth {row['depth']}" + (f", {row['rest']}" if row["rest"] != "as in the grid" else "")
                  for _, row in g.iterrows()] if not g.empty else []
    return g


def assign(values, choices):
    """``{value: choice}`` in sorted order; past the list, choices repeat."""
    return {v: choices[i % len(choices)] for i, v in enumerate(sorted(set(values)))}


def wrap(text):
    return "\n".join(textwrap.wrap(str(text), LEGEND_WRAP, break_on_hyphens=False)) or str(text)


def legend(ax, handles, title=None, below=None):
    """A legend outside the axes: at the right when its entries are short,
    under the plot (wrapped) when they are long."""
    if not handles:
        return
    long = max(len(h.get_label()) for h in handles) > 30 if below is None else below
    for h in handles:
        h.set_label(wrap(h.get_label()))
    if long:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.16), fontsize=8, title=title,
                  title_fontsize=9, ncol=1 if len(handles) < 8 else 2, borderaxespad=0, frameon=True)
    else:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title=title,
                  title_fontsize=9, borderaxespad=0)


def panel_legend(fig, right_of, handles, title=None):
    """The legend of a figure of panels: right of the top-right panel when
    its entries are short, else under the whole figure."""
    if not handles:
        return
    if max(len(h.get_label()) for h in handles) <= 30:
        legend(right_of, handles, title=title, below=False)
        return
    for h in handles:
        h.set_label(wrap(h.get_label()))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, title=title,
               title_fontsize=9, ncol=2 if len(handles) > 3 else 1)


def _plain(v):
    return f"{v:.3g}"


def si(v):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def log_ticks(axis, fmt=_plain):
    """Ticks in plain numbers (0.002, 300M; never 2×10⁻³ or 6×10¹) for a log
    axis, as many as its range allows without labels running into each
    other. Call it once the axis's limits are final."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 2.0
    if decades >= 4:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0,)))
    elif decades >= 2.5:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    elif decades >= 1.2:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    elif decades >= 0.4:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)))
    else:  # under a factor of 2.5: a few round, evenly spaced values, with just enough digits to differ
        from matplotlib.ticker import MaxNLocator

        ticks = [t for t in MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if lo <= t <= hi]
        digits = 2
        while len({f"{t:.{digits}g}" for t in ticks}) < len(ticks) and digits < 8:
            digits += 1
        axis.set_major_locator(FixedLocator(ticks))
        fmt = (lambda d: lambda v: f"{v:.{d}g}")(digits) if fmt is _plain else fmt
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    axis.set_minor_formatter(NullFormatter())


def accuracy_floor(means):
    """The lowest mean (percent) an accuracy axis shows: the bulk of the
    variants, less any far below them (under the lower Tukey fence, 1.5
    interquartile ranges below the first quartile), which are marked at the
    edge instead of squashing the others."""
    means = np.sort(np.asarray([m for m in means if not math.isnan(m)], float))
    if len(means) < 5:
        return means[0] if len(means) else 0.0
    q1, q3 = np.percentile(means, [25, 75])
    return means[means >= q1 - 1.5 * max(q3 - q1, 0.5)][0]


def cap_percent(ax, points):
    """Limit an accuracy axis (percent) to the bulk of ``points`` ((x, mean,
    label) tuples) and 100; a point below the bulk gets a marker at the
    bottom edge and its label and value. Returns the axis's lower limit."""
    points = [p for p in points if not math.isnan(p[1])]
    if not points:
        return None
    means = [p[1] for p in points]
    floor = accuracy_floor(means)
    lo = floor - max(0.6, 0.25 * (max(means) - floor))
    ax.set_ylim(lo, min(max(ax.get_ylim()[1], max(means) + 0.3), 100.2))
    for i, (x, y, label) in enumerate(sorted(p for p in points if p[1] < lo)):
        ax.plot([x], [lo], marker="v", color="crimson", markersize=8, clip_on=False, zorder=5)
        ax.annotate(wrap(f"{label}: {y:.2f}%, below the axis"), (x, lo), xytext=(8, 4 + 22 * i),
                    textcoords="offset points", fontsize=7.5, color="crimson", va="bottom")
    return lo


def empty(ax, text="no finished runs"):
    """A panel that says why it has nothing to show."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def line(ax, x, y, colour, dashes, **kw):
    """One curve in a variant's colour and dashes (None: solid)."""
    line, = ax.plot(x, y, color=colour, **kw)
    if dashes:
        line.set_dashes(dashes)
    return line
