"""The parameter operator ``K = J_θ J_θᵀ`` and its per-parameter parts ``K_g``.

``K`` acts on hidden-state-shaped tensors (B, T, H) and is symmetric positive semi-definite::

    (K v)_t = Σ_{t'} (∂f_t/∂θ)(∂f_{t'}/∂θ)ᵀ v_{t'}          (sum over the batch included)

For a parameter tensor g, ``K_g = J_g J_gᵀ`` with J_g the columns of J belonging to g; the
K_g of all parameter tensors sum to K.

Two implementations:

- :class:`ParameterKernel` (any model, the reference): one VJP of the immediate map followed
  by one JVP, each over all steps at once and batched over the k probes with vmap.
- :class:`RNNParameterKernel` (gdlens' Elman RNN): the exact closed form. A weight acting on
  u_t gives ``K_g v = S (Gram(u) ⊗ I_H) S v`` with S = diag(σ'(a)), applied factored as
  ``s ⊙ (U (Uᵀ (s ⊙ v)))`` at cost O(k·B·T·(H + I)·H) and never a (BT)² Gram. The weights
  W (on z*_{t-1}), U (on x_t) and b (on 1) are handled together by stacking
  u = [z*_{t-1}, x_t, 1]. A learnable z_0 enters only step 1: ``(J_{z0} δ)_{b,1} = s_{b1} ⊙ W δ``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import torch
from torch import Tensor

from gdlens.flow.factors import flat_parameter_operator
from gdlens.flow.immediate import ImmediateJacobian
from gdlens.flow.rnn_point import RNNPoint
from gdlens.operators import LinearOperator

__all__ = ["ParameterKernel", "RNNParameterKernel"]


class ParameterKernel(LinearOperator):
    """``K_S = J_S J_Sᵀ`` on (B, T, H), J_S the immediate parameter Jacobian restricted to the
    parameter tensors ``names`` (all of θ when None). Generic: VJP then JVP of the immediate map.

    Args:
        jacobian: the :class:`~gdlens.flow.immediate.ImmediateJacobian` at the trajectory.
        shape: (B, T, H).  names: the parameter names S.
    """

    def __init__(self, jacobian: ImmediateJacobian, shape: Sequence[int], names: Sequence[str] | None = None) -> None:
        self.jacobian = jacobian
        self.names = list(jacobian.theta) if names is None else list(names)
        unknown = [n for n in self.names if n not in jacobian.theta]
        if unknown:
            raise ValueError(f"unknown parameter name(s) {unknown}; θ has {list(jacobian.theta)}")
        ref = next(iter(jacobian.theta.values()))
        super().__init__(tuple(shape), dtype=ref.dtype, device=ref.device, is_symmetric=True)

    def _matmat(self, X: Tensor) -> Tensor:
        rows = self.jacobian.vjp(X)  # Jᵀ x for each probe
        return self.jacobian.jvp(rows, self.names)

    _rmatmat = _matmat

    @cached_property
    def gram_factor(self) -> LinearOperator:  # type: ignore[override]
        """J_S on the flattened parameters S (K_S = J_S J_Sᵀ)."""
        theta = self.jacobian.theta
        names = self.names
        return flat_parameter_operator(
            lambda V: [self.jacobian.vjp(V)[n] for n in names],
            lambda pieces: self.jacobian.jvp(dict(zip(names, pieces)), names),
            [tuple(theta[n].shape) for n in names], self.shape_out, self.dtype, self.device,
        )


class RNNParameterKernel(LinearOperator):
    """Closed form of ``K_S`` for gdlens' Elman RNN (see the module docstring).

    Args:
        point: the :class:`~gdlens.flow.rnn_point.RNNPoint` of the trajectory.
        names: subset of ``weight_hh``, ``weight_ih``, ``bias``, ``z0`` (all present when None).
            ``z0`` contributes nothing when z_0 is a constant passed by the user.
    """

    _ALL = ("weight_hh", "weight_ih", "bias", "z0")

    def __init__(self, point: RNNPoint, names: Sequence[str] | None = None) -> None:
        present = ["weight_hh", "weight_ih"] + (["bias"] if point.has_bias else []) + ["z0"]
        self.names = present if names is None else list(names)
        unknown = [n for n in self.names if n not in self._ALL]
        if unknown:
            raise ValueError(f"RNNParameterKernel knows {list(self._ALL)}, got {unknown}")
        self.point = point
        super().__init__(tuple(point.s.shape), dtype=point.s.dtype, device=point.s.device, is_symmetric=True)
        blocks = []
        if "weight_hh" in self.names:
            blocks.append(point.z_prev)
        if "weight_ih" in self.names:
            blocks.append(point.inputs)
        if "bias" in self.names and point.has_bias:
            blocks.append(torch.ones_like(point.s[..., :1]))
        # u (B, T, n_u): what the selected weights act on (their columns stacked)
        self._u = torch.cat(blocks, dim=-1) if blocks else None
        self._with_z0 = "z0" in self.names and point.z0_learnable

    def _rows(self, V: Tensor) -> list[Tensor]:
        """Jᵀ v for the stacked weight [W U b] ((k, H, n_u), if any) and for z0 ((k, H), if it
        is learnable)."""
        w = self.point.s * V
        out = []
        if self._u is not None:
            out.append(torch.einsum("kbth,btj->khj", w, self._u))
        if self._with_z0:
            out.append(w[:, :, 0].sum(1) @ self.point.weight_hh)
        return out

    def _apply(self, pieces: Sequence[Tensor]) -> Tensor:
        """J dθ for the pieces laid out as in :meth:`_rows`."""
        s, pieces = self.point.s, list(pieces)
        k = pieces[0].shape[0]
        out = torch.zeros(k, *s.shape, dtype=s.dtype, device=s.device)
        if self._u is not None:
            out = out + s * torch.einsum("btj,khj->kbth", self._u, pieces.pop(0))
        if self._with_z0:
            out[:, :, 0] += s[:, 0] * (pieces.pop(0) @ self.point.weight_hh.T).unsqueeze(1)
        return out

    @cached_property
    def gram_factor(self) -> LinearOperator | None:  # type: ignore[override]
        """J_S on the flattened parameters (K_S = J_S J_Sᵀ); None when S selects nothing."""
        H = self.point.s.shape[-1]
        shapes = ([(H, self._u.shape[-1])] if self._u is not None else []) + ([(H,)] if self._with_z0 else [])
        if not shapes:
            return None
        return flat_parameter_operator(self._rows, self._apply, shapes, self.shape_out, self.dtype, self.device)

    def _matmat(self, X: Tensor) -> Tensor:
        s = self.point.s
        w = s * X  # S v: (k, B, T, H)
        out = torch.zeros_like(X)
        if self._u is not None:
            u = self._u
            # Σ_{b,t} (s ⊙ v)_{bt} u_btᵀ = Jᵀ v for the stacked weight [W U b]: (k, H, n_u)
            g = torch.einsum("kbth,btj->khj", w, u)
            out = out + s * torch.einsum("btj,khj->kbth", u, g)
        if self._with_z0:
            W = self.point.weight_hh
            g0 = w[:, :, 0].sum(1) @ W  # Jᵀ v for z0: Σ_b Wᵀ (s_{b1} ⊙ v_{b1}),  (k, H)
            first = s[:, 0] * (g0 @ W.T).unsqueeze(1)  # (k, B, H)
            rest = torch.zeros_like(X[:, :, 1:])
            out = out + torch.cat([first.unsqueeze(2), rest], dim=2)
        return out

    _rmatmat = _matmat
