"""Dask without a shared disk: the sweep (the client) is the only writer,
attempts carry tokens, a grid file alone never picks a network peer. The
fault tests start a real ``dask scheduler`` and ``dask worker`` processes
and kill -9 them (tests/dask_procs.py)."""
import json
import os
import pickle
import re
import socket
import time
from pathlib import Path

import pytest
from dask_procs import Cluster, can_hide, numbers, sweep, write_grid
from helpers import sweep_without_report

from harness.cli import main
from harness.sweep_status import progress

distributed = pytest.importorskip("dask.distributed")


def _grid(tmp_path, sweep_lines):
    (tmp_path / "d.csv").write_text("label,a,b\n" + "".join(f"{i % 2},{i},{i % 3}\n" for i in range(40)))
    grid = tmp_path / "g.toml"
    grid.write_text(f'[sweep]\nname = "g"\n{sweep_lines}\n[data]\npath = "d.csv"\nvalidation = 0.25\n'
                    "[train]\nlayers = [2, 2]\niterations = 5\n")
    return grid


def test_a_grid_files_scheduler_needs_backend_dask(tmp_path, capsys):
    grid = _grid(tmp_path, 'scheduler = "tcp://127.0.0.1:9"')
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'scheduler: used only with backend = "dask" set as well' in err[0]


def test_a_dry_run_contacts_no_scheduler_and_says_what_it_ships(tmp_path, capsys, monkeypatch):
    from helpers import fake_model

    from harness import calibration

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(calibration, "calibrate", fake_model)  # the estimate needs no measured machine here
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        grid = _grid(tmp_path, f'backend = "dask"\nscheduler = "tcp://127.0.0.1:{port}"')
        assert main(["sweep", str(grid), "--dry-run"]) == 0
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody knocked
    captured = capsys.readouterr()
    assert "a dry run does not contact the scheduler" in captured.err and "connecting" not in captured.err
    size = (tmp_path / "d.csv").stat().st_size
    assert f"dask: d.csv ({size:,} bytes) is sent once to every worker" in captured.out


