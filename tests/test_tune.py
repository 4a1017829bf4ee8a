"""[tune]: the draws, the validation of the table, selection, confirmation
seeds, the warnings, and a tuned sweep end to end."""
import math

import numpy as np
import pandas as pd
import pytest

from harness import tune as tunemod
from harness.cli import main
from harness.grid import load_sweep

from helpers import TUNED, sweep_without_report, write_grid


# --- the draws -------------------------------------------------------------------

def test_halton_points_are_spread_in_the_unit_cube_and_reproducible():
    u = tunemod.halton(64, 3, seed=5)
    assert u.shape == (64, 3) and (u >= 0).all() and (u < 1).all()
    assert np.array_equal(u, tunemod.halton(64, 3, seed=5)) and not np.array_equal(u, tunemod.halton(64, 3, seed=6))
    # low discrepancy: every eighth of each axis gets exactly 8 of 64 base-2 points, and close to it otherwise
    counts = np.histogram(u[:, 0], bins=8, range=(0, 1))[0]
    assert (counts == 8).all()
    assert np.abs(np.histogram(u[:, 1], bins=8, range=(0, 1))[0] - 8).max() <= 2


def test_draws_are_inside_their_ranges_and_the_same_for_every_point(tmp_path, tiny_csv):
    sweep = load_sweep(write_grid(tmp_path, tiny_csv, text=TUNED))
    draws = sweep.tune.draws()
    assert len(draws) == 4 and all(0.01 <= d["lr"] <= 1.0 and 0.5 <= d["momentum"] <= 0.9 for d in draws)
    assert len({d["lr"] for d in draws}) == 4
    for point in range(2):
        runs = [c for c, m in zip(sweep.runs, sweep.meta) if m["point"] == point]
        assert sorted({(c.lr, c.momentum) for c in runs}) == sorted((d["lr"], d["momentum"]) for d in draws)
    assert len(sweep.runs) == 2 * 4 * 2  # points x trials x seeds


def test_integer_and_choice_draws():
    ints = tunemod.Uniform(1.0, 4.0, integer=True)
    assert {ints.value(u) for u in np.linspace(0, 0.999, 50)} == {1, 2, 3, 4}
    choice = tunemod.Choice((64, 128, 256))
    assert [choice.value(u) for u in (0.0, 0.34, 0.99)] == [64, 128, 256]
    log = tunemod.LogUniform(1e-4, 1e-2)
    assert log.value(0.5) == pytest.approx(1e-3) and log.position(1e-3) == pytest.approx(0.5)


# --- validation --------------------------------------------------------------------

@pytest.mark.parametrize("tune, message", [
    ('lr = { log_uniform = [1e-4, 1e-1] }\nlayers = { choice = [[16, 10]] }', "also a [grid] axis"),
    ("lr = { uniform = [0.5, 0.1] }", "low 0.5 is above high 0.1"),
    ("lr = { log_uniform = [0.0, 0.1] }", "log_uniform bounds must be above 0"),
    ('batch_size = { choice = [64, "big"] }', "batch_size"),
    ("trials = 0\nlr = { uniform = [0.1, 0.5] }", "trials: must be an integer of at least 1"),
    ("lr = { normal = [0.1, 0.5] }", "unknown distribution 'normal'"),
    ("colour = { choice = [1] }", "'colour' is not a setting that can be tuned"),
    ("trials = 3", "no setting to tune"),
    ('optimizer = { uniform = [0, 1] }', "uniform needs a numeric setting"),
])
def test_bad_tune_tables_are_one_line_and_exit_2(tmp_path, tiny_csv, capsys, tune, message):
    text = TUNED.split("[tune]")[0] + "[tune]\n" + tune.replace("{", "{{").replace("}", "}}") + "\n"
    grid = write_grid(tmp_path, tiny_csv, text=text)
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "[tune]" in err


def test_selecting_on_the_test_split_is_refused(tmp_path, tiny_idx, capsys):
    text = TUNED.replace("validation = 0.25", 'validation = "test"').replace('path = "{data}"', f'path = "{tiny_idx}"')
    grid = tmp_path / "g.toml"
    grid.write_text(text.format(jobs=1, data=""))
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    assert "the test split" in capsys.readouterr().err


# --- selection, confirmation and warnings ------------------------------------------

def test_selection_takes_the_best_mean_over_seeds_ties_to_the_lower_trial():
    rows = []
    accs = {(0, 0): [0.75, 0.875], (0, 1): [0.625, 1.0], (0, 2): [0.7, 0.7],  # point 0: trials 0 and 1 tie
            (1, 0): [0.5, 0.5], (1, 1): [0.99, None], (1, 2): [0.6, 0.62]}  # point 1: trial 1 diverged once
    for (p, t), vals in accs.items():
        for seed, v in enumerate(vals):
            rows.append({"point": p, "trial": t, "seed": seed, "status": "diverged" if v is None else "done",
                         "final_val_acc": v})
    picked = tunemod.select(pd.DataFrame(rows))
    assert picked.trial.tolist() == [0, 2]  # 1's diverged seed counts as 0: (0.99 + 0) / 2 < 0.61
    assert picked.val_mean.tolist() == pytest.approx([0.8125, 0.61])
    assert picked.diverged.tolist() == [0, 1] and picked.trials.tolist() == [3, 3]


