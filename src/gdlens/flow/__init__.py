"""The KP decomposition of gradient flow (arXiv 2507.06381; DESIGN §2).

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
from gdlens.flow.gated import GatedParameterKernel, GatedPropagator, GRUPoint, LSTMPoint
from gdlens.flow.immediate import ImmediateJacobian, immediate_map
from gdlens.flow.kpflow import KPFlow, StepCheck
from gdlens.flow.losses import LossFn, check_target, cross_entropy_loss, mse_loss, resolve_loss
from gdlens.flow.ntk import ReadoutJacobian, ReadoutKernel, output_ntk
from gdlens.flow.parameter_operator import ParameterKernel, RNNParameterKernel
from gdlens.flow.propagator import Propagator, RNNPropagator
from gdlens.flow.rnn_point import RNNPoint
from gdlens.flow.structure import (
    check_model,
    closed_form_kind,
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
    "RNNParameterKernel",
    "Propagator",
    "RNNPropagator",
    "RNNPoint",
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
    "GRUPoint",
    "LSTMPoint",
    "GatedPropagator",
    "GatedParameterKernel",
]
