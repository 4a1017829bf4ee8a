"""What a sweep will do before it does it, computed once: :func:`make_plan`
gives a :class:`Plan` (which runs are finished and which are left, the
backend's workers probed once, the cost model loaded once, the finished
runs' measured speed read once, the estimate and its phases, any refusal);
:func:`describe` gives ``--dry-run``'s lines, and :func:`plan_record`
``plan.json``."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import backend as backends
from . import calibration, cost, layout, manifest, mlp, store
from . import strategy as strategies
from .backend import dask_workers, jobs, threads_per_run  # noqa: F401 (importable from here too)
from .estimate import (  # noqa: F401
    WALL,
    Estimate,
    estimate,
    flops,
    iterations_of,
    measured_runs,
    over_budget,
    rows_of,
)
from .grid import Sweep
from .status import finished
from .strategy import configurations
from .words import count, duration


def split_runs(sweep: Sweep, out_dir: Path, force=False, runs=None):
    """Split the grid's runs (or ``runs``, ``[(run_id, cfg)]``) into runs
    already finished and runs to train. Returns ``(done_ids, todo)`` with
    ``todo`` a list of ``(run_id, cfg)``, most expensive first."""
    done, todo = [], []
    for run_id, cfg in runs if runs is not None else zip(sweep.run_ids, sweep.runs):
        status = store.read_status(layout.run_dir(out_dir, run_id))
        if not force and status is not None and finished(status.get("status")):
            done.append(run_id)
        else:
            todo.append((run_id, cfg))
    todo.sort(key=lambda item: -flops(item[1]))
    return done, todo


def checkpointed(out: Path, todo, force=False) -> dict:
    """``{run_id: iteration}`` of the runs of ``todo`` that a sweep will
    continue from their checkpoint (none with ``force``, which starts them
    over)."""
    if force:
        return {}
    found = {}
    for run_id, _ in todo:
        meta = store.checkpoint_meta(layout.run_dir(out, run_id))
        if meta is not None and meta.get("run_id") == run_id and meta.get("iteration"):
            found[run_id] = int(meta["iteration"])
    return found


def _silent(text):
    pass


@dataclass
class Plan:
    """A sweep's plan. ``finished``: run ids finished on disk; ``done``:
    those kept (none with ``force``); ``todo``: ``[(run_id, cfg)]`` to train,
    costliest first; ``start``: ``{run_id: iteration}`` of those continued
    from a checkpoint; ``estimate`` and ``refusal`` (the budget's message,
    or None) as :func:`make_plan` set them. Later estimates (a rung, the
    confirmation runs) ask :meth:`price`, which probes and reads nothing
    again."""

    sweep: Sweep
    out: Path
    force: bool
    finished: list
    done: list
    todo: list
    start: dict
    say: Callable = _silent
    estimate: Estimate | None = None
    refusal: str | None = None
    backend: object = None  # harness.backend.of(sweep), set by __post_init__
    _model: object = None
    _measured: dict | None = field(default=None, repr=False)

    def __post_init__(self):
        self.backend = self.backend or backends.of(self.sweep)

    @property
    def strategy(self) -> strategies.Strategy:
        return strategies.of(self.sweep.schedule.strategy)

    def model(self) -> cost.Model:
        """The machine's cost model, loaded (or measured) on first use only."""
        if self._model is None:
            self._model = calibration.machine_model(say=self.say)
        return self._model

    def workers(self, n_tasks) -> int:
        """The workers ``n_tasks`` runs get (see :mod:`harness.backend`:
        a Dask cluster is asked once)."""
        return self.backend.workers(n_tasks, self.say)

    def measured(self) -> dict:
        """:func:`harness.estimate.measured_runs` of the sweep's folder, read once."""
        if self._measured is None:
            self._measured = measured_runs(self.out, self.model())
        return self._measured

    def price(self, todo, workers=None, iterations=None, start=None) -> Estimate:
        """The estimate of ``todo`` (``[(run_id, cfg)]``; see
        :func:`harness.estimate.estimate`), on ``workers`` (default: those
        that many runs get)."""
        workers = workers or (self.workers(len(todo)) if todo else 1)
        return estimate(self.sweep, self.out, todo, self.model(), workers, iterations, start, self.measured())

    def phases(self):
        """``[(iteration, configurations at most)]`` of the sweep's strategy."""
        return self.strategy.phases(self.sweep)


