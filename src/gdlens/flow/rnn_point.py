"""The quantities of an Elman RNN at one trajectory that its closed forms of K and P need.

For ``z_t = σ(a_t)``, ``a_t = W z_{t-1} + U x_t + b`` (gdlens.models.RNN)::

    u_t = [z*_{t-1}, x_t, 1]      the input each weight acts on  (B, T, H + I + 1)
    s_t = σ'(a_t)                 the diagonal scaling            (B, T, H)

with σ' = 1 − tanh² (tanh), 1[a > 0] (relu, as autograd's), 1 (linear). Storage is
O(B·T·(H + I)) plus W: nothing of size B·T·H².
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gdlens.models.base import Params

__all__ = ["RNNPoint"]


@dataclass(frozen=True)
class RNNPoint:
    """z_prev (B, T, H): z*_0..z*_{T-1};  inputs (B, T, I): x_1..x_T;  s (B, T, H): σ'(a_t);
    weight_hh (H, H): W;  z0_learnable: whether z_0 = θ["z0"] (broadcast over the batch) is a
    function of θ here (a learnable z0 and no constant z0 passed)."""

    z_prev: Tensor
    inputs: Tensor
    s: Tensor
    weight_hh: Tensor
    has_bias: bool
    z0_learnable: bool

    @classmethod
    def from_model(cls, model, theta: Params, x: Tensor, hidden: Tensor, z0: Tensor | None) -> RNNPoint:
        theta = {n: p.detach() for n, p in theta.items()}
        z0_star = (model.initial_state(theta, x) if z0 is None else z0).detach()
        z_prev = torch.cat([z0_star.unsqueeze(1), hidden[:, :-1].detach()], dim=1)
        inputs = model.step_inputs(x).transpose(0, 1)
        W = theta["weight_hh"]
        a = z_prev @ W.T + inputs @ theta["weight_ih"].T
        if "bias" in theta:
            a = a + theta["bias"]
        kind = model.nonlinearity
        if kind == "tanh":
            s = 1 - torch.tanh(a) ** 2
        elif kind == "relu":
            s = (a > 0).to(a.dtype)
        else:
            s = torch.ones_like(a)
        return cls(z_prev, inputs, s, W, "bias" in theta, z0 is None and "z0" in theta)
