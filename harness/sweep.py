"""Sweeps: run every config of a grid in parallel, resume, and summarise.

Layout of ``<out>/<name>/``: ``sweep.toml`` (the grid as run), ``summary.csv``
(one row per run of the grid) and ``runs/<run_id>/`` (see :mod:`harness.store`).
The parent process is the only writer of ``sweep.toml`` and ``summary.csv``;
each run folder is written by the one worker that trains it.
"""
from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import manifest, memory, mlp, plan as planmod, signals, store, tuning
from .config import RunConfig
from .errors import ConfigError, HarnessError
from .grid import Sweep
from .status import RunStatus, finished, in_comparison, parse
from .strategy import Job
from .signals import INTERRUPTED_BY
from .train import checkpoint_problem, prepare, run as train_run
from .words import count

SUMMARY_FIRST = ("run_id", "status", "layers", "depth", "width", "n_params", "flops_per_iter")
SUMMARY_LAST = ("seed", "final_train_acc", "final_val_acc", "best_val_acc", "test_acc", "final_train_loss",
                "median_iter_seconds", "total_seconds", "estimated_seconds", "iterations_run", "kept_iteration",
                "rung", "reason")


# --- no orphans: a run writes only while the sweep that started it lives ----------
#
# A sweep's main process may die by any signal (SIGKILL, an OOM kill, a closed
# terminal). Its workers and their run processes then stop by themselves:
# each watches the main process (pid and start time, so a reused pid does
# not fool it) and exits within WATCH_SECONDS. And each holds a shared lock on
# ``.writers`` while it may write; a new sweep takes ``.lock`` and then waits
# for an exclusive lock on ``.writers``, so it never races a writer of the old
# one. Local only: Dask workers on other machines cannot see the main
# process (see the README).
WRITERS = ".writers"
WATCH_SECONDS = 0.5
WRITERS_WAIT = 60


def _start_time(pid):
    """The process's start time (from /proc), or None if there is no such
    process or it is a zombie (dead, not yet reaped by its parent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass(frozen=True)
class Owner:
    """The sweep main process that a worker serves, and its writers' lock file."""

    pid: int
    started: str | None
    writers: str

    @classmethod
    def me(cls, out: Path):
        return cls(os.getpid(), _start_time(os.getpid()), str(out / WRITERS))

    def alive(self) -> bool:
        if self.started is None:  # no /proc: the pid alone
            try:
                os.kill(self.pid, 0)
                return True
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return _start_time(self.pid) == self.started


_watched = {"owner": None, "thread": None}


def _watch(owner: Owner | None, new_process=False):
    """Exit this process soon after ``owner`` dies (one watcher thread per process)."""
    _watched["owner"] = owner
    if owner is None or (_watched["thread"] is not None and not new_process):
        return

    def loop():
        while True:
            time.sleep(WATCH_SECONDS)
            current = _watched["owner"]
            if current is not None and not current.alive():
                os._exit(3)  # the sweep that started this run is gone: write nothing more
    _watched["thread"] = threading.Thread(target=loop, name="harness-owner-watch", daemon=True)
    _watched["thread"].start()


