"""Probes: measurements of training dynamics, one module per phenomenon.

Layout. Each phenomenon module holds its pure functions (tensors in, numbers out, the math and
the paper in the docstring) and, last, its probe, whose ``compute`` only calls those functions:

- :mod:`~gdlens.probes.condensation`: neurons condensing onto few orientations; :class:`CondensationProbe`.
- :mod:`~gdlens.probes.frequency`: the frequency principle (errors per frequency); :class:`FrequencyProbe`.
- :mod:`~gdlens.probes.sharpness`: sharpness against the stability threshold; :class:`SharpnessProbe`
  (its pure functions in :mod:`~gdlens.probes.hessian` and :mod:`~gdlens.probes.stability`).
- :mod:`~gdlens.probes.ntk`: the empirical NTK and its motion; :class:`NTKProbe`.
- :mod:`~gdlens.probes.representation`: participation ratio, PCA, representation drift;
  :class:`RepresentationProbe` (CKA and neuron matching in :mod:`~gdlens.probes.similarity`).
- :mod:`~gdlens.probes.clocks`: training clocks (grokking); :class:`ClockProbe`.
  :mod:`~gdlens.probes.energies`: weight energies; :class:`EnergyProbe`.
  :mod:`~gdlens.probes.groups`: gradient norms and NTK traces per parameter group;
  :class:`HeadEmbeddingProbe`.
- :mod:`~gdlens.probes.kp`: the KP decomposition of gradient flow; :class:`KPProbe`.
- :mod:`~gdlens.probes.multitask`: how the tasks of a multi-task batch share gradient flow;
  :class:`MultiTaskProbe`.
- :mod:`~gdlens.probes.parameters`: parameter norms, relative change, Schatten norms, read by
  the everyday probes of :mod:`~gdlens.probes.training` (:class:`MetricsProbe`,
  :class:`ParameterNormProbe`, :class:`RelativeChangeProbe`, :class:`HiddenParticipationProbe`,
  :func:`default_probes`).

Around them:

- :mod:`~gdlens.probes.base`: the :class:`Probe` protocol (``init(ctx) -> state``,
  ``compute(ctx, state) -> (values, state)``; the :class:`~gdlens.train.Recorder` owns the
  states), :class:`ProbeContext`, :class:`Schedule`.
- :mod:`~gdlens.probes.spec`: what a probe's keys mean and how to draw them (``Metric``,
  ``Panel``), read by the report.
- :mod:`~gdlens.probes.plumbing`: model plumbing (which tensors a probe reads, activation
  capture, functional calls); no phenomenon lives there.
- :mod:`~gdlens.probes.wrappers`: deprecated; its names import from their new homes with a
  ``DeprecationWarning``.
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
from gdlens.probes.condensation import CondensationProbe
from gdlens.probes.energies import EnergyProbe
from gdlens.probes.frequency import FrequencyProbe
from gdlens.probes.groups import HeadEmbeddingProbe
from gdlens.probes.kp import KPProbe
from gdlens.probes.multitask import MultiTaskProbe
from gdlens.probes.ntk import NTKProbe
from gdlens.probes.representation import RepresentationProbe
from gdlens.probes.sharpness import SharpnessProbe
from gdlens.probes.training import (
    HiddenParticipationProbe,
    MetricsProbe,
    ParameterNormProbe,
    RelativeChangeProbe,
    default_probes,
)

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
