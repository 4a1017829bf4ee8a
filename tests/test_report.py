import json

import numpy as np
import pandas as pd
import pytest

from harness import mlp
from harness.cli import main
from harness.report import PLOTS, pareto

from helpers import GRID, check_pngs, sweep_without_report, write_grid


@pytest.mark.slow
def test_sweep_writes_every_plot_and_both_reports(tmp_path, tiny_csv):
    grid = write_grid(tmp_path, tiny_csv)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    root = tmp_path / "out" / "tiny"
    check_pngs(root)
    md = (root / "report.md").read_text()
    assert "## Variants, over seeds" in md and "## Verdict" in md and "**Best:**" in md
    assert md.count("| variant | n | validation acc [95% CI] | vs best: class, points [95% CI] | p vs best (Holm) |") == 1
    summary = pd.read_csv(root / "summary.csv")
    for (layers, iterations), _ in summary.groupby(["layers", "iterations"]):
        assert f"| {layers}, iterations {iterations} |" in md  # it follows from the layers, but varies: shown
    assert "## Best variant for each time budget" in md and "## Environment" in md and "## Equal budgets" in md
    assert "225 training rows, 75 validation rows" in md
    assert "## Runs that did not finish as done\n\nNone." in md  # every run here is done
    comparison = pd.read_csv(root / "comparison.csv")
    assert list(comparison.columns) == ["variant", "layers", "iterations", "n", "val_acc_pct", "ci_low_pct",
                                        "ci_high_pct", "diff_pct", "diff_low_pct", "diff_high_pct", "p_vs_best", "decision",
                                        "params", "param_bytes",
                                        "flops_per_iter", "train_flops", "train_seconds", "seconds_to_target",
                                        "latency_batch1_s", "latency_batch1024_s"]
    assert (comparison.param_bytes == 4 * comparison.params).all()  # float32
    assert (comparison.train_flops == comparison.flops_per_iter * comparison.iterations).all()  # all ran to the end
    assert (comparison.latency_batch1_s > 0).all() and (root / "latency.csv").is_file()
    stored = (root / "latency.csv").read_bytes()
    assert len(comparison) == summary.groupby(["layers", "iterations"]).ngroups and (comparison.n == 2).all()
    assert comparison.val_acc_pct.between(0, 100).all() and (comparison.ci_low_pct <= comparison.val_acc_pct).all()
    assert "[[include]]" in md  # the settings, verbatim
    html = (root / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(PLOTS)
    assert "src=\"http" not in html and "<link" not in html  # self-contained
    assert html.count("<table") == sum(line.startswith("|---") for line in md.splitlines())

    # regenerated from the CSV files alone: parameters are not needed
    for p in root.glob("runs/*/params.npz"):
        p.unlink()
    for p in list(root.glob("plots/*.png")) + [root / "report.md", root / "report.html"]:
        p.unlink()
    assert main(["report", str(root)]) == 0
    check_pngs(root)
    assert (root / "report.md").read_text() == md
    assert (root / "latency.csv").read_bytes() == stored  # measured once, not again for the same sweep


@pytest.mark.slow
def test_report_on_partial_sweep_with_failed_and_diverged_runs(tmp_path, tiny_csv, monkeypatch):
    text = GRID.replace('shape = ["constant", "halving"]', "lr = [0.5, 1e7]").replace("seeds = [0, 1]", "seeds = [0]")
    grid = write_grid(tmp_path, tiny_csv, text=text, jobs=1)
    real = mlp.forward_backward

    def flaky(params, X, *a, **kw):
        if [W.shape[1] for W, _ in params] == [12, 12, 10]:
            raise FloatingPointError("simulated fault")
        return real(params, X, *a, **kw)

    monkeypatch.setattr(mlp, "forward_backward", flaky)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    root = tmp_path / "out" / "tiny"
    # and a run missing altogether
    summary = pd.read_csv(root / "summary.csv")
    keep = summary[summary.layers != "16-8-8-10"]
    keep.to_csv(root / "summary.csv", index=False)
    assert main(["report", str(root)]) == 2  # edited: no longer matches its checksum
    (root / "summary.csv.sha256").unlink()  # owned up to: read as it is
    assert main(["report", str(root)]) == 0
    check_pngs(root)
    md = (root / "report.md").read_text()
    section = md.split("## Runs that did not finish as done")[1].split("##")[0]
    assert section.count("| failed | FloatingPointError: simulated fault |") == 2
    assert "| diverged | loss " in section and "over 100x the first loss" in section


def test_report_on_missing_or_empty_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no summary.csv" in capsys.readouterr().err
    (tmp_path / "empty" / "summary.csv").write_text("")
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no runs recorded yet" in capsys.readouterr().err


def _fake_article_sweep(root):
    """A results folder shaped like experiments/article.toml's, written directly:
    the report reads only files, so this exercises the article section."""
    rows = []
    for run_id, layers, iters, train_acc, val_acc, sec in (("aaa", "784-10-10", 1000, 0.8808, 0.8835, 0.1),
                                                          ("bbb", "784-256-128-64-10", 500, 0.966, 0.9544, 0.7)):
        run = root / "runs" / run_id
        run.mkdir(parents=True)
        it = np.arange(1, iters + 1)
        pd.DataFrame({"iteration": it, "train_loss": 2 / it, "train_acc": train_acc * (1 - 1 / (it + 1)),
                      "val_acc": np.where(it % 10 == 0, val_acc, np.nan), "iter_seconds": sec,
                      "elapsed_seconds": it * sec}).to_csv(run / "metrics.csv", index=False)
        (run / "config.json").write_text(json.dumps({"cpu": "Test CPU", "cores": 2, "numpy": "x", "threads": 2}))
        rows.append({"run_id": run_id, "status": "done", "layers": layers, "depth": layers.count("-") - 1,
                     "width": int(layers.split("-")[1]), "n_params": mlp.n_params([int(n) for n in layers.split("-")]),
                     "flops_per_iter": mlp.flops_per_iter([int(n) for n in layers.split("-")], 33600),
                     "iterations": iters, "lr": 0.1, "optimizer": "gd", "batch_size": 0, "init": "article",
                     "dtype": "float64", "validation": "test", "seed": 0, "final_train_acc": train_acc,
                     "final_val_acc": val_acc, "best_val_acc": val_acc, "final_train_loss": 0.1,
                     "median_iter_seconds": sec, "total_seconds": sec * iters, "iterations_run": iters, "reason": ""})
    pd.DataFrame(rows).to_csv(root / "summary.csv", index=False)
    (root / "sweep.toml").write_text("[sweep]\nname = 'article'\n")


@pytest.mark.slow
def test_article_section(tmp_path):
    root = tmp_path / "article"
    _fake_article_sweep(root)
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    section = md.split("## Article vs this run")[1].split("\n## ")[0]
    assert "| 784-10-10 | 1000 | ~88% | 88.08% | 88.35% |" in section
    assert "| 784-256-128-64-10 | 500 | ~97% | 96.60% | 95.44% |" in section
    assert "**7.0×**" in section and "training accuracy only" in section
    assert "test data" in md  # the validation = test warning
    check_pngs(root)


def test_pareto_front():
    pts = pd.DataFrame({"s_per_iter": [1, 2, 3, 4, 5], "val_acc": [0.9, 0.85, 0.95, 0.94, 0.97]})
    assert list(pareto(pts).index) == [0, 2, 4]


@pytest.mark.slow
def test_report_ranks_by_validation_and_shows_held_out_test_accuracy(tmp_path, tiny_idx):
    grid = tmp_path / "g.toml"
    grid.write_text(f"[sweep]\nname = 'held'\nseeds = [0, 1]\n[data]\npath = '{tiny_idx}'\nvalidation = 0.25\n"
                    "[train]\niterations = 40\neval_every = 10\nlr = 0.5\n[grid]\nlayers = [[16, 10], [16, 12, 10]]\n")
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    root = tmp_path / "out" / "held"
    summary = pd.read_csv(root / "summary.csv")
    assert summary.test_acc.between(0, 1).all()
    md = (root / "report.md").read_text()
    assert "| validation acc [95% CI] | vs best: class, points [95% CI] | p vs best (Holm) | test acc (held out) | train acc |" in md
    assert "evaluated on it once" in md and "choice made on test data" not in md
    table = md.split("## Variants, over seeds")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| 16-")]
    vals = [float(r.split("|")[3].split("%")[0]) for r in rows]
    assert vals == sorted(vals, reverse=True)  # ranked by validation accuracy


@pytest.mark.slow
def test_compare_puts_two_sweeps_side_by_side_and_refuses_different_data(tmp_path, tiny_csv, tiny_idx, capsys):
    small = GRID.replace("depth = [1, 2]\nwidth = [8, 12]\nshape = [\"constant\", \"halving\"]\n", "layers = [[16, 8, 10]]\n")
    roots = []
    for name, lr in (("a", 0.5), ("b", 0.2)):
        text = small.replace('name = "tiny"', f'name = "{name}"').replace("lr = 0.5", f"lr = {lr}")
        if name == "b":  # defaults written out in one grid file only: no difference between the runs
            text = text.replace("[train]\n", '[train]\nactivation = "relu"\ninit = "he"\n')
        grid = write_grid(tmp_path, tiny_csv, text=text, name=f"{name}.toml")
        assert sweep_without_report(grid, tmp_path / "out") == 0  # compare reads the runs, not the sweeps' reports
        roots.append(tmp_path / "out" / name)
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, roots), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "# Comparison: a vs b" in md
    assert "Settings of the runs (defaults filled in) that differ between the sweeps: lr (a: 0.5; b: 0.2). " in md
    assert "activation" not in md.split("## Verdict")[0] and "init" not in md.split("## Verdict")[0]
    assert "same data" in md and "more than one of them" not in md
    comparison = pd.read_csv(out / "comparison.csv")
    assert "sweep" in comparison.columns and set(comparison.sweep) == {"a", "b"}
    check_pngs(out)

    other = tmp_path / "g.toml"
    other.write_text(f"[sweep]\nname = 'c'\n[data]\npath = '{tiny_idx}'\nvalidation = 0.25\n"
                     "[train]\niterations = 20\n[grid]\nlayers = [[16, 8, 10]]\n")
    assert sweep_without_report(other, tmp_path / "out") == 0
    capsys.readouterr()
    assert main(["compare", str(roots[0]), str(tmp_path / "out" / "c"), "--out", str(tmp_path / "cmp2")]) == 2
    assert "trained on different data" in capsys.readouterr().err
    assert main(["compare", str(roots[0]), str(tmp_path / "out" / "c"), "--out", str(tmp_path / "cmp2"),
                 "--allow-different-data"]) == 0
    assert "**The sweeps were trained on different data**" in (tmp_path / "cmp2" / "report.md").read_text()


