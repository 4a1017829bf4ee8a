"""Successive halving (harness.halving, the Halving strategy in harness.strategy):
the pure decisions, and sweeps that halve, resume and decide alike."""
import os
import signal
import time

import pandas as pd
import pytest

from harness import halving, store
from harness.cli import main

from helpers import HALVING, HALVING_NINE, sweep_without_report, wait_for


def test_rungs_and_who_goes_on():
    assert halving.rungs(100, 3, 2000) == [100, 300, 900, 2000]
    assert halving.rungs(100, 2, 400) == [100, 200, 400]
    assert [halving.keep_count(n, 3) for n in (27, 9, 3, 2, 1)] == [9, 3, 1, 1, 1]
    scores = {"a": 0.90, "b": 0.95, "c": 0.95, "d": float("nan"), "e": 0.5, "f": 0.97}
    assert halving.promote(list("abcdef"), scores, 3) == ["b", "f"]  # b before c: listed first
    assert halving.promote(list("abcdef"), scores, 2) == ["b", "c", "f"]


def _halving_sweep(tmp_path, tiny_csv, jobs, name, report=True):
    grid = tmp_path / f"{name}.toml"
    grid.write_text(HALVING_NINE.format(jobs=jobs, data=tiny_csv.name))
    if report:
        assert main(["sweep", str(grid), "--out", str(tmp_path / name), "--quiet"]) == 0
    else:  # the summary alone: a report nobody reads costs seconds
        assert sweep_without_report(grid, tmp_path / name) == 0
    return pd.read_csv(tmp_path / name / "halves" / "summary.csv")


@pytest.mark.slow
def test_halving_stops_losers_and_decides_the_same_with_one_or_two_jobs(tmp_path, tiny_csv, capsys):
    one = _halving_sweep(tmp_path, tiny_csv, 1, "one")
    two = _halving_sweep(tmp_path, tiny_csv, 2, "two", report=False)
    cols = ["run_id", "status", "iterations_run", "rung", "final_val_acc", "final_train_loss"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    assert len(one) == 9 * 2 and one.iterations_run.max() == 90
    # 9 configurations: 3 reach 30 iterations, 1 reaches 90 (the end); rungs 1 and 2 stop the rest
    finished = one[one.status.isin(["done", "diverged"]) & (one.iterations_run == 90)]
    assert len(finished) == 1 * 2
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


@pytest.mark.slow
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
    assert sweep_without_report(clean, tmp_path / "c") == 0  # compared by its summary alone
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
