"""The run's own thread pool, and how work is cut for it.

A batch is cut into fixed row chunks (see :mod:`harness.mlp`) that never
depend on the number of threads; elementwise work over the parameters is
cut into one share per thread, which cannot change a bit either. Threads
only decide who computes which piece, so the numbers are the same for any
pool size. Nothing here imports the rest of the package.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# Elementwise work (the optimizer update, summing chunk gradients) walks a
# thread's share in pieces of this many elements, so that the several passes
# of an update run on data still in cache rather than streaming the whole
# share through memory once per pass; pieces much shorter would make each
# numpy call short enough for the GIL to dominate it.
BLOCK = 1 << 18
# Below this many elements in all, elementwise work stays on one thread:
# numpy calls that short hold the GIL for most of their time, so a second
# thread only waits.
PARALLEL_MIN = 1 << 18


class Threads:
    """The pool that runs a step's pieces: ``map`` like an executor's, and
    ``n``, its size.

    Its size can follow ``follow``, a file holding a thread count that a
    sweep rewrites when workers go idle, so runs still going use the freed
    cores. The pieces are fixed, so the size never changes the numbers."""

    def __init__(self, n, follow=None):
        self.n, self.executor = 0, None
        self.follow = Path(follow) if follow else None
        self.next_check = 0.0
        self.resize(n)

    def resize(self, n):
        if n != self.n:
            if self.executor is not None:
                self.executor.shutdown(wait=True)
            self.executor = ThreadPoolExecutor(n, thread_name_prefix="harness") if n > 1 else None
            self.n = n

    def width(self):
        """The current size, after reading ``follow`` (at most once a second)."""
        if self.follow is not None and time.monotonic() >= self.next_check:
            self.next_check = time.monotonic() + 1.0
            try:
                self.resize(max(1, int(self.follow.read_text())))
            except (OSError, ValueError):
                pass  # no file yet, or half-written: keep the current size
        return self.n

    def map(self, fn, items):
        self.width()
        return map(fn, items) if self.executor is None else self.executor.map(fn, items)

    def close(self):
        self.resize(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def size(pool) -> int:
    """Threads in ``pool`` (a :class:`Threads`, an executor, or None); a
    :class:`Threads` first catches up with the file it follows."""
    if pool is None:
        return 1
    if isinstance(pool, Threads):
        return pool.width()
    return getattr(pool, "_max_workers", 1)


def pmap(fn, items, pool):
    """``[fn(x) for x in items]``, on ``pool`` if it has more than one thread.
    The calling thread computes the first item itself while the pool does
    the rest: one hand-off fewer, which matters for steps of a millisecond."""
    items = list(items)
    if size(pool) < 2 or len(items) < 2:
        return [fn(x) for x in items]
    rest = pool.map(fn, items[1:])
    first = fn(items[0])
    return [first, *rest]


class Packed(list):
    """A list of ``(W, b)`` pairs whose arrays are consecutive views of one
    contiguous vector, ``.vector``, in the order ``W0, b0, W1, b1, ...``.

    Elementwise work over all the parameters (the optimizer's update, the
    sum of chunk gradients) then takes a few long numpy calls instead of a
    few short ones per array: a short call holds the GIL for most of its
    time, so a second thread would mostly wait for it. Write into the
    arrays; never rebind an entry, or it stops being a view of ``.vector``.
    ``spans[i]`` and ``shapes[i]`` are where the i-th array lies in it and
    its shape."""

    def __init__(self, shapes, dtype):
        """``shapes``: ``[(W shape, b shape), ...]``; the contents start undefined."""
        flat = [s for pair in shapes for s in pair]
        starts = np.cumsum([0] + [math.prod(s) for s in flat]).tolist()
        self._build(list(zip(starts[:-1], starts[1:])), flat, np.empty(starts[-1], dtype))

    def _build(self, spans, shapes, vector):
        self.spans, self.shapes, self.vector = spans, shapes, vector
        views = [vector[a:b].reshape(s) for (a, b), s in zip(spans, shapes)]
        list.__init__(self, zip(views[0::2], views[1::2]))

    @classmethod
    def like(cls, pairs, copy=False, dtype=None):
        """A new Packed of the shapes of ``pairs`` and their dtype (or
        ``dtype``), holding a copy of their values (cast) if ``copy``."""
        if isinstance(pairs, Packed) and dtype in (None, pairs.vector.dtype):
            out = cls.__new__(cls)  # the same layout: skip working it out again (once a chunk a step)
            out._build(pairs.spans, pairs.shapes, pairs.vector.copy() if copy else np.empty_like(pairs.vector))
            return out
        out = cls([(W.shape, b.shape) for W, b in pairs], dtype or pairs[0][0].dtype)
        if copy:
            for (W, b), (oW, ob) in zip(pairs, out):
                oW[...], ob[...] = W, b
        return out

def elementwise(fn, n, pool, min_parallel=None):
    """Call ``fn(s)`` for slices ``s`` that cover ``range(n)`` once each: one
    contiguous share per thread of ``pool`` (one task per thread keeps the
    pool's overhead to a few tasks a step), each walked in pieces of at
    most :data:`BLOCK` elements so that an update's several passes run on
    data still in cache. ``fn`` must be elementwise, so how the range is
    cut never changes a bit. Fewer than ``min_parallel`` elements
    (default :data:`PARALLEL_MIN`) stay on this thread."""
    k = size(pool) if n >= (PARALLEL_MIN if min_parallel is None else min_parallel) else 1
    bounds = [n * j // k for j in range(k + 1)]

    def share(j):
        for s in range(bounds[j], bounds[j + 1], BLOCK):
            fn(slice(s, min(s + BLOCK, bounds[j + 1])))
    pmap(share, range(k), pool)
