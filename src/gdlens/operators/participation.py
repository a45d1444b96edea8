"""The participation ratio of data: the effective rank of its (dense) covariance.

For samples in rows, ``X (n, p)``, with covariance ``C = X_cᵀ X_c / (n − 1)`` of the column-centred
``X_c`` and its eigenvalues λ_i::

    PR(X) = (Σ_i λ_i)² / Σ_i λ_i² = (tr C)² / ‖C‖_F²        ∈ [1, rank C]

(Gao et al. 2017, "A theory of multineuronal dimensionality, dynamics and measurement",
bioRxiv 214262; Recanatesi et al., arXiv 1906.00443): r for data spread with equal variance over
r orthogonal directions, close to 1 when one direction dominates. It is the same ratio that
:func:`gdlens.operators.effective_rank` estimates for a matrix-free operator, computed exactly
here from the data. The one implementation for the hidden states of the flow
(:func:`gdlens.flow.hidden_participation_ratio`) and the activations of the probes
(:func:`gdlens.probes.representation.participation_ratio`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["participation_ratio"]


def participation_ratio(X: Tensor | Any, centre: bool = True) -> float:
    """``PR = (tr C)² / ‖C‖_F²`` of the rows of ``X`` (module docstring).

    Args:
        X: samples ``(n, p)``; trailing axes of ``(n, ...)`` are flattened into the p features
            (reshape hidden states ``(B, T, H)`` to ``(B·T, H)`` first to count each step as a
            sample). Arrays are converted; integer data is read as float64.
        centre: subtract the column means (the covariance); False uses the second moment
            ``Xᵀ X / (n − 1)`` about the origin.

    Returns:
        A float in ``[1, min(n − 1, p)]`` (``[1, min(n, p)]`` without centring), computed in
        float64 from the smaller Gram matrix ``X_cᵀ X_c`` or ``X_c X_cᵀ`` (same non-zero
        spectrum; no eigendecomposition). **nan for data with no variance** (constant rows, or
        all zeros without centring): the ratio is 0/0 there, and no data has a participation
        ratio below 1, so a 0 would read, plot and average as a dimensionality it is not.

    Raises:
        ValueError: X has fewer than two axes, or fewer than two rows with ``centre=True``.
    """
    X = torch.as_tensor(X)
    if X.dim() < 2:
        raise ValueError(f"X must have shape (n, p) (rows = samples, columns = features), got {tuple(X.shape)}")
    if centre and X.shape[0] < 2:
        raise ValueError(f"X needs at least 2 rows (samples) to have a covariance, got shape {tuple(X.shape)}")
    X = X.detach().reshape(X.shape[0], -1).to(torch.float64)
    if centre:
        X = X - X.mean(0, keepdim=True)
    n, p = X.shape
    G = X @ X.T if n <= p else X.T @ X
    tr = torch.diagonal(G).sum()
    f2 = (G * G).sum()
    return float(tr**2 / f2) if bool(f2 > 0) else math.nan
