"""The run's own thread pool, and how work is cut for it.

Work is cut in ways that never depend on the number of threads: a batch into
fixed row chunks (see :mod:`harness.mlp`), parameter arrays into fixed
blocks of elements. Threads only decide who computes which piece, so the
numbers are the same for any pool size. Nothing here imports the rest of
the package.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# Elementwise work (the optimizer update, summing chunk gradients) walks an
# array in blocks of this many elements, so that the several passes of an
# update run on data still in the core's L2 cache instead of streaming the
# whole array through memory once per pass.
BLOCK = 1 << 16
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


def blocks(shape) -> list:
    """Fixed pieces of an array of ``shape``: index tuples over its first
    axis, each of at most about :data:`BLOCK` elements (a whole row at least).
    They depend on the shape alone."""
    if len(shape) == 0:
        return [()]
    row = 1
    for n in shape[1:]:
        row *= n
    count = max(1, min(shape[0], -(-shape[0] * row // BLOCK)))
    step = -(-shape[0] // count)  # equal blocks, not full ones and a remainder
    return [(slice(s, min(s + step, shape[0])),) for s in range(0, shape[0], step)]


def _elements(shape, index):
    n = 1
    for d, length in enumerate(shape):
        n *= len(range(length)[index[d]]) if d < len(index) else length
    return n


def elementwise(fn, shapes, pool):
    """Call ``fn(i, index)`` for every block ``index`` of every array ``i``
    of ``shapes``, spread over ``pool`` in one contiguous share per thread
    (one task per thread keeps the pool's overhead to a few tasks a step).
    ``fn`` must touch only that block, so the order does not matter. Work
    of fewer than PARALLEL_MIN elements stays on this thread."""
    work = [(i, index) for i, shape in enumerate(shapes) for index in blocks(shape)]
    k = min(size(pool), len(work))
    if k < 2 or sum(_elements(s, ()) for s in shapes) < PARALLEL_MIN:
        for i, index in work:
            fn(i, index)
        return
    # shares of about equal numbers of elements: cut where the running count is nearest j/k of the total
    counts = np.cumsum([_elements(shapes[i], index) for i, index in work])
    bounds = [0] + [int(np.argmin(np.abs(counts - counts[-1] * j / k))) + 1 for j in range(1, k)] + [len(work)]

    def share(j):
        for i, index in work[bounds[j]:bounds[j + 1]]:
            fn(i, index)
    pmap(share, range(k), pool)
