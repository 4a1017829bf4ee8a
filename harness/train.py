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
from .errors import ConfigError, DiskFull, HarnessError, LinkRefused
from .optim import lr_at, make_optimizer
from .parallel import Threads
from .signals import INTERRUPTED_BY
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


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def numpy_blas():
    """threadpoolctl's record of the BLAS numpy itself calls, or None. Other
    packages (scipy) may load a BLAS of their own: numpy's is the one in its
    wheel's folders when there is one there, else the first found."""
    found = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    home = Path(np.__file__).resolve().parent
    own = [lib for lib in found if Path(lib.get("filepath") or "/").resolve().parent
           in (home, home.with_name("numpy.libs"))]
    return (own or found or [None])[0]


def blas_info():
    """``{"blas", "blas_version", "blas_kernel", "blas_threads"}`` of the BLAS
    numpy uses in this process (None where unknown). The kernel is the CPU
    code path OpenBLAS chose (``OPENBLAS_CORETYPE`` changes it): results are
    bit-identical for one kernel, and may differ in the last bits across two."""
    lib = numpy_blas() or {}
    return {"blas": lib.get("internal_api"), "blas_version": lib.get("version"),
            "blas_kernel": lib.get("architecture"), "blas_threads": lib.get("num_threads")}


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
    no status is written, and the record returned has ``status`` None and
    ``paused_at``; running it again continues it.
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
        if status["status"] is None:
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
    keeps what was measured. Returns the status (``None`` when paused)."""
    source, split = prepare(cfg, source)
    run_id = state["run_id"] = cfg.run_id(source.fingerprint)
    training = Training(mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype), cfg, split, pool)
    kept = _continue_from_checkpoint(out, run_id, training)
    if kept is None:  # a checkpoint that failed half-way through loading: from the start
        training = Training(mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype), cfg, split, pool)
    rows += kept or []
    store.atomic_write_json(out / "config.json", {**_config_record(cfg, source, split, run_id, threads), **(record or {})})
    writer = state["writer"] = store.MetricsWriter(out, keep=rows)
    saver = state["saver"] = _Checkpoints(out, run_id, training, checkpoint_seconds)
    for row in training.rows(stop_at):
        writer.write(row)
        rows.append(row)
        saver.maybe_save(row)
        if on_row is not None:
            on_row(row)
    if training.paused:
        writer.close()
        saver.save(rows[-1])
        return {"run_id": run_id, "status": None, "paused_at": training.it}
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
    return _unusable(Path(out), run_id, Training(mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype),
                                                 cfg, split))


def _unusable(out: Path, run_id, training: Training, saved=None):
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
        return f"it lacks {sorted(missing)[0]}"
    if not isinstance(it, int) or not 0 < it <= training.total:
        return f"its iteration {it!r} is not one of this run's"
    return None


ANY_KERNEL = "HARNESS_ANY_KERNEL"


def kernel_refusal(out: Path, meta):
    """Why the checkpoint in ``out`` (its ``meta``) must not be continued by
    this process (one line), or None. Its state was computed under one
    OpenBLAS kernel; another picks other layouts (mlp.LAYOUTS) and rounds
    the last bits otherwise, so the run would not be the one it started as.
    ``HARNESS_ANY_KERNEL=1`` continues it anyway."""
    then = meta.get("blas_kernel") or _recorded_kernel(out)
    now = mlp.blas_kernel()
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


def _continue_from_checkpoint(out: Path, run_id, training: Training):
    """Load the folder's checkpoint into ``training`` when it is this run's
    and its metrics rows reach it; returns those rows (none otherwise, and
    None when loading failed half-way: ``training`` must be made again).
    A checkpoint that does not fit is removed: the run starts over."""
    saved = store.load_checkpoint(out)
    if _unusable(out, run_id, training, saved):
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


class _Checkpoints:
    """Saves a run's state every ``seconds`` (0: never)."""

    def __init__(self, out, run_id, training, seconds):
        self.out, self.run_id, self.training, self.seconds = out, run_id, training, seconds
        self.last, self.warnings = time.monotonic(), []

    def maybe_save(self, row):
        if self.seconds and time.monotonic() - self.last >= self.seconds and self.training.it < self.training.total:
            self.try_save(row)

    def save(self, row):
        arrays, meta = self.training.state(elapsed=row["elapsed_seconds"])
        store.save_checkpoint(self.out, arrays, {**meta, "run_id": self.run_id, "blas_kernel": mlp.blas_kernel()})
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
        **blas_info(),  # not in the run id: a run's id is its settings and data
        "blas_layouts": mlp.layouts_record(cfg.dtype),  # which way round each product went to BLAS
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
