"""A tuned sweep's folder: which trial each grid point selected from its
search runs, its confirmation runs, and ``tuned.csv``. The choices
themselves are :mod:`harness.tune`'s pure functions."""
from __future__ import annotations

from pathlib import Path

from . import layout, manifest, store
from . import tune as tunemod
from .grid import Sweep
from .status import parse

TUNED = layout.TUNED


def search_frame(sweep: Sweep, out: Path):
    """The search runs' point, trial, seed, status and validation accuracy;
    None while any of them has no status (selection must wait)."""
    import pandas as pd  # here: a sweep's workers import this module and need no pandas

    rows = []
    for run_id, cfg, meta in zip(sweep.run_ids, sweep.runs, sweep.meta):
        status = store.read_status(layout.run_dir(out, run_id))
        if status is None:
            return None
        rows.append({"run_id": run_id, "point": meta["point"], "trial": meta["trial"], "seed": cfg.seed,
                     "status": status["status"], "final_val_acc": status.get("final_val_acc")})
    return pd.DataFrame(rows)


def selection(sweep: Sweep, out: Path):
    """``{point: trial}`` chosen on the search runs, or None when the sweep
    is not tuned or its search is unfinished."""
    if sweep.tune is None:
        return None
    frame = search_frame(sweep, out)
    if frame is None:
        return None
    return {int(r.point): int(r.trial) for r in tunemod.select(frame).itertuples()}


def all_runs(sweep: Sweep, out: Path):
    """``[(run_id, cfg, meta)]``: the grid's runs, then, for a tuned sweep
    whose search is over, the selected trials' confirmation runs."""
    runs = list(zip(sweep.run_ids, sweep.runs, sweep.meta or [{}] * len(sweep.runs)))
    chosen = selection(sweep, out)
    return runs + (sweep.confirmation(chosen) if chosen else [])


def tuned_table(sweep: Sweep, out: Path):
    """One row per grid point: its scientific settings, the selected trial,
    the point's index in the grid, the trial's nuisance values, the trials and how many diverged, the
    confirmation runs' mean validation and test accuracy and their count,
    and each tuned setting's edge flag ("low", "high" or ""). None before
    the search is over."""
    frame = search_frame(sweep, out)
    if sweep.tune is None or frame is None:
        return None
    import pandas as pd

    picked = tunemod.select(frame)
    draws = sweep.tune.draws()
    rows = []
    for r in picked.itertuples():
        confirm = [store.read_status(layout.run_dir(out, run_id)) for run_id, _ in sweep.confirm[(r.point, r.trial)]]
        confirm = [s for s in confirm if s is not None and parse(s["status"]).in_comparison()]
        row = {k: _show(v) for k, v in sweep.points[r.point].items()}
        row.update({"trial": r.trial, "point": r.point, **draws[r.trial], "trials": r.trials,
                    "diverged_trials": r.diverged,
                    "search_val_acc": r.val_mean})
        row["confirm_val_acc"] = _mean(s.get("final_val_acc") for s in confirm)
        row["confirm_test_acc"] = _mean(s.get("test_acc") for s in confirm)
        row["confirm_runs"] = len(confirm)
        for key, dist in sweep.tune.dists.items():
            row[f"{key}_edge"] = tunemod.edge(dist, draws[r.trial][key])
        rows.append(row)
    return pd.DataFrame(rows)


def write_tuned(sweep: Sweep, out: Path):
    """Write ``tuned.csv`` (the sweep's main process is its one writer)."""
    table = tuned_table(sweep, out)
    if table is not None:
        manifest.write_sealed(out / TUNED, table.to_csv(index=False))
    return table


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _show(v):
    return "-".join(map(str, v)) if isinstance(v, tuple) else v
