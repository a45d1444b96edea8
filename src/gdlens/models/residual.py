"""Residual stack with depth as time: ``z_ℓ = z_{ℓ-1} + f_ℓ(z_{ℓ-1}; θ_ℓ)``, untied θ_ℓ."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdlens.models._common import check_positive, fan_in_std, get_activation, normal
from gdlens.models.base import Params, StateSpaceModel

__all__ = ["ResidualStack"]


class ResidualStack(StateSpaceModel):
    """A residual network read as a recursion over depth, one input per example.

    ::

        z_0 = E x + e                                   (embedding; part of θ)
        z_ℓ = z_{ℓ-1} + f_ℓ(z_{ℓ-1}),   ℓ = 1..depth    (untied weights per layer)
        y   = C z_depth + d                              (only the last layer is read)

    with ``f_ℓ(z) = σ(W_ℓ z + b_ℓ)`` when ``width`` is None, and
    ``f_ℓ(z) = V_ℓ σ(W_ℓ z + b_ℓ)`` (W_ℓ: width×H, V_ℓ: H×width) when ``width`` is given.
    Step t of the recursion is layer ℓ = t and reads index t−1 of the stacked weights.

    Shapes: x (B, I) (not (B, T, I)); z (B, depth, H) are z_1..z_depth; y (B, 1, O).
    Steps take no input: :meth:`step_inputs` returns an empty (depth, B, 0) tensor.

    Initialisation (biases start at 0; embedding ``embed.weight`` ~ N(0, 1/I)). The branch's
    last linear map carries a 1/√depth factor so that ‖z_depth‖ stays O(‖z_0‖) as depth grows:
        width None:  W_ℓ ~ N(0, g²/(H·depth)).
        width given: W_ℓ ~ N(0, g²/H),  V_ℓ ~ N(0, 1/(width·depth)).
    So g scales W_ℓ, the weight acting on z, in both cases. The 1/√depth scaling keeps
    centred increments in check (tanh, or any activation with the two-layer branch, whose
    V_ℓ has zero mean); a one-layer branch with a non-negative activation (relu, softplus,
    sigmoid) adds increments of one sign and still grows like exp(c·g·√depth): use
    ``width`` (or a small g) with those.

    Args:
        input_size: I.  hidden_size: H.  output_size: O.  depth: number of residual layers.
        width: hidden units of a two-layer branch; None for the one-layer branch.
        activation: one of ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"softplus"``, ``"silu"``,
           ``"gelu"``, ``"linear"``.
        g: scale of W_ℓ (see above).

    Parameters (θ): ``embed.weight`` (H, I), ``embed.bias`` (H,); width None: ``weight``
    (depth, H, H), ``bias`` (depth, H); width given: ``weight_in`` (depth, width, H),
    ``bias_in`` (depth, width), ``weight_out`` (depth, H, width).
    Readout (φ): ``readout.weight`` (O, H), ``readout.bias`` (O,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        depth: int,
        width: int | None = None,
        activation: str = "tanh",
        g: float = 1.0,
    ) -> None:
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size, output_size=output_size, depth=depth)
        if width is not None:
            check_positive(width=width)
        self._act = get_activation(activation)
        self.activation, self.depth, self.width = activation, depth, width
        self.input_size, self.state_size, self.output_size = input_size, hidden_size, output_size
        self.embed = nn.Linear(input_size, hidden_size)
        with torch.no_grad():
            self.embed.weight.normal_(0.0, fan_in_std(input_size))
            self.embed.bias.zero_()
        if width is None:
            self.weight = normal((depth, hidden_size, hidden_size), g / math.sqrt(hidden_size * depth))
            self.bias = nn.Parameter(torch.zeros(depth, hidden_size))
        else:
            self.weight_in = normal((depth, width, hidden_size), fan_in_std(hidden_size, g))
            self.bias_in = nn.Parameter(torch.zeros(depth, width))
            self.weight_out = normal((depth, hidden_size, width), 1.0 / math.sqrt(width * depth))
        self.readout = nn.Linear(hidden_size, output_size)

    # ------------------------------------------------------------------ input handling
    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects x of shape (B, {self.input_size}), got {tuple(x.shape)}"
            )

    def step_inputs(self, x: Tensor) -> Tensor:
        """No per-step input: an empty (depth, B, 0) tensor."""
        self._check_input(x)
        return x.new_zeros(self.depth, x.shape[0], 0)

    def num_steps(self, x: Tensor) -> int:
        return self.depth

    # ------------------------------------------------------------------ the recursion
    def initial_state(self, theta: Params, x: Tensor) -> Tensor:
        """z_0 = E x + e: x (B, I) -> (B, H); depends on θ through ``embed.*``."""
        return F.linear(x, theta["embed.weight"], theta["embed.bias"])

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        if not 1 <= t <= self.depth:
            raise ValueError(f"step index t must be in 1..{self.depth}, got {t}")
        k = t - 1
        if self.width is None:
            branch = self._act(F.linear(z_prev, theta["weight"][k], theta["bias"][k]))
        else:
            hidden = self._act(F.linear(z_prev, theta["weight_in"][k], theta["bias_in"][k]))
            branch = F.linear(hidden, theta["weight_out"][k])
        return z_prev + branch

    def read(self, phi: Params, z: Tensor) -> Tensor:
        """y = C z_depth + d: z (B, depth, H) -> (B, 1, O), reading the last layer only."""
        return F.linear(z[..., -1:, :], phi["readout.weight"], phi.get("readout.bias"))
