"""harness status on constructed results folders."""
import json
import statistics

import pytest

from harness import store
from harness.cli import main
from harness.sweep import locked
from harness.sweep_status import progress, sweep_eta


def _folder(root):
    """Three planned runs: one done, one running (40 of 100 iterations in 8 s), one not started."""
    runs = {"aaa": {"layers": "784-10-10", "seed": 0, "iterations": 100, "flops_per_iter": 1e6},
            "bbb": {"layers": "784-32-10", "seed": 0, "iterations": 100, "flops_per_iter": 2e6},
            "ccc": {"layers": "784-64-10", "seed": 0, "iterations": 100, "flops_per_iter": 4e6}}
    (root / "runs").mkdir(parents=True)
    store.atomic_write_json(root / store.PLAN, {"name": "demo", "grid": "g.toml", "jobs": 2, "runs": runs})
    (root / "runs" / "aaa").mkdir()
    store.write_status(root / "runs" / "aaa", {"status": "done", "run_id": "aaa", "iterations_run": 100,
                                                "final_val_acc": 0.9, "total_seconds": 10.0})
    (root / "runs" / "bbb").mkdir()
    (root / "runs" / "bbb" / "config.json").write_text(json.dumps({}))
    lines = ["iteration,train_loss,train_acc,val_acc,iter_seconds,elapsed_seconds"]
    lines += [f"{i},1.0,0.5,{'0.8' if i % 20 == 0 else ''},0.2,{0.2 * i}" for i in range(1, 41)]
    (root / "runs" / "bbb" / "metrics.csv.part").write_text("\n".join(lines) + "\n41,1.0")  # a half-written row
    return root


@pytest.mark.slow
def test_status_of_a_running_sweep(tmp_path, capsys):
    root = _folder(tmp_path / "demo")
    with locked(root, print):  # as the running sweep holds it
        plan, running, runs = progress(root)
        assert running and [r["state"] for r in runs] == ["done", "running", "waiting"]
        bbb = runs[1]
        assert bbb["iteration"] == 40 and bbb["val_acc"] == 0.8
        assert bbb["eta_seconds"] == pytest.approx(8.0 / 40 * 60)
        # the rest: bbb's 12 s, and ccc's 4e8 FLOPs at aaa's 10 s per 1e8 FLOPs over 2 workers
        assert sweep_eta(plan, runs) == pytest.approx(12.0 + 40.0 / 2)
        assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "sweep 'demo'" in out and "running; 1 done, 1 running, 1 waiting of 3 runs" in out
    assert "running: bbb 784-32-10 seed 0: iteration 40 of 100, validation 80.00%, about 12 s left" in out
    assert "sweep: about 32 s left" in out  # 12 s, then 40 s of runs over 2 workers


@pytest.mark.slow
def test_status_after_the_sweep_died_and_of_a_folder_without_a_sweep(tmp_path, capsys):
    root = _folder(tmp_path / "demo")
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "not running" in out and "cut short: bbb" in out and "left" not in out.split("\n")[1]
    assert main(["status", str(tmp_path)]) == 2
    assert "no plan.json here" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_writes_its_plan(tmp_path, tiny_csv):
    from helpers import GRID, sweep_without_report, write_grid

    grid = write_grid(tmp_path, tiny_csv, text=GRID.replace("seeds = [0, 1]", "seeds = [0]"))
    assert sweep_without_report(grid, tmp_path / "out") == 0  # its plan and run records alone are read
    plan, running, runs = progress(tmp_path / "out" / "tiny")
    assert not running and len(runs) == 7 and {r["state"] for r in runs} == {"done"}
    assert {r["iterations"] for r in runs} == {30, 40}


def test_the_run_model_fits_a_fixed_cost_per_run_iteration_and_flop():
    from harness.sweep_status import run_seconds_model

    # seconds = 2 + 0.01 per iteration + 1e-9 per FLOP, exactly
    runs = [{"iterations": it, "flops": fl, "seconds": 2 + 0.01 * it + 1e-9 * fl}
            for it, fl in ((100, 1e9), (200, 5e9), (400, 2e9), (800, 8e9), (50, 3e9))]
    model = run_seconds_model(runs)
    assert model(1000, 4e9) == pytest.approx(2 + 10 + 4, rel=1e-9)
    # with fewer than four finished runs: their median seconds per FLOP
    assert run_seconds_model(runs[:2])(0, 1e9) == pytest.approx(statistics.median(
        [r["seconds"] / r["flops"] for r in runs[:2]]) * 1e9)
    assert run_seconds_model([]) is None


def test_status_eta_uses_the_sweeps_estimates_at_the_finished_runs_pace(tmp_path):
    root = _folder(tmp_path / "demo")
    plan = store.read_json(root / store.PLAN)
    for run_id, est in (("aaa", 5.0), ("bbb", 30.0), ("ccc", 20.0)):
        plan["runs"][run_id]["estimated_seconds"] = est
    store.atomic_write_json(root / store.PLAN, plan)
    with locked(root, print):
        plan, running, runs = progress(root)
        # aaa took 10 s against 5 estimated: ccc's 20 s become 40, over 2 workers, after bbb's 12 s
        assert sweep_eta(plan, runs) == pytest.approx(12.0 + 40.0 / 2)
