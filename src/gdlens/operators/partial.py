"""Partial traces by sampling, and the effective rank of an operator reduced to some axes.

For a square operator A on shape S, split the axes into kept κ and traced τ. The reduced
operator ``R = Tr_τ A`` (n_κ × n_κ) has ``R[κ, κ'] = Σ_τ A[(κ, τ), (κ', τ)]``. With z a
Rademacher vector over the traced axes, ``R_z = (I_κ ⊗ z)ᵀ A (I_κ ⊗ z)`` is an unbiased
sample of R that costs n_κ matvecs (one batched call per chunk). ``tr R = tr A`` always.

The partial effective rank ``(tr R)² / ‖R‖_F²`` measures how many directions of the kept
axes alone the operator uses (KPFlow's "effective dimension" over time, trials or hidden
units, arXiv 2507.06381). With samples R_1..R_m, ‖R‖_F² is estimated without bias by the
U-statistic ``(2 / m(m−1)) Σ_{i<j} ⟨R_i, R_j⟩_F``; the ratio's standard error is the
jackknife's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from gdlens.operators._common import Estimate, check_method, check_square, make_generator, rademacher
from gdlens.operators.base import LinearOperator, PartialTraceOperator, basis_chunks

__all__ = ["partial_trace_samples", "partial_effective_rank"]


def _split(A: LinearOperator, keep: int | Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    check_square(A, "a partial trace")
    ndim = len(A.shape_in)
    keep_t = (keep,) if isinstance(keep, numbers.Integral) else tuple(keep)
    norm = []
    for d in keep_t:
        if not isinstance(d, numbers.Integral) or isinstance(d, bool) or not -ndim <= d < ndim:
            raise ValueError(f"axis {d!r} is out of range for an operator on shape {A.shape_in}; allowed: 0..{ndim - 1}")
        norm.append(int(d) % ndim)
    if not norm or len(set(norm)) != len(norm) or len(norm) == ndim:
        raise ValueError(
            f"keep must name distinct axes of {A.shape_in}, at least one and not all of them; got {keep_t}"
        )
    kept = tuple(sorted(norm))
    return kept, tuple(d for d in range(ndim) if d not in kept)


def partial_trace_samples(
    A: LinearOperator,
    keep: int | Sequence[int],
    num_samples: int = 8,
    seed: int | torch.Generator = 0,
    chunk_size: int = 64,
) -> Tensor:
    """``num_samples`` independent unbiased samples of ``Tr_τ A`` (τ = the axes not kept), as
    a tensor ``(m, n_κ, n_κ)`` with the kept axes flattened in their original order.
    Cost: ``m · n_κ`` matvecs, in batches of ``chunk_size``."""
    kept, traced = _split(A, keep)
    shape = A.shape_in
    n_k = math.prod(shape[d] for d in kept)
    traced_shape = tuple(shape[d] for d in traced)
    gen = make_generator(seed, A.device)
    order = [1 + (kept + traced).index(d) for d in range(len(shape))]
    back = [0] + [1 + d for d in kept + traced]
    samples = []
    with torch.no_grad():
        for _ in range(num_samples):
            z = rademacher(1, math.prod(traced_shape), gen, A.dtype, A.device)[0]
            rows = []
            for E in basis_chunks(n_k, chunk_size, A.dtype, A.device):
                c = E.shape[0]
                lifted = (E[:, :, None] * z[None, None, :]).reshape(c, *[shape[d] for d in kept], *traced_shape)
                out = A._matmat(lifted.permute(0, *order).contiguous())
                out = out.permute(*back).reshape(c, n_k, -1)
                rows.append(out @ z)  # (chunk, n_κ): columns κ' = start..stop of R_z, as rows
            samples.append(torch.cat(rows).T)
    return torch.stack(samples)


def partial_effective_rank(
    A: LinearOperator,
    keep: int | Sequence[int],
    method: str = "hutchinson",
    num_samples: int = 8,
    seed: int | torch.Generator = 0,
    chunk_size: int = 64,
) -> Estimate:
    """``(tr R)² / ‖R‖_F²`` for ``R = Tr_τ A`` the symmetric PSD operator A reduced to the axes
    ``keep`` (e.g. ``keep=1`` on a (B, T, H) operator: the effective dimension over time).

    ``method="exact"`` forms R from ``n`` matvecs; ``"hutchinson"`` uses ``num_samples ≥ 2``
    sampled partial traces (``num_samples · n_κ`` matvecs) and reports a jackknife error.
    """
    check_method(method, ("hutchinson", "exact"), "partial_effective_rank")
    kept, traced = _split(A, keep)
    if method == "exact":
        with torch.no_grad():
            R = PartialTraceOperator(A, traced).dense(chunk_size=chunk_size)
        value = float(torch.trace(R) ** 2 / (R * R).sum())
        return Estimate(value, 0.0, A.size_in, "exact")
    if num_samples < 2:
        raise ValueError(f"the unbiased estimate of ‖R‖_F² needs num_samples >= 2, got {num_samples}")
    samples = partial_trace_samples(A, kept, num_samples, seed, chunk_size)
    m, n_k = num_samples, samples.shape[1]
    traces = samples.diagonal(dim1=1, dim2=2).sum(1)
    S = samples.reshape(m, -1)
    gram = S @ S.T  # ⟨R_i, R_j⟩

    def ratio(idx: Tensor) -> float:
        sub = gram[idx][:, idx]
        k = idx.numel()
        cross = (sub.sum() - sub.diagonal().sum()) / (k * (k - 1))
        return float(traces[idx].mean() ** 2 / cross)

    full = torch.arange(m, device=S.device)
    value = ratio(full)
    stderr = None
    if m >= 3:
        loo = torch.tensor([ratio(full[full != i]) for i in range(m)], dtype=torch.float64)
        stderr = float(math.sqrt((m - 1) / m * ((loo - loo.mean()) ** 2).sum()))
    return Estimate(value, stderr, m * n_k, "hutchinson")
