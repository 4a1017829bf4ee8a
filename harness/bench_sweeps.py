"""The bench's sweeps (sections 3 and 4): small grids and
experiments/article.toml swept with jobs = 1 against jobs = 2, in wall
seconds, and a worker's peak memory."""
from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
from pathlib import Path

from . import layout, store

# Eight small full-batch runs: with jobs = 1 each run already spreads its row
# chunks over every core, so a second worker has less to win.
SMALL_GRID = """
[sweep]
name = "throughput"
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
[data]
dataset = "mnist"
train_size = 10000
[train]
layers = [784, 64, 10]
iterations = {iterations}
eval_every = 50
"""

# The same eight runs in minibatches of 128 on all 60,000 rows, as long as
# experiments/grid.toml's runs (2000 iterations): one chunk per step, so a
# run cannot use a second core on its own and only a second worker can. Also
# where a worker's memory on full MNIST is read.
SMALL_MINIBATCH_GRID = (SMALL_GRID.replace("train_size = 10000", "train_size = 0")
                        .replace("eval_every = 50", "eval_every = 50\nbatch_size = 128\noptimizer = \"adam\"\nlr = 0.001"))

# One big run and four small ones: the big one is scheduled first, and takes
# over the idle core once the small ones are done.
MIXED_GRID = """
[sweep]
name = "mixed"
[data]
dataset = "mnist"
train_size = 10000
[train]
iterations = {iterations}
eval_every = 50
[grid]
layers = [[784, 256, 128, 64, 10], [784, 16, 10], [784, 24, 10], [784, 32, 10], [784, 48, 10]]
"""


def article_grid(quick):
    """The text of experiments/article.toml (None if this is not a source
    checkout); with ``quick``, a tenth of its iterations."""
    for path in (Path("experiments/article.toml"), Path(__file__).resolve().parents[1] / "experiments/article.toml"):
        if path.is_file():
            text = path.read_text()
            if quick:
                text = re.sub(r"(?m)^iterations = (\d+)", lambda m: f"iterations = {int(m[1]) // 10}", text)
            return text
    return None


def sweep_seconds(grid_text, jobs, root):
    """Wall seconds of the sweep ``grid_text`` with ``jobs`` workers (runs
    only, no report), and the largest peak RSS (MB) of the processes that
    trained its runs."""
    from .grid import load_sweep
    from .sweep import run_sweep

    grid = Path(root) / f"grid-{jobs}.toml"
    grid.write_text(grid_text)
    sweep = load_sweep(grid, jobs=jobs)
    out = Path(root) / f"out{jobs}"
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_sweep(sweep, out, report=False)
    seconds = time.perf_counter() - t
    if code != 0:
        raise RuntimeError(f"benchmark sweep failed (exit {code})")
    peaks = [store.read_status(d)["peak_rss_mb"] for d in layout.runs_dir(out / sweep.name).iterdir()]
    return seconds, max(peaks)


def _one_vs_two(grid_text):
    with tempfile.TemporaryDirectory() as tmp:
        one, _ = sweep_seconds(grid_text, 1, tmp)
        two, peak = sweep_seconds(grid_text, 2, tmp)
    return one, two, peak


def sweep_sections(quick, add, say):
    """3 and 4. Sweeps with jobs = 1 against jobs = 2."""
    iterations = 30 if quick else 150
    for label, template, its in (("full batch, 10,000 rows", SMALL_GRID, iterations),
                                 ("minibatch 128, Adam, 60,000 rows", SMALL_MINIBATCH_GRID, 400 if quick else 2000)):
        say(f"3. sweep throughput: 8 runs of 784-64-10, {label}")
        one, two, peak = _one_vs_two(template.format(iterations=its))
        add("sweep", f"{label}: jobs = 1: wall seconds", one, "s")
        add("sweep", f"{label}: jobs = 2: wall seconds", two, "s")
        add("sweep", f"{label}: jobs = 2 / jobs = 1", two / one, "x", "target <= 0.6")
        add("sweep", f"{label}: peak memory of a worker process", peak, "MB", "target <= 1024")
    mixed = [("mixed", "784-256-128-64-10 and four small networks, full batch, 10,000 rows",
              MIXED_GRID.format(iterations=iterations))]
    article = article_grid(quick)
    if article is None:
        say("  (experiments/article.toml not found: run the bench from a source checkout to time it)")
    else:
        mixed.append(("article", "experiments/article.toml" + (" at a tenth of its iterations" if quick else ""),
                      article))
    for section, label, grid_text in mixed:
        say(f"4. {label}")
        one, two, _ = _one_vs_two(grid_text)
        add(section, "one after another (jobs = 1, all cores each): wall seconds", one, "s")
        add(section, "jobs = 2, longest first: wall seconds", two, "s")
        add(section, "jobs = 2 / one after another", two / one, "x", "target <= 1.0")
