"""The BLAS numpy runs in this process (which library, which OpenBLAS
kernel, the CPU), and the layout table: which way round each matrix
product goes to it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info


def cpu_model():
    """The CPU's model name, as config.json and the bench record it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def numpy_blas():
    """threadpoolctl's record of the BLAS numpy itself calls, or None. Other
    packages (scipy) may load a BLAS of their own: numpy's is the one in its
    wheel's folders when there is one there, else the first found."""
    found = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    home = Path(np.__file__).resolve().parent
    own = [lib for lib in found if Path(lib.get("filepath") or "/").resolve().parent
           in (home, home.with_name("numpy.libs"))]
    return (own or found or [None])[0]


def blas_info():
    """``{"blas", "blas_version", "blas_kernel", "blas_threads"}`` of the BLAS
    numpy uses in this process (None where unknown). The kernel is the CPU
    code path OpenBLAS chose (``OPENBLAS_CORETYPE`` changes it): results are
    bit-identical for one kernel, and may differ in the last bits across two."""
    lib = numpy_blas() or {}
    return {"blas": lib.get("internal_api"), "blas_version": lib.get("version"),
            "blas_kernel": lib.get("architecture"), "blas_threads": lib.get("num_threads")}


# Which way round each product goes to BLAS: as written (``A @ B``) or
# transposed (``(B.T @ A.T).T``, examples as columns). Same product, no copies;
# only OpenBLAS's code path, its speed and the last bits differ, so the choice
# is keyed on what a run records (config.json's ``blas_kernel`` and
# ``blas_layouts``): the OpenBLAS kernel, the dtype and the product (forward
# A @ W, weight gradient A.T @ dZ, gradient passed back dZ @ W.T). SkylakeX's
# entries are those every committed result was trained with. Haswell's
# float32 goes transposed: on an AVX2-only EPYC (issue 30) that took the
# 784-256-128-64-10 step from 1,498 to 563 ms and an epoch from 2.8 to 2.25 s.
# A dtype's three products go the same way (a transposed output is
# Fortran-ordered and feeds the next product: one flipped alone was slower
# than all). Measurements, and why no shape is in the key: docs/performance.md.
PRODUCTS = ("forward", "dW", "dA")
_ALL_PLAIN = dict.fromkeys(PRODUCTS, False)
_ALL_TRANSPOSED = dict.fromkeys(PRODUCTS, True)
LAYOUTS = {
    "SkylakeX": {"float64": _ALL_TRANSPOSED, "float32": _ALL_PLAIN},
    "Haswell": {"float64": _ALL_TRANSPOSED, "float32": _ALL_TRANSPOSED},
}
# A kernel the table does not know gets SkylakeX's layouts (the bench says so).
DEFAULT_KERNEL = "SkylakeX"

_TRANSPOSED = None  # {np.dtype: {product: bool}} for this process's kernel, set on first use


def blas_kernel():
    """The OpenBLAS kernel numpy's BLAS runs in this process (threadpoolctl's
    ``architecture``), or None when unknown. Fixed for the life of a process."""
    return (numpy_blas() or {}).get("architecture")


def layouts(kernel=None, dtype=None):
    """The table's layouts for ``kernel`` (default: this process's), as
    ``{dtype: {product: transposed}}``, or one dtype's ``{product: transposed}``.
    A kernel not in the table gets ``DEFAULT_KERNEL``'s."""
    kernel = blas_kernel() if kernel is None else kernel
    table = LAYOUTS.get(kernel, LAYOUTS[DEFAULT_KERNEL])  # copied: the entries share their dicts
    return {d: dict(t) for d, t in table.items()} if dtype is None else dict(table[str(dtype)])


def layouts_record(dtype):
    """What config.json records: ``{product: "transposed" | "as written"}``
    for ``dtype`` as this process computes it."""
    table = _active()
    return {k: "transposed" if table[np.dtype(dtype)][k] else "as written" for k in PRODUCTS}


def _active():
    global _TRANSPOSED
    if _TRANSPOSED is None:
        _TRANSPOSED = {np.dtype(d): dict(t) for d, t in layouts().items()}
    return _TRANSPOSED


def set_layouts(table):
    """Use ``table`` (``{dtype name: {product: transposed}}``; None: back to
    the kernel's) in this process from now on. For the bench, which times
    the other layouts; a run never calls it."""
    global _TRANSPOSED
    _TRANSPOSED = None if table is None else {np.dtype(d): dict(t) for d, t in table.items()}


def matmul(A, B, kind, out=None):
    """``A @ B`` (into ``out`` if given), handed to BLAS the way the layout
    table says for this kernel. (Keyed by the dtype itself: ``dtype.name``
    costs microseconds, a dozen times a chunk, all holding the GIL.)"""
    table = _TRANSPOSED if _TRANSPOSED is not None else _active()
    if table.get(A.dtype, _ALL_PLAIN)[kind]:
        product = (B.T @ A.T).T
        if out is None:
            return product
        out[...] = product
        return out
    return np.matmul(A, B, out=out)
