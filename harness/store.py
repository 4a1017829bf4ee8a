"""Files of a run folder. Each file has one writer, and a finished file is
written under a temporary name and renamed into place, so a reader (or a
resumed sweep) never sees half a file.

A run folder holds ``config.json`` (settings and where it ran), ``metrics.csv``
(one row per iteration), ``params.npz``, ``confusion.csv`` (validation
confusion matrix of the final parameters), ``error.txt`` for a failed run, and
``status.json``, the completion marker, written last.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from pathlib import Path

import numpy as np

from . import manifest
from .errors import ConfigError
from .status import parse as parse_status

METRIC_COLUMNS = ("iteration", "train_loss", "train_acc", "val_acc", "iter_seconds", "elapsed_seconds")
STATUS = "status.json"
LOCK = ".lock"  # held by a running sweep (see harness.sweep.locked)
PLAN = "plan.json"  # the runs of the grid, written by the sweep as it starts


def atomic_write_bytes(path, data: bytes):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def save_params(path, params):
    """``params.npz`` with arrays W0, b0, W1, b1, ... (layer order)."""
    buf = io.BytesIO()
    arrays = {}
    for i, (W, b) in enumerate(params):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_params(path):
    with np.load(path) as z:
        n = len(z.files) // 2
        return [(z[f"W{i}"], z[f"b{i}"]) for i in range(n)]


def save_confusion(path, counts):
    """``confusion.csv``: rows are true classes, columns predicted classes."""
    n = len(counts)
    lines = ["true," + ",".join(f"pred_{j}" for j in range(n))]
    lines += [f"{i}," + ",".join(str(int(c)) for c in counts[i]) for i in range(n)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


class MetricsWriter:
    """Streams metric rows to ``metrics.csv.part``, flushed per row so a crash
    keeps what was measured; :meth:`finish` renames it to ``metrics.csv``.
    A run continued from a checkpoint starts from ``keep``, the rows up to
    it (written, then renamed over the old file, so a crash loses none)."""

    def __init__(self, folder, keep=()):
        self.final = Path(folder) / "metrics.csv"
        self.part = self.final.with_name("metrics.csv.part")
        fresh = self.part.with_name(f"metrics.csv.part.{os.getpid()}.tmp")
        with open(fresh, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRIC_COLUMNS)
            writer.writerows([_fmt(row.get(c)) for c in METRIC_COLUMNS] for row in keep)
        os.replace(fresh, self.part)
        self._f = open(self.part, "a", newline="")
        self._w = csv.writer(self._f)

    def write(self, row: dict):
        self._w.writerow([_fmt(row.get(c)) for c in METRIC_COLUMNS])
        self._f.flush()

    def finish(self):
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.part, self.final)

    def close(self):
        if not self._f.closed:
            self._f.close()


def read_metrics_part(folder, name="metrics.csv.part"):
    """The whole rows of a run's ``metrics.csv.part`` (or of ``name``), as
    the loop yielded them (floats written with repr read back to the same
    bits)."""
    rows = []
    try:
        with open(Path(folder) / name, newline="") as f:
            for raw in csv.DictReader(f):
                if raw.get("elapsed_seconds") in (None, ""):
                    break  # a half-written last line
                rows.append({k: (int(v) if k == "iteration" else float(v) if v else None) for k, v in raw.items()})
    except (OSError, ValueError):
        return []
    return rows


CHECKPOINT = "checkpoint.npz"


def save_checkpoint(folder, arrays: dict, meta: dict):
    """Write a run's state: arrays, and ``meta`` (JSON) beside them; atomically."""
    buf = io.BytesIO()
    np.savez(buf, _meta=np.array(json.dumps(meta)), **arrays)
    atomic_write_bytes(Path(folder) / CHECKPOINT, buf.getvalue())


def checkpoint_meta(folder):
    """The metadata of a run's checkpoint (its iteration, ...) without its
    arrays, or None if it has none."""
    try:
        with np.load(Path(folder) / CHECKPOINT) as z:
            return json.loads(str(z["_meta"]))
    except Exception:  # noqa: BLE001 - any damage (a bad zip, CRC, pickle refused) means no usable checkpoint
        return None


def load_checkpoint(folder):
    """``(arrays, meta)`` of a run's checkpoint, or None if it has none
    (or an unreadable one)."""
    try:
        with np.load(Path(folder) / CHECKPOINT) as z:
            arrays = {k: z[k] for k in z.files if k != "_meta"}
            return arrays, json.loads(str(z["_meta"]))
    except Exception:  # noqa: BLE001 - as in checkpoint_meta
        return None


def last_iteration(folder):
    """The iteration of the last whole row a running run has streamed to
    ``metrics.csv.part``, or None. Reads only the file's tail."""
    try:
        with open(Path(folder) / "metrics.csv.part", "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 4096))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    lines = tail.split("\n")[:-1]  # the part after the last newline may be half-written
    for line in reversed(lines):
        first = line.split(",", 1)[0]
        if first.isdigit():
            return int(first)
    return None


def write_status(folder, record: dict):
    """Write ``status.json``, the completion marker: the one writer of it.
    ``record["status"]`` must be one of :class:`harness.status.RunStatus`.
    It carries the manifest of the run's files as they are now."""
    parse_status(record["status"])
    atomic_write_json(Path(folder) / STATUS, manifest.seal(folder, record))


def writable_folder(folder, what="results folder", flag="--out DIR"):
    """Create ``folder`` and check that files can be written in it; raises
    ConfigError naming it (and the flag that chooses another) otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{folder}: {what} cannot be written ({e.strerror or e}); "
                          f"choose another with {flag}") from None


def sweep_running(folder) -> bool:
    """Whether a sweep holds ``folder/.lock`` now. It is an OS lock, so a
    sweep that died holds nothing."""
    path = Path(folder) / LOCK
    if not path.is_file():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while a sweep holds it exclusively
        except BlockingIOError:
            return True
    return False


def read_status(folder):
    """The completion marker of a run folder, or None if the run never
    finished, or its record does not verify (see :mod:`harness.manifest`)."""
    return manifest.check(folder).record
