import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from harness import mlp, store
from harness.cli import main
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.loop import train_steps
from harness.train import prepare, run


def _cfg(path, **kw):
    base = dict(layers=(16, 12, 10), iterations=30, lr=0.5, path=str(path), validation=0.25, eval_every=5)
    base.update(kw)
    return RunConfig(**base)


def _numbers(rows):
    return [(r["iteration"], r["train_loss"], r["train_acc"], r["val_acc"]) for r in rows]


@pytest.mark.parametrize("kw", [dict(), dict(optimizer="adam", lr=0.01, batch_size=32, dtype="float64"),
                                dict(optimizer="momentum", batch_size=50, init="article")])
def test_same_seed_same_numbers(tiny_csv, kw):
    cfg = _cfg(tiny_csv, **kw)
    _, split = prepare(cfg)
    runs = []
    for _ in range(2):
        params = mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype)
        rows = list(train_steps(params, cfg, split))
        runs.append((_numbers(rows), params))
    assert runs[0][0] == runs[1][0]
    for (W1, b1), (W2, b2) in zip(runs[0][1], runs[1][1]):
        assert np.array_equal(W1, W2) and np.array_equal(b1, b2)
    params = mlp.init_params(cfg.layers, cfg.init, cfg.seed + 1, cfg.dtype)
    assert _numbers(train_steps(params, cfg.replace(seed=cfg.seed + 1), split)) != runs[0][0]


def test_training_learns_and_logs_every_iteration(tiny_csv):
    cfg = _cfg(tiny_csv, iterations=60)
    _, split = prepare(cfg)
    params = mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype)
    rows = list(train_steps(params, cfg, split))
    assert [r["iteration"] for r in rows] == list(range(1, 61))
    evaluated = [r["iteration"] for r in rows if r["val_acc"] is not None]
    assert evaluated == list(range(5, 61, 5))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] / 2
    assert rows[-1]["val_acc"] > 0.8
    assert all(0 <= r["train_acc"] <= 1 and r["iter_seconds"] > 0 for r in rows)
    assert all(a["elapsed_seconds"] <= b["elapsed_seconds"] for a, b in zip(rows, rows[1:]))


def test_run_folder(tiny_csv, tmp_path):
    cfg = _cfg(tiny_csv, iterations=12)
    status = run(cfg, tmp_path / "r")
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == ["config.json", "confusion.csv", "metrics.csv", "params.npz", "status.json"]
    conf = json.loads((tmp_path / "r" / "config.json").read_text())
    assert conf["layers"] == [16, 12, 10] and conf["run_id"] == status["run_id"]
    assert {"host", "pid", "numpy", "blas_threads"} <= set(conf)
    assert RunConfig.from_saved(conf) == cfg
    with open(tmp_path / "r" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(store.METRIC_COLUMNS)
    assert len(rows) == 12 and rows[0]["val_acc"] == "" and rows[4]["val_acc"] != ""
    assert status["status"] == "done"
    counts = np.loadtxt(tmp_path / "r" / "confusion.csv", delimiter=",", skiprows=1, dtype=int)[:, 1:]
    assert counts.shape == (10, 10) and counts.sum() == conf["n_val"]
    assert np.trace(counts) / counts.sum() == pytest.approx(status["final_val_acc"])
    params = store.load_params(tmp_path / "r" / "params.npz")
    assert [W.shape for W, _ in params] == [(16, 12), (12, 10)] and params[0][0].dtype == np.float32
    # the final train figures cover every training row, with the saved parameters
    _, split = prepare(cfg)
    loss, acc = mlp.evaluate(params, split.X_train, split.y_train)
    assert status["final_train_acc"] == acc and status["final_train_loss"] == loss
    assert status["final_val_acc"] == mlp.accuracy(params, split.X_val, split.y_val)


def test_divergence_is_a_result(tiny_csv, tmp_path):
    status = run(_cfg(tiny_csv, lr=1e6, iterations=50, init="article"), tmp_path / "r")
    assert status["status"] == "diverged"
    assert status["iterations_run"] < 50
    assert "over 100x the first loss" in status["reason"]


def test_cli_train_writes_a_run(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--path", str(tiny_csv), "--layers", "16,8,10", "--iterations", "15",
                 "--validation", "0.2", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "64",
                 "--dtype", "float64", "--seed", "3", "--out", str(out), "--quiet"])
    assert code == 0
    conf = json.loads((out / "config.json").read_text())
    assert conf["optimizer"] == "adam" and conf["batch_size"] == 64 and conf["seed"] == 3
    assert conf["validation"] == 0.2 and conf["dtype"] == "float64"
    assert "done: 15 iterations" in capsys.readouterr().out


