"""Deprecated: the probes that lived here moved to the module of their phenomenon.

Each module of :mod:`gdlens.probes` holds its pure functions and, last, its probe; model
plumbing is :mod:`gdlens.probes.plumbing`. Importing a name from here still works and emits a
:class:`DeprecationWarning` naming its new home (module-level ``__getattr__``, PEP 562):

=====================  ==========================================
name                   new home
=====================  ==========================================
CondensationProbe      gdlens.probes.condensation
FrequencyProbe         gdlens.probes.frequency
SharpnessProbe         gdlens.probes.sharpness
NTKProbe               gdlens.probes.ntk (with ntk_matrix, ntk_entries)
RepresentationProbe    gdlens.probes.representation
resolve_layer,         gdlens.probes.plumbing
layer_activations,
spread_indices
=====================  ==========================================

The private aliases of the plumbing (``_trainable``, ``_functional_loss``, ...) point at their
public names in :mod:`gdlens.probes.plumbing`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__ = [
    "CondensationProbe",
    "FrequencyProbe",
    "SharpnessProbe",
    "NTKProbe",
    "RepresentationProbe",
    "resolve_layer",
    "layer_activations",
    "ntk_matrix",
    "ntk_entries",
    "spread_indices",
]

_PLUMBING = "gdlens.probes.plumbing"

#: name here -> (module, name there)
MOVED: dict[str, tuple[str, str]] = {
    "CondensationProbe": ("gdlens.probes.condensation", "CondensationProbe"),
    "FrequencyProbe": ("gdlens.probes.frequency", "FrequencyProbe"),
    "SharpnessProbe": ("gdlens.probes.sharpness", "SharpnessProbe"),
    "NTKProbe": ("gdlens.probes.ntk", "NTKProbe"),
    "RepresentationProbe": ("gdlens.probes.representation", "RepresentationProbe"),
    "ntk_matrix": ("gdlens.probes.ntk", "ntk_matrix"),
    "ntk_entries": ("gdlens.probes.ntk", "ntk_entries"),
    "_kernel_from_rows": ("gdlens.probes.ntk", "_kernel_from_rows"),
    "_alignment_targets": ("gdlens.probes.ntk", "_alignment_targets"),
    "_learning_rate": ("gdlens.probes.sharpness", "learning_rate"),
    "resolve_layer": (_PLUMBING, "resolve_layer"),
    "layer_activations": (_PLUMBING, "layer_activations"),
    "spread_indices": (_PLUMBING, "spread_indices"),
    "forward": (_PLUMBING, "forward"),
    "_check_data_choice": (_PLUMBING, "check_data_choice"),
    "_functional_loss": (_PLUMBING, "functional_loss"),
    "_functional_model": (_PLUMBING, "functional_model"),
    "_data": (_PLUMBING, "probe_data"),
    "_submodule": (_PLUMBING, "submodule"),
    "_trainable": (_PLUMBING, "trainable_params"),
    "ProbeContext": ("gdlens.probes.base", "ProbeContext"),
    "Schedule": ("gdlens.probes.base", "Schedule"),
    "as_schedule": ("gdlens.probes.base", "as_schedule"),
}


def __getattr__(name: str) -> Any:
    """The moved object, with a DeprecationWarning naming where to import it from."""
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = MOVED[name]
    warnings.warn(
        f"gdlens.probes.wrappers is deprecated: import {attr} from {module} (gdlens.probes.wrappers.{name} "
        f"moved there)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(MOVED))
