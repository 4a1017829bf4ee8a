"""A run on a Dask worker that shares no disk with the sweep (the client).

The worker is given a :class:`RemoteTask` (the settings, the data's
identity, the checkpoint of a continuing run: bytes, never a path under
``--out``), trains it in a scratch folder of its own, and returns the run's
record: every file the run wrote, and its status. The client writes them
(:mod:`harness.remote_runs`); the worker writes nothing the sweep reads.

While it trains, a :class:`Courier` thread sends the client the run's
config.json, its new metrics rows and each new checkpoint (every
``checkpoint_seconds``) through a Dask ``Queue``, leaves the latest checkpoint in a Dask ``Variable`` (a
retry after a worker's loss continues from it), and watches the client's
heartbeat: when it stops, the run stops at its next row."""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import RunConfig
from .errors import DataError
from .worker import RunRequest

COURIER_SECONDS = 0.5   # how often a running run sends its rows and looks for a checkpoint
HEARTBEAT_SECONDS = 1.0  # how often the client says it is alive
STALE_SECONDS = 5.0      # a client silent this long is gone: its runs stop
STOP = "stop"            # the heartbeat's value once the client has ended


def checkpoint_name(token):
    """The Variable holding an attempt's latest checkpoint ``{"iteration", "checkpoint"}``."""
    return f"harness-ckpt-{token}"


def rows_name(token):
    """The Variable holding the metrics rows up to an attempt's latest checkpoint."""
    return f"harness-rows-{token}"


def alive_name(session):
    """The Variable the client's heartbeat counts up in."""
    return f"harness-alive-{session}"


class Abandoned(Exception):
    """The client that asked for this run is gone (or said stop)."""


@dataclass(frozen=True)
class DataShipment:
    """A ``path`` dataset sent from the client: the file's (or IDX folder's)
    ``name``, the SHA-256 ``digest`` of its files and their ``size`` in
    bytes. The files themselves (``{name: bytes}``) are scattered once per
    sweep and passed beside the task."""

    name: str
    digest: str
    size: int
    folder: bool


@dataclass(frozen=True)
class RemoteTask:
    """What a worker gets for one attempt at a run: ``token`` names the
    attempt (the client writes results of the attempt it expects only),
    ``session`` the client's heartbeat, ``channel`` the Queue to report on;
    ``checkpoint`` and ``metrics`` are a continuing run's state and rows."""

    run_id: str
    cfg: RunConfig
    request: RunRequest
    token: str
    session: str
    channel: str
    data: DataShipment | None = None
    checkpoint: bytes | None = None
    metrics: bytes | None = None


def files_digest(files: dict) -> str:
    """SHA-256 over ``{name: bytes}``, names sorted: a shipment's identity."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def pack_data(path) -> tuple[DataShipment, dict]:
    """The shipment of the data file or IDX folder at ``path`` (client side)."""
    p = Path(path)
    if p.is_dir():
        files = {f.name: f.read_bytes() for f in sorted(p.iterdir()) if f.is_file()}
    else:
        files = {p.name: p.read_bytes()}
    return DataShipment(p.name, files_digest(files), sum(map(len, files.values())), p.is_dir()), files


def unpack_data(shipment: DataShipment, files: dict, scratch: Path) -> Path:
    """The shipped data as a local path on this worker, written once per
    digest; refuses files whose hash is not the one the client sent."""
    got = files_digest(files)
    if got != shipment.digest:
        raise DataError(f"{shipment.name}: arrived with SHA-256 {got[:12]}, the client sent {shipment.digest[:12]}")
    home = scratch / "harness-data" / shipment.digest
    target = home / shipment.name
    if not (home / ".complete").exists():
        place = target if shipment.folder else home
        place.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (place / name).write_bytes(data)
        (home / ".complete").write_text("")
    return target


def run_remote(task: RemoteTask, data=None) -> dict:
    """One attempt at a run, on a Dask worker. Returns its record:
    ``{"token", "run_id", "worker", "status", "files": {name: bytes}}``, or
    ``{"token", "run_id", "abandoned": True}`` when its client went away."""
    from distributed import get_client, get_worker

    worker = get_worker()
    scratch = Path(worker.local_directory)
    client = get_client()
    cfg = task.cfg if task.data is None else task.cfg.replace(path=str(unpack_data(task.data, data, scratch)))
    with tempfile.TemporaryDirectory(prefix="harness-run-", dir=scratch) as tmp:
        folder = Path(tmp) / task.run_id
        folder.mkdir()
        start = _seed(folder, task, client)
        courier = Courier(client, task, folder)
        courier.send({"kind": "started", "iteration": start, "worker": worker.address})
        courier.start()
        try:
            status = task.request.train(cfg, str(folder), 1, None, on_row=courier.check)
        finally:
            courier.stop()
        if courier.abandoned:
            logging.getLogger(__name__).warning("harness: run %s (attempt %s): its client is gone; stopped at "
                                                "iteration %s", task.run_id, task.token[:8], courier.last)
            return {"token": task.token, "run_id": task.run_id, "abandoned": True}
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "status.json"}
        return {"token": task.token, "run_id": task.run_id, "worker": worker.address, "status": status,
                "files": files}


def _seed(folder: Path, task: RemoteTask, client) -> int:
    """Put the run's checkpoint and rows in ``folder``: the latest one an
    earlier try of this attempt published (a worker lost mid-run), else
    the task's own. Returns its iteration (0: from the start)."""
    from distributed import Variable

    ckpt, rows = task.checkpoint, task.metrics
    with contextlib.suppress(Exception):  # none published yet: asking times out at once
        published = Variable(checkpoint_name(task.token), client=client).get(timeout=0)
        ckpt, rows = published["checkpoint"], Variable(rows_name(task.token), client=client).get(timeout=1)
    if ckpt is None:
        return 0
    (folder / "metrics.csv.part").write_bytes(rows or b"")
    (folder / "checkpoint.npz").write_bytes(ckpt)
    return checkpoint_iteration(ckpt)


