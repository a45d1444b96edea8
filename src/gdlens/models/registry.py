"""Models by name, for the CLI and sweeps: ``build("gru", input_size=3, hidden=64, output_size=3, g=0.5)``."""

from __future__ import annotations

from typing import Any

from torch import nn

from gdlens.models.deep_linear import DeepLinear
from gdlens.models.embedding import EmbeddingMLP
from gdlens.models.gru import GRU
from gdlens.models.lstm import LSTM
from gdlens.models.mlp import MLP
from gdlens.models.rnn import RNN
from gdlens.models.transformer import Transformer1L

__all__ = ["MODELS", "build"]

MODELS = ("rnn", "gru", "lstm", "mlp", "embedding_mlp", "transformer", "deep_linear")


def build(name: str, input_size: int, hidden: int, output_size: int, g: float = 1.0, **kwargs: Any) -> nn.Module:
    """A model by name: ``"rnn"`` (kwargs: nonlinearity, bias, learn_z0), ``"gru"``, ``"lstm"``
    (g scales the recurrent weights), or ``"mlp"`` (g is the init scale; kwargs: depth,
    activation); for token pairs (N, 2) of modular arithmetic, ``"embedding_mlp"`` (p = output_size,
    width = hidden, g the embeddings' init std; kwargs: embedding, activation) and
    ``"transformer"`` (p = output_size, d_model = hidden; kwargs: n_heads, d_mlp; g must stay 1);
    the two token models ignore ``input_size`` (their input is the pair of tokens); or
    ``"deep_linear"`` (width = hidden, g the init scale; kwargs: depth, bias)."""
    if name == "rnn":
        return RNN(input_size, hidden, output_size, g=g, **kwargs)
    if name == "gru":
        return GRU(input_size, hidden, output_size, g=g, **kwargs)
    if name == "lstm":
        return LSTM(input_size, hidden, output_size, g=g, **kwargs)
    if name == "mlp":
        return MLP(input_size, hidden, output_size, init_scale=g, **kwargs)
    if name == "embedding_mlp":
        return EmbeddingMLP(output_size, width=hidden, embed_std=g, **kwargs)
    if name == "transformer":
        if g != 1.0:
            raise ValueError(f"the transformer has no init-scale parameter g (got g={g}); leave g at 1.0")
        return Transformer1L(output_size, d_model=hidden, **kwargs)
    if name == "deep_linear":
        return DeepLinear(input_size, hidden, output_size, init_scale=g, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
