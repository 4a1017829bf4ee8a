"""A sweep's time estimate: each run's seconds from the cost model (see
:mod:`harness.cost`), refined by the runs already measured in its folder,
and the wall time the scheduler simulation gives for its workers."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import backend as backends
from . import cost, layout, mlp, store
from .backend import jobs
from .config import RunConfig
from .errors import ConfigError
from .grid import Sweep
from .loop import total_iterations
from .words import count, duration


@functools.lru_cache(maxsize=16)
def _rows(dataset, path, label_column, train_size, validation):
    from .data import load_source, row_counts

    return cost.Rows(*row_counts(load_source(dataset, path or None, label_column or None), train_size, validation))


def rows_of(cfg: RunConfig) -> cost.Rows:
    """The training, validation and test rows of a run."""
    return _rows(cfg.dataset, cfg.path, cfg.label_column, cfg.train_size, cfg.validation)


def iterations_of(cfg: RunConfig) -> int:
    return total_iterations(cfg, rows_of(cfg).train)


def flops(cfg: RunConfig) -> int:
    """A run's training FLOPs: FLOPs per iteration times iterations."""
    n = rows_of(cfg).train
    return mlp.flops_per_iter(cfg.layers, min(cfg.batch_size or n, n)) * iterations_of(cfg)


@dataclass
class Estimate:
    """A sweep's time estimate: ``seconds[run_id]`` (the training loop, as a
    run records ``total_seconds``; for a run continued from a checkpoint,
    only what is left of it: see :meth:`whole`), ``wall`` (seconds for everything left,
    with ``workers``), and how many finished runs refined it. ``tasks``
    holds each run's whole seconds on one thread and on every core, and
    ``iterations`` its length, so the rest can be simulated again as runs
    advance (:meth:`wall_left`)."""

    seconds: dict
    wall: float
    workers: int
    refined: int
    tasks: dict = field(default_factory=dict)
    iterations: dict = field(default_factory=dict)
    cores: int = 1
    takeover: bool = True
    slowdown: object = None
    start: dict = field(default_factory=dict)  # {run_id: iteration} a run continues from (a checkpoint)

    def whole(self, run_id):
        """A run's estimated seconds as if trained from its first iteration,
        comparable with the ``total_seconds`` it records (which include the
        seconds before its checkpoint); None when not estimated."""
        secs, left = self.seconds.get(run_id), self.iterations.get(run_id)
        if secs is None or not left:
            return secs
        return secs * (left + self.start.get(run_id, 0)) / left

    def wall_left(self, left: dict, pace=1.0):
        """Wall seconds for ``left[run_id]`` (the fraction of each run still
        to do), at ``pace`` times the estimated speed's seconds."""
        tasks = [(one * f * pace, many * f * pace, share) for r, f in left.items() if f > 0
                 for one, many, share in [self.tasks[r]]]
        return cost.simulate(tasks, self.workers, self.cores, self.takeover, self.slowdown or (lambda n, s: 1.0))


def measured_runs(out: Path, model: cost.Model) -> dict:
    """``{run_id: (measured, predicted)}`` seconds per iteration of the
    finished runs in ``out/runs``, for :func:`harness.cost.refine`."""
    measured = {}
    folder = layout.runs_dir(out)
    for run_dir in folder.iterdir() if folder.is_dir() else ():
        status = store.read_status(run_dir)
        if not status or not status.get("total_seconds") or not status.get("iterations_run"):
            continue
        try:
            conf = store.read_json(run_dir / "config.json")
            cfg = RunConfig.from_saved(conf)
            rows = cost.Rows(conf["n_train"], conf["n_val"], conf.get("n_test", 0))
            n = status["iterations_run"]
            predicted = model.train_seconds(cfg, rows, n, conf.get("threads", 1)) / n
        except (OSError, ValueError, KeyError, ConfigError):
            continue  # a folder from another version or a broken one: no help
        measured[run_dir.name] = (status["total_seconds"] / n, predicted)
    return measured


