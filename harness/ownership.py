"""Who may write in a sweep's folder: the sweep's lock, and no orphans.

A sweep's main process may die by any signal (SIGKILL, an OOM kill, a closed
terminal). Its workers and their run processes then stop by themselves:
each watches the main process (pid and start time, so a reused pid does
not fool it) and exits within WATCH_SECONDS. And each holds a shared lock on
``.writers`` while it may write; a new sweep takes ``.lock`` and then waits
for an exclusive lock on ``.writers``, so it never races a writer of the old
one. Local only: Dask workers on other machines cannot see the main
process (see the README)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import store
from .errors import ConfigError

from .layout import WRITERS  # noqa: E402
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


def watch_owner(owner: Owner | None, new_process=False):
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
def writing(owner: Owner | None):
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


def wait_for_old_writers(out: Path, say):
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
