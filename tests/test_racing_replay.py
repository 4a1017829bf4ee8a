"""Racing replayed on recorded seeds (harness.replay.racing, harness replay
--race): on constructed variants whose race and fixed verdict are known by
hand, and on the committed ground truth."""
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from harness import racing
from harness.cli import main
from harness.replay import racing as rr

ROOT = Path(__file__).resolve().parents[1]
RACE = racing.parse({"race": [2, 10]}, "t")
BASE = np.array([0.9700, 0.9720, 0.9710, 0.9730, 0.9705, 0.9715, 0.9725, 0.9712, 0.9718, 0.9722])


def _variants(rows):
    return rr.Variants(tuple(f"v{i}" for i in range(len(rows))), tuple(range(10)), np.array(rows))


def test_a_constant_gap_is_worse_at_round_one_in_every_order():
    # per seed, low - top is -0.05 (to rounding): no spread, so the paired test is certain at any round and
    # in the fixed design; the race stops low after 2 seeds, top is left alone: 2 + 2 runs of 20
    v = _variants([BASE, BASE - 0.05])
    best, worse, classes = rr.fixed_verdict(v.values, 0.002)
    assert (best, worse, classes) == (0, frozenset({1}), {1: "worse"})
    assert rr.race_verdict(v.values, RACE) == (0, frozenset({1}), {0: 2, 1: 2})
    found = rr.measure(v, RACE, resamples=50, seed=1)
    assert found["same"] == found["same_best"] == found["same_worse"] == 1.0
    assert found["runs_share"] == pytest.approx(4 / 20) and found["runs_share_max"] == pytest.approx(4 / 20)
    assert found["seeds_mean"] == [2.0, 2.0]
    assert rr.meets(found)


def test_twins_end_equivalent_at_once_and_a_contender_runs_to_the_maximum():
    # v1 = v0 exactly: equivalent at round one, and unable to lead, in any order of the seeds: 2 + 2 runs of 20
    twins = _variants([BASE, BASE.copy()])
    assert rr.race_verdict(twins.values, RACE) == (0, frozenset(), {0: 2, 1: 2})
    assert rr.fixed_verdict(twins.values, 0.002) == (0, frozenset(), {1: "equivalent"})
    found = rr.measure(twins, RACE, resamples=20, seed=0)
    assert found["same"] == 1.0 and found["runs_share"] == pytest.approx(4 / 20)
    # in the seeds' own order, v2 (v0 less 0.05 points, +-0.3 alternating) is never shown worse at this
    # round's alpha nor within the margin: it runs to 10 seeds, and the fixed design calls it undecided
    close = BASE - 0.0005 + np.where(np.arange(10) % 2, 0.003, -0.003)
    v = _variants([BASE, BASE.copy(), close])
    assert rr.race_verdict(v.values, RACE) == (0, frozenset(), {0: 10, 1: 2, 2: 10})
    assert rr.fixed_verdict(v.values, 0.002) == (0, frozenset(), {1: "equivalent", 2: "undecided"})


def test_a_gap_the_fixed_design_shows_and_a_race_mostly_misses():
    # the per-seed gaps: mean -0.25 points, sd 0.333: t = -2.374 on 9 df, p = 0.042: worse at the fixed
    # design's alpha 0.05, not at the 0.01 a race of 5 rounds spends on its last look
    d = -0.0025 + 0.0011 * np.array([-4.5, 3.5, -2.5, 1.5, -0.5, 0.5, -1.5, 2.5, -3.5, 4.5])
    assert sps.ttest_rel(BASE + d, BASE).pvalue == pytest.approx(0.0416, abs=1e-4)
    v = _variants([BASE, BASE + d])
    assert rr.fixed_verdict(v.values, 0.002)[1] == frozenset({1})
    assert rr.race_verdict(v.values, RACE) == (0, frozenset(), {0: 10, 1: 10})  # this order: never worse
    found = rr.measure(v, RACE, resamples=200, seed=0)
    # other orders put the most negative gaps first, where an early look can call it worse (and agree)
    assert found["same"] == found["same_worse"] < 0.15 and found["same_best"] == 1.0


def test_the_ground_truth_loads_as_21_variants_on_10_seeds():
    v = rr.load(ROOT / "results/ground-truth")
    assert len(v.names) == 21 and v.seeds == tuple(range(3, 13)) and v.values.shape == (21, 10)
    best, worse, classes = rr.fixed_verdict(v.values, 0.002)
    # the committed report's comparison: 784-512-512-10 best, 15 worse, 5 undecided
    assert v.names[best] == "784-512-512-10" and len(worse) == 15
    assert sorted(c for c in classes.values() if c != "worse") == ["undecided"] * 5


@pytest.mark.slow
def test_replay_race_flags_write_a_racing_section(tmp_path, capsys):
    assert main(["replay", str(ROOT / "results/ground-truth"), "--eta", "3", "--min-iterations", "200",
                 "--seeds-per-config", "1", "--resamples", "20", "--race", "2,10", "--race-alphas", "0.05",
                 "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "race [2, 10], step 2, α 0.05: same verdict" in out
    md = (tmp_path / "r" / "replay.md").read_text()
    assert "## Racing" in md and "Racing replayed on the 21 variants of the report, each on the 10 seeds" in md


@pytest.mark.parametrize("flags,message", [
    (["--race", "2"], "--race '2': give the race's minimum and maximum seeds, like 2,10"),
    (["--race", "2,10", "--race-alphas", "1.5"], "--race-alphas '1.5': give numbers in (0, 1)"),
    (["--race", "2,12"], "its variants share 10 distinct seeds; racing's replay needs at least 12 on every variant"),
])
def test_bad_race_flags_are_one_line(tmp_path, capsys, flags, message):
    assert main(["replay", str(ROOT / "results/ground-truth"), "--resamples", "5", "--out", str(tmp_path / "r"),
                 *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
