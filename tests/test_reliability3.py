"""Reliability III: what a new user and an attacker met (issue 27): BLAS
kernels, checkpoint-aware estimates, a noisy calibration and the cache,
refusals that leave nothing, duplicate values, loky's warnings after a
kill, plurals and validation rows."""
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness import calibration, data as datamod, plan as planmod, store
from harness.cli import main
from harness.config import HELP
from harness.errors import ConfigError
from harness.grid import load_sweep
from harness.progress import Lines
from harness.sweep import summary_row
from harness.blas import numpy_blas
from harness.train import run
from harness.words import count

from helpers import make_digits, write_csv
from helpers import fake_model
from helpers import GRID, sweep_without_report, write_grid

ROOT = Path(__file__).resolve().parents[1]

ONE_RUN = """
[sweep]
name = "one"
jobs = 1
seeds = [0]

[data]
path = "{data}"
validation = 0.25

[train]
layers = [16, 8, 10]
iterations = {iterations}
eval_every = 10
"""


def _grid(tmp_path, tiny_csv, iterations=30, text=ONE_RUN):
    path = tmp_path / "one.toml"
    path.write_text(text.format(data=tiny_csv.name, iterations=iterations))
    return path


def _tree(folder: Path):
    """Every path under ``folder`` with its bytes (None for a folder)."""
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


# --- 1. BLAS kernels --------------------------------------------------------------

def _kernel(env=None):
    out = subprocess.run([sys.executable, "-c", "from harness.blas import blas_info; "
                          "print(blas_info()['blas_kernel'])"], capture_output=True, text=True, env=env, cwd=ROOT)
    return out.stdout.strip()


@pytest.mark.slow
def test_the_tolerance_tests_pass_under_another_openblas_kernel():
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    if _kernel(env) != "Haswell" or _kernel() == "Haswell":
        pytest.skip("needs an OpenBLAS that can switch between the Haswell kernel and another")
    tests = ["tests/test_mlp.py", "tests/test_parallel.py::test_chunked_minibatch_equals_one_plain_pass"]
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]


@pytest.mark.slow
def test_config_json_records_the_blas_kernel_outside_the_run_id(tmp_path, tiny_csv):
    grid = _grid(tmp_path, tiny_csv)
    sweep = load_sweep(grid)
    assert sweep_without_report(grid, tmp_path / "out") == 0  # its run folder alone is read
    folder = tmp_path / "out" / "one" / "runs" / sweep.run_ids[0]
    conf = json.loads((folder / "config.json").read_text())
    blas = numpy_blas()
    assert conf["blas_kernel"] == blas["architecture"] and conf["blas_version"] == blas["version"]
    assert conf["blas_kernel"] and blas["filepath"].startswith(str(Path(np.__file__).parent))
    assert conf["run_id"] == folder.name == sweep.runs[0].run_id(sweep.fingerprint)
    # a config.json written before the kernel was recorded still reads
    for key in ("blas_kernel", "blas_version"):
        del conf[key]
    store.atomic_write_json(folder / "config.json", conf)
    status = json.loads((folder / "status.json").read_text())
    del status["manifest"]  # as written then: before manifests too
    store.atomic_write_json(folder / "status.json", status)
    assert summary_row(folder)["run_id"] == folder.name
    assert folder.name in planmod.measured_runs(tmp_path / "out" / "one", fake_model())


# --- 2. checkpoints in the estimate -------------------------------------------------

