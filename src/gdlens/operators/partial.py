"""Partial traces by sampling, and the effective rank of an operator reduced to some axes.

For a square operator A on shape S, split the axes into kept κ and traced τ. The reduced
operator ``R = Tr_τ A`` (n_κ × n_κ) has ``R[κ, κ'] = Σ_τ A[(κ, τ), (κ', τ)]``. With z a
Rademacher vector over the traced axes, ``R_z = (I_κ ⊗ z)ᵀ A (I_κ ⊗ z)`` is an unbiased
sample of R that costs n_κ matvecs (one batched call per chunk). ``E[tr R_z] = tr A``.

The partial effective rank ``(tr R)² / ‖R‖_F²`` measures how many directions of the kept
axes alone the operator uses (KPFlow's "effective dimension" over time, trials or hidden
units, arXiv 2507.06381). With samples R_1..R_m, ‖R‖_F² is estimated without bias by the
U-statistic ``(2 / m(m−1)) Σ_{i<j} ⟨R_i, R_j⟩_F``; the ratio's standard error is the
jackknife's.

The KPFlow authors' code reduces differently (``contraction="ones"``, ``gram=True``): it takes
the participation ratio of ``R₁ = (I_κ ⊗ 1)ᵀ (A Aᵀ) (I_κ ⊗ 1)``, i.e. ``R₁[κ, κ'] =
Σ_{τ, τ'} (A Aᵀ)[(κ, τ), (κ', τ')]`` — the inputs are constant along the traced axes and the
outputs summed over them (all-ones contraction, not a trace), and the operator is A Aᵀ (so
for a symmetric A, its square). That quantity is deterministic: n_κ products with A Aᵀ give it
exactly. It equals ours only in special cases (e.g. A = M ⊗ I_τ gives R = n_τ M against
R₁ = n_τ² M² for ``gram=True``): offered so numbers compare one to one with that code.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gdlens.operators._common import (
    Estimate,
    check_method,
    check_square,
    make_generator,
    rademacher,
    warn_not_finite,
)
from gdlens.operators.base import LinearOperator

__all__ = [
    "partial_trace_samples",
    "partial_effective_rank",
    "partial_reduction",
    "PartialReduction",
    "exact_partial_trace",
    "gram_partial_trace",
    "variance_count",
    "CONTRACTIONS",
]

CONTRACTIONS = ("trace", "ones")

# default memory of one batched call of the exact reduction: inputs of this many numbers
_BLOCK_NUMBERS = 1 << 24


def _split(A: LinearOperator, keep: int | Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    check_square(A, "a partial trace")
    return _split_axes(A.shape_in, keep)


def _split_axes(shape: tuple[int, ...], keep: int | Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(kept, traced) axes of ``shape``, sorted; ValueError unless ``keep`` names distinct axes,
    at least one and not all."""
    ndim = len(shape)
    keep_t = (keep,) if isinstance(keep, numbers.Integral) else tuple(keep)
    norm = []
    for d in keep_t:
        if not isinstance(d, numbers.Integral) or isinstance(d, bool) or not -ndim <= d < ndim:
            raise ValueError(f"axis {d!r} is out of range for an operator on shape {shape}; allowed: 0..{ndim - 1}")
        norm.append(int(d) % ndim)
    if not norm or len(set(norm)) != len(norm) or len(norm) == ndim:
        raise ValueError(
            f"keep must name distinct axes of {shape}, at least one and not all of them; got {keep_t}"
        )
    kept = tuple(sorted(norm))
    return kept, tuple(d for d in range(ndim) if d not in kept)


def _contract(A: LinearOperator, kept: tuple[int, ...], traced: tuple[int, ...], z: Tensor, chunk_size: int) -> Tensor:
    """``(I_κ ⊗ z)ᵀ A (I_κ ⊗ z)`` (n_κ, n_κ) for a vector z over the traced axes: n_κ matvecs
    in batches of ``chunk_size``."""
    shape = A.shape_in
    n_k = math.prod(shape[d] for d in kept)
    traced_shape = tuple(shape[d] for d in traced)
    order = [1 + (kept + traced).index(d) for d in range(len(shape))]
    back = [0] + [1 + d for d in kept + traced]
    cols = []
    for start in range(0, n_k, chunk_size):
        c = min(chunk_size, n_k - start)
        E = torch.zeros(c, n_k, dtype=A.dtype, device=A.device)
        E[torch.arange(c), torch.arange(start, start + c)] = 1
        lifted = (E[:, :, None] * z[None, None, :]).reshape(c, *[shape[d] for d in kept], *traced_shape)
        out = A._matmat(lifted.permute(0, *order).contiguous())
        cols.append(out.permute(*back).reshape(c, n_k, -1) @ z)  # (chunk, n_κ): columns of the result, as rows
    return torch.cat(cols).T


