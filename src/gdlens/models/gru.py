"""Gated recurrent unit in torch's equations, written from primitive ops."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdlens.models._common import check_init, check_nonnegative, check_positive, recurrent_weights
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
        g: scale of the recurrent weights at initialisation (all three gate blocks of
           ``weight_hh``; see ``init``).
        bias: whether ``bias_ih`` and ``bias_hh`` exist.
        learn_z0: make z_0 (H,) a learnable parameter named ``"z0"`` (initialised at zero).
        init: the initialisation convention.

           - ``"gdlens"`` (default): every entry of ``weight_hh`` ~ N(0, g²/H), ``weight_ih``
             ~ N(0, 1/I); biases start at 0.
           - ``"torch"``: nn.GRU's own draws (every tensor U(−1/√H, 1/√H)), then ``weight_hh``
             times g: g is then the paper's g of KPFlow (arXiv 2507.06381), and gdlens' g is
             that g/√3 (:func:`gdlens.models._common.torch_recurrent_init` states both).

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
        init: str = "gdlens",
    ) -> None:
        super().__init__()
        check_positive(hidden_size=hidden_size, output_size=output_size)
        check_nonnegative(input_size=input_size)
        self.input_size, self.state_size, self.output_size = input_size, hidden_size, output_size
        self.hidden_size = hidden_size
        self.init = check_init(init)
        self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh = recurrent_weights(
            init, 3, input_size, hidden_size, bias, g
        )
        self.z0 = nn.Parameter(torch.zeros(hidden_size)) if learn_z0 else None
        self.readout = nn.Linear(hidden_size, output_size)

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        return gru_cell(
            x_t, z_prev, theta["weight_ih"], theta["weight_hh"], theta.get("bias_ih"), theta.get("bias_hh")
        )