def test_a_checkpointed_run_is_priced_from_its_checkpoint(tmp_path, tiny_csv, capsys):
    grid = _grid(tmp_path, tiny_csv, iterations=4000)
    sweep = load_sweep(grid)
    out = tmp_path / "out" / "one"
    run_id, cfg = sweep.run_ids[0], sweep.runs[0]
    paused = run(cfg, out / "runs" / run_id, stop_at=3000, threads=1)
    assert paused["paused_at"] == 3000
    todo = [(run_id, cfg)]
    assert planmod.checkpointed(out, todo) == {run_id: 3000} and planmod.checkpointed(out, todo, force=True) == {}
    model = fake_model()
    whole = planmod.estimate(sweep, out, todo, model, 1)
    rest = planmod.estimate(sweep, out, todo, model, 1, start={run_id: 3000})
    assert whole.iterations[run_id] == 4000 and rest.iterations[run_id] == 1000
    rows = planmod.rows_of(cfg)
    threads = planmod.threads_per_run(1)
    assert rest.seconds[run_id] == pytest.approx(model.train_seconds(cfg, rows, 1000, threads), rel=1e-9, abs=1e-12)
    assert rest.wall < whole.wall
    # as a whole run, comparable with the total_seconds it will record
    assert rest.whole(run_id) == pytest.approx(whole.seconds[run_id], rel=1e-9, abs=1e-12)
    # progress counts a continued run from its checkpoint
    lines = Lines()
    lines.started(rest, todo)
    lines.advanced(run_id, 3500)
    assert lines.fraction[run_id] == pytest.approx(0.5, abs=1e-12)

    capsys.readouterr()
    assert main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "0 already finished there (kept; --force retrains them), 1 to train (1 continues from its checkpoint)" \
        in text
    assert "continues from iteration 3000" in text
    assert main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out"), "--force"]) == 0
    assert "continues" not in capsys.readouterr().out  # --force starts it over
    # with this machine's model, as the dry run and the sweep price it
    real = calibration.machine_model()
    continued = planmod.sweep_estimate(sweep, out, todo, real, 1, planmod.checkpointed(out, todo))
    forced = planmod.sweep_estimate(sweep, out, todo, real, 1, planmod.checkpointed(out, todo, force=True))
    assert continued.iterations[run_id] == 1000 and forced.iterations[run_id] == 4000
    assert continued.wall < forced.wall and continued.seconds[run_id] < forced.seconds[run_id]


# --- 4 and 5. the calibration: noise and the cache ----------------------------------

def test_disagreement_is_the_median_relative_gap():
    assert calibration.disagreement([1.0, 1.0, 1.0], [1.1, 2.0, 1.0]) == pytest.approx(0.1, abs=1e-12)
    assert calibration.disagreement([2.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.slow
def test_a_calibration_whose_repeat_disagrees_is_noisy(monkeypatch):
    # The load starts after the fits: the step probes timed again at the end take twice as long.
    n_fits = 2 * len({1, os.cpu_count() or 1}) * len(calibration.STEP_PROBES)
    calls = []

    def probe(layers, m, dtype, threads, seconds=None):
        calls.append(1)
        return 1e-9 * m * sum(layers) * (2.0 if len(calls) > n_fits else 1.0)

    monkeypatch.setattr(calibration, "_probe_step", probe)
    monkeypatch.setattr(calibration, "_probe_pass", lambda layers, n, dtype, threads: 1e-9 * n * sum(layers))
    for name, value in (("_update_weights", {"adam": 1.0}), ("_run_overhead", 0.01), ("_worker_start", 0.3)):
        monkeypatch.setattr(calibration, name, lambda value=value: value)
    monkeypatch.setattr(calibration, "_contention", lambda cores, probe: 1.0)
    assert calibration.calibrate().noise == pytest.approx(1.0, abs=1e-9)
    calls.clear()
    n_fits = 10**9  # a quiet machine
    assert calibration.calibrate().noise == pytest.approx(0.0, abs=1e-9)


def test_a_noisy_calibration_warns_once_and_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("HARNESS_CALIBRATION_NOISE")
    noisy = fake_model()
    noisy.noise = 0.45
    calls, said = [], []
    monkeypatch.setattr(calibration, "calibrate", lambda: calls.append(1) or noisy)
    assert calibration.machine_model(said.append).coef == noisy.coef
    warnings = [line for line in said if line.startswith("warning:")]
    assert len(warnings) == 1 and "busy" in warnings[0] and "45%" in warnings[0] and "\n" not in warnings[0]
    assert list(tmp_path.iterdir()) == []  # not cached
    calibration.machine_model(said.append)
    assert len(calls) == 2  # measured again
    # a quiet one is kept; a higher limit keeps a noisy one
    quiet = fake_model()
    monkeypatch.setattr(calibration, "calibrate", lambda: calls.append(1) or quiet)
    calibration.machine_model()
    calibration.machine_model()
    assert len(calls) == 3 and calibration.cache_path().is_file()
    calibration.cache_path().unlink()
    monkeypatch.setenv("HARNESS_CALIBRATION_NOISE", "0.5")
    monkeypatch.setattr(calibration, "calibrate", lambda: calls.append(1) or noisy)
    calibration.machine_model()
    assert calibration.cache_path().is_file()


def test_the_cache_key_is_what_sets_the_speed_not_where_the_venv_is(monkeypatch):
    identity = calibration.machine_identity()
    assert set(identity) == {"version", "cpu", "cores", "numpy", "blas"}
    blas = numpy_blas()
    assert identity["blas"] == {"internal_api": blas["internal_api"], "version": blas["version"],
                                "architecture": blas["architecture"]}
    here = calibration.cache_path()
    # the same OpenBLAS build in another virtual environment, on another host name
    moved = {**numpy_blas(), "filepath": "/elsewhere/.venv/lib/libopenblas.so"}
    monkeypatch.setattr("harness.blas.threadpool_info", lambda: [moved])
    monkeypatch.setattr("socket.gethostname", lambda: "another-host")
    assert calibration.machine_identity() == identity and calibration.cache_path() == here
    # another kernel is another calibration
    monkeypatch.setattr("harness.blas.threadpool_info", lambda: [{**moved, "architecture": "another-kernel"}])
    assert calibration.cache_path() != here


def _hammer(path, tag):
    for i in range(40):
        calibration._write_cache(path, {"tag": tag, "i": i, "pad": "x" * 20000})


@pytest.mark.slow
def test_cache_writers_at_once_never_leave_half_a_file(tmp_path):
    path = tmp_path / "cost-model-test.json"
    calibration._write_cache(path, {"tag": "first"})
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_hammer, args=(path, tag)) for tag in ("a", "b", "c")]
    for w in writers:
        w.start()
    while any(w.is_alive() for w in writers):
        assert json.loads(path.read_text())["tag"] in ("first", "a", "b", "c")  # always a whole file
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert json.loads(path.read_text())["i"] == 39
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


