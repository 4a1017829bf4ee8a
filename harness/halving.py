"""Successive halving, as pure functions: the rungs, and who goes on.

Every configuration (a grid point, or a grid point and tune trial; its
seeds count together) trains to the first rung; the best 1/eta of them, by
mean validation accuracy over seeds at that iteration, continue to the next
rung from their checkpoints, and so on up to the runs' full length. The
others stop."""
from __future__ import annotations

import math


def rungs(first, eta, total):
    """Iterations at which configurations are ranked: ``first * eta**k``
    below ``total``, then ``total`` itself."""
    out, r = [], first
    while r < total:
        out.append(r)
        r *= eta
    return out + [total]


def keep_count(n, eta):
    """How many of ``n`` configurations go on: the top 1/eta, at least one."""
    return max(1, n // eta)


def promote(configs, scores, eta):
    """The configurations that go on, in their original order: the top
    :func:`keep_count` by ``scores[config]`` (higher is better; a missing or
    NaN score ranks last), ties to the one listed first."""
    def key(item):
        i, c = item
        s = scores.get(c)
        return (-(s if s is not None and not math.isnan(s) else -math.inf), i)
    best = sorted(enumerate(configs), key=key)[:keep_count(len(configs), eta)]
    return [c for _, c in sorted(best)]
