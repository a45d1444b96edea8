"""CKA and neuron matching on representations with known relations."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gdlens.probes.similarity import cka_matrix, gram_cka, linear_cka, match_neurons, rbf_cka

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def orthogonal(n, seed=0):
    Q, _ = torch.linalg.qr(randn(n, n, seed=seed))
    return Q


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(debiased):
    X = randn(40, 6)
    assert linear_cka(X, X, debiased) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariance_to_orthogonal_maps_scaling_and_shift(debiased):
    X, Y = randn(50, 8, seed=1), randn(50, 5, seed=2)
    Q = orthogonal(5, seed=3)
    base = linear_cka(X, Y, debiased)
    moved = linear_cka(X, 4.2 * Y @ Q + 1.5, debiased)
    assert moved == pytest.approx(base, rel=1e-10)
    assert linear_cka(X, 0.3 * X @ orthogonal(8, seed=4), debiased) == pytest.approx(1.0, abs=1e-12)
    # an isometric embedding into more features: still 1
    E = orthogonal(12, seed=5)[:, :8].T  # (8, 12), orthonormal rows
    assert linear_cka(X, X @ E, debiased) == pytest.approx(1.0, abs=1e-12)
    rbf_base = rbf_cka(X, Y, debiased=debiased)
    assert rbf_cka(X, 4.2 * Y @ Q + 1.5, debiased=debiased) == pytest.approx(rbf_base, rel=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_a_generic_invertible_map_lowers_cka(debiased):
    """Linear CKA is invariant to orthogonal maps and isotropic scaling only: an invertible but
    anisotropic map M = U diag(s) Vᵀ changes the Gram matrix XMMᵀXᵀ, so CKA(X, XM) < 1, and it
    falls further as the singular values of M spread."""
    X = randn(200, 6, seed=11)
    U, V = orthogonal(6, seed=12), orthogonal(6, seed=13)
    assert linear_cka(X, 2.5 * X @ U, debiased) == pytest.approx(1.0, abs=1e-12)
    values = []
    for spread in (1.5, 4.0, 20.0):
        M = U @ torch.diag(torch.logspace(0, math.log10(spread), 6, dtype=F64)) @ V.T
        assert torch.linalg.matrix_rank(M) == 6
        values.append(linear_cka(X, X @ M, debiased))
    assert all(v < 1 - 1e-3 for v in values)
    assert values[0] > values[1] > values[2]
    # closed form for centred, whitened W (WᵀW = n I) and G = MMᵀ: with K = WWᵀ, L = WGWᵀ,
    # ⟨K, L⟩_F = n² tr G, ‖K‖_F = n √p, ‖L‖_F = n ‖G‖_F, so CKA = tr G / (√p ‖G‖_F)
    Xc = X - X.mean(0)
    W = Xc @ torch.linalg.inv(torch.linalg.cholesky(Xc.T @ Xc / 200).T)  # whitened, still centred
    M = U @ torch.diag(torch.logspace(0, 1, 6, dtype=F64)) @ V.T
    G = M @ M.T
    expected = float(torch.trace(G) / (math.sqrt(6) * G.norm()))
    assert linear_cka(W, W @ M) == pytest.approx(expected, rel=1e-10)


def test_debiased_cka_of_independent_features_is_near_zero():
    # biased linear CKA of independent Gaussian features is ≈ sqrt(pq / ((n+p)(n+q))) = 1/3 here
    X, Y = randn(100, 50, seed=6), randn(100, 50, seed=7)
    biased = linear_cka(X, Y)
    debiased = linear_cka(X, Y, debiased=True)
    assert biased > 0.25
    assert abs(debiased) < 0.08  # its spread over seeds is ~0.02


def test_feature_space_and_gram_paths_agree():
    for n, p, q in [(30, 4, 5), (10, 8, 9)]:  # n ≥ p + q (features) and n < p + q (Grams)
        X, Y = randn(n, p, seed=n), randn(n, q, seed=n + 1)
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        for debiased in (False, True):
            via_gram = gram_cka(Xc @ Xc.T, Yc @ Yc.T, debiased)
            assert linear_cka(X, Y, debiased) == pytest.approx(via_gram, rel=1e-10)


def test_biased_cka_formula():
    X, Y = randn(20, 3, seed=8), randn(20, 4, seed=9)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    expected = (Yc.T @ Xc).norm() ** 2 / ((Xc.T @ Xc).norm() * (Yc.T @ Yc).norm())
    assert linear_cka(X, Y) == pytest.approx(float(expected), rel=1e-12)


def hsic_u_statistic(K, L):
    """HSIC₁ from its definition as a U-statistic over ordered distinct 4-tuples (i, j, q, r):
    mean of k_ij l_ij + k_ij l_qr − 2 k_ij l_iq (Song et al. 2012)."""
    n = K.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += float(K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q])
        count += 1
    return total / count


def test_debiased_cka_uses_the_unbiased_hsic():
    X, Y = randn(7, 3, seed=10), randn(7, 2, seed=11)
    K, L = X @ X.T, Y @ Y.T
    expected = hsic_u_statistic(K, L) / math.sqrt(hsic_u_statistic(K, K) * hsic_u_statistic(L, L))
    assert gram_cka(K, L, debiased=True) == pytest.approx(expected, rel=1e-10)


def test_rbf_cka_bandwidth_and_gram():
    X, Y = randn(15, 3, seed=12), randn(15, 4, seed=13)

    def gram(Z, frac):
        D = torch.cdist(Z, Z)
        med = D[torch.triu_indices(15, 15, 1).unbind()].median()
        return torch.exp(-(D**2) / (2 * (frac * med) ** 2))

    for frac in (0.2, 0.5, 1.0):
        assert rbf_cka(X, Y, sigma_frac=frac) == pytest.approx(gram_cka(gram(X, frac), gram(Y, frac)), rel=1e-9)


def test_match_neurons_recovers_a_permutation():
    n, p = 300, 12
    X = randn(n, p, seed=14)
    perm = torch.randperm(p, generator=torch.Generator().manual_seed(15))
    Y = X[:, perm] + 0.01 * randn(n, p, seed=16)  # Y's neuron j is X's neuron perm[j]
    match = match_neurons(X, Y)
    assert torch.equal(match.permutation, torch.argsort(perm))
    assert torch.allclose(Y[:, match.permutation], X, atol=0.1)
    assert bool((match.correlation > 0.999).all())
    # sign flips are matched only with absolute=True
    flipped = match_neurons(X, -Y, absolute=True)
    assert torch.equal(flipped.permutation, torch.argsort(perm))
    assert bool((flipped.correlation < -0.999).all())


def test_match_neurons_unequal_widths():
    X = randn(100, 5, seed=17)
    Y = torch.cat([X[:, [3, 1]], randn(100, 1, seed=18)], dim=1)  # q = 3 < p = 5
    match = match_neurons(X, Y)
    assert match.permutation[3] == 0 and match.permutation[1] == 1
    assert int((match.permutation == -1).sum()) == 2
    assert int(torch.isnan(match.correlation).sum()) == 2
    # p < q: every X neuron is paired
    back = match_neurons(Y[:, :2], X)
    assert back.permutation.tolist() == [3, 1]


def test_cka_matrix():
    base = randn(30, 6, seed=19)
    layers = [base, torch.tanh(base @ randn(6, 7, seed=20)), randn(30, 2, 2, seed=21)]
    M = cka_matrix(layers)
    assert M.shape == (3, 3)
    assert torch.allclose(M, M.T) and torch.allclose(torch.diagonal(M), torch.ones(3, dtype=F64))
    assert M[0, 1] == pytest.approx(linear_cka(layers[0], layers[1]))
    assert M[0, 2] == pytest.approx(linear_cka(layers[0], layers[2].reshape(30, 4)))
    R = cka_matrix(layers, layers[:2], kind="rbf", debiased=True)
    assert R.shape == (3, 2)
    assert R[2, 1] == pytest.approx(rbf_cka(layers[2].reshape(30, 4), layers[1], debiased=True))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(10, 3\).*\(11, 3\)"):
        linear_cka(randn(10, 3), randn(11, 3))
    with pytest.raises(ValueError, match=r"\(10,\)"):
        linear_cka(randn(10), randn(10, 3))
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(randn(3, 2), randn(3, 2), debiased=True)
    with pytest.raises(ValueError, match=r"\(10, 3\).*\(9, 3\)"):
        match_neurons(randn(10, 3), randn(9, 3))
    with pytest.raises(ValueError, match=r"acts_b\[1\]"):
        cka_matrix([randn(10, 2)], [randn(10, 2), randn(8, 2)])
    with pytest.raises(ValueError, match="median"):
        rbf_cka(torch.zeros(6, 2, dtype=F64), randn(6, 2))
    with pytest.raises(ValueError, match="kind"):
        cka_matrix([randn(10, 2)], kind="cosine")
