"""Diagonal linear recurrences: the linear recurrent unit (LRU, arXiv 2303.06349) and a
selective variant whose transition depends on the input (Mamba-style, arXiv 2312.00752).

Both keep a diagonal state update, so their state Jacobian D_t is diagonal (a 2×2 rotation-
scaling per complex mode) and the KP operators have O(B·T·N) closed forms
(:mod:`gdlens.flow.diagonal`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdlens.models._common import check_nonnegative, check_positive
from gdlens.models.base import Params, StateSpaceModel

__all__ = ["LRU", "SelectiveLRU"]


class LRU(StateSpaceModel):
    """Linear recurrent unit with the stable exponential parametrisation (arXiv 2303.06349)::

        λ_j = exp(−exp(ν_j) + i·exp(θ_j))                  |λ_j| < 1 for every real ν_j
        x_t = λ ⊙ x_{t−1} + exp(γ) ⊙ (B u_t)               x_t ∈ C^N,  B = B_re + i·B_im
        z_t = (Re x_t, Im x_t)                             (2N,) real
        y_t = C z_t + d                                    (= Re(C' x_t) + d for a complex C')

    ``real=True`` keeps λ_j = exp(−exp(ν_j)) real and x_t real (state N, no θ, no B_im).
    The paper's skip term D u_t is not part of this cell (the readout sees the state only);
    stack it outside if you need it.

    Args:
        input_size: I.  modes: N (state size 2N, or N when real).  output_size: O.
        r_min, r_max: |λ| is drawn uniformly on the ring r_min ≤ |λ| ≤ r_max (0 ≤ r_min < r_max < 1).
        max_phase: arg λ is drawn uniformly in [0, max_phase] (complex only; > 0).
        real: real eigenvalues.
        learn_z0: a learnable initial state ``z0`` (state size), initialised at zero.

    Parameters (θ): ``nu_log`` (N,), ``theta_log`` (N,, complex only), ``gamma_log`` (N,),
    ``B_re`` (N, I), ``B_im`` (N, I, complex only), ``z0``. Readout (φ): ``readout.weight``
    (O, state), ``readout.bias`` (O,). γ starts at log √(1 − |λ|²), the paper's normalisation.
    """

    def __init__(
        self,
        input_size: int,
        modes: int,
        output_size: int,
        r_min: float = 0.0,
        r_max: float = 0.99,
        max_phase: float = 2 * math.pi,
        real: bool = False,
        learn_z0: bool = False,
    ) -> None:
        super().__init__()
        check_positive(modes=modes, output_size=output_size)
        check_nonnegative(input_size=input_size)
        if not 0.0 <= r_min < r_max < 1.0:
            raise ValueError(
                f"r_min and r_max must satisfy 0 <= r_min < r_max < 1 (|λ| < 1 keeps the recurrence stable), "
                f"got r_min={r_min!r}, r_max={r_max!r}"
            )
        if not real and not max_phase > 0:
            raise ValueError(f"max_phase must be > 0, got {max_phase!r}")
        self.input_size, self.modes, self.output_size, self.real = input_size, modes, output_size, real
        self.state_size = modes if real else 2 * modes
        u1, u2 = torch.rand(modes), torch.rand(modes)
        radius_sq = u1 * (r_max**2 - r_min**2) + r_min**2  # |λ|² uniform on the ring's area
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(radius_sq.clamp_min(1e-12))))
        self.theta_log = None if real else nn.Parameter(torch.log(max_phase * u2.clamp_min(1e-6)))
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - radius_sq))
        scale = 1 / math.sqrt((1 if real else 2) * max(input_size, 1))
        self.B_re = nn.Parameter(torch.randn(modes, input_size) * scale)
        self.B_im = None if real else nn.Parameter(torch.randn(modes, input_size) * scale)
        self.z0 = nn.Parameter(torch.zeros(self.state_size)) if learn_z0 else None
        self.readout = nn.Linear(self.state_size, output_size)

    def eigenvalues(self, theta: Params | None = None) -> Tensor:
        """λ (N,), complex (or real when ``real``), from θ (the model's own by default)."""
        theta = self.state_params() if theta is None else theta
        radius = torch.exp(-torch.exp(theta["nu_log"]))
        if self.real:
            return radius
        return torch.polar(radius, torch.exp(theta["theta_log"]))

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        radius = torch.exp(-torch.exp(theta["nu_log"]))
        gain = torch.exp(theta["gamma_log"])
        drive_re = gain * F.linear(x_t, theta["B_re"])
        if self.real:
            return radius * z_prev + drive_re
        phase = torch.exp(theta["theta_log"])
        c, s = radius * torch.cos(phase), radius * torch.sin(phase)
        a, b = z_prev[..., : self.modes], z_prev[..., self.modes :]
        drive_im = gain * F.linear(x_t, theta["B_im"])
        return torch.cat([c * a - s * b + drive_re, s * a + c * b + drive_im], dim=-1)


class SelectiveLRU(StateSpaceModel):
    """A selective diagonal recurrence (Mamba-style, arXiv 2312.00752, real and diagonal)::

        Δ_t = softplus(W_Δ u_t + b_Δ)                     (N,) input-dependent step sizes
        λ_t = exp(−Δ_t ⊙ exp(a))                          (N,) in (0, 1): stable for every a
        x_t = λ_t ⊙ x_{t−1} + Δ_t ⊙ (B u_t)               (zero-order-hold-like input gate)
        y_t = C x_t + d

    Args:
        input_size: I.  state_size: N.  output_size: O.
        a_min, a_max: exp(a) is initialised log-uniformly in [a_min, a_max] (> 0).
        dt_min, dt_max: the initial Δ (through b_Δ) log-uniform in [dt_min, dt_max] (> 0).
        learn_z0: a learnable initial state ``z0`` (N,).

    Parameters (θ): ``a_log`` (N,), ``W_dt`` (N, I), ``b_dt`` (N,), ``B`` (N, I), ``z0``.
    Readout (φ): ``readout.weight`` (O, N), ``readout.bias`` (O,).
    """

    def __init__(
        self,
        input_size: int,
        state_size: int,
        output_size: int,
        a_min: float = 0.5,
        a_max: float = 4.0,
        dt_min: float = 0.01,
        dt_max: float = 0.3,
        learn_z0: bool = False,
    ) -> None:
        super().__init__()
        check_positive(state_size=state_size, output_size=output_size, a_min=a_min, dt_min=dt_min)
        check_nonnegative(input_size=input_size)
        if a_max < a_min or dt_max < dt_min:
            raise ValueError(f"need a_min <= a_max and dt_min <= dt_max, got {a_min, a_max} and {dt_min, dt_max}")
        self.input_size, self.state_size, self.output_size = input_size, state_size, output_size

        def log_uniform(lo: float, hi: float) -> Tensor:
            return torch.exp(math.log(lo) + torch.rand(state_size) * (math.log(hi) - math.log(lo)))

        self.a_log = nn.Parameter(torch.log(log_uniform(a_min, a_max)))
        dt = log_uniform(dt_min, dt_max)
        self.b_dt = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        self.W_dt = nn.Parameter(torch.randn(state_size, input_size) * 0.1 / math.sqrt(max(input_size, 1)))
        self.B = nn.Parameter(torch.randn(state_size, input_size) / math.sqrt(max(input_size, 1)))
        self.z0 = nn.Parameter(torch.zeros(state_size)) if learn_z0 else None
        self.readout = nn.Linear(state_size, output_size)

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        dt = F.softplus(F.linear(x_t, theta["W_dt"], theta["b_dt"]))
        decay = torch.exp(-dt * torch.exp(theta["a_log"]))
        return decay * z_prev + dt * F.linear(x_t, theta["B"])
