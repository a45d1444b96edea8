"""A one-layer transformer for modular arithmetic with the settings of Nanda et al.,
"Progress measures for grokking via mechanistic interpretability" (arXiv 2301.05217).

Input: token pairs ``x`` ``(N, 2)``; the model appends the token ``=`` (index p), so a sequence
is ``[a, b, =]``. With d = d_model, H heads of size d/H and no LayerNorm::

    r_i   = W_E[t_i] + W_pos[i]                                   i = 0, 1, 2   (residual stream)
    q     = W_Q r_2,   k_i = W_K r_i,   v_i = W_V r_i              per head
    A_i   = softmax_i(q · k_i / √(d/H))                             attention of the last position
    r'    = r_2 + W_O concat_heads(Σ_i A_i v_i)
    r''   = r' + W_out ReLU(W_in r' + b_in) + b_out                 MLP of d_mlp units
    y     = W_U r''                                                 logits over the p classes

Only the last position is read out, so only its query and its MLP are computed: in one layer
the other positions' outputs never reach it (the result equals that of a causal or a full
attention layer at the last position). Weights are ``N(0, 1/fan_in)``, embeddings
``N(0, 1/d)``, biases zero; there are no attention biases.

Parameters: ``embed.weight`` (p + 1, d), ``pos_embed`` (3, d) (group ``"embedding"``);
``attn.query/key/value/out.weight`` (``"attention"``); ``mlp_in.weight/bias``,
``mlp_out.weight/bias`` (``"mlp"``); ``unembed.weight`` (p, d) (``"head"``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Transformer1L"]


class _Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, r: Tensor) -> Tensor:
        """r (N, T, d) -> the attention output of the last position (N, d)."""
        N, T, d = r.shape
        q = self.query(r[:, -1]).reshape(N, self.n_heads, 1, self.d_head)
        k = self.key(r).reshape(N, T, self.n_heads, self.d_head).transpose(1, 2)
        v = self.value(r).reshape(N, T, self.n_heads, self.d_head).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.d_head)  # (N, H, 1, T)
        mixed = torch.softmax(scores, dim=-1) @ v  # (N, H, 1, d_head)
        return self.out(mixed.reshape(N, d))


class Transformer1L(nn.Module):
    """Logits ``(N, p)`` from token pairs ``(N, 2)`` (module docstring).

    Args:
        p: modulus (tokens 0..p−1; index p is ``=``).
        d_model: residual width (128 in Nanda et al.).  n_heads: heads (4).  d_mlp: MLP units (512).
    """

    n_ctx = 3

    def __init__(self, p: int, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512) -> None:
        super().__init__()
        for arg, value in (("p", p), ("d_model", d_model), ("n_heads", n_heads), ("d_mlp", d_mlp)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model = {d_model} must be a multiple of n_heads = {n_heads}")
        self.p, self.d_model, self.n_heads, self.d_mlp = p, d_model, n_heads, d_mlp
        self.embed = nn.Embedding(p + 1, d_model)
        self.pos_embed = nn.Parameter(torch.empty(self.n_ctx, d_model))
        self.attn = _Attention(d_model, n_heads)
        self.mlp_in = nn.Linear(d_model, d_mlp)
        self.mlp_out = nn.Linear(d_mlp, d_model)
        self.unembed = nn.Linear(d_model, p, bias=False)
        with torch.no_grad():
            self.embed.weight.normal_(0.0, 1.0 / math.sqrt(d_model))
            self.pos_embed.normal_(0.0, 1.0 / math.sqrt(d_model))
            for layer in (self.attn.query, self.attn.key, self.attn.value, self.attn.out, self.mlp_in, self.mlp_out,
                          self.unembed):
                layer.weight.normal_(0.0, 1.0 / math.sqrt(layer.in_features))
                if layer.bias is not None:
                    layer.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != 2 or x.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"Transformer1L expects x of shape (N, 2) with integer tokens, got {tuple(x.shape)} {x.dtype}"
            )
        equals = torch.full_like(x[:, :1], self.p)
        tokens = torch.cat([x, equals], dim=1)
        r = nn.functional.embedding(tokens, self.embed.weight) + self.pos_embed
        r_last = r[:, -1] + self.attn(r)
        r_last = r_last + self.mlp_out(torch.relu(self.mlp_in(r_last)))
        return self.unembed(r_last)

    def embedding_matrix(self) -> Tensor:
        """The token embeddings of 0..p−1 ``(p, d)`` (the ``=`` token left out)."""
        return self.embed.weight[: self.p]

    def parameter_groups(self) -> dict[str, list[str]]:
        """``{"embedding", "attention", "mlp", "head"}`` -> parameter names."""
        groups: dict[str, list[str]] = {"embedding": [], "attention": [], "mlp": [], "head": []}
        for name, _ in self.named_parameters():
            if name.startswith(("embed.", "pos_embed")):
                groups["embedding"].append(name)
            elif name.startswith("attn."):
                groups["attention"].append(name)
            elif name.startswith("mlp_"):
                groups["mlp"].append(name)
            else:
                groups["head"].append(name)
        return groups
