"""Files of a run folder. Each file has one writer, and a finished file is
written under a temporary name and renamed into place, so a reader (or a
resumed sweep) never sees half a file.

A run folder holds ``config.json`` (settings and where it ran), ``metrics.csv``
(one row per iteration), ``params.npz``, ``confusion.csv`` (validation
confusion matrix of the final parameters), ``error.txt`` for a failed run, and
``status.json``, the completion marker, written last.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from . import manifest
from .errors import ConfigError, DiskFull, LinkRefused
from .status import parse as parse_status

METRIC_COLUMNS = ("iteration", "train_loss", "train_acc", "val_acc", "iter_seconds", "elapsed_seconds")
STATUS = "status.json"
from .layout import LOCK, PLAN, runs_dir  # noqa: E402,F401 (the sweep folder's names: see harness.layout)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
TOO_LARGE = errno.EFBIG  # a file-size limit (ulimit -f, a batch system's): as final as a full disk


def _temp_name(path: Path) -> Path:
    """The temporary file an atomic write of ``path`` goes through (see :func:`sweep_temp_files`)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def failed_write(path, error: OSError):
    """The error to raise for a write of ``path`` that failed with ``error``:
    a full disk (or a file-size limit) is :class:`DiskFull`, one line naming the file."""
    if error.errno == TOO_LARGE:
        return DiskFull(path, "file size limit exceeded")
    return DiskFull(path) if error.errno in NO_SPACE else error


def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to a temporary file beside ``path``, then rename it
    into place. On failure the temporary file is removed (by this writer,
    for its own file only) and a full disk raises :class:`DiskFull`."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise failed_write(path, e) from None


def atomic_write_together(files: dict):
    """Write ``{path: text}`` all or nothing: every file to its temporary
    name first, and only when all are written, each renamed into place. A
    failure (a full disk) removes the temporary files and leaves the old
    files as they were."""
    written = []
    try:
        for path, text in files.items():
            path, tmp = Path(path), _temp_name(Path(path))
            written.append((tmp, path))
            with open(tmp, "wb") as f:
                f.write(text.encode())
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:
        for tmp, _ in written:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise failed_write(written[-1][1], e) from None
    for tmp, path in written:
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
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(METRIC_COLUMNS)
        writer.writerows([_fmt(row.get(c)) for c in METRIC_COLUMNS] for row in keep)
        atomic_write_text(self.part, text.getvalue())
        try:
            self._f = open(self.part, "a", newline="")
        except OSError as e:
            raise failed_write(self.part, e) from None
        self._w = csv.writer(self._f)

    def write(self, row: dict):
        try:
            self._w.writerow([_fmt(row.get(c)) for c in METRIC_COLUMNS])
            self._f.flush()
        except OSError as e:
            raise failed_write(self.part, e) from None

    def finish(self):
        try:
            os.fsync(self._f.fileno())
            self._f.close()
            os.replace(self.part, self.final)
        except OSError as e:
            raise failed_write(self.final, e) from None

    def close(self):
        if not self._f.closed:
            with contextlib.suppress(OSError):  # a full disk's buffered rows: the run is failing already
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


def _is_temp(name: str) -> bool:
    """A temporary file of an atomic write (``.NAME.PID.tmp``; older
    versions wrote ``metrics.csv.part.PID.tmp``)."""
    return name.endswith(".tmp") and (name.startswith(".") or name.startswith("metrics.csv.part."))


def sweep_temp_files(folder) -> int:
    """Remove the temporary files a dead writer left in a sweep folder, its
    plots and its run folders. Only for the sweep that holds the folder's
    lock, once no earlier writer lives. Returns how many were removed."""
    folder = Path(folder)
    removed = 0
    runs = runs_dir(folder)
    places = [folder, folder / "plots"] + ([p for p in runs.iterdir() if not p.is_symlink()] if runs.is_dir() else [])
    for place in places:
        if not place.is_dir() or place.is_symlink():
            continue
        for entry in os.scandir(place):
            if entry.is_file(follow_symlinks=False) and _is_temp(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def refuse_links(folder, depth=3):
    """Raise :class:`LinkRefused` naming the first symbolic link at or under
    ``folder`` (to ``depth`` levels: the sweep folder, ``runs/``, run folders
    and their files): the harness writes into these, and a link could send
    those writes anywhere outside ``--out``. Never follows one."""
    folder = Path(folder)
    if folder.is_symlink():
        raise LinkRefused(f"{folder}: a symbolic link; results are never written through links "
                          "(replace it with a real folder, or use --out DIR)")
    if depth == 0 or not folder.is_dir():
        return
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return  # removed as we looked (a sweep redoing a run)
    for entry in entries:
        if entry.is_symlink():
            raise LinkRefused(f"{entry.path}: a symbolic link; results are never written through links, "
                              "nor read through them (remove it)")
        if entry.is_dir(follow_symlinks=False):
            refuse_links(entry.path, depth - 1)


def remove_run_folder(folder):
    """Remove a run folder to redo it. A symbolic link is refused (see
    :func:`refuse_links`), never followed nor silently kept."""
    folder = Path(folder)
    if folder.is_symlink():
        raise LinkRefused(f"{folder}: a symbolic link; results are never written through links (remove it)")
    shutil.rmtree(folder, ignore_errors=True)


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
