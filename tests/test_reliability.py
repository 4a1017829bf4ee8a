"""The faults a new user hit, each with the one-line answer it gets, and the
one vocabulary of a run's status."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness import store
from harness.cli import main
from harness.report import grouped, write_report
from harness.status import NAMES, RunState, RunStatus, in_comparison, is_paused, mask, paused_record, state_of
from harness.sweep import locked

from helpers import make_digits, write_csv

GRID = """
[sweep]
name = "r"
seeds = [0, 1]
[data]
path = "{data}"
validation = 0.25
[train]
iterations = 20
eval_every = 10
[grid]
depth = [1]
width = [8]
"""


def _one_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness: error: "), err
    return err


def test_the_status_vocabulary_answers_every_question():
    assert set(NAMES) == {"done", "diverged", "failed", "interrupted", "stopped"}
    assert [s.value for s in RunStatus if s.is_finished()] == ["done", "diverged", "stopped"]
    assert [s.value for s in RunStatus if s.in_comparison()] == ["done", "diverged"]
    assert [s.value for s in RunStatus if s.is_failure()] == ["failed"]
    assert [s.value for s in (*RunStatus, *RunState) if s.is_paused()] == ["paused"]
    assert not any(s.is_finished() for s in RunState)


def test_a_paused_record_is_told_apart_from_every_status():
    record = paused_record("r1", 40)
    assert is_paused(record) and state_of(record) is RunState.PAUSED and record["paused_at"] == 40
    assert "paused" not in NAMES  # never a status.json's: a paused run's folder has none
    for s in RunStatus:
        assert not is_paused({"run_id": "r1", "status": s.value}) and state_of({"status": s.value}) is s
    with pytest.raises(ValueError, match="unknown run status"):
        state_of({"status": None})  # the old channel is gone
    assert list(in_comparison(["done", "interrupted", "failed", "stopped", "diverged"])) == \
        [True, False, False, False, True]
    with pytest.raises(ValueError, match="unknown run status 'finished'"):
        in_comparison(["finished"])


def test_a_status_mask_matches_a_pandas_column_where_the_enum_member_does_not():
    column = pd.Series(["done", "stopped", "diverged", "done"])
    assert not (column == RunStatus.DONE).any()  # the trap the mask exists for
    assert list(mask(column, RunStatus.DONE)) == [True, False, False, True]
    assert list(mask(column, RunStatus.STOPPED, "diverged")) == [False, True, True, False]
    assert list(column[~mask(column, RunStatus.STOPPED)]) == ["done", "diverged", "done"]
    with pytest.raises(ValueError):
        mask(column, "finished")


def test_status_json_has_one_writer_that_checks_the_vocabulary(tmp_path):
    store.write_status(tmp_path, {"status": "done", "run_id": "x"})
    assert store.read_status(tmp_path)["status"] == "done"
    with pytest.raises(ValueError, match="unknown run status"):
        store.write_status(tmp_path, {"status": "ok"})


def test_interrupted_and_failed_runs_never_enter_a_mean():
    base = {"layers": "784-10-10", "depth": 0, "width": 0, "n_params": 1, "flops_per_iter": 1,
            "median_iter_seconds": 0.1, "final_train_acc": 0.5, "lr": 0.1}
    summary = pd.DataFrame([
        {**base, "run_id": "a", "seed": 0, "status": "done", "final_val_acc": 0.9},
        {**base, "run_id": "b", "seed": 1, "status": "done", "final_val_acc": 0.8},
        {**base, "run_id": "c", "seed": 2, "status": "interrupted", "final_val_acc": 0.1},
        {**base, "run_id": "d", "seed": 3, "status": "failed", "final_val_acc": 0.0},
        {**base, "run_id": "e", "seed": 4, "status": "stopped", "final_val_acc": 0.2},
    ])
    g = grouped(summary)
    assert len(g) == 1 and g.seeds[0] == 2 and g.val_acc[0] == pytest.approx(0.85) and g.run_ids[0] == ["a", "b"]


def test_train_with_an_unwritable_out_is_one_line(tmp_path, tiny_csv, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["train", "--path", str(tiny_csv), "--layers", "16,10", "--validation", "0.2",
                 "--iterations", "2", "--out", str(blocker / "run"), "--quiet"])
    assert code == 2
    assert "run folder cannot be written" in _one_line(capsys)


@pytest.mark.slow
def test_the_number_of_classes_comes_from_the_data(tmp_path, capsys):
    X, y = make_digits(300, n_classes=3)
    write_csv(tmp_path / "three.csv", X, y)
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data="three.csv"))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    root = tmp_path / "out" / "r"
    summary = pd.read_csv(root / "summary.csv")
    assert set(summary.layers) == {"16-8-3"}
    assert set(summary.dataset) == {"three.csv"}  # not the bundled dataset's name
    confusion = pd.read_csv(root / "runs" / summary.run_id[0] / "confusion.csv")
    assert list(confusion.columns) == ["true", "pred_0", "pred_1", "pred_2"]


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(tmp_path, tiny_csv):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=tiny_csv.name).replace("seeds = [0, 1]", f"seeds = {list(range(400))}"))
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(grid), "--dry-run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait() in (0, 141)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.slow
def test_a_bad_jobs_flag_is_blamed_on_the_flag(tmp_path, tiny_csv, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=tiny_csv.name))
    assert main(["sweep", str(grid), "--jobs", "0"]) == 2
    err = _one_line(capsys)
    assert "flag --jobs" in err and "g.toml" not in err


@pytest.mark.slow
def test_an_unknown_flag_gets_one_prefix_and_a_suggestion(capsys):
    assert main(["sweep", "x.toml", "--jbos", "2"]) == 2
    err = _one_line(capsys)
    assert err.count("harness") == 2 and "did you mean --jobs?" in err  # the prefix, and "see harness --help"
    assert main(["swep"]) == 2
    assert "did you mean 'sweep'?" in _one_line(capsys)


def test_version(capsys):
    from harness import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"harness {__version__}"


def test_a_flat_layers_axis_says_how_to_write_it(tmp_path, tiny_csv, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=tiny_csv.name).replace("depth = [1]\nwidth = [8]", "layers = [16, 32, 10]"))
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    assert "layers = [[16, 32, 10]]" in _one_line(capsys)


@pytest.mark.slow
def test_row_counts_and_the_results_folder_are_said_at_the_start(tmp_path, tiny_csv, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=tiny_csv.name).replace("validation = 0.25", "validation = 0.2\ntrain_size = 100"))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"results: {(tmp_path / 'out' / 'r').resolve()}" in err
    # the fraction is of the whole training file (300 rows), taken before train_size
    assert "data: 100 training rows, 60 validation rows (0.2 of the 300 rows of the training file)" in err
    assert main(["train", "--path", str(tiny_csv), "--layers", "16,10", "--validation", "0.2", "--train-size", "100",
                 "--iterations", "2", "--out", str(tmp_path / "t")]) == 0
    assert "data: 100 training rows, 60 validation rows" in capsys.readouterr().err


@pytest.mark.slow
def test_a_resume_says_how_many_unfinished_runs_it_redoes(tmp_path, tiny_csv, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=tiny_csv.name))
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    runs = sorted((out / "r" / "runs").iterdir())
    store.write_status(runs[0], {**store.read_status(runs[0]), "status": "interrupted"})
    (runs[1] / "status.json").unlink()  # killed mid-run: no marker
    capsys.readouterr()
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    assert "redoing 2 unfinished runs from the start (1 interrupted, 1 cut short)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_report_on_a_running_sweep_says_it_is_partial(tmp_path, tiny_csv, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(data=tiny_csv.name))
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 0
    root = out / "r"
    write_report(root)
    assert "Partial" not in (root / "report.md").read_text()
    with locked(root, print):  # as a sweep running on it holds
        assert store.sweep_running(root)
        assert main(["report", str(root)]) == 0
    assert "is partial" in capsys.readouterr().err
    assert "**Partial:** a sweep is still running" in (root / "report.md").read_text()
    assert not store.sweep_running(root)
    np.testing.assert_equal(len(pd.read_csv(root / "summary.csv")), 2)
