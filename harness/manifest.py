"""A run's record verifies itself, and so do the files a sweep writes.

``status.json`` carries a manifest: the SHA-256 (and size, and row count
for ``metrics.csv``) of the run's ``config.json``, ``metrics.csv`` and
``confusion.csv`` as they were when the record was written, and the SHA-256
of the record itself. A run folder's name is the hash of its settings, so
``config.json`` is also checked against the folder's name. A record that
fails any check is not believed: the run counts as unfinished (a sweep
redoes it) and readers name the file that was wrong.

A sweep's own files (``summary.csv``, ``sweep.toml``) get a sidecar in
``sha256sum`` format (``summary.csv.sha256``), and ``plan.json`` the hash
of its own content.

Records written before manifests existed have none: they are read as
before (and :func:`seal` adds one to those that are consistent).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .config import RunConfig
from .errors import ConfigError
from .status import RunStatus

KEY = "manifest"           # the manifest's key in status.json
SELF = "record_sha256"     # in it: the hash of the rest of the record
COVERED = ("config.json", "metrics.csv", "confusion.csv")
OWN_HASH = "sha256"        # plan.json's hash of its own content


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def _read(path: Path):
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def file_entry(name, data: bytes) -> dict:
    entry = {"sha256": digest(data), "bytes": len(data)}
    if name == "metrics.csv":
        entry["rows"] = max(0, data.count(b"\n") - 1)
    return entry


def seal(folder, record: dict) -> dict:
    """``record`` with a manifest of the run folder's files as they are now."""
    folder = Path(folder)
    record = {k: v for k, v in record.items() if k != KEY}
    files = {}
    for name in COVERED:
        data = _read(folder / name)
        if data is not None:
            files[name] = file_entry(name, data)
    return {**record, KEY: {"files": files, SELF: _record_digest(record, files)}}


def _record_digest(record, files):
    """The hash of a record and its manifest's file list (so a changed byte
    anywhere in status.json is blamed on status.json)."""
    return digest(_canonical({**record, KEY: {"files": files}}))


@dataclass
class Verdict:
    """What a run folder's record says, once checked: ``record`` (None when
    absent or not believed), ``problem`` (which file is wrong, and how) and
    ``sealed`` (whether it carried a manifest)."""

    record: dict | None
    problem: str | None = None
    sealed: bool = False


def _config_problem(folder: Path, data: bytes | None):
    """Why ``config.json`` is not this folder's run's, or None."""
    if data is None:
        return "config.json is missing"
    try:
        conf = json.loads(data)
        run_id = RunConfig.from_saved(conf).run_id(conf["data_fingerprint"])
    except (ValueError, TypeError, KeyError, AttributeError, ConfigError):
        return "config.json is unreadable"
    if run_id != folder.name:
        return f"config.json is not this run's (its settings hash to {run_id})"
    return None


def _record_problem(record) -> str | None:
    if not isinstance(record, dict):
        return f"status.json holds a JSON {type(record).__name__}, not a record"
    if record.get("status") not in {s.value for s in RunStatus}:
        return f"status.json holds an unknown status {record.get('status')!r}"
    return None


def check(folder, contents: dict | None = None) -> Verdict:
    """Read and verify a run folder's record. ``contents``, when given, is
    filled with the bytes of the covered files read on the way (so a reader
    parses what was verified, reading each file once)."""
    folder = Path(folder)
    raw = _read(folder / "status.json")
    if raw is None:
        return Verdict(None)
    try:
        record = json.loads(raw)
    except ValueError:
        return Verdict(None, "status.json is unreadable")
    problem = _record_problem(record)
    if problem:
        return Verdict(None, problem)
    manifest = record.get(KEY)
    sealed = manifest is not None
    seen = contents if contents is not None else {}
    if sealed:
        problem = _manifest_problem(folder, record, manifest, seen)
    named = folder.parent.name == layout.RUNS  # a sweep's run folder is named by its run id (train --out is free)
    if problem is None and named and record.get("run_id", folder.name) != folder.name:
        problem = f"status.json is run {record.get('run_id')}'s, not this folder's"
    # The folder's name is the hash of config.json's settings. A manifest holds
    # the hash of the config.json its run wrote (under that run's id): that
    # settles it. A finished record without one has its settings hashed again.
    if problem is None and named and not sealed and RunStatus(record["status"]).is_finished():
        problem = _config_problem(folder, _read(folder / "config.json"))
    return Verdict(None if problem else record, problem, sealed)


