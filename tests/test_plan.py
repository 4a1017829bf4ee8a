"""The plan (harness.plan): computed once per sweep. The calls that cost
(the Dask scheduler asked for its workers, the calibration loaded, the run
folders read for their measured speed) are counted through a whole tuned
halving sweep: rungs and confirmation runs included."""
import dataclasses

import pytest

from harness import backend, calibration, estimate, plan as planmod, sweep as sweepmod
from harness.grid import load_sweep
from harness.sweep import run_sweep

GRID = """
[sweep]
name = "counted"
jobs = 2
seeds = [0]
strategy = "halving"
eta = 2
min_iterations = 10

[data]
path = "{data}"
validation = 0.25

[train]
iterations = 20
eval_every = 5
lr = 0.5

[grid]
depth = [1]
width = [8, 12]

[tune]
trials = 2
seed = 0
confirm_seeds = 1
lr = {{ log_uniform = [0.05, 1.0] }}
"""


@pytest.fixture
def counted(monkeypatch):
    """Counts of the costly calls, made through the real functions."""
    calls = {"dask": 0, "calibration": 0, "scan": 0}

    def count(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper
    monkeypatch.setattr(backend, "dask_workers", count("dask", lambda address: 2))
    monkeypatch.setattr(calibration, "machine_model", count("calibration", calibration.machine_model))
    monkeypatch.setattr(planmod, "measured_runs", count("scan", estimate.measured_runs))
    return calls


def _grid(tmp_path, tiny_csv):
    path = tmp_path / "grid.toml"
    path.write_text(GRID.format(data=tiny_csv.name))
    return path


@pytest.mark.slow
def test_a_whole_halving_sweep_with_confirmation_asks_each_once(tmp_path, tiny_csv, counted, monkeypatch):
    sweep = load_sweep(_grid(tmp_path, tiny_csv), scheduler="tcp://127.0.0.1:1")  # a Dask sweep
    assert sweep.backend == "dask"
    real = sweepmod.execute
    runs = []

    def local(swept, *args, **kwargs):  # train on local workers: no cluster, the plan's calls still counted
        runs.append(len(args[1]))
        return real(dataclasses.replace(swept, backend="loky"), *args, **kwargs)
    monkeypatch.setattr(sweepmod, "execute", local)
    assert run_sweep(sweep, tmp_path / "out", report=False) == 0
    assert len(runs) >= 3  # two rungs and the confirmation: three estimates after the plan's
    assert counted == {"dask": 1, "calibration": 1, "scan": 1}
    assert (tmp_path / "out" / "counted" / "tuned.csv").exists()


@pytest.mark.slow
def test_the_dry_run_plan_asks_each_once_and_writes_nothing(tmp_path, tiny_csv, counted):
    sweep = load_sweep(_grid(tmp_path, tiny_csv), scheduler="tcp://127.0.0.1:1")
    out = tmp_path / "out" / "counted"
    plan = planmod.make_plan(sweep, out, dry_run=True)
    lines = planmod.describe(plan)
    assert counted == {"dask": 1, "calibration": 1, "scan": 1}
    assert not (tmp_path / "out").exists()
    assert lines[0] == f"4 runs in sweep 'counted' ({sweep.path})"
    assert lines[-1].endswith("with 2 workers")  # the cluster's two threads
    assert any(line.startswith("successive halving (eta 2): rung 1 to iteration 10: at most 4 configurations")
               for line in lines)
    # a later estimate asks the plan: nothing is probed or read again
    plan.price(plan.todo[:2], iterations={r: 5 for r, _ in plan.todo[:2]})
    assert counted == {"dask": 1, "calibration": 1, "scan": 1}


def test_an_unreachable_scheduler_is_said_once(tmp_path, tiny_csv, monkeypatch):
    monkeypatch.setattr(backend, "dask_workers", lambda address: None)
    said = []
    sweep = load_sweep(_grid(tmp_path, tiny_csv), scheduler="tcp://127.0.0.1:1")
    plan = planmod.make_plan(sweep, tmp_path / "out" / "counted", say=said.append, dry_run=True)
    plan.price(plan.todo)
    assert [s for s in said if "not reachable" in s] == [
        "dask scheduler tcp://127.0.0.1:1 not reachable: estimating for 2 workers"]


@pytest.mark.slow
def test_nothing_to_train_is_not_priced(tmp_path, tiny_csv, counted):
    grid = _grid(tmp_path, tiny_csv)
    grid.write_text(grid.read_text().split("[tune]")[0].replace('strategy = "halving"', 'strategy = "grid"'))
    sweep = load_sweep(grid)
    assert run_sweep(sweep, tmp_path / "out", report=False) == 0
    again = planmod.make_plan(sweep, tmp_path / "out" / "counted")
    assert again.todo == [] and len(again.done) == 2 and again.estimate.wall == 0.0 and again.refusal is None
    assert counted["calibration"] == 1  # the first sweep's alone