@pytest.mark.slow
def test_report_target_comes_from_the_grid_file(tmp_path, tiny_csv, capsys):
    grid = write_grid(tmp_path, tiny_csv, text=GRID + "\n[report]\ntarget = 1.5\n")
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "[report] target: must be a fraction" in capsys.readouterr().err
    grid = write_grid(tmp_path, tiny_csv, text=GRID.replace("seeds = [0, 1]", "seeds = [0]") + "\n[report]\ntarget = 0.3\n")
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "first reach 30% validation accuracy" in (tmp_path / "out" / "tiny" / "report.md").read_text()


@pytest.mark.slow
def test_a_grid_varying_momentum_gives_one_variant_per_value(tmp_path, tiny_csv):
    text = GRID.replace('shape = ["constant", "halving"]', 'momentum = [0.5, 0.9]').replace(
        "depth = [1, 2]\nwidth = [8, 12]\n", "layers = [[16, 8, 10]]\n").replace(
        "[train]\n", '[train]\noptimizer = "momentum"\n').split("[[include]]")[0]
    grid = write_grid(tmp_path, tiny_csv, text=text)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    comparison = pd.read_csv(tmp_path / "out" / "tiny" / "comparison.csv")
    assert sorted(comparison.momentum) == [0.5, 0.9] and list(comparison.n) == [2, 2]
    assert set(comparison.variant) == {"16-8-10, momentum 0.5", "16-8-10, momentum 0.9"}


