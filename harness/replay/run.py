"""``harness replay``'s work, without printing: every combination of the
settings replayed, the tuned selection, the A/A check, the files."""
from __future__ import annotations

import itertools
from pathlib import Path

from ..errors import ConfigError
from . import measure, output, racing, recorded as recmod, simulate


def settings(etas, mins, seeds):
    """Every combination of the flags' lists, and the full grid on each
    number of seeds for reference."""
    out = [simulate.Setting("halving", k, eta, m) for eta, m, k in itertools.product(etas, mins, seeds)]
    return out + [simulate.Setting("grid", k) for k in seeds]


def replay_folder(folder, etas, mins, seeds, search_seeds=(), resamples=1000, seed=0, target=0.95, out=None,
                  progress=None, splits=200, races=(), race_mode="permute"):
    """Replay and write replay.csv, replay.md, replay.html and replay.png
    into ``out`` (default: the folder). ``progress(done, total, what)`` hears
    each setting. ``races``: :class:`harness.racing.Race` settings to measure
    too (a Racing section; ``race_mode`` as :func:`racing.measure` takes).
    Returns ``(out, rows, recommended row or None, aa, race rows)``.
    Every setting is checked before anything runs or is written."""
    if resamples < 1:
        raise ConfigError(f"--resamples {resamples}: must be at least 1")
    if not 0 < target <= 1:
        raise ConfigError(f"--target {target}: must be in (0, 1]")
    rec = recmod.load(folder)
    if search_seeds and not rec.tuned:
        raise ConfigError(f"--search-seeds: {rec.folder} is not a tuned sweep (no [tune])")
    todo = settings(etas, mins, seeds)
    for s in todo:
        simulate.check(s, rec)
    for k in search_seeds:
        if not 1 <= k <= len(rec.seeds):
            raise ConfigError(f"--search-seeds {k}: the sweep has {len(rec.seeds)} search seeds per configuration; "
                              f"give 1 to {len(rec.seeds)}")
    variants = racing.load(folder, max(r.most for r in races)) if races else None
    total = len(todo) + len(search_seeds) + len(races) + 1
    tell = progress or (lambda done, n, what: None)
    rows = []
    for i, s in enumerate(todo):
        tell(i, total, output.name({"strategy": s.strategy, "eta": s.eta, "min_iterations": s.min_iterations,
                                    "seeds": s.seeds}))
        rows.append(measure.strategy_row(s, simulate.replay(s, rec, resamples, seed), rec))
    if search_seeds:
        tell(len(todo), total, "[tune] selection")
        rows += measure.tune_rows(rec, search_seeds, resamples, seed)
    race_rows = []
    for i, r in enumerate(races):
        tell(len(todo) + len(search_seeds) + i, total, racing.name(r))
        race_rows.append(racing.measure(variants, r, resamples, seed, race_mode))
    tell(total - 1, total, "A/A check")
    aa = measure.aa_check(rec.accs, splits, seed)
    tell(total, total, "files")
    best = measure.recommend(rows, target)
    out = Path(out) if out else rec.folder
    out.mkdir(parents=True, exist_ok=True)
    output.plot(rows, best, out / output.PLOT)
    blks = output.blocks(rec, rows, best, target, aa, resamples, seed)
    output.write(out, rows, blks + (racing.blocks(variants, race_rows, seed) if races else []))
    return out, rows, best, aa, race_rows
