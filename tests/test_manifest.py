"""A run's record verifies itself; checkpoints are optional state; and the
one-line answers to damaged files (the fault matrix covers every file and
fault; these pin the messages and the mechanisms)."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import manifest, store
from harness.cli import main
from harness.grid import load_sweep
from harness.train import run

from helpers import make_digits, write_csv

GRID = """
[sweep]
name = "v"
jobs = 1
seeds = [0, 1]
[data]
path = "tiny.csv"
validation = 0.25
[train]
iterations = 20
eval_every = 5
optimizer = "adam"
lr = 0.02
[grid]
layers = [[16, 2, 10], [16, 32, 10]]
"""
NUMBERS = ["run_id", "status", "layers", "seed", "final_train_acc", "final_val_acc", "best_val_acc", "test_acc",
           "final_train_loss", "iterations_run"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished 4-run sweep, built once; tests work on copies."""
    tmp = tmp_path_factory.mktemp("v")
    X, y = make_digits(300)
    write_csv(tmp / "tiny.csv", X, y)
    (tmp / "g.toml").write_text(GRID)
    assert main(["sweep", str(tmp / "g.toml"), "--out", str(tmp / "out"), "--quiet", "--no-live-report"]) == 0
    return tmp


def _copy(swept, tmp_path):
    shutil.copy(swept / "tiny.csv", tmp_path / "tiny.csv")
    shutil.copy(swept / "g.toml", tmp_path / "g.toml")
    shutil.copytree(swept / "out", tmp_path / "out")
    return tmp_path / "g.toml", tmp_path / "out" / "v"


def _numbers(root):
    return pd.read_csv(root / "summary.csv")[NUMBERS].sort_values("run_id").reset_index(drop=True)


def _one_line(err, *words):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), err
    assert all(w in lines[0] for w in words), err


@pytest.mark.slow
def test_a_finished_record_carries_a_manifest_of_its_files(swept):
    root = swept / "out" / "v"
    for run_dir in (root / "runs").iterdir():
        record = json.loads((run_dir / "status.json").read_text())
        files = record["manifest"]["files"]
        assert set(files) == {"config.json", "metrics.csv", "confusion.csv"}
        data = (run_dir / "metrics.csv").read_bytes()
        assert files["metrics.csv"]["sha256"] == manifest.digest(data)
        assert files["metrics.csv"]["rows"] == record["iterations_run"] == len(pd.read_csv(run_dir / "metrics.csv"))
        assert manifest.check(run_dir).sealed and manifest.check(run_dir).problem is None
    side = (root / "summary.csv.sha256").read_text().split()
    assert side == [manifest.digest((root / "summary.csv").read_bytes()), "summary.csv"]  # sha256sum's format


@pytest.mark.slow
def test_a_config_copied_from_another_run_is_caught_by_the_folder_name(swept, tmp_path, capsys):
    grid, root = _copy(swept, tmp_path)
    before = _numbers(root)
    a, b = sorted((root / "runs").iterdir())[:2]
    shutil.copy(b / "config.json", a / "config.json")
    verdict = manifest.check(a)
    assert verdict.record is None and verdict.problem == "config.json does not match the manifest in status.json"
    # without a manifest, the folder's name still tells
    record = {k: v for k, v in json.loads((a / "status.json").read_text()).items() if k != "manifest"}
    (a / "status.json").write_text(json.dumps(record))
    assert manifest.check(a).problem == f"config.json is not this run's (its settings hash to {b.name})"
    capsys.readouterr()
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    assert f"run {a.name}: config.json is not this run's" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_numbers(root), before)


