"""Randomized estimators: exactness where the method promises it, seeded convergence
otherwise, and clear errors on bad input."""

from __future__ import annotations

import statistics

import pytest
import torch

from gdlens.operators import (
    DenseOperator,
    DiagonalOperator,
    IdentityOperator,
    alignment,
    effective_rank,
    frobenius_norm,
    moments,
    spectral_density,
    svds,
    top_eigs,
    trace,
)

F64 = torch.float64


def psd_with_spectrum(lam: torch.Tensor, seed: int = 0, shape=None) -> tuple[DenseOperator, torch.Tensor]:
    n = lam.numel()
    gen = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))
    M = U @ torch.diag(lam) @ U.T
    M = (M + M.T) / 2
    shape = shape or (n,)
    return DenseOperator(M, shape_in=shape, shape_out=shape, is_symmetric=True), M


def low_rank(n: int, r: int, seed: int = 0) -> tuple[DenseOperator, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    L = torch.randn(n, r, generator=gen, dtype=F64)
    M = L @ L.T
    return DenseOperator(M, shape_in=(n // 10, 10), shape_out=(n // 10, 10), is_symmetric=True), M


# ---------------------------------------------------------------------- trace
def test_exact_trace():
    A, M = low_rank(60, 7)
    est = trace(A, method="exact", chunk_size=16)
    assert abs(est.value - float(torch.trace(M))) < 1e-10 * float(torch.trace(M))
    assert est.stderr == 0.0 and est.num_matvecs == 60


def test_hutchpp_is_exact_once_sketch_reaches_rank():
    A, M = low_rank(120, 6)
    truth = float(torch.trace(M))
    for seed in range(3):
        est = trace(A, method="hutch++", num_matvecs=18, seed=seed)  # sketch of 6 = rank
        assert abs(est.value - truth) < 1e-10 * truth
        assert est.stderr < 1e-10 * truth


def test_xtrace_is_exact_above_rank():
    A, M = low_rank(120, 6)
    truth = float(torch.trace(M))
    est = trace(A, method="xtrace", num_matvecs=16, seed=0)  # 8 test vectors > rank
    assert abs(est.value - truth) < 1e-10 * truth


def test_xtrace_is_never_silently_wrong_on_coordinate_aligned_operators():
    """Operators whose range lies on a few coordinates (identity, a rank-5 diagonal): ±1 test
    vectors repeat there, so a sketch could look rank deficient before it holds the range. A
    zero standard error must always come with the exact trace."""
    d = torch.zeros(200, dtype=F64)
    d[:5] = torch.linspace(0.5, 1.5, 5, dtype=F64)
    cases = [(IdentityOperator(10, dtype=F64), 20), (IdentityOperator(3, dtype=F64), 30)]
    cases += [(DiagonalOperator(d), m) for m in (8, 12, 16)]
    for A, m in cases:
        truth = float(torch.diagonal(A.dense()).sum())
        for seed in range(100):
            est = trace(A, method="xtrace", num_matvecs=m, seed=seed)
            if est.stderr == 0.0:
                assert abs(est.value - truth) < 1e-9 * truth, (A, m, seed, est)


def _median_error(method: str, A, truth: float, m: int, seeds=range(40)) -> float:
    return statistics.median(abs(trace(A, method=method, num_matvecs=m, seed=s).value - truth) for s in seeds)


def test_hutchpp_error_shrinks_as_matvecs_grow():
    lam = torch.arange(1, 301, dtype=F64) ** -1.0
    A, _ = psd_with_spectrum(lam)
    truth = float(lam.sum())
    errors = [_median_error("hutch++", A, truth, m) for m in (15, 60, 240)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.25 * errors[0]


def test_xtrace_beats_hutchinson_on_a_decaying_spectrum():
    lam = torch.arange(1, 301, dtype=F64) ** -2.0
    A, _ = psd_with_spectrum(lam, seed=1)
    truth = float(lam.sum())
    err_x = _median_error("xtrace", A, truth, 40)
    err_h = _median_error("hutchinson", A, truth, 40)
    assert err_x < 0.2 * err_h


def test_trace_estimates_are_unbiased_and_stderr_is_calibrated():
    """Mean over seeds is within 4 standard errors of the truth, and the reported stderr
    matches the spread across seeds within a factor of 2 (for each method)."""
    lam = torch.rand(200, generator=torch.Generator().manual_seed(3), dtype=F64)
    A, _ = psd_with_spectrum(lam, seed=2)
    truth = float(lam.sum())
    for method in ("hutchinson", "hutch++", "xtrace"):
        ests = [trace(A, method=method, num_matvecs=30, seed=s) for s in range(200)]
        values = torch.tensor([e.value for e in ests], dtype=F64)
        spread = float(values.std())
        mean_se = spread / 200**0.5
        assert abs(float(values.mean()) - truth) < 4 * mean_se, method
        reported = statistics.median(e.stderr for e in ests)
        assert 0.5 < reported / spread < 2.0, (method, reported, spread)


def test_same_seed_same_number_and_generator_accepted():
    A, _ = low_rank(50, 20)
    assert trace(A, "hutchinson", 10, seed=4).value == trace(A, "hutchinson", 10, seed=4).value
    assert trace(A, "hutchinson", 10, seed=4).value != trace(A, "hutchinson", 10, seed=5).value
    gen = torch.Generator().manual_seed(4)
    assert trace(A, "hutchinson", 10, seed=gen).value == trace(A, "hutchinson", 10, seed=4).value


def test_trace_bad_input():
    A, _ = low_rank(50, 5)
    with pytest.raises(ValueError, match="allowed: 'hutch\\+\\+', 'hutchinson', 'xtrace', 'exact'"):
        trace(A, method="girard")
    with pytest.raises(ValueError, match="num_matvecs >= 3"):
        trace(A, method="hutch++", num_matvecs=2)
    R = DenseOperator(torch.randn(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="square"):
        trace(R)


# ---------------------------------------------------------------------- moments
def test_alignment_of_an_operator_with_itself_is_one():
    A, _ = psd_with_spectrum(torch.rand(80, dtype=F64))
    for method in ("hutch++", "hutchinson", "exact"):
        assert abs(alignment(A, A, method=method).value - 1) < 1e-12
        assert abs(alignment(A, 3.0 * A, method=method).value - 1) < 1e-12


def test_effective_rank_of_identity_is_n():
    I = IdentityOperator((4, 5, 3))
    for method in ("hutch++", "hutchinson", "exact"):
        est = effective_rank(I, method=method)
        assert abs(est.value - 60) < 1e-9


def test_exact_moments_match_dense():
    A, MA = psd_with_spectrum(torch.rand(40, dtype=F64), seed=1)
    B, MB = psd_with_spectrum(torch.rand(40, dtype=F64), seed=2)
    assert abs(frobenius_norm(A, "exact").value - float(MA.norm())) < 1e-10
    expected = float((MA * MB).sum() / (MA.norm() * MB.norm()))
    assert abs(alignment(A, B, "exact").value - expected) < 1e-10
    lam = torch.linalg.eigvalsh(MA)
    assert abs(effective_rank(A, "exact").value - float(lam.sum() ** 2 / (lam**2).sum())) < 1e-9


def test_sketched_moments_exact_at_rank():
    A, M = low_rank(100, 5, seed=1)
    B = 2.0 * A + DenseOperator(torch.zeros(100, 100, dtype=F64), (10, 10), (10, 10))
    lam = torch.linalg.eigvalsh(M)
    assert abs(effective_rank(A, num_matvecs=15).value - float(lam.sum() ** 2 / (lam**2).sum())) < 1e-9
    assert abs(frobenius_norm(A, num_matvecs=15).value - float(M.norm())) < 1e-9 * float(M.norm())
    assert abs(alignment(A, B, num_matvecs=15).value - 1) < 1e-10


def test_moment_estimates_converge_with_stderr():
    lam = torch.arange(1, 201, dtype=F64) ** -0.5
    A, M = psd_with_spectrum(lam, seed=4)
    truth = float(lam.sum() ** 2 / (lam**2).sum())
    errs = []
    for m in (12, 48, 192):
        ests = [effective_rank(A, num_matvecs=m, seed=s) for s in range(20)]
        errs.append(statistics.median(abs(e.value - truth) for e in ests))
        # the truth is within 4 reported standard errors in most draws
        inside = sum(abs(e.value - truth) < 4 * e.stderr for e in ests)
        assert inside >= 17, (m, inside)
    assert errs[0] > errs[1] > errs[2]


def test_frobenius_norm_of_rectangular_operator():
    M = torch.randn(30, 20, dtype=F64)
    A = DenseOperator(M)
    assert frobenius_norm(A).method == "hutchinson"
    est = frobenius_norm(A, num_matvecs=400)
    assert abs(est.value - float(M.norm())) < 4 * est.stderr
    with pytest.raises(ValueError, match="square"):
        frobenius_norm(A, method="hutch++")


def test_joint_moments_of_several_operators():
    A, MA = psd_with_spectrum(torch.rand(60, dtype=F64), seed=1)
    B, MB = psd_with_spectrum(torch.arange(1, 61, dtype=F64) ** -1.0, seed=2)
    C, MC = psd_with_spectrum(torch.rand(60, dtype=F64) ** 3, seed=3)
    ops = {"A": A, "B": B, "C": C}
    exact = moments(ops, method="exact")
    for name, M in (("A", MA), ("B", MB), ("C", MC)):
        lam = torch.linalg.eigvalsh(M)
        assert abs(exact.trace(name).value - float(lam.sum())) < 1e-10
        assert abs(exact.effective_rank(name).value - float(lam.sum() ** 2 / (lam**2).sum())) < 1e-9
        assert abs(exact.frobenius_norm(name).value - float(M.norm())) < 1e-10
    assert abs(exact.alignment("C", "A").value - float((MA * MC).sum() / (MA.norm() * MC.norm()))) < 1e-10
    # Hutch++ on shared probes: the sketch, then its rows and the probes in one call; each pair
    # within 4 standard errors; the same numbers as the single-operator functions on one seed
    calls = []

    def apply(V):  # all three at once (symmetric matrices: rows V Mᵀ = V M)
        calls.append(V.shape[0])
        return [V @ M for M in (MA, MB, MC)]

    joint = moments(ops, num_matvecs=30, seed=5, apply=apply)
    assert calls == [10, 20] and joint.num_matvecs == 30 and joint.names == ("A", "B", "C")
    for a, b in (("A", "B"), ("B", "C"), ("A", "C")):
        est = joint.alignment(a, b)
        assert abs(est.value - exact.alignment(a, b).value) < 4 * est.stderr
    pair = moments({"A": A, "B": B}, num_matvecs=30, seed=5)
    assert pair.alignment("A", "B").value == pytest.approx(alignment(A, B, num_matvecs=30, seed=5).value, rel=1e-12)
    assert moments({"A": A}, seed=2).effective_rank("A").value == effective_rank(A, seed=2).value
    with pytest.raises(KeyError, match="no operator named 'D'"):
        joint.trace("D")
    with pytest.raises(ValueError, match="moments needs at least one operator"):
        moments({})
    with pytest.raises(ValueError, match="unknown moments method"):
        moments(ops, method="xtrace")


# ---------------------------------------------------------------------- eigenpairs
def test_top_eigs_matches_eigh_on_known_spectrum():
    lam = torch.cat([torch.tensor([10.0, 9.0, 7.5, 7.0, 5.0, 4.0], dtype=F64), torch.rand(194, dtype=F64) * 3])
    A, M = psd_with_spectrum(lam, seed=6, shape=(4, 50))
    values, vectors = top_eigs(A, 6)
    ref_vals, ref_vecs = torch.linalg.eigh(M)
    assert torch.allclose(values, ref_vals.flip(0)[:6], rtol=0, atol=1e-8)
    assert values[0] >= values[1] >= values[-1]
    assert vectors.shape == (6, 4, 50)
    V = vectors.reshape(6, -1)
    assert torch.allclose(V @ V.T, torch.eye(6, dtype=F64), atol=1e-8)
    overlap = (V @ ref_vecs[:, -6:].flip(1)).diagonal().abs()
    assert torch.allclose(overlap, torch.ones(6, dtype=F64), atol=1e-8)


def test_top_eigs_with_restarts_and_which_options():
    lam = torch.linspace(-5, 3, 150, dtype=F64)
    A, _ = psd_with_spectrum(lam, seed=7)
    vals, _ = top_eigs(A, 3, max_basis=40)
    assert torch.allclose(vals, torch.tensor([3.0, lam[-2], lam[-3]], dtype=F64), atol=1e-8)
    vals, _ = top_eigs(A, 2, which="magnitude")
    assert torch.allclose(vals, torch.tensor([-5.0, lam[1]], dtype=F64), atol=1e-8)
    vals, _ = top_eigs(A, 2, which="smallest")
    assert torch.allclose(vals, lam[:2], atol=1e-8)
    vals, _ = top_eigs(A, 4, method="scipy")
    assert torch.allclose(vals, lam.flip(0)[:4], atol=1e-8)


def test_top_eigs_full_dimension_and_errors():
    lam = torch.rand(12, dtype=F64)
    A, _ = psd_with_spectrum(lam)
    vals, _ = top_eigs(A, 12)
    assert torch.allclose(vals, lam.sort(descending=True).values, atol=1e-10)
    with pytest.raises(ValueError, match="1 <= k <= n = 12"):
        top_eigs(A, 13)
    with pytest.raises(ValueError, match="allowed"):
        top_eigs(A, 2, which="biggest")
    with pytest.raises(ValueError, match="allowed"):
        top_eigs(A, 2, method="power")


def test_top_eigs_counts_its_batched_calls():
    lam = torch.arange(1, 401, dtype=F64) ** -1.0
    A, _ = psd_with_spectrum(lam)
    calls = []
    inner = A._matmat

    def counting(X):
        calls.append(X.shape[0])
        return inner(X)

    A._matmat = counting
    for block in (None, 4):
        calls.clear()
        (vals, _), info = top_eigs(A, 5, block_size=block, return_info=True)
        assert info["converged"] and torch.allclose(vals, lam[:5], atol=1e-9)
        assert sum(calls) == info["num_matvecs"] and len(calls) == info["num_calls"]
        assert max(calls) == info["block_size"] == (block or 2) and len(calls) < info["num_matvecs"]


def test_svds_matches_torch_svd():
    M = torch.randn(30, 50, dtype=F64, generator=torch.Generator().manual_seed(1))
    A = DenseOperator(M, shape_in=(5, 10), shape_out=(3, 10))
    U, S, V = svds(A, 4)
    ref = torch.linalg.svdvals(M)
    assert torch.allclose(S, ref[:4], atol=1e-8)
    assert U.shape == (4, 3, 10) and V.shape == (4, 5, 10)
    assert torch.allclose(M @ V.reshape(4, -1).T, U.reshape(4, -1).T * S, atol=1e-8)
    U2, S2, V2 = svds(DenseOperator(M.T), 4)
    assert torch.allclose(S2, ref[:4], atol=1e-8)
    with pytest.raises(ValueError, match="min\\(n_in, n_out\\) = 30"):
        svds(A, 31)


# ---------------------------------------------------------------------- density
def test_slq_is_exact_for_low_degree_polynomials_per_probe():
    """With m Lanczos steps, Σ w_i θ_i^p equals vᵀAᵖv/‖v‖² exactly for p ≤ 2m − 1."""
    lam = torch.rand(60, dtype=F64) * 4 - 1
    A, M = psd_with_spectrum(lam, seed=3)
    d = spectral_density(A, num_probes=1, num_steps=4, seed=9)
    gen = torch.Generator().manual_seed(9)
    v = (2 * torch.randint(0, 2, (1, 60), generator=gen) - 1).to(F64)[0] / 60**0.5
    for p in range(0, 8):
        quad = float((d.weights * d.nodes**p).sum())
        exact = float(v @ torch.linalg.matrix_power(M, p) @ v / (v @ v))
        assert abs(quad - exact) < 1e-9 * max(1.0, abs(exact)), p


def test_slq_cdf_converges_to_the_true_cdf():
    lam = torch.rand(300, dtype=F64, generator=torch.Generator().manual_seed(2)) * 2
    A, _ = psd_with_spectrum(lam, seed=4)
    errs = []
    for p in (4, 64):
        d = spectral_density(A, num_probes=p, num_steps=25, seed=0)
        errs.append(max(abs(d.cdf(x).value - float((lam <= x).double().mean())) for x in (0.5, 1.0, 1.5)))
        est = d.cdf(1.0)
        assert abs(est.value - float((lam <= 1.0).double().mean())) < 5 * est.stderr + 0.02
    assert errs[1] < errs[0]
    d = spectral_density(A, num_probes=8, num_steps=25)
    grid = torch.linspace(-1, 3, 2001, dtype=F64)
    mass = float(torch.trapezoid(d.density(grid, sigma=0.05), grid))
    assert abs(mass - 1) < 1e-3
    assert abs(d.expectation(lambda t: t).value - float(lam.mean())) < 5 * d.expectation(lambda t: t).stderr


def test_slq_stops_cleanly_on_invariant_subspace():
    """A rank-2 operator: the Krylov space of any probe is invariant after 3 steps, so every
    node with weight lies on the spectrum {0, λ1, λ2} and the weights still sum to one."""
    A, M = low_rank(40, 2)
    d = spectral_density(A, num_probes=3, num_steps=10)
    assert torch.allclose(d.weights.sum(1), torch.ones(3, dtype=F64))
    spectrum = torch.cat([torch.zeros(1, dtype=F64), torch.linalg.eigvalsh(M)[-2:]])
    weighted = d.nodes[d.weights > 1e-12]
    dist = (weighted[:, None] - spectrum[None, :]).abs().min(1).values
    assert float(dist.max()) < 1e-8 * float(spectrum.max())


def test_slq_default_smoothing_ignores_weightless_padding():
    """Eigenvalues {10, 12}: every probe's Lanczos run stops after 2 steps and pads with
    weight-0 nodes at 0; the default width is 1% of 12 − 10, not of 12 − 0."""
    A = DiagonalOperator(torch.tensor([10.0] * 20 + [12.0] * 20, dtype=F64))
    d = spectral_density(A, num_probes=3, num_steps=10, seed=0)
    grid = torch.linspace(9, 13, 4001, dtype=F64)
    rho = d.density(grid)
    assert abs(float(torch.trapezoid(rho, grid)) - 1) < 1e-6
    half = grid[rho >= rho.max() / 2]
    peak = half[half < 11]
    width = float(peak.max() - peak.min())  # full width at half maximum of the peak at 10
    assert width == pytest.approx(2.3548 * 0.02, rel=0.05)


def test_svds_refuses_return_info():
    A, _ = low_rank(40, 4)
    with pytest.raises(ValueError, match="return_info"):
        svds(A, 2, return_info=True)


def test_top_eigs_uses_a_smaller_gram_factor_exactly():
    gen = torch.Generator().manual_seed(3)
    F = torch.randn(120, 15, generator=gen, dtype=F64) * torch.linspace(3, 0.5, 15, dtype=F64)
    factor = DenseOperator(F, shape_in=(15,), shape_out=(4, 30))
    A = DenseOperator(F @ F.T, shape_in=(4, 30), shape_out=(4, 30), is_symmetric=True)
    A.gram_factor = factor
    (values, vectors), info = top_eigs(A, 4, return_info=True)
    assert info["factored"]
    ref_vals, ref_vecs = torch.linalg.eigh(F @ F.T)
    assert torch.allclose(values, ref_vals.flip(0)[:4], atol=1e-8)
    assert vectors.shape == (4, 4, 30)
    overlap = (vectors.reshape(4, -1) @ ref_vecs[:, -4:].flip(1)).diagonal().abs()
    assert torch.allclose(overlap, torch.ones(4, dtype=F64), atol=1e-8)
    # gram() declares its factor, so top_eigs of BᵀB for a wide B works in B's output space
    B = DenseOperator(F.T)
    (values_g, _), info_g = top_eigs(B.gram(), 3, return_info=True)
    assert info_g["factored"] and torch.allclose(values_g, ref_vals.flip(0)[:3], atol=1e-8)
