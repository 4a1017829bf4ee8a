import json
import os

import pandas as pd
import pytest

from harness import mlp
from harness.cli import main
from harness.grid import load_sweep

from helpers import GRID, NUMBERS, sweep_without_report, write_grid


def sweep(grid, out, *flags):
    return main(["sweep", str(grid), "--out", str(out), "--quiet", *flags])


def test_dry_run_counts_and_writes_nothing(tmp_path, tiny_csv, capsys):
    grid = write_grid(tmp_path, tiny_csv)
    assert main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    # depth x width x shape = 8 layer lists, but depth 1 constant == depth 1 halving: 6 distinct,
    # plus the include; all times 2 seeds
    assert out.startswith("14 runs in sweep 'tiny'")
    assert "16-12-6-10" in out and "16-10" in out
    assert f"results: {(tmp_path / 'out' / 'tiny').resolve()}" in out
    assert "0 already finished there (kept; --force retrains them), 14 to train" in out
    assert len(out.strip().splitlines()) == 4 + 14 + 1 and out.count("to train") == 15
    assert not (tmp_path / "out").exists()
    s = load_sweep(grid)
    assert len(s.runs) == 14 and len(set(s.run_ids)) == 14
    assert {r.layers for r in s.runs} == {(16, 8, 10), (16, 12, 10), (16, 8, 8, 10), (16, 8, 4, 10),
                                           (16, 12, 12, 10), (16, 12, 6, 10), (16, 10)}
    assert {r.seed for r in s.runs} == {0, 1}
    assert [r.iterations for r in s.runs if r.layers == (16, 10)] == [40, 40]


@pytest.mark.slow
def test_sweep_writes_results_and_resumes(tmp_path, tiny_csv, capsys):
    grid = write_grid(tmp_path, tiny_csv)
    out = tmp_path / "results"
    assert sweep(grid, out) == 0
    root = out / "tiny"
    assert (root / "sweep.toml").read_text() == grid.read_text()
    summary = pd.read_csv(root / "summary.csv")
    assert len(summary) == 14 and set(summary.status) == {"done"}
    for col in ["run_id", "status", "layers", "depth", "width", "n_params", "flops_per_iter", "lr", "optimizer",
                "seed", "final_train_acc", "final_val_acc", "best_val_acc", "final_train_loss",
                "median_iter_seconds", "total_seconds"]:
        assert col in summary.columns
    row = summary[summary.layers == "16-12-6-10"].iloc[0]
    assert row.depth == 2 and row.width == 12 and row.n_params == mlp.n_params([16, 12, 6, 10])
    assert summary.final_val_acc.between(0, 1).all() and summary.final_val_acc.max() > 0.8
    for run_id in summary.run_id:
        files = {p.name for p in (root / "runs" / run_id).iterdir()}
        assert files == {"config.json", "confusion.csv", "metrics.csv", "params.npz", "status.json"}
        conf = json.loads((root / "runs" / run_id / "config.json").read_text())
        assert conf["threads"] == 1 and conf["blas_threads"] == 1 and conf["pid"] != os.getpid()

    # Simulate a kill: one run lost its completion marker mid-way.
    victim = summary.run_id.iloc[3]
    (root / "runs" / victim / "status.json").unlink()
    with open(root / "runs" / victim / "metrics.csv", "a") as f:
        f.write("999,1,1,,1,1\n")
    before = {r: (root / "runs" / r / "metrics.csv").read_bytes() for r in summary.run_id if r != victim}
    capsys.readouterr()
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    assert "13 of 14 runs already finished" in capsys.readouterr().err
    after = {r: (root / "runs" / r / "metrics.csv").read_bytes() for r in summary.run_id if r != victim}
    assert before == after
    redone = pd.read_csv(root / "runs" / victim / "metrics.csv")
    assert list(redone.iteration) == list(range(1, len(redone) + 1))
    again = pd.read_csv(root / "summary.csv")
    pd.testing.assert_frame_equal(again[NUMBERS + ["run_id"]], summary[NUMBERS + ["run_id"]])

    # A complete sweep trains nothing; --force retrains everything.
    mtimes = {r: (root / "runs" / r / "status.json").stat().st_mtime_ns for r in summary.run_id}
    assert sweep(grid, out) == 0
    assert mtimes == {r: (root / "runs" / r / "status.json").stat().st_mtime_ns for r in summary.run_id}
    assert sweep_without_report(grid, out, force=True) == 0  # its runs alone are read
    assert all((root / "runs" / r / "status.json").stat().st_mtime_ns != mtimes[r] for r in summary.run_id)


