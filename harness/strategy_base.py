"""The strategy protocol (:class:`Strategy`), what its ``run`` works with
(:class:`Job`), and a sweep's runs grouped by configuration. Apart from
:mod:`harness.strategy`, which holds the registry, so that a strategy in its
own module (:mod:`harness.raced`) can subclass it without an import cycle."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def configurations(sweep):
    """``{key: [(run_id, cfg), ...]}``: the runs of each configuration (a
    grid point, or a grid point and trial), its seeds together, in grid order."""
    out = {}
    for run_id, cfg, meta in zip(sweep.run_ids, sweep.runs, sweep.meta or [{}] * len(sweep.runs)):
        key = (meta["point"], meta["trial"]) if meta else cfg.replace(seed=0)
        out.setdefault(key, []).append((run_id, cfg))
    return out


@dataclass
class Job:
    """What a strategy's :meth:`Strategy.run` works with: the sweep, its
    folder, its :class:`harness.plan.Plan` (prices runs, knows the
    workers), the events to tell, and ``execute(todo, est, stop_at=None)``,
    which trains runs (``[(run_id, cfg)]``) and returns the failed ones'
    statuses."""

    sweep: object
    out: Path
    plan: object
    events: object
    execute: Callable


class Strategy:
    """The protocol every strategy follows (the defaults are the grid's)."""

    name = ""

    def check(self, schedule, runs, where):
        """Refuse (ConfigError) a ``[sweep]`` this strategy cannot run."""

    def phases(self, sweep):
        """``[(iteration, configurations at most)]``: the points where the
        strategy decides, the last one the runs' end."""
        return [(sweep.runs[0].iterations, len(configurations(sweep)))]

    def price(self, plan, todo, start, workers):
        """The estimate of everything this strategy may train of ``todo``
        (from each run's checkpoint, ``start``) on ``workers``."""
        return plan.price(todo, workers, start=start)

    def describe(self, sweep):
        """The dry run's lines about this strategy."""
        return []

    def rungs(self, settings: dict, iterations):
        """The report's rung iterations for a sweep run with ``settings``
        (its ``[sweep]`` table), or None when it has none."""
        return None

    def run(self, job: Job, todo, est):
        """Train ``todo``; returns the failed runs' statuses."""
        return job.execute(todo, est)
