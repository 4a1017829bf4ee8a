"""Labels, units and legibility of the report, on constructed frames: no
training, so these run in a second or two."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.grid import load_sweep
from harness.report import render, style, tables

from helpers import GRID, write_grid


def _summary(rows, seeds=(0, 1, 2)):
    """A summary.csv frame: one run per row and seed, accuracies fractions."""
    out = []
    for i, row in enumerate(rows):
        layers = row["layers"]
        hidden = layers.split("-")[1:-1]
        for s in seeds:
            out.append({"run_id": f"r{i}s{s}", "status": "done", "layers": layers, "depth": len(hidden),
                        "width": int(hidden[0]), "n_params": 1000, "flops_per_iter": 1e6,
                        "median_iter_seconds": 0.001 * (i + 1), "seed": s, "final_train_acc": 0.9,
                        "final_val_acc": row.get("acc", 0.9) + 0.001 * s, "optimizer": "adam", "lr": 0.001,
                        "iterations": 100, "epochs": 0, **{k: v for k, v in row.items() if k not in ("layers", "acc")}})
    return pd.DataFrame(out)


# --- labels ------------------------------------------------------------------------

def test_a_label_names_every_setting_that_varies_even_one_that_follows_from_another():
    # results/best's momentum variant: its lr and optimizer both differ; both must be named
    s = _summary([{"layers": "784-64-10"}, {"layers": "784-64-10", "optimizer": "momentum", "lr": 0.05}])
    assert set(tables.grouped(s).label) == {"784-64-10, lr 0.001, optimizer adam",
                                            "784-64-10, lr 0.05, optimizer momentum"}
    # a halving grid with lr as a [grid] axis: one lr per surviving architecture still names it
    s = _summary([{"layers": "784-64-10", "lr": 0.003}, {"layers": "784-32-10", "lr": 0.01}])
    assert set(tables.grouped(s).label) == {"784-64-10, lr 0.003", "784-32-10, lr 0.01"}


def test_a_label_leaves_out_what_only_restates_the_sweep_or_the_epochs():
    a = _summary([{"layers": "784-64-10"}]).assign(sweep="a")
    b = _summary([{"layers": "784-64-10", "iterations": 500, "lr": 0.01}]).assign(sweep="b")
    g = tables.grouped(pd.concat([a, b], ignore_index=True))
    # what is constant within each sweep the comparison names once, as settings that differ between them
    assert set(g.label) == {"784-64-10, sweep a", "784-64-10, sweep b"}
    b = b.assign(lr=[0.01, 0.01, 0.01] * 1)
    c = _summary([{"layers": "784-64-10", "iterations": 500, "lr": 0.1}]).assign(sweep="b", run_id=lambda d: "c" + d.run_id)
    g = tables.grouped(pd.concat([a, b, c], ignore_index=True))  # lr varies within sweep b: named everywhere
    assert set(g.label) == {"784-64-10, sweep a, lr 0.001", "784-64-10, sweep b, lr 0.01", "784-64-10, sweep b, lr 0.1"}
    s = _summary([{"layers": "784-64-10", "epochs": 2, "iterations": 844},
                  {"layers": "784-64-10", "epochs": 4, "iterations": 1688}])
    assert set(tables.grouped(s).label) == {"784-64-10, epochs 2", "784-64-10, epochs 4"}


# --- units ------------------------------------------------------------------------

def test_comparison_csv_says_its_unit_in_its_column_names():
    g = tables.with_ties(tables.grouped(_summary([{"layers": "784-64-10", "acc": 0.95},
                                                  {"layers": "784-32-10", "acc": 0.9}])))
    frame = tables.comparison_csv(g, ["layers"])
    assert {"val_acc_pct", "ci_low_pct", "ci_high_pct"} <= set(frame.columns)
    assert frame.val_acc_pct.iloc[0] == pytest.approx(95.1, abs=1e-9)
    assert not {"mean", "ci_low", "ci_high"} & set(frame.columns)


def test_the_end_of_sweep_table_shows_percent(capsys, tmp_path):
    from harness.progress import print_outcome

    s = _summary([{"layers": "784-64-10", "acc": 0.95}]).assign(final_train_acc=0.98)
    s.loc[0, "final_val_acc"] = math.nan
    print_outcome(s, tmp_path)
    out = capsys.readouterr().out
    assert "95.10%" in out and "98.00%" in out and "n/a" in out and "0.9510" not in out


# --- the width shape ----------------------------------------------------------------

def test_tapered_is_the_shape_and_the_old_word_still_works_with_a_note(tmp_path, tiny_csv):
    new = load_sweep(write_grid(tmp_path, tiny_csv, GRID.replace('"halving"]', '"tapered"]'), name="new.toml"))
    old = load_sweep(write_grid(tmp_path, tiny_csv, GRID, name="old.toml"))
    assert new.run_ids == old.run_ids  # the shape is no setting of a run: ids unchanged
    assert (16, 12, 6, 10) in {c.layers for c in new.runs}
    assert new.notes == () and len(old.notes) == 1
    assert '"halving" is now called "tapered"' in old.notes[0] and "old word still works" in old.notes[0]


def test_the_cli_prints_the_note(tmp_path, tiny_csv, capsys, monkeypatch):
    from harness import calibration
    from harness.cli import main
    from helpers import fake_model

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))  # a fake calibration, kept to this test
    monkeypatch.setattr(calibration, "calibrate", fake_model)

    grid = write_grid(tmp_path, tiny_csv)
    assert main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    assert 'note: ' in capsys.readouterr().err


# --- plots ------------------------------------------------------------------------

def test_an_accuracy_axis_leaves_out_a_far_outlier_and_names_it():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = [95.1, 95.3, 95.7, 95.9, 96.9, 97.0, 97.2, 97.4, 97.6, 97.8, 91.7]
    assert style.accuracy_floor(means) == 95.1
    assert style.accuracy_floor([95.1, 95.3, 96.0, 97.0, 97.5]) == 95.1  # no outlier: the lowest
    fig, ax = plt.subplots()
    ax.plot(range(len(means)), means, "o")
    lo = style.cap_percent(ax, [(i, m, f"v{i}") for i, m in enumerate(means)])
    assert 91.7 < lo < 95.1 and ax.get_ylim()[1] <= 100.2
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["v10: 91.70%, below the axis"]
    plt.close(fig)


@pytest.mark.parametrize("lo,hi", [(2.7e-4, 2.8e-4), (3e-4, 2e-2), (0.04, 30), (3e8, 2.5e9), (1, 1e5)])
def test_log_ticks_are_plain_and_distinct(lo, hi):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    style.log_ticks(ax.xaxis, style.si if lo > 1e6 else None or style._plain)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()
              and lo <= t.get_position()[0] <= hi]
    assert 2 <= len(labels) <= 9, labels
    assert len(set(labels)) == len(labels), labels  # "0.00027" twice would collide
    assert not any("times" in t or "^" in t or "×" in t for t in labels), labels
    plt.close(fig)


def test_markers_and_line_styles_never_repeat_within_their_lists():
    assert len(set(style.MARKERS)) == len(style.MARKERS)
    assert len(set(map(str, style.DASHES))) == len(style.DASHES)
    g = pd.DataFrame({"layers": ["784-32-10", "784-32-16-10", "784-32-32-10"], "depth": [1, 2, 2], "width": [32] * 3})
    s = style.styles(g)
    assert list(s["shape"]) == ["constant", "tapered", "constant"]
    assert list(s["style"]) == ["depth 1, constant", "depth 2, tapered", "depth 2, constant"]


# --- HTML ---------------------------------------------------------------------------

def test_html_tables_keep_layer_lists_and_intervals_on_one_line():
    frame = pd.DataFrame({"variant": ["784-512-512-512-10, lr 0.001", "784-64-10, sweep depth-width"],
                          "acc": ["97.77% [97.58, 97.97]", ""], "note": ["<b>", ""]})
    page = render.render_html([("h1", "t"), ("table", frame)], folder=None)
    assert '<span class="nw">784-512-512-512-10</span>, <span class="nw">lr 0.001</span>' in page
    assert '<span class="nw">97.77% [97.58, 97.97]</span>' in page
    assert '<span class="nw">784-64-10</span>, <span class="nw">sweep depth-width</span>' in page
    assert "&lt;b&gt;" in page and "<b>" not in page  # still escaped
    assert ".nw{white-space:nowrap}" in page


def test_the_halving_plot_names_the_configurations_that_finished(tmp_path):
    from harness.report import halving

    rows, metrics = [], []
    for k, (layers, lr, accs) in enumerate([("784-64-10", 0.001, [0.90, 0.95]), ("784-32-10", 0.01, [0.91, 0.93]),
                                            ("784-16-10", 0.1, [0.80])]):
        rows.append({"run_id": f"r{k}", "layers": layers, "lr": lr, "status": "done" if len(accs) == 2 else "stopped",
                     "seed": 0})
        metrics += [{"run_id": f"r{k}", "iteration": it, "val_acc": a} for it, a in zip((10, 30), accs)]
    summary, metrics = pd.DataFrame(rows), pd.DataFrame(metrics)
    data = halving.curves(summary, metrics, [10, 30])
    assert set(data.config) == {"784-64-10, lr 0.001", "784-32-10, lr 0.01", "784-16-10, lr 0.1"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {}
    real = style.save

    def keep(fig, path):
        seen["legend"] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        seen["title"] = fig.axes[0].get_title()
        return real(fig, path)
    import harness.report.style as st
    st.save, saved = keep, st.save
    try:
        halving.plot(summary, metrics, [10, 30], tmp_path / "h.png")
    finally:
        st.save = saved
    assert seen["title"] and seen["legend"][0].startswith("784-64-10, lr 0.001: 95.00%")
    assert "best at the last rung" in seen["legend"][0].replace("\n", " ")
    assert seen["legend"][1].startswith("784-32-10, lr 0.01: 93.00%") and seen["legend"][-1] == "stopped at a rung"
    plt.close("all")


@pytest.mark.parametrize("top", [0.97, 1.0])
def test_learning_curves_and_budgets_plot_any_accuracy_without_a_warning(tmp_path, top):
    import warnings

    from harness.report import curves, plots

    g = tables.grouped(_summary([{"layers": "16-8-10"}, {"layers": "16-8-4-10"}], seeds=(0, 1)))
    rows = [{"run_id": r, "iteration": it, "train_loss": 1.0 / it, "train_acc": 0.5, "iter_seconds": 0.01,
             "val_acc": (top if it == 30 else 0.4 + 0.01 * it) if it % 10 == 0 else None}
            for r in g.run_ids.sum() for it in range(1, 31)]
    metrics = pd.DataFrame(rows)
    plots.setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curves.plot_learning_curves(g, metrics, tmp_path / "curves.png")
        curves.plot_budget(g, metrics, 0.9, [0.1, 0.2], tmp_path / "budget.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and (tmp_path / "budget.png").stat().st_size > 10_000
