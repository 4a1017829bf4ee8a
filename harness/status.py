"""A run's status: one vocabulary, and the questions asked of it.

The summary, the report, resume and the command line all ask here, so a
run is finished, or counts in a comparison, in one sense everywhere.
"""
from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    DONE = "done"                # trained to the end
    DIVERGED = "diverged"        # loss NaN/inf or over 100x its first value: a result
    FAILED = "failed"            # raised, timed out, or its process died
    INTERRUPTED = "interrupted"  # Ctrl-C reached it mid-run
    STOPPED = "stopped"          # stopped early on purpose (successive halving)

    def is_finished(self) -> bool:
        """A resumed sweep keeps it rather than training it again."""
        return self in (RunStatus.DONE, RunStatus.DIVERGED, RunStatus.STOPPED)

    def in_comparison(self) -> bool:
        """Its accuracy enters means, intervals and tests. A diverged run
        does (its setting diverges: that is the comparison's business);
        partial runs (failed, interrupted, stopped) never do."""
        return self in (RunStatus.DONE, RunStatus.DIVERGED)

    def is_failure(self) -> bool:
        """The sweep lists it at the end and exits 1."""
        return self is RunStatus.FAILED


NAMES = tuple(s.value for s in RunStatus)


class RunState(str, Enum):
    """Where a planned run stands before it has a status: what ``harness
    status`` and a partial report count beside the statuses above."""
    RUNNING = "running"            # a live sweep is training it
    CHECKPOINTED = "checkpointed"  # started, no sweep running, a resume continues it from its checkpoint
    CUT_SHORT = "cut short"        # started, no sweep running, no checkpoint: a resume starts it over
    WAITING = "waiting"            # not started yet
    DAMAGED = "damaged"            # its record fails its manifest: not believed, a resume redoes it
    NOT_NEEDED = "not needed"      # racing decided its variant before this seed's round: never trained


class Role(str, Enum):
    """What a run of a tuned sweep is for (summary.csv's ``role``)."""
    SEARCH = "search"    # one trial of a grid point's draws, ranked on validation
    CONFIRM = "confirm"  # the selected trial trained again on new seeds


def is_paused(record) -> bool:
    """A run's returned record says it paused at ``paused_at`` (a halving
    rung) rather than ended: it has no status yet, and continues later."""
    return record.get("status") is None and "paused_at" in record


# every name a run can be counted under, in the order reports list them
STATES = NAMES + tuple(s.value for s in RunState)


def parse(value) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise ValueError(f"unknown run status {value!r}; one of {', '.join(NAMES)}") from None


def finished(value) -> bool:
    return value is not None and parse(value).is_finished()


def mask(values, *statuses):
    """A boolean mask over status names (a summary's column): which are one
    of ``statuses``. Ask here rather than comparing a column with a member:
    pandas does not match a ``str`` Enum against the strings it stands for,
    so ``summary.status == RunStatus.DONE`` is False for every run."""
    import numpy as np

    names = {RunStatus(s).value for s in statuses}
    return np.array([v in names for v in values], dtype=bool)


def in_comparison(values):
    """A boolean mask over status names: which runs a comparison uses."""
    import numpy as np

    return np.array([parse(v).in_comparison() for v in values], dtype=bool)
