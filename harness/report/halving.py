"""The "Halving" section of a sweep run with ``strategy = "halving"``: what
each rung kept, and the compute it saved. From ``summary.csv``, the runs'
metrics and the grid as run (``sweep.toml``)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from .. import halving
from ..status import RunStatus, mask

PLOT = "halving"
PLOT_TITLE = "Validation accuracy at each rung, one line per configuration (promoted ones in colour)"


def rung_list(folder, summary):
    """The rungs' iterations, or None when the sweep did not halve."""
    try:
        sweep = tomllib.loads((Path(folder) / "sweep.toml").read_text()).get("sweep", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if sweep.get("strategy") != "halving" or "iterations" not in summary:
        return None
    return halving.rungs(sweep["min_iterations"], sweep.get("eta", 3), int(summary.iterations.max()))


def _search(summary):
    return summary[summary.role == "search"] if "role" in summary else summary


def _config_key(summary):
    """A configuration's name: its layers and the settings that differ
    between configurations (the seed aside)."""
    keys = [c for c in ("layers", "lr", "trial") if c in summary and summary[c].nunique() > 1] or ["layers"]
    return summary[keys].astype(str).agg(", ".join, axis=1)


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
    import matplotlib.pyplot as plt

    from .plots import _save

    data = curves(summary, metrics, levels)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for config, part in data.groupby("config"):
        part = part.sort_values("iteration")
        colour, width = ("tab:blue", 1.6) if part.finished.iloc[0] else ("0.75", 0.8)
        ax.plot(part.iteration, 100 * part.val_acc, marker="o", ms=3, color=colour, lw=width,
                zorder=3 if part.finished.iloc[0] else 1)
    ax.set_xscale("log")
    ax.set_xticks(levels)
    ax.set_xticklabels([str(r) for r in levels])
    ax.set_xlabel("iteration (rung)")
    ax.set_ylabel("validation accuracy (%), mean over seeds")
    finite = 100 * data.val_acc[data.val_acc > 0]
    if len(finite):
        ax.set_ylim(max(float(np.nanmin(finite)) - 1, float(np.nanmax(finite)) - 12), 100.2)
    return _save(fig, path)
