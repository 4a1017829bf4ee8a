"""Runs that stop and continue from a checkpoint reach exactly the numbers of
runs that never stopped; successive halving built on them."""
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from harness import halving, store
from harness.cli import main
from harness.config import RunConfig
from harness.data import load_source
from harness.train import run

from helpers import make_digits, write_csv
from test_faults import slow_grid, start, wait_for

NUMBERS = ["iteration", "train_loss", "train_acc", "val_acc"]


def _source(tmp_path):
    X, y = make_digits(300)
    return load_source(path=str(write_csv(tmp_path / "d.csv", X, y)))


def _same_run(a, b):
    ma, mb = (pd.read_csv(d / "metrics.csv") for d in (a, b))
    pd.testing.assert_frame_equal(ma[NUMBERS], mb[NUMBERS])
    pa, pb = store.load_params(a / "params.npz"), store.load_params(b / "params.npz")
    for (Wa, ba), (Wb, bb) in zip(pa, pb):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


@pytest.mark.parametrize("settings", [
    {"optimizer": "gd", "lr": 0.5},
    {"optimizer": "sgd", "lr": 0.2, "batch_size": 32, "dropout": 0.2},
    {"optimizer": "momentum", "lr": 0.05, "batch_size": 50, "lr_schedule": "step", "lr_step_every": 13},
    {"optimizer": "adam", "lr": 0.01, "batch_size": 64, "dropout": 0.3, "lr_schedule": "cosine", "warmup": 5},
    {"optimizer": "adam", "lr": 0.01, "batch_size": 40, "early_stopping": 2, "weight_decay": 1e-3},
])
def test_a_run_paused_and_continued_matches_one_that_never_stopped(tmp_path, settings):
    source = _source(tmp_path)
    cfg = RunConfig(layers=(16, 12, 10), iterations=60, eval_every=5, validation=0.25, path="d.csv", **settings)
    straight = run(cfg, tmp_path / "straight", source=source, threads=1)
    first = run(cfg, tmp_path / "paused", source=source, threads=2, stop_at=23)
    assert first["status"] is None and first["paused_at"] == 23
    assert not (tmp_path / "paused" / "status.json").exists()
    assert (tmp_path / "paused" / store.CHECKPOINT).exists()
    for stop_at, threads in ((41, 1), (None, 2)):  # early stopping may end it before 41
        last = run(cfg, tmp_path / "paused", source=source, threads=threads, stop_at=stop_at)
        if last["status"] is not None:
            break
        assert last["paused_at"] == 41
    assert last["status"] == straight["status"] and last["iterations_run"] == straight["iterations_run"]
    assert last["final_val_acc"] == straight["final_val_acc"] and last["kept_iteration"] == straight["kept_iteration"]
    _same_run(tmp_path / "straight", tmp_path / "paused")
    assert not (tmp_path / "paused" / store.CHECKPOINT).exists()  # finished: nothing left to continue


def test_rows_written_after_the_checkpoint_are_dropped_on_continuing(tmp_path):
    source = _source(tmp_path)
    cfg = RunConfig(layers=(16, 10), iterations=30, eval_every=5, validation=0.25, optimizer="adam", lr=0.01,
                    batch_size=32, path="d.csv")
    run(cfg, tmp_path / "straight", source=source)
    run(cfg, tmp_path / "b", source=source, stop_at=12)
    # as if killed at iteration 17, after the checkpoint at 12: rows 13-17 written, state not saved
    part = (tmp_path / "b" / "metrics.csv.part")
    extra = "".join(f"{i},9.0,0.5,,0.001,1.0\n" for i in range(13, 18))
    part.write_text(part.read_text() + extra + "18,9.")
    run(cfg, tmp_path / "b", source=source)
    _same_run(tmp_path / "straight", tmp_path / "b")


