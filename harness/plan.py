"""What a sweep will do before it does it: which runs are finished and which
are left, how many workers and threads train them, each run's estimated
seconds and the wall time (see :mod:`harness.cost`), and ``--dry-run``."""
from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cost, mlp, store
from .config import RunConfig
from .errors import ConfigError
from .grid import Sweep
from .status import finished
from .train import total_iterations


def split_runs(sweep: Sweep, out_dir: Path, force=False, runs=None):
    """Split the grid's runs (or ``runs``, ``[(run_id, cfg)]``) into runs
    already finished and runs to train. Returns ``(done_ids, todo)`` with
    ``todo`` a list of ``(run_id, cfg)``, most expensive first."""
    done, todo = [], []
    for run_id, cfg in runs if runs is not None else zip(sweep.run_ids, sweep.runs):
        status = store.read_status(out_dir / "runs" / run_id)
        if not force and status is not None and finished(status.get("status")):
            done.append(run_id)
        else:
            todo.append((run_id, cfg))
    todo.sort(key=lambda item: -flops(item[1]))
    return done, todo


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


def jobs(sweep: Sweep, n_tasks: int) -> int:
    """Local workers for ``n_tasks`` runs."""
    want = (os.cpu_count() or 1) if sweep.jobs == -1 else sweep.jobs
    return max(1, min(want, n_tasks))


