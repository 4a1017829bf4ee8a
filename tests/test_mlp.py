import math

import numpy as np
import pytest

from harness import blas, mlp
from harness.optim import OPTIMIZERS, make_optimizer

from helpers import problem


def _close(actual, desired, rtol):
    """``assert_allclose`` for two results of the same sums taken in other
    orders (other BLAS kernels, chunkings or layouts). Their rounding is
    relative to the size of the terms summed, not of the result, so an
    element near zero (cancellation) cannot be held to ``rtol`` of itself:
    ``atol`` is ``rtol`` of the array's largest element."""
    desired = np.asarray(desired)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * float(np.abs(desired).max(initial=0.0)))


def _gemm_atol(A, B):
    """The rounding bound of ``A @ B`` in any summation order (Higham):
    ``K * eps * max(|A| @ |B|)`` for inner dimension K. A kernel that sums
    in another order (OpenBLAS's Haswell against its SkylakeX kernel) may
    differ by this much on an element whose terms cancel to near zero."""
    return A.shape[1] * np.finfo(A.dtype).eps * float((np.abs(A) @ np.abs(B)).max())


def _numeric_grads(params, X, y, activation, eps=1e-6):
    grads = []
    for W, b in params:
        pair = []
        for arr in (W, b):
            g = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + eps
                up, _ = mlp.loss_and_grads(params, X, y, activation)
                arr[idx] = old - eps
                down, _ = mlp.loss_and_grads(params, X, y, activation)
                arr[idx] = old
                g[idx] = (up - down) / (2 * eps)
            pair.append(g)
        grads.append(tuple(pair))
    return grads


@pytest.mark.parametrize("activation", mlp.ACTIVATIONS)
@pytest.mark.parametrize("layers", [[5, 3], [5, 4, 3], [4, 6, 5, 4, 3, 3]], ids=["depth0", "depth1", "depth4"])
def test_gradients_match_central_differences(layers, activation):
    params = mlp.init_params(layers, init="xavier", seed=3, dtype="float64")
    # nonzero biases so their gradients are exercised too
    params = [(W, b + 0.1 * np.arange(len(b))) for W, b in params]
    X, y = problem(layers)
    _, grads = mlp.loss_and_grads(params, X, y, activation)
    numeric = _numeric_grads(params, X, y, activation)
    assert len(grads) == len(params)
    for (dW, db), (nW, nb), (W, b) in zip(grads, numeric, params):
        assert dW.shape == W.shape and db.shape == b.shape
        np.testing.assert_allclose(dW, nW, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(db, nb, rtol=1e-5, atol=1e-8)


def test_one_step_on_2_3_2_worked_by_hand():
    # X = [1, 2], label 0. Z1 = [1, 2, 1] (all positive, so relu passes them),
    # logits = A1 @ W2 = [2, 1], P = [e, 1] / (e + 1), loss = log(1 + 1/e).
    # With s = 1 / (1 + e): dZ2 = s * [-1, 1], dA1 = dZ2 @ W2.T = s * [-1, 1, -2].
    W1 = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    W2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    params = [(W1.copy(), np.zeros(3)), (W2.copy(), np.zeros(2))]
    X, y = np.array([[1.0, 2.0]]), np.array([0])
    s = 1 / (1 + math.e)

    loss, ((dW1, db1), (dW2, db2)) = mlp.loss_and_grads(params, X, y)

    assert loss == pytest.approx(math.log(1 + 1 / math.e), rel=1e-12)
    _close(mlp.forward(params, X), [[math.e * s, s]], 1e-12)
    _close(db2, [-s, s], 1e-12)
    _close(dW2, [[-s, s], [-2 * s, 2 * s], [-s, s]], 1e-12)
    _close(db1, [-s, s, -2 * s], 1e-12)
    _close(dW1, [[-s, s, -2 * s], [-2 * s, 2 * s, -4 * s]], 1e-12)

    opt = make_optimizer("gd", params, lr=0.5)
    opt.step(params, [(dW1, db1), (dW2, db2)])
    _close(params[0][0], W1 - 0.5 * dW1, 1e-12)
    _close(params[1][0], [[1 + s / 2, -s / 2], [s, 1 - s], [1 + s / 2, -1 - s / 2]], 1e-12)
    _close(params[1][1], [s / 2, -s / 2], 1e-12)


def test_loss_is_a_mean_not_a_sum():
    params = mlp.init_params([4, 5, 3], seed=1, dtype="float64")
    X, y = problem([4, 5, 3], m=6)
    loss1, g1 = mlp.loss_and_grads(params, X, y)
    loss2, g2 = mlp.loss_and_grads(params, np.vstack([X, X]), np.concatenate([y, y]))
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    for (a, b), (c, d) in zip(g1, g2):
        _close(a, c, rtol=1e-10)  # a GEMM over 2m rows against one over m: another summation order
        _close(b, d, rtol=1e-10)


@pytest.mark.parametrize("dtype", mlp.DTYPES)
def test_softmax_cross_entropy_is_stable_at_extreme_logits(dtype):
    Z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=dtype)
    loss, P, dZ = mlp.softmax_cross_entropy(Z, np.array([2, 0]))
    assert math.isfinite(loss)
    assert loss == pytest.approx((2e4 + 2e4 + math.log(2)) / 2, rel=1e-6)
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(dZ))
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6, atol=0)  # sums of probabilities: 1, never near 0
    # through a whole network: logits around 1e4 still give finite loss and grads
    params = mlp.init_params([3, 4, 3], seed=0, dtype=dtype)
    params[-1] = (params[-1][0] * 1e4, params[-1][1])
    X = np.ones((2, 3), dtype=dtype) * 3
    assert np.abs(mlp.logits(params, X)).max() > 1e3
    loss, grads = mlp.loss_and_grads(params, X, np.array([0, 1]))
    assert math.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for pair in grads for g in pair)


