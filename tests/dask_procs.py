"""A real Dask cluster for tests: a ``dask scheduler`` and ``dask worker``
processes started here (not an in-process cluster), which a test may
kill -9. Workers can be started in their own mount namespace with an
empty tmpfs over a folder (``hide``): they cannot see the client's disk
there. Imported by test files (never another test file)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_hide():
    """Whether workers can be put in a mount namespace of their own here."""
    return (shutil.which("unshare") is not None and os.geteuid() == 0
            and subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False).returncode == 0)


class Cluster:
    """``scheduler()`` then ``worker(name)``; ``close()`` kills what is left."""

    def __init__(self, logs: Path):
        self.logs, self.procs, self.workers = Path(logs), [], {}
        self.scratch = Path(tempfile.mkdtemp(prefix="harness-dask-test-"))  # outside any hidden folder
        self.address = None

    def _start(self, name, cmd):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.logs / f"{name}.log", "w") as log:  # the child keeps its own copy
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def scheduler(self):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self.sched = self._start(f"scheduler-{port}", [sys.executable, "-m", "distributed.cli.dask_scheduler",
                                                      "--host", "127.0.0.1", "--port", port, "--no-dashboard"])
        return self.address

    def worker(self, name, hide=None):
        """A single-threaded worker without a nanny (kill -9 ends it); with
        ``hide``, an empty tmpfs covers that folder in its mount namespace."""
        local = self.scratch / name
        local.mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny",
               "--name", name, "--local-directory", str(local), "--no-dashboard", "--death-timeout", "15"]
        if hide is not None:
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f"mount -t tmpfs harness-hidden {hide} && exec {' '.join(cmd)}"]
        self.workers[name] = self._start(f"worker-{name}", cmd)
        return local

    def wait(self, n, seconds=60):
        """A client of the cluster once ``n`` workers have joined (the caller closes it)."""
        from distributed import Client

        deadline = time.monotonic() + seconds
        while True:
            try:
                client = Client(self.address, timeout="5s")
                break
            except (OSError, AssertionError):
                # AssertionError: distributed's IO-loop thread did not start within its
                # 10 s, seen once in a full suite on a busy 2-core machine; a new client retries
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        client.wait_for_workers(n, timeout=seconds)
        return client

    def kill(self, proc):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
        shutil.rmtree(self.scratch, ignore_errors=True)


def write_grid(folder: Path, iterations, seeds="0, 1"):
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import SLOW_GRID, make_digits, write_csv

    X, y = make_digits(300)
    write_csv(folder / "data.csv", X, y)
    grid = folder / "k.toml"
    text = SLOW_GRID.format(data="data.csv", iterations=iterations)  # checkpoints often: a kill loses little
    grid.write_text(text.replace('name = "slow"', 'name = "k"')
                    .replace("seeds = [0, 1, 2, 3, 4, 5]", f"seeds = [{seeds}]\ncheckpoint_seconds = 0.3"))
    return grid


def sweep(grid, out, scheduler=None, *more):
    """A sweep as its own process (so a test can kill it)."""
    cmd = [sys.executable, "-m", "harness", "sweep", str(grid), "--out", str(out), "--no-live-report", *more]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def numbers(folder):
    """``{run_id: (metrics.csv without timings, status figures)}`` of a sweep folder's runs."""
    import json

    out = {}
    for run in sorted((Path(folder) / "runs").iterdir()):
        rows = [line.split(",")[:4] for line in (run / "metrics.csv").read_text().splitlines()]
        status = json.loads((run / "status.json").read_text())
        out[run.name] = (rows, {k: status.get(k) for k in ("status", "final_val_acc", "final_train_loss",
                                                            "iterations_run", "best_val_acc")})
    return out
