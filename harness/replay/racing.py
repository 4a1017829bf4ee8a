"""Racing replayed on a recorded sweep's variants (issue 25, item 5): how
often a race reaches the verdict of the fixed design that gives every
variant all the recorded seeds, and the share of those runs it spends.

The variants are the report's (a tuned sweep's: its grid points on their
confirmation seeds), each on the same seeds, so the design is paired. A
resample draws an order of the seeds (``permute``: the race sees the
recorded seeds in another order, and the fixed design's verdict is the
report's own) or draws the seeds with replacement (``bootstrap``: a new
sample of seeds, raced and judged at the maximum alike). Both verdicts
come from :mod:`harness.racing` and :mod:`harness.report.decisions`, the
code a sweep and its report run.

A verdict: the best, and the set of variants classed **worse**. The race
agrees when its best is the fixed design's best or one the fixed design
classes equivalent to it, and its worse set is the fixed design's."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import racing
from ..errors import ConfigError
from ..report import decisions, reading, tables
from ..report import tuned as tunedmod
from ..status import in_comparison
from ..words import count
from .measure import wilson

MODES = ("permute", "bootstrap")
TARGET, HALF = 0.95, 0.5  # issue 25's bar: the fixed design's verdict in 95% of resamples, at most half its runs


@dataclass(frozen=True)
class Variants:
    """``names`` (variants,), ``seeds`` (seeds,) and ``values``
    (variants, seeds): validation accuracy (fraction) on each seed."""
    names: tuple
    seeds: tuple
    values: np.ndarray


def load(folder, least=10) -> Variants:
    """The report's variants of a finished sweep (packed or not), on the
    seeds every one of them has; ConfigError naming the folder when fewer
    than ``least`` seeds are shared or a variant ran one seed twice."""
    summary, _, folder = reading.load(folder)
    pair = tunedmod.load_tuned(folder)
    compared = tunedmod.compared(summary, *pair) if pair is not None and "role" in summary else summary
    g = tables.grouped(compared[in_comparison(compared.status)])
    shared = set.intersection(*(set(map(int, s)) for s in g.seed_ids))
    if len(shared) < least or any(len(set(s)) < len(s) for s in g.seed_ids):
        raise ConfigError(f"{folder}: its variants share {len(shared)} distinct seeds; racing's replay needs "
                          f"at least {least} on every variant")
    seeds = tuple(sorted(shared))
    values = np.array([[dict(zip(map(int, s), a))[k] for k in seeds] for s, a in zip(g.seed_ids, g.accs)])
    return Variants(tuple(g.label.astype(str)), seeds, values)


def fixed_verdict(values, margin, alpha=decisions.ALPHA):
    """``(best, worse, classes)`` of the fixed design on ``values``
    (variants, seeds), paired: the highest mean (the first of equals),
    the indices classed worse, and every other index's class."""
    means = values.mean(axis=1)
    best = int(np.argmax(means))
    others = [i for i in range(len(values)) if i != best]
    found = decisions.classify_family(values[best], [values[i] for i in others], margin, alpha, paired=True)
    classes = {i: f[0] for i, f in zip(others, found)}
    return best, frozenset(i for i, c in classes.items() if c == "worse"), classes


def race_verdict(values, race):
    """``(best, worse, spent)`` of ``race`` run on ``values`` (variants,
    seeds) in column order: the race's last best, the indices it stopped
    as worse, and ``{index: seeds it ran}``."""
    results = {i: dict(enumerate(row)) for i, row in enumerate(values)}
    rounds, _, need = racing.replay(results, race)
    if need:
        raise ValueError(f"the race needs more seeds than the {values.shape[1]} given")
    worse = frozenset(v for r in rounds for v, c in r.classes.items() if c == "worse")
    return rounds[-1].best, worse, racing.seeds_spent(rounds, list(results), race)


