"""Strategies: how a sweep schedules its runs. One unit per strategy, one
registry (``REGISTRY[name]``, named by ``[sweep] strategy``; racing's in
:mod:`harness.raced`); the grid file's
check, the plan and its estimate, ``--dry-run``, the sweep and the report
all ask it here.

A strategy's decisions are pure functions (:mod:`harness.halving`) of what
its runs recorded on disk, so a resumed sweep, other ``jobs`` or Dask make
the same ones; :meth:`Strategy.run` only reads the folder, decides, and
hands the runs it decides on to ``job.execute`` (as many times as it
likes: the runs are not a list fixed in advance). Adding one: see
docs/architecture.md."""
from __future__ import annotations

import os
from pathlib import Path

from . import halving, layout, store
from .errors import ConfigError
from .status import RunStatus
from .strategy_base import Job, Strategy, configurations  # noqa: F401  (re-exported: the protocol)
from .words import count


class Grid(Strategy):
    """Every run to its end."""

    name = "grid"


class Halving(Strategy):
    """Successive halving: every configuration to the first rung; the best
    1/eta by mean validation accuracy over seeds at that iteration continue
    to the next, and so on; the others end ``stopped``."""

    name = "halving"

    def check(self, schedule, runs, where):
        first = schedule.min_iterations
        if first is None:
            raise ConfigError(f"{where} [sweep] min_iterations: strategy 'halving' needs the first rung's "
                              "iterations, e.g. min_iterations = 100")
        for cfg in runs:
            if cfg.epochs or first >= cfg.iterations or first % cfg.eval_every:
                raise ConfigError(f"{where} [sweep] min_iterations: {first} must be below every run's iterations "
                                  f"and a multiple of its eval_every (run {cfg.layers_str}: iterations "
                                  f"{cfg.iterations if not cfg.epochs else f'from epochs = {cfg.epochs}'}, "
                                  f"eval_every {cfg.eval_every})")

    def phases(self, sweep):
        n, out = len(configurations(sweep)), []
        for rung in halving.rungs(sweep.schedule.min_iterations, sweep.schedule.eta, sweep.runs[0].iterations):
            out.append((rung, n))
            n = halving.keep_count(n, sweep.schedule.eta)
        return out

    def price(self, plan, todo, start, workers):
        """Each rung in turn, as if the costliest configurations were the
        ones that go on (an upper bound: which will is not known yet)."""
        from .estimate import flops, merge

        left = {r for r, _ in todo}
        costly = sorted(configurations(plan.sweep).values(), key=lambda runs: -sum(flops(c) for _, c in runs))
        parts, prev = [], 0
        for rung, n in self.phases(plan.sweep):
            runs = [(r, c) for group in costly[:n] for r, c in group if r in left and start.get(r, 0) < rung]
            if runs:
                parts.append(plan.price(runs, workers, {r: rung - max(prev, start.get(r, 0)) for r, _ in runs},
                                        start))
            prev = rung
        return merge(parts) if parts else plan.price([], workers)

    def describe(self, sweep):
        eta = sweep.schedule.eta
        return [f"successive halving (eta {eta}): " + "; ".join(
            f"rung {k + 1} to iteration {r}: at most {count(n, 'configuration')} ({count(n * len(sweep.seeds), 'run')})"
            for k, (r, n) in enumerate(self.phases(sweep)))]

    def rungs(self, settings: dict, iterations):
        from .grid import SCHEDULE_KEYS

        return halving.rungs(settings["min_iterations"], settings.get("eta", SCHEDULE_KEYS["eta"][0]), iterations)

    def run(self, job: Job, todo, est):  # noqa: ARG002 (each rung finds and prices its own runs)
        """Every decision is read back from the run folders, so a resumed
        sweep (or one with other jobs) makes the same ones."""
        sweep, runs = job.sweep, layout.runs_dir(job.out)
        configs = configurations(sweep)
        levels = [r for r, _ in self.phases(sweep)]
        alive, failed = list(configs), []
        for k, rung in enumerate(levels):
            going = [(r, c) for key in alive for r, c in configs[key] if reached(runs / r) < rung]
            if going:
                job.events.note(f"halving: rung {k + 1} of {len(levels)}: {count(len(alive), 'configuration')} "
                                f"to iteration {rung}")
                done = {r: reached(runs / r) for r, _ in going}
                priced = job.plan.price(going, iterations={r: rung - n for r, n in done.items()},
                                        start={r: n for r, n in done.items() if n})
                failed += job.execute(going, priced, stop_at=rung if rung < levels[-1] else None)
            if rung == levels[-1]:
                break
            alive = self._promote(job, configs, alive, k, rung)
        return failed

    def _promote(self, job: Job, configs, alive, k, rung):
        """Rank the configurations at ``rung``; stop those that do not go on."""
        scores = {key: mean_val_at(job.out, configs[key], rung) for key in alive}
        promoted = halving.promote(alive, scores, job.sweep.schedule.eta)
        job.events.note(f"halving: rung {k + 1} at iteration {rung}: {len(promoted)} of "
                        f"{count(len(alive), 'configuration')} {'goes' if len(promoted) == 1 else 'go'} on "
                        f"(best mean validation accuracy {100 * max(scores.values()):.2f}%)")
        for key in alive:
            if key not in promoted:
                for run_id, _ in configs[key]:
                    stop_run(layout.run_dir(job.out, run_id), k + 1, rung)
        return promoted


# here, not at the top: racing's module builds on Strategy and Job above
from .raced import Racing

REGISTRY = {s.name: s for s in (Grid(), Halving(), Racing())}


def of(name) -> Strategy:
    """The strategy called ``name``; ConfigError listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; one of {', '.join(sorted(REGISTRY))}") from None


def reached(run_dir: Path):
    """Iterations a run has safely behind it: all of them once finished or
    stopped (``inf``), its checkpoint's otherwise."""
    if store.read_status(run_dir) is not None:
        return float("inf")
    saved = store.checkpoint_meta(run_dir)
    return saved["iteration"] if saved else 0


def mean_val_at(out: Path, runs, iteration):
    """Mean validation accuracy over a configuration's runs at ``iteration``
    (a run without one there, diverged or failed, counts as 0)."""
    values = []
    for run_id, _ in runs:
        folder = layout.run_dir(out, run_id)
        rows = store.read_metrics_part(folder) or store.read_metrics_part(folder, "metrics.csv")
        at = [r["val_acc"] for r in rows if r["iteration"] == iteration and r["val_acc"] is not None]
        status = store.read_status(folder)
        values.append(at[0] if at and (status is None or status["status"] != RunStatus.DIVERGED) else 0.0)
    return sum(values) / len(values)


def stop_run(run_dir: Path, rung, iteration):
    """End a paused run that was not promoted: status ``stopped``, its
    metrics kept, its checkpoint dropped. Written by the sweep, since no
    process trains that run any more."""
    from .loop import summarize

    if store.read_status(run_dir) is not None:
        return  # already decided (a resumed sweep), or it ended by itself
    part = run_dir / "metrics.csv.part"
    if part.exists():
        os.replace(part, run_dir / "metrics.csv")
    # (already renamed when a sweep was killed between the two steps)
    rows = store.read_metrics_part(run_dir, "metrics.csv")
    status = {**summarize(rows), "status": RunStatus.STOPPED.value, "run_id": run_dir.name, "rung": rung,
              "reason": f"stopped by successive halving at rung {rung} (iteration {iteration})"}
    store.write_status(run_dir, status)
    (run_dir / store.CHECKPOINT).unlink(missing_ok=True)
