"""``python -m harness bench``: speed, measured side by side in one process.

Every figure is a median over repeats, and every ratio compares two figures
taken in the same run. Measured:

1. the full-batch training step (forward + backward + update) against the
   step's own GEMMs done with ``np.matmul`` (the faster of two layouts), and
   against the same step in PyTorch when it is installed; these are timed
   round-robin, so the machine's drifts hit them alike;
2. minibatch Adam to 97.5% test accuracy, training time only, against PyTorch;
   and a lone minibatch run (batch 128): its epoch against PyTorch's with
   the same threads, and its step against the step's GEMMs alone; and
   inference latency per example (what reports store) against its GEMMs
   alone, on one thread, at batch 1 and at a large batch;
3. sweep throughput: 8 small runs with ``jobs = 1`` against ``jobs = 2``, full
   batch and in minibatches, and the peak memory of a ``jobs = 2`` worker;
4. a mixed sweep (one big run, four small) and ``experiments/article.toml``
   with ``jobs = 2`` against the same runs one after another with every core;
5. a small sweep as whole commands, against PyTorch + joblib and
   scikit-learn + joblib (see :mod:`harness.race`).
"""
from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import blas, mlp, store
from . import data as datamod
from .bench_layouts import layout_contestants, layout_verdicts
from .bench_sweeps import sweep_sections
from .bench_torch import torch_epoch, torch_step, torch_to_target
from .optim import make_optimizer
from .parallel import Threads
from .words import silent

NETS = ([784, 10, 10], [784, 256, 128, 64, 10])


# --- 1. the full-batch step -----------------------------------------------------

