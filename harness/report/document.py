"""The report of a sweep folder (or of several, side by side): its blocks,
built from the CSV files and each run's config.json, then plots, report.md,
report.html and comparison.csv. Nothing is trained."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from .. import layout, pack, store, sweep_status
from ..errors import ConfigError
from ..status import NAMES, STATES, RunStatus, in_comparison, mask
from . import costs, decisions, fitted, front, halving as halvingmod, pooling, racing as racingmod, reading, stats, tables, tuned as tunedmod, verdict as verdictmod
from .plots import PLOTS, plot_all
from .tuned import load_tuned
from .render import render_html, render_md
from .tables import DEFAULT_TARGET, pct

ARTICLE_CLAIMS = {"784-10-10": (1000, 0.88), "784-256-128-64-10": (500, 0.97)}


def _article_section(summary):
    """Rows comparing the article's claims with our runs, or None if this
    sweep does not hold the article's two networks trained its way."""
    faithful = summary[(summary.optimizer == "gd") & (summary.init == "article") & in_comparison(summary.status)]
    if not set(ARTICLE_CLAIMS) <= set(faithful.layers):
        return None
    rows, times = [], {}
    test = (faithful.validation.astype(str) == "test").all()
    for layers, (iters, claim) in ARTICLE_CLAIMS.items():
        runs = faithful[(faithful.layers == layers) & (faithful.iterations == iters)]
        if runs.empty:
            return None
        times[layers] = runs.median_iter_seconds.median()
        _, tr, tr_lo, tr_hi = stats.mean_ci(runs.final_train_acc)
        _, va, va_lo, va_hi = stats.mean_ci(runs.final_val_acc)
        rows.append({
            "network": layers, "iterations": iters, "article: train acc": f"~{100 * claim:.0f}%",
            "ours: train acc": pct(tr, tr_lo, tr_hi),
            ("ours: test acc" if test else "ours: validation acc"): pct(va, va_lo, va_hi),
            "ours: s/iter": f"{times[layers]:.4f}",
        })
    ratio = times["784-256-128-64-10"] / times["784-10-10"]
    return pd.DataFrame(rows), ratio, test


def _front_table(g):
    return front.table(g, "s_per_iter", lambda s: f"{s:.4g} s", pct, "time per iteration")


def _seeds_note(row):
    """What a variant's accuracy rests on, when it is not plain n seeds:
    "2 seeds, 2 diverged", and whether there is an interval."""
    parts = [f"{row.runs} seed{'s' if row.runs > 1 else ''}, {row.diverged} diverged"] if row.diverged else []
    if row.seeds < 2:
        parts.append("no interval" if parts else "n = 1: no interval")
    return f" ({': '.join(parts)})" if parts else ""


def _decision_cell(row):
    if row.decision == "untested":
        return f"untested ({row.runs} seeds, {row.diverged} diverged)" if row.diverged else "untested (1 seed)"
    if row.decision == "best":
        return "best"
    return f"{row.decision}, {100 * row['diff']:+.2f} [{100 * row.diff_lo:+.2f}, {100 * row.diff_hi:+.2f}]"


def _variants_table(g):
    return pd.DataFrame({
        "variant": g.label,
        "n": g.runs,
        "validation acc [95% CI]": [(pct(r.val_acc, r.val_lo, r.val_hi) if r.seeds > 1 else pct(r.val_acc))
                                    + _seeds_note(r) for _, r in g.iterrows()],
        "vs best: class, points [95% CI]": [_decision_cell(r) for _, r in g.iterrows()],
        "p vs best (Holm)": ["" if math.isnan(p) else f"{p:.3g}" for p in g.p_vs_best],
        **({"test acc (held out)": [pct(m, lo, hi) for m, lo, hi in zip(g.test_acc, g.test_lo, g.test_hi)]}
           if "test_acc" in g else {}),
        "train acc": [pct(v) for v in g.train_acc],
        "params": [tables._si(v) for v in g.n_params],
        "FLOPs/iter": [tables._si(v) for v in g.flops_per_iter],
        "s/iter": [f"{v:.4g}" for v in g.s_per_iter],
        "GFLOP/s": [f"{f / s / 1e9:.1f}" for f, s in zip(g.flops_per_iter, g.s_per_iter)],
        "diverged": g.diverged,
    })


