"""Sampled partial traces and the partial effective rank."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.operators import DenseOperator, IdentityOperator, partial_effective_rank, partial_trace_samples

F64 = torch.float64
SHAPE = (3, 4, 5)


def psd(seed: int = 0, rank: int = 12) -> tuple[DenseOperator, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    L = torch.randn(60, rank, generator=gen, dtype=F64)
    M = L @ L.T
    return DenseOperator(M, SHAPE, SHAPE, is_symmetric=True), M


@pytest.mark.parametrize("keep", [0, 1, 2, (0, 2)])
def test_samples_average_to_the_exact_partial_trace(keep):
    A, M = psd()
    traced = tuple(d for d in range(3) if d not in ((keep,) if isinstance(keep, int) else keep))
    exact = A.partial_trace(traced).dense()
    samples = partial_trace_samples(A, keep, num_samples=400, seed=1)
    assert samples.shape == (400, *exact.shape)
    err = (samples.mean(0) - exact).abs().max()
    spread = samples.std(0).max() / 20  # standard error of the mean
    assert err < 5 * spread
    # the samples' traces are unbiased for tr A
    assert abs(float(samples.diagonal(dim1=1, dim2=2).sum(1).mean() - torch.trace(M))) < 0.05 * float(torch.trace(M))


def test_identity_gives_the_kept_dimension_exactly():
    I = IdentityOperator(SHAPE)
    for keep, n in [(0, 3), (1, 4), (2, 5), ((0, 1), 12)]:
        for method in ("exact", "hutchinson"):
            assert abs(partial_effective_rank(I, keep, method=method).value - n) < 1e-10


def test_exact_partial_effective_rank_matches_dense_and_estimate_converges():
    A, M = psd(seed=2, rank=6)
    R = torch.einsum("aibajb->ij", M.reshape(*SHAPE, *SHAPE))
    truth = float(torch.trace(R) ** 2 / (R * R).sum())
    assert abs(partial_effective_rank(A, 1, method="exact").value - truth) < 1e-10
    errors = []
    for m in (4, 64):
        est = partial_effective_rank(A, 1, "hutchinson", num_samples=m, seed=3)
        errors.append(abs(est.value - truth))
        assert abs(est.value - truth) < 4 * est.stderr + 1e-12
    assert errors[1] < errors[0]


def test_numpy_integer_axes_are_accepted():
    import numpy as np

    A = IdentityOperator((3, 4, 5))
    a = partial_effective_rank(A, np.int64(1), method="exact")
    b = partial_effective_rank(A, 1, method="exact")
    assert a.value == b.value == pytest.approx(4.0)


def test_bad_keep_axes():
    A, _ = psd()
    with pytest.raises(ValueError, match="out of range"):
        partial_effective_rank(A, 3)
    with pytest.raises(ValueError, match="not all"):
        partial_effective_rank(A, (0, 1, 2))
    with pytest.raises(ValueError, match="num_samples >= 2"):
        partial_effective_rank(A, 0, "hutchinson", num_samples=1)


# ---------------------------------------------------------------- exact reductions, bounded memory


@pytest.mark.parametrize("keep", [0, 1, 2, (0, 1), (0, 2), (1, 2)])
@pytest.mark.parametrize("chunk", [1, 7, None])
def test_exact_partial_trace_matches_dense_in_any_chunks(keep, chunk):
    from gdlens.operators import exact_partial_trace

    A, _ = psd(4)
    kept = (keep,) if isinstance(keep, int) else keep
    dense = A.partial_trace(tuple(d for d in range(3) if d not in kept)).dense()
    assert torch.allclose(exact_partial_trace(A, keep, chunk), dense, atol=1e-12)


def test_exact_reduction_bounds_the_memory_of_each_call():
    from gdlens.operators import CallableOperator
    from gdlens.operators.partial import _auto_chunk

    assert _auto_chunk(16 * 90 * 64) == 182  # the (16, 90, 64) operator that asked for 68 GB
    shape, largest = (4, 90, 64), []

    def apply(X):
        largest.append(X.numel())
        return 2 * X

    A = CallableOperator(apply, shape, dtype=torch.float32, is_symmetric=True)
    est = partial_effective_rank(A, 1, method="exact")
    assert est.value == pytest.approx(90.0) and est.num_matvecs == 4 * 90 * 64
    assert max(largest) <= 1 << 24


# ---------------------------------------------------------------- the reference code's definition


def test_ones_contraction_of_the_gram_matches_dense():
    A, M = psd(5)
    D = (M @ M.T).reshape(*SHAPE, *SHAPE)
    for keep, pattern in [(1, "aibcjd->ij"), ((0, 1), "abicdj->abcd")]:
        n_k = {1: 4, (0, 1): 12}[keep]
        R = torch.einsum(pattern, D).reshape(n_k, n_k)
        truth = float(torch.trace(R) ** 2 / (R * R).sum())
        est = partial_effective_rank(A, keep, contraction="ones", gram=True)
        assert est.value == pytest.approx(truth, rel=1e-12) and est.stderr == 0.0 and est.method == "exact"
    # without gram: the ones contraction of A itself; it differs from the partial trace
    R1 = torch.einsum("aibcjd->ij", M.reshape(*SHAPE, *SHAPE))
    ones = partial_effective_rank(A, 1, contraction="ones").value
    assert ones == pytest.approx(float(torch.trace(R1) ** 2 / (R1 * R1).sum()), rel=1e-12)
    assert abs(ones - partial_effective_rank(A, 1, method="exact").value) > 1e-3
    with pytest.raises(ValueError, match="contraction must be one of"):
        partial_effective_rank(A, 1, contraction="sum")


def test_variance_count_and_auto_method():
    from gdlens.operators import partial_reduction, variance_count

    assert variance_count(torch.tensor([5.0, 3.0, 1.0, 1.0]), 0.8) == 2  # 8/10 reached at 2
    assert variance_count(torch.tensor([5.0, 3.0, 1.0, 1.0]), 0.81) == 3
    assert variance_count(torch.zeros(3)) == 0
    A, _ = psd(6)
    red = partial_reduction(A, (0, 1), "auto", num_samples=8)  # n = 60 <= 8 · 12: exact
    assert red.method == "exact" and red.num_matvecs == 60
    assert partial_reduction(A, 0, "auto", num_samples=8).method == "hutchinson"  # 60 > 8 · 3


# ---------------------------------------------------------------- float32 overflow warns


def test_overflowing_float32_warns_and_names_float64():
    from gdlens.operators import effective_rank

    M = torch.full((60, 60), 1e21, dtype=torch.float32)  # ‖M‖_F² = 3600e42 overflows float32
    A = DenseOperator(M, SHAPE, SHAPE, is_symmetric=True)
    with pytest.warns(RuntimeWarning, match="float64"):
        partial_effective_rank(A, 1, method="exact")
    with pytest.warns(RuntimeWarning, match="float64"):
        partial_effective_rank(A, 1, "hutchinson", num_samples=4)
    with pytest.warns(RuntimeWarning, match="float64"):
        effective_rank(A, method="exact")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        partial_effective_rank(DenseOperator(M.double(), SHAPE, SHAPE, is_symmetric=True), 1, method="exact")


# ---------------------------------------------------------------- calibration of the jackknife error


def calibration(A, truth: float, num_samples: int, seeds: int = 200) -> tuple[float, float]:
    """(spread over seeds / rms reported error, fraction of seeds with |value − truth| ≤ 2 s.e.)."""
    est = [partial_effective_rank(A, 1, "hutchinson", num_samples, seed=s) for s in range(seeds)]
    values = torch.tensor([e.value for e in est], dtype=F64)
    errors = torch.tensor([e.stderr for e in est], dtype=F64)
    return float(values.std() / errors.pow(2).mean().sqrt()), float(((values - truth).abs() <= 2 * errors).double().mean())


def test_default_num_samples_gives_calibrated_errors_across_seeds():
    """P Pᵀ of a GRU's KPFlow snapshot (B, T, H) = (4, 16, 6), reduced to time: over 200 seeds
    the truth lies within ±2 jackknife errors in 88 % of them at 8 samples (the former default;
    nominal 95 %), and in about 95 % at the default 32, where the spread matches the error."""
    import inspect

    import gdlens as gd

    torch.manual_seed(0)
    model = gd.models.GRU(3, 6, 2).double()
    gen = torch.Generator().manual_seed(0)
    kp = gd.KPFlow(model, torch.randn(4, 16, 3, generator=gen, dtype=F64), torch.randn(4, 16, 2, generator=gen, dtype=F64))
    PPt = kp.P @ kp.P.T
    A = DenseOperator(PPt.dense(), PPt.shape_in, PPt.shape_in, is_symmetric=True)
    truth = partial_effective_rank(A, 1, method="exact").value
    default = inspect.signature(partial_effective_rank).parameters["num_samples"].default
    assert default == 32
    ratio, cover = calibration(A, truth, default)
    assert 0.8 <= ratio <= 1.2, ratio  # the reported error is the spread over seeds
    assert cover >= 0.93, cover  # ±2 s.e. holds the truth about as often as it should (0.954)
    _, cover8 = calibration(A, truth, 8)
    assert cover8 < 0.92, cover8  # the former default was optimistic


def test_an_operator_with_a_gram_factor_is_reduced_exactly_from_its_columns():
    """A = F Fᵀ with F from p < n numbers: the exact reduction reads F's p columns (cost p) and
    equals the dense partial trace, for every choice of kept axes; without the factor it spends n."""
    from gdlens.operators import CallableOperator, exact_partial_trace, gram_partial_trace, partial_reduction

    gen = torch.Generator().manual_seed(5)
    shape, p = (3, 4, 2), 7
    M = torch.randn(24, p, generator=gen, dtype=torch.float64)
    F = CallableOperator(lambda V: (V @ M.T).reshape(V.shape[0], *shape), (p,), shape_out=shape,
                         dtype=torch.float64)
    A = CallableOperator(lambda X: (X.reshape(X.shape[0], -1) @ (M @ M.T)).reshape(X.shape), shape,
                         is_symmetric=True, dtype=torch.float64)
    dense = (M @ M.T).reshape(*shape, *shape)
    for keep in ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2)):
        traced = [d for d in range(3) if d not in keep]
        truth = dense.permute(*keep, *traced, *(3 + d for d in keep), *(3 + d for d in traced))
        n_k = math.prod(shape[d] for d in keep)
        truth = truth.reshape(n_k, 24 // n_k, n_k, 24 // n_k).diagonal(dim1=1, dim2=3).sum(-1)
        torch.testing.assert_close(gram_partial_trace(F, keep, chunk_size=3), truth, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(exact_partial_trace(A, keep), truth, rtol=1e-12, atol=1e-12)
    assert partial_reduction(A, (0, 1), method="exact").num_matvecs == 24
    A.gram_factor = F
    reduced = partial_reduction(A, (0, 1), method="exact")
    assert reduced.num_matvecs == p and reduced.method == "exact"
