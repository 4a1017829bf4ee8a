"""The multilayer perceptron: pure functions over NumPy arrays.

Layout: one example per row. ``X: (m, n_features)``, ``W: (n_in, n_out)``,
``b: (n_out,)``, so a layer is ``Z = A_prev @ W + b``. Parameters are a list
of ``(W, b)`` pairs, one per layer. Nothing here does I/O, prints, or touches
global random state: randomness comes in as a seed or a ``np.random.Generator``.
"""
from __future__ import annotations

import numpy as np

from .blas import matmul
from .parallel import Packed, elementwise, pmap

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
INITS = ("he", "xavier", "article")
DTYPES = ("float32", "float64")
LEAKY_SLOPE = 0.01


# --- hidden activations -------------------------------------------------------
# Each derivative is written in terms of the activation's *output* A, so the
# backward pass needs to keep only the A's, not the Z's.

def _relu(Z):
    return np.maximum(Z, 0, out=Z)


def _relu_grad(A):
    return A > 0


def _leaky_relu(Z):
    return np.where(Z > 0, Z, Z * LEAKY_SLOPE)


def _leaky_relu_grad(A):
    return np.where(A > 0, 1, LEAKY_SLOPE).astype(A.dtype, copy=False)


def _tanh(Z):
    return np.tanh(Z, out=Z)


def _tanh_grad(A):
    return 1 - A * A


def _sigmoid(Z):
    # 0.5 * (1 + tanh(z/2)) is sigmoid without overflow in exp.
    Z *= 0.5
    np.tanh(Z, out=Z)
    Z += 1
    Z *= 0.5
    return Z


def _sigmoid_grad(A):
    return A * (1 - A)


