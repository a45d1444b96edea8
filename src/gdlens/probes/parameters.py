"""Norms of the weights and how far they moved: per tensor, per group, over all of θ, and the
Schatten norms of a deep linear map.

Parameters come as a dict name -> tensor, ``model.named_parameters()``, a list of tensors or one
tensor (:func:`gdlens.probes._utils.leaves`). Every sum is taken in float64. Weights of a deep
linear map are listed input-to-output, ``[W_1, ..., W_L]`` with ``W_ℓ`` of shape
``(d_ℓ, d_{ℓ−1})`` (the ``nn.Linear.weight`` convention), so that the end-to-end map is
``W = W_L ⋯ W_1``.

- :func:`parameter_norms`: ``‖θ_n‖`` per tensor (or group) and ``‖θ‖`` over all.
- :func:`relative_change`: ``‖θ − θ₀‖ / ‖θ₀‖``, the order parameter of the linear (→ 0 with
  width) and condensed regimes (Luo, Xu, Ma, Zhang, arXiv 2007.07497), per tensor both against
  the whole θ₀ (defined for tensors that start at zero, e.g. biases) and against the tensor's own
  start (where that is not zero).
- :func:`schatten_norm`, :func:`nuclear_norm` of the end-to-end map, which gradient descent on
  deep linear networks drives towards low rank (Arora, Cohen, Hu, Luo, "Implicit regularization
  in deep matrix factorization", arXiv 1905.13655).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from gdlens.probes._utils import as_tensor, leaves

__all__ = ["parameter_norms", "relative_change", "end_to_end", "schatten_norm", "nuclear_norm"]


def _squares(named_params: Any, name: str) -> dict[str, Tensor]:
    """``{name: Σ_j p_j²}`` in float64 (0-d tensors), in the container's order."""
    names, tensors = leaves(named_params, name)
    return {n: (t.detach().to(torch.float64) ** 2).sum() for n, t in zip(names, tensors)}


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

    σ_i the singular values (of the product, computed in float64). p = 1 is the nuclear norm,
    p = 2 the Frobenius norm, p = ∞ (``math.inf``) the spectral norm; 0 < p < 1 gives the
    Schatten quasi-norm (so ``L · schatten_norm(W, 2/L) ** (2/L) = L Σ σ_i^{2/L}``, the least
    ``Σ_ℓ ‖W_ℓ‖_F²`` of an L-factor product).
    """
    if not p > 0:
        raise ValueError(f"p must be positive (or math.inf), got {p}")
    s = torch.linalg.svdvals(end_to_end(weights).to(torch.float64))
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
    sq = {n: float(v) for n, v in _squares(named_params, "named_params").items()}
    names = list(sq)
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


def relative_change(params: Any, initial: Any) -> dict[str, float]:
    """How far the parameters moved from ``initial`` (θ₀), relative to where they started.

    With ``Δ_n = θ_n − θ_n(0)`` per tensor n and ``‖·‖`` the Euclidean norm over all entries::

        total       ‖θ − θ₀‖ / ‖θ₀‖                     over all parameters (Luo et al.'s RD)
        share/<n>   ‖Δ_n‖ / ‖θ₀‖                         every tensor; Σ_n share_n² = total²
        own/<n>     ‖Δ_n‖ / ‖θ_n(0)‖                     only tensors with θ_n(0) ≠ 0

    ``share`` is defined for a tensor that starts at zero (a zero-initialised bias: its own ratio
    would be x/0) and says how much of the total motion it carries; ``own`` is the per-tensor
    ratio of arXiv 2007.07497 where it exists, left out (never nan) where it does not. When all
    of θ₀ is zero, ``total`` and the shares are nan.

    Args:
        params: the current parameters (dict name -> tensor, ``named_parameters()``, list, tensor).
        initial: θ₀, a container with the same names and shapes.

    Raises:
        ValueError: a name of ``params`` missing from ``initial``, or a shape that differs.
    """
    now = dict(zip(*leaves(params, "params")))
    start = dict(zip(*leaves(initial, "initial")))
    missing = [n for n in now if n not in start]
    if missing:
        raise ValueError(f"initial has no entry for {missing}; pass θ₀ with the parameters' names {list(now)}")
    for n, t in now.items():
        if tuple(t.shape) != tuple(start[n].shape):
            raise ValueError(f"parameter {n!r} has shape {tuple(t.shape)} but initial[{n!r}] {tuple(start[n].shape)}")
    moved = _squares({n: t.detach().to(torch.float64) - start[n].detach().to(torch.float64) for n, t in now.items()},
                     "params")
    origin = _squares({n: start[n] for n in now}, "initial")
    whole = math.sqrt(sum(float(v) for v in origin.values()))
    ratio = (lambda x: x / whole) if whole > 0 else (lambda x: math.nan)
    out = {"total": ratio(math.sqrt(sum(float(v) for v in moved.values())))}
    out.update({f"share/{n}": ratio(math.sqrt(float(v))) for n, v in moved.items()})
    out.update({f"own/{n}": math.sqrt(float(moved[n] / origin[n])) for n in now if float(origin[n]) > 0})
    return out
