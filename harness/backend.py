"""Where a sweep's runs train: local workers (joblib/loky) or a Dask cluster,
how many of them, and the threads each run computes with."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

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
    except Exception:  # no dask, no scheduler: the estimate says it assumed
        return None

