"""Geometry of representations and weights: dimensionality, principal components, norms.

Activations are ``(n, p)`` matrices (rows = inputs; trailing axes of ``(n, ...)`` tensors are
flattened). Weights of a deep linear map are listed input-to-output, ``[W_1, ..., W_L]`` with
``W_ℓ`` of shape ``(d_ℓ, d_{ℓ−1})`` (the ``nn.Linear.weight`` convention), so that the end-to-end
map is ``W = W_L ⋯ W_1``.

- Participation ratio of the activation covariance, an effective dimensionality (Gao et al.
  2017, "A theory of multineuronal dimensionality, dynamics and measurement", bioRxiv; used
  for deep networks by Recanatesi et al., arXiv 1906.00443).
- Schatten norms of the end-to-end map of a deep linear network, which gradient descent drives
  towards low rank (Arora, Cohen, Hu, Luo, "Implicit regularization in deep matrix
  factorization", arXiv 1905.13655, who compare that bias with nuclear-norm minimisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gdlens.probes._utils import as_rows, as_tensor, leaves

__all__ = [
    "participation_ratio",
    "pca",
    "PCA",
    "end_to_end",
    "schatten_norm",
    "nuclear_norm",
    "parameter_norms",
]


def _centred(acts: Any, name: str = "acts") -> Tensor:
    X = as_rows(acts, name).detach()
    if not X.dtype.is_floating_point:
        X = X.to(torch.float64)
    if X.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows (inputs) to have a covariance, got shape {tuple(X.shape)}")
    return X - X.mean(0, keepdim=True)


def participation_ratio(acts: Tensor) -> float:
    """Participation ratio of activations ``(n, p)``: an effective number of dimensions,

        PR = (Σ_i λ_i)² / Σ_i λ_i² = (tr C)² / ‖C‖_F²,   C = X_cᵀ X_c / (n − 1),

    λ_i the eigenvalues of the covariance C of the column-centred activations X_c. PR ∈ [1, rank C]:
    r for data spread with equal variance over r orthogonal directions, close to 1 when one
    direction dominates. Computed from the smaller of the two Gram matrices ``X_cᵀX_c`` and
    ``X_c X_cᵀ`` (same non-zero spectrum), without an eigendecomposition. ``nan`` for constant data.
    """
    X = _centred(acts)
    n, p = X.shape
    G = X @ X.T if n <= p else X.T @ X
    tr = torch.diagonal(G).sum()
    f2 = (G * G).sum()
    return float(tr**2 / f2) if bool(f2 > 0) else math.nan


class PCA(NamedTuple):
    """Principal components of activations.

    Attributes:
        components: ``(k, p)`` orthonormal principal axes (rows), by decreasing variance; each
            row's largest-magnitude entry is positive (a fixed sign).
        explained_variance: ``(k,)`` variances along them (eigenvalues of the covariance with
            the 1/(n − 1) normalisation).
        explained_variance_ratio: ``(k,)`` their fractions of the total variance.
        mean: ``(p,)`` the column means removed before the decomposition.
    """

    components: Tensor
    explained_variance: Tensor
    explained_variance_ratio: Tensor
    mean: Tensor


def pca(acts: Tensor, k: int | None = None) -> PCA:
    """The top-k principal components of activations ``(n, p)``.

    With the thin SVD of the column-centred data ``X_c = U S Vᵀ``: components are the rows of Vᵀ,
    ``explained_variance = S² / (n − 1)`` and ``explained_variance_ratio = S² / Σ S²``.
    ``k=None`` keeps all ``min(n, p)``.
    """
    X0 = as_rows(acts, "acts").detach()
    if not X0.dtype.is_floating_point:
        X0 = X0.to(torch.float64)
    X = _centred(X0)
    n, p = X.shape
    r = min(n, p)
    if k is None:
        k = r
    if not isinstance(k, int) or not 1 <= k <= r:
        raise ValueError(
            f"k must be an integer with 1 <= k <= min(n, p) = {r} for acts of shape {tuple(X.shape)}, got "
            f"{k!r}"
        )
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)
    comps = Vh[:k]
    sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * torch.where(sign == 0, torch.ones_like(sign), sign)
    var = S**2 / (n - 1)
    total = var.sum()
    ratio = var[:k] / total if bool(total > 0) else torch.full_like(var[:k], math.nan)
    return PCA(comps, var[:k], ratio, X0.mean(0))


def end_to_end(weights: Tensor | Sequence[Tensor]) -> Tensor:
    """The end-to-end matrix ``W_L ⋯ W_1`` of weights listed input-to-output (``W_ℓ`` of shape
    ``(d_ℓ, d_{ℓ−1})``); one matrix passes through. Raises ValueError naming the layers whose
    shapes do not chain."""
    if isinstance(weights, Tensor):
        weights = [weights]
    weights = [as_tensor(w, f"weights[{i}]") for i, w in enumerate(weights)]
    if not weights:
        raise ValueError("weights is empty")
    for i, w in enumerate(weights):
        if w.dim() != 2:
            raise ValueError(f"weights[{i}] must be a matrix (d_out, d_in), got shape {tuple(w.shape)}")
    for i in range(1, len(weights)):
        if weights[i].shape[1] != weights[i - 1].shape[0]:
            raise ValueError(
                f"weights do not chain: weights[{i}] has shape {tuple(weights[i].shape)} but weights[{i - 1}] has "
                f"shape {tuple(weights[i - 1].shape)} (need weights[{i}].shape[1] == weights[{i - 1}].shape[0]; "
                "list weights input-to-output)"
            )
    M = weights[0].detach()
    for w in weights[1:]:
        M = w.detach().to(M.dtype) @ M
    return M


def schatten_norm(weights: Tensor | Sequence[Tensor], p: float = 2.0) -> float:
    """Schatten p-norm of the end-to-end map ``W = W_L ⋯ W_1``:

        ‖W‖_{S_p} = (Σ_i σ_i(W)^p)^{1/p},

    σ_i the singular values. p = 1 is the nuclear norm, p = 2 the Frobenius norm, p = ∞
    (``math.inf``) the spectral norm; 0 < p < 1 gives the Schatten quasi-norm.
    """
    if not p > 0:
        raise ValueError(f"p must be positive (or math.inf), got {p}")
    M = end_to_end(weights)
    if not M.dtype.is_floating_point:
        M = M.to(torch.float64)
    s = torch.linalg.svdvals(M)
    if math.isinf(p):
        return float(s.max()) if s.numel() else 0.0
    return float((s**p).sum() ** (1.0 / p))


def nuclear_norm(weights: Tensor | Sequence[Tensor]) -> float:
    """Nuclear norm ``‖W_L ⋯ W_1‖_* = Σ_i σ_i`` (:func:`schatten_norm` with p = 1)."""
    return schatten_norm(weights, 1.0)


def parameter_norms(
    named_params: Any,
    groups: Mapping[str, Sequence[str]] | Callable[[str], str | None] | None = None,
) -> dict[str, float]:
    """Euclidean norms of parameters, per tensor or per group, and of all of them.

    ``‖θ_g‖ = sqrt(Σ_{p ∈ g} Σ_j p_j²)``. Returns a dict of floats: one entry per parameter
    (``groups=None``) or per group, plus ``"total"``, the norm of all parameters (so the squares
    of the per-parameter entries sum to ``total²``; with groups that partition the parameters, so
    do the groups').

    Args:
        named_params: a dict name -> tensor or ``model.named_parameters()``.
        groups: a dict group -> parameter names, or a function name -> group name (None leaves
            the parameter out of every group; it still counts in ``"total"``).
    """
    names, tensors = leaves(named_params, "named_params")
    sq = {n: float((t.detach().to(torch.float64) ** 2).sum()) for n, t in zip(names, tensors)}
    out: dict[str, float]
    if groups is None:
        out = {n: math.sqrt(v) for n, v in sq.items()}
    elif callable(groups):
        acc: dict[str, float] = {}
        for n in names:
            g = groups(n)
            if g is not None:
                acc[str(g)] = acc.get(str(g), 0.0) + sq[n]
        out = {g: math.sqrt(v) for g, v in acc.items()}
    else:
        out = {}
        for g, members in groups.items():
            missing = [m for m in members if m not in sq]
            if missing:
                raise ValueError(f"group {g!r} names unknown parameters {missing}; known: {names}")
            out[str(g)] = math.sqrt(sum(sq[m] for m in members))
    if "total" in out:
        raise ValueError("a parameter or group is named 'total', which parameter_norms reserves for the overall norm")
    out["total"] = math.sqrt(sum(sq.values()))
    return out
