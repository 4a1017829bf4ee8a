"""A sweep folder's layout, in one place: ``<root>/<name>/`` holds

- ``sweep.toml``: the settings, the grid file as run (:func:`settings` reads them);
- ``summary.csv``: one row per run of the grid that ended;
- ``plan.json``: the runs and their estimates, for ``harness status``;
- ``tuned.csv``: a tuned sweep's selection and confirmation;
- ``race.json``: a racing sweep's decisions so far (:mod:`harness.race_record`), for status and the report;
- ``runs/<run_id>/``: one folder per run (see :mod:`harness.store`);
- ``.lock`` (held by the running sweep), ``.writers`` (held by every process
  that may write, see :mod:`harness.ownership`), ``.threads`` (the threads
  per run the sweep tells its local runs)."""
from __future__ import annotations

import tomllib
from pathlib import Path

RUNS = "runs"
SETTINGS = "sweep.toml"
SUMMARY = "summary.csv"
PLAN = "plan.json"
TUNED = "tuned.csv"
RACE = "race.json"
LOCK = ".lock"
WRITERS = ".writers"
THREADS = ".threads"


def runs_dir(folder) -> Path:
    """The folder of a sweep's run folders."""
    return Path(folder) / RUNS


def run_dir(folder, run_id) -> Path:
    """The folder of one run of a sweep."""
    return Path(folder) / RUNS / run_id


def settings(folder) -> dict | None:
    """The sweep's settings as run (its ``sweep.toml``, parsed), or None
    when the folder has none or it cannot be read."""
    try:
        return tomllib.loads((Path(folder) / SETTINGS).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
