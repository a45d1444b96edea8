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


#: initialisation conventions of the recurrent models (``init=``): see :func:`torch_recurrent_init`
INITS = ("gdlens", "torch")


def check_init(init: str) -> str:
    """``init`` if it is one of :data:`INITS`; ValueError naming the allowed values otherwise."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


def torch_recurrent_init(
    gates: int, input_size: int, hidden_size: int, bias: bool, g: float
) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter | None, nn.Parameter | None]:
    """``(weight_ih, weight_hh, bias_ih, bias_hh)`` drawn as torch's ``nn.RNN`` / ``nn.GRU`` /
    ``nn.LSTM`` draw them, then ``weight_hh`` multiplied by g.

    torch (``RNNBase.reset_parameters``) draws every entry i.i.d. U(−k, k), k = 1/√H, in the
    order weight_ih (gates·H, I), weight_hh (gates·H, H), bias_ih, bias_hh (gates·H,), from the
    global generator; this function draws the same numbers in the same order (so after the same
    ``torch.manual_seed`` they equal the torch module's). Each entry has variance k²/3 = 1/(3H):
    the recurrent weights have std g/√(3H), so g here is the "g" of code that scales a torch
    module's ``weight_hh`` (KPFlow, arXiv 2507.06381), and gdlens' own g (std g/√H) equals this
    g/√3. The biases are None when ``bias`` is False (then only the two weights are drawn)."""
    k = 1.0 / math.sqrt(hidden_size)

    def uniform(*shape: int) -> nn.Parameter:
        return nn.Parameter(torch.empty(*shape).uniform_(-k, k))

    weight_ih, weight_hh = uniform(gates * hidden_size, input_size), uniform(gates * hidden_size, hidden_size)
    bias_ih, bias_hh = (uniform(gates * hidden_size), uniform(gates * hidden_size)) if bias else (None, None)
    with torch.no_grad():
        weight_hh.mul_(g)
    return weight_ih, weight_hh, bias_ih, bias_hh


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


def recurrent_weights(
    init: str, gates: int, input_size: int, hidden_size: int, bias: bool, g: float
) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter | None, nn.Parameter | None]:
    """``(weight_ih, weight_hh, bias_ih, bias_hh)`` of a gated cell with ``gates`` blocks, in the
    convention ``init``: ``"gdlens"`` (weight_hh ~ N(0, g²/H), weight_ih ~ N(0, 1/I), biases 0)
    or ``"torch"`` (:func:`torch_recurrent_init`). Biases are None without ``bias``."""
    if check_init(init) == "torch":
        return torch_recurrent_init(gates, input_size, hidden_size, bias, g)
    weight_ih = normal((gates * hidden_size, input_size), fan_in_std(input_size))
    weight_hh = normal((gates * hidden_size, hidden_size), fan_in_std(hidden_size, g))
    if not bias:
        return weight_ih, weight_hh, None, None
    return weight_ih, weight_hh, nn.Parameter(torch.zeros(gates * hidden_size)), nn.Parameter(torch.zeros(gates * hidden_size))
