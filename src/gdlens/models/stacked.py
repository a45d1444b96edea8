"""Multi-layer RNN / GRU / LSTM with torch's parametrisation; the state stacks the layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdlens.models._common import check_nonnegative, check_positive, fan_in_std, normal
from gdlens.models.base import Params, StateSpaceModel
from gdlens.models.cells import gru_cell, lstm_cell, rnn_cell

__all__ = ["StackedRNN"]

_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_RNN_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class StackedRNN(StateSpaceModel):
    """``num_layers`` recurrent layers of one cell type, computed in order within each step.

    Layer ℓ = 1..L reads, at step t, the hidden output of layer ℓ−1 at the SAME step t
    (layer 1 reads x_t), exactly as torch's multi-layer ``nn.RNN``/``nn.GRU``/``nn.LSTM``::

        h^0_t = x_t
        s^ℓ_t = cell_ℓ(h^{ℓ-1}_t, s^ℓ_{t-1})           ℓ = 1..L
        z_t   = concat(s^1_t, ..., s^L_t)
        y_t   = C h^L_t + d                            (the readout reads the top layer's h)

    which is still a recursion z_t = f(z_{t-1}, x_t; θ). The layer state s^ℓ is h^ℓ (H,) for
    ``cell="rnn"`` and ``"gru"`` and concat(h^ℓ, c^ℓ) (2H,) for ``"lstm"``; the cells are
    torch's (see :mod:`gdlens.models.cells`; rnn: h' = σ(W_ih x + b_ih + W_hh h + b_hh)).

    Shapes: x (B, T, I); z (B, T, L·S) with S = H (rnn, gru) or 2H (lstm), layer 1 first;
    y (B, T, O).

    Args:
        cell: ``"rnn"``, ``"gru"`` or ``"lstm"``.
        input_size: I.  hidden_size: H (each layer's width).  output_size: O.
        num_layers: L.
        nonlinearity: σ for ``cell="rnn"``: ``"tanh"`` or ``"relu"`` (must stay ``"tanh"``
           for gru/lstm, whose nonlinearities are fixed).
        g: scale of the recurrent weights at initialisation: ``weight_hh_l{k}`` ~ N(0, g²/H).
           ``weight_ih_l0`` ~ N(0, 1/I), ``weight_ih_l{k>0}`` ~ N(0, 1/H); biases start at 0.
        bias: whether the biases exist.
        learn_z0: make z_0 (L·S,) a learnable parameter named ``"z0"`` (initialised at zero).

    Parameters (θ), torch's names and shapes, G = 1, 3, 4 gates for rnn, gru, lstm:
    ``weight_ih_l{k}`` (G·H, I for k = 0 else H), ``weight_hh_l{k}`` (G·H, H),
    ``bias_ih_l{k}`` (G·H,), ``bias_hh_l{k}`` (G·H,), for k = 0..L−1; ``z0`` (L·S,).
    Readout (φ): ``readout.weight`` (O, H), ``readout.bias`` (O,).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 2,
        nonlinearity: str = "tanh",
        g: float = 1.0,
        bias: bool = True,
        learn_z0: bool = False,
    ) -> None:
        super().__init__()
        if cell not in _GATES:
            raise ValueError(f"cell must be one of {sorted(_GATES)}, got {cell!r}")
        if nonlinearity not in _RNN_NONLINEARITIES:
            allowed = sorted(_RNN_NONLINEARITIES)
            raise ValueError(f"nonlinearity must be one of {allowed}, got {nonlinearity!r}")
        if cell != "rnn" and nonlinearity != "tanh":
            raise ValueError(f"nonlinearity={nonlinearity!r} applies to cell='rnn' only, got cell={cell!r}")
        check_positive(hidden_size=hidden_size, output_size=output_size, num_layers=num_layers)
        check_nonnegative(input_size=input_size)
        self.cell, self.nonlinearity = cell, nonlinearity
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.layer_state_size = 2 * hidden_size if cell == "lstm" else hidden_size
        self.input_size, self.output_size = input_size, output_size
        self.state_size = num_layers * self.layer_state_size
        rows = _GATES[cell] * hidden_size
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", normal((rows, fan_in), fan_in_std(fan_in)))
            setattr(self, f"weight_hh_l{k}", normal((rows, hidden_size), fan_in_std(hidden_size, g)))
            if bias:
                setattr(self, f"bias_ih_l{k}", nn.Parameter(torch.zeros(rows)))
                setattr(self, f"bias_hh_l{k}", nn.Parameter(torch.zeros(rows)))
        self.has_bias = bias
        self.z0 = nn.Parameter(torch.zeros(self.state_size)) if learn_z0 else None
        self.readout = nn.Linear(hidden_size, output_size)

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        hs, s = self.hidden_size, self.layer_state_size
        inp, parts = x_t, []
        for k in range(self.num_layers):
            weights = (
                theta[f"weight_ih_l{k}"],
                theta[f"weight_hh_l{k}"],
                theta.get(f"bias_ih_l{k}"),
                theta.get(f"bias_hh_l{k}"),
            )
            block = z_prev[..., k * s : (k + 1) * s]
            if self.cell == "lstm":
                h, c = lstm_cell(inp, block[..., :hs], block[..., hs:], *weights)
                parts += [h, c]
            elif self.cell == "gru":
                h = gru_cell(inp, block, *weights)
                parts.append(h)
            else:
                h = rnn_cell(inp, block, *weights, _RNN_NONLINEARITIES[self.nonlinearity])
                parts.append(h)
            inp = h
        return torch.cat(parts, dim=-1)

    def top_hidden(self, z: Tensor) -> Tensor:
        """The top layer's h: z (..., L·S) -> (..., H)."""
        start = (self.num_layers - 1) * self.layer_state_size
        return z[..., start : start + self.hidden_size]

    def read(self, phi: Params, z: Tensor) -> Tensor:
        """y = C h^L + d: z (B, T, L·S) -> (B, T, O)."""
        return F.linear(self.top_hidden(z), phi["readout.weight"], phi.get("readout.bias"))

    def state_from_torch(self, h: Tensor, c: Tensor | None = None) -> Tensor:
        """Convert torch's state layout to ours: h (and c for lstm) of shape (L, B, H) -> (B, L·S).

        Use it to pass a torch ``h_0``/``(h_0, c_0)`` as ``forward``'s ``z0``, or to compare
        torch's final ``h_n``/``(h_n, c_n)`` with ``z[:, -1]``.
        """
        if h.dim() != 3 or h.shape[0] != self.num_layers or h.shape[2] != self.hidden_size:
            raise ValueError(
                f"h must have shape (L, B, H) = ({self.num_layers}, B, {self.hidden_size}), got {tuple(h.shape)}"
            )
        if self.cell == "lstm":
            if c is None or c.shape != h.shape:
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"c must have the shape of h, {tuple(h.shape)}, for cell='lstm'; got {got}")
            return torch.cat([torch.cat([h[k], c[k]], dim=-1) for k in range(self.num_layers)], dim=-1)
        if c is not None:
            raise ValueError(f"c is only used for cell='lstm', this model has cell={self.cell!r}")
        return torch.cat(list(h.unbind(0)), dim=-1)