def report_target(folder):
    """``[report] target`` of the sweep's grid file, or the default."""
    try:
        return float((layout.settings(folder) or {}).get("report", {}).get("target", DEFAULT_TARGET))
    except (TypeError, ValueError):
        return DEFAULT_TARGET


def report_margin(folder):
    """``[report] margin`` (points) of the sweep's grid file, or the default.
    A bad value in a hand-edited sweep.toml is refused (ConfigError)."""
    report = (layout.settings(folder) or {}).get("report", {})
    where = f"{Path(folder) / layout.SETTINGS} [report]"
    return decisions.check_margin(report.get("margin", decisions.DEFAULT_MARGIN), where)


PARTIAL_RELOAD_SECONDS = 60


def _run_states(folder, summary):
    """``(counts, stray)``: how many of the sweep's runs stand in each state
    of the one vocabulary (:data:`harness.status.STATES`), the finished ones
    from the summary and the others (running, checkpointed, cut short,
    waiting) from the sweep's plan; and how many run folders on disk belong
    to neither. Without a plan, the summary alone."""
    states = dict(zip(summary.run_id, summary.status))
    planned = set()
    if (folder / store.PLAN).is_file():
        try:
            _, _, runs = sweep_status.progress(folder)
        except (ConfigError, KeyError, TypeError, AttributeError):
            runs = []  # an unreadable plan: counted from the summary alone
        for r in runs:
            planned.add(r["run_id"])
            states.setdefault(r["run_id"], r["state"])
    counts = pd.Series(list(states.values()), dtype=object).value_counts()
    counts = {s: int(counts[s]) for s in sorted(counts.index, key=lambda s: STATES.index(s) if s in STATES else 99)}
    runs_dir = layout.runs_dir(folder)
    on_disk = {p.name for p in runs_dir.iterdir() if p.is_dir()} if runs_dir.is_dir() else set()
    left_out = {r for r, _ in summary.attrs.get("left_out", [])}
    return counts, len(on_disk - set(states) - planned - left_out)


def _head(blocks, title, folder, summary, configs):
    blocks.append(("h1", title))
    if store.sweep_running(folder):
        written = pd.Timestamp.now().strftime("%Y-%m-%d %H:%M:%S")
        blocks.append(("p", f"**Partial:** a sweep is still running on this folder. This report, written "
                            f"{written}, holds only the runs finished by then. Opened in a browser, it "
                            f"reloads every {PARTIAL_RELOAD_SECONDS} s until the sweep's final report "
                            "replaces it."))
        blocks.append(("reload", PARTIAL_RELOAD_SECONDS))
    counts, stray = _run_states(folder, summary) if "sweep" not in summary else (
        summary.status.value_counts().to_dict(), 0)
    total = sum(counts.values())
    unfinished = sum(n for s, n in counts.items() if s not in NAMES)
    test_split = (summary.validation.astype(str) == "test").all()
    rows = reading.row_counts(summary, configs)
    blocks.append(("p", f"{total} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items())
                   + (f"; this report holds the {len(summary)} recorded in summary.csv." if unfinished else ".")
                   + " Validation data: " + ("the official MNIST test split" if test_split
                                             else "rows held out of the training file")
                   + (f" ({rows})" if rows else "") + ". Accuracies are in percent; intervals are 95% "
                   "Student-t intervals of the mean over seeds. Failed, interrupted and stopped runs "
                   "enter no mean, interval or test."))
    left_out = summary.attrs.get("left_out", [])
    if left_out:
        blocks.append(("p", f"**Left out:** {len(left_out)} run{'' if len(left_out) == 1 else 's'} whose files "
                            "failed verification (damaged or changed since the run wrote them; the next sweep "
                            "redoes them): " + "; ".join(f"{r} ({p})" for r, p in left_out) + "."))
    if stray:
        blocks.append(("p", f"{stray} run folder{'' if stray == 1 else 's'} on disk "
                            f"{'is' if stray == 1 else 'are'} not in this grid and left out of this report."))
    if test_split:
        blocks.append(("p", "**Note:** this sweep validates on the official test split, so any choice made "
                            "from this report is a choice made on test data."))
    elif "test_acc" in summary and summary.test_acc.notna().any():
        blocks.append(("p", "Variants are ranked by validation accuracy. The official test split was held out "
                            "of that choice: each run was evaluated on it once, at the end, with the "
                            "parameters it kept."))


