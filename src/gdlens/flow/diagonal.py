"""Closed forms of the KP operators for diagonal recurrences: :class:`~gdlens.models.LRU`
(complex or real eigenvalues) and :class:`~gdlens.models.SelectiveLRU` (input-dependent decay).

State Jacobian. The LRU's D_t is a 2×2 rotation-scaling per complex mode, the same at every
step; the selective recurrence's is diag(λ_t) with λ_t depending on the input. Either way one
application costs O(B·N) per step, so P and Pᵀ cost O(B·T·N) (the one recursion of
:class:`~gdlens.flow.propagator.Propagator`).

Parameter Jacobian. Every parameter p of these cells (shape (N, m), or (N,) with m = 1)
enters the state update mode by mode, as ``δz_t = c_t ⊙ E(δp u_t)`` with u_t (m,) the
columns it multiplies (the input, or 1), c_t a coefficient per state entry and E the map from
the N modes to the state's entries (the real half, the imaginary half, or both). Hence::

    J_p δp = c ⊙ E(U δpᵀ),       J_pᵀ v = (Uᵀ Eᵀ(c ⊙ v))ᵀ,        K_p = J_p J_pᵀ

at cost O(k·B·T·N·m). The coefficients, with h = z*_{t−1}, R the 2×2 rotation-scaling, g =
exp(γ), Bu = B u_t (complex: (B_re u, B_im u)):

- LRU: ∂z/∂ν = −e^ν (R h), ∂z/∂θ = e^θ (−s h_re − c h_im, c h_re − s h_im) (c, s = |λ| cos, sin
  of arg λ), ∂z/∂γ = g ⊙ Bu, ∂z_re/∂B_re = g ⊙ (· u), ∂z_im/∂B_im = g ⊙ (· u).
- Selective: with pre = W_Δ u + b_Δ, Δ = softplus(pre), e = exp(a), λ = exp(−Δ e):
  ∂z/∂a = −λ Δ e h, ∂z/∂pre = sigmoid(pre) ⊙ (−e λ h + Bu) (for W_Δ on u, b_Δ on 1),
  ∂z/∂B = Δ ⊙ (· u).

A learnable z_0 enters step 1 only: ``(J_{z0} δ)_{b,1} = D_1 δ``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from gdlens.flow.factors import flat_parameter_operator
from gdlens.flow.linearisation import previous_states
from gdlens.models.base import Params
from gdlens.operators import LinearOperator

__all__ = ["DiagonalBlock", "DiagonalLinearisation", "DiagonalKernel", "diagonal_linearisation"]


@dataclass(frozen=True)
class DiagonalBlock:
    """One parameter: ``J δp = coef ⊙ E(U δpᵀ)``.

    name: the θ name.  U (B·T, m): its columns.  coef (B, T, S): per-entry coefficient.
    half: E — ``"all"`` (real state), ``"both"`` (both halves of a complex state), ``"re"``,
    ``"im"``.  vector: the parameter is (N,) (m = 1), not (N, m).
    """

    name: str
    U: Tensor
    coef: Tensor
    half: str
    vector: bool


class DiagonalLinearisation:
    """D_t and the parameter blocks of a diagonal recurrence along a trajectory.

    Args:
        shape: (B, T, S).  blocks: one :class:`DiagonalBlock` per θ tensor (``z0`` excluded).
        rotation: (c, s) each (N,) for a complex LRU (D = [[c, −s], [s, c]] per mode), or None.
        decay: (B, T, N) (selective) or (N,) (real LRU) for a real diagonal D, or None.
        z0_learnable: z_0 = θ["z0"] is a function of θ here.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        blocks: Sequence[DiagonalBlock],
        rotation: tuple[Tensor, Tensor] | None,
        decay: Tensor | None,
        z0_learnable: bool,
        ref: Tensor,
    ) -> None:
        self.shape, self.blocks = shape, list(blocks)
        self.rotation, self.decay = rotation, decay
        self.z0_learnable = z0_learnable
        self.dtype, self.device = ref.dtype, ref.device
        self.modes = shape[2] // 2 if rotation is not None else shape[2]

    def _decay_at(self, i: int) -> Tensor:
        return self.decay if self.decay.dim() == 1 else self.decay[:, i]

    def d(self, i: int, Q: Tensor) -> Tensor:
        if self.rotation is None:
            return self._decay_at(i) * Q
        c, s = self.rotation
        a, b = Q[..., : self.modes], Q[..., self.modes :]
        return torch.cat([c * a - s * b, s * a + c * b], dim=-1)

    def dT(self, i: int, G: Tensor) -> Tensor:  # noqa: N802
        if self.rotation is None:
            return self._decay_at(i) * G
        c, s = self.rotation
        a, b = G[..., : self.modes], G[..., self.modes :]
        return torch.cat([c * a + s * b, -s * a + c * b], dim=-1)

    def fold(self, W: Tensor, half: str) -> Tensor:
        """Eᵀ: (..., S) -> (..., N)."""
        N = self.modes
        if half == "all":
            return W
        if half == "re":
            return W[..., :N]
        if half == "im":
            return W[..., N:]
        return W[..., :N] + W[..., N:]

    def expand(self, W: Tensor, half: str) -> Tensor:
        """E: (..., N) -> (..., S)."""
        if half == "all":
            return W
        if half == "both":
            return torch.cat([W, W], dim=-1)
        zero = torch.zeros_like(W)
        return torch.cat([W, zero] if half == "re" else [zero, W], dim=-1)


