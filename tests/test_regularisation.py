"""Dropout, learning-rate schedules, epochs, early stopping and the held-out test split."""
import math

import numpy as np
import pytest

from harness import loop, mlp, train
from harness.cli import main
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.optim import lr_at

from helpers import problem


def test_dropout_gradients_match_central_differences():
    # With a fixed key the masks are fixed, so the masked network is a plain function.
    layers = [5, 6, 4, 3]
    params = mlp.init_params(layers, init="xavier", seed=1, dtype="float64")
    X, y = problem(layers, m=9)

    def loss(p):
        return mlp.forward_backward(p, X, y, "tanh", dropout=0.3, dropout_key=(7,))[0]

    _, grads, _ = mlp.forward_backward(params, X, y, "tanh", dropout=0.3, dropout_key=(7,))
    eps = 1e-6
    for (W, b), (dW, db) in zip(params, grads):
        for arr, g in ((W, dW), (b, db)):
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + eps
                up = loss(params)
                arr[idx] = old - eps
                down = loss(params)
                arr[idx] = old
                assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


def test_dropout_keeps_the_expected_activation_and_is_off_at_evaluation():
    layers = [6, 50, 3]
    params = mlp.init_params(layers, seed=0, dtype="float64")
    params[1] = (np.zeros((50, 3)), np.zeros(3))  # uniform output: dZ does not depend on the masks
    X, y = problem(layers, m=1)
    X = np.abs(X)
    _, plain, _ = mlp.forward_backward(params, X, y)
    # dW_out = A_dropped.T @ dZ, so its mean over masks is A.T @ dZ if E[mask] = 1
    dropped = [mlp.forward_backward(params, X, y, dropout=0.5, dropout_key=(k,))[1][1][0] for k in range(3000)]
    # one example: a row of dW_out is zero exactly where its unit was dropped (or is inactive)
    live = np.mean(plain[1][0] != 0)
    assert np.mean([np.mean(d == 0) for d in dropped]) == pytest.approx(0.5 * live + (1 - live), abs=0.01)
    # each entry is 2 * value * Bernoulli(0.5): its mean over 3000 draws is within 4 sd (7.3%)
    np.testing.assert_allclose(np.mean(dropped, axis=0), plain[1][0], rtol=4 / math.sqrt(3000), atol=1e-12)
    # evaluation has no dropout at all: the same numbers every time
    cfg = RunConfig(layers=tuple(layers), dropout=0.5)
    assert np.array_equal(mlp.forward(params, X, cfg.activation), mlp.forward(params, X, cfg.activation))


def test_dropout_masks_do_not_depend_on_the_thread_count():
    from concurrent.futures import ThreadPoolExecutor

    layers = [20, 30, 10]
    params = mlp.init_params(layers, seed=0, dtype="float32")
    X, y = problem(layers, m=2 * mlp.ROW_CHUNK + 5, dtype="float32")
    serial = mlp.forward_backward(params, X, y, dropout=0.2, dropout_key=(1, 2))
    with ThreadPoolExecutor(3) as pool:
        pooled = mlp.forward_backward(params, X, y, pool=pool, dropout=0.2, dropout_key=(1, 2))
    assert serial[0] == pooled[0]
    np.testing.assert_array_equal(serial[1][0][0], pooled[1][0][0])


def test_schedule_values():
    assert lr_at(1, 100, 0.1) == 0.1 and lr_at(100, 100, 0.1) == 0.1
    assert [lr_at(i, 100, 1.0, "step", step_every=10, gamma=0.5) for i in (1, 10, 11, 20, 21, 100)] == \
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.5 ** 9]
    assert lr_at(1, 101, 2.0, "cosine") == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi / 101)))
    assert lr_at(51, 101, 2.0, "cosine") == pytest.approx(1.0 + math.cos(math.pi * 51 / 101))
    assert lr_at(101, 101, 2.0, "cosine") == pytest.approx(0.0, abs=1e-12)
    # linear warm-up, then the schedule counts from its end
    assert [lr_at(i, 100, 1.0, "cosine", warmup=4) for i in (1, 2, 4)] == [0.25, 0.5, 1.0]
    assert lr_at(5, 100, 1.0, "cosine", warmup=4) == pytest.approx(0.5 * (1 + math.cos(math.pi / 96)))
    assert lr_at(14, 100, 1.0, "step", step_every=10, gamma=0.1, warmup=4) == 1.0
    assert lr_at(15, 100, 1.0, "step", step_every=10, gamma=0.1, warmup=4) == pytest.approx(0.1)


