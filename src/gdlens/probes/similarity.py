"""Similarity of representations: CKA, and one-to-one matching of neurons.

Representations are activation matrices ``X (n, p)`` and ``Y (n, q)`` whose rows are the same n
inputs (trailing axes of ``(n, ...)`` activations are flattened: conv maps ``(n, c, h, w)`` give
``p = c·h·w``). Columns are features (neurons).

Centred kernel alignment (Kornblith, Norouzi, Lee, Hinton, "Similarity of neural network
representations revisited", arXiv 1905.00414): with Gram matrices K of X and L of Y,

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),   HSIC(K, L) = tr(K H L H) / (n − 1)²,

H = I − 11ᵀ/n. For linear kernels ``K = X Xᵀ`` this is ``‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F)`` on
column-centred X, Y; it is invariant to orthogonal transforms and isotropic scaling of either
side, and equals 1 for ``Y = X``. The debiased variant replaces HSIC with the unbiased
estimator HSIC₁ of Song, Smola, Gretton, Bedo, Borgwardt (JMLR 13, 2012), which removes the
bias towards 1 of CKA between unrelated features when p, q are comparable to n.

Neuron matching (Li, Yosinski, Clune, Lipson, Hopcroft, "Convergent learning: do different
neural networks learn the same representations?", arXiv 1511.07543): pair the neurons of two
networks one-to-one so that the total correlation of paired activations is maximal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from gdlens.probes._utils import as_rows, as_tensor, check_same_rows

__all__ = ["linear_cka", "rbf_cka", "gram_cka", "match_neurons", "NeuronMatch", "cka_matrix"]


def _float_pair(X: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    dtype = torch.promote_types(X.dtype, Y.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    return X.detach().to(dtype), Y.detach().to(dtype=dtype, device=X.device)


def _hsic1_terms(tr_kl: Tensor, diag_k: Tensor, diag_l: Tensor, k1: Tensor, l1: Tensor, n: int) -> Tensor:
    """Unbiased HSIC₁ (Song et al. 2012, eq. 5) from the statistics of K, L:
    ``⟨K, L⟩_F``, their diagonals and row sums ``K1``, ``L1``. With K̃, L̃ the kernels with the
    diagonal set to 0,

        HSIC₁ = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1] / (n(n−3)).
    """
    kt1, lt1 = k1 - diag_k, l1 - diag_l  # K̃1, L̃1
    tr_t = tr_kl - (diag_k * diag_l).sum()
    return (tr_t + kt1.sum() * lt1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (kt1 * lt1).sum()) / (n * (n - 3))


def _check_n(n: int, debiased: bool) -> None:
    if debiased and n < 4:
        raise ValueError(f"debiased CKA needs at least 4 inputs (rows), got n = {n}")
    if n < 2:
        raise ValueError(f"CKA needs at least 2 inputs (rows), got n = {n}")


def _ratio(kl: Tensor, kk: Tensor, ll: Tensor) -> float:
    denom = kk * ll
    if not bool(denom > 0):
        return math.nan
    return float(kl / denom.sqrt())


def gram_cka(K: Tensor, L: Tensor, debiased: bool = False) -> float:
    """CKA of two ``(n, n)`` Gram matrices (symmetric kernels on the same n inputs).

    Biased: ``⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F)``. Debiased: the same ratio of HSIC₁ estimates
    (Song et al. 2012), which can be slightly negative. ``nan`` when a denominator is not
    positive (a constant kernel).
    """
    K, L = _float_pair(as_tensor(K, "K"), as_tensor(L, "L"))
    if K.dim() != 2 or K.shape[0] != K.shape[1] or K.shape != L.shape:
        raise ValueError(
            f"K and L must be square Gram matrices of one shape (n, n), got {tuple(K.shape)} and "
            f"{tuple(L.shape)}"
        )
    n = K.shape[0]
    _check_n(n, debiased)
    if debiased:
        dk, k1 = torch.diagonal(K), K.sum(1)
        dl, l1 = torch.diagonal(L), L.sum(1)
        kl = _hsic1_terms((K * L).sum(), dk, dl, k1, l1, n)
        kk = _hsic1_terms((K * K).sum(), dk, dk, k1, k1, n)
        ll = _hsic1_terms((L * L).sum(), dl, dl, l1, l1, n)
        return _ratio(kl, kk, ll)
    Kc = K - K.mean(0, keepdim=True)
    Kc = Kc - Kc.mean(1, keepdim=True)
    Lc = L - L.mean(0, keepdim=True)
    Lc = Lc - Lc.mean(1, keepdim=True)
    return _ratio((Kc * Lc).sum(), (Kc * Kc).sum(), (Lc * Lc).sum())


def linear_cka(X: Tensor, Y: Tensor, debiased: bool = False) -> float:
    """Linear CKA between representations ``X (n, p)`` and ``Y (n, q)`` (arXiv 1905.00414).

    With X, Y column-centred,

        CKA = ‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F) ∈ [0, 1],

    the CKA of the linear kernels K = XXᵀ, L = YYᵀ. ``debiased=True`` uses the unbiased HSIC₁
    (Song et al. 2012) in place of each HSIC: independent random features then give ≈ 0 instead of
    a value that grows with p/n. Needs n ≥ 4.

    Computed in feature space (cost O(n p q), no n × n matrix) when n ≥ p + q, else through the
    n × n Gram matrices; both give the same number. Returns a float; ``nan`` if X or Y is constant.
    """
    X, Y = as_rows(X, "X"), as_rows(Y, "Y")
    check_same_rows(X, Y)
    X, Y = _float_pair(X, Y)
    n, p, q = X.shape[0], X.shape[1], Y.shape[1]
    _check_n(n, debiased)
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    if n < p + q:
        return gram_cka(X @ X.T, Y @ Y.T, debiased)
    xy = ((Y.T @ X) ** 2).sum()  # ⟨K, L⟩_F
    xx = ((X.T @ X) ** 2).sum()  # ‖K‖_F²
    yy = ((Y.T @ Y) ** 2).sum()
    if not debiased:
        return _ratio(xy, xx, yy)
    dk, dl = (X * X).sum(1), (Y * Y).sum(1)  # diag K, diag L
    k1, l1 = X @ X.sum(0), Y @ Y.sum(0)  # K1, L1 (≈ 0 after centring, kept for exactness)
    kl = _hsic1_terms(xy, dk, dl, k1, l1, n)
    kk = _hsic1_terms(xx, dk, dk, k1, k1, n)
    ll = _hsic1_terms(yy, dl, dl, l1, l1, n)
    return _ratio(kl, kk, ll)


def _sq_dists(X: Tensor) -> Tensor:
    sq = (X * X).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)).clamp_min(0).fill_diagonal_(0)


def _rbf_gram(X: Tensor, sigma_frac: float, name: str) -> Tensor:
    D2 = _sq_dists(X)
    n = X.shape[0]
    iu = torch.triu_indices(n, n, offset=1, device=X.device)
    med = D2[iu[0], iu[1]].sqrt().median()
    if not bool(med > 0):
        raise ValueError(
            f"the median pairwise distance of {name} is 0 (most rows identical): the RBF bandwidth is "
            f"undefined"
        )
    sigma = sigma_frac * med
    return torch.exp(-D2 / (2.0 * sigma**2))


def rbf_cka(X: Tensor, Y: Tensor, sigma_frac: float = 0.5, debiased: bool = False) -> float:
    """CKA with Gaussian (RBF) kernels (arXiv 1905.00414).

    ``K_ij = exp(−‖x_i − x_j‖² / (2σ_X²))`` with ``σ_X = sigma_frac · median_{i<j} ‖x_i − x_j‖``
    (bandwidth as a fraction of the median distance, set separately for X and Y), likewise L;
    then :func:`gram_cka`. Invariant to orthogonal transforms, isotropic scaling and translation
    of either side; 1 for Y = X. Costs O(n²(p + q)) time and O(n²) memory.
    """
    X, Y = as_rows(X, "X"), as_rows(Y, "Y")
    check_same_rows(X, Y)
    if not sigma_frac > 0:
        raise ValueError(f"sigma_frac must be positive, got {sigma_frac}")
    X, Y = _float_pair(X, Y)
    _check_n(X.shape[0], debiased)
    return gram_cka(_rbf_gram(X, sigma_frac, "X"), _rbf_gram(Y, sigma_frac, "Y"), debiased)


class NeuronMatch(NamedTuple):
    """One-to-one matching of X's neurons to Y's.

    Attributes:
        permutation: ``(p,)`` long; X's neuron i is paired with Y's neuron ``permutation[i]``
            (−1 when p > q and neuron i is left unpaired). For p ≤ q, ``Y[:, permutation]`` lines
            up with X.
        correlation: ``(p,)`` Pearson correlation of each pair (nan for unpaired neurons).
    """

    permutation: Tensor
    correlation: Tensor


def _correlation(X: Tensor, Y: Tensor) -> Tensor:
    """``(p, q)`` Pearson correlations of X's columns with Y's; a constant column correlates 0."""
    Xc = X - X.mean(0, keepdim=True)
    Yc = Y - Y.mean(0, keepdim=True)
    sx, sy = Xc.norm(dim=0), Yc.norm(dim=0)
    Xn = Xc / torch.where(sx > 0, sx, torch.ones_like(sx))
    Yn = Yc / torch.where(sy > 0, sy, torch.ones_like(sy))
    return (Xn.T @ Yn).clamp(-1.0, 1.0)


def match_neurons(X: Tensor, Y: Tensor, absolute: bool = False) -> NeuronMatch:
    """Pair neurons one-to-one by activation correlation (bipartite matching, arXiv 1511.07543).

    With ``C_ij = corr(X[:, i], Y[:, j])`` over the n inputs (a constant neuron correlates 0),
    choose the injective pairing π maximising ``Σ_i C_{i, π(i)}`` (``|C|`` with ``absolute=True``,
    for sign-symmetric units such as tanh), solved exactly by
    :func:`scipy.optimize.linear_sum_assignment`. Li et al.'s bipartite matching; the
    semi-matching (each X neuron to its best Y neuron, not one-to-one) is ``C.argmax(1)``.

    Args:
        X: ``(n, p)`` activations of network A; Y: ``(n, q)`` of network B on the same inputs.

    Returns:
        :class:`NeuronMatch` ``(permutation (p,), correlation (p,))``.
    """
    from scipy.optimize import linear_sum_assignment

    X, Y = as_rows(X, "X"), as_rows(Y, "Y")
    check_same_rows(X, Y)
    X, Y = _float_pair(X, Y)
    if X.shape[0] < 2:
        raise ValueError(f"correlations need at least 2 inputs (rows), got X of shape {tuple(X.shape)}")
    C = _correlation(X, Y)
    score = C.abs() if absolute else C
    rows, cols = linear_sum_assignment(score.cpu().numpy(), maximize=True)
    p = X.shape[1]
    perm = torch.full((p,), -1, dtype=torch.long)
    corr = torch.full((p,), math.nan, dtype=C.dtype)
    rows_t = torch.as_tensor(rows, dtype=torch.long)
    cols_t = torch.as_tensor(cols, dtype=torch.long)
    perm[rows_t] = cols_t
    corr[rows_t] = C.cpu()[rows_t, cols_t]
    return NeuronMatch(perm, corr)


def cka_matrix(
    acts_a: Sequence[Tensor],
    acts_b: Sequence[Tensor] | None = None,
    kind: str = "linear",
    debiased: bool = False,
    sigma_frac: float = 0.5,
) -> Tensor:
    """Layer-by-layer CKA: ``M[i, j] = CKA(acts_a[i], acts_b[j])``, shape ``(len(a), len(b))``.

    Each entry is an ``(n, ...)`` activation tensor on the same n inputs (flattened to (n, p)).
    ``kind="linear"`` (:func:`linear_cka`) or ``"rbf"`` (:func:`rbf_cka`, Gram matrices computed
    once per layer). ``acts_b=None`` compares ``acts_a`` with itself (a symmetric matrix with a
    unit diagonal, the heat maps of arXiv 1905.00414).
    """
    if kind not in ("linear", "rbf"):
        raise ValueError(f"unknown CKA kind {kind!r}; allowed: 'linear', 'rbf'")
    same = acts_b is None
    A = [as_rows(a, f"acts_a[{i}]") for i, a in enumerate(acts_a)]
    B = A if same else [as_rows(b, f"acts_b[{j}]") for j, b in enumerate(acts_b)]
    if not A or not B:
        raise ValueError("cka_matrix needs at least one layer on each side")
    n = A[0].shape[0]
    for side, acts in (("acts_a", A), ("acts_b", B)):
        for i, a in enumerate(acts):
            if a.shape[0] != n:
                raise ValueError(
                    f"every layer must have the same number of rows (inputs): acts_a[0] has {n} but "
                    f"{side}[{i}] has shape {tuple(a.shape)}"
                )
    out = torch.empty(len(A), len(B), dtype=torch.float64)
    if kind == "rbf":
        _check_n(n, debiased)
        GA = [_rbf_gram(_float_pair(a, a)[0], sigma_frac, f"acts_a[{i}]") for i, a in enumerate(A)]
        GB = GA if same else [_rbf_gram(_float_pair(b, b)[0], sigma_frac, f"acts_b[{j}]") for j, b in enumerate(B)]
        pair = lambda i, j: gram_cka(GA[i], GB[j], debiased)  # noqa: E731
    else:
        pair = lambda i, j: linear_cka(A[i], B[j], debiased)  # noqa: E731
    for i in range(len(A)):
        for j in range(len(B)):
            if same and j < i:
                out[i, j] = out[j, i]
            else:
                out[i, j] = pair(i, j)
    return out
