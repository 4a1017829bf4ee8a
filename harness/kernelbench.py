"""``harness bench --kernels Haswell,SkylakeX``: the bench's step and lone-
minibatch cases once per OpenBLAS kernel, side by side.

OpenBLAS picks its kernel once, when it loads, and ``OPENBLAS_CORETYPE``
forces another; so each kernel's cases run in a fresh process of their own
(``harness bench --cases-only``), and this one reads their ``bench.csv``
back. A machine that cannot run a kernel (SkylakeX without AVX-512) gets
another from OpenBLAS: the table says which kernel each column really ran.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from . import store
from .words import silent

KERNEL_ROW = "OpenBLAS kernel it ran"


def kernel_command(kernel, out, repeats, quick):
    """``(argv, env)`` of the fresh process that runs the cases under ``kernel``."""
    argv = [sys.executable, "-m", "harness", "bench", "--cases-only", "--out", str(out), "--repeats", str(repeats)]
    if quick:
        argv.append("--quick")
    return argv, {**os.environ, "OPENBLAS_CORETYPE": kernel}


def side_by_side(frames):
    """``{kernel: bench frame}`` -> one frame: a row per measured item, a
    column per kernel, the first row the kernel each process really ran."""
    columns = {}
    for kernel, frame in frames.items():
        measured = frame[frame.value.notna()]
        values = dict(zip(measured.section + ": " + measured["item"], measured.value))
        machine = frame[frame.section == "machine"]["item"]
        ran = machine.str.extract(r"kernel (\w+)", expand=False).dropna()
        columns[kernel] = {KERNEL_ROW: ran.iloc[0] if len(ran) else "?", **values}
    table = pd.DataFrame(columns)
    table.index.name = "item"
    return table


def run_kernels(kernels, out="results/bench", repeats=7, quick=False, say=silent):
    """Each kernel's cases in its own process, into ``out``/kernel-<name>/,
    and the side-by-side table into ``out``/kernels.csv. Returns that table."""
    out = Path(out)
    frames = {}
    for kernel in kernels:
        folder = out / f"kernel-{kernel}"
        say(f"OPENBLAS_CORETYPE={kernel}: the step and minibatch cases in a fresh process")
        argv, env = kernel_command(kernel, folder, repeats, quick)
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
            for line in child.stdout:
                say(f"  [{kernel}] {line.rstrip()}")
        if child.returncode != 0:
            raise RuntimeError(f"the bench under OPENBLAS_CORETYPE={kernel} failed (exit {child.returncode})")
        frames[kernel] = pd.read_csv(folder / "bench.csv")
    table = side_by_side(frames)
    store.atomic_write_text(out / "kernels.csv", table.to_csv())
    width = max(len(i) for i in table.index)
    say(f"{'side by side':<{width}}  " + "  ".join(f"{k:>12}" for k in table.columns))
    for item, row in table.iterrows():
        cells = (f"{v:>12.4g}" if isinstance(v, float) else f"{v!s:>12}" for v in row)
        say(f"{item:<{width}}  " + "  ".join(cells))
    say(f"wrote {out / 'kernels.csv'}")
    return table
