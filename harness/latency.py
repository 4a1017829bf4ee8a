"""Inference latency per example, measured once per architecture per sweep.

The forward pass (logits, no softmax) of an architecture, on one BLAS thread,
at batch 1 and at :data:`LARGE_BATCH`: the median of a few repeats, each a
loop of calls long enough to time, after a warm-up call. About
:data:`SECONDS` of measuring per architecture and batch (more only when one
call takes longer). The figures are stored in the sweep folder
(:data:`FILE`), written once: a report read again, or regenerated, finds
them there and measures nothing; a file is rewritten only when an
architecture it lacks is measured.
"""
from __future__ import annotations

import io
import math
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import mlp, store

FILE = "latency.csv"   # in the sweep folder; the one place its name is spelt
LARGE_BATCH = 1024
SECONDS = 0.05         # of timing per architecture and batch (plus a warm-up call)
REPEATS = 5
COLUMNS = ("layers", "dtype", "batch_1_s", "batch_large_s", "large_batch")


def forward_call(layers, batch, dtype="float32", seed=0):
    """A callable running the forward pass of ``layers`` on ``batch`` random
    rows ``(batch, layers[0])``, serial (no row-chunk pool)."""
    params = mlp.init_params(layers, seed=seed, dtype=dtype)
    X = np.random.default_rng(seed).random((batch, layers[0])).astype(dtype)
    return lambda: mlp.logits(params, X)


def seconds_per_call(fn, seconds=SECONDS, repeats=REPEATS, clock=time.perf_counter):
    """Median seconds of one call of ``fn`` over ``repeats`` loops of calls
    that together take about ``seconds`` (one call each when a call is longer)."""
    start = clock()
    fn()  # warm-up: the first call pays for page faults and BLAS start-up
    once = max(clock() - start, 1e-7)
    calls = max(1, int(seconds / repeats / once))
    times = []
    for _ in range(repeats if once * repeats <= 10 * seconds else 1):
        start = clock()
        for _ in range(calls):
            fn()
        times.append((clock() - start) / calls)
    return statistics.median(times)


def measure(layers, dtype="float32", seconds=SECONDS):
    """``(batch 1, large batch)`` seconds per example of one architecture,
    on one BLAS thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        one = seconds_per_call(forward_call(layers, 1, dtype), seconds)
        large = seconds_per_call(forward_call(layers, LARGE_BATCH, dtype), seconds) / LARGE_BATCH
    return one, large


def read(folder):
    """The stored figures of ``folder`` as a frame of :data:`COLUMNS`
    (empty when there are none, or the file is unreadable: measured again)."""
    path = Path(folder) / FILE
    try:
        frame = pd.read_csv(path, dtype={"layers": str, "dtype": str})
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=list(COLUMNS))
    return frame if set(COLUMNS) <= set(frame.columns) else pd.DataFrame(columns=list(COLUMNS))


def _stored(folder):
    return {(r.layers, r.dtype): (float(r.batch_1_s), float(r.batch_large_s)) for r in read(folder).itertuples()}


def ensure(folder, archs, measure_fn=measure, sources=()):
    """The figures of every ``(layers text, dtype)`` of ``archs`` for the
    sweep ``folder``: those stored there, then those stored in ``sources``
    (the sweeps a comparison reads: their figures, not new ones), and the
    rest measured now (with ``measure_fn`` None, left NaN); the file is
    written only when it gained any.
    Returns ``{(layers, dtype): (batch 1 s, large batch s per example)}``."""
    known = _stored(folder)
    missing = sorted({a for a in archs if a not in known})
    for source in sources:
        found = _stored(source)
        for a in [a for a in missing if a in found and a not in known]:
            known[a] = found[a]
    if measure_fn is None:  # a sweep still running: its workers would slow the measurement, and it would stick
        return {a: known.get(a, (math.nan, math.nan)) for a in archs}
    for layers, dtype in [a for a in missing if a not in known]:
        known[(layers, dtype)] = measure_fn([int(n) for n in layers.split("-")], dtype)
    if missing:
        rows = [{"layers": k[0], "dtype": k[1], "batch_1_s": v[0], "batch_large_s": v[1], "large_batch": LARGE_BATCH}
                for k, v in sorted(known.items())]
        buf = io.StringIO()
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(buf, index=False)
        try:
            store.atomic_write_text(Path(folder) / FILE, buf.getvalue())
        except OSError:
            pass  # a read-only folder: the report refuses it anyway, and measures again next time
    return {a: known[a] for a in archs}
