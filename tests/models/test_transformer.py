"""Transformer1L: its last-position forward equals a plain full-sequence causal transformer
written out here with einsum, plus shapes, groups and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.models import Transformer1L, build


def reference(m: Transformer1L, x: torch.Tensor) -> torch.Tensor:
    """Every position of a causal one-layer transformer, per head, then the last position."""
    N = x.shape[0]
    tokens = torch.cat([x, torch.full((N, 1), m.p)], 1)
    r = m.embed.weight[tokens] + m.pos_embed  # (N, 3, d)
    H, dh = m.n_heads, m.d_model // m.n_heads
    split = lambda W: W.reshape(H, dh, m.d_model)  # noqa: E731  rows of head h
    q = torch.einsum("hed,ntd->nhte", split(m.attn.query.weight), r)
    k = torch.einsum("hed,ntd->nhte", split(m.attn.key.weight), r)
    v = torch.einsum("hed,ntd->nhte", split(m.attn.value.weight), r)
    scores = torch.einsum("nhte,nhse->nhts", q, k) / math.sqrt(dh)
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    z = torch.einsum("nhts,nhse->nthe", scores.softmax(-1), v).reshape(N, 3, m.d_model)
    r = r + z @ m.attn.out.weight.T
    r = r + torch.relu(r @ m.mlp_in.weight.T + m.mlp_in.bias) @ m.mlp_out.weight.T + m.mlp_out.bias
    return r[:, -1] @ m.unembed.weight.T


def test_matches_a_full_causal_transformer_at_the_last_position():
    torch.manual_seed(0)
    m = Transformer1L(13, d_model=16, n_heads=4, d_mlp=24).double()
    with torch.no_grad():  # non-zero biases, so that they are checked too
        m.mlp_in.bias.normal_()
        m.mlp_out.bias.normal_()
    x = torch.randint(0, 13, (9, 2))
    y = m(x)
    assert y.shape == (9, 13)
    torch.testing.assert_close(y, reference(m, x), rtol=1e-10, atol=1e-10)


def test_groups_embedding_and_shapes():
    m = Transformer1L(11, d_model=8, n_heads=2, d_mlp=12)
    groups = m.parameter_groups()
    assert sorted(groups["embedding"]) == ["embed.weight", "pos_embed"]
    assert groups["head"] == ["unembed.weight"]
    assert set(groups["attention"]) == {f"attn.{k}.weight" for k in ("query", "key", "value", "out")}
    assert sorted(n for g in groups.values() for n in g) == sorted(n for n, _ in m.named_parameters())
    assert m.embed.weight.shape == (12, 8) and m.embedding_matrix().shape == (11, 8)


def test_default_sizes_are_nanda_et_al():
    m = Transformer1L(113)
    assert (m.d_model, m.n_heads, m.d_mlp) == (128, 4, 512)
    assert isinstance(build("transformer", 2, 32, 17, n_heads=4), Transformer1L)


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple"):
        Transformer1L(7, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        Transformer1L(7, d_model=8, n_heads=2)(torch.zeros(4, dtype=torch.long))
