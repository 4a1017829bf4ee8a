"""harness pack: a sweep's summary and evaluation rows in a compact folder
that report, verify and replay read."""
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from harness import pack
from harness.cli import main



@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    from tests.helpers import HALVING, make_digits, write_csv

    root = tmp_path_factory.mktemp("pack")
    X, y = make_digits(240)
    write_csv(root / "tiny.csv", X, y)
    grid = root / "h.toml"
    grid.write_text(HALVING.format(data="tiny.csv", jobs=2))
    assert main(["sweep", str(grid), "--out", str(root / "out"), "--quiet"]) == 0
    return root / "out" / "halves"


def test_a_packed_sweep_reports_as_its_original_except_times_per_iteration(halves, tmp_path, capsys):
    original = tmp_path / "orig"
    shutil.copytree(halves, original)
    packed = tmp_path / "packed"
    assert main(["pack", str(original), "--out", str(packed)]) == 0
    assert not (packed / "runs").exists()
    for name in ("summary.csv", "sweep.toml", "summary.csv.sha256"):
        assert (packed / name).read_bytes() == (original / name).read_bytes()
    evals = pack.read_evaluations(packed)
    summary = pd.read_csv(original / "summary.csv", dtype={"run_id": str})
    assert set(evals.run_id) == set(summary.run_id[summary.final_val_acc.notna()])  # diverged before 10: none
    one = summary.run_id.iloc[0]
    m = pd.read_csv(original / "runs" / one / "metrics.csv")
    rows = evals[evals.run_id == one]
    assert list(rows.iteration) == list(m.iteration[m.val_acc.notna()])
    assert list(rows.val_acc) == list(m.val_acc.dropna())
    assert list(rows.train_seconds) == list(m.iter_seconds.cumsum()[m.val_acc.notna()])
    assert main(["report", str(original)]) == 0  # measures the latencies once, into latency.csv
    assert main(["pack", str(original), "--out", str(packed)]) == 0  # which packing keeps
    assert (packed / "latency.csv").read_bytes() == (original / "latency.csv").read_bytes()
    assert main(["report", str(packed)]) == 0
    # the statistics and everything drawn from evaluations are the same files
    a, b = pd.read_csv(packed / "comparison.csv"), pd.read_csv(original / "comparison.csv")
    timed = ["train_seconds", "seconds_to_target"]  # summed over the evaluated iterations' times only
    pd.testing.assert_frame_equal(a.drop(columns=timed), b.drop(columns=timed), check_exact=True)
    assert np.allclose(a[timed], b[timed], rtol=0.05, atol=1e-3, equal_nan=True)
    for plot in ("halving.png", "budget.png", "acc_vs_width.png"):
        assert (packed / "plots" / plot).read_bytes() == (original / "plots" / plot).read_bytes(), plot
    md, md0 = (packed / "report.md").read_text(), (original / "report.md").read_text()
    verdict = [line for line in md.splitlines() if line.startswith("**Best:**")]
    assert verdict and verdict == [line for line in md0.splitlines() if line.startswith("**Best:**")]
    assert pack.PACKED_NOTE_START in md and pack.PACKED_NOTE_START not in md0
    assert "confusion matrix is not drawn" in md


def test_packing_again_writes_the_same_bytes_and_leaves_files_alone(halves, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["pack", str(halves), "--out", str(out)]) == 0
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert main(["pack", str(halves), "--out", str(out)]) == 0
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    assert main(["verify", str(out)]) == 0
    assert "packed, 4 verified, 0 damaged" in capsys.readouterr().out


def test_a_damaged_pack_is_named_by_verify_and_refused_by_report(halves, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["pack", str(halves), "--out", str(out)]) == 0
    data = bytearray((out / pack.EVALUATIONS).read_bytes())
    data[-10] ^= 1
    (out / pack.EVALUATIONS).write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", str(out)]) == 1
    assert f"damaged: {out / pack.EVALUATIONS}: does not match its checksum" in capsys.readouterr().out
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and pack.EVALUATIONS in err


def test_pack_refuses_a_damaged_run_and_writes_nothing(halves, tmp_path, capsys):
    original = tmp_path / "orig"
    shutil.copytree(halves, original)
    run = sorted((original / "runs").iterdir())[0]
    with open(run / "metrics.csv", "a") as f:
        f.write("999,1,1,1,1,1\n")
    assert main(["pack", str(original), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and run.name in err
    assert not (tmp_path / "p").exists()


def test_gzip_output_has_no_time_stamp():
    a = pack.gzip_bytes(b"x" * 100)
    assert a[4:8] == b"\0\0\0\0"  # MTIME field
    assert pack.gzip_bytes(b"x" * 100) == a

