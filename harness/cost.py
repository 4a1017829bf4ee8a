"""The cost model: a run's seconds before it runs, and a sweep's wall time.

A training step and an evaluation pass are each priced by a linear model
over a few features of the network, the rows and the thread count (see
:func:`step_features`). Its coefficients are measured on this machine by
:mod:`harness.calibration`. Finished runs refine the estimates
(:func:`refine`), and :func:`simulate` turns per-run seconds into a sweep's
wall time the way the sweep schedules its runs.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from . import mlp
from .optim import parallel_min

FEATURES = ("step", "calls", "flops", "elements", "updates")


# --- features ---------------------------------------------------------------

def _critical_share(k, threads):
    """Chunks computed by the busiest thread, out of ``k`` chunks."""
    return math.ceil(k / max(1, threads)), math.ceil(k / max(1, threads)) / k


def step_features(layers, m, threads, update_weight=1.0, optimizer="adam"):
    """Features of one training step on ``m`` rows: a fixed cost, numpy
    calls (layers x chunks on the busiest thread), GEMM FLOPs and
    activation elements on that thread, and the optimizer's passes over the
    parameters (``update_weight`` scales them per optimizer; shared over
    the threads from the optimizer's :func:`parallel_min` on). A vector in
    :data:`FEATURES` order."""
    busy, share = _critical_share(len(mlp._chunks(m, layers)), threads)
    n = mlp.n_params(layers)
    spread = threads if n >= parallel_min(optimizer) else 1
    return np.array([1.0, (len(layers) - 1) * busy, mlp.flops_per_iter(layers, m) * share,
                     m * sum(layers) * share, n * update_weight / spread])


def pass_features(layers, n, threads):
    """Features of one forward pass (an evaluation) over ``n`` rows."""
    if n <= 0:
        return np.zeros(len(FEATURES))
    busy, share = _critical_share(len(mlp._chunks(n, layers)), threads)
    fwd = sum(2 * n * a * b for a, b in zip(layers[:-1], layers[1:]))
    return np.array([0.0, (len(layers) - 1) * busy, fwd * share, n * sum(layers) * share, 0.0])


# --- the model ----------------------------------------------------------------

@dataclass(frozen=True)
class Rows:
    """The rows a run trains, validates and tests on."""

    train: int
    val: int
    test: int


@dataclass
class Model:
    """Coefficients measured on this machine: ``coef[dtype][threads]`` in
    :data:`FEATURES` order (seconds per unit), the optimizers' update cost
    relative to Adam's, a run's fixed cost (seconds: writing its files) and
    a worker's start-up (seconds: a new Python importing the harness)."""

    coef: dict
    update_weight: dict
    run_overhead: float
    worker_start: float
    cores: int
    contention: float = 1.0         # a compute-bound 1-thread run's slowdown when every core runs one
    contention_memory: float = 1.0  # the same for a run that streams its rows (memory-bound)
    noise: float = 0.0              # how far two passes of the probes disagreed (see NOISE_LIMIT)

    def slowdown(self, running, memory_share=0.0):
        """How much slower each of ``running`` concurrent runs goes (they
        share memory bandwidth and caches); ``memory_share`` is the part of
        the run's time spent streaming elements (:meth:`memory_share`)."""
        if self.cores <= 1 or running <= 1:
            return 1.0
        per_core = (1 - memory_share) * (self.contention - 1) + memory_share * (self.contention_memory - 1)
        return 1.0 + per_core * (min(running, self.cores) - 1) / (self.cores - 1)

    def memory_share(self, cfg, m, threads=1):
        """The part of a step's predicted time that goes on elements, 0 to 1."""
        parts = self._coef(cfg.dtype, threads) * self._step_features(cfg, m, threads)
        total = parts.sum()
        return float(parts[FEATURES.index("elements")] / total) if total > 0 else 0.0

    def _coef(self, dtype, threads):
        table = self.coef[dtype]
        return np.array(table[str(min((int(t) for t in table), key=lambda t: (abs(t - threads), t)))])

    def step_seconds(self, cfg, m, threads):
        return float(self._coef(cfg.dtype, threads) @ self._step_features(cfg, m, threads))

    def _step_features(self, cfg, m, threads):
        return step_features(cfg.layers, m, threads, self.update_weight.get(cfg.optimizer, 1.0), cfg.optimizer)

    def pass_seconds(self, cfg, n, threads):
        return float(self._coef(cfg.dtype, threads) @ pass_features(cfg.layers, n, threads))

    def train_seconds(self, cfg, rows: Rows, iterations, threads):
        """The training loop: steps and the validation passes (what a run
        records as ``total_seconds``)."""
        m = min(cfg.batch_size or rows.train, rows.train)
        evals = iterations // cfg.eval_every + (iterations % cfg.eval_every != 0)
        return iterations * self.step_seconds(cfg, m, threads) + evals * self.pass_seconds(cfg, rows.val, threads)

    def run_seconds(self, cfg, rows: Rows, iterations, threads):
        """The whole run: training, its final evaluation (training, test and
        validation rows) and its files."""
        final = sum(self.pass_seconds(cfg, n, threads) for n in (rows.train, rows.test, rows.val))
        return self.train_seconds(cfg, rows, iterations, threads) + final + self.run_overhead

    def to_json(self):
        return {"coef": self.coef, "update_weight": self.update_weight, "run_overhead": self.run_overhead,
                "worker_start": self.worker_start, "cores": self.cores, "contention": self.contention,
                "contention_memory": self.contention_memory, "noise": self.noise}


# --- refinement and the schedule ---------------------------------------------

def refine(predicted: dict, measured: dict) -> dict:
    """Correct predicted seconds with finished runs.

    ``predicted``: ``{run_id: seconds}`` for the runs to estimate;
    ``measured``: ``{run_id: (measured, predicted)}`` training seconds per
    iteration of finished runs, with the model's prediction for them. A run
    measured before keeps its own ratio of measured to predicted; the others
    take the median ratio of all measured runs."""
    ratios = {r: got / want for r, (got, want) in measured.items() if got and want}
    if not ratios:
        return dict(predicted)
    typical = statistics.median(ratios.values())
    return {r: s * ratios.get(r, typical) for r, s in predicted.items()}


def _seconds_at(task, threads, cores):
    """A task's seconds at ``threads``: ``task`` starts with (seconds on 1
    thread, seconds on ``cores`` threads), taken as linear in 1/threads between."""
    one, many = task[:2]
    if cores <= 1 or threads <= 1:
        return one
    frac = (1 - 1 / min(threads, cores)) / (1 - 1 / cores)
    return one + (many - one) * frac


def simulate(tasks, jobs, cores, takeover=True, slowdown=lambda running, share: 1.0):
    """Wall seconds to run ``tasks`` the way a sweep does: longest first,
    each on the next free worker of ``jobs``, ``cores // running`` threads
    each when ``takeover`` (so the last runs take over idle cores), one
    otherwise (Dask); ``slowdown(running, memory_share)`` stretches runs
    that share the machine. ``tasks``: ``[(seconds on 1 thread, seconds on
    all cores[, memory share]), ...]``."""
    queue = sorted(tasks, key=lambda t: -t[0])
    running, wall = [], 0.0  # [fraction left, task]
    while queue or running:
        while queue and len(running) < jobs:
            running.append([1.0, queue.pop(0)])
        threads = max(1, cores // len(running)) if takeover else 1
        secs = [_seconds_at(task, threads, cores) * slowdown(len(running), task[2] if len(task) > 2 else 0.0)
                for _, task in running]
        dt = min(left * s for (left, _), s in zip(running, secs))
        wall += dt
        for item, s in zip(running, secs):
            item[0] -= dt / s if s > 0 else 1.0
        running = [item for item in running if item[0] > 1e-9]
    return wall