def _article_blocks(blocks, summary):
    article = _article_section(summary)
    if article is None:
        return
    table, ratio, test = article
    blocks.append(("h2", "Article vs this run"))
    blocks.append(("p", "The article trained on 33,600 images (80% of a 42,000-row CSV) and reported "
                        "training accuracy only. We report both training accuracy and "
                        + ("test accuracy on the 10,000 official MNIST test images." if test
                           else "validation accuracy.")))
    blocks.append(("table", table))
    blocks.append(("p", f"Time per iteration of 784-256-128-64-10 is **{ratio:.1f}×** that of 784-10-10 "
                        "(the article only says it \"increases considerably\")."))


def _budget_blocks(blocks, reach, at, target, secs):
    blocks.append(("h2", "Equal budgets"))
    blocks.append(("p", f"Training seconds (the steps only, evaluations excluded) and iterations at which each "
                        f"variant's seeds first reach {100 * target:g}% validation accuracy (the median over "
                        "the seeds that did; [report] target in the grid file sets it), and the validation "
                        "accuracy each had within equal training-time budgets: a quarter, half and all of the "
                        "quickest variant's training time."))
    shown = reach.copy()
    shown["training seconds"] = [("not reached" if math.isnan(v) else f"{v:.3g}") for v in shown["training seconds"]]
    shown["iterations"] = [("" if math.isnan(v) else f"{v:.0f}") for v in shown["iterations"]]
    blocks.append(("table", shown))
    if secs:
        blocks.append(("table", at.rename(columns={c: f"acc within {c}" for c in at.columns if c != "variant"})
                       .assign(**{f"acc within {b:.3g} s": [pct(v) for v in at[f"{b:.3g} s"]] for b in secs})))


def _unfinished_blocks(blocks, summary):
    """Every run of the sweep (search runs too) that did not end ``done``;
    the runs halving stopped are counted, not listed."""
    bad = summary[~mask(summary.status, RunStatus.DONE)]
    stopped = mask(bad.status, RunStatus.STOPPED)
    blocks.append(("h2", "Runs that did not finish as done"))
    listed = bad[~stopped]
    if listed.empty:
        blocks.append(("p", "None." if not stopped.any() else "None but those stopped by successive halving."))
    else:
        blocks.append(("table", pd.DataFrame({"run_id": listed.run_id, "architecture": listed.layers,
                                              "seed": listed.seed, "status": listed.status,
                                              "reason": listed.reason.astype(object).fillna("")})))
    if stopped.any():
        blocks.append(("p", f"{int(stopped.sum())} runs were stopped by successive halving at a rung "
                            "(see Halving); they enter no comparison."))


PACKED_NOTE = (pack.PACKED_NOTE_START + ": it keeps each run's evaluation rows, not every iteration's. "
               "Times per iteration, their spread and the training-loss curves come from the evaluated "
               "iterations alone, and the confusion matrix is not drawn from a packed sweep.")


