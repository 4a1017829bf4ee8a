"""One hash over the training outputs of a set of small runs, to check that a
change of the orchestration changes no number (issue 23).

    python tests/training_hash.py     # prints the hash (and, with -v, each part's)

The runs: direct runs in both dtypes on 1 and 2 threads, each uninterrupted
and paused then continued from its checkpoint on the other thread count;
and sweeps in both dtypes on 2 jobs (grid; halving, whose promoted runs
pause at each rung and continue from their checkpoints; a tuned halving
sweep with its confirmation runs and tuned.csv). Hashed: every
metrics row but its timings, the final weights, and the status and summary
numbers but timings, memory and paths."""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import make_digits, write_csv  # noqa: E402

TIMING = {"iter_seconds", "elapsed_seconds", "median_iter_seconds", "total_seconds", "estimated_seconds",
          "peak_rss_mb", "threads", "manifest", "path"}  # manifest: sha256s of files holding timings; path: a temporary folder
SWEEP = """
[sweep]
name = "{name}"
jobs = 2
seeds = [0, 1]
{strategy}

[data]
path = "{data}"
validation = 0.25

[train]
iterations = 40
eval_every = 5
lr = 0.5
dtype = "{dtype}"

[grid]
depth = [1, 2]
width = [8, 12]
{tune}
"""
HALVING = 'strategy = "halving"\neta = 2\nmin_iterations = 10'
TUNE = '[tune]\ntrials = 2\nseed = 0\nconfirm_seeds = 1\nlr = { log_uniform = [0.05, 1.0] }'


def _metrics(path: Path):
    """The metrics rows without their timings, as text."""
    import pandas as pd

    frame = pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if c in TIMING]).to_csv(index=False)


def _status(path: Path):
    status = json.loads(path.read_text())
    return json.dumps({k: v for k, v in status.items() if k not in TIMING}, sort_keys=True)


def _weights(path: Path):
    with np.load(path) as saved:
        return b"".join(name.encode() + saved[name].tobytes() for name in sorted(saved.files))


def run_parts(folder: Path):
    """``{name: bytes}`` of one run folder's training outputs."""
    parts = {}
    for name in ("metrics.csv", "metrics.csv.part"):
        if (folder / name).exists():
            parts[name] = _metrics(folder / name).encode()
    if (folder / "status.json").exists():
        parts["status"] = _status(folder / "status.json").encode()
    if (folder / "confusion.csv").exists():
        parts["confusion.csv"] = (folder / "confusion.csv").read_bytes()
    for name in ("params.npz", "checkpoint.npz"):
        if (folder / name).exists():
            parts[name] = _weights(folder / name)
    return parts


def direct_runs(root: Path, data: Path):
    """Both dtypes x 1 and 2 threads, uninterrupted and paused-then-continued."""
    from harness.config import RunConfig
    from harness.train import run

    out = {}
    for dtype in ("float32", "float64"):
        for threads in (1, 2):
            cfg = RunConfig(layers=(16, 12, 10), path=str(data), validation=0.25, iterations=40, eval_every=5,
                            lr=0.5, dtype=dtype, optimizer="adam", batch_size=32)
            whole, paused = root / f"whole-{dtype}-{threads}", root / f"paused-{dtype}-{threads}"
            run(cfg, whole, threads=threads)
            run(cfg, paused, threads=threads, stop_at=17)
            run(cfg, paused, threads=3 - threads)  # continued on the other thread count
            for name, folder in (("whole", whole), ("continued", paused)):
                for part, value in run_parts(folder).items():
                    out[f"run/{dtype}/{threads}/{name}/{part}"] = value
    return out


def sweep_runs(root: Path, data: Path):
    """Grid, halving and tuned halving sweeps, whole and after a paused rung."""
    from harness.grid import load_sweep
    from harness.sweep import run_sweep

    out = {}
    kinds = {"grid": ("", ""), "halving": (HALVING, ""), "tuned": (HALVING, TUNE)}
    for kind, (strategy, tune) in kinds.items():
        for dtype in ("float32", "float64"):
            name = f"{kind}-{dtype}"
            grid = root / f"{name}.toml"
            grid.write_text(SWEEP.format(name=name, strategy=strategy, data=data, dtype=dtype, tune=tune))
            run_sweep(load_sweep(grid), root / "out", report=False)
            sweep_out = root / "out" / name
            for folder in sorted((sweep_out / "runs").iterdir()):
                for part, value in run_parts(folder).items():
                    out[f"sweep/{name}/{folder.name}/{part}"] = value
            summary = _metrics(sweep_out / "summary.csv") if (sweep_out / "summary.csv").exists() else ""
            out[f"sweep/{name}/summary"] = summary.encode()
            if (sweep_out / "tuned.csv").exists():
                out[f"sweep/{name}/tuned"] = (sweep_out / "tuned.csv").read_bytes()
    return out


def training_hash(verbose=False):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        X, y = make_digits(400)
        data = write_csv(root / "digits.csv", X, y)
        parts = {**direct_runs(root, data), **sweep_runs(root, data)}
    whole = hashlib.sha256()
    lines = io.StringIO()
    for key in sorted(parts):
        digest = hashlib.sha256(parts[key]).hexdigest()
        whole.update(key.encode() + b"\0" + digest.encode())
        lines.write(f"{digest[:16]} {key}\n")
    return whole.hexdigest(), len(parts), lines.getvalue()


if __name__ == "__main__":
    digest, n, lines = training_hash()
    if "-v" in sys.argv:
        print(lines, end="")
    print(f"{digest} ({n} parts)")