def test_a_sweep_killed_with_sigkill_continues_its_runs_from_their_checkpoints(tmp_path, capsys):
    grid = slow_grid(tmp_path, iterations=4000)
    grid.write_text(grid.read_text().replace("[sweep]\n", "[sweep]\ncheckpoint_seconds = 0.3\n")
                    .replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0, 1]"))
    out, root = tmp_path / "out", tmp_path / "out" / "slow"
    proc = start(grid, out)
    try:
        wait_for(lambda: sum(store.load_checkpoint(d) is not None
                             for d in (root / "runs").glob("*")) == 2 if (root / "runs").is_dir() else False)
        saved = {d.name: store.load_checkpoint(d)[1]["iteration"] for d in (root / "runs").glob("*")}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.0)  # the orphan guard stops the runs
    assert all(0 < it < 4000 for it in saved.values())
    capsys.readouterr()
    code = main(["sweep", str(grid), "--out", str(out)])
    assert code == 0
    assert "continuing 2 runs from their checkpoint" in capsys.readouterr().err
    summary = pd.read_csv(root / "summary.csv")
    assert set(summary.status) == {"done"}
    for run_id in summary.run_id:
        m = pd.read_csv(root / "runs" / run_id / "metrics.csv")
        assert list(m.iteration) == list(range(1, 4001))  # no duplicated or missing rows
    # the same numbers as a sweep never killed
    grid2 = tmp_path / "again.toml"
    grid2.write_text(grid.read_text().replace("checkpoint_seconds = 0.3", "checkpoint_seconds = 0"))
    assert main(["sweep", str(grid2), "--out", str(tmp_path / "clean"), "--quiet"]) == 0
    for run_id in summary.run_id:
        _same_run(root / "runs" / run_id, tmp_path / "clean" / "slow" / "runs" / run_id)


# --- successive halving ------------------------------------------------------------

def test_rungs_and_who_goes_on():
    assert halving.rungs(100, 3, 2000) == [100, 300, 900, 2000]
    assert halving.rungs(100, 2, 400) == [100, 200, 400]
    assert [halving.keep_count(n, 3) for n in (27, 9, 3, 2, 1)] == [9, 3, 1, 1, 1]
    scores = {"a": 0.90, "b": 0.95, "c": 0.95, "d": float("nan"), "e": 0.5, "f": 0.97}
    assert halving.promote(list("abcdef"), scores, 3) == ["b", "f"]  # b before c: listed first
    assert halving.promote(list("abcdef"), scores, 2) == ["b", "c", "f"]


HALVING = """
[sweep]
name = "halves"
jobs = {jobs}
seeds = [0, 1]
strategy = "halving"
eta = 3
min_iterations = 10

[data]
path = "{data}"
validation = 0.25

[train]
iterations = 90
eval_every = 10
optimizer = "adam"
batch_size = 32

[grid]
layers = [[16, 10], [16, 8, 10], [16, 16, 10]]
lr = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
"""


def _halving_sweep(tmp_path, tiny_csv, jobs, name):
    grid = tmp_path / f"{name}.toml"
    grid.write_text(HALVING.format(jobs=jobs, data=tiny_csv.name))
    assert main(["sweep", str(grid), "--out", str(tmp_path / name), "--quiet"]) == 0
    return pd.read_csv(tmp_path / name / "halves" / "summary.csv")


