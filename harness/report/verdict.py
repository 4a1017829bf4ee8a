"""The verdict in words, from ``tables.with_ties(tables.grouped(...))``:
the best, how variants were compared with it, the headline (the cheapest
variant near the best), the variants in each class, and #1 against #2.
Every sentence is tested on a constructed sweep (tests/test_report_text.py,
tests/test_decisions.py)."""
from __future__ import annotations

import math

import numpy as np

from . import decisions, stats
from .tables import ALPHA, NEAR_POINTS, _si, pct


def verdict(g):
    """Plain sentences deciding the comparison."""
    if g.empty:
        return ["No finished runs to compare yet."]
    best = g.iloc[0]
    over = (f"mean and 95% interval over {best.seeds} seeds" if best.seeds > 1
            else "1 seed: no interval")
    lines = [f"**Best:** {best.label}, {pct(best.val_acc, best.val_lo, best.val_hi)} validation accuracy ({over})."]
    if len(g) == 1:
        return lines
    if best.seeds < 2:
        lines.append("With one seed per variant there are no intervals and no test against the best: "
                     "add seeds to tell the variants apart.")
    else:
        lines.append(_method(g))
    lines.append(_cheapest_near(g))
    lines += _classes(g)
    return lines + _second(g)


def _margin(g):
    return g.attrs.get("margin", decisions.DEFAULT_MARGIN)


def _method(g):
    why = g.attrs.get("analysis", "")
    return (f"**Compared with the best:** {why[:1].upper() + why[1:]}. Each variant is equivalent to the best "
            f"when both one-sided tests (TOST) put the difference within ±{_margin(g):g} points ([report] "
            "margin), worse when it is shown below the best, undecided when neither; Holm-adjusted over "
            f"the table, α = {ALPHA}. Differences are in points, the variant minus the best, with their "
            "95% interval.")


def _points(row):
    if math.isnan(row["diff"]):
        return ""
    return f"{100 * row['diff']:+.2f} points [{100 * row.diff_lo:+.2f}, {100 * row.diff_hi:+.2f}]"


def _class_word(row):
    if row.decision == "untested":
        return "not tested against the best (too few seeds)"
    word = {"equivalent": "equivalent to the best", "worse": "worse than the best",
            "undecided": "undecided against the best", "better": "better than the best"}[row.decision]
    return f"{word}, {_points(row)}"


def _cheapest_near(g):
    """The headline: the cheapest variant (by time per iteration) whose mean
    is within NEAR_POINTS of the best's, and its class."""
    best = g.iloc[0]
    near = g[g.val_acc >= best.val_acc - NEAR_POINTS / 100].sort_values("s_per_iter", kind="stable")
    head = f"**Cheapest within {NEAR_POINTS} points of it:**"
    if near.index[0] == 0 or not near.s_per_iter.iloc[0] < best.s_per_iter:
        return f"{head} the best itself; every cheaper variant is further behind."
    row = near.iloc[0]
    return (f"{head} {row.label}, {pct(row.val_acc, row.val_lo, row.val_hi)} at {row.s_per_iter:.3g} s per "
            f"iteration ({best.s_per_iter / row.s_per_iter:.1f}× less time per iteration than the best; "
            f"{_class_word(row)}).")


def _count(n, what="variant"):
    return f"{n} {what}{'s' if n != 1 else ''}"


def _classes(g):
    """How many variants fall in each class; the cheapest equivalent ones;
    the better ones; the undecided ones far below the best, apart."""
    best, rest = g.iloc[0], g.iloc[1:]
    if best.seeds < 2:
        return []
    counts = rest.decision.value_counts()
    order = [d for d in (*decisions.DECISIONS, "untested") if d in counts]
    lines = ["**Against the best:** " + ", ".join(f"{counts[d]} {d}" for d in order) + "."]
    equal = rest[rest.decision == "equivalent"]
    if len(equal):
        lines.append(_equivalent(best, equal, _margin(g)))
    for _, row in rest[rest.decision == "better"].iterrows():
        lines.append(f"**Better than the first-ranked:** {row.label}, {_points(row)}: shown above the variant "
                     f"ranked first (p = {row.p_vs_best:.2g}, Holm-adjusted), so the top of the ranking is not "
                     "settled.")
    far = rest[(rest.decision == "undecided") & (rest.val_acc < best.val_acc - NEAR_POINTS / 100)]
    if len(far):
        lines.append(f"**Undecided only because seeds scatter:** {_count(len(far))} more than {NEAR_POINTS} "
                     f"points below the best {'are' if len(far) > 1 else 'is'} not shown worse only because the "
                     "seeds vary too much to tell, not because "
                     f"{'they do' if len(far) > 1 else 'it does'} as well: "
                     + "; ".join(_scatter(best, row) for _, row in far.iterrows()) + ".")
    return lines


