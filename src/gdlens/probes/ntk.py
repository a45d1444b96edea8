"""The empirical neural tangent kernel of a model's outputs and how it moves during training.

For a model ``f(x; θ)`` evaluated on a batch x, with outputs of shape ``s`` (e.g. ``(B, O)``) and
flat parameters θ ∈ Rⁿ, the empirical NTK is

    Θ = J Jᵀ,   J = ∂f(x; θ)/∂θ   (an operator from Rⁿ to output-shaped tensors),

a symmetric PSD operator on output-shaped tensors: ``Θ[(b,o), (b',o')] = ⟨∂f_{bo}/∂θ, ∂f_{b'o'}/∂θ⟩``
(Jacot, Gabriel, Hongler, arXiv 1806.07572). Kernels here are either dense tensors
(``(m, m)``, or ``(*s, *s)`` as given by ``op.dense(shaped=True)``) or
:class:`~gdlens.operators.LinearOperator` s; functions that compare kernels accept both.

Quantities of kernel motion follow Fort et al. ("Deep learning versus kernel learning",
arXiv 2010.15110): kernel distance and kernel velocity; kernel–target alignment follows
Cristianini et al. (NeurIPS 2001) and, centred, Cortes, Mohri, Rostamizadeh (arXiv 1203.0550).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gdlens.operators import (
    CallableOperator,
    ComposedOperator,
    DenseOperator,
    LinearOperator,
    alignment,
    effective_rank,
    frobenius_norm,
)
from gdlens.probes._utils import as_tensor, flatten_params

__all__ = [
    "parameter_jacobian",
    "empirical_ntk",
    "kernel_distance",
    "kernel_velocity",
    "kernel_target_alignment",
    "ntk_effective_rank",
]

ModelFn = Callable[[Any, Tensor], Tensor]


def parameter_jacobian(model_fn: ModelFn, params: Any, x: Tensor) -> LinearOperator:
    """``J = ∂f(x; θ)/∂θ``: flat parameter vectors ``(n,)`` -> output-shaped tensors.

    ``J u`` is a ``jvp`` of ``θ ↦ model_fn(params(θ), x)``, ``Jᵀ v`` a ``vjp`` (its pullback is
    built once, at construction); both are batched over stacks of vectors with ``vmap``.
    ``model_fn(params, x)`` receives a container of the same kind as ``params``.
    """
    flat0, unflatten = flatten_params(params)

    def f(v: Tensor) -> Tensor:
        return model_fn(unflatten(v), x)

    out, vjp_fn = torch.func.vjp(f, flat0)
    if out.dtype != flat0.dtype:
        raise ValueError(f"model outputs have dtype {out.dtype} but the parameters have dtype {flat0.dtype}")

    def matmat(U: Tensor) -> Tensor:
        return torch.func.vmap(lambda u: torch.func.jvp(f, (flat0,), (u,))[1])(U)

    def rmatmat(V: Tensor) -> Tensor:
        return torch.func.vmap(vjp_fn)(V)[0]

    return CallableOperator(
        matmat, (flat0.numel(),), tuple(out.shape), rmatmat, dtype=flat0.dtype, device=flat0.device
    )


def empirical_ntk(model_fn: ModelFn, params: Any, x: Tensor) -> LinearOperator:
    """The empirical NTK ``Θ = J Jᵀ`` of the model's outputs on the batch x (arXiv 1806.07572).

    A symmetric PSD :class:`~gdlens.operators.LinearOperator` on tensors shaped like
    ``model_fn(params, x)``: ``Θ v = J (Jᵀ v)``, one batched ``vjp`` then one batched ``jvp``
    (nothing of size n or (B·O)² is stored). Its ``gram_factor`` is J, so
    :func:`~gdlens.operators.top_eigs` works in the smaller of the output and parameter spaces.
    ``Θ.dense()`` gives the ``(B·O, B·O)`` matrix (row-major flattening of the outputs).

    Args:
        model_fn: ``(params, x) -> outputs`` (e.g.
            ``lambda p, x: torch.func.functional_call(model, p, (x,))``).
        params: dict name -> tensor, list of tensors or a tensor (detached, not modified).
        x: the inputs.
    """
    J = parameter_jacobian(model_fn, params, x)
    K = ComposedOperator([J, J.T], is_symmetric=True)
    K.gram_factor = J
    return K


# ---------------------------------------------------------------------- comparing kernels
def _dense_matrix(K: Tensor, name: str) -> Tensor:
    K = as_tensor(K, name)
    if K.dim() == 2 and K.shape[0] == K.shape[1]:
        return K
    half = K.dim() // 2
    if K.dim() >= 2 and K.dim() % 2 == 0 and K.shape[:half] == K.shape[half:]:
        m = math.prod(K.shape[:half])
        return K.reshape(m, m)
    raise ValueError(f"{name} must be a square kernel matrix (m, m) or shaped (*s, *s), got {tuple(K.shape)}")


def _as_operator(K: Any, like: LinearOperator | None, name: str) -> LinearOperator:
    if isinstance(K, LinearOperator):
        if not K.is_square:
            raise ValueError(f"{name} must be a square operator, got {K.shape_in} -> {K.shape_out}")
        return K
    M = _dense_matrix(K, name)
    shape = like.shape_in if like is not None else (M.shape[0],)
    if math.prod(shape) != M.shape[0]:
        raise ValueError(f"{name} has {M.shape[0]} rows but the other kernel acts on shape {shape}")
    return DenseOperator(M, shape_in=shape, shape_out=shape, is_symmetric=True)


def kernel_distance(
    K1: Tensor | LinearOperator,
    K2: Tensor | LinearOperator,
    method: str = "exact",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> float:
    """``d(K₁, K₂) = 1 − ⟨K₁, K₂⟩_F / (‖K₁‖_F ‖K₂‖_F)`` (arXiv 2010.15110).

    0 for kernels that are positive multiples of each other, 1 for Frobenius-orthogonal ones (for
    PSD kernels: orthogonal ranges), at most 2. A zero kernel counts as orthogonal to everything
    (distance 1). Dense kernels are compared exactly; when either is a
    :class:`~gdlens.operators.LinearOperator` the alignment comes from
    :func:`gdlens.operators.alignment` with ``method`` (``"exact"``: n matvecs per kernel;
    ``"hutch++"``/``"hutchinson"``: ``num_matvecs`` each, seeded).
    """
    if not isinstance(K1, LinearOperator) and not isinstance(K2, LinearOperator):
        A, B = _dense_matrix(K1, "K1"), _dense_matrix(K2, "K2")
        if A.shape != B.shape:
            raise ValueError(f"K1 and K2 must have the same shape, got {tuple(A.shape)} and {tuple(B.shape)}")
        dtype = torch.promote_types(A.dtype, B.dtype)
        A, B = A.detach().to(dtype), B.detach().to(dtype)
        denom = (A.norm() * B.norm()).clamp_min(torch.finfo(dtype).tiny)
        return float(1.0 - (A * B).sum() / denom)
    A = _as_operator(K1, K2 if isinstance(K2, LinearOperator) else None, "K1")
    B = _as_operator(K2, A, "K2")
    if A.shape_in != B.shape_in:
        raise ValueError(f"K1 and K2 act on different shapes: {A.shape_in} and {B.shape_in}")
    return 1.0 - float(alignment(A, B, method=method, num_matvecs=num_matvecs, seed=seed).value)


def kernel_velocity(
    K_prev: Tensor | LinearOperator,
    K_next: Tensor | LinearOperator,
    dt: float = 1.0,
    **kwargs: Any,
) -> float:
    """Kernel velocity ``v = d(K_prev, K_next) / dt`` (arXiv 2010.15110): the kernel distance
    between two snapshots taken ``dt`` apart (in steps, epochs or time, the caller's unit)
    divided by dt. ``kwargs`` go to :func:`kernel_distance`."""
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    return kernel_distance(K_prev, K_next, **kwargs) / dt


def _center_first_axis(V: Tensor) -> Tensor:
    """H applied to a stack (k, n, ...): subtract the mean over axis n."""
    return V - V.mean(dim=1, keepdim=True)


def kernel_target_alignment(
    K: Tensor | LinearOperator,
    y: Tensor,
    centered: bool = False,
    method: str = "exact",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> float:
    """Kernel–target alignment ``A(K, y) = ⟨K, y yᵀ⟩_F / (‖K‖_F ‖y yᵀ‖_F)``, i.e.
    ``yᵀ K y / (‖K‖_F ‖y‖²)``.

    In [−1, 1] (in [0, 1] for PSD K), 1 when K ∝ y yᵀ: how much of the kernel's energy lies on the
    targets (Cristianini et al. 2001). Two forms of y:

    - y shaped like K's input (e.g. ``(B, O)`` targets for the output NTK, or ``(m,)`` for a dense
      ``(m, m)`` K): the formula above with y flattened.
    - a dense ``(m, m)`` K and ``y`` of shape ``(m, c)`` (several target columns):
      ``⟨K, Y Yᵀ⟩_F / (‖K‖_F ‖Y Yᵀ‖_F) = tr(YᵀKY) / (‖K‖_F ‖YᵀY‖_F)``.

    ``centered=True`` uses the centred kernel ``H K H`` and centred targets ``H y``, with H the
    centring over the first (sample) axis (Cortes et al. arXiv 1203.0550): a constant offset in
    the targets then does not count. ``centered=False`` (default) is the original alignment.

    For an operator K, ``‖K‖_F`` comes from :func:`gdlens.operators.frobenius_norm` with
    ``method`` (``"exact"`` by default). Returns a float (``nan`` if K or y is zero).
    """
    y = as_tensor(y, "y").detach()
    if isinstance(K, LinearOperator):
        if not K.is_square:
            raise ValueError(f"K must be a square operator, got {K.shape_in} -> {K.shape_out}")
        if tuple(y.shape) != K.shape_in:
            raise ValueError(f"y must be shaped like the kernel's input {K.shape_in}, got {tuple(y.shape)}")
        Kop = K
        if centered:
            Hop = CallableOperator(_center_first_axis, K.shape_in, is_symmetric=True, dtype=K.dtype, device=K.device)
            Kop = ComposedOperator([Hop, K, Hop], is_symmetric=True)
        y = y.to(dtype=K.dtype, device=K.device)
        yc = _center_first_axis(y[None])[0] if centered else y
        with torch.no_grad():
            num = float((yc * K.apply(yc)).sum())
        k_norm = float(frobenius_norm(Kop, method=method, num_matvecs=num_matvecs, seed=seed).value)
        y_sq = float((yc * yc).sum())
        return num / (k_norm * y_sq) if k_norm > 0 and y_sq > 0 else math.nan
    M = _dense_matrix(K, "K").detach()
    m = M.shape[0]
    dtype = torch.promote_types(M.dtype, y.dtype)
    M, y = M.to(dtype), y.to(dtype=dtype, device=M.device)
    if y.numel() == m and not (y.dim() == 2 and y.shape[0] == m and y.shape[1] > 1):
        Y = y.reshape(m, 1)
    elif y.dim() == 2 and y.shape[0] == m:
        Y = y
    else:
        raise ValueError(
            f"y must have shape ({m},) or ({m}, c) to match K of shape {tuple(as_tensor(K, 'K').shape)}, "
            f"got {tuple(y.shape)}"
        )
    if centered:
        M = M - M.mean(dim=0, keepdim=True)
        M = M - M.mean(dim=1, keepdim=True)
        Y = Y - Y.mean(dim=0, keepdim=True)
    num = float((Y * (M @ Y)).sum())
    denom = float(M.norm() * (Y.T @ Y).norm())
    return num / denom if denom > 0 else math.nan


def ntk_effective_rank(
    K: Tensor | LinearOperator,
    method: str = "exact",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
) -> float:
    """Effective rank of a PSD kernel, the participation ratio of its eigenvalues,

        r_eff(K) = (tr K)² / ‖K‖_F² = (Σ λ_i)² / Σ λ_i²  ∈ [1, rank K].

    Dense kernels exactly; operators through :func:`gdlens.operators.effective_rank` with
    ``method`` (``"exact"``, ``"hutch++"`` or ``"hutchinson"``). ``nan`` for a zero dense kernel
    (the operator estimator reports 0 there).
    """
    if isinstance(K, LinearOperator):
        return float(effective_rank(K, method=method, num_matvecs=num_matvecs, seed=seed).value)
    M = _dense_matrix(K, "K").detach()
    f2 = float((M * M).sum())
    return float(torch.diagonal(M).sum()) ** 2 / f2 if f2 > 0 else math.nan
