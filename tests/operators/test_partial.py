"""Sampled partial traces and the partial effective rank."""

from __future__ import annotations

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
        est = partial_effective_rank(A, 1, num_samples=m, seed=3)
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
        partial_effective_rank(A, 0, num_samples=1)
