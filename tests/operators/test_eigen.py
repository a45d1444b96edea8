"""top_eigs against torch.linalg.eigh of dense float64 matrices: clustered and repeated
spectra, the number of matvecs (against counts recorded for the solver it replaced), warm
starts (plain and through a gram_factor), restarts, invariant subspaces and bad input."""

from __future__ import annotations

import pytest
import torch

from gdlens.operators import DenseOperator, top_eigs
from gdlens.operators.eigen import _plan

F64 = torch.float64
SHAPE = (8, 50)


def symmetric(lam: torch.Tensor, seed: int = 0, shape=SHAPE) -> tuple[DenseOperator, torch.Tensor]:
    """``M = U diag(λ) Uᵀ`` with a random orthogonal U, as an operator on ``shape``."""
    n = lam.numel()
    gen = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))
    M = (U * lam) @ U.T
    M = (M + M.T) / 2
    return DenseOperator(M, shape_in=shape, shape_out=shape, is_symmetric=True), M


def clustered(n: int = 400) -> torch.Tensor:
    """Six eigenvalues within 5% of each other (1%-gaps among the top five), then a bulk."""
    gen = torch.Generator().manual_seed(0)
    top = torch.tensor([1.0, 0.998, 0.995, 0.99, 0.985, 0.95], dtype=F64)
    return torch.cat([top, 0.9 * torch.rand(n - 6, generator=gen, dtype=F64)])


def flat_like_K(n: int = 400) -> torch.Tensor:
    """The top of K's spectrum for a GRU at H=256 (flat: λ_10/λ_1 ≈ 0.77), then a bulk."""
    gen = torch.Generator().manual_seed(0)
    top = torch.tensor([1915, 1803, 1778, 1735, 1711, 1662, 1567, 1566, 1561, 1472], dtype=F64)
    return torch.cat([top, 1460 * torch.rand(n - 10, generator=gen, dtype=F64)])


def assert_eigenpairs(values, vectors, M, k, atol=1e-8):
    ref_vals, ref_vecs = torch.linalg.eigh(M)
    scale = float(ref_vals.abs().max())
    assert torch.allclose(values, ref_vals.flip(0)[:k], rtol=0, atol=atol * scale)
    X = vectors.reshape(k, -1)
    assert torch.allclose(X @ X.T, torch.eye(k, dtype=F64), atol=1e-8)
    residual = (X @ M - values[:, None] * X).norm(dim=1) / scale
    assert float(residual.max()) <= 1e-8


@pytest.mark.parametrize(
    ("spectrum", "old_matvecs"),
    [(clustered, 246), (flat_like_K, 192)],
    ids=["clustered", "flat"],
)
def test_clustered_spectra_match_eigh_in_far_fewer_matvecs(spectrum, old_matvecs):
    """The block solver this one replaced (blocks of k + 1, every Ritz residual added each
    iteration) spent ``old_matvecs`` on these matrices (recorded with seed 0)."""
    A, M = symmetric(spectrum())
    (values, vectors), info = top_eigs(A, 5, return_info=True)
    assert info["converged"] and vectors.shape == (5, *SHAPE)
    assert_eigenpairs(values, vectors, M, 5)
    assert info["num_matvecs"] <= 0.5 * old_matvecs
    assert info["num_calls"] < info["num_matvecs"]  # blocks of 2 on CPU, shrinking to 1 at the end
    assert torch.all(info["residuals"] <= 1e-9)
    # at a looser tolerance the reported error bounds hold (up to eigh's own rounding)
    (loose, _), loose_info = top_eigs(A, 5, tol=1e-4, return_info=True)
    ref = torch.linalg.eigvalsh(M).flip(0)[:5]
    assert torch.all((loose - ref).abs() <= loose_info["value_errors"] + 1e-12 * float(ref[0]))
    assert loose_info["num_matvecs"] < info["num_matvecs"]


