"""A finished full grid read for replay: every configuration's validation
curve on every recorded seed, and the truth the full sweep reached.

A configuration is a grid point, or with ``[tune]`` a grid point and trial
(its seeds together), listed in grid order as the sweep lists them, so that
ties break the same way. A *unit* is what the sweep's answer names: the grid
point (with ``[tune]`` its trials are candidates for one answer), or the
configuration itself."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import layout
from ..errors import ConfigError
from ..report import reading, tables
from ..report import tuned as tunedmod
from ..status import Role, RunStatus, in_comparison


@dataclass(frozen=True)
class Recorded:
    """``curves``: (configs, seeds, evaluations) validation accuracy, a
    diverged run's 0 from its divergence on (as halving counts it);
    ``iterations``: (evaluations,) the iteration of each column;
    ``flops``: (configs,) FLOPs per iteration of one run; ``unit``:
    (configs,) the unit index of each; ``units``: their names;
    ``truth_mean``: (configs,) mean final validation accuracy over all
    seeds; ``tied``: (units,) bool, the report's tie set; ``winner``: the
    report's best unit; ``point``, ``trial``: (configs,) with ``[tune]``."""

    folder: Path
    names: tuple
    seeds: tuple
    iterations: np.ndarray
    curves: np.ndarray
    flops: np.ndarray
    unit: np.ndarray
    units: tuple
    truth_mean: np.ndarray
    tied: np.ndarray
    best: np.ndarray  # (units,) bool: the report's best, and any variant with exactly its mean
    winner: int
    tuned: bool
    point: np.ndarray
    trial: np.ndarray
    eval_every: int
    total: int
    accs: tuple  # the report's variants' per-seed validation accuracies, for the A/A check


def _sweep_table(folder: Path):
    table = layout.settings(folder)
    if table is None:
        raise ConfigError(f"{folder / layout.SETTINGS}: missing or unreadable; replay needs the grid as run")
    return table


def _search_runs(summary, folder: Path, tuned: bool):
    """The runs replay resamples: every configuration's, checked to be a
    full grid run to its full length on the same seeds (at least 2)."""
    search = summary[summary.role == Role.SEARCH.value] if tuned else summary
    bad = search[~search.status.isin([RunStatus.DONE.value, RunStatus.DIVERGED.value])]
    if len(bad):
        raise ConfigError(f"{folder}: run {bad.run_id.iloc[0]} is {bad.status.iloc[0]}; replay needs every run "
                          "of a full grid finished")
    short = search[(search.status == RunStatus.DONE.value) & (search.iterations_run != search.iterations)]
    if len(short) or search.iterations.nunique() != 1 or search.eval_every.nunique() != 1:
        raise ConfigError(f"{folder}: not every run went to one full length; replay needs a full grid "
                          "(same iterations and eval_every for all)")
    return search


def _config_keys(search, tuned):
    """Each run's configuration key, in grid order (the summary's order)."""
    if tuned:
        return list(zip(search.point.astype(int), search.trial.astype(int)))
    keys = tables.variant_keys(search)
    return [tuple(v) for v in search[keys].astype(str).itertuples(index=False)]


def load(folder, min_seeds=2) -> Recorded:
    """Read a finished full-grid sweep folder (packed or not). Raises
    ConfigError, naming the folder, for anything replay cannot use."""
    summary, metrics, folder = reading.load(folder)
    folder = Path(folder)
    table = _sweep_table(folder)
    strategy = table.get("sweep", {}).get("strategy", "grid")
    if strategy != "grid":
        raise ConfigError(f"{folder}: a {strategy} sweep, not a full grid; replay needs every configuration "
                          "run to its full length (strategy grid)")
    tuned_pair = tunedmod.load_tuned(folder)
    tuned = tuned_pair is not None and "role" in summary
    search = _search_runs(summary, folder, tuned)
    keys = _config_keys(search, tuned)
    order = list(dict.fromkeys(keys))
    seeds = sorted(search.seed.astype(int).unique())
    per = pd.Series(keys).value_counts()
    if len(seeds) < min_seeds:
        raise ConfigError(f"{folder}: {len(seeds)} seed per configuration; replay resamples seeds and needs at "
                          "least 2 (run the grid on more seeds)")
    if (per != len(seeds)).any() or len(search) != len(order) * len(seeds):
        raise ConfigError(f"{folder}: configurations were run on different seeds; replay needs every one on "
                          f"the same {len(seeds)} seeds")
    total, every = int(search.iterations.iloc[0]), int(search.eval_every.iloc[0])
    iterations = np.arange(every, total + 1, every)
    curves = _curves(search, metrics, keys, order, seeds, iterations, folder)
    return _with_truth(folder, summary, search, keys, order, seeds, iterations, curves, tuned_pair if tuned else None,
                       every, total)


