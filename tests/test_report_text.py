"""What the report says, on constructed sweeps where the right sentence is
known: the verdict's sentences, the variants table, partial reports, the
confusion matrix's run and report.md's escaping. Statistics against scipy."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness import mlp, store
from harness.cli import main
from harness.report import stats, tables
from harness.report.document import build
from harness.report.plots import median_run
from harness.report.render import render_md
from harness.report.verdict import verdict
from harness.sweep import locked

from helpers import check_pngs


# --- seeds to separate: Welch's test, as the report runs it ----------------------------

def _welch_power(diff, sd_a, sd_b, n, alpha=0.05):
    """The power of the two-sided Welch test with n seeds each, from scipy's noncentral t."""
    va, vb = sd_a**2 / n, sd_b**2 / n
    df = (va + vb) ** 2 / (va**2 / (n - 1) + vb**2 / (n - 1))
    crit, ncp = sps.t.ppf(1 - alpha / 2, df), diff / math.sqrt(va + vb)
    return sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp)


@pytest.mark.parametrize("diff,sd_a,sd_b", [(0.3, 0.2, 0.8), (1.0, 0.5, 0.1), (0.12, 0.3, 0.1), (2.0, 1.0, 1.0)])
def test_seeds_to_separate_is_the_welch_tests_own_count(diff, sd_a, sd_b):
    n = stats.seeds_to_separate(diff, sd_a, sd_b)
    # worked out independently: the same rule on Welch's degrees of freedom with scipy's quantiles
    expected = next(k for k in range(2, 1000)
                    if diff / math.sqrt((sd_a**2 + sd_b**2) / k) >= sum(
                        sps.t.ppf(q, (k - 1) * (sd_a**2 + sd_b**2) ** 2 / (sd_a**4 + sd_b**4)) for q in (0.975, 0.8)))
    assert n == expected
    # and the power it promises, from the noncentral t: reached at n, not one seed earlier
    assert _welch_power(diff, sd_a, sd_b, n) >= 0.8 > _welch_power(diff, sd_a, sd_b, n - 1)
    assert stats.welch_df(sd_a, sd_b, 5) == pytest.approx(
        stats.welch(np.array([0, 1, 0, 1, 0.5]) * sd_a, np.array([0, 1, 0, 1, 0.5]) * sd_b)[1], rel=1e-12)


def test_seeds_to_separate_never_promises_fewer_than_already_failed():
    n = stats.seeds_to_separate(1.0, 0.5, 0.1)  # 5 each, at this spread
    assert n == 5
    assert stats.seeds_to_separate(1.0, 0.5, 0.1, tried=4) == 5
    assert stats.seeds_to_separate(1.0, 0.5, 0.1, tried=5) is None  # 5 each were tried and did not separate them
    assert stats.seeds_to_separate(1.0, 0.0, 0.0, tried=3) is None


# --- the verdict -------------------------------------------------------------------

def _summary(accs, cost, flops=None):
    rows = [{"run_id": f"{layers}-{s}", "status": "done", "layers": layers, "depth": 1,
             "width": int(layers.split("-")[1]), "n_params": 10, "seed": s, "final_val_acc": a,
             "final_train_acc": 0.99, "median_iter_seconds": cost[layers],
             "flops_per_iter": (flops or cost)[layers] * 1e6}
            for layers, values in accs.items() for s, a in enumerate(values)]
    return pd.DataFrame(rows)


def _verdict(accs, cost, flops=None):
    g = tables.with_ties(tables.grouped(_summary(accs, cost, flops)))
    return g, verdict(g)


def test_a_tie_is_blamed_on_the_variant_whose_spread_makes_it():
    # the best scatters widely; the cheap one is tight and 1.5 points lower: the spread is the best's
    accs = {"16-64-10": [0.90, 0.98, 0.95, 0.99, 0.93], "16-8-10": [0.935, 0.936, 0.934, 0.935, 0.936]}
    g, lines = _verdict(accs, {"16-64-10": 0.03, "16-8-10": 0.01})
    assert list(g.label) == ["16-64-10", "16-8-10"] and g.decision.iloc[1] == "undecided"
    text = " ".join(lines)
    assert "16-8-10, 93.52% [93.42, 93.62], 1.48 points lower; the spread is mostly the best's seeds'" in text
    assert "**Against the best:** 1 undecided." in text
    assert "mostly its own" not in text
    # the other way round: the low one scatters
    accs = {"16-64-10": [0.950, 0.951, 0.949, 0.950, 0.950], "16-8-10": [0.90, 0.98, 0.88, 0.99, 0.93]}
    text = " ".join(_verdict(accs, {"16-64-10": 0.03, "16-8-10": 0.01})[1])
    assert "16-8-10, 93.60%" in text and "the spread is mostly its own seeds'" in text
    # both scatter alike
    accs = {"16-64-10": [0.93, 0.99, 0.95, 0.99, 0.97], "16-8-10": [0.92, 0.98, 0.94, 0.98, 0.96]}
    text = " ".join(_verdict(accs, {"16-64-10": 0.03, "16-8-10": 0.01})[1])
    assert "the spread is both variants' seeds'" in text


