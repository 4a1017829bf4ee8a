"""Racing: seeds spent where they decide (issue 25). Pure rules, no I/O.

``[sweep] seeds = { race = [2, 10] }``: every variant starts with 2 seeds;
after each round the variants classed against the current best
(:mod:`harness.report.decisions`) as **worse** stop, and so do those
**equivalent** that cannot become the best; the others get ``step`` more
seeds (default: the minimum), up to 10. The race ends when one variant is
left or the maximum is reached.

Every decision is a function of the recorded per-seed accuracies alone
(:func:`replay` reruns the rounds from them), so a sweep decides the same
with any ``jobs``, on Dask, after a kill and a resume, and the replay
simulator can call the same functions on ground-truth seeds.

**Multiple looks.** A race looks at the data once per round. Each look
spends α / K, K the number of rounds of the schedule (Bonferroni over the
looks), with Holm over the comparisons within a look. The family's error
over the whole race is then at most Σ α / K = α by the union bound, whatever
the dependence between looks (they share seeds, so it is strong, and
Welch's degrees of freedom change from look to look, so the exact joint law
that a Pocock or O'Brien-Fleming boundary needs is not at hand). Within a
look, Holm runs over every pair of the variants still racing, not only the
pairs with the best: the best is chosen by the data, and a false call
against it is a false call on some pair. The price is power: with [2, 10]
and steps of 2, K = 5 and each look tests at 0.01.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError
from .report import decisions, stats

KEYS = ("race", "step", "alpha")
MOST_SEEDS = 1000


@dataclass(frozen=True)
class Race:
    """A race's schedule: ``least`` seeds first, ``step`` more per round, at
    most ``most``; tests at ``alpha`` over the race, ``margin`` in points."""
    least: int
    most: int
    step: int
    alpha: float = decisions.ALPHA
    margin: float = decisions.DEFAULT_MARGIN

    @property
    def schedule(self):
        """Seeds per variant after each round: (least, least + step, ..., most)."""
        return tuple(range(self.least, self.most, self.step)) + (self.most,)

    @property
    def rounds(self):
        return len(self.schedule)

    @property
    def alpha_per_look(self):
        """α spent at each round: α / K over the K rounds of the schedule."""
        return self.alpha / self.rounds

    @property
    def worst_case_runs(self):
        """Runs per variant if none stops early: what --dry-run and the cost model price."""
        return self.most


def is_race(value):
    """Whether a ``[sweep] seeds`` value asks for racing (a table)."""
    return isinstance(value, dict)


def _count(value, name, where, least, key="seeds"):
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MOST_SEEDS:
        raise ConfigError(f"{where} {key}: {name} must be a whole number from {least} to {MOST_SEEDS}, got {value!r}")
    return value


def parse(value, where, alpha=decisions.ALPHA, margin=decisions.DEFAULT_MARGIN, key="seeds"):
    """The :class:`Race` of ``seeds = { race = [least, most], step = n,
    alpha = a }`` (``step`` optional, default the minimum; ``alpha``, the
    race's family error over all its rounds, optional, default ``alpha``).
    Raises ConfigError in one line naming ``where`` and ``key`` (``[tune]
    confirm_seeds`` races too) for anything else; the grid parser calls
    this for a table."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} {key}: a race is a table such as {{ race = [2, 10] }}, got {value!r}")
    unknown = sorted(set(value) - set(KEYS))
    if unknown or "race" not in value:
        raise ConfigError(f"{where} {key}: {'unknown key ' + repr(unknown[0]) if unknown else 'no race = [min, max]'}"
                          f" in the race table; keys: {', '.join(sorted(KEYS))}")
    bounds = value["race"]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ConfigError(f"{where} {key}: race must be [min, max] such as [2, 10], got {bounds!r}")
    least = _count(bounds[0], "the race's minimum", where, 2, key)  # two seeds: the least a test needs
    most = _count(bounds[1], "the race's maximum", where, least, key)
    step = _count(value.get("step", least), "step", where, 1, key)
    alpha = value.get("alpha", alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"{where} {key}: alpha must be a number in (0, 1) such as 0.05, got {alpha!r}")
    return Race(least, most, step, float(alpha), margin)


@dataclass(frozen=True)
class Round:
    """What one round decided: ``stopped`` {variant: reason}, ``going``
    (the variants that get more seeds), ``best`` (the current best),
    ``seeds_next`` (seeds each going variant should have next; None when
    the race is over), ``paired`` (the analysis used) and ``classes``
    {stopped variant: its class against the best, one of
    :data:`decisions.DECISIONS`}."""
    index: int
    best: str
    stopped: dict
    going: tuple
    seeds_next: int | None
    paired: bool
    classes: dict = field(default_factory=dict)


def _values(results, seeds):
    """Each variant's accuracies on ``seeds`` (NaN where missing or diverged), shape (len(seeds),)."""
    return {v: np.array([results[v].get(s, math.nan) for s in seeds], dtype=float) for v in results}


