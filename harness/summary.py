"""``summary.csv``: one row per run of the grid that ended, from its run
folder (and the grid, for a run that failed before recording its settings)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import layout, manifest, mlp, store, tuned_sweep
from .config import RunConfig

if TYPE_CHECKING:
    import pandas as pd

    from .grid import Sweep

SUMMARY_FIRST = ("run_id", "status", "layers", "depth", "width", "n_params", "flops_per_iter")
SUMMARY_LAST = ("seed", "final_train_acc", "final_val_acc", "best_val_acc", "test_acc", "final_train_loss",
                "median_iter_seconds", "total_seconds", "estimated_seconds", "iterations_run", "kept_iteration",
                "rung", "reason")


def summary_row(run_dir: Path, planned: RunConfig | None = None):
    """One summary.csv row from a finished run folder, or None. A run that
    failed before writing its ``config.json`` (in setup: loading data,
    allocating) is described by ``planned``, its settings in the grid,
    with no row counts."""
    status = store.read_status(run_dir)
    if status is None:
        return None
    try:
        conf = store.read_json(run_dir / "config.json")
    except FileNotFoundError:
        if planned is None:
            raise
        conf = {}
    cfg = RunConfig.from_saved(conf) if conf else planned
    counts = _rows_of(cfg, conf) if conf else (None, None, None)
    m = min(cfg.batch_size or counts[0], counts[0]) if conf else None
    row = {
        "run_id": status.get("run_id", run_dir.name),
        "status": status["status"],
        "layers": cfg.layers_str,
        "depth": cfg.depth,
        "width": cfg.width,
        "n_params": mlp.n_params(cfg.layers),
        "flops_per_iter": None if m is None else mlp.flops_per_iter(cfg.layers, m),
        **dict(zip(("n_train", "n_val", "n_test"), counts)),
    }
    for key, value in cfg.to_dict().items():
        if key not in ("layers", "seed"):
            row[key] = value
    row["seed"] = cfg.seed
    if cfg.path:  # the bundled dataset's name would mislead
        row["dataset"] = Path(cfg.path).name
    row.update({k: status.get(k) for k in SUMMARY_LAST if k != "seed"})
    row["estimated_seconds"] = conf.get("estimated_seconds")
    return row


def _rows_of(cfg: RunConfig, conf: dict):
    """(training, validation, held-out test) rows of a run; runs recorded
    before config.json had n_test get it from the data."""
    if "n_test" in conf:
        return conf["n_train"], conf["n_val"], conf["n_test"]
    from .data import load_source, row_counts

    return row_counts(load_source(cfg.dataset, cfg.path or None, cfg.label_column or None), cfg.train_size,
                      cfg.validation)


def write_summary(sweep: Sweep, out: Path) -> pd.DataFrame:
    """Write ``summary.csv`` for the grid's runs that finished (in grid
    order); a tuned sweep's rows say each run's grid point, trial and role
    (search or confirm)."""
    import pandas as pd  # here, not at the top: a sweep's workers import this module and need no pandas

    rows = []
    for run_id, cfg, meta in tuned_sweep.all_runs(sweep, out):
        row = summary_row(layout.run_dir(out, run_id), cfg)
        if row is not None:
            rows.append({**row, **meta})
    if (out / layout.RACE).exists():  # a raced sweep: which round ended each variant, and why
        from .race_record import annotate

        rows = annotate(out, rows)
    frame = pd.DataFrame(rows)
    text = frame.to_csv(index=False) if rows else ",".join(SUMMARY_FIRST + SUMMARY_LAST) + "\n"
    manifest.write_sealed(out / layout.SUMMARY, text)
    return frame
