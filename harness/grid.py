"""Grid files: TOML in, a validated list of run configs out.

Everything is checked before any training: unknown keys (with a "did you
mean"), wrong types, empty axes, layer lists that do not fit the data,
non-positive numbers, unknown choices and missing data paths all raise one
:class:`ConfigError` that names the file and the key.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from . import data as datamod
from . import tune as tunemod
from .axes import (
    ARCH_AXES,
    SHAPE_ALIASES,
    architectures,
    axis,
    int_axis,
    once,
    parse_duration,
)
from .backend import REGISTRY as REGISTRY_OF_BACKENDS
from .config import DATA_KEYS, RunConfig, check_exclusive, check_fits, coerce
from .errors import ConfigError, DataError
from .status import Role
from .strategy import REGISTRY

SECTIONS = ("sweep", "data", "train", "grid", "include", "report", "tune")
REPORT_KEYS = ("target", "margin")


def _whole(minimum):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


# [sweep] keys of how runs are scheduled: key -> (default, check, what it must be)
SCHEDULE_KEYS = {
    "checkpoint_seconds": (60, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf,
                           "a number of seconds, 0 = no checkpoints"),
    "strategy": ("grid", lambda v: v in REGISTRY, f"one of {', '.join(sorted(REGISTRY))}"),
    "eta": (3, _whole(2), "an integer of at least 2"),
    "min_iterations": (None, _whole(1), "a positive integer"),
}
SWEEP_KEYS = ("name", "jobs", "seeds", "backend", "scheduler", "budget", *SCHEDULE_KEYS)


@dataclass(frozen=True)
class Schedule:
    """How a sweep schedules its runs: checkpoints, and the strategy
    (every run to its end, or successive halving)."""

    checkpoint_seconds: float = 60
    strategy: str = "grid"
    eta: int = 3
    min_iterations: int | None = None
    race: object = None  # a harness.racing.Race, from [sweep] seeds = { race = [2, 10] }


BACKENDS = tuple(REGISTRY_OF_BACKENDS)
TRAIN_KEYS = tuple(f.name for f in fields(RunConfig) if f.name not in DATA_KEYS and f.name != "seed")


@dataclass(frozen=True)
class Sweep:
    """A validated grid file: its settings and the runs it expands to."""

    path: Path
    text: str                    # the file as read, saved beside the results
    name: str
    jobs: int
    seeds: tuple[int, ...]
    backend: str
    scheduler: str
    runs: tuple[RunConfig, ...]  # one per combination and seed, duplicates removed
    run_ids: tuple[str, ...]
    varying: tuple[str, ...]     # settings that differ between runs
    fingerprint: str             # of the data
    n_rows: int                  # rows in the data's training file
    budget: float | None = None  # seconds of wall time a sweep may be estimated to take
    tune: tunemod.Tune | None = None  # nuisance settings tuned per grid point
    meta: tuple = ()             # per run, with [tune]: {"point": i, "trial": j}
    points: tuple = ()           # with [tune]: each grid point's own settings
    confirm: dict = None         # with [tune]: (point, trial) -> ((run_id, cfg), ...) on new seeds
    schedule: Schedule = Schedule()
    notes: tuple = ()            # one line each for the user, e.g. an old word still accepted

    def confirmation(self, selected):
        """The confirmation runs of the selected trials, ``{point: trial}``:
        ``[(run_id, cfg, meta), ...]``."""
        return [(run_id, cfg, {"point": p, "trial": t, "role": Role.CONFIRM.value})
                for p, t in sorted(selected.items()) for run_id, cfg in self.confirm[(p, t)]]


def _unknown(key, allowed, where):
    home = next((f"[{name}]" for name, keys in (("sweep", SWEEP_KEYS), ("data", DATA_KEYS), ("train", TRAIN_KEYS))
                 if key in keys and set(keys) != set(allowed)), None)
    if home:
        return ConfigError(f"{where}: key {key!r} does not belong here; put it in {home}")
    hint = difflib.get_close_matches(key, allowed, n=1)
    return ConfigError(f"{where}: unknown key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))


def _table(doc, name, where):
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value


def _check_keys(table, allowed, where):
    for key in table:
        if key not in allowed:
            if key == "seed":
                raise ConfigError(f"{where}: unknown key 'seed'; seeds are set by [sweep] seeds = [...]")
            raise _unknown(key, allowed, where)


def _check_report(report, where):
    """``[report] target``: the validation accuracy of the equal-budget view, a
    fraction; ``margin``: the equivalence margin in points (report.decisions)."""
    _check_keys(report, REPORT_KEYS, where)
    if "margin" in report:
        from .report.decisions import check_margin  # the report's own rule, not a copy
        check_margin(report["margin"], where)
    target = report.get("target", 0.5)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise ConfigError(f"{where} target: must be a fraction in (0, 1) such as 0.97, got {target!r}")


def _load_toml(path: Path):
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such grid file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the grid file: {e}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def load_sweep(path, jobs=None, scheduler=None, budget=None) -> Sweep:
    """Read and validate the grid file at ``path``; ``jobs``, ``scheduler``
    and ``budget`` override the file's [sweep] values (command-line flags).

    1. the file's sections and their keys; 2. the [sweep] settings; 3. the
    [data] and [train] base values, and the data; 4. the axes and includes;
    5. their product over the seeds, each run validated."""
    path = Path(path)
    text, doc = _load_toml(path)
    _check_keys(doc, SECTIONS, f"{path}")
    sweep, data, train, grid = (_table(doc, name, path) for name in ("sweep", "data", "train", "grid"))
    _check_keys(sweep, SWEEP_KEYS, f"{path} [sweep]")
    _check_keys(data, DATA_KEYS, f"{path} [data]")
    _check_keys(train, TRAIN_KEYS, f"{path} [train]")
    _check_keys(grid, TRAIN_KEYS + ARCH_AXES, f"{path} [grid]")
    _check_report(_table(doc, "report", path), f"{path} [report]")
    race, sweep = _race(sweep, doc, path)
    name, jobs, seeds, backend, scheduler, budget = _sweep_settings(sweep, path, jobs, scheduler, budget)
    base_values, base_error = _base_values(data, train, path)
    tune = _tune(_table(doc, "tune", path), grid, doc, base_values, path)
    try:
        source = datamod.load_source(base_values.get("dataset", RunConfig().dataset), base_values.get("path") or None,
                                     base_values.get("label_column") or None)
    except DataError as e:
        raise ConfigError(f"{path} [data]: {e}") from None
    points = _combos(doc, grid, train, source, path)
    combos = _with_trials(points, tune)
    expand = functools.partial(_expand, base_values=base_values, base_error=base_error, train=train,
                               source=source, path=path)
    runs = expand(combos, seeds)
    _check_rows(source, runs, path)
    varying = tuple(k for k in (f.name for f in fields(RunConfig))
                    if len({getattr(c, k) for _, c, _ in runs}) > 1)
    return Sweep(path, text, name, jobs, tuple(seeds), backend, scheduler,
                 tuple(c for _, c, _ in runs), tuple(r for r, _, _ in runs), varying, source.fingerprint,
                 len(source.X), budget, tune, tuple(m for _, _, m in runs), tuple(points),
                 _confirmations(combos, seeds, tune, expand), _schedule(sweep, path, [c for _, c, _ in runs], race),
                 _notes(grid, path))


def _notes(grid, path):
    """Lines for the user about a file that loads but uses an old word."""
    shapes = grid.get("shape", [])
    old = [s for s in SHAPE_ALIASES if s in shapes]
    return tuple(f'{path} [grid] shape: "{s}" is now called "{SHAPE_ALIASES[s]}" (width, width/2, width/4, ...), '
                 "so as not to be confused with strategy = \"halving\"; the old word still works" for s in old)


def _check_rows(source, runs, path):
    """The rows fit the data: a validation share of a tiny file can be no row
    at all, and train_size can ask for more rows than there are."""
    for train_size, validation in dict.fromkeys((c.train_size, c.validation) for _, c, _ in runs):
        try:
            datamod.row_counts(source, train_size or None, validation)
        except DataError as e:
            raise ConfigError(f"{path} [data]: {e}") from None


def _schedule(sweep, path, runs, race=None):
    """The [sweep] keys of :data:`SCHEDULE_KEYS`, checked, and by the
    strategy against the runs (halving's rungs: each starts before a run
    ends, on an evaluation). A race table for seeds makes the strategy
    "racing"."""
    values = {}
    for key, (default, check, what) in SCHEDULE_KEYS.items():
        value = sweep.get(key, "racing" if key == "strategy" and race else default)
        if value is not None and not check(value):
            raise ConfigError(f"{path} [sweep] {key}: must be {what}, got {value!r}")
        values[key] = value
    if race and values["strategy"] != "racing":
        raise ConfigError(f"{path} [sweep] strategy: seeds = {{ race = ... }} races the seeds, which strategy "
                          f"{values['strategy']!r} does not; drop strategy or give seeds as a list")
    schedule = Schedule(**values, race=race)
    REGISTRY[schedule.strategy].check(schedule, runs, path)
    return schedule


def _confirmations(combos, seeds, tune, expand):
    """With [tune]: every (point, trial)'s runs on the confirmation seeds,
    numbered after the sweep's; only the selected trials' will train."""
    if tune is None:
        return None
    new_seeds = tunemod.confirm_seeds(seeds, tune.confirm_seeds)
    return {(m["point"], m["trial"]): tuple((r, c) for r, c, _ in expand([(combo, m)], new_seeds))
            for combo, m in combos}


def _margin(doc):
    """``[report] margin`` (points), checked already, or the default."""
    from .report.decisions import DEFAULT_MARGIN

    report = doc.get("report")
    return float(report.get("margin", DEFAULT_MARGIN)) if isinstance(report, dict) else DEFAULT_MARGIN


def _race(sweep, doc, path):
    """``(race, sweep)``: with ``[sweep] seeds = { race = [least, most] }``,
    its :class:`harness.racing.Race` (judged at ``[report] margin``) and the
    [sweep] table with seeds 0 to most - 1 (the worst case, which the plan
    prices); otherwise ``(None, sweep)``."""
    seeds = sweep.get("seeds")
    if not isinstance(seeds, dict):
        return None, sweep
    # here: racing imports the report's statistics, which a plain sweep need not load
    from . import racing

    if doc.get("tune"):
        raise ConfigError(f"{path} [sweep] seeds: with [tune], [sweep] seeds lists the search seeds and the "
                          "confirmation races: [tune] confirm_seeds = { race = [2, 10] }")
    race = racing.parse(seeds, f"{path} [sweep]", margin=_margin(doc))
    return race, {**sweep, "seeds": list(range(race.most))}


def _tune(table, grid, doc, base_values, path):
    """The [tune] table, checked against the grid: a tuned setting is no axis
    or include key, and selection needs validation rows of the training file."""
    kinds = {f.name: f.type for f in fields(RunConfig)}
    includes = doc.get("include") if isinstance(doc.get("include"), list) else []  # checked in _combos
    axes = set(grid) | {k for inc in includes if isinstance(inc, dict) for k in inc}
    if "depth" in grid or "width" in grid:
        axes.add("layers")
    tune = tunemod.parse(table, f"{path} [tune]", TRAIN_KEYS, kinds, coerce, axes)
    if tune is not None and base_values.get("validation", RunConfig().validation) == "test":
        raise ConfigError(f"{path} [tune]: tuning selects on the validation rows, and here they are the test "
                          "split; set [data] validation to a fraction of the training file, such as 0.1, so "
                          "the test split stays held out")
    if tune is not None and tune.race is not None:  # judged at the report's margin
        tune = dataclasses.replace(tune, race=dataclasses.replace(tune.race, margin=_margin(doc)))
    return tune


def _with_trials(points, tune):
    """``[(settings, meta)]``: each grid point, or with [tune] each grid
    point once per trial with the trial's draws."""
    if tune is None:
        return [(combo, {}) for combo in points]
    draws = tune.draws()
    return [({**combo, **draw}, {"point": p, "trial": t, "role": Role.SEARCH.value})
            for p, combo in enumerate(points) for t, draw in enumerate(draws)]


