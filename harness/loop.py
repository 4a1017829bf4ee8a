"""The training loop: one run's iterations as metric rows (a minibatch
order, early stopping, divergence), saved and continued exactly; and the
run's final figures from its rows. No files: :mod:`harness.train` writes
the run folder."""
from __future__ import annotations

import math
import statistics
import time

import numpy as np

from . import data as datamod
from . import mlp
from .config import RunConfig
from .optim import lr_at, make_optimizer
from .status import RunStatus

# A loss this many times the first one counts as diverged. The fused softmax
# keeps the loss finite even when a far-too-high lr blows the logits up, so
# NaN alone would not catch it.
DIVERGE_FACTOR = 100


class RunTimeout(Exception):
    """A run went past its ``timeout``."""


class Batches:
    """Endless minibatch index arrays: a fresh shuffle per epoch; the last,
    smaller batch of an epoch is kept so every example is seen. Its state
    (the generator's and the position in the epoch's order) can be saved
    and restored, so a continued run draws the same batches."""

    def __init__(self, m, batch_size, seed):
        self.m, self.batch_size = m, batch_size
        self.rng = np.random.default_rng([seed, 1])
        self.order, self.start = np.arange(0), m  # the first call shuffles

    def __next__(self):
        if self.start >= self.m:
            self.order, self.start = self.rng.permutation(self.m), 0
        idx = self.order[self.start:self.start + self.batch_size]
        self.start += self.batch_size
        return idx

    def state(self):
        return {"batch_order": self.order}, {"rng": self.rng.bit_generator.state, "start": self.start}

    def load(self, arrays, meta):
        self.order, self.start = arrays["batch_order"].copy(), meta["start"]
        self.rng.bit_generator.state = meta["rng"]


def total_iterations(cfg: RunConfig, n_train: int) -> int:
    """Training steps of a run: ``iterations``, or ``epochs`` passes of batches."""
    if not cfg.epochs:
        return cfg.iterations
    per_epoch = math.ceil(n_train / cfg.batch_size) if cfg.batch_size else 1
    return cfg.epochs * per_epoch


def train_steps(params, cfg: RunConfig, split: datamod.Split, pool=None):
    """Train ``params`` in place and yield one metrics row per iteration
    (see :class:`Training`)."""
    return Training(params, cfg, split, pool).rows()