def test_dask_security_settings_pass_through(tmp_path, capsys, monkeypatch):
    """dask.config's security settings reach the client: requiring
    encryption refuses a plain tcp:// scheduler, in one line."""
    import dask
    from helpers import fake_model

    from harness import calibration

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(calibration, "calibrate", fake_model)

    grid = _grid(tmp_path, 'backend = "dask"\nscheduler = "tcp://127.0.0.1:9"')
    with dask.config.set({"distributed.comm.require-encryption": True}):
        assert main(["sweep", str(grid), "--out", str(tmp_path / "o")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness: error")]
    assert len(err) == 1 and "cannot connect to the dask scheduler" in err[0] and "encrypt" in err[0].lower()


def test_a_shipped_dataset_is_checked_by_its_hash_on_the_worker(tmp_path, tiny_idx):
    from harness.data import read_source
    from harness.errors import DataError
    from harness.remote import pack_data, unpack_data

    shipment, files = pack_data(tiny_idx)
    here = unpack_data(shipment, files, tmp_path / "worker")
    assert here != tiny_idx and read_source(path=str(here)).fingerprint == read_source(path=str(tiny_idx)).fingerprint
    name = min(files)
    with pytest.raises(DataError, match="arrived with SHA-256"):
        unpack_data(shipment, {**files, name: files[name] + b"x"}, tmp_path / "other")


class _Queue:
    def __init__(self, messages):
        self.messages = messages

    def get(self, batch, timeout):
        messages, self.messages = self.messages, []
        return messages


def test_a_message_from_an_attempt_not_expected_is_dropped_in_one_line(tmp_path):
    from harness.remote_runs import RemoteRuns

    said = []
    runs = object.__new__(RemoteRuns)
    runs.out, runs.say, runs.expected, runs.ended, runs.dropped = tmp_path, said.append, {"r1": "new"}, set(), set()
    runs.shipped, runs.started, runs.client = {"rows": 0}, set(), None
    runs.queue = _Queue([{"token": "old", "run_id": "r1", "kind": "rows", "offset": 0, "data": b"stale\n"},
                         {"token": "old", "run_id": "r1", "kind": "rows", "offset": 6, "data": b"more\n"},
                         {"token": "new", "run_id": "r1", "kind": "rows", "offset": 0, "data": b"h\n1\n"}])
    runs.drain()
    assert (tmp_path / "runs" / "r1" / "metrics.csv.part").read_bytes() == b"h\n1\n"
    assert len(said) == 1 and said[0].startswith("run r1: dropped a late rows from attempt old")


# --- real processes -----------------------------------------------------------------

@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    """Two workers that cannot see the tests' folders (an empty tmpfs over
    them), or, where namespaces are refused, plain ones."""
    base = tmp_path_factory.getbasetemp()
    cluster = Cluster(tmp_path_factory.mktemp("logs"))
    cluster.scheduler()
    hide = base if can_hide() else None
    for name in ("a", "b"):
        cluster.worker(name, hide=hide)
    client = cluster.wait(2)
    yield cluster, client, hide
    client.close()
    cluster.close()


@pytest.mark.slow
def test_workers_that_cannot_see_out_complete_the_sweep(tmp_path, hidden, monkeypatch):
    cluster, client, hide = hidden
    if hide is None:
        pytest.skip("no mount namespaces here")
    marker = tmp_path / "marker"
    marker.write_text("")
    assert client.run(os.path.exists, str(marker)) == {w: False for w in client.scheduler_info()["workers"]}
    grid = write_grid(tmp_path, iterations=60, seeds="0, 1, 2")
    sent = []
    submit = distributed.Client.submit
    monkeypatch.setattr(distributed.Client, "submit",
                        lambda self, fn, *a, **k: sent.append(pickle.dumps(a)) or submit(self, fn, *a, **k))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "dask"), "--quiet", "--no-live-report",
                 "--scheduler", cluster.address]) == 0
    monkeypatch.undo()
    assert len(sent) == 3 and not any(str(tmp_path / "dask").encode() in s for s in sent)  # none names --out
    assert main(["sweep", str(grid), "--out", str(tmp_path / "local"), "--quiet", "--no-live-report"]) == 0
    assert numbers(tmp_path / "dask" / "k") == numbers(tmp_path / "local" / "k")
    pids = set(client.run(os.getpid).values())
    for run in (tmp_path / "dask" / "k" / "runs").iterdir():
        config = json.loads((run / "config.json").read_text())
        assert config["pid"] in pids and config["path"] == str(tmp_path / "data.csv")


@pytest.mark.slow
def test_a_dask_executor_takes_runs_while_it_runs(tmp_path, hidden):
    from harness.events import Events
    from harness.executor import Executor
    from harness.grid import load_sweep
    from harness.plan import make_plan

    cluster, _, _ = hidden
    sweep = load_sweep(write_grid(tmp_path, iterations=60, seeds="0, 1, 2"), scheduler=cluster.address)
    out = tmp_path / "out" / "k"
    (out / "runs").mkdir(parents=True)
    plan = make_plan(sweep, out)
    todo, seen = list(plan.todo), []
    with Executor(sweep, out, Events(), live=False) as executor:
        executor.submit(todo[:1], plan.estimate)
        for status in executor.completed():
            seen.append(status["run_id"])
            if len(seen) < len(todo):
                executor.submit(todo[len(seen):len(seen) + 1], plan.estimate)
    assert seen == [r for r, _ in todo] and all((out / "runs" / r / "status.json").exists() for r in seen)


def test_a_record_that_does_not_arrive_fails_the_sweep_in_one_line(tmp_path, monkeypatch, capsys):
    """Whatever the backend: a run that left no record in the sweep folder
    is not a success."""
    from harness import executor

    monkeypatch.setattr(executor, "train_in_worker", lambda *a, **k: {"run_id": a[1].rsplit("/", 1)[1],
                                                                       "status": "done"})
    grid = _grid(tmp_path, "")
    assert main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--quiet", "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("harness: error: the records of 1 run did not reach")
    assert (tmp_path / "o" / "g" / "summary.csv").exists()


