"""The immediate parameter Jacobian J_θ as an operator, so that K = J Jᵀ and G = (P J)(P J)ᵀ
carry their factors (``LinearOperator.gram_factor``).

J maps a flat parameter-space vector (length p, the selected parameters in a layout private
to each kernel) to a hidden-state tensor (B, T, H); Jᵀ maps back. K's nonzero eigenvalues are
those of JᵀJ, so :func:`gdlens.operators.top_eigs` solves the eigenproblem in the smaller of
the two spaces (p or B·T·H) and maps eigenvectors back through J — exactly, and without
changing the cost of a matvec (one J and one Jᵀ, as for K itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gdlens.operators import CallableOperator, LinearOperator

__all__ = ["flat_parameter_operator"]


def flat_parameter_operator(
    rows: Callable[[Tensor], Sequence[Tensor]],
    apply: Callable[[Sequence[Tensor]], Tensor],
    shapes: Sequence[tuple[int, ...]],
    shape_out: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> LinearOperator:
    """J from its two halves on a list of parameter-shaped pieces.

    Args:
        rows: ``V (k, *shape_out) -> [Jᵀ v piece i: (k, *shapes[i])]``.
        apply: ``[dθ piece i: (k, *shapes[i])] -> (k, *shape_out)``.
        shapes: the pieces' shapes; the flat vector concatenates them row-major.
    """
    sizes = [math.prod(s) for s in shapes]
    p = sum(sizes)

    def split(W: Tensor) -> list[Tensor]:
        k = W.shape[0]
        return [piece.reshape(k, *shape) for piece, shape in zip(torch.split(W, sizes, dim=1), shapes)]

    def matmat(W: Tensor) -> Tensor:
        return apply(split(W))

    def rmatmat(V: Tensor) -> Tensor:
        k = V.shape[0]
        return torch.cat([piece.reshape(k, -1) for piece in rows(V)], dim=1)

    return CallableOperator(matmat, (p,), shape_out, rmatmat, dtype=dtype, device=device)
