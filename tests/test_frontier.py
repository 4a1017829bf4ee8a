"""The fitted frontier (power law with a floor), the monotone front and the
stored inference latency, on constructed cases whose answer is known."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats as sps

from harness import latency
from harness.report import fitted, front, frontier

COST = np.array([2e4, 5e4, 1e5, 2e5, 4e5, 8e5, 1.6e6])
TRUE = (3.0, 0.35, 0.015)


def _seeds(curve_values, rng, sd=0.002, n=5):
    return [v + rng.normal(0, sd, n) for v in curve_values]


def test_the_grid_fit_matches_scipys_least_squares_on_exact_data():
    err = frontier.curve(TRUE, COST)
    a, b, c = frontier.fit_curve(COST, err)
    assert a == pytest.approx(TRUE[0], rel=0.02) and b == pytest.approx(TRUE[1], abs=0.005)
    assert c == pytest.approx(TRUE[2], abs=2e-4)
    noisy = err + np.random.default_rng(3).normal(0, 0.001, len(err))
    ours = frontier.fit_curve(COST, noisy)
    ref = optimize.curve_fit(lambda x, a, b, c: a * x ** (-b) + c, COST, noisy, p0=ours, maxfev=20000)[0]
    sse = lambda p: float(np.sum((noisy - frontier.curve(p, COST)) ** 2))  # noqa: E731
    assert sse(ours) <= sse(ref) * 1.01 + 1e-12  # the grid is as good a least-squares fit as scipy's


def test_f_tail_matches_scipy():
    for f, d1, d2 in ((0.5, 1, 10), (3.2, 4, 28), (12.0, 2, 5)):
        assert frontier.f_sf(f, d1, d2) == pytest.approx(sps.f.sf(f, d1, d2), rel=1e-9, abs=1e-12)


def test_a_known_power_law_is_recovered_within_its_intervals_and_passes_the_audit():
    covered, audited, rejected = np.zeros(3), 0, 0
    for r in range(30):
        seeds = _seeds(frontier.curve(TRUE, COST), np.random.default_rng(r))
        fit = frontier.fit(COST, seeds)
        rejected += bool(fit.rejected)
        for i, true in enumerate(TRUE):
            lo, hi = fit.interval(lambda p: p[i])
            covered[i] += lo <= true <= hi
        audited += frontier.audit(COST, seeds)[4] == 0
    # 95% intervals from a bootstrap of 5 seeds: most datasets, not all, cover the truth
    assert (covered >= 22).all(), covered
    assert audited >= 25 and rejected <= 2


def test_data_of_another_shape_is_rejected_and_fails_the_audit():
    rng = np.random.default_rng(0)
    u_shape = 0.02 + 0.01 * (np.log(COST) - np.log(2e5)) ** 2 / 4  # falls, then rises: overfitting
    fit = frontier.fit(COST, _seeds(u_shape, rng))
    assert fit.rejected and fit.p < frontier.REJECT_P
    assert frontier.audit(COST, _seeds(u_shape, rng))[4] > 0
    rising = 0.02 + 0.005 * np.log(COST / COST[0])
    assert "does not fall" in frontier.fit(COST, _seeds(rising, rng)).rejected


def test_reaching_a_target_inverts_the_curve():
    assert frontier.invert(TRUE, frontier.curve(TRUE, 3e5)) == pytest.approx(3e5)
    assert math.isinf(frontier.invert(TRUE, TRUE[2]))  # at the floor: never


def _family(widths, accs_of, seeds=5, depth=1):
    rng = np.random.default_rng(1)
    rows = []
    for w in widths:
        layers = [784] + [w] * depth + [10]
        n = sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))
        accs = accs_of(n) + rng.normal(0, 0.002, seeds)
        rows.append({"layers": "-".join(map(str, layers)), "label": "-".join(map(str, layers)), "depth": depth,
                     "width": w, "n_params": n, "accs": accs, "val_acc": accs.mean(), "val_lo": accs.mean() - 0.002,
                     "val_hi": accs.mean() + 0.002, "flops_total": 1e3 * n, "train_seconds": 1e-5 * n})
    return rows


def test_the_report_says_why_a_family_has_no_fit_and_audits_the_others():
    law = lambda n: 1 - frontier.curve(TRUE, n)  # noqa: E731
    g = pd.DataFrame(_family([16, 32, 64, 128, 256, 512], law) + _family([16, 32, 64], law, depth=2))
    blocks = fitted.blocks(g, 0.97)
    fits, = [b for k, b in blocks if k == "table" and "fit" in b]
    fits = fits.set_index("family")
    assert fits.loc["depth 2", "fit"] == "none: 3 widths; a fit of 3 parameters needs 4 or more to be tested"
    assert fits.loc["depth 1", "fit"].startswith("used")
    audit = [b for k, b in blocks if k == "table" and "held out" in b][0]
    assert list(audit["held out"]) == ["784-512-10"] and list(audit.inside) == ["yes"]
    text = " ".join(b for k, b in blocks if k == "p")
    assert "The measured mean fell inside in 1 of 1." in text
    reach = [b for k, b in blocks if k == "table" and "to reach" in b][0]
    n97 = frontier.invert(frontier.fit_curve([r["n_params"] for r in _family([16, 32, 64, 128, 256, 512], law)],
                                             [1 - r["val_acc"] for r in _family([16, 32, 64, 128, 256, 512], law)]),
                          0.03)
    assert reach[reach["to reach"] == "97%"]["parameters [95% interval]"].iloc[0].startswith(f"about {fitted._si(n97)} [")


# --- the monotone front ------------------------------------------------------------

def test_the_front_never_falls_even_where_the_old_rule_kept_a_worse_variant():
    # the case of results/tuned: a cheaper-looking variant 1.8 points worse whose
    # time spread overlaps the better one's stayed on the old front and dragged it down
    pts = pd.DataFrame({"s_per_iter": [3.5e-4, 3.6e-4, 3.8e-4, 9e-4],
                        "s_lo": [3.3e-4, 3.4e-4, 3.4e-4, 8.8e-4], "s_hi": [3.9e-4, 3.9e-4, 4.4e-4, 9.2e-4],
                        "val_acc": [0.957, 0.960, 0.942, 0.973], "val_lo": [0.953, 0.957, 0.936, 0.971],
                        "val_hi": [0.961, 0.963, 0.948, 0.975], "label": list("abcd")})
    from harness.report import tables

    old = tables.pareto(pts)
    assert (np.diff(old.val_acc.to_numpy()) < 0).any()  # the falling staircase of before
    steps = front.envelope(pts, "s_per_iter")
    assert steps == [0, 1, 3] and (np.diff(pts.val_acc[steps].to_numpy()) > 0).all()
    assert front.near(pts, steps, "s_per_iter", "s_lo", "s_hi") == [2]  # its time could be the lowest: marked
    assert front.near(pts, steps, "s_per_iter") == []  # on accuracy alone it is clearly below


def test_steps_within_noise_of_each_other_share_one_row():
    pts = pd.DataFrame({"cost": [1, 2, 3, 4, 5], "val_acc": [0.90, 0.901, 0.902, 0.95, 0.951],
                        "val_lo": [0.895, 0.897, 0.898, 0.945, 0.947], "val_hi": [0.905, 0.905, 0.906, 0.955, 0.955],
                        "label": list("abcde")})
    assert front.groups(pts, front.envelope(pts, "cost")) == [[0, 1, 2], [3, 4]]
    table = front.table(pts, "cost", str, lambda m, lo, hi: f"{m:.3f}")
    assert list(table["cost from"]) == ["1 to 4", "4 or more"] and list(table.steps) == [3, 2]
    assert table["most accurate step"].iloc[0] == "c, 0.902 at 3"
    alone = pts.assign(val_lo=math.nan, val_hi=math.nan)  # one seed: no interval, no grouping
    assert len(front.groups(alone, front.envelope(alone, "cost"))) == 5


# --- inference latency, stored once ------------------------------------------------

def test_latency_is_measured_once_per_architecture_and_the_file_kept(tmp_path):
    calls = []

    def fake(layers, dtype):
        calls.append(tuple(layers))
        return 1e-5 * len(layers), 1e-6 * len(layers)

    archs = [("16-8-10", "float32"), ("16-8-4-10", "float32")]
    got = latency.ensure(tmp_path, archs, fake)
    assert got[("16-8-4-10", "float32")] == (4e-5, 4e-6) and len(calls) == 2
    path = tmp_path / latency.FILE
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert latency.ensure(tmp_path, archs, fake) == got and len(calls) == 2  # nothing measured again
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before              # nor written
    latency.ensure(tmp_path, archs + [("16-10", "float64")], fake)
    assert calls[-1] == (16, 10) and len(pd.read_csv(path)) == 3


def test_seconds_per_call_is_the_median_of_its_repeats():
    ticks = iter([0.0, 0.01] + [t for i, d in enumerate((3, 1, 2, 9, 4)) for t in (100.0 * i, 100.0 * i + d)])
    assert latency.seconds_per_call(lambda: None, seconds=0.05, clock=lambda: next(ticks)) == 3.0


def test_a_rejected_fit_reads_no_cost_off_its_curve_and_a_floor_above_the_target_is_said():
    u_shape = lambda n: 1 - (0.02 + 0.02 * (np.log(n) - np.log(1e5)) ** 2 / 4)  # noqa: E731
    g = pd.DataFrame(_family([16, 32, 64, 128, 256, 512, 1024], u_shape))
    blocks = fitted.blocks(g, 0.97)
    fits = [b for k, b in blocks if k == "table" and "fit" in b][0]
    assert fits.fit.iloc[0] == "rejected: the error does not fall as the cost grows"
    assert "No family has a usable fit, so the report reads no cost off a curve." in [b for k, b in blocks if k == "p"]
    law = frontier.fit(COST, _seeds(frontier.curve(TRUE, COST), np.random.default_rng(0)))
    rows = pd.DataFrame(_family([16, 32, 64, 128], lambda n: 1 - frontier.curve(TRUE, n)))
    floor = fitted.reach_rows("f", rows, law, [0.999])[0]["parameters [95% interval]"]
    assert floor == f"not reachable: the fitted floor is {100 * (1 - law.params[2]):.2f}% accuracy"


def test_a_comparison_takes_the_latency_its_sweeps_stored(tmp_path):
    one, two, out = tmp_path / "one", tmp_path / "two", tmp_path / "cmp"
    for folder in (one, two, out):
        folder.mkdir()
    latency.ensure(one, [("16-8-10", "float32")], lambda layers, dtype: (1e-5, 1e-6))
    latency.ensure(two, [("16-4-10", "float32")], lambda layers, dtype: (2e-5, 2e-6))
    measured = []
    got = latency.ensure(out, [("16-8-10", "float32"), ("16-4-10", "float32"), ("16-10", "float32")],
                         lambda layers, dtype: measured.append(layers) or (3e-5, 3e-6), sources=(one, two))
    assert measured == [[16, 10]] and got[("16-8-10", "float32")] == (1e-5, 1e-6)
    assert got[("16-4-10", "float32")] == (2e-5, 2e-6) and len(latency.read(out)) == 3


def test_a_running_sweep_measures_no_latency_and_stores_none(tmp_path):
    got = latency.ensure(tmp_path, [("16-8-10", "float32")], None)
    assert all(math.isnan(v) for v in got[("16-8-10", "float32")]) and not (tmp_path / latency.FILE).exists()
    from harness.report import costs

    assert costs._us(math.nan) == "at the end" and costs._us(4.2e-5) == "42"


@pytest.mark.parametrize("decisions, named", [(["best", "worse", "worse"], False),
                                              (["best", "equivalent", "worse"], True)])
def test_the_time_plots_legend_names_equivalent_variants_only_when_there_are_some(tmp_path, monkeypatch,
                                                                                   decisions, named):
    from harness.report import plots

    shown = []
    monkeypatch.setattr(plots, "legend", lambda ax, handles: shown.extend(h.get_label() for h in handles))
    rows = _family([64, 128, 256], lambda n: 0.9)
    g = pd.DataFrame(rows).assign(shape="constant", s_per_iter=[1e-3, 2e-3, 4e-3], s_lo=[0.9e-3, 1.9e-3, 3.9e-3],
                                  s_hi=[1.1e-3, 2.1e-3, 4.1e-3], decision=decisions)
    plots.plot_acc_vs_time(g, tmp_path / "t.png")
    assert "Pareto front (never falls)" in shown
    assert ("equivalent to best" in shown) is named
