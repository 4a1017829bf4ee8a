"""Sweeps: run every config of a grid in parallel, resume, and summarise.

Layout of ``<out>/<name>/``: ``sweep.toml`` (the grid as run), ``summary.csv``
(one row per run of the grid) and ``runs/<run_id>/`` (see :mod:`harness.store`).
The parent process is the only writer of ``sweep.toml`` and ``summary.csv``;
each run folder is written by the one worker that trains it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import pandas as pd

from . import mlp, store
from .config import RunConfig
from .grid import Sweep
from .train import run as train_run

SUMMARY_FIRST = ("run_id", "status", "layers", "depth", "width", "n_params", "flops_per_iter")
SUMMARY_LAST = ("seed", "final_train_acc", "final_val_acc", "best_val_acc", "final_train_loss",
                "median_iter_seconds", "total_seconds", "iterations_run", "reason")
FINISHED = ("done", "diverged")


def cost(cfg: RunConfig, n_train: int) -> int:
    """Estimated work of a run: FLOPs per iteration times iterations."""
    m = min(cfg.batch_size or n_train, n_train)
    return mlp.flops_per_iter(cfg.layers, m) * cfg.iterations


def _worker(cfg: RunConfig, run_dir: str, threads):
    """Runs in a worker process. Data is loaded (and cached) by the worker
    itself; only the small config crosses the process boundary."""
    return train_run(cfg, run_dir, threads=threads)


def plan(sweep: Sweep, out_dir: Path, force=False):
    """Split the grid into runs already finished and runs to train.
    Returns ``(done_ids, todo)`` with ``todo`` a list of ``(run_id, cfg)``,
    most expensive first."""
    done, todo = [], []
    for run_id, cfg in zip(sweep.run_ids, sweep.runs):
        status = store.read_status(out_dir / "runs" / run_id)
        if not force and status is not None and status.get("status") in FINISHED:
            done.append(run_id)
        else:
            todo.append((run_id, cfg))
    todo.sort(key=lambda item: -cost(item[1], item[1].train_size or sweep.n_rows))
    return done, todo


def _parallel(sweep: Sweep, n_tasks: int):
    """The joblib Parallel object and BLAS threads per run for this sweep."""
    from joblib import Parallel

    if sweep.backend == "dask":
        # one thread per run; start workers with --nthreads 1 per core
        return Parallel(n_jobs=-1, return_as="generator_unordered"), 1
    cores = os.cpu_count() or 1
    jobs = cores if sweep.jobs == -1 else sweep.jobs
    jobs = max(1, min(jobs, n_tasks))
    threads = max(1, cores // jobs)  # workers x threads <= cores: no BLAS oversubscription
    return Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered"), threads


def _dask_client(address):
    try:
        from dask.distributed import Client
    except ImportError:
        from .errors import ConfigError
        raise ConfigError("backend 'dask' needs dask.distributed: pip install 'harness[dask]'") from None
    return Client(address, timeout="20s")


def run_sweep(sweep: Sweep, out_root="results", force=False, quiet=False):
    """Train the grid's unfinished runs and write ``summary.csv``.
    Returns the process exit status: 0, or 1 if any run failed."""
    from joblib import delayed, parallel_config
    from tqdm import tqdm

    out = Path(out_root) / sweep.name
    (out / "runs").mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(out / "sweep.toml", sweep.text)
    done, todo = plan(sweep, out, force)
    say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    if done:
        say(f"{len(done)} of {len(sweep.runs)} runs already finished in {out}; skipping them (--force reruns)")
    for run_id, _ in todo:
        shutil.rmtree(out / "runs" / run_id, ignore_errors=True)  # a half-written run starts over

    failed = []
    if todo:
        client = _dask_client(sweep.scheduler) if sweep.backend == "dask" else None
        bar = tqdm(total=len(todo), unit="run", disable=quiet, file=sys.stderr, desc=sweep.name)
        counts = {"done": 0, "diverged": 0, "failed": 0}
        try:
            with parallel_config(backend="dask") if client else contextlib.nullcontext():
                parallel, threads = _parallel(sweep, len(todo))  # inside, so joblib sees the dask backend
                tasks = (delayed(_worker)(cfg, str(out / "runs" / run_id), threads) for run_id, cfg in todo)
                for status in parallel(tasks):
                    counts[status["status"]] += 1
                    if status["status"] == "failed":
                        failed.append(status)
                    bar.update(1)
                    bar.set_postfix(counts, refresh=False)
        except KeyboardInterrupt:
            bar.close()
            write_summary(sweep, out)
            print("interrupted: finished runs are kept; run the same command again to resume", file=sys.stderr)
            raise
        finally:
            bar.close()
            if client is not None:
                client.close()

    summary = write_summary(sweep, out)
    if not quiet:
        print_outcome(summary, out)
    if not summary.empty:
        from .report import write_report
        try:
            path = write_report(out)
            say(f"report: {path}")
        except Exception as e:  # the runs are safe on disk; a broken report must not hide them
            print(f"warning: the report could not be written ({type(e).__name__}: {e}); "
                  f"retry with: python -m harness --debug report {out}", file=sys.stderr)
    for status in failed:
        print(f"failed: {status['run_id']}: {status['reason']} "
              f"(traceback in {out / 'runs' / status['run_id'] / 'error.txt'})", file=sys.stderr)
    return 1 if failed else 0


def summary_row(run_dir: Path):
    """One summary.csv row from a finished run folder, or None."""
    status = store.read_status(run_dir)
    if status is None:
        return None
    conf = store.read_json(run_dir / "config.json")
    cfg = RunConfig.from_dict({k: v for k, v in conf.items() if k in RunConfig.__dataclass_fields__})
    m = min(cfg.batch_size or conf["n_train"], conf["n_train"])
    row = {
        "run_id": status["run_id"],
        "status": status["status"],
        "layers": cfg.layers_str,
        "depth": cfg.depth,
        "width": cfg.width,
        "n_params": mlp.n_params(cfg.layers),
        "flops_per_iter": mlp.flops_per_iter(cfg.layers, m),
    }
    for key, value in cfg.to_dict().items():
        if key not in ("layers", "seed"):
            row[key] = value
    row["seed"] = cfg.seed
    row.update({k: status.get(k) for k in SUMMARY_LAST if k != "seed"})
    return row


def write_summary(sweep: Sweep, out: Path) -> pd.DataFrame:
    """Write ``summary.csv`` for the grid's runs that finished (in grid order)."""
    rows = [r for r in (summary_row(out / "runs" / run_id) for run_id in sweep.run_ids) if r is not None]
    frame = pd.DataFrame(rows)
    text = frame.to_csv(index=False) if rows else ",".join(SUMMARY_FIRST + SUMMARY_LAST) + "\n"
    store.atomic_write_text(out / "summary.csv", text)
    return frame


def print_outcome(summary: pd.DataFrame, out: Path):
    if summary.empty:
        return
    ok = summary[summary.status != "failed"].sort_values("final_val_acc", ascending=False)
    cols = ["run_id", "layers", "seed", "status", "final_train_acc", "final_val_acc", "median_iter_seconds"]
    print(ok[cols].head(10).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    counts = ", ".join(f"{n} {status}" for status, n in summary.status.value_counts().items())
    print(f"{len(summary)} runs: {counts}; summary in {out / 'summary.csv'}")


def dry_run(sweep: Sweep):
    """Print the number of runs and a table of them; train and write nothing."""
    cols = [k for k in sweep.varying if k != "layers"]
    rows = []
    for run_id, cfg in zip(sweep.run_ids, sweep.runs):
        row = {"run_id": run_id, "layers": cfg.layers_str}
        row.update({k: getattr(cfg, k) for k in cols})
        rows.append(row)
    print(f"{len(rows)} runs in sweep {sweep.name!r} ({sweep.path})")
    print(pd.DataFrame(rows).to_string(index=False))
