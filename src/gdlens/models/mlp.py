"""A plain multilayer perceptron for static tasks (no time axis)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MLP"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "linear": nn.Identity}


class MLP(nn.Module):
    """``y = W_L σ(⋯ σ(W_1 x + b_1) ⋯) + b_L`` with ``depth`` hidden layers of ``width`` units.

    ``init_scale`` multiplies every weight's standard deviation 1/√fan_in: small values put
    two-layer networks in the condensed regime, large ones in the linear (NTK) regime
    (Luo et al. arXiv 2007.07497). x (N, I) -> y (N, O).
    """

    def __init__(
        self, input_size: int, width: int, output_size: int, depth: int = 1, activation: str = "relu",
        init_scale: float = 1.0, bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        sizes = [input_size] + [width] * depth + [output_size]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = nn.Linear(fan_in, fan_out, bias=bias)
            with torch.no_grad():
                linear.weight.normal_(0.0, init_scale / math.sqrt(fan_in))
                if bias:
                    linear.bias.zero_()
            layers.append(linear)
            if i < depth:
                layers.append(_ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        self.input_size, self.output_size = input_size, output_size

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(f"MLP expects x of shape (N, {self.input_size}), got {tuple(x.shape)}")
        return self.net(x.to(self.net[0].weight.dtype))
