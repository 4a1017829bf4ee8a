"""Small helpers for the words a command prints."""
from __future__ import annotations


def count(n, noun, plural=None) -> str:
    """``"1 worker"``, ``"2 workers"``, ``"0 runs"``; ``plural`` for nouns
    that do not just take an "s" (``count(1, "process", "processes")``).
    Only the last word of ``noun`` changes: ``count(3, "grid point")``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
