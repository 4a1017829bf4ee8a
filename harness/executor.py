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
        with contextlib.suppress(Exception):  # a partial report is a convenience; the final one reports its own errors
            write_summary(self.sweep, self.out)
            write_report(self.out)  # says it is partial: this sweep holds the lock
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
    given: the runs pause there); returns the failed runs' statuses."""
    if not todo:
        return []
    with Executor(sweep, out, events, live) as executor:
        executor.submit(todo, est, stop_at)
        for _ in executor.completed():
            pass
    return executor.failed


class Executor:
    """Trains runs on the sweep's backend as a strategy hands them over:
    :meth:`submit` takes runs at any time, also while :meth:`completed` is
    being iterated. On Dask they start at once (:mod:`harness.remote_runs`);
    locally, runs submitted meanwhile start as the next batch of loky
    workers once the batch before them has ended. As a context manager it
    opens the backend's session and the watcher, and at its end checks that
    every run's record arrived (:func:`check_records`).

    Locally, if the backend itself loses a worker (it cannot happen to an
    isolated run), the runs that worker had in flight are recorded as
    failed and the rest are submitted again."""

    def __init__(self, sweep: Sweep, out: Path, events: Events, live):
        self.sweep, self.out, self.events, self.live = sweep, out, events, live
        self.backend = backends.of(sweep)
        self.failed, self.submitted, self.queue = [], {}, []
        self.remote = self.est = None
        # Local runs read their thread count from this file as they go: when fewer
        # runs are left than workers, the ones still going take over the idle cores.
        self.threads_file = out / layout.THREADS if self.backend.local else None
        self.watcher = Watcher(sweep, out, [], events, live)
        self.record = _recorder(self.backend, self.submitted, events, self.watcher, self.failed, self.threads_file)

    def __enter__(self):
        self.stack = contextlib.ExitStack()
        client = self.stack.enter_context(self.backend.session(self.events.note))
        if not self.backend.local:
            from .remote_runs import RemoteRuns

            self.remote = RemoteRuns(client, self.sweep, self.out, self.events.note)
        return self

    def submit(self, todo, est, stop_at=None):
        """Runs ``[(run_id, cfg)]`` to train (to ``stop_at``), priced by ``est``."""
        ids = [r for r, _ in todo]
        self.watcher.ended.difference_update(ids)
        self.submitted.update(todo)
        self.watcher.ids += [r for r in ids if r not in self.watcher.ids]
        if self.est is None:
            self.est = est
            self.events.started(est, todo, run_meta(self.sweep))
            self.watcher.start()
        else:
            self.events.added(est, todo, run_meta(self.sweep))
        requests = [(r, c, RunRequest(est.whole(r), self.sweep.schedule.checkpoint_seconds, stop_at)) for r, c in todo]
        if self.remote is None:
            self.queue += requests
            return
        for i, (run_id, cfg, request) in enumerate(requests):
            self.remote.submit(run_id, cfg, request, priority=len(requests) - i)  # costliest first, as locally

    def completed(self):
        """Each run's status as it ends, recorded (told, counted, the failed kept)."""
        if self.remote is not None:
            for status in self.remote.completed():
                self.record(status)
                yield status
            return
        while self.queue:
            batch, self.queue = self.queue, []
            yield from self._local(batch)

    def _local(self, batch):
        """A batch of ``[(run_id, cfg, request)]`` on loky workers."""
        from joblib import delayed

        owner, requests = Owner.me(self.out), {r: q for r, _, q in batch}
        pending = [(r, c) for r, c, _ in batch]
        while pending:
            parallel, threads = self.backend.parallel(len(pending))
            _tell_threads(self.threads_file, threads)
            tasks = (delayed(train_in_worker)(cfg, str(layout.run_dir(self.out, run_id)), threads,
                                              self.backend.isolate, str(self.threads_file), owner, requests[run_id])
                     for run_id, cfg in pending)
            try:
                for status in parallel(tasks):
                    self.record(status)
                    yield status
                break
            except Exception as e:  # noqa: BLE001 - a backend fault, not a run's (runs record their own)
                pending = fail_lost_runs(pending, self.out, e, self.record, self.watcher.ended)

    def __exit__(self, kind, error, trace):
        try:
            if self.remote is not None:
                self.remote.close()
        finally:
            if self.watcher.is_alive():
                self.watcher.stop()
            if self.est is not None:
                self.events.closed()
            if self.watcher.rewrites:
                self.events.note(f"live report: rewritten {count(self.watcher.rewrites, 'time')}, "
                                 f"{self.watcher.rewrite_seconds:.1f} s in all")
            self.stack.close()
        if kind is None:  # a run that came back failed was told as such (its folder removed while it ran)
            told = {s["run_id"] for s in self.failed}
            check_records(self.out, [r for r in self.submitted if r not in told])


def check_records(out: Path, runs):
    """Raise :class:`BackendLost` (one line) unless every run of ``runs``
    (run ids) left its record in the sweep folder: a status, or the
    checkpoint of a pause. A sweep never reports success for results that
    went elsewhere."""
    missing = [r for r in runs if not (layout.run_dir(out, r) / store.STATUS).exists()
               and not (layout.run_dir(out, r) / store.CHECKPOINT).exists()]
    if missing:
        raise BackendLost(f"the records of {count(len(missing), 'run')} did not reach {out} (first: {missing[0]}); "
                          "nothing was recorded for them: run the sweep again")


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