def checkpoint_iteration(data: bytes) -> int:
    """The iteration a checkpoint's bytes were saved at."""
    import json

    with np.load(io.BytesIO(data)) as z:
        return int(json.loads(str(z["_meta"]))["iteration"])


def _stamp(path: Path):
    """What tells a file's versions apart (atomic writes replace the inode)."""
    try:
        s = os.stat(path)
    except FileNotFoundError:
        return None
    return s.st_ino, s.st_mtime_ns, s.st_size


class Courier(threading.Thread):
    """Beside a remote run: sends its new rows and checkpoints, and stops
    it (through :meth:`check`, its ``on_row``) once the client's heartbeat
    has not changed for :data:`STALE_SECONDS` or says :data:`STOP`."""

    def __init__(self, client, task: RemoteTask, folder: Path):
        from distributed import Queue, Variable

        super().__init__(name=f"harness-courier-{task.run_id}", daemon=True)
        self.client, self.task, self.folder = client, task, folder
        self.queue = Queue(task.channel, client=client)
        self.alive = Variable(alive_name(task.session), client=client)
        self.halt, self.abandoned = threading.Event(), False
        self.rows_stamp, self.offset = None, 0
        self.ckpt_stamp = _stamp(folder / "checkpoint.npz")  # the seeded one is the client's already
        self.beat, self.beat_seen = None, time.monotonic()
        self.last = None  # the last iteration trained
        self.config_sent = False

    def send(self, message):
        self.queue.put({"token": self.task.token, "run_id": self.task.run_id, **message}, timeout=10)

    def run(self):
        while not self.halt.wait(COURIER_SECONDS):
            with contextlib.suppress(Exception):  # a scheduler gone: the heartbeat goes stale and the run stops
                self.send_config()
                self.send_rows()
                self.send_checkpoint()
                self.listen()

    def check(self, row):
        """``on_row``: the training loop calls it after each row."""
        self.last = row["iteration"]
        if self.abandoned or time.monotonic() - self.beat_seen > STALE_SECONDS:
            self.abandoned = True
            raise Abandoned("the client is gone")

    def listen(self):
        beat = self.alive.get(timeout=HEARTBEAT_SECONDS)
        if beat == STOP:
            self.abandoned = True
        elif beat != self.beat:
            self.beat, self.beat_seen = beat, time.monotonic()

    def send_config(self):
        """``config.json`` once written: the client's ``harness status`` then sees the run running."""
        path = self.folder / "config.json"
        if not self.config_sent and path.exists():
            self.send({"kind": "config", "data": path.read_bytes()})
            self.config_sent = True

    def send_rows(self):
        """The metrics file's whole new lines since the last send (all of
        it again when the file was replaced: a continued run rewrites it)."""
        path = self.folder / "metrics.csv.part"
        stamp = _stamp(path)
        if stamp is None:
            return
        if self.rows_stamp is None or stamp[0] != self.rows_stamp[0] or stamp[2] < self.offset:
            self.offset = 0
        self.rows_stamp = stamp
        with open(path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        data = data[:data.rfind(b"\n") + 1]
        if data:
            self.send({"kind": "rows", "offset": self.offset, "data": data})
            self.offset += len(data)

    def send_checkpoint(self):
        """A new checkpoint: its rows and bytes left in Variables (for a
        retry, and for the client to fetch), then a notice on the Queue."""
        from distributed import Variable

        path = self.folder / "checkpoint.npz"
        stamp = _stamp(path)
        if stamp is None or stamp == self.ckpt_stamp:
            return
        self.ckpt_stamp = stamp
        data = path.read_bytes()
        rows = (self.folder / "metrics.csv.part").read_bytes()
        iteration = checkpoint_iteration(data)
        self.send_rows()  # the client holds the rows up to the checkpoint before it
        Variable(rows_name(self.task.token), client=self.client).set(rows)
        Variable(checkpoint_name(self.task.token), client=self.client).set({"iteration": iteration, "checkpoint": data})
        self.send({"kind": "checkpoint", "iteration": iteration})

    def stop(self):
        self.halt.set()
        if self.is_alive():
            self.join(timeout=30)
