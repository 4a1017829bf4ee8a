"""One run in a worker process: trained there, or in a forked child of it
(the isolated-child policy: a child that dies fails its run alone), with
the sweep's main process watched (:mod:`harness.ownership`)."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from . import signals, store
from .config import RunConfig
from .errors import HarnessError
from .ownership import watch_owner, writing
from .signals import INTERRUPTED_BY
from .status import RunStatus, paused_record
from .train import prepare
from .train import run as train_run


@dataclass(frozen=True)
class RunRequest:
    """What the sweep asks of a run beyond its config, folder and threads:
    its estimate (recorded in config.json), how often it checkpoints, and
    where it pauses (``stop_at``, a halving rung; None: to its end)."""

    estimated_seconds: float | None
    checkpoint_seconds: float
    stop_at: int | None = None

    def train(self, cfg: RunConfig, run_dir, threads, threads_file, on_row=None):
        """:func:`harness.train.run` of this request, in this process
        (``on_row``: see there; a remote run's courier listens on it)."""
        return train_run(cfg, run_dir, threads=threads, threads_file=threads_file,
                         record={"estimated_seconds": self.estimated_seconds},
                         checkpoint_seconds=self.checkpoint_seconds, stop_at=self.stop_at, on_row=on_row)


def train_in_worker(cfg: RunConfig, run_dir: str, threads: int, isolate: bool, threads_file, owner,
                    request: RunRequest):
    """One run, in a worker process. Data is loaded (and cached) by the
    worker itself; only the small config crosses the process boundary.

    With ``isolate``, the run trains in a forked child, which inherits the
    worker's loaded data: if the child dies (killed, out of memory), that run
    alone is recorded as failed and the worker carries on. ``owner`` (the
    sweep's main process) is watched: when it dies, this process and the
    run's exit without writing more."""
    watch_owner(owner)
    with writing(owner), signals.sigterm_as_interrupt(main=False):
        try:
            return _worker_run(cfg, run_dir, threads, isolate, threads_file, owner, request)
        except Exception as e:  # noqa: BLE001 - this run's fault alone: never the backend's, nor another run's
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


def _worker_run(cfg: RunConfig, run_dir: str, threads: int, isolate: bool, threads_file, owner, request):
    """:func:`train_in_worker`'s run, in this process or a forked child."""
    if not isolate:
        return request.train(cfg, run_dir, threads, threads_file)
    with contextlib.suppress(Exception):  # a failure here is the run's: its child meets it again and records it
        prepare(cfg)  # load before forking, so the worker keeps the data for its next runs
    child = multiprocessing.get_context("fork").Process(target=_child,
                                                        args=(cfg, run_dir, threads, threads_file, owner, request))
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
        return paused_record(Path(run_dir).name, saved["iteration"])
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


def _child(cfg, run_dir, threads, threads_file, owner, request):
    """The run, in a forked child. SIGINT arrives blocked (see _worker_run) and is
    let through only around the run itself, so Ctrl-C during the child's
    start-up or shutdown never prints multiprocessing's traceback; a
    pending one is taken then and ends the child with status 130."""
    try:
        try:
            signals.in_run_process()
            watch_owner(owner, new_process=True)  # threads do not survive a fork; this one keeps SIGINT blocked
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            request.train(cfg, run_dir, threads, threads_file)
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except KeyboardInterrupt:
        os._exit(130)  # the run folder says "interrupted"; no traceback from every child
    except Exception:  # noqa: BLE001
        os._exit(1)  # the run could not record its end (its folder gone, a full disk): its worker does
