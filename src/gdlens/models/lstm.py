"""Long short-term memory network in torch's equations; the state is concat(h, c)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdlens.models._common import check_init, check_nonnegative, check_positive, recurrent_weights
from gdlens.models.base import Params, StateSpaceModel
from gdlens.models.cells import lstm_cell

__all__ = ["LSTM"]


class LSTM(StateSpaceModel):
    """LSTM with torch's ``nn.LSTM`` equations; state ``z_t = concat(h_t, c_t)``.

    With gates stacked in torch's order (i, f, g, o)::

        [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
        h_t = σ(o) ⊙ tanh(c_t)
        z_t = concat(h_t, c_t)                      (2H,)
        y_t = C h_t + d                             (the readout reads h only)

    Shapes: x (B, T, I), z (B, T, 2H) with ``z[..., :H]`` = h and ``z[..., H:]`` = c,
    y (B, T, O). ``state_size`` is 2H; ``hidden_size`` is H, the LSTM width.

    Args:
        input_size: I.  hidden_size: H (the LSTM width).  output_size: O.
        g: scale of the recurrent weights at initialisation (all four gate blocks of
           ``weight_hh``; see ``init``).
        bias: whether ``bias_ih`` and ``bias_hh`` exist.
        learn_z0: make z_0 = (h_0, c_0), shape (2H,), a learnable parameter named ``"z0"``
           (initialised at zero).
        init: the initialisation convention.

           - ``"gdlens"`` (default): every entry of ``weight_hh`` ~ N(0, g²/H), ``weight_ih``
             ~ N(0, 1/I); biases start at 0.
           - ``"torch"``: nn.LSTM's own draws (every tensor U(−1/√H, 1/√H)), then ``weight_hh``
             times g: g is then the paper's g of KPFlow (arXiv 2507.06381), and gdlens' g is
             that g/√3 (:func:`gdlens.models._common.torch_recurrent_init` states both).

    Parameters (θ): ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih`` (4H,),
    ``bias_hh`` (4H,), ``z0`` (2H,).  Readout (φ): ``readout.weight`` (O, H), ``readout.bias`` (O,).
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
        self.input_size, self.state_size, self.output_size = input_size, 2 * hidden_size, output_size
        self.hidden_size = hidden_size
        self.init = check_init(init)
        self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh = recurrent_weights(
            init, 4, input_size, hidden_size, bias, g
        )
        self.z0 = nn.Parameter(torch.zeros(2 * hidden_size)) if learn_z0 else None
        self.readout = nn.Linear(hidden_size, output_size)

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        hs = self.hidden_size
        h, c = lstm_cell(
            x_t,
            z_prev[..., :hs],
            z_prev[..., hs:],
            theta["weight_ih"],
            theta["weight_hh"],
            theta.get("bias_ih"),
            theta.get("bias_hh"),
        )
        return torch.cat([h, c], dim=-1)

    def read(self, phi: Params, z: Tensor) -> Tensor:
        """y = C h + d, reading h = ``z[..., :H]``: z (B, T, 2H) -> (B, T, O)."""
        return F.linear(z[..., : self.hidden_size], phi["readout.weight"], phi.get("readout.bias"))