def estimate(sweep: Sweep, out: Path, todo, model: cost.Model, workers=None, iterations=None,
             start=None, measured=None) -> Estimate:
    """Estimate the runs ``todo`` (``[(run_id, cfg), ...]``) and their wall
    time on ``workers`` (default: the sweep's local jobs). ``iterations``
    (``{run_id: n}``) prices only part of some runs (halving's rungs);
    ``start`` (``{run_id: iteration}``, see :func:`checkpointed`) the runs
    that continue from a checkpoint, priced from there. ``measured``:
    :func:`measured_runs` when already read (a :class:`harness.plan.Plan`
    reads the folder once)."""
    cores = model.cores
    backend = backends.of(sweep)
    local = backend.local
    workers = workers or jobs(sweep, len(todo))
    start_threads = backend.threads(workers)
    measured = measured_runs(out, model) if measured is None else measured
    start = {r: n for r, n in (start or {}).items() if r in dict(todo)}
    its = {r: (iterations or {}).get(r, max(0, iterations_of(c) - start.get(r, 0))) for r, c in todo}

    def predicted(threads, seconds=model.run_seconds):
        return cost.refine({r: seconds(c, rows_of(c), its[r], threads) for r, c in todo},
                           measured)
    one = predicted(1)
    many = predicted(cores) if local else one
    train = predicted(start_threads, model.train_seconds)
    share = {r: model.memory_share(c, min(c.batch_size or rows_of(c).train, rows_of(c).train)) for r, c in todo}
    tasks = {r: (one[r], many[r], share[r]) for r, _ in todo}
    wall = cost.simulate(list(tasks.values()), workers, cores, local, model.slowdown)
    if todo:
        wall += model.worker_start + _load_seconds(todo)
    together = min(workers, len(todo)) if local else 1
    return Estimate({r: s * model.slowdown(together, share[r]) for r, s in train.items()}, wall, workers,
                    len(measured), tasks, its, cores, local, model.slowdown, start)



def merge(parts):
    """One estimate of estimates trained one after the other (halving's
    rungs): wall times add up, and so do each run's seconds and iterations."""
    whole = parts[0]
    whole.wall = sum(p.wall for p in parts)
    for p in parts[1:]:
        for r, secs in p.seconds.items():
            whole.seconds[r] = whole.seconds.get(r, 0.0) + secs
            whole.iterations[r] = whole.iterations.get(r, 0) + p.iterations[r]
            whole.tasks.setdefault(r, p.tasks[r])
    return whole


def _load_seconds(todo):
    """Seconds a worker takes to load the data of the first run."""
    cfg = todo[0][1]
    return _data_seconds(cfg.dataset, cfg.path, cfg.label_column, cfg.train_size, cfg.validation, cfg.data_seed,
                         cfg.dtype)


@functools.lru_cache(maxsize=16)
def _data_seconds(dataset, path, label_column, train_size, validation, data_seed, dtype):
    """Measured once per process and data setting, reading the files again
    (past load_source's cache, which a new worker does not have)."""
    from .data import read_source, split

    t = time.perf_counter()
    split(read_source(dataset, path or None, label_column or None), train_size or None, validation,
          data_seed, dtype)
    return time.perf_counter() - t


# What the estimate covers: the training, with the workers' start-up and
# their data loading; not the command's own start-up nor the final report.
WALL = "estimated training wall time"


def over_budget(sweep: Sweep, est: Estimate, todo) -> str | None:
    """The refusal message when ``est`` exceeds the sweep's budget, else None."""
    if sweep.budget is None or est.wall <= sweep.budget:
        return None
    costly = sorted(todo, key=lambda item: -est.seconds[item[0]])[:3]
    names = ", ".join(f"{cfg.layers_str} seed {cfg.seed} ({duration(est.seconds[r])})" for r, cfg in costly)
    return (f"{WALL} {duration(est.wall)} with {count(est.workers, 'worker')} exceeds the budget of "
            f"{duration(sweep.budget)}; the costliest runs: {names}. Raise [sweep] budget or --budget, or trim the grid")
