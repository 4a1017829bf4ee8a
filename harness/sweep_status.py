"""``harness status``: how far a sweep is, read from its folder alone.

Read-only and safe while the sweep runs: it reads ``plan.json`` (written by
the sweep as it starts), each run's ``status.json`` and the metrics rows a
running run has streamed so far.
"""
from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path

import numpy as np

from . import layout, manifest, race_record, store
from .errors import ConfigError
from .status import STATES, RunState
from .words import count, seconds


def _rows_so_far(run_dir: Path):
    """``(iteration, elapsed seconds, latest validation accuracy)`` of a run
    still writing ``metrics.csv.part``; None before its first row."""
    path = run_dir / "metrics.csv.part"
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        rows = [r for r in rows if r.get("elapsed_seconds")]  # the last line may be half-written
        if not rows:
            return None
        vals = [r["val_acc"] for r in rows if r.get("val_acc")]
        return int(rows[-1]["iteration"]), float(rows[-1]["elapsed_seconds"]), (float(vals[-1]) if vals else None)
    except (OSError, ValueError, TypeError, csv.Error):
        return None  # unreadable: how far it got is unknown, which the line says


def progress(folder):
    """The state of every planned run: a list of dicts with run_id, layers,
    seed, state (a status name, or a :class:`~harness.status.RunState`
    value: running, checkpointed, cut short or waiting),
    iteration, iterations, val_acc and eta_seconds (for running runs, from
    their own pace so far). Raises ConfigError when no sweep planned here."""
    folder = Path(folder)
    plan = _read_plan(folder)
    running = store.sweep_running(folder)
    skipped = race_record.not_needed(folder)
    out = []
    for run_id, info in plan["runs"].items():
        run_dir = layout.run_dir(folder, run_id)
        row = {"run_id": run_id, "layers": info["layers"], "seed": info["seed"], "iterations": info["iterations"],
               "iteration": None, "val_acc": None, "eta_seconds": None}
        verdict = manifest.check(run_dir)
        status = verdict.record
        if verdict.problem:
            row.update(state=RunState.DAMAGED.value, problem=verdict.problem)
        elif status is not None:
            row.update(state=status["status"], iteration=status.get("iterations_run"),
                       val_acc=status.get("final_val_acc"), seconds=status.get("total_seconds"))
        elif (run_dir / "config.json").exists():
            saved = store.checkpoint_meta(run_dir)
            resumable = isinstance(saved, dict) and saved.get("run_id") == run_id
            row["state"] = (RunState.RUNNING if running else
                            RunState.CHECKPOINTED if resumable else RunState.CUT_SHORT).value
            if row["state"] == RunState.CUT_SHORT:
                row["problem"] = (f"{store.CHECKPOINT} unusable" if (run_dir / store.CHECKPOINT).exists()
                                  else f"no {store.STATUS} or {store.CHECKPOINT}")
            sofar = _rows_so_far(run_dir)
            if sofar is not None:
                it, elapsed, val = sofar
                row.update(iteration=it, val_acc=val)
                if running:
                    row["eta_seconds"] = elapsed / it * (info["iterations"] - it)
        elif run_id in skipped:
            row.update(state=RunState.NOT_NEEDED.value, variant=skipped[run_id][0], problem=skipped[run_id][1])
        else:
            row["state"] = RunState.WAITING.value
        row["flops"] = info["flops_per_iter"] * info["iterations"]
        out.append(row)
    return plan, running, out


def _read_plan(folder: Path):
    """``plan.json``, checked; ConfigError naming it when it is missing,
    damaged or not a plan."""
    path = folder / store.PLAN
    again = "running the sweep again rewrites it and keeps finished runs"
    try:
        plan = store.read_json(path)
    except FileNotFoundError:
        raise ConfigError(f"{folder}: no plan.json here: not a sweep folder, or no sweep has started on it "
                          f"since sweeps began to write one ({again})") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: corrupt ({type(e).__name__}); {again}") from None
    if manifest.self_check(plan) is False:
        raise ConfigError(f"{path}: does not match its own checksum (damaged); {again}")
    if isinstance(plan, dict) and plan.get("name") not in (None, folder.resolve().name):
        raise ConfigError(f"{path}: the plan of sweep {plan.get('name')!r}, not of this folder's; {again}")
    try:
        for info in plan["runs"].values():
            info["layers"], info["seed"], int(info["iterations"]), float(info["flops_per_iter"])
        plan["name"]
    except (TypeError, KeyError, AttributeError, ValueError):
        raise ConfigError(f"{path}: not a sweep plan (damaged); {again}") from None
    return plan


