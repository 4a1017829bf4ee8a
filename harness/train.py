"""One training run: the loop that streams metric rows, and the function that
runs it into a run folder."""
from __future__ import annotations

import contextlib
import functools
import math
import os
import resource
import socket
import statistics
import time
import traceback
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from . import __version__, data as datamod, mlp, store
from .config import RunConfig, check_fits
from .optim import lr_at, make_optimizer
from .parallel import Threads
from .status import RunStatus


# A loss this many times the first one counts as diverged. The fused softmax
# keeps the loss finite even when a far-too-high lr blows the logits up, so
# NaN alone would not catch it.
DIVERGE_FACTOR = 100


class RunTimeout(Exception):
    """A run went past its ``timeout``."""


def _batches(m, batch_size, rng):
    """Endless minibatch index arrays: a fresh shuffle per epoch; the last,
    smaller batch of an epoch is kept so every example is seen."""
    while True:
        order = rng.permutation(m)
        for start in range(0, m, batch_size):
            yield order[start:start + batch_size]


def total_iterations(cfg: RunConfig, n_train: int) -> int:
    """Training steps of a run: ``iterations``, or ``epochs`` passes of batches."""
    if not cfg.epochs:
        return cfg.iterations
    per_epoch = math.ceil(n_train / cfg.batch_size) if cfg.batch_size else 1
    return cfg.epochs * per_epoch


def train_steps(params, cfg: RunConfig, split: datamod.Split, pool=None):
    """Train ``params`` in place and yield one metrics row per iteration.

    ``train_loss`` and ``train_acc`` come from the step's own forward pass
    (before its update), as in the article; ``val_acc`` is measured after the
    update every ``eval_every`` iterations and at the last one, and is None
    otherwise. ``iter_seconds`` times the step (batch, forward, backward,
    update) only. A diverging loss ends the loop after yielding its row.
    With ``early_stopping``, training stops after that many evaluations
    without a better validation accuracy, and ``params`` are left at their
    best evaluation. ``pool`` (a :class:`harness.parallel.Threads`) runs row
    chunks and the update's blocks in parallel.
    """
    X, y = split.X_train, split.y_train
    m = len(X)
    total = total_iterations(cfg, m)
    opt = make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay, cfg.momentum)
    batches = None
    if cfg.batch_size and cfg.batch_size < m:
        batches = _batches(m, cfg.batch_size, np.random.default_rng([cfg.seed, 1]))
    limit = math.inf  # set from the first loss
    keeper = _EarlyStopping(cfg.early_stopping) if cfg.early_stopping else None
    start = time.perf_counter()
    for it in range(1, total + 1):
        t0 = time.perf_counter()
        idx = None if batches is None else next(batches)
        yb = y if idx is None else y[idx]
        loss, grads, P = mlp.forward_backward(params, X, y, cfg.activation, cfg.article_bias_grad, pool,
                                              cfg.dropout, (cfg.seed, 2, it), rows=idx)
        finite = loss <= limit  # False for NaN and inf too
        if it == 1 and finite:
            limit = DIVERGE_FACTOR * max(loss, math.log(P.shape[1]))
        if finite:
            lr = lr_at(it, total, cfg.lr, cfg.lr_schedule, cfg.lr_step_every, cfg.lr_gamma, cfg.warmup)
            opt.step(params, grads, lr, pool)
        t1 = time.perf_counter()
        row = {
            "iteration": it,
            "train_loss": loss,
            "train_acc": float(np.mean(np.argmax(P, axis=1) == yb)),
            "val_acc": None,
            "iter_seconds": t1 - t0,
        }
        stop = False
        if finite and (it % cfg.eval_every == 0 or it == total):
            row["val_acc"] = mlp.accuracy(params, split.X_val, split.y_val, cfg.activation, pool)
            if keeper is not None:
                kept, stop = keeper.update(row["val_acc"], params)
                if kept:
                    row["kept"] = True  # status only, like "diverged"
        row["elapsed_seconds"] = time.perf_counter() - start
        if cfg.timeout and row["elapsed_seconds"] > cfg.timeout and it < total:
            raise RunTimeout(f"still running after {cfg.timeout:g} s, at iteration {it} of {total}")
        if not finite:
            row["diverged"] = True  # status only; not a metrics.csv column
        if keeper is not None and (stop or it == total):
            keeper.restore(params)
        yield row
        if not finite or stop:
            return


class _EarlyStopping:
    """Keeps the parameters of the best evaluation so far, and says when
    ``patience`` evaluations have passed without a better one."""

    def __init__(self, patience):
        self.patience, self.best, self.since, self.params = patience, -1.0, 0, None

    def update(self, acc, params):
        """``(kept, stop)`` after an evaluation with accuracy ``acc``."""
        if acc > self.best:
            self.best, self.since = acc, 0
            self.params = [(W.copy(), b.copy()) for W, b in params]
            return True, False
        self.since += 1
        return False, self.since >= self.patience

    def restore(self, params):
        """Put the kept parameters back into ``params`` (in place)."""
        if self.params is not None:
            for (W, b), (bW, bb) in zip(params, self.params):
                W[...] = bW
                b[...] = bb


