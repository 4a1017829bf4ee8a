"""The cost model's calibration: its coefficients measured on this machine
by :func:`calibrate`, which times the real training loop on a handful of
probe networks (a few seconds), and cached per machine, numpy and BLAS
(:func:`machine_model`)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import mlp
from .cost import Model, pass_features, step_features
from .parallel import Packed

CACHE_VERSION = 4  # 4: keyed on what sets the speed only, one file per key
CACHE_FILE = "cost-model.json"  # the first part of each cache file's name: cost-model-<key>.json
# The step probes are timed twice; when the two passes differ by more than
# this (the median over probes, relative), the machine was busy.
NOISE_LIMIT = 0.2

# (layers, rows per step): small minibatch nets where per-call overheads
# dominate, wide and deep ones, and full batches cut into row chunks.
STEP_PROBES = (
    ((784, 10, 10), 128),
    ((784, 32, 10), 64),
    ((784, 128, 128, 10), 128),
    ((784, 64, 64, 64, 64, 64, 10), 128),
    ((784, 512, 256, 10), 128),
    ((784, 512, 512, 512, 10), 256),
    ((784, 1024, 10), 512),
    ((784, 1024, 1024, 10), 128),
    ((784, 10, 10), 8192),
    ((784, 256, 128, 64, 10), 4096),
)
PASS_PROBES = (((784, 128, 10), 6000), ((784, 512, 512, 10), 4096), ((784, 10, 10), 16384))
PROBE_SECONDS = 0.04  # time spent on each probe (after a warm-up step)
CONTENTION_PROBE = ((784, 512, 256, 10), 128)   # compute-bound
MEMORY_PROBE = ((784, 10, 10), 8192)             # streams its rows: memory-bound
CONTENTION_SECONDS = 0.35


# --- calibration ----------------------------------------------------------------

def _probe_step(layers, m, dtype, threads, seconds=PROBE_SECONDS):
    """Median seconds of a training step (Adam) of ``layers`` on ``m`` rows."""
    from threadpoolctl import threadpool_limits

    from .config import RunConfig
    from .data import Split
    from .loop import train_steps
    from .parallel import Threads

    rng = np.random.default_rng(0)
    n = m if m > 2048 else 4096
    X = rng.random((n, layers[0]), dtype=np.float64).astype(dtype)
    y = rng.integers(0, layers[-1], n)
    split = Split(X, y, X[:256], y[:256])
    cfg = RunConfig(layers=layers, iterations=10**6, optimizer="adam", lr=1e-3, dtype=dtype,
                    batch_size=0 if n == m else m, eval_every=10**6)
    params = mlp.init_params(layers, "he", 0, dtype)
    times, start = [], time.perf_counter()
    with threadpool_limits(1, user_api="blas"), Threads(threads) as pool:
        for row in train_steps(params, cfg, split, pool):
            times.append(row["iter_seconds"])
            if len(times) >= 3 and time.perf_counter() - start > seconds:
                break
    return statistics.median(times[1:])


def _probe_pass(layers, n, dtype, threads):
    from threadpoolctl import threadpool_limits

    from .parallel import Threads

    X = np.random.default_rng(0).random((n, layers[0])).astype(dtype)
    y = np.zeros(n, dtype=np.int64)
    params = mlp.init_params(layers, "he", 0, dtype)
    times = []
    with threadpool_limits(1, user_api="blas"), Threads(threads) as pool:
        for _ in range(3):
            t = time.perf_counter()
            mlp.accuracy(params, X, y, "relu", pool)
            times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def _nonnegative_fit(A, t):
    """Least squares ``A @ c ~ t`` in relative error, with ``c >= 0``: the
    most negative coefficient is dropped until none is left."""
    A = A / t[:, None]
    keep = list(range(A.shape[1]))
    while True:
        c, *_ = np.linalg.lstsq(A[:, keep], np.ones(len(t)), rcond=None)
        if (c >= 0).all():
            out = np.zeros(A.shape[1])
            out[keep] = c
            return out
        keep.pop(int(np.argmin(c)))


def _fit(dtype, threads):
    """Coefficients for ``dtype`` on ``threads`` threads, from the probes;
    and the step probes' times."""
    rows, times = [], []
    for layers, m in STEP_PROBES:
        rows.append(step_features(layers, m, threads))
        times.append(_probe_step(layers, m, dtype, threads))
    for layers, n in PASS_PROBES:
        rows.append(pass_features(layers, n, threads))
        times.append(_probe_pass(layers, n, dtype, threads))
    return [float(c) for c in _nonnegative_fit(np.array(rows), np.array(times))], times[:len(STEP_PROBES)]


def disagreement(first, again):
    """How far two passes of the same probes differ: the median over probes
    of the larger time over the smaller, less 1 (0.2 = 20% apart). The
    median, so that one probe caught by a hiccup does not count."""
    return float(statistics.median(max(a, b) / min(a, b) - 1 for a, b in zip(first, again)))


def _update_weights():
    """Each optimizer's update time relative to Adam's (1 thread, float32)."""
    from .optim import OPTIMIZER_CLASSES, make_optimizer

    params = mlp.init_params((784, 256, 10), "he", 0, "float32")
    grads = Packed.like(params, copy=True)  # packed, as the loop's are: no copies in the step
    grads.vector *= 1e-3
    seconds = {}
    for name in OPTIMIZER_CLASSES:
        opt = make_optimizer(name, params, 1e-3)
        times = []
        for _ in range(6):
            t = time.perf_counter()
            opt.step(params, grads, 1e-3, None)
            times.append(time.perf_counter() - t)
        seconds[name] = statistics.median(times[1:])
    return {name: s / seconds["adam"] for name, s in seconds.items()}


