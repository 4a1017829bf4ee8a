"""harness replay: halving and [tune] replayed on recorded curves, checked
against real sweeps' decisions and against answers known by hand; the A/A
check."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness import halving
from harness.cli import main
from harness.replay import measure, recorded, simulate
from harness.replay.recorded import Recorded

ROOT = Path(__file__).resolve().parents[1]


def _survivors(summary, k):
    """(point, trial) of the search configurations that went past rung k."""
    s = summary[summary.role == "search"]
    on = s.rung.isna() | (s.rung > k)
    return sorted(set(zip(s.point[on].astype(int), s.trial[on].astype(int))))


def _halve_seed(rec, seed_index, eta=3, first=100):
    idx = np.full((1, len(rec.names), 1), seed_index)
    levels = halving.rungs(first, eta, rec.total)
    cols = [int(np.searchsorted(rec.iterations, lv)) for lv in levels]
    return simulate.halve(simulate.scores(rec.curves, idx)[0], cols, levels, eta)


@pytest.mark.parametrize("folder", ["results/tuned", "results/ground-truth"])
def test_replaying_halving_toml_on_seed_0_makes_results_halving_decisions(folder):
    """halving.toml's setting (eta 3, min 100, seed 0) on the full grid's
    seed-0 curves: the same survivors at every rung and the same winner as
    the real halving sweep (its continuation is exact, so the curves agree)."""
    if not (ROOT / folder).is_dir():
        pytest.skip(f"{folder} is not committed yet")
    rec = recorded.load(ROOT / folder, min_seeds=1)
    real = pd.read_csv(ROOT / "results/halving/summary.csv")
    winner, _, survivors = _halve_seed(rec, rec.seeds.index(0))
    assert [len(s) for s in survivors] == [56, 18, 6]
    for k, alive in enumerate(survivors, start=1):
        assert sorted(rec.names[i] for i in alive) == _survivors(real, k)
    tuned = pd.read_csv(ROOT / "results/halving/tuned.csv")
    best = pd.read_csv(ROOT / "results/halving/comparison.csv").layers.iloc[0]
    row = tuned[tuned.layers == best].iloc[0]
    assert rec.names[winner] == (int(row.point), int(row.trial))


def _by_hand(seed_values, tied, winner, total=300, every=100, flops=None):
    """A Recorded built by hand: ``seed_values``: (configs, seeds) accuracy
    at the last evaluation; earlier evaluations are the same values (flat curves)."""
    v = np.asarray(seed_values, float)
    curves = np.repeat(v[:, :, None], total // every, axis=2)
    n = len(v)
    return Recorded(Path("hand"), tuple(range(n)), tuple(range(v.shape[1])), np.arange(every, total + 1, every),
                    curves, np.asarray(flops or [1.0] * n, float), np.arange(n), tuple(f"c{i}" for i in range(n)),
                    v.mean(axis=1), np.asarray(tied, bool), np.arange(n) == winner, winner, False, np.full(n, -1), np.full(n, -1),
                    every, total, ())


def test_curves_that_never_cross_give_p_1_and_no_regret():
    rec = _by_hand([[0.90, 0.91, 0.92], [0.80, 0.81, 0.82], [0.70, 0.71, 0.72], [0.60, 0.61, 0.62]],
                   tied=[True, False, False, False], winner=0)
    for setting in (simulate.Setting("halving", 1, 2, 100), simulate.Setting("halving", 2, 3, 100),
                    simulate.Setting("grid", 1)):
        row = measure.strategy_row(setting, simulate.replay(setting, rec, 300, seed=1), rec)
        assert row["p_tied"] == 1.0 and row["p_best"] == 1.0
        assert row["regret_mean"] == 0.0 and row["regret_p95"] == 0.0


def test_exchangeable_configurations_split_evenly():
    """Two configurations whose seeds are equally likely to win (P(a > b) =
    8/16 over all pairs): one seed each picks either half the time."""
    rec = _by_hand([[0.1, 0.4, 0.5, 0.8], [0.2, 0.3, 0.6, 0.7]], tied=[True, True], winner=0)
    setting = simulate.Setting("grid", 1)
    out = simulate.replay(setting, rec, 4000, seed=3)
    share = (out["winner"] == 0).mean()
    assert abs(share - 0.5) < 4 * 0.5 / np.sqrt(4000)
    row = measure.strategy_row(setting, out, rec)
    assert row["p_tied"] == 1.0 and row["p_best"] == pytest.approx(share, abs=1e-12)
    # the regret is 0 or the gap of the means, 0 points here (both 0.45)
    assert row["regret_mean"] == pytest.approx(0.0, abs=1e-9)


def test_halving_flops_and_who_goes_on_by_hand():
    """9 configurations, eta 3, rungs 100, 300 (the end): 3 go on. FLOPs:
    all 9 to 100, the best 3 to 300: (9 * 100 + 3 * 200) / (9 * 300) of a
    grid on as many seeds, and a third of that against 3 recorded seeds."""
    values = [[0.1 * i + 0.01 * j for j in range(3)] for i in range(9)]
    rec = _by_hand(values, tied=[False] * 8 + [True], winner=8)
    setting = simulate.Setting("halving", 1, 3, 100)
    row = measure.strategy_row(setting, simulate.replay(setting, rec, 50), rec)
    assert row["flops_vs_grid"] == pytest.approx((9 * 100 + 3 * 200) / (9 * 300), abs=1e-12)
    assert row["flops_share"] == pytest.approx(row["flops_vs_grid"] / 3, abs=1e-12)
    assert row["p_best"] == 1.0


def test_draws_take_distinct_seeds_in_order_and_are_reproducible():
    a = simulate.draws(5, 4, 3, 100, seed=7)
    assert a.shape == (100, 5, 3)
    assert (np.diff(a, axis=2) > 0).all()
    assert (simulate.draws(5, 4, 3, 100, seed=7) == a).all()
    assert not (simulate.draws(5, 4, 3, 100, seed=8) == a).all()


def test_scores_sum_in_seed_order_like_the_sweep():
    curves = np.random.default_rng(0).random((4, 3, 2))
    idx = np.array([[[0, 2], [1, 2], [0, 1], [0, 2]]])
    s = simulate.scores(curves, idx)
    for c in range(4):
        a, b = curves[c, idx[0, c]]
        assert s[0, c, 1] == sum([a[1], b[1]]) / 2  # exactly, as sum(values) / len(values)


def test_wilson_interval_against_known_values():
    assert measure.wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    lo, hi = measure.wilson(50, 100)
    assert lo == pytest.approx(0.40383, abs=1e-5) and hi == pytest.approx(0.59617, abs=1e-5)


def test_the_report_test_is_welch_as_scipy_computes_it():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = rng.normal(0, 1, 5), rng.normal(0.8, 2, 6)
        p = sps.ttest_ind(a, b, equal_var=False).pvalue
        assert measure.differs(a, b) == (p < 0.05)


def test_aa_check_by_hand_and_on_identical_variants():
    # [0, 0, 1, 1]: of its 6 splits, {0, 0} | {1, 1} both ways are "different" (no spread, other means)
    aa = measure.aa_check([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.1, 0.2]])
    assert aa["groups"] == 2 and aa["tests"] == 12 and aa["different"] == 2
    # identical variants (normal seeds): the test calls about 5% of splits different
    rng = np.random.default_rng(5)
    aa = measure.aa_check([rng.normal(0.97, 0.002, 12) for _ in range(40)], splits=200, seed=1)
    assert aa["tests"] == 40 * 200 and 0.02 < aa["rate"] < 0.08


def test_tune_replay_finds_a_trial_that_always_wins():
    """Two points, three trials each; trial 1 of each is best on every seed:
    one search seed already picks it every time, by tune.select."""
    v = np.array([[0.5, 0.52, 0.51], [0.9, 0.91, 0.92], [0.7, 0.71, 0.72],
                  [0.4, 0.42, 0.41], [0.8, 0.81, 0.82], [0.6, 0.61, 0.62]])
    base = _by_hand(v, tied=[True, False], winner=0)
    rec = Recorded(**{**base.__dict__, "tuned": True, "point": np.repeat([0, 1], 3), "trial": np.tile([0, 1, 2], 2),
                      "unit": np.repeat([0, 1], 3), "units": ("p0", "p1")})
    assert list(simulate.truth_trials(rec)) == [1, 1]
    chosen = simulate.tune_replay(rec, 1, resamples=200, seed=0)
    assert (chosen == 1).all()
    row, = measure.tune_rows(rec, [1], 200, 0)
    assert row["p_best"] == 1.0 and row["p_tied"] == 1.0 and row["p_winner_changes"] == 0.0




@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory):
    """A real halving sweep and the full grid of the same configurations."""
    from tests.helpers import HALVING, make_digits, sweep_without_report, write_csv

    root = tmp_path_factory.mktemp("replay")
    X, y = make_digits(240)
    write_csv(root / "tiny.csv", X, y)
    (root / "h.toml").write_text(HALVING.format(data="tiny.csv", jobs=2))
    (root / "g.toml").write_text(HALVING.format(data="tiny.csv", jobs=2).replace('strategy = "halving"\n', "")
                                 .replace('name = "halves"', 'name = "full"'))
    assert main(["sweep", str(root / "h.toml"), "--out", str(root / "out"), "--quiet"]) == 0  # its comparison.csv is read
    assert sweep_without_report(root / "g.toml", root / "out") == 0  # replay reads the runs alone
    return root / "out" / "halves", root / "out" / "full"


def test_replay_of_a_full_grid_makes_the_real_halving_sweeps_decisions(two_sweeps):
    halves, full = two_sweeps
    rec = recorded.load(full)
    real = pd.read_csv(halves / "summary.csv")
    key = {c: rec.names.index(c) for c in rec.names}
    idx = np.tile(np.arange(2), (1, len(rec.names), 1))  # both seeds, as the sweep used them
    levels = halving.rungs(10, 3, 90)
    cols = [int(np.searchsorted(rec.iterations, lv)) for lv in levels]
    winner, _, survivors = simulate.halve(simulate.scores(rec.curves, idx)[0], cols, levels, 3)
    configs = real.drop_duplicates(["layers", "lr"]).reset_index(drop=True)
    assert len(configs) == len(rec.names) == len(key)
    for k, alive in enumerate(survivors, start=1):
        went_on = real[real.iterations_run > levels[k - 1]]  # trained past the rung (a diverged run ends before)
        assert sorted((r.layers, r.lr) for r in went_on.drop_duplicates(["layers", "lr"]).itertuples()) == \
            sorted((configs.layers[i], configs.lr[i]) for i in alive)
    best = pd.read_csv(halves / "comparison.csv").iloc[0]
    assert (configs.layers[winner], configs.lr[winner]) == (best.layers, best.lr)


def test_replay_command_writes_its_files_and_recommends(two_sweeps, tmp_path, capsys):
    _, full = two_sweeps
    out = tmp_path / "r"
    assert main(["replay", str(full), "--eta", "2,3", "--min-iterations", "10,30", "--seeds-per-config", "1,2",
                 "--resamples", "200", "--out", str(out)]) == 0
    rows = pd.read_csv(out / "replay.csv")
    assert len(rows) == 2 * 2 * 2 + 2  # halving settings, then the full grid on 1 and 2 seeds
    assert ((rows.p_tied_lo <= rows.p_tied) & (rows.p_tied <= rows.p_tied_hi)).all()
    full_grid = rows[(rows.strategy == "grid") & (rows.seeds == 2)].iloc[0]
    assert full_grid.p_best == 1.0 and full_grid.flops_share == 1.0  # every seed: the truth itself
    md = (out / "replay.md").read_text()
    assert "## A/A check of the report's test" in md and (out / "replay.png").is_file()
    text = capsys.readouterr().out
    assert "recommended: " in text
    again = tmp_path / "r2"
    assert main(["replay", str(full), "--eta", "2,3", "--min-iterations", "10,30", "--seeds-per-config", "1,2",
                 "--resamples", "200", "--out", str(again)]) == 0
    assert (again / "replay.csv").read_bytes() == (out / "replay.csv").read_bytes()


@pytest.mark.parametrize("flags, message", [
    (["--min-iterations", "15"], "rung 15 is not a multiple of the sweep's eval_every 10"),
    (["--seeds-per-config", "3"], "--seeds-per-config 3: the sweep has 2 seeds per configuration"),
    (["--eta", "1"], "--eta 1: must be at least 2"),
    (["--eta", "two"], "--eta 'two': give whole numbers"),
    (["--search-seeds", "1"], "is not a tuned sweep"),
])
def test_bad_settings_are_refused_in_one_line_and_write_nothing(two_sweeps, tmp_path, capsys, flags, message):
    _, full = two_sweeps
    assert main(["replay", str(full), "--out", str(tmp_path / "r"), "--resamples", "10", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_halving_sweep_or_one_seed_is_no_full_grid_to_replay(two_sweeps, tmp_path, capsys):
    halves, _ = two_sweeps
    assert main(["replay", str(halves), "--out", str(tmp_path / "r")]) == 2
    assert "a halving sweep, not a full grid" in capsys.readouterr().err
    assert main(["replay", str(ROOT / "results/tuned"), "--out", str(tmp_path / "r")]) == 2
    assert "1 seed per configuration; replay resamples seeds and needs at least 2" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_one_select_over_resamples_numbered_apart_is_select_on_each():
    """tune_replay calls tune.select once on every resample's points
    (numbered apart): the same choices as one call per resample."""
    from harness import tune

    rng = np.random.default_rng(4)
    frames = [pd.DataFrame({"point": np.repeat([0, 1, 2], 8), "trial": np.tile(np.arange(4), 6),
                            "seed": np.tile(np.repeat([0, 1], 4), 3), "status": "done",
                            "final_val_acc": rng.choice([0.90, 0.91, 0.92], 24)}) for _ in range(30)]
    batched = pd.concat([f.assign(point=f.point + 3 * b) for b, f in enumerate(frames)], ignore_index=True)
    together = tune.select(batched)
    for b, f in enumerate(frames):
        alone = tune.select(f)
        assert list(together.trial[together.point // 3 == b]) == list(alone.trial)


def test_the_report_sentences_on_constructed_cases():
    from harness.replay import output

    ok = measure.aa_check([[0.5] * 6] * 3)  # seeds without spread: no split differs (p = 1)
    text = output.aa_blocks(ok)[1][1]
    assert "in 0 of 60 splits: 0.0%" in text and "about the α it promises, or less" in text
    bad = measure.aa_check([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]] * 20)  # bimodal: 2 of 20 splits are {0,0,0} | {1,1,1}
    text = output.aa_blocks(bad)[1][1]
    assert "more often than the α it promises" in text
    assert "no A/A check could be made" in output.aa_blocks(measure.aa_check([[0.1, 0.2, 0.3]]))[1][1]
    rec = _by_hand([[0.9, 0.91], [0.8, 0.81], [0.7, 0.71]], tied=[True, True, False], winner=0)
    rows = [measure.strategy_row(s, simulate.replay(s, rec, 50), rec)
            for s in (simulate.Setting("grid", 1), simulate.Setting("halving", 1, 3, 100))]
    best = measure.recommend(rows, 0.95)
    assert best["strategy"] == "halving"  # both always right; halving is cheaper
    md = dict((k, v) for k, v in output.blocks(rec, rows, best, 0.95, ok, 50, 0) if k == "p" and "cheapest" in v)
    assert "**halving eta 3, min 100, 1 seed**" in md["p"]
    text = " ".join(v for k, v in output.blocks(rec, rows, None, 0.95, ok, 50, 0) if k == "p")
    assert "No setting replayed reaches P(winner in tie set) ≥ 95.0%." in text
    assert "The tie set holds 2 of the 3 variants" in text
