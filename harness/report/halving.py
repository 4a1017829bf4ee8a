"""The "Halving" section of a sweep run with ``strategy = "halving"``: what
each rung kept, and the compute it saved. From ``summary.csv``, the runs'
metrics and the grid as run (``sweep.toml``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import layout
from ..strategy import REGISTRY
from ..status import Role, RunStatus, mask

PLOT = "halving"
PLOT_TITLE = "Validation accuracy at each rung, one line per configuration (those that finished in colour)"


def rung_list(folder, summary):
    """The rungs' iterations, or None when the sweep did not halve."""
    sweep = (layout.settings(folder) or {}).get("sweep", {})
    strategy = REGISTRY.get(sweep.get("strategy", "grid"))
    if strategy is None or "iterations" not in summary:
        return None
    return strategy.rungs(sweep, int(summary.iterations.max()))


def _search(summary):
    return summary[summary.role == Role.SEARCH.value] if "role" in summary else summary


def _config_key(summary):
    """A configuration's name: its layers and the settings that differ
    between configurations (the seed aside), e.g. "784-512-10, lr 0.0029, trial 1"."""
    keys = [c for c in ("lr", "trial") if c in summary and summary[c].nunique() > 1]

    def name(row):
        return ", ".join([str(row["layers"])] + [f"{k} {row[k]:.3g}" if isinstance(row[k], float) else f"{k} {row[k]}"
                                                 for k in keys])
    return summary.apply(name, axis=1) if len(summary) else pd.Series([], dtype=str)


def curves(summary, metrics, levels):
    """Mean validation accuracy over seeds of each configuration at each
    rung it reached: columns config, rung, iteration, val_acc, finished."""
    search = _search(summary).assign(config=lambda d: _config_key(d))
    at = metrics[metrics.iteration.isin(levels) & metrics.val_acc.notna()]
    merged = at.merge(search[["run_id", "config", "status"]], on="run_id")
    out = merged.groupby(["config", "iteration"]).val_acc.mean().reset_index()
    out["rung"] = out.iteration.map({r: k + 1 for k, r in enumerate(levels)})
    done = set(search.config[~mask(search.status, RunStatus.STOPPED)])
    out["finished"] = out.config.isin(done)
    return out


def blocks(summary, levels):
    """What halving did: rungs, survivors, and the training FLOPs and seconds
    against the full grid's."""
    search = _search(summary)
    used = float((search.iterations_run * search.flops_per_iter).sum())
    full = float((search.iterations * search.flops_per_iter).sum())
    secs = float(search.total_seconds.sum())
    full_secs = float((search.total_seconds * search.iterations / search.iterations_run.clip(lower=1)).sum())
    config = _config_key(search)
    rows = []
    for k, r in enumerate(levels):
        reached = search[search.iterations_run >= r] if k else search
        rows.append({"rung": k + 1, "iteration": r, "configurations": config[reached.index].nunique(),
                     "runs": len(reached)})
    text = (f"Successive halving ranked the configurations by mean validation accuracy over seeds at each rung "
            f"and let the best continue from their checkpoints. It trained {100 * used / full:.1f}% of the "
            f"training FLOPs the full grid would have ({used:.3g} of {full:.3g}), and "
            f"{100 * secs / full_secs:.0f}% of its training seconds ({secs:.0f} s, against about "
            f"{full_secs:.0f} s extrapolated from each run's own pace). Stopped runs enter no comparison.")
    return [("h2", "Halving"), ("p", text), ("table", pd.DataFrame(rows)),
            ("image", (PLOT_TITLE, f"plots/{PLOT}.png"))]


def plot(summary, metrics, levels, path):
    """One line per configuration across the rungs it reached: those stopped
    in grey, those that finished each in its own colour and named, the best
    at the last rung thick and starred."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .style import legend, save

    data = curves(summary, metrics, levels)
    fig, ax = plt.subplots(figsize=(8.5, 5))
    last = data[data.finished & (data.iteration == levels[-1])].sort_values("val_acc", ascending=False)
    finished = list(last.config)
    palette = plt.get_cmap("tab10" if len(finished) <= 10 else "turbo")(
        np.arange(len(finished)) if len(finished) <= 10 else np.linspace(0.05, 0.95, len(finished)))
    handles = []
    for config, part in data.groupby("config"):
        part = part.sort_values("iteration")
        if config not in finished:
            ax.plot(part.iteration, 100 * part.val_acc, marker="o", ms=2.5, color="0.75", lw=0.7, zorder=1)
            continue
        k = finished.index(config)
        best = k == 0
        ax.plot(part.iteration, 100 * part.val_acc, marker="*" if best else "o", ms=11 if best else 4,
                color=palette[k], lw=2.6 if best else 1.4, zorder=4 if best else 3)
        handles.append(Line2D([], [], color=palette[k], marker="*" if best else "o", lw=2.6 if best else 1.4,
                              label=f"{config}: {100 * part.val_acc.iloc[-1]:.2f}%" + (" (best at the last rung)"
                                                                                      if best else "")))
    handles.sort(key=lambda h: finished.index(h.get_label().split(":")[0]))
    handles.append(Line2D([], [], color="0.75", marker="o", ms=2.5, lw=0.7, label="stopped at a rung"))
    ax.set_xscale("log")
    ax.set_xticks(levels)
    ax.set_xticklabels([str(r) for r in levels])
    ax.minorticks_off()
    ax.set_xlabel("iteration (rung, log scale)")
    ax.set_ylabel("validation accuracy (%), mean over seeds")
    finite = 100 * data.val_acc[data.val_acc > 0]
    if len(finite):
        ax.set_ylim(max(float(np.nanmin(finite)) - 1, float(np.nanmax(finite)) - 12), 100.2 if finite.max() > 99.5
                    else float(finite.max()) + 0.5)
    legend(ax, handles, title="finished the last rung", below=False)
    ax.set_title(PLOT_TITLE, fontsize=11)
    return save(fig, path)
