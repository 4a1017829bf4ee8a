"""Racing in a sweep (issue 25): the strategy, and a raced sweep's folder.

The rules are :mod:`harness.racing`'s pure functions; this module feeds
them what the run folders recorded. Each pass reads every variant's
finished runs, replays the race from them (:func:`harness.racing.replay`),
writes the decisions so far to ``race.json``, and trains the seeds the
next round needs, until the race is over. Nothing else is read, so a sweep
decides the same with any ``jobs``, on Dask, and after a kill and resume.

A variant is a grid point (``[sweep] seeds = { race = [2, 10] }``), or
with ``[tune] confirm_seeds = { race = [2, 10] }`` a grid point's selected
trial on the confirmation seeds. A variant racing ended keeps its runs
(status ``done``); its unstarted seeds are ``not needed``
(:class:`harness.status.RunState`), and ``race.json`` (:mod:`harness.race_record`),
``summary.csv``'s ``race_round`` and ``reason``, ``harness status`` and the report's Racing
section say at which round racing ended it, and why.
"""
from __future__ import annotations

import math
from pathlib import Path

from . import layout, store
from .errors import ConfigError
from .race_record import write_record
from .status import RunStatus, parse
from .strategy_base import Job, Strategy
from .words import count


class Racing(Strategy):
    """Seeds spent where they decide: every variant starts with the race's
    minimum; after each round the variants classed worse than the best (or
    equivalent to it and unable to lead) stop; the rest get more."""

    name = "racing"

    def check(self, schedule, runs, where):
        if schedule.race is None:
            raise ConfigError(f"{where} [sweep] strategy: 'racing' needs its seeds as a race, "
                              "e.g. seeds = { race = [2, 10] }")

    def describe(self, sweep):
        return describe(sweep)

    def run(self, job: Job, todo, est):  # each round picks and prices its own runs
        return race(job, *grid_variants(job.sweep))


def describe(sweep):
    """The dry run's line about a race (none without one): the estimate is
    the worst case."""
    race, what = ((sweep.schedule.race, "variant") if sweep.schedule.race is not None else
                  (sweep.tune.race, "grid point's confirmation") if sweep.tune and sweep.tune.race else (None, ""))
    if race is None:
        return []
    return [(f"racing: {race.least} to {race.most} seeds per {what} (rounds of {race.schedule}, alpha "
             f"{race.alpha:g} over the race, {race.alpha_per_look:.4g} per round); the estimate is the worst "
             f"case, every {what} to {race.most} seeds")]


def _label(settings: dict):
    """A variant's name from its settings (``{key: value}``), layers first, bare."""
    parts = ["-".join(map(str, v)) if k == "layers" else f"{k} {v}" for k, v in settings.items()]
    return ", ".join(parts) or "the one variant"


def grid_variants(sweep):
    """``(race, {label: [(run_id, cfg)] in seed order}, seeds, pairable)``
    of a plain grid raced over ``[sweep] seeds``."""
    groups = {}
    for run_id, cfg in zip(sweep.run_ids, sweep.runs):
        groups.setdefault(cfg.replace(seed=0), []).append((run_id, cfg))
    keys = [k for k in sweep.varying if k != "seed"]
    variants = {_label({k: getattr(c, k) for k in keys}): runs for c, runs in groups.items()}
    return sweep.schedule.race, variants, list(sweep.seeds), _pairable(variants)


def confirmation_variants(sweep, chosen):
    """``(race, {label: [(run_id, cfg)]}, seeds, pairable)`` of a tuned
    sweep's confirmation, ``chosen`` the selection ``{point: trial}``."""
    from .tune import confirm_seeds

    variants = {_label(sweep.points[p]): list(sweep.confirm[(p, t)]) for p, t in sorted(chosen.items())}
    return sweep.tune.race, variants, list(confirm_seeds(sweep.seeds, sweep.tune.race.most)), _pairable(variants)


def _pairable(variants):
    """Whether a seed gives every variant the same minibatch order (the
    report's rule, :func:`harness.report.decisions.design`)."""
    from .report.decisions import design

    firsts = [runs[0][1] for runs in variants.values()]
    keys = ("layers", "batch_size", "train_size", "data_seed", "validation")
    varying = {k for k in keys if len({getattr(c, k) for c in firsts}) > 1}
    minibatched = all(c.batch_size > 0 for c in firsts)
    return design([[0, 1]] * len(firsts), minibatched, varying)[0]


def results(out: Path, variants):
    """``{label: {seed: validation accuracy}}`` of the runs that finished
    (NaN for a diverged one, which racing counts as untested)."""
    found = {}
    for label, runs in variants.items():
        found[label] = {}
        for run_id, cfg in runs:
            status = store.read_status(layout.run_dir(out, run_id))
            if status is None or not parse(status["status"]).in_comparison():
                continue
            diverged = status["status"] == RunStatus.DIVERGED.value or status.get("final_val_acc") is None
            found[label][cfg.seed] = math.nan if diverged else float(status["final_val_acc"])
    return found


def race(job: Job, race_, variants, seeds, pairable):
    """Run the race on ``job``'s executor: decide from the run folders,
    train the next round's seeds, again, until it is over. Returns the
    failed runs' statuses (a failure ends this sweep's race: a resume
    trains the run again and the race goes on from the folders)."""
    from . import racing
    from .plan import checkpointed

    failed, told = [], 0
    while True:
        found = results(job.out, variants)
        rounds, going, need = racing.replay(found, race_, seeds, pairable)
        write_record(job.out, race_, variants, found, rounds, going, need)
        for r in rounds[told:]:
            job.events.note(_round_line(r, race_))
        told = len(rounds)
        if not need:
            return failed
        batch = [(r, c) for v in going for r, c in variants[v][:need[v]] if c.seed not in found[v]]
        if not batch or failed:
            return failed  # a needed run failed: nothing more to decide in this sweep
        job.events.note(f"racing: round {len(rounds) + 1} of {race_.rounds}: {count(len(going), 'variant')} "
                        f"to {need[going[0]]} seeds, {count(len(batch), 'run')} to train")
        priced = job.plan.price(batch, start=checkpointed(job.out, batch, job.plan.force))
        failed += job.execute(batch, priced)


def _round_line(r, race_):
    n = race_.schedule[r.index]
    stopped = "; ".join(f"{v} stops ({r.classes[v]})" for v in r.stopped) or "none stops"
    return f"racing: round {r.index + 1} at {n} seeds: best {r.best}; {stopped}"
