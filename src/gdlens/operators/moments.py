"""Frobenius norms, Frobenius alignment and effective rank from one shared set of probes.

All three are functions of the first two "moments" of one or more operators,
``t_i = tr A_i`` and ``f_ij = ⟨A_i, A_j⟩_F = tr(A_iᵀ A_j)``, estimated together:

- ``"exact"``: n matvecs per operator (identity columns in batches).
- ``"hutchinson"``: shared Rademacher probes z; ``zᵀA_i z`` and ``⟨A_i z, A_j z⟩`` are unbiased.
- ``"hutch++"`` (square operators): a shared sketch Q = orth((Σ_i A_i) S) is handled exactly,
  ``t_i = tr(QᵀA_iQ) + E[gᵀA_i g]``, ``f_ij = ⟨A_iQ, A_jQ⟩_F + E[⟨A_i g, A_j g⟩]`` with
  g uniform on the sphere of radius sqrt(n − r) in the complement of Q (E[ggᵀ] = I − QQᵀ).
  Exact once the sketch spans range(Σ_i A_i) (for PSD A_i: rank(Σ A_i) ≤ m/3).

:func:`moments` returns them all for several operators at once (each operator applied to the
same probes, optionally through one function that shares work between them), from which
:class:`Moments` derives traces, norms, effective ranks and alignments with delta-method errors.

Ratios (alignment, effective rank) are consistent but not unbiased; their standard error is
the delta-method error from the sample covariance of the stochastic terms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
    warn_not_finite,
)
from gdlens.operators.base import LinearOperator
from gdlens.operators.trace import orthonormal_rows

__all__ = ["frobenius_norm", "alignment", "effective_rank", "moments", "Moments"]

MOMENT_METHODS = ("hutch++", "hutchinson", "exact")


ApplyAll = Callable[[Tensor], Sequence[Tensor]]


def _moments(
    ops: Sequence[LinearOperator],
    method: str,
    num_matvecs: int,
    seed: int | torch.Generator,
    chunk_size: int,
    apply: ApplyAll | None = None,
) -> tuple[Tensor, Tensor | None, int]:
    """Estimate the vector μ = (t_1..t_p, f_11, f_12, ..., f_pp) (upper triangle, row-major).

    ``apply(V)`` returns ``[A_i V]`` for flat rows V (default: each operator in turn).
    Returns (μ, Σ, matvecs): Σ the covariance of μ's stochastic part (None if exact/absent).
    """
    first = ops[0]
    for op in ops[1:]:
        if (op.shape_in, op.shape_out) != (first.shape_in, first.shape_out):
            raise ValueError(
                f"operators must have one shape, got {first.shape_in}->{first.shape_out} and "
                f"{op.shape_in}->{op.shape_out}"
            )
    n = first.size_in
    square = first.is_square
    pairs = _pairs(len(ops))
    apply = apply or (lambda V: [apply_flat(op, V) for op in ops])

    def stats(V: Tensor) -> Tensor:
        """Per-row statistics (k, d): zᵀA_i z (square only) and ⟨A_i z, A_j z⟩."""
        AV = apply(V)
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
        Q = orthonormal_rows(sum(apply(S)))
        Z = complement_probes(g, Q, gen)
        both = stats(torch.cat([Q, Z]))  # the sketch's rows and the probes in one call
        captured, samples = both[: Q.shape[0]].sum(0), both[Q.shape[0] :]
        cov = _cov_of_mean(samples)
        if Q.shape[0] >= n:
            cov = torch.zeros_like(cov) if cov is not None else None
        return captured + samples.mean(0), cov, num_matvecs


def _pairs(p: int) -> list[tuple[int, int]]:
    """The (i, j), i ≤ j, of μ's Frobenius entries, in μ's order."""
    return [(i, j) for i in range(p) for j in range(i, p)]


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


@dataclass(frozen=True)
class Moments:
    """Traces ``t_i = tr A_i`` and Frobenius products ``f_ij = ⟨A_i, A_j⟩_F`` of several operators,
    estimated from one shared set of probes (:func:`moments`).

    Attributes:
        names: the operators' names, in order.
        mu: ``(t_1..t_p, f_11, f_12, ..., f_pp)`` (upper triangle, row-major).
        cov: covariance of mu's stochastic part (None for ``"exact"`` or too few probes).
        num_matvecs: matvecs spent on each operator.
        method: ``"hutch++"``, ``"hutchinson"`` or ``"exact"``.
    """

    names: tuple[str, ...]
    mu: Tensor
    cov: Tensor | None
    num_matvecs: int
    method: str

    def _t(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no operator named {name!r}; known: {', '.join(self.names)}")
        return self.names.index(name)

    def _f(self, a: str, b: str) -> int:
        i, j = sorted((self._t(a), self._t(b)))
        return len(self.names) + _pairs(len(self.names)).index((i, j))

    def _estimate(self, fn: Callable[[Tensor], Tensor], what: str) -> Estimate:
        exact = self.method == "exact"
        value = float(fn(self.mu))
        warn_not_finite(value, self.mu.dtype, what, bool(torch.isfinite(self.mu).all()))
        return Estimate(value, _delta(fn, self.mu, self.cov, exact), self.num_matvecs, self.method)

    def trace(self, name: str) -> Estimate:
        """``tr A``."""
        t = self._t(name)
        return self._estimate(lambda m: m[t], f"the trace of {name!r}")

    def frobenius_norm(self, name: str) -> Estimate:
        """``‖A‖_F = sqrt(f_AA)``; standard error ``se(f_AA) / (2‖A‖_F)``."""
        f = self._f(name, name)
        return self._estimate(lambda m: torch.sqrt(m[f].clamp_min(0)), f"the Frobenius norm of {name!r}")

    def effective_rank(self, name: str) -> Estimate:
        """Participation ratio ``t_A² / f_AA`` (square PSD A)."""
        t, f = self._t(name), self._f(name, name)
        return self._estimate(
            lambda m: m[t] ** 2 / m[f].clamp_min(torch.finfo(m.dtype).tiny), f"the effective rank of {name!r}"
        )

    def alignment(self, a: str, b: str) -> Estimate:
        """``f_AB / sqrt(f_AA f_BB)`` ∈ [−1, 1]."""
        ab, aa, bb = self._f(a, b), self._f(a, a), self._f(b, b)
        return self._estimate(
            lambda m: m[ab] / torch.sqrt((m[aa] * m[bb]).clamp_min(torch.finfo(m.dtype).tiny)),
            f"the alignment of {a!r} and {b!r}",
        )


def moments(
    ops: Mapping[str, LinearOperator],
    method: str = "hutch++",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
    chunk_size: int = 256,
    apply: ApplyAll | None = None,
) -> Moments:
    """Traces and Frobenius products of several operators of one shape from one set of probes:
    every operator is applied to the same ``num_matvecs`` vectors (module docstring), so one
    call gives the effective ranks of all of them and the alignment of every pair, at the cost
    of one estimate per operator.

    Args:
        ops: ``{name: operator}``.
        method: ``"hutch++"`` (square operators, default), ``"hutchinson"`` or ``"exact"``.
        num_matvecs: vectors each operator is applied to.
        seed: int or torch.Generator.
        apply: optional ``V (k, n) -> [A_i V (k, n_out)]`` in the order of ``ops`` (flat rows),
            to share work between operators (e.g. Pᵀ V between P Pᵀ and G = P K Pᵀ); by
            default each operator is applied in turn.
    """
    return _estimate(ops, method, num_matvecs, seed, chunk_size, apply, "moments")


def _estimate(
    ops: Mapping[str, LinearOperator],
    method: str,
    num_matvecs: int,
    seed: int | torch.Generator,
    chunk_size: int,
    apply: ApplyAll | None,
    what: str,
) -> Moments:
    """:func:`moments`, with errors worded for the public function ``what``."""
    if not ops:
        raise ValueError(f"{what} needs at least one operator")
    _validate(method, num_matvecs, next(iter(ops.values())).is_square, what)
    mu, cov, used = _moments(list(ops.values()), method, num_matvecs, seed, chunk_size, apply)
    return Moments(tuple(ops), mu, cov, used, method)


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
    return _estimate({"A": A}, method, num_matvecs, seed, chunk_size, None, "frobenius_norm").frobenius_norm("A")


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
    return _estimate({"A": A, "B": B}, method, num_matvecs, seed, chunk_size, None, "alignment").alignment("A", "B")


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
    return _estimate({"A": A}, method, num_matvecs, seed, chunk_size, None, "effective_rank").effective_rank("A")
