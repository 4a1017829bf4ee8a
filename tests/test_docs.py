"""Every example in README.md and docs/*.md runs: each grid file is loaded
and dry-run exactly as written, each command runs (a sweep as a dry run,
report and compare on small copies of committed results, so that nothing
is written under results/; status on such a copy with the plan.json a
starting sweep writes), the Python snippet runs, and every other
`python -m harness ...` the text mentions parses. The cost model's
calibration is faked so that a dry run takes no time."""
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import calibration, plan as planmod, store
from harness.cli import build_parser, main
from harness.grid import load_sweep

from helpers import fake_model

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# Shown but not run here, and why: each must stay an exact line of the docs.
NOT_RUN = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && python -m harness sweep experiments/grid.toml":
        "installs the package (.ci/run does, in a new environment); its sweep is dry-run below",
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test,dask]" && python -m pytest -q':
        "installs the package and runs this very suite (.ci/run does)",
    "dask scheduler": "starts a server (tests/test_dask.py runs a cluster)",
    "dask worker tcp://SCHEDULER:8786 --nworkers $(nproc) --nthreads 1": "starts a server, on a placeholder address",
}
# A [tune] fragment is checked inside this grid (sgd, so that a tuned batch size is allowed).
FRAGMENT_BASE = """[data]
validation = 0.1
train_size = 2000
[train]
optimizer = "sgd"
batch_size = 64
iterations = 20
[grid]
layers = [[784, 10, 10]]
"""


def blocks(kind):
    return [(path.name, m.group(2)) for path in DOCS for m in BLOCK.finditer(path.read_text()) if m.group(1) == kind]


def commands():
    """Each command line of the bash blocks: comments dropped, one per line."""
    out = []
    for where, text in blocks("bash"):
        for line in text.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                out.append((where, line))
    return out


@pytest.fixture
def fake_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(calibration, "calibrate", fake_model)


def test_the_docs_have_examples_to_run():
    assert len(blocks("toml")) >= 3 and len(commands()) >= 8 and blocks("python")
    shown = {line for _, line in commands()}
    assert set(NOT_RUN) <= shown, set(NOT_RUN) - shown  # a skipped line that is gone: drop it from NOT_RUN


@pytest.mark.slow
def test_every_grid_file_in_the_docs_loads_and_dry_runs_as_written(tmp_path, fake_calibration, capsys):
    for i, (where, text) in enumerate(blocks("toml")):
        fragment = "[grid]" not in text
        path = tmp_path / f"example{i}.toml"
        path.write_text(FRAGMENT_BASE + text if fragment else text)
        sweep = load_sweep(path)  # raises, naming the key, if the example is wrong
        assert sweep.runs, where
        assert main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0, where
        out = capsys.readouterr().out
        assert "estimated training wall time" in out and "(exceeded)" not in out or fragment, (where, out[-300:])
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def _small_copy(folder, dest, variants=1):
    """``folder`` with only its first ``variants`` architectures' runs."""
    summary = pd.read_csv(folder / "summary.csv")
    keep = summary[summary.layers.isin(summary.layers.unique()[:variants])]
    dest.mkdir(parents=True)
    keep.to_csv(dest / "summary.csv", index=False)
    shutil.copy(folder / "sweep.toml", dest / "sweep.toml")
    for run_id in keep.run_id:
        run = dest / "runs" / run_id
        run.mkdir(parents=True)
        for name in ("config.json", "metrics.csv", "status.json", "confusion.csv"):
            if (folder / "runs" / run_id / name).is_file():
                shutil.copy(folder / "runs" / run_id / name, run / name)
    return dest


def _write_flowers(path, rows=240):
    """The docs' CSV example: labels in `kind`, three features on very different scales."""
    rng = np.random.default_rng(0)
    kind = np.arange(rows) % 3
    length = 0.01 * kind + rng.normal(0, 0.002, rows)
    mass = 1000 + 150 * (kind == 2) + rng.normal(0, 40, rows)
    noise = rng.normal(0, 1, rows)
    lines = ["kind,length,mass,noise"] + [f"{k},{a:.4f},{b:.1f},{c:.2f}" for k, a, b, c in zip(kind, length, mass, noise)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_every_command_in_the_docs_runs(tmp_path, fake_calibration, monkeypatch, capsys):
    toml = dict(blocks("toml"))["README.md"]
    (tmp_path / "my-sweep.toml").write_text(toml)
    _write_flowers(tmp_path / "flowers.csv")
    monkeypatch.chdir(tmp_path)
    ran = 0
    for where, line in commands():
        if line in NOT_RUN:
            continue
        words = shlex.split(line)
        assert words[:3] == ["python", "-m", "harness"], (where, line)
        args = words[3:]
        command = args[0]
        folders = [a for a in args[1:] if a.startswith("results/")]
        if command == "sweep":
            path = args[1] if Path(args[1]).is_file() else str(ROOT / args[1])
            args = ["sweep", path, *args[2:]] + (["--dry-run"] if "--dry-run" not in args else [])
            args += ["--out", str(tmp_path / "sweeps")]
        elif command in ("report", "compare", "verify"):
            copies = [str(_small_copy(ROOT / f, tmp_path / "copies" / f"{command}{ran}" / Path(f).name))
                      for f in folders]
            args = [command, *copies] + (["--out", str(tmp_path / "compared")] if command == "compare" else [])
        elif command == "status":  # on a copy of a sweep that has started: plan.json written as a sweep does
            copy = _small_copy(ROOT / "results" / "depth-width", tmp_path / "copies" / "status" / "depth-width")
            store.atomic_write_json(copy / store.PLAN, planmod.plan_record(load_sweep(copy / "sweep.toml")))
            args = ["status", str(copy)]
        elif command == "train":
            args = [*args, "--out", str(tmp_path / "train"), "--quiet"]
        assert main(args) == 0, (where, line, capsys.readouterr().err[-500:])
        ran += 1
    out = capsys.readouterr().out
    assert "val acc" in out and "%" in out  # harness train speaks percent
    assert (tmp_path / "compared" / "report.html").is_file() and (tmp_path / "train" / "status.json").is_file()
    assert ran >= 6 and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_every_python_example_runs():
    for where, code in blocks("python"):
        namespace = {}
        exec(compile(code, where, "exec"), namespace)  # noqa: S102 (our own docs)
        if "acc" in namespace:
            assert 0 <= namespace["acc"] <= 1


def test_every_command_the_text_mentions_parses():
    parser = build_parser()
    seen = set()
    for path in DOCS:
        for found in re.findall(r"python -m harness ([^`\n]*)", path.read_text()):
            text = re.sub(r"\[[^\]]*\]|#.*$", "", found).strip()
            if not text or text in seen:
                continue
            seen.add(text)
            try:
                args = parser.parse_args(shlex.split(text))
            except SystemExit as e:  # --help prints and exits 0; a bad command exits 2
                assert e.code == 0 and "--help" in text, text
                continue
            assert args.command, text
    assert "bench" in seen and "train --help" in seen and len(seen) >= 8
