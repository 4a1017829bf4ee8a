"""What a sweep tells its caller as it goes (:class:`Events`); low, so the
sweep, its executor and the progress display all import it."""
from __future__ import annotations


class Events:
    """What a sweep tells its caller as it goes. The caller decides what to
    show (see :mod:`harness.progress`); these do nothing. ``advanced`` comes
    from a watcher thread, the others from the sweep's main thread."""

    def note(self, text):
        """A line for the user: where results go, what is kept or redone."""

    def warning(self, text):
        """A line the user must see even when notes are not shown: a run
        that failed, an error that kept the report from being written, how
        to resume an interrupted sweep."""

    def started(self, estimate, todo, meta=None):
        """Training begins: ``todo`` is ``[(run_id, cfg), ...]``; ``meta``
        maps a tuned sweep's run ids to their point, trial and role."""

    def added(self, estimate, todo, meta=None):
        """More runs (``todo``, priced by ``estimate``) joined those training."""

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
