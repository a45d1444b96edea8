"""Models by name, for the CLI and sweeps: ``build("gru", input_size=3, hidden=64, output_size=3, g=0.5)``."""

from __future__ import annotations

from typing import Any

from torch import nn

from gdlens.models.deep_linear import DeepLinear
from gdlens.models.embedding import EmbeddingMLP
from gdlens.models.gru import GRU
from gdlens.models.lru import LRU, SelectiveLRU, StackedLRU
from gdlens.models.lstm import LSTM
from gdlens.models.mlp import MLP
from gdlens.models.rnn import RNN
from gdlens.models.transformer import Transformer1L
from gdlens.models.transformer_stack import TransformerStack

__all__ = ["MODELS", "build"]

MODELS = (
    "rnn", "gru", "lstm", "mlp", "embedding_mlp", "transformer", "deep_linear",
    "lru", "selective_lru", "stacked_lru", "transformer_stack",
)

#: the keyword arguments a model needs beyond the sizes (no default in its constructor)
REQUIRED = {"stacked_lru": ("modes",), "transformer_stack": ("n_heads", "depth", "seq_len")}


def _no_g(name: str, g: float) -> None:
    if g != 1.0:
        raise ValueError(f"{name} has no init-scale parameter g (got g={g}); leave g at 1.0")


def build(name: str, input_size: int, hidden: int, output_size: int, g: float = 1.0, **kwargs: Any) -> nn.Module:
    """A model by name: ``"rnn"`` (kwargs: nonlinearity, bias, learn_z0), ``"gru"``, ``"lstm"``
    (g scales the recurrent weights), or ``"mlp"`` (g is the init scale; kwargs: depth,
    activation); for token pairs (N, 2) of modular arithmetic, ``"embedding_mlp"`` (p = output_size,
    width = hidden, g the embeddings' init std; kwargs: embedding, activation) and
    ``"transformer"`` (p = output_size, d_model = hidden; kwargs: n_heads, d_mlp; g must stay 1);
    the two token models ignore ``input_size`` (their input is the pair of tokens); or
    ``"deep_linear"`` (width = hidden, g the init scale; kwargs: depth, bias); the diagonal
    recurrences ``"lru"`` (modes = hidden), ``"selective_lru"`` (state size = hidden) and
    ``"stacked_lru"`` (d_model = hidden; kwargs: modes (required), layers, mlp, cell, learn_z0);
    ``"transformer_stack"`` (d_model = hidden; kwargs: n_heads, depth, seq_len (required), and
    vocab_size for token inputs (then ``input_size`` is ignored) or embeddings of width
    ``input_size``; the other keyword arguments of :class:`TransformerStack`). The last four
    have no init scale: g must stay 1."""
    missing = [k for k in REQUIRED.get(name, ()) if k not in kwargs]
    if missing:
        raise ValueError(f"model {name!r} needs the keyword argument(s) {', '.join(missing)}")
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
    if name in ("lru", "selective_lru", "stacked_lru", "transformer_stack"):
        _no_g(name, g)
    if name == "lru":
        return LRU(input_size, hidden, output_size, **kwargs)
    if name == "selective_lru":
        return SelectiveLRU(input_size, hidden, output_size, **kwargs)
    if name == "stacked_lru":
        return StackedLRU(input_size, hidden, output_size=output_size, **kwargs)
    if name == "transformer_stack":
        if kwargs.get("vocab_size") is None:
            kwargs["input_size"] = input_size
        else:
            kwargs.pop("input_size", None)
        return TransformerStack(hidden, output_size=output_size, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
