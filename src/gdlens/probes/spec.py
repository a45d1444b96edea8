"""What a probe's numbers mean and how to draw them: declared by the probe that writes them.

A probe lists the keys it records (:class:`Metric`: label, definition, unit, the key of its
standard error) and the figures that show them (:class:`Panel`). The
:class:`~gdlens.train.Recorder` writes :func:`describe` of every probe into the run's summary
under ``"probes"``, so the report reads, from the store alone, the sections, axis labels, error
bands, scales and dimension lines of each probe, and a metric name cannot drift away from the
figure that draws it. A probe without a declaration gets the report's generic panel.

Keys may be ``fnmatch`` patterns (``"eig_G_*"``, ``"train/*"``). Everything here is plain data
(JSON after :func:`describe`): no plotting library is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Metric", "Panel", "describe", "YSCALES", "PANEL_KINDS"]

YSCALES = ("linear", "log", "symlog", "auto")
PANEL_KINDS = ("lines", "matrix", "spectrum")


@dataclass(frozen=True)
class Metric:
    """One recorded key of a probe.

    Attributes:
        key: the key the probe returns (the store name is ``"<probe>/<key>"``); a pattern matches
            several (``"eig_G_*"``).
        label: what it is, in words (``"effective rank of K"``).
        definition: its formula or rule (``"(tr K)² / ‖K‖_F²"``).
        unit: its unit (``""`` when dimensionless).
        stderr: the key holding its standard error, if the probe records one.
    """

    key: str
    label: str
    definition: str = ""
    unit: str = ""
    stderr: str | None = None


@dataclass(frozen=True)
class Panel:
    """One figure panel.

    Attributes:
        title: the panel's title.
        keys: the keys (or patterns) drawn, one curve each (``kind="lines"``); for ``"matrix"``
            the array key whose latest value is drawn as an image; for ``"spectrum"`` the keys
            whose values at the last step are drawn against their index.
        ylabel: the y axis: quantity and definition or unit.
        yscale: ``"linear"``, ``"log"``, ``"symlog"`` or ``"auto"`` (log when positive values span
            more than two decades).
        ylim: fixed limits (``(0, 1)`` for accuracies), ``None`` for either end left free; the
            report never zooms into a range narrower than the data's own scale.
        bound: the key of the largest possible value (a dimension line drawn beside effective
            ranks), or None.
        kind: ``"lines"`` (curves over steps), ``"matrix"`` or ``"spectrum"``.
    """

    title: str
    keys: tuple[str, ...]
    ylabel: str
    yscale: str = "auto"
    ylim: tuple[float | None, float | None] | None = None
    bound: str | None = None
    kind: str = "lines"

    def __post_init__(self) -> None:
        if isinstance(self.keys, str):
            object.__setattr__(self, "keys", (self.keys,))
        else:
            object.__setattr__(self, "keys", tuple(self.keys))
        if self.yscale not in YSCALES:
            raise ValueError(f"yscale must be one of {YSCALES}, got {self.yscale!r}")
        if self.kind not in PANEL_KINDS:
            raise ValueError(f"kind must be one of {PANEL_KINDS}, got {self.kind!r}")
        if not self.keys:
            raise ValueError("a Panel needs at least one key")


def describe(probe: Any) -> dict[str, Any]:
    """The JSON-able declaration of ``probe``: ``{"type", "title", "metrics": [...], "panels":
    [...], "settings": {...}}`` from its ``metric_specs``, ``panels``, ``title`` and
    ``settings()`` (each optional; a probe that declares nothing gets empty lists)."""
    metrics: Sequence[Metric] = getattr(probe, "metric_specs", ()) or ()
    panels: Sequence[Panel] = getattr(probe, "panels", ()) or ()
    for m in metrics:
        if not isinstance(m, Metric):
            raise TypeError(f"{type(probe).__name__}.metric_specs must hold Metric, got {type(m).__name__}")
    for p in panels:
        if not isinstance(p, Panel):
            raise TypeError(f"{type(probe).__name__}.panels must hold Panel, got {type(p).__name__}")
    settings = probe.settings() if callable(getattr(probe, "settings", None)) else {}
    return {
        "type": type(probe).__name__,
        "title": getattr(probe, "title", None) or type(probe).__name__,
        "metrics": [dataclasses.asdict(m) for m in metrics],
        "panels": [{**dataclasses.asdict(p), "keys": list(p.keys)} for p in panels],
        "settings": {k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool)) or v is None},
    }
