"""Optimizers: in-place parameter updates from gradients.

Each optimizer holds its own state (velocities, moments) and updates the
``(W, b)`` arrays of ``params`` in place. L2 weight decay adds
``weight_decay * W`` to the weight gradients (biases are not decayed).
"""
from __future__ import annotations

import math

import numpy as np

from .parallel import PARALLEL_MIN, Packed, elementwise

SCHEDULES = ("constant", "step", "cosine")


def lr_at(it, total, lr, schedule="constant", step_every=1000, gamma=0.1, warmup=0):
    """Learning rate of iteration ``it`` (1-based) of ``total``.

    ``warmup`` iterations rise linearly to ``lr``; then ``constant`` keeps it,
    ``step`` multiplies it by ``gamma`` every ``step_every`` iterations and
    ``cosine`` decays it to 0 at ``total`` along half a cosine.
    """
    if it <= warmup:
        return lr * it / warmup
    t = it - warmup
    if schedule == "step":
        return lr * gamma ** ((t - 1) // step_every)
    if schedule == "cosine":
        span = max(1, total - warmup)
        return lr * 0.5 * (1 + math.cos(math.pi * min(t, span) / span))
    return lr


class SGD:
    """Plain gradient descent: ``p -= lr * g``. Used for both ``gd`` (full
    batch) and ``sgd`` (minibatch); the batch size is the loop's business.

    Every optimizer updates the parameters as one vector (a
    :class:`harness.parallel.Packed`'s), one share per thread of ``pool``,
    walked in cache-sized pieces. The arithmetic is elementwise, so neither
    changes a bit."""

    ARRAYS = ()   # attributes: vectors carried from step to step
    SCALARS = ()  # attributes: numbers carried from step to step
    # Below this many parameters the update stays on one thread (see parallel.PARALLEL_MIN).
    PARALLEL_MIN = None

    def __init__(self, params, lr, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.layout = Packed.like(params)  # the shapes and spans of the vectors; its values unused
        # weight decay applies to the W of each (W, b) pair: the even arrays
        self.decayed = self.layout.spans[0::2] if weight_decay else []

    def _zeros(self):
        return np.zeros_like(self.layout.vector)

    def state(self) -> dict:
        """Everything that carries from one step to the next, by name and
        array, for a checkpoint: ``{"m0": W0's first moment, ..., "t": array(3)}``."""
        out = {f"{name}{i}": getattr(self, name)[a:b].reshape(shape)
               for name in self.ARRAYS
               for i, ((a, b), shape) in enumerate(zip(self.layout.spans, self.layout.shapes))}
        out.update({name: np.array(getattr(self, name)) for name in self.SCALARS})
        return out

    def load(self, state: dict):
        """Continue from :meth:`state` (copied into this optimizer's vectors)."""
        for name, part in self.state().items():
            if name in self.SCALARS:
                setattr(self, name, type(getattr(self, name))(state[name]))
            else:
                part[...] = state[name]

    def _grad(self, P, G, s):
        """The piece ``s`` of the gradient vector ``G``, with weight decay
        folded in (into a copy) over the W arrays it overlaps."""
        g = G[s]
        for a, b in self.decayed:
            lo, hi = max(a, s.start), min(b, s.stop)
            if lo < hi:
                g = g.copy() if g.base is G else g
                g[lo - s.start:hi - s.start] += self.weight_decay * P[lo:hi]
        return g

    def step(self, params, grads, lr=None, pool=None):
        """Update ``params`` in place from ``grads`` (both lists of (W, b))."""
        _packed_step(self, params, grads, lr, pool)

    def _update(self, P, G, lr, pool):
        def update(s):
            p = P[s]
            p -= lr * self._grad(P, G, s)
        elementwise(update, len(P), pool, self.PARALLEL_MIN)


class Momentum(SGD):
    """Heavy-ball momentum: ``v = mu * v + g; p -= lr * v``."""

    ARRAYS = ("velocity",)

    def __init__(self, params, lr, weight_decay=0.0, momentum=0.9):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.velocity = self._zeros()

    def _update(self, P, G, lr, pool):
        def update(s):
            p, v = P[s], self.velocity[s]
            v *= self.momentum
            v += self._grad(P, G, s)
            p -= lr * v
        elementwise(update, len(P), pool, self.PARALLEL_MIN)


class Adam(SGD):
    """Adam (Kingma & Ba, 2015) with bias correction, updated in place
    through one scratch vector (no temporaries per step)."""

    ARRAYS = ("m", "v")
    SCALARS = ("t",)
    # Its passes are heavy enough (a square root, a division) for a second
    # thread to pay off on smaller networks than a plain update does.
    PARALLEL_MIN = 1 << 17

    def __init__(self, params, lr, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m, self.v, self.buf = self._zeros(), self._zeros(), self._zeros()

    def _update(self, P, G, lr, pool):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # The bias corrections folded into the step size and eps; Python
        # floats keep float32 arrays float32 (NEP 50 weak scalars).
        step_size = float(lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t))
        eps_hat = float(self.eps * math.sqrt(1 - b2**self.t))

        def update(s):
            p, m, v, buf = P[s], self.m[s], self.v[s], self.buf[s]
            g = self._grad(P, G, s)
            m *= b1
            np.multiply(g, 1 - b1, out=buf)
            m += buf
            v *= b2
            np.multiply(g, g, out=buf)
            buf *= 1 - b2
            v += buf
            np.sqrt(v, out=buf)
            buf += eps_hat
            np.divide(m, buf, out=buf)
            buf *= step_size
            p -= buf
        elementwise(update, len(P), pool, self.PARALLEL_MIN)


def _packed_step(opt, params, grads, lr, pool):
    """Run ``opt._update`` on the vectors of ``params`` and ``grads``; pairs
    that are not :class:`Packed` (built by hand) are packed for the step
    and the result copied back."""
    lr = opt.lr if lr is None else lr
    P = params if isinstance(params, Packed) else Packed.like(params, copy=True)
    G = grads if isinstance(grads, Packed) else Packed.like(grads, copy=True)
    opt._update(P.vector, G.vector, lr, pool)
    if P is not params:
        for (W, b), (pW, pb) in zip(params, P):
            W[...], b[...] = pW, pb


OPTIMIZER_CLASSES = {"gd": SGD, "sgd": SGD, "momentum": Momentum, "adam": Adam}
OPTIMIZERS = tuple(OPTIMIZER_CLASSES)


def parallel_min(name) -> int:
    """Parameters from which optimizer ``name`` shares its update over threads."""
    return OPTIMIZER_CLASSES[name].PARALLEL_MIN or PARALLEL_MIN


def make_optimizer(name, params, lr, weight_decay=0.0, momentum=0.9):
    try:
        cls = OPTIMIZER_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    extra = {"momentum": momentum} if cls is Momentum else {}
    return cls(params, lr, weight_decay, **extra)
