"""The run's thread pool: fixed chunks and blocks, so any pool size gives the same numbers."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from harness import mlp, optim, parallel
from harness.config import RunConfig
from harness.data import Split
from harness.loop import train_steps


def _problem(layers, m, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, layers[0])).astype(dtype), rng.integers(0, layers[-1], size=m)


def test_chunks_depend_on_the_batch_and_the_layers_only():
    big = [784, 256, 128, 64, 10]
    assert mlp._chunks(128, big) == [slice(0, 64), slice(64, 128)]
    assert mlp._chunks(256, big) == [slice(s, s + 64) for s in range(0, 256, 64)]
    assert mlp._chunks(128, [784, 64, 10]) == [slice(0, 128)]  # too little work to share
    assert mlp._chunks(33600, [784, 10, 10])[:2] == [slice(0, 2048), slice(2048, 4096)]
    for m in (1, 63, 100, 129, 5000, 9000):
        rows = np.concatenate([np.arange(m)[s] for s in mlp._chunks(m, big)])
        np.testing.assert_array_equal(rows, np.arange(m))  # every row once, in order


@pytest.mark.parametrize("dtype", mlp.DTYPES)
def test_chunked_minibatch_equals_one_plain_pass(dtype):
    layers = [784, 256, 128, 64, 10]
    params = mlp.init_params(layers, seed=0, dtype=dtype)
    X, y = _problem(layers, 1000, dtype=dtype)
    rows = np.random.default_rng(1).permutation(1000)[:128]
    loss, grads, P = mlp.forward_backward(params, X, y, rows=rows)
    assert len(mlp._chunks(128, layers)) == 2
    # the plain path: one pass over the gathered batch, no chunks
    p_loss, p_grads, p_P = mlp._chunk_forward_backward(params, X[rows], y[rows], "relu", 128)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    assert loss == pytest.approx(p_loss, rel=rtol)
    # Two chunks' sums against one GEMM's: another summation order, whose
    # rounding is relative to the terms' size, so atol is rtol of the array's scale.
    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.abs(b).max()))
    close(P, p_P)
    for (dW, db), (pW, pb) in zip(grads, p_grads):
        assert dW.flags.c_contiguous
        close(dW, pW)
        close(db, pb)
    # gathering inside the chunks is the same as gathering first
    g_loss, g_grads, _ = mlp.forward_backward(params, X[rows], y[rows])
    assert g_loss == loss
    np.testing.assert_array_equal(g_grads[0][0], grads[0][0])


def test_a_minibatch_step_is_identical_on_any_pool():
    layers = [784, 256, 128, 64, 10]
    X, y = _problem(layers, 1000)
    rows = np.arange(0, 1000, 7)[:128]
    outcomes = []
    with threadpool_limits(1, user_api="blas"):
        for n in (1, 2, 3):
            params = mlp.init_params(layers, seed=0, dtype="float32")
            opt = optim.make_optimizer("adam", params, 1e-3, weight_decay=1e-4)
            with parallel.Threads(n) as pool:
                for _ in range(3):
                    loss, grads, _ = mlp.forward_backward(params, X, y, pool=pool, dropout=0.2, rows=rows)
                    opt.step(params, grads, pool=pool)
            outcomes.append((loss, params))
    for loss, params in outcomes[1:]:
        assert loss == outcomes[0][0]
        for (W, b), (W0, b0) in zip(params, outcomes[0][1]):
            np.testing.assert_array_equal(W, W0)
            np.testing.assert_array_equal(b, b0)


def _reference_step(name, params, grads, state, lr, wd, mu=0.9, b1=0.9, b2=0.999, eps=1e-8):
    """The optimizers written plainly, whole arrays at a time, from their formulas."""
    state["t"] = state.get("t", 0) + 1
    out = []
    for i, ((W, b), (dW, db)) in enumerate(zip(params, grads)):
        pair = []
        for j, (p, g) in enumerate(((W, dW), (b, db))):
            g = g + wd * p if j == 0 else g
            key = (i, j)
            if name == "momentum":
                v = state[key] = mu * state.get(key, 0) + g
                p = p - lr * v
            elif name == "adam":
                m, v = state.get(key, (0, 0))
                m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
                state[key] = (m, v)
                t = state["t"]
                p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            else:
                p = p - lr * g
            pair.append(p)
        out.append(tuple(pair))
    return out


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_blocked_parallel_update_matches_the_plain_formulas(name, monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK", 100)        # many pieces, arrays split across them
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 0)   # shared out even on small vectors
    monkeypatch.setattr(optim.Adam, "PARALLEL_MIN", 0)
    layers = [30, 40, 7]
    runs = []
    for n in (1, 2, 3):
        params = mlp.init_params(layers, seed=0, dtype="float64")
        ref = [(W.copy(), b.copy()) for W, b in params]
        state = {}
        opt = optim.make_optimizer(name, params, 0.01, weight_decay=0.1)
        with parallel.Threads(n) as pool:
            for step in range(4):
                grads = mlp.init_params(layers, seed=10 + step, dtype="float64")
                opt.step(params, grads, pool=pool)
                ref = _reference_step(name, ref, grads, state, 0.01, 0.1)
        for (W, b), (rW, rb) in zip(params, ref):
            np.testing.assert_allclose(W, rW, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(b, rb, rtol=1e-9, atol=1e-12)
        runs.append(params)
    for params in runs[1:]:
        for (W, b), (W0, b0) in zip(params, runs[0]):
            np.testing.assert_array_equal(W, W0)
            np.testing.assert_array_equal(b, b0)


def test_elementwise_covers_the_range_once_in_balanced_shares(monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK", 1000)
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 0)
    n = 50890  # 784-64-10's parameters
    for threads in (1, 2, 3):
        seen = []
        with parallel.Threads(threads) as pool:
            parallel.elementwise(lambda s: seen.append((s.start, s.stop)), n, pool)
        seen.sort()
        assert [a for a, _ in seen] == [0] + [b for _, b in seen[:-1]] and seen[-1][1] == n
        assert max(b - a for a, b in seen) <= 1000
        # one share per thread: pieces start at 0, n/k, 2n/k, ... and run on from there
        assert {n * j // threads for j in range(threads)} <= {a for a, _ in seen}


def test_packed_pairs_are_consecutive_views_of_one_vector():
    params = mlp.init_params([30, 40, 7], seed=0, dtype="float32")
    assert isinstance(params, parallel.Packed) and params.vector.dtype == np.float32
    assert params.vector.size == mlp.n_params([30, 40, 7])
    for a, (start, stop) in zip([a for pair in params for a in pair], params.spans):
        assert np.shares_memory(a, params.vector) and a.flags.c_contiguous
        np.testing.assert_array_equal(a.ravel(), params.vector[start:stop])
    params[1][0][...] = 5.0  # writes through to the vector
    assert (params.vector[params.spans[2][0]:params.spans[2][1]] == 5.0).all()
    # the same draws as before packing: float64 draws cast once
    W = np.random.default_rng(0).standard_normal((30, 40)) * np.sqrt(2.0 / 30)
    np.testing.assert_array_equal(params[0][0], W.astype(np.float32))


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_an_update_of_pairs_built_by_hand_equals_the_packed_one(name):
    layers = [30, 40, 7]
    packed = mlp.init_params(layers, seed=0, dtype="float64")
    loose = [(W.copy(), b.copy()) for W, b in packed]
    grads = mlp.init_params(layers, seed=3, dtype="float64")
    loose_grads = [(W.copy(), b.copy()) for W, b in grads]
    a = optim.make_optimizer(name, packed, 0.01, weight_decay=0.1)
    b = optim.make_optimizer(name, loose, 0.01, weight_decay=0.1)
    for _ in range(3):
        a.step(packed, mlp.init_params(layers, seed=3, dtype="float64"))
        b.step(loose, [(W.copy(), b_.copy()) for W, b_ in loose_grads])
    for (W, b_), (lW, lb) in zip(packed, loose):
        np.testing.assert_array_equal(W, lW)
        np.testing.assert_array_equal(b_, lb)


def test_a_minibatch_run_gives_the_same_metrics_on_1_and_2_threads():
    layers = (784, 256, 128, 64, 10)
    X, y = _problem(layers, 600)
    Xv, yv = _problem(layers, 200, seed=1)
    split = Split(X, y, Xv, yv, None, None)
    cfg = RunConfig(layers=layers, optimizer="adam", lr=1e-3, batch_size=128, iterations=12, eval_every=4,
                    dropout=0.1, lr_schedule="cosine")
    rows = []
    with threadpool_limits(1, user_api="blas"):
        for n in (1, 2):
            params = mlp.init_params(layers, seed=0, dtype="float32")
            with parallel.Threads(n) as pool:
                rows.append([(r["train_loss"], r["train_acc"], r["val_acc"]) for r in train_steps(params, cfg, split, pool)])
    assert rows[0] == rows[1] and len(rows[0]) == 12


def test_a_pool_of_one_thread_grows_when_its_file_says_so(tmp_path):
    # A run alone at the end of a sweep takes over the idle cores: its pool of
    # one must still read the file, though one thread alone never hands work out.
    follow = tmp_path / ".threads"
    follow.write_text("1\n")
    layers = [784, 256, 128, 64, 10]
    params = mlp.init_params(layers, seed=0, dtype="float32")
    X, y = _problem(layers, 300)
    with parallel.Threads(1, follow) as pool:
        mlp.forward_backward(params, X, y, pool=pool, rows=np.arange(128))
        assert pool.n == 1
        follow.write_text("2\n")
        pool.next_check = 0  # skip the once-a-second wait
        mlp.forward_backward(params, X, y, pool=pool, rows=np.arange(128))
        assert pool.n == 2 and pool.executor is not None
