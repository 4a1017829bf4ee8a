"""Small data the tests write themselves; shared by conftest's fixtures,
the test files and tests/training_hash.py (test files import this module,
never each other)."""
import gzip
import signal
import subprocess
import sys
import time

import numpy as np


def make_digits(n, n_features=16, n_classes=10, seed=0):
    """A learnable toy problem: each class is a fixed random pixel pattern plus noise.
    Returns uint8 ``X: (n, n_features)`` and int ``y: (n,)``."""
    protos = np.random.default_rng(1234).integers(0, 256, size=(n_classes, n_features))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    X = np.clip(protos[y] + rng.normal(0, 40, size=(n, n_features)), 0, 255).astype(np.uint8)
    return X, y


def write_csv(path, X, y=None):
    cols = ([] if y is None else ["label"]) + [f"pixel{j}" for j in range(X.shape[1])]
    lines = [",".join(cols)]
    for i in range(len(X)):
        cells = ([] if y is None else [str(int(y[i]))]) + [str(int(v)) for v in X[i]]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def idx_bytes(arr):
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def write_idx_folder(folder, X, y, X_test, y_test, side=4, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": X.reshape(len(X), side, side),
        "train-labels-idx1-ubyte": y,
        "t10k-images-idx3-ubyte": X_test.reshape(len(X_test), side, side),
        "t10k-labels-idx1-ubyte": y_test,
    }
    for name, arr in files.items():
        raw = idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return folder


PNG = b"\x89PNG\r\n\x1a\n"

def check_pngs(folder):
    """Every plot of a report is a real, non-blank image."""
    import matplotlib.image as mpimg

    from harness.report import PLOTS

    for name in PLOTS:
        path = folder / "plots" / f"{name}.png"
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
        img = mpimg.imread(path)
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert img[..., :3].std() > 0.01, f"{name} is blank"

def problem(layers, m=7, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, layers[0])).astype(dtype)
    y = rng.integers(0, layers[-1], size=m)
    return X, y

HALVING = """
[sweep]
name = "halves"
jobs = {jobs}
seeds = [0, 1]
strategy = "halving"
eta = 3
min_iterations = 10

[data]
path = "{data}"
validation = 0.25

[train]
iterations = 90
eval_every = 10
optimizer = "adam"
batch_size = 32

[grid]
layers = [[16, 10], [16, 8, 10], [16, 16, 10]]
lr = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
"""

# The same three rungs over 9 configurations (9 -> 3 -> 1): a third of the training
HALVING_NINE = HALVING.replace("lr = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]", "lr = [0.003, 0.03, 0.3]")
assert HALVING_NINE != HALVING

TUNED = """
[sweep]
name = "tuned"
jobs = {jobs}
seeds = [0, 1]

[data]
path = "{data}"
validation = 0.25

[train]
iterations = 30
eval_every = 10
optimizer = "momentum"

[grid]
layers = [[16, 8, 10], [16, 10]]

[tune]
trials = 4
confirm_seeds = 2
lr = {{ log_uniform = [0.01, 1.0] }}
momentum = {{ uniform = [0.5, 0.9] }}
"""

def fake_model():
    """A cost model with fixed coefficients: estimates without a calibration."""
    from harness import cost

    coef = {d: {"1": [1e-4, 1e-5, 1e-11, 1e-9, 1e-9], "2": [1e-4, 1e-5, 6e-12, 6e-10, 6e-10]}
            for d in ("float32", "float64")}
    return cost.Model(coef, {"gd": 0.2, "sgd": 0.2, "momentum": 0.3, "adam": 1.0}, 0.01, 0.5, 2, 1.1)

SLOW_GRID = """
[sweep]
name = "slow"
jobs = 2
seeds = [0, 1, 2, 3, 4, 5]

[data]
path = "{data}"
validation = 0.25

[train]
layers = [16, 128, 128, 10]
iterations = {iterations}
eval_every = 100
lr = 0.1
"""

def slow_grid(tmp_path, iterations=3000, name="slow.toml", seeds=6):
    """A sweep of ``seeds`` runs (one per seed) slow enough to kill mid-run."""
    X, y = make_digits(300)
    data = write_csv(tmp_path / "data.csv", X, y)
    path = tmp_path / name
    text = SLOW_GRID.format(data=data.name, iterations=iterations)
    path.write_text(text.replace("seeds = [0, 1, 2, 3, 4, 5]", f"seeds = {list(range(seeds))}"))
    return path

def as_from_a_shell():
    """A process started as a shell starts a command: SIGINT and SIGTERM at
    their defaults and no signal blocked, whatever the test process holds."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

def start(grid, out):
    return subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(grid), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=as_from_a_shell)

def wait_for(predicate, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out waiting")

GRID = """
[sweep]
name = "tiny"
jobs = {jobs}
seeds = [0, 1]

[data]
path = "{data}"
validation = 0.25

[train]
iterations = 30
eval_every = 10
lr = 0.5

[grid]
depth = [1, 2]
width = [8, 12]
shape = ["constant", "halving"]

[[include]]
layers = [16, 10]
iterations = 40
"""

NUMBERS = ["final_train_acc", "final_val_acc", "best_val_acc", "final_train_loss", "iterations_run"]

def write_grid(tmp_path, tiny_csv, text=GRID, name="grid.toml", **fmt):
    path = tmp_path / name
    path.write_text(text.format(**{"jobs": 2, "data": tiny_csv.name, **fmt}))
    return path

def sweep_without_report(grid, out, scheduler=None, force=False):
    """What ``harness sweep GRID --out OUT --quiet`` does (with ``--force``
    when ``force``), less the report:
    for a sweep whose report no test reads (its plots cost seconds). Returns
    the exit status."""
    from harness.grid import load_sweep
    from harness.progress import for_terminal
    from harness.sweep import run_sweep

    return run_sweep(load_sweep(grid, scheduler=scheduler), out, force=force, events=for_terminal(True), report=False)