# --- 6 and 7. refusals --------------------------------------------------------------

@pytest.mark.slow
def test_a_budget_refusal_on_a_new_folder_leaves_nothing(tmp_path, tiny_csv, capsys):
    grid = _grid(tmp_path, tiny_csv, iterations=3000)
    out = tmp_path / "not" / "yet"
    assert main(["sweep", str(grid), "--out", str(out), "--budget", "0.01s"]) == 2
    assert "exceeds the budget" in capsys.readouterr().err
    assert not (tmp_path / "not").exists()  # nor its parents
    # an empty results folder stays empty
    (tmp_path / "empty" / "one").mkdir(parents=True)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "empty"), "--budget", "0.01s"]) == 2
    assert list((tmp_path / "empty").rglob("*")) == [tmp_path / "empty" / "one"]


@pytest.mark.slow
def test_a_budget_refusal_on_a_finished_sweep_leaves_it_byte_identical(tmp_path, tiny_csv):
    grid = _grid(tmp_path, tiny_csv)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 0
    before = _tree(out)
    assert main(["sweep", str(grid), "--out", str(out), "--quiet", "--force", "--budget", "0.01s"]) == 2
    assert _tree(out) == before


def test_a_dry_run_over_budget_prints_the_plan_and_exits_2(tmp_path, tiny_csv, capsys):
    grid = _grid(tmp_path, tiny_csv, iterations=3000)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--dry-run", "--out", str(out), "--budget", "0.01s"]) == 2
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[-2].startswith("budget: 0.0 s (exceeded")
    assert re.fullmatch(r"estimated training wall time: [\d.]+ s with 1 worker", lines[-1])
    assert captured.err.strip().splitlines()[-1] == \
        "harness: the estimate exceeds the budget: the sweep would refuse to start"
    assert not out.exists()
    assert main(["sweep", str(grid), "--dry-run", "--out", str(out), "--budget", "10h"]) == 0


# --- 8. a value listed twice ----------------------------------------------------------

@pytest.mark.parametrize("edit, where", [
    (("seeds = [0, 1]", "seeds = [0, 0]"), r"\[sweep\] seeds: 0 is listed twice"),
    (("[grid]\n", "[grid]\nlr = [0.5, 0.5]\n"), r"\[grid\] lr: 0.5 is listed twice"),
    (("[grid]\n", "[grid]\nlr = [1, 1.0]\n"), r"\[grid\] lr: 1.0 is listed twice"),
    (("depth = [1, 2]", "depth = [1, 2, 1]"), r"\[grid\] depth: 1 is listed twice"),
    (("width = [8, 12]", "width = [8, 8]"), r"\[grid\] width: 8 is listed twice"),
    (('shape = ["constant", "halving"]', 'shape = ["halving", "halving"]'), r"\[grid\] shape: 'halving' is listed"),
    (("depth = [1, 2]\nwidth = [8, 12]\nshape = [\"constant\", \"halving\"]",
      "layers = [[16, 8, 10], [16, 8, 10]]"), r"\[grid\] layers: 16-8-10 is listed twice"),
])
def test_a_value_listed_twice_is_refused_naming_the_key(tmp_path, tiny_csv, capsys, edit, where):
    text = GRID.replace(*edit)
    assert text != GRID
    grid = write_grid(tmp_path, tiny_csv, text=text)
    assert main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(where, err[0]) and str(grid) in err[0]


