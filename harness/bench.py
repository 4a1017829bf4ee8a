"""``python -m harness bench``: speed, measured side by side in one process.

Every figure is a median over repeats, and every ratio compares two figures
taken in the same run. Measured:

1. the full-batch training step (forward + backward + update) against the
   step's own GEMMs done with ``np.matmul`` (the faster of two layouts), and
   against the same step in PyTorch when it is installed;
2. minibatch Adam to 97.5% test accuracy, training time only, against PyTorch;
3. sweep throughput: 8 small runs with ``jobs = 1`` against ``jobs = 2``, and
   the peak memory of a ``jobs = 2`` worker;
4. a mixed sweep (one big run, four small) with ``jobs = 2`` against the same
   runs one after another with every core.
"""
from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import data as datamod, mlp, store
from .optim import make_optimizer

NETS = ([784, 10, 10], [784, 256, 128, 64, 10])


def _median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# --- 1. the full-batch step -----------------------------------------------------

def ours_step(layers, X, y, dtype, threads, repeats):
    """Median seconds of our training step: BLAS on one thread, row chunks on a pool."""
    params = mlp.init_params(layers, seed=0, dtype=dtype)
    opt = make_optimizer("gd", params, 0.1)
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        def step():
            _, grads, _ = mlp.forward_backward(params, X, y, pool=pool if threads > 1 else None)
            opt.step(params, grads)
        return _median_time(step, repeats)


def gemms_alone(layers, m, dtype, threads, repeats):
    """Median seconds of just the step's matrix products with np.matmul (BLAS on
    ``threads`` threads), in each layout: examples as rows (ours), and as
    columns (the article's). Returns ``{"rows": s, "columns": s}``."""
    rng = np.random.default_rng(0)
    pairs = list(zip(layers[:-1], layers[1:]))
    r = {n: rng.random((m, n), dtype=np.float64).astype(dtype) for n in set(layers)}
    c = {n: np.ascontiguousarray(a.T) for n, a in r.items()}
    W = [rng.random((a, b)).astype(dtype) for a, b in pairs]
    Wt = [np.ascontiguousarray(w.T) for w in W]

    def rows():
        for i, (a, b) in enumerate(pairs):  # forward: A (m, a) @ W (a, b)
            r[a] @ W[i]
        for i, (a, b) in enumerate(pairs):  # backward: dW = A.T @ dZ; dA = dZ @ W.T
            r[a].T @ r[b]
            if i > 0:
                r[b] @ W[i].T

    def columns():
        for i, (a, b) in enumerate(pairs):  # forward: Z (b, m) = W.T (b, a) @ A (a, m)
            Wt[i] @ c[a]
        for i, (a, b) in enumerate(pairs):  # backward: dW.T = dZ (b, m) @ A.T (m, a); dA = W (a, b) @ dZ (b, m)
            c[b] @ c[a].T
            if i > 0:
                W[i] @ c[b]

    with threadpool_limits(threads, user_api="blas"):
        return {"rows": _median_time(rows, repeats), "columns": _median_time(columns, repeats)}


