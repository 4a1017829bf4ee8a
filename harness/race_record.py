"""A raced sweep's record, ``race.json``: the decisions of its race so far
(written by the sweep's main process after each round, from the run
folders), and what ``harness status`` and ``summary.csv`` read of it. No
decision is ever read back from here: a sweep replays the race from its
run folders (:mod:`harness.raced`)."""
from __future__ import annotations

import json
from pathlib import Path

from . import layout, manifest, store


def record(race_, variants, found, rounds, going, need):
    """The decisions so far, as ``race.json`` holds them: the race, each
    round, and per variant its runs (in seed order), the seeds it ran, the
    round that decided it (None while it races), its class and reason."""
    decided = {}
    for r in rounds:
        for v, why in r.stopped.items():
            decided[v] = (r.index + 1, r.classes[v], why)
    if rounds and not need:
        last = rounds[-1]
        n = race_.schedule[last.index]
        why = f"racing ended at round {last.index + 1} ({n} seeds) with it the best"
        decided[last.best] = (last.index + 1, "best", why)
    rows = {}
    for v, runs in variants.items():
        at, cls, why = decided.get(v, (None, None, None))
        rows[v] = {"runs": [r for r, _ in runs], "seeds_run": len(found[v]), "round": at, "class": cls,
                   "reason": why}
    return {"race": {"least": race_.least, "most": race_.most, "step": race_.step, "alpha": race_.alpha,
                     "alpha_per_round": race_.alpha_per_look, "margin": race_.margin,
                     "schedule": list(race_.schedule)},
            "paired": bool(rounds[-1].paired) if rounds else None, "finished": bool(rounds) and not need,
            "rounds": [{"round": r.index + 1, "seeds": race_.schedule[r.index], "best": r.best,
                        "stopped": dict(r.stopped)} for r in rounds],
            "racing": list(going) if need else [], "variants": rows,
            "runs_max": race_.most * len(variants), "runs_spent": sum(len(f) for f in found.values())}


def write_record(out: Path, *args):
    """Write ``race.json`` and its checksum sidecar (the sweep's main
    process is its one writer; ``harness pack`` copies both)."""
    manifest.write_sealed(out / layout.RACE, json.dumps(record(*args), indent=1, sort_keys=True) + "\n")


def read_record(folder):
    """``race.json`` of a sweep folder, or None (no race, or unreadable)."""
    try:
        found = store.read_json(Path(folder) / layout.RACE)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("variants"), dict) else None


def not_needed(folder):
    """``{run_id: (variant, reason)}``: the runs a race will not train, past
    the seeds of the round that decided their variant; from ``race.json``
    (empty without one)."""
    rec = read_record(folder)
    out = {}
    for label, row in (rec or {}).get("variants", {}).items():
        if row.get("round") is not None:
            n = rec["race"]["schedule"][row["round"] - 1]
            out.update({r: (label, row["reason"]) for r in row["runs"][n:]})
    return out


def annotate(folder, rows):
    """summary.csv's rows (dicts) with ``race_round`` and ``reason`` for
    the runs of a decided variant; unchanged without ``race.json``."""
    rec = read_record(folder)
    if rec is None:
        return rows
    where = {r: row for row in rec["variants"].values() if row.get("round") for r in row["runs"]}
    for row in rows:
        got = where.get(row["run_id"])
        row["race_round"] = got["round"] if got else None
        if got and not row.get("reason"):
            row["reason"] = got["reason"]
    return rows