def _split(sweep: Sweep, out: Path, force):
    """``(finished, done, todo)`` (see :class:`Plan`), each run's status read once."""
    everything = list(zip(sweep.run_ids, sweep.runs))
    if not layout.runs_dir(out).is_dir():
        return [], [], everything
    finished_ids, todo = split_runs(sweep, out)
    if force:  # every run again, ordered as split_runs orders them
        return finished_ids, [], sorted(everything, key=lambda item: -flops(item[1]))
    return finished_ids, finished_ids, todo


def make_plan(sweep: Sweep, out: Path, force=False, say=None, dry_run=False) -> Plan:
    """The plan of ``sweep`` on its folder ``out``. A sweep with nothing to
    train (and no confirmation to come) is not priced, so a machine without
    a calibration is not measured for it; a ``dry_run`` always is, its
    workers counted for the confirmation runs too. ``say`` hears what the
    cost model and the backend have to say."""
    finished_ids, done, todo = _split(sweep, out, force)
    plan = Plan(sweep, out, force, finished_ids, done, todo, checkpointed(out, todo, force), say or _silent)
    proxies = confirmation_proxies(sweep)
    if dry_run:
        workers = plan.workers(len(todo) + len(proxies))
    elif not todo and sweep.tune is None:  # nothing to price: no calibration on a machine that lacks one
        plan.estimate = Estimate({}, 0.0, 1, 0)
        return plan
    else:
        workers = plan.workers(len(todo)) if todo else 1
    plan.estimate = _whole_estimate(plan, workers, proxies)
    plan.refusal = over_budget(sweep, plan.estimate, todo)
    return plan


def _whole_estimate(plan: Plan, workers, proxies) -> Estimate:
    """All a sweep will train: its strategy's runs, then a tuned sweep's
    confirmation runs (priced as if every point chose its first trial)."""
    est = plan.strategy.price(plan, plan.todo, plan.start, workers)
    if proxies:
        more = plan.price(proxies, workers)
        est.wall += more.wall
        est.seconds.update(more.seconds)
        est.tasks.update(more.tasks)
        est.iterations.update(more.iterations)
    return est


def sweep_estimate(sweep: Sweep, out: Path, todo, model: cost.Model, workers, start=None) -> Estimate:
    """:func:`make_plan`'s estimate for a given ``todo``, ``model`` and
    ``workers`` (``start``: the runs continued from a checkpoint)."""
    plan = Plan(sweep, out, False, [], [], todo, start or {}, _model=model)
    return _whole_estimate(plan, workers, confirmation_proxies(sweep))


def confirmation_proxies(sweep: Sweep):
    """For a tuned sweep's estimate before the selection: every grid point's
    confirmation runs as if its first trial were chosen (as many points,
    the costliest, as configurations reach the strategy's end)."""
    if sweep.tune is None:
        return []
    points = range(len(sweep.points))
    reach = strategies.of(sweep.schedule.strategy).phases(sweep)[-1][1]
    if reach < len(configurations(sweep)):  # it prunes: only points with a configuration at the end, the costliest
        points = sorted(points, key=lambda p: -sum(flops(c) for _, c in sweep.confirm[(p, 0)]))[:reach]
    return [(f"confirm:{p}:{run_id}", cfg) for p in points for run_id, cfg in sweep.confirm[(p, 0)]]


