"""Small helpers for the words a command prints."""
from __future__ import annotations


def silent(_text) -> None:
    """Says nothing: the ``say`` of a library function whose caller gave none
    (only the command line prints)."""


def count(n, noun, plural=None) -> str:
    """``"1 worker"``, ``"2 workers"``, ``"0 runs"``; ``plural`` for nouns
    that do not just take an "s" (``count(1, "process", "processes")``).
    Only the last word of ``noun`` changes: ``count(3, "grid point")``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def duration(seconds) -> str:
    """A duration for people: ``"0.4 s"``, ``"42 s"``, ``"7 min 5 s"``, ``"2 h 03 min"``."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def seconds(x) -> str:
    """Seconds alone, as ``harness status`` gives them: ``"4.2 s"``, ``"425 s"``."""
    return f"{x:.1f} s" if x < 10 else f"{x:.0f} s"
