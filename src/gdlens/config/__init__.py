"""One configuration schema for ``gd.train``, sweeps and the command line.

- :mod:`~gdlens.config.schema`: the fields, :func:`normalize` (validate, coerce, fill
  defaults) and :func:`config_key` (a config's identity as canonical JSON).
- :mod:`~gdlens.config.build`: task, model, probes and ``gd.train`` arguments from a config.
- :mod:`~gdlens.config.record`: the config ``gd.train`` records with a run.
- :mod:`~gdlens.config.yaml_strict`: YAML without duplicate keys, with ``1e-2`` as a number.
"""

from gdlens.config.coerce import ConfigError
from gdlens.config.schema import DEFAULTS, FIELDS, PROBES, config_key, identity, normalize

__all__ = ["ConfigError", "DEFAULTS", "FIELDS", "PROBES", "normalize", "config_key", "identity"]
