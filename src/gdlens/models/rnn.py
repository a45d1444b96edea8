"""Elman recurrent network ``z_t = σ(W z_{t-1} + U x_t + b)`` with a linear readout."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gdlens.models._common import check_init, check_nonnegative, check_positive, torch_recurrent_init
from gdlens.models.base import Params, StateSpaceModel

__all__ = ["RNN"]

_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda a: a}


class RNN(StateSpaceModel):
    """Vanilla RNN, ``z_t = σ(W z_{t-1} + U x_t + b)``, ``y_t = C z_t + d``.

    Args:
        input_size: I.  hidden_size: H.  output_size: O.
        nonlinearity: ``"tanh"``, ``"relu"`` or ``"linear"``.
        g: initial recurrent weight scale (g < 1 ordered, g > 1 chaotic for tanh at large H
           with ``init="gdlens"``).
        bias: whether b exists.
        learn_z0: make z_0 (H,) a learnable parameter named ``"z0"`` (initialised at zero).
        init: the initialisation convention.

           - ``"gdlens"`` (default): ``W_ij ~ N(0, g²/H)``, ``U_ij ~ N(0, 1/I)``, b = 0.
           - ``"torch"``: as ``torch.nn.RNN`` initialises itself, with g scaling ``weight_hh``
             only: W = g·U(−k, k), U ~ U(−k, k), k = 1/√H, and b = b_ih + b_hh, the sum of
             torch's two biases, each U(−k, k) (so the pre-activations have nn.RNN's
             distribution; after the same ``torch.manual_seed`` the numbers are nn.RNN's).
             W's std is g/√(3H): gdlens' g equals this g/√3, and the input weights' std is
             1/√(3H) instead of 1/√I (about 8× smaller at H = 64, I = 3). This is the g of
             code that multiplies a torch module's ``weight_hh`` (KPFlow, arXiv 2507.06381).

    Parameters (θ): ``weight_hh`` (H, H), ``weight_ih`` (H, I), ``bias`` (H,), ``z0`` (H,).
    Readout (φ): ``readout.weight`` (O, H), ``readout.bias`` (O,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        nonlinearity: str = "tanh",
        g: float = 1.0,
        bias: bool = True,
        learn_z0: bool = False,
        init: str = "gdlens",
    ) -> None:
        super().__init__()
        check_positive(hidden_size=hidden_size, output_size=output_size)
        check_nonnegative(input_size=input_size)
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {sorted(_NONLINEARITIES)}, got {nonlinearity!r}")
        self.input_size, self.state_size, self.output_size = input_size, hidden_size, output_size
        self.nonlinearity = nonlinearity
        self.init = check_init(init)
        if init == "torch":
            self.weight_ih, self.weight_hh, b_ih, b_hh = torch_recurrent_init(1, input_size, hidden_size, bias, g)
            self.bias = nn.Parameter(b_ih.detach() + b_hh.detach()) if bias else None
        else:
            self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) * (g / math.sqrt(hidden_size)))
            self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size) / math.sqrt(max(input_size, 1)))
            self.bias = nn.Parameter(torch.zeros(hidden_size)) if bias else None
        self.z0 = nn.Parameter(torch.zeros(hidden_size)) if learn_z0 else None
        self.readout = nn.Linear(hidden_size, output_size)

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        pre = z_prev @ theta["weight_hh"].T + x_t @ theta["weight_ih"].T
        if "bias" in theta:
            pre = pre + theta["bias"]
        return _NONLINEARITIES[self.nonlinearity](pre)