def _sweep_settings(sweep, path, jobs, scheduler, budget):
    """``(name, jobs, seeds, backend, scheduler, budget)`` from [sweep] and the flags."""
    name = sweep.get("name", path.stem)
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or not name.isprintable():
        raise ConfigError(f"{path} [sweep] name: must be a plain folder name, got {name!r}")
    where = f"{path} [sweep] jobs" if jobs is None else "flag --jobs"
    jobs = sweep.get("jobs", 1) if jobs is None else jobs
    if not isinstance(jobs, int) or isinstance(jobs, bool) or (jobs < 1 and jobs != -1):
        raise ConfigError(f"{where}: must be a positive integer or -1 (all cores), got {jobs!r}")
    seeds = sweep.get("seeds", [0])
    once(int_axis(axis(seeds, "seeds", f"{path} [sweep]"), "seeds", f"{path} [sweep]", minimum=0),
          "seeds", f"{path} [sweep]")
    backend = sweep.get("backend", "loky")
    if backend not in BACKENDS:
        raise ConfigError(f"{path} [sweep] backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    from_file = scheduler is None
    scheduler = sweep.get("scheduler", "") if scheduler is None else scheduler
    if not isinstance(scheduler, str):
        raise ConfigError(f"{path} [sweep] scheduler: must be an address string like 'tcp://host:8786'")
    if scheduler and from_file and backend != "dask":  # a file alone never picks a network peer
        raise ConfigError(f"{path} [sweep] scheduler: used only with backend = \"dask\" set as well "
                          "(or pass --scheduler)")
    if scheduler:
        backend = "dask"
    elif backend == "dask":
        raise ConfigError(f"{path} [sweep] scheduler: backend 'dask' needs scheduler = 'tcp://host:8786' "
                          "(or --scheduler)")
    if budget is not None:
        budget = parse_duration(budget, "flag --budget")
    elif "budget" in sweep:
        budget = parse_duration(sweep["budget"], f"{path} [sweep] budget")
    return name, jobs, seeds, backend, scheduler, budget


def _base_values(data, train, path):
    """``(values, error)``: [data] and [train] type-checked, and the message
    they give alone as a run (or None). Their combination is checked per
    run, since an axis or include may override a value that is wrong alone
    (say optimizer = "adam" beside [train] batch_size = 128)."""
    values = {k: coerce(k, v, f"{path} [data]") for k, v in data.items()}
    if values.get("path"):  # relative to the grid file, like an include
        values["path"] = str((path.parent / values["path"]).resolve())
    values.update({k: coerce(k, v, f"{path} [train]") for k, v in train.items()})
    values.setdefault("layers", (1, 1))  # placeholder until the data's sizes are known
    try:
        RunConfig(**values)
        return values, None
    except ConfigError as e:
        return values, str(e)


def _combos(doc, grid, train, source, path):
    """The settings of each run but its seed: the product of the [grid] axes,
    then the [[include]] tables. With no axes at all, the [train] defaults
    form one run unless the file lists only [[include]] runs."""
    archs = architectures(grid, source.n_features, source.n_classes, f"{path} [grid]")
    axes = {"layers": archs} if archs else {}
    for key, values in grid.items():
        if key in ARCH_AXES or key == "layers":
            continue
        axes[key] = once([coerce(key, v, f"{path} [grid] {key}") for v in axis(values, key, f"{path} [grid]")],
                          key, f"{path} [grid]")
    includes = doc.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(t, dict) for t in includes):
        raise ConfigError(f"{path}: [[include]] must be tables of overrides")
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    if not axes and includes:
        combos = []
    for i, inc in enumerate(includes, start=1):
        where = f"{path} [[include]] #{i}"
        _check_keys(inc, TRAIN_KEYS, where)
        combos.append({k: coerce(k, v, where) for k, v in inc.items()})
    if not ("layers" in train or archs) and any("layers" not in combo for combo in combos):
        raise ConfigError(f"{path}: no architecture; set [train] layers, [grid] layers or depth and width, "
                          "or layers in every [[include]]")
    return combos


def _expand(combos, seeds, base_values, base_error, train, source, path):
    """``[(run_id, RunConfig, meta)]``: every combination of ``combos``
    (``[(settings, meta)]``) once per seed, validated against the data,
    identical runs listed once."""
    runs, seen = [], set()
    for combo, meta in combos:
        for seed in seeds:
            where = f"{path} [grid] " + ", ".join(f"{k} = {_show(v)}" for k, v in combo.items()) if combo \
                else f"{path} [train]"
            try:
                check_exclusive(set(train) | set(combo))
                cfg = RunConfig(**{**base_values, **combo, "seed": seed})
            except ConfigError as e:
                # the [train] defaults alone were already wrong in this way: say so
                if str(e) == base_error:
                    section = "[data]" if str(e).split(" ")[0] in DATA_KEYS else "[train]"
                    raise ConfigError(f"{path} {section}: {e}") from None
                raise ConfigError(f"{where}: {e}") from None
            check_fits(cfg, source.n_features, source.n_classes, where)
            run_id = cfg.run_id(source.fingerprint)
            if run_id not in seen:
                seen.add(run_id)
                runs.append((run_id, cfg, meta))
    return runs


def _show(v):
    return "-".join(map(str, v)) if isinstance(v, tuple) else repr(v)