def test_the_headline_is_the_cheapest_near_the_best_and_noise_ties_come_under_it():
    accs = {"16-64-10": [0.975, 0.977, 0.976], "16-32-10": [0.971, 0.975, 0.974],
            "16-4-4-10": [0.88, 0.97, 0.90]}  # tied only because its own seeds scatter, 5.8 points below
    cost = {"16-64-10": 0.03, "16-32-10": 0.02, "16-4-4-10": 0.001}
    g, lines = _verdict(accs, cost)
    assert list(g.decision) == ["best", "undecided", "undecided"]
    assert lines[2].startswith("**Cheapest within 0.5 points of it:** 16-32-10, 97.33%")
    assert ("1.5× less time per iteration than the best; undecided against the best, -0.27 points "
            "[-0.70, +0.17])") in lines[2]
    assert lines[3] == "**Against the best:** 2 undecided."
    assert lines[4].startswith("**Undecided only because seeds scatter:** 1 variant more than 0.5 points below "
                               "the best is not shown worse only because the seeds vary too much to tell")
    assert "16-4-4-10, 91.67%" in lines[4] and "mostly its own seeds'" in lines[4]
    assert "16-4-4-10" not in " ".join(lines[:4])  # never the headline


def test_the_best_is_never_offered_as_its_own_cheaper_alternative():
    # the best is also the cheapest of the equivalent ones
    accs = {"20-16-3": [0.9500, 0.9505, 0.9510], "20-64-3": [0.9501, 0.9504, 0.9509], "20-4-3": [0.60, 0.61, 0.62]}
    cost = {"20-16-3": 0.01, "20-64-3": 0.04, "20-4-3": 0.005}
    g, lines = _verdict(accs, cost)
    assert list(g.decision) == ["best", "equivalent", "worse"]
    text = " ".join(lines)
    assert "**Equivalent to it** (within ±0.2 points): 1 variant." in text
    assert "**Cheapest within 0.5 points of it:** the best itself; every cheaper variant is further behind." in text
    assert "None of those takes less time per iteration than the best; none takes fewer FLOPs per iteration." in text
    assert "is 20-16-3" not in text and "by FLOPs, 20-16-3" not in text


def test_equal_means_are_called_equal_not_too_spread():
    accs = {"16-64-10": [0.97, 0.98, 0.99], "16-32-10": [0.99, 0.98, 0.97], "16-8-10": [0.5, 0.51, 0.52]}
    text = " ".join(_verdict(accs, {"16-64-10": 0.03, "16-32-10": 0.02, "16-8-10": 0.01})[1])
    assert "#1 and #2 (16-32-10) are undecided, and their means are equal at the precision shown (98.00%)" in text
    assert "0.00 points apart" not in text and "spread is too large" not in text


def test_seeds_to_separate_sentence_never_below_the_seeds_tried():
    # three variants at the same accuracies, each at raw p = 0.02 against the best: Holm's adjustment over
    # the three ties them all, yet at this spread 3 seeds each would separate them, and 3 each did not
    a, b = [0.970, 0.975, 0.980], [0.9575, 0.96, 0.9625]
    accs = {"16-64-10": a, "16-32-10": b, "16-16-10": b, "16-12-10": b}
    assert 0.0167 < stats.welch(a, b)[2] < 0.05
    assert stats.seeds_to_separate(np.mean(a) - np.mean(b), np.std(a, ddof=1), np.std(b, ddof=1)) == 3
    g, lines = _verdict(accs, {k: 0.01 for k in accs})
    assert list(g.decision) == ["best"] + ["undecided"] * 3
    text = " ".join(lines)
    assert ("#1 and #2 (16-32-10) are 1.50 points apart and undecided; more than the 3 seeds each tried here would be "
            "needed to separate them, and the spread seen here cannot say how many.") in text
    assert "about 3 seeds" not in text and "about 2 seeds" not in text
    # where the estimate is above what was tried, it is given, on Welch's test
    a, b = [0.970, 0.980, 0.990, 0.975, 0.985], [0.968, 0.978, 0.988, 0.973, 0.983]
    text = " ".join(_verdict({"16-64-10": a, "16-32-10": b}, {"16-64-10": 0.03, "16-32-10": 0.02})[1])
    n = stats.seeds_to_separate(0.002, np.std(a, ddof=1), np.std(b, ddof=1), tried=5)
    assert n > 5 and f"are 0.20 points apart and undecided; about {n} seeds each would separate them" in text