def test_repeated_eigenvalues_need_a_block_at_least_as_wide():
    gen = torch.Generator().manual_seed(1)
    top = torch.tensor([5.0, 5.0, 5.0, 4.9, 4.8], dtype=F64)
    lam = torch.cat([top, 4.5 * torch.rand(395, generator=gen, dtype=F64)])
    A, M = symmetric(lam, seed=3)
    values, vectors = top_eigs(A, 5, block_size=3)
    assert_eigenpairs(values, vectors, M, 5)
    # the default block of 2 resolves a double eigenvalue
    values2, vectors2 = top_eigs(A, 2)
    assert torch.allclose(values2, torch.tensor([5.0, 5.0], dtype=F64), atol=1e-9)


def test_restarts_and_every_which():
    A, M = symmetric(torch.linspace(-5, 3, 300, dtype=F64), seed=7, shape=(300,))
    ref = torch.linalg.eigvalsh(M)
    (values, _), info = top_eigs(A, 4, max_basis=12, return_info=True)
    assert info["max_basis"] == 12 and torch.allclose(values, ref.flip(0)[:4], atol=1e-8)
    assert torch.allclose(top_eigs(A, 3, which="smallest").values, ref[:3], atol=1e-8)
    assert torch.allclose(top_eigs(A, 2, which="magnitude").values, ref[[0, 1]], atol=1e-8)
    assert torch.allclose(top_eigs(A, 2, block_size=5).values, ref.flip(0)[:2], atol=1e-8)


def test_invariant_subspace_and_full_space():
    gen = torch.Generator().manual_seed(4)
    L = torch.randn(60, 3, generator=gen, dtype=F64)
    M = L @ L.T  # rank 3: the Krylov space closes after three directions
    A = DenseOperator(M, is_symmetric=True)
    values, vectors = top_eigs(A, 5)
    ref = torch.linalg.eigvalsh(M).flip(0)[:5]
    assert torch.allclose(values, ref, atol=1e-8 * float(ref[0]))
    X = vectors.reshape(5, -1)
    assert torch.allclose(X @ X.T, torch.eye(5, dtype=F64), atol=1e-8)
    small, S = symmetric(torch.rand(7, generator=gen, dtype=F64), shape=(7,))  # k = n: the whole space
    assert torch.allclose(top_eigs(small, 7).values, torch.linalg.eigvalsh(S).flip(0), atol=1e-12)


def test_warm_start_from_a_nearby_operator():
    A, M = symmetric(clustered())
    gen = torch.Generator().manual_seed(2)
    E = torch.randn(400, 400, generator=gen, dtype=F64)
    E = (E + E.T) / 2
    B_matrix = M + 1e-8 * E / torch.linalg.matrix_norm(E, 2)
    B = DenseOperator(B_matrix, shape_in=SHAPE, shape_out=SHAPE, is_symmetric=True)
    previous = torch.linalg.eigh(M).eigenvectors[:, -5:].flip(1).T.reshape(5, *SHAPE)
    (cold, cold_vecs), cold_info = top_eigs(B, 5, return_info=True)
    (warm, warm_vecs), warm_info = top_eigs(B, 5, v0=previous, return_info=True)
    assert warm_info["converged"] and warm_info["num_matvecs"] <= cold_info["num_matvecs"] / 3
    assert torch.allclose(warm, cold, rtol=0, atol=1e-12)
    assert_eigenpairs(warm, warm_vecs, B_matrix, 5)
    # the exact eigenvectors of the operator itself: one batched call of 5 + 1 vectors
    (same, _), same_info = top_eigs(A, 5, v0=previous, return_info=True)
    assert same_info["num_matvecs"] == 6 and same_info["num_calls"] == 1
    assert torch.allclose(same, cold, atol=1e-7)
    # a far operator: the warm start does no harm
    far_matrix = M + 0.1 * E / torch.linalg.matrix_norm(E, 2)
    far = DenseOperator(far_matrix, shape_in=SHAPE, shape_out=SHAPE, is_symmetric=True)
    (_, _), far_cold = top_eigs(far, 5, return_info=True)
    (far_vals, far_vecs), far_warm = top_eigs(far, 5, v0=previous, return_info=True)
    assert far_warm["num_matvecs"] <= far_cold["num_matvecs"]
    assert_eigenpairs(far_vals, far_vecs, far.matrix, 5)


