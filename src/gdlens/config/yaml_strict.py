"""Strict YAML for configs and sweep specs: a duplicated mapping key is an error (PyYAML keeps
the last value silently), and numbers in exponent form without a dot (``1e-2``, ``3E5``), which
YAML 1.1 reads as strings, are read as floats, as YAML 1.2 does."""

from __future__ import annotations

import os
import re
from typing import Any

from gdlens.config.coerce import ConfigError

__all__ = ["load_yaml", "loads_yaml"]

# YAML 1.2 core-schema floats that the YAML 1.1 resolver misses (it requires a dot)
_FLOAT_12 = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)$")


def _loader():
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - pyyaml ships with the analysis and dask extras
        raise ImportError("YAML configs need pyyaml: pip install 'gdlens[analysis]'") from err

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate keys and reads ``1e-2`` as a float."""

        def construct_mapping(self, node, deep=False):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise ConfigError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                                      f"(first at line {seen[key] + 1}): a mapping holds each key once")
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))
    return StrictLoader, yaml.YAMLError


def loads_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML ``text`` strictly; errors name ``source``."""
    loader, yaml_error = _loader()
    try:
        return __import__("yaml").load(text, Loader=loader)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml_error as err:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse the YAML file at ``path`` strictly (a missing file raises ``ConfigError``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read {os.fspath(path)}: {err.strerror}") from None
    return loads_yaml(text, os.fspath(path))
