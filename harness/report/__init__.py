"""Reports of sweep folders, from their CSV files alone.

Floors, imports only downward: :mod:`.stats` (pure statistics over arrays),
:mod:`.decisions` (each variant classed against the best: TOST, paired or
Welch, P(A > B)), :mod:`.reading` (a sweep folder's files, checked), :mod:`.tables` (variants, intervals, classes, budgets,
Pareto front), :mod:`.verdict` (the verdict's sentences),
:mod:`.costs` (every cost of a variant), :mod:`.front` (the rising front),
:mod:`.frontier` and :mod:`.fitted` (the fitted accuracy-cost frontier),
:mod:`.plots` and :mod:`.curves`, :mod:`.render` (Markdown and HTML) and :mod:`.pooling` (the
runs of several sweeps, for a comparison) and :mod:`.document` (the report of a
folder, and :func:`compare` of several).
"""
from .document import build, compare, write_report
from .plots import PLOTS
from .reading import load
from .tables import grouped, pareto, variant_keys

__all__ = ["PLOTS", "build", "compare", "grouped", "load", "pareto", "variant_keys", "write_report"]