def test_article_bias_grad_is_one_scalar_on_the_output_layer():
    params = mlp.init_params([4, 5, 3], init="article", seed=2, dtype="float64")
    X, y = problem([4, 5, 3], m=9)
    _, plain = mlp.loss_and_grads(params, X, y)
    _, quirk = mlp.loss_and_grads(params, X, y, article_bias_grad=True)
    # hidden layers and output weights are unchanged
    np.testing.assert_array_equal(plain[0][0], quirk[0][0])
    np.testing.assert_array_equal(plain[0][1], quirk[0][1])
    np.testing.assert_array_equal(plain[1][0], quirk[1][0])
    # output bias: every entry is the sum of dZ over classes and examples
    assert quirk[1][1].shape == (3,)
    np.testing.assert_allclose(quirk[1][1], np.full(3, plain[1][1].sum()), atol=1e-15)
    assert np.abs(plain[1][1]).max() > 1e-3  # the fixed gradient is a real vector


def test_init_schemes():
    layers = [784, 400, 10]
    he = mlp.init_params(layers, init="he", seed=0, dtype="float64")
    art = mlp.init_params(layers, init="article", seed=0, dtype="float64")
    xav = mlp.init_params(layers, init="xavier", seed=0, dtype="float64")
    assert [W.shape for W, _ in he] == [(784, 400), (400, 10)]
    assert [b.shape for _, b in he] == [(400,), (10,)]
    assert he[0][0].std() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    assert not he[0][1].any()
    # article: scaled by the layer's own width, biases random too
    assert art[0][0].std() == pytest.approx(math.sqrt(1 / 400), rel=0.02)
    assert art[1][0].std() == pytest.approx(math.sqrt(1 / 10), rel=0.05)
    assert art[0][1].std() == pytest.approx(math.sqrt(1 / 400), rel=0.15)
    limit = math.sqrt(6 / (784 + 400))
    assert np.abs(xav[0][0]).max() <= limit and xav[0][0].std() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    again = mlp.init_params(layers, init="he", seed=0, dtype="float64")
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(he, again))
    other = mlp.init_params(layers, init="he", seed=1, dtype="float64")
    assert not np.array_equal(he[0][0], other[0][0])


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("activation", mlp.ACTIVATIONS)
def test_float32_stays_float32(optimizer, activation):
    layers = [6, 5, 4, 3]
    params = mlp.init_params(layers, seed=0, dtype="float32")
    X, y = problem(layers, dtype="float32")
    opt = make_optimizer(optimizer, params, lr=0.1, weight_decay=1e-3)
    for _ in range(3):
        loss, grads, P = mlp.forward_backward(params, X, y, activation)
        assert P.dtype == np.float32
        assert all(g.dtype == np.float32 for pair in grads for g in pair)
        opt.step(params, grads)
    assert all(a.dtype == np.float32 for pair in params for a in pair)
    assert mlp.forward(params, X, activation).dtype == np.float32


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_reduces_the_loss(optimizer):
    layers = [6, 8, 3]
    params = mlp.init_params(layers, seed=0, dtype="float64")
    X, y = problem(layers, m=30)
    lr = 0.01 if optimizer == "adam" else 0.1
    opt = make_optimizer(optimizer, params, lr=lr)
    first, _ = mlp.loss_and_grads(params, X, y)
    for _ in range(50):
        _, grads = mlp.loss_and_grads(params, X, y)
        opt.step(params, grads)
    last, _ = mlp.loss_and_grads(params, X, y)
    assert last < 0.8 * first


def test_momentum_adam_and_weight_decay_by_hand():
    W = np.array([[1.0, -2.0]])
    b = np.array([0.5, 0.5])
    g = [(np.array([[0.1, 0.2]]), np.array([0.3, -0.4]))]
    # momentum: v1 = g, v2 = 0.9 g + g = 1.9 g; p -= lr * v
    params = [(W.copy(), b.copy())]
    opt = make_optimizer("momentum", params, lr=0.5, momentum=0.9)
    opt.step(params, g)
    opt.step(params, g)
    _close(params[0][0], W - 0.5 * 2.9 * g[0][0], 1e-12)
    # adam's first step moves every entry by lr * g / (|g| + eps) ~ lr * sign(g)
    params = [(W.copy(), b.copy())]
    make_optimizer("adam", params, lr=0.01).step(params, g)
    _close(params[0][1] - b, -0.01 * np.sign(g[0][1]), 1e-6)
    # weight decay adds wd * W to the weight gradient only
    params = [(W.copy(), b.copy())]
    make_optimizer("gd", params, lr=0.1, weight_decay=0.5).step(params, g)
    _close(params[0][0], W - 0.1 * (g[0][0] + 0.5 * W), 1e-12)
    _close(params[0][1], b - 0.1 * g[0][1], 1e-12)