def _interleaved_medians(timed, repeats, warmup=1, settle=0.2):
    """Median seconds of each of ``timed``, ``{name: (blas_threads, fn)}``,
    timed round-robin: one call of each per round, so that the machine's
    drifts (this one is shared) hit all of them alike and the ratios between
    them stay fair. Each call runs with BLAS on its own thread count, after
    ``settle`` seconds of quiet: OpenBLAS's and OpenMP's idle threads spin
    for a while after a call and would otherwise slow down the next one."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    times = {name: [] for name in timed}
    for round_ in range(warmup + repeats):
        for name, (blas_threads, fn) in timed.items():
            with controller.limit(limits=blas_threads, user_api="blas"):
                time.sleep(settle)
                t = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - t
            if round_ >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(v) for name, v in times.items()}


def ours_step(layers, X, y, dtype, pool):
    """Our training step as a callable: row chunks on ``pool`` (None: serial),
    meant to run with BLAS on one thread. ``step.params`` are the parameters
    it trains."""
    params = mlp.init_params(layers, seed=0, dtype=dtype)
    opt = make_optimizer("gd", params, 0.1)

    def step():
        _, grads, _ = mlp.forward_backward(params, X, y, pool=pool)
        opt.step(params, grads)
    step.params = params
    return step


def gemms_alone(layers, m, dtype):
    """Just the step's matrix products with np.matmul, as callables, in each
    layout: examples as rows (ours), and as columns (the article's).
    Returns ``{"rows": fn, "columns": fn}``."""
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

    return {"rows": rows, "columns": columns}


# --- 2. minibatch Adam to a target accuracy ------------------------------------

def ours_to_target(split, threads, target, max_epochs, eval_every=100):
    """Training seconds (evaluation excluded) of minibatch Adam on
    784-256-128-64-10 until test accuracy reaches ``target``; None if never."""
    from .config import RunConfig
    from .loop import train_steps

    cfg = RunConfig(layers=(784, 256, 128, 64, 10), optimizer="adam", lr=1e-3, batch_size=128, dtype="float32",
                    eval_every=eval_every, epochs=max_epochs)
    params = mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype)
    spent = 0.0
    with threadpool_limits(1, user_api="blas"), Threads(threads) as pool:
        for row in train_steps(params, cfg, split, pool):
            spent += row["iter_seconds"]
            if row["val_acc"] is not None and row["val_acc"] >= target:
                return spent, row["iteration"]
    return None, None


# --- 2b. a lone minibatch run ----------------------------------------------------

MINIBATCH_NETS = ((784, 256, 128, 64, 10), (784, 64, 10))


def ours_epoch(layers, split, pool):
    """One epoch of minibatch Adam (batch 128, float32) as a callable: it
    trains on, epoch after epoch, and returns the epoch's training seconds
    (the steps only, evaluation excluded)."""
    from .config import RunConfig
    from .loop import train_steps

    cfg = RunConfig(layers=tuple(layers), optimizer="adam", lr=1e-3, batch_size=128, dtype="float32",
                    eval_every=10**9, epochs=1000)
    params = mlp.init_params(cfg.layers, cfg.init, cfg.seed, cfg.dtype)
    steps = train_steps(params, cfg, split, pool)
    per_epoch = -(-len(split.y_train) // 128)

    def epoch():
        with threadpool_limits(1, user_api="blas"):  # here only: PyTorch's BLAS keeps its threads
            return sum(next(steps)["iter_seconds"] for _ in range(per_epoch))
    return epoch


def _interleaved_results(timed, repeats, settle=0.2):
    """Median of the values that each of ``timed`` (``{name: fn}``, each
    returning seconds it measured itself) returns, called round-robin after
    ``settle`` seconds of quiet, one warm-up round first."""
    got = {name: [] for name in timed}
    for round_ in range(repeats + 1):
        for name, fn in timed.items():
            time.sleep(settle)
            value = fn()
            if round_:
                got[name].append(value)
    return {name: statistics.median(v) for name, v in got.items()}


def ours_minibatch_steps(layers, X, y, pool, steps=50):
    """``steps`` minibatch steps (128 rows, forward + backward + Adam) as one callable."""
    params = mlp.init_params(layers, seed=0, dtype="float32")
    opt = make_optimizer("adam", params, 1e-3)
    batches = [np.random.default_rng(i).permutation(len(X))[:128] for i in range(steps)]

    def run():
        for rows in batches:
            _, grads, _ = mlp.forward_backward(params, X, y, pool=pool, rows=rows)
            opt.step(params, grads, pool=pool)
    return run


def minibatch_section(src, threads, repeats, add):
    """A lone minibatch run: its epoch against PyTorch's and its step against its GEMMs."""
    split = datamod.split(src, None, "test", 0, "float32")
    for layers in MINIBATCH_NETS:
        name = "-".join(map(str, layers))
        with Threads(threads) as pool:
            timed = {"ours": ours_epoch(layers, split, pool)}
            pt = torch_epoch(layers, split, threads)
            if pt is not None:
                timed["torch"] = pt
            t = _interleaved_results(timed, max(3, repeats // 2))
        add("minibatch", f"{name} epoch, Adam, batch 128: ours", t["ours"], "s", f"({threads} threads)")
        if pt is None:
            add("minibatch", f"{name} epoch: PyTorch", None, "s", "(torch not installed: pip install torch==2.13.0)")
        else:
            add("minibatch", f"{name} epoch: PyTorch", t["torch"], "s", f"({threads} threads)")
            add("minibatch", f"{name} epoch: ours / PyTorch", t["ours"] / t["torch"], "x",
                "target <= 0.8" if layers == MINIBATCH_NETS[0] else "")
        with Threads(threads) as pool:
            make = lambda: ours_minibatch_steps(layers, split.X_train, split.y_train, pool)  # noqa: E731
            timed = {"ours": (1, make())}
            timed.update({k: (1, fn) for k, fn in layout_contestants(make, "float32").items()})
            gemms = gemms_alone(layers, 128, "float32")
            timed.update({k: (threads, (lambda fn=fn: [fn() for _ in range(50)])) for k, fn in gemms.items()})
            t = _interleaved_medians(timed, repeats)
        layout = min(("rows", "columns"), key=t.get)
        add("minibatch", f"{name} step (128 rows, Adam): ours", t["ours"] / 50, "s")
        add("minibatch", f"{name} step: GEMMs alone ({layout} layout)", t[layout] / 50, "s",
            f"({threads} BLAS threads)")
        add("minibatch", f"{name} step: ours / GEMMs", t["ours"] / t[layout], "x", "target <= 1.3")
        layout_verdicts("minibatch", f"{name} step", "float32", t, add)


# --- the whole benchmark ------------------------------------------------------

def step_section(src, threads, repeats, add):
    """1. The full-batch step against its GEMMs alone and PyTorch's, round-robin."""
    for dtype in ("float64", "float32"):
        split = datamod.split(src, 33600, "test", 0, dtype)
        for layers in NETS:
            name = "-".join(map(str, layers))
            with Threads(threads) as pool:
                make = lambda: ours_step(layers, split.X_train, split.y_train, dtype, pool)  # noqa: E731
                timed = {"ours": (1, make())}
                timed.update({k: (1, fn) for k, fn in layout_contestants(make, dtype).items()})
                timed.update({k: (threads, fn) for k, fn in gemms_alone(layers, 33600, dtype).items()})
                pt = torch_step(layers, split.X_train, split.y_train, dtype, threads)
                timed.update({f"torch {k}": (threads, fn) for k, fn in (pt or {}).items()})
                t = _interleaved_medians(timed, repeats)
            layout = min(("rows", "columns"), key=t.get)
            add("step", f"{name} {dtype}: ours", t["ours"], "s")
            add("step", f"{name} {dtype}: GEMMs alone ({layout} layout)", t[layout], "s",
                f"(rows {t['rows']:.4g}, columns {t['columns']:.4g})")
            add("step", f"{name} {dtype}: ours / GEMMs", t["ours"] / t[layout], "x", "target <= 1.2")
            add("step", f"{name} {dtype}: GFLOP/s ours", mlp.flops_per_iter(layers, 33600) / t["ours"] / 1e9,
                "GFLOP/s")
            layout_verdicts("step", name, dtype, t, add)
            if pt is None:
                add("step", f"{name} {dtype}: PyTorch", None, "s", "(torch not installed: pip install torch==2.13.0)")
                continue
            add("step", f"{name} {dtype}: PyTorch", t["torch step"], "s")
            add("step", f"{name} {dtype}: PyTorch's GEMMs alone", t["torch gemms"], "s", "(torch.matmul, rows)")
            target = "target <= 0.8" if dtype == "float32" else "target <= 1.0"
            add("step", f"{name} {dtype}: ours / PyTorch", t["ours"] / t["torch step"], "x",
                target if layers == NETS[1] else "")


def adam_section(src, threads, add):
    """2. Minibatch Adam to 97.5% test accuracy, ours against PyTorch."""
    split = datamod.split(src, None, "test", 0, "float32")
    ours_s, ours_it = ours_to_target(split, threads, 0.975, 20)
    add("adam", "ours: training seconds to 97.5%", ours_s, "s", f"({ours_it} iterations)")
    torch_s, torch_it = torch_to_target(split, threads, 0.975, 20)
    add("adam", "PyTorch: training seconds to 97.5%", torch_s, "s", f"({torch_it} iterations)")
    if ours_s and torch_s:
        add("adam", "ours / PyTorch", ours_s / torch_s, "x", "target <= 1.0")


LATENCY_NETS = ((784, 32, 10), (784, 256, 128, 64, 10), (784, 1024, 1024, 10))


def latency_section(add, nets=LATENCY_NETS):
    """2c. Inference latency per example (:mod:`harness.latency`, as reports
    store it) against its GEMMs alone (``np.matmul`` of the same shapes) on
    one thread, at batch 1 and at a large batch: the ratio says how much the
    forward pass costs beyond its arithmetic."""
    from . import latency

    for layers in nets:
        name = "-".join(map(str, layers))
        one, large = latency.measure(list(layers))
        for batch, per_example in ((1, one), (latency.LARGE_BATCH, large)):
            rng = np.random.default_rng(0)
            X = {n: rng.random((batch, n), dtype=np.float32) for n in layers}
            W = [rng.random((a, b), dtype=np.float32) for a, b in zip(layers[:-1], layers[1:])]

            def gemms():
                for w in W:
                    X[w.shape[0]] @ w
            with threadpool_limits(1, user_api="blas"):
                ref = latency.seconds_per_call(gemms) / batch
            add("latency", f"{name} batch {batch}: inference per example", per_example * 1e6, "µs")
            add("latency", f"{name} batch {batch}: inference / GEMMs alone", per_example / ref, "x",
                "target <= 3.0" if batch > 1 else "")


def machine():
    """One line: the processor, its cores, numpy and its BLAS with the kernel
    it chose (results are bit-identical only within one kernel)."""
    from threadpoolctl import threadpool_info

    from .blas import cpu_model

    blas = next((lib for lib in threadpool_info() if lib.get("user_api") == "blas"), {})
    kernel = f", kernel {blas['architecture']}" if blas.get("architecture") else ""
    return (f"{cpu_model()}, {os.cpu_count()} cores; numpy {np.__version__} with "
            f"{blas.get('internal_api', '?')} {blas.get('version', '')}{kernel}")


def kernel_note():
    """One line when this process's OpenBLAS kernel is not in the layout
    table (it then computes with the default kernel's layouts), else None."""
    kernel = blas.blas_kernel()
    if kernel in blas.LAYOUTS:
        return None
    return (f"note: the layout table does not know the OpenBLAS kernel {kernel}: it uses {blas.DEFAULT_KERNEL}'s "
            "layouts, and the rows below say where the other layout is faster")


def run_bench(out="results/bench", repeats=7, quick=False, say=silent, race_only=False, cases_only=False,
              dask_only=False):
    """Every section (or only the sweep race; or with ``cases_only`` only
    the step and lone-minibatch cases; or with ``dask_only`` only the Dask
    section), into ``out``/bench.csv and bench.png."""
    threads = os.cpu_count() or 1
    rows = []

    def add(section, item, value, unit, note=""):
        rows.append({"section": section, "item": item, "value": value, "unit": unit, "note": note})
        shown = "n/a" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
        say(f"  {item:<58} {shown:>10} {unit} {note}")

    say(f"harness bench: {threads} threads, medians of {repeats}; {machine()}")
    rows.append({"section": "machine", "item": machine(), "value": None, "unit": "", "note": ""})
    if kernel_note():
        say(kernel_note())
        rows.append({"section": "machine", "item": kernel_note(), "value": None, "unit": "", "note": ""})
    if dask_only:
        from .dask_bench import dask_section
        dask_section(quick, add, say)
    elif not race_only:
        src = datamod.load_source("mnist")
        say("1. full-batch training step on 33,600 MNIST rows")
        step_section(src, threads, repeats, add)
        if not quick and not cases_only:
            say("2. minibatch Adam (batch 128, lr 1e-3, float32) on 784-256-128-64-10 to 97.5% test accuracy")
            adam_section(src, threads, add)
        say(f"2b. a lone minibatch run (Adam, batch 128, float32, 60,000 rows) with {threads} threads")
        minibatch_section(src, threads, repeats, add)
        say("2c. inference latency per example on one thread, against its GEMMs alone")
        latency_section(add)
        if not cases_only:
            sweep_sections(quick, add, say)
            from .dask_bench import dask_section
            dask_section(quick, add, say)
    if not cases_only and not dask_only:
        from .race import race_section

        with tempfile.TemporaryDirectory() as tmp:
            race_section(repeats, quick, add, say, tmp)

    frame = pd.DataFrame(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(out / "bench.csv", frame.to_csv(index=False))
    if _ratios(frame).empty:  # nothing to compare with (a race without its opponents)
        say(f"wrote {out / 'bench.csv'}")
        return frame
    _plot(frame, out / "bench.png")
    say(f"wrote {out / 'bench.csv'} and {out / 'bench.png'}")
    return frame


def _ratios(frame):
    """The ratio rows of a bench frame, each with a unique ``label`` and its
    ``target`` (NaN if none)."""
    ratios = frame[(frame.unit == "x")].copy()
    # Items repeat across sections ("ours / PyTorch"), so the section names them.
    ratios["label"] = [item if section == "step" else f"{section}: {item}"
                       for section, item in zip(ratios.section, ratios["item"])]
    ratios["target"] = ratios.note.fillna("").str.extract(r"target <= ([\d.]+)", expand=False).astype(float)
    return ratios


def _plot(frame, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    ratios = _ratios(frame)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ratios) + 1.5))
    sns.barplot(data=ratios, y="label", x="value", color="steelblue", ax=ax)
    marked = ratios.reset_index(drop=True).dropna(subset=["target"])
    ax.scatter(marked.target, marked.index, marker="|", s=300, color="crimson", zorder=3, label="target")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.legend(loc="lower right")
    ax.set_xlabel("ratio (lower is better for us)")
    ax.set_ylabel("")
    ax.set_title("harness bench: ratios measured in one run")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    store.atomic_write_bytes(path, buf.getvalue())
