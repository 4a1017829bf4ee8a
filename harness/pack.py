"""A packed sweep: a sweep folder's summary and its runs' evaluations,
compact enough to commit.

A packed folder holds the sweep files as the sweep wrote them
(``summary.csv``, ``sweep.toml``, ``tuned.csv``, with their ``.sha256``
sidecars) and, instead of ``runs/``:

- ``evaluations.csv.gz``: every run's evaluation rows (the metric rows with
  a validation accuracy), with ``run_id`` and ``train_seconds`` (the run's
  training seconds up to that row, summed over all its iterations);
- ``runs.json.gz``: each run's ``config.json`` and validation confusion
  matrix.

Both carry a ``.sha256`` sidecar, and are gzip files without a time stamp,
so packing an unchanged sweep again writes the same bytes. The per-iteration
rows between evaluations are not kept (they are most of a sweep's bytes):
a report of a packed sweep takes time per iteration from the evaluated
iterations alone. This module is the one owner of that layout: writing it,
and reading it for ``report``, ``verify`` and ``replay``."""
from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

from . import latency, layout, manifest, store
from .errors import ConfigError

EVALUATIONS = "evaluations.csv.gz"
RECORDS = "runs.json.gz"
SWEEP_FILES = (layout.SUMMARY, layout.SETTINGS, layout.TUNED, layout.RACE)
PACKED_FILES = (EVALUATIONS, RECORDS)
MEASURED = (latency.FILE,)  # measured once; kept so a packed report reuses it
PACKED_NOTE_START = "This sweep is packed (harness pack)"
COLUMNS = ("run_id",) + tuple(store.METRIC_COLUMNS) + ("train_seconds",)


def is_packed(folder) -> bool:
    return (Path(folder) / EVALUATIONS).is_file()


