"""Sweeps: orchestration alone. Lock the folder, plan (:mod:`harness.plan`),
run the strategy (:mod:`harness.strategy`) on the executor
(:mod:`harness.executor`), then a tuned sweep's confirmation, the summary
(:mod:`harness.summary`) and the report.

Layout of ``<out>/<name>/``: ``sweep.toml`` (the grid as run), ``summary.csv``
(one row per run of the grid) and ``runs/<run_id>/`` (see :mod:`harness.store`).
The parent process is the only writer of ``sweep.toml`` and ``summary.csv``;
each run folder is written by the one worker that trains it.
"""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from . import layout, manifest, memory, signals, store, tuned_sweep
from . import plan as planmod
from .errors import BackendLost, ConfigError, HarnessError
from .events import Events
from .executor import execute
from .grid import Sweep
from .ownership import WRITERS, locked, wait_for_old_writers
from .status import RunState, finished
from .strategy import Job
from .summary import summary_row, write_summary  # noqa: F401 (importable from here too)
from .train import checkpoint_problem
from .words import count, duration


def _prepare(sweep: Sweep, out: Path, force, events):
    """Under the sweep's lock: old writers gone, stale temporary files
    removed, then the plan (told to ``events``)."""
    wait_for_old_writers(out, events.note)
    swept = store.sweep_temp_files(out)
    if swept:
        events.note(f"removed {count(swept, 'temporary file')} left by an earlier sweep")
    events.note(f"results: {out.resolve()}")
    for line in _data_lines(sweep):
        events.note(f"data: {line}")
    return _plan_and_tell(sweep, out, force, events.note)


def run_sweep(sweep: Sweep, out_root="results", force=False, events=None, report=True, resume_command=None,
              live_report=True):
    """Train the grid's unfinished runs, write ``summary.csv`` and (unless
    ``report`` is false) the report, rewritten as runs finish when
    ``live_report``. Returns the exit status: 0, 1 if any run failed, 130
    if interrupted. Raises ConfigError when the estimate exceeds the
    budget, before anything is trained. ``events`` (an :class:`Events`)
    hears how it goes; ``resume_command`` is what the interruption message
    tells the user to run again."""
    events = events or Events()
    out = Path(out_root) / sweep.name
    store.refuse_links(out)  # before anything is written: a link could send it anywhere
    memory.check_sweep(sweep)
    made = _absent(out)
    store.writable_folder(out)
    imports = _import_report_modules() if report else None
    layout.runs_dir(out).mkdir(exist_ok=True)
    with locked(out, events.note), signals.sigterm_as_interrupt():
        try:
            plan = _prepare(sweep, out, force, events)
            todo, est = plan.todo, plan.estimate
        except ConfigError:  # a refusal (the budget) writes nothing: undo the folder's making
            _remove(made)
            raise
        _clear(out, todo, force)
        manifest.write_sealed(out / layout.SETTINGS, sweep.text)
        store.atomic_write_json(out / store.PLAN, planmod.plan_record(sweep, est))
        try:
            started = time.monotonic()
            live = live_report and report
            job = Job(sweep, out, plan, events, lambda runs, priced, stop_at=None: execute(
                sweep, out, runs, priced, events, live, stop_at))
            failed = plan.strategy.run(job, todo, est)
            if sweep.tune is not None:
                failed += _confirm(job, force)
            if todo:
                events.note(f"trained in {duration(time.monotonic() - started)} "
                            f"(estimated {duration(est.wall)})")
        except KeyboardInterrupt:
            return _interrupted(sweep, out, resume_command, events.warning)
        except BackendLost:  # the summary of what finished first; then its one line, exit 2
            with contextlib.suppress(HarnessError):
                write_summary(sweep, out)
            raise
        if imports is not None:
            imports.join()
        summary = write_summary(sweep, out)
    events.outcome(summary, out)
    for status in failed:
        error = layout.run_dir(out, status["run_id"]) / "error.txt"
        events.warning(f"failed: {status['run_id']}: {status['reason']}"
                       + (f" (traceback in {error})" if error.exists() else ""))
    code = 1 if failed else 0
    if report and not summary.empty:
        code = max(code, _final_report(out, events))
    return code


