"""Optimizers: in-place parameter updates from gradients.

Each optimizer holds its own state (velocities, moments) and updates the
``(W, b)`` arrays of ``params`` in place. L2 weight decay adds
``weight_decay * W`` to the weight gradients (biases are not decayed).
"""
from __future__ import annotations

import math

import numpy as np

OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
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
    batch) and ``sgd`` (minibatch); the batch size is the loop's business."""

    def __init__(self, params, lr, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay

    def _decayed(self, params, grads):
        """Yields (param, grad) over all arrays, with weight decay folded into W's grad."""
        for (W, b), (dW, db) in zip(params, grads):
            if self.weight_decay:
                dW = dW + self.weight_decay * W
            yield W, dW
            yield b, db

    def step(self, params, grads, lr=None):
        lr = self.lr if lr is None else lr
        for p, g in self._decayed(params, grads):
            p -= lr * g


class Momentum(SGD):
    """Heavy-ball momentum: ``v = mu * v + g; p -= lr * v``."""

    def __init__(self, params, lr, weight_decay=0.0, momentum=0.9):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.velocity = [np.zeros_like(p) for pair in params for p in pair]

    def step(self, params, grads, lr=None):
        lr = self.lr if lr is None else lr
        for v, (p, g) in zip(self.velocity, self._decayed(params, grads)):
            v *= self.momentum
            v += g
            p -= lr * v


class Adam(SGD):
    """Adam (Kingma & Ba, 2015) with bias correction, updated in place
    through one scratch buffer per array (no temporaries per step)."""

    def __init__(self, params, lr, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m = [np.zeros_like(p) for pair in params for p in pair]
        self.v = [np.zeros_like(p) for pair in params for p in pair]
        self.buf = [np.empty_like(p) for pair in params for p in pair]

    def step(self, params, grads, lr=None):
        lr = self.lr if lr is None else lr
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # The bias corrections folded into the step size and eps; Python
        # floats keep float32 arrays float32 (NEP 50 weak scalars).
        step_size = float(lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t))
        eps_hat = float(self.eps * math.sqrt(1 - b2**self.t))
        for m, v, buf, (p, g) in zip(self.m, self.v, self.buf, self._decayed(params, grads)):
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


def make_optimizer(name, params, lr, weight_decay=0.0, momentum=0.9):
    if name in ("gd", "sgd"):
        return SGD(params, lr, weight_decay)
    if name == "momentum":
        return Momentum(params, lr, weight_decay, momentum)
    if name == "adam":
        return Adam(params, lr, weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
