"""Matrix-free linear operators on shaped tensors.

An operator ``A`` maps tensors of shape ``shape_in`` to tensors of shape ``shape_out``.
Mathematically it is the matrix ``A ∈ R^{n_out × n_in}`` (``n = prod(shape)``) that acts on
the row-major flattening of its argument: ``(A @ x).reshape(-1) == A_dense @ x.reshape(-1)``.

Every operator applies to one vector ``x`` of shape ``shape_in`` or to a stack ``X`` of shape
``(k, *shape_in)`` in one batched call; subclasses implement only the batched forms
:meth:`LinearOperator._matmat` and :meth:`LinearOperator._rmatmat` (the adjoint, ``Aᵀ``).
No operator detaches its input: gradients flow through ``A @ x`` whenever the operator's
own computation is differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "LinearOperator",
    "ComposedOperator",
    "SumOperator",
    "ScaledOperator",
    "AdjointOperator",
    "PartialTraceOperator",
]

Shape = tuple[int, ...]


def _as_shape(shape: int | Sequence[int]) -> Shape:
    if isinstance(shape, int):
        shape = (shape,)
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise ValueError(f"shape must have non-negative sizes, got {out}")
    return out


def basis_chunks(n: int, chunk: int, dtype: torch.dtype, device: torch.device):
    """Yield the rows of the n × n identity in blocks of at most ``chunk``: (rows, n) tensors."""
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        E = torch.zeros(stop - start, n, dtype=dtype, device=device)
        E[torch.arange(stop - start), torch.arange(start, stop)] = 1
        yield E


class LinearOperator:
    """A linear map from tensors of shape ``shape_in`` to tensors of shape ``shape_out``.

    Subclasses set ``shape_in``, ``shape_out``, ``dtype``, ``device`` and implement
    ``_matmat(X)``: ``(k, *shape_in) -> (k, *shape_out)`` and, for the adjoint,
    ``_rmatmat(Y)``: ``(k, *shape_out) -> (k, *shape_in)``. ``is_symmetric`` declares that
    ``A = Aᵀ`` (it lets ``A.T`` return ``A`` itself; it is never checked numerically).

    ``gram_factor``, when set, is an operator F with ``A = F Fᵀ`` exactly (a kernel given by
    its Jacobian, or ``B.gram()`` with F = Bᵀ). Spectral routines then work in the smaller of
    F's two spaces: the nonzero eigenvalues of F Fᵀ and Fᵀ F coincide, and an eigenvector v
    of FᵀF maps to the eigenvector F v / √λ of A.
    """

    shape_in: Shape
    shape_out: Shape
    dtype: torch.dtype
    device: torch.device
    is_symmetric: bool = False
    gram_factor: LinearOperator | None = None

    def __init__(
        self,
        shape_in: int | Sequence[int],
        shape_out: int | Sequence[int] | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        is_symmetric: bool = False,
    ) -> None:
        self.shape_in = _as_shape(shape_in)
        self.shape_out = self.shape_in if shape_out is None else _as_shape(shape_out)
        self.dtype = dtype
        self.device = torch.device(device)
        if is_symmetric and self.shape_in != self.shape_out:
            raise ValueError(
                f"a symmetric operator must be square, got shape_in {self.shape_in}, shape_out {self.shape_out}"
            )
        self.is_symmetric = is_symmetric

    # ------------------------------------------------------------------ sizes
    @property
    def size_in(self) -> int:
        """n_in = prod(shape_in)."""
        return math.prod(self.shape_in)

    @property
    def size_out(self) -> int:
        """n_out = prod(shape_out)."""
        return math.prod(self.shape_out)

    @property
    def is_square(self) -> bool:
        return self.shape_in == self.shape_out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape_in={self.shape_in}, shape_out={self.shape_out}, dtype={self.dtype})"

    # ------------------------------------------------------------------ to implement
    def _matmat(self, X: Tensor) -> Tensor:
        raise NotImplementedError

    def _rmatmat(self, Y: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement its adjoint")

    # ------------------------------------------------------------------ application
    def _check_dtype(self, x: Tensor) -> None:
        if x.dtype != self.dtype:
            raise ValueError(f"operator has dtype {self.dtype} but the argument has dtype {x.dtype}")

    def matmat(self, X: Tensor) -> Tensor:
        """Apply A to a stack X of shape ``(k, *shape_in)``; returns ``(k, *shape_out)``."""
        if tuple(X.shape[1:]) != self.shape_in or X.dim() != len(self.shape_in) + 1:
            raise ValueError(f"expected a stack of shape (k, *{self.shape_in}), got {tuple(X.shape)}")
        self._check_dtype(X)
        return self._matmat(X)

    def rmatmat(self, Y: Tensor) -> Tensor:
        """Apply Aᵀ to a stack Y of shape ``(k, *shape_out)``; returns ``(k, *shape_in)``."""
        if tuple(Y.shape[1:]) != self.shape_out or Y.dim() != len(self.shape_out) + 1:
            raise ValueError(f"expected a stack of shape (k, *{self.shape_out}), got {tuple(Y.shape)}")
        self._check_dtype(Y)
        return self._rmatmat(Y)

    def apply(self, x: Tensor) -> Tensor:
        """``A @ x`` for x of shape ``shape_in`` or a stack ``(k, *shape_in)``."""
        if tuple(x.shape) == self.shape_in:
            return self.matmat(x.unsqueeze(0))[0]
        if x.dim() == len(self.shape_in) + 1 and tuple(x.shape[1:]) == self.shape_in:
            return self.matmat(x)
        raise ValueError(
            f"operator with shape_in {self.shape_in} cannot be applied to a tensor of shape "
            f"{tuple(x.shape)}: expected {self.shape_in} or (k, *{self.shape_in})"
        )

    def __matmul__(self, other: LinearOperator | Tensor) -> LinearOperator | Tensor:
        if isinstance(other, LinearOperator):
            return ComposedOperator([self, other])
        if isinstance(other, Tensor):
            return self.apply(other)
        return NotImplemented

    def __call__(self, x: Tensor) -> Tensor:
        return self.apply(x)

    # ------------------------------------------------------------------ algebra
    @property
    def T(self) -> LinearOperator:  # noqa: N802 - matches numpy/torch
        """The adjoint Aᵀ: ``shape_out -> shape_in``, with ⟨A x, y⟩ = ⟨x, Aᵀ y⟩."""
        if self.is_symmetric:
            return self
        return AdjointOperator(self)

    def __add__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator([self, other])

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator([self, ScaledOperator(other, -1.0)])

    def __neg__(self) -> LinearOperator:
        return ScaledOperator(self, -1.0)

    def __mul__(self, c: Number | Tensor) -> LinearOperator:
        if isinstance(c, Tensor) and c.dim() != 0:
            raise ValueError(f"an operator can only be scaled by a scalar, got a tensor of shape {tuple(c.shape)}")
        if not isinstance(c, (Number, Tensor)):
            return NotImplemented
        return ScaledOperator(self, c)

    __rmul__ = __mul__

    def __truediv__(self, c: Number | Tensor) -> LinearOperator:
        return self * (1.0 / c)

    def gram(self) -> LinearOperator:
        """AᵀA: ``shape_in -> shape_in``, symmetric positive semi-definite (its
        ``gram_factor`` is Aᵀ)."""
        op = ComposedOperator([self.T, self], is_symmetric=True)
        op.gram_factor = self.T
        return op

    def partial_trace(self, dims: int | Sequence[int]) -> LinearOperator:
        """Trace out the axes ``dims`` of a square operator.

        For shape ``S = (s_1, ..., s_d)`` split into traced axes ``τ`` and kept axes ``κ``,
        ``(Tr_τ A)[κ, κ'] = Σ_τ A[(κ, τ), (κ', τ)]``: an operator on the kept axes (in their
        original order). Applying it costs ``prod(s_τ)`` matvecs of A per vector, done in one
        batched call.
        """
        return PartialTraceOperator(self, dims)

    # ------------------------------------------------------------------ materialisation
    def dense(self, shaped: bool = False, chunk_size: int = 256) -> Tensor:
        """The matrix of A, ``(n_out, n_in)`` (row-major flattening of both shapes), built from
        ``n_in`` matvecs in chunks of ``chunk_size``. With ``shaped=True`` it is returned as
        ``(*shape_out, *shape_in)``."""
        n = self.size_in
        cols = []
        for basis in basis_chunks(n, chunk_size, self.dtype, self.device):
            k = basis.shape[0]
            cols.append(self.matmat(basis.reshape(k, *self.shape_in)).reshape(k, -1))
        M = torch.cat(cols, dim=0).T if cols else torch.zeros(self.size_out, 0, dtype=self.dtype, device=self.device)
        return M.reshape(*self.shape_out, *self.shape_in) if shaped else M

    def to_scipy(self):  # -> scipy.sparse.linalg.LinearOperator
        """A :class:`scipy.sparse.linalg.LinearOperator` of shape ``(n_out, n_in)`` acting on flat
        numpy vectors (detached: numpy carries no autograd)."""
        from scipy.sparse.linalg import LinearOperator as ScipyLinearOperator

        op = self
        np_dtype = torch.empty((), dtype=self.dtype).numpy().dtype

        def _to_torch(v: np.ndarray, shape: Shape) -> Tensor:
            V = torch.as_tensor(np.ascontiguousarray(v), dtype=op.dtype, device=op.device)
            return V.reshape(-1, *shape) if V.dim() == 1 else V.T.reshape(-1, *shape)

        def matvec(v):
            with torch.no_grad():
                return op.matmat(_to_torch(v.reshape(-1), op.shape_in)).reshape(-1).cpu().numpy()

        def matmat(V):
            with torch.no_grad():
                return op.matmat(_to_torch(V, op.shape_in)).reshape(V.shape[1], -1).T.cpu().numpy()

        def rmatvec(v):
            with torch.no_grad():
                return op.rmatmat(_to_torch(v.reshape(-1), op.shape_out)).reshape(-1).cpu().numpy()

        def rmatmat(V):
            with torch.no_grad():
                return op.rmatmat(_to_torch(V, op.shape_out)).reshape(V.shape[1], -1).T.cpu().numpy()

        return ScipyLinearOperator(
            shape=(self.size_out, self.size_in),
            matvec=matvec,
            rmatvec=rmatvec,
            matmat=matmat,
            rmatmat=rmatmat,
            dtype=np_dtype,
        )


# ---------------------------------------------------------------------- composites
def _common(ops: Sequence[LinearOperator]) -> tuple[torch.dtype, torch.device]:
    dtypes = {op.dtype for op in ops}
    if len(dtypes) != 1:
        raise ValueError(f"operators have different dtypes: {sorted(map(str, dtypes))}")
    devices = {op.device for op in ops}
    if len(devices) != 1:
        raise ValueError(f"operators live on different devices: {sorted(map(str, devices))}")
    return ops[0].dtype, ops[0].device


class ComposedOperator(LinearOperator):
    """``A_1 @ A_2 @ ... @ A_m`` (applied right to left); nested compositions are flattened."""

    def __init__(self, ops: Sequence[LinearOperator], is_symmetric: bool = False) -> None:
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, ComposedOperator) else [op])
        for left, right in zip(flat[:-1], flat[1:]):
            if left.shape_in != right.shape_out:
                raise ValueError(
                    f"cannot compose: left operator has shape_in {left.shape_in} but right operator "
                    f"has shape_out {right.shape_out}"
                )
        dtype, device = _common(flat)
        self.ops = flat
        super().__init__(flat[-1].shape_in, flat[0].shape_out, dtype=dtype, device=device, is_symmetric=is_symmetric)

    def _matmat(self, X: Tensor) -> Tensor:
        for op in reversed(self.ops):
            X = op._matmat(X)
        return X

    def _rmatmat(self, Y: Tensor) -> Tensor:
        for op in self.ops:
            Y = op._rmatmat(Y)
        return Y


class SumOperator(LinearOperator):
    """``A_1 + ... + A_m`` (all of one shape); nested sums are flattened."""

    def __init__(self, ops: Sequence[LinearOperator]) -> None:
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, SumOperator) else [op])
        for op in flat[1:]:
            if (op.shape_in, op.shape_out) != (flat[0].shape_in, flat[0].shape_out):
                raise ValueError(
                    f"cannot add operators of shapes {flat[0].shape_in}->{flat[0].shape_out} and "
                    f"{op.shape_in}->{op.shape_out}"
                )
        dtype, device = _common(flat)
        self.ops = flat
        super().__init__(
            flat[0].shape_in, flat[0].shape_out, dtype=dtype, device=device,
            is_symmetric=all(op.is_symmetric for op in flat),
        )

    def _matmat(self, X: Tensor) -> Tensor:
        out = self.ops[0]._matmat(X)
        for op in self.ops[1:]:
            out = out + op._matmat(X)
        return out

    def _rmatmat(self, Y: Tensor) -> Tensor:
        out = self.ops[0]._rmatmat(Y)
        for op in self.ops[1:]:
            out = out + op._rmatmat(Y)
        return out


class ScaledOperator(LinearOperator):
    """``c · A`` for a real scalar c (a Python number or a 0-d tensor, which may carry grad)."""

    def __init__(self, op: LinearOperator, c: Number | Tensor) -> None:
        if isinstance(op, ScaledOperator):
            op, c = op.op, op.c * c
        self.op, self.c = op, c
        super().__init__(op.shape_in, op.shape_out, dtype=op.dtype, device=op.device, is_symmetric=op.is_symmetric)

    def _matmat(self, X: Tensor) -> Tensor:
        return self.c * self.op._matmat(X)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        return self.c * self.op._rmatmat(Y)


class AdjointOperator(LinearOperator):
    """Aᵀ, with ``(Aᵀ)ᵀ = A``."""

    def __init__(self, op: LinearOperator) -> None:
        self.op = op
        super().__init__(op.shape_out, op.shape_in, dtype=op.dtype, device=op.device)

    @property
    def T(self) -> LinearOperator:  # noqa: N802
        return self.op

    def _matmat(self, X: Tensor) -> Tensor:
        return self.op._rmatmat(X)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        return self.op._matmat(Y)


class PartialTraceOperator(LinearOperator):
    """``Tr_τ A``: the square operator A with the axes τ traced out (see
    :meth:`LinearOperator.partial_trace`)."""

    def __init__(self, op: LinearOperator, dims: int | Sequence[int]) -> None:
        if not op.is_square:
            raise ValueError(
                f"partial_trace needs a square operator (shape_in == shape_out), got "
                f"{op.shape_in} -> {op.shape_out}"
            )
        ndim = len(op.shape_in)
        dims_t = (dims,) if isinstance(dims, int) else tuple(dims)
        if not dims_t:
            raise ValueError("partial_trace needs at least one axis to trace out")
        norm = []
        for d in dims_t:
            if not isinstance(d, (int, np.integer)) or not -ndim <= d < ndim:
                raise ValueError(f"axis {d!r} is out of range for an operator on shape {op.shape_in}; allowed: 0..{ndim - 1}")
            norm.append(int(d) % ndim)
        if len(set(norm)) != len(norm):
            raise ValueError(f"repeated axes in {dims_t}")
        if len(norm) == ndim:
            raise ValueError("tracing out every axis leaves a scalar: use gdlens.operators.trace(A) instead")
        self.op = op
        self.traced = tuple(sorted(norm))
        self.kept = tuple(d for d in range(ndim) if d not in self.traced)
        kept_shape = tuple(op.shape_in[d] for d in self.kept)
        self._traced_shape = tuple(op.shape_in[d] for d in self.traced)
        # permutation that takes (*kept, *traced) back to the operator's axis order
        self._to_op_order = [0] + [1 + (self.kept + self.traced).index(d) for d in range(ndim)]
        self._to_split_order = [0] + [1 + d for d in self.kept + self.traced]
        super().__init__(kept_shape, kept_shape, dtype=op.dtype, device=op.device, is_symmetric=op.is_symmetric)

    def _apply(self, X: Tensor, adjoint: bool) -> Tensor:
        k = X.shape[0]
        m = math.prod(self._traced_shape)
        eye = torch.eye(m, dtype=X.dtype, device=X.device)
        # lifted[k, τ, *kept, τ'] = X[k, *kept] δ_{ττ'}: one stack of k·m inputs of the full shape
        lifted = X.reshape(k, 1, *self.shape_in, 1) * eye.reshape(1, m, *([1] * len(self.shape_in)), m)
        lifted = lifted.reshape(k * m, *self.shape_in, *self._traced_shape)
        lifted = lifted.permute(*self._to_op_order).contiguous()
        out = self.op._rmatmat(lifted) if adjoint else self.op._matmat(lifted)
        out = out.permute(*self._to_split_order).reshape(k, m, *self.shape_in, m)
        return torch.diagonal(out, dim1=1, dim2=-1).sum(-1)

    def _matmat(self, X: Tensor) -> Tensor:
        return self._apply(X, adjoint=False)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        return self._apply(Y, adjoint=True)
