"""A run's checkpoint: whether one fits the run (its id, arrays, iteration
and the OpenBLAS kernel it was computed under), continuing from it, and
saving one every so many seconds."""
from __future__ import annotations

import os
import time
from pathlib import Path

from . import blas, store
from .errors import ConfigError, DiskFull
from .loop import Training


def unusable(out: Path, run_id, training: Training, saved=None):
    """Why ``out``'s checkpoint (``saved``, when already loaded) does not fit
    ``training`` (its run id, every array's name, shape and dtype, its
    iteration), or None when it does or there is none. Loading broadcasts,
    so a near miss must not get that far."""
    if not (out / store.CHECKPOINT).exists():
        return None
    saved = saved or store.load_checkpoint(out)
    if saved is None or not isinstance(saved[1], dict):
        return "unreadable"
    arrays, meta = saved
    if meta.get("run_id") != run_id:
        return f"it is run {meta.get('run_id')}'s"
    refusal = kernel_refusal(out, meta)
    if refusal:
        raise ConfigError(refusal)
    want, _ = training.state()
    kept = {f"kept_{k}": want[k] for k in want if k[0] in "Wb" and k[1:].isdigit()}
    for name, array in arrays.items():
        model = want.get(name, kept.get(name))
        if name == "batch_order":
            fits = (training.batches is not None and array.ndim == 1 and array.dtype.kind == "i"
                    and len(array) in (0, training.batches.m))
        else:
            fits = model is not None and array.shape == model.shape and array.dtype == model.dtype
        if not fits:
            return f"its array {name} ({array.dtype}{list(array.shape)}) does not fit this run"
    missing = set(want) - set(arrays)
    it = meta.get("iteration")
    if missing:
        return f"it lacks {min(missing)}"
    if not isinstance(it, int) or not 0 < it <= training.total:
        return f"its iteration {it!r} is not one of this run's"
    return None


ANY_KERNEL = "HARNESS_ANY_KERNEL"


def kernel_refusal(out: Path, meta):
    """Why the checkpoint in ``out`` (its ``meta``) must not be continued by
    this process (one line), or None. Its state was computed under one
    OpenBLAS kernel; another picks other layouts (blas.LAYOUTS) and rounds
    the last bits otherwise, so the run would not be the one it started as.
    ``HARNESS_ANY_KERNEL=1`` continues it anyway."""
    then = meta.get("blas_kernel") or _recorded_kernel(out)
    now = blas.blas_kernel()
    if not then or then == now or os.environ.get(ANY_KERNEL) == "1":
        return None
    return (f"{out}: its checkpoint was computed under the OpenBLAS kernel {then}, this process runs {now}, "
            f"which would change its numbers; continue it with OPENBLAS_CORETYPE={then}, or set {ANY_KERNEL}=1")


def _recorded_kernel(out: Path):
    """config.json's ``blas_kernel`` (a checkpoint saved before checkpoints
    named theirs), or None."""
    try:
        return store.read_json(out / "config.json").get("blas_kernel")
    except (OSError, ValueError, AttributeError):
        return None


def continue_from(out: Path, run_id, training: Training):
    """Load the folder's checkpoint into ``training`` when it is this run's
    and its metrics rows reach it; returns those rows (none otherwise, and
    None when loading failed half-way: ``training`` must be made again).
    A checkpoint that does not fit is removed: the run starts over."""
    saved = store.load_checkpoint(out)
    if unusable(out, run_id, training, saved):
        (out / store.CHECKPOINT).unlink(missing_ok=True)
        return []
    if saved is None:
        return []
    arrays, meta = saved
    rows = [r for r in store.read_metrics_part(out) if r["iteration"] <= meta["iteration"]]
    if [r["iteration"] for r in rows] != list(range(1, meta["iteration"] + 1)):
        return []  # rows missing: start over
    try:
        training.load(arrays, meta)
    except (KeyError, TypeError, ValueError, IndexError):
        (out / store.CHECKPOINT).unlink(missing_ok=True)
        return None
    kept = meta.get("keeper", {}).get("iteration")
    for row in rows:
        if row["iteration"] == kept:
            row["kept"] = True
    for name in (store.STATUS, "error.txt"):  # an interrupted run's marks
        (out / name).unlink(missing_ok=True)
    return rows


class Checkpoints:
    """Saves a run's state every ``seconds`` (0: never)."""

    def __init__(self, out, run_id, training, seconds):
        self.out, self.run_id, self.training, self.seconds = out, run_id, training, seconds
        self.last, self.warnings = time.monotonic(), []

    def maybe_save(self, row):
        if self.seconds and time.monotonic() - self.last >= self.seconds and self.training.it < self.training.total:
            self.try_save(row)

    def save(self, row):
        arrays, meta = self.training.state(elapsed=row["elapsed_seconds"])
        store.save_checkpoint(self.out, arrays, {**meta, "run_id": self.run_id, "blas_kernel": blas.blas_kernel()})
        self.last = time.monotonic()

    def try_save(self, row):
        """A periodic checkpoint is optional: one that cannot be written is
        a warning in the run's record, and the run goes on."""
        try:
            self.save(row)
        except (OSError, DiskFull) as e:
            self.last = time.monotonic()
            if not self.warnings:
                why = e.strerror if isinstance(e, OSError) and e.strerror else e
                self.warnings.append(f"checkpoint not saved at iteration {row['iteration']} "
                                     f"({why}); the run went on without it")
