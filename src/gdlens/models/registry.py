"""Models by name, for the CLI and sweeps: ``build("gru", input_size=3, hidden=64, output_size=3, g=0.5)``."""

from __future__ import annotations

from typing import Any

from torch import nn

from gdlens.models.gru import GRU
from gdlens.models.lstm import LSTM
from gdlens.models.mlp import MLP
from gdlens.models.rnn import RNN

__all__ = ["MODELS", "build"]

MODELS = ("rnn", "gru", "lstm", "mlp")


def build(name: str, input_size: int, hidden: int, output_size: int, g: float = 1.0, **kwargs: Any) -> nn.Module:
    """A model by name: ``"rnn"`` (kwargs: nonlinearity, bias, learn_z0), ``"gru"``, ``"lstm"``
    (g scales the recurrent weights), or ``"mlp"`` (g is the init scale; kwargs: depth,
    activation)."""
    if name == "rnn":
        return RNN(input_size, hidden, output_size, g=g, **kwargs)
    if name == "gru":
        return GRU(input_size, hidden, output_size, g=g, **kwargs)
    if name == "lstm":
        return LSTM(input_size, hidden, output_size, g=g, **kwargs)
    if name == "mlp":
        return MLP(input_size, hidden, output_size, init_scale=g, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