def plan_record(sweep: Sweep, est: Estimate | None = None, extra=()):
    """``plan.json``: every run of the grid (and ``extra`` runs, a tuned
    sweep's confirmations) with what ``harness status`` needs to say how far
    the sweep is (its layers, seed, total iterations, FLOPs per iteration
    and estimated seconds)."""
    runs = {}
    for run_id, cfg in [*zip(sweep.run_ids, sweep.runs), *extra]:
        n = rows_of(cfg).train
        runs[run_id] = {"layers": cfg.layers_str, "seed": cfg.seed, "iterations": iterations_of(cfg),
                        "flops_per_iter": mlp.flops_per_iter(cfg.layers, min(cfg.batch_size or n, n)),
                        "estimated_seconds": est.whole(run_id) if est else None}
    return manifest.self_sealed({"name": sweep.name, "grid": str(sweep.path), "jobs": sweep.jobs, "runs": runs,
                                 "estimated_wall_seconds": est.wall if est else None, "written": time.time()})


def describe(plan: Plan) -> list[str]:
    """``--dry-run``'s lines: the results folder, how many runs are
    finished there and how many a sweep would train (and of those, how many
    continue from a checkpoint), a table of the runs (the settings that
    vary, whether each is finished, its estimated seconds), the strategy's
    phases, and the training wall time against the budget."""
    sweep, out, est, start, todo = plan.sweep, plan.out, plan.estimate, plan.start, plan.todo
    table = _run_table(sweep, plan.done, start, est)
    lines = [f"{count(len(table), 'run')} in sweep {sweep.name!r} ({sweep.path})", f"results: {out.resolve()}"]
    continuing = f" ({count(len(start), 'continues', 'continue')} from {'its' if len(start) == 1 else 'their'} " \
                 "checkpoint)" if start else ""
    if plan.force:
        lines.append(f"{len(plan.finished)} already finished there, retrained (--force): {len(todo)} to train")
    else:
        lines.append(f"{len(plan.done)} already finished there (kept; --force retrains them), "
                     f"{len(todo)} to train{continuing}")
    lines.append(table.to_string(index=False))
    if sweep.tune is not None:
        lines += _tune_lines(sweep)
    lines += plan.strategy.describe(sweep)
    if sweep.tune is not None and sweep.tune.race is not None:  # the confirmation races
        from .raced import describe as race_lines

        lines += race_lines(sweep)
    if est.refined:
        lines.append(f"estimates refined by {count(est.refined, 'finished run')} in {out}")
    if sweep.budget is not None:
        lines.append(f"budget: {duration(sweep.budget)}"
                     + ("" if plan.refusal is None else " (exceeded: the sweep would refuse to start)"))
    lines.append(f"{WALL}: {est.wall:.1f} s with {count(est.workers, 'worker')}")
    return lines


def _tune_lines(sweep: Sweep):
    """The draws every grid point gets, and the confirmation runs to come."""
    import pandas as pd

    from .tune import confirm_seeds

    tune = sweep.tune
    seeds = confirm_seeds(sweep.seeds, tune.confirm_seeds)
    return [f"[tune]: {count(tune.trials, 'trial')} for each of {count(len(sweep.points), 'grid point')}, the same "
            f"draws for every point (seed {tune.seed}):",
            pd.DataFrame(tune.draws()).rename_axis("trial").to_string(float_format=lambda v: f"{v:.4g}"),
            f"then each point's best trial on validation is trained again on seeds "
            f"{', '.join(map(str, seeds)) or '(none: confirm_seeds = 0)'}: "
            f"{count(len(seeds) * len(sweep.points), 'confirmation run')}, estimated as if trial 0 were chosen"]


def _run_table(sweep: Sweep, done, start, est):
    """The runs: the settings that vary, each run's state and its estimated seconds."""
    import pandas as pd  # the dry run's table; a sweep's workers import this module and need no pandas

    cols = [k for k in sweep.varying if k != "layers"]
    rows = []
    for run_id, cfg in zip(sweep.run_ids, sweep.runs):
        row = {"run_id": run_id, "layers": cfg.layers_str, **{k: getattr(cfg, k) for k in cols}}
        row["state"] = ("finished" if run_id in done else
                        f"continues from iteration {start[run_id]}" if run_id in start else "to train")
        row["estimated"] = duration(est.seconds[run_id]) if run_id in est.seconds else ""
        rows.append(row)
    return pd.DataFrame(rows)
