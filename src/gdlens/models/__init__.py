"""State-space models in functional form (see :mod:`gdlens.models.base` for the base class and
:mod:`gdlens.models.protocol` for the protocol the flow engine needs)."""

from gdlens.models.base import Params, StateSpaceModel
from gdlens.models.deep_linear import DeepLinear
from gdlens.models.embedding import EmbeddingMLP
from gdlens.models.gru import GRU
from gdlens.models.lru import LRU, SelectiveLRU, StackedLRU
from gdlens.models.lstm import LSTM
from gdlens.models.mlp import MLP
from gdlens.models.neural_ode import NeuralODE
from gdlens.models.protocol import StateSpace
from gdlens.models.registry import MODELS, build
from gdlens.models.residual import ResidualStack
from gdlens.models.rnn import RNN
from gdlens.models.stacked import StackedRNN
from gdlens.models.torch_adapter import as_state_space, from_torch
from gdlens.models.transformer import Transformer1L
from gdlens.models.transformer_stack import TransformerStack, from_torch_transformer

__all__ = [
    "StateSpaceModel",
    "StateSpace",
    "Params",
    "RNN",
    "GRU",
    "LSTM",
    "NeuralODE",
    "ResidualStack",
    "StackedRNN",
    "LRU",
    "SelectiveLRU",
    "StackedLRU",
    "from_torch",
    "as_state_space",
    "MLP",
    "EmbeddingMLP",
    "Transformer1L",
    "TransformerStack",
    "from_torch_transformer",
    "DeepLinear",
    "MODELS",
    "build",
]