def summarize(rows):
    """Final figures of a run from its metric rows."""
    last = rows[-1] if rows else {}
    vals = [r["val_acc"] for r in rows if r["val_acc"] is not None]
    diverged = bool(last.get("diverged"))
    kept = [r for r in rows if r.get("kept")]  # early stopping keeps its best evaluation
    final = kept[-1] if kept else last
    return {
        "status": (RunStatus.DIVERGED if diverged else RunStatus.DONE).value,
        "reason": (f"loss {last['train_loss']:.4g} at iteration {last['iteration']}: not finite or over "
                   f"{DIVERGE_FACTOR}x the first loss") if diverged else "",
        "iterations_run": len(rows),
        "kept_iteration": final.get("iteration"),
        "final_train_acc": last.get("train_acc"),
        "final_val_acc": final["val_acc"] if kept else (vals[-1] if vals else None),
        "best_val_acc": max(vals) if vals else None,
        "final_train_loss": last.get("train_loss"),
        "median_iter_seconds": statistics.median(r["iter_seconds"] for r in rows) if rows else None,
        "total_seconds": last.get("elapsed_seconds"),
    }


def confusion(y_true, y_pred, n_classes):
    """Counts ``C: (n_classes, n_classes)``, ``C[i, j]`` = examples of class i predicted as j."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def blas_info():
    """(library, threads) of the BLAS numpy uses in this process."""
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            return lib.get("internal_api"), lib.get("num_threads")
    return None, None


def prepare(cfg: RunConfig, source=None):
    """Load and check the data for ``cfg``; raises HarnessError on bad input.
    Returns ``(source, split)``."""
    if source is None:
        source = datamod.load_source(cfg.dataset, cfg.path or None)
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


def run(cfg: RunConfig, out_dir, source=None, threads=None, on_row=None, threads_file=None, record=None):
    """Train ``cfg`` into the folder ``out_dir`` and return its status record.

    Bad input (data that does not fit) raises before anything is written.
    An exception during training is recorded: ``error.txt`` holds the
    traceback and the status is ``failed``. ``status.json`` is written last,
    so a folder without it is an unfinished run. ``threads`` (default: all
    cores) is the number of threads the run computes with: BLAS is held to
    one thread and row chunks run on a pool of ``threads``, so the numbers do
    not depend on it; ``threads_file`` lets a sweep change it as the run goes.
    ``on_row`` sees each metrics row as it is logged; ``record`` (a dict)
    is added to ``config.json``.
    """
    source, split = prepare(cfg, source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_id = cfg.run_id(source.fingerprint)
    threads = threads or os.cpu_count() or 1
    rows = []
    pool = Threads(threads, threads_file)
    with threadpool_limits(1, user_api="blas"), contextlib.closing(pool):
        store.atomic_write_json(out / "config.json",
                                {**_config_record(cfg, source, split, run_id, threads), **(record or {})})
        writer = store.MetricsWriter(out)
        try:
            params = mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype)
            for row in train_steps(params, cfg, split, pool):
                writer.write(row)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
            writer.finish()
            store.save_params(out / "params.npz", params)
            status = summarize(rows)
            if status["status"] == RunStatus.DONE:
                status.update(_final_evaluation(params, cfg, split, source, out, pool))
        except RunTimeout as e:
            writer.close()
            status = {**summarize(rows), "status": RunStatus.FAILED.value, "reason": f"timeout: {e}"}
        except Exception as e:
            writer.close()
            store.atomic_write_text(out / "error.txt", traceback.format_exc())
            status = {**summarize(rows), "status": RunStatus.FAILED.value,
                      "reason": f"{type(e).__name__}: {e}".splitlines()[0]}
        except KeyboardInterrupt:
            # Marked, so the folder says what happened; a resumed sweep redoes it.
            writer.close()
            store.write_status(out, {**summarize(rows), "status": RunStatus.INTERRUPTED.value,
                                     "reason": "interrupted (Ctrl-C)", "run_id": run_id})
            raise
    status["run_id"] = run_id
    status["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    store.write_status(out, status)
    return status


def _config_record(cfg: RunConfig, source, split, run_id, threads):
    """``config.json``: the resolved settings, the data's rows and where the run computes."""
    blas, blas_threads = blas_info()
    return {
        **cfg.to_dict(),
        "run_id": run_id,
        "data_fingerprint": source.fingerprint,
        "n_train": len(split.y_train),
        "n_val": len(split.y_val),
        "n_test": 0 if split.y_test is None else len(split.y_test),
        "total_iterations": total_iterations(cfg, len(split.y_train)),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "numpy": np.__version__,
        "blas": blas,
        "blas_threads": blas_threads,
        "threads": threads,
        "harness": __version__,
        "cpu": cpu_model(),
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
