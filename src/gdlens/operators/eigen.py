"""Top eigenpairs and singular triplets of matrix-free operators.

The native solver (``method="lanczos"``) is a block Krylov (Lanczos) method with full
reorthogonalisation, thick restarts, soft locking and warm starts. It keeps an orthonormal basis
V (m rows) and orthonormal *pending* directions U (r rows, U ⟂ V) with the exact relation

    A Vᵀ = Vᵀ T + Uᵀ C,        T = V A Vᵀ (m × m),  C = U A Vᵀ (r × m),

so that a Ritz pair (θ, y) of T (``T y = θ y``, Ritz vector ``x = Vᵀ y``) has the residual
``A x − θ x = Uᵀ C y``, ``‖A x − θ x‖ = ‖C y‖``: residual norms cost no matvec and no pass
over V. Each iteration moves c ≤ ``block_size`` pending directions into V — all of them in plain
block Lanczos, else the c that carry most of the residuals ``C y`` of the wanted pairs that have
not converged yet (soft locking: on CPU a converged pair stops drawing matvecs, the block shrinks
to the number still open) — applies A to them in **one batched call**, and orthogonalises the
images against V and U (classical Gram–Schmidt twice; the first projection's coefficients are
known from C, so it only touches the rows they involve) to get the next pending directions. A
thick restart keeps the leading ``(max_basis + k)/2`` Ritz vectors X = Yᵀ V, for which the
relation holds with T = diag(θ) and C ← C Y, so it costs no matvec either.

**Block size.** On CPU a batched call costs about the sum of single calls once the operator is
large (K of a GRU at B=32, T=50, H=256, float32, one thread: 0.44, 0.64, 0.47, 0.52 training
steps per vector for blocks of 1, 4, 8, 16), so the fewest matvecs win and a small block is best:
the default is 1 for k = 1 and 2 otherwise (a doubled eigenvalue is found; pass ``block_size``
≥ m for an m-fold one). Smaller operators have a fixed cost per call (G at B=8, H=48: 6 ms for one
vector, 8 ms for four), which blocks of 2 also amortise. On accelerators, where a wider block is
nearly free, the default is ``max(2k, 8)`` with no shrinking. Measured on that GRU (docs/
operators.md): ``top_eigs(K, 5)`` 37–52 matvecs (was 102), ``top_eigs(G, 5)`` 42–47 (was 90).

**Warm start.** ``v0`` (e.g. the previous call's vectors) and one random vector form the first
block, applied in one call. If their Ritz pairs already meet the tolerance, that is all; if they
are far from it (a residual above 30·tol), the iteration continues from b sums of those Ritz
vectors as plain block Lanczos (no matvec: the images are known), which is never slower than a
cold start in our tests and several times faster when the operator moved little.

**Tolerance.** A pair is accepted when ``‖A x − θ x‖ ≤ tol · ‖A‖``, with ``‖A‖`` estimated by the
largest ``|θ|``. Then some eigenvalue λ lies within ``tol·‖A‖`` of θ (Weyl), and within
``(tol·‖A‖)² / gap`` when θ is separated by ``gap`` from the other eigenvalues (Kato–Temple); the
angle between x and its eigenvector is at most ``tol·‖A‖ / gap`` (Davis–Kahan). With the default
1e-4 in float32 the eigenvalues are thus accurate to about 1e-8·‖A‖²/gap, far below float32's
own resolution; ``info["value_errors"]`` reports ``min(r, r²/gap)`` with the gaps between Ritz
values (an estimate: an eigenvalue not yet found could be closer).

``method="scipy"`` runs ARPACK (:func:`scipy.sparse.linalg.eigsh`) on ``A.to_scipy()`` instead
(one matvec per call, CPU, float64 numpy).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from gdlens.operators._common import apply_flat, check_method, check_square, gaussian, make_generator
from gdlens.operators.base import ComposedOperator, LinearOperator

__all__ = ["top_eigs", "svds", "Eigs", "SVD"]

WHICH = ("largest", "smallest", "magnitude")
#: a warm start whose residuals exceed this many ``tol`` after its first block is collapsed to
#: ``block_size`` sums of its Ritz vectors (see the module docstring)
WARM_COLLAPSE = 30.0


class Eigs(NamedTuple):
    """Eigenvalues (k,) ordered by the ``which`` criterion (descending for "largest") and
    eigenvectors (k, *shape_in), orthonormal under the flattened inner product."""

    values: Tensor
    vectors: Tensor


class SVD(NamedTuple):
    """``A ≈ Σ_i S_i U_i V_iᵀ``: U (k, *shape_out), S (k,) descending, V (k, *shape_in)."""

    U: Tensor
    S: Tensor
    V: Tensor


def _default_tol(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-4


def _order(theta: Tensor, which: str) -> Tensor:
    key = {"largest": theta, "smallest": -theta, "magnitude": theta.abs()}[which]
    return torch.argsort(key, descending=True)


# ---------------------------------------------------------------------- orthogonalisation
def _project_out(Z: Tensor, basis: Tensor) -> Tensor:
    """``Z ← Z − (Z Bᵀ) B`` in place for orthonormal rows B; returns the coefficients ``Z Bᵀ``
    (before the update). One pass over B for each product."""
    coef = Z @ basis.T
    Z.addmm_(coef, basis, alpha=-1)
    return coef


def _range_rows(Z: Tensor, drop: float) -> tuple[Tensor, Tensor]:
    """An orthonormal basis Q (c', n) of the row space of Z (c, n) and the coefficients
    ``S (c', c)`` with ``Z = Sᵀ Q``, directions whose singular value is at most ``drop`` left
    out (rank revealing: QR of Zᵀ, then the SVD of the small triangle, ``Zᵀ = (Q Ur) Σ Vrᵀ``)."""
    Q, R = torch.linalg.qr(Z.T)
    Ur, sigma, Vrh = torch.linalg.svd(R.double())
    keep = sigma > drop
    rows = (Q @ Ur[:, keep].to(Z.dtype)).T.contiguous()
    return rows, sigma[keep, None] * Vrh[keep]


def _orthonormal_start(W: Tensor, V: Tensor, drop: float) -> Tensor:
    """Rows of W made orthonormal and orthogonal to the orthonormal rows of V (projected
    twice); directions below ``drop`` times W's largest row norm are dropped."""
    if W.shape[0] == 0:
        return W
    threshold = drop * float(W.norm(dim=1).max())
    W = W.clone()
    for _ in range(2):
        if V.shape[0]:
            _project_out(W, V)
        W, _ = _range_rows(W, threshold)
        threshold = drop
    return W


# ---------------------------------------------------------------------- the Krylov state
@dataclass
class _Krylov:
    """``A Vᵀ = Vᵀ T + Uᵀ C`` with V = ``buf[:m]`` and U = ``buf[m:m + r]`` (orthonormal rows,
    U ⟂ V); T and C in float64. ``drop``: relative size below which a new direction is
    numerical noise (A W already inside span(V, U))."""

    A: LinearOperator
    buf: Tensor
    T: Tensor  # (capacity, capacity); T[:m, :m] = V A Vᵀ
    C: Tensor  # (r, m)
    drop: float
    m: int = 0
    r: int = 0
    num_matvecs: int = 0
    num_calls: int = 0
    norm_estimate: float = 0.0

    @property
    def V(self) -> Tensor:  # noqa: N802
        return self.buf[: self.m]

    @property
    def U(self) -> Tensor:  # noqa: N802
        return self.buf[self.m : self.m + self.r]

    def set_pending(self, rows: Tensor) -> None:
        """Pending directions with no coupling yet (C = 0): a start block or fresh rows."""
        self.buf[self.m : self.m + rows.shape[0]] = rows
        self.r = rows.shape[0]
        self.C = self.T.new_zeros(self.r, self.m)

    def ritz(self, which: str) -> tuple[Tensor, Tensor, Tensor]:
        """Ritz values θ ordered by ``which``, their coefficient vectors Y (columns, m × m) and
        the residual norms ``‖A x_i − θ_i x_i‖ = ‖C y_i‖``."""
        Tm = self.T[: self.m, : self.m]
        theta, Y = torch.linalg.eigh((Tm + Tm.T) / 2)
        order = _order(theta, which)
        theta, Y = theta[order], Y[:, order]
        return theta, Y, (self.C @ Y).norm(dim=0)

    def rotate_pending(self, S: Tensor) -> None:
        """``U ← Sᵀ U``, ``C ← Sᵀ C`` for an r × r orthogonal S (the relation is kept)."""
        U = self.U
        U.copy_(S.T.to(U.dtype) @ U)
        self.C = S.T @ self.C

    def extend(self, c: int) -> None:
        """Move the first c pending directions W into V and apply A to them in one batched
        call. With ``A W = C_W V + (W-, U-parts) + Z``: T gains the rows ``W A Vᵀ = C_W`` and
        ``W A Wᵀ``, and the part Z of A W outside span(V, U) gives the new pending directions
        (``Z = Sᵀ Q``: C gains the rows S). The first projection uses the known C_W on the
        columns where it is nonzero (the latest block, in plain Lanczos); the second is a full
        reorthogonalisation against V and U that also corrects the coefficients."""
        m, r = self.m, self.r
        W = self.buf[m : m + c]
        Z = apply_flat(self.A, W).clone()  # an operator may return (a view of) its input
        self.num_matvecs += c
        self.num_calls += 1
        self.norm_estimate = max(self.norm_estimate, float(Z.norm(dim=1).max()))
        C_W, C_rest = self.C[:c], self.C[c:]
        touched = torch.nonzero(C_W.abs().sum(0)).flatten()
        if touched.numel():
            j = int(touched[0])
            Z.addmm_(C_W[:, j:].to(Z.dtype), self.buf[j:m], alpha=-1)
        first = _project_out(Z, self.buf[m : m + r]).double()
        second = _project_out(Z, self.buf[: m + r]).double()
        rows, S = _range_rows(Z, self.drop * self.norm_estimate)
        to_V, to_W = C_W + second[:, :m], first[:, :c] + second[:, m : m + c]
        to_rest = first[:, c:] + second[:, m + c :]
        self.T[m : m + c, :m], self.T[:m, m : m + c] = to_V, to_V.T
        self.T[m : m + c, m : m + c] = (to_W + to_W.T) / 2
        self.buf[m + r : m + r + rows.shape[0]] = rows
        C = self.T.new_zeros(r - c + rows.shape[0], m + c)
        C[: r - c, :m], C[: r - c, m:], C[r - c :, m:] = C_rest, to_rest.T, S
        self.m, self.r, self.C = m + c, r - c + rows.shape[0], C

    def restart(self, Y: Tensor, theta: Tensor, keep: int) -> None:
        """Thick restart on the first ``keep`` Ritz vectors ``X = Yᵀ V``: since
        ``A Xᵀ = Xᵀ diag(θ) + Uᵀ (C Y)``, T ← diag(θ) and C ← C Y (no matvecs)."""
        Yk = Y[:, :keep]
        X = Yk.T.to(self.buf.dtype) @ self.V
        pending = self.U.clone()
        self.buf[:keep], self.buf[keep : keep + self.r] = X, pending
        self.T.zero_()
        self.T[:keep, :keep] = torch.diag(theta[:keep])
        self.C, self.m = self.C @ Yk, keep

    def collapse(self, Z: Tensor) -> None:
        """Restart from the block ``S = Zᵀ V`` (Z: m × c, orthonormal columns) without a
        matvec: ``A Sᵀ = Vᵀ T Z + Uᵀ C Z``, so V ← S, T ← Zᵀ T Z, and the new pending directions
        span the residual block ``R = (T Z − Z (Zᵀ T Z))ᵀ V + (C Z)ᵀ U`` (``R = Cᵀ Q``)."""
        Tm = self.T[: self.m, : self.m]
        small = Z.T @ Tm @ Z
        S = Z.T.to(self.buf.dtype) @ self.V
        dtype = self.buf.dtype
        R = (Tm @ Z - Z @ small).T.to(dtype) @ self.V + (self.C @ Z).T.to(dtype) @ self.U
        _project_out(R, S)
        rows, coupling = _range_rows(R, self.drop * self.norm_estimate)
        c = S.shape[0]
        self.buf[:c], self.buf[c : c + rows.shape[0]] = S, rows
        self.T.zero_()
        self.T[:c, :c] = (small + small.T) / 2
        self.m, self.r, self.C = c, rows.shape[0], coupling


def _choose(state: _Krylov, Y: Tensor, unconverged: Tensor, c: int) -> None:
    """Rotate the pending directions so that the first c carry most of the residuals
    ``C y_i`` of the unconverged wanted Ritz pairs (their leading left singular vectors)."""
    if c >= state.r or unconverged.numel() == 0:
        return
    S, _, _ = torch.linalg.svd(state.C @ Y[:, unconverged], full_matrices=True)
    state.rotate_pending(S)


# ---------------------------------------------------------------------- public API
def top_eigs(
    A: LinearOperator,
    k: int,
    *,
    which: str = "largest",
    method: str = "lanczos",
    tol: float | None = None,
    block_size: int | None = None,
    max_basis: int | None = None,
    max_matvecs: int | None = None,
    v0: Tensor | None = None,
    v0_noise: float = 0.0,
    seed: int | torch.Generator = 0,
    return_info: bool = False,
) -> Eigs | tuple[Eigs, dict]:
    """The k extreme eigenpairs of a symmetric operator A (``A = Aᵀ``; not checked).

    Args:
        A: square, self-adjoint operator (K, G, a Hessian, ...).
        k: number of eigenpairs, 1 ≤ k ≤ n.
        which: ``"largest"`` (algebraic, default), ``"smallest"`` or ``"magnitude"``.
        method: ``"lanczos"`` (native batched block Krylov) or ``"scipy"`` (ARPACK eigsh).
        tol: relative residual: a pair is accepted when ``‖A x − θ x‖ ≤ tol·‖A‖`` (default 1e-9
            in float64, 1e-4 in float32); then ``|θ − λ| ≤ tol·‖A‖`` and ``≲ (tol·‖A‖)²/gap``
            for an eigenvalue λ (module docstring).
        block_size: most vectors per batched call of A (default: on CPU 1 for k = 1, else 2;
            on other devices ``max(2k, 8)``). Use at least m for an eigenvalue of multiplicity m.
        max_basis: largest subspace before a thick restart (default ``max(8·block, 4k, 24)``).
        max_matvecs: budget; when spent, the current Ritz pairs are returned with a warning.
        v0: a warm start ``(m, *shape_in)`` (or one vector ``shape_in``), e.g. the vectors of
            a previous call on a nearby operator: with one random vector it forms the first
            block (module docstring). A v0 that spans an invariant subspace of *other*
            eigenvalues exactly would be accepted as it is; see ``v0_noise``.
        v0_noise: each row of v0 becomes ``v/‖v‖ + v0_noise · g/‖g‖`` (g standard normal).
            With 1.0 (equal parts) the start cannot converge onto v0 before the random part
            is resolved, so a v0 that is now the eigenvector of a *lower* eigenvalue (the top
            two have crossed since) still leads to the top one — at the price of most of the
            warm start's saving. Default 0.
        seed: the random start (and the noise added to v0).
        return_info: also return a dict: ``num_matvecs`` (vectors A was applied to),
            ``num_calls`` (batched calls of A), ``residuals`` (``‖A x − θ x‖/‖A‖`` per pair),
            ``value_errors`` (estimated bound on ``|θ − λ|`` per pair), ``converged``,
            ``iterations``, ``block_size``, ``max_basis``.

    Returns:
        :class:`Eigs` ``(values (k,), vectors (k, *shape_in))``; values sorted by ``which``
        (descending for ``"largest"``).

    When A carries a ``gram_factor`` F (A = F Fᵀ) whose input space is smaller, the
    eigenproblem is solved for FᵀF and the vectors are mapped back through F (exact; the
    info dict then has ``factored=True`` and ``factor_matvecs``, the number of vectors F or Fᵀ
    was applied to: k to map back, and m for a warm start, which goes in as ``Fᵀ v0`` — the
    eigenvectors of FᵀF are ``Fᵀ u / √λ`` for those u of A). Zero eigenvalues of A beyond F's
    rank have no such vector: ask for k ≤ rank(F).
    """
    check_square(A, "top_eigs")
    check_method(method, ("lanczos", "scipy"), "top_eigs")
    check_method(which, WHICH, "which")
    n = A.size_in
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer with 1 <= k <= n = {n} (the operator's input size), got {k!r}")
    tol = _default_tol(A.dtype) if tol is None else tol
    start = _check_v0(A, v0)

    def solve(op: LinearOperator, rows: Tensor | None) -> tuple[Eigs, dict]:
        if method == "scipy":
            return _eigsh(op, k, which, tol, rows)
        return _block_krylov(op, k, which, tol, block_size, max_basis, max_matvecs, seed, rows, v0_noise)

    F = A.gram_factor
    if F is not None and F.size_in < n and which != "smallest" and k <= F.size_in:
        result, info = _factored(A, F, start, solve)
    else:
        result, info = solve(A, start)
    return (result, info) if return_info else result


def _check_v0(A: LinearOperator, v0: Tensor | None) -> Tensor | None:
    """v0 as flat rows (m, n), detached, in A's dtype and device (None without a warm start)."""
    if v0 is None:
        return None
    if not isinstance(v0, Tensor):
        raise TypeError(f"v0 must be a torch.Tensor, got {type(v0).__name__}")
    if tuple(v0.shape) == A.shape_in:
        v0 = v0.unsqueeze(0)
    if tuple(v0.shape[1:]) != A.shape_in:
        raise ValueError(f"v0 must have shape (m, *{A.shape_in}) or {A.shape_in}, got {tuple(v0.shape)}")
    return v0.detach().reshape(v0.shape[0], -1).to(dtype=A.dtype, device=A.device)


Solver = Callable[[LinearOperator, Tensor | None], tuple[Eigs, dict]]


def _factored(A: LinearOperator, F: LinearOperator, start: Tensor | None, solve: Solver) -> tuple[Eigs, dict]:
    """Solve for FᵀF (A = F Fᵀ, same nonzero spectrum, fewer dimensions) and map back:
    ``u = F v / ‖F v‖``; a warm start goes in as ``Fᵀ v0``."""
    with torch.no_grad():
        small_start = None if start is None or not start.shape[0] else apply_flat(F.T, start)
    (values, small), info = solve(ComposedOperator([F.T, F], is_symmetric=True), small_start)
    q = small.shape[0]
    with torch.no_grad():
        lifted = apply_flat(F, small.reshape(q, -1))
    norms = lifted.norm(dim=1, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)
    mapped = 0 if small_start is None else small_start.shape[0]
    info = dict(info, factored=True, factor_matvecs=mapped + q)
    return Eigs(values, (lifted / norms).reshape(q, *A.shape_in)), info


@dataclass(frozen=True)
class _Plan:
    """Block size b (most vectors per batched call after the start), largest basis, and
    whether blocks shrink to the number of unconverged pairs (where vectors, not calls, cost)."""

    block: int
    max_basis: int
    lock: bool


def _plan(k: int, n: int, device: torch.device, block_size: int | None, max_basis: int | None) -> _Plan:
    """Defaults (module docstring): on CPU, where a batched call of a large operator costs about
    the sum of single ones, blocks of 1 (k = 1) or 2 that shrink as pairs converge; elsewhere,
    where a wider batch is nearly free, full blocks of ``max(2k, 8)``. Basis
    ``max(8·b, 4k, 24)``."""
    cpu = device.type == "cpu"
    b = min(n, block_size or ((1 if k == 1 else 2) if cpu else max(2 * k, 8)))
    cap = min(n, max_basis or max(8 * b, 4 * k, 24))
    if cap < max(k, b) + b and cap < n:
        raise ValueError(f"max_basis must be at least max(k, block_size) + block_size = {max(k, b) + b}, got {cap}")
    return _Plan(b, cap, cpu)


def _block_krylov(
    A: LinearOperator,
    k: int,
    which: str,
    tol: float,
    block_size: int | None,
    max_basis: int | None,
    max_matvecs: int | None,
    seed: int | torch.Generator,
    start: Tensor | None = None,
    noise: float = 0.0,
) -> tuple[Eigs, dict]:
    n = A.size_in
    plan = _plan(k, n, A.device, block_size, max_basis)
    b, cap = plan.block, plan.max_basis
    budget = max_matvecs or max(50 * n, 1000)
    gen = make_generator(seed, A.device)
    eps = torch.finfo(A.dtype).eps
    with torch.no_grad():
        first = _start_block(start, noise, b, cap, gen, A, eps)
        state = _Krylov(A, torch.empty(cap + max(b, first.shape[0]) + b, n, dtype=A.dtype, device=A.device),
                        torch.zeros(cap + b, cap + b, dtype=torch.float64, device=A.device),
                        torch.zeros(0, 0, dtype=torch.float64, device=A.device), drop=10 * eps)
        state.set_pending(first)
        state.extend(state.r)
        may_collapse = start is not None and first.shape[0] > b
        iterations = 1
        while True:
            theta, Y, res = state.ritz(which)
            scale = max(float(theta.abs().max()), torch.finfo(A.dtype).tiny)
            done = res[:k] <= tol * scale
            converged = (state.m >= k and bool(done.all())) or state.m >= n
            if converged or state.num_matvecs >= budget:
                break
            if may_collapse:  # a warm start far from converged: block Lanczos from b sums of it
                may_collapse = False
                if float(res[:k].max()) > WARM_COLLAPSE * tol * scale:
                    state.collapse(_group_sums(Y[:, : min(k, state.m)], b))
                    continue
            if state.r == 0 and not _refill(state, b, gen, eps):
                break
            _advance(state, plan, k, theta, Y, torch.nonzero(~done).flatten(), budget)
            iterations += 1
        if not converged:
            warnings.warn(
                f"top_eigs stopped after {state.num_matvecs} matvecs with residuals up to "
                f"{float(res[:k].max() / scale):.2e} (tol {tol:.1e})",
                RuntimeWarning,
                stacklevel=3,
            )
        q = min(k, state.m)
        vectors = (Y[:, :q].T.to(A.dtype) @ state.V).reshape(q, *A.shape_in)
    info = {
        "num_matvecs": state.num_matvecs,
        "num_calls": state.num_calls,
        "residuals": (res[:q] / scale).to(A.dtype),
        "value_errors": _value_errors(theta, res, q).to(A.dtype),
        "converged": converged,
        "iterations": iterations,
        "block_size": b,
        "max_basis": cap,
    }
    return Eigs(theta[:q].to(A.dtype), vectors), info


def _advance(state: _Krylov, plan: _Plan, k: int, theta: Tensor, Y: Tensor, unconverged: Tensor, budget: int) -> None:
    """One iteration: c pending directions into the basis (at most the block; with locking at
    most the number of unconverged wanted pairs; within the budget), after a thick restart on
    the leading ``(max_basis + k)/2`` Ritz vectors when the basis would overflow."""
    c = min(plan.block, state.r, state.A.size_in - state.m, budget - state.num_matvecs)
    if plan.lock:
        c = min(c, max(1, unconverged.numel()))
    if state.m + c > plan.max_basis:
        state.restart(Y, theta, max(k, min(plan.max_basis - c, (plan.max_basis + k) // 2)))
        Y = torch.eye(state.m, dtype=torch.float64, device=Y.device)
    _choose(state, Y, unconverged, c)
    state.extend(c)


def _value_errors(theta: Tensor, res: Tensor, q: int) -> Tensor:
    """``min(r_i, r_i² / gap_i)`` for the first q Ritz pairs, gap_i the distance from θ_i to the
    nearest other Ritz value (Weyl and Kato–Temple bounds, with the Ritz gaps standing in for
    the unknown true ones)."""
    if theta.numel() < 2:
        return res[:q].clone()
    dist = (theta[:q, None] - theta[None, :]).abs()
    dist[torch.arange(q), torch.arange(q)] = float("inf")
    gap = dist.min(dim=1).values
    return torch.minimum(res[:q], res[:q] ** 2 / gap.clamp_min(torch.finfo(gap.dtype).tiny))


def _group_sums(Y: Tensor, b: int) -> Tensor:
    """b orthonormal combinations of the columns of Y (orthonormal): column j sums the
    columns i ≡ j (mod b), scaled to unit norm."""
    groups = min(b, Y.shape[1])
    Z = torch.stack([Y[:, j::groups].sum(1) for j in range(groups)], dim=1)
    return Z / Z.norm(dim=0, keepdim=True)


def _refill(state: _Krylov, b: int, gen: torch.Generator, eps: float) -> bool:
    """An invariant subspace was reached (no pending direction): continue from fresh random
    directions orthogonal to V. False when V already spans everything."""
    A = state.A
    fresh = _orthonormal_start(gaussian(b, A.size_in, gen, A.dtype, A.device), state.V, 10 * eps)
    state.set_pending(fresh)
    return fresh.shape[0] > 0


def _start_block(
    start: Tensor | None, noise: float, b: int, cap: int, gen: torch.Generator, A: LinearOperator, eps: float
) -> Tensor:
    """The first block: the warm start's rows (each ``v/‖v‖ + noise·g/‖g‖``) and random rows up
    to b (at least one), made orthonormal (at most ``cap`` rows)."""
    n, tiny = A.size_in, torch.finfo(A.dtype).tiny
    parts = []
    if start is not None and start.shape[0]:
        rows = start / start.norm(dim=1, keepdim=True).clamp_min(tiny)
        if noise:
            g = gaussian(rows.shape[0], n, gen, A.dtype, A.device)
            rows = rows + noise * g / g.norm(dim=1, keepdim=True).clamp_min(tiny)
        parts.append(rows)
    extra = b if start is None else max(1, b - start.shape[0])
    parts.append(gaussian(extra, n, gen, A.dtype, A.device))
    none = torch.zeros(0, n, dtype=A.dtype, device=A.device)
    return _orthonormal_start(torch.cat(parts)[: min(n, cap)], none, 10 * eps)


def _eigsh(A: LinearOperator, k: int, which: str, tol: float, start: Tensor | None = None) -> tuple[Eigs, dict]:
    """ARPACK, started from the sum of the warm start's rows when there is one."""
    from scipy.sparse.linalg import eigsh

    n = A.size_in
    if k >= n:
        M = A.dense().detach().cpu().numpy()
        vals, vecs = np.linalg.eigh((M + M.T) / 2)
    else:
        v0 = None if start is None else start.sum(0).detach().cpu().double().numpy()
        mode = {"largest": "LA", "smallest": "SA", "magnitude": "LM"}[which]
        vals, vecs = eigsh(A.to_scipy(), k=k, which=mode, tol=tol, v0=v0)
    theta = torch.as_tensor(vals, dtype=A.dtype, device=A.device)
    vecs_t = torch.as_tensor(vecs, dtype=A.dtype, device=A.device).T
    order = _order(theta, which)[:k]
    return Eigs(theta[order], vecs_t[order].reshape(k, *A.shape_in)), {"num_matvecs": None, "converged": True}


def svds(
    A: LinearOperator,
    k: int,
    *,
    method: str = "lanczos",
    tol: float | None = None,
    seed: int | torch.Generator = 0,
    **kwargs,
) -> SVD:
    """The k largest singular triplets ``A V_i = S_i U_i``, through the eigenpairs of the Gram
    operator AᵀA (or AAᵀ when the output is smaller): ``S_i = sqrt(λ_i)``, ``U_i = A V_i / S_i``.

    Squaring halves the relative accuracy of tiny singular values; the leading ones are
    accurate to about ``tol``. Zero singular values get U_i = 0. Returns :class:`SVD`
    ``(U (k, *shape_out), S (k,), V (k, *shape_in))``.
    """
    check_method(method, ("lanczos", "scipy"), "svds")
    small = min(A.size_in, A.size_out)
    if not isinstance(k, int) or not 1 <= k <= small:
        raise ValueError(f"k must be an integer with 1 <= k <= min(n_in, n_out) = {small}, got {k!r}")
    flip = A.size_out < A.size_in
    B = A.T if flip else A
    if kwargs.get("return_info"):
        raise ValueError("svds does not take return_info; call top_eigs(A.gram(), k, return_info=True) for the details")
    vals, vecs = top_eigs(B.gram(), k, method=method, tol=tol, seed=seed, **kwargs)
    S = vals.clamp_min(0).sqrt()
    Vf = vecs.reshape(k, -1)
    with torch.no_grad():
        BV = apply_flat(B, Vf)
    safe = torch.where(S > 0, S, torch.ones_like(S))
    Uf = torch.where((S > 0)[:, None], BV / safe[:, None], torch.zeros_like(BV))
    if flip:
        Uf, Vf = Vf, Uf
    return SVD(Uf.reshape(k, *A.shape_out), S, Vf.reshape(k, *A.shape_in))
