"""Faults that belong to one run, and faults of the machine: a run failing in
setup, a run folder removed mid-sweep, a full disk, SIGTERM, symbolic links.
Real processes, real signals, a real small filesystem where the sandbox
allows one."""
import contextlib
import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import memory
from harness.cli import main
from harness.config import RunConfig
from harness.train import prepare, run

from helpers import make_digits, wait_for, write_csv

GRID = """
[sweep]
name = "slow"
jobs = 2
seeds = {seeds}
checkpoint_seconds = {checkpoint}

[data]
path = "data.csv"
validation = 0.25

[train]
iterations = {iterations}
eval_every = 100
lr = 0.1

[grid]
layers = {layers}
"""


def grid(tmp_path, iterations=3000, seeds=(0, 1, 2, 3), layers="[[16, 128, 128, 10]]", checkpoint=0.2, name="g.toml"):
    if not (tmp_path / "data.csv").exists():
        X, y = make_digits(300)
        write_csv(tmp_path / "data.csv", X, y)
    path = tmp_path / name
    path.write_text(GRID.format(seeds=list(seeds), iterations=iterations, layers=layers, checkpoint=checkpoint))
    return path


def sweep(path, out, *flags):
    return main(["sweep", str(path), "--out", str(out), "--quiet", *flags])


def as_from_a_shell(ignore_sigint=False):
    """A process started as a shell starts a command (a background job's
    ignores SIGINT): no signal blocked, whatever the test process holds."""
    def reset():
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)
    return reset


def start(path, out, background=False):
    return subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(path), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=as_from_a_shell(ignore_sigint=background))


def in_flight(root):
    runs = root / "runs"
    return [r for r in sorted(runs.iterdir()) if (r / "config.json").exists() and not (r / "status.json").exists()] \
        if runs.is_dir() else []


def status(run_dir):
    return json.loads((Path(run_dir) / "status.json").read_text())


def temp_files(root):
    return [p for p in Path(root).rglob("*") if p.name.endswith(".tmp")]


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- item 3: a failure in setup is the run's; the summary is always written ---------

def _overcommit_refuses_huge():
    try:
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() in ("0", "2")
    except OSError:
        return False


@pytest.mark.skipif(not _overcommit_refuses_huge(), reason="needs a kernel that refuses a 1 TiB allocation at once")
@pytest.mark.slow
def test_a_run_that_fails_in_setup_is_recorded_and_the_others_are_summarised(tmp_path, monkeypatch, capsys):
    # The memory check would refuse 16-10^10-10 before the sweep; with it out of
    # the way the run meets its MemoryError in setup, before config.json.
    monkeypatch.setattr(memory, "available", lambda: 1 << 62)
    path = grid(tmp_path, iterations=20, seeds=(0,), layers="[[16, 10000000000, 10], [16, 32, 10]]")
    out, root = tmp_path / "out", tmp_path / "out" / "slow"
    for flags in ((), (), ("--force",)):  # the first sweep, a resume, a forced one: each writes everything
        capsys.readouterr()
        assert sweep(path, out, *flags) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        summary = pd.read_csv(root / "summary.csv")
        assert sorted(summary.status) == ["done", "failed"]
        bad = summary[summary.status == "failed"].iloc[0]
        assert bad.layers == "16-10000000000-10" and bad.reason.startswith("MemoryError: Unable to allocate")
        assert f"failed: {bad.run_id}: MemoryError" in err
        folder = root / "runs" / bad.run_id
        assert not (folder / "config.json").exists() and "MemoryError" in (folder / "error.txt").read_text()
        assert summary[summary.status == "done"].final_val_acc.iloc[0] > 0.3
        assert (root / "report.md").exists() and (root / "report.html").exists()
        assert "16-10000000000-10" in (root / "report.md").read_text()


@pytest.mark.slow
def test_a_failed_run_without_config_json_does_not_stop_the_summary(tmp_path):
    # As an earlier version left it: status.json "failed", no config.json.
    path = grid(tmp_path, iterations=20, seeds=(0, 1), layers="[[16, 32, 10]]", checkpoint=0)
    out, root = tmp_path / "out", tmp_path / "out" / "slow"
    assert sweep(path, out) == 0
    victim = sorted((root / "runs").iterdir())[0]
    (victim / "config.json").unlink()
    (victim / "status.json").write_text(json.dumps({"status": "failed", "run_id": victim.name,
                                                    "reason": "worker process exited with code 1"}))
    assert main(["report", str(root)]) == 0  # the summary on disk still describes it
    assert sweep(path, out) == 0  # a resume redoes the failed run and summarises both
    assert set(pd.read_csv(root / "summary.csv").status) == {"done"}


