"""A real dask.distributed cluster on loopback: a scheduler and two separate
worker processes. The sweep must train in those processes and give the same
numbers as a local run."""
import json
import os

import pandas as pd
import pytest

from harness.cli import main

from helpers import NUMBERS, sweep_without_report, write_grid

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        with distributed.Client(c) as client:
            pids = set(client.run(os.getpid).values())
        yield c.scheduler_address, pids


@pytest.mark.slow
def test_sweep_on_a_dask_cluster_matches_local(tmp_path, tiny_csv, cluster):
    address, worker_pids = cluster
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    grid = write_grid(tmp_path, tiny_csv)
    assert sweep_without_report(grid, tmp_path / "local") == 0  # compared by its numbers alone
    assert main(["sweep", str(grid), "--out", str(tmp_path / "dask"), "--quiet", "--scheduler", address]) == 0

    local = pd.read_csv(tmp_path / "local" / "tiny" / "summary.csv").sort_values("run_id").reset_index(drop=True)
    remote = pd.read_csv(tmp_path / "dask" / "tiny" / "summary.csv").sort_values("run_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(local[["run_id"] + NUMBERS], remote[["run_id"] + NUMBERS])
    used = set()
    for run_id in remote.run_id:
        conf = json.loads((tmp_path / "dask" / "tiny" / "runs" / run_id / "config.json").read_text())
        used.add(conf["pid"])
    assert used <= worker_pids and len(used) == 2


@pytest.mark.slow
def test_a_tuned_sweep_on_dask_matches_local(tmp_path, tiny_csv, cluster):
    from helpers import TUNED

    address, _ = cluster
    grid = write_grid(tmp_path, tiny_csv, text=TUNED)
    assert sweep_without_report(grid, tmp_path / "local") == 0  # compared by its numbers alone
    assert main(["sweep", str(grid), "--out", str(tmp_path / "dask"), "--quiet", "--scheduler", address]) == 0
    local, remote = (pd.read_csv(tmp_path / where / "tuned" / "tuned.csv") for where in ("local", "dask"))
    pd.testing.assert_frame_equal(local, remote)


@pytest.mark.slow
def test_dry_run_on_dask_counts_the_clusters_workers(tmp_path, tiny_csv, cluster, capsys):
    from harness import backend

    address, _ = cluster
    grid = write_grid(tmp_path, tiny_csv, jobs=1)
    backend._announced.clear()  # named once per process: earlier tests connected to it
    assert main(["sweep", str(grid), "--dry-run", "--probe", "--scheduler", address]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1].endswith(" s with 2 workers")
    assert f"dask: connecting to the scheduler at {address}\n" in captured.err
    assert main(["sweep", str(grid), "--dry-run", "--probe", "--scheduler", "tcp://127.0.0.1:9"]) == 0
    captured = capsys.readouterr()
    assert "not reachable: estimating for 1 worker\n" in captured.err
    assert captured.out.strip().splitlines()[-1].endswith(" s with 1 worker")


@pytest.mark.slow
def test_a_halving_sweep_on_dask_decides_as_locally(tmp_path, tiny_csv, cluster):
    from helpers import HALVING_NINE

    address, _ = cluster
    grid = tmp_path / "h.toml"
    grid.write_text(HALVING_NINE.format(jobs=2, data=tiny_csv.name))
    assert sweep_without_report(grid, tmp_path / "local") == 0  # compared by its decisions alone
    assert main(["sweep", str(grid), "--out", str(tmp_path / "dask"), "--quiet", "--scheduler", address]) == 0
    cols = ["run_id", "status", "iterations_run", "rung", "final_val_acc"]
    local, remote = (pd.read_csv(tmp_path / where / "halves" / "summary.csv")[cols] for where in ("local", "dask"))
    pd.testing.assert_frame_equal(local, remote)
