"""Condensation probes on layers whose orientations are known by construction."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.probes.condensation import (
    count_orientations,
    neuron_vectors,
    orientation_amplitude,
    orientation_clusters,
    orientation_similarity,
    relative_change,
)

F64 = torch.float64


def condensed_layer(m: int, d: int, k: int, noise: float, seed: int = 0):
    """m neurons (W (m, d), b (m,)) on k random orientations of R^{d+1}, positive scales,
    plus small isotropic noise; returns W, b and the orientation index of each neuron."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(k, d + 1, generator=gen, dtype=F64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    which = torch.arange(m) % k
    scale = 0.5 + torch.rand(m, 1, generator=gen, dtype=F64)
    U = scale * dirs[which] + noise * torch.randn(m, d + 1, generator=gen, dtype=F64)
    return U[:, :d], U[:, d], which


@pytest.mark.parametrize("method", ["greedy", "single", "complete"])
def test_three_orientations_are_counted(method):
    W, b, which = condensed_layer(m=60, d=5, k=3, noise=1e-3)
    assert count_orientations(W, b, threshold=0.95, method=method) == 3
    labels = orientation_clusters(W, b, method=method)
    # neurons built on the same orientation share a label, and different ones do not
    for c in range(3):
        assert labels[which == c].unique().numel() == 1
    assert labels.unique().numel() == 3


def test_random_isotropic_layer_has_many_orientations():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(200, 50, generator=gen, dtype=F64)
    b = torch.randn(200, generator=gen, dtype=F64)
    # in 51 dimensions random cosines are ~ N(0, 1/51): no pair reaches 0.95
    assert count_orientations(W, b, min_norm_fraction=0.0) == 200
    assert count_orientations(W, b) >= 195


def test_antipodal_directions():
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(4, generator=gen, dtype=F64)
    W = torch.stack([u, 2 * u, -u, -3 * u])
    assert count_orientations(W) == 2  # ReLU convention: u and -u differ
    assert count_orientations(W, antipodal=True) == 1


def test_small_neurons_are_left_out():
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(5, 8, generator=gen, dtype=F64)
    W = W / W.norm(dim=1, keepdim=True)
    W[3:] *= 1e-4  # two tiny neurons on their own orientations
    assert count_orientations(W, min_norm_fraction=0.01) == 3
    assert count_orientations(W, min_norm_fraction=0.0) == 5
    labels = orientation_clusters(W, min_norm_fraction=0.01)
    assert labels[3:].tolist() == [-1, -1]


def test_greedy_does_not_chain_but_single_linkage_does():
    # 72 unit vectors every 5 degrees round a circle: neighbours have cos 0.996 >= 0.95
    angles = torch.arange(72, dtype=F64) * (2 * math.pi / 72)
    W = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert count_orientations(W, method="single") == 1
    n_greedy = count_orientations(W, method="greedy")
    # leader clusters cover an arc of at most 2·arccos(0.95) ≈ 36.4 degrees: at least 10 of them
    assert n_greedy >= 10
    assert count_orientations(W, method="complete") >= 10


def test_similarity_symmetric_unit_diagonal_and_values():
    gen = torch.Generator().manual_seed(4)
    W = torch.randn(7, 3, generator=gen, dtype=F64)
    b = torch.randn(7, generator=gen, dtype=F64)
    S = orientation_similarity(W, b)
    assert S.shape == (7, 7)
    assert torch.allclose(S, S.T)
    assert torch.allclose(torch.diagonal(S), torch.ones(7, dtype=F64))
    U = torch.cat([W, b[:, None]], dim=1)
    expected = torch.nn.functional.cosine_similarity(U[:, None, :], U[None, :, :], dim=-1)
    assert torch.allclose(S, expected, atol=1e-12)


def test_zero_neuron_similarity_is_zero():
    W = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]], dtype=F64)
    S = orientation_similarity(W)
    assert S[1].abs().sum() == 0 and S[:, 1].abs().sum() == 0
    assert S[0, 2] == pytest.approx(1.0)
    assert count_orientations(W, min_norm_fraction=0.0) == 1
    assert count_orientations(torch.zeros(3, 2, dtype=F64)) == 0


def test_conv_kernels_are_flattened():
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(3, 2, 3, 3, generator=gen, dtype=F64)
    W = torch.cat([base, 2.0 * base, 0.5 * base])  # 9 output channels on 3 orientations
    assert neuron_vectors(W).shape == (9, 18)
    assert count_orientations(W) == 3
    S = orientation_similarity(W)
    assert S[0, 3] == pytest.approx(1.0) and S[0, 6] == pytest.approx(1.0)


def test_orientation_amplitude():
    w = torch.tensor([1.0, 0.0, -1.0, 3.0], dtype=F64)
    b = torch.tensor([1.0, 2.0, 0.0, -3.0], dtype=F64)
    a = torch.tensor([2.0, -1.0, 0.5, 1.0], dtype=F64)
    angle, amp = orientation_amplitude(w[:, None], b, a)
    assert torch.allclose(angle, torch.tensor([math.pi / 4, math.pi / 2, math.pi, -math.pi / 4], dtype=F64))
    expected = a.abs() * torch.sqrt(w**2 + b**2)
    assert torch.allclose(amp, expected)
    # the next layer's weight (o, m): column norms
    A = torch.stack([a, a])
    assert torch.allclose(orientation_amplitude(w, b, A).amplitude, math.sqrt(2) * expected)
    assert torch.allclose(orientation_amplitude(w, b).amplitude, torch.sqrt(w**2 + b**2))


def test_relative_change_known_values():
    t0 = {"w": torch.tensor([3.0, 0.0], dtype=F64), "b": torch.tensor([4.0], dtype=F64)}  # ‖θ0‖ = 5
    t1 = {"b": torch.tensor([4.0], dtype=F64), "w": torch.tensor([3.0, 1.0], dtype=F64)}  # Δ = (0, 1, 0)
    assert relative_change(t1, t0) == pytest.approx(0.2)
    assert relative_change([t1["w"], t1["b"]], [t0["w"], t0["b"]]) == pytest.approx(0.2)
    x = torch.tensor([1.0, 2.0, 2.0], dtype=F64)
    assert relative_change(2 * x, x) == pytest.approx(1.0)
    assert relative_change(x, torch.zeros(3, dtype=F64)) == math.inf
    assert math.isnan(relative_change(torch.zeros(3), torch.zeros(3)))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        orientation_similarity(torch.randn(3, 2, dtype=F64), torch.randn(4, dtype=F64))
    with pytest.raises(ValueError, match="threshold"):
        count_orientations(torch.randn(3, 2), threshold=1.5)
    with pytest.raises(ValueError, match="method"):
        count_orientations(torch.randn(3, 2), method="ward")
    with pytest.raises(ValueError, match="scalar input"):
        orientation_amplitude(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        relative_change({"w": torch.zeros(2, 2)}, {"w": torch.zeros(4)})
    with pytest.raises(ValueError, match="names"):
        relative_change({"w": torch.zeros(2)}, {"v": torch.zeros(2)})


def test_parameters_passed_directly_give_plain_tensors():
    layer = torch.nn.Linear(3, 5)
    S = orientation_similarity(layer.weight, layer.bias)
    assert not S.requires_grad
    oa = orientation_amplitude(torch.nn.Parameter(torch.randn(4, 1)), torch.nn.Parameter(torch.randn(4)),
                               torch.nn.Parameter(torch.randn(2, 4)))
    assert not oa.angle.requires_grad and not oa.amplitude.requires_grad
