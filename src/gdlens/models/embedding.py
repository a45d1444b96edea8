"""The embedding MLP of the grokking literature, for modular arithmetic on token pairs.

Two learned embedding tables, one per operand, are concatenated and passed through one hidden
layer and a linear head::

    h(a, b) = σ(W_h [E_a[a] ‖ E_b[b]] + b_h)        E_a, E_b: (p, d)      W_h: (width, 2d)
    y(a, b) = W_o h(a, b) + b_o                      W_o: (p, width)       y: logits over p classes

(the model of Liu et al., "Towards understanding grokking", arXiv 2205.10343, and of the
"training clocks" analysis, with separate tables for a and b). Parameter names make the groups
obvious: ``embed_a.weight``, ``embed_b.weight`` (group ``"embedding"``), ``hidden.weight``,
``hidden.bias`` (``"hidden"``), ``head.weight``, ``head.bias`` (``"head"``).

Initialisation: embeddings ``N(0, embed_std²)`` (``embed_std = 1``, torch's own ``nn.Embedding``
default, is the setting with which the grokking experiment of :mod:`gdlens.experiments.grokking`
is calibrated); linear weights ``N(0, init_scale²/fan_in)``, biases zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["EmbeddingMLP"]

_ACTIVATIONS = {"relu": torch.relu, "gelu": nn.functional.gelu, "tanh": torch.tanh, "linear": lambda h: h}


class EmbeddingMLP(nn.Module):
    """Logits ``(N, p)`` of ``a ∘ b mod p`` from token pairs ``x`` ``(N, 2)`` (module docstring).

    Args:
        p: number of tokens (and of classes).
        embedding: d, the width of each embedding table.
        width: hidden units.
        activation: ``"relu"`` (default), ``"gelu"``, ``"tanh"`` or ``"linear"``.
        embed_std: standard deviation of the embedding entries at initialisation.
        init_scale: multiplies the 1/√fan_in standard deviation of the linear weights.
        bias: biases in the hidden layer and the head.
    """

    def __init__(
        self, p: int, embedding: int = 128, width: int = 512, activation: str = "relu", embed_std: float = 1.0,
        init_scale: float = 1.0, bias: bool = True,
    ) -> None:
        super().__init__()
        for arg, value in (("p", p), ("embedding", embedding), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if not embed_std >= 0 or not init_scale >= 0:
            raise ValueError(f"embed_std and init_scale must be >= 0, got {embed_std} and {init_scale}")
        self.p, self.embedding, self.width, self.activation = p, embedding, width, activation
        self.embed_a = nn.Embedding(p, embedding)
        self.embed_b = nn.Embedding(p, embedding)
        self.hidden = nn.Linear(2 * embedding, width, bias=bias)
        self.head = nn.Linear(width, p, bias=bias)
        with torch.no_grad():
            for table in (self.embed_a, self.embed_b):
                table.weight.normal_(0.0, embed_std)
            for layer in (self.hidden, self.head):
                layer.weight.normal_(0.0, init_scale / math.sqrt(layer.in_features))
                if bias:
                    layer.bias.zero_()

    def _check(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != 2 or x.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"EmbeddingMLP expects x of shape (N, 2) with integer tokens, got {tuple(x.shape)} {x.dtype}"
            )

    def features(self, x: Tensor) -> Tensor:
        """The hidden activations ``h(a, b)`` ``(N, width)``."""
        self._check(x)
        e = torch.cat([nn.functional.embedding(x[:, 0], self.embed_a.weight),
                       nn.functional.embedding(x[:, 1], self.embed_b.weight)], dim=1)
        return _ACTIVATIONS[self.activation](self.hidden(e))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def embedding_matrix(self) -> Tensor:
        """``[E_a ‖ E_b]`` ``(p, 2d)``: row t holds both embeddings of token t (token axis first,
        as :func:`gdlens.probes.clocks.fourier_sparsity` expects)."""
        return torch.cat([self.embed_a.weight, self.embed_b.weight], dim=1)

    def parameter_groups(self) -> dict[str, list[str]]:
        """``{"embedding": [...], "hidden": [...], "head": [...]}``: parameter names by group."""
        groups: dict[str, list[str]] = {"embedding": [], "hidden": [], "head": []}
        for name, _ in self.named_parameters():
            groups["embedding" if name.startswith("embed_") else name.split(".")[0]].append(name)
        return groups