def gzip_bytes(data: bytes) -> bytes:
    """``data`` gzip-compressed with no time stamp or name: the same input
    gives the same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


# --- writing -----------------------------------------------------------------------

def _run_rows(run_dir: Path, run_id, data: bytes):
    """A run's evaluation rows as text cells (the recorded digits, unchanged),
    each with the training seconds summed up to it."""
    reader = csv.DictReader(io.StringIO(data.decode()))
    missing = set(store.METRIC_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(f"{run_dir / 'metrics.csv'}: not a metrics file (no {', '.join(sorted(missing))})")
    out, seconds = [], 0.0
    for row in reader:
        seconds += float(row["iter_seconds"] or 0.0)
        if row["val_acc"] not in ("", None):
            out.append([run_id] + [row[c] for c in store.METRIC_COLUMNS] + [repr(seconds)])
    return out


def _confusion(data: bytes | None):
    if data is None:
        return None
    rows = list(csv.reader(io.StringIO(data.decode())))
    return {"columns": rows[0], "rows": rows[1:]}


def pack(folder, out, say=None):
    """Write the packed form of sweep folder ``folder`` into ``out`` (made
    if missing). Refuses, writing nothing, a folder with a damaged or
    unfinished run. Returns ``(out, bytes written in the packed files)``."""
    import pandas as pd

    folder, out = Path(folder), Path(out)
    if is_packed(folder):
        raise ConfigError(f"{folder}: already packed")
    summary_path = folder / layout.SUMMARY
    if not summary_path.is_file() or not layout.runs_dir(folder).is_dir():
        raise ConfigError(f"{folder}: no summary.csv and runs/ here; is this a sweep's results folder?")
    data, _ = manifest.check_file(summary_path)
    run_ids = pd.read_csv(io.BytesIO(data), dtype=str).run_id.tolist()
    rows, records = [], {}
    for run_id in run_ids:
        run_dir = layout.run_dir(folder, run_id)
        contents = {}
        verdict = manifest.check(run_dir, contents)
        problem = verdict.problem or (verdict.record is None and "no status.json (unfinished)")
        if problem:
            raise ConfigError(f"{run_dir}: {problem}; a packed sweep holds only sound, finished runs")
        metrics = contents.get("metrics.csv") or (run_dir / "metrics.csv").read_bytes()
        rows += _run_rows(run_dir, run_id, metrics)
        config = contents.get("config.json") or (run_dir / "config.json").read_bytes()
        confusion = contents.get("confusion.csv")
        if confusion is None and (run_dir / "confusion.csv").is_file():
            confusion = (run_dir / "confusion.csv").read_bytes()
        records[run_id] = {"config": json.loads(config), "confusion": _confusion(confusion)}
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    files = {EVALUATIONS: gzip_bytes(text.getvalue().encode()),
             RECORDS: gzip_bytes(json.dumps(records, sort_keys=True, indent=0).encode())}
    store.writable_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SWEEP_FILES + MEASURED:  # as the sweep wrote them, sidecars too
        for path in (folder / name, manifest.sidecar(folder / name)):
            if path.is_file() and (not (out / path.name).is_file() or
                                   (out / path.name).read_bytes() != path.read_bytes()):
                shutil.copyfile(path, out / path.name)
    for name, blob in files.items():
        _write_if_changed(out / name, blob)
        _write_if_changed(manifest.sidecar(out / name), manifest.sidecar_text(name, blob).encode())
    if say:
        say(f"packed {len(run_ids)} runs, {len(rows)} evaluation rows")
    return out, sum(len(b) for b in files.values())


def _write_if_changed(path: Path, data: bytes):
    """Leave an identical file alone (its time stamp too)."""
    if not (path.is_file() and path.read_bytes() == data):
        store.atomic_write_bytes(path, data)


# --- reading -----------------------------------------------------------------------

def _checked(folder: Path, name):
    data, sealed = manifest.check_file(folder / name)
    if not sealed:
        raise ConfigError(f"{folder / name}: no {manifest.sidecar(folder / name).name}; pack the sweep again")
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise ConfigError(f"{folder / name}: not a gzip file ({e})") from None


def read_evaluations(folder):
    """Every run's evaluation rows: a frame with :data:`COLUMNS`, numbers
    as numbers. Checked against its sidecar."""
    import pandas as pd

    folder = Path(folder)
    frame = pd.read_csv(io.BytesIO(_checked(folder, EVALUATIONS)), dtype={"run_id": str})
    if tuple(frame.columns) != COLUMNS:
        raise ConfigError(f"{folder / EVALUATIONS}: damaged (columns {', '.join(frame.columns)})")
    return frame


def read_records(folder):
    """``{run_id: {"config": dict, "confusion": {"columns", "rows"} or None}}``."""
    folder = Path(folder)
    try:
        return json.loads(_checked(folder, RECORDS))
    except ValueError as e:
        raise ConfigError(f"{folder / RECORDS}: damaged ({e})") from None


def verify(folder):
    """``(counts, problems)`` of a packed folder: its files against their
    sidecars, and every run of summary.csv with evaluation rows whose last
    validation accuracy is the summary's ``final_val_acc`` (when the run
    kept no earlier iteration)."""
    import pandas as pd

    folder = Path(folder)
    problems, verified = [], 0
    for name in SWEEP_FILES + PACKED_FILES:
        if (folder / name).is_file() or name in (layout.SUMMARY,) + PACKED_FILES:
            try:
                manifest.check_file(folder / name)
                verified += 1
            except ConfigError as e:
                problems.append(str(e))
    if problems:
        return verified, problems
    summary = pd.read_csv(folder / layout.SUMMARY, dtype={"run_id": str})
    evals = read_evaluations(folder)
    last = evals.groupby("run_id").last()
    records = read_records(folder)
    for row in summary.itertuples():
        if row.run_id not in records:
            problems.append(f"{folder / RECORDS}: run {row.run_id} is missing")
        kept = getattr(row, "kept_iteration", None)
        if row.run_id not in last.index:
            if pd.notna(row.final_val_acc):
                problems.append(f"{folder / EVALUATIONS}: run {row.run_id} has no evaluation rows")
        elif (pd.isna(kept) or kept == row.iterations_run) and pd.notna(row.final_val_acc) \
                and last.val_acc[row.run_id] != row.final_val_acc:
            problems.append(f"{folder / EVALUATIONS}: run {row.run_id}'s last validation accuracy is not "
                            "summary.csv's")
    return verified, problems
