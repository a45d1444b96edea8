"""Probes: one module per phenomenon of training dynamics, as pure functions (tensors in,
numbers out), each with its math and paper in the docstring.

- :mod:`~gdlens.probes.condensation`: neurons condensing onto few orientations.
- :mod:`~gdlens.probes.frequency`: the frequency principle (errors per frequency).
- :mod:`~gdlens.probes.sharpness`: Hessian sharpness, Adam's preconditioned sharpness, stability thresholds
  (pure functions in :mod:`~gdlens.probes.hessian` and :mod:`~gdlens.probes.stability`).
- :mod:`~gdlens.probes.clocks`: training clocks (grokking), with :mod:`~gdlens.probes.energies` (weight
  energies) and :mod:`~gdlens.probes.groups` (gradient norms and NTK traces per parameter group).
- :mod:`~gdlens.probes.ntk`: the empirical NTK and its motion.
- :mod:`~gdlens.probes.similarity`: CKA and neuron matching.
- :mod:`~gdlens.probes.representation`: participation ratio, PCA, representation drift.
- :mod:`~gdlens.probes.parameters`: parameter norms, relative change, Schatten norms.

Schedulable probes (the :class:`~gdlens.probes.base.Probe` protocol, run by the training
:class:`~gdlens.train.Recorder`) wrap these functions: :mod:`~gdlens.probes.training`
(metrics, norms, relative change, hidden participation ratio), :mod:`~gdlens.probes.kp`, and
:mod:`~gdlens.probes.wrappers`, one probe per phenomenon: :class:`CondensationProbe`,
:class:`FrequencyProbe`, :class:`SharpnessProbe`, :class:`NTKProbe`,
:class:`RepresentationProbe`; :mod:`~gdlens.probes.multitask`: :class:`MultiTaskProbe` (task interference,
hidden-state similarity and update alignment between the tasks of a multi-task batch).
"""

from gdlens.probes import (
    clocks,
    condensation,
    energies,
    frequency,
    groups,
    hessian,
    ntk,
    parameters,
    representation,
    sharpness,
    similarity,
    stability,
)
from gdlens.probes.base import Probe, ProbeContext, Schedule, as_schedule
from gdlens.probes.clocks import ClockProbe
from gdlens.probes.energies import EnergyProbe
from gdlens.probes.groups import HeadEmbeddingProbe
from gdlens.probes.kp import KPProbe
from gdlens.probes.multitask import MultiTaskProbe
from gdlens.probes.training import (
    HiddenParticipationProbe,
    MetricsProbe,
    ParameterNormProbe,
    RelativeChangeProbe,
    default_probes,
)
from gdlens.probes.condensation import CondensationProbe
from gdlens.probes.frequency import FrequencyProbe
from gdlens.probes.ntk import NTKProbe
from gdlens.probes.sharpness import SharpnessProbe
from gdlens.probes.representation import RepresentationProbe

__all__ = [
    "clocks",
    "energies",
    "groups",
    "hessian",
    "stability",
    "ClockProbe",
    "EnergyProbe",
    "HeadEmbeddingProbe",
    "condensation",
    "frequency",
    "sharpness",
    "ntk",
    "similarity",
    "representation",
    "parameters",
    "Probe",
    "ProbeContext",
    "Schedule",
    "as_schedule",
    "KPProbe",
    "MultiTaskProbe",
    "MetricsProbe",
    "ParameterNormProbe",
    "RelativeChangeProbe",
    "HiddenParticipationProbe",
    "default_probes",
    "CondensationProbe",
    "FrequencyProbe",
    "SharpnessProbe",
    "NTKProbe",
    "RepresentationProbe",
]
