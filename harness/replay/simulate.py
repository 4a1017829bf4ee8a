"""A strategy's decisions replayed on recorded curves, resampled over seeds.

Each resample draws, for every configuration, ``k`` of its recorded seeds
(without replacement; the same draws for every setting with the same ``k``,
so settings are compared on the same luck). Successive halving's decisions
are made by :mod:`harness.halving` itself (``rungs``, ``promote``, and so
``keep_count``), and ``[tune]``'s by :func:`harness.tune.select`: the
simulator and the sweep cannot drift apart. Scores are a configuration's
mean validation accuracy over its drawn seeds, summed in seed order, as the
sweep sums them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import halving, tune
from ..errors import ConfigError
from ..status import RunStatus


@dataclass(frozen=True)
class Setting:
    """One setting to replay: ``strategy`` "halving" or "grid" (every
    configuration to the end), ``seeds`` per configuration."""

    strategy: str
    seeds: int
    eta: int = 0
    min_iterations: int = 0

    def levels(self, total):
        if self.strategy == "grid":
            return [total]
        return halving.rungs(self.min_iterations, self.eta, total)


def check(setting: Setting, recorded):
    """Refuse a setting the recorded sweep cannot answer, in one line."""
    n = len(recorded.seeds)
    if not 1 <= setting.seeds <= n:
        raise ConfigError(f"--seeds-per-config {setting.seeds}: the sweep has {n} seeds per configuration; "
                          f"give 1 to {n}")
    if setting.strategy == "halving":
        if setting.eta < 2:
            raise ConfigError(f"--eta {setting.eta}: must be at least 2")
        if setting.min_iterations < 1:
            raise ConfigError(f"--min-iterations {setting.min_iterations}: must be at least 1")
        for rung in setting.levels(recorded.total):
            if rung % recorded.eval_every:
                raise ConfigError(f"--min-iterations {setting.min_iterations} --eta {setting.eta}: rung {rung} is "
                                  f"not a multiple of the sweep's eval_every {recorded.eval_every}, so no "
                                  "evaluation was recorded there")


def draws(n_configs, n_seeds, k, resamples, seed):
    """(resamples, configs, k) seed indices, each row sorted (seed order)."""
    rng = np.random.default_rng([seed, k])
    u = rng.random((resamples, n_configs, n_seeds))
    return np.sort(np.argsort(u, axis=2)[..., :k], axis=2)


def scores(curves, idx):
    """(resamples, configs, evaluations): each configuration's mean over its
    drawn seeds, summed in seed order as the sweep does.
    ``curves``: (configs, seeds, evaluations); ``idx``: (resamples, configs, k)."""
    c = np.arange(curves.shape[0])[None, :]
    total = curves[c, idx[..., 0]]
    for j in range(1, idx.shape[2]):
        total = total + curves[c, idx[..., j]]
    return total / idx.shape[2]


def halve(score, columns, levels, eta):
    """One resample's successive halving. ``score``: (configs, evaluations);
    ``columns``: the evaluation column of each rung in ``levels``. Returns
    ``(winner, reached, survivors)``: the top configuration at the end
    (ties to the one listed first), the iterations each configuration
    trained, and the configurations going on after each rung."""
    alive = list(range(score.shape[0]))
    reached = np.full(score.shape[0], levels[0], dtype=float)
    survivors = []
    for level, nxt, col in zip(levels[:-1], levels[1:], columns[:-1]):
        alive = halving.promote(alive, dict(zip(alive, score[alive, col].tolist())), eta)
        reached[alive] = nxt
        survivors.append(alive)
    last = dict(zip(alive, score[alive, columns[-1]].tolist()))
    return halving.promote(alive, last, max(1, len(alive)))[0], reached, survivors


def replay(setting: Setting, recorded, resamples=1000, seed=0, idx=None):
    """``{winner: (resamples,), flops: (resamples,)}`` of ``setting``; ``idx``
    overrides the drawn seed indices (resamples, configs, k)."""
    check(setting, recorded)
    curves = recorded.curves
    if idx is None:
        idx = draws(curves.shape[0], curves.shape[1], setting.seeds, resamples, seed)
    s = scores(curves, idx)
    levels = setting.levels(recorded.total)
    columns = [int(np.searchsorted(recorded.iterations, level)) for level in levels]
    eta = setting.eta or 2
    winners, flops = np.empty(len(idx), int), np.empty(len(idx))
    for b in range(len(idx)):
        winners[b], reached, _ = halve(s[b], columns, levels, eta)
        flops[b] = setting.seeds * float(recorded.flops @ reached)
    return {"winner": winners, "flops": flops}


def tune_replay(recorded, k, resamples=1000, seed=0):
    """``[tune]`` selecting each grid point's trial on ``k`` search seeds:
    (resamples, points) the chosen trial, by :func:`harness.tune.select`
    called once on every resample's search runs (each resample's points
    numbered apart)."""
    import pandas as pd

    n_seeds = len(recorded.seeds)
    if not 1 <= k <= n_seeds:
        raise ConfigError(f"--search-seeds {k}: the sweep has {n_seeds} search seeds per configuration; "
                          f"give 1 to {n_seeds}")
    idx = draws(len(recorded.names), n_seeds, k, resamples, seed)
    final = recorded.curves[:, :, -1]
    values = final[np.arange(len(recorded.names))[None, :, None], idx]  # (resamples, configs, k)
    points = int(recorded.point.max()) + 1
    b = np.repeat(np.arange(resamples), len(recorded.names) * k)
    frame = pd.DataFrame({"point": b * points + np.tile(np.repeat(recorded.point, k), resamples),
                          "trial": np.tile(np.repeat(recorded.trial, k), resamples),
                          "seed": np.tile(idx.reshape(resamples, -1), 1).ravel(),
                          "status": RunStatus.DONE.value, "final_val_acc": values.ravel()})
    chosen = tune.select(frame)
    out = np.full(resamples * points, -1)
    out[chosen.point.to_numpy()] = chosen.trial.to_numpy()
    return out.reshape(resamples, points)


def truth_trials(recorded):
    """(points,) each point's best trial on all recorded seeds, by
    :func:`harness.tune.select`."""
    import pandas as pd

    n_seeds = len(recorded.seeds)
    final = recorded.curves[:, :, -1]
    frame = pd.DataFrame({"point": np.repeat(recorded.point, n_seeds), "trial": np.repeat(recorded.trial, n_seeds),
                          "seed": np.tile(np.arange(n_seeds), len(recorded.names)), "status": RunStatus.DONE.value,
                          "final_val_acc": final.ravel()})
    chosen = tune.select(frame).sort_values("point")
    return chosen.trial.to_numpy()
