"""The bench's Dask section: the overhead per run of a local Dask cluster
against loky, and the bytes a remote run ships (its task, its rows, its
checkpoints, its record) for a small and a large network."""
from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np

GRID = """
[sweep]
name = "{name}"
jobs = 2
seeds = [{seeds}]
checkpoint_seconds = {checkpoint}

[data]
path = "data.csv"
validation = 0.25

[train]
layers = {layers}
iterations = {iterations}
eval_every = 10
lr = 0.1
"""

NETS = (("small", [16, 8, 10]), ("large", [16, 512, 512, 10]))


def _data(folder: Path):
    """A 400-row CSV of 16 pixel features and 10 classes."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 400)
    X = np.clip(rng.integers(0, 256, (10, 16))[y] + rng.normal(0, 40, (400, 16)), 0, 255).astype(int)
    lines = ["label," + ",".join(f"pixel{j}" for j in range(16))]
    lines += [f"{label}," + ",".join(map(str, row)) for label, row in zip(y, X)]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")


def _sweep(folder: Path, text, scheduler=None):
    """Wall seconds of one sweep (no report)."""
    from .grid import load_sweep
    from .sweep import run_sweep

    grid = folder / f"grid-{time.monotonic_ns()}.toml"
    grid.write_text(text)
    sweep = load_sweep(grid, scheduler=scheduler)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_sweep(sweep, folder / "out", report=False)
    if code != 0:
        raise RuntimeError(f"benchmark sweep failed (exit {code})")
    return time.perf_counter() - t


def dask_section(quick, add, say):
    """5. Per run: Dask's overhead against loky (many short runs, two
    workers each), and the bytes shipped for a small and a large net."""
    try:
        from distributed import LocalCluster
    except ImportError:
        say("5. dask: not installed (pip install 'harness[dask]'); skipped")
        return
    from . import remote_runs

    runs = 4 if quick else 16
    seeds = ", ".join(map(str, range(runs)))
    say(f"5. dask: {runs} runs of 16-8-10 on a local cluster of 2 single-threaded workers against loky (jobs = 2)")
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                            dashboard_address=None) as cluster:
        folder = Path(tmp)
        _data(folder)
        short = {"seeds": seeds, "checkpoint": 60, "layers": [16, 8, 10], "iterations": 20}
        loky = _sweep(folder, GRID.format(name="loky", **short))
        dask = _sweep(folder, GRID.format(name="dask", **short), cluster.scheduler_address)
        add("dask", "loky: wall seconds per run", loky / runs, "s")
        add("dask", "dask: wall seconds per run", dask / runs, "s")
        add("dask", "dask - loky: overhead per run", (dask - loky) / runs, "s")
        for label, layers in NETS:
            its = 50 if quick else 400
            say(f"   bytes shipped per run, {label} net {'-'.join(map(str, layers))}, {its} iterations, "
                "a checkpoint every 0.2 s")
            remote_runs.SHIPPED.clear()
            _sweep(folder, GRID.format(name=f"bytes-{label}", seeds="0, 1", checkpoint=0.2, layers=layers,
                                       iterations=its), cluster.scheduler_address)
            shipped = remote_runs.SHIPPED
            for part in ("tasks", "rows", "checkpoints", "records"):
                add("dask", f"{label} net: {part}: bytes per run", shipped[part] / 2, "B")
            each = shipped["checkpoints"] / shipped["checkpoints sent"] if shipped["checkpoints sent"] else None
            add("dask", f"{label} net: one checkpoint: bytes", each, "B")
