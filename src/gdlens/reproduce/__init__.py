"""Published results, one command each: ``gdlens reproduce NAME`` / ``gd.reproduce(NAME)``.

    import gdlens as gd
    for e in gd.reproduce.entries():            # the registry
        print(e.name, e.citation, [c.published for c in e.claims])
    r = gd.reproduce("frequency-principle", size="small", seeds=3, store="gdlens-runs", out="fp/")
    r.claims      # [{"name", "published", "measured", "stderr", "holds", ...}], also fp/result.json
    r.report_path # fp/report.html: the redrawn figure and the claims table

Each entry (:class:`Entry`, see :mod:`gdlens.reproduce.registry` for the full contract) has
its citation, its published claims (:class:`Claim`: a number or an inequality, :class:`Rule`,
with its source), a run function for the sizes ``"tiny"`` (tests), ``"small"`` (minutes on 2
CPU cores) and ``"paper"`` (a GPU or a long run), and a figure function. ``reproduce`` writes
the runs to the store, the HTML report and ``result.json`` (:mod:`gdlens.reproduce.run`).
A claim's verdict is decided by its rule from the measured value and its standard error, with
a margin of ``z`` = 2 standard errors; a claim that does not hold at the small size says so in
its ``caveats`` (and the size at which it does); none is loosened to pass.

This package is callable: ``gdlens.reproduce(...)`` is :func:`reproduce`. matplotlib (the
``cli`` extra) is imported only when a report is written.
"""

from __future__ import annotations

import sys
import types

from gdlens.reproduce.registry import (
    SIZES,
    Above,
    Below,
    Citation,
    Claim,
    Entry,
    Measured,
    Measurements,
    Near,
    Rule,
    Within,
    entries,
    get,
    names,
    register,
    registry_table,
)
from gdlens.reproduce.run import ReproduceResult, reproduce

__all__ = [
    "reproduce", "ReproduceResult", "entries", "get", "names", "register", "registry_table", "Entry", "Claim",
    "Citation",
    "Rule", "Above", "Below", "Within", "Near", "Measured", "Measurements", "SIZES",
]


class _CallableModule(types.ModuleType):
    """``gdlens.reproduce`` is both this package and the function :func:`reproduce`."""

    def __call__(self, name, size="small", seeds=None, store="gdlens-runs", out=None, progress=False):
        return reproduce(name, size=size, seeds=seeds, store=store, out=out, progress=progress)


sys.modules[__name__].__class__ = _CallableModule
