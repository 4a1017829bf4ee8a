"""The executor: trains a list of runs on the sweep's backend (joblib/loky
or Dask), records each as it ends, and while they train, a watcher thread
that follows their progress and rewrites the live report."""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from . import backend as backends
from . import layout, store
from .errors import BackendLost, HarnessError
from .events import Events
from .grid import Sweep
from .ownership import Owner
from .status import Role, RunStatus, is_paused, parse
from .summary import write_summary
from .words import count
from .worker import RunRequest, train_in_worker

# The live report: rewritten at most once a minute while runs finish, and
# never more often than keeps its cost under 1/LIVE_REPORT_SHARE of one core.
LIVE_REPORT_SECONDS = 60
LIVE_REPORT_SHARE = 60
POLL_SECONDS = 1.0


class Watcher(threading.Thread):
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
                it = None if run_id in self.ended else store.last_iteration(layout.run_dir(self.out, run_id))
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


def run_meta(sweep: Sweep):
    """``{run_id: {"point", "trial", "role"}}`` of a tuned sweep's search and
    possible confirmation runs (empty without [tune])."""
    if sweep.tune is None:
        return {}
    meta = {r: m for r, m in zip(sweep.run_ids, sweep.meta) if m}
    for (point, trial), runs in sweep.confirm.items():
        meta.update({r: {"point": point, "trial": trial, "role": Role.CONFIRM.value} for r, _ in runs})
    return meta


def execute(sweep: Sweep, out: Path, todo, est, events: Events, live, stop_at=None):
    """Train ``todo`` on the sweep's backend (to ``stop_at`` only, when
    given: the runs pause there); returns the failed runs' statuses.

    If the backend itself loses a worker (it cannot happen to an isolated
    run, but can on Dask), the runs that worker had in flight are recorded
    as failed and the rest are submitted again."""
    if not todo:
        return []
    backend = backends.of(sweep)
    with backend.session(events.note) as client:
        if backend.local:
            failed = _train(backend, sweep, out, todo, est, events, live, stop_at)
        else:
            failed = _train_remote(client, sweep, out, todo, est, events, live, stop_at)
    check_records(out, todo)
    return failed


def check_records(out: Path, todo):
    """Raise :class:`BackendLost` (one line) unless every run of ``todo``
    left its record in the sweep folder: a status, or the checkpoint of a
    pause. A sweep never reports success for results that went elsewhere."""
    missing = [r for r, _ in todo if not (layout.run_dir(out, r) / store.STATUS).exists()
               and not (layout.run_dir(out, r) / store.CHECKPOINT).exists()]
    if missing:
        raise BackendLost(f"{count(len(missing), 'run')}' records did not reach {out} (first: {missing[0]}); "
                          "nothing was recorded for them: run the sweep again")


def _train_remote(client, sweep: Sweep, out: Path, todo, est, events: Events, live, stop_at):
    """:func:`execute` on a Dask cluster: the workers send each run's
    record back, and this process writes it (:mod:`harness.remote_runs`)."""
    from .remote_runs import RemoteRuns

    failed = []
    watcher = Watcher(sweep, out, todo, events, live)
    record = _recorder(backends.of(sweep), todo, events, watcher, failed, None)
    events.started(est, todo, run_meta(sweep))
    runs = RemoteRuns(client, sweep, out, events.note)
    watcher.start()
    try:
        for i, (run_id, cfg) in enumerate(todo):
            request = RunRequest(est.whole(run_id), sweep.schedule.checkpoint_seconds, stop_at)
            runs.submit(run_id, cfg, request, priority=len(todo) - i)  # costliest first, as locally
        for status in runs.completed():
            record(status)
    finally:
        runs.close()
        watcher.stop()
        events.closed()
    return failed


def _train(backend, sweep: Sweep, out: Path, todo, est, events: Events, live, stop_at):
    """:func:`execute` inside the backend's session."""
    from joblib import delayed

    failed, pending = [], list(todo)
    # Runs read their thread count from this file as they go: when fewer runs
    # are left than workers, the ones still going take over the idle cores.
    threads_file = out / layout.THREADS
    owner = Owner.me(out)
    watcher = Watcher(sweep, out, todo, events, live)
    record = _recorder(backend, todo, events, watcher, failed, threads_file)
    events.started(est, todo, run_meta(sweep))
    watcher.start()
    try:
        while pending:
            parallel, threads = backend.parallel(len(pending))
            if threads_file is not None:
                _tell_threads(threads_file, threads)
            tasks = (delayed(train_in_worker)(cfg, str(layout.run_dir(out, run_id)), threads, backend.isolate,
                                              threads_file and str(threads_file), owner,
                                              RunRequest(est.whole(run_id), sweep.schedule.checkpoint_seconds, stop_at))
                     for run_id, cfg in pending)
            try:
                for status in parallel(tasks):
                    record(status)
                break
            except Exception as e:  # a backend fault, not a run's (runs record their own)
                pending = fail_lost_runs(pending, out, e, record, watcher.ended)
    finally:
        watcher.stop()
        events.closed()
        if watcher.rewrites:
            events.note(f"live report: rewritten {count(watcher.rewrites, 'time')}, "
                        f"{watcher.rewrite_seconds:.1f} s in all")
    return failed


def _recorder(backend, todo, events: Events, watcher, failed, threads_file):
    """What is done as each run's status comes back: told, counted, the
    failed kept, and the runs still going given the idle cores."""
    def record(status):
        watcher.ended.add(status["run_id"])
        if is_paused(status):
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
            running = min(backend.workers(len(todo)), left)
            _tell_threads(threads_file, backend.threads(running))
    return record


def _tell_threads(threads_file: Path, threads: int):
    """Tell the running runs how many threads to use. Advisory: a failed
    write (a full disk) leaves them at their count, and is no run's fault."""
    with contextlib.suppress(OSError, HarnessError):
        store.atomic_write_text(threads_file, f"{threads}\n")


def fail_lost_runs(pending, out: Path, error, record, ended=()):
    """After a backend fault: the runs it cut short (started, unfinished,
    not ``ended``: a paused run ended its part) are recorded failed; returns
    the runs still to submit. Re-raises ``error`` if no run was cut short
    (then it is not a worker's loss)."""
    lost = [r for r, _ in pending if r not in ended and store.read_status(layout.run_dir(out, r)) is None
            and (layout.run_dir(out, r) / "config.json").exists()]
    if not lost:
        raise error
    for run_id in lost:
        status = {"status": RunStatus.FAILED.value, "run_id": run_id,
                  "reason": f"worker lost: {type(error).__name__}: {error}".splitlines()[0]}
        store.write_status(layout.run_dir(out, run_id), status)
        record(status)
    return [(r, c) for r, c in pending if r not in ended and store.read_status(layout.run_dir(out, r)) is None]