class Training:
    """One run's training loop: trains ``params`` in place and yields one
    metrics row per iteration; between rows it can be saved
    (:meth:`state`) and a new one continued from that (:meth:`load`) to
    exactly the numbers the first would have reached.

    ``train_loss`` and ``train_acc`` come from the step's own forward pass
    (before its update), as in the article; ``val_acc`` is measured after the
    update every ``eval_every`` iterations and at the last one, and is None
    otherwise. ``iter_seconds`` times the step (batch, forward, backward,
    update) only. A diverging loss ends the loop after yielding its row.
    With ``early_stopping``, training stops after that many evaluations
    without a better validation accuracy, and ``params`` are left at their
    best evaluation. ``pool`` (a :class:`harness.parallel.Threads`) runs row
    chunks and the update's blocks in parallel. The learning-rate schedule
    is over the run's full length, so stopping and continuing never moves it.
    """

    def __init__(self, params, cfg: RunConfig, split: datamod.Split, pool=None):
        self.params, self.cfg, self.split, self.pool = params, cfg, split, pool
        m = len(split.X_train)
        self.total = total_iterations(cfg, m)
        self.opt = make_optimizer(cfg.optimizer, params, cfg.lr, cfg.weight_decay, cfg.momentum)
        self.batches = Batches(m, cfg.batch_size, cfg.seed) if cfg.batch_size and cfg.batch_size < m else None
        self.limit = math.inf  # set from the first loss
        self.keeper = _EarlyStopping(cfg.early_stopping) if cfg.early_stopping else None
        self.it, self.elapsed = 0, 0.0  # iterations done, and their seconds before this process
        self.ended = False  # by divergence or early stopping, before the last iteration

    def rows(self, stop_at=None):
        """Rows from the next iteration to the last (or to ``stop_at``)."""
        start = time.perf_counter()
        for it in range(self.it + 1, min(self.total, stop_at or self.total) + 1):
            row = self._step(it)
            row["elapsed_seconds"] = self.elapsed + time.perf_counter() - start
            self._check_time(row, it)
            stop = row.pop("stop", False)
            self.it = it
            self.ended = bool(row.get("diverged") or stop)
            yield row
            if self.ended:
                return

    @property
    def paused(self):
        """Stopped short of the end by ``stop_at``, with more to train."""
        return self.it < self.total and not self.ended

    def _step(self, it):
        """1. a batch; 2. forward and backward; 3. the update, unless the
        loss diverged; 4. the validation pass when due."""
        cfg, split = self.cfg, self.split
        t0 = time.perf_counter()
        idx = None if self.batches is None else next(self.batches)
        yb = split.y_train if idx is None else split.y_train[idx]
        loss, grads, P = mlp.forward_backward(self.params, split.X_train, split.y_train, cfg.activation,
                                              cfg.article_bias_grad, self.pool, cfg.dropout, (cfg.seed, 2, it),
                                              rows=idx)
        finite = loss <= self.limit  # False for NaN and inf too
        if it == 1 and finite:
            self.limit = DIVERGE_FACTOR * max(loss, math.log(P.shape[1]))
        if finite:
            lr = lr_at(it, self.total, cfg.lr, cfg.lr_schedule, cfg.lr_step_every, cfg.lr_gamma, cfg.warmup)
            self.opt.step(self.params, grads, lr, self.pool)
        row = {"iteration": it, "train_loss": loss, "train_acc": float(np.mean(np.argmax(P, axis=1) == yb)),
               "val_acc": None, "iter_seconds": time.perf_counter() - t0}
        if finite and (it % cfg.eval_every == 0 or it == self.total):
            row["val_acc"] = mlp.accuracy(self.params, split.X_val, split.y_val, cfg.activation, self.pool)
            if self.keeper is not None:
                kept, row["stop"] = self.keeper.update(row["val_acc"], self.params, it)
                if kept:
                    row["kept"] = True  # status only, like "diverged"
        if not finite:
            row["diverged"] = True  # status only; not a metrics.csv column
        if self.keeper is not None and (row.get("stop") or it == self.total):
            self.keeper.restore(self.params)
        return row

    def _check_time(self, row, it):
        if self.cfg.timeout and row["elapsed_seconds"] > self.cfg.timeout and it < self.total:
            raise RunTimeout(f"still running after {self.cfg.timeout:g} s, at iteration {it} of {self.total}")

    def state(self, elapsed=None):
        """``(arrays, meta)``: everything the next iteration depends on
        (parameters, optimizer state, batch order and generator, early
        stopping's best, the divergence limit, the iteration)."""
        arrays = {f"{k}{i}": a for i, pair in enumerate(self.params) for k, a in zip("Wb", pair)}
        arrays.update({f"opt_{k}": a for k, a in self.opt.state().items()})
        meta = {"iteration": self.it, "limit": self.limit,
                "elapsed": self.elapsed if elapsed is None else elapsed}
        if self.batches is not None:
            more, meta["batches"] = self.batches.state()
            arrays.update(more)
        if self.keeper is not None:
            more, meta["keeper"] = self.keeper.state()
            arrays.update(more)
        return arrays, meta

    def load(self, arrays, meta):
        """Continue from :meth:`state`."""
        for i, (W, b) in enumerate(self.params):
            W[...], b[...] = arrays[f"W{i}"], arrays[f"b{i}"]
        self.opt.load({k[4:]: a for k, a in arrays.items() if k.startswith("opt_")})
        self.it, self.limit, self.elapsed = meta["iteration"], meta["limit"], meta["elapsed"]
        if self.batches is not None:
            self.batches.load(arrays, meta["batches"])
        if self.keeper is not None:
            self.keeper.load(arrays, meta["keeper"])


class _EarlyStopping:
    """Keeps the parameters of the best evaluation so far, and says when
    ``patience`` evaluations have passed without a better one."""

    def __init__(self, patience):
        self.patience, self.best, self.since, self.params, self.iteration = patience, -1.0, 0, None, None

    def update(self, acc, params, it):
        """``(kept, stop)`` after an evaluation with accuracy ``acc`` at iteration ``it``."""
        if acc > self.best:
            self.best, self.since, self.iteration = acc, 0, it
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

    def state(self):
        arrays = {} if self.params is None else {f"kept_{k}{i}": a for i, pair in enumerate(self.params)
                                                  for k, a in zip("Wb", pair)}
        return arrays, {"best": self.best, "since": self.since, "iteration": self.iteration}

    def load(self, arrays, meta):
        self.best, self.since, self.iteration = meta["best"], meta["since"], meta["iteration"]
        if meta["iteration"] is not None:
            n = sum(1 for k in arrays if k.startswith("kept_W"))
            self.params = [(arrays[f"kept_W{i}"].copy(), arrays[f"kept_b{i}"].copy()) for i in range(n)]


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
