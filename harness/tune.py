"""Nuisance settings tuned separately for every grid point (``[tune]``).

Pure functions: the ``[tune]`` table parsed and checked, quasi-random draws
(a scrambled Halton sequence) mapped through each setting's distribution,
the selection of every grid point's best trial on validation accuracy, and
the warnings a careful reader would want (a choice at the edge of its range,
trials that diverged, points that chose very differently)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .words import count
from .status import RunStatus, mask

TUNE_KEYS = ("trials", "seed", "confirm_seeds")
EDGE = 0.10  # a selected value in the outer 10% of its range sits at an edge
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)


# --- distributions ---------------------------------------------------------------

@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float
    integer: bool = False

    def value(self, u):
        x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return _rounded(x, self) if self.integer else x

    def position(self, x):
        """Where ``x`` sits in the range, 0 to 1 (on a log scale)."""
        span = math.log(self.high) - math.log(self.low)
        return 0.5 if span == 0 else (math.log(x) - math.log(self.low)) / span

    def check(self, where):
        if self.low <= 0 or self.high <= 0:
            raise ConfigError(f"{where}: log_uniform bounds must be above 0, got [{self.low:g}, {self.high:g}]")


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float
    integer: bool = False

    def value(self, u):
        x = self.low + u * (self.high - self.low)
        return _rounded(x, self) if self.integer else x

    def position(self, x):
        span = self.high - self.low
        return 0.5 if span == 0 else (x - self.low) / span

    def check(self, where):
        pass


@dataclass(frozen=True)
class Choice:
    values: tuple

    def value(self, u):
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def position(self, x):
        return None  # no order, so no edge

    def check(self, where):
        if not self.values:
            raise ConfigError(f"{where}: choice needs at least one value")
        repeated = [v for i, v in enumerate(self.values) if v in self.values[:i]]
        if repeated:
            raise ConfigError(f"{where}: {repeated[0]!r} is listed twice; list each value once")


def _rounded(x, dist):
    return int(min(max(round(x), math.ceil(dist.low)), math.floor(dist.high)))


DISTRIBUTIONS = {"log_uniform": LogUniform, "uniform": Uniform, "choice": Choice}


@dataclass(frozen=True)
class Tune:
    """A validated ``[tune]`` table: ``dists`` maps each tuned setting to its
    distribution."""

    trials: int
    seed: int
    confirm_seeds: int
    dists: dict
    race: object = None  # a harness.racing.Race: confirm_seeds = { race = [2, 10] }, confirm_seeds its maximum

    def draws(self):
        """``[{setting: value}, ...]``, one dict per trial, the same for every grid point."""
        u = halton(self.trials, len(self.dists), self.seed)
        return [{key: dist.value(float(u[i, j])) for j, (key, dist) in enumerate(self.dists.items())}
                for i in range(self.trials)]


def _count(table, key, default, minimum, where):
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where} {key}: must be an integer of at least {minimum}, got {value!r}")
    return value


def _distribution(key, spec, kind, coerce, where):
    """One setting's distribution from ``{form = [...]}``; ``kind`` is the
    setting's type name and ``coerce(value)`` checks one value of it."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where}: give one distribution, like {key} = {{ log_uniform = [1e-4, 1e-1] }}; "
                          f"forms: {', '.join(sorted(DISTRIBUTIONS))}")
    (form, args), = spec.items()
    if form not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {form!r}; forms: {', '.join(sorted(DISTRIBUTIONS))}")
    if not isinstance(args, list):
        raise ConfigError(f"{where} {form}: must be a list, got {args!r}")
    if form == "choice":
        dist = Choice(tuple(coerce(v) for v in args))
    else:
        if kind not in ("int", "float", "str | float"):
            raise ConfigError(f"{where}: {form} needs a numeric setting; {key} is {kind}: use choice")
        if len(args) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                     for v in args):
            raise ConfigError(f"{where} {form}: must be [low, high] finite numbers, got {args!r}")
        if args[0] > args[1]:
            raise ConfigError(f"{where} {form}: low {args[0]:g} is above high {args[1]:g}")
        dist = DISTRIBUTIONS[form](float(args[0]), float(args[1]), kind == "int")
        for bound in args:
            coerce(int(round(bound)) if kind == "int" else float(bound))
    dist.check(f"{where} {form}")
    return dist


def parse(table, where, tunable, kinds, coerce, axes):
    """The ``[tune]`` table, checked: ``tunable`` are the setting names it
    may hold, ``kinds[key]`` their type names, ``coerce(key, value, where)``
    checks a value, and ``axes`` are the settings the grid compares (which
    cannot also be tuned). None when ``table`` is empty."""
    if not table:
        return None
    trials = _count(table, "trials", 1, 1, where)
    seed = _count(table, "seed", 0, 0, where)
    race = None
    if isinstance(table.get("confirm_seeds"), dict):  # the confirmation races (harness.racing)
        from . import racing

        race = racing.parse(table["confirm_seeds"], where, key="confirm_seeds")
    confirm = race.most if race else _count(table, "confirm_seeds", 3, 0, where)
    dists = {}
    for key, spec in table.items():
        if key in TUNE_KEYS:
            continue
        if key not in tunable:
            raise ConfigError(f"{where}: {key!r} is not a setting that can be tuned; "
                              f"settings: {', '.join(sorted(tunable))}")
        if key in axes:
            raise ConfigError(f"{where} {key}: also a [grid] axis; a setting is either compared or tuned")
        dists[key] = _distribution(key, spec, kinds[key], lambda v, k=key: coerce(k, v, f"{where} {k}"),
                                   f"{where} {key}")
    if not dists:
        raise ConfigError(f"{where}: no setting to tune; add one like lr = {{ log_uniform = [1e-4, 1e-1] }}")
    tune = Tune(trials, seed, confirm, dists, race)
    _distinct_draws(tune, where)
    return tune