def test_halving_stops_losers_and_decides_the_same_with_one_or_two_jobs(tmp_path, tiny_csv, capsys):
    one = _halving_sweep(tmp_path, tiny_csv, 1, "one")
    two = _halving_sweep(tmp_path, tiny_csv, 2, "two")
    cols = ["run_id", "status", "iterations_run", "rung", "final_val_acc", "final_train_loss"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    # 27 configurations: 9 reach 30 iterations, 3 reach 90 (the end); rungs 1 and 2 stop the rest
    finished = one[one.status.isin(["done", "diverged"]) & (one.iterations_run == 90)]
    assert len(finished) == 3 * 2
    stopped = one[one.status == "stopped"]
    assert sorted(stopped.rung.unique()) == [1, 2]
    assert (stopped[stopped.rung == 1].iterations_run == 10).all() and (stopped[stopped.rung == 2].iterations_run == 30).all()
    # the promoted ones were the best at their rung
    root = tmp_path / "one" / "halves"
    comparison = pd.read_csv(root / "comparison.csv")
    assert comparison.n.sum() == len(one[one.status.isin(["done", "diverged"])])  # stopped runs left out
    md = (root / "report.md").read_text()
    assert "## Halving" in md and "of the training FLOPs" in md


def test_halving_dry_run_shows_the_rungs(tmp_path, tiny_csv, capsys):
    grid = tmp_path / "h.toml"
    grid.write_text(HALVING.format(jobs=2, data=tiny_csv.name))
    assert main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert ("successive halving (eta 3): rung 1 to iteration 10: at most 27 configurations (54 runs); "
            "rung 2 to iteration 30: at most 9 configurations (18 runs); "
            "rung 3 to iteration 90: at most 3 configurations (6 runs)") in out
    grid.write_text(HALVING.format(jobs=2, data=tiny_csv.name).replace("min_iterations = 10", "min_iterations = 15"))
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    assert "a multiple of its eval_every" in capsys.readouterr().err


def test_a_halving_sweep_killed_mid_rung_resumes_to_the_same_decisions(tmp_path, tiny_csv, capsys):
    import subprocess
    import sys

    text = (HALVING.format(jobs=2, data=tiny_csv.name)
            .replace("iterations = 90", "iterations = 2700").replace("min_iterations = 10", "min_iterations = 100")
            .replace("eval_every = 10", "eval_every = 100").replace("seeds = [0, 1]", "seeds = [0]")
            .replace("[sweep]\n", "[sweep]\ncheckpoint_seconds = 0.2\n"))
    killed, clean = tmp_path / "killed.toml", tmp_path / "clean.toml"
    killed.write_text(text)
    clean.write_text(text.replace("checkpoint_seconds = 0.2", "checkpoint_seconds = 0"))
    root = tmp_path / "k" / "halves"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(killed), "--out", str(tmp_path / "k"),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # killed once some configurations are stopped (rung 1 decided) and others train on
        wait_for(lambda: len(list(root.glob("runs/*/status.json"))) >= 5
                 and any(store.load_checkpoint(d) for d in root.glob("runs/*")), seconds=120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.0)
    assert main(["sweep", str(killed), "--out", str(tmp_path / "k"), "--quiet"]) == 0
    assert main(["sweep", str(clean), "--out", str(tmp_path / "c"), "--quiet"]) == 0
    cols = ["run_id", "status", "iterations_run", "rung", "final_val_acc", "final_train_loss"]
    a, b = (pd.read_csv(tmp_path / d / "halves" / "summary.csv")[cols] for d in ("k", "c"))
    pd.testing.assert_frame_equal(a, b)
    assert (a.status == "stopped").sum() > 0


def test_mean_validation_at_a_rung_from_constructed_metrics(tmp_path):
    from harness.strategy import mean_val_at

    rows = {"a": "1,2.0,0.1,,0.01,0.1\n2,1.5,0.2,0.50,0.01,0.2\n",
            "b": "1,2.0,0.1,,0.01,0.1\n2,1.4,0.3,0.70,0.01,0.2\n",
            "c": "1,2.0,0.1,,0.01,0.1\n"}  # c never reached iteration 2: counts as 0
    for run_id, text in rows.items():
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        (tmp_path / "runs" / run_id / "metrics.csv.part").write_text(
            "iteration,train_loss,train_acc,val_acc,iter_seconds,elapsed_seconds\n" + text)
    assert mean_val_at(tmp_path, [("a", None), ("b", None)], 2) == pytest.approx(0.6)
    assert mean_val_at(tmp_path, [("a", None), ("c", None)], 2) == pytest.approx(0.25)
    scores = {"ab": 0.6, "ac": 0.25, "bb": 0.7}
    assert halving.promote(["ab", "ac", "bb"], scores, 2) == ["bb"]


def test_stopping_a_run_finishes_when_a_kill_came_between_its_two_steps(tmp_path):
    # stop_run renames metrics.csv.part, then writes status.json; a sweep killed
    # in between leaves metrics.csv without a status, and the resumed sweep
    # stops that run again.
    from harness.strategy import stop_run

    run = tmp_path / "runs" / "abc"
    run.mkdir(parents=True)
    header = "iteration,train_loss,train_acc,val_acc,iter_seconds,elapsed_seconds\n"
    (run / "metrics.csv").write_text(header + "1,2.0,0.1,,0.01,0.1\n2,1.5,0.2,0.50,0.01,0.2\n")
    stop_run(run, 1, 2)
    status = store.read_status(run)
    assert status["status"] == "stopped" and status["rung"] == 1 and status["iterations_run"] == 2
    assert status["final_val_acc"] == 0.5 and not (run / "metrics.csv.part").exists()
