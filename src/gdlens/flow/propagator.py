"""The propagator ``P = (I − D)⁻¹`` and its adjoint, as one recursion over time.

D holds the state Jacobians ``D_t = ∂f/∂z_{t-1}`` at (z*_{t-1}, x_t), below the block
diagonal, so on (B, T, S) tensors::

    (P q)_1 = q_1,            (P q)_t = q_t + D_t (P q)_{t-1}          t = 2..T   (forward)
    (Pᵀ r)_T = r_T,           (Pᵀ r)_t = r_t + D_{t+1}ᵀ (Pᵀ r)_{t+1}   t = T-1..1 (backward)

(D_1 would act on (P q)_0 = 0, so it never appears.) P q is how a perturbation q_t added to
each state propagates forward; Pᵀ e with e the direct error is the BPTT adjoint dL/dz.

The D_t come from a :class:`~gdlens.flow.linearisation.StepLinearisation`: closed forms for
gdlens' recurrent cells and every stack of them, automatic differentiation for any other
model. Each step applies D_t (or D_tᵀ) to all k probes and the whole batch at once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gdlens.flow.linearisation import AutodiffLinearisation, StepLinearisation
from gdlens.operators import LinearOperator

__all__ = ["Propagator", "InjectedPropagator"]


class InjectedPropagator(LinearOperator):
    """``P M`` for a stack of layers (:class:`~gdlens.flow.linearisation.LayeredLinearisation`):
    the states' response to perturbations r injected into each layer's state, after the layers
    above have read them within the same step. With D_t = M_t Rec_t,

        (P M r)_t = M_t (r_t + Rec_t (P M r)_{t-1}),
        (Mᵀ Pᵀ g)_t = M_tᵀ (g_t + Rec_{t+1}ᵀ (Mᵀ Pᵀ g)_{t+1}),

    so M costs nothing beyond P: G = P K Pᵀ = (P M) diag_ℓ(K^ℓ) (P M)ᵀ applies each layer's
    within-step composition once per step instead of twice more for K.
    """

    def __init__(self, linearisation) -> None:
        self.linearisation = linearisation
        super().__init__(tuple(linearisation.shape), dtype=linearisation.dtype, device=linearisation.device)

    def _matmat(self, X: Tensor) -> Tensor:
        lin = self.linearisation
        p = lin.compose(0, X[:, :, 0])
        out = [p]
        for i in range(1, X.shape[2]):
            p = lin.compose(i, X[:, :, i] + lin.rec(i, p))
            out.append(p)
        return torch.stack(out, dim=2)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        lin = self.linearisation
        T = Y.shape[2]
        w = lin.compose_T(T - 1, Y[:, :, T - 1])
        out = [w]
        for i in range(T - 2, -1, -1):
            w = lin.compose_T(i, Y[:, :, i] + lin.rec_T(i + 1, w))
            out.append(w)
        return torch.stack(out[::-1], dim=2)


class Propagator(LinearOperator):
    """``P = (I − D)⁻¹`` on (B, T, S) by the recursions of the module docstring.

    Args:
        linearisation: the D_t (see :class:`~gdlens.flow.linearisation.StepLinearisation`).
            For backward compatibility, ``Propagator(model, theta, x, hidden)`` builds the
            generic :class:`~gdlens.flow.linearisation.AutodiffLinearisation`.
    """

    def __init__(self, linearisation: StepLinearisation, *args) -> None:
        if args:  # the former signature Propagator(model, theta, x, hidden)
            linearisation = AutodiffLinearisation(linearisation, *args)
        self.linearisation = linearisation
        super().__init__(tuple(linearisation.shape), dtype=linearisation.dtype, device=linearisation.device)

    @property
    def point(self) -> StepLinearisation:
        """The linearisation (the name the closed forms' former classes used)."""
        return self.linearisation

    def _matmat(self, X: Tensor) -> Tensor:
        d = self.linearisation.d
        p = X[:, :, 0]
        out = [p]
        for i in range(1, X.shape[2]):
            p = X[:, :, i] + d(i, p)
            out.append(p)
        return torch.stack(out, dim=2)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        dT = self.linearisation.dT
        T = Y.shape[2]
        g = Y[:, :, T - 1]
        out = [g]
        for i in range(T - 2, -1, -1):
            g = Y[:, :, i] + dT(i + 1, g)
            out.append(g)
        return torch.stack(out[::-1], dim=2)