def test_a_tune_choice_listed_twice_is_refused(tmp_path, tiny_csv):
    text = GRID + '\n[tune]\ntrials = 2\nbatch_size = {{ choice = [32, 64, 32] }}\n'
    grid = write_grid(tmp_path, tiny_csv, text=text)
    with pytest.raises(ConfigError, match=r"\[tune\].*choice: 32 is listed twice"):
        load_sweep(grid)


def test_trials_that_draw_the_same_values_are_refused(tmp_path, tiny_csv):
    # 4 trials of a choice between 2 values: trials 2 and 3 would repeat 0 and 1, and be trained once
    text = GRID.replace("lr = 0.5", "lr = 0.5\noptimizer = \"sgd\"\nbatch_size = 32") + \
        '\n[tune]\ntrials = 4\nbatch_size = {{ choice = [32, 64] }}\n'
    grid = write_grid(tmp_path, tiny_csv, text=text)
    with pytest.raises(ConfigError, match=r"\[tune\] trials: trials 0 and 2 draw the same values \(batch_size = 32\); "
                                          r"set trials to 2 at most"):
        load_sweep(grid)
    grid.write_text(grid.read_text().replace("trials = 4", "trials = 2"))
    assert len(load_sweep(grid).tune.draws()) == 2


# --- 9. loky's warnings after a SIGKILL ------------------------------------------------

@pytest.mark.slow
def test_no_leaked_semlock_warnings_after_a_sigkill(tmp_path, tiny_csv):
    grid = _grid(tmp_path, tiny_csv, iterations=20000)
    text = grid.read_text().replace("jobs = 1\nseeds = [0]", "jobs = 2\nseeds = [0, 1]\ncheckpoint_seconds = 0.3")
    grid.write_text(text)
    runs = tmp_path / "out" / "one" / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(grid), "--out", str(tmp_path / "out"),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (runs.is_dir() and any(store.checkpoint_meta(d) for d in runs.iterdir())):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the main process alone, as an OOM kill does
        proc.wait()
        # loky's resource tracker outlives it and keeps the pipe open until it has cleaned up
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "leaked" not in err and "UserWarning" not in err, err


# --- 10. plurals ------------------------------------------------------------------------

def test_count_says_one_thing_or_many():
    assert count(1, "worker") == "1 worker" and count(2, "worker") == "2 workers"
    assert count(0, "run") == "0 runs" and count(1, "grid point") == "1 grid point"
    assert count(1, "continues", "continue") == "1 continues" and count(3, "continues", "continue") == "3 continue"


@pytest.mark.slow
def test_a_one_run_sweep_speaks_in_the_singular(tmp_path, tiny_csv, capsys):
    text = ONE_RUN.replace('jobs = 1', 'jobs = 1\nstrategy = "halving"\nmin_iterations = 10')
    grid = _grid(tmp_path, tiny_csv, text=text)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--dry-run", "--out", str(out)]) == 0
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    assert main(["sweep", str(grid), "--out", str(out)]) == 0  # "1 of 1 run already finished"
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "1 run in sweep" in said and "with 1 worker" in said and "at most 1 configuration (1 run)" in said
    assert "estimated training wall time" in said and "not in the training estimate)" in said  # what it covers
    assert not re.search(r"\b1 (runs|workers|configurations|trials|grid points)\b", said), said


# --- 11. validation rows ------------------------------------------------------------------

def test_a_validation_fraction_is_of_the_whole_training_file(tmp_path, capsys):
    X, y = make_digits(400)
    path = write_csv(tmp_path / "d.csv", X, y)
    source = datamod.load_source("mnist", str(path))
    # 0.25 of all 400 rows, whatever train_size: 100 validation rows, and 100 to train
    assert datamod.row_counts(source, 100, 0.25) == (100, 100, 0)
    line = datamod.describe_rows(source, 100, 0.25)
    assert line.startswith("100 training rows, 100 validation rows (0.25 of the 400 rows of the training file)")
    split = datamod.split(source, 100, 0.25, 0)
    assert (len(split.y_train), len(split.y_val)) == (100, 100)
    assert "whole training file" in HELP["validation"] and "before train_size" in HELP["validation"]
    # the counts said at the start are the rows the run uses
    out = tmp_path / "run"
    assert main(["train", "--layers", "16,8,10", "--iterations", "2", "--path", str(path), "--train-size", "100",
                 "--validation", "0.25", "--out", str(out), "--quiet"]) == 0
    conf = json.loads((out / "config.json").read_text())
    assert (conf["n_train"], conf["n_val"]) == (100, 100)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "whole training file" in " ".join(capsys.readouterr().out.split())
