"""One training run into its run folder: the data prepared, the loop
(:mod:`harness.loop`) run, its rows, checkpoints, status and final
evaluation written, whatever fails recorded."""
from __future__ import annotations

import contextlib
import functools
import os
import resource
import socket
import traceback
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import __version__, blas, data as datamod, mlp, store
from .checkpoint import Checkpoints, continue_from, unusable
from .config import RunConfig, check_fits
from .errors import HarnessError, LinkRefused
from .loop import RunTimeout, Training, confusion, summarize, total_iterations
from .parallel import Threads
from .signals import INTERRUPTED_BY
from .status import RunStatus, is_paused, paused_record


def prepare(cfg: RunConfig, source=None):
    """Load and check the data for ``cfg``; raises HarnessError on bad input.
    Returns ``(source, split)``."""
    if source is None:
        source = datamod.load_source(cfg.dataset, cfg.path or None, cfg.label_column or None)
    check_fits(cfg, source.n_features, source.n_classes)
    split = _cached_split(source, cfg.train_size or None, cfg.validation, cfg.data_seed, cfg.dtype)
    return source, split


@functools.lru_cache(maxsize=2)
def _cached_split(source, train_size, validation, data_seed, dtype):
    """A sweep worker trains many runs on the same rows: scale them once.
    The arrays are made read-only, since every run shares them."""
    split = datamod.split(source, train_size, validation, data_seed, dtype)
    for arr in vars(split).values():
        if arr is not None:
            arr.flags.writeable = False
    return split


def run(cfg: RunConfig, out_dir, source=None, threads=None, on_row=None, threads_file=None, record=None,
        checkpoint_seconds=0.0, stop_at=None):
    """Train ``cfg`` into the folder ``out_dir`` and return its status record.

    Whatever fails, setup included (loading the data, allocating the
    network, reading a checkpoint), is recorded: ``error.txt`` holds the
    traceback and the status is ``failed`` with a one-line reason (callers
    that want bad input refused first call :func:`prepare` themselves).
    ``status.json`` is written last, so a folder without it is an
    unfinished run. ``threads`` (default: all cores) is the number of
    threads the run computes with: BLAS is held to one thread and row
    chunks run on a pool of ``threads``, so the numbers do not depend on
    it; ``threads_file`` lets a sweep change it as the run goes.
    ``on_row`` sees each metrics row as it is logged; ``record`` (a dict)
    is added to ``config.json``. With ``checkpoint_seconds``, the run's
    state is saved that often to ``checkpoint.npz``, and a run folder
    holding one continues from it to exactly the numbers an uninterrupted
    run reaches (its metrics rows after the checkpoint are dropped first).
    With ``stop_at``, training pauses at that iteration: the state is saved,
    no status is written, and the record returned is paused
    (:func:`harness.status.paused_record`, with ``paused_at``); running it
    again continues it.
    """
    out = Path(out_dir)
    if out.is_symlink():
        raise LinkRefused(f"{out}: a symbolic link; results are never written through links (remove it)")
    out.mkdir(parents=True, exist_ok=True)
    rows, state = [], {"run_id": out.name, "writer": None, "saver": None}
    threads = threads or os.cpu_count() or 1
    pool = Threads(threads, threads_file)
    try:
        with threadpool_limits(1, user_api="blas"), contextlib.closing(pool):
            status = _train(cfg, out, source, threads, pool, rows, state, on_row, record, checkpoint_seconds, stop_at)
        if is_paused(status):
            return status  # paused at stop_at
    except RunTimeout as e:
        _close(state)
        status = {**summarize(rows), "status": RunStatus.FAILED.value, "reason": f"timeout: {e}"}
    except Exception as e:
        _close(state)
        with contextlib.suppress(Exception):  # the traceback is a help; the status below is the record
            store.atomic_write_text(out / "error.txt", traceback.format_exc())
        status = {**summarize(rows), "status": RunStatus.FAILED.value,
                  "reason": f"{type(e).__name__}: {e}".splitlines()[0] if not isinstance(e, HarnessError) else str(e)}
    except KeyboardInterrupt:
        # Marked, so the folder says what happened; a resumed sweep continues it.
        _close(state)
        store.write_status(out, {**summarize(rows), "status": RunStatus.INTERRUPTED.value,
                                 "reason": f"interrupted ({INTERRUPTED_BY['signal']})", "run_id": state["run_id"]})
        raise
    status["run_id"] = state["run_id"]
    if state.get("saver") is not None and state["saver"].warnings:
        status["warnings"] = state["saver"].warnings
    status["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    store.write_status(out, status)
    (out / store.CHECKPOINT).unlink(missing_ok=True)  # finished: nothing to continue
    return status


def _close(state):
    if state["writer"] is not None:
        state["writer"].close()


def _train(cfg, out: Path, source, threads, pool, rows, state, on_row, record, checkpoint_seconds, stop_at):
    """:func:`run`'s setup and loop; fills ``rows`` as it goes, so a failure
    keeps what was measured. Returns the status (a paused record when paused)."""
    source, split = prepare(cfg, source)
    run_id = state["run_id"] = cfg.run_id(source.fingerprint)
    training = Training(mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype), cfg, split, pool)
    kept = continue_from(out, run_id, training)
    if kept is None:  # a checkpoint that failed half-way through loading: from the start
        training = Training(mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype), cfg, split, pool)
    rows += kept or []
    store.atomic_write_json(out / "config.json", {**_config_record(cfg, source, split, run_id, threads), **(record or {})})
    writer = state["writer"] = store.MetricsWriter(out, keep=rows)
    saver = state["saver"] = Checkpoints(out, run_id, training, checkpoint_seconds)
    for row in training.rows(stop_at):
        writer.write(row)
        rows.append(row)
        saver.maybe_save(row)
        if on_row is not None:
            on_row(row)
    if training.paused:
        writer.close()
        saver.save(rows[-1])
        return paused_record(run_id, training.it)
    writer.finish()
    return _finished(training.params, cfg, split, source, out, pool, rows)