def test_forward_predict_shapes_and_agreement():
    params = mlp.init_params([4, 6, 5], seed=0, dtype="float64")
    X, _ = problem([4, 6, 5], m=11)
    P = mlp.forward(params, X)
    assert P.shape == (11, 5)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-12, atol=0)  # 1, never near 0
    np.testing.assert_array_equal(mlp.predict(params, X), P.argmax(axis=1))
    assert mlp.layer_sizes(params) == [4, 6, 5]
    assert mlp.n_params([4, 6, 5]) == 4 * 6 + 6 + 6 * 5 + 5


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="activation 'swish'"):
        mlp.loss_and_grads(mlp.init_params([2, 2]), np.zeros((1, 2), np.float32), np.array([0]), "swish")
    with pytest.raises(ValueError, match="init 'zeros'"):
        mlp.init_params([2, 2], init="zeros")
    with pytest.raises(ValueError, match="dtype"):
        mlp.init_params([2, 2], dtype="float16")


@pytest.mark.parametrize("dtype", mlp.DTYPES)
@pytest.mark.parametrize("m,layers", [(5000, [784, 300, 10]), (2 * mlp.ROW_CHUNK + 7, [520, 64, 33, 10])])
def test_results_do_not_depend_on_the_thread_count(dtype, m, layers):
    # Plain multithreaded OpenBLAS changes the last bits with its thread count
    # (e.g. m=500 @ 784x300); the core's fixed row chunks on single-threaded
    # BLAS must give identical numbers serially and on a pool.
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    params = mlp.init_params(layers, seed=0, dtype=dtype)
    X, y = problem(layers, m=m, dtype=dtype)
    results = []
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(2) as pool:
        for p in (None, pool):
            loss, grads, P = mlp.forward_backward(params, X, y, pool=p)
            results.append((loss, grads, P, mlp.logits(params, X, pool=p)))
    (l1, g1, p1, z1), (l2, g2, p2, z2) = results
    assert l1 == l2
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(z1, z2)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_chunked_pass_equals_one_big_pass(monkeypatch):
    layers = [30, 20, 10]
    params = mlp.init_params(layers, seed=0, dtype="float64")
    X, y = problem(layers, m=1000)
    loss, grads, P = mlp.forward_backward(params, X, y)
    monkeypatch.setattr(mlp, "ROW_CHUNK", 64)  # 16 chunks
    c_loss, c_grads, c_P = mlp.forward_backward(params, X, y, article_bias_grad=False)
    assert c_loss == pytest.approx(loss, rel=1e-12)
    _close(c_P, P, rtol=1e-12)
    for a, b in zip(grads, c_grads):  # summed over 16 chunks, not in one GEMM
        _close(a[0], b[0], rtol=1e-10)
        _close(a[1], b[1], rtol=1e-10)


@pytest.mark.parametrize("dtype", mlp.DTYPES)
def test_transposed_blas_hand_off_equals_the_plain_products(monkeypatch, dtype):
    # blas.matmul may hand a product to BLAS as (B.T @ A.T).T for speed; every
    # combination must give the plain A @ B results within float tolerance.
    layers = [40, 24, 16, 10]
    params = mlp.init_params(layers, seed=1, dtype=dtype)
    X, y = problem(layers, m=300, dtype=dtype)
    rtol = 1e-4 if dtype == "float32" else 1e-11
    outcomes = []
    for flipped in (False, True):
        table = {np.dtype(d): dict.fromkeys(("forward", "dW", "dA"), flipped) for d in mlp.DTYPES}
        monkeypatch.setattr(blas, "_TRANSPOSED", table)
        A, B = X[:, :24], params[1][0]
        assert (blas.matmul(A, B, "forward").flags.f_contiguous) is flipped
        np.testing.assert_allclose(blas.matmul(A, B, "forward"), A @ B, rtol=rtol, atol=_gemm_atol(A, B))
        out = np.empty((len(A), B.shape[1]), A.dtype)  # into a C-ordered array: the same numbers
        assert blas.matmul(A, B, "forward", out=out) is out
        np.testing.assert_array_equal(out, blas.matmul(A, B, "forward"))
        outcomes.append((mlp.forward_backward(params, X, y, dropout=0.3), mlp.logits(params, X)))
    ((l1, g1, p1), z1), ((l2, g2, p2), z2) = outcomes
    assert l1 == pytest.approx(l2, rel=rtol)
    _close(p1, p2, rtol)
    _close(z1, z2, rtol)
    for a, b in zip(g1, g2):
        assert a[0].dtype == b[0].dtype == np.dtype(dtype)
        _close(a[0], b[0], rtol)
        _close(a[1], b[1], rtol)