def _lru_blocks(model, theta: Params, h: Tensor, u: Tensor) -> tuple[list[DiagonalBlock], tuple | None, Tensor | None]:
    B, T, _ = h.shape
    N = model.modes
    ones = torch.ones(B * T, 1, dtype=h.dtype, device=h.device)
    U = u.reshape(B * T, -1)
    e_nu = torch.exp(theta["nu_log"])
    radius = torch.exp(-e_nu)
    gain = torch.exp(theta["gamma_log"])
    drive_re = F.linear(u, theta["B_re"])
    if model.real:
        blocks = [
            DiagonalBlock("nu_log", ones, -e_nu * radius * h, "all", True),
            DiagonalBlock("gamma_log", ones, gain * drive_re, "all", True),
            DiagonalBlock("B_re", U, gain.expand(B, T, N), "all", False),
        ]
        return blocks, None, radius
    e_th = torch.exp(theta["theta_log"])
    c, s = radius * torch.cos(e_th), radius * torch.sin(e_th)
    a, b = h[..., :N], h[..., N:]
    rotated = torch.cat([c * a - s * b, s * a + c * b], dim=-1)
    turned = torch.cat([-s * a - c * b, c * a - s * b], dim=-1)
    drive = torch.cat([drive_re, F.linear(u, theta["B_im"])], dim=-1)
    blocks = [
        DiagonalBlock("nu_log", ones, -torch.cat([e_nu, e_nu]) * rotated, "both", True),
        DiagonalBlock("theta_log", ones, torch.cat([e_th, e_th]) * turned, "both", True),
        DiagonalBlock("gamma_log", ones, torch.cat([gain, gain]) * drive, "both", True),
        DiagonalBlock("B_re", U, torch.cat([gain, gain]).expand(B, T, 2 * N), "re", False),
        DiagonalBlock("B_im", U, torch.cat([gain, gain]).expand(B, T, 2 * N), "im", False),
    ]
    return blocks, (c, s), None


def _selective_blocks(theta: Params, h: Tensor, u: Tensor) -> tuple[list[DiagonalBlock], None, Tensor]:
    B, T, _ = h.shape
    ones = torch.ones(B * T, 1, dtype=h.dtype, device=h.device)
    U = u.reshape(B * T, -1)
    pre = F.linear(u, theta["W_dt"], theta["b_dt"])
    dt, slope = F.softplus(pre), torch.sigmoid(pre)
    rate = torch.exp(theta["a_log"])
    decay = torch.exp(-dt * rate)
    d_pre = slope * (-rate * decay * h + F.linear(u, theta["B"]))
    blocks = [
        DiagonalBlock("a_log", ones, -decay * dt * rate * h, "all", True),
        DiagonalBlock("W_dt", U, d_pre, "all", False),
        DiagonalBlock("b_dt", ones, d_pre, "all", True),
        DiagonalBlock("B", U, dt, "all", False),
    ]
    return blocks, None, decay


