"""Gated recurrent unit in torch's equations, written from primitive ops."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdlens.models._common import check_nonnegative, check_positive, fan_in_std, normal
from gdlens.models.base import Params, StateSpaceModel
from gdlens.models.cells import gru_cell

__all__ = ["GRU"]


class GRU(StateSpaceModel):
    """GRU with torch's ``nn.GRU`` equations and a linear readout.

    With gates stacked in torch's order (r, z, n) and u the update gate (torch's z)::

        r_t = σ(W_ir x_t + b_ir + W_hr z_{t-1} + b_hr)
        u_t = σ(W_iz x_t + b_iz + W_hz z_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn z_{t-1} + b_hn))
        z_t = (1 − u_t) ⊙ n_t + u_t ⊙ z_{t-1}
        y_t = C z_t + d

    Shapes: x (B, T, I), z (B, T, H), y (B, T, O).

    Args:
        input_size: I.  hidden_size: H.  output_size: O.
        g: scale of the recurrent weights at initialisation: every entry of ``weight_hh``
           (all three gate blocks) ~ N(0, g²/H). ``weight_ih`` ~ N(0, 1/I); biases start at 0.
        bias: whether ``bias_ih`` and ``bias_hh`` exist.
        learn_z0: make z_0 (H,) a learnable parameter named ``"z0"`` (initialised at zero).

    Parameters (θ): ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih`` (3H,),
    ``bias_hh`` (3H,), ``z0`` (H,).  Readout (φ): ``readout.weight`` (O, H), ``readout.bias`` (O,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        g: float = 1.0,
        bias: bool = True,
        learn_z0: bool = False,
    ) -> None:
        super().__init__()
        check_positive(hidden_size=hidden_size, output_size=output_size)
        check_nonnegative(input_size=input_size)
        self.input_size, self.state_size, self.output_size = input_size, hidden_size, output_size
        self.hidden_size = hidden_size
        self.weight_ih = normal((3 * hidden_size, input_size), fan_in_std(input_size))
        self.weight_hh = normal((3 * hidden_size, hidden_size), fan_in_std(hidden_size, g))
        self.bias_ih = nn.Parameter(torch.zeros(3 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.zeros(3 * hidden_size)) if bias else None
        self.z0 = nn.Parameter(torch.zeros(hidden_size)) if learn_z0 else None
        self.readout = nn.Linear(hidden_size, output_size)

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        return gru_cell(
            x_t, z_prev, theta["weight_ih"], theta["weight_hh"], theta.get("bias_ih"), theta.get("bias_hh")
        )