def test_warm_start_in_float32_stops_after_the_first_block():
    A, M = symmetric(flat_like_K())
    A32 = DenseOperator(M.float(), shape_in=SHAPE, shape_out=SHAPE, is_symmetric=True)
    (values, vectors), info = top_eigs(A32, 5, return_info=True)
    (again, _), warm = top_eigs(A32, 5, v0=vectors, return_info=True)
    assert warm["num_matvecs"] == 6 < info["num_matvecs"]
    assert torch.allclose(again, values, rtol=1e-5)
    ref = torch.linalg.eigvalsh(M).flip(0)[:5]
    assert torch.allclose(values.double(), ref, rtol=1e-5)


def test_warm_start_through_a_gram_factor():
    gen = torch.Generator().manual_seed(3)
    F = torch.randn(400, 30, generator=gen, dtype=F64) * torch.linspace(3, 0.5, 30, dtype=F64)
    factor = DenseOperator(F, shape_in=(30,), shape_out=SHAPE)
    A = DenseOperator(F @ F.T, shape_in=SHAPE, shape_out=SHAPE, is_symmetric=True)
    A.gram_factor = factor
    (values, vectors), info = top_eigs(A, 4, return_info=True)
    assert info["factored"] and info["factor_matvecs"] == 4
    assert_eigenpairs(values, vectors, F @ F.T, 4)
    # v0 lives in A's space; it goes in as Fᵀ v0 (4 more factor applications)
    (warm, warm_vecs), warm_info = top_eigs(A, 4, v0=vectors, return_info=True)
    assert warm_info["factored"] and warm_info["factor_matvecs"] == 8
    assert warm_info["num_matvecs"] == 5 < info["num_matvecs"]
    assert torch.allclose(warm, values, atol=1e-10)
    overlap = (warm_vecs.reshape(4, -1) @ vectors.reshape(4, -1).T).abs().diagonal()
    assert torch.allclose(overlap, torch.ones(4, dtype=F64), atol=1e-8)


def test_budget_warns_and_bad_v0_raises():
    A, _ = symmetric(clustered())
    with pytest.warns(RuntimeWarning, match="stopped after 7 matvecs"):
        (_, _), info = top_eigs(A, 3, max_matvecs=7, return_info=True)
    assert not info["converged"] and info["num_matvecs"] == 7
    with pytest.raises(ValueError, match=r"v0 must have shape \(m, \*\(8, 50\)\)"):
        top_eigs(A, 3, v0=torch.ones(3, 400, dtype=F64))
    with pytest.raises(TypeError, match="v0 must be a torch.Tensor"):
        top_eigs(A, 3, v0=[1.0])
    one = top_eigs(A, 1, v0=torch.ones(*SHAPE, dtype=F64))  # one vector, no leading axis
    assert one.vectors.shape == (1, *SHAPE)


def test_default_blocks_per_device():
    cpu = _plan(5, 10_000, torch.device("cpu"), None, None)
    assert (cpu.block, cpu.max_basis, cpu.lock) == (2, 24, True)
    assert _plan(1, 10_000, torch.device("cpu"), None, None).block == 1
    accel = _plan(5, 10_000, torch.device("meta"), None, None)
    assert (accel.block, accel.max_basis, accel.lock) == (10, 80, False)
    with pytest.raises(ValueError, match="max_basis must be at least"):
        _plan(5, 10_000, torch.device("cpu"), 4, 6)
