"""Scalar coercion for configuration values, and the one error type of the config schema.

Every coercer takes ``(value, key)`` and returns the value in its canonical type or raises
:class:`ConfigError` naming ``key``. Numbers are numbers whatever their spelling: ``"1e-2"``,
``"0.01"``, ``1e-2`` and ``0.01`` all become the float ``0.01``; an int-typed key accepts
``10``, ``10.0`` and ``"1e1"`` (all ``10``) but not ``10.5``; a float-typed key turns ``1``
into ``1.0``, so a config does not change identity with the way its numbers are written.
Booleans are never numbers (``True`` is not ``1`` here).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["ConfigError", "suggest", "to_float", "to_int", "to_bool", "to_str", "NUMBER"]

# a decimal number as people write it: 1, -2, 0.5, .5, 5., 1e-2, 1.5E+3, inf, nan
NUMBER = re.compile(r"[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?|[-+]?(?:inf|infinity|nan)",
                    re.IGNORECASE)


class ConfigError(ValueError):
    """A configuration that the schema rejects (an unknown key, a value of the wrong type).
    A ``ValueError``, so callers that catch those keep working."""


def suggest(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` (difflib ratio ≥ 0.6), else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(value: Any, key: str, what: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"config key {key!r} must be {what}, got the boolean {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value.strip().replace("_", ""))
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return _number(value.item(), key, what)
    raise ConfigError(f"config key {key!r} must be {what}, got {value!r}")


def to_float(value: Any, key: str) -> float:
    """A float from a float, an int or a numeric string."""
    return _number(value, key, "a number")


def to_int(value: Any, key: str) -> int:
    """An int from an int, an integral float or a numeric string with an integral value."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    x = _number(value, key, "an integer")
    if not math.isfinite(x) or x != int(x):
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    return int(x)


def to_bool(value: Any, key: str) -> bool:
    """A bool from a bool (or the strings true/false, any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")


def to_str(value: Any, key: str) -> str:
    """A string (numbers and booleans are refused: they are not names)."""
    if isinstance(value, str):
        return value
    raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