def test_intervals_are_clipped_to_0_and_100():
    g = tables.grouped(_summary({"16-8-10": [0.62, 0.99, 0.99]}, {"16-8-10": 0.01}))
    raw = stats.mean_ci([0.62, 0.99, 0.99])
    assert raw[3] > 1.0 and g.val_hi.iloc[0] == 1.0 and g.val_lo.iloc[0] == pytest.approx(raw[2])
    assert bool(g.clipped.iloc[0])
    assert tables.pct(g.val_acc.iloc[0], g.val_lo.iloc[0], g.val_hi.iloc[0]) == "86.67% [33.60, 100.00]"


# --- report documents on constructed folders -------------------------------------

def _run(root, run_id, layers, seed, status, acc, secs, n_iter=20, reason="", confusion=None):
    """A run folder, written directly, and its summary row."""
    run = root / "runs" / run_id
    run.mkdir(parents=True, exist_ok=True)
    it = np.arange(1, n_iter + 1)
    secs = np.broadcast_to(secs, it.shape)
    pd.DataFrame({"iteration": it, "train_loss": 2 / it, "train_acc": 0.9, "val_acc": np.where(it % 5 == 0, acc, np.nan),
                  "iter_seconds": secs, "elapsed_seconds": np.cumsum(secs)}).to_csv(run / "metrics.csv", index=False)
    (run / "config.json").write_text(json.dumps({"cpu": "Test CPU", "cores": 2}))
    store.write_status(run, {"status": status, "run_id": run_id})
    if confusion is not None:
        pd.DataFrame(confusion, index=["0", "1"], columns=["pred_0", "pred_1"]).to_csv(run / "confusion.csv")
    sizes = [int(n) for n in layers.split("-")]
    return {"run_id": run_id, "status": status, "layers": layers, "depth": len(sizes) - 2, "width": sizes[1],
            "n_params": mlp.n_params(sizes), "flops_per_iter": mlp.flops_per_iter(sizes, 100), "iterations": 100,
            "lr": 0.1, "optimizer": "gd", "init": "he", "validation": 0.25, "seed": seed, "final_train_acc": 0.9,
            "final_val_acc": acc, "median_iter_seconds": float(np.median(secs)), "reason": reason}


def _plan(root, run_ids):
    runs = {r: {"layers": "16-8-10", "seed": 0, "iterations": 20, "flops_per_iter": 1e6} for r in run_ids}
    store.atomic_write_json(root / store.PLAN, {"name": root.name, "grid": "g.toml", "jobs": 2, "runs": runs})


@pytest.mark.slow
def test_a_half_written_sweep_counts_every_run_and_plots(tmp_path, capsys):
    root = tmp_path / "half"
    # three seeds of one variant whose per-run median times lie outside the pooled middle half
    # (this made plot_acc_vs_time's error bars negative: the crash of a live report)
    rows = [_run(root, "aaa", "16-8-10", 0, "done", 0.90, 1.0, n_iter=100),
            _run(root, "bbb", "16-8-10", 1, "done", 0.91, 3.0, n_iter=10),
            _run(root, "hhh", "16-8-10", 2, "done", 0.92, 3.0, n_iter=10),
            _run(root, "ccc", "16-4-10", 0, "failed", math.nan, 0.5, reason="ValueError: boom"),
            _run(root, "ddd", "16-2-10", 0, "stopped", 0.5, 0.5)]
    pd.DataFrame(rows).to_csv(root / "summary.csv", index=False)
    running = root / "runs" / "eee"
    running.mkdir()
    (running / "config.json").write_text("{}")
    (running / "metrics.csv.part").write_text("iteration,train_loss,train_acc,val_acc,iter_seconds,elapsed_seconds\n"
                                              "1,1.0,0.5,,0.2,0.2\n")
    (root / "runs" / "zzz").mkdir()  # a folder no plan names: a stray
    _plan(root, ["aaa", "bbb", "hhh", "ccc", "ddd", "eee", "fff", "ggg"])
    with locked(root, print):  # the sweep still runs
        assert main(["report", str(root)]) == 0
        md = (root / "report.md").read_text()
    assert "**Partial:**" in md
    assert ("8 runs: 3 done, 1 failed, 1 stopped, 1 running, 2 waiting; this report holds the 5 recorded in "
            "summary.csv.") in md
    assert "1 run folder on disk is not in this grid" in md  # zzz only: the running and waiting runs are no strays
    check_pngs(root)
    g = build(root)[1]["g"]
    assert (g.s_lo <= g.s_per_iter).all() and (g.s_per_iter <= g.s_hi).all()
    # the sweep died: the run it was training is cut short, and a resume would start it over
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    assert "**Partial:**" not in md and "8 runs: 3 done, 1 failed, 1 stopped, 1 cut short, 2 waiting;" in md


