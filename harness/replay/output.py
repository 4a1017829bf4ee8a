"""replay.csv, replay.md and replay.html (the report's renderers) and the
one plot: reliability against FLOPs share, one point per setting."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .. import store
from ..words import count

CSV = "replay.csv"
PLOT = "replay.png"


def _pct(x):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _p(row, name):
    return f"{_pct(row[name])} [{_pct(row[name + '_lo'])}, {_pct(row[name + '_hi'])}]"


def name(row):
    """A setting in words: "halving eta 3, min 100, 1 seed"."""
    seeds = count(int(row["seeds"]), "seed")
    if row["strategy"] == "halving":
        return f"halving eta {int(row['eta'])}, min {int(row['min_iterations'])}, {seeds}"
    if row["strategy"] == "tune":
        return f"[tune] on {count(int(row['seeds']), 'search seed')}"
    return f"full grid, {seeds}"


def _table(rows, tune):
    keep = [r for r in rows if (r["strategy"] == "tune") == tune]
    out = pd.DataFrame({"setting": [name(r) for r in keep],
                        ("P(choice tied with its best trial)" if tune else "P(winner in tie set)"):
                            [_p(r, "p_tied") for r in keep],
                        ("P(choice is the best trial)" if tune else "P(winner is the best)"):
                            [_p(r, "p_best") for r in keep],
                        "regret, mean (points)": [f"{r['regret_mean']:.3f}" for r in keep],
                        "regret, 95th pct (points)": [f"{r['regret_p95']:.3f}" for r in keep],
                        "FLOPs share": [_pct(r["flops_share"]) for r in keep]})
    if tune:
        out["P(comparison's winner changes)"] = [_p(r, "p_winner_changes") for r in keep]
    else:
        out["FLOPs vs a full grid on as many seeds"] = [_pct(r["flops_vs_grid"]) for r in keep]
    return out


def blocks(recorded, rows, best, target, aa, resamples, seed):
    """The document's blocks (see :mod:`harness.report.render`)."""
    n_seeds = len(recorded.seeds)
    tied = [recorded.units[i] for i in range(len(recorded.units)) if recorded.tied[i] and i != recorded.winner]
    shown = "; ".join(tied[:8]) + (f"; and {len(tied) - 8} more" if len(tied) > 8 else "")
    out = [("h1", f"Replay: {recorded.folder.name}"),
           ("p", f"Strategies replayed on the recorded curves of a full grid: {count(len(recorded.names), 'configuration')}"
                 f" on {count(n_seeds, 'seed')} each, to iteration {recorded.total}, evaluated every "
                 f"{recorded.eval_every}. Each of {resamples:,} resamples (seed {seed}) draws, for every "
                 "configuration, the setting's number of its recorded seeds; the strategy's own decision code "
                 "then picks a winner. Nothing is trained."),
           ("p", f"**Truth** (the full sweep, as its report says): the best is {recorded.units[recorded.winner]}; "
                 f"in its tie set (not shown worse by the report's classes, Holm-adjusted, α = 0.05): {count(len(tied), 'other variant')} of "
                 f"{len(recorded.units) - 1}"
                 + (f" ({shown})." if tied else ".")),
           ("h2", "Recommendation")]
    if best is None:
        out.append(("p", f"No setting replayed reaches P(winner in tie set) ≥ {_pct(target)}."))
    else:
        out.append(("p", f"The cheapest setting with P(winner in tie set) ≥ {_pct(target)}: **{name(best)}**, "
                         f"{_p(best, 'p_tied')}, at {_pct(best['flops_share'])} of the full sweep's training FLOPs."))
    if recorded.tied.sum() > len(recorded.units) / 4:
        out.append(("p", f"The tie set holds {recorded.tied.sum()} of the {len(recorded.units)} variants, so landing "
                         "in it is easy here: read the regret beside it."))
    out += [("h2", "Settings"),
            ("p", "P: share of resamples, with a 95% Wilson interval. Regret: points of mean validation accuracy "
                  "(over all recorded seeds) below the best configuration's. FLOPs share: training FLOPs of the "
                  "search against the full sweep's on all its seeds."),
            ("table", _table(rows, tune=False)), ("image", ("Reliability against FLOPs share", PLOT))]
    if any(r["strategy"] == "tune" for r in rows):
        out += [("h2", "[tune]: the trial each point selects"),
                ("p", "Each point's choice on the drawn search seeds, by the tuned sweep's own selection, against "
                      "its best trial on all recorded seeds. Tied: not told apart from the best trial by Welch's "
                      "test on all recorded seeds, Holm-adjusted over the point's trials. The comparison's winner "
                      "changes when the point whose chosen trial is best on all recorded seeds is not the one it "
                      "is with every point's best trial."),
                ("table", _table(rows, tune=True))]
    out += aa_blocks(aa)
    return out


def aa_blocks(aa):
    head = [("h2", "A/A check of the report's test")]
    if not aa["tests"]:
        return head + [("p", "No variant has 4 or more seeds, so no A/A check could be made.")]
    verdict = ("about the α it promises, or less" if aa["lo"] <= aa["alpha"] + 1e-12 else
               "more often than the α it promises: its \"better\" is not to be trusted at face value")
    spread = (f"per variant from {_pct(min(aa['per_group']))} to {_pct(max(aa['per_group']))}")
    return head + [("p", f"Each of {count(aa['groups'], 'variant')} with 4 or more seeds had its seeds split into "
                         "two halves in every possible way (200 random ways when there are more), "
                         f"{aa['tests']:,} splits in all; the report's classes (Welch's test and TOST within a "
                         f"0.2-point margin, α = {aa['alpha']:g}) called one half worse or better than the other in {aa['different']:,} of "
                         f"{aa['tests']:,} splits: {_pct(aa['rate'])} [{_pct(aa['lo'])}, {_pct(aa['hi'])}] "
                         f"({spread}), {verdict}. Splits of one variant share its seeds, so the interval, which "
                         "treats them as independent, is too narrow.")]


def plot(rows, best, path):
    """P(winner in tie set) against FLOPs share, a point per setting."""
    from ..report.style import save, setup

    setup()
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["strategy"] != "tune"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        err = [[r["p_tied"] - r["p_tied_lo"]], [r["p_tied_hi"] - r["p_tied"]]]
        ax.errorbar(100 * r["flops_share"], 100 * r["p_tied"], yerr=[[100 * e[0]] for e in err], fmt="o",
                    color="tab:blue" if r["strategy"] == "halving" else "tab:grey", ms=5, capsize=2)
    if best is not None:
        ax.plot(100 * best["flops_share"], 100 * best["p_tied"], marker="*", ms=18, color="crimson", ls="none",
                label=f"recommended: {name(best)}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs, % of the full sweep's (log)")
    ax.set_ylabel("P(winner in the full sweep's tie set), %")
    ax.set_title("Reliability against cost (blue: halving, grey: full grid)", fontsize=11)
    return save(fig, path)


def write(out: Path, rows, blks):
    from ..report.render import render_html, render_md

    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame[["eta", "min_iterations"]] = frame[["eta", "min_iterations"]].astype("Int64")
    store.atomic_write_text(out / CSV, frame.to_csv(index=False))
    store.atomic_write_together({out / "replay.md": render_md(blks), out / "replay.html": render_html(blks, out)})
