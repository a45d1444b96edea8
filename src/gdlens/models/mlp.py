"""A plain multilayer perceptron for static tasks (no time axis)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MLP"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "linear": nn.Identity}


class MLP(nn.Module):
    """``y = W_L σ(⋯ σ(W_1 x + b_1) ⋯) + b_L`` with ``depth`` hidden layers of ``width`` units.

    ``init_scale`` multiplies every weight's standard deviation 1/√fan_in (biases start at 0):
    small values put two-layer networks in the condensed regime, large ones in the linear (NTK)
    regime. ``init_std`` instead draws every weight and bias from N(0, init_std²) whatever the
    fan-in: Luo et al.'s parameterisation (arXiv 2007.07497) with β₁ = β₂ = init_std, in which
    a two-layer network of width m sits at γ = −2 log(init_std)/log m on their phase diagram
    (γ < 1 linear, γ = 1 critical, γ > 1 condensed). x (N, I) -> y (N, O).
    """

    def __init__(
        self, input_size: int, width: int, output_size: int, depth: int = 1, activation: str = "relu",
        init_scale: float = 1.0, bias: bool = True, init_std: float | None = None,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if init_std is not None and not init_std > 0:
            raise ValueError(f"init_std must be positive (or None for init_scale/√fan_in), got {init_std}")
        sizes = [input_size] + [width] * depth + [output_size]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = nn.Linear(fan_in, fan_out, bias=bias)
            with torch.no_grad():
                if init_std is not None:
                    linear.weight.normal_(0.0, init_std)
                    if bias:
                        linear.bias.normal_(0.0, init_std)
                else:
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