def threads_per_run(running: int) -> int:
    """Runs x threads <= cores: no oversubscription, and no idle core either."""
    return max(1, (os.cpu_count() or 1) // max(1, running))


def dask_workers(address):
    """Threads of the Dask cluster at ``address`` (one run each), or None
    when it cannot be reached in a few seconds."""
    try:
        from dask.distributed import Client

        with Client(address, timeout="5s") as client:
            return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or None
    except Exception:  # no dask, no scheduler: the estimate says it assumed
        return None


# --- the estimate ---------------------------------------------------------------

@dataclass
class Estimate:
    """A sweep's time estimate: ``seconds[run_id]`` (the training loop, as a
    run records ``total_seconds``), ``wall`` (seconds for everything left,
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
    folder = out / "runs"
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


def estimate(sweep: Sweep, out: Path, todo, model: cost.Model, workers=None, iterations=None) -> Estimate:
    """Estimate the runs ``todo`` (``[(run_id, cfg), ...]``) and their wall
    time on ``workers`` (default: the sweep's local jobs). ``iterations``
    (``{run_id: n}``) prices only part of some runs (halving's rungs)."""
    cores = model.cores
    local = sweep.backend != "dask"
    workers = workers or jobs(sweep, len(todo))
    start_threads = threads_per_run(workers) if local else 1
    measured = measured_runs(out, model)
    its = {r: (iterations or {}).get(r, iterations_of(c)) for r, c in todo}

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
                    len(measured), tasks, its, cores, local, model.slowdown)


def sweep_estimate(sweep: Sweep, out: Path, todo, model: cost.Model, workers) -> Estimate:
    """All a sweep will train: its schedule, then a tuned sweep's
    confirmation runs (priced as if every point chose its first trial)."""
    est = schedule_estimate(sweep, out, todo, model, workers)
    proxies = confirmation_proxies(sweep)
    if proxies:
        more = estimate(sweep, out, proxies, model, workers)
        est.wall += more.wall
        est.seconds.update(more.seconds)
        est.tasks.update(more.tasks)
        est.iterations.update(more.iterations)
    return est


def configurations(sweep: Sweep):
    """``{key: [(run_id, cfg), ...]}``: the runs of each configuration (a
    grid point, or a grid point and trial), its seeds together, in grid order."""
    out = {}
    for run_id, cfg, meta in zip(sweep.run_ids, sweep.runs, sweep.meta or [{}] * len(sweep.runs)):
        key = (meta["point"], meta["trial"]) if meta else cfg.replace(seed=0)
        out.setdefault(key, []).append((run_id, cfg))
    return out


def halving_plan(sweep: Sweep):
    """``[(rung iteration, configurations at most)]`` of a halving sweep."""
    from .halving import keep_count, rungs

    n = len(configurations(sweep))
    out = []
    for rung in rungs(sweep.schedule.min_iterations, sweep.schedule.eta, sweep.runs[0].iterations):
        out.append((rung, n))
        n = keep_count(n, sweep.schedule.eta)
    return out


def schedule_estimate(sweep: Sweep, out: Path, todo, model: cost.Model, workers) -> Estimate:
    """The estimate of the whole sweep: every run to its end, or under
    halving each rung in turn, as if the costliest configurations were the
    ones that go on (an upper bound: which will is not known yet)."""
    if sweep.schedule.strategy != "halving":
        return estimate(sweep, out, todo, model, workers)
    left = {r for r, _ in todo}
    costly = sorted(configurations(sweep).values(), key=lambda runs: -sum(flops(c) for _, c in runs))
    parts, prev = [], 0
    for rung, n in halving_plan(sweep):
        runs = [(r, c) for group in costly[:n] for r, c in group if r in left]
        if runs:
            parts.append(estimate(sweep, out, runs, model, workers, {r: rung - prev for r, _ in runs}))
        prev = rung
    if not parts:
        return estimate(sweep, out, [], model, workers)
    whole = parts[0]
    whole.wall = sum(p.wall for p in parts)
    for p in parts[1:]:
        for r, secs in p.seconds.items():
            whole.seconds[r] += secs
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
    from .data import load_source, split

    t = time.perf_counter()
    split(load_source.__wrapped__(dataset, path or None, label_column or None), train_size or None, validation,
          data_seed, dtype)
    return time.perf_counter() - t


def clock(seconds) -> str:
    """``"0.4 s"``, ``"42 s"``, ``"7 min 5 s"``, ``"2 h 03 min"``."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def over_budget(sweep: Sweep, est: Estimate, todo) -> str | None:
    """The refusal message when ``est`` exceeds the sweep's budget, else None."""
    if sweep.budget is None or est.wall <= sweep.budget:
        return None
    costly = sorted(todo, key=lambda item: -est.seconds[item[0]])[:3]
    names = ", ".join(f"{cfg.layers_str} seed {cfg.seed} ({clock(est.seconds[r])})" for r, cfg in costly)
    return (f"estimated wall time {clock(est.wall)} with {est.workers} workers exceeds the budget of "
            f"{clock(sweep.budget)}; the costliest runs: {names}. Raise [sweep] budget or --budget, or trim the grid")


# --- the plan, shown and recorded -------------------------------------------------

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
                        "estimated_seconds": est.seconds.get(run_id) if est else None}
    return {"name": sweep.name, "grid": str(sweep.path), "jobs": sweep.jobs, "runs": runs,
            "estimated_wall_seconds": est.wall if est else None, "written": time.time()}


def confirmation_proxies(sweep: Sweep):
    """For a tuned sweep's estimate before the selection: every grid point's
    confirmation runs as if its first trial were chosen (under halving, the
    costliest points, as many as configurations reach the end)."""
    if sweep.tune is None:
        return []
    points = range(len(sweep.points))
    if sweep.schedule.strategy == "halving":  # only points with a configuration at the end: the costliest
        costly = sorted(points, key=lambda p: -sum(flops(c) for _, c in sweep.confirm[(p, 0)]))
        points = costly[:halving_plan(sweep)[-1][1]]
    return [(f"confirm:{p}:{run_id}", cfg) for p in points for run_id, cfg in sweep.confirm[(p, 0)]]


def _show_tune(sweep: Sweep):
    """The draws every grid point gets, and the confirmation runs to come."""
    import pandas as pd

    from .tune import confirm_seeds

    tune = sweep.tune
    print(f"[tune]: {tune.trials} trials for each of {len(sweep.points)} grid points, the same draws for every "
          f"point (seed {tune.seed}):")
    print(pd.DataFrame(tune.draws()).rename_axis("trial").to_string(float_format=lambda v: f"{v:.4g}"))
    seeds = confirm_seeds(sweep.seeds, tune.confirm_seeds)
    print(f"then each point's best trial on validation is trained again on seeds "
          f"{', '.join(map(str, seeds)) or '(none: confirm_seeds = 0)'}: {len(seeds) * len(sweep.points)} "
          "confirmation runs, estimated as if trial 0 were chosen")


def workers_for(sweep: Sweep, n_tasks, say):
    """The workers a sweep of ``n_tasks`` runs gets: local jobs, or the Dask
    cluster's threads (the sweep's jobs when it cannot be reached)."""
    if sweep.backend != "dask":
        return jobs(sweep, n_tasks)
    found = dask_workers(sweep.scheduler)
    if found is None:
        found = jobs(sweep, n_tasks)
        say(f"dask scheduler {sweep.scheduler} not reachable: estimating for {found} workers")
    return found


def _note(text):
    print(text, file=sys.stderr)


def dry_run(sweep: Sweep, out_root="results", force=False):
    """Print the plan: the results folder, how many runs are finished there
    and how many a sweep would train, a table of the runs (the settings that
    vary, whether each is finished, its estimated seconds), and the wall
    time. Reads the folder; trains and writes nothing (but the machine's
    calibration, in the user's cache folder)."""
    out = Path(out_root) / sweep.name
    done, todo = split_runs(sweep, out, force) if (out / "runs").is_dir() else ([], list(zip(sweep.run_ids, sweep.runs)))
    model = cost.machine_model(say=_note)
    workers = workers_for(sweep, len(todo) + len(confirmation_proxies(sweep)), _note)
    est = sweep_estimate(sweep, out, todo, model, workers)
    cols = [k for k in sweep.varying if k != "layers"]
    rows = []
    for run_id, cfg in zip(sweep.run_ids, sweep.runs):
        row = {"run_id": run_id, "layers": cfg.layers_str, **{k: getattr(cfg, k) for k in cols}}
        row["state"] = "finished" if run_id in done else "to train"
        row["estimated"] = clock(est.seconds[run_id]) if run_id in est.seconds else ""
        rows.append(row)
    print(f"{len(rows)} runs in sweep {sweep.name!r} ({sweep.path})")
    print(f"results: {out.resolve()}")
    if force:
        finished_there = len(split_runs(sweep, out)[0]) if (out / "runs").is_dir() else 0
        print(f"{finished_there} already finished there, retrained (--force): {len(todo)} to train")
    else:
        print(f"{len(done)} already finished there (kept; --force retrains them), {len(todo)} to train")
    import pandas as pd  # the dry run's tables; a sweep's workers import this module and need no pandas

    print(pd.DataFrame(rows).to_string(index=False))
    if sweep.tune is not None:
        _show_tune(sweep)
    if sweep.schedule.strategy == "halving":
        rungs = halving_plan(sweep)
        print(f"successive halving (eta {sweep.schedule.eta}): " + "; ".join(
            f"rung {k + 1} to iteration {r}: at most {n} configurations ({n * len(sweep.seeds)} runs)"
            for k, (r, n) in enumerate(rungs)))
    if est.refined:
        print(f"estimates refined by {est.refined} finished runs in {out}")
    if sweep.budget is not None:
        print(f"budget: {clock(sweep.budget)}" + (" (exceeded)" if est.wall > sweep.budget else ""))
    print(f"estimated wall time: {est.wall:.1f} s with {est.workers} workers")
