"""EmbeddingMLP: shapes, parameter groups, initialisation, the forward formula, and that it fits
a small modular-addition training set."""

from __future__ import annotations

import math

import pytest
import torch

import gdlens as gd
from gdlens.models import EmbeddingMLP, build


def test_forward_matches_the_formula_and_shapes():
    torch.manual_seed(0)
    m = EmbeddingMLP(11, embedding=6, width=10).double()
    x = torch.tensor([[0, 1], [3, 10], [10, 10], [5, 0]])
    y = m(x)
    assert y.shape == (4, 11) and y.dtype == torch.float64
    Ea, Eb = m.embed_a.weight, m.embed_b.weight
    for i, (a, b) in enumerate(x.tolist()):
        e = torch.cat([Ea[a], Eb[b]])
        h = torch.relu(m.hidden.weight @ e + m.hidden.bias)
        torch.testing.assert_close(y[i], m.head.weight @ h + m.head.bias)
    torch.testing.assert_close(m.features(x), torch.relu(m.hidden(torch.cat([Ea[x[:, 0]], Eb[x[:, 1]]], 1))))
    assert m.embedding_matrix().shape == (11, 12)
    torch.testing.assert_close(m.embedding_matrix()[:, 6:], Eb)


def test_parameter_groups_partition_the_parameters():
    m = EmbeddingMLP(7, 4, 8)
    groups = m.parameter_groups()
    assert groups == {
        "embedding": ["embed_a.weight", "embed_b.weight"],
        "hidden": ["hidden.weight", "hidden.bias"],
        "head": ["head.weight", "head.bias"],
    }
    assert sorted(n for g in groups.values() for n in g) == sorted(n for n, _ in m.named_parameters())
    assert EmbeddingMLP(7, 4, 8, bias=False).parameter_groups()["head"] == ["head.weight"]


def test_initialisation_scales():
    torch.manual_seed(0)
    m = EmbeddingMLP(97, 128, 512, embed_std=0.5, init_scale=2.0)
    assert m.embed_a.weight.std().item() == pytest.approx(0.5, rel=0.03)
    assert m.hidden.weight.std().item() == pytest.approx(2.0 / math.sqrt(256), rel=0.03)
    assert m.head.weight.std().item() == pytest.approx(2.0 / math.sqrt(512), rel=0.03)
    assert m.hidden.bias.abs().max() == 0 and m.head.bias.abs().max() == 0


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="activation"):
        EmbeddingMLP(7, activation="swish")
    with pytest.raises(ValueError, match="embedding"):
        EmbeddingMLP(7, embedding=0)
    m = EmbeddingMLP(7, 4, 8)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        m(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        m(torch.zeros(3, 2))


def test_registry_builds_it():
    m = build("embedding_mlp", input_size=2, hidden=16, output_size=13, embedding=8)
    assert isinstance(m, EmbeddingMLP) and m.p == 13 and m.width == 16 and m.embedding == 8


def test_fits_a_small_training_set():
    torch.manual_seed(0)
    data = gd.tasks.modular_addition(p=23, train_fraction=0.5, seed=0)
    m = EmbeddingMLP(23, 32, 64)
    res = gd.train(m, data, optimizer="adamw", lr=3e-3, steps=150, weight_decay=0.0, probes=[], progress=False)
    with torch.no_grad():
        acc = (m(data.train.x).argmax(-1) == data.train.target).float().mean().item()
    assert acc == 1.0 and res.losses[-1] < res.losses[0] / 10
