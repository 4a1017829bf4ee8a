"""Racing in real sweeps (harness.raced, harness.race_record, the report's
Racing section): small grids of tiny nets whose race is known, decided the
same with one or two jobs, after a SIGKILL and resume, and on Dask."""
import json
import os
import signal
import sys

import pandas as pd
import pytest
from helpers import TUNED, start, sweep_without_report, wait_for, write_grid

from harness import layout
from harness.cli import main
from harness.errors import ConfigError
from harness.grid import load_sweep
from harness.report import racing as section
from harness.sweep import run_sweep
from harness.sweep_status import render

# Four variants: lr 0.3 (the best), its twin (momentum is unused by plain sgd, so every seed gives the same
# numbers: equivalent, and unable to lead), lr 0.0005 (near chance: clearly worse) and lr 0.1 (a contender
# that races on). The minimum is 3 seeds: with 2, a paired t-test has 1 degree of freedom, and at this
# round's alpha (0.05 / 3 rounds, Holm over 6 pairs) only near-constant differences would stop anything.
RACE = """
[sweep]
name = "race"
jobs = {jobs}
seeds = {{ race = [3, 9] }}

[data]
path = "{data}"
validation = 0.25

[train]
layers = {layers}
iterations = {iterations}
eval_every = 50
optimizer = "sgd"
batch_size = 32
lr = 0.3

[grid]
momentum = [0.5, 0.8]

[[include]]
lr = 0.0005
momentum = 0.5

[[include]]
lr = 0.1
momentum = 0.5
"""
SMALL = {"layers": [16, 12, 10], "iterations": 200}
BEST, TWIN, LOW, CLOSE = "lr 0.3, momentum 0.5", "lr 0.3, momentum 0.8", "lr 0.0005, momentum 0.5", "lr 0.1, momentum 0.5"


def _grid(tmp_path, tiny_csv, jobs=1, name="race.toml", **kw):
    return write_grid(tmp_path, tiny_csv, text=RACE, name=name, jobs=jobs, **{**SMALL, **kw})


def _race(root):
    return json.loads((root / layout.RACE).read_text())


def _decisions(root):
    """What a race decided, and the accuracies it decided on: equal for equal races."""
    summary = pd.read_csv(root / "summary.csv").sort_values("run_id").reset_index(drop=True)
    record = _race(root)
    return record["rounds"], record["variants"], summary[["run_id", "seed", "final_val_acc", "race_round"]]


def test_a_race_table_makes_a_racing_sweep_on_the_worst_case_seeds(tmp_path, tiny_csv):
    sweep = load_sweep(_grid(tmp_path, tiny_csv))
    assert sweep.schedule.strategy == "racing" and sweep.seeds == tuple(range(9)) and len(sweep.runs) == 4 * 9
    assert sweep.schedule.race.schedule == (3, 6, 9) and sweep.schedule.race.margin == 0.2
    text = RACE.replace("[train]", '[report]\nmargin = 0.5\n\n[train]')
    assert load_sweep(write_grid(tmp_path, tiny_csv, text=text, jobs=1, **SMALL)).schedule.race.margin == 0.5


@pytest.mark.parametrize("change,message", [
    (('seeds = {{ race = [3, 9] }}', 'seeds = {{ race = [3, 9] }}\nstrategy = "halving"\nmin_iterations = 50'),
     "[sweep] strategy: seeds = { race = ... } races the seeds, which strategy 'halving' does not"),
    (('seeds = {{ race = [3, 9] }}', 'seeds = [0, 1]\nstrategy = "racing"'),
     "[sweep] strategy: 'racing' needs its seeds as a race, e.g. seeds = { race = [2, 10] }"),
    (('seeds = {{ race = [3, 9] }}', 'seeds = {{ race = [1, 9] }}'),
     "[sweep] seeds: the race's minimum must be a whole number from 2 to 1000, got 1"),
])
def test_a_bad_race_is_one_line_naming_the_file(tmp_path, tiny_csv, change, message):
    path = write_grid(tmp_path, tiny_csv, text=RACE.replace(*change), jobs=1, **SMALL)
    with pytest.raises(ConfigError) as e:
        load_sweep(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value) and "\n" not in str(e.value)


def test_with_tune_the_confirmation_races_and_the_sweep_seeds_cannot(tmp_path, tiny_csv):
    path = write_grid(tmp_path, tiny_csv, text=TUNED.replace("confirm_seeds = 2", "confirm_seeds = {{ race = [2, 4] }}"))
    sweep = load_sweep(path)
    assert sweep.tune.race.schedule == (2, 4) and sweep.tune.confirm_seeds == 4
    assert [c.seed for _, c in sweep.confirm[(0, 0)]] == [2, 3, 4, 5]  # the worst case, after search seeds 0, 1
    bad = write_grid(tmp_path, tiny_csv, text=TUNED.replace("seeds = [0, 1]", "seeds = {{ race = [2, 4] }}"),
                     name="bad.toml")
    with pytest.raises(ConfigError, match=r"with \[tune\], \[sweep\] seeds lists the search seeds and the "
                                          r"confirmation races: \[tune\] confirm_seeds = \{ race = \[2, 10\] \}"):
        load_sweep(bad)


