"""Concrete operators: dense matrices, the identity, diagonals, and operators from functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gdlens.operators.base import LinearOperator, _as_shape

__all__ = ["DenseOperator", "IdentityOperator", "DiagonalOperator", "CallableOperator"]


class DenseOperator(LinearOperator):
    """A stored matrix ``M`` (n_out, n_in) acting on shaped tensors.

    ``M`` is either 2-D, with ``shape_in``/``shape_out`` (defaults ``(n_in,)``/``(n_out,)``)
    whose sizes multiply to its columns/rows, or already shaped ``(*shape_out, *shape_in)``
    with both shapes given. Nothing is reshaped unless the sizes agree exactly.
    """

    def __init__(
        self,
        M: Tensor,
        shape_in: int | Sequence[int] | None = None,
        shape_out: int | Sequence[int] | None = None,
        is_symmetric: bool = False,
    ) -> None:
        if not isinstance(M, Tensor):
            raise TypeError(f"DenseOperator needs a torch.Tensor, got {type(M).__name__}")
        if M.dim() == 2:
            s_out = (M.shape[0],) if shape_out is None else _as_shape(shape_out)
            s_in = (M.shape[1],) if shape_in is None else _as_shape(shape_in)
            if math.prod(s_out) != M.shape[0] or math.prod(s_in) != M.shape[1]:
                raise ValueError(
                    f"matrix of shape {tuple(M.shape)} does not match shape_out {s_out} and shape_in {s_in}"
                )
        else:
            if shape_in is None or shape_out is None:
                raise ValueError(f"a {M.dim()}-d matrix needs both shape_in and shape_out, got shape {tuple(M.shape)}")
            s_out, s_in = _as_shape(shape_out), _as_shape(shape_in)
            if tuple(M.shape) != s_out + s_in:
                raise ValueError(f"matrix of shape {tuple(M.shape)} is not (*shape_out, *shape_in) = {s_out + s_in}")
        self.matrix = M.reshape(math.prod(s_out), math.prod(s_in))
        super().__init__(s_in, s_out, dtype=M.dtype, device=M.device, is_symmetric=is_symmetric)

    def _matmat(self, X: Tensor) -> Tensor:
        k = X.shape[0]
        return (X.reshape(k, -1) @ self.matrix.T).reshape(k, *self.shape_out)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        k = Y.shape[0]
        return (Y.reshape(k, -1) @ self.matrix).reshape(k, *self.shape_in)

    def dense(self, shaped: bool = False, chunk_size: int = 256) -> Tensor:
        M = self.matrix.clone()  # a copy, like every other operator's dense(): writing to it leaves A alone
        return M.reshape(*self.shape_out, *self.shape_in) if shaped else M


class IdentityOperator(LinearOperator):
    """``I`` on tensors of the given shape."""

    def __init__(
        self, shape: int | Sequence[int], dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(shape, shape, dtype=dtype, device=device, is_symmetric=True)

    def _matmat(self, X: Tensor) -> Tensor:
        return X

    _rmatmat = _matmat


class DiagonalOperator(LinearOperator):
    """Elementwise multiplication ``x ↦ d ⊙ x``; ``shape_in = shape_out = d.shape``."""

    def __init__(self, d: Tensor) -> None:
        if not isinstance(d, Tensor):
            raise TypeError(f"DiagonalOperator needs a torch.Tensor, got {type(d).__name__}")
        self.diagonal = d
        super().__init__(tuple(d.shape), tuple(d.shape), dtype=d.dtype, device=d.device, is_symmetric=True)

    def _matmat(self, X: Tensor) -> Tensor:
        return X * self.diagonal

    _rmatmat = _matmat


class CallableOperator(LinearOperator):
    """An operator given by functions.

    Args:
        matmat: ``(k, *shape_in) -> (k, *shape_out)``; with ``batched=False`` a function of
            one vector ``shape_in -> shape_out``, batched with :func:`torch.func.vmap`.
        shape_in, shape_out: the shapes.
        rmatmat: the adjoint, same conventions (``shape_out -> shape_in``); omit it for a
            symmetric operator (``is_symmetric=True``), otherwise ``.T`` raises.
        dtype, device: of the vectors it acts on.
    """

    def __init__(
        self,
        matmat: Callable[[Tensor], Tensor],
        shape_in: int | Sequence[int],
        shape_out: int | Sequence[int] | None = None,
        rmatmat: Callable[[Tensor], Tensor] | None = None,
        *,
        batched: bool = True,
        is_symmetric: bool = False,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(shape_in, shape_out, dtype=dtype, device=device, is_symmetric=is_symmetric)
        if not batched:
            matmat = torch.func.vmap(matmat)
            rmatmat = torch.func.vmap(rmatmat) if rmatmat is not None else None
        if rmatmat is None and is_symmetric:
            rmatmat = matmat
        self._fn, self._rfn = matmat, rmatmat

    def _matmat(self, X: Tensor) -> Tensor:
        return self._fn(X)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        if self._rfn is None:
            raise NotImplementedError("this CallableOperator was built without rmatmat, so it has no adjoint")
        return self._rfn(Y)