@contextlib.contextmanager
def _writing(owner: Owner | None):
    """Hold a shared lock on the writers' file while a run may write (a
    forked run process inherits it), having checked the owner still lives."""
    if owner is None:
        yield
        return
    fd = os.open(owner.writers, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not owner.alive():
            os._exit(3)  # queued before the sweep died: start nothing
        yield
    finally:
        os.close(fd)


def _wait_for_old_writers(out: Path, say):
    """Wait until no process of an earlier sweep on ``out`` can still write."""
    fd = os.open(out / WRITERS, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, told = time.monotonic() + WRITERS_WAIT, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(f"{out}: processes of an earlier sweep still write here after "
                                      f"{WRITERS_WAIT} s; stop them first") from None
                if not told:
                    say("waiting for the processes of an earlier sweep on this folder to stop")
                    told = True
                time.sleep(0.1)
    finally:
        os.close(fd)  # also releases the lock


def _worker(cfg: RunConfig, run_dir: str, threads: int, isolate: bool, threads_file=None, owner=None, extra=None):
    """One run, in a worker process. Data is loaded (and cached) by the
    worker itself; only the small config crosses the process boundary.

    With ``isolate``, the run trains in a forked child, which inherits the
    worker's loaded data: if the child dies (killed, out of memory), that run
    alone is recorded as failed and the worker carries on. ``owner`` (the
    sweep's main process) is watched: when it dies, this process and the
    run's exit without writing more. ``extra`` holds :func:`harness.train.run`'s
    other arguments (the estimate for config.json, checkpoints, ``stop_at``)."""
    _watch(owner)
    with _writing(owner), signals.sigterm_as_interrupt(main=False):
        try:
            return _worker_run(cfg, run_dir, threads, isolate, threads_file, owner, extra)
        except Exception as e:  # this run's fault alone: never the backend's, nor another run's
            return _failed_here(run_dir, e)


def _failed_here(run_dir, error):
    """The failed status of a run whose own recording failed (its folder
    removed while it ran, a full disk): written if it can be, returned
    either way, so the sweep blames this run and goes on with the others."""
    run_dir = Path(run_dir)
    if isinstance(error, HarnessError):
        reason = str(error)
    elif not run_dir.is_dir():
        reason = f"its run folder {run_dir} was removed while it ran"
    else:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
    status = {"status": RunStatus.FAILED.value, "reason": reason, "run_id": run_dir.name}
    with contextlib.suppress(Exception):
        if run_dir.is_dir() and store.read_status(run_dir) is None:
            store.write_status(run_dir, status)
    return status


def _worker_run(cfg: RunConfig, run_dir: str, threads: int, isolate: bool, threads_file, owner, extra):
    """:func:`_worker`'s run, in this process or a forked child."""
    if not isolate:
        return train_run(cfg, run_dir, threads=threads, threads_file=threads_file, **(extra or {}))
    with contextlib.suppress(Exception):  # a failure here is the run's: its child meets it again and records it
        prepare(cfg)  # load before forking, so the worker keeps the data for its next runs
    child = multiprocessing.get_context("fork").Process(target=_child,
                                                        args=(cfg, run_dir, threads, threads_file, owner, extra))
    try:
        # The child starts with SIGINT blocked (held, not lost) and takes it only
        # once it can mark its run interrupted; see _child.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            child.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.join()
    except KeyboardInterrupt:
        if child.pid is not None:
            child.join()  # Ctrl-C reached the child too; it marks its run interrupted
        raise
    return _child_outcome(child.exitcode, run_dir, owner)


def _child_outcome(code, run_dir, owner):
    """The status of a run trained in a child that exited with ``code``."""
    status = store.read_status(run_dir)
    if code in (0, 130) and status is not None:  # 130: Ctrl-C came as it ended; its record stands
        return status
    saved = store.checkpoint_meta(run_dir) if code == 0 else None
    if saved is not None:  # paused at its stop_at, as asked
        return {"run_id": Path(run_dir).name, "status": None, "paused_at": saved["iteration"]}
    if owner is not None and not owner.alive():
        os._exit(3)  # the child was stopped because the sweep died: record nothing
    if code == 130:  # interrupted before its run could mark itself
        status = {"status": RunStatus.INTERRUPTED.value, "run_id": Path(run_dir).name,
                  "reason": f"interrupted ({INTERRUPTED_BY['signal']}) as it started"}
        store.write_status(run_dir, status)
        return status
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        reason = f"worker process died: killed by {name}" + (" (out of memory, or killed)" if name == "SIGKILL" else "")
    else:
        reason = f"worker process exited with code {code} before finishing the run"
    status = {"status": RunStatus.FAILED.value, "reason": reason, "run_id": Path(run_dir).name}
    store.write_status(run_dir, status)
    return status


def _child(cfg, run_dir, threads, threads_file, owner, extra):
    """The run, in a forked child. SIGINT arrives blocked (see _worker) and is
    let through only around the run itself, so Ctrl-C during the child's
    start-up or shutdown never prints multiprocessing's traceback; a
    pending one is taken then and ends the child with status 130."""
    try:
        try:
            signals.in_run_process()
            _watch(owner, new_process=True)  # threads do not survive a fork; this one keeps SIGINT blocked
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            train_run(cfg, run_dir, threads=threads, threads_file=threads_file, **(extra or {}))
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except KeyboardInterrupt:
        os._exit(130)  # the run folder says "interrupted"; no traceback from every child
    except Exception:
        os._exit(1)  # the run could not record its end (its folder gone, a full disk): its worker does


# After a SIGKILL of the sweep, loky's resource tracker (a process that
# outlives it) unlinks the semaphores and memory-mapping folders the sweep
# could not release, and warns about each as "leaked" on the terminal: the
# cleanup is right, the warnings are noise. The tracker takes its warning
# filters from this process's -W options when it starts.
_TRACKER_QUIET = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"


def _parallel(sweep: Sweep, n_tasks: int):
    """The joblib Parallel object and threads per run for this sweep."""
    from joblib import Parallel

    if sweep.backend == "dask":
        # one thread per run; start workers with --nthreads 1 per core
        return Parallel(n_jobs=-1, return_as="generator_unordered"), 1
    if _TRACKER_QUIET not in sys.warnoptions:
        sys.warnoptions.append(_TRACKER_QUIET)
    jobs = planmod.jobs(sweep, n_tasks)
    return Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered"), planmod.threads_per_run(jobs)


def _dask_client(address):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError("backend 'dask' needs dask.distributed: pip install 'harness[dask]'") from None
    try:
        return Client(address, timeout="20s")
    except OSError as e:
        raise ConfigError(f"cannot reach the dask scheduler at {address}: {e}") from None


@contextlib.contextmanager
def locked(out: Path, say):
    """Hold ``out/.lock`` for the sweep's duration. The kernel drops the
    lock when its holder dies, so a lock file left by a dead process is
    simply taken over. Forked processes (a run's child, the calibration's
    pool) close their copy at once (see :func:`_drop_lock_in_child`): the
    lock says a sweep is running, and must go with the sweep; processes
    that may still write are the writers' lock's business."""
    path = out / store.LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # a bare descriptor: no file object to close it twice
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise ConfigError(f"{out}: another sweep ({holder}) is running on this folder; "
                          "wait for it to finish, or use --out DIR for a separate results root") from None
    stale = os.read(fd, 4096).decode(errors="replace").strip()
    if stale:
        say(f"taking over a stale lock ({stale}, no longer running)")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held_lock["fd"] = fd
    try:
        yield
    finally:
        _held_lock["fd"] = None
        os.ftruncate(fd, 0)
        os.close(fd)


_held_lock = {"fd": None}


def _drop_lock_in_child():
    """In a forked child: close the inherited descriptor of the sweep's lock,
    so that the lock dies with the sweep even while the child still runs."""
    fd, _held_lock["fd"] = _held_lock["fd"], None
    if fd is not None:
        os.close(fd)


os.register_at_fork(after_in_child=_drop_lock_in_child)


class Events:
    """What a sweep tells its caller as it goes. The caller decides what to
    show (see :mod:`harness.progress`); these do nothing. ``advanced`` comes
    from a watcher thread, the others from the sweep's main thread."""

    def note(self, text):
        """A line for the user: where results go, what is kept or redone."""

    def started(self, estimate, todo, meta=None):
        """Training begins: ``todo`` is ``[(run_id, cfg), ...]``; ``meta``
        maps a tuned sweep's run ids to their point, trial and role."""

    def advanced(self, run_id, iteration):
        """A running run has logged ``iteration``."""

    def finished(self, status):
        """A run ended (its ``status.json`` record)."""

    def paused(self, run_id, iteration):
        """A run stopped at ``iteration``, a halving rung, to be ranked."""

    def closed(self):
        """Training stopped, finished or not."""

    def outcome(self, summary, out):
        """The sweep's summary, once written."""


class Printed(Events):
    """Notes on stderr and the outcome's table on stdout, no progress."""

    def note(self, text):
        print(text, file=sys.stderr)

    def outcome(self, summary, out):
        print_outcome(summary, out)


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
    (out / "runs").mkdir(exist_ok=True)
    with locked(out, events.note), signals.sigterm_as_interrupt():
        try:
            _wait_for_old_writers(out, events.note)
            swept = store.sweep_temp_files(out)
            if swept:
                events.note(f"removed {count(swept, 'temporary file')} left by an earlier sweep")
            events.note(f"results: {out.resolve()}")
            for line in _data_lines(sweep):
                events.note(f"data: {line}")
            plan = _plan_and_tell(sweep, out, force, events.note)
            todo, est = plan.todo, plan.estimate
        except ConfigError:  # a refusal (the budget) writes nothing: undo the folder's making
            _remove(made)
            raise
        _clear(out, todo, force)
        manifest.write_sealed(out / "sweep.toml", sweep.text)
        store.atomic_write_json(out / store.PLAN, planmod.plan_record(sweep, est))
        try:
            started = time.monotonic()
            live = live_report and report
            job = Job(sweep, out, plan, events, lambda runs, priced, stop_at=None: _execute(
                sweep, out, runs, priced, events, live, stop_at))
            failed = plan.strategy.run(job, todo, est)
            if sweep.tune is not None:
                failed += _confirm(job, force)
            if todo:
                events.note(f"trained in {planmod.clock(time.monotonic() - started)} "
                            f"(estimated {planmod.clock(est.wall)})")
        except KeyboardInterrupt:
            return _interrupted(sweep, out, resume_command)
        if imports is not None:
            imports.join()
        summary = write_summary(sweep, out)
    events.outcome(summary, out)
    for status in failed:
        error = out / "runs" / status["run_id"] / "error.txt"
        print(f"failed: {status['run_id']}: {status['reason']}"
              + (f" (traceback in {error})" if error.exists() else ""), file=sys.stderr)
    code = 1 if failed else 0
    if report and not summary.empty:
        code = max(code, _final_report(out, events.note))
    return code


def _interrupted(sweep: Sweep, out: Path, resume_command):
    """After Ctrl-C or SIGTERM: the summary of what finished, how to resume,
    and the exit status (130, or 143 for SIGTERM)."""
    with signals.ignoring_sigterm():  # a second one must not cut this short
        try:
            write_summary(sweep, out)
        except HarnessError as e:
            print(f"harness: error: {e}", file=sys.stderr)
        again = resume_command or f"python -m harness sweep {sweep.path}"
        by = " (SIGTERM)" if signals.terminated() else ""
        print(f"interrupted{by}: finished runs are kept; resume with: {again}", file=sys.stderr)
    return signals.exit_status()


def _absent(out: Path):
    """What a sweep on ``out`` creates before it may refuse, and is not
    there yet: the folder (and its missing parents), ``runs/``, the locks."""
    missing = [p for p in reversed([out, *out.parents]) if not p.exists()]
    return missing + [p for p in (out / "runs", out / store.LOCK, out / WRITERS) if not p.exists()]


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
        folder = out / "runs" / run_id
        if force or store.checkpoint_meta(folder) is None:
            store.remove_run_folder(folder)


def _final_report(out: Path, say):
    """Write the report; returns the exit status that says whether it was
    written: 0, 2 (one line) for a full disk, 1 for another failure."""
    t = time.monotonic()  # with its imports: the plotting stack is part of the report's cost
    from .report import write_report

    try:
        path = write_report(out, say=say)
        say(f"report: {path} (written in {planmod.clock(time.monotonic() - t)}; not in the training estimate)")
        return 0
    except HarnessError as e:  # a full disk, a link: the report is all or nothing, and nothing was written
        print(f"harness: error: {e}; the runs and summary.csv are kept (the report is not): "
              f"python -m harness report {out}", file=sys.stderr)
        return 2
    except Exception as e:  # the runs are safe on disk; a broken report must not hide them
        print(f"warning: the report could not be written ({type(e).__name__}: {e}); "
              f"retry with: python -m harness --debug report {out}", file=sys.stderr)
        return 1


def _confirm(job: Job, force):
    """A tuned sweep's second phase: each grid point's selected trial
    trained again on new seeds, then ``tuned.csv``. Returns the failed
    runs' statuses (none when the search is unfinished)."""
    sweep, out, events = job.sweep, job.out, job.events
    chosen = tuning.selection(sweep, out)
    if chosen is None:
        return []
    confirm = [(r, c) for r, c, _ in sweep.confirmation(chosen)]
    _, todo = planmod.split_runs(sweep, out, force, confirm)
    seeds = tuning.tunemod.confirm_seeds(sweep.seeds, sweep.tune.confirm_seeds)
    events.note(f"tuning: each of {count(len(chosen), 'grid point')} selected its best of "
                f"{count(sweep.tune.trials, 'trial')}; confirming on seeds {', '.join(map(str, seeds))}: "
                f"{len(todo)} of {count(len(confirm), 'run')} to train")
    est = job.plan.price(todo, start=planmod.checkpointed(out, todo, force))
    _clear(out, todo, force)
    store.atomic_write_json(out / store.PLAN, planmod.plan_record(sweep, est, confirm))
    failed = job.execute(todo, est)
    tuning.write_tuned(sweep, out)
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
        folder = out / "runs" / run_id
        status = store.read_status(folder)
        if run_id in damaged:
            unfinished["damaged"] = unfinished.get("damaged", 0) + 1
        elif not force and _usable_checkpoint(folder, run_id, cfg, say):
            unfinished["checkpointed"] = unfinished.get("checkpointed", 0) + 1
        elif status is not None and not (force and finished(status.get("status"))):
            unfinished[status["status"]] = unfinished.get(status["status"], 0) + 1
        elif status is None and folder.is_dir():
            unfinished["cut short"] = unfinished.get("cut short", 0) + 1
    resumed = unfinished.pop("checkpointed", 0)
    if resumed:
        say(f"continuing {count(resumed, 'run')} from {'its' if resumed == 1 else 'their'} checkpoint")
    if unfinished:
        parts = ", ".join(f"{unfinished[what]} {what}" for what in sorted(unfinished, key=lambda w: (w == "cut short", w)))
        say(f"redoing {count(sum(unfinished.values()), 'unfinished run')} from the start ({parts})")
    stray = {p.name for p in (out / "runs").iterdir() if p.is_dir()} - set(sweep.run_ids)
    if stray:
        say(f"{count(len(stray), 'run folder')} in {out / 'runs'} not in this grid: "
            "kept on disk, left out of summary.csv and the report")
    if plan.refusal:
        raise ConfigError(plan.refusal)
    if todo:
        say(f"{planmod.WALL}: {planmod.clock(plan.estimate.wall)} with {count(plan.estimate.workers, 'worker')}"
            + (f" (budget {planmod.clock(sweep.budget)})" if sweep.budget else ""))
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
    for folder in sorted(p for p in (out / "runs").iterdir() if p.is_dir()):
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


# The live report: rewritten at most once a minute while runs finish, and
# never more often than keeps its cost under 1/LIVE_REPORT_SHARE of one core.
LIVE_REPORT_SECONDS = 60
LIVE_REPORT_SHARE = 60
POLL_SECONDS = 1.0


class _Watcher(threading.Thread):
    """While runs train: reads how far each running run is (the tail of its
    metrics file) and tells ``events``; and with ``live``, rewrites
    ``summary.csv`` and the report of the runs finished so far."""

    def __init__(self, sweep: Sweep, out: Path, todo, events, live):
        super().__init__(name="harness-sweep-watch", daemon=True)
        self.sweep, self.out, self.ids, self.events, self.live = sweep, out, [r for r, _ in todo], events, live
        self.ended, self.seen, self.finished = set(), {}, 0
        self.reported, self.next_report = 0, time.monotonic() + LIVE_REPORT_SECONDS
        self.rewrites, self.rewrite_seconds = 0, 0.0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.wait(POLL_SECONDS):
            for run_id in self.ids:
                it = None if run_id in self.ended else store.last_iteration(self.out / "runs" / run_id)
                if it is not None and it != self.seen.get(run_id):
                    self.seen[run_id] = it
                    self.events.advanced(run_id, it)
            if self.live and self.finished > self.reported and time.monotonic() >= self.next_report:
                self.rewrite_report()

    def rewrite_report(self):
        from .report import write_report

        t, self.reported = time.monotonic(), self.finished
        try:
            write_summary(self.sweep, self.out)
            write_report(self.out)  # says it is partial: this sweep holds the lock
        except Exception:
            pass  # a partial report is a convenience; the final one reports its own errors
        took = time.monotonic() - t
        self.rewrites, self.rewrite_seconds = self.rewrites + 1, self.rewrite_seconds + took
        self.next_report = time.monotonic() + max(LIVE_REPORT_SECONDS, LIVE_REPORT_SHARE * took)

    def stop(self):
        self.halt.set()
        if self.is_alive():
            self.join()


def _run_meta(sweep: Sweep):
    """``{run_id: {"point", "trial", "role"}}`` of a tuned sweep's search and
    possible confirmation runs (empty without [tune])."""
    if sweep.tune is None:
        return {}
    meta = {r: m for r, m in zip(sweep.run_ids, sweep.meta) if m}
    for (point, trial), runs in sweep.confirm.items():
        meta.update({r: {"point": point, "trial": trial, "role": "confirm"} for r, _ in runs})
    return meta


def _execute(sweep: Sweep, out: Path, todo, est, events: Events, live, stop_at=None):
    """Train ``todo`` on the sweep's backend (to ``stop_at`` only, when
    given: the runs pause there); returns the failed runs' statuses.

    If the backend itself loses a worker (it cannot happen to an isolated
    run, but can on Dask), the runs that worker had in flight are recorded
    as failed and the rest are submitted again."""
    from joblib import delayed, parallel_config

    if not todo:
        return []
    client = _dask_client(sweep.scheduler) if sweep.backend == "dask" else None
    isolate = client is None and "fork" in multiprocessing.get_all_start_methods()
    failed, pending = [], list(todo)
    # Runs read their thread count from this file as they go: when fewer runs
    # are left than workers, the ones still going take over the idle cores.
    threads_file = None if client else out / ".threads"
    owner = None if client else Owner.me(out)
    watcher = _Watcher(sweep, out, todo, events, live)

    def record(status):
        watcher.ended.add(status["run_id"])
        if status["status"] is None:
            events.paused(status["run_id"], status["paused_at"])
        else:
            watcher.finished += 1
            if parse(status["status"]).is_failure():
                failed.append(status)
            for warning in status.get("warnings", ()):
                events.note(f"warning: run {status['run_id']}: {warning}")
            events.finished(status)
        left = len(todo) - len(watcher.ended)
        if threads_file is not None and left:
            running = min(planmod.jobs(sweep, len(todo)), left)
            _tell_threads(threads_file, planmod.threads_per_run(running))

    events.started(est, todo, _run_meta(sweep))
    watcher.start()
    try:
        with parallel_config(backend="dask") if client else contextlib.nullcontext():
            while pending:
                parallel, threads = _parallel(sweep, len(pending))  # inside, so joblib sees the dask backend
                if threads_file is not None:
                    _tell_threads(threads_file, threads)
                tasks = (delayed(_worker)(cfg, str(out / "runs" / run_id), threads, isolate,
                                          threads_file and str(threads_file), owner,
                                          {"record": {"estimated_seconds": est.whole(run_id)},
                                           "checkpoint_seconds": sweep.schedule.checkpoint_seconds,
                                           "stop_at": stop_at})
                         for run_id, cfg in pending)
                try:
                    for status in parallel(tasks):
                        record(status)
                    break
                except Exception as e:  # a backend fault, not a run's (runs record their own)
                    pending = _fail_lost_runs(pending, out, e, record, watcher.ended)
    finally:
        watcher.stop()
        events.closed()
        if watcher.rewrites:
            events.note(f"live report: rewritten {count(watcher.rewrites, 'time')}, "
                        f"{watcher.rewrite_seconds:.1f} s in all")
        if client is not None:
            client.close()
    return failed


def _tell_threads(threads_file: Path, threads: int):
    """Tell the running runs how many threads to use. Advisory: a failed
    write (a full disk) leaves them at their count, and is no run's fault."""
    with contextlib.suppress(OSError, HarnessError):
        store.atomic_write_text(threads_file, f"{threads}\n")


def _fail_lost_runs(pending, out: Path, error, record, ended=()):
    """After a backend fault: the runs it cut short (started, unfinished,
    not ``ended``: a paused run ended its part) are recorded failed; returns
    the runs still to submit. Re-raises ``error`` if no run was cut short
    (then it is not a worker's loss)."""
    lost = [r for r, _ in pending if r not in ended and store.read_status(out / "runs" / r) is None
            and (out / "runs" / r / "config.json").exists()]
    if not lost:
        raise error
    for run_id in lost:
        status = {"status": RunStatus.FAILED.value, "run_id": run_id,
                  "reason": f"worker lost: {type(error).__name__}: {error}".splitlines()[0]}
        store.write_status(out / "runs" / run_id, status)
        record(status)
    return [(r, c) for r, c in pending if r not in ended and store.read_status(out / "runs" / r) is None]


def summary_row(run_dir: Path, planned: RunConfig | None = None):
    """One summary.csv row from a finished run folder, or None. A run that
    failed before writing its ``config.json`` (in setup: loading data,
    allocating) is described by ``planned``, its settings in the grid,
    with no row counts."""
    status = store.read_status(run_dir)
    if status is None:
        return None
    try:
        conf = store.read_json(run_dir / "config.json")
    except FileNotFoundError:
        if planned is None:
            raise
        conf = {}
    cfg = RunConfig.from_saved(conf) if conf else planned
    counts = _rows_of(cfg, conf) if conf else (None, None, None)
    m = min(cfg.batch_size or counts[0], counts[0]) if conf else None
    row = {
        "run_id": status.get("run_id", run_dir.name),
        "status": status["status"],
        "layers": cfg.layers_str,
        "depth": cfg.depth,
        "width": cfg.width,
        "n_params": mlp.n_params(cfg.layers),
        "flops_per_iter": None if m is None else mlp.flops_per_iter(cfg.layers, m),
        **dict(zip(("n_train", "n_val", "n_test"), counts)),
    }
    for key, value in cfg.to_dict().items():
        if key not in ("layers", "seed"):
            row[key] = value
    row["seed"] = cfg.seed
    if cfg.path:  # the bundled dataset's name would mislead
        row["dataset"] = Path(cfg.path).name
    row.update({k: status.get(k) for k in SUMMARY_LAST if k != "seed"})
    row["estimated_seconds"] = conf.get("estimated_seconds")
    return row


def _rows_of(cfg: RunConfig, conf: dict):
    """(training, validation, held-out test) rows of a run; runs recorded
    before config.json had n_test get it from the data."""
    if "n_test" in conf:
        return conf["n_train"], conf["n_val"], conf["n_test"]
    from .data import load_source, row_counts

    return row_counts(load_source(cfg.dataset, cfg.path or None, cfg.label_column or None), cfg.train_size,
                      cfg.validation)


def write_summary(sweep: Sweep, out: Path) -> pd.DataFrame:
    """Write ``summary.csv`` for the grid's runs that finished (in grid
    order); a tuned sweep's rows say each run's grid point, trial and role
    (search or confirm)."""
    import pandas as pd  # here, not at the top: a sweep's workers import this module and need no pandas

    rows = []
    for run_id, cfg, meta in tuning.all_runs(sweep, out):
        row = summary_row(out / "runs" / run_id, cfg)
        if row is not None:
            rows.append({**row, **meta})
    frame = pd.DataFrame(rows)
    text = frame.to_csv(index=False) if rows else ",".join(SUMMARY_FIRST + SUMMARY_LAST) + "\n"
    manifest.write_sealed(out / "summary.csv", text)
    return frame


def _percent(fraction):
    import pandas as pd

    return "n/a" if pd.isna(fraction) else f"{100 * fraction:.2f}%"


def print_outcome(summary: pd.DataFrame, out: Path):
    if summary.empty:
        return
    ok = summary[in_comparison(summary.status)].sort_values("final_val_acc", ascending=False)
    top = ok.head(10)
    shown = top[["run_id", "layers", "seed", "status"]].assign(
        **{"train acc": [_percent(v) for v in top.final_train_acc], "val acc": [_percent(v) for v in top.final_val_acc],
           "s/iter": [f"{v:.4f}" for v in top.median_iter_seconds]})
    print(shown.to_string(index=False))
    counts = ", ".join(f"{n} {status}" for status, n in summary.status.value_counts().items())
    print(f"{count(len(summary), 'run')}: {counts}; summary in {out / 'summary.csv'}")
