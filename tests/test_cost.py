"""The cost model: scheduling, refinement, the fit, the cache, the budget and
the plan a dry run shows."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from harness import calibration, cost, plan as planmod, store
from harness.cli import main
from harness.config import RunConfig
from harness.axes import parse_duration
from harness.grid import load_sweep
from harness.errors import ConfigError
from harness.progress import Lines

from helpers import fake_model, write_grid


# --- the scheduler simulation, on costs worked out by hand --------------------

def test_longest_first_over_two_workers():
    # 4 and 3 start; 2 follows the 3 (3..5), 1 follows the 4 (4..5)
    assert cost.simulate([(1, 1), (3, 3), (2, 2), (4, 4)], jobs=2, cores=2) == pytest.approx(5.0)


def test_the_last_run_takes_over_the_idle_core():
    # 10 s on one thread, 5 s on two. Beside a 2 s run it does 2 s of its 10 at one
    # thread, then 0.8 of its work on two threads: 0.8 * 5 = 4 s more.
    assert cost.simulate([(10, 5), (2, 2)], jobs=2, cores=2) == pytest.approx(6.0)
    # Dask workers keep one thread: 10 s
    assert cost.simulate([(10, 5), (2, 2)], jobs=2, cores=2, takeover=False) == pytest.approx(10.0)


def test_one_worker_runs_everything_on_every_core_and_sharing_slows_down():
    assert cost.simulate([(10, 5), (2, 1.5)], jobs=1, cores=2) == pytest.approx(6.5)
    assert cost.simulate([], jobs=2, cores=2) == 0.0
    # two 2 s runs side by side at 1.5x slower each: 3 s
    slow = cost.simulate([(2, 2), (2, 2)], jobs=2, cores=2, slowdown=lambda n, share: 1.5 if n > 1 else 1.0)
    assert slow == pytest.approx(3.0)


def test_memory_bound_runs_slow_each_other_more():
    model = fake_model()
    model.contention, model.contention_memory = 1.1, 1.5
    assert model.slowdown(1, 0.9) == 1.0
    assert model.slowdown(2, 0.0) == pytest.approx(1.1) and model.slowdown(2, 1.0) == pytest.approx(1.5)
    assert model.slowdown(2, 0.5) == pytest.approx(1.3)
    # the run's share: a narrow net on many rows is mostly elements, a wide one mostly FLOPs
    narrow = model.memory_share(RunConfig(layers=(784, 10, 10)), 8192)
    wide = model.memory_share(RunConfig(layers=(784, 1024, 1024, 10)), 8192)
    assert 0 <= wide < narrow <= 1


def test_between_one_thread_and_all_cores_time_is_linear_in_one_over_threads():
    # 4 cores: 1 thread 8 s, 4 threads 2 s; 2 threads: 1/2 is 2/3 of the way from 1 to 1/4
    assert cost._seconds_at((8.0, 2.0), 2, 4) == pytest.approx(8.0 - 6.0 * (0.5 / 0.75))


# --- refinement and the fit --------------------------------------------------

def test_refine_uses_a_runs_own_ratio_else_the_median():
    predicted = {"a": 10.0, "b": 20.0}
    measured = {"a": (2.0, 1.0), "c": (3.0, 2.0)}  # per iteration: measured, predicted
    assert cost.refine(predicted, measured) == {"a": 20.0, "b": pytest.approx(20.0 * 1.75)}
    assert cost.refine(predicted, {}) == predicted


def test_nonnegative_fit_recovers_known_coefficients_and_drops_negative_ones():
    rng = np.random.default_rng(0)
    A = rng.random((12, 3)) + 0.1
    true = np.array([2.0, 0.0, 0.5])
    assert calibration._nonnegative_fit(A, A @ true) == pytest.approx(true, abs=1e-9)
    # times that the second feature could only explain with a negative coefficient
    t = A @ np.array([1.0, 0.0, 1.0]) - 0.05 * A[:, 1]
    fit = calibration._nonnegative_fit(A, np.maximum(t, 1e-3))
    assert (fit >= 0).all() and fit[1] == 0.0


def test_features_count_the_busiest_thread():
    one = cost.step_features((784, 256, 128, 64, 10), 128, threads=1)
    two = cost.step_features((784, 256, 128, 64, 10), 128, threads=2)  # 2 chunks of 64 rows
    assert one[1] == 4 * 2 and two[1] == 4 * 1
    assert two[2] == pytest.approx(one[2] / 2) and two[3] == pytest.approx(one[3] / 2)
    assert cost.pass_features((784, 10), 0, 1).sum() == 0.0


# --- the cache ------------------------------------------------------------------


def test_the_calibration_is_cached_and_redone_when_the_blas_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(calibration, "calibrate", lambda: calls.append(1) or fake_model())
    first = calibration.machine_model()
    assert calibration.machine_model().coef == first.coef and len(calls) == 1
    mine = calibration.cache_path()
    saved = json.loads(mine.read_text())
    assert saved["identity"]["numpy"] == np.__version__
    # a different BLAS (faked): measured again, into a file of its own
    monkeypatch.setattr(calibration, "blas_identity", lambda: {"internal_api": "mkl", "version": "2099.0"})
    calibration.machine_model()
    assert len(calls) == 2 and calibration.cache_path() != mine and json.loads(mine.read_text()) == saved
    calibration.machine_model()
    assert len(calls) == 2
    calibration.cache_path().write_text("{ half a file")
    calibration.machine_model()
    assert len(calls) == 3


def test_a_real_calibration_prices_bigger_runs_higher(machine_cache):
    model = calibration.machine_model()  # this session's calibration, measured once
    for table in model.coef.values():
        assert all(c >= 0 for coefs in table.values() for c in coefs)
    rows = cost.Rows(54000, 6000, 10000)
    small = RunConfig(layers=(784, 32, 10), optimizer="adam", batch_size=128, iterations=100)
    big = small.replace(layers=(784, 512, 512, 10))
    assert 0 < model.train_seconds(small, rows, 100, 1) < model.train_seconds(big, rows, 100, 1)
    assert model.train_seconds(big, rows, 200, 1) > model.train_seconds(big, rows, 100, 1)
    assert model.contention >= 1.0 and model.worker_start > 0


# --- budget, dry run and the summary's estimate ---------------------------------

def test_durations():
    assert parse_duration("45m", "x") == 2700 and parse_duration("1.5h", "x") == 5400
    assert parse_duration("90s", "x") == 90
    for bad in ("45", "m", "-3m", "3d", 45, "0s"):
        with pytest.raises(ConfigError, match="x: .* is not a duration"):
            parse_duration(bad, "x")


@pytest.mark.slow
def test_a_sweep_over_budget_is_refused_before_anything_runs(tmp_path, tiny_csv, capsys):
    grid = write_grid(tmp_path, tiny_csv)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out), "--budget", "0.01s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("harness: error: estimated training wall time ")
    assert re.search(r"exceeds the budget of 0\.0 s; the costliest runs: 16-[-\d]+ seed \d \(", err[-1])
    assert not out.exists()  # a refusal writes nothing (see test_reliability3 for more)
    # in the file too, and a bad one is named
    text = grid.read_text().replace("[sweep]\n", "[sweep]\nbudget = \"0.01s\"\n")
    grid.write_text(text)
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 2
    grid.write_text(text.replace('"0.01s"', "45"))
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 2
    assert "[sweep] budget: 45 is not a duration" in capsys.readouterr().err
    assert main(["sweep", str(grid), "--out", str(out), "--quiet", "--budget", "soon"]) == 2
    assert "flag --budget: 'soon' is not a duration" in capsys.readouterr().err


@pytest.mark.slow
def test_dry_run_gives_estimates_and_a_parsable_wall_time(tmp_path, tiny_csv, capsys):
    grid = write_grid(tmp_path, tiny_csv)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--dry-run", "--out", str(out), "--jobs", "1"]) == 0
    text = capsys.readouterr().out
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(r"estimated training wall time: \d+\.\d s with 1 worker", last)
    assert "estimated" in text.splitlines()[3]  # the table's column
    # once runs are finished, they refine the estimate, and it says so
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 0
    summary = pd.read_csv(out / "tiny" / "summary.csv")
    assert (summary.estimated_seconds > 0).all() and (summary.total_seconds > 0).all()
    assert main(["sweep", str(grid), "--dry-run", "--out", str(out), "--force"]) == 0
    text = capsys.readouterr().out
    assert "estimates refined by 14 finished runs" in text
    assert "14 already finished there, retrained (--force): 14 to train" in text


def test_estimate_of_nothing_left_is_zero(tmp_path, tiny_csv):
    sweep = load_sweep(write_grid(tmp_path, tiny_csv))
    est = planmod.estimate(sweep, tmp_path / "none", [], fake_model(), 2)
    assert est.wall == 0.0 and est.seconds == {}


# --- progress ---------------------------------------------------------------------

def test_progress_lines_weigh_runs_by_cost(tmp_path, tiny_csv, capsys):
    sweep = load_sweep(write_grid(tmp_path, tiny_csv))
    todo = list(zip(sweep.run_ids, sweep.runs))[:3]
    ids = [r for r, _ in todo]
    est = planmod.Estimate({r: 10.0 for r in ids}, 30.0, 1, 0,
                           tasks={ids[0]: (20.0, 20.0, 0.0), ids[1]: (10.0, 10.0, 0.0), ids[2]: (10.0, 10.0, 0.0)},
                           iterations={r: 100 for r in ids}, cores=1, takeover=True)
    lines = Lines()
    lines.started(est, todo)
    lines.advanced(ids[0], 50)  # half of the costliest run: a quarter of the work
    assert lines.share_done() == pytest.approx(0.25)
    assert lines.eta() == pytest.approx(10.0 + 10.0 + 10.0)
    lines.finished({"run_id": ids[0], "status": "done", "final_val_acc": 0.5, "total_seconds": 20.0,
                    "iterations_run": 100})  # twice as slow as its estimate: the rest too
    assert lines.pace() == pytest.approx(2.0) and lines.eta() == pytest.approx(40.0)
    lines.finished({"run_id": ids[1], "status": "diverged", "final_val_acc": None, "total_seconds": 1.0,
                    "iterations_run": 5})
    err = capsys.readouterr().err.splitlines()
    first = todo[0][1]  # nothing but layers and seed varies among these runs
    assert err[0].startswith(f"done: {first.layers_str}, seed {first.seed}, validation 50.00%, "
                             "20.0 s (estimated 10.0 s); 1 done, 0 running, 2 left; about ")
    assert "2 done, 0 running, 1 left (1 diverged)" in err[1]


def test_progress_lines_of_a_tuned_sweep_name_the_trial_and_its_role(tmp_path, tiny_csv, capsys):
    from harness.executor import run_meta
    from helpers import TUNED

    sweep = load_sweep(write_grid(tmp_path, tiny_csv, TUNED))
    meta = run_meta(sweep)
    confirm = [(r, c) for r, c, _ in sweep.confirmation({0: 2})]
    todo = list(zip(sweep.run_ids, sweep.runs)) + confirm
    est = planmod.Estimate({r: 1.0 for r, _ in todo}, 1.0, 1, 0, tasks={r: (1.0, 1.0, 0.0) for r, _ in todo},
                           iterations={r: 30 for r, _ in todo}, cores=1, takeover=True)
    lines = Lines()
    lines.started(est, todo, meta)
    for run_id, _ in todo:
        lines.finished({"run_id": run_id, "status": "done", "final_val_acc": 0.5, "total_seconds": 1.0,
                        "iterations_run": 30})
    err = capsys.readouterr().err.splitlines()
    names = [line.split(", validation")[0] for line in err]
    assert len(set(names)) == len(todo)  # every line tells its run apart: no "16-8-10 seed 0" four times
    draws = sweep.tune.draws()
    i = next(i for i, (m, c) in enumerate(zip(sweep.meta, sweep.runs)) if m["trial"] == 3 and c.seed == 0)
    assert sweep.meta[i]["point"] == 0
    assert names[i] == (f"done: 16-8-10, lr {draws[3]['lr']:.3g}, momentum {draws[3]['momentum']:.3g} "
                        "(trial 3, search), seed 0")
    assert names[-1].startswith(f"done: 16-8-10, lr {draws[2]['lr']:.3g}") and "(trial 2, confirmation), seed 3" in names[-1]


def test_last_iteration_skips_a_half_written_row(tmp_path):
    (tmp_path / "metrics.csv.part").write_text("iteration,train_loss\n1,0.5\n2,0.4\n3,0.")
    assert store.last_iteration(tmp_path) == 2
    assert store.last_iteration(tmp_path / "none") is None