@pytest.mark.parametrize("argv,culprit", [
    (["--layers", "16,x,10"], "--layers"),
    (["--lr", "fast"], "--lr"),
    (["--lr", "-1"], "lr = -1.0 must be positive"),
    (["--optimizer", "adamw"], "did you mean 'adam'"),
    (["--iterations", "0"], "iterations = 0 must be positive"),
    (["--layers", "20,10"], "start at 20, but the data has 16 features"),
    (["--layers", "16,5"], "end at 5, but the data has 10 classes"),
    (["--layers", "16,8,10", "--validation", "test"], "has no test split"),
    (["--bogus", "1"], "unrecognized arguments: --bogus"),
])
def test_cli_bad_flags_one_line_exit_2(tiny_csv, tmp_path, capsys, argv, culprit):
    code = main(["train", "--path", str(tiny_csv), "--validation", "0.2", "--out", str(tmp_path / "o"), "--quiet"] + argv)
    err = capsys.readouterr().err
    assert code == 2
    assert culprit in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_missing_data_path(tmp_path, capsys):
    assert main(["train", "--path", str(tmp_path / "none.csv"), "--quiet"]) == 2
    assert "none.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_lists_commands():
    out = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout


def test_config_is_strict():
    with pytest.raises(ConfigError, match="unknown key 'lrr'; did you mean 'lr'"):
        RunConfig.from_dict({"lrr": 0.1})
    with pytest.raises(ConfigError, match="iterations must be an integer, got a string 'many'"):
        RunConfig.from_dict({"iterations": "many"})
    with pytest.raises(ConfigError, match="article_bias_grad must be true or false"):
        RunConfig.from_dict({"article_bias_grad": 1})
    with pytest.raises(ConfigError, match="'gd' is full batch"):
        RunConfig(batch_size=10)
    a, b = RunConfig(lr=0.1), RunConfig.from_dict({"lr": 0.1, "layers": [784, 10, 10]})
    assert a == b and a.run_id("x") == b.run_id("x") != a.run_id("y") != a.replace(seed=1).run_id("x")



def test_thread_pool_follows_its_file_without_changing_the_numbers(tiny_csv, tmp_path, monkeypatch):
    from harness.parallel import Threads

    monkeypatch.setattr(mlp, "ROW_CHUNK", 32)  # several chunks even on tiny data
    follow = tmp_path / ".threads"
    follow.write_text("1\n")
    pool = Threads(1, follow)
    assert pool.n == 1 and list(pool.map(lambda x: x * 2, [1, 2])) == [2, 4]
    follow.write_text("3\n")
    pool.next_check = 0  # skip the once-a-second wait
    list(pool.map(abs, [1, -2]))
    assert pool.n == 3 and pool.executor is not None
    follow.write_text("garbage")
    pool.next_check = 0
    list(pool.map(abs, [1]))
    assert pool.n == 3  # unreadable: keep the current size
    pool.close()

    cfg = _cfg(tiny_csv, iterations=25)
    plain = run(cfg, tmp_path / "a", threads=1)
    follow.write_text("2\n")
    grown = run(cfg, tmp_path / "b", threads=1, threads_file=follow)
    keys = ("final_train_acc", "final_val_acc", "final_train_loss", "best_val_acc")
    assert [plain[k] for k in keys] == [grown[k] for k in keys]
    assert (tmp_path / "a" / "metrics.csv").read_text().split("\n")[1].split(",")[:4] == \
        (tmp_path / "b" / "metrics.csv").read_text().split("\n")[1].split(",")[:4]


def test_every_setting_has_help():
    from dataclasses import fields

    from harness.config import HELP

    assert set(HELP) == {f.name for f in fields(RunConfig)}
