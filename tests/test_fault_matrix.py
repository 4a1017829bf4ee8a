"""Fault injection: every file of a results folder × every fault × every
command that reads it. Each cell ends one of two ways: the command recovers
(the same numbers as on an untouched folder; a report or comparison that
leaves out a damaged run says which file, and gives the numbers of the
folder without that run), or it exits 2 with one line naming the file.
Never a traceback, never a silently changed number.

One tiny real sweep is built per session and copied for each cell: 3 seeds
of 2 architectures; runs A (narrow) and B (wide, seed 0) finished, runs C and D paused at iteration
10 with a checkpoint each (same architecture, other seeds)."""
import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import train
from harness.cli import main
from harness.grid import load_sweep
from harness.report import document
from harness.sweep import write_summary

from helpers import make_digits, write_csv

GRID = """
[sweep]
name = "{name}"
jobs = 1
seeds = [0, 1, 2]
[data]
path = "{data}"
validation = 0.25
[train]
iterations = 20
eval_every = 5
optimizer = "adam"
lr = {lr}
[grid]
layers = [[16, 2, 10], [16, 32, 10]]
"""
FILES = ("metrics.csv", "config.json", "status.json", "checkpoint.npz", "summary.csv", "plan.json", "sweep.toml")
FAULTS = ("truncated", "emptied", "garbled", "wrong JSON type", "deleted", "swapped", "bit flipped", "symlink")
COMMANDS = ("sweep", "report", "status", "compare")
TIMES = ("median_iter_seconds", "total_seconds", "estimated_seconds")  # measured, not computed


class Base:
    """The built sweep, its runs' roles, and the numbers of untouched commands."""


def _summary_numbers(root):
    s = pd.read_csv(root / "summary.csv")
    return s.drop(columns=[c for c in TIMES if c in s]).sort_values("run_id").reset_index(drop=True)


def _no_plots(monkeypatch_scope):
    """Plots are pictures of the numbers checked here, and slow: off."""
    monkeypatch_scope.setattr(document, "plot_all", lambda *a, **k: None)
    monkeypatch_scope.setattr(document, "render_html", lambda blocks, folder: "")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    _no_plots(mp)
    tmp = tmp_path_factory.mktemp("matrix")
    X, y = make_digits(300)
    write_csv(tmp / "tiny.csv", X, y)
    b = Base()
    b.tmp = tmp
    b.grid = tmp / "grid.toml"
    b.grid.write_text(GRID.format(name="m", data="tiny.csv", lr=0.02))
    other_grid = tmp / "other.toml"
    other_grid.write_text(GRID.format(name="m", data="tiny.csv", lr=0.01).replace("seeds = [0, 1, 2]", "seeds = [0]"))
    assert main(["sweep", str(other_grid), "--out", str(tmp / "other"), "--quiet"]) == 0
    b.other = tmp / "other" / "m"
    assert main(["sweep", str(b.grid), "--out", str(tmp / "full"), "--quiet"]) == 0
    b.full_numbers = _summary_numbers(tmp / "full" / "m")
    # the base: two runs paused at iteration 10, with a checkpoint each
    root = tmp / "base" / "out" / "m"  # named as each cell's copy, tmp_path / "out" / "m"
    shutil.copytree(tmp / "full" / "m", root)
    sweep = load_sweep(b.grid)
    runs = dict(zip(sweep.run_ids, sweep.runs))
    wide = [r for r, c in runs.items() if c.layers == (16, 32, 10)]
    b.C, b.D = wide[1], wide[2]
    b.A = next(r for r, c in runs.items() if c.layers == (16, 2, 10))
    b.B = wide[0]
    for run_id in (b.C, b.D):
        shutil.rmtree(root / "runs" / run_id)
        paused = train.run(runs[run_id], root / "runs" / run_id, threads=1, stop_at=10)
        assert paused["paused_at"] == 10
    write_summary(sweep, root)
    assert main(["report", str(root)]) == 0
    b.root = root
    b.report = _comparison(root)
    # the numbers of a report and a comparison without run A
    without = tmp / "without" / "out" / "m"  # named as each cell's copy, tmp_path / "out" / "m"
    shutil.copytree(root, without)
    s = pd.read_csv(without / "summary.csv")
    s[s.run_id != b.A].to_csv(without / "summary.csv", index=False)
    (without / "summary.csv.sha256").unlink()
    assert main(["report", str(without)]) == 0
    b.report_without_a = _comparison(without)
    assert main(["compare", str(root), str(b.other), "--out", str(tmp / "cmp")]) == 0
    b.compare = _comparison(tmp / "cmp")
    assert main(["compare", str(without), str(b.other), "--out", str(tmp / "cmp-without")]) == 0
    b.compare_without_a = _comparison(tmp / "cmp-without")
    yield b
    mp.undo()


@pytest.fixture(scope="module")
def base_status(base):
    out = io.StringIO()
    stdout, sys.stdout = sys.stdout, out
    try:
        assert main(["status", str(base.root)]) == 0
    finally:
        sys.stdout = stdout
    base.status = _status_text(base.root, out.getvalue())
    return base


def _comparison(folder):
    return (Path(folder) / "comparison.csv").read_text()


# --- the faults -------------------------------------------------------------------

def _target(b, root, name):
    """The file ``name`` of the copied folder ``root``, and its counterpart
    in another run (or another sweep) for swaps and links."""
    if name in ("metrics.csv", "config.json", "status.json"):
        return root / "runs" / b.A / name, root / "runs" / b.B / name
    if name == "checkpoint.npz":
        return root / "runs" / b.C / name, root / "runs" / b.D / name
    return root / name, b.other / name


