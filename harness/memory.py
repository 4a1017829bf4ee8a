"""Memory a run needs at the least, and the refusal of one that cannot fit.

A layer of width 10^7 on MNIST needs tens of GiB. Started anyway, it dies
in its worker (a MemoryError, or the kernel's OOM killer) long after the
sweep began. The estimate is a lower bound (only what a run must hold at
once), so it never refuses a run that would fit; it refuses, before
anything is written, a run that needs more than the machine has.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import mlp
from .config import RunConfig
from .errors import ConfigError

# Vectors of the parameters' size a run holds while it trains, besides the
# parameters and one gradient: the optimizer's state (see harness.optim).
OPTIMIZER_VECTORS = {"gd": 0, "sgd": 0, "momentum": 1, "adam": 3}
GiB = 1 << 30


def needed(cfg: RunConfig, n_train: int, n_rows: int) -> int:
    """Bytes a run of ``cfg`` holds at once while it trains, at the least:
    its parameters, one gradient, the optimizer's state, early stopping's
    copy of the best parameters, one chunk's activations, and the data's
    ``n_rows`` rows (of which ``n_train`` train) in the run's dtype."""
    item = np.dtype(cfg.dtype).itemsize
    vectors = 2 + OPTIMIZER_VECTORS.get(cfg.optimizer, 0) + (1 if cfg.early_stopping else 0)
    batch = min(cfg.batch_size or n_train, n_train)
    chunk = mlp._chunks(batch, cfg.layers)[0] if batch else slice(0, 0)
    rows = chunk.stop - chunk.start
    activations = rows * sum(cfg.layers[1:])
    return item * (vectors * mlp.n_params(cfg.layers) + activations + n_rows * cfg.layers[0])


def _meminfo(key):
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit():
    """The memory limit of this process's cgroup (a container's), if any."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def available() -> int | None:
    """Bytes this machine can give a process at most: its memory and swap,
    or its cgroup's limit if lower. None when it cannot be told."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = _meminfo("MemTotal")
    if total is None:
        return None
    total += _meminfo("SwapTotal") or 0
    limit = _cgroup_limit()
    return min(total, limit) if limit else total


def refusal(cfg: RunConfig, n_train: int, n_rows: int, where: str, limit=None) -> str | None:
    """The one-line refusal of a run that cannot fit in ``limit`` bytes
    (default: :func:`available`), or None."""
    limit = available() if limit is None else limit
    need = needed(cfg, n_train, n_rows)
    if limit is None or need <= limit:
        return None
    return (f"{where}: run {cfg.layers_str} ({cfg.optimizer}, {cfg.dtype}) needs at least {need:,} bytes of "
            f"memory ({need / GiB:.1f} GiB: parameters, gradient, optimizer state, one chunk's activations "
            f"and the data), more than this machine's {limit / GiB:.1f} GiB; make it smaller")


def check_sweep(sweep, limit=None):
    """Refuse (ConfigError) the sweep's first run that cannot fit."""
    from .plan import rows_of

    limit = available() if limit is None else limit
    seen = set()
    for cfg in sweep.runs:
        key = (cfg.layers, cfg.optimizer, cfg.dtype, cfg.batch_size, bool(cfg.early_stopping),
               cfg.dataset, cfg.path, cfg.train_size, cfg.validation)
        if key in seen:
            continue
        seen.add(key)
        rows = rows_of(cfg)
        message = refusal(cfg, rows.train, rows.train + rows.val + rows.test, str(sweep.path), limit)
        if message:
            raise ConfigError(message)
