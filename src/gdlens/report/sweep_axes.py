"""Which columns of a sweep's runs are its axes, and how a report lays them out.

A sweep's axes come from its spec (:mod:`gdlens.sweep.structure`: gridded fields, zipped
groups, the seed), or, for runs without a stored structure, from the runs themselves: every
``config.`` column with more than one value is swept, ``config.seed`` is the seed, and columns
whose values determine each other one to one are one zipped axis. A ``seed`` field is the
seed however it was swept (``seeds=`` or a grid over ``seed``). The facts ``gd.train``
records about a model (``model.class``, ``model.num_params``) are never axes.

Layout (:func:`layout`): the seed is always aggregated (mean ± standard error over seeds);
each other axis is a *dimension*, zipped fields being one dimension whose value is the tuple
of their values. ``x`` and ``y`` are the first two dimensions unless chosen (by a field of
the axis, or the axis' label); every remaining dimension that still varies inside an (x, y)
cell becomes a facet (small multiples, or one line per value), so no swept axis is ever
averaged away. A remaining dimension that does not vary inside any cell is determined by x
and y (a zipped partner) and is only listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gdlens.config.coerce import ConfigError, suggest

__all__ = ["Dimension", "Layout", "derive_axes", "sweep_axes", "layout", "dimension_values"]

_RECORDED = ("config.model.class", "config.model.num_params")
_SEED = "seed"


@dataclass(frozen=True)
class Dimension:
    """A swept dimension: its ``label`` and the ``keys`` (dotted config fields) it is made of."""

    label: str
    keys: tuple[str, ...]
    kind: str = "grid"

    @property
    def columns(self) -> list[str]:
        return [f"config.{k}" for k in self.keys]


@dataclass
class Layout:
    """How a sweep report draws its runs: ``x``, ``y`` (None for curves), ``facets`` (each
    value of their combination is one panel or one line), ``determined`` (dimensions fixed by
    x and y), ``seed`` (the seed column, or None when there are no seeds)."""

    x: Dimension | None
    y: Dimension | None
    facets: list[Dimension] = field(default_factory=list)
    determined: list[Dimension] = field(default_factory=list)
    seed: str | None = None


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _column(frame, column: str):
    return frame[column].map(_hashable)


def derive_axes(frame) -> list[Dimension]:
    """The axes of runs without a stored structure (see the module docstring)."""
    varied = [c for c in frame.columns if c.startswith("config.") and c not in _RECORDED
              and _column(frame, c).nunique(dropna=False) > 1]
    axes: list[list[str]] = []
    seed = None
    for col in varied:
        if col == f"config.{_SEED}":
            seed = col
            continue
        values = _column(frame, col)
        for group in axes:
            first = _column(frame, group[0])
            pairs = len(set(zip(first, values)))
            if pairs == first.nunique(dropna=False) == values.nunique(dropna=False):
                group.append(col)
                break
        else:
            axes.append([col])
    out = [Dimension(", ".join(c[7:] for c in g), tuple(c[7:] for c in g), "zip" if len(g) > 1 else "grid")
           for g in axes]
    return out + ([Dimension(_SEED, (_SEED,), "seed")] if seed else [])


def sweep_axes(store, name: str, frame) -> list[Dimension]:
    """The axes of sweep ``name``: from its stored structure when there is one (keeping only
    fields present in the runs' configs), else derived from ``frame``."""
    from gdlens.sweep.structure import load_structure

    stored = load_structure(store, name)
    if stored is None:
        return derive_axes(frame)
    out = []
    for axis in stored:
        keys = tuple(k for k in axis.keys if f"config.{k}" in frame.columns)
        if keys:  # a seed swept as a grid field is still the seed
            out.append(Dimension(", ".join(keys), keys, "seed" if keys == (_SEED,) else axis.kind))
    return out


def dimension_values(frame, dim: Dimension) -> list:
    """Each run's value of ``dim``: the field's value, or the tuple of a zipped dimension's."""
    cols = [_column(frame, c).tolist() for c in dim.columns]
    return cols[0] if len(cols) == 1 else [tuple(v) for v in zip(*cols)]


def _resolve(key: str, dims: Sequence[Dimension], which: str) -> Dimension:
    key = key[len("config."):] if key.startswith("config.") else key
    for dim in dims:
        if key == dim.label or key in dim.keys:
            return dim
    known = [k for d in dims for k in d.keys]
    raise ConfigError(f"{which}={key!r} is not a swept axis of this sweep{suggest(key, known)}; "
                      f"the swept axes are {', '.join(d.label for d in dims) or 'none'}")


def _varies_within(frame, dim: Dimension, by: Sequence[Dimension]) -> bool:
    if not by:
        return len(set(dimension_values(frame, dim))) > 1
    cells: dict[Any, set] = {}
    keys = list(zip(*(dimension_values(frame, d) for d in by)))
    for cell, value in zip(keys, dimension_values(frame, dim)):
        cells.setdefault(cell, set()).add(value)
    return any(len(v) > 1 for v in cells.values())


def layout(frame, axes: Sequence[Dimension], x: str | None = None, y: str | None = None) -> Layout:
    """Choose x, y and the facets (see the module docstring). ``x``/``y`` name a field of an
    axis or an axis' label; an unknown one raises ``ConfigError`` with a suggestion."""
    dims = [d for d in axes if d.kind != "seed"]
    seed = next((d.columns[0] for d in axes if d.kind == "seed"), None)
    if y is not None and x is None:
        raise ConfigError("y= needs x= too")
    if x is not None:
        xd = _resolve(x, dims, "x")
        yd = _resolve(y, dims, "y") if y is not None else None
        if yd == xd:
            raise ConfigError(f"x and y are the same axis ({xd.label}): zipped fields move together")
    else:
        xd = dims[0] if dims else None
        yd = dims[1] if len(dims) > 1 else None
    chosen = [d for d in (xd, yd) if d is not None]
    facets, determined = [], []
    for dim in dims:
        if dim in chosen:
            continue
        (facets if _varies_within(frame, dim, chosen + facets) else determined).append(dim)
    return Layout(xd, yd, facets, determined, seed)