def test_a_configuration_that_cannot_fit_in_memory_is_refused_before_anything_is_written(tmp_path, capsys):
    path = grid(tmp_path, iterations=20, seeds=(0,), layers="[[16, 32, 10], [16, 10000000000, 10]]")
    assert sweep(path, tmp_path / "out") == 2
    line = one_line(capsys.readouterr().err)
    need = memory.needed(RunConfig(layers=(16, 10**10, 10), iterations=20, lr=0.1), 225, 300)
    assert line.startswith(f"harness: error: {path}: run 16-10000000000-10 (gd, float32) needs at least {need:,} bytes")
    assert need > 2 * 4 * 16 * 10**10  # its weights and their gradient alone
    assert not (tmp_path / "out").exists()
    csv = tmp_path / "data.csv"
    assert main(["train", "--path", str(csv), "--layers", "16,10000000000,10", "--validation", "0.25",
                 "--out", str(tmp_path / "t")]) == 2
    assert "needs at least" in one_line(capsys.readouterr().err) and not (tmp_path / "t").exists()


def test_the_refusal_uses_the_machine_s_memory(tmp_path):
    cfg = RunConfig(layers=(16, 64, 10), optimizer="adam", batch_size=32, iterations=10)
    need = memory.needed(cfg, 225, 300)
    assert memory.refusal(cfg, 225, 300, "g.toml", limit=need) is None
    assert f"needs at least {need:,} bytes" in memory.refusal(cfg, 225, 300, "g.toml", limit=need - 1)
    assert memory.available() > 1 << 28  # any machine that runs the tests