def _flip_a_bit(data: bytes) -> bytes:
    """The lowest bit of a digit near the middle (a number's digit, in a text
    file), or of the middle byte."""
    mid = len(data) // 2
    digits = [m.start() for m in re.finditer(rb"[0-9]", data)]
    at = min(digits, key=lambda i: abs(i - mid)) if digits else mid
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def inject(path: Path, fault, other: Path):
    data = path.read_bytes()
    if fault == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif fault == "emptied":
        path.write_bytes(b"")
    elif fault == "garbled":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + b"\x00\xff\xfe#,;[}\x80junk\n\x01" + data[mid + 16:])
    elif fault == "wrong JSON type":
        path.write_text("[]\n")
    elif fault == "deleted":
        path.unlink()
    elif fault == "swapped":
        path.write_bytes(other.read_bytes())
    elif fault == "bit flipped":
        path.write_bytes(_flip_a_bit(data))
    elif fault == "symlink":  # a link to another run's (or sweep's) file in its place
        path.unlink()
        path.symlink_to(other)
    else:
        raise AssertionError(fault)


# --- the commands and what counts as an honest ending ---------------------------------

def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, out, err


def _refused(code, err, name):
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith("harness: error: ") and name in lines[0]


def _names(text, name, run_id):
    return any(name in line and run_id in line for line in text.splitlines())


def check_sweep(b, root, name, capsys):
    code, out, err = _run(["sweep", str(b.grid), "--out", str(root.parent), "--quiet"], capsys)
    if _refused(code, err, name):
        return "refused"
    assert code == 0, err
    pd.testing.assert_frame_equal(_summary_numbers(root), b.full_numbers)
    return "same"


def check_report(b, root, name, capsys, command="report"):
    if command == "report":
        code, out, err = _run(["report", str(root)], capsys)
        folder, same, without = root, b.report, b.report_without_a
    else:
        folder = root.parent.parent / "cmp"
        code, out, err = _run(["compare", str(root), str(b.other), "--out", str(folder)], capsys)
        same, without = b.compare, b.compare_without_a
    if _refused(code, err, name):
        return "refused"
    assert code == 0, err
    if _comparison(folder) == same:
        return "same"
    # left out, and said so: on stderr and in the report, naming the run and the file
    assert _names(err, name, b.A), err
    assert "**Left out:**" in (folder / "report.md").read_text()
    assert _comparison(folder) == without
    return "left out, named"


def _status_text(root, out):
    return out.replace(str(root.resolve()), "ROOT")


def check_status(b, root, name, capsys):
    code, out, err = _run(["status", str(root)], capsys)
    if _refused(code, err, name):
        return "refused"
    assert code == 0, err
    out = _status_text(root, out)
    if out == b.status:
        return "same"
    changed = [line for line in out.splitlines() if line not in b.status.splitlines()]
    assert changed and all(name in line for line in changed[1:]), out  # the first: the counts
    return "named"


CELLS = [(f, fault, c) for f in FILES for fault in FAULTS for c in COMMANDS]
RESULTS = {}


@pytest.mark.parametrize("name,fault,command", CELLS, ids=[f"{f}-{x}-{c}".replace(" ", "_") for f, x, c in CELLS])
def test_fault(base_status, tmp_path, capsys, name, fault, command):
    base = base_status
    root = tmp_path / "out" / "m"
    shutil.copytree(base.root, root, symlinks=True)
    path, other = _target(base, root, name)
    inject(path, fault, other)
    check = {"sweep": check_sweep, "report": check_report, "status": check_status,
             "compare": lambda *a: check_report(*a, command="compare")}[command]
    RESULTS[(name, fault, command)] = check(base, root, name, capsys)


# --- a full disk: each command under a small file-size limit ---------------------------

LIMIT = 1024  # bytes: every file a command writes but the smallest is over it
RUNNER = """
import sys
from harness.report import document
document.plot_all = lambda *a, **k: None
document.render_html = lambda blocks, folder: ""
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _limited():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.slow
def test_full_disk(base, tmp_path, command):
    root = tmp_path / "out" / "m"
    shutil.copytree(base.root, root, symlinks=True)
    argv = {"sweep": ["sweep", str(base.grid), "--out", str(root.parent), "--quiet"],
            "report": ["report", str(root)], "status": ["status", str(root)],
            "compare": ["compare", str(root), str(base.other), "--out", str(tmp_path / "cmp")]}[command]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", RUNNER, *argv], capture_output=True, text=True, env=env,
                          preexec_fn=_limited, timeout=300)
    lines = done.stderr.strip().splitlines()
    if command == "status":  # writes nothing
        assert done.returncode == 0 and not lines, done.stderr
        RESULTS[("(disk)", "full disk", command)] = "same"
        return
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("harness: error: file size limit exceeded while writing "), done.stderr
    assert not list(root.rglob("*.tmp")), "temporary files left behind"
    RESULTS[("(disk)", "full disk", command)] = "refused"


def test_fault_matrix_summary(capsys):
    """Runs after the cells (file order): the matrix's size and how it ended."""
    if len(RESULTS) < len(CELLS) + len(COMMANDS):  # every cell and every command under a full disk
        pytest.skip("run with the whole matrix")
    counts = pd.Series(list(RESULTS.values())).value_counts()
    with capsys.disabled():
        print(f"\nfault matrix: {len(RESULTS)} cells ended: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    assert set(counts.index) <= {"same", "refused", "left out, named", "named"}
