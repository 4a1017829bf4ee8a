"""The report's statistics against values worked out independently (scipy.stats
1.16 for the t distribution and Welch's test; Holm's adjustment by hand)."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.report import stats, tables
from harness.report.verdict import verdict

A = [97.1, 97.5, 96.8, 97.9, 97.3]
B = [96.2, 96.9, 96.5]


@pytest.mark.parametrize("q,df,expected", [(0.975, 4, 2.7764451051977934), (0.975, 1, 12.706204736174694),
                                           (0.975, 30, 2.0422724563012378), (0.8, 10, 0.8790578285505889)])
def test_t_quantiles(q, df, expected):
    assert stats.t_ppf(q, df) == pytest.approx(expected, rel=1e-10)


def test_t_cdf_with_fractional_degrees_of_freedom():
    assert stats.t_cdf(2.5, 3.7) == pytest.approx(0.9640889885440866, rel=1e-12)
    assert stats.t_cdf(-2.5, 3.7) == pytest.approx(1 - 0.9640889885440866, rel=1e-10)


def test_t_interval_of_a_known_sample():
    n, mean, lo, hi = stats.mean_ci(A)
    assert n == 5 and mean == pytest.approx(97.32)
    assert (lo, hi) == (pytest.approx(96.80504614641417, rel=1e-12), pytest.approx(97.83495385358582, rel=1e-12))
    n, mean, lo, hi = stats.mean_ci([0.9])
    assert n == 1 and mean == 0.9 and math.isnan(lo) and math.isnan(hi)  # one seed: no interval


def test_welch_p_values_of_known_samples():
    t, df, p = stats.welch(A, B)
    assert t == pytest.approx(2.8627624882541123, rel=1e-12)
    assert df == pytest.approx(4.997737981566256, rel=1e-10)
    assert p == pytest.approx(0.03531057218080023, rel=1e-9)
    t, _, p = stats.welch([1.0, 2.0], [1.5, 2.6, 3.1, 2.2])
    assert (t, p) == (pytest.approx(-1.4085388504985736, rel=1e-12), pytest.approx(0.29524728436214404, rel=1e-9))
    assert math.isnan(stats.welch([1.0], B)[2])  # one value: no test
    assert stats.welch([1.0, 1.0], [1.0, 1.0])[2] == 1.0 and stats.welch([1.0, 1.0], [2.0, 2.0])[2] == 0.0


def test_holm_adjustment_of_a_known_list():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = stats.holm([0.2, math.nan, 0.01])
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert stats.holm([0.6, 0.7]).max() <= 1.0


def test_seeds_to_separate_grows_as_the_gap_shrinks():
    few, many = stats.seeds_to_separate(1.0, 0.5, 0.5), stats.seeds_to_separate(0.3, 0.5, 0.5)
    assert 2 <= few < many
    # at that n the test's noncentrality clears both quantiles; one seed fewer does not
    n, var = many, 0.5**2 + 0.5**2
    assert 0.3 / math.sqrt(var / n) >= stats.t_ppf(0.975, 2 * n - 2) + stats.t_ppf(0.8, 2 * n - 2)
    assert 0.3 / math.sqrt(var / (n - 1)) < stats.t_ppf(0.975, 2 * n - 4) + stats.t_ppf(0.8, 2 * n - 4)
    assert stats.seeds_to_separate(0.0, 0.1, 0.1) is None and stats.seeds_to_separate(1.0, math.nan, 0.1) is None


def _summary(rows):
    base = {"status": "done", "depth": 1, "width": 8, "n_params": 10, "flops_per_iter": 100.0,
            "median_iter_seconds": 0.01, "final_train_acc": 0.9, "lr": 0.1, "momentum": 0.9}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_a_setting_that_varies_tells_variants_apart_even_if_no_list_names_it():
    rows = [{"run_id": f"r{i}", "layers": "16-8-10", "seed": i % 2, "momentum": m, "final_val_acc": acc}
            for i, (m, acc) in enumerate([(0.9, 0.90), (0.9, 0.91), (0.5, 0.80), (0.5, 0.81)])]
    g = tables.grouped(_summary(rows))
    assert len(g) == 2 and list(g.seeds) == [2, 2]
    assert list(g.label) == ["16-8-10, momentum 0.9", "16-8-10, momentum 0.5"]


def test_ties_and_verdict_on_constructed_runs():
    accs = {"16-32-10": [0.95, 0.951, 0.949], "16-8-10": [0.949, 0.952, 0.948], "16-4-10": [0.80, 0.81, 0.79]}
    cost = {"16-32-10": 0.03, "16-8-10": 0.01, "16-4-10": 0.005}
    rows = [{"run_id": f"{layers}-{s}", "layers": layers, "width": int(layers.split("-")[1]), "seed": s,
             "final_val_acc": a, "median_iter_seconds": cost[layers], "flops_per_iter": 1e6 * cost[layers]}
            for layers, values in accs.items() for s, a in enumerate(values)]
    g = tables.with_ties(tables.grouped(_summary(rows)))
    assert list(g.label) == ["16-32-10", "16-8-10", "16-4-10"]
    assert list(g.decision) == ["best", "undecided", "worse"]
    raw = [stats.welch(accs["16-32-10"], accs[k])[2] for k in ("16-8-10", "16-4-10")]
    np.testing.assert_allclose(g.p_vs_best[1:], stats.holm(raw))
    text = " ".join(verdict(g))
    assert "**Best:** 16-32-10" in text and "**Against the best:** 1 worse, 1 undecided." in text
    assert "within 0.5 points of it:** 16-8-10" in text and "seeds each would separate them" in text
    csv = tables.comparison_csv(g, ["layers"])
    assert csv.val_acc_pct.iloc[0] == pytest.approx(95.0) and list(csv.decision) == ["best", "undecided", "worse"]


def test_equal_budget_views_on_constructed_metrics():
    rows = [{"run_id": "fast", "layers": "16-8-10", "width": 8, "seed": 0, "final_val_acc": 0.9},
            {"run_id": "slow", "layers": "16-64-10", "width": 64, "seed": 0, "final_val_acc": 0.95}]
    g = tables.grouped(_summary(rows))
    it = np.arange(1, 11)
    metrics = pd.concat([
        pd.DataFrame({"run_id": "fast", "iteration": it, "iter_seconds": 0.1, "val_acc": 0.5 + 0.04 * it}),
        pd.DataFrame({"run_id": "slow", "iteration": it, "iter_seconds": 1.0, "val_acc": 0.5 + 0.045 * it}),
    ])
    reach, at, secs = tables.budgets(g, metrics, target=0.85)
    reach = reach.set_index("variant")
    assert reach.loc["16-8-10", "iterations"] == 9 and reach.loc["16-8-10", "training seconds"] == pytest.approx(0.9)
    assert reach.loc["16-64-10", "iterations"] == 8 and reach.loc["16-64-10", "training seconds"] == pytest.approx(8.0)
    assert secs == pytest.approx([0.25, 0.5, 1.0])  # the quickest variant's 1 s of training
    at = at.set_index("variant")
    assert at.loc["16-8-10", "1 s"] == pytest.approx(0.9) and math.isnan(at.loc["16-64-10", "0.25 s"])
    assert at.loc["16-64-10", "1 s"] == pytest.approx(0.545)


def test_a_time_difference_within_the_spread_is_not_a_win():
    pts = pd.DataFrame({"s_per_iter": [1.0, 1.05, 3.0], "val_acc": [0.95, 0.94, 0.93],
                        "s_lo": [0.9, 0.95, 2.9], "s_hi": [1.1, 1.15, 3.1]})
    # the second is not clearly slower than the first (their spreads overlap): it stays on the front
    assert list(tables.pareto(pts).index) == [0, 1]


def test_labels_leave_out_settings_that_follow_from_the_others():
    frame = pd.DataFrame({"layers": ["a", "a", "b"], "sweep": ["s", "s", "t"], "epochs": [12, 12, 0],
                          "lr": [0.1, 0.2, 0.1]})
    # epochs follows from the sweep; lr tells the two "a" variants apart; layers and sweep always stay
    assert tables.label_keys(frame, ["layers", "sweep", "epochs", "lr"]) == ["layers", "sweep", "lr"]
