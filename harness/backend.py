"""Where a sweep's runs train: one object per backend, ``of(sweep)``.

:class:`Local` (joblib/loky workers on this machine) and :class:`Dask` (a
cluster's threads) each own their worker count, the threads a run computes
with, how runs are submitted, and the isolated-child policy; nothing else
asks which backend a sweep has."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from typing import TYPE_CHECKING

from .errors import ConfigError
from .words import count

if TYPE_CHECKING:
    from .grid import Sweep


def jobs(sweep: Sweep, n_tasks: int) -> int:
    """Local workers for ``n_tasks`` runs."""
    want = (os.cpu_count() or 1) if sweep.jobs == -1 else sweep.jobs
    return max(1, min(want, n_tasks))


def threads_per_run(running: int) -> int:
    """Runs x threads <= cores: no oversubscription, and no idle core either."""
    return max(1, (os.cpu_count() or 1) // max(1, running))


def dask_workers(address):
    """Threads of the Dask cluster at ``address`` (one run each), or None
    when it cannot be reached in a few seconds."""
    try:
        from dask.distributed import Client

        with Client(address, timeout="5s") as client:
            return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or None
    except Exception:  # noqa: BLE001 - no dask, no scheduler: the estimate says it assumed
        return None


# After a SIGKILL of the sweep, loky's resource tracker (a process that
# outlives it) unlinks the semaphores and memory-mapping folders the sweep
# could not release, and warns about each as "leaked" on the terminal: the
# cleanup is right, the warnings are noise. The tracker takes its warning
# filters from this process's -W options when it starts.
_TRACKER_QUIET = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"


class Local:
    """joblib/loky workers on this machine, ``[sweep] jobs`` of them. Runs
    share the cores (threads per run = cores / runs, retold as runs end),
    watch the sweep's main process, and train in a forked child each where
    fork exists, so a run that dies fails alone."""

    name = "loky"
    local = True

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.isolate = "fork" in multiprocessing.get_all_start_methods()

    def workers(self, n_tasks, say=None) -> int:  # nothing to probe, nothing to say
        return jobs(self.sweep, n_tasks)

    def threads(self, running) -> int:
        return threads_per_run(running)

    @contextlib.contextmanager
    def session(self, say=None):
        """Around a batch of submissions: nothing to open locally."""
        yield None

    def parallel(self, n_tasks):
        """The joblib Parallel object for ``n_tasks`` runs, and threads per run."""
        from joblib import Parallel

        if _TRACKER_QUIET not in sys.warnoptions:
            sys.warnoptions.append(_TRACKER_QUIET)
        n = jobs(self.sweep, n_tasks)
        return Parallel(n_jobs=n, backend="loky", return_as="generator_unordered"), threads_per_run(n)


class Dask:
    """A Dask cluster's threads, one run each (start its workers with
    ``--nthreads 1`` per core). Its workers may be other machines: they
    cannot watch the sweep's main process nor share a disk with it: a run
    trains in the worker itself, and sends its record back to the sweep,
    which writes it (:mod:`harness.remote_runs`)."""

    name = "dask"
    local = False
    isolate = False

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.found = None
        self.probed = False

    def workers(self, n_tasks, say=None) -> int:
        """The cluster's threads, asked once; the sweep's jobs when it
        cannot be reached, or must not be (a dry run without ``--probe``),
        which ``say`` hears, once."""
        if not self.probed and _offline:
            self.probed = True
            if say:
                say(f"dask: a dry run does not contact the scheduler {self.sweep.scheduler} (--probe asks it "
                    f"for its workers): estimating for {count(jobs(self.sweep, n_tasks), 'worker')}")
        if not self.probed:
            announce(self.sweep.scheduler, say)
            self.found, self.probed = dask_workers(self.sweep.scheduler), True
            if self.found is None and say:
                say(f"dask scheduler {self.sweep.scheduler} not reachable: estimating for "
                    f"{count(jobs(self.sweep, n_tasks), 'worker')}")
        return self.found or jobs(self.sweep, n_tasks)

    def threads(self, running) -> int:  # one per run, whatever runs
        return 1

    @contextlib.contextmanager
    def session(self, say=None):
        """A client of the scheduler (named to ``say`` first), with
        distributed's own logging held to errors that are not ours to tell:
        a lost scheduler is told in one line by the sweep."""
        import logging

        announce(self.sweep.scheduler, say)
        client = _dask_client(self.sweep.scheduler)
        loggers = [logging.getLogger(n) for n in ("distributed", "distributed.client", "distributed.core")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=3)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


_offline = False
_announced = set()


@contextlib.contextmanager
def offline(yes=True):
    """Within: no scheduler is contacted for its workers (a dry run without --probe)."""
    global _offline
    before, _offline = _offline, yes
    try:
        yield
    finally:
        _offline = before


def announce(address, say):
    """Name the scheduler about to be contacted, once per process: its
    protocol carries pickles, so the user sees which peer is trusted."""
    if say and address not in _announced:
        _announced.add(address)
        say(f"dask: connecting to the scheduler at {address}")


def _dask_client(address):
    """A client of ``address``; TLS and other security settings come from
    dask.config (``distributed.comm.tls.*``, a ``tls://`` address) as for any
    Dask client."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError("backend 'dask' needs dask.distributed: pip install 'harness[dask]'") from None
    try:
        return Client(address, timeout="20s")
    except Exception as e:  # noqa: BLE001 - unreachable, refused, or its security settings refuse it
        why = f"{type(e).__name__}: {e}".splitlines()[0]
        raise ConfigError(f"cannot connect to the dask scheduler at {address}: {why}") from None


REGISTRY = {b.name: b for b in (Local, Dask)}


def of(sweep: Sweep):
    """The backend object of ``sweep`` (``[sweep] backend``, checked by the grid file)."""
    return REGISTRY[sweep.backend](sweep)