@pytest.mark.parametrize("settings", [
    dict(layers=(16, 1024, 1024, 10), optimizer="gd", iterations=3),
    dict(layers=(16, 1024, 1024, 10), optimizer="adam", batch_size=64, early_stopping=2, eval_every=1, iterations=3),
    dict(layers=(16, 2048, 10), optimizer="momentum", dtype="float64", iterations=3),
])
@pytest.mark.slow
def test_the_memory_estimate_is_a_lower_bound_of_what_a_run_allocates(tmp_path, settings):
    X, y = make_digits(300)
    csv = write_csv(tmp_path / "d.csv", X, y)
    cfg = RunConfig(path=str(csv), validation=0.25, **settings)
    tracemalloc.start()
    try:
        run(cfg, tmp_path / "r", threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _, split = prepare(cfg)
    need = memory.needed(cfg, len(split.y_train), len(split.y_train) + len(split.y_val))
    assert need <= peak  # never refuses a run that would fit
    assert need >= peak / 3  # and not far below it: the parameter-sized vectors dominate


# --- item 4: each fault is blamed on its own run ----------------------------------

@pytest.mark.slow
def test_removing_a_running_run_s_folder_fails_that_run_alone(tmp_path):
    # 3 runs on 2 jobs: the third takes the victim's place, none waits for a round
    path, out = grid(tmp_path, iterations=6000, seeds=(0, 1, 2)), tmp_path / "out"
    root = out / "slow"
    proc = start(path, out)
    wait_for(lambda: len(in_flight(root)) >= 2, seconds=120)
    victim = in_flight(root)[0]
    shutil.rmtree(victim)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {victim.name}: its run folder {victim} was removed while it ran"]
    summary = pd.read_csv(root / "summary.csv")
    assert len(summary) == 2 and set(summary.status) == {"done"}  # every other run finished
    assert victim.name not in set(summary.run_id)
    assert sweep(path, out) == 0  # the resume redoes the removed one
    assert len(pd.read_csv(root / "summary.csv")) == 3


# --- item 5: disk full ------------------------------------------------------------

@contextlib.contextmanager
def small_disk(folder, size):
    folder.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a small tmpfs here: {e}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_one_line_per_file_leaves_no_temporary_file_and_resumes(tmp_path, capsys):
    path = grid(tmp_path)
    with small_disk(tmp_path / "disk", "600k") as disk:
        capsys.readouterr()
        code = sweep(path, disk)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        root = disk / "slow"
        lines = err.strip().splitlines()
        assert all("no space left on device while writing " + str(root) in line for line in lines), err
        assert lines[-1].startswith("harness: error: no space left on device while writing ")
        assert temp_files(disk) == []  # each writer removed its own
        assert (root / "report.md").exists() == (root / "report.html").exists()  # both or neither
        if (root / "summary.csv").exists():  # the runs' partial files may leave no room for it: then it is named
            summary = pd.read_csv(root / "summary.csv")
            assert len(summary) >= 1 and all(r.startswith("no space left on device while writing ")
                                             for r in summary[summary.status == "failed"].reason)
        else:
            assert lines[-1] == f"harness: error: no space left on device while writing {root / 'summary.csv'}"
        # A writer killed mid-write leaves its temporary file; the next sweep removes it.
        run_id = sorted(p.name for p in (root / "runs").iterdir())[0]
        leftovers = [root / ".summary.csv.99999.tmp", root / "runs" / run_id / ".checkpoint.npz.99999.tmp"]
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        for p in leftovers:
            p.write_bytes(b"x")
        assert main(["sweep", str(path), "--out", str(disk)]) == 0
        assert "removed 2 temporary files left by an earlier sweep" in capsys.readouterr().err
        assert temp_files(disk) == [] and set(pd.read_csv(root / "summary.csv").status) == {"done"}
        assert (root / "report.md").exists() and (root / "report.html").exists()


@pytest.mark.slow
def test_the_report_is_written_all_or_nothing_and_its_exit_status_says_so(tmp_path, monkeypatch, capsys):
    path = grid(tmp_path, iterations=50, seeds=(0,), checkpoint=0)
    out, root = tmp_path / "out", tmp_path / "out" / "slow"
    assert sweep(path, out) == 0
    before = {name: (root / name).read_bytes() for name in ("report.md", "report.html")}
    real = os.fsync

    def full_for_html(fd):  # the disk fills up just as report.html is written
        if ".report.html." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", full_for_html)
    capsys.readouterr()
    assert main(["report", str(root)]) == 2
    assert one_line(capsys.readouterr().err) == f"harness: error: no space left on device while writing {root / 'report.html'}"
    assert {name: (root / name).read_bytes() for name in before} == before  # neither was replaced
    assert temp_files(root) == []
    for name in before:
        (root / name).unlink()
    assert sweep(path, out) == 2  # the sweep's runs are kept; its status says the report is not
    err = capsys.readouterr().err
    assert "no space left on device while writing" in one_line(err) and "the report is not" in err
    assert not (root / "report.md").exists() and not (root / "report.html").exists()
    monkeypatch.setattr(os, "fsync", real)
    assert main(["report", str(root)]) == 0 and (root / "report.md").exists()


# --- item 6: SIGTERM, as timeout, docker stop and SLURM send it -------------------

def numbers(root):
    """Every number a run computes (not its timings), by run id."""
    out = {}
    for d in sorted((root / "runs").iterdir()):
        m = pd.read_csv(d / "metrics.csv")[["iteration", "train_loss", "train_acc", "val_acc"]]
        s = status(d)
        out[d.name] = (m.to_csv(index=False), [s.get(k) for k in ("final_train_acc", "final_val_acc",
                                                                   "best_val_acc", "final_train_loss")])
    return out


SIGTERM_GRID = dict(iterations=2500, seeds=(0, 1, 2))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The SIGTERM tests' sweep, run to its end without a signal."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    assert sweep(grid(folder, **SIGTERM_GRID), folder / "out") == 0
    return numbers(folder / "out" / "slow")


@pytest.mark.parametrize("sig,to", [("SIGTERM", "main process"), ("SIGTERM", "process group"),
                                    ("SIGINT", "process group")])
@pytest.mark.slow
def test_sigterm_marks_the_running_runs_says_how_to_resume_and_the_resume_is_identical(tmp_path, sig, to,
                                                                                        uninterrupted):
    # SIGINT to the group is Ctrl-C, the model SIGTERM follows.
    path = grid(tmp_path, **SIGTERM_GRID)
    out, root = tmp_path / "out", tmp_path / "out" / "slow"
    proc = start(path, out)
    # both workers busy (a worker still importing would print Python's traceback), one run checkpointed
    wait_for(lambda: len(in_flight(root)) >= 2
             and len([r for r in in_flight(root) if (r / "checkpoint.npz").exists()]) >= 1, seconds=120)
    running = in_flight(root)
    (os.kill if to == "main process" else os.killpg)(proc.pid, getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    code, said, reason = {"SIGTERM": (143, "interrupted (SIGTERM)", "interrupted (SIGTERM)"),
                          "SIGINT": (130, "interrupted", "interrupted (Ctrl-C)")}[sig]
    assert proc.returncode == code, err
    assert f"{said}: finished runs are kept; resume with: python -m harness sweep {path} --out {out} --quiet" in err
    assert "Traceback" not in err, err
    marks = [status(r) for r in running]  # every run in flight is marked (or finished just before)
    assert all(s["status"] == "done" or s == {**s, "status": "interrupted", "reason": reason} for s in marks)
    assert any(s["status"] == "interrupted" for s in marks)
    assert sweep(path, out) == 0
    assert numbers(root) == uninterrupted


@pytest.mark.slow
def test_sigterm_reaches_a_sweep_started_in_the_background_with_sigint_ignored(tmp_path):
    # `harness sweep ... &` in a script: the shell ignores SIGINT for it, so the
    # runs cannot be told to stop by the SIGINT that SIGTERM is turned into
    # unless they take it back.
    path = grid(tmp_path, iterations=6000)
    out, root = tmp_path / "out", tmp_path / "out" / "slow"
    proc = start(path, out, background=True)
    wait_for(lambda: len(in_flight(root)) >= 2, seconds=120)
    running = in_flight(root)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted (SIGTERM)" in err
    assert all(status(r)["status"] in ("interrupted", "done") for r in running)
    assert any(status(r)["status"] == "interrupted" for r in running)


# --- item 7: no write through a link ----------------------------------------------

def tree(folder):
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("what", ["run folder", "run file", "sweep folder", "plots folder"])
@pytest.mark.slow
def test_a_symbolic_link_is_refused_naming_it_and_never_written_through(tmp_path, capsys, what):
    path = grid(tmp_path, iterations=30, seeds=(0, 1), checkpoint=0)
    out, root = tmp_path / "out", tmp_path / "out" / "slow"
    assert sweep(path, out) == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    other = tmp_path / "other" / "slow"  # a second sweep for compare, which refuses one folder given twice
    shutil.copytree(root, other)
    run_dir = sorted((root / "runs").iterdir())[0]
    if what == "run folder":
        link, target = run_dir, outside / run_dir.name
    elif what == "run file":
        link, target = run_dir / "metrics.csv", outside / "metrics.csv"
    elif what == "sweep folder":
        link, target = root, outside / "slow"
    else:
        link, target = root / "plots", outside / "plots"
    shutil.move(link, target)
    link.symlink_to(target, target_is_directory=target.is_dir())
    before, inside = tree(outside), tree(out)
    commands = [["sweep", str(path), "--out", str(out), "--quiet"],
                ["sweep", str(path), "--out", str(out), "--quiet", "--force"],
                ["report", str(root)], ["status", str(root)],
                ["compare", str(root), str(other), "--out", str(tmp_path / "cmp")]]
    for argv in commands:
        capsys.readouterr()
        assert main(argv) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"harness: error: {link}: a symbolic link"), line
    assert tree(outside) == before and tree(out) == inside  # nothing written, there or here
    assert link.is_symlink() and not (tmp_path / "cmp").exists()


def test_train_refuses_a_run_folder_that_is_a_link(tmp_path, tiny_csv, capsys):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "r").symlink_to(tmp_path / "elsewhere")
    assert main(["train", "--path", str(tiny_csv), "--layers", "16,8,10", "--iterations", "3", "--validation", "0.2",
                 "--out", str(tmp_path / "r")]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"harness: error: {tmp_path / 'r'}: a symbolic link")
    assert list((tmp_path / "elsewhere").iterdir()) == []