def build(folder, summary=None, metrics=None, title=None, run_dir=None, sources=()):
    """The report's content: ``(blocks, frames)`` where blocks are
    ``(kind, payload)`` pairs both renderers share and frames hold what the
    plots and comparison.csv need."""
    if summary is None:
        summary, metrics, folder = reading.load(folder)
    folder = Path(folder)
    configs = reading.run_configs(folder, summary) if "sweep" not in summary else {}
    blocks = []
    _head(blocks, title or f"Sweep report: {folder.name}", folder, summary, configs)
    tuned, tune = load_tuned(folder) or (None, None)
    full, summary = summary, tunedmod.compared(summary, tuned, tune)
    g = tables.grouped(summary)
    keys = tables.variant_keys(summary[in_comparison(summary.status)])
    if not g.empty:
        g = tables.time_spread(tables.with_ties(g, report_margin(folder)), metrics)
        if g.clipped.any():
            blocks.append(("p", "An interval that passes 0% or 100% (a wide one, from few seeds or much spread) "
                                "is clipped to [0, 100] for display; the mean and the tests are unchanged."))
    blocks.append(("h2", "Verdict"))
    blocks += [("p", line) for line in verdictmod.verdict(g)]
    levels = halvingmod.rung_list(folder, full)
    if tuned is not None:
        blocks += tunedmod.blocks(tuned, tune, full, halved=bool(levels))
    if levels:
        blocks += halvingmod.blocks(full, levels)
    blocks += racingmod.blocks(folder)
    _article_blocks(blocks, summary)
    blocks.append(("h2", "Variants, over seeds"))
    blocks.append(("table", _variants_table(g) if not g.empty else pd.DataFrame({"variant": []})))
    target = report_target(folder)
    reach, at, secs = tables.budgets(g, metrics, target) if not g.empty else (None, None, [])
    if reach is not None:
        g = _cost_blocks(blocks, g, summary, metrics, folder, sources, (reach, at, target, secs))
    _unfinished_blocks(blocks, full)
    _closing_blocks(blocks, full, configs, folder)
    return blocks, {"loaded": full,  # as read, with what was left out, for the caller's lines
                    "g": g, "keys": keys, "summary": summary, "metrics": metrics, "target": target, "secs": secs,
                    "run_dir": run_dir or (lambda run_id: layout.run_dir(folder, run_id)),
                    "tuned": (full, tuned, tune) if tuned is not None else None,
                    "halving": (full, metrics, levels) if levels else None}


def _cost_blocks(blocks, g, summary, metrics, folder, sources, budgets):
    """The equal-budget view, every cost of a variant, the Pareto front and
    the fitted frontier; returns ``g`` with its costs. ``budgets``:
    ``(reach, at, target, secs)`` of :func:`tables.budgets` and the target."""
    reach, at, target, secs = budgets
    _budget_blocks(blocks, reach, at, target, secs)
    g = costs.with_costs(g, summary, metrics, reach, folder, sources=sources,
                         measure=None if store.sweep_running(folder) else costs.latency.measure)
    blocks += costs.blocks(g, target)
    blocks.append(("h2", "Best variant for each time budget"))
    blocks.append(("p", "The Pareto front, a staircase that only rises: each step is the most accurate variant "
                        "at this time per iteration or less. Steps within noise of each other (one's mean "
                        "inside the other's 95% interval) are grouped into one row, from its cheapest step to "
                        "its most accurate. In the plots, variants off the front but within noise of it (their "
                        "interval reaches it, or their time's middle half reaches below a step's) are ringed, "
                        "not drawn as steps. The plot of fronts sets accuracy against each cost."))
    blocks.append(("table", _front_table(g)))
    blocks += fitted.blocks(g, target)
    return g


def _closing_blocks(blocks, full, configs, folder):
    """The plots, the machine the runs trained on and the grid as run."""
    blocks.append(("h2", "Plots"))
    if full.attrs.get("packed"):
        blocks.append(("p", PACKED_NOTE))
    for key, plot_title in PLOTS.items():
        blocks.append(("image", (plot_title, f"plots/{key}.png")))
    env = reading.environment(configs)
    if env:
        blocks.append(("h2", "Environment"))
        blocks.append(("table", pd.DataFrame({"": list(env), "value": [str(v) for v in env.values()]})))
    toml = folder / layout.SETTINGS
    if toml.is_file():
        blocks.append(("h2", "Settings"))
        blocks.append(("code", toml.read_text()))


