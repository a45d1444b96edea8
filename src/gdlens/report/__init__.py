"""Reports: matplotlib figures of recorded dynamics and one self-contained HTML file per run
or sweep.

    import gdlens as gd
    gd.report(run, "run.html")                       # a Run
    gd.report(store, "sweep.html", name="lr-grid")   # a Store (or its directory) + run id or sweep name
    gd.report(store, "sweep.html", name="lr-grid", x="lr", y="model.hidden")  # a sweep's figure axes
    fig = gd.report.panels.probe_figure(run, "kp")    # one probe's section, drawn as it declared

This package is callable: ``gdlens.report(...)`` is :func:`write_report`. matplotlib (the
``report`` extra) is imported only when a figure or report is made, so ``import gdlens`` works
without it.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["write_report", "figures", "html", "panels", "plans", "sweep_axes", "tables"]


def write_report(source, path, name=None, x=None, y=None):
    """Write one self-contained HTML report of a run or sweep (``x``/``y``: a sweep's figure
    axes); see :func:`gdlens.report.html.write_report`."""
    from gdlens.report.html import write_report as _write

    return _write(source, path, name=name, x=x, y=y)


def __getattr__(attr):
    if attr in ("figures", "html", "panels", "plans", "sweep_axes", "tables"):
        return importlib.import_module(f"{__name__}.{attr}")
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


class _CallableModule(types.ModuleType):
    """``gdlens.report`` is both this package and the function :func:`write_report`."""

    def __call__(self, source, path, name=None, x=None, y=None):
        return write_report(source, path, name=name, x=x, y=y)


sys.modules[__name__].__class__ = _CallableModule
