"""The keyword arguments of a model, task or probe, read from its signature: which keys are
allowed, the type each takes (from its annotation, else its default), and the default that
fills a key left out.

A kind is parsed from the annotation text (modules use ``from __future__ import
annotations``): ``int``, ``float``, ``bool`` and ``str`` are coerced
(:mod:`gdlens.config.coerce`); ``Sequence[float]``/``tuple[...]``/``list[...]`` are lists whose
items are coerced when the item type is one of those; ``X | None`` also takes None; anything
else (a Schedule, a Teacher) is passed through unchanged. Defaults that are not plain data
(a dtype, a factory) are not filled.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gdlens.config.coerce import ConfigError, to_bool, to_float, to_int, to_str

__all__ = ["Param", "signature_params", "coerce_param", "fill_and_coerce"]

_SCALARS: dict[str, Callable[[Any, str], Any]] = {"int": to_int, "float": to_float, "bool": to_bool, "str": to_str}
_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One keyword argument: its ``kind`` (``"int"``, ``"float"``, ``"bool"``, ``"str"``,
    ``"list"`` or ``"any"``), the ``item`` kind of a list, whether None is allowed, and the
    default (``inspect.Parameter.empty`` when it must be given or is not plain data)."""

    name: str
    kind: str
    item: str = "any"
    optional: bool = False
    default: Any = _MISSING


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


def _parse(annotation: Any, default: Any) -> tuple[str, str, bool]:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if annotation is _MISSING or not text:
        if isinstance(default, bool):
            return "bool", "any", False
        for name, typ in (("int", int), ("float", float), ("str", str)):
            if isinstance(default, typ):
                return name, "any", False
        return "any", "any", default is None
    parts = [p.strip() for p in text.split("|")]
    optional = "None" in parts
    parts = [p for p in parts if p != "None"]
    if len(parts) != 1:
        return ("int" if "int" in parts else "any"), "any", optional
    part = parts[0]
    if part in _SCALARS:
        return part, "any", optional
    seq = re.fullmatch(r"(?:Sequence|tuple|list)\[(\w+)(?:, *\w+)*(?:, *\.\.\.)?\]", part)
    if seq:
        return "list", (seq.group(1) if seq.group(1) in _SCALARS else "any"), optional
    return "any", "any", optional


def signature_params(fn: Callable, skip: Sequence[str] = ()) -> dict[str, Param]:
    """The keyword arguments of ``fn`` (a function or a class), less ``self`` and ``skip``."""
    target = fn.__init__ if isinstance(fn, type) else fn
    out = {}
    for name, p in inspect.signature(target).parameters.items():
        if name in ("self", *skip) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default if _plain(p.default) else _MISSING
        kind, item, optional = _parse(p.annotation, p.default)
        out[name] = Param(name, kind, item, optional or p.default is None, default)
    return out


def coerce_param(param: Param, value: Any, key: str) -> Any:
    """``value`` in ``param``'s kind (``key`` names it in errors)."""
    if value is None and param.optional:
        return None
    if param.kind in _SCALARS:
        return _SCALARS[param.kind](value, key)
    if param.kind == "list":
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        coerce = _SCALARS.get(param.item)
        return [coerce(v, f"{key}[{i}]") if coerce else v for i, v in enumerate(value)]
    return list(value) if isinstance(value, tuple) else value


def fill_and_coerce(given: Mapping[str, Any], params: Mapping[str, Param], where: str,
                    reserved: Sequence[str] = ()) -> dict[str, Any]:
    """``given`` with every key checked against ``params`` (an unknown one raises, with a
    suggestion), coerced, and every plain default filled in (sorted by key). ``where`` prefixes
    key names in errors (``"model.hidden"``); ``reserved`` keys are handled by the caller."""
    from gdlens.config.coerce import suggest

    out: dict[str, Any] = {}
    for key, value in given.items():
        if key in reserved:
            continue
        if key not in params:
            raise ConfigError(f"unknown config key {where + key!r}{suggest(key, list(params) + list(reserved))}; "
                              f"allowed: {', '.join(sorted([*params, *reserved]))}")
        out[key] = coerce_param(params[key], value, f"{where}{key}")
    for name, p in params.items():
        if name not in out and p.default is not _MISSING:
            out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return dict(sorted(out.items()))
