"""A sweep's structure, kept with its runs: ``<store>/sweeps/<name>.json`` holds the spec's
axes (:meth:`SweepSpec.axes`: which fields were gridded, zipped, seeded) and the spec itself,
so a report knows what to aggregate (seeds) and what never to average away (every other axis).

The file is written by :func:`gdlens.sweep` before the first run starts and replaced when the
same sweep name is run again with another spec (the runs' own configs do not change)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gdlens.sweep.spec import SweepAxis, SweepSpec

__all__ = ["save_structure", "load_structure", "structure_path"]


def structure_path(store: Any, name: str) -> Path:
    """Where the structure of sweep ``name`` lives in ``store`` (a Store or its directory)."""
    root = Path(getattr(store, "path", store))
    return root / "sweeps" / f"{name}.json"


def save_structure(store: Any, spec: SweepSpec) -> Path:
    """Write ``spec``'s axes and the spec itself for the sweep ``spec.name``."""
    path = structure_path(store, spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"name": spec.name, "axes": [a.to_dict() for a in spec.axes()], "spec": spec.to_dict()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_structure(store: Any, name: str) -> list[SweepAxis] | None:
    """The stored axes of sweep ``name``, or None when none were stored (a list of configs, a
    sweep from before structures were kept, runs tagged by hand) or the file is unreadable."""
    path = structure_path(store, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [SweepAxis.from_dict(a) for a in data["axes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