def _curves(search, metrics, keys, order, seeds, iterations, folder):
    """(configs, seeds, evaluations) validation accuracies; a diverged run
    counts 0 from where its rows end (halving's rule)."""
    out = np.zeros((len(order), len(seeds), len(iterations)))
    index = {k: i for i, k in enumerate(order)}
    col = {int(it): j for j, it in enumerate(iterations)}
    m = metrics[metrics.val_acc.notna() & metrics.run_id.isin(search.run_id)]
    by_run = {r: g for r, g in m.groupby("run_id")}
    for key, run in zip(keys, search.itertuples()):
        rows = by_run.get(run.run_id)
        js = [col.get(int(i)) for i in rows.iteration] if rows is not None else []
        diverged = run.status == RunStatus.DIVERGED.value
        if None in js or (not diverged and len(js) != len(iterations)):
            raise ConfigError(f"{folder}: run {run.run_id} is not evaluated every {iterations[0]} iterations; "
                              "replay needs every run's full curve")
        if js:
            out[index[key], seeds.index(int(run.seed)), js] = rows.val_acc.to_numpy(float)
        if diverged:  # 0 where it has no row, and at the end (as [tune]'s selection counts it)
            out[index[key], seeds.index(int(run.seed)), -1] = 0.0
    return out


def _with_truth(folder, summary, search, keys, order, seeds, iterations, curves, tuned_pair, every, total):
    """The full sweep's answer, as the report computes it: the variants with
    their ties (Welch, Holm), mapped onto units."""
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    rows = search.iloc[[first[k] for k in order]]
    flops = rows.flops_per_iter.to_numpy(float)
    if tuned_pair is not None:
        point, trial = np.array([k[0] for k in order]), np.array([k[1] for k in order])
        unit_ids = sorted(set(point.tolist()))
        unit = np.array([unit_ids.index(p) for p in point])
        units = tuple(rows.layers.iloc[[list(point).index(p) for p in unit_ids]].astype(str))
        compared = tunedmod.compared(summary, *tuned_pair)
        unit_of_run = {r: unit_ids.index(int(p)) for r, p in zip(compared.run_id, compared.point)}
    else:
        point = trial = np.full(len(order), -1)
        unit, units = np.arange(len(order)), tuple(", ".join(k) for k in order)
        compared = summary
        unit_of_run = {r: order.index(k) for r, k in zip(search.run_id, keys)}
    g = tables.with_ties(tables.grouped(compared[in_comparison(compared.status)]))
    tied, best = np.zeros(len(units), bool), np.zeros(len(units), bool)
    winner = unit_of_run[g.run_ids.iloc[0][0]]
    for row in g.itertuples():
        tied[unit_of_run[row.run_ids[0]]] = row.decision != "worse"  # the tie set: all not shown worse
        best[unit_of_run[row.run_ids[0]]] = row.val_acc == g.val_acc.iloc[0]
    truth_mean = curves[:, :, -1].mean(axis=1)
    return Recorded(folder, tuple(order), tuple(seeds), iterations, curves, flops, unit, units, truth_mean, tied,
                    best, winner, tuned_pair is not None, point, trial, every, total, tuple(g.accs))
