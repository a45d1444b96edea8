"""The KP decomposition of gradient flow (arXiv 2507.06381; docs/design.md, conventions).

For a state-space model ``z_t = f(z_{t-1}, x_t; θ)``, ``y = g(z; φ)`` and loss L::

    K = J_θ J_θᵀ              parameter operator (J_θ: immediate Jacobian, z_{t-1} fixed)
    P = (I − D)⁻¹             propagator (D_t = ∂f/∂z_{t-1})
    G = P K Pᵀ                hidden-state kernel = (dz/dθ)(dz/dθ)ᵀ
    Θ = C G Cᵀ + Θ_φ          output NTK (C = ∂y/∂z, Θ_φ the readout's own kernel)
    dz/dτ = −G e              gradient flow moves the states (e = ∂L/∂z)

:class:`KPFlow` computes all of them at one point of training.
"""

from gdlens.flow.analysis import (
    Interference,
    effective_ranks,
    hidden_participation_ratio,
    misdirection,
    partial_effective_ranks,
    task_interference,
    top_eigenfunctions,
)
from gdlens.flow.diagonal import DiagonalKernel, DiagonalLinearisation
from gdlens.flow.immediate import ImmediateJacobian, immediate_map
from gdlens.flow.kpflow import KPFlow, StepCheck
from gdlens.flow.losses import LossFn, check_target, cross_entropy_loss, mse_loss, resolve_loss
from gdlens.flow.ntk import ReadoutJacobian, ReadoutKernel, output_ntk
from gdlens.flow.linearisation import AutodiffLinearisation, LayeredLinearisation, LayerSpec, StepLinearisation
from gdlens.flow.parameter_operator import FactoredKernel, ParameterKernel
from gdlens.flow.propagator import Propagator
from gdlens.flow.structure import (
    check_model,
    closed_form_kind,
    closed_form_layers,
    diagonal_closed_form_kind,
    gru_closed_form_applies,
    is_time_invariant,
    lstm_closed_form_applies,
    rnn_closed_form_applies,
)

__all__ = [
    "KPFlow",
    "effective_ranks",
    "partial_effective_ranks",
    "top_eigenfunctions",
    "misdirection",
    "task_interference",
    "Interference",
    "hidden_participation_ratio",
    "StepCheck",
    "ImmediateJacobian",
    "immediate_map",
    "ParameterKernel",
    "FactoredKernel",
    "Propagator",
    "StepLinearisation",
    "LayeredLinearisation",
    "AutodiffLinearisation",
    "LayerSpec",
    "ReadoutJacobian",
    "ReadoutKernel",
    "output_ntk",
    "LossFn",
    "mse_loss",
    "cross_entropy_loss",
    "resolve_loss",
    "check_target",
    "check_model",
    "is_time_invariant",
    "rnn_closed_form_applies",
    "gru_closed_form_applies",
    "lstm_closed_form_applies",
    "closed_form_kind",
    "closed_form_layers",
    "diagonal_closed_form_kind",
    "DiagonalKernel",
    "DiagonalLinearisation",
]

#: names of the per-cell classes that one linearisation replaced -> their replacement
_RENAMED = {
    "RNNPropagator": "Propagator",
    "GatedPropagator": "Propagator",
    "RNNParameterKernel": "FactoredKernel",
    "GatedParameterKernel": "FactoredKernel",
}


def __getattr__(name: str):
    """Deprecated names: the per-cell propagators and kernels became one :class:`Propagator`
    and one :class:`FactoredKernel` over a :class:`LayeredLinearisation` (their constructors
    take the linearisation, not a per-cell point)."""
    if name in _RENAMED:
        import warnings

        new = _RENAMED[name]
        warnings.warn(
            f"gdlens.flow.{name} is deprecated: every closed form now runs through gdlens.flow.{new} "
            f"on a LayeredLinearisation (KPFlow builds it; kp.P and kp.K are instances)",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module 'gdlens.flow' has no attribute {name!r}")
