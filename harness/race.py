"""The bench's sweep race: the same small sweep as whole commands, the
harness against PyTorch + joblib and scikit-learn's MLPClassifier + joblib.

A user iterating on a small grid times the command, not the training
loop, so each contestant is one command in its own process, from start-up
to its results on disk: ``python -m harness sweep`` (with its summary and
report), and ``python -m harness.race torch|sklearn`` (this module run as a
script: the runs in a joblib pool of the same workers, one thread each,
then a results CSV). All three load the data with :mod:`harness.data` and
train the same architectures and seeds for the same epochs of minibatch
Adam. The peers import their framework only in the workers that train.

The commands are timed round-robin, the order rotating each round, after a
moment of quiet, and compared by their medians in the same run: the
machine's drifts hit them alike. PyTorch and scikit-learn are bench-only
opponents (the ``bench`` extra); a missing one is reported, not raced.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

TOOLS = ("harness", "torch", "sklearn")
NAMES = {"harness": "harness", "torch": "PyTorch + joblib", "sklearn": "scikit-learn MLPClassifier + joblib"}


@dataclass(frozen=True)
class Race:
    """The sweep raced: every hidden-layer list of ``depths`` × ``widths``
    (constant width) on each seed, ``epochs`` of Adam in batches of
    ``batch_size`` at ``lr``, float32, on ``jobs`` workers of one thread.
    ``path`` is a data file or folder ("" = the bundled MNIST)."""

    depths: tuple = (1, 2)
    widths: tuple = (64, 256)
    seeds: tuple = (0, 1)
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.001
    jobs: int = 2
    path: str = ""
    validation: str | float = "test"
    hidden: tuple = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple((w,) * d for d in self.depths for w in self.widths))

    @property
    def runs(self):
        return len(self.hidden) * len(self.seeds)


def grid_text(race: Race) -> str:
    """The harness's grid file for ``race``: evaluated once, at the end, like the peers."""
    data = f'path = "{race.path}"' if race.path else 'dataset = "mnist"'
    return f"""[sweep]
name = "race"
jobs = {race.jobs}
seeds = {list(race.seeds)}
[data]
{data}
validation = {json.dumps(race.validation)}
[train]
optimizer = "adam"
lr = {race.lr}
batch_size = {race.batch_size}
epochs = {race.epochs}
eval_every = 1000000
[grid]
depth = {list(race.depths)}
width = {list(race.widths)}
"""


def commands(race: Race, folder: Path, round_: int) -> dict:
    """``{tool: argv}``: each contestant's command, writing into its own new
    folder under ``folder`` for round ``round_``."""
    folder = Path(folder)
    grid = folder / "race.toml"
    grid.write_text(grid_text(race))
    spec = json.dumps({k: v for k, v in asdict(race).items() if k != "hidden"})
    return {
        "harness": [sys.executable, "-m", "harness", "sweep", str(grid), "--out", str(folder / f"harness-{round_}")],
        "torch": [sys.executable, "-m", "harness.race", "torch", spec, str(folder / f"torch-{round_}.csv")],
        "sklearn": [sys.executable, "-m", "harness.race", "sklearn", spec, str(folder / f"sklearn-{round_}.csv")],
    }


def available(tool) -> bool:
    return tool == "harness" or importlib.util.find_spec(tool) is not None


def order(tools, round_):
    """The round's order: rotated by one each round, so none always goes first."""
    k = round_ % len(tools)
    return list(tools[k:]) + list(tools[:k])


def run_race(race: Race, folder, repeats, warmup=1, settle=1.0, tools=TOOLS, run=None, say=None):
    """Seconds of each tool's whole command in each timed round, ``{tool:
    [seconds, ...]}``; ``warmup`` rounds first are not counted (the
    harness calibrates its cost model once per machine, caches warm up).
    ``run(argv, root)`` runs one command (default: a subprocess whose
    failure raises, with its last lines of output); ``say`` hears each
    round's times."""
    run = run or _run
    env_root = str(Path(__file__).resolve().parents[1])
    times, took = {tool: [] for tool in tools}, {}
    for round_ in range(warmup + repeats):
        argv = commands(race, folder, round_)
        for tool in order(tools, round_):
            time.sleep(settle)
            t = time.perf_counter()
            run(argv[tool], env_root)
            seconds = time.perf_counter() - t
            if round_ >= warmup:
                times[tool].append(seconds)
            took[tool] = seconds
        if say:
            say(f"  round {round_ + 1 - warmup if round_ >= warmup else 'warm-up'}: "
                + ", ".join(f"{tool} {took[tool]:.2f} s" for tool in tools))
    return times