def torch_step(layers, X, y, dtype, threads, repeats):
    """Median seconds of the same step in PyTorch (nn.Linear + ReLU,
    CrossEntropyLoss, SGD), or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    tdtype = getattr(torch, dtype)
    mods = []
    for a, b in zip(layers[:-1], layers[1:]):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods[:-1]).to(tdtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y.astype(np.int64))

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(Xt), yt).backward()
        opt.step()

    return _median_time(step, repeats)


# --- 2. minibatch Adam to a target accuracy ------------------------------------

def ours_to_target(split, threads, target, max_epochs, eval_every=100):
    """Training seconds (evaluation excluded) of minibatch Adam on
    784-256-128-64-10 until test accuracy reaches ``target``; None if never."""
    from .config import RunConfig
    from .train import train_steps

    cfg = RunConfig(layers=(784, 256, 128, 64, 10), optimizer="adam", lr=1e-3, batch_size=128, dtype="float32",
                    eval_every=eval_every, epochs=max_epochs)
    params = mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype)
    spent = 0.0
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        for row in train_steps(params, cfg, split, pool if threads > 1 else None):
            spent += row["iter_seconds"]
            if row["val_acc"] is not None and row["val_acc"] >= target:
                return spent, row["iteration"]
    return None, None


def torch_to_target(split, threads, target, max_epochs, eval_every=100):
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(split.X_train), torch.from_numpy(split.y_train.astype(np.int64))
    Xv, yv = torch.from_numpy(split.X_val), torch.from_numpy(split.y_val.astype(np.int64))
    gen = np.random.default_rng(1)
    spent, it = 0.0, 0
    for _ in range(max_epochs):
        order = torch.from_numpy(gen.permutation(len(X)))
        for start in range(0, len(X), 128):
            t = time.perf_counter()
            idx = order[start:start + 128]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
            spent += time.perf_counter() - t
            it += 1
            if it % eval_every == 0:
                with torch.no_grad():
                    if (model(Xv).argmax(1) == yv).float().mean().item() >= target:
                        return spent, it
    return None, None


# --- 3. sweep throughput --------------------------------------------------------

SMALL_GRID = """
[sweep]
name = "throughput"
jobs = {jobs}
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
[data]
dataset = "mnist"
train_size = 10000
[train]
layers = [784, 64, 10]
iterations = {iterations}
eval_every = 50
"""


# One big run and four small ones: the big one is scheduled first, and takes
# over the idle core once the small ones are done.
MIXED_GRID = """
[sweep]
name = "mixed"
jobs = {jobs}
[data]
dataset = "mnist"
train_size = 10000
[train]
iterations = {iterations}
eval_every = 50
[grid]
layers = [[784, 256, 128, 64, 10], [784, 16, 10], [784, 24, 10], [784, 32, 10], [784, 48, 10]]
"""


def sweep_seconds(template, jobs, iterations, root):
    """Wall seconds of the sweep ``template`` with ``jobs`` workers (runs only,
    no report), and the largest peak RSS (MB) of the processes that trained
    its runs."""
    from .grid import load_sweep
    from .sweep import run_sweep

    grid = Path(root) / f"grid-{jobs}.toml"
    grid.write_text(template.format(jobs=jobs, iterations=iterations))
    sweep = load_sweep(grid)
    out = Path(root) / f"out{jobs}"
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_sweep(sweep, out, quiet=True, report=False)
    seconds = time.perf_counter() - t
    if code != 0:
        raise RuntimeError(f"benchmark sweep failed (exit {code})")
    peaks = [store.read_status(d)["peak_rss_mb"] for d in (out / sweep.name / "runs").iterdir()]
    return seconds, max(peaks)


# --- the whole benchmark ------------------------------------------------------

def run_bench(out="results/bench", repeats=7, quick=False, say=print):
    threads = os.cpu_count() or 1
    src = datamod.load_source("mnist")
    rows = []

    def add(section, item, value, unit, note=""):
        rows.append({"section": section, "item": item, "value": value, "unit": unit, "note": note})
        shown = "n/a" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
        say(f"  {item:<58} {shown:>10} {unit} {note}")

    say(f"harness bench: {threads} threads, numpy {np.__version__}, medians of {repeats}")
    say("1. full-batch training step on 33,600 MNIST rows")
    for dtype in ("float64", "float32"):
        split = datamod.split(src, 33600, "test", 0, dtype)
        for layers in NETS:
            name = "-".join(map(str, layers))
            ours = ours_step(layers, split.X_train, split.y_train, dtype, threads, repeats)
            g = gemms_alone(layers, 33600, dtype, threads, repeats)
            limit = min(g.values())
            torch_s = torch_step(layers, split.X_train, split.y_train, dtype, threads, repeats)
            add("step", f"{name} {dtype}: ours", ours, "s")
            add("step", f"{name} {dtype}: GEMMs alone ({min(g, key=g.get)} layout)", limit, "s",
                f"(rows {g['rows']:.4g}, columns {g['columns']:.4g})")
            add("step", f"{name} {dtype}: ours / GEMMs", ours / limit, "x", "target <= 1.2")
            add("step", f"{name} {dtype}: GFLOP/s ours", mlp.flops_per_iter(layers, 33600) / ours / 1e9, "GFLOP/s")
            if torch_s is not None:
                add("step", f"{name} {dtype}: PyTorch", torch_s, "s")
                target = "target <= 0.8" if dtype == "float32" else "target <= 1.0"
                add("step", f"{name} {dtype}: ours / PyTorch", ours / torch_s, "x",
                    target if layers == NETS[1] else "")
            else:
                add("step", f"{name} {dtype}: PyTorch", None, "s", "(torch not installed: pip install torch==2.13.0)")

    if not quick:
        say("2. minibatch Adam (batch 128, lr 1e-3, float32) on 784-256-128-64-10 to 97.5% test accuracy")
        split = datamod.split(src, None, "test", 0, "float32")
        ours_s, ours_it = ours_to_target(split, threads, 0.975, 20)
        add("adam", "ours: training seconds to 97.5%", ours_s, "s", f"({ours_it} iterations)")
        torch_s, torch_it = torch_to_target(split, threads, 0.975, 20)
        add("adam", "PyTorch: training seconds to 97.5%", torch_s, "s", f"({torch_it} iterations)")
        if ours_s and torch_s:
            add("adam", "ours / PyTorch", ours_s / torch_s, "x", "target <= 1.0")

    iterations = 30 if quick else 150

    def one_vs_two(template):
        with tempfile.TemporaryDirectory() as tmp:
            one, _ = sweep_seconds(template, 1, iterations, tmp)
            two, peak = sweep_seconds(template, 2, iterations, tmp)
        return one, two, peak

    say("3. sweep throughput: 8 runs of 784-64-10, full batch, 10,000 rows")
    one, two, peak = one_vs_two(SMALL_GRID)
    add("sweep", "jobs = 1: wall seconds", one, "s")
    add("sweep", "jobs = 2: wall seconds", two, "s")
    add("sweep", "jobs = 2 / jobs = 1", two / one, "x", "target <= 0.6")
    add("sweep", "peak memory of a worker process", peak, "MB", "target <= 1024")
    say("4. mixed sweep: 784-256-128-64-10 and four small networks, full batch, 10,000 rows")
    one, two, _ = one_vs_two(MIXED_GRID)
    add("mixed", "one after another (jobs = 1, all cores each): wall seconds", one, "s")
    add("mixed", "jobs = 2, longest first: wall seconds", two, "s")
    add("mixed", "jobs = 2 / one after another", two / one, "x", "target <= 1.0")

    frame = pd.DataFrame(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(out / "bench.csv", frame.to_csv(index=False))
    _plot(frame, out / "bench.png")
    say(f"wrote {out / 'bench.csv'} and {out / 'bench.png'}")
    return frame


def _plot(frame, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    ratios = frame[(frame.unit == "x")].copy()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ratios) + 1.5))
    sns.barplot(data=ratios, y="item", x="value", color="steelblue", ax=ax)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("ratio (lower is better for us)")
    ax.set_ylabel("")
    ax.set_title("harness bench: ratios measured in one run")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    store.atomic_write_bytes(path, buf.getvalue())
