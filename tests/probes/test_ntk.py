"""Empirical NTK against closed forms and dense Jacobians; kernel comparisons on known kernels."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.operators import DenseOperator, top_eigs
from gdlens.probes.ntk import (
    empirical_ntk,
    kernel_distance,
    kernel_target_alignment,
    kernel_velocity,
    ntk_effective_rank,
    parameter_jacobian,
)

F64 = torch.float64


def linear_model(p, x):
    out = x @ p["W"].T
    return out + p["b"] if "b" in p else out


def test_linear_model_ntk_closed_form():
    gen = torch.Generator().manual_seed(0)
    B, d, O = 5, 3, 2
    X = torch.randn(B, d, generator=gen, dtype=F64)
    W = torch.randn(O, d, generator=gen, dtype=F64)
    K = empirical_ntk(linear_model, {"W": W}, X)
    assert K.shape_in == (B, O) and K.is_symmetric
    # Θ[(b,o),(b',o')] = (x_b·x_b') δ_oo'
    assert torch.allclose(K.dense(), torch.kron(X @ X.T, torch.eye(O, dtype=F64)), atol=1e-12)
    b = torch.randn(O, generator=gen, dtype=F64)
    Kb = empirical_ntk(linear_model, {"W": W, "b": b}, X)
    assert torch.allclose(Kb.dense(), torch.kron(X @ X.T + 1.0, torch.eye(O, dtype=F64)), atol=1e-12)


def mlp(p, x):
    return torch.tanh(x @ p["W1"].T + p["b1"]) @ p["W2"].T


def mlp_params(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {
        "W1": torch.randn(6, 3, generator=gen, dtype=F64),
        "b1": torch.randn(6, generator=gen, dtype=F64),
        "W2": torch.randn(2, 6, generator=gen, dtype=F64),
    }


def dense_ntk(p, x):
    names = list(p)
    sizes = [p[n].numel() for n in names]
    theta = torch.cat([p[n].reshape(-1) for n in names])

    def f(t):
        pieces = torch.split(t, sizes)
        return mlp({n: q.reshape(p[n].shape) for n, q in zip(names, pieces)}, x)

    J = torch.func.jacrev(f)(theta).reshape(-1, theta.numel())
    return J @ J.T, J


def test_mlp_ntk_matches_dense_jacobian():
    p = mlp_params()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    K = empirical_ntk(mlp, p, x)
    dense, J = dense_ntk(p, x)
    assert torch.allclose(K.dense(), dense, atol=1e-10)
    Jop = parameter_jacobian(mlp, p, x)
    assert torch.allclose(Jop.dense(), J, atol=1e-12)
    assert torch.allclose(Jop.T.dense(), J.T, atol=1e-12)
    vals = top_eigs(K, 3).values
    assert torch.allclose(vals, torch.linalg.eigvalsh(dense).flip(0)[:3], rtol=1e-8)


def test_kernel_distance_known_values():
    gen = torch.Generator().manual_seed(3)
    L = torch.randn(6, 6, generator=gen, dtype=F64)
    K = L @ L.T
    assert kernel_distance(K, K) == pytest.approx(0.0, abs=1e-12)
    assert kernel_distance(K, 3.7 * K) == pytest.approx(0.0, abs=1e-12)
    K1 = torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64))
    K2 = torch.diag(torch.tensor([0.0, 0.0, 2.0, 5.0], dtype=F64))
    assert kernel_distance(K1, K2) == pytest.approx(1.0)
    e1 = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    assert kernel_distance(e1, torch.eye(2, dtype=F64)) == pytest.approx(1 - 1 / math.sqrt(2))
    # operators and mixed inputs agree with the dense computation
    A = DenseOperator(K1, is_symmetric=True)
    assert kernel_distance(A, K2) == pytest.approx(1.0)
    assert kernel_distance(A, DenseOperator(2 * K1)) == pytest.approx(0.0, abs=1e-12)


def test_kernel_distance_between_ntks_of_two_parameter_points():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    p0, p1 = mlp_params(1), mlp_params(5)
    K0, K1 = empirical_ntk(mlp, p0, x), empirical_ntk(mlp, p1, x)
    D0, D1 = dense_ntk(p0, x)[0], dense_ntk(p1, x)[0]
    expected = kernel_distance(D0, D1)
    assert 0.0 < expected < 1.0
    assert kernel_distance(K0, K1) == pytest.approx(expected, rel=1e-10)
    assert kernel_distance(K0, D1.reshape(4, 2, 4, 2)) == pytest.approx(expected, rel=1e-10)  # shaped dense
    assert kernel_distance(K0, K0) == pytest.approx(0.0, abs=1e-12)
    assert kernel_velocity(K0, K1, dt=4.0) == pytest.approx(expected / 4.0, rel=1e-10)
    with pytest.raises(ValueError, match="dt"):
        kernel_velocity(K0, K1, dt=0.0)


def test_kernel_target_alignment_known_values():
    gen = torch.Generator().manual_seed(6)
    n = 8
    y = torch.randn(n, generator=gen, dtype=F64)
    assert kernel_target_alignment(torch.outer(y, y), y) == pytest.approx(1.0)
    assert kernel_target_alignment(torch.eye(n, dtype=F64), y) == pytest.approx(1 / math.sqrt(n))
    # orthogonal to the targets: 0
    z = torch.randn(n, generator=gen, dtype=F64)
    z = z - (z @ y) / (y @ y) * y
    assert kernel_target_alignment(torch.outer(z, z), y) == pytest.approx(0.0, abs=1e-12)
    # a constant offset in the targets: uncentred alignment < 1, centred = 1
    yc = y - y.mean()
    y_off = yc + 2.0
    K = torch.outer(yc, yc)
    assert kernel_target_alignment(K, y_off) == pytest.approx(float(yc @ yc / (y_off @ y_off)))
    assert kernel_target_alignment(K, y_off, centered=True) == pytest.approx(1.0)
    # several target columns: ⟨K, YYᵀ⟩ / (‖K‖ ‖YYᵀ‖)
    Y = torch.randn(n, 3, generator=gen, dtype=F64)
    assert kernel_target_alignment(Y @ Y.T, Y) == pytest.approx(1.0)
    assert kernel_target_alignment(torch.eye(n, dtype=F64), Y) == pytest.approx(
        float(torch.trace(Y.T @ Y) / (math.sqrt(n) * (Y.T @ Y).norm()))
    )


def test_kernel_target_alignment_operator_matches_dense():
    p = mlp_params()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(7), dtype=F64)
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(8), dtype=F64)
    K = empirical_ntk(mlp, p, x)
    D = dense_ntk(p, x)[0]
    yf = y.reshape(-1)
    expected = float(yf @ D @ yf / (D.norm() * (yf @ yf)))
    assert kernel_target_alignment(K, y) == pytest.approx(expected, rel=1e-10)
    # centred over the batch axis: H on (B, O) subtracts the batch mean of each output
    H = torch.kron(torch.eye(5, dtype=F64) - 1 / 5, torch.eye(2, dtype=F64))
    Dc, yc = H @ D @ H, H @ yf
    expected_c = float(yc @ Dc @ yc / (Dc.norm() * (yc @ yc)))
    assert kernel_target_alignment(K, y, centered=True) == pytest.approx(expected_c, rel=1e-10)


def test_ntk_effective_rank():
    assert ntk_effective_rank(torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=F64))) == pytest.approx(3.0)
    u = torch.randn(5, dtype=F64)
    assert ntk_effective_rank(torch.outer(u, u)) == pytest.approx(1.0)
    p = mlp_params()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    D = dense_ntk(p, x)[0]
    assert ntk_effective_rank(empirical_ntk(mlp, p, x)) == pytest.approx(ntk_effective_rank(D), rel=1e-10)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        kernel_distance(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(3, 3\) and \(4, 4\)"):
        kernel_distance(torch.eye(3), torch.eye(4))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        kernel_target_alignment(torch.eye(4, dtype=F64), torch.zeros(5, dtype=F64))
    p = mlp_params()
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        kernel_target_alignment(empirical_ntk(mlp, p, x), torch.zeros(8, dtype=F64))
