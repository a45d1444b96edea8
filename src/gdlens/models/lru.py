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

__all__ = ["LRU", "SelectiveLRU", "StackedLRU"]


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


_CELLS = {"lru": LRU, "selective": SelectiveLRU}


class _MLP(nn.Module):
    """``W_out GELU(W_in y + b_in) + b_out``: the position-wise MLP between two layers."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.inp = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, width)


class StackedLRU(StateSpaceModel):
    """A deep stack of diagonal linear recurrences with position-wise MLPs between them, as in
    arXiv 2303.06349 (Fig. 1, without the normalisation), read as one state-space model::

        v^1_t = W_e u_t + b_e                                      encoder (d,)
        for ℓ = 1..L (within the same step t):
            x^ℓ_t = cell_ℓ(x^ℓ_{t−1}, v^ℓ_t)                       LRU or SelectiveLRU step
            y^ℓ_t = C^ℓ x^ℓ_t + c^ℓ                                 output projection (d,)
            o^ℓ_t = v^ℓ_t + MLP^ℓ(y^ℓ_t)   (MLP = identity when mlp is None)
            v^{ℓ+1}_t = o^ℓ_t                                       residual stream
        z_t = (o^1_t, x^1_t, …, o^L_t, x^L_t)                        state (L·(d + S_x),)
        y_t = W_r o^L_t + b_r                                       readout

    with MLP(y) = W_2 GELU(W_1 y + b_1) + b_2 (width ``mlp``). Layer ℓ reads the block output
    o^{ℓ−1} of the layer below at the SAME step, as in torch's multi-layer RNNs, so the state
    carries each layer's residual stream o^ℓ next to its recurrent state x^ℓ (S_x = 2N for a
    complex LRU, N for a real LRU or the selective cell). o^ℓ_{t−1} is not read by step t (a
    zero column block of D_t); keeping it in z makes K, P and G see the residual stream.

    Args:
        input_size: I (> 0).  d_model: d, the residual width.  modes: N per layer.
        output_size: O.  layers: L.  mlp: the MLP's hidden width, or None for no MLP
            (then the stack is linear in its input).
        cell: ``"lru"`` (:class:`LRU`) or ``"selective"`` (:class:`SelectiveLRU`).
        learn_z0: a learnable initial state ``z0`` (state size), initialised at zero.
        **cell_kwargs: passed to every layer's cell (``r_min``, ``r_max``, ``max_phase``,
            ``real`` for the LRU; ``a_min``, ``a_max``, ``dt_min``, ``dt_max`` for the selective).

    Parameters (θ): ``encoder.weight`` (d, I), ``encoder.bias`` (d,); per layer k = 0..L−1 the
    cell's own (``cells.{k}.nu_log`` …, see :class:`LRU`, :class:`SelectiveLRU`) with its output
    projection ``cells.{k}.readout.weight`` (C, (d, S_x)) and ``cells.{k}.readout.bias`` (c);
    with an MLP ``mlps.{k}.inp.weight`` (m, d), ``mlps.{k}.inp.bias``, ``mlps.{k}.out.weight``
    (d, m), ``mlps.{k}.out.bias``; ``z0``. Readout (φ): ``readout.weight`` (O, d), ``readout.bias``.
    The closed forms of K, P and G (:mod:`gdlens.flow.diagonal`) cover every one of them.
    """

    def __init__(
        self,
        input_size: int,
        d_model: int,
        modes: int,
        output_size: int,
        layers: int = 2,
        mlp: int | None = None,
        cell: str = "lru",
        learn_z0: bool = False,
        **cell_kwargs,
    ) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        check_positive(input_size=input_size, d_model=d_model, modes=modes, output_size=output_size, layers=layers)
        if mlp is not None:
            check_positive(mlp=mlp)
        self.input_size, self.d_model, self.output_size = input_size, d_model, output_size
        self.num_layers, self.mlp_width, self.cell = layers, mlp, cell
        self.encoder = nn.Linear(input_size, d_model)
        self.cells = nn.ModuleList([_CELLS[cell](d_model, modes, d_model, **cell_kwargs) for _ in range(layers)])
        self.mlps = None if mlp is None else nn.ModuleList([_MLP(d_model, mlp) for _ in range(layers)])
        self.cell_state_size = self.cells[0].state_size
        self.layer_state_size = d_model + self.cell_state_size
        self.state_size = layers * self.layer_state_size
        self.z0 = nn.Parameter(torch.zeros(self.state_size)) if learn_z0 else None
        self.readout = nn.Linear(d_model, output_size)
        # the θ names the closed forms know (a subclass adding parameters falls back to autodiff)
        self.closed_form_names = tuple(n for n, _ in self.named_parameters() if not self._is_readout(n))

    def layer_params(self, theta: Params, k: int) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        """Layer k's cell parameters (the cell's own names, ``readout.*`` = C, c) and its MLP's
        (``inp.*``, ``out.*``; None without an MLP), read from θ."""
        cell_prefix, mlp_prefix = f"cells.{k}.", f"mlps.{k}."
        cell = {n[len(cell_prefix):]: p for n, p in theta.items() if n.startswith(cell_prefix)}
        if self.mlps is None:
            return cell, None
        return cell, {n[len(mlp_prefix):]: p for n, p in theta.items() if n.startswith(mlp_prefix)}

    def layer_slice(self, k: int) -> slice:
        """Layer k's part (o^k, x^k) of the state."""
        return slice(k * self.layer_state_size, (k + 1) * self.layer_state_size)

    def encode(self, theta: Params, x_t: Tensor) -> Tensor:
        """v^1 = W_e u + b_e: (..., I) -> (..., d)."""
        return F.linear(x_t, theta["encoder.weight"], theta["encoder.bias"])

    @staticmethod
    def block_output(cell: Params, mlp: Params | None, v: Tensor, x: Tensor) -> Tensor:
        """o = v + MLP(C x + c) (MLP = identity when ``mlp`` is None)."""
        y = F.linear(x, cell["readout.weight"], cell["readout.bias"])
        if mlp is not None:
            hidden = F.gelu(F.linear(y, mlp["inp.weight"], mlp["inp.bias"]))
            y = F.linear(hidden, mlp["out.weight"], mlp["out.bias"])
        return v + y

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        d = self.d_model
        v, parts = self.encode(theta, x_t), []
        for k, cell in enumerate(self.cells):
            cell_theta, mlp_theta = self.layer_params(theta, k)
            x = cell.step(cell_theta, z_prev[..., self.layer_slice(k)][..., d:], v, t)
            v = self.block_output(cell_theta, mlp_theta, v, x)
            parts += [v, x]
        return torch.cat(parts, dim=-1)

    def top_output(self, z: Tensor) -> Tensor:
        """o^L, the top layer's residual stream: z (..., state) -> (..., d)."""
        start = (self.num_layers - 1) * self.layer_state_size
        return z[..., start : start + self.d_model]

    def read(self, phi: Params, z: Tensor) -> Tensor:
        """y = W_r o^L + b_r: z (B, T, state) -> (B, T, O)."""
        return F.linear(self.top_output(z), phi["readout.weight"], phi.get("readout.bias"))
