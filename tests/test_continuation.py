"""Runs that stop and continue from a checkpoint reach exactly the numbers of
runs that never stopped; successive halving built on them."""
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from harness import store
from harness.cli import main
from harness.config import RunConfig
from harness.data import load_source
from harness.status import RunState, is_paused
from harness.train import run

from helpers import make_digits, write_csv
from helpers import slow_grid, start, sweep_without_report, wait_for

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
    assert first["status"] == RunState.PAUSED and first["paused_at"] == 23
    assert not (tmp_path / "paused" / "status.json").exists()
    assert (tmp_path / "paused" / store.CHECKPOINT).exists()
    for stop_at, threads in ((41, 1), (None, 2)):  # early stopping may end it before 41
        last = run(cfg, tmp_path / "paused", source=source, threads=threads, stop_at=stop_at)
        if not is_paused(last):
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


@pytest.mark.slow
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
    assert sweep_without_report(grid2, tmp_path / "clean") == 0  # compared by its runs alone
    for run_id in summary.run_id:
        _same_run(root / "runs" / run_id, tmp_path / "clean" / "slow" / "runs" / run_id)


# --- successive halving ------------------------------------------------------------
