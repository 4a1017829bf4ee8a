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

    def is_paused(self) -> bool:
        """Never: a status is what a run that ended writes."""
        return False


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
    PAUSED = "paused"              # a run's returned record only: saved at its stop_at (a halving rung), never on disk

    def is_finished(self) -> bool:
        """None of these is: a resumed sweep trains it (on, or again)."""
        return False

    def is_paused(self) -> bool:
        """Stopped at its ``stop_at`` with more to train: the executor tells
        the strategy, which continues it later from its checkpoint."""
        return self is RunState.PAUSED


class Role(str, Enum):
    """What a run of a tuned sweep is for (summary.csv's ``role``)."""
    SEARCH = "search"    # one trial of a grid point's draws, ranked on validation
    CONFIRM = "confirm"  # the selected trial trained again on new seeds


def state_of(record) -> RunStatus | RunState:
    """What a run's returned record says it is: a status, or paused."""
    value = record["status"]
    return RunState.PAUSED if value == RunState.PAUSED else parse(value)


def paused_record(run_id, iteration) -> dict:
    """The record a run returns when it pauses at ``iteration``."""
    return {"run_id": run_id, "status": RunState.PAUSED.value, "paused_at": iteration}


def is_paused(record) -> bool:
    """A run's returned record says it paused at ``paused_at`` (a halving
    rung) rather than ended: it has no status yet, and continues later."""
    return state_of(record).is_paused()


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
