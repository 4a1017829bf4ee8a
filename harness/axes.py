"""A grid file's axes: each a non-empty list of distinct values (integers
where they must be), the architectures from ``layers`` or depth x width x
shape, and durations ("45m"). Each refusal is one :class:`ConfigError`
naming the file and the key."""
from __future__ import annotations

import itertools

from .config import coerce
from .errors import ConfigError

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}
SHAPES = ("constant", "tapered")  # tapered: width, width/2, width/4, ...
# The shape's old name, still accepted: it clashed with strategy = "halving".
SHAPE_ALIASES = {"halving": "tapered"}
ARCH_AXES = ("depth", "width", "shape")


def axis(values, key, where):
    if not isinstance(values, list):
        raise ConfigError(f"{where} {key}: an axis must be a list of values, got {values!r}")
    if not values:
        raise ConfigError(f"{where} {key}: empty axis; give at least one value")
    return values


def once(values, key, where):
    """An axis lists each value once: a repeat would silently make the same
    runs again (and be listed once), so it is refused, naming the key."""
    seen = []
    for v in values:
        if v in seen:
            shown = "-".join(map(str, v)) if isinstance(v, tuple) else repr(v)
            raise ConfigError(f"{where} {key}: {shown} is listed twice; identical runs are trained once, "
                              "so list each value once")
        seen.append(v)
    return values


def int_axis(values, key, where, minimum=1):
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ConfigError(f"{where} {key}: values must be integers, got {v!r}")
        if v < minimum:
            raise ConfigError(f"{where} {key}: {v} must be at least {minimum}")
    return values


def architectures(grid, n_in, n_out, where):
    """Layer lists from explicit ``layers`` and from depth x width x shape."""
    archs = []
    if "layers" in grid:
        values = axis(grid["layers"], "layers", where)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            flat = ", ".join(map(str, values))
            raise ConfigError(f"{where} layers: an axis is a list of layer lists; for this one architecture "
                              f"write layers = [[{flat}]] (or layers = [{flat}] in [train])")
        for layers in values:
            archs.append(coerce("layers", layers, f"{where} layers"))
        once(archs, "layers", where)
    gen = [k for k in ARCH_AXES if k in grid]
    if gen:
        if "depth" not in grid or "width" not in grid:
            missing = "width" if "depth" in grid else "depth"
            raise ConfigError(f"{where}: {', '.join(gen)} given without {missing}; "
                              "generated architectures need both depth and width")
        depths = once(int_axis(axis(grid["depth"], "depth", where), "depth", where), "depth", where)
        widths = once(int_axis(axis(grid["width"], "width", where), "width", where), "width", where)
        shapes = once(axis(grid.get("shape", ["constant"]), "shape", where), "shape", where)
        for s in shapes:
            if s not in SHAPES and s not in SHAPE_ALIASES:
                raise ConfigError(f"{where} shape: {s!r} is not one of {', '.join(SHAPES)}")
        shapes = [SHAPE_ALIASES.get(s, s) for s in shapes]
        for depth, width, shape in itertools.product(depths, widths, shapes):
            hidden = [width // 2**i if shape == "tapered" else width for i in range(depth)]
            if min(hidden) < 1:
                raise ConfigError(f"{where}: width {width} halved {depth - 1} times leaves no units")
            archs.append((n_in, *hidden, n_out))
    return list(dict.fromkeys(archs))  # keep order, drop repeats


def parse_duration(value, where):
    """Seconds from ``"45m"``, ``"2h"``, ``"90s"`` or ``"1.5h"`` (units: s, m, h)."""
    text = str(value).strip() if isinstance(value, str) else ""
    unit = DURATION_UNITS.get(text[-1:]) if text else None
    try:
        seconds = float(text[:-1]) * unit if unit else None
    except ValueError:
        seconds = None
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{where}: {value!r} is not a duration; write it like \"45m\", \"2h\" or \"90s\"")
    return seconds