def _interrupted(sweep: Sweep, out: Path, resume_command, warn):
    """After Ctrl-C or SIGTERM: the summary of what finished, how to resume,
    and the exit status (130, or 143 for SIGTERM)."""
    with signals.ignoring_sigterm():  # a second one must not cut this short
        try:
            write_summary(sweep, out)
        except HarnessError as e:
            warn(f"harness: error: {e}")
        again = resume_command or f"python -m harness sweep {sweep.path}"
        by = " (SIGTERM)" if signals.terminated() else ""
        warn(f"interrupted{by}: finished runs are kept; resume with: {again}")
    return signals.exit_status()


def _absent(out: Path):
    """What a sweep on ``out`` creates before it may refuse, and is not
    there yet: the folder (and its missing parents), ``runs/``, the locks."""
    missing = [p for p in reversed([out, *out.parents]) if not p.exists()]
    return missing + [p for p in (layout.runs_dir(out), out / store.LOCK, out / WRITERS) if not p.exists()]


def _remove(made):
    """Undo :func:`_absent`'s paths, files first; a folder that is not
    empty (something else wrote there meanwhile) stays."""
    for path in sorted(made, key=lambda p: (p.is_dir(), -len(p.parts))):
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() else path.unlink()


def _import_report_modules():
    """Import what the summary and report need (pandas, matplotlib, seaborn:
    about a second of CPU) on a thread while the sweep plans and its workers
    start, much of which leaves a core idle, rather than after training,
    when everything waits for them. Joined before the summary is written;
    if it fails, the summary's and report's own imports say why."""
    def load():
        with contextlib.suppress(Exception):
            from .report import plots
            plots.setup()
    thread = threading.Thread(target=load, name="harness-report-imports", daemon=True)
    thread.start()
    return thread


def _clear(out: Path, todo, force):
    """Clear the folders of runs to redo: a half-written run starts over,
    unless it has a checkpoint to continue from (and no --force)."""
    for run_id, _ in todo:
        folder = layout.run_dir(out, run_id)
        if force or store.checkpoint_meta(folder) is None:
            store.remove_run_folder(folder)


def _final_report(out: Path, events: Events):
    """Write the report; returns the exit status that says whether it was
    written: 0, 2 (one line) for a full disk, 1 for another failure."""
    t = time.monotonic()  # with its imports: the plotting stack is part of the report's cost
    from .report import write_report

    try:
        path = write_report(out, say=events.note)
        events.note(f"report: {path} (written in {duration(time.monotonic() - t)}; not in the training estimate)")
        return 0
    except HarnessError as e:  # a full disk, a link: the report is all or nothing, and nothing was written
        events.warning(f"harness: error: {e}; the runs and summary.csv are kept (the report is not): "
                       f"python -m harness report {out}")
        return 2
    except Exception as e:  # the runs are safe on disk; a broken report must not hide them
        events.warning(f"warning: the report could not be written ({type(e).__name__}: {e}); "
                       f"retry with: python -m harness --debug report {out}")
        return 1


def _confirm(job: Job, force):
    """A tuned sweep's second phase: each grid point's selected trial
    trained again on new seeds, then ``tuned.csv``. Returns the failed
    runs' statuses (none when the search is unfinished)."""
    sweep, out, events = job.sweep, job.out, job.events
    chosen = tuned_sweep.selection(sweep, out)
    if chosen is None:
        return []
    confirm = [(r, c) for r, c, _ in sweep.confirmation(chosen)]
    _, todo = planmod.split_runs(sweep, out, force, confirm)
    seeds = tuned_sweep.tunemod.confirm_seeds(sweep.seeds, sweep.tune.confirm_seeds)
    at_most = " at most (racing)" if sweep.tune.race is not None else ""
    events.note(f"tuning: each of {count(len(chosen), 'grid point')} selected its best of "
                f"{count(sweep.tune.trials, 'trial')}; confirming on seeds {', '.join(map(str, seeds))}: "
                f"{len(todo)} of {count(len(confirm), 'run')} to train{at_most}")
    est = job.plan.price(todo, start=planmod.checkpointed(out, todo, force))
    _clear(out, todo, force)
    store.atomic_write_json(out / store.PLAN, planmod.plan_record(sweep, est, confirm))
    if sweep.tune.race is not None:  # the confirmation races: its own rounds, read from the run folders
        from .raced import confirmation_variants, race

        failed = race(job, *confirmation_variants(sweep, chosen))
    else:
        failed = job.execute(todo, est)
    tuned_sweep.write_tuned(sweep, out)
    return failed


