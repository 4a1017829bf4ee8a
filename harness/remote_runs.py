"""The client's side of runs on a Dask cluster: the only writer of the
sweep folder. It submits one :class:`harness.remote.RemoteTask` per
attempt (no path under ``--out`` in it), writes the rows and checkpoints
the attempt it expects sends while it trains, and its record when it ends,
through :mod:`harness.store` as a local run writes them. Anything from
another attempt (one abandoned, one of a dead client) is dropped, said in
one line. A heartbeat tells the workers the client lives; when it stops,
their runs stop at their next row."""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import threading
import time
import uuid
from pathlib import Path

from . import layout, store
from .errors import BackendLost
from .remote import (
    HEARTBEAT_SECONDS,
    STOP,
    DataShipment,
    RemoteTask,
    alive_name,
    checkpoint_name,
    pack_data,
    rows_name,
    run_remote,
)
from .status import RunStatus, is_paused
from .words import count

POLL_SECONDS = 0.25
LOST_SECONDS = 6.0  # no word from the scheduler this long: it is gone
# Bytes shipped by every RemoteRuns of this process, by part (read by the bench).
SHIPPED = collections.Counter()
RESUBMITS = 3       # attempts abandoned while the client lives (a heartbeat lost in transit) before the run fails


def channel_name(out: Path) -> str:
    """The Queue a sweep folder's runs report on: one per folder, so a
    resumed sweep hears (and drops) what its dead predecessor's runs say."""
    return "harness-" + hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:16]


def shipping_lines(sweep) -> list[str]:
    """The dry run's lines on what a Dask sweep sends over the network."""
    paths = sorted({c.path for c in sweep.runs if c.path})
    lines = []
    for path in paths:
        try:
            shipment, _ = pack_data(path)
            lines.append(f"dask: {shipment.name} ({shipment.size:,} bytes) is sent once to every worker, "
                         f"its SHA-256 checked there")
        except OSError as e:
            lines.append(f"dask: {path} cannot be read here to send ({e.strerror or e})")
    lines.append("dask: each run sends back its metrics rows and, every checkpoint_seconds, its checkpoint; "
                 "the bundled datasets load on the workers")
    return lines


class Heartbeat(threading.Thread):
    """Counts up in a Variable every :data:`HEARTBEAT_SECONDS`; ``ok`` is
    when the scheduler last took a beat."""

    def __init__(self, client, session):
        from distributed import Variable

        super().__init__(name="harness-heartbeat", daemon=True)
        self.variable, self.halt = Variable(alive_name(session), client=client), threading.Event()
        self.ok, self.beats = time.monotonic(), 0
        self.beat()

    def beat(self):
        with contextlib.suppress(Exception):  # the scheduler is not answering: LOST_SECONDS decides
            self.variable.set(self.beats, timeout=HEARTBEAT_SECONDS * 2)
            self.beats += 1
            self.ok = time.monotonic()

    def run(self):
        while not self.halt.wait(HEARTBEAT_SECONDS):
            self.beat()

    def stop(self, client):
        """The runs stop at their next look, sooner than a stale heartbeat tells them."""
        self.halt.set()
        if client.status != "running":
            return  # a lost scheduler: their heartbeat goes stale instead
        with contextlib.suppress(Exception):  # a lost scheduler: their heartbeat goes stale instead
            self.variable.set(STOP, timeout=2)


