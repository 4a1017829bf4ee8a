"""The pieces of ``harness compare`` (:func:`harness.report.document.compare`):
the sweeps' runs pooled with each run counted once, the folders checked,
where the report goes, and the run settings that differ between sweeps
(resolved, defaults filled in)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from . import reading, tables


def _fingerprints(folder, summary):
    return {c.get("data_fingerprint") for c in reading.run_configs(folder, summary).values()} - {None}


def default_compare_out(folders):
    """Where ``harness compare`` writes without ``--out``: beside the sweeps
    compared (the results folder they were written to), or under
    ``results/`` when they live in different places."""
    parents = {Path(f).resolve().parent for f in folders}
    root = parents.pop() if len(parents) == 1 else Path("results")
    return root / ("compare-" + "-vs-".join(Path(f).name for f in folders))


def check_folders(folders, out):
    """Refuse a folder given twice, and an ``out`` that is one of them."""
    seen = {}
    for f in folders:
        key = f.resolve()
        if key in seen:
            again = f" (as {seen[key]})" if str(seen[key]) != str(f) else ""
            raise ConfigError(f"compare: {f} is given twice{again}; its runs would be counted twice")
        seen[key] = f
    if out.resolve() in seen:
        raise ConfigError(f"compare: --out {out} is one of the sweeps compared; its own report would be overwritten")


def load_all(folders, names, tell=None):
    """The sweeps' summaries and metrics, the sweep a column and run ids
    prefixed by it; a run whose id an earlier sweep already holds (same
    settings, seed and data: the same run) is dropped, and counted. Runs
    left out by verification stay in the pooled summary's ``attrs``;
    ``tell(folder, summary)`` hears each sweep's."""
    summaries, metrics, prints, dropped, seen = [], [], {}, 0, set()
    left_out, unsealed = [], 0
    for folder, name in zip(folders, names):
        s, m, _ = reading.load(folder)
        if tell is not None:
            tell(folder, s)
        left_out += [(f"{name}/{r}", p) for r, p in s.attrs.get("left_out", [])]
        unsealed += s.attrs.get("unsealed", 0)
        prints[name] = _fingerprints(folder, s)
        again = s.run_id.isin(seen)
        dropped += int(again.sum())
        seen |= set(s.run_id)
        s = s[~again]
        summaries.append(s.assign(sweep=name, run_id=name + "/" + s.run_id))
        metrics.append(m[m.run_id.isin(s.run_id)].assign(run_id=lambda d: name + "/" + d.run_id))
    summary = pd.concat(summaries, ignore_index=True)
    summary.attrs.update(left_out=left_out, unsealed=unsealed)
    return summary, pd.concat(metrics, ignore_index=True), prints, dropped


# settings never listed as differences: where the data lives (the data's
# fingerprint is compared instead) and what never changes the numbers
_NOT_COMPARED = ("dataset", "path", "timeout")


def settings_that_differ(summary, names, most=4):
    """The run settings (every RunConfig field, as resolved into each run's
    summary row, so a default written out in one grid file and left out of
    another is no difference) whose values differ between the sweeps:
    ``"lr (a: 0.001; b: 0.01)"``, with at most ``most`` values shown each."""
    out = []
    for key in ("layers", "seed") + tables.VARIANT_SETTINGS:
        if key == "sweep" or key in _NOT_COMPARED or key not in summary:
            continue
        column = summary[key].astype(str).where(summary[key].notna(), "")  # pandas 3 keeps NaN through astype(str)
        values = {n: sorted(set(column[summary.sweep == n]), key=_natural) for n in names}
        if len({tuple(v) for v in values.values()}) > 1:
            shown = "; ".join(f"{n}: {', '.join(v[:most])}" + (f" and {len(v) - most} more" if len(v) > most else "")
                              for n, v in values.items())
            out.append(f"{key} ({shown})")
    return out


def _natural(text):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