def partial_trace_samples(
    A: LinearOperator,
    keep: int | Sequence[int],
    num_samples: int = 32,
    seed: int | torch.Generator = 0,
    chunk_size: int = 64,
) -> Tensor:
    """``num_samples`` independent unbiased samples of ``Tr_τ A`` (τ = the axes not kept), as
    a tensor ``(m, n_κ, n_κ)`` with the kept axes flattened in their original order.
    Cost: ``m · n_κ`` matvecs, in batches of ``chunk_size`` (each batch holds
    ``chunk_size · n`` numbers, n = A.size_in)."""
    kept, traced = _split(A, keep)
    n_t = math.prod(A.shape_in[d] for d in traced)
    gen = make_generator(seed, A.device)
    with torch.no_grad():
        samples = [
            _contract(A, kept, traced, rademacher(1, n_t, gen, A.dtype, A.device)[0], chunk_size)
            for _ in range(num_samples)
        ]
    return torch.stack(samples)


def _auto_chunk(n: int) -> int:
    return max(1, min(256, _BLOCK_NUMBERS // max(n, 1)))


def exact_partial_trace(A: LinearOperator, keep: int | Sequence[int], chunk_size: int | None = None) -> Tensor:
    """``R = Tr_τ A`` (n_κ, n_κ) exactly, from the n = A.size_in basis vectors of the full space.

    Each basis vector ``e_(κ', τ)`` gives the column ``A e_(κ', τ)``, of which the entries
    ``(κ, τ)`` (same τ) add to ``R[:, κ']``. Time: n matvecs. Memory: one batched call of
    ``chunk_size`` vectors of n numbers in and out, plus what A needs for that batch, plus
    n_κ² for R. ``chunk_size=None`` takes ``min(256, 2²⁴ / n)`` vectors (inputs of at most
    2²⁴ numbers: 128 MB in float64), e.g. 182 for a (16, 90, 64) operator.
    """
    kept, traced = _split(A, keep)
    shape = A.shape_in
    n = A.size_in
    n_k = math.prod(shape[d] for d in kept)
    n_t = n // n_k
    chunk = _auto_chunk(n) if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    # split_to_op[s]: the operator-order flat index of the entry whose split-order (κ, τ) index is s
    split_shape = tuple(shape[d] for d in kept + traced)
    to_split = [(kept + traced).index(d) for d in range(len(shape))]
    op_to_split = torch.arange(n, device=A.device).reshape(split_shape).permute(*to_split).reshape(-1)
    split_to_op = torch.empty_like(op_to_split)
    split_to_op[op_to_split] = torch.arange(n, device=A.device)
    R = torch.zeros(n_k, n_k, dtype=A.dtype, device=A.device)
    with torch.no_grad():
        for start in range(0, n, chunk):
            c = min(chunk, n - start)
            cols = torch.arange(start, start + c, device=A.device)  # split-order indices (κ', τ)
            E = torch.zeros(c, n, dtype=A.dtype, device=A.device)
            E[torch.arange(c), split_to_op[cols]] = 1
            out = A._matmat(E.reshape(c, *shape)).reshape(c, n)[:, split_to_op]  # split order
            out = out.reshape(c, n_k, n_t)
            tau = cols % n_t
            R.index_add_(1, cols // n_t, out[torch.arange(c), :, tau].T)
    return R


def variance_count(eigenvalues: Tensor, fraction: float = 0.95) -> int:
    """The number of leading eigenvalues holding ``fraction`` of their sum: the smallest k with
    ``Σ_{i≤k} λ_(i) ≥ fraction · Σ_i λ_i`` (λ sorted descending, negative ones — sampling noise
    of a PSD operator — counted as 0). 0 for an operator with no positive eigenvalue."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    lam = eigenvalues.detach().to(torch.float64).clamp_min(0).sort(descending=True).values
    total = float(lam.sum())
    if not total > 0:
        return 0
    cum = torch.cumsum(lam, 0)
    return int((cum < fraction * total * (1 - 1e-12)).sum()) + 1


@dataclass(frozen=True)
class PartialReduction:
    """An operator reduced to some of its axes (:func:`partial_reduction`).

    Attributes:
        matrix: the reduced matrix (n_κ, n_κ): R exactly, or the mean of the sampled R_z.
        samples: the sampled R_z (m, n_κ, n_κ) for ``"hutchinson"``, else None.
        kept: the kept axes.
        num_matvecs: products with the operator spent.
        method: ``"exact"`` or ``"hutchinson"``.
    """

    matrix: Tensor
    samples: Tensor | None
    kept: tuple[int, ...]
    num_matvecs: int
    method: str

    def effective_rank(self) -> Estimate:
        """``(tr R)² / ‖R‖_F²``: exact, or from the samples with the U-statistic for ‖R‖_F²
        and a jackknife standard error (module docstring). Warns when not finite."""
        if self.samples is None:
            R = self.matrix
            value = float(torch.trace(R) ** 2 / (R * R).sum())
            warn_not_finite(value, R.dtype, "the partial effective rank", bool(torch.isfinite(R).all()))
            return Estimate(value, 0.0, self.num_matvecs, self.method)
        m = self.samples.shape[0]
        traces = self.samples.diagonal(dim1=1, dim2=2).sum(1)
        S = self.samples.reshape(m, -1)
        gram_ij = S @ S.T  # ⟨R_i, R_j⟩

        def ratio(idx: Tensor) -> float:
            sub = gram_ij[idx][:, idx]
            k = idx.numel()
            cross = (sub.sum() - sub.diagonal().sum()) / (k * (k - 1))
            return float(traces[idx].mean() ** 2 / cross)

        full = torch.arange(m, device=S.device)
        value = ratio(full)
        warn_not_finite(value, S.dtype, "the partial effective rank", bool(torch.isfinite(gram_ij).all()))
        stderr = None
        if m >= 3:
            loo = torch.tensor([ratio(full[full != i]) for i in range(m)], dtype=torch.float64)
            stderr = float(math.sqrt((m - 1) / m * ((loo - loo.mean()) ** 2).sum()))
        return Estimate(value, stderr, self.num_matvecs, self.method)

    def variance_count(self, fraction: float = 0.95) -> int:
        """:func:`variance_count` of the eigenvalues of ``matrix`` (symmetrised). From sampled
        reductions the noise of the mean spreads the spectrum, so the count is biased upward
        (by less the more samples); exact reductions give it exactly."""
        M = self.matrix.to(torch.float64)
        return variance_count(torch.linalg.eigvalsh((M + M.T) / 2), fraction)


def gram_partial_trace(F: LinearOperator, keep: int | Sequence[int], chunk_size: int | None = None) -> Tensor:
    """``R = Tr_τ(F Fᵀ)`` (n_κ, n_κ) exactly, from the p columns of a Gram factor F (A = F Fᵀ,
    F from (p,) to A's space): each column ``f_j = F e_j``, arranged as (n_κ, n_τ), adds
    ``Σ_τ f_j[:, τ] f_j[:, τ]ᵀ``. Time: p products with F (against n = A.size_in products with A
    for :func:`exact_partial_trace`: the cheaper route when p < n, e.g. K = J Jᵀ or G = (P J)(P J)ᵀ
    of a small network on a long batch). Memory: ``chunk_size`` columns of n numbers
    (default ``min(256, 2²⁴ / n)``), plus n_κ². Accumulated in float64."""
    (p,) = F.shape_in
    shape = F.shape_out
    kept, traced = _split_axes(tuple(shape), keep)
    n = math.prod(shape)
    n_k = math.prod(shape[d] for d in kept)
    chunk = _auto_chunk(n) if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    order = kept + traced
    R = torch.zeros(n_k, n_k, dtype=torch.float64, device=F.device)
    with torch.no_grad():
        for start in range(0, p, chunk):
            c = min(chunk, p - start)
            E = torch.zeros(c, p, dtype=F.dtype, device=F.device)
            E[torch.arange(c), torch.arange(start, start + c)] = 1
            cols = F.matmat(E).reshape(c, *shape).permute(0, *(d + 1 for d in order))
            cols = cols.reshape(c, n_k, n // n_k).to(torch.float64)
            R += torch.einsum("ckt,clt->kl", cols, cols)
    return R.to(F.dtype)


def partial_reduction(
    A: LinearOperator,
    keep: int | Sequence[int],
    method: str = "auto",
    num_samples: int = 32,
    seed: int | torch.Generator = 0,
    chunk_size: int | None = None,
    *,
    contraction: str = "trace",
    gram: bool = False,
) -> PartialReduction:
    """The operator A reduced to the axes ``keep`` (arguments as in
    :func:`partial_effective_rank`, whose value is ``partial_reduction(...).effective_rank()``).

    ``method="auto"`` picks ``"exact"`` when it costs no more matvecs than sampling
    (n ≤ num_samples · n_κ, e.g. keeping trials × time of a (B, T, H) operator with H ≤ 32 at
    32 samples) and ``"hutchinson"`` otherwise. An operator that carries a Gram factor F
    (A = F Fᵀ, ``A.gram_factor``, e.g. KPFlow's K and G) from a flat space of p < n numbers is
    reduced exactly from F's p columns (:func:`gram_partial_trace`), at a cost of p.

    Cost: exact n = A.size_in matvecs (or p products with the Gram factor) (time) in batches of ``chunk_size`` vectors of n numbers
    (memory); Hutchinson ``num_samples · n_κ`` matvecs in batches of ``chunk_size`` (default 64);
    the ones contraction n_κ matvecs (2 n_κ with ``gram``).
    """
    check_method(method, ("hutchinson", "exact", "auto"), "partial_effective_rank")
    if contraction not in CONTRACTIONS:
        raise ValueError(f"contraction must be one of {CONTRACTIONS}, got {contraction!r}")
    if gram:
        A = A.T.gram()  # A Aᵀ
    kept, traced = _split(A, keep)
    n_k = math.prod(A.shape_in[d] for d in kept)
    F = A.gram_factor
    gram_cost = F.size_in if F is not None and len(F.shape_in) == 1 and F.size_in < A.size_in else None
    exact_cost = gram_cost or A.size_in
    if method == "auto":
        method = "exact" if exact_cost <= num_samples * n_k else "hutchinson"
    with torch.no_grad():
        if contraction == "ones":
            ones = torch.ones(A.size_in // n_k, dtype=A.dtype, device=A.device)
            return PartialReduction(_contract(A, kept, traced, ones, chunk_size or 64), None, kept, n_k, "exact")
        if method == "exact":
            R = gram_partial_trace(F, kept, chunk_size) if gram_cost else exact_partial_trace(A, kept, chunk_size)
            return PartialReduction(R, None, kept, exact_cost, "exact")
    if num_samples < 2:
        raise ValueError(f"the unbiased estimate of ‖R‖_F² needs num_samples >= 2, got {num_samples}")
    samples = partial_trace_samples(A, kept, num_samples, seed, chunk_size or 64)
    return PartialReduction(samples.mean(0), samples, kept, num_samples * n_k, "hutchinson")


def partial_effective_rank(
    A: LinearOperator,
    keep: int | Sequence[int],
    method: str = "auto",
    num_samples: int = 32,
    seed: int | torch.Generator = 0,
    chunk_size: int | None = None,
    *,
    contraction: str = "trace",
    gram: bool = False,
) -> Estimate:
    """``(tr R)² / ‖R‖_F²`` for ``R = Tr_τ A`` the symmetric PSD operator A reduced to the axes
    ``keep`` (an axis or a tuple of axes; e.g. ``keep=1`` on a (B, T, H) operator: the
    effective dimension over time; ``keep=(0, 1)``: over trials × time). At most n_κ.

    Args:
        A: square operator of n = A.size_in dimensions; n_κ = the product of the kept sizes.
        method: ``"auto"`` (default): ``"exact"`` when it costs no more matvecs than sampling
            (n ≤ num_samples · n_κ, i.e. at most ``num_samples`` traced entries), else
            ``"hutchinson"``. ``"hutchinson"``: ``num_samples ≥ 2`` sampled partial traces,
            ``num_samples · n_κ`` matvecs, jackknife standard error (module docstring); over very
            few traced entries (2 or 3) its error bar is unreliable — the samples take only a
            few distinct values — one more reason for ``"auto"``. ``"exact"``: R from n matvecs
            (:func:`exact_partial_trace`), memory bounded by ``chunk_size``.
        num_samples: sampled partial traces (Hutchinson). The default 32 is calibrated: over
            seeds, the jackknife error matches the spread of the estimate (tests/operators/
            test_partial.py); at 8 it is itself so noisy (about 7 degrees of freedom) that the
            truth falls outside ±2 reported errors far more often than 5 %.
        chunk_size: vectors per batched call: ``None`` → 64 for Hutchinson (each call holds
            ``64 · n`` numbers in and out), and for ``"exact"`` as many as fit 2²⁴ numbers (at
            most 256; 182 on a (16, 90, 64) operator, where the former default lifted
            64 · 1024 full-size vectors at once: 68 GB).
        contraction: ``"trace"`` (R = Tr_τ A, the default) or ``"ones"`` (the KPFlow authors'
            reduction ``(I_κ ⊗ 1)ᵀ A (I_κ ⊗ 1)``: deterministic, computed exactly in n_κ
            matvecs whatever ``method``; reported with method ``"exact"``).
        gram: reduce ``A Aᵀ`` instead of A (the authors' code does, by default, for every
            operator: for their numbers pass ``contraction="ones", gram=True``).

    Warns (RuntimeWarning) when the value is not finite, naming float64 for float32 operators.
    """
    return partial_reduction(
        A, keep, method, num_samples, seed, chunk_size, contraction=contraction, gram=gram
    ).effective_rank()
