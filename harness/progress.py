"""What the command line shows while a sweep trains: a bar that advances with
iterations, weighted by each run's estimated cost, on a terminal; a line per
finished run otherwise. Both give runs done, running and left, those that
failed or diverged, and an ETA from the cost model corrected by the pace of
the runs finished so far."""
from __future__ import annotations

import statistics
import sys
import threading
from dataclasses import fields

from .config import RunConfig
from .events import Events
from .status import Role, RunStatus, in_comparison, parse
from .words import count, duration


class Quiet(Events):
    """Warnings alone, on stderr (``--quiet``)."""

    def warning(self, text):
        print(text, file=sys.stderr)


class Printed(Quiet):
    """Notes and warnings on stderr and the outcome's table on stdout, no progress."""

    def note(self, text):
        print(text, file=sys.stderr)

    def outcome(self, summary, out):
        print_outcome(summary, out)




def _percent(fraction):
    import pandas as pd

    return "n/a" if pd.isna(fraction) else f"{100 * fraction:.2f}%"


def print_outcome(summary, out):
    """The ten best runs by validation accuracy, and the count of each status."""
    if summary.empty:
        return
    ok = summary[in_comparison(summary.status)].sort_values("final_val_acc", ascending=False)
    top = ok.head(10)
    shown = top[["run_id", "layers", "seed", "status"]].assign(
        **{"train acc": [_percent(v) for v in top.final_train_acc], "val acc": [_percent(v) for v in top.final_val_acc],
           "s/iter": [f"{v:.4f}" for v in top.median_iter_seconds]})
    print(shown.to_string(index=False))
    counts = ", ".join(f"{n} {status}" for status, n in summary.status.value_counts().items())
    print(f"{count(len(summary), 'run')}: {counts}; summary in {out / 'summary.csv'}")


class Tracker(Printed):
    """How far a sweep is, from its events (see :class:`harness.events.Events`)."""

    def started(self, estimate, todo, meta=None):
        self.est, self.cfgs, self.meta = estimate, dict(todo), meta or {}
        # what tells these runs apart besides layers and seed (a tuned trial's lr, a grid's lr axis)
        self.varying = [f.name for f in fields(RunConfig) if f.name not in ("layers", "seed")
                        and len({getattr(c, f.name) for c in self.cfgs.values()}) > 1]
        self.fraction = dict.fromkeys(self.cfgs, 0.0)
        self.running, self.counts, self.paces = set(), {}, []
        self.lock = threading.Lock()

    def added(self, estimate, todo, meta=None):
        with self.lock:
            for part in ("seconds", "iterations", "tasks", "start"):
                getattr(self.est, part).update(getattr(estimate, part))
            self.cfgs.update(todo)
            self.meta.update(meta or {})
            self.fraction.update(dict.fromkeys(dict(todo), 0.0))
        self.show()

    def advanced(self, run_id, iteration):
        with self.lock:
            done = iteration - self.est.start.get(run_id, 0)  # a continued run counts from its checkpoint
            self.fraction[run_id] = min(1.0, max(0.0, done / max(1, self.est.iterations[run_id])))
            self.running.add(run_id)
        self.show()

    def paused(self, run_id, iteration):
        with self.lock:
            self.running.discard(run_id)
            self.fraction[run_id] = 1.0  # this segment is done
        self.show()

    def finished(self, status):
        run_id = status["run_id"]
        with self.lock:
            self.fraction[run_id] = 1.0
            self.running.discard(run_id)
            self.counts[status["status"]] = self.counts.get(status["status"], 0) + 1
            took, n = status.get("total_seconds"), status.get("iterations_run")
            want = self.est.seconds.get(run_id)
            if took and n and want:  # measured against estimated seconds per iteration
                self.paces.append((took / n) / (want / self.est.iterations[run_id]))
        self.show(status)

    def pace(self):
        """Measured over estimated seconds of the finished runs (1 before any)."""
        return statistics.median(self.paces) if self.paces else 1.0

    def eta(self):
        """Seconds left: what this phase's runs have left, and what the
        estimate holds beyond them (a tuned sweep's confirmation runs)."""
        left = {r: 1.0 for r in self.est.tasks}
        left.update({r: 1.0 - f for r, f in self.fraction.items()})
        return self.est.wall_left(left, self.pace())

    def share_done(self):
        """The fraction of the work done, each run weighted by its estimated cost."""
        total = sum(self.est.tasks[r][0] for r in self.fraction) or 1.0
        return sum(self.est.tasks[r][0] * f for r, f in self.fraction.items()) / total

    def counts_text(self):
        done = sum(self.counts.values())
        left = len(self.cfgs) - done - len(self.running)
        bad = [f"{n} {s}" for s, n in sorted(self.counts.items()) if parse(s) is not RunStatus.DONE]
        return f"{done} done, {len(self.running)} running, {left} left" + (f" ({', '.join(bad)})" if bad else "")

    def name(self, run_id):
        """A finished run as a line names it: "784-128-10, lr 0.00052 (trial 3, search), seed 0"."""
        cfg, meta = self.cfgs[run_id], self.meta.get(run_id, {})
        values = [f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                  for k, v in ((k, getattr(cfg, k)) for k in self.varying)]
        text = ", ".join([cfg.layers_str] + values)
        if meta.get("role") == Role.SEARCH:
            text += f" (trial {meta['trial']}, search)"
        elif meta.get("role") == Role.CONFIRM:
            text += f" (trial {meta['trial']}, confirmation)"
        return f"{text}, seed {cfg.seed}"

    def show(self, status=None):
        """Redraw after an event; ``status`` when a run has just finished."""


class Bar(Tracker):
    """A tqdm bar on stderr."""

    def started(self, estimate, todo, meta=None):
        from tqdm import tqdm

        super().started(estimate, todo, meta)
        self.bar = tqdm(total=100, file=sys.stderr, desc="training", unit="starting",
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {unit}")
        self.show()

    def show(self, status=None):
        with self.lock:
            self.bar.n = round(100 * self.share_done(), 1)
            self.bar.unit = f"{self.counts_text()}; about {duration(self.eta())} left"
            self.bar.refresh()

    def closed(self):
        if hasattr(self, "bar"):
            self.bar.close()


class Lines(Tracker):
    """A line per finished run, for logs and pipes."""

    def show(self, status=None):
        if status is None:
            return
        with self.lock:
            val = status.get("final_val_acc")
            took, want = status.get("total_seconds"), self.est.whole(status["run_id"])
            line = (f"{status['status']}: {self.name(status['run_id'])}"
                    + (f", validation {100 * val:.2f}%" if val is not None else "")
                    + (f", {took:.1f} s (estimated {want:.1f} s)" if took and want else "")
                    + f"; {self.counts_text()}; about {duration(self.eta())} left")
        print(line, file=sys.stderr, flush=True)


def for_terminal(quiet: bool):
    """The events the CLI gives a sweep: warnings alone with ``quiet``, a
    bar on a terminal, lines otherwise."""
    if quiet:
        return Quiet()
    return Bar() if sys.stderr.isatty() else Lines()