class RemoteRuns:
    """Runs on the cluster behind ``client``, written into the sweep folder
    ``out``. :meth:`submit` takes new runs at any time, also while
    :meth:`completed` is being iterated."""

    def __init__(self, client, sweep, out: Path, say):
        from distributed import Queue

        self.client, self.sweep, self.out, self.say = client, sweep, Path(out), say
        self.session, self.channel = uuid.uuid4().hex, channel_name(out)
        self.queue = Queue(self.channel, client=client)
        self.expected, self.cfgs, self.requests, self.tries = {}, {}, {}, {}
        self.pending = {}  # future -> run_id
        self.ended, self.dropped, self.started, self.saved = set(), set(), set(), {}
        self.shipments = {}  # data path -> (DataShipment, future of its files)
        self.shipped = collections.Counter()  # bytes by part, and how many checkpoints came
        self.heartbeat = Heartbeat(client, self.session)
        self.heartbeat.start()

    def submit(self, run_id, cfg, request, priority=0):
        """A new attempt at ``run_id``: from its checkpoint in the sweep folder, if it has one."""
        from distributed.protocol import serialize_bytelist

        folder = layout.run_dir(self.out, run_id)
        ckpt = metrics = None
        if (folder / store.CHECKPOINT).exists():
            ckpt, metrics = (folder / store.CHECKPOINT).read_bytes(), _read(folder / "metrics.csv.part")
        shipment, files = self.ship(cfg.path) if cfg.path else (None, None)
        token = uuid.uuid4().hex
        task = RemoteTask(run_id, cfg, request, token, self.session, self.channel, shipment, ckpt, metrics)
        self.expected[run_id], self.cfgs[run_id], self.requests[run_id] = token, cfg, request
        self.shipped["tasks"] += sum(map(len, serialize_bytelist(task)))
        future = self.client.submit(run_remote, task, files, key=f"harness-run-{run_id}-{token[:8]}",
                                    pure=False, priority=priority)
        self.pending[future] = run_id

    def ship(self, path) -> tuple[DataShipment, object]:
        """A ``path`` dataset, scattered to every worker once per session."""
        if path not in self.shipments:
            shipment, files = pack_data(path)
            [future] = self.client.scatter([files], broadcast=True, hash=False)
            self.shipments[path] = shipment, future
            self.shipped["data"] += shipment.size
        return self.shipments[path]

    def completed(self):
        """Each run's status as its record is written (a failure recorded
        by the client when its worker was lost); raises :class:`BackendLost`
        when the scheduler is gone."""
        from distributed import wait

        offline = None
        while self.pending:
            if self.client.status != "running":  # reconnecting: a call now would only wait for it
                offline = offline or time.monotonic()
                if self.client.status != "connecting" or time.monotonic() - offline > LOST_SECONDS:
                    raise self.lost()
                time.sleep(POLL_SECONDS)
                continue
            offline = None
            try:
                done = wait(list(self.pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = set()
            except Exception as e:  # noqa: BLE001 - the connection itself failed
                raise self.lost(e) from None
            self.drain()
            for future in done:
                status = self.collect(future)
                if status is not None:
                    yield status
            if time.monotonic() - self.heartbeat.ok > LOST_SECONDS or self.client.status in ("closing", "closed"):
                raise self.lost()

    def lost(self, error=None) -> BackendLost:
        why = f" ({type(error).__name__})" if error is not None else ""
        return BackendLost(f"lost the dask scheduler at {self.sweep.scheduler}{why}: "
                           f"{count(len(self.pending), 'run')} unfinished, not marked (their last checkpoints are kept); "
                           "summary.csv has the runs that finished; run the same command against a scheduler to resume")

    def collect(self, future):
        """The status of a run whose future ended, its record written; None
        when the attempt was abandoned and is submitted again."""
        run_id = self.pending.pop(future)
        if future.status == "cancelled":
            self.pending[future] = run_id
            raise self.lost()
        if future.status == "error":
            error = future.exception()
            lost = type(error).__name__ == "KilledWorker"
            reason = f"{'worker lost: ' if lost else 'on its worker: '}{type(error).__name__}: {error}".splitlines()[0]
            return self.fail(run_id, reason)
        record = future.result()
        self.shipped["records"] += sum(map(len, record.get("files", {}).values()))
        if record["token"] != self.expected.get(run_id):
            self.drop(record, "result")
            return None
        if record.get("abandoned"):
            self.tries[run_id] = self.tries.get(run_id, 0) + 1
            if self.tries[run_id] > RESUBMITS:
                return self.fail(run_id, f"abandoned {count(RESUBMITS + 1, 'time')}: the workers lost the client's heartbeat")
            self.submit(run_id, self.cfgs[run_id], self.requests[run_id])
            return None
        self.end(record["token"])
        write_record(self.out, record, self.cfgs[run_id])
        return record["status"]

    def fail(self, run_id, reason):
        status = {"status": RunStatus.FAILED.value, "run_id": run_id, "reason": reason}
        folder = layout.run_dir(self.out, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        store.write_status(folder, status)
        self.end(self.expected.get(run_id))
        return status

    def end(self, token):
        self.ended.add(token)
        for name in (checkpoint_name(token), rows_name(token)):
            _forget(self.client, name)

    def drop(self, message, what):
        """Say once per attempt that its words go nowhere, and free what it left on the scheduler."""
        if message["token"] not in self.dropped:
            self.dropped.add(message["token"])
            for name in (checkpoint_name(message["token"]), rows_name(message["token"])):
                _forget(self.client, name)
            self.say(f"run {message['run_id']}: dropped a late {what} from attempt {message['token'][:8]}, "
                     "not the one this sweep expects")

    def drain(self):
        """Handle what the runs have said since the last look."""
        try:
            messages = self.queue.get(batch=True, timeout=2)
        except Exception:  # noqa: BLE001 - the scheduler not answering: the heartbeat tells
            return
        for message in messages:
            if message["token"] in self.ended:
                continue  # sent before its record came back; the record has it all
            if message["token"] != self.expected.get(message["run_id"]):
                self.drop(message, message["kind"])
            else:
                getattr(self, f"on_{message['kind']}")(message)

    def on_started(self, message):
        if message["token"] in self.started:
            self.say(f"run {message['run_id']}: its worker was lost; retried on {message['worker']} "
                     + (f"from its checkpoint at iteration {message['iteration']}" if message["iteration"]
                        else "from the start"))
        self.started.add(message["token"])

    def on_config(self, message):
        folder = layout.run_dir(self.out, message["run_id"])
        folder.mkdir(parents=True, exist_ok=True)
        store.atomic_write_bytes(folder / "config.json", client_config(message["data"], self.cfgs[message["run_id"]]))

    def on_rows(self, message):
        """Rows, at their offset in the run's ``metrics.csv.part`` (as a local run streams them)."""
        path = layout.run_dir(self.out, message["run_id"]) / "metrics.csv.part"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if message["offset"] > size:
            return  # a gap: the record will bring them all
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.seek(message["offset"])
            f.truncate()
            f.write(message["data"])
        self.shipped["rows"] += len(message["data"])

    def on_checkpoint(self, message):
        from distributed import Variable

        run_id = message["run_id"]
        try:
            saved = Variable(checkpoint_name(message["token"]), client=self.client).get(timeout=5)
        except Exception:  # noqa: BLE001 - replaced or gone: the next one, or the record, comes
            return
        if saved["iteration"] > self.saved.get(run_id, 0):
            store.atomic_write_bytes(layout.run_dir(self.out, run_id) / store.CHECKPOINT, saved["checkpoint"])
            self.saved[run_id] = saved["iteration"]
            self.shipped["checkpoints"] += len(saved["checkpoint"])
            self.shipped["checkpoints sent"] += 1

    def close(self):
        """Stop the heartbeat (saying stop) and cancel what is still pending."""
        SHIPPED.update(self.shipped)
        self.heartbeat.stop(self.client)
        if self.pending and self.client.status == "running":
            with contextlib.suppress(Exception):  # a lost scheduler cancels nothing more
                self.client.cancel(list(self.pending), reason="the sweep ended")


def _read(path: Path):
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _forget(client, name):
    from distributed import Variable

    with contextlib.suppress(Exception):  # a lost scheduler forgets everything anyway
        Variable(name, client=client).delete()


def write_record(out: Path, record: dict, cfg):
    """Write a run's record into its folder as the run itself would: its
    files (config.json naming the client's data path), then status.json
    (sealed over them), and nothing left beside them from earlier attempts."""
    folder = layout.run_dir(out, record["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    files = dict(record["files"])
    if "config.json" in files:
        files["config.json"] = client_config(files["config.json"], cfg)
    for name, data in files.items():
        store.atomic_write_bytes(folder / name, data)
    status = record["status"]
    paused = is_paused(status)  # at a halving rung: no status yet, its checkpoint continues it
    if not paused:
        store.write_status(folder, status)
    for path in folder.iterdir():
        if path.is_file() and path.name not in files and (path.name != store.STATUS or paused):
            path.unlink(missing_ok=True)


def client_config(data: bytes, cfg) -> bytes:
    """A remote run's config.json naming the data path the sweep gave, not
    the worker's copy of it."""
    if not cfg.path:
        return data
    config = json.loads(data)
    config["path"] = cfg.path
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
