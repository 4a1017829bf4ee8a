"""Optimizers: in-place parameter updates from gradients.

Each optimizer holds its own state (velocities, moments) and updates the
``(W, b)`` arrays of ``params`` in place. L2 weight decay adds
``weight_decay * W`` to the weight gradients (biases are not decayed).
"""
from __future__ import annotations

import math

import numpy as np

from .parallel import elementwise

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

    Every optimizer updates block by block (see :mod:`harness.parallel`):
    each block's passes run while it is in cache, and ``pool`` shares the
    blocks out. The arithmetic is elementwise, so neither changes a bit."""

    ARRAYS = ()   # attributes: lists of arrays carried from step to step
    SCALARS = ()  # attributes: numbers carried from step to step

    def __init__(self, params, lr, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.shapes = [p.shape for pair in params for p in pair]
        # weight decay applies to the W of each (W, b) pair: the even arrays
        self.decayed = [weight_decay if i % 2 == 0 else 0.0 for i in range(len(self.shapes))]

    def state(self) -> dict:
        """Everything that carries from one step to the next, by name, for a
        checkpoint: ``{"velocity0": array, ..., "t": array(3)}``."""
        out = {f"{name}{i}": a for name in self.ARRAYS for i, a in enumerate(getattr(self, name))}
        out.update({name: np.array(getattr(self, name)) for name in self.SCALARS})
        return out

    def load(self, state: dict):
        """Continue from :meth:`state` (copied into this optimizer's arrays)."""
        for name in self.ARRAYS:
            for i, a in enumerate(getattr(self, name)):
                a[...] = state[f"{name}{i}"]
        for name in self.SCALARS:
            setattr(self, name, type(getattr(self, name))(state[name]))

    def _grad(self, i, p, g):
        """The block ``g`` of array i's gradient, with weight decay folded in."""
        return g + self.decayed[i] * p if self.decayed[i] else g

    def step(self, params, grads, lr=None, pool=None):
        """Update ``params`` in place from ``grads`` (both lists of (W, b))."""
        lr = self.lr if lr is None else lr
        flat_p, flat_g = _flat(params), _flat(grads)

        def update(i, index):
            p = flat_p[i][index]
            p -= lr * self._grad(i, p, flat_g[i][index])
        elementwise(update, self.shapes, pool)


class Momentum(SGD):
    """Heavy-ball momentum: ``v = mu * v + g; p -= lr * v``."""

    ARRAYS = ("velocity",)

    def __init__(self, params, lr, weight_decay=0.0, momentum=0.9):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.velocity = [np.zeros_like(p) for pair in params for p in pair]

    def step(self, params, grads, lr=None, pool=None):
        lr = self.lr if lr is None else lr
        flat_p, flat_g = _flat(params), _flat(grads)

        def update(i, index):
            p, v = flat_p[i][index], self.velocity[i][index]
            v *= self.momentum
            v += self._grad(i, p, flat_g[i][index])
            p -= lr * v
        elementwise(update, self.shapes, pool)


class Adam(SGD):
    """Adam (Kingma & Ba, 2015) with bias correction, updated in place
    through one scratch buffer per array (no temporaries per step)."""

    ARRAYS = ("m", "v")
    SCALARS = ("t",)

    def __init__(self, params, lr, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m = [np.zeros_like(p) for pair in params for p in pair]
        self.v = [np.zeros_like(p) for pair in params for p in pair]
        self.buf = [np.empty_like(p) for pair in params for p in pair]

    def step(self, params, grads, lr=None, pool=None):
        lr = self.lr if lr is None else lr
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # The bias corrections folded into the step size and eps; Python
        # floats keep float32 arrays float32 (NEP 50 weak scalars).
        step_size = float(lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t))
        eps_hat = float(self.eps * math.sqrt(1 - b2**self.t))
        flat_p, flat_g = _flat(params), _flat(grads)

        def update(i, index):
            p, m, v, buf = flat_p[i][index], self.m[i][index], self.v[i][index], self.buf[i][index]
            g = self._grad(i, p, flat_g[i][index])
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
        elementwise(update, self.shapes, pool)


def _flat(pairs):
    """``[(W, b), ...]`` -> ``[W, b, ...]``."""
    return [a for pair in pairs for a in pair]


OPTIMIZER_CLASSES = {"gd": SGD, "sgd": SGD, "momentum": Momentum, "adam": Adam}
OPTIMIZERS = tuple(OPTIMIZER_CLASSES)


def make_optimizer(name, params, lr, weight_decay=0.0, momentum=0.9):
    try:
        cls = OPTIMIZER_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    extra = {"momentum": momentum} if cls is Momentum else {}
    return cls(params, lr, weight_decay, **extra)