def _data_lines(sweep: Sweep):
    """The row counts of each distinct data setting of the sweep's runs."""
    from .data import describe_rows, load_source

    settings = dict.fromkeys((c.dataset, c.path or None, c.label_column or None, c.train_size, c.validation)
                             for c in sweep.runs)
    return [describe_rows(load_source(dataset, path, label), train_size, validation)
            for dataset, path, label, train_size, validation in settings]


def _plan_and_tell(sweep: Sweep, out: Path, force, say) -> planmod.Plan:
    """Plan the runs (damaged records removed first, so they are redone)
    and say what is kept and what is redone, and the estimate; refuses
    (ConfigError) a sweep over its budget."""
    damaged = {} if force else _check_records(out, say)
    plan = planmod.make_plan(sweep, out, force, say)
    done, todo = plan.done, plan.todo
    if done:
        say(f"{len(done)} of {count(len(sweep.runs), 'run')} already finished in {out}; skipping "
            f"{'it' if len(done) == 1 else 'them'} (--force reruns)")
    unfinished = {}
    for run_id, cfg in todo:
        folder = layout.run_dir(out, run_id)
        status = store.read_status(folder)
        if run_id in damaged:
            unfinished[RunState.DAMAGED.value] = unfinished.get(RunState.DAMAGED.value, 0) + 1
        elif not force and _usable_checkpoint(folder, run_id, cfg, say):
            unfinished[RunState.CHECKPOINTED.value] = unfinished.get(RunState.CHECKPOINTED.value, 0) + 1
        elif status is not None and not (force and finished(status.get("status"))):
            unfinished[status["status"]] = unfinished.get(status["status"], 0) + 1
        elif status is None and folder.is_dir():
            unfinished[RunState.CUT_SHORT.value] = unfinished.get(RunState.CUT_SHORT.value, 0) + 1
    resumed = unfinished.pop(RunState.CHECKPOINTED.value, 0)
    if resumed:
        say(f"continuing {count(resumed, 'run')} from {'its' if resumed == 1 else 'their'} checkpoint")
    if unfinished:
        parts = ", ".join(f"{unfinished[what]} {what}" for what in sorted(unfinished, key=lambda w: (w == RunState.CUT_SHORT, w)))
        say(f"redoing {count(sum(unfinished.values()), 'unfinished run')} from the start ({parts})")
    stray = {p.name for p in layout.runs_dir(out).iterdir() if p.is_dir()} - set(sweep.run_ids)
    if stray:
        say(f"{count(len(stray), 'run folder')} in {out / 'runs'} not in this grid: "
            "kept on disk, left out of summary.csv and the report")
    if plan.refusal:
        raise ConfigError(plan.refusal)
    if todo:
        say(f"{planmod.WALL}: {duration(plan.estimate.wall)} with {count(plan.estimate.workers, 'worker')}"
            + (f" (budget {duration(sweep.budget)})" if sweep.budget else ""))
    return plan


def _usable_checkpoint(folder: Path, run_id, cfg, say):
    """Whether the run in ``folder`` has a checkpoint to continue from. One
    that does not fit it is removed, and said: the run starts over."""
    if not (folder / store.CHECKPOINT).exists():
        return False
    problem = checkpoint_problem(cfg, folder, run_id)
    if problem:
        (folder / store.CHECKPOINT).unlink(missing_ok=True)
        say(f"run {run_id}: {store.CHECKPOINT} cannot be used ({problem}): removed, the run starts over")
    return problem is None


def _check_records(out: Path, say, shown=5):
    """Verify every run folder's record; give records written before
    manifests one when their files are consistent. A record that fails is
    removed (its run is redone) and named. Returns ``{run_id: problem}``."""
    damaged, sealed = {}, 0
    for folder in sorted(p for p in layout.runs_dir(out).iterdir() if p.is_dir()):
        verdict = manifest.check(folder)
        problem = verdict.problem
        if problem is None and not verdict.sealed and verdict.record is not None:
            problem = manifest.seal_old(folder)
            sealed += problem is None and finished(verdict.record["status"])
        if problem:
            damaged[folder.name] = problem
            (folder / store.STATUS).unlink(missing_ok=True)
    if sealed:
        say(f"{count(sealed, 'finished run')} recorded before manifests: consistent, given one")
    for run_id, problem in list(damaged.items())[:shown]:
        say(f"run {run_id}: {problem}: not believed, redoing it")
    if len(damaged) > shown:
        say(f"... and {len(damaged) - shown} more damaged runs, redone too")
    return damaged