@pytest.mark.slow
def test_a_sweep_rewrites_a_partial_report_that_reloads_until_the_final_one(tmp_path, tiny_csv, monkeypatch):
    import harness.report
    from harness import executor

    monkeypatch.setattr(executor, "LIVE_REPORT_SECONDS", 0)
    monkeypatch.setattr(executor, "POLL_SECONDS", 0.05)
    real, seen = harness.report.write_report, []

    def spy(folder, **kw):
        path = real(folder, **kw)
        seen.append((len(pd.read_csv(folder / "summary.csv")), path.read_text()))
        return path
    monkeypatch.setattr(harness.report, "write_report", spy)
    grid = write_grid(tmp_path, tiny_csv, jobs=1)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    partial, final = seen[:-1], seen[-1]
    assert partial, "no live report was written"
    for n, page in partial:
        assert 0 < n < 14 and "<strong>Partial:</strong>" in page
        assert '<meta http-equiv="refresh" content="60">' in page
        # every planned run counted, the unfinished ones too; the runs in flight are no strays
        assert "<p>14 runs: " in page and f"; this report holds the {n} recorded in summary.csv." in page
        assert " waiting" in page.split("<p>14 runs: ")[1].split("</p>")[0]
        assert "not in this grid" not in page
    assert final[0] == 14 and "Partial" not in final[1] and "http-equiv" not in final[1]


