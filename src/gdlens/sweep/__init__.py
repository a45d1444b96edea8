"""Sweeps: many configs of one experiment, run into a store (docs/design.md).

- :class:`SweepSpec`: a base config with grid, zip, explicit and seed axes (Python or YAML);
  every config is validated and normalised by the one schema of :mod:`gdlens.config`.
- :func:`sweep`: runs what the store does not already hold — a local process pool, a
  vectorised ensemble of MLPs (:func:`train_ensemble`), or Dask distributed.
- :mod:`~gdlens.sweep.experiments`: built-in phase diagrams.
"""

from gdlens.sweep import experiments
from gdlens.sweep.ensemble import ensemble_groups, train_ensemble
from gdlens.sweep.runner import DEFAULTS, PROBES, SweepResult, build_model, normalize_config, pending, run_config, sweep
from gdlens.sweep.spec import SweepAxis, SweepSpec, get_path, set_path
from gdlens.sweep.structure import load_structure, save_structure

__all__ = [
    "experiments", "SweepSpec", "SweepAxis", "SweepResult", "save_structure", "load_structure", "sweep", "run_config", "pending", "normalize_config", "build_model",
    "train_ensemble", "ensemble_groups", "set_path", "get_path", "DEFAULTS", "PROBES",
]


class _CallableModule(__import__("types").ModuleType):
    """``gdlens.sweep`` is both this package and the function :func:`sweep` (the public name
    ``gd.sweep(spec, store=...)``), so ``gd.sweep.SweepSpec`` keeps working too."""

    def __call__(self, *args, **kwargs):
        return sweep(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
