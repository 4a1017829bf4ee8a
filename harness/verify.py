"""``harness verify``: check a sweep folder's records, and give records
written before manifests one (``--seal``) when their files are consistent."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from . import layout, manifest, pack
from .errors import ConfigError
from .status import finished


def verify_folder(folder, seal=False):
    """``(problems, lines)``: how many files fail their checks, and the
    lines to show (one per problem, then a count)."""
    folder = Path(folder)
    if pack.is_packed(folder):
        verified, problems = pack.verify(folder)
        return len(problems), [f"damaged: {p}" for p in problems] + [
            f"{folder}: packed, {verified} verified, {len(problems)} damaged"]
    if not layout.runs_dir(folder).is_dir():
        raise ConfigError(f"{folder}: no runs/ here; is this a sweep's results folder (results/<name>)?")
    lines, counts = [], {"verified": 0, "sealed now": 0, "without a manifest": 0}
    for run_dir in sorted(p for p in layout.runs_dir(folder).iterdir() if p.is_dir()):
        verdict = manifest.check(run_dir)
        problem = verdict.problem
        if problem is None and verdict.record is not None and not verdict.sealed and finished(verdict.record["status"]):
            if seal:
                problem = manifest.seal_old(run_dir)
                counts["sealed now"] += problem is None
            else:
                counts["without a manifest"] += 1
        elif problem is None and verdict.record is not None:
            counts["verified"] += 1
        if problem:
            lines.append(f"damaged: {run_dir}: {problem}")
    for name in (layout.SUMMARY, layout.SETTINGS, layout.TUNED):
        if (folder / name).is_file():
            problem = _sweep_file(folder, name, seal, counts)
            if problem:
                lines.append(f"damaged: {folder / name}: {problem}")
    lines.append(f"{folder}: " + ", ".join(f"{n} {what}" for what, n in counts.items() if n or what == "verified")
                 + f", {len(lines)} damaged")
    return len(lines) - 1, lines


def _sweep_file(folder: Path, name, seal, counts):
    """Check ``name`` against its sidecar; with ``seal``, write a missing
    sidecar (for summary.csv only when every row agrees with its run)."""
    path = folder / name
    try:
        data, sealed = manifest.check_file(path)
    except ConfigError as e:
        return str(e).removeprefix(f"{path}: ")
    if sealed:
        counts["verified"] += 1
        return None
    problem = _summary_disagrees(folder, data) if name == layout.SUMMARY else None
    if problem is None and seal:
        from .store import atomic_write_text

        atomic_write_text(manifest.sidecar(path), manifest.sidecar_text(path, data))
        counts["sealed now"] += 1
    elif problem is None:
        counts["without a manifest"] += 1
    return problem


def _summary_disagrees(folder: Path, data: bytes):
    """Why summary.csv does not agree with its runs' records, or None."""
    from .sweep import summary_row

    try:
        summary = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return "unreadable"
    if "run_id" not in summary:
        return "no run_id column"
    rows = []
    for run_id in summary.run_id:
        if not (layout.run_dir(folder, run_id) / "status.json").is_file() or manifest.check(layout.run_dir(folder, run_id)).problem:
            return f"run {run_id} has no sound record"
        rows.append(summary_row(layout.run_dir(folder, run_id)))
    expected = pd.read_csv(io.StringIO(pd.DataFrame(rows).to_csv(index=False)), dtype=str, keep_default_na=False)
    for column in expected.columns:
        if column in summary and summary[column].tolist() != expected[column].tolist():
            return f"its column {column} does not agree with the runs' records"
    return None