def _run_overhead():
    """Seconds of a run beyond its steps and passes: writing its files."""
    from .config import RunConfig
    from .data import Source
    from .train import run

    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (300, 16), dtype=np.uint8), rng.integers(0, 10, 300)
    source = Source("probe", X, y, X[:50], y[:50], 10, "probe")
    cfg = RunConfig(layers=(16, 10), iterations=1, validation=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for i in range(3):
            t = time.perf_counter()
            run(cfg, Path(tmp) / str(i), source=source, threads=1)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _worker_start():
    """Seconds for a new Python to import what a sweep worker runs."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import harness.worker"], check=True, capture_output=True)
    return time.perf_counter() - t


def _contention(cores, probe):
    """A 1-thread step's time with every core running one, over its time
    alone (forked processes, as a sweep's runs are)."""
    import multiprocessing

    if cores <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 1.0
    layers, m = probe
    alone = _probe_step(layers, m, "float32", 1, CONTENTION_SECONDS)
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        together = pool.starmap(_probe_step, [(layers, m, "float32", 1, CONTENTION_SECONDS)] * cores)
    return max(1.0, statistics.median(together) / alone)


def calibrate(cores=None) -> Model:
    """Measure this machine (a few seconds): every dtype on one thread and
    on all ``cores``."""
    cores = cores or os.cpu_count() or 1
    coef, times = {}, {}
    for dtype in mlp.DTYPES:
        for t in sorted({1, cores}):
            coef.setdefault(dtype, {})[str(t)], times[dtype, t] = _fit(dtype, t)
    model = Model(coef, _update_weights(), _run_overhead(), _worker_start(), cores,
                  _contention(cores, CONTENTION_PROBE), _contention(cores, MEMORY_PROBE))
    # The first probes again, at the end: a machine busy for part of the
    # calibration gives two passes that disagree.
    model.noise = disagreement(times["float32", 1], [_probe_step(l, m, "float32", 1) for l, m in STEP_PROBES])
    return model


# --- the cache ------------------------------------------------------------------

def cache_dir() -> Path:
    """Where the calibration is kept: ``$HARNESS_CACHE_DIR``, else the user's
    cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``harness``."""
    if os.environ.get("HARNESS_CACHE_DIR"):
        return Path(os.environ["HARNESS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness"


def blas_identity():
    """The BLAS numpy uses: library, version and CPU kernel (not where its
    file lives: every virtual environment's copy of one build runs alike)."""
    from .blas import numpy_blas

    lib = numpy_blas()
    return None if lib is None else {k: lib.get(k) for k in ("internal_api", "version", "architecture")}


def machine_identity():
    """What sets a calibration's figures: the processor and its cores, numpy
    and the BLAS. A change in any of them makes the cached model stale."""
    from .blas import cpu_model

    return {"version": CACHE_VERSION, "cpu": cpu_model(), "cores": os.cpu_count(), "numpy": np.__version__,
            "blas": blas_identity()}


def cache_path(identity=None) -> Path:
    """The cache file of ``identity`` (default: this machine's): one file
    per identity, so environments with another numpy or BLAS sharing the
    cache folder keep their own calibrations instead of overwriting one."""
    blob = json.dumps(identity or machine_identity(), sort_keys=True).encode()
    stem = CACHE_FILE.removesuffix(".json")
    return cache_dir() / f"{stem}-{hashlib.sha256(blob).hexdigest()[:12]}.json"


def _write_cache(path: Path, record: dict):
    """Write the cache file atomically under a unique temporary name, so
    processes writing at once (several environments, several sweeps) never
    leave half a file or write into each other's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def noise_limit() -> float:
    """:data:`NOISE_LIMIT`, or ``$HARNESS_CALIBRATION_NOISE`` (on a machine
    that is always busy, a higher limit lets a calibration be kept)."""
    try:
        return float(os.environ.get("HARNESS_CALIBRATION_NOISE", NOISE_LIMIT))
    except ValueError:
        return NOISE_LIMIT


def machine_model(say=None) -> Model:
    """This machine's model: from the cache when it was measured for this
    processor, numpy and BLAS; otherwise measured now and cached, unless
    the measurement was noisy (the machine busy): then it is used for this
    command only, with a warning, and measured again next time."""
    identity = machine_identity()
    path = cache_path(identity)
    try:
        cached = json.loads(path.read_text())
        if cached["identity"] == identity:
            return Model(**cached["model"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if say:
        say(f"measuring this machine for time estimates (once; kept in {path})")
    t = time.perf_counter()
    model = calibrate()
    if model.noise > noise_limit():
        if say:
            say(f"warning: the machine was busy while it was measured (two passes differed by "
                f"{100 * model.noise:.0f}%): time estimates may be off; not kept, so measured again next time "
                f"(HARNESS_CALIBRATION_NOISE={max(0.5, round(model.noise + 0.05, 1))} would keep it)")
        return model
    try:
        _write_cache(path, {"identity": identity, "model": model.to_json(),
                            "seconds": round(time.perf_counter() - t, 2), "written": time.time()})
    except OSError as e:
        if say:
            say(f"warning: the calibration could not be kept in {path.parent} ({e.strerror or e})")
    return model
