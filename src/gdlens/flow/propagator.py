"""The propagator ``P = (I − D)⁻¹`` and its adjoint, as recursions over time.

D holds the state Jacobians ``D_t = ∂f/∂z_{t-1}`` at (z*_{t-1}, x_t), below the block
diagonal, so on (B, T, H) tensors::

    (P q)_1 = q_1,            (P q)_t = q_t + D_t (P q)_{t-1}          t = 2..T   (forward)
    (Pᵀ r)_T = r_T,           (Pᵀ r)_t = r_t + D_{t+1}ᵀ (Pᵀ r)_{t+1}   t = T-1..1 (backward)

(D_1 would act on (P q)_0 = 0, so it never appears.) P q is how a perturbation q_t added to
each state propagates forward; Pᵀ e with e the direct error is the BPTT adjoint dL/dz.

- :class:`Propagator` (any model, the reference): forward-mode JVPs of ``step`` in z for P,
  reverse-mode VJPs for Pᵀ, each batched over the k probes with vmap. The VJP linearisations
  are computed once per step and reused.
- :class:`RNNPropagator` (gdlens' Elman RNN): ``D_t q = s_t ⊙ (W q)``, a recursion of batched
  matmuls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gdlens.flow.rnn_point import RNNPoint
from gdlens.models.base import Params
from gdlens.operators import LinearOperator

__all__ = ["Propagator", "RNNPropagator"]


class Propagator(LinearOperator):
    """``P = (I − D)⁻¹`` on (B, T, H) by recursions of JVPs (P) and VJPs (Pᵀ) of the cell.

    Args:
        model: the state-space model.  theta: θ.  x: the model input.
        hidden: z*_1..z*_T (B, T, H), the trajectory the Jacobians are taken at.
    """

    def __init__(self, model, theta: Params, x: Tensor, hidden: Tensor) -> None:
        self.model = model
        self.theta = {n: p.detach() for n, p in theta.items()}
        self.xs = model.step_inputs(x)
        self.hidden = hidden.detach()
        self._vjp_fns: list[Callable] | None = None
        super().__init__(tuple(hidden.shape), dtype=hidden.dtype, device=hidden.device)

    def _cell(self, t: int) -> Callable[[Tensor], Tensor]:
        """z ↦ f(z, x_t; θ) for the 1-based step t."""
        model, theta, x_t = self.model, self.theta, self.xs[t - 1]
        return lambda z: model.step(theta, z, x_t, t)

    def _jvps(self, t: int, V: Tensor) -> Tensor:
        """D_t applied to each row of V (k, B, H)."""
        cell, z_prev = self._cell(t), self.hidden[:, t - 2]
        return torch.func.vmap(lambda v: torch.func.jvp(cell, (z_prev,), (v,))[1])(V)

    def _vjps(self, t: int, V: Tensor) -> Tensor:
        """D_tᵀ applied to each row of V (k, B, H)."""
        if self._vjp_fns is None:
            T = self.shape_in[1]
            self._vjp_fns = [torch.func.vjp(self._cell(s), self.hidden[:, s - 2])[1] for s in range(2, T + 1)]
        return torch.func.vmap(self._vjp_fns[t - 2])(V)[0]

    def _matmat(self, X: Tensor) -> Tensor:
        p = X[:, :, 0]
        out = [p]
        for t in range(2, X.shape[2] + 1):
            p = X[:, :, t - 1] + self._jvps(t, p)
            out.append(p)
        return torch.stack(out, dim=2)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        T = Y.shape[2]
        u = Y[:, :, T - 1]
        out = [u]
        for t in range(T - 1, 0, -1):
            u = Y[:, :, t - 1] + self._vjps(t + 1, u)
            out.append(u)
        return torch.stack(out[::-1], dim=2)


class RNNPropagator(LinearOperator):
    """Closed form of P for gdlens' Elman RNN: ``D_t q = s_t ⊙ (W q)`` with s_t = σ'(a_t), so
    ``(P q)_t = q_t + s_t ⊙ (W (P q)_{t-1})`` and ``(Pᵀ r)_t = r_t + Wᵀ (s_{t+1} ⊙ (Pᵀ r)_{t+1})``,
    each a recursion of batched matmuls over the k probes."""

    def __init__(self, point: RNNPoint) -> None:
        self.point = point
        s = point.s
        super().__init__(tuple(s.shape), dtype=s.dtype, device=s.device)

    def _matmat(self, X: Tensor) -> Tensor:
        s, W = self.point.s, self.point.weight_hh
        p = X[:, :, 0]
        out = [p]
        for i in range(1, X.shape[2]):
            p = X[:, :, i] + s[:, i] * (p @ W.T)
            out.append(p)
        return torch.stack(out, dim=2)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        s, W = self.point.s, self.point.weight_hh
        T = Y.shape[2]
        u = Y[:, :, T - 1]
        out = [u]
        for i in range(T - 2, -1, -1):
            u = Y[:, :, i] + (s[:, i + 1] * u) @ W
            out.append(u)
        return torch.stack(out[::-1], dim=2)
