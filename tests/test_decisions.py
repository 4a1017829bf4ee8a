"""The classes against the best (harness/report/decisions.py): TOST and the
paired interval against scipy, the classes on cases whose answer is known
by hand, the A/A property, P(A > B), the pairing rule, the margin setting,
and the report's sentences on constructed sweeps."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.cli import main
from harness.errors import ConfigError
from harness.report import decisions, tables
from harness.report.verdict import verdict

A = np.array([0.9712, 0.9731, 0.9725, 0.9708, 0.9720])
B = np.array([0.9701, 0.9735, 0.9712, 0.9699, 0.9716])
MARGIN = 0.002  # 0.2 points, as a fraction


# --- against scipy ------------------------------------------------------------------

@pytest.mark.parametrize("paired", [False, True])
def test_interval_and_tost_are_scipys(paired):
    d = decisions.difference(A, B, MARGIN, paired)
    if paired:
        res = sps.ttest_rel(B, A)
        low = sps.ttest_rel(B + MARGIN, A, alternative="greater").pvalue  # H0: diff <= -margin
        high = sps.ttest_rel(B - MARGIN, A, alternative="less").pvalue    # H0: diff >= +margin
    else:
        res = sps.ttest_ind(B, A, equal_var=False)
        low = sps.ttest_ind(B + MARGIN, A, equal_var=False, alternative="greater").pvalue
        high = sps.ttest_ind(B - MARGIN, A, equal_var=False, alternative="less").pvalue
    ci = res.confidence_interval(0.95)
    assert d.diff == pytest.approx(B.mean() - A.mean(), rel=1e-12, abs=1e-15)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-9, abs=1e-12)
    assert d.p_diff == pytest.approx(res.pvalue, rel=1e-8, abs=1e-12)
    assert d.p_equiv == pytest.approx(max(low, high), rel=1e-8, abs=1e-12)
    assert d.paired is paired


def test_the_paired_interval_is_the_one_sample_interval_of_the_differences():
    diffs = B - A
    ci = sps.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=sps.sem(diffs))
    d = decisions.difference(A, B, MARGIN, paired=True)
    assert (d.low, d.high) == pytest.approx(ci, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError):
        decisions.difference(A, B[:4], MARGIN, paired=True)


def test_a_family_is_holm_adjusted_for_both_tests():
    others = [B, A - 0.01, A + 0.00005]
    found = decisions.classify_family(A, others, MARGIN)
    raw_diff = [sps.ttest_ind(o, A, equal_var=False).pvalue for o in others]
    raw_eq = [decisions.difference(A, o, MARGIN).p_equiv for o in others]
    for raw, got in ((raw_diff, [f[2] for f in found]), (raw_eq, [f[3] for f in found])):
        order = np.argsort(raw)  # Holm by hand: (m - rank) * p, running maximum, capped at 1
        expected, running = np.empty(3), 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (3 - rank) * raw[i]))
            expected[i] = running
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert [f[0] for f in found] == ["undecided", "worse", "equivalent"]


# --- the classes, by hand --------------------------------------------------------------

def test_classes_on_cases_known_by_hand():
    # 1 point below, tiny spread: worse
    assert decisions.classify(A, A - 0.01, MARGIN)[0] == "worse"
    # 1 point above: better (a reference that is not the best by its mean)
    decision, diff, (lo, hi) = decisions.classify(A, A + 0.01, MARGIN)
    assert decision == "better" and diff == pytest.approx(0.01) and lo < 0.01 < hi
    # the same values shifted by 0.005 points: within the margin, tight: equivalent
    assert decisions.classify(A, A - 0.00005, MARGIN)[0] == "equivalent"
    # two seeds, wide spread: neither shown
    assert decisions.classify([0.95, 0.99], [0.94, 0.99], MARGIN)[0] == "undecided"
    # one seed a side: untested
    decision, diff, (lo, hi) = decisions.classify([0.95], [0.94, 0.99], MARGIN)
    assert decision is None and math.isnan(diff) and math.isnan(lo) and math.isnan(hi)


def test_a_difference_shown_but_inside_the_margin_is_equivalent():
    # 0.05 points below on every seed, with almost no spread: shown different, and shown within 0.2 points
    d = decisions.difference(A, A - 0.0005 + np.array([0, 1e-6, -1e-6, 2e-6, 0]), MARGIN, paired=True)
    assert d.p_diff < 0.05 and d.p_equiv < 0.05
    assert decisions.decide(d.diff, d.p_diff, d.p_equiv) == "equivalent"


def test_identical_configurations_are_equivalent_never_worse():
    # a deterministic run: the same configuration on the same seeds gives the same numbers
    assert decisions.classify(A, A.copy(), MARGIN, paired=True)[0] == "equivalent"
    # without spread the answers are exact
    assert decisions.classify([0.9, 0.9], [0.9, 0.9], MARGIN)[0] == "equivalent"
    assert decisions.classify([0.9, 0.9], [0.8, 0.8], MARGIN)[0] == "worse"


def test_a_a_splits_are_called_worse_at_most_five_percent_of_the_time():
    # two halves of one configuration's seeds (unpaired), 400 splits: never better-than-alpha worse
    rng = np.random.default_rng(0)
    calls = [decisions.classify(*np.split(rng.permutation(rng.normal(0.975, 0.0015, 10)), 2), MARGIN)[0]
             for _ in range(400)]
    assert calls.count("worse") + calls.count("better") <= 0.05 * 400
    assert set(calls) <= {"worse", "equivalent", "undecided", "better"}


# --- P(A > B) ---------------------------------------------------------------------------

def test_superiority_unpaired_is_mann_whitney_and_its_interval_is_seeded():
    p, lo, hi = decisions.superiority(A, B)
    u = sps.mannwhitneyu(A, B, alternative="two-sided").statistic
    assert p == pytest.approx(u / (len(A) * len(B)), rel=1e-12)
    assert lo <= p <= hi and 0 <= lo and hi <= 1
    assert decisions.superiority(A, B) == (p, lo, hi)  # deterministic: the same numbers every call


def test_superiority_paired_is_the_share_of_seeds_won():
    a, b = np.array([1.0, 2, 3, 4, 5]), np.array([0.5, 2.5, 2, 4, 4])  # a wins 3, loses 1, ties 1
    p, lo, hi = decisions.superiority(a, b, paired=True)
    assert p == pytest.approx(3.5 / 5)
    # a bootstrap share of 5 seeds lies on the grid of tenths
    assert lo <= p <= hi and round(lo * 10, 9) == round(lo * 10) and round(hi * 10, 9) == round(hi * 10)
    assert math.isnan(decisions.superiority([1.0], [0.5])[0])


# --- the pairing rule and the margin setting ------------------------------------------------

def test_pairing_needs_the_same_seeds_and_the_same_data_order():
    same = [[0, 1], [1, 0]]
    paired, why = decisions.design(same, True, {"layers"})
    assert paired and why.startswith("paired over seeds: every variant ran the same 2 seeds")
    paired, why = decisions.design([[0, 1], [0, 2]], True, {"layers"})
    assert not paired and "do not all have the same seeds" in why
    paired, why = decisions.design(same, True, {"layers", "batch_size"})
    assert not paired and "differ in batch_size" in why
    paired, why = decisions.design(same, False, {"layers"})
    assert not paired and "full-batch" in why
    assert decisions.design(same, False, {"lr"})[0]  # one architecture: the same initial weights
    assert not decisions.design(same, None, {"lr"})[0]  # not recorded: not assumed
    assert "one seed more than once" in decisions.design([[0, 1, 1], [0, 1, 1]], True, {"layers"})[1]
    paired, why = decisions.design(same, True, {"layers", "sweep"})
    assert not paired and "different sweeps" in why


@pytest.mark.parametrize("bad", [0, -0.1, 100, "0.2", True, float("nan")])
def test_a_bad_margin_is_refused_in_one_line(tmp_path, tiny_csv, capsys, bad):
    with pytest.raises(ConfigError, match=r"\[report\] margin: must be a number of accuracy points"):
        decisions.check_margin(bad, "g.toml [report]")
    grid = tmp_path / "bad.toml"
    value = f'"{bad}"' if isinstance(bad, str) else str(bad).lower()
    grid.write_text(f'[sweep]\nname = "m"\nseeds = [0]\n[data]\npath = "{tiny_csv.name}"\n'
                    f'[train]\niterations = 5\n[grid]\nlayers = [[16, 10]]\n[report]\nmargin = {value}\n')
    code = main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.toml [report] margin" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --- the report's sentences on constructed sweeps ---------------------------------------------

def _summary(accs, cost, batch=32, seeds=None):
    """Runs of each variant on seeds 0.. (or ``seeds[layers]``), minibatched."""
    rows = [{"run_id": f"{layers}-{s}", "status": "done", "layers": layers, "depth": 1,
             "width": int(layers.split("-")[1]), "n_params": 10, "seed": s, "final_val_acc": a,
             "final_train_acc": 0.99, "median_iter_seconds": cost[layers], "flops_per_iter": cost[layers] * 1e6,
             "batch_size": batch, "n_train": 1000}
            for layers, values in accs.items() for s, a in zip((seeds or {}).get(layers, range(99)), values)]
    return pd.DataFrame(rows)


def _say(accs, cost, margin=0.2, **kw):
    g = tables.with_ties(tables.grouped(_summary(accs, cost, **kw)), margin)
    return g, verdict(g)


def test_the_report_says_the_paired_analysis_and_uses_it():
    best = [0.970, 0.975, 0.980, 0.972, 0.978]
    accs = {"16-64-10": best, "16-32-10": [v - 0.0003 for v in best], "16-8-10": [v - 0.01 for v in best]}
    g, lines = _say(accs, {"16-64-10": 0.03, "16-32-10": 0.02, "16-8-10": 0.01})
    assert g.attrs["paired"] and list(g.decision) == ["best", "equivalent", "worse"]
    assert lines[1].startswith("**Compared with the best:** Paired over seeds: every variant ran the same 5 "
                               "seeds, and a seed gives them the same minibatch order")
    # per seed the second is 0.03 points below, every time: a paired interval of zero width
    assert g["diff"].iloc[1] == pytest.approx(-0.0003) and g.diff_hi.iloc[1] - g.diff_lo.iloc[1] < 1e-9
    assert ("16-32-10, 97.47% [96.96, 97.98] at 0.02 s per iteration (1.5× less time per iteration than the best; "
            "equivalent to the best, -0.03 points [-0.03, -0.03])") in lines[2]
    assert "**Against the best:** 1 worse, 1 equivalent." in lines
    assert ("**Equivalent to it** (within ±0.2 points): 1 variant. Of those, the cheapest by time per iteration "
            "is 16-32-10 (0.02 s, 97.47%); by FLOPs, 16-32-10 (20k FLOPs per iteration).") in lines
    # #1 beats #2 on every seed: 100% [100, 100]
    assert ("**#1 against #2:** 16-64-10 beats 16-32-10 on 100% of seeds [100, 100] (run on the same seed; "
            "95% bootstrap interval, 2000 resamples).") in lines
    # Welch on the same numbers could not have called it equivalent: the pairing is what decides
    assert decisions.classify(best, accs["16-32-10"], 0.002)[0] == "undecided"


def test_the_report_says_why_it_falls_back_to_welch():
    accs = {"16-64-10": [0.97, 0.975, 0.98], "16-8-10": [0.96, 0.965, 0.962]}
    g, lines = _say(accs, {"16-64-10": 0.03, "16-8-10": 0.01}, seeds={"16-8-10": [5, 6, 7]})
    assert not g.attrs["paired"]
    assert lines[1].startswith("**Compared with the best:** Welch's test: the variants do not all have the same "
                               "seeds (with an accuracy), so there are no per-seed pairs.")
    p, lo, hi = decisions.superiority(np.array(accs["16-64-10"]), np.array(accs["16-8-10"]))
    assert f"16-64-10 beats 16-8-10 {100 * p:.0f}% of the time [{100 * lo:.0f}, {100 * hi:.0f}] (a seed of each" \
        in " ".join(lines)


def test_the_margin_setting_moves_the_class():
    best = [0.970, 0.975, 0.980, 0.972, 0.978]
    accs = {"16-64-10": best, "16-32-10": [v - 0.003 for v in best]}  # 0.3 points below on every seed
    cost = {"16-64-10": 0.03, "16-32-10": 0.02}
    assert list(_say(accs, cost)[0].decision) == ["best", "worse"]
    g, lines = _say(accs, cost, margin=0.5)
    assert list(g.decision) == ["best", "equivalent"]
    assert "**Equivalent to it** (within ±0.5 points)" in " ".join(lines)


def test_a_variant_shown_better_than_the_first_ranked_is_said_so():
    # the report ranks by the mean, so this cannot come from it; racing's incumbent can be overtaken. Hand the
    # verdict a table whose first row is not the best: the sentence says the top is not settled
    low, high = [0.95, 0.952, 0.949], [0.97, 0.971, 0.968]
    g = tables.grouped(_summary({"16-64-10": low, "16-32-10": high}, {"16-64-10": 0.03, "16-32-10": 0.02},
                                seeds={"16-32-10": [7, 8, 9]}))
    g = tables.with_ties(g.iloc[::-1].reset_index(drop=True))
    assert list(g.decision) == ["best", "better"] and not g.attrs["paired"]
    p = sps.ttest_ind(high, low, equal_var=False).pvalue
    assert (f"**Better than the first-ranked:** 16-32-10, +1.93 points [+{100 * g.diff_lo[1]:.2f}, "
            f"+{100 * g.diff_hi[1]:.2f}]: shown above the variant ranked first (p = {p:.2g}, Holm-adjusted), so "
            "the top of the ranking is not settled.") in verdict(g)


def test_comparison_csv_holds_the_difference_and_the_class():
    best = [0.970, 0.975, 0.980, 0.972, 0.978]
    g, _ = _say({"16-64-10": best, "16-8-10": [v - 0.01 for v in best]}, {"16-64-10": 0.03, "16-8-10": 0.01})
    csv = tables.comparison_csv(g, ["layers"])
    assert list(csv.decision) == ["best", "worse"]
    assert csv.diff_pct.tolist() == pytest.approx([0.0, -1.0]) and csv.diff_low_pct.iloc[1] == pytest.approx(-1.0)


def test_the_report_reads_the_margin_from_the_grid_as_run_and_refuses_a_bad_one(tmp_path, capsys):
    from test_report_text import _run  # a run folder written directly, and its summary row

    root = tmp_path / "m"
    best = [0.970, 0.975, 0.980]
    rows = [_run(root, f"a{s}", "16-8-10", s, "done", v, 0.1) for s, v in enumerate(best)]
    rows += [_run(root, f"b{s}", "16-4-10", s, "done", v - 0.003, 0.05) for s, v in enumerate(best)]
    summary = pd.DataFrame(rows).assign(batch_size=32, n_train=1000)
    summary.to_csv(root / "summary.csv", index=False)
    (root / "sweep.toml").write_text("[report]\nmargin = 0.5\n")
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    assert "| 16-4-10 | 3 | 97.20% [95.96, 98.44] | equivalent, -0.30 [-0.30, -0.30] |" in md
    assert "within ±0.5 points ([report] margin)" in md
    csv = pd.read_csv(root / "comparison.csv")
    assert list(csv.decision) == ["best", "equivalent"] and csv.diff_pct.iloc[1] == pytest.approx(-0.3)
    # at the default 0.2 points the same runs are worse
    (root / "sweep.toml").write_text("[report]\ntarget = 0.9\n")
    assert main(["report", str(root)]) == 0
    assert "| 16-4-10 | 3 | 97.20% [95.96, 98.44] | worse, -0.30 [-0.30, -0.30] |" in (root / "report.md").read_text()
    # a bad margin: one line naming the file, exit 2, nothing rewritten
    (root / "report.md").unlink()
    (root / "sweep.toml").write_text("[report]\nmargin = -1\n")
    capsys.readouterr()
    assert main(["report", str(root)]) == 2
    err = capsys.readouterr().err
    assert "sweep.toml [report] margin: must be a number of accuracy points in (0, 100)" in err
    assert err.count("\n") == 1 and not (root / "report.md").exists()
