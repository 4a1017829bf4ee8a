"""Datasets: the bundled MNIST, folders of IDX files, CSV files.

Loading gives a :class:`Source` (raw features and labels, a content
fingerprint, and how its features are scaled); :func:`split` turns it into
scaled train/validation arrays.
Every problem with a file is a :class:`DataError` that names the file.
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import csvdata
from .errors import DataError

BUNDLED = {"mnist": Path(__file__).parent / "datasets" / "mnist"}
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_UBYTE = 0x08


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: arrays inside
class Source:
    """Raw data as loaded. ``X: (N, n_features)``, uint8 pixels or float64
    numbers; ``y: (N,)`` int64 or None when unlabelled; ``X_test``/``y_test``
    are the official test split, or None when the source has none (a CSV).
    ``scaling`` is a key of :data:`SCALINGS`."""

    name: str
    X: np.ndarray
    y: np.ndarray | None
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    n_classes: int
    fingerprint: str
    scaling: str = "pixels"

    @property
    def n_features(self):
        return self.X.shape[1]


@dataclass(frozen=True, eq=False)
class Split:
    """Arrays ready for training, scaled (see :data:`SCALINGS`) in the run's dtype.
    ``X_*: (m, n_features)``, ``y_*: (m,)``. ``X_test`` is set only when the
    validation rows come from the training file, so the official test split
    stays held out."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


# --- IDX ----------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read: {e}") from None


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse the bytes of an IDX file of unsigned bytes into an array of its
    declared shape. ``name`` is used in error messages."""
    if len(raw) == 0:
        raise DataError(f"{name}: empty file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or not 1 <= raw[3] <= 4:
        raise DataError(f"{name}: bad magic number {raw[:4].hex()} (expected 0x000008 then 1-4 dimensions)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated header ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(shape, dtype=np.int64))
    have = len(raw) - header
    if have < need:
        raise DataError(f"{name}: truncated: shape {shape} needs {need} data bytes, file has {have}")
    if have > need:
        raise DataError(f"{name}: {have - need} unexpected bytes after the {need} data bytes of shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / (stem + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _checksums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def _images_labels(images, labels, img_path, lab_path, n_classes):
    if images.ndim != 3:
        raise DataError(f"{img_path}: expected 3 dimensions (count, rows, cols), found {images.ndim}")
    if labels.ndim != 1:
        raise DataError(f"{lab_path}: expected 1 dimension (count), found {labels.ndim}")
    if len(images) != len(labels):
        raise DataError(f"{img_path} has {len(images)} images but {lab_path} has {len(labels)} labels")
    _check_labels(labels, lab_path, n_classes)
    return images.reshape(len(images), -1), labels.astype(np.int64)


def _check_labels(labels, where, n_classes=None):
    bad = np.flatnonzero((labels < 0) | (labels >= (n_classes or np.inf)))
    if bad.size:
        span = f"0..{n_classes - 1}" if n_classes else "0 and up"
        raise DataError(f"{where}: label {labels[bad[0]]} at row {bad[0]} is outside {span}")


def _check_classes(labels, where):
    """A classifier needs two classes: a file whose rows all share one label
    would train to a loss of 0 and compare nothing."""
    if labels.min() == labels.max():
        raise DataError(f"{where}: every row has label {labels[0]}; a classifier needs at least two classes")


def _classes(n_classes, *labels):
    """The number of classes: as given, or one more than the largest label."""
    return n_classes or int(max(int(y.max()) for y in labels if y is not None and y.size)) + 1


def load_idx_folder(folder, n_classes=None, name=None) -> Source:
    """Load a folder holding the four standard MNIST IDX files, gzip or raw.

    If the folder has a ``SHA256SUMS`` file (sha256 of the decompressed
    files), every file is verified against it. ``n_classes`` defaults to one
    more than the largest label.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data folder")
    sums = _checksums(folder)
    arrays, paths = {}, {}
    digest = hashlib.sha256()
    for key, stem in IDX_NAMES.items():
        path = _find_idx(folder, stem)
        if path is None:
            if key.startswith("test"):
                continue
            raise DataError(f"{folder}: missing {stem} (or {stem}.gz)")
        raw = _read_bytes(path)
        sha = hashlib.sha256(raw).hexdigest()
        if stem in sums and sums[stem] != sha:
            raise DataError(f"{path}: corrupt: sha256 {sha[:12]}... does not match SHA256SUMS ({sums[stem][:12]}...)")
        digest.update(sha.encode())
        arrays[key], paths[key] = parse_idx(raw, str(path)), path
    X, y = _images_labels(arrays["train_images"], arrays["train_labels"],
                          paths["train_images"], paths["train_labels"], n_classes)
    _check_classes(y, paths["train_labels"])
    X_test = y_test = None
    if "test_images" in arrays and "test_labels" in arrays:
        X_test, y_test = _images_labels(arrays["test_images"], arrays["test_labels"],
                                        paths["test_images"], paths["test_labels"], n_classes)
        if X_test.shape[1] != X.shape[1]:
            raise DataError(f"{paths['test_images']}: images have {X_test.shape[1]} pixels, "
                            f"training images have {X.shape[1]}")
    return Source(name or str(folder), X, y, X_test, y_test, _classes(n_classes, y, y_test),
                  digest.hexdigest()[:16])


# --- CSV ---------------------------------------------------------------------

