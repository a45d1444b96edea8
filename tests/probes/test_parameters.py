"""Norms of the weights and their relative change (gdlens.probes.parameters) on parameters with
known norms, against sums written by hand in float64."""

from __future__ import annotations

import math

import pytest
import torch

import gdlens as gd
from gdlens.probes.parameters import end_to_end, nuclear_norm, parameter_norms, relative_change, schatten_norm

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_schatten_and_nuclear_norms_of_the_product():
    W1, W2, W3 = randn(5, 3, seed=7), randn(4, 5, seed=8), randn(2, 4, seed=9)
    M = W3 @ W2 @ W1
    s = torch.linalg.svdvals(M)
    ws = [W1, W2, W3]
    assert torch.allclose(end_to_end(ws), M)
    assert nuclear_norm(ws) == pytest.approx(float(s.sum()), rel=1e-12)
    assert schatten_norm(ws, 2) == pytest.approx(float(M.norm()), rel=1e-12)  # Frobenius
    assert schatten_norm(ws, math.inf) == pytest.approx(float(s.max()), rel=1e-12)
    assert schatten_norm(ws, 3) == pytest.approx(float((s**3).sum() ** (1 / 3)), rel=1e-12)
    assert schatten_norm(ws, 0.5) == pytest.approx(float((s**0.5).sum() ** 2), rel=1e-12)
    assert nuclear_norm(W1) == pytest.approx(float(torch.linalg.svdvals(W1).sum()))


def test_parameter_norms():
    params = {"a.weight": torch.full((2, 2), 1.0, dtype=F64), "a.bias": torch.tensor([3.0, 0.0], dtype=F64),
              "b.weight": torch.tensor([[12.0]], dtype=F64)}
    norms = parameter_norms(params)
    assert norms["a.weight"] == pytest.approx(2.0) and norms["a.bias"] == pytest.approx(3.0)
    assert norms["b.weight"] == pytest.approx(12.0)
    assert norms["total"] == pytest.approx(math.sqrt(4 + 9 + 144))
    assert sum(v**2 for k, v in norms.items() if k != "total") == pytest.approx(norms["total"] ** 2)
    by_layer = parameter_norms(params, groups=lambda name: name.split(".")[0])
    assert by_layer == pytest.approx({"a": math.sqrt(13), "b": 12.0, "total": math.sqrt(157)})
    explicit = parameter_norms(params.items(), groups={"weights": ["a.weight", "b.weight"]})
    assert explicit["weights"] == pytest.approx(math.sqrt(148))
    model = torch.nn.Linear(3, 2).double()
    mn = parameter_norms(model.named_parameters())
    w, b = model.weight.detach(), model.bias.detach()
    assert mn["total"] == pytest.approx(math.sqrt(float(w.norm() ** 2 + b.norm() ** 2)))


def test_schatten_norm_is_computed_in_float64_and_prices_deep_factorisations():
    W = randn(6, 4, seed=10)
    s = torch.linalg.svdvals(W)
    # float32 weights: the singular values of the float32 product, summed in float64
    assert schatten_norm(W.float(), 1) == pytest.approx(float(torch.linalg.svdvals(W.float().double()).sum()), rel=1e-12)
    # L Σ σ^{2/L}, the least Σ‖W_ℓ‖_F² of an L-factor product (clocks' Schatten energy)
    for L in (1, 2, 3):
        assert L * schatten_norm(W, 2 / L) ** (2 / L) == pytest.approx(float(L * (s ** (2 / L)).sum()), rel=1e-12)


def test_the_weight_norms_stay_importable_from_representation():
    rep = gd.probes.representation
    assert (rep.parameter_norms, rep.schatten_norm, rep.nuclear_norm, rep.end_to_end) == (
        parameter_norms, schatten_norm, nuclear_norm, end_to_end)


def test_relative_change_against_the_whole_start_and_each_tensors_own():
    start = {"w": torch.tensor([[3.0, 4.0]], dtype=F64), "b": torch.zeros(2, dtype=F64)}
    now = {"w": torch.tensor([[3.0, 1.0]], dtype=F64), "b": torch.tensor([1.0, 2.0], dtype=F64)}
    out = relative_change(now, start)
    # ‖Δw‖ = 3, ‖Δb‖ = √5, ‖θ₀‖ = 5, ‖w₀‖ = 5, b₀ = 0
    assert out["total"] == pytest.approx(math.sqrt(9 + 5) / 5, rel=1e-15)
    assert out["share/w"] == pytest.approx(3 / 5, rel=1e-15)
    assert out["share/b"] == pytest.approx(math.sqrt(5) / 5, rel=1e-15)
    assert out["own/w"] == pytest.approx(3 / 5, rel=1e-15)
    assert "own/b" not in out  # a tensor that starts at zero has no own ratio: left out, not nan
    assert all(math.isfinite(v) for v in out.values())
    assert out["share/w"] ** 2 + out["share/b"] ** 2 == pytest.approx(out["total"] ** 2, rel=1e-14)
    assert relative_change(start, start) == {"total": 0.0, "share/w": 0.0, "share/b": 0.0, "own/w": 0.0}


def test_relative_change_of_a_model_and_edge_cases():
    model = torch.nn.Linear(4, 3).double()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model.weight.mul_(2.0)
        model.bias.zero_()
    out = relative_change(model.named_parameters(), start)
    assert out["own/weight"] == pytest.approx(1.0, rel=1e-14) and out["own/bias"] == pytest.approx(1.0, rel=1e-14)
    whole = math.sqrt(float(start["weight"].norm() ** 2 + start["bias"].norm() ** 2))
    assert out["share/bias"] == pytest.approx(float(start["bias"].norm()) / whole, rel=1e-14)
    zeros = {"w": torch.zeros(3, dtype=F64)}
    assert math.isnan(relative_change({"w": torch.ones(3, dtype=F64)}, zeros)["total"])  # all of θ₀ is zero
    with pytest.raises(ValueError, match=r"initial has no entry for \['b'\]"):
        relative_change({"w": randn(3), "b": randn(2)}, {"w": randn(3)})
    with pytest.raises(ValueError, match=r"parameter 'w' has shape \(3,\) but initial\['w'\] \(4,\)"):
        relative_change({"w": randn(3)}, {"w": randn(4)})


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"weights\[1\] has shape \(4, 6\).*weights\[0\].*\(5, 3\)"):
        schatten_norm([randn(5, 3), randn(4, 6)])
    with pytest.raises(ValueError, match="p must be positive"):
        schatten_norm([randn(2, 2)], p=0)
    with pytest.raises(ValueError, match="unknown parameters"):
        parameter_norms({"w": randn(2)}, groups={"g": ["v"]})
    with pytest.raises(ValueError, match="total"):
        parameter_norms({"total": randn(2)})