def _equivalent(best, equal, margin):
    text = f"**Equivalent to it** (within ±{margin:g} points): {_count(len(equal))}."
    by_time = equal[equal.s_per_iter < best.s_per_iter].sort_values("s_per_iter", kind="stable")
    by_flops = equal[equal.flops_per_iter < best.flops_per_iter].sort_values("flops_per_iter", kind="stable")
    text += (f" Of those, the cheapest by time per iteration is {by_time.iloc[0].label} "
             f"({by_time.iloc[0].s_per_iter:.3g} s, {pct(by_time.iloc[0].val_acc)})" if len(by_time) else
             " None of those takes less time per iteration than the best")
    text += (f"; by FLOPs, {by_flops.iloc[0].label} ({_si(by_flops.iloc[0].flops_per_iter)} FLOPs per "
             "iteration)." if len(by_flops) else "; none takes fewer FLOPs per iteration.")
    return text


def _scatter(best, row):
    """One noise-undecided variant: its gap and whose spread keeps it
    undecided (the side with most of the difference's variance)."""
    se_best, se_row = best.val_sd / math.sqrt(best.seeds), row.val_sd / math.sqrt(row.seeds)
    share = se_row**2 / (se_row**2 + se_best**2) if se_row**2 + se_best**2 > 0 else 0.5
    whose = ("mostly its own seeds'" if share >= 0.75 else "mostly the best's seeds'" if share <= 0.25
             else "both variants' seeds'")
    return (f"{row.label}, {pct(row.val_acc, row.val_lo, row.val_hi)}, {100 * (best.val_acc - row.val_acc):.2f} "
            f"points lower; the spread is {whose} (standard error of the mean {100 * se_row:.2f} points, "
            f"the best's {100 * se_best:.2f})")


def _pair(g):
    """#1's and #2's per-seed values, in seed order when paired."""
    if g.attrs.get("paired"):
        return tuple(g.accs.iloc[i][np.argsort(g.seed_ids.iloc[i], kind="stable")] for i in (0, 1))
    return g.accs.iloc[0], g.accs.iloc[1]


def _second(g):
    """#1 against #2: P(#1 beats #2) with its bootstrap interval, and when
    they are undecided, the seeds that would separate them."""
    best, second = g.iloc[0], g.iloc[1]
    if second.decision == "untested":
        return []
    paired = bool(g.attrs.get("paired"))
    a, b = _pair(g)
    p, lo, hi = decisions.superiority(a, b, paired)
    share = (f"on {100 * p:.0f}% of seeds [{100 * lo:.0f}, {100 * hi:.0f}] (run on the same seed; "
             if paired else f"{100 * p:.0f}% of the time [{100 * lo:.0f}, {100 * hi:.0f}] (a seed of each; ")
    lines = [f"**#1 against #2:** {best.label} beats {second.label} {share}95% bootstrap interval, "
             f"{decisions.BOOTSTRAP} resamples)."]
    if second.decision != "undecided":
        return lines
    gap = 100 * (best.val_acc - second.val_acc)
    if round(gap, 2) == 0:
        return lines + [f"#1 and #2 ({second.label}) are undecided, and their means are equal at the precision "
                        f"shown ({pct(best.val_acc)}): nothing here tells them apart."]
    tried = int(max(best.seeds, second.seeds))
    if paired:
        n = decisions.seeds_to_separate_paired(float(np.mean(a - b)), float(np.std(a - b, ddof=1)), tried=tried)
        test = "the paired t-test"
    else:
        n = stats.seeds_to_separate(best.val_acc - second.val_acc, best.val_sd, second.val_sd, tried=tried)
        test = "Welch's test"
    head = f"#1 and #2 ({second.label}) are {gap:.2f} points apart and undecided; "
    if n:
        return lines + [head + f"about {n} seeds each would separate them (80% power for {test} at α = "
                               f"{ALPHA}, at the spread seen here)."]
    were = (f"the {tried} seeds each tried here" if best.seeds == second.seeds else
            f"{tried} seeds each ({best.seeds} and {second.seeds} were tried here)")
    return lines + [head + f"more than {were} would be needed to separate them, and the spread seen here cannot "
                           "say how many."]
