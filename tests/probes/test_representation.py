"""Dimensionality, PCA and norms on data and weights with known spectra."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.probes.representation import (
    end_to_end,
    nuclear_norm,
    parameter_norms,
    participation_ratio,
    pca,
    schatten_norm,
)

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def data_on_r_directions(n: int, p: int, r: int, seed: int = 0, scales=None) -> torch.Tensor:
    """n points in R^p spread over r orthonormal directions with chosen variances (equal by
    default), plus an offset: the centred covariance has exactly those r eigenvalues."""
    Z = randn(n, r, seed=seed)
    Z = Z - Z.mean(0)
    Qn, _ = torch.linalg.qr(Z)  # orthonormal, centred columns
    Qp, _ = torch.linalg.qr(randn(p, r, seed=seed + 1))
    s = torch.ones(r, dtype=F64) if scales is None else torch.as_tensor(scales, dtype=F64)
    return (Qn * s) @ Qp.T + randn(p, seed=seed + 2)


@pytest.mark.parametrize("n,p,r", [(100, 20, 5), (15, 40, 3), (50, 8, 8)])
def test_participation_ratio_of_r_equal_directions(n, p, r):
    assert participation_ratio(data_on_r_directions(n, p, r)) == pytest.approx(r, rel=1e-10)


def test_participation_ratio_formula():
    lam = torch.tensor([4.0, 1.0, 0.25], dtype=F64)
    X = data_on_r_directions(60, 10, 3, seed=3, scales=lam.sqrt())
    assert participation_ratio(X) == pytest.approx(float(lam.sum() ** 2 / (lam**2).sum()), rel=1e-10)
    assert participation_ratio(X.reshape(60, 2, 5)) == pytest.approx(participation_ratio(X))  # trailing axes flattened


def test_pca_matches_covariance_eigendecomposition():
    X = randn(40, 6, seed=4) @ randn(6, 6, seed=5)
    res = pca(X)
    C = torch.cov(X.T)
    evals, evecs = torch.linalg.eigh(C)
    assert torch.allclose(res.explained_variance, evals.flip(0), rtol=1e-10)
    assert res.explained_variance_ratio.sum() == pytest.approx(1.0)
    assert torch.allclose(res.components @ res.components.T, torch.eye(6, dtype=F64), atol=1e-12)
    # components are the eigenvectors up to sign, with the largest entry positive
    for i in range(6):
        v = evecs[:, 5 - i]
        assert abs(float(res.components[i] @ v)) == pytest.approx(1.0, rel=1e-9)
        assert res.components[i][res.components[i].abs().argmax()] > 0
    assert torch.allclose(res.mean, X.mean(0))
    top2 = pca(X, k=2)
    assert top2.components.shape == (2, 6) and torch.allclose(top2.explained_variance, res.explained_variance[:2])


def test_pca_of_r_equal_directions():
    res = pca(data_on_r_directions(50, 10, 4, seed=6), k=5)
    assert torch.allclose(res.explained_variance_ratio[:4], torch.full((4,), 0.25, dtype=F64), atol=1e-12)
    assert float(res.explained_variance_ratio[4]) == pytest.approx(0.0, abs=1e-12)


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


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"weights\[1\] has shape \(4, 6\).*weights\[0\].*\(5, 3\)"):
        schatten_norm([randn(5, 3), randn(4, 6)])
    with pytest.raises(ValueError, match="p must be positive"):
        schatten_norm([randn(2, 2)], p=0)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        participation_ratio(randn(5))
    with pytest.raises(ValueError, match="k must be"):
        pca(randn(10, 3), k=4)
    with pytest.raises(ValueError, match="unknown parameters"):
        parameter_norms({"w": randn(2)}, groups={"g": ["v"]})
    with pytest.raises(ValueError, match="total"):
        parameter_norms({"total": randn(2)})