@pytest.mark.slow
def test_compare_counts_each_run_once_and_writes_beside_the_sweeps(tmp_path, tiny_csv, capsys, monkeypatch):
    import shutil

    small = GRID.replace("depth = [1, 2]\nwidth = [8, 12]\nshape = [\"constant\", \"halving\"]\n", "layers = [[16, 8, 10]]\n")
    grid = write_grid(tmp_path, tiny_csv, text=small.replace('name = "tiny"', 'name = "a"'), name="a.toml")
    assert sweep_without_report(grid, tmp_path / "out") == 0  # compare reads the runs, not the sweeps' reports
    root = tmp_path / "out" / "a"
    capsys.readouterr()

    # one folder given twice, or as the report's own folder: one line, exit 2, nothing written
    for argv in ([str(root), str(root)], [str(root), str(tmp_path / "out" / ".." / "out" / "a")],
                 [str(root), str(tmp_path / "x"), "--out", str(root)]):
        assert main(["compare", *argv, "--out", str(tmp_path / "twice")] if "--out" not in argv
                    else ["compare", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("is given twice" in err or "is one of the sweeps compared" in err), err
    assert not (tmp_path / "twice").exists()

    # the same runs under another folder of the same sweep name: counted once, and the report says so
    shutil.copytree(root, tmp_path / "copy" / "a")
    out = tmp_path / "cmp"
    assert main(["compare", str(root), str(tmp_path / "copy" / "a"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "4 runs appear in more than one of them" in md and "counted once, under the first sweep given" in md
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison.n) == [2, 2]  # not n = 4: copy/a adds nothing

    # without --out: beside the sweeps compared, not under the working directory's results/
    other = write_grid(tmp_path, tiny_csv, text=small.replace('name = "tiny"', 'name = "b"')
                       .replace("lr = 0.5", "lr = 0.2"), name="b.toml")
    assert sweep_without_report(other, tmp_path / "out") == 0
    monkeypatch.chdir(tmp_path / "copy")
    assert main(["compare", str(root), str(tmp_path / "out" / "b")]) == 0
    assert (tmp_path / "out" / "compare-a-vs-b" / "report.md").is_file()
    assert not (tmp_path / "copy" / "results").exists()
