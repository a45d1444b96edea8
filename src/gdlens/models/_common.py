"""Small helpers shared by the model modules: activations, initialisation, argument checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "silu": F.silu,
    "gelu": F.gelu,
    "linear": lambda a: a,
}


def get_activation(name: str, what: str = "activation") -> Callable[[Tensor], Tensor]:
    """The activation called ``name``; ValueError listing the allowed names otherwise."""
    if name not in ACTIVATIONS:
        raise ValueError(f"{what} must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def normal(shape: tuple[int, ...], std: float) -> nn.Parameter:
    """A parameter with i.i.d. N(0, std²) entries (drawn from torch's global generator)."""
    return nn.Parameter(torch.randn(*shape) * std)


def fan_in_std(fan_in: int, gain: float = 1.0) -> float:
    """gain / sqrt(fan_in), with fan_in 0 treated as 1 (an empty weight has no entries)."""
    return gain / math.sqrt(max(fan_in, 1))


def check_positive(**sizes: int | float) -> None:
    """ValueError naming the first argument that is not > 0."""
    for name, value in sizes.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def check_nonnegative(**sizes: int) -> None:
    """ValueError naming the first argument that is < 0."""
    for name, value in sizes.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