def _write(folder, blocks, frames):
    folder = Path(folder)
    store.refuse_links(folder, depth=1)  # plots/ or the folder itself a link: never written through
    plot_all(frames["g"], frames["summary"], frames["metrics"], frames["run_dir"], folder / "plots", frames["target"],
             frames["secs"])
    if frames.get("halving"):
        halvingmod.plot(*frames["halving"], folder / "plots" / f"{halvingmod.PLOT}.png")
    if frames.get("tuned"):
        tunedmod.plot_slices(*frames["tuned"], folder / "plots" / f"{tunedmod.SLICES}.png")
    g = frames["g"]
    if not g.empty:
        csv = tables.comparison_csv(g, frames["keys"]).assign(**costs.csv_columns(g)).to_csv(index=False)
        store.atomic_write_text(folder / "comparison.csv", csv)
    # Both or neither: a full disk must not leave a new report.md beside an old report.html.
    store.atomic_write_together({folder / "report.md": render_md(blocks),
                                 folder / "report.html": render_html(blocks, folder)})
    return folder / "report.html"


def write_report(folder, say=None):
    """Write ``plots/*.png``, ``comparison.csv``, ``report.md`` and
    ``report.html`` into a sweep folder. Returns the path of ``report.html``.
    ``say`` hears a line for each run left out, and about old records."""
    blocks, frames = build(folder)
    _tell(folder, frames["loaded"], say)
    _check_writable(folder)
    return _write(folder, blocks, frames)


def _tell(folder, summary, say):
    """Lines for the user: runs left out, and runs read without a manifest."""
    if say is None:
        return
    for run_id, problem in summary.attrs.get("left_out", []):
        say(f"warning: {Path(folder) / 'runs' / run_id}: {problem}: left out of the report")
    if summary.attrs.get("unsealed"):
        say(f"note: {folder}: {summary.attrs['unsealed']} records (runs, or the sweep's own files) written before "
            f"manifests, read as they are; 'harness verify {folder} --seal' checks them and adds them")


def _check_writable(folder):
    """A report is written whole or not at all: refuse a folder it cannot write."""
    folder = Path(folder)
    for where in (folder, folder / "plots"):
        if where.is_dir() and not os.access(where, os.W_OK):
            raise ConfigError(f"{where}: cannot write the report here (read-only); copy the folder elsewhere "
                              "and report on the copy")


def compare(folders, out=None, allow_different_data=False, say=None):
    """One report putting the variants of several sweep folders side by side,
    the sweep (its folder name) as a setting. Sweeps trained on different
    data are refused unless ``allow_different_data``. Returns report.html."""
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise ConfigError("compare: give at least two sweep folders")
    out = Path(out) if out is not None else pooling.default_compare_out(folders)
    pooling.check_folders(folders, out)
    names = [f.name for f in folders]
    if len(set(names)) < len(names):
        names = [f"{f.parent.name}/{f.name}" for f in folders]
    summary, metrics, prints, dropped = pooling.load_all(folders, names, tell=lambda f, s: _tell(f, s, say))
    different = len(set().union(*prints.values())) > 1
    if different and not allow_different_data:
        raise ConfigError("compare: the sweeps were trained on different data ("
                          + "; ".join(f"{n}: {', '.join(sorted(p)) or '?'}" for n, p in prints.items())
                          + "); pass --allow-different-data to compare them anyway")
    store.refuse_links(out, depth=1)
    store.writable_folder(out, "comparison folder")
    _check_writable(out)
    where = dict(zip(names, folders))

    def run_dir(run_id):
        name, _, rid = run_id.rpartition("/")
        return layout.run_dir(where[name], rid)

    blocks, parts = build(out, summary, metrics, title=f"Comparison: {' vs '.join(names)}", run_dir=run_dir,
                          sources=folders)
    differ = pooling.settings_that_differ(summary, names)
    note = ("Sweeps compared: " + ", ".join(names) + ". The sweep is a setting of every variant. "
            + (f"{dropped} run{'s' if dropped > 1 else ''} appear{'' if dropped > 1 else 's'} in more than one "
               "of them (the same settings, seed and data, so the same run): each is counted once, under the "
               "first sweep given. " if dropped else "")
            + (f"Settings of the runs (defaults filled in) that differ between the sweeps: {'; '.join(differ)}. "
               if differ else "The runs' settings (defaults filled in) take the same values in every sweep. ")
            + ("**The sweeps were trained on different data** (allowed by --allow-different-data): "
               "their accuracies are not measured on the same rows." if different else
               "All runs were trained on the same data (same content fingerprint)."))
    blocks.insert(1, ("p", note))
    return _write(out, blocks, parts)