def _finished(params, cfg, split, source, out, pool, rows):
    """The status of a run whose loop ended: its parameters saved, and the
    final evaluation when it is done (not diverged)."""
    store.save_params(out / "params.npz", params)
    status = summarize(rows)
    if status["status"] == RunStatus.DONE:
        status.update(_final_evaluation(params, cfg, split, source, out, pool))
    return status


def checkpoint_problem(cfg: RunConfig, out, run_id, source=None):
    """Why the checkpoint in ``out`` cannot continue ``cfg``'s run (one
    line), or None when it can, or there is none. A sweep asks before it
    plans to continue a run; a run asks again before it loads one."""
    _, split = prepare(cfg, source)
    return unusable(Path(out), run_id, Training(mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype),
                                                 cfg, split))


def _config_record(cfg: RunConfig, source, split, run_id, threads):
    """``config.json``: the resolved settings, the data's rows and where the run computes."""
    return {
        **cfg.to_dict(),
        "run_id": run_id,
        "data_fingerprint": source.fingerprint,
        "scaling": source.scaling,
        "n_train": len(split.y_train),
        "n_val": len(split.y_val),
        "n_test": 0 if split.y_test is None else len(split.y_test),
        "total_iterations": total_iterations(cfg, len(split.y_train)),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "numpy": np.__version__,
        **blas.blas_info(),  # not in the run id: a run's id is its settings and data
        "blas_layouts": blas.layouts_record(cfg.dtype),  # which way round each product went to BLAS
        "threads": threads,
        "harness": __version__,
        "cpu": blas.cpu_model(),
        "cores": os.cpu_count(),
    }


def _final_evaluation(params, cfg: RunConfig, split, source, out, pool):
    """The figures of a finished run: training loss and accuracy on every
    training row (the metric rows' are per batch), the one test evaluation
    when the test split was held out, and the validation confusion matrix."""
    loss, acc = mlp.evaluate(params, split.X_train, split.y_train, cfg.activation, pool)
    figures = {"final_train_loss": loss, "final_train_acc": acc}
    if split.X_test is not None:
        # Held out from selection: evaluated once, here, with the kept parameters.
        figures["test_acc"] = mlp.accuracy(params, split.X_test, split.y_test, cfg.activation, pool)
    predicted = mlp.predict(params, split.X_val, cfg.activation, pool)
    store.save_confusion(out / "confusion.csv", confusion(split.y_val, predicted, source.n_classes))
    return figures
