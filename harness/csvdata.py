"""CSV files: the Kaggle "Digit Recognizer" layout, and any table of numbers
with a label column.

A CSV has a header line. The label is its first column, or the column named
by ``label_column``; every other column is a feature. Features named
``pixel0, pixel1, ...`` are pixels (whole numbers 0-255, scaled by 1/255 like
IDX images); any other features are numbers, standardized with the training
rows' mean and std. Every problem is a :class:`DataError` naming the file,
and the line and column where there is one.
"""
from __future__ import annotations

import hashlib
import numpy as np

from .errors import DataError

# Labels are class numbers 0..n-1, one output unit each: a label this big is
# a stray value, not a class (label 999999999 would ask for a 10^9-wide layer).
MAX_CLASSES = 10_000


def parse(path, raw: bytes, label_column=None):
    """``(X, y, scaling, fingerprint)`` from the bytes of the CSV at ``path``.
    ``X`` is uint8 for pixels (``scaling`` "pixels") or float64 otherwise
    ("standardize"); ``y`` is int64, or None for a Kaggle file without labels."""
    text = raw.decode("utf-8-sig", errors="replace")  # -sig: a BOM before the header is no column name
    header, rows, linenos = _cells(path, text)
    label = _label_index(path, header, label_column)
    features = [j for j in range(len(header)) if j != label]
    if not features:
        raise DataError(f"{path}: the header has no feature columns besides the label {header[label]!r}")
    pixels = _pixel_layout(path, header, features)
    table = _table(path, rows, header, linenos, label, integer=pixels)
    X = table[:, features]
    if pixels:
        _check_range(path, X, [header[j] for j in features], linenos, 0, 255, "pixel")
        X = np.ascontiguousarray(X, dtype=np.uint8)
    else:
        _check_range(path, X, [header[j] for j in features], linenos, -np.inf, np.inf, "value")
        X = np.ascontiguousarray(X)
    y = None if label is None else _labels(path, table[:, label], header[label], linenos)
    digest = hashlib.sha256(raw)
    if label:  # a label other than the first column is other data from the same bytes
        digest.update(f"\0label_column={header[label]}".encode())
    return X, y, "pixels" if pixels else "standardize", digest.hexdigest()[:16]


def _cells(path, text):
    """``(header, rows, linenos)``: the header's names, and each data row's
    cells with its line number (blank lines skipped)."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{path}: empty file")
    header = [h.strip() for h in lines[0].split(",")]
    if all(_is_number(h) for h in header):
        raise DataError(f"{path}: line 1 holds numbers, not column names; "
                        "the first line must be a header such as label,x1,x2,...")
    for j, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}: header column {j} has no name")
    rows, linenos = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != len(header):
            raise DataError(f"{path}: line {lineno} has {len(cells)} columns, the header has {len(header)}")
        rows.append(cells)
        linenos.append(lineno)
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return header, rows, linenos


def _label_index(path, header, label_column):
    """The label's column: the one named ``label_column``, else the first,
    unless the file is a Kaggle test file (pixel columns only: no labels)."""
    if label_column:
        found = [j for j, name in enumerate(header) if name == label_column]
        if len(found) != 1:
            what = "no column" if not found else f"{len(found)} columns"
            shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
            raise DataError(f"{path}: label_column = {label_column!r}, but the header has {what} of that name "
                            f"(columns: {shown})")
        return found[0]
    return None if header[0] == "pixel0" else 0


def _pixel_layout(path, header, features):
    """True for the Kaggle layout: features ``pixel0..pixelN`` in order. A
    header of pixel columns out of that order is refused, not read as a table."""
    names = [header[j] for j in features]
    if not all(n.startswith("pixel") for n in names):
        return False
    for k, (j, name) in enumerate(zip(features, names)):
        if name != f"pixel{k}":
            raise DataError(f"{path}: header column {j + 1} is {name!r}, expected 'pixel{k}' "
                            "(layout: label,pixel0,...,pixelN)")
    return True


def _table(path, rows, header, linenos, label, integer):
    """The cells as one int64 (pixels) or float64 array; the first cell
    that is not such a number is named."""
    try:
        return np.array(rows, dtype=np.int64 if integer else np.float64)
    except ValueError:
        r, c = _first(rows, lambda s: not (_is_int if integer else _is_number)(s))
        what = "label " if c == label else ""
        raise DataError(f"{path}: line {linenos[r]}, column {header[c]!r}: {what}{_shown(rows[r][c])} is not a "
                        + ("whole number" if integer or what else "number")) from None


def _check_range(path, X, names, linenos, low, high, what):
    """Every value finite and within [low, high] (pixels: 0..255)."""
    bad = np.argwhere(~((X >= low) & (X <= high) & np.isfinite(X)))
    if bad.size:
        r, c = bad[0]
        why = (f"is outside {low}..{high}" if np.isfinite(low)
               else "is not a finite number (fill in or drop missing values first)")
        raise DataError(f"{path}: line {linenos[r]}, column {names[c]!r}: {what} {X[r, c]} {why}")


def _labels(path, values, name, linenos):
    """Class numbers 0, 1, ...: whole numbers (``3.0`` too, in a table of
    numbers), below MAX_CLASSES."""
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0) & (values == np.floor(values))))
    if bad.size:
        r = bad[0]
        raise DataError(f"{path}: line {linenos[r]}, column {name!r}: label {values[r]:g} is not a class "
                        "number (0, 1, 2, ...)")
    big = np.flatnonzero(values >= MAX_CLASSES)
    if big.size:
        r = big[0]
        raise DataError(f"{path}: line {linenos[r]}, column {name!r}: label {values[r]:.0f} would make "
                        f"{values[r] + 1:,.0f} classes (an output layer that wide); labels are class numbers "
                        f"below {MAX_CLASSES:,}")
    return values.astype(np.int64)


def _first(cells, wrong):
    """``(row, column)`` of the first cell for which ``wrong`` is true (the
    slow path runs only on bad files)."""
    return next((r, c) for r, row in enumerate(cells) for c, s in enumerate(row) if wrong(s))


def _shown(cell):
    return "an empty cell" if not cell.strip() else repr(cell.strip())


def _is_int(text):
    try:
        int(text)
        return True
    except ValueError:
        return False


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False