@pytest.mark.slow
def test_jobs_1_and_jobs_2_give_identical_numbers(tmp_path, tiny_csv):
    results = []
    for jobs in (1, 2):
        grid = write_grid(tmp_path, tiny_csv, name=f"g{jobs}.toml", jobs=jobs)
        # one report (its exit status) is enough; the other's nobody reads
        assert (sweep(grid, tmp_path / "out1") if jobs == 1 else sweep_without_report(grid, tmp_path / "out2")) == 0
        results.append(pd.read_csv(tmp_path / f"out{jobs}" / "tiny" / "summary.csv"))
    a, b = (r.sort_values("run_id").reset_index(drop=True) for r in results)
    pd.testing.assert_frame_equal(a[["run_id"] + NUMBERS], b[["run_id"] + NUMBERS])


@pytest.mark.slow
def test_divergence_and_failure_are_recorded(tmp_path, tiny_csv, monkeypatch, capsys):
    text = GRID.replace('shape = ["constant", "halving"]', "lr = [0.5, 1e7]").replace("seeds = [0, 1]", "seeds = [0]")
    grid = write_grid(tmp_path, tiny_csv, text=text, jobs=1)
    real = mlp.forward_backward

    def flaky(params, X, *a, **kw):  # the depth-2 width-12 network raises
        if [W.shape[1] for W, _ in params] == [12, 12, 10]:
            raise FloatingPointError("simulated fault")
        return real(params, X, *a, **kw)

    monkeypatch.setattr(mlp, "forward_backward", flaky)  # jobs = 1 runs in this process
    assert sweep(grid, tmp_path / "out") == 1
    err = capsys.readouterr().err
    summary = pd.read_csv(tmp_path / "out" / "tiny" / "summary.csv")
    assert len(summary) == 9  # 4 architectures x 2 lr + the include
    failed = summary[summary.status == "failed"]
    assert list(failed.layers) == ["16-12-12-10", "16-12-12-10"]
    assert (failed.reason == "FloatingPointError: simulated fault").all()
    for run_id in failed.run_id:
        assert "simulated fault" in (tmp_path / "out" / "tiny" / "runs" / run_id / "error.txt").read_text()
        assert run_id in err
    diverged = summary[summary.status == "diverged"]
    assert set(diverged.lr) == {1e7} and len(diverged) >= 3
    assert (summary[summary.lr == 0.5].status != "diverged").all()


def doc(sweep="", data="", train="", grid="layers = [[16, 10]]", extra=""):
    """A grid file with one bad part; DATA is replaced by the test's CSV."""
    return (f"[sweep]\nname = 'bad'\n{sweep}\n[data]\npath = 'DATA'\nvalidation = 0.25\n{data}\n"
            f"[train]\n{train}\n[grid]\n{grid}\n{extra}\n")