def diagonal_linearisation(model, theta: Params, x: Tensor, hidden: Tensor, z0: Tensor | None) -> DiagonalLinearisation:
    """The linearisation of an :class:`LRU` or :class:`SelectiveLRU` along z* = ``hidden``."""
    from gdlens.models.lru import LRU

    theta = {n: p.detach() for n, p in theta.items()}
    h = previous_states(model, theta, x, hidden, z0)
    u = model.step_inputs(x).transpose(0, 1).to(hidden.dtype)
    if isinstance(model, LRU):
        blocks, rotation, decay = _lru_blocks(model, theta, h, u)
    else:
        blocks, rotation, decay = _selective_blocks(theta, h, u)
    return DiagonalLinearisation(tuple(hidden.shape), blocks, rotation, decay, z0 is None and "z0" in theta, hidden)


class DiagonalKernel(LinearOperator):
    """``K_S = J_S J_Sᵀ`` on (B, T, S) for a diagonal recurrence (module docstring); S the θ
    names (all, ``z0`` included, when None; ``z0`` contributes nothing for a constant z_0)."""

    def __init__(self, linearisation: DiagonalLinearisation, names: Sequence[str] | None = None) -> None:
        lin = self.linearisation = linearisation
        known = [blk.name for blk in lin.blocks] + ["z0"]
        self.names = known if names is None else list(names)
        unknown = [n for n in self.names if n not in known]
        if unknown:
            raise ValueError(f"{type(self).__name__} knows {known}, got {unknown}")
        super().__init__(lin.shape, dtype=lin.dtype, device=lin.device, is_symmetric=True)
        self._blocks = [blk for blk in lin.blocks if blk.name in self.names]
        self._with_z0 = "z0" in self.names and lin.z0_learnable

    def _block_rows(self, blk: DiagonalBlock, V: Tensor) -> Tensor:
        """(k, N, m): J_pᵀ v = (Uᵀ Eᵀ(c ⊙ v))ᵀ for each of the k rows of V (k, B, T, S)."""
        k, B, T, _ = V.shape
        w = self.linearisation.fold(blk.coef * V, blk.half).reshape(k, B * T, -1)
        return (blk.U.T @ w).transpose(1, 2)

    def _block_apply(self, blk: DiagonalBlock, P: Tensor) -> Tensor:
        """(k, B, T, S): J_p δp for each of the k tangents P (k, N, m)."""
        k = P.shape[0]
        B, T, _ = self.shape_out
        moved = (blk.U @ P.transpose(1, 2)).reshape(k, B, T, -1)
        return blk.coef * self.linearisation.expand(moved, blk.half)

    def _z0_rows(self, V: Tensor) -> Tensor:
        return self.linearisation.dT(0, V[:, :, 0]).sum(1)

    def _flat_rows(self, V: Tensor) -> list[Tensor]:
        out = [self._block_rows(blk, V) for blk in self._blocks]
        return out + ([self._z0_rows(V)] if self._with_z0 else [])

    def _flat_apply(self, pieces: Sequence[Tensor]) -> Tensor:
        pieces = list(pieces)
        k = pieces[0].shape[0]
        out = torch.zeros(k, *self.shape_out, dtype=self.dtype, device=self.device)
        for blk in self._blocks:
            out = out + self._block_apply(blk, pieces.pop(0))
        if self._with_z0:
            B, _, S = self.shape_out
            out[:, :, 0] += self.linearisation.d(0, pieces.pop(0).unsqueeze(1).expand(k, B, S))
        return out

    def _matmat(self, X: Tensor) -> Tensor:
        if not self._blocks and not self._with_z0:
            return torch.zeros_like(X)
        return self._flat_apply(self._flat_rows(X))

    _rmatmat = _matmat

    @cached_property
    def gram_factor(self) -> LinearOperator | None:  # type: ignore[override]
        """J_S on the flattened parameters (K_S = J_S J_Sᵀ); None when S selects nothing."""
        N = self.linearisation.modes
        shapes = [(N, blk.U.shape[1]) for blk in self._blocks] + ([(self.shape_out[-1],)] if self._with_z0 else [])
        if not shapes:
            return None
        return flat_parameter_operator(self._flat_rows, self._flat_apply, shapes, self.shape_out, self.dtype, self.device)

    def rows(self, V: Tensor) -> dict[str, Tensor]:
        """``J_Sᵀ v`` for each of the k rows of V: {name: (k, *θ[name].shape)}."""
        out = {}
        for blk in self._blocks:
            g = self._block_rows(blk, V)
            out[blk.name] = g.squeeze(-1) if blk.vector else g
        if "z0" in self.names:
            out["z0"] = self._z0_rows(V) if self._with_z0 else V.new_zeros(V.shape[0], V.shape[-1])
        return out
