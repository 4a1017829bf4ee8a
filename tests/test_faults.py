"""Faults and concurrent use: real signals sent to real sweep processes."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.sweep import locked

from helpers import SLOW_GRID, make_digits, slow_grid, start, wait_for, write_csv


# The killed sweeps' runs: 2 jobs, so 4 is enough for runs finished, in flight and
# not yet started at the kill, and a third fewer than 6 to train.
RUNS = 4


def start_slow(tmp_path):
    """A slow sweep started in its own process group: (grid, out, root, process)."""
    grid, out = slow_grid(tmp_path, seeds=RUNS), tmp_path / "out"
    return grid, out, out / "slow", start(grid, out)


def runs(root):
    return sorted(p for p in (root / "runs").iterdir() if p.is_dir()) if (root / "runs").is_dir() else []


def finished(root):
    return [r for r in runs(root) if (r / "status.json").exists()
            and json.loads((r / "status.json").read_text())["status"] == "done"]


def in_flight(root):
    return [r for r in runs(root) if (r / "config.json").exists() and not (r / "status.json").exists()]


def snapshot(run_dirs):
    return {(d.name, f.name): f.read_bytes() for d in run_dirs for f in d.iterdir()}


def check_complete(root, n=RUNS):
    summary = pd.read_csv(root / "summary.csv")
    assert len(summary) == n and set(summary.status) == {"done"}
    for run_id, iterations in zip(summary.run_id, summary.iterations):
        m = pd.read_csv(root / "runs" / run_id / "metrics.csv")
        assert list(m.iteration) == list(range(1, iterations + 1))  # no duplicated or missing rows


def resume_keeps_finished_runs(grid, out, root):
    """Rerun the sweep: it must complete, leaving finished runs byte-identical."""
    done_before = finished(root)
    before = snapshot(done_before)
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 0
    assert snapshot(done_before) == before
    check_complete(root)


@pytest.mark.slow
def test_sigkill_of_the_whole_sweep_loses_only_runs_in_flight(tmp_path):
    grid, out, root, proc = start_slow(tmp_path)
    wait_for(lambda: len(finished(root)) >= 1 and in_flight(root))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert in_flight(root)  # killed mid-run: no completion marker
    resume_keeps_finished_runs(grid, out, root)


def _marked(mark):
    """Pids of live processes whose environment carries ``mark`` (a sweep and all it started)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"HARNESS_TEST_MARK={mark}".encode() in env:
                pids.append(int(d.name))
    return pids