BAD = [
    (doc(sweep="jobz = 2"), "[sweep]: unknown key 'jobz'; did you mean 'jobs'?"),
    (doc(extra="[trian]"), "unknown key 'trian'; did you mean 'train'?"),
    (doc(train="learning_rate = 0.1"), "[train]: unknown key 'learning_rate'"),
    (doc(train="seed = 3"), "seeds are set by [sweep] seeds"),
    (doc(train="iterations = 'many'"), "[train]: iterations must be an integer, got a string 'many'"),
    (doc(train="lr = -0.1"), "lr = -0.1 must be positive"),
    (doc(train="iterations = 0"), "iterations = 0 must be positive"),
    (doc(train="optimizer = 'adamw'"), "optimizer = 'adamw' is not one of gd, sgd, momentum, adam; did you mean 'adam'?"),
    (doc(train="activation = 'gelu'"), "activation = 'gelu' is not one of"),
    (doc(train="init = 'glorot'"), "init = 'glorot' is not one of"),
    (doc(train="dtype = 'float16'"), "dtype = 'float16' is not one of"),
    (doc(grid="layers = [[16, 10]]\nlr = []"), "[grid] lr: empty axis"),
    (doc(grid="layers = [[16, 10]]\nlr = [0.1, 'x']"), "[grid] lr: lr must be a number"),
    (doc(grid="layers = [[16, 10]]\nlr = [0.1, 0]"), "lr = 0.0 must be positive"),
    (doc(grid="depth = [1]\nwidth = [0]"), "[grid] width: 0 must be at least 1"),
    (doc(grid="depth = [1]"), "given without width"),
    (doc(grid="lr = [0.1]"), "no architecture; set [train] layers"),
    (doc(grid="layers = [[784, 10, 10]]"), "layers 784-10-10 start at 784, but the data has 16 features"),
    (doc(grid="layers = [[16, 10, 3]]"), "end at 3, but the data has 10 classes"),
    (doc(grid="layers = [16, 10]"), "an axis is a list of layer lists; for this one architecture write layers = [[16, 10]]"),
    (doc(data="dataset = 'cifar'").replace("path = 'DATA'\n", ""), "unknown dataset 'cifar'"),
    (doc().replace("path = 'DATA'", "path = 'missing.csv'"), "missing.csv: no such"),
    (doc(sweep="backend = 'ray'"), "backend: 'ray' is not one of loky, dask"),
    (doc(sweep="seeds = []"), "seeds: empty axis"),
    (doc(sweep="jobs = 0"), "jobs: must be a positive integer or -1"),
    (doc(train="lr = 0.1\nlr = 0.2"), "invalid TOML"),
    (doc(extra="[oops"), "(at line 12, column 6)"),
]


@pytest.mark.parametrize("text,message", BAD)
@pytest.mark.slow
def test_bad_grid_is_one_clear_line(tmp_path, tiny_csv, capsys, text, message):
    grid = tmp_path / "bad.toml"
    grid.write_text(text.replace("DATA", tiny_csv.name))
    code = main(["sweep", str(grid), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert "bad.toml" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_missing_grid_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such grid file" in capsys.readouterr().err


def test_a_backend_fault_fails_only_the_runs_it_cut_short(tmp_path):
    from harness import store
    from harness.executor import fail_lost_runs

    runs = tmp_path / "runs"
    for run_id in ("cut", "finished"):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "config.json").write_text("{}")
    store.write_status(runs / "finished", {"status": "done", "run_id": "finished"})
    pending = [("cut", None), ("finished", None), ("queued", None)]
    recorded = []
    left = fail_lost_runs(pending, tmp_path, OSError("connection closed"), recorded.append)
    assert left == [("queued", None)]
    assert [r["run_id"] for r in recorded] == ["cut"]
    assert store.read_status(runs / "cut")["reason"] == "worker lost: OSError: connection closed"
    with pytest.raises(OSError, match="not a worker's"):  # nothing cut short: the fault is the sweep's own
        fail_lost_runs([("queued", None)], tmp_path, OSError("not a worker's"), recorded.append)


@pytest.mark.slow
def test_dry_run_counts_what_is_already_finished_and_writes_nothing(tmp_path, tiny_csv, capsys):
    grid = write_grid(tmp_path, tiny_csv, text=GRID.replace("seeds = [0, 1]", "seeds = [0]"))
    assert sweep(grid, tmp_path / "out") == 0
    root = tmp_path / "out" / "tiny"
    first = sorted((root / "runs").iterdir())[0]
    (first / "status.json").unlink()  # as if killed mid-run
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    capsys.readouterr()
    assert main(["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "6 already finished there (kept; --force retrains them), 1 to train" in out
    assert sum(line.rstrip().endswith(" finished") for line in out.splitlines()) == 6  # table rows, no estimate
    assert "estimates refined by 6 finished runs" in out
    assert main(["sweep", str(grid), "--dry-run", "--force", "--out", str(tmp_path / "out")]) == 0
    assert "6 already finished there, retrained (--force): 7 to train" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before  # nothing written
