"""Top eigenpairs and singular triplets of matrix-free operators.

The native solver is a block Krylov (block Lanczos) method with full reorthogonalisation and
thick restarts, written so that each iteration applies the operator to a whole block of
vectors in one batched call: the subspace V is grown by the orthogonalised residuals
``A x − θ x`` of the current Ritz vectors (in exact arithmetic, the next block Krylov space),
and the Rayleigh–Ritz problem ``Vᵀ A V`` is solved densely. Since ``A V`` is kept, residual
norms are exact and cost no extra matvecs. A Ritz pair is accepted when
``‖A x − θ x‖ ≤ tol · max|θ|``; its eigenvalue error is then at most of order
``(tol·max|θ|)² / gap``.

``method="scipy"`` runs ARPACK (:func:`scipy.sparse.linalg.eigsh`) on ``A.to_scipy()`` instead
(one matvec per call, CPU, float64 numpy).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from gdlens.operators._common import apply_flat, check_method, check_square, gaussian, make_generator
from gdlens.operators.base import ComposedOperator, LinearOperator

__all__ = ["top_eigs", "svds", "Eigs", "SVD"]

WHICH = ("largest", "smallest", "magnitude")


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


def _orthonormalise_against(W: Tensor, V: Tensor, tol: float) -> Tensor:
    """Rows of W made orthogonal to the (orthonormal) rows of V and to each other; rows that
    vanish (relative norm < tol) are dropped.

    Block classical Gram–Schmidt, twice ("twice is enough"), with the QR of the block in
    between: project, orthonormalise the block, project again and renormalise. V, the
    largest array, is streamed through four times (two products per pass).
    """
    norms0 = W.norm(dim=1).clamp_min(torch.finfo(W.dtype).tiny)
    if V.shape[0]:
        W = W - (W @ V.T) @ V
    keep = W.norm(dim=1) > tol * norms0
    W = W[keep]
    if W.shape[0] == 0:
        return W
    Q, R = torch.linalg.qr(W.T)
    Q = Q.T[torch.diagonal(R).abs() > tol * W.norm(dim=1).max()]
    if V.shape[0] and Q.shape[0]:
        Q = Q - (Q @ V.T) @ V
        norms = Q.norm(dim=1)
        Q = Q[norms > 0.5] / norms[norms > 0.5, None]  # a row that was mostly in span(V) is dropped
    return Q


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
    seed: int | torch.Generator = 0,
    return_info: bool = False,
) -> Eigs | tuple[Eigs, dict]:
    """The k extreme eigenpairs of a symmetric operator A (``A = Aᵀ``; not checked).

    Args:
        A: square, self-adjoint operator (K, G, a Hessian, ...).
        k: number of eigenpairs, 1 ≤ k ≤ n.
        which: ``"largest"`` (algebraic, default), ``"smallest"`` or ``"magnitude"``.
        method: ``"lanczos"`` (native batched block Krylov) or ``"scipy"`` (ARPACK eigsh).
        tol: relative residual tolerance (default 1e-9 in float64, 1e-4 in float32).
        block_size: vectors per batched matvec (default k + 1 on CPU, ``max(2k, 8)`` on other
            devices; at most n).
        max_basis: largest subspace kept before a thick restart (default ``max(8·block, 3k)``).
        max_matvecs: budget; when spent, the current Ritz pairs are returned with a warning.
        seed: start block.
        return_info: also return ``{"num_matvecs", "residuals", "converged", "iterations"}``.

    Returns:
        :class:`Eigs` ``(values (k,), vectors (k, *shape_in))``; values sorted by ``which``
        (descending for ``"largest"``).

    When A carries a ``gram_factor`` F (A = F Fᵀ) whose input space is smaller, the
    eigenproblem is solved for FᵀF and the vectors are mapped back through F (exact; the
    info dict then has ``factored=True``). Zero eigenvalues of A beyond F's rank have no
    such vector: ask for k ≤ rank(F).
    """
    check_square(A, "top_eigs")
    check_method(method, ("lanczos", "scipy"), "top_eigs")
    check_method(which, WHICH, "which")
    n = A.size_in
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer with 1 <= k <= n = {n} (the operator's input size), got {k!r}")
    tol = _default_tol(A.dtype) if tol is None else tol
    F = A.gram_factor
    if F is not None and F.size_in < n and which != "smallest" and k <= F.size_in:
        # A = F Fᵀ: same nonzero spectrum as FᵀF, in fewer dimensions (see LinearOperator).
        (values, small), info = top_eigs(
            ComposedOperator([F.T, F], is_symmetric=True), k, which=which, method=method, tol=tol,
            block_size=block_size, max_basis=max_basis, max_matvecs=max_matvecs, seed=seed, return_info=True,
        )
        with torch.no_grad():
            lifted = apply_flat(F, small.reshape(k, -1))
        norms = lifted.norm(dim=1, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)
        info = dict(info, factored=True)
        result = Eigs(values, (lifted / norms).reshape(k, *A.shape_in))
        return (result, info) if return_info else result
    if method == "scipy":
        result, info = _eigsh(A, k, which, tol)
    else:
        result, info = _block_krylov(A, k, which, tol, block_size, max_basis, max_matvecs, seed)
    return (result, info) if return_info else result


def _block_krylov(
    A: LinearOperator,
    k: int,
    which: str,
    tol: float,
    block_size: int | None,
    max_basis: int | None,
    max_matvecs: int | None,
    seed: int | torch.Generator,
) -> tuple[Eigs, dict]:
    n = A.size_in
    # On CPU a block beyond k + 1 buys little batching and costs matvecs (measured: K of a GRU
    # at B=32, T=50, H=256 needs 96 matvecs with blocks of 6 and 140 with blocks of 10); on
    # accelerators wider blocks are nearly free per vector.
    b = min(n, block_size or (k + 1 if A.device.type == "cpu" else max(2 * k, 8)))
    max_basis = min(n, max_basis or max(8 * b, 3 * k))
    if max_basis < max(k, b) + b and max_basis < n:
        raise ValueError(f"max_basis must be at least max(k, block_size) + block_size = {max(k, b) + b}, got {max_basis}")
    max_matvecs = max_matvecs or max(50 * n, 1000)
    gen = make_generator(seed, A.device)
    ortho_tol = 1e3 * torch.finfo(A.dtype).eps
    p = min(n, max(k, b))  # Ritz vectors formed each iteration: the wanted k and the next block
    with torch.no_grad():
        V = torch.empty(max_basis, n, dtype=A.dtype, device=A.device)  # orthonormal basis rows
        AV = torch.empty_like(V)  # A applied to them
        T = torch.zeros(max_basis, max_basis, dtype=A.dtype, device=A.device)  # V A Vᵀ
        m = 0

        def extend(W: Tensor) -> None:
            nonlocal m
            c = W.shape[0]
            V[m : m + c], AV[m : m + c] = W, apply_flat(A, W)
            T[m : m + c, : m + c] = W @ AV[: m + c].T
            T[:m, m : m + c] = T[m : m + c, :m].T
            m += c

        extend(_orthonormalise_against(gaussian(b, n, gen, A.dtype, A.device), V[:0], ortho_tol))
        used, iterations = m, 0
        while True:
            iterations += 1
            Tm = T[:m, :m]
            theta, Y = torch.linalg.eigh((Tm + Tm.T) / 2)
            order = _order(theta, which)
            theta, Y = theta[order], Y[:, order]
            q = min(p, m)
            X, AX = Y[:, :q].T @ V[:m], Y[:, :q].T @ AV[:m]
            R = AX - theta[:q, None] * X
            res = R.norm(dim=1)
            scale = theta.abs().max().clamp_min(torch.finfo(A.dtype).tiny)
            converged = bool((res[:k] <= tol * scale).all()) or m >= n
            if converged or used >= max_matvecs:
                if not converged:
                    warnings.warn(
                        f"top_eigs stopped after {used} matvecs with residuals up to "
                        f"{float(res[:k].max() / scale):.2e} (tol {tol:.1e})",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                break
            if m + b > max_basis:  # thick restart on the leading Ritz vectors (A V known: no matvecs)
                keep = max(q, max_basis - 2 * b)
                Yk = Y[:, :keep]
                V[:keep], AV[:keep] = Yk.T @ V[:m], Yk.T @ AV[:m]
                T[:keep, :keep] = torch.diag(theta[:keep])
                m = keep
            W = _orthonormalise_against(R[: min(b, n - m)], V[:m], ortho_tol)
            if W.shape[0] == 0:  # residuals already inside the subspace: add fresh directions
                W = _orthonormalise_against(gaussian(min(b, n - m), n, gen, A.dtype, A.device), V[:m], ortho_tol)
                if W.shape[0] == 0:
                    break
            extend(W)
            used += W.shape[0]
    values = theta[:k]
    vectors = X[:k].reshape(k, *A.shape_in)
    info = {"num_matvecs": used, "residuals": res[:k] / scale, "converged": converged, "iterations": iterations}
    return Eigs(values, vectors), info


def _eigsh(A: LinearOperator, k: int, which: str, tol: float) -> tuple[Eigs, dict]:
    from scipy.sparse.linalg import eigsh

    n = A.size_in
    if k >= n:
        M = A.dense().detach().cpu().numpy()
        vals, vecs = np.linalg.eigh((M + M.T) / 2)
    else:
        vals, vecs = eigsh(A.to_scipy(), k=k, which={"largest": "LA", "smallest": "SA", "magnitude": "LM"}[which], tol=tol)
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
