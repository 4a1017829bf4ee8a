"""The bench's layout contestants: this kernel's layout table with one
product (or all) in its other layout, timed beside the table's choice, and
the verdict rows (:data:`harness.blas.LAYOUTS`)."""
from __future__ import annotations

from . import blas

# Each product alone in its other layout, and all of them at once: a
# transposed product's output is Fortran-ordered and feeds the next one, so
# products do not flip independently (measured: under Haswell, float64's
# products flipped one at a time were each ~1.35x slower; all three, not).
FLIPS = (*blas.PRODUCTS, "all")


def flipped(dtype, product):
    """This kernel's layout table with ``product`` of ``dtype`` (or "all"
    of them) in its other layout."""
    table = {d: dict(t) for d, t in blas.layouts().items()}
    for k in blas.PRODUCTS if product == "all" else (product,):
        table[dtype][k] = not table[dtype][k]
    return table


def with_layouts(table, fn):
    """``fn`` run under the layout ``table`` (:func:`harness.blas.set_layouts`), then the kernel's again."""
    def run():
        blas.set_layouts(table)
        try:
            return fn()
        finally:
            blas.set_layouts(None)
    return run


def layout_contestants(make, dtype):
    """``{"flip <product>": fn}``: ``make()`` (a fresh callable) under the
    table with each product of ``dtype``, and all, in the other layout."""
    return {f"flip {k}": with_layouts(flipped(dtype, k), make()) for k in FLIPS}


def layout_verdicts(section, name, dtype, t, add, ours="ours"):
    """One row per product: the table's layout against the other, timed in
    the same round-robin (``t[ours]`` against ``t["flip <product>"]``)."""
    table = blas.layouts(dtype=dtype)
    for k in FLIPS:
        ratio = t[ours] / t[f"flip {k}"]
        chosen = ("transposed" if table[k] else "as written") if k != "all" else \
            "/".join("T" if table[p] else "W" for p in blas.PRODUCTS)
        verdict = (f"the table's choice is slower here by {100 * (ratio - 1):.0f}%" if ratio > 1
                   else f"the table's choice is faster by {100 * (1 / ratio - 1):.0f}%" if ratio < 1
                   else "the two layouts took the same time")
        add(section, f"{name} {dtype}: {k} {chosen} (table) / other layout", ratio, "x", f"({verdict})")