def _distinct_draws(tune: Tune, where):
    """Two trials drawing the same values would train the same runs, listed
    once: fewer trials than asked for. Refused, naming the first repeat."""
    draws = tune.draws()
    for i, draw in enumerate(draws):
        if draw in draws[:i]:
            shown = ", ".join(f"{k} = {v!r}" for k, v in draw.items())
            raise ConfigError(f"{where} trials: trials {draws.index(draw)} and {i} draw the same values ({shown}); "
                              f"set trials to {i} at most, or give more values to choose from")


# --- the draws ---------------------------------------------------------------------

def halton(n, d, seed=0):
    """``(n, d)`` points of a Halton sequence in [0, 1), each dimension's
    digits scrambled by random permutations (one per digit position) drawn
    from ``seed``: spread more evenly than random draws, and reproducible."""
    if d > len(PRIMES):
        raise ValueError(f"at most {len(PRIMES)} tuned settings")
    rng = np.random.default_rng([seed, 7919])
    out = np.zeros((n, d))
    for j in range(d):
        base = PRIMES[j]
        digits = max(1, math.ceil(math.log(max(n, 2), base))) + 8
        perms = [rng.permutation(base) for _ in range(digits)]
        for i in range(n):
            k, x, scale = i, 0.0, 1.0 / base
            for perm in perms:
                x += perm[k % base] * scale
                k //= base
                scale /= base
            out[i, j] = x
    return out


# --- selection ---------------------------------------------------------------------

def trial_means(search: pd.DataFrame):
    """Per grid point and trial: mean validation accuracy over seeds (a run
    without one, failed or diverged, counts as 0) and whether any seed diverged.
    ``search``: point, trial, seed, status, final_val_acc."""
    acc = search.final_val_acc.astype(float).where(mask(search.status, RunStatus.DONE), 0.0).fillna(0.0)
    frame = search.assign(acc=acc, diverged=mask(search.status, RunStatus.DIVERGED))
    return frame.groupby(["point", "trial"], sort=True).agg(val_mean=("acc", "mean"), diverged=("diverged", "any"),
                                                            seeds=("seed", "count")).reset_index()


def select(search: pd.DataFrame):
    """Each grid point's tuned trial: the best mean validation accuracy over
    seeds, ties to the lowest trial index. One row per point: point, trial,
    val_mean, trials, diverged (trials with a diverged seed). Trials that
    successive halving stopped are no candidates; a point with no other
    has no row."""
    import pandas as pd  # here: a sweep's workers import this module and need no pandas

    means = trial_means(search[~mask(search.status, RunStatus.STOPPED)])  # halving's losers are no candidates
    columns = ["point", "trial", "val_mean", "trials", "diverged"]
    if means.empty:
        return pd.DataFrame(columns=columns)
    # one sort for all points (replay selects on thousands of resampled points at once)
    best = means.sort_values(["point", "val_mean", "trial"], ascending=[True, False, True],
                             kind="stable").drop_duplicates("point")
    per = means.groupby("point", sort=True).agg(trials=("trial", "size"), diverged=("diverged", "sum"))
    out = best[["point", "trial", "val_mean"]].set_index("point").join(per).reset_index()
    return out.astype({"trial": int, "val_mean": float, "trials": int, "diverged": int})[columns]


def confirm_seeds(seeds, k):
    """``k`` new seeds, numbered after the sweep's."""
    start = max(seeds) + 1
    return tuple(range(start, start + k))


def edge(dist, value):
    """"low" or "high" when ``value`` lies in the outer 10% of ``dist``'s
    range, else ""."""
    pos = dist.position(value)
    if pos is None:
        return ""
    return "low" if pos <= EDGE else "high" if pos >= 1 - EDGE else ""


def warnings(tune: Tune, tuned: pd.DataFrame, label):
    """Sentences for the report. ``tuned``: one row per grid point with the
    selected value of every tuned setting, ``trials`` and
    ``diverged_trials`` (as in tuned.csv); ``label(row)`` names a point."""
    out = []
    for key, dist in tune.dists.items():
        for _, row in tuned.iterrows():
            side = edge(dist, row[key])
            if side:
                out.append(f"{label(row)} chose {key} = {_fmt(row[key])}, at the {side} edge of its range "
                           f"[{_fmt(dist.low)}, {_fmt(dist.high)}]: widen the range and tune again.")
        spread = _spread(dist, tuned[key])
        if spread:
            out.append(f"The grid points chose very different {key} ({spread}): one fixed {key} for all of "
                       "them would have favoured some and made the comparison unfair.")
    for _, row in tuned.iterrows():
        if row["diverged_trials"] > row["trials"] / 2:
            out.append(f"{label(row)}: {row['diverged_trials']} of its {count(row['trials'], 'trial')} diverged; "
                       "its range may be too wide or too high.")
    return out


def _spread(dist, values):
    """A description of how far apart the selected values are, when far."""
    values = list(values)
    if isinstance(dist, Choice):
        chosen = sorted({str(v) for v in values})
        return f"{', '.join(chosen)}" if len(chosen) > 1 else ""
    low, high = min(values), max(values)
    if isinstance(dist, LogUniform) and low > 0 and high / low >= 10:
        return f"from {_fmt(low)} to {_fmt(high)}, a factor of {high / low:.0f}"
    if isinstance(dist, Uniform) and dist.high > dist.low and (high - low) >= 0.5 * (dist.high - dist.low):
        return f"from {_fmt(low)} to {_fmt(high)}, over half the range"
    return ""


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)