def measure(variants: Variants, race, resamples=1000, seed=0, mode="permute"):
    """Agreement of ``race`` with the fixed design at ``race.most`` seeds
    over ``resamples`` draws of the seeds. Returns a dict: ``same`` (the
    share of resamples with the same verdict), ``same_best``,
    ``same_worse``, ``runs_share`` (mean runs over the fixed design's),
    ``runs_share_max`` (the most a resample used) and ``seeds_mean`` (each
    variant's mean seeds run)."""
    if race.most > len(variants.seeds) and mode == "permute":
        raise ConfigError(f"race [{race.least}, {race.most}]: the sweep has {len(variants.seeds)} seeds")
    rng = np.random.default_rng(seed)
    n, full = len(variants.seeds), len(variants.names) * race.most
    best_ok = worse_ok = both = 0
    shares, per = [], np.zeros(len(variants.names))
    for _ in range(resamples):
        idx = rng.permutation(n)[:race.most] if mode == "permute" else rng.integers(0, n, race.most)
        vals = variants.values[:, idx]
        f_best, f_worse, f_classes = fixed_verdict(vals, race.margin / 100)  # the report's alpha
        r_best, r_worse, spent = race_verdict(vals, race)
        runs = sum(spent.values())
        per += np.array([spent[i] for i in range(len(vals))])
        b = r_best == f_best or f_classes.get(r_best) == "equivalent"
        w = r_worse == f_worse
        best_ok, worse_ok, both = best_ok + b, worse_ok + w, both + (b and w)
        shares.append(runs / full)
    lo, hi = wilson(both, resamples)
    return {"race": name(race), "least": race.least, "most": race.most, "step": race.step, "alpha": race.alpha,
            "same": both / resamples, "same_lo": lo, "same_hi": hi, "same_best": best_ok / resamples,
            "same_worse": worse_ok / resamples, "runs_share": float(np.mean(shares)),
            "runs_share_max": float(np.max(shares)), "resamples": resamples, "mode": mode,
            "seeds_mean": (per / resamples).tolist()}


def name(race):
    """A race in words: "race [2, 10], step 2, α 0.05"."""
    return f"race [{race.least}, {race.most}], step {race.step}, α {race.alpha:g}"


def meets(row, target=TARGET, share=HALF):
    """Whether a measured race reaches the issue's bar: the fixed design's
    verdict in ``target`` of resamples, with at most ``share`` of its runs."""
    return row["same"] >= target and row["runs_share"] <= share


def blocks(variants: Variants, rows, seed, target=TARGET, share=HALF):
    """The replay document's Racing section: one row per race measured."""
    table = pd.DataFrame([{"race": r["race"], "same verdict": f"{100 * r['same']:.1f}% [{100 * r['same_lo']:.1f}, "
                                                             f"{100 * r['same_hi']:.1f}]",
                           "same best (or equivalent)": f"{100 * r['same_best']:.1f}%",
                           "same worse set": f"{100 * r['same_worse']:.1f}%",
                           "runs, mean": f"{100 * r['runs_share']:.1f}%",
                           "runs, most": f"{100 * r['runs_share_max']:.1f}%",
                           "meets the bar": "yes" if meets(r, target, share) else "no"} for r in rows])
    modes = {r["mode"] for r in rows}
    drawn = ("a random order of the recorded seeds (the fixed design's verdict is then the report's)"
             if modes == {"permute"} else "the recorded seeds drawn with replacement" if modes == {"bootstrap"}
             else "the seeds, by each row's mode")
    good = [r["race"] for r in rows if meets(r, target, share)]
    close = max(rows, key=lambda r: (r["same"] >= target, r["same"] - r["runs_share"]))
    ending = (f"Meeting the bar: {'; '.join(good)}." if good else
              f"No race measured meets the bar; the closest, by same-verdict share less runs share, is "
              f"{close['race']}: {100 * close['same']:.1f}% of verdicts at {100 * close['runs_share']:.1f}% "
              "of the runs.")
    text = (f"Racing replayed on the {count(len(variants.names), 'variant')} of the report, each on the "
            f"{count(len(variants.seeds), 'seed')} all of them recorded (paired). Each of "
            f"{rows[0]['resamples']:,} resamples (seed {seed}) draws {drawn}; the race runs on them with "
            "harness.racing's own rules, and its verdict (its best, and the variants it stopped as worse) is set "
            "against the fixed design's on the same seeds at the race's maximum (the report's classes, "
            f"α = {decisions.ALPHA:g}). Same verdict: the same best or one the fixed design calls equivalent to "
            "it, and the same set classed worse. Runs: those the race trained, as a share of the fixed "
            f"design's. The bar: the same verdict in at least {100 * target:g}% of resamples with at most "
            f"{100 * share:g}% of the runs. {ending}")
    return [("h2", "Racing"), ("p", text), ("table", table)]