_ACT = {
    "relu": (_relu, _relu_grad),
    "leaky_relu": (_leaky_relu, _leaky_relu_grad),
    "tanh": (_tanh, _tanh_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
}


def _activation(name):
    try:
        return _ACT[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


# --- parameters ---------------------------------------------------------------

def init_params(layers, init="he", seed=0, dtype="float32"):
    """Initial parameters for the layer list ``layers`` (input size first).

    Returns ``[(W, b), ...]`` with ``W: (n_in, n_out)`` and ``b: (n_out,)``,
    as a :class:`harness.parallel.Packed` of ``dtype`` (views of one vector).

    - ``"he"``: W ~ N(0, 2 / n_in), b = 0.
    - ``"xavier"``: W ~ U(+-sqrt(6 / (n_in + n_out))), b = 0.
    - ``"article"``: W and b ~ N(0, 1) * sqrt(1 / n_out), with n_out the width
      of the layer itself (the article's scheme, not fan-in scaling).

    Draws happen in float64 and are then cast, so one seed gives the same
    starting point in float32 and float64.
    """
    layers = [int(n) for n in layers]
    if len(layers) < 2 or min(layers) < 1:
        raise ValueError(f"layers must hold at least two positive sizes, got {layers}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    params = []  # in float64; Packed.like casts
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        if init == "he":
            W = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
            b = np.zeros(n_out)
        elif init == "xavier":
            limit = np.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-limit, limit, (n_in, n_out))
            b = np.zeros(n_out)
        else:
            scale = np.sqrt(1.0 / n_out)
            W = rng.standard_normal((n_in, n_out)) * scale
            b = rng.standard_normal(n_out) * scale
        params.append((W, b))
    return Packed.like(params, copy=True, dtype=dtype)


def layer_sizes(params):
    """The layer list that ``params`` implements, e.g. ``[784, 10, 10]``."""
    return [params[0][0].shape[0]] + [W.shape[1] for W, _ in params]


def n_params(layers):
    return sum(n_in * n_out + n_out for n_in, n_out in zip(layers[:-1], layers[1:]))


def flops_per_iter(layers, m):
    """Floating-point operations of one full-batch training step on m examples.

    Counts the GEMMs only, 2 flops per multiply-add: forward ``2*m*n_in*n_out``
    per layer, backward ``2*m*n_in*n_out`` for dW and the same for dA_prev
    (skipped at the input layer).
    """
    pairs = list(zip(layers[:-1], layers[1:]))
    fwd = sum(2 * m * a * b for a, b in pairs)
    bwd = sum(2 * m * a * b for a, b in pairs) + sum(2 * m * a * b for a, b in pairs[1:])
    return fwd + bwd


# --- forward and backward -----------------------------------------------------

# Rows are processed in fixed chunks whose size depends on the batch size
# and the layer sizes alone, and the chunks' gradients are summed in order.
# Chunk boundaries never depend on the thread count, so with single-threaded
# BLAS per chunk (as train.run sets up) the numbers are identical whether the
# chunks run serially or on a thread pool of any size. (Multithreaded
# OpenBLAS itself is not: its results change in the last bits with the
# thread count.) A large batch is cut into chunks of ROW_CHUNK rows, which
# also bounds the memory kept for the backward pass. A smaller one is cut
# into up to MINI_CHUNKS equal chunks, none under MIN_CHUNK rows or
# MIN_CHUNK_FLOPS of work (so 128 rows of 784-256-128-64-10 become 2 x 64),
# so that a minibatch run can use several cores too; a chunk smaller than
# that would cost more in hand-offs than a second core wins.
ROW_CHUNK = 2048
MIN_CHUNK = 64
MIN_CHUNK_FLOPS = 1 << 26
MINI_CHUNKS = 4


def _chunks(m, layers):
    """Fixed row slices of a batch of ``m`` rows through ``layers``."""
    if m >= ROW_CHUNK * MINI_CHUNKS:
        rows = ROW_CHUNK
    else:
        least = max(MIN_CHUNK, -(-MIN_CHUNK_FLOPS // flops_per_iter(layers, 1)))
        rows = -(-m // max(1, min(MINI_CHUNKS, m // least)))
    return [slice(s, min(s + rows, m)) for s in range(0, m, rows)]


def _logits_rows(params, X, activation):
    act, _ = _activation(activation)
    A = X
    for W, b in params[:-1]:
        Z = matmul(A, W, "forward")
        Z += b
        A = act(Z)
    W, b = params[-1]
    Z = matmul(A, W, "forward")
    Z += b
    return Z


def logits(params, X, activation="relu", pool=None):
    """Output-layer pre-activations. ``X: (m, n_features)`` -> ``(m, n_classes)``."""
    parts = pmap(lambda s: _logits_rows(params, X[s], activation), _chunks(len(X), layer_sizes(params)), pool)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def softmax(Z):
    """Row-wise softmax of ``Z: (m, k)``, shifted by the row max for stability."""
    E = Z - Z.max(axis=1, keepdims=True)
    np.exp(E, out=E)
    E /= E.sum(axis=1, keepdims=True)
    return E


def forward(params, X, activation="relu", pool=None):
    """Class probabilities ``(m, n_classes)`` for ``X: (m, n_features)``."""
    return softmax(logits(params, X, activation, pool))


def predict(params, X, activation="relu", pool=None):
    """Predicted labels ``(m,)`` for ``X: (m, n_features)``."""
    return np.argmax(logits(params, X, activation, pool), axis=1)


def softmax_cross_entropy(Z, y, m=None):
    """Fused, stable softmax + cross-entropy.

    ``Z: (c, k)`` logits, ``y: (c,)`` integer labels, ``m`` the number of
    examples the loss is a mean over (default ``c``; larger when ``Z`` is one
    chunk of a batch). Returns ``(loss, P, dZ)``: this chunk's share of the
    mean loss (a Python float), the probabilities ``P: (c, k)``, and the
    gradient of the mean loss w.r.t. Z, ``(P - Y) / m``.
    """
    c = Z.shape[0]
    m = c if m is None else m
    rows = np.arange(c)
    # ufunc reductions called directly: the same sums as .max()/.sum(), without
    # their Python wrappers (this runs once a chunk, partly holding the GIL)
    shifted = Z - np.maximum.reduce(Z, axis=1, keepdims=True)
    P = np.exp(shifted)
    sums = np.add.reduce(P, axis=1)
    P /= sums[:, None]
    # -log softmax of the true class = log(sum exp(shifted)) - shifted_true; finite for any Z
    loss = float(np.add.reduce(np.log(sums) - shifted[rows, y])) / m
    dZ = P.copy()
    dZ[rows, y] -= 1
    dZ *= 1.0 / m
    return loss, P, dZ


def _chunk_forward_backward(params, X, y, activation, m, dropout=0.0, key=None):
    """Forward and backward over the rows ``X: (c, n_features)`` of a batch of
    ``m`` examples. Returns this chunk's (loss share, grads, P), the grads
    a :class:`harness.parallel.Packed` like ``params``.

    With ``dropout`` p > 0, each hidden activation is multiplied by a mask
    of Bernoulli(1 - p) / (1 - p) (inverted dropout: the expected activation
    is unchanged), drawn from ``np.random.default_rng(key)``."""
    act, act_grad = _activation(activation)
    rng = np.random.default_rng(key) if dropout else None
    inputs, acts, masks = [X], [], []
    A = X
    for W, b in params[:-1]:
        Z = matmul(A, W, "forward")
        Z += b
        A = act(Z)
        acts.append(A)
        if dropout:
            mask = (rng.random(A.shape, dtype=A.dtype) >= dropout).astype(A.dtype)
            mask *= 1.0 / (1.0 - dropout)
            masks.append(mask)
            A = A * mask
        inputs.append(A)
    W, b = params[-1]
    Z = matmul(A, W, "forward")
    Z += b
    loss, P, dZ = softmax_cross_entropy(Z, y, m)
    grads = Packed.like(params)
    for layer in range(len(params) - 1, -1, -1):
        W, b = params[layer]
        dW, db = grads[layer]
        matmul(inputs[layer].T, dZ, "dW", out=dW)
        np.add.reduce(dZ, axis=0, out=db)
        if layer > 0:
            dA = matmul(dZ, W.T, "dA")
            if dropout:
                dA *= masks[layer - 1]
            dA *= act_grad(acts[layer - 1])
            dZ = dA
    return loss, grads, P


def forward_backward(params, X, y, activation="relu", article_bias_grad=False, pool=None,
                     dropout=0.0, dropout_key=(0,), rows=None):
    """One forward and backward pass over ``X: (m, n_features)``, ``y: (m,)``,
    or over the batch ``X[rows]``, ``y[rows]`` when ``rows: (m,)`` is given
    (each chunk then gathers its own rows).

    Returns ``(loss, grads, P)``: the mean loss, ``grads`` mirroring
    ``params``, and the probabilities ``P: (m, n_classes)`` (the training loop
    reads its accuracy off them at no extra cost). ``pool`` (a
    :class:`harness.parallel.Threads`) runs the row chunks in parallel.
    ``dropout`` is the rate on hidden layers; chunk i draws its masks from
    the seed ``(*dropout_key, i)``, so they do not depend on the pool either.
    """
    m = len(X) if rows is None else len(rows)
    chunks = _chunks(m, layer_sizes(params))

    def part(i):
        s = chunks[i] if rows is None else rows[chunks[i]]
        return _chunk_forward_backward(params, X[s], y[s], activation, m, dropout, (*dropout_key, i))

    parts = pmap(part, range(len(chunks)), pool)
    loss = parts[0][0]
    for p in parts[1:]:
        loss += p[0]
    grads = _sum_grads([p[1] for p in parts], pool)
    P = parts[0][2] if len(parts) == 1 else np.concatenate([p[2] for p in parts])
    if article_bias_grad:
        # The article's quirk: one scalar, the sum of dZ over classes and examples.
        db = grads[-1][1]
        db[...] = db.sum()
    return loss, grads, P


def _sum_grads(parts, pool):
    """The sum of the chunks' gradients (:class:`Packed`), added in chunk
    order into the first chunk's, one share of the vector per thread."""
    total, rest = parts[0].vector, [p.vector for p in parts[1:]]

    def add(s):
        target = total[s]
        for part in rest:
            target += part[s]
    if rest:
        elementwise(add, len(total), pool)
    return parts[0]


def loss_and_grads(params, X, y, activation="relu", article_bias_grad=False):
    """Mean softmax cross-entropy and its gradients.

    ``X: (m, n_features)``, ``y: (m,)`` integer labels. Returns
    ``(loss, grads)`` with ``grads`` structured exactly like ``params``.
    """
    loss, grads, _ = forward_backward(params, X, y, activation, article_bias_grad)
    return loss, grads


def evaluate(params, X, y, activation="relu", pool=None):
    """``(mean loss, accuracy)`` of ``params`` on ``X: (m, n_features)``, ``y: (m,)``."""
    Z = logits(params, X, activation, pool)
    loss, _, _ = softmax_cross_entropy(Z, y)
    return loss, float(np.mean(np.argmax(Z, axis=1) == y))


def accuracy(params, X, y, activation="relu", pool=None):
    """Fraction of rows of ``X`` whose predicted label equals ``y``."""
    return float(np.mean(predict(params, X, activation, pool) == y))
