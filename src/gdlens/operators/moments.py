"""Frobenius norms, Frobenius alignment and effective rank from one shared set of probes.

All three are functions of the first two "moments" of one or two operators,
``t_i = tr A_i`` and ``f_ij = ⟨A_i, A_j⟩_F = tr(A_iᵀ A_j)``, estimated together:

- ``"exact"``: n matvecs per operator (identity columns in batches).
- ``"hutchinson"``: shared Rademacher probes z; ``zᵀA_i z`` and ``⟨A_i z, A_j z⟩`` are unbiased.
- ``"hutch++"`` (square operators): a shared sketch Q = orth((Σ_i A_i) S) is handled exactly,
  ``t_i = tr(QᵀA_iQ) + E[gᵀA_i g]``, ``f_ij = ⟨A_iQ, A_jQ⟩_F + E[⟨A_i g, A_j g⟩]`` with
  g uniform on the sphere of radius sqrt(n − r) in the complement of Q (E[ggᵀ] = I − QQᵀ). Exact once the sketch spans range(Σ_i A_i) (for PSD A_i: rank(Σ A_i) ≤ m/3).

Ratios (alignment, effective rank) are consistent but not unbiased; their standard error is
the delta-method error from the sample covariance of the stochastic terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gdlens.operators._common import (
    Estimate,
    apply_flat,
    basis_chunks,
    check_method,
    check_square,
    complement_probes,
    make_generator,
    rademacher,
)
from gdlens.operators.base import LinearOperator
from gdlens.operators.trace import orthonormal_rows

__all__ = ["frobenius_norm", "alignment", "effective_rank"]

MOMENT_METHODS = ("hutch++", "hutchinson", "exact")


def _moments(
    ops: Sequence[LinearOperator], method: str, num_matvecs: int, seed: int | torch.Generator, chunk_size: int
) -> tuple[Tensor, Tensor | None, int]:
    """Estimate the vector μ = (t_1..t_p, f_11, f_12, ..., f_pp) (upper triangle, row-major).

    Returns (μ, Σ, matvecs): Σ the covariance of μ's stochastic part (None if exact/absent).
    """
    first = ops[0]
    for op in ops[1:]:
        if (op.shape_in, op.shape_out) != (first.shape_in, first.shape_out):
            raise ValueError(
                f"operators must have one shape, got {first.shape_in}->{first.shape_out} and {op.shape_in}->{op.shape_out}"
            )
    n = first.size_in
    square = first.is_square
    pairs = [(i, j) for i in range(len(ops)) for j in range(i, len(ops))]

    def stats(V: Tensor) -> Tensor:
        """Per-row statistics (k, d): zᵀA_i z (square only) and ⟨A_i z, A_j z⟩."""
        AV = [apply_flat(op, V) for op in ops]
        cols = [(V * a).sum(1) for a in AV] if square else [V.new_zeros(V.shape[0]) for _ in AV]
        cols += [(AV[i] * AV[j]).sum(1) for i, j in pairs]
        return torch.stack(cols, dim=1)

    with torch.no_grad():
        if method == "exact":
            total = sum(stats(E).sum(0) for E in basis_chunks(n, chunk_size, first.dtype, first.device))
            return total, None, n
        gen = make_generator(seed, first.device)
        if method == "hutchinson":
            Z = rademacher(num_matvecs, n, gen, first.dtype, first.device)
            samples = stats(Z)
            return samples.mean(0), _cov_of_mean(samples), num_matvecs
        s = num_matvecs // 3
        g = num_matvecs - 2 * s
        S = rademacher(s, n, gen, first.dtype, first.device)
        Q = orthonormal_rows(sum(apply_flat(op, S) for op in ops))
        captured = stats(Q).sum(0)
        Z = complement_probes(g, Q, gen)
        samples = stats(Z)
        cov = _cov_of_mean(samples)
        if Q.shape[0] >= n:
            cov = torch.zeros_like(cov) if cov is not None else None
        return captured + samples.mean(0), cov, num_matvecs


def _cov_of_mean(samples: Tensor) -> Tensor | None:
    m = samples.shape[0]
    if m < 2:
        return None
    centred = samples - samples.mean(0)
    return centred.T @ centred / (m - 1) / m


def _delta(fn: Callable[[Tensor], Tensor], mu: Tensor, cov: Tensor | None, exact: bool) -> float | None:
    """Delta-method standard error of fn(μ)."""
    if exact:
        return 0.0
    if cov is None:
        return None
    grad = torch.func.grad(fn)(mu)
    return float(torch.sqrt((grad @ cov @ grad).clamp_min(0)))


def _validate(method: str, num_matvecs: int, square: bool, what: str) -> None:
    check_method(method, MOMENT_METHODS, what)
    if method == "hutch++" and not square:
        raise ValueError(f"{what} with method 'hutch++' needs square operators; use 'hutchinson' or 'exact'")
    minimum = {"hutch++": 3, "hutchinson": 1, "exact": 0}[method]
    if num_matvecs < minimum:
        raise ValueError(f"{method} needs num_matvecs >= {minimum}, got {num_matvecs}")


def frobenius_norm(
    A: LinearOperator,
    method: str | None = None,
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
    chunk_size: int = 256,
) -> Estimate:
    """``‖A‖_F = sqrt(Σ_ij A_ij²) = sqrt(tr AᵀA)``.

    ``method`` defaults to ``"hutch++"`` for square operators and ``"hutchinson"`` otherwise.
    The standard error is the delta-method error ``se(‖A‖_F²) / (2‖A‖_F)``.
    """
    method = method or ("hutch++" if A.is_square else "hutchinson")
    _validate(method, num_matvecs, A.is_square, "frobenius_norm")
    mu, cov, used = _moments([A], method, num_matvecs, seed, chunk_size)

    def fn(m: Tensor) -> Tensor:
        return torch.sqrt(m[1].clamp_min(0))

    return Estimate(float(fn(mu)), _delta(fn, mu, cov, method == "exact"), used, method)


def alignment(
    A: LinearOperator,
    B: LinearOperator,
    method: str | None = None,
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
    chunk_size: int = 256,
) -> Estimate:
    """Frobenius alignment ``⟨A, B⟩_F / (‖A‖_F ‖B‖_F)`` ∈ [−1, 1] of two operators of one shape.

    1 means B is a positive multiple of A; for PSD operators 0 means orthogonal ranges.
    ``num_matvecs`` is spent on each operator. ``method`` as in :func:`frobenius_norm`.
    """
    method = method or ("hutch++" if A.is_square else "hutchinson")
    _validate(method, num_matvecs, A.is_square, "alignment")
    mu, cov, used = _moments([A, B], method, num_matvecs, seed, chunk_size)

    def fn(m: Tensor) -> Tensor:  # m = (t_A, t_B, f_AA, f_AB, f_BB)
        return m[3] / torch.sqrt((m[2] * m[4]).clamp_min(torch.finfo(m.dtype).tiny))

    return Estimate(float(fn(mu)), _delta(fn, mu, cov, method == "exact"), used, method)


def effective_rank(
    A: LinearOperator,
    method: str = "hutch++",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
    chunk_size: int = 256,
) -> Estimate:
    """Participation ratio ``(tr A)² / ‖A‖_F² = (Σλ)² / Σλ²`` of a symmetric PSD operator.

    It lies in [1, rank A]: n for the identity on n dimensions, 1 for a rank-one operator.
    """
    check_square(A, "effective_rank")
    _validate(method, num_matvecs, True, "effective_rank")
    mu, cov, used = _moments([A], method, num_matvecs, seed, chunk_size)

    def fn(m: Tensor) -> Tensor:  # m = (t, f)
        return m[0] ** 2 / m[1].clamp_min(torch.finfo(m.dtype).tiny)

    return Estimate(float(fn(mu)), _delta(fn, mu, cov, method == "exact"), used, method)