def _wait(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _checkpointed(folder: Path, n):
    runs = folder / "runs"
    return runs.is_dir() and sum((r / "checkpoint.npz").exists() for r in runs.iterdir()) >= n


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The local (loky) numbers of the fault tests' grid."""
    folder = tmp_path_factory.mktemp("reference")
    grid = write_grid(folder, iterations=1500)
    assert sweep_without_report(grid, folder / "out") == 0  # its numbers alone
    return numbers(folder / "out" / "k")


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    """As ``reference``, with runs long enough to outlive a client by far."""
    folder = tmp_path_factory.mktemp("long")
    grid = write_grid(folder, iterations=LONG)
    assert sweep_without_report(grid, folder / "out") == 0
    return numbers(folder / "out" / "k")


LONG = 8000


@pytest.mark.slow
def test_kill_9_of_a_worker_retries_its_run_from_its_checkpoint(tmp_path, cluster, reference):
    cluster.scheduler()
    cluster.worker("a")
    cluster.worker("b")
    client = cluster.wait(2)
    grid = write_grid(tmp_path, iterations=1500)
    proc = sweep(grid, tmp_path / "out", cluster.address)
    _wait(lambda: _checkpointed(tmp_path / "out" / "k", 2), 60, "checkpoints")
    _, running, runs = progress(tmp_path / "out" / "k")  # harness status, as for a local sweep
    assert running and all(r["state"] == "running" and r["iteration"] > 0 for r in runs)
    busy = [w for w, keys in client.processing().items() if keys]
    victim = client.scheduler_info()["workers"][busy[0]]["name"]
    client.close()
    cluster.kill(cluster.workers[victim])
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    assert "its worker was lost; retried on" in err and "from its checkpoint at iteration" in err
    assert numbers(tmp_path / "out" / "k") == reference


@pytest.mark.slow
def test_kill_9_of_the_scheduler_exits_2_in_one_line_and_a_resume_completes(tmp_path, cluster, reference):
    cluster.scheduler()
    cluster.worker("a")
    cluster.wait(1).close()
    grid = write_grid(tmp_path, iterations=1500)
    out = tmp_path / "out" / "k"
    proc = sweep(grid, tmp_path / "out", cluster.address)
    _wait(lambda: _checkpointed(out, 1) and any((r / "status.json").exists() for r in (out / "runs").iterdir()),
          90, "one run finished and one checkpointed")
    cluster.kill(cluster.sched)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and errors[0].startswith("harness: error: lost the dask scheduler")
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 2 and ",done," in summary[1]  # the finished run, and nothing else looks finished
    unfinished = [r for r in (out / "runs").iterdir() if not (r / "status.json").exists()]
    assert len(unfinished) == 1 and (unfinished[0] / "checkpoint.npz").exists()
    time.sleep(6)  # the old worker's run stops on its own; it cannot write here anyway
    cluster.scheduler()
    cluster.worker("c")
    cluster.wait(1).close()
    again = sweep(grid, tmp_path / "out", cluster.address)
    _, err = again.communicate(timeout=400)
    assert again.returncode == 0, err
    assert numbers(out) == reference


@pytest.mark.slow
def test_kill_9_of_the_client_stops_its_runs_and_a_resume_drops_their_late_words(tmp_path, cluster, long_reference):
    from harness.remote import COURIER_SECONDS, STALE_SECONDS

    cluster.scheduler()
    scratch = [cluster.worker("a"), cluster.worker("b")]
    cluster.wait(2).close()
    grid = write_grid(tmp_path, iterations=LONG)
    out = tmp_path / "out" / "k"
    proc = sweep(grid, tmp_path / "out", cluster.address)
    _wait(lambda: _checkpointed(out, 2), 60, "checkpoints")
    cluster.kill(proc)
    killed = time.monotonic()
    running = lambda: [p for s in scratch for p in s.rglob("harness-run-*")]
    assert running()
    _wait(lambda: not running(), STALE_SECONDS + COURIER_SECONDS + 0.3 + 5, "the orphaned runs to stop")
    took = time.monotonic() - killed
    stopped = [int(m) for name in ("a", "b") for m in
               re.findall(r"its client is gone; stopped at iteration (\d+)", (tmp_path / f"worker-{name}.log").read_text())]
    # each orphan stopped, not finished (a loaded machine may add an attempt abandoned and resubmitted earlier)
    assert len(stopped) >= 2 and max(stopped) < LONG
    again = sweep(grid, tmp_path / "out", cluster.address)
    _, err = again.communicate(timeout=400)
    assert again.returncode == 0, err
    assert "dropped a late" in err  # what the orphans said after the kill reached the new sweep and went nowhere
    assert numbers(out) == long_reference
    print(f"orphaned runs stopped {took:.1f} s after the client's kill -9")
