"""Sweep specifications: a base config and axes (grid, zip, explicit overrides, seeds)
expanded into a list of full config dicts.

Field names are dotted paths into the config, e.g. ``"model.hidden"`` or ``"lr"``. The
expansion is the Cartesian product of: each grid field; each zip group (its fields vary
together); the explicit list of overrides; and the seeds (set at ``seed_field``, default
``"seed"``). An empty axis contributes a single "no change".

:meth:`SweepSpec.axes` is the spec's structure: which fields were gridded, which zipped (or set
together by one explicit override), and which is the seed. Reports read it to aggregate seeds
and never average a swept axis away.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gdlens.config.coerce import ConfigError, suggest

__all__ = ["SweepSpec", "SweepAxis", "set_path", "get_path"]

SPEC_KEYS = ("base", "grid", "zip", "configs", "seeds", "name", "seed_field")


@dataclass(frozen=True)
class SweepAxis:
    """One axis of a sweep: ``kind`` is ``"grid"`` (one field), ``"zip"`` (fields that move
    together: a zip group, or the explicit ``configs`` list) or ``"seed"``; ``keys`` are the
    dotted fields it sets."""

    kind: str
    keys: tuple[str, ...]

    @property
    def label(self) -> str:
        return ", ".join(self.keys)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "keys": list(self.keys)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepAxis:
        return cls(str(data["kind"]), tuple(str(k) for k in data["keys"]))


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    """Set ``config[a][b][c] = value`` for ``path == "a.b.c"``, creating dicts on the way."""
    keys = path.split(".")
    node = config
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"cannot set {path!r}: {key!r} holds {child!r}, not a mapping")
        node = child
    node[keys[-1]] = copy.deepcopy(value)


def get_path(config: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """``config[a][b][c]`` for ``path == "a.b.c"``, or ``default`` when absent."""
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def _zip_axis(zipped: Mapping[str, Sequence[Sequence[Any]]] | Sequence[Mapping[str, Sequence[Any]]]):
    """Zip groups as ``{"a,b": [[a1, b1], [a2, b2]]}`` or ``[{"a": [a1, a2], "b": [b1, b2]}]``;
    yields a list of override lists per group."""
    groups = []
    if isinstance(zipped, Mapping):
        for fields, rows in zipped.items():
            names = [f.strip() for f in fields.split(",")] if isinstance(fields, str) else list(fields)
            options = []
            for row in rows:
                row = list(row)
                if len(row) != len(names):
                    raise ValueError(f"zip group {fields!r}: row {row!r} does not have {len(names)} values")
                options.append(dict(zip(names, row)))
            groups.append(options)
    else:
        for group in zipped:
            lengths = {len(v) for v in group.values()}
            if len(lengths) > 1:
                raise ValueError(f"zip group {dict(group)!r}: value lists differ in length {sorted(lengths)}")
            n = lengths.pop() if lengths else 0
            groups.append([{k: v[i] for k, v in group.items()} for i in range(n)])
    return groups


@dataclass
class SweepSpec:
    """A sweep: ``base`` config plus axes.

    Attributes:
        base: the config every run starts from (nested dicts).
        grid: ``{field: [values]}``; the Cartesian product over fields.
        zip: fields that vary together: ``{"f1,f2": [[v1, w1], [v2, w2]]}`` or a list of
            ``{f1: [v1, v2], f2: [w1, w2]}`` groups.
        configs: an explicit list of override dicts (``{field: value}``), crossed with the rest.
        seeds: seeds set at ``seed_field``; an int n means ``range(n)``.
        name: the sweep's id in the store (runs are tagged with it).
    """

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: Any = field(default_factory=dict)
    configs: list[dict[str, Any]] = field(default_factory=list)
    seeds: Sequence[int] | int | None = None
    name: str = "sweep"
    seed_field: str = "seed"

    def __post_init__(self) -> None:
        """Check the spec's shape (the configs themselves are checked by the schema when the
        sweep runs): mappings where mappings belong, lists of values, seeds as integers, a name
        usable as a file name."""
        from gdlens.config.coerce import to_int

        for key, kind in (("base", Mapping), ("grid", Mapping), ("configs", Sequence), ("zip", (Mapping, Sequence))):
            value = getattr(self, key)
            if isinstance(value, (str, bytes)) or not isinstance(value, kind):
                raise ConfigError(f"sweep spec key {key!r} must be a {'list' if key == 'configs' else 'mapping'}, "
                                  f"got {value!r}")
        for key, values in self.grid.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ConfigError(f"grid field {key!r} needs a non-empty list of values, got {values!r}")
        for i, overrides in enumerate(self.configs):
            if not isinstance(overrides, Mapping):
                raise ConfigError(f"configs[{i}] must be a mapping of field: value, got {overrides!r}")
        if self.seeds is not None and not isinstance(self.seeds, (list, tuple, range)):
            n = to_int(self.seeds, "seeds")
            if n < 1:
                raise ConfigError(f"sweep spec key 'seeds' must be at least 1 (or a list of seeds), got {self.seeds!r}")
            self.seeds = list(range(n))
        elif self.seeds is not None:
            self.seeds = [to_int(s, f"seeds[{i}]") for i, s in enumerate(self.seeds)]
            if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
                raise ConfigError(f"sweep spec key 'seeds' must list distinct seeds, got {self.seeds!r}")
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\\0") \
                or self.name in (".", ".."):
            raise ConfigError(f"sweep name must be a non-empty string without '/', '\\' or NUL, got {self.name!r}")

    def expand(self) -> list[dict[str, Any]]:
        """Every config of the sweep, in a deterministic order (grid, zip, overrides, seeds;
        the last varies fastest)."""
        axes: list[list[dict[str, Any]]] = []
        for key, values in self.grid.items():
            axes.append([{key: v} for v in values])
        axes.extend(_zip_axis(self.zip) if self.zip else [])
        if self.configs:
            axes.append([dict(c) for c in self.configs])
        if self.seeds is not None:
            axes.append([{self.seed_field: int(s)} for s in self.seeds])
        out = []
        for combo in itertools.product(*axes):
            config = copy.deepcopy(self.base)
            for overrides in combo:
                for path, value in overrides.items():
                    set_path(config, path, value)
            out.append(config)
        return out

    def __len__(self) -> int:
        return len(self.expand())

    def axes(self) -> list[SweepAxis]:
        """The swept axes in expansion order: each grid field, each zip group, the explicit
        overrides (one zipped axis over the union of their fields), then the seeds."""
        out = [SweepAxis("grid", (key,)) for key in self.grid]
        for group in _zip_axis(self.zip) if self.zip else []:
            keys = tuple(dict.fromkeys(k for row in group for k in row))
            if keys:
                out.append(SweepAxis("zip", keys))
        if self.configs:
            out.append(SweepAxis("zip", tuple(dict.fromkeys(k for c in self.configs for k in c))))
        if self.seeds is not None:
            out.append(SweepAxis("seed", (self.seed_field,)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (what :meth:`from_dict` reads)."""
        return {"base": copy.deepcopy(self.base), "grid": copy.deepcopy(self.grid), "zip": copy.deepcopy(self.zip),
                "configs": copy.deepcopy(self.configs), "seeds": None if self.seeds is None else list(self.seeds),
                "name": self.name, "seed_field": self.seed_field}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        """From ``{"base": ..., "grid": ..., "zip": ..., "configs": ..., "seeds": ..., "name": ...}``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a sweep spec is a mapping, got {type(data).__name__}")
        for key in data:
            if key not in SPEC_KEYS:
                raise ConfigError(f"unknown sweep spec key {key!r}{suggest(key, SPEC_KEYS)}; "
                                  f"the keys are {', '.join(SPEC_KEYS)}")
        return cls(**{k: (copy.deepcopy(v) if v is not None else v) for k, v in data.items() if v is not None or k == "seeds"})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> SweepSpec:
        """From a YAML file, laid out as :meth:`from_dict`, parsed strictly
        (:func:`gdlens.config.yaml_strict.load_yaml`: a duplicated key is an error, ``1e-2`` is a
        number); the sweep name defaults to the file's stem."""
        from gdlens.config.yaml_strict import load_yaml

        data = load_yaml(path) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{os.fspath(path)}: a sweep spec is a mapping, got {type(data).__name__}")
        data = dict(data)
        data.setdefault("name", os.path.splitext(os.path.basename(os.fspath(path)))[0])
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{os.fspath(path)}: {err}") from None