def test_epochs_and_iterations_are_exclusive(tiny_csv, tmp_path, capsys):
    with pytest.raises(ConfigError, match="either iterations or epochs, not both"):
        RunConfig.from_dict({"iterations": 10, "epochs": 2})
    code = main(["train", "--path", str(tiny_csv), "--layers", "16,8,10", "--validation", "0.2", "--optimizer", "sgd",
                 "--batch-size", "50", "--iterations", "10", "--epochs", "2", "--quiet"])
    assert code == 2 and "either iterations or epochs" in capsys.readouterr().err
    grid = tmp_path / "g.toml"
    grid.write_text(f"[data]\npath = '{tiny_csv.name}'\nvalidation = 0.2\n[train]\nlayers = [16, 10]\n"
                    "iterations = 5\noptimizer = 'sgd'\nbatch_size = 50\n[grid]\nepochs = [1, 2]\n")
    tiny_csv.rename(tmp_path / tiny_csv.name) if tiny_csv.parent != tmp_path else None
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "g.toml [grid] epochs = 1: give either iterations or epochs, not both" in err


def test_epochs_set_the_number_of_steps(tiny_csv, tmp_path):
    cfg = RunConfig(layers=(16, 8, 10), path=str(tiny_csv), validation=0.25, optimizer="sgd", batch_size=50, epochs=3)
    assert train.total_iterations(cfg, 225) == 3 * 5
    status = train.run(cfg, tmp_path / "r")
    assert status["iterations_run"] == 15


def test_early_stopping_restores_the_best_parameters(tiny_csv, monkeypatch):
    cfg = RunConfig(layers=(16, 8, 10), path=str(tiny_csv), validation=0.25, iterations=100, eval_every=5,
                    early_stopping=2, lr=0.3)
    _, split = train.prepare(cfg)
    scripted = iter([0.5, 0.7, 0.6, 0.65, 0.9])
    seen = []

    def fake_accuracy(params, X, y, activation="relu", pool=None):
        seen.append([(W.copy(), b.copy()) for W, b in params])
        return next(scripted)

    monkeypatch.setattr(mlp, "accuracy", fake_accuracy)
    params = mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype)
    rows = list(loop.train_steps(params, cfg, split))
    # best at the 2nd evaluation (iteration 10); two evaluations without gain, so it stops at 20
    assert len(rows) == 20 and len(seen) == 4
    for (W, b), (bW, bb) in zip(params, seen[1]):
        np.testing.assert_array_equal(W, bW)
        np.testing.assert_array_equal(b, bb)
    status = train.summarize(rows)
    assert status["kept_iteration"] == 10 and status["final_val_acc"] == 0.7 and status["best_val_acc"] == 0.7


@pytest.mark.parametrize("validation,expected_calls", [(0.25, 1), ("test", 0)])
def test_test_split_is_evaluated_once_and_only_for_a_fraction(tiny_idx, tmp_path, monkeypatch, validation,
                                                              expected_calls):
    cfg = RunConfig(layers=(16, 8, 10), path=str(tiny_idx), validation=validation, iterations=20, eval_every=5)
    _, split = train.prepare(cfg)
    real, calls = mlp.accuracy, []

    def counting(params, X, *a, **kw):
        calls.append(X is split.X_test)  # prepare() is cached: run() sees these very arrays
        return real(params, X, *a, **kw)

    monkeypatch.setattr(mlp, "accuracy", counting)
    status = train.run(cfg, tmp_path / "r")
    assert sum(calls) == expected_calls and len(calls) >= 4
    if expected_calls:
        assert 0 <= status["test_acc"] <= 1 and len(split.y_val) == 75
    else:
        assert "test_acc" not in status