def test_the_dry_run_prices_the_worst_case_and_says_so(tmp_path, tiny_csv, capsys):
    assert main(["sweep", str(_grid(tmp_path, tiny_csv)), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "36 runs in sweep 'race'" in out and "36 to train" in out
    assert ("racing: 3 to 9 seeds per variant (rounds of (3, 6, 9), alpha 0.05 over the race, 0.01667 per round); "
            "the estimate is the worst case, every variant to 9 seeds") in out


def test_a_race_stops_the_worse_and_the_twin_after_round_one(tmp_path, tiny_csv, capsys):
    out = tmp_path / "out"
    assert run_sweep(load_sweep(_grid(tmp_path, tiny_csv)), out, report=False) == 0
    root = out / "race"
    record = _race(root)
    first = record["rounds"][0]
    assert first["seeds"] == 3 and first["best"] == BEST and set(first["stopped"]) == {LOW, TWIN}
    low, twin = record["variants"][LOW], record["variants"][TWIN]
    assert (low["round"], low["class"], low["seeds_run"]) == (1, "worse", 3)
    assert low["reason"].startswith(f"racing ended it at round 1 (3 seeds): worse than {BEST}, -")
    assert (twin["round"], twin["class"], twin["seeds_run"]) == (1, "equivalent", 3)
    assert record["variants"][CLOSE]["seeds_run"] == 9 and record["variants"][BEST]["class"] == "best"
    assert record["finished"] and record["runs_spent"] == 24 and record["runs_max"] == 36
    # their runs are kept (done), and summary.csv says which round ended them, and why
    summary = pd.read_csv(root / "summary.csv")
    low_rows = summary[summary.lr == 0.0005]
    assert len(summary) == 24 and set(summary.status) == {"done"} and len(low_rows) == 3
    assert set(low_rows.race_round) == {1} and set(low_rows.reason) == {low["reason"]}
    # status: the seeds the race did not need are "not needed", never waiting, missing or failed
    text = render(root)
    assert "24 done, 12 not needed of 36 runs" in text
    assert f"  not needed: 6 runs of {LOW} (seeds 3, 4, 5, 6, 7, 8): {low['reason']}" in text
    assert "waiting" not in text and "failed" not in text


def test_the_racing_section_of_a_report(tmp_path, tiny_csv):
    out = tmp_path / "out"
    assert main(["sweep", str(_grid(tmp_path, tiny_csv)), "--out", str(out), "--quiet"]) == 0
    md = (out / "race" / "report.md").read_text()
    assert "## Racing" in md and "It trained 24 runs of the 36 that 4 variants at 9 seeds each would take" in md
    assert f"| {LOW} | 3 | 1 | stopped: worse | 6 |" in md


def _record(**changes):
    """A constructed race.json: [2, 6] in steps of 2, three variants."""
    rec = {"race": {"least": 2, "most": 6, "step": 2, "alpha": 0.05, "alpha_per_round": 0.05 / 3, "margin": 0.2,
                    "schedule": [2, 4, 6]},
           "finished": True, "racing": [], "runs_max": 18, "runs_spent": 10,
           "variants": {"a": {"runs": list("abcdef"), "seeds_run": 6, "round": 3, "class": "best", "reason": "x"},
                        "b": {"runs": list("ghijkl"), "seeds_run": 2, "round": 1, "class": "worse", "reason": "y"},
                        "c": {"runs": list("mnopqr"), "seeds_run": 2, "round": 1, "class": "equivalent",
                              "reason": "z"}}}
    rec.update(changes)
    return rec


def test_every_sentence_of_the_section_on_constructed_races():
    rec = _record()
    assert section.rules(rec) == (
        "Racing gave each variant 2 to 6 seeds, in rounds reaching 2, 4, 6 seeds. After each round, a variant "
        "classed worse than the current best stopped, and so did one classed equivalent to it (within ±0.2 points) "
        "that could no longer become the best; the others got more seeds. Each round tested at α/3 = 0.01667 (the "
        "race's α = 0.05 spent evenly over its 3 rounds, so the chance of any false call over the whole race stays "
        "at most α), with Holm's adjustment over every pair of the variants still racing.")
    assert section.spent(rec) == ("It trained 10 runs of the 18 that 3 variants at 6 seeds each would take: "
                                  "8 runs saved (44%).")
    assert section.verdict(rec) == ("The race's verdict: a is the best. Equivalent to it, and unable to lead: c. "
                                    "Worse: b.")
    table = section.table(rec)
    assert list(table.variant) == ["a", "b", "c"] and list(table["runs saved"]) == [0, 4, 4]
    assert list(table["decided at round"]) == [3, 1, 1]
    # unfinished: the racing variants are named and no verdict is given yet
    going = _record(finished=False, racing=["a", "c"], runs_spent=6)
    going["variants"]["a"].update(round=None, **{"class": None}, seeds_run=2)
    going["variants"]["c"].update(round=None, **{"class": None})
    assert section.spent(going).endswith("The race is not over: 2 variants still race (a; c), so more may be "
                                         "trained.")
    assert section.verdict(going) is None and list(section.table(going)["outcome"]) == ["racing", "stopped: worse",
                                                                                         "racing"]
    # a race that stopped nothing as worse, one undecided at the maximum
    calm = _record()
    calm["variants"]["b"].update(**{"class": "undecided"}, round=3, seeds_run=6)
    assert section.verdict(calm) == ("The race's verdict: a is the best. Equivalent to it, and unable to lead: c. "
                                     "Undecided against it at 6 seeds: b. None was shown worse.")


def test_a_tuned_confirmation_races_per_grid_point(tmp_path, tiny_csv):
    text = TUNED.replace("confirm_seeds = 2", "confirm_seeds = {{ race = [2, 4] }}")
    sweep = load_sweep(write_grid(tmp_path, tiny_csv, text=text, jobs=1))
    assert run_sweep(sweep, tmp_path / "out", report=False) == 0
    root = tmp_path / "out" / "tuned"
    record = _race(root)
    assert record["finished"] and set(record["variants"]) == {"16-8-10", "16-10"}
    assert record["rounds"][0]["seeds"] == 2 and record["runs_max"] == 8
    summary = pd.read_csv(root / "summary.csv")
    confirm = summary[summary.role == "confirm"]
    assert len(confirm) == record["runs_spent"] and set(confirm.seed) <= {2, 3, 4, 5}
    tuned = pd.read_csv(root / "tuned.csv")
    assert sorted(tuned.confirm_runs) == sorted(v["seeds_run"] for v in record["variants"].values())


@pytest.mark.slow
def test_a_race_decides_the_same_with_one_or_two_jobs(tmp_path, tiny_csv):
    assert main(["sweep", str(_grid(tmp_path, tiny_csv, jobs=1, name="j1.toml")),
                 "--out", str(tmp_path / "j1"), "--quiet", "--no-live-report"]) == 0
    assert sweep_without_report(_grid(tmp_path, tiny_csv, jobs=2, name="j2.toml"), tmp_path / "j2") == 0  # decisions alone
    one, two = (_decisions(tmp_path / f"j{jobs}" / "race") for jobs in (1, 2))
    assert one[0] == two[0] and one[1] == two[1]
    pd.testing.assert_frame_equal(one[2], two[2])
    assert len(one[0]) == 3 and one[1][LOW]["round"] == 1


@pytest.mark.slow
def test_a_race_killed_mid_round_resumes_to_the_same_decisions(tmp_path, tiny_csv):
    slow = {"layers": [16, 128, 128, 10], "iterations": 1500}
    killed, clean = _grid(tmp_path, tiny_csv, 2, "killed.toml", **slow), _grid(tmp_path, tiny_csv, 1, "clean.toml", **slow)
    root = tmp_path / "k" / "race"

    def in_round_two():  # round 1 decided, a run of round 2 in flight
        if not (root / layout.RACE).exists() or not _race(root)["rounds"]:
            return False
        return any((d / "config.json").exists() and not (d / "status.json").exists() for d in (root / "runs").iterdir())
    proc = start(killed, tmp_path / "k")
    try:
        wait_for(in_round_two, seconds=180)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert main(["sweep", str(killed), "--out", str(tmp_path / "k"), "--quiet", "--no-live-report"]) == 0
    assert sweep_without_report(clean, tmp_path / "c") == 0  # compared by its decisions alone
    a, b = _decisions(root), _decisions(tmp_path / "c" / "race")
    assert a[0] == b[0] and a[1] == b[1]
    pd.testing.assert_frame_equal(a[2], b[2])


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c:
        yield c.scheduler_address


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the cluster test runs where the others do")
def test_a_race_on_dask_decides_as_locally(tmp_path, tiny_csv, cluster):
    grid = _grid(tmp_path, tiny_csv, jobs=2)
    assert sweep_without_report(grid, tmp_path / "local") == 0  # compared by its decisions alone
    assert main(["sweep", str(grid), "--out", str(tmp_path / "dask"), "--quiet", "--no-live-report",
                 "--scheduler", cluster]) == 0
    a, b = _decisions(tmp_path / "local" / "race"), _decisions(tmp_path / "dask" / "race")
    assert a[0] == b[0] and a[1] == b[1]
    pd.testing.assert_frame_equal(a[2], b[2])
