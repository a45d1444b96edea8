"""Pure cell functions in torch's gate conventions, built from primitive ops.

They are shared by :class:`~gdlens.models.GRU`, :class:`~gdlens.models.LSTM` and
:class:`~gdlens.models.StackedRNN`, and are safe under :mod:`torch.func` transforms
(``vmap``, ``jvp``, ``vjp``, ``jacrev``). Shapes: x (..., I), h and c (..., H); a weight
acting on a vector of width n has shape (G·H, n) with G gates stacked in torch's order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["rnn_cell", "gru_cell", "lstm_cell"]


def rnn_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    nonlinearity: Callable[[Tensor], Tensor],
) -> Tensor:
    """``h' = σ(W_ih x + b_ih + W_hh h + b_hh)`` (torch's ``nn.RNN`` cell)."""
    return nonlinearity(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh))


def gru_cell(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None
) -> Tensor:
    """Torch's ``nn.GRU`` cell, gates stacked (r, z, n)::

        r  = σ(W_ir x + b_ir + W_hr h + b_hr)
        u  = σ(W_iz x + b_iz + W_hz h + b_hz)          (torch calls it z)
        n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 − u) ⊙ n + u ⊙ h
    """
    i_r, i_u, i_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
    h_r, h_u, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    u = torch.sigmoid(i_u + h_u)
    n = torch.tanh(i_n + r * h_n)
    return (1 - u) * n + u * h


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Torch's ``nn.LSTM`` cell, gates stacked (i, f, g, o)::

        [i, f, g, o] = W_ih x + b_ih + W_hh h + b_hh
        c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)
        h' = σ(o) ⊙ tanh(c')

    Returns (h', c').
    """
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return h_new, c_new
