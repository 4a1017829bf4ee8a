"""The report's fitted frontier: :mod:`.frontier`'s fit per family of
architectures (one depth, shape and settings; the width varying), its plot,
the costs it says a target accuracy takes, and the audit of each fit."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import frontier
from .style import styles
from .tables import pct

PLOT = "frontier"
TITLE = "Fitted frontier: validation error against parameters, per family (width varying)"
TARGETS = (0.95, 0.97, 0.975, 0.98)


def families(g):
    """``[(name, rows)]``: the variants of ``g`` grouped by depth, shape and
    settings (everything but the width), rows sorted by parameters."""
    if g.empty:
        return []
    sg = styles(g)
    return [(name, part.sort_values("n_params")) for name, part in sg.groupby("style", sort=True)]


def fits(g):
    """``[(name, rows, fit or None, why not, audit or None)]`` for each family."""
    out = []
    for name, rows in families(g):
        errs = [1 - np.asarray(a, float) for a in rows.accs]
        if len(rows) < frontier.MIN_WIDTHS:
            out.append((name, rows, None, f"{len(rows)} width{'s' if len(rows) != 1 else ''}; a fit of 3 "
                        f"parameters needs {frontier.MIN_WIDTHS} or more to be tested", None))
            continue
        if min(len(e) for e in errs) < 2:
            out.append((name, rows, None, "a width with fewer than 2 seeds: no band and no test of the fit", None))
            continue
        if min(float(np.mean(e)) for e in errs) <= 0:
            out.append((name, rows, None, "a width with no validation error: a power law cannot be fitted", None))
            continue
        cost = rows.n_params.to_numpy(float)
        out.append((name, rows, frontier.fit(cost, errs), "", frontier.audit(cost, errs)))
    return out


def _loglog(x, xs, ys):
    """``ys(x)`` interpolated in log-log space, extended along the end segments."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    t = math.log(x)
    i = int(np.clip(np.searchsorted(lx, t) - 1, 0, len(lx) - 2))
    return float(math.exp(ly[i] + (ly[i + 1] - ly[i]) * (t - lx[i]) / (lx[i + 1] - lx[i])))


def _si(x):
    if math.isinf(x):
        return "beyond reach"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _secs(x):
    return f"{x:,.0f}" if x >= 1000 else f"{x:.3g}"


def reach_rows(name, rows, fit, targets):
    """One row per target: the parameters, training FLOPs and seconds the fit
    says it takes, with the bootstrap's interval of the parameters."""
    out = []
    top = rows.n_params.max()
    for acc in targets:
        n = frontier.invert(fit.params, 1 - acc)
        if math.isinf(n):
            out.append({"family": name, "to reach": f"{100 * acc:g}%", "parameters [95% interval]":
                        f"not reachable: the fitted floor is {100 * (1 - fit.params[2]):.2f}% accuracy",
                        "training FLOPs": "", "training s": ""})
            continue
        lo, hi = fit.interval(lambda p: frontier.invert(p, 1 - acc))
        where = "" if n <= top else f" (beyond the widest measured, {_si(top)})"
        out.append({"family": name, "to reach": f"{100 * acc:g}%",
                    "parameters [95% interval]": f"about {_si(n)} [{_si(lo)}, {_si(hi)}]{where}",
                    "training FLOPs": f"about {_si(_loglog(n, rows.n_params, rows.flops_total))}",
                    "training s": f"about {_secs(_loglog(n, rows.n_params, rows.train_seconds))}"})
    return out


def _fit_row(name, rows, fit, why):
    if fit is None:
        return {"family": name, "widths": len(rows), "fit": f"none: {why}"}
    a, b, c = fit.params
    (blo, bhi), (clo, chi) = fit.interval(lambda p: p[1]), fit.interval(lambda p: p[2])
    verdict = f"rejected: {fit.rejected}" if fit.rejected else "used" + (
        f" (lack-of-fit p = {fit.p:.2g})" if not math.isnan(fit.p) else "")
    return {"family": name, "widths": len(rows), "fit": verdict, "exponent b [95%]": f"{b:.3g} [{blo:.3g}, {bhi:.3g}]",
            "floor: accuracy 1 - c [95%]": f"{100 * (1 - c):.2f}% [{100 * (1 - chi):.2f}, {100 * (1 - clo):.2f}]"}


def _audit_row(name, rows, audit):
    predicted, lo, hi, measured, miss = audit
    return {"family": name, "held out": rows.label.iloc[-1],
            "predicted acc [95% interval]": pct(1 - predicted, 1 - hi, 1 - lo), "measured": pct(1 - measured),
            "inside": "yes" if miss == 0 else "no", "missed by (points)": f"{100 * miss:.2f}"}