def run_seconds_model(runs):
    """A function ``(iterations, flops) -> seconds`` fitted to the finished
    runs: a fixed cost per run, per iteration and per FLOP (least squares,
    with four finished runs or more), or their median seconds per FLOP
    (fewer). None when nothing has finished yet."""
    done = [r for r in runs if r.get("seconds") and r["flops"]]
    if not done:
        return None
    if len(done) >= 4:
        A = np.array([[1.0, r["iterations"], r["flops"]] for r in done])
        coef, *_ = np.linalg.lstsq(A, np.array([r["seconds"] for r in done]), rcond=None)
        if (coef >= 0).all():
            return lambda iterations, flops: float(coef @ [1.0, iterations, flops])
    pace = statistics.median(r["seconds"] / r["flops"] for r in done)
    return lambda iterations, flops: flops * pace


def _estimated_left(plan, runs):
    """Seconds of the runs left from the sweep's own estimates (plan.json),
    at the pace the finished runs kept against theirs; None without them."""
    est = {r: info.get("estimated_seconds") for r, info in plan["runs"].items()}
    left = [est[r["run_id"]] for r in runs if r["state"] == RunState.WAITING]
    if not left or None in left:
        return None
    paces = [r["seconds"] / est[r["run_id"]] for r in runs
             if r.get("seconds") and est[r["run_id"]] and r.get("iteration") == r["iterations"]]
    return sum(left) * (statistics.median(paces) if paces else 1.0)


def sweep_eta(plan, runs):
    """A rough ETA of the whole sweep: the runs left at their estimated
    seconds (corrected by the finished runs' pace), or, for sweeps planned
    without estimates, at the pace of the finished ones
    (:func:`run_seconds_model`), shared over the sweep's workers, after
    the running runs' own ETAs. None when nothing can tell."""
    left = _estimated_left(plan, runs)
    if left is None:
        model = run_seconds_model(runs)
        if model is None:
            return None
        left = sum(model(r["iterations"], r["flops"]) for r in runs if r["state"] == RunState.WAITING)
    running = [r["eta_seconds"] or 0.0 for r in runs if r["state"] == RunState.RUNNING]
    jobs = plan.get("jobs", 1)
    jobs = (os.cpu_count() or 1) if jobs == -1 else max(1, jobs)
    return max(running, default=0.0) + left / jobs


def _order(state):
    return STATES.index(state) if state in STATES else len(STATES)


def render(folder):
    """The text ``harness status`` prints."""
    store.refuse_links(folder)
    plan, running, runs = progress(folder)
    counts = {}
    for r in runs:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines = [f"sweep {plan['name']!r} in {Path(folder).resolve()}: "
             + ("running" if running else "not running") + "; "
             + ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: _order(kv[0])))
             + f" of {count(len(runs), 'run')}"]
    for r in runs:
        if r["state"] == RunState.DAMAGED:
            lines.append(f"  damaged: {r['run_id']} {r['layers']} seed {r['seed']}: {r['problem']} "
                         "(not believed; the next sweep redoes it)")
        elif r["state"] in (RunState.RUNNING, RunState.CUT_SHORT, RunState.CHECKPOINTED):
            it = "?" if r["iteration"] is None else r["iteration"]
            val = "" if r["val_acc"] is None else f", validation {100 * r['val_acc']:.2f}%"
            eta = "" if r["eta_seconds"] is None else f", about {seconds(r['eta_seconds'])} left"
            why = f" ({r['problem']}: the next sweep starts it over)" if r.get("problem") else ""
            lines.append(f"  {r['state']}: {r['run_id']} {r['layers']} seed {r['seed']}: "
                         f"iteration {it} of {r['iterations']}{val}{eta}{why}")
    skipped = {}
    for r in runs:
        if r["state"] == RunState.NOT_NEEDED:
            skipped.setdefault((r["variant"], r["problem"]), []).append(r)
    for (variant, why), rs in skipped.items():
        lines.append(f"  {RunState.NOT_NEEDED.value}: {count(len(rs), 'run')} of {variant} "
                     f"(seeds {', '.join(str(s) for s in sorted(r['seed'] for r in rs))}): {why}")
    if running:
        eta = sweep_eta(plan, runs)
        lines.append("sweep: " + ("no run finished yet, so no estimate of the rest" if eta is None
                                  else f"about {seconds(eta)} left to train (rough)"))
    return "\n".join(lines)