def load_csv(path, n_classes=None, label_column=None) -> Source:
    """Load a CSV with a header line: the label in its first column (or the
    column named ``label_column``) and numbers in the others. Features named
    ``pixel0,...,pixelN`` (the Kaggle "Digit Recognizer" layout) are pixels;
    other features are standardized when split. A Kaggle file without a
    label column loads unlabelled (``y`` is None). ``n_classes`` defaults to
    one more than the largest label."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    X, y, scaling, fingerprint = csvdata.parse(path, _read_bytes(path), label_column)
    if y is not None:
        _check_labels(y, path, n_classes)
        _check_classes(y, path)
    n_classes = _classes(n_classes, y) if y is not None else (n_classes or 0)
    return Source(str(path), X, y, None, None, n_classes, fingerprint, scaling)


# --- scaling ---------------------------------------------------------------------

def _pixel_scaler(X_train, dtype):
    """Pixels 0..255 to [0, 1]: the same operations as ever, so the numbers stay bit for bit."""
    def scale(X):
        out = X.astype(dtype)
        out /= 255
        return out
    return scale


def _standard_scaler(X_train, dtype):
    """Each feature to mean 0 and std 1 over the training rows (validation and
    test rows use the same mean and std, so nothing is learnt from them). A
    constant feature is centred only."""
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0

    def scale(X):
        return ((X - mean) / std).astype(dtype)
    return scale


# How a source's features become inputs: its ``scaling`` -> a factory that
# fits on the training rows and returns the function scaling any rows; and
# what the user is told (start-up line, config.json).
SCALERS = {"pixels": _pixel_scaler, "standardize": _standard_scaler}
SCALINGS = {"pixels": "pixels scaled by 1/255",
            "standardize": "standardized (mean and std of the training rows)"}


# --- entry points -------------------------------------------------------------

@lru_cache(maxsize=4)
def load_source(dataset="mnist", path=None, label_column=None) -> Source:
    """:func:`read_source`, cached per process, so sweep workers read once."""
    return read_source(dataset, path, label_column)


def read_source(dataset="mnist", path=None, label_column=None) -> Source:
    """Read the bundled dataset ``dataset``, or ``path`` (an IDX folder or a
    CSV file, whose labels are in the column ``label_column`` or the first)
    when given, from its files (uncached: see :func:`load_source`)."""
    if path is not None:
        p = Path(path)
        if p.is_dir():
            if label_column:
                raise DataError(f"{p}: label_column = {label_column!r} names a CSV column, but this is an IDX folder")
            return load_idx_folder(p)
        if p.suffix.lower() in (".csv", ".gz") or p.is_file():
            return load_csv(p, label_column=label_column)
        raise DataError(f"{p}: no such data file or folder")
    if label_column:
        raise DataError(f"label_column = {label_column!r} names a column of a CSV file; give its path too")
    if dataset not in BUNDLED:
        raise DataError(f"unknown dataset {dataset!r}; bundled: {', '.join(BUNDLED)} (or give a path)")
    return load_idx_folder(BUNDLED[dataset], name=dataset)


def row_counts(source: Source, train_size=None, validation="test"):
    """``(n_train, n_val, n_test)``: the rows a run trains on, selects on, and
    holds out (``n_test`` is 0 when the test split serves as validation).
    A validation fraction is a share of the whole training file, taken
    before ``train_size``. Raises DataError when they do not fit."""
    n = len(source.X)
    n_test = 0 if source.X_test is None else len(source.X_test)
    if validation == "test":
        if source.X_test is None:
            raise DataError(f"{source.name}: has no test split; set validation to a fraction such as 0.2")
        n_val, n_test = n_test, 0
        held = 0
    else:
        held = n_val = int(round(float(validation) * n))
        if not 0 < n_val < n:
            raise DataError(f"{source.name}: validation = {validation} leaves {n_val} of its {n} rows for validation")
    available = n - held
    n_train = available if not train_size else int(train_size)
    if n_train > available:
        raise DataError(f"train_size = {n_train} but {source.name} has only {available} training rows"
                        + (f" after holding out {held} for validation" if held else ""))
    return n_train, n_val, n_test


def describe_rows(source: Source, train_size=None, validation="test"):
    """One line for the user: how many rows train, validate and test."""
    n_train, n_val, n_test = row_counts(source, train_size, validation)
    if validation == "test":
        where = "the official test split; nothing held out"
    else:
        where = f"{float(validation):g} of the {len(source.X):,} rows of the training file"
    return (f"{n_train:,} training rows, {n_val:,} validation rows ({where})"
            + (f", {n_test:,} test rows held out" if n_test else "")
            + f"; {source.n_features:,} features, {SCALINGS[source.scaling]}")


def split(source: Source, train_size=None, validation="test", data_seed=0, dtype="float32") -> Split:
    """Choose and scale the rows for one run.

    The training rows are the first ``train_size`` rows of a shuffle of the
    source's training file seeded by ``data_seed`` (all of them if None).
    ``validation`` is ``"test"`` (the official test split) or a fraction in
    (0, 1): that share of the shuffled training rows, taken from the end of
    the shuffle so it never overlaps the training rows. Every part is
    scaled as ``source.scaling`` says, fitted on the training rows alone.
    """
    if source.y is None:
        raise DataError(f"{source.name}: has no 'label' column, so it cannot be trained on")
    n = len(source.X)
    perm = np.random.default_rng(data_seed).permutation(n)
    n_train, n_val, _ = row_counts(source, train_size, validation)
    train_idx = perm[:n_train]
    if validation == "test":
        X_val, y_val = source.X_test, source.y_test
        X_test = y_test = None
    else:
        val_idx = perm[n - n_val:]
        X_val, y_val = source.X[val_idx], source.y[val_idx]
        X_test, y_test = source.X_test, source.y_test

    X_train = source.X[train_idx]
    scale = SCALERS[source.scaling](X_train, dtype)
    return Split(
        scale(X_train), source.y[train_idx],
        scale(X_val), y_val,
        None if X_test is None else scale(X_test), y_test,
    )
