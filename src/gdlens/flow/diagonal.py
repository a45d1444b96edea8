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

Deep stacks (:class:`~gdlens.models.StackedLRU`). Layer ℓ's state is s^ℓ = (o^ℓ, x^ℓ): the
block output o = v + MLP(C x + c) (d,) and the cell state x. With the MLP's Jacobian at the
trajectory, Hd_t w = W_2 (GELU'(a_t) ⊙ W_1 w) (Hd = I without an MLP), a perturbation δx of
the cell state becomes the state perturbation ``lower_x δx = (Hd C δx, δx)``, and a state
cotangent (g_o, g_x) reaches δx as ``lift_x g = g_x + Cᵀ Hdᵀ g_o``. Hence per layer

    Rec_t q = lower_x(Λ_t q_x)                    (o^ℓ_{t−1} is not read: a zero column block)
    In_t δv = (δv, 0) + lower_x(Γ_t δv)          Γ_t = ∂x_t/∂v_t = Σ_p coef_p ⊙ E(p δv)

(the sum over the cell parameters p that multiply the input: B_re, B_im; W_Δ, B), and every
parameter of the layer is a *site* map applied to its columns U (B·T, m):

    cell p:   lower_x(coef ⊙ E(U δpᵀ))          C, c:  (Hd(U δCᵀ), 0), U = (x_t, 1)
    W_1, b_1: (W_2(GELU'(a) ⊙ U δW_1ᵀ), 0)     W_2, b_2: (U δW_2ᵀ, 0), U = (GELU(a_t), 1)
    W_e, b_e: In^1(U δW_eᵀ), U = (u_t, 1)       (the encoder feeds layer 1's input)

The layers compose within a step through :class:`~gdlens.flow.linearisation.LayeredLinearisation`
(M_t, D_t = M_t Rec_t, K = M diag_ℓ(K^ℓ) Mᵀ), so P, Pᵀ and K cost O(B·T·L·(N + d·m)) per
application with an MLP of width m (O(B·T·L·(N + d)) without one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial

import torch
import torch.nn.functional as F
from torch import Tensor

from gdlens.flow.factors import flat_parameter_operator
from gdlens.flow.linearisation import LayeredLinearisation, previous_states
from gdlens.models.base import Params
from gdlens.operators import LinearOperator

__all__ = [
    "DiagonalBlock",
    "DiagonalTransition",
    "ParameterBlock",
    "DiagonalLinearisation",
    "StackLayerPoint",
    "DiagonalStackLinearisation",
    "DiagonalKernel",
    "diagonal_linearisation",
]

Index = int | slice
ALL = slice(None)


@dataclass(frozen=True)
class DiagonalBlock:
    """One cell parameter: ``J δp = coef ⊙ E(U δpᵀ)``.

    name: the θ name.  U (B·T, m): its columns.  coef (B, T, S): per-entry coefficient.
    half: E — ``"all"`` (real state), ``"both"`` (both halves of a complex state), ``"re"``,
    ``"im"``.  vector: the parameter is (N,) (m = 1), not (N, m).
    weight: θ[name] when U is the cell's input (then the input Jacobian ∂x_t/∂u_t has the term
    ``coef ⊙ E(weight δu)``), else None.
    """

    name: str
    U: Tensor
    coef: Tensor
    half: str
    vector: bool
    weight: Tensor | None = None


def _identity(X: Tensor) -> Tensor:
    return X


@dataclass(frozen=True)
class ParameterBlock:
    """One θ tensor of a linearisation. It enters layer ``layer`` at a *site* (a place in the
    layer's computation that parameters share: ``"x"`` the cell state, ``"y"`` the output
    projection, ``"a"`` the MLP's pre-activation, ``"o"`` the block output, ``"v"`` the layer
    input): ``J_p δp`` adds ``lower(U δpᵀ)`` to the site's perturbation, and ``J_pᵀ g`` is
    ``(Uᵀ lift(site cotangent))ᵀ``. U (B·T, m); lift: (k, B, T, site width) -> (k, B, T, width);
    lower the reverse (the identity unless the parameter has its own coefficients)."""

    name: str
    layer: int
    site: str
    U: Tensor
    width: int
    vector: bool
    lift: Callable[[Tensor], Tensor] = _identity
    lower: Callable[[Tensor], Tensor] = _identity


class DiagonalTransition:
    """Λ_t, the diagonal state Jacobian of one cell: a 2×2 rotation-scaling per complex mode,
    rotation = (c, s) each (N,), or a real diagonal ``decay`` ((N,) or (B, T, N)); and E, Eᵀ."""

    def __init__(self, rotation: tuple[Tensor, Tensor] | None, decay: Tensor | None, modes: int) -> None:
        self.rotation, self.decay, self.modes = rotation, decay, modes

    def _decay_at(self, at: Index) -> Tensor:
        return self.decay if self.decay.dim() == 1 else self.decay[:, at]

    def d(self, at: Index, Q: Tensor) -> Tensor:
        """Λ_t Q on (..., S)."""
        if self.rotation is None:
            return self._decay_at(at) * Q
        c, s = self.rotation
        a, b = Q[..., : self.modes], Q[..., self.modes :]
        return torch.cat([c * a - s * b, s * a + c * b], dim=-1)

    def dT(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        """Λ_tᵀ G on (..., S)."""
        if self.rotation is None:
            return self._decay_at(at) * G
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

    def input_jvp(self, blocks: Sequence[DiagonalBlock], at: Index, dv: Tensor) -> Tensor:
        """Γ_t δv = ∂x_t/∂v_t δv = Σ_p coef_p ⊙ E(p δv) over the blocks that read the input."""
        terms = [blk.coef[:, at] * self.expand(dv @ blk.weight.T, blk.half) for blk in blocks if blk.weight is not None]
        return sum(terms[1:], terms[0])

    def input_vjp(self, blocks: Sequence[DiagonalBlock], at: Index, g: Tensor) -> Tensor:
        """Γ_tᵀ g = Σ_p pᵀ Eᵀ(coef_p ⊙ g)."""
        terms = [self.fold(blk.coef[:, at] * g, blk.half) @ blk.weight for blk in blocks if blk.weight is not None]
        return sum(terms[1:], terms[0])


def _x_site_lift(transition: DiagonalTransition, blk: DiagonalBlock, G: Tensor) -> Tensor:
    return transition.fold(blk.coef * G, blk.half)


def _x_site_lower(transition: DiagonalTransition, blk: DiagonalBlock, W: Tensor) -> Tensor:
    return blk.coef * transition.expand(W, blk.half)


class DiagonalLinearisation:
    """Λ_t and the parameter blocks of one diagonal recurrence (LRU, SelectiveLRU) along a
    trajectory: D_t = Λ_t.

    Args:
        shape: (B, T, S).  blocks: one :class:`DiagonalBlock` per θ tensor (``z0`` excluded).
        rotation: (c, s) each (N,) for a complex LRU (D = [[c, −s], [s, c]] per mode), or None.
        decay: (B, T, N) (selective) or (N,) (real LRU) for a real diagonal D, or None.
        z0_learnable: z_0 = θ["z0"] is a function of θ here.
    """

    num_layers = 1

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
        self.transition = DiagonalTransition(rotation, decay, self.modes)
        tr = self.transition
        self.param_blocks = [
            ParameterBlock(
                blk.name, 0, "x", blk.U, self.modes, blk.vector, partial(_x_site_lift, tr, blk),
                partial(_x_site_lower, tr, blk),
            )
            for blk in self.blocks
        ]

    def d(self, i: int, Q: Tensor) -> Tensor:
        return self.transition.d(i, Q)

    def dT(self, i: int, G: Tensor) -> Tensor:  # noqa: N802
        return self.transition.dT(i, G)

    def fold(self, W: Tensor, half: str) -> Tensor:
        """Eᵀ: (..., S) -> (..., N)."""
        return self.transition.fold(W, half)

    def expand(self, W: Tensor, half: str) -> Tensor:
        """E: (..., N) -> (..., S)."""
        return self.transition.expand(W, half)

    def cotangents(self, V: Tensor) -> list[Tensor]:
        """What each layer's parameter blocks see of a state cotangent V: V itself (one layer)."""
        return [V]

    def site_cotangents(self, layer: int, G: Tensor, sites: Sequence[str]) -> dict[str, Tensor]:
        """The cotangent at each site: the state's own (the cell state is the state)."""
        return {"x": G}

    def site_inject(self, layer: int, perts: dict[str, Tensor]) -> Tensor:
        """The state perturbation of the sites' perturbations."""
        return perts["x"]

    def inject(self, parts: Sequence[Tensor | None], like: Tensor) -> Tensor:
        """The state perturbation of per-layer injections (None = 0), shaped like ``like``."""
        return torch.zeros_like(like) if parts[0] is None else parts[0]


def _gelu_slope(a: Tensor) -> Tensor:
    """GELU'(a) = Φ(a) + a φ(a) (the exact, erf-based GELU of torch)."""
    return 0.5 * (1 + torch.erf(a / math.sqrt(2))) + a * torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class StackLayerPoint:
    """One layer of a :class:`~gdlens.models.StackedLRU` linearised along a trajectory
    (module docstring): state s = (o, x), o the first ``width`` = d entries.

    prev (B, T, S_ℓ): s_0..s_{T−1}.  blocks, transition: the cell's.  C (d, S_x).
    W1 (m, d), W2 (d, m), slope (B, T, m) = GELU'(a_t): the MLP (None without one).
    """

    prev: Tensor
    width: int
    blocks: Sequence[DiagonalBlock]
    transition: DiagonalTransition
    C: Tensor
    W1: Tensor | None
    W2: Tensor | None
    slope: Tensor | None

    @property
    def state_size(self) -> int:
        return self.prev.shape[-1]

    @property
    def hidden_size(self) -> int:
        return self.width

    def h_of(self, S: Tensor) -> Tensor:
        """o, what the next layer reads: (..., S_ℓ) -> (..., d)."""
        return S[..., : self.width]

    def h_to_state(self, Hv: Tensor) -> Tensor:
        """(..., d) -> (..., S_ℓ), zero on x."""
        return torch.cat([Hv, Hv.new_zeros(*Hv.shape[:-1], self.state_size - self.width)], dim=-1)

    def head(self, at: Index, W: Tensor) -> Tensor:
        """Hd_t w = W_2 (GELU'(a_t) ⊙ W_1 w) (w without an MLP): δy -> δo."""
        if self.W1 is None:
            return W
        return (self.slope[:, at] * (W @ self.W1.T)) @ self.W2.T

    def head_T(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        if self.W1 is None:
            return G
        return (self.slope[:, at] * (G @ self.W2)) @ self.W1

    def lower_x(self, at: Index, dx: Tensor) -> Tensor:
        """δx -> (Hd C δx, δx)."""
        return torch.cat([self.head(at, dx @ self.C.T), dx], dim=-1)

    def lift_x(self, at: Index, G: Tensor) -> Tensor:
        """(g_o, g_x) -> g_x + Cᵀ Hdᵀ g_o."""
        return G[..., self.width :] + self.head_T(at, G[..., : self.width]) @ self.C

    def rec(self, at: Index, Q: Tensor) -> Tensor:
        return self.lower_x(at, self.transition.d(at, Q[..., self.width :]))

    def rec_T(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        back = self.transition.dT(at, self.lift_x(at, G))
        return torch.cat([back.new_zeros(*back.shape[:-1], self.width), back], dim=-1)

    def inp(self, at: Index, Qv: Tensor) -> Tensor:
        """∂s_t/∂v_t δv = (δv, 0) + lower_x(Γ_t δv)."""
        return self.lower_x(at, self.transition.input_jvp(self.blocks, at, Qv)) + self.h_to_state(Qv)

    def inp_T(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        return G[..., : self.width] + self.transition.input_vjp(self.blocks, at, self.lift_x(at, G))

    # the parameter sites (module docstring), all steps at once ------------------------
    def site_cotangents(self, G: Tensor, sites: Sequence[str]) -> dict[str, Tensor]:
        """The cotangent of the state G (k, B, T, S_ℓ) at each of ``sites``, by the chain
        o <- a <- y <- x <- v of one layer (each site's cotangent is computed once)."""
        d = self.width
        g_o = G[..., :d]
        out = {"o": g_o}
        if self.W1 is not None:
            out["a"] = self.slope * (g_o @ self.W2)
            out["y"] = out["a"] @ self.W1
        else:
            out["y"] = g_o
        if "x" in sites or "v" in sites:
            out["x"] = G[..., d:] + out["y"] @ self.C
        if "v" in sites:
            out["v"] = g_o + self.transition.input_vjp(self.blocks, ALL, out["x"])
        return out

    def site_inject(self, perts: dict[str, Tensor]) -> Tensor:
        """The state perturbation (δo, δx) (k, B, T, S_ℓ) of perturbations at the sites, by
        the chain v -> x -> y -> a -> o."""
        dv, dx, dy, da, do = (perts.get(site) for site in ("v", "x", "y", "a", "o"))
        if dv is not None:
            gx = self.transition.input_jvp(self.blocks, ALL, dv)
            dx = gx if dx is None else dx + gx
            do = dv if do is None else do + dv
        if dx is not None:
            cx = dx @ self.C.T
            dy = cx if dy is None else dy + cx
        if dy is not None:
            if self.W1 is None:
                do = dy if do is None else do + dy
            else:
                ay = dy @ self.W1.T
                da = ay if da is None else da + ay
        if da is not None:
            oa = (self.slope * da) @ self.W2.T
            do = oa if do is None else do + oa
        ref = next(iter(perts.values()))
        if do is None:
            do = ref.new_zeros(*ref.shape[:-1], self.width)
        if dx is None:
            dx = ref.new_zeros(*ref.shape[:-1], self.state_size - self.width)
        return torch.cat([do, dx], dim=-1)


class DiagonalStackLinearisation:
    """The closed-form linearisation of a :class:`~gdlens.models.StackedLRU`: one
    :class:`StackLayerPoint` per layer, composed within each step by a
    :class:`~gdlens.flow.linearisation.LayeredLinearisation` (D_t = M_t Rec_t).

    Attributes: points, param_blocks, layered, shape, z0_learnable.
    """

    def __init__(self, points: Sequence[StackLayerPoint], param_blocks: Sequence[ParameterBlock], z0_learnable: bool):
        self.points, self.param_blocks = list(points), list(param_blocks)
        self.layered = LayeredLinearisation(self.points, [], z0_learnable)
        self.shape, self.dtype, self.device = self.layered.shape, self.layered.dtype, self.layered.device
        self.z0_learnable = z0_learnable
        self.num_layers = len(self.points)

    def d(self, i: int, Q: Tensor) -> Tensor:
        return self.layered.d(i, Q)

    def dT(self, i: int, G: Tensor) -> Tensor:  # noqa: N802
        return self.layered.dT(i, G)

    def site_cotangents(self, layer: int, G: Tensor, sites: Sequence[str]) -> dict[str, Tensor]:
        return self.points[layer].site_cotangents(G, sites)

    def site_inject(self, layer: int, perts: dict[str, Tensor]) -> Tensor:
        return self.points[layer].site_inject(perts)

    def cotangents(self, V: Tensor) -> list[Tensor]:
        """M_tᵀ v split by layer, all steps at once."""
        return self.layered.within_T(ALL, self.layered.split(V))

    def inject(self, parts: Sequence[Tensor | None], like: Tensor) -> Tensor:
        """M_t applied to the per-layer injections (None = 0), all steps at once."""
        if all(p is None for p in parts):
            return torch.zeros_like(like)
        return self.layered.join(self.layered.within(ALL, list(parts)), like)


def _lru_blocks(model, theta: Params, h: Tensor, u: Tensor) -> tuple[list[DiagonalBlock], DiagonalTransition]:
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
            DiagonalBlock("B_re", U, gain.expand(B, T, N), "all", False, theta["B_re"]),
        ]
        return blocks, DiagonalTransition(None, radius, N)
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
        DiagonalBlock("B_re", U, torch.cat([gain, gain]).expand(B, T, 2 * N), "re", False, theta["B_re"]),
        DiagonalBlock("B_im", U, torch.cat([gain, gain]).expand(B, T, 2 * N), "im", False, theta["B_im"]),
    ]
    return blocks, DiagonalTransition((c, s), None, N)


def _selective_blocks(theta: Params, h: Tensor, u: Tensor) -> tuple[list[DiagonalBlock], DiagonalTransition]:
    B, T, N = h.shape
    ones = torch.ones(B * T, 1, dtype=h.dtype, device=h.device)
    U = u.reshape(B * T, -1)
    pre = F.linear(u, theta["W_dt"], theta["b_dt"])
    dt, slope = F.softplus(pre), torch.sigmoid(pre)
    rate = torch.exp(theta["a_log"])
    decay = torch.exp(-dt * rate)
    d_pre = slope * (-rate * decay * h + F.linear(u, theta["B"]))
    blocks = [
        DiagonalBlock("a_log", ones, -decay * dt * rate * h, "all", True),
        DiagonalBlock("W_dt", U, d_pre, "all", False, theta["W_dt"]),
        DiagonalBlock("b_dt", ones, d_pre, "all", True),
        DiagonalBlock("B", U, dt, "all", False, theta["B"]),
    ]
    return blocks, DiagonalTransition(None, decay, N)


def _cell_blocks(cell, theta: Params, h: Tensor, u: Tensor) -> tuple[list[DiagonalBlock], DiagonalTransition]:
    """The blocks and Λ of one LRU / SelectiveLRU cell with previous states h and inputs u (B, T, ·)."""
    from gdlens.models.lru import LRU

    return _lru_blocks(cell, theta, h, u) if isinstance(cell, LRU) else _selective_blocks(theta, h, u)


def _stack_linearisation(model, theta: Params, x: Tensor, hidden: Tensor, z0: Tensor | None) -> DiagonalStackLinearisation:
    """The linearisation of a :class:`~gdlens.models.StackedLRU` along z* = ``hidden``."""
    z_prev = previous_states(model, theta, x, hidden, z0)
    hidden = hidden.detach()
    u = model.step_inputs(x).transpose(0, 1).to(hidden.dtype)
    B, T, _ = hidden.shape
    ones = torch.ones(B * T, 1, dtype=hidden.dtype, device=hidden.device)
    d = model.d_model
    v = model.encode(theta, u)
    points, params = [], []
    for k, cell in enumerate(model.cells):
        sl = model.layer_slice(k)
        cell_theta, mlp_theta = model.layer_params(theta, k)
        blocks, transition = _cell_blocks(cell, cell_theta, z_prev[..., sl][..., d:], v)
        x_now = hidden[..., sl][..., d:]
        y = F.linear(x_now, cell_theta["readout.weight"], cell_theta["readout.bias"])
        W1 = W2 = slope = None
        if mlp_theta is not None:
            W1, W2 = mlp_theta["inp.weight"], mlp_theta["out.weight"]
            a = F.linear(y, W1, mlp_theta["inp.bias"])
            slope = _gelu_slope(a)
        pt = StackLayerPoint(z_prev[..., sl], d, blocks, transition, cell_theta["readout.weight"], W1, W2, slope)
        points.append(pt)
        N = transition.modes
        for blk in blocks:
            params.append(
                ParameterBlock(f"cells.{k}.{blk.name}", k, "x", blk.U, N, blk.vector,
                               partial(_x_site_lift, transition, blk), partial(_x_site_lower, transition, blk))
            )
        sites = [(f"cells.{k}.readout", "y", x_now, d)]
        if mlp_theta is not None:
            sites += [(f"mlps.{k}.inp", "a", y, W1.shape[0]), (f"mlps.{k}.out", "o", F.gelu(a), d)]
        if k == 0:
            sites.append(("encoder", "v", u, d))
        for prefix, site, cols, width in sites:
            params.append(ParameterBlock(f"{prefix}.weight", k, site, cols.reshape(B * T, -1), width, False))
            params.append(ParameterBlock(f"{prefix}.bias", k, site, ones, width, True))
        v = hidden[..., sl][..., :d]  # o^k: what layer k+1 reads at the same step
    return DiagonalStackLinearisation(points, params, z0 is None and "z0" in theta)


def diagonal_linearisation(
    model, theta: Params, x: Tensor, hidden: Tensor, z0: Tensor | None
) -> DiagonalLinearisation | DiagonalStackLinearisation:
    """The linearisation of an :class:`LRU`, :class:`SelectiveLRU` or :class:`StackedLRU` along
    z* = ``hidden``."""
    from gdlens.models.lru import StackedLRU

    theta = {n: p.detach() for n, p in theta.items()}
    if isinstance(model, StackedLRU):
        return _stack_linearisation(model, theta, x, hidden, z0)
    h = previous_states(model, theta, x, hidden, z0)
    u = model.step_inputs(x).transpose(0, 1).to(hidden.dtype)
    blocks, transition = _cell_blocks(model, theta, h, u)
    return DiagonalLinearisation(
        tuple(hidden.shape), blocks, transition.rotation, transition.decay, z0 is None and "z0" in theta, hidden
    )


class DiagonalKernel(LinearOperator):
    """``K_S = J_S J_Sᵀ`` on (B, T, S) for a diagonal recurrence or a stack of them (module
    docstring); S the θ names (all, ``z0`` included, when None; ``z0`` contributes nothing for
    a constant z_0). Each parameter block p gives ``J_pᵀ v = (Uᵀ lift((Mᵀ v)^ℓ))ᵀ`` and
    ``J_p δp = M (lower(U δpᵀ)) on layer ℓ``; M = I for one cell."""

    def __init__(
        self, linearisation: DiagonalLinearisation | DiagonalStackLinearisation, names: Sequence[str] | None = None
    ) -> None:
        lin = self.linearisation = linearisation
        known = [blk.name for blk in lin.param_blocks] + ["z0"]
        self.names = known if names is None else list(names)
        unknown = [n for n in self.names if n not in known]
        if unknown:
            raise ValueError(f"{type(self).__name__} knows {known}, got {unknown}")
        super().__init__(lin.shape, dtype=lin.dtype, device=lin.device, is_symmetric=True)
        self._blocks = [blk for blk in lin.param_blocks if blk.name in self.names]
        self._sites: dict[int, list[str]] = {}  # layer -> the sites its selected blocks enter at
        for blk in self._blocks:
            sites = self._sites.setdefault(blk.layer, [])
            if blk.site not in sites:
                sites.append(blk.site)
        self._with_z0 = "z0" in self.names and lin.z0_learnable

    def _sites_rows(self, V: Tensor) -> list[Tensor]:
        """(k, width, m) per block: J_pᵀ v for the k rows of V (k, B, T, S), each layer's site
        cotangents computed once."""
        lin = self.linearisation
        W = lin.cotangents(V)
        cots = {ell: lin.site_cotangents(ell, W[ell], sites) for ell, sites in self._sites.items()}
        k, B, T = V.shape[:3]
        out = []
        for blk in self._blocks:
            w = blk.lift(cots[blk.layer][blk.site]).reshape(k, B * T, -1)
            out.append((blk.U.T @ w).transpose(1, 2))
        return out

    def _sites_apply(self, pieces: Sequence[Tensor], like: Tensor) -> Tensor:
        """Σ_p J_p δp for the k tangents δp (k, width, m) per block, shaped like ``like``."""
        lin = self.linearisation
        k, B, T = like.shape[:3]
        perts: dict[int, dict[str, Tensor]] = {}
        for blk, P in zip(self._blocks, pieces):
            part = blk.lower((blk.U @ P.transpose(1, 2)).reshape(k, B, T, -1))
            site = perts.setdefault(blk.layer, {})
            site[blk.site] = part if blk.site not in site else site[blk.site] + part
        parts: list[Tensor | None] = [None] * lin.num_layers
        for ell, site in perts.items():
            parts[ell] = lin.site_inject(ell, site)
        return lin.inject(parts, like)

    def _z0_rows(self, V: Tensor) -> Tensor:
        return self.linearisation.dT(0, V[:, :, 0]).sum(1)

    def _flat_rows(self, V: Tensor) -> list[Tensor]:
        out = self._sites_rows(V) if self._blocks else []
        return out + ([self._z0_rows(V)] if self._with_z0 else [])

    def _flat_apply(self, pieces: Sequence[Tensor]) -> Tensor:
        k = pieces[0].shape[0]
        lin = self.linearisation
        like = torch.empty(k, *self.shape_out, dtype=self.dtype, device=self.device)  # shape only
        n = len(self._blocks)
        out = self._sites_apply(pieces[:n], like) if n else torch.zeros_like(like)
        if self._with_z0:
            B, _, S = self.shape_out
            out = out.clone()
            out[:, :, 0] += lin.d(0, pieces[n].unsqueeze(1).expand(k, B, S))
        return out

    def _matmat(self, X: Tensor) -> Tensor:
        if not self._blocks and not self._with_z0:
            return torch.zeros_like(X)
        return self._flat_apply(self._flat_rows(X))

    _rmatmat = _matmat

    @cached_property
    def gram_factor(self) -> LinearOperator | None:  # type: ignore[override]
        """J_S on the flattened parameters (K_S = J_S J_Sᵀ); None when S selects nothing."""
        shapes = [(blk.width, blk.U.shape[1]) for blk in self._blocks] + ([(self.shape_out[-1],)] if self._with_z0 else [])
        if not shapes:
            return None
        return flat_parameter_operator(self._flat_rows, self._flat_apply, shapes, self.shape_out, self.dtype, self.device)

    def rows(self, V: Tensor) -> dict[str, Tensor]:
        """``J_Sᵀ v`` for each of the k rows of V: {name: (k, *θ[name].shape)}."""
        out = {}
        for blk, g in zip(self._blocks, self._sites_rows(V) if self._blocks else []):
            out[blk.name] = g.squeeze(-1) if blk.vector else g
        if "z0" in self.names:
            out["z0"] = self._z0_rows(V) if self._with_z0 else V.new_zeros(V.shape[0], V.shape[-1])
        return out
