"""A sweep folder's files read for a report, each checked against its
manifest: summary.csv, every run's metrics rows (or a packed sweep's), the
runs' config.json, and what they say of the machine and the rows."""
from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from .. import layout, manifest, pack, store
from ..errors import ConfigError
from ..status import in_comparison


def load(folder):
    """``(summary, metrics, folder)``: the summary (one row per run) and all
    runs' metrics rows with their run id. Raises ConfigError for a folder
    that holds no sweep results, or a summary.csv that is damaged. Runs whose
    record does not verify are left out; ``summary.attrs["left_out"]``
    holds ``[(run_id, problem)]`` and ``summary.attrs["unsealed"]`` how many
    runs (and the summary) were read without a manifest to check."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such results folder")
    store.refuse_links(folder)  # another folder's runs, shown as this sweep's
    path = folder / layout.SUMMARY
    if not path.is_file():
        raise ConfigError(f"{folder}: no summary.csv here; is this a sweep's results folder (results/<name>)?")
    data, sealed = manifest.check_file(path)
    summary = _parse_summary(path, data)
    if pack.is_packed(folder):
        return _load_packed(folder, summary, sealed)
    keep, frames, left_out, unsealed = [], [], [], (0 if sealed else 1) + _check_sweep_files(folder, sealed)
    for run_id in summary.run_id:
        contents = {}
        verdict = manifest.check(layout.run_dir(folder, run_id), contents)
        problem = verdict.problem or (sealed and verdict.record is None and "status.json is missing")
        if problem:
            left_out.append((run_id, problem))
            keep.append(False)
            continue
        keep.append(True)
        unsealed += verdict.record is not None and not verdict.sealed
        m = _metrics(layout.run_dir(folder, run_id) / "metrics.csv", contents.get("metrics.csv"))
        if m is not None:
            m["run_id"] = run_id
            frames.append(m)
    summary = summary[np.array(keep, dtype=bool)].reset_index(drop=True)
    summary.attrs.update(left_out=left_out, unsealed=unsealed)
    if summary.empty:
        raise ConfigError(f"{path}: no run left to report: " + "; ".join(f"{r}: {p}" for r, p in left_out[:3]))
    columns = list(store.METRIC_COLUMNS) + ["run_id"]
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return summary, metrics, folder


def _load_packed(folder: Path, summary, sealed):
    """:func:`load` for a packed sweep (see :mod:`harness.pack`): its
    evaluation rows are the metrics; every run is kept (the pack holds only
    sound ones, and its file is checked against its sidecar)."""
    unsealed = (0 if sealed else 1) + _check_sweep_files(folder, sealed)
    metrics = pack.read_evaluations(folder)
    summary.attrs.update(left_out=[], unsealed=unsealed, packed=True)
    return summary, metrics[metrics.run_id.isin(summary.run_id)].reset_index(drop=True), folder


def _check_sweep_files(folder: Path, sealed):
    """Check the grid as run (``sweep.toml``) and ``tuned.csv``, which the
    report reads too; returns how many were read without a checksum. Beside
    a checked summary, a missing ``sweep.toml`` is damage, not an old sweep."""
    unsealed = 0
    for name in (layout.SETTINGS, layout.TUNED):
        path = folder / name
        if not path.exists():
            if sealed and name == layout.SETTINGS:
                raise ConfigError(f"{path}: missing; run the sweep again to rewrite it")
            continue
        data, ok = manifest.check_file(path)
        unsealed += not ok
        if name == layout.SETTINGS:
            try:
                tomllib.loads(data.decode())
            except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"{path}: unreadable ({e}); run the sweep again to rewrite it") from None
    return unsealed


def _parse_summary(path: Path, data: bytes):
    """summary.csv's rows, checked for what the report relies on."""
    try:
        summary = pd.read_csv(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        summary = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable ({str(e).splitlines()[0]}); run the sweep again to rewrite it") from None
    if summary.empty:
        raise ConfigError(f"{path}: no runs recorded yet; run the sweep first")
    if not {"run_id", "status"} <= set(summary.columns):
        raise ConfigError(f"{path}: damaged (no run_id or status column); run the sweep again to rewrite it")
    ids = summary.run_id.astype(str)
    if summary.run_id.isna().any() or any(Path(r).name != r or r in (".", "..") for r in ids):
        raise ConfigError(f"{path}: damaged (a run_id that is not a run's); run the sweep again to rewrite it")
    try:
        in_comparison(summary.status)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    summary["run_id"] = ids
    return summary


def _metrics(path: Path, data: bytes | None):
    """A run's metrics rows (from ``data`` when already read and verified),
    or None when it has none. Raises ConfigError naming a file that is not
    a metrics file."""
    if data is None and not path.is_file():
        return None
    try:
        m = pd.read_csv(io.BytesIO(data) if data is not None else path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as e:
        raise ConfigError(f"{path}: unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not set(store.METRIC_COLUMNS) <= set(m.columns) or len(m) and not all(
            pd.api.types.is_numeric_dtype(m[c]) for c in store.METRIC_COLUMNS):
        raise ConfigError(f"{path}: not a metrics file (columns {', '.join(store.METRIC_COLUMNS)} of numbers)")
    return m


def run_configs(folder, summary):
    """``{run_id: config.json}`` for the runs of ``summary`` that have one."""
    if pack.is_packed(folder):
        records = pack.read_records(folder)
        return {r: records[r]["config"] for r in summary.run_id if r in records}
    out = {}
    for run_id in summary.run_id:
        path = layout.run_dir(folder, run_id) / "config.json"
        try:
            conf = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # verified runs have theirs; an old run's damaged one tells nothing
        if isinstance(conf, dict):
            out[run_id] = conf
    return out


def environment(configs):
    for conf in configs.values():
        return {
            "CPU": conf.get("cpu", "?"),
            "cores": conf.get("cores", "?"),
            "host": conf.get("host", "?"),
            "numpy": conf.get("numpy", "?"),
            "BLAS": f"{conf.get('blas', '?')} ({conf.get('blas_threads', '?')} thread per chunk)",
            "threads per run": conf.get("threads", "?"),
            "harness": conf.get("harness", "?"),
        }
    return {}


def row_counts(summary, configs):
    """Distinct (training, validation, test) row counts of the runs, as text:
    from summary.csv, or from config.json for a summary without them."""
    if {"n_train", "n_val", "n_test"} <= set(summary.columns):
        known = summary.dropna(subset=["n_train"])  # a run that failed in setup never counted its rows
        seen = dict.fromkeys(zip(known.n_train, known.n_val, known.n_test))
    else:
        seen = dict.fromkeys((c.get("n_train"), c.get("n_val"), c.get("n_test")) for c in configs.values())
    parts = []
    for n_train, n_val, n_test in seen:
        text = f"{int(n_train):,} training rows, {int(n_val):,} validation rows" if n_train is not None else ""
        if n_test:
            text += f", {int(n_test):,} test rows held out"
        if text:
            parts.append(text)
    return "; ".join(parts)