@pytest.mark.slow
def test_a_variant_whose_seeds_diverged_says_so(tmp_path):
    root = tmp_path / "div"
    rows = [_run(root, "aaa", "16-8-10", 0, "done", 0.90, 0.1), _run(root, "bbb", "16-8-10", 1, "done", 0.91, 0.1),
            _run(root, "ccc", "16-4-10", 0, "diverged", 0.10, 0.1), _run(root, "ddd", "16-4-10", 1, "diverged",
                                                                          math.nan, 0.1)]
    pd.DataFrame(rows).to_csv(root / "summary.csv", index=False)
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| 16-4-10 |"))
    assert row.startswith("| 16-4-10 | 2 | 10.00% (2 seeds, 2 diverged: no interval) | untested (2 seeds, 2 diverged) |")
    assert "n = 1" not in row and "untested (1 seed)" not in row


@pytest.mark.slow
def test_the_confusion_matrix_is_of_the_best_variants_median_run(tmp_path):
    root = tmp_path / "conf"
    rows = [_run(root, "aaa", "16-8-10", 0, "done", 0.90, 0.1, confusion=[[9, 1], [1, 9]]),
            _run(root, "bbb", "16-8-10", 1, "done", 0.94, 0.1, confusion=[[9, 1], [0, 10]]),
            _run(root, "ccc", "16-8-10", 2, "done", 0.92, 0.1, confusion=[[8, 2], [1, 9]]),
            # the best single run belongs to a worse variant
            _run(root, "ddd", "16-4-10", 0, "done", 0.99, 0.1, confusion=[[10, 0], [0, 10]]),
            _run(root, "eee", "16-4-10", 1, "done", 0.70, 0.1, confusion=[[7, 3], [3, 7]])]
    summary = pd.DataFrame(rows)
    summary.to_csv(root / "summary.csv", index=False)
    g = tables.grouped(summary)
    assert g.label.iloc[0] == "16-8-10"
    row, path = median_run(g, summary, lambda r: root / "runs" / r)
    assert row.run_id == "ccc" and path == root / "runs" / "ccc" / "confusion.csv"
    assert main(["report", str(root)]) == 0
    assert "### Confusion matrix of a run of the best variant (validation data)" in (root / "report.md").read_text()


@pytest.mark.slow
def test_report_md_escapes_names(tmp_path):
    root = tmp_path / "<img src=x onerror=alert(1)>"
    rows = [_run(root, "aaa", "16-8-10", 0, "done", 0.90, 0.1),
            _run(root, "bbb", "16-4-10", 0, "failed", math.nan, 0.1, reason="<script>alert(1)</script> [x](javascript:y)")]
    pd.DataFrame(rows).to_csv(root / "summary.csv", index=False)
    (root / "sweep.toml").write_text("[sweep]\nname = 'x'\n# ```\n# <b>bold</b>\n")
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    assert md.startswith("# Sweep report: &lt;img src=x onerror=alert(1)&gt;\n")
    assert "<img" not in md and "<script>" not in md and "](javascript" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [x]\\(javascript:y)" in md
    assert "````toml\n[sweep]\nname = 'x'\n# ```\n# <b>bold</b>\n````" in md  # verbatim, in a fence it cannot close
    html = (root / "report.html").read_text()
    assert "<script>" not in html and "&lt;img src=x" in html
    assert render_md([("h2", "a\nb | c")]) == "## a b \\| c\n"


@pytest.mark.slow
def test_the_trials_column_of_a_halving_report_says_what_it_counts():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "results"
    if not (root / "halving" / "summary.csv").is_file():
        pytest.skip("the committed halving sweep is not here")
    table = next(p for k, p in build(root / "halving")[0] if k == "table" and "lr at an edge" in p.columns)
    assert "trials not stopped by halving" in table.columns and "trials" not in table.columns
    table = next(p for k, p in build(root / "tuned")[0] if k == "table" and "lr at an edge" in p.columns)
    assert "trials (all)" in table.columns and set(table["trials (all)"]) == {8}
