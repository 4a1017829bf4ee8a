"""Every cost a user pays for a variant, beside its accuracy: parameters and
their memory, FLOPs per training iteration and in total, measured training
seconds and seconds to the report's target, and inference latency per
example (stored once per sweep by :mod:`harness.latency`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import latency
from ..config import RunConfig

# column of the variants' frame: (what the report calls it, the unit shown,
# its scale from the column's); the fronts are drawn against these, in order.
COSTS = {
    "train_seconds": ("training time", "s", 1.0),
    "flops_total": ("training FLOPs", "", 1.0),
    "n_params": ("parameters", "", 1.0),
    "latency_1": ("inference latency at batch 1", "µs per example", 1e6),
}


def _dtype(summary, run_ids):
    runs = summary[summary.run_id.isin(run_ids)]
    return str(runs.dtype.iloc[0]) if "dtype" in runs and len(runs) else RunConfig.dtype  # an old summary: the default


def _training_seconds(metrics):
    """Each run's training seconds: its iterations' times summed, or, in a
    packed sweep (evaluation rows only), the running sum it kept."""
    if metrics.empty:
        return pd.Series(dtype=float)
    if "train_seconds" in metrics:
        return metrics.groupby("run_id").train_seconds.max()
    return metrics.groupby("run_id").iter_seconds.sum()


def with_costs(g, summary, metrics, reach, folder, measure=latency.measure, sources=()):
    """``g`` with ``dtype``, ``param_bytes``, ``iterations`` (median run),
    ``flops_total`` (FLOPs per iteration x iterations), ``train_seconds``
    (median over seeds of the training steps' seconds; evaluations
    excluded), ``seconds_to_target`` (from :func:`tables.budgets`' ``reach``)
    and ``latency_1``, ``latency_large`` (seconds per example at batch 1 and
    at :data:`harness.latency.LARGE_BATCH`, measured once per sweep folder;
    a comparison takes those its ``sources`` folders stored)."""
    g = g.copy()
    if g.empty:
        return g
    g["dtype"] = [_dtype(summary, ids) for ids in g.run_ids]
    g["param_bytes"] = [n * np.dtype(d).itemsize for n, d in zip(g.n_params, g.dtype)]
    its, secs = [], []
    steps = _training_seconds(metrics)
    for ids in g.run_ids:
        runs = summary[summary.run_id.isin(ids)]
        done = runs.iterations_run if "iterations_run" in runs else runs.iterations
        its.append(float(done.median()))
        measured = steps.reindex(ids).dropna()
        secs.append(float(measured.median()) if len(measured) else float(runs.total_seconds.median()))
    g["iterations_done"] = its
    g["flops_total"] = g.flops_per_iter * g.iterations_done
    g["train_seconds"] = secs
    to_target = dict(zip(reach.variant, reach["training seconds"])) if reach is not None else {}
    g["seconds_to_target"] = [to_target.get(label, math.nan) for label in g.label]
    archs = list(dict.fromkeys(zip(g.layers.astype(str), g.dtype)))
    figures = latency.ensure(folder, archs, measure, sources)
    g["latency_1"] = [figures[(str(a), d)][0] for a, d in zip(g.layers, g.dtype)]
    g["latency_large"] = [figures[(str(a), d)][1] for a, d in zip(g.layers, g.dtype)]
    return g


def csv_columns(g):
    """The cost columns comparison.csv gains, with their units in their names."""
    return {
        "params": g.n_params, "param_bytes": g.param_bytes, "flops_per_iter": g.flops_per_iter,
        "train_flops": g.flops_total, "train_seconds": g.train_seconds,
        "seconds_to_target": g.seconds_to_target,
        "latency_batch1_s": g.latency_1, f"latency_batch{latency.LARGE_BATCH}_s": g.latency_large,
    }


def _bytes(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _si(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _us(s):
    return "at the end" if math.isnan(s) else f"{1e6 * s:.3g}"


def table(g, target):
    """The report's table of costs, one row per variant (ranked as ``g``)."""
    return pd.DataFrame({
        "variant": g.label,
        "params": [_si(v) for v in g.n_params],
        "memory of params": [_bytes(v) for v in g.param_bytes],
        "FLOPs/iter": [_si(v) for v in g.flops_per_iter],
        "training FLOPs": [_si(v) for v in g.flops_total],
        "training s": [f"{v:,.0f}" if v >= 1000 else f"{v:.3g}" for v in g.train_seconds],
        f"s to {100 * target:g}%": ["not reached" if math.isnan(v) else f"{v:.3g}" for v in g.seconds_to_target],
        "latency batch 1 (µs/example)": [_us(v) for v in g.latency_1],
        f"latency batch {latency.LARGE_BATCH} (µs/example)": [_us(v) for v in g.latency_large],
    })


def blocks(g, target):
    """The section "What each variant costs"."""
    return [("h2", "What each variant costs"),
            ("p", "Parameters and their memory (at the runs' dtype); FLOPs of one training iteration (the GEMMs "
                  "of the forward and backward passes) and of the whole run (the median run's iterations); "
                  "training seconds measured (the training steps, evaluations excluded; the median over "
                  f"seeds) and to first reach {100 * target:g}% validation accuracy (the median over the seeds "
                  "that did); and inference latency per example, the forward pass on one thread at batch 1 and "
                  f"at batch {latency.LARGE_BATCH}, the median of {latency.REPEATS} repeats, measured once on "
                  f"the machine that first wrote this report and kept in {latency.FILE} beside it (not while "
                  "the sweep runs: its workers would slow it; \"at the end\" waits for the final report). Each cost "
                  "alone misleads: the fronts below set accuracy against each of them."),
            ("table", table(g, target))]