def _run(argv, root):
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-5:])
        raise RuntimeError(f"race command failed (exit {done.returncode}): {' '.join(argv[:5])}\n{tail}")


def summarize(times):
    """``(medians, ratios)``: each tool's median seconds, and the harness's
    median over each peer's (below 1: the harness is faster)."""
    medians = {tool: statistics.median(v) for tool, v in times.items() if v}
    ratios = {tool: medians["harness"] / medians[tool] for tool in medians if tool != "harness"}
    return medians, ratios


def race_section(repeats, quick, add, say, folder):
    """5. The sweep race, for ``harness bench``."""
    race = Race()
    tools = tuple(t for t in TOOLS if available(t))
    say(f"5. a small sweep, whole commands: {len(race.hidden)} architectures x {len(race.seeds)} seeds, "
        f"{race.epochs} epoch of Adam, {race.jobs} workers of one thread, round-robin")
    times = run_race(race, folder, repeats=3 if quick else max(3, min(repeats, 5)), tools=tools, say=say)
    medians, ratios = summarize(times)
    for tool in TOOLS:
        if tool not in medians:
            add("race", f"{NAMES[tool]}: whole command", None, "s", f"(not installed: pip install '.[bench]')")
            continue
        spread = f"(min {min(times[tool]):.3g}, max {max(times[tool]):.3g}, n = {len(times[tool])})"
        add("race", f"{NAMES[tool]}: whole command", medians[tool], "s", spread)
    for tool, ratio in ratios.items():
        add("race", f"harness / {NAMES[tool]}", ratio, "x", "target <= 1.0")
    return times


# --- the peers, run as ``python -m harness.race TOOL SPEC OUT`` -----------------

def _load(spec):
    from . import data

    source = data.load_source("mnist", spec["path"] or None)
    split = data.split(source, None, spec["validation"], 0, "float32")
    return split.X_train, split.y_train, split.X_val, split.y_val, source.n_classes


def _torch_run(layers, seed, spec, X, y, Xv, yv):
    """One run in PyTorch: nn.Linear + ReLU, cross-entropy, Adam, a fresh
    shuffle per epoch; accuracies on every training and validation row."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(layers[:-1], layers[1:]):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.tensor(X), torch.tensor(y, dtype=torch.int64)
    gen = np.random.default_rng(seed)
    for _ in range(spec["epochs"]):
        perm = torch.from_numpy(gen.permutation(len(Xt)))
        for start in range(0, len(Xt), spec["batch_size"]):
            idx = perm[start:start + spec["batch_size"]]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        train_acc = (model(Xt).argmax(1) == yt).float().mean().item()
        val_acc = (model(torch.tensor(Xv)).argmax(1) == torch.tensor(yv)).float().mean().item()
    return {"layers": "-".join(map(str, layers)), "seed": seed, "train_acc": train_acc, "val_acc": val_acc}


def _sklearn_run(layers, seed, spec, X, y, Xv, yv):
    """One run of scikit-learn's MLPClassifier: Adam, no L2, exactly
    ``epochs`` passes (no early stop), BLAS on one thread."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    clf = MLPClassifier(hidden_layer_sizes=layers[1:-1], solver="adam", learning_rate_init=spec["lr"],
                        batch_size=spec["batch_size"], max_iter=spec["epochs"], alpha=0.0, random_state=seed,
                        shuffle=True, tol=0.0, n_iter_no_change=10**9)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the epochs asked for are all it gets
        clf.fit(X, y)
        train_acc, val_acc = clf.score(X, y), clf.score(Xv, yv)
    return {"layers": "-".join(map(str, layers)), "seed": seed, "train_acc": train_acc, "val_acc": val_acc}


RUNNERS = {"torch": _torch_run, "sklearn": _sklearn_run}


def peer_main(tool, spec_json, out):
    """A peer's whole command: load the data, train every run in a joblib
    pool, write one CSV row per run."""
    from joblib import Parallel, delayed

    spec = json.loads(spec_json)
    X, y, Xv, yv, n_classes = _load(spec)
    runs = [(X.shape[1], *h, n_classes) for h in Race(tuple(spec["depths"]), tuple(spec["widths"])).hidden]
    rows = Parallel(n_jobs=spec["jobs"])(delayed(RUNNERS[tool])(layers, seed, spec, X, y, Xv, yv)
                                         for layers in runs for seed in spec["seeds"])
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(peer_main(*sys.argv[1:4]))
