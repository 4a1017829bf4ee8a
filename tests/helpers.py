"""Small data the tests write themselves; shared by conftest's fixtures,
the test files and tests/training_hash.py (test files import this module,
never each other)."""
import gzip

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