def _manifest_problem(folder: Path, record, manifest, contents):
    try:
        rest = {k: v for k, v in record.items() if k != KEY}
        files = manifest["files"]
        if manifest[SELF] != _record_digest(rest, files):
            return "status.json does not match its own checksum"
        names = list(files)
    except (TypeError, KeyError, AttributeError):
        return "status.json has a damaged manifest"
    for name in names:
        data = _read(folder / name)
        if data is None:
            return f"{name} is missing"
        try:
            expected = files[name]["sha256"]
        except (TypeError, KeyError):
            return "status.json has a damaged manifest"
        if digest(data) != expected:
            return f"{name} does not match the manifest in status.json"
        contents[name] = data
    return None


# --- a sweep's own files: a sha256sum sidecar --------------------------------------

def sidecar(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def sidecar_text(path, data: bytes) -> str:
    """The sidecar of ``path`` holding ``data``, as ``sha256sum`` writes it."""
    return f"{digest(data)}  {Path(path).name}\n"


def write_sealed(path, text: str):
    """Write a sweep file and its ``.sha256`` sidecar, which readers check."""
    from .store import atomic_write_text

    atomic_write_text(path, text)
    atomic_write_text(sidecar(path), sidecar_text(path, text.encode()))


def check_file(path):
    """``(data, sealed)`` of a sweep file with a sidecar; raises ConfigError
    naming it when it is missing or does not match. ``sealed`` is False for
    a file written before sidecars (read as it is)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        side = sidecar(path).read_text().split()
    except FileNotFoundError:
        return data, False
    except (OSError, UnicodeDecodeError):
        side = []
    if not side or side[0] != digest(data):
        raise ConfigError(f"{path}: does not match its checksum in {sidecar(path).name} (damaged, or edited); "
                          f"run the sweep again to rewrite it, or delete {sidecar(path).name} to read it as it is")
    return data, True


# --- a JSON file holding its own hash ------------------------------------------------

def self_sealed(obj: dict) -> dict:
    return {**obj, OWN_HASH: digest(_canonical({k: v for k, v in obj.items() if k != OWN_HASH}))}


def self_check(obj) -> bool | None:
    """True when ``obj`` holds its own hash and it matches, False when it
    does not match, None when it holds none (written before hashes)."""
    if not isinstance(obj, dict) or OWN_HASH not in obj:
        return None
    return obj[OWN_HASH] == digest(_canonical({k: v for k, v in obj.items() if k != OWN_HASH}))


# --- adding manifests to records written before them ---------------------------------

def _metrics_agree(data: bytes, record: dict):
    """Why ``metrics.csv`` (bytes) disagrees with the figures its record
    took from it, or None when it agrees."""
    import csv
    import io
    import statistics

    try:
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        its = [int(r["iteration"]) for r in rows]
        vals = [float(r["val_acc"]) for r in rows if r["val_acc"]]
        secs = [float(r["iter_seconds"]) for r in rows]
        elapsed = float(rows[-1]["elapsed_seconds"]) if rows else None
    except (UnicodeDecodeError, KeyError, TypeError, ValueError, csv.Error):
        return "metrics.csv is unreadable"
    figures = {"iterations_run": len(rows), "best_val_acc": max(vals) if vals else None,
               "median_iter_seconds": statistics.median(secs) if secs else None, "total_seconds": elapsed}
    if its != list(range(1, len(rows) + 1)) or any(record.get(k, v) != v for k, v in figures.items()):
        return "metrics.csv does not agree with status.json"
    return None


def seal_old(folder) -> str | None:
    """Give a finished run's record written before manifests one, when its
    files are consistent: ``config.json`` hashes to the folder's name and
    ``metrics.csv`` gives the record's figures. Returns the problem when they
    are not (and seals nothing), else None. Records that have a manifest, or
    are unfinished, are left as they are."""
    from .store import write_status

    folder = Path(folder)
    verdict = check(folder)
    if verdict.problem or verdict.sealed or verdict.record is None:
        return verdict.problem
    if not RunStatus(verdict.record["status"]).is_finished():
        return None
    data = _read(folder / "metrics.csv")
    problem = "metrics.csv is missing" if data is None else _metrics_agree(data, verdict.record)
    if problem is None:
        write_status(folder, verdict.record)
    return problem