def test_confirmation_seeds_are_new(tmp_path, tiny_csv):
    sweep = load_sweep(write_grid(tmp_path, tiny_csv, text=TUNED))
    assert tunemod.confirm_seeds((0, 1), 2) == (2, 3) and tunemod.confirm_seeds((3, 7), 1) == (8,)
    confirm = sweep.confirmation({0: 2, 1: 0})
    assert len(confirm) == 2 * 2 and {c.seed for _, c, _ in confirm} == {2, 3}
    assert not {r for r, _, _ in confirm} & set(sweep.run_ids)
    assert {m["role"] for _, _, m in confirm} == {"confirm"}
    draws = sweep.tune.draws()
    assert {c.lr for _, c, m in confirm if m["point"] == 0} == {draws[2]["lr"]}


def test_warnings_at_an_edge_for_diverged_trials_and_for_points_that_disagree():
    tune = tunemod.Tune(8, 0, 3, {"lr": tunemod.LogUniform(1e-4, 1e-1)})
    tuned = pd.DataFrame({"layers": ["784-32-10", "784-512-10"], "lr": [0.09, 0.002], "trials": [8, 8],
                          "diverged_trials": [5, 0]})
    text = " ".join(tunemod.warnings(tune, tuned, lambda row: row["layers"]))
    assert "784-32-10 chose lr = 0.09, at the high edge of its range [0.0001, 0.1]: widen the range" in text
    assert "784-512-10 chose" not in text  # 0.002 sits inside, on a log scale
    assert "784-32-10: 5 of its 8 trials diverged" in text
    assert "very different lr (from 0.002 to 0.09, a factor of 45)" in text
    assert tunemod.edge(tunemod.LogUniform(1e-4, 1e-1), 1.2e-4) == "low"
    assert tunemod.edge(tunemod.Uniform(0.0, 0.4), 0.2) == ""
    calm = pd.DataFrame({"layers": ["a"], "lr": [0.003], "trials": [8], "diverged_trials": [4]})
    assert tunemod.warnings(tune, calm, lambda row: row["layers"]) == []


# --- end to end --------------------------------------------------------------------

@pytest.mark.slow
def test_a_tuned_sweep_selects_confirms_reports_and_resumes(tmp_path, tiny_csv, capsys):
    grid = write_grid(tmp_path, tiny_csv, text=TUNED)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[tune]: 4 trials for each of 2 grid points" in text and "4 confirmation runs" in text
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 0
    root = out / "tuned"
    summary = pd.read_csv(root / "summary.csv")
    assert (summary.role == "search").sum() == 16 and (summary.role == "confirm").sum() == 4
    tuned = pd.read_csv(root / "tuned.csv")
    assert list(tuned.layers) == ["16-8-10", "16-10"] and (tuned.confirm_runs == 2).all()
    search = summary[summary.role == "search"]
    for _, row in tuned.iterrows():
        means = search[search.layers == row.layers].groupby("trial").final_val_acc.mean()
        assert means.idxmax() == row.trial or means.max() == means[row.trial]
        confirm = summary[(summary.role == "confirm") & (summary.layers == row.layers)]
        assert set(confirm.seed) == {2, 3} and confirm.lr.nunique() == 1
        assert math.isclose(row.confirm_val_acc, confirm.final_val_acc.mean())
    md = (root / "report.md").read_text()
    assert "## Tuned comparison" in md and "plots/tune_slices.png" in md
    assert (root / "plots" / "tune_slices.png").stat().st_size > 5000
    # the comparison's variants are the grid points, from the confirmation runs alone
    comparison = pd.read_csv(root / "comparison.csv")
    assert len(comparison) == 2 and (comparison.n == 2).all()
    # resumed: nothing to train, same files
    before = (root / "tuned.csv").read_text(), (root / "summary.csv").read_text()
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 0
    assert ((root / "tuned.csv").read_text(), (root / "summary.csv").read_text()) == before


@pytest.mark.slow
def test_a_tuned_sweep_gives_the_same_numbers_with_one_or_two_jobs(tmp_path, tiny_csv):
    results = []
    for jobs in (1, 2):
        grid = write_grid(tmp_path, tiny_csv, text=TUNED, name=f"g{jobs}.toml", jobs=jobs)
        # the report of one (its exit status) is enough; the other's nobody reads
        args = ["sweep", str(grid), "--out", str(tmp_path / f"out{jobs}"), "--quiet"]
        assert (main(args) if jobs == 1 else sweep_without_report(grid, tmp_path / f"out{jobs}")) == 0
        results.append(pd.read_csv(tmp_path / f"out{jobs}" / "tuned" / "tuned.csv"))
    pd.testing.assert_frame_equal(results[0], results[1])


def test_trials_stopped_by_halving_are_no_candidates():
    rows = [{"point": 0, "trial": 0, "seed": 0, "status": "stopped", "final_val_acc": 0.99},
            {"point": 0, "trial": 1, "seed": 0, "status": "done", "final_val_acc": 0.90},
            {"point": 1, "trial": 0, "seed": 0, "status": "stopped", "final_val_acc": 0.95}]
    picked = tunemod.select(pd.DataFrame(rows))
    assert picked.point.tolist() == [0] and picked.trial.tolist() == [1] and picked.trials.tolist() == [1]