def _files(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _start_marked(tmp_path):
    mark = uuid.uuid4().hex
    grid, out = slow_grid(tmp_path, seeds=RUNS), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(grid), "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "HARNESS_TEST_MARK": mark})
    root = out / "slow"
    wait_for(lambda: len(finished(root)) >= 1 and in_flight(root))
    return grid, out, root, proc, mark


@pytest.mark.slow
def test_sigkill_of_the_main_process_alone_leaves_no_writer(tmp_path):
    grid, out, root, proc, mark = _start_marked(tmp_path)
    assert len(_marked(mark)) >= 3  # the main process, its workers and their runs
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, not its group
    proc.wait()
    wait_for(lambda: not _marked(mark), seconds=5)
    before = _files(root)
    time.sleep(2)
    assert _files(root) == before  # nothing writes any more
    resume_keeps_finished_runs(grid, out, root)


@pytest.mark.slow
def test_a_resume_right_after_the_kill_waits_for_the_old_writers(tmp_path):
    grid, out, root, proc, mark = _start_marked(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resume_keeps_finished_runs(grid, out, root)
    assert not _marked(mark)


@pytest.mark.slow
def test_sigint_stops_cleanly_and_says_how_to_resume(tmp_path):
    grid, out, root, proc = start_slow(tmp_path)
    # Both workers busy: a loky worker still importing when Ctrl-C comes prints Python's
    # traceback before any code of ours runs (a known gap, see docs/reliability.md).
    wait_for(lambda: len(in_flight(root)) >= 2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"resume with: python -m harness sweep {grid} --out {out} --quiet" in err
    assert "Traceback" not in err, err
    statuses = {json.loads((r / "status.json").read_text())["status"] for r in runs(root) if (r / "status.json").exists()}
    assert statuses <= {"done", "interrupted"}
    assert len(finished(root)) < RUNS
    resume_keeps_finished_runs(grid, out, root)


@pytest.mark.slow
def test_a_worker_that_dies_fails_only_its_run(tmp_path):
    grid, out, root, proc = start_slow(tmp_path)
    wait_for(lambda: len(in_flight(root)) >= 1)
    victim = in_flight(root)[0]
    pid = json.loads((victim / "config.json").read_text())["pid"]
    assert pid != proc.pid
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    summary = pd.read_csv(root / "summary.csv")
    assert len(summary) == RUNS
    bad = summary[summary.status == "failed"]
    assert list(bad.run_id) == [victim.name]
    assert "worker process died: killed by SIGKILL" in bad.reason.iloc[0]
    assert (summary.status == "done").sum() == RUNS - 1
    assert victim.name in err


@pytest.mark.slow
def test_a_second_sweep_on_the_same_folder_refuses_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    grid, out, root, proc = start_slow(tmp_path)
    wait_for(lambda: (root / ".lock").exists() and "pid" in (root / ".lock").read_text())
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"another sweep (pid {proc.pid}" in err and err.count("\n") == 1
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert f"pid {proc.pid}" in (root / ".lock").read_text()  # left behind by the dead process
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    assert "taking over a stale lock" in capsys.readouterr().err
    check_complete(root)


LOCK_HOLDER = """
import multiprocessing, sys, time
from pathlib import Path
from harness.sweep import locked
with locked(Path(sys.argv[1]), print):
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_the_sweep_lock_dies_with_the_sweep_not_with_its_forked_children(tmp_path):
    # A run's forked child can outlive a killed sweep by a moment (or by its
    # owner watch's second); the lock must not wait for it.
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    child = int(proc.stdout.readline())
    try:
        with pytest.raises(ConfigError, match="another sweep"):
            with locked(tmp_path, print):
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        os.kill(child, 0)  # the forked child still lives...
        said = []
        with locked(tmp_path, said.append):  # ...and the lock is free
            assert f"pid {os.getpid()}" in (tmp_path / ".lock").read_text()
        assert said and "taking over a stale lock" in said[0]
    finally:
        for pid in (proc.pid, child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_timeout_fails_the_run(tmp_path):
    grid = slow_grid(tmp_path, iterations=200000)
    text = grid.read_text().replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0]") + "timeout = 0.5\n"
    grid.write_text(text)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    summary = pd.read_csv(tmp_path / "out" / "slow" / "summary.csv")
    assert list(summary.status) == ["failed"]
    assert summary.reason.iloc[0].startswith("timeout: still running after 0.5 s")


@pytest.mark.slow
def test_grid_that_changes_between_invocations(tmp_path, capsys):
    grid = slow_grid(tmp_path, iterations=20)
    out = tmp_path / "out"
    grid.write_text(grid.read_text().replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0, 1]"))
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 0
    root = out / "slow"
    first = pd.read_csv(root / "summary.csv").set_index("seed").run_id
    kept = snapshot([root / "runs" / first[1]])
    grid.write_text(grid.read_text().replace("seeds = [0, 1]", "seeds = [1, 2]"))
    capsys.readouterr()
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 runs already finished" in err
    assert "1 run folder in" in err and "left out of summary.csv and the report" in err
    summary = pd.read_csv(root / "summary.csv")
    assert sorted(summary.seed) == [1, 2] and first[0] not in set(summary.run_id)
    assert (root / "runs" / first[0] / "status.json").exists()  # still on disk
    assert snapshot([root / "runs" / first[1]]) == kept  # reused, not retrained
    assert "1 run folder on disk is not in this grid" in (root / "report.md").read_text()


@pytest.mark.slow
def test_unwritable_results_folder(tmp_path, tiny_csv, capsys):
    grid = slow_grid(tmp_path, iterations=5)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["sweep", str(grid), "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "results folder cannot be written" in err and "--out" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_class_absent_from_the_training_rows(tmp_path, capsys):
    X, y = make_digits(300)
    y[y == 9] = 8
    last = np.random.default_rng(0).permutation(300)[-1]  # a validation row (the end of the data_seed shuffle)
    y[last] = 9  # so 9 is a class of the data, but no training row has it
    write_csv(tmp_path / "data.csv", X, y)
    grid = tmp_path / "g.toml"
    grid.write_text(SLOW_GRID.format(data="data.csv", iterations=30).replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0]"))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = pd.read_csv(tmp_path / "out" / "slow" / "summary.csv")
    assert list(summary.status) == ["done"] and summary.final_val_acc.iloc[0] > 0.5
    assert (tmp_path / "out" / "slow" / "report.html").exists()


def test_debug_shows_the_traceback(tmp_path):
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="no such grid file"):
        main(["--debug", "sweep", str(tmp_path / "missing.toml")])


@pytest.mark.parametrize("fault,message", [
    ("csv_columns", "line 3 has 4 columns, the header has 17"),
    ("csv_cell", "line 2, column 'pixel3': 'abc' is not a whole number"),
    ("idx_truncated", "train-images-idx3-ubyte.gz: truncated"),
    ("idx_magic", "train-labels-idx1-ubyte.gz: bad magic number"),
])
@pytest.mark.slow
def test_corrupt_data_is_named_before_training(tmp_path, capsys, fault, message):
    import gzip

    from helpers import idx_bytes, write_idx_folder

    X, y = make_digits(100)
    if fault.startswith("csv"):
        path = write_csv(tmp_path / "d.csv", X, y)
        lines = path.read_text().splitlines()
        if fault == "csv_columns":
            lines[2] = "1,2,3,4"
        else:
            cells = lines[1].split(",")
            cells[4] = "abc"
            lines[1] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
        data = "d.csv"
    else:
        folder = write_idx_folder(tmp_path / "idx", X, y, X, y)
        if fault == "idx_truncated":
            raw = idx_bytes(X.reshape(100, 4, 4))[:-7]
            (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x09\x01" + bytes(104)))
        data = "idx"
    grid = tmp_path / "g.toml"
    grid.write_text(SLOW_GRID.format(data=data, iterations=5))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "g.toml [data]" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
