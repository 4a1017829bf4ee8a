"""The executor takes new runs while it runs: a strategy hands them over
as it decides (here: the second run once the first has ended)."""
from pathlib import Path

import pytest
from helpers import write_grid

from harness import layout
from harness import plan as planmod
from harness.events import Events
from harness.executor import Executor, execute
from harness.grid import load_sweep


def handed_over(sweep, out: Path, n=3):
    """Train ``n`` of the sweep's runs one at a time, each submitted once the
    one before it has ended; returns them, and the statuses in the order they came."""
    layout.runs_dir(out).mkdir(parents=True, exist_ok=True)
    plan = planmod.make_plan(sweep, out)
    todo = list(plan.todo)[:n]
    seen = []
    with Executor(sweep, out, Events(), live=False) as executor:
        executor.submit(todo[:1], plan.estimate)
        for status in executor.completed():
            seen.append(status)
            if len(seen) < len(todo):
                executor.submit(todo[len(seen):len(seen) + 1], plan.estimate)
    return todo, seen


def metrics(out: Path, run_id):
    return [line.split(",")[:4] for line in (layout.run_dir(out, run_id) / "metrics.csv").read_text().splitlines()]


@pytest.mark.slow
def test_runs_submitted_while_the_executor_runs_train_as_a_batch_would(tmp_path, tiny_csv):
    sweep = load_sweep(write_grid(tmp_path, tiny_csv, jobs=2))
    out = tmp_path / "handed" / sweep.name
    todo, seen = handed_over(sweep, out)
    assert [s["run_id"] for s in seen] == [r for r, _ in todo] and {s["status"] for s in seen} == {"done"}
    whole = tmp_path / "whole" / sweep.name
    layout.runs_dir(whole).mkdir(parents=True)
    plan = planmod.make_plan(sweep, whole)
    assert execute(sweep, whole, todo, plan.estimate, Events(), live=False) == []
    for run_id, _ in todo:
        assert metrics(out, run_id) == metrics(whole, run_id)