@pytest.mark.slow
def test_the_report_names_a_damaged_run_and_leaves_it_out(swept, tmp_path, capsys):
    _, root = _copy(swept, tmp_path)
    run_dir = sorted((root / "runs").iterdir())[0]
    text = (run_dir / "metrics.csv").read_text().splitlines()
    (run_dir / "metrics.csv").write_text("\n".join(text[:3]) + "\n")  # truncated: a number changes
    capsys.readouterr()
    assert main(["report", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {run_dir}: metrics.csv does not match the manifest in status.json: left out" in err
    md = (root / "report.md").read_text()
    assert f"**Left out:** 1 run whose files failed verification" in md and run_dir.name in md
    assert "4 runs: 3 done, 1 damaged; this report holds the 3 recorded in summary.csv" in md


def test_a_check_hands_over_the_bytes_it_verified(swept):
    # so the report parses the very bytes it checked, reading each file once
    root = swept / "out" / "v"
    run_dir = next((root / "runs").iterdir())
    contents = {}
    manifest.check(run_dir, contents)
    assert set(contents) == {"config.json", "metrics.csv", "confusion.csv"}


def _strip(root):
    """Make a folder look as before manifests: no manifest, no sidecars."""
    for run_dir in (root / "runs").iterdir():
        record = {k: v for k, v in json.loads((run_dir / "status.json").read_text()).items() if k != "manifest"}
        (run_dir / "status.json").write_text(json.dumps(record))
    for side in root.glob("*.sha256"):
        side.unlink()


@pytest.mark.slow
def test_old_results_are_read_as_before_with_a_note_and_a_damaged_one_is_redone(swept, tmp_path, capsys):
    grid, root = _copy(swept, tmp_path)
    before = _numbers(root)
    assert main(["report", str(root)]) == 0
    sealed_report = (root / "comparison.csv").read_text()
    _strip(root)
    capsys.readouterr()
    assert main(["report", str(root)]) == 0
    note = capsys.readouterr().err
    assert "records (runs, or the sweep's own files) written before manifests, read as they are" in note
    assert (root / "comparison.csv").read_text() == sealed_report
    # an old run whose metrics disagree with its record: named, and not sealed
    bad = sorted((root / "runs").iterdir())[1]
    text = (bad / "metrics.csv").read_text().splitlines()
    (bad / "metrics.csv").write_text("\n".join(text[:-1]) + "\n")
    assert main(["verify", str(root), "--seal"]) == 1
    out = capsys.readouterr().out
    assert f"damaged: {bad}: metrics.csv does not agree with status.json" in out
    assert out.splitlines()[-1] == f"{root}: 0 verified, 5 sealed now, 1 damaged"  # 3 runs, summary, sweep.toml
    assert not manifest.check(bad).sealed and all(manifest.check(d).sealed for d in (root / "runs").iterdir()
                                                  if d != bad)
    # the sweep redoes it, and the folder is whole again, with the same numbers
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    assert f"run {bad.name}: metrics.csv does not agree with status.json: not believed, redoing it" in \
        capsys.readouterr().err
    pd.testing.assert_frame_equal(_numbers(root), before)
    assert main(["verify", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{root}: 6 verified, 0 damaged"


@pytest.mark.slow
def test_verify_seal_keeps_the_report_the_same(swept, tmp_path, capsys):
    _, root = _copy(swept, tmp_path)
    _strip(root)
    assert main(["report", str(root)]) == 0
    before = (root / "comparison.csv").read_text(), (root / "report.md").read_text()
    assert main(["verify", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{root}: 0 verified, 6 without a manifest, 0 damaged"
    assert main(["verify", str(root), "--seal"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{root}: 0 verified, 6 sealed now, 0 damaged"
    assert all(manifest.check(d).sealed for d in (root / "runs").iterdir())
    assert main(["report", str(root)]) == 0
    assert "note:" not in capsys.readouterr().err
    assert ((root / "comparison.csv").read_text(), (root / "report.md").read_text()) == before


@pytest.mark.parametrize("content,problem", [
    ('{"status": "finished", "run_id": "x"}', "status.json holds an unknown status 'finished'"),
    ("[1, 2]", "status.json holds a JSON list, not a record"),
])
@pytest.mark.slow
def test_a_status_json_with_an_unknown_status_or_a_list(swept, tmp_path, capsys, content, problem):
    grid, root = _copy(swept, tmp_path)
    before = _numbers(root)
    run_dir = sorted((root / "runs").iterdir())[2]
    (run_dir / "status.json").write_text(content)
    assert manifest.check(run_dir).problem == problem
    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    assert f"damaged: {run_dir.name} " in capsys.readouterr().out
    assert main(["report", str(root)]) == 0
    assert f"warning: {run_dir}: {problem}: left out of the report" in capsys.readouterr().err
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    assert f"run {run_dir.name}: {problem}: not believed, redoing it" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_numbers(root), before)


@pytest.mark.parametrize("content,words", [
    ("[]", "not a sweep plan"),
    ('{"name": "v", "runs": {', "corrupt"),
])
def test_plan_json_that_is_not_a_plan_or_corrupt_is_called_so(swept, tmp_path, capsys, content, words):
    _, root = _copy(swept, tmp_path)
    (root / "plan.json").write_text(content)
    assert main(["status", str(root)]) == 2
    _one_line(capsys.readouterr().err, str(root / "plan.json"), words, "running the sweep again rewrites it")


@pytest.mark.parametrize("content", [b"", b"\x00\x01\xff\xfe binary \x80\n"])
def test_an_old_runs_empty_or_binary_metrics_is_one_line_under_report(swept, tmp_path, capsys, content):
    _, root = _copy(swept, tmp_path)
    _strip(root)
    path = sorted((root / "runs").iterdir())[0] / "metrics.csv"
    path.write_bytes(content)
    assert main(["report", str(root)]) == 2
    _one_line(capsys.readouterr().err, str(path))


@pytest.mark.parametrize("fault", ["garbled", "truncated"])
def test_an_old_summary_that_is_garbled_or_truncated_is_one_line(swept, tmp_path, capsys, fault):
    _, root = _copy(swept, tmp_path)
    _strip(root)
    path = root / "summary.csv"
    data = path.read_bytes()
    path.write_bytes(data[:40] if fault == "truncated" else data[:30] + b'\x00\xff"' + data[33:])
    assert main(["report", str(root)]) == 2
    _one_line(capsys.readouterr().err, str(path))
    assert main(["compare", str(root), str(swept / "out" / "v"), "--out", str(tmp_path / "cmp")]) == 2
    _one_line(capsys.readouterr().err, str(path))


def test_a_report_on_a_read_only_folder_is_one_line_and_writes_nothing(swept, tmp_path, capsys, monkeypatch):
    _, root = _copy(swept, tmp_path)
    before = sorted(p.name for p in root.iterdir())
    os.chmod(root, 0o555)
    try:
        if os.access(root, os.W_OK):  # root writes anywhere: the folder is read-only to the check alone
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p) != root)
        assert main(["report", str(root)]) == 2
        _one_line(capsys.readouterr().err, str(root), "read-only")
    finally:
        os.chmod(root, 0o755)
    assert sorted(p.name for p in root.iterdir()) == before


@pytest.mark.slow
def test_a_sweep_name_with_a_nul_byte_is_one_line(swept, tmp_path, capsys):
    grid, _ = _copy(swept, tmp_path)
    grid.write_text(GRID.replace('name = "v"', 'name = "v\\u0000x"'))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "o")]) == 2
    _one_line(capsys.readouterr().err, "[sweep] name", "plain folder name")
    assert not (tmp_path / "o").exists()


# --- checkpoints --------------------------------------------------------------------

def _paused(swept, tmp_path):
    """A copy of the sweep whose last run is paused at iteration 10 with a checkpoint."""
    grid, root = _copy(swept, tmp_path)
    sweep = load_sweep(grid)
    run_id, cfg = sweep.run_ids[-1], sweep.runs[-1]
    shutil.rmtree(root / "runs" / run_id)
    assert run(cfg, root / "runs" / run_id, threads=1, stop_at=10)["paused_at"] == 10
    return grid, root, root / "runs" / run_id


def _rewrite_checkpoint(run_dir, change):
    arrays, meta = store.load_checkpoint(run_dir)
    change(arrays, meta)
    (run_dir / "checkpoint.npz").unlink()
    store.save_checkpoint(run_dir, arrays, meta)


@pytest.mark.parametrize("change,problem", [
    (lambda a, m: a.update(W0=a["W0"][:, :1]), "its array W0 (float32[16, 1]) does not fit this run"),
    (lambda a, m: a.update(b1=a["b1"][:1]), "its array b1 (float32[1]) does not fit this run"),  # would broadcast
    (lambda a, m: a.update(W1=a["W1"].astype(np.float64)), "its array W1 (float64[32, 10]) does not fit this run"),
    (lambda a, m: m.update(run_id="0123456789ab"), "it is run 0123456789ab's"),
    (lambda a, m: m.update(iteration=99), "its iteration 99 is not one of this run's"),
    (None, "unreadable"),
])
@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_its_run_is_set_aside(swept, tmp_path, capsys, change, problem):
    grid, root, run_dir = _paused(swept, tmp_path)
    if change is None:
        data = (run_dir / "checkpoint.npz").read_bytes()
        (run_dir / "checkpoint.npz").write_bytes(data[:len(data) // 2])
    else:
        _rewrite_checkpoint(run_dir, change)
    assert main(["status", str(root)]) == 0
    status = capsys.readouterr().out
    # status reads no data, so it tells a checkpoint it cannot read or that is another run's;
    # a sweep tells the rest, before it plans to continue the run
    told = problem == "unreadable" or problem.startswith("it is run")
    assert ("checkpoint.npz unusable" if told else "checkpointed") in status
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"run {run_dir.name}: checkpoint.npz cannot be used ({problem}): removed, the run starts over" in err
    assert "continuing" not in err
    pd.testing.assert_frame_equal(_numbers(root), _numbers(swept / "out" / "v"))


@pytest.mark.slow
def test_a_checkpoint_that_fits_is_continued(swept, tmp_path, capsys):
    grid, root, run_dir = _paused(swept, tmp_path)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out")]) == 0
    assert "continuing 1 run from its checkpoint" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_numbers(root), _numbers(swept / "out" / "v"))


@pytest.mark.slow
def test_a_failed_checkpoint_save_is_a_warning_not_a_failed_run(swept, tmp_path, capsys, monkeypatch):
    grid, root = _copy(swept, tmp_path)
    grid.write_text(grid.read_text().replace("[sweep]\n", "[sweep]\ncheckpoint_seconds = 1e-9\n"))

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store, "save_checkpoint", full)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--force"]) == 0
    err = capsys.readouterr().err
    assert err.count("checkpoint not saved at iteration 1 (No space left on device); the run went on without it") == 4
    pd.testing.assert_frame_equal(_numbers(root), _numbers(swept / "out" / "v"))