def decide(results, round_index, race, seeds=None, pairable=True):
    """The decision after round ``round_index`` (0-based) of ``race``.

    ``results``: {variant: {seed: validation accuracy}} of the variants
    still racing; each is read on the first ``race.schedule[round_index]``
    seeds of ``seeds`` (default 0, 1, 2, ...). ``pairable``: whether the
    variants share a seed's minibatch order (:func:`decisions.design`);
    paired when they do and every one has all those seeds. The best is the
    highest mean (ties: the first named). Returns a :class:`Round`."""
    n = race.schedule[round_index]
    order = (list(seeds) if seeds is not None else list(range(race.most)))[:n]
    vals = _values(results, order)
    finite = {v: x[~np.isnan(x)] for v, x in vals.items()}
    paired = pairable and all(len(x) == n for x in finite.values())
    means = {v: (float(x.mean()) if len(x) else -math.inf) for v, x in finite.items()}
    best = max(means, key=lambda v: means[v])  # max keeps the first of equal means
    others = [v for v in results if v != best]
    alpha = race.alpha_per_look
    found = _against_best(finite, best, race.margin / 100, alpha, paired)
    stopped, classes, going, last = {}, {}, [best], round_index == race.rounds - 1
    for v, (decision, diff) in zip(others, found):
        where = f"racing ended it at round {round_index + 1} ({n} seeds)"
        if decision == "worse":
            stopped[v] = f"{where}: worse than {best}, {100 * diff.diff:+.2f} points"
        elif decision == "equivalent" and not _could_lead(finite[best], finite[v], race.margin / 100, alpha, paired):
            stopped[v] = f"{where}: equivalent to {best} (within ±{race.margin:g} points) and cannot become the best"
        elif last:
            word = "equivalent to" if decision == "equivalent" else "undecided against"
            stopped[v] = f"{where}: {word} {best} at the maximum of {race.most} seeds"
        else:
            going.append(v)
            continue
        classes[v] = decision or "undecided"  # None: too few values to test
    if last or len(going) == 1:
        return Round(round_index, best, stopped, (), None, paired, classes)
    return Round(round_index, best, stopped, tuple(going), race.schedule[round_index + 1], paired, classes)


def _against_best(finite, best, margin, alpha, paired):
    """Each other variant's ``(decision, Difference)`` against ``best``, its
    p-values Holm-adjusted over every pair of the racing variants, not only
    the pairs with the best. The best is picked by the data (the highest
    mean), so comparing with it is not a fixed family: among equal variants
    the lowest against the highest is called worse more often than α. A
    false call against the best is a false call on its pair, and Holm over
    all pairs bounds those at this look's α."""
    names = [best] + [v for v in finite if v != best]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]  # (best, v) first: v - best
    found = [decisions.difference(finite[a], finite[b], margin, paired) for a, b in pairs]
    p_diff = stats.holm([d.p_diff for d in found])
    p_equiv = stats.holm([d.p_equiv for d in found])
    return [(decisions.decide(d.diff, pd_, pe, alpha), d)
            for d, pd_, pe in zip(found[:len(names) - 1], p_diff, p_equiv)]


def _could_lead(best, other, margin, alpha, paired):
    """Whether ``other`` could still overtake ``best``: the upper end of the
    difference's interval at this look's level lies above 0."""
    return decisions.difference(best, other, margin, paired, level=1 - alpha).high > 0


def replay(results, race, seeds=None, pairable=True):
    """The race so far, from everything recorded: ``(rounds, racing,
    need)``. ``rounds``: the :class:`Round` of each round whose seeds are
    all recorded; ``racing``: the variants still in the race; ``need``:
    {variant: seeds it must have recorded before the next decision} (empty
    when the race is over). Records beyond what the schedule asks are not
    read, so extra runs never change a decision."""
    racing, rounds = list(results), []
    order = list(seeds) if seeds is not None else list(range(race.most))
    for i, n in enumerate(race.schedule):
        missing = [v for v in racing if any(s not in results[v] for s in order[:n])]
        if missing:
            return rounds, racing, {v: n for v in racing}
        step = decide({v: results[v] for v in racing}, i, race, order, pairable)
        rounds.append(step)
        racing = [v for v in racing if v not in step.stopped]
        if step.seeds_next is None:
            return rounds, racing, {}
    return rounds, racing, {}


def seeds_spent(rounds, variants, race):
    """``{variant: seeds it ran}`` in a finished race."""
    spent = dict.fromkeys(variants, race.least)
    for r in rounds:
        for v in r.going:
            spent[v] = r.seeds_next or spent[v]
    return spent


def saved_runs(rounds, variants, race):
    """Runs a finished race saved against giving every variant the maximum:
    ``variants * most`` minus the seeds each variant ran."""
    return len(variants) * race.most - sum(seeds_spent(rounds, variants, race).values())
