"""The "Racing" section of a raced sweep: the seeds each variant spent, the
round that decided it, and the runs saved against giving every variant the
maximum. From ``race.json`` (:mod:`harness.race_record`), which the sweep
wrote from its run folders after each round."""
from __future__ import annotations

import pandas as pd

from ..race_record import read_record
from ..words import count

CLASS_WORDS = {"worse": "stopped: worse", "equivalent": "stopped: equivalent, cannot lead",
               "undecided": "undecided at the maximum", "best": "the best"}


def rules(rec):
    """The sentence that says how this race decided."""
    race = rec["race"]
    rounds = race["schedule"]
    return (f"Racing gave each variant {race['least']} to {race['most']} seeds, in rounds reaching "
            f"{', '.join(map(str, rounds))} seeds. After each round, a variant classed worse than the current "
            f"best stopped, and so did one classed equivalent to it (within ±{race['margin']:g} points) that could "
            f"no longer become the best; the others got more seeds. Each round tested at "
            f"α/{len(rounds)} = {race['alpha_per_round']:.4g} (the race's α = {race['alpha']:g} spent evenly over "
            f"its {count(len(rounds), 'round')}, so the chance of any false call over the whole race stays "
            f"at most α), with Holm's adjustment over every pair of the variants still racing.")


def spent(rec):
    """The sentence of the runs the race trained against the maximum."""
    most, used, n = rec["runs_max"], rec["runs_spent"], len(rec["variants"])
    saved = most - used
    text = (f"It trained {count(used, 'run')} of the {most} that {count(n, 'variant')} at "
            f"{rec['race']['most']} seeds each would take: {count(saved, 'run')} saved "
            f"({100 * saved / most:.0f}%).")
    if not rec["finished"]:
        racing = rec.get("racing") or []
        text += (f" The race is not over: {count(len(racing), 'variant')} still "
                 f"{'races' if len(racing) == 1 else 'race'} ({'; '.join(racing)}), so more may be trained.")
    return text


def verdict(rec):
    """The race's own answer: its best, and the variants it stopped as
    worse or as equivalent (None while the race goes on)."""
    if not rec["finished"]:
        return None
    by = {}
    for v, row in rec["variants"].items():
        by.setdefault(row["class"], []).append(v)
    best = by.get("best", ["?"])[0]
    parts = [f"The race's verdict: {best} is the best."]
    if by.get("equivalent"):
        parts.append(f"Equivalent to it, and unable to lead: {'; '.join(by['equivalent'])}.")
    if by.get("undecided"):
        parts.append(f"Undecided against it at {rec['race']['most']} seeds: {'; '.join(by['undecided'])}.")
    parts.append(f"Worse: {'; '.join(by['worse'])}." if by.get("worse") else "None was shown worse.")
    return " ".join(parts)


def table(rec):
    """One row per variant: seeds run, the round that decided it, its
    outcome, and runs saved against the maximum."""
    most = rec["race"]["most"]
    rows = [{"variant": v, "seeds run": row["seeds_run"],
             "decided at round": row["round"] if row["round"] is not None else "racing",
             "outcome": CLASS_WORDS.get(row["class"], "racing"), "runs saved": most - row["seeds_run"]}
            for v, row in rec["variants"].items()]
    return pd.DataFrame(rows).sort_values(["seeds run", "variant"], ascending=[False, True], kind="stable")


def blocks(folder):
    """The section's blocks, or none when the sweep did not race."""
    rec = read_record(folder)
    if rec is None:
        return []
    note = ("The other sections compare every run the race trained, ranked by mean: a variant stopped early "
            "has fewer seeds, so its interval is wider and its mean can rank above the race's best by luck. "
            "The race's verdict is the one its error control covers.")
    out = [("h2", "Racing"), ("p", rules(rec) + " " + spent(rec))]
    said = verdict(rec)
    return out + ([("p", said)] if said else []) + [("table", table(rec)), ("p", note)]
