"""SIGTERM, as sent by ``timeout``, ``docker stop``, SLURM or ``kill``, is
handled like Ctrl-C: running runs are marked interrupted, the sweep says
how to resume, and the exit status is 143 (128 + 15) instead of 130.

Ctrl-C reaches every process of the terminal's group at once. SIGTERM may
reach the main process alone (``kill PID``, ``docker stop``), or every
process (``timeout``, SLURM). So the main process passes either on to its
descendants and waits (a few seconds at most) for the runs' processes to
mark their runs before it stops the workers, and every process turns
SIGTERM into the KeyboardInterrupt it already handles for Ctrl-C.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

EXIT_SIGTERM = 128 + signal.SIGTERM
EXIT_SIGINT = 128 + signal.SIGINT
# How long the main process waits, after passing SIGTERM on, for the runs'
# processes to mark their runs interrupted and exit.
MARK_SECONDS = 10.0

_state = {"terminated": False}
# What interrupted this process, for an interrupted run's reason.
INTERRUPTED_BY = {"signal": "Ctrl-C"}


def terminated() -> bool:
    """Whether this process was stopped by SIGTERM (rather than Ctrl-C)."""
    return _state["terminated"]


def exit_status() -> int:
    return EXIT_SIGTERM if terminated() else EXIT_SIGINT


def _children_map():
    """``{parent pid: [child pids]}`` of every process, from /proc."""
    kids = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def descendants(pid=None):
    """``(children, grandchildren and below)`` of ``pid`` (default: this process)."""
    kids = _children_map()
    first = kids.get(pid or os.getpid(), [])
    below, todo = [], list(first)
    while todo:
        more = kids.get(todo.pop(), [])
        below += more
        todo += more
    return first, below


def _signal(pids, sig):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _on_stop_main(signum, frame):
    """The main process's SIGTERM or SIGINT: pass it on to the runs'
    processes (a worker's children: Ctrl-C reached them already, a SIGTERM
    may not have), give them a moment to mark their runs, then stop with the
    KeyboardInterrupt the sweep handles. Repeats are ignored meanwhile; later
    SIGTERMs too (a scheduler's SIGKILL follows if it runs out of patience),
    while a second Ctrl-C can still break a hang."""
    signal.signal(signum, signal.SIG_IGN)
    if signum == signal.SIGTERM:
        _state["terminated"] = True
        INTERRUPTED_BY["signal"] = "SIGTERM"
    _, below = descendants()
    _signal(below, signum)  # the runs' processes; the workers wait for them (a second signal mid-start-up
    # makes loky print a traceback), and are stopped by the sweep afterwards
    deadline = time.monotonic() + MARK_SECONDS
    while below and time.monotonic() < deadline:  # the runs' processes (a worker's children)
        time.sleep(0.05)
        below = [p for p in below if _alive(p)]
    if signum == signal.SIGINT:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _on_sigterm_helper(signum, frame):
    """A worker's or a run's SIGTERM: the SIGINT that Ctrl-C would have sent
    (held while SIGINT is blocked, as Ctrl-C's would be). Once: the main
    process passes on a SIGTERM that may have reached this one already."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _state["terminated"] = True
    INTERRUPTED_BY["signal"] = "SIGTERM"
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a background job's: `sweep ... &` in a script
        signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGINT)


@contextlib.contextmanager
def sigterm_as_interrupt(main=True):
    """Within: SIGTERM interrupts like Ctrl-C. ``main``: the process that
    starts the others, which passes both on (see :func:`_on_stop_main`);
    a SIGINT it ignores (a background job's) stays ignored. Only the main
    thread can set a handler; elsewhere (a Dask worker's thread) this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_stop_main if main else _on_sigterm_helper)}
    if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, _on_stop_main)
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def ignoring_sigterm():
    """Within: SIGTERM is ignored (the sweep is already stopping)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _once(signum, frame):
    """A run process's SIGINT: one KeyboardInterrupt, so that a second
    signal (Ctrl-C's own and the main process's) cannot cut its mark short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def in_run_process():
    """In a run's forked process, for its whole life: SIGTERM is its SIGINT,
    and its SIGINT interrupts once."""
    signal.signal(signal.SIGINT, _once)
    signal.signal(signal.SIGTERM, _on_sigterm_helper)


def _reset_in_child():
    """A process forked from the main one (the calibration's pool) is not the
    main process: it does not pass signals on, and multiprocessing stops it
    with SIGTERM, which must simply end it."""
    if signal.getsignal(signal.SIGTERM) is _on_stop_main:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is _on_stop_main:
        signal.signal(signal.SIGINT, signal.default_int_handler)


os.register_at_fork(after_in_child=_reset_in_child)
