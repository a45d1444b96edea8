"""A deep linear classifier (or regressor): ``y = W_L ⋯ W_2 W_1 x``.

Linear in its input, not in its parameters: gradient descent on the factors has the implicit
biases studied by Saxe, McClelland, Ganguli (arXiv 1312.6120) and Arora, Cohen, Hu, Luo
(arXiv 1905.13655). With layerwise weight decay λ Σ_ℓ ‖W_ℓ‖_F², the factors of a map W cost at
least ``λ L Σ_i σ_i(W)^{2/L}`` (equality for balanced factors), the Schatten-2/L energy of
:func:`gdlens.probes.clocks.schatten_energy`.

Parameters ``layers.0.weight`` … ``layers.{L−1}.weight`` with ``W_ℓ`` of shape
``(d_ℓ, d_{ℓ−1})``: ``(width, input_size)`` first, ``(output_size, width)`` last (a single
``(output_size, input_size)`` matrix when depth = 1). Initialisation ``N(0, init_scale²/fan_in)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["DeepLinear"]


class DeepLinear(nn.Module):
    """``y = W_L ⋯ W_1 x``: x (N, input_size) -> y (N, output_size) (module docstring).

    Args:
        input_size, width, output_size: layer sizes (every hidden layer has ``width`` units).
        depth: L, the number of weight matrices (≥ 1).
        init_scale: multiplies the 1/√fan_in standard deviation of every weight.
        bias: add a bias to the last layer (outside the product; off by default).
    """

    def __init__(
        self, input_size: int, width: int, output_size: int, depth: int = 2, init_scale: float = 1.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        for arg, value in (("input_size", input_size), ("width", width), ("output_size", output_size),
                           ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        sizes = [input_size] + [width] * (depth - 1) + [output_size]
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, bias=bias and i == depth - 1)
            for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        )
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.normal_(0.0, init_scale / math.sqrt(layer.in_features))
                if layer.bias is not None:
                    layer.bias.zero_()
        self.input_size, self.width, self.output_size, self.depth = input_size, width, output_size, depth

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"DeepLinear expects x of shape (N, {self.input_size}), got {tuple(x.shape)}")
        h = x.to(self.layers[0].weight.dtype)
        for layer in self.layers:
            h = layer(h)
        return h

    def factors(self) -> list[Tensor]:
        """``[W_1, …, W_L]``, input to output."""
        return [layer.weight for layer in self.layers]

    def end_to_end(self) -> Tensor:
        """``W = W_L ⋯ W_1`` ``(output_size, input_size)`` (detached)."""
        with torch.no_grad():
            W = self.layers[0].weight
            for layer in self.layers[1:]:
                W = layer.weight @ W
        return W

    def parameter_groups(self) -> dict[str, list[str]]:
        """``{"layer_1": [...], …, "layer_L": [...]}`` (the last layer is the head)."""
        return {f"layer_{i + 1}": [n for n, _ in layer.named_parameters(prefix=f"layers.{i}")]
                for i, layer in enumerate(self.layers)}