def blocks(g, target):
    """The section "Fitted frontier"."""
    results = fits(g)
    out = [("h2", "Fitted frontier"),
           ("p", "Per family of architectures (one depth, shape and settings, the width varying), validation "
                 "error against parameters is fitted with a power law falling to a floor, error = a · "
                 "params^(−b) + c, on the seed means; the intervals are a bootstrap over seeds "
                 f"({frontier.BOOTSTRAP} draws, seeded). A fit is rejected, and nothing read from it, when the "
                 "error does not fall with size or when the seed means stray from the curve more than their "
                 f"seeds scatter (a lack-of-fit F test, p below {frontier.REJECT_P}). Training FLOPs and seconds "
                 "are read off the measured widths (interpolated in log-log, extended past them).")]
    if not results:
        return out + [("p", "No finished runs to fit.")]
    out.append(("table", pd.DataFrame([_fit_row(n, r, f, w) for n, r, f, w, _ in results])))
    usable = [(n, r, f) for n, r, f, _, _ in results if f is not None and not f.rejected]
    targets = sorted(set(TARGETS) | {target})
    if usable:
        out.append(("p", "What the fits say a target validation accuracy takes, with the 95% interval of the "
                         "parameters (beyond reach: some bootstrap fits never reach it):"))
        out.append(("table", pd.DataFrame([row for n, r, f in usable for row in reach_rows(n, r, f, targets)])))
    else:
        out.append(("p", "No family has a usable fit, so the report reads no cost off a curve."))
    audits = [(n, r, a) for n, r, f, _, a in results if a is not None]
    if audits:
        held = sum(a[4] == 0 for _, _, a in audits)
        out.append(("p", f"**Audit:** each family with {frontier.MIN_WIDTHS} or more widths was fitted again "
                         "without its largest width, which it then predicted (a 95% prediction interval for its "
                         f"mean over its seeds). The measured mean fell inside in {held} of {len(audits)}."))
        out.append(("table", pd.DataFrame([_audit_row(n, r, a) for n, r, a in audits])))
    return out


def plot(g, path):
    """One panel per family: the measured means (95% intervals), the fitted
    curve and its bootstrap band on a log parameter axis, and the audit's
    prediction of the largest width."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .style import legend, log_ticks, save, si

    results = fits(g)
    cols = min(3, max(1, len(results)))
    rows_ = -(-max(1, len(results)) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4.3 * cols + 3.5, 4.2 * rows_), squeeze=False)
    for ax in axes.ravel()[len(results):]:
        ax.set_visible(False)
    if not results:
        axes[0, 0].set_visible(True)
        axes[0, 0].text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=axes[0, 0].transAxes)
    for ax, (name, rows, fit, why, audit) in zip(axes.ravel(), results):
        err = 100 * (1 - rows.val_acc.to_numpy(float))
        rows = rows[np.isfinite(err) & (err > 0)]  # a log axis shows no error of 0 (nor a diverged variant's)
        if rows.empty:
            ax.text(0.5, 0.5, "no error above 0 to show", ha="center", va="center", transform=ax.transAxes)
            continue
        x, err = rows.n_params.to_numpy(float), 100 * (1 - rows.val_acc.to_numpy(float))
        bars = np.array([err - 100 * (1 - rows.val_hi.to_numpy(float)), 100 * (1 - rows.val_lo.to_numpy(float)) - err])
        if fit is not None:
            xs = np.geomspace(x.min() / 2, x.max() * 4, 80)
            lo, hi = fit.band(xs)
            colour = "grey" if fit.rejected else "steelblue"
            ax.fill_between(xs, 100 * lo, 100 * hi, color=colour, alpha=0.25, linewidth=0)
            ax.plot(xs, 100 * frontier.curve(fit.params, xs), color=colour, linestyle=":" if fit.rejected else "-")
        if audit is not None:
            ax.errorbar([x.max() * 1.08], [100 * audit[0]], yerr=[[100 * (audit[0] - audit[1])],
                        [100 * (audit[2] - audit[0])]], fmt="s", color="darkorange", capsize=3, markersize=5)
        ax.errorbar(x, err, yerr=np.nan_to_num(np.clip(bars, 0, None)), fmt="o", color="black", capsize=2,
                    markersize=4, zorder=4)
        for xi, yi, w in zip(x, err, rows.width):
            ax.annotate(str(w), (xi, yi), xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_ticks(ax.xaxis, si)
        log_ticks(ax.yaxis)
        state = "no fit" if fit is None else ("fit rejected" if fit.rejected else "fitted")
        ax.set_title(f"{name} ({state})", fontsize=9)
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel("validation error (%, log)")
    handles = [Line2D([], [], marker="o", color="black", linestyle="", label="measured mean, 95% interval (label: width)"),
               Line2D([], [], color="steelblue", lw=6, alpha=0.4, label="fit and its 95% bootstrap band"),
               Line2D([], [], color="grey", linestyle=":", label="a rejected fit"),
               Line2D([], [], marker="s", color="darkorange", linestyle="", label="audit: the largest width predicted "
                      "by a fit without it")]
    legend(axes[0, cols - 1] if results else axes[0, 0], handles, below=False)
    fig.suptitle(TITLE, fontsize=11)
    fig.tight_layout()
    return save(fig, path)
