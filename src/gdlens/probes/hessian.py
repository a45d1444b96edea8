"""The loss Hessian as a matrix-free operator, and its extreme eigenvalues and trace.

Conventions (shared by :mod:`gdlens.probes.stability` and :mod:`gdlens.probes.sharpness`):

- ``loss_fn(params) -> scalar`` where ``params`` is a dict name -> tensor, a list/tuple of
  tensors or one tensor; the functions below call it with a container of the same kind built
  from the flat parameter vector ``θ = concat(p.reshape(-1))`` (dict/list order). It must be
  written with ``torch.func``-friendly ops (e.g. ``torch.func.functional_call(model, p, (x,))``,
  or :func:`gdlens.probes.plumbing.functional_loss`); torch's own losses (``nn.MSELoss``,
  ``F.mse_loss``, ``F.cross_entropy``, any reduction) and layers (``nn.LayerNorm``,
  ``nn.Embedding``, dropout in eval mode) work with every backend but ``"forward"`` (below).
- The Hessian ``H = ∇²_θ L`` acts on flat vectors of length n = Σ numel.
- Values are Python floats or tensors (tensors in, numbers out).

Hessian–vector products, three backends (:data:`HESSIAN_BACKENDS`):

- ``"func"`` (default): reverse-over-reverse with ``torch.func``: ``g, pullback = vjp(grad L, θ)``
  once when the operator is built (one forward and one backward pass, the graph kept), then
  ``H u = pullback(u)`` (``H`` is symmetric, so the vector–Jacobian product of ∇L is the
  Hessian–vector product), batched over vectors with ``vmap``.
- ``"autograd"``: the same products by ``torch.autograd.grad(g, θ, u)`` through a gradient built
  with ``create_graph=True``, one vector at a time (for losses with ops that have no vmap rule).
- ``"forward"``: forward-over-reverse, ``H u = d/dε ∇L(θ + ε u)``, ``jvp`` of ``grad``, batched
  with ``vmap``; nothing is built or kept between calls, but every product repeats the forward
  pass. Some backward formulas of torch do not support forward-mode differentiation: torch
  2.13's ``mse_loss`` (``nn.MSELoss``, ``F.mse_loss``) raises "ZeroTensors are immutable";
  the backend then raises a RuntimeError naming ``backend="func"``.

Measured cost (CPU, float32, best of 10, a 3-layer MLP with ``nn.LayerNorm`` and a hand-written
MSE, per call of k products): at n = 725 parameters and 32 samples, k = 1: forward-over-reverse
3.1 ms, reverse-over-reverse 1.8 ms of which 0.9 ms for the products once built (a gradient
alone: 0.65 ms); k = 8: 3.3 ms against 1.9 ms (0.9 ms). At n = 20 101 and 512 samples, k = 1:
6.3 ms against 4.2 ms (2.2 ms); k = 8: 28 ms against 14 ms (12 ms). At n = 72 965 and 2048
samples, k = 8: 233 ms against 230 ms. Reverse-over-reverse is never slower, and the more
products are taken at one θ (Lanczos takes 5–50) the more its once-built graph saves; its price
is memory: the graph (the batch's activations) lives as long as the operator.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gdlens.operators import CallableOperator, Eigs, Estimate, LinearOperator, top_eigs, trace
from gdlens.probes._utils import flatten_params

__all__ = [
    "HESSIAN_BACKENDS",
    "hessian_operator",
    "top_hessian_eig",
    "hessian_trace",
    "TopEig",
    "lanczos_top_eig",
]

LossFn = Callable[[Any], Tensor]

HESSIAN_BACKENDS = ("func", "autograd", "forward")


def _scalar(value: Any) -> Tensor:
    if not isinstance(value, Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss_fn(params) must return a scalar tensor, got {shape}")
    return value.reshape(())


def _flat_loss(loss_fn: LossFn, params: Any) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``(θ, f)``: the flat parameters and ``f(v) = loss_fn(params rebuilt from v)`` (a scalar)."""
    flat0, unflatten = flatten_params(params)
    if not flat0.dtype.is_floating_point:
        raise ValueError(f"params must be floating point, got {flat0.dtype}")
    return flat0, lambda v: _scalar(loss_fn(unflatten(v)))


def _batched(one: Callable[[Tensor], Tensor], vectorize: bool) -> Callable[[Tensor], Tensor]:
    """``(k, n) -> (k, n)`` from a product of one vector, by ``vmap`` or a loop."""
    if vectorize:
        return torch.func.vmap(one)
    return lambda U: torch.stack([one(u) for u in U]) if U.shape[0] else U.clone()


def _reverse_over_reverse(f: Callable[[Tensor], Tensor], flat0: Tensor, vectorize: bool):
    gradient, pullback = torch.func.vjp(torch.func.grad(f), flat0)
    return _batched(lambda u: pullback(u)[0], vectorize), gradient.detach()


def _autograd(f: Callable[[Tensor], Tensor], flat0: Tensor):
    leaf = flat0.clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(f(leaf), leaf, create_graph=True, allow_unused=True)
    if g is None:  # the loss does not depend on θ
        return (lambda U: torch.zeros_like(U)), torch.zeros_like(flat0)
    if not g.requires_grad:  # the loss is at most linear in θ: H = 0
        return (lambda U: torch.zeros_like(U)), g.detach()

    def one(u: Tensor) -> Tensor:
        (h,) = torch.autograd.grad(g, leaf, u, retain_graph=True, allow_unused=True)
        return torch.zeros_like(u) if h is None else h.detach()

    return _batched(one, vectorize=False), g.detach()


def _forward_over_reverse(f: Callable[[Tensor], Tensor], flat0: Tensor, vectorize: bool):
    with torch.no_grad():
        f(flat0)  # checks the loss (a scalar) before any product
    grad_f = torch.func.grad(f)
    products = _batched(lambda u: torch.func.jvp(grad_f, (flat0,), (u,))[1], vectorize)

    def matmat(U: Tensor) -> Tensor:
        try:
            return products(U)
        except RuntimeError as exc:
            raise RuntimeError(
                f"forward-over-reverse Hessian-vector products failed on this loss ({exc}); some backward "
                "formulas of torch (e.g. mse_loss: nn.MSELoss, F.mse_loss) do not support forward-mode "
                "differentiation: use backend='func' (reverse-over-reverse) instead"
            ) from exc

    return matmat, None


def hessian_operator(loss_fn: LossFn, params: Any, vectorize: bool = True, backend: str = "func") -> LinearOperator:
    """The loss Hessian ``H = ∇²_θ L(θ)`` at ``params`` as a symmetric operator on flat vectors.

    Args:
        loss_fn: ``params -> scalar`` (module docstring).
        params: the point θ (dict/list/tensor); it is detached, not modified.
        vectorize: batch the products over vectors with ``vmap`` (``"func"`` and ``"forward"``);
            ``False`` loops over them, for losses with ops that have no vmap batching rule.
        backend: ``"func"`` (reverse-over-reverse, default), ``"autograd"`` or ``"forward"``
            (module docstring).

    Returns:
        A symmetric :class:`~gdlens.operators.LinearOperator` with ``shape_in = (n,)``. Its
        ``gradient`` attribute holds ``∇L(θ)`` (flat, detached) when the backend computed it on the
        way (``"func"``, ``"autograd"``; None with ``"forward"``): :func:`directional_curvature`
        reuses it.
    """
    if backend not in HESSIAN_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(map(repr, HESSIAN_BACKENDS))}")
    flat0, f = _flat_loss(loss_fn, params)
    if backend == "func":
        matmat, gradient = _reverse_over_reverse(f, flat0, vectorize)
    elif backend == "autograd":
        matmat, gradient = _autograd(f, flat0)
    else:
        matmat, gradient = _forward_over_reverse(f, flat0, vectorize)
    H = CallableOperator(matmat, (flat0.numel(),), is_symmetric=True, dtype=flat0.dtype, device=flat0.device)
    H.gradient = gradient
    return H


def _checked_hessian(hessian: LinearOperator | None, loss_fn: LossFn, params: Any, **kw: Any) -> LinearOperator:
    """``hessian`` when given (checked against the parameters' size), else a new one."""
    if hessian is None:
        return hessian_operator(loss_fn, params, **kw)
    n = flatten_params(params)[0].numel()
    if hessian.shape_in != (n,):
        raise ValueError(f"hessian acts on {hessian.shape_in}, the parameters have {n} entries")
    return hessian


def top_hessian_eig(
    loss_fn: LossFn,
    params: Any,
    k: int = 1,
    which: str = "largest",
    method: str = "lanczos",
    tol: float | None = None,
    seed: int | torch.Generator = 0,
    return_vectors: bool = False,
    vectorize: bool = True,
    block_size: int | None = None,
    max_matvecs: int | None = None,
    backend: str = "func",
    hessian: LinearOperator | None = None,
    v0: Tensor | None = None,
    v0_noise: float = 0.0,
) -> Tensor | Eigs:
    """The k extreme eigenvalues of the loss Hessian, by block Lanczos on Hessian–vector products.

    ``λ_1 ≥ … ≥ λ_k`` of ``H = ∇²L(θ)`` (``which="largest"``, the sharpness λ_1 of
    arXiv 2103.00065; ``"magnitude"`` or ``"smallest"`` for negative curvature). Computed with
    :func:`gdlens.operators.top_eigs` on :func:`hessian_operator`; the residual tolerance
    ``tol`` (relative, default 1e-9 in float64) bounds the eigenvalue error by about
    ``(tol·|λ|_max)² / gap``. ``block_size`` (vectors per batched Hessian–vector call; default
    that of ``top_eigs``: on CPU 1 for k = 1 and 2 otherwise, ``max(2k, 8)`` on accelerators),
    ``max_matvecs`` (a budget) and the warm start ``v0``/``v0_noise`` go to ``top_eigs``.
    ``hessian``: the operator at the same point, already built (then ``backend`` and
    ``vectorize`` are unused).

    Returns:
        ``(k,)`` eigenvalues (``float(top_hessian_eig(...))`` for k = 1), or with
        ``return_vectors=True`` an :class:`~gdlens.operators.Eigs` whose vectors are ``(k, n)``
        flat parameter directions.
    """
    H = _checked_hessian(hessian, loss_fn, params, vectorize=vectorize, backend=backend)
    eigs = top_eigs(
        H, k, which=which, method=method, tol=tol, seed=seed, block_size=block_size, max_matvecs=max_matvecs,
        v0=v0, v0_noise=v0_noise,
    )
    return eigs if return_vectors else eigs.values


def hessian_trace(
    loss_fn: LossFn,
    params: Any,
    method: str = "hutch++",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
    vectorize: bool = True,
    backend: str = "func",
) -> Estimate:
    """``tr H = Σ_i λ_i(H)`` of the loss Hessian, estimated from Hessian–vector products.

    Uses :func:`gdlens.operators.trace` (``"hutch++"``, ``"hutchinson"``, ``"xtrace"`` or
    ``"exact"``, the last spending n products). Returns an
    :class:`~gdlens.operators.Estimate` (value, stderr, num_matvecs, method).
    """
    H = hessian_operator(loss_fn, params, vectorize, backend)
    return trace(H, method=method, num_matvecs=num_matvecs, seed=seed)


class TopEig(NamedTuple):
    """The top eigenpair found by the deprecated :func:`lanczos_top_eig`.

    Attributes:
        value: the largest eigenvalue (a float).
        vector: its unit eigenvector, shaped like the operator's input.
        num_matvecs: products spent.
        residual: ``‖A v − λ v‖ / max_i |θ_i|`` (θ the Ritz values), the converged measure.
    """

    value: float
    vector: Tensor
    num_matvecs: int
    residual: float


def lanczos_top_eig(
    A: LinearOperator,
    v0: Tensor | None = None,
    tol: float | None = None,
    max_matvecs: int = 300,
    seed: int | torch.Generator = 0,
) -> TopEig:
    """Deprecated: the largest eigenpair, warm-startable — now ``top_eigs(A, 1, v0=v0,
    v0_noise=1.0, ...)`` (:func:`gdlens.operators.top_eigs`, the package's one eigensolver).

    The warm start keeps this function's old convention: ``v0/‖v0‖`` plus a random unit vector
    of equal weight (``v0_noise=1.0``), so that a v0 that is (close to) the eigenvector of a lower
    eigenvalue — after the top two have crossed — cannot stop the iteration early on it. ``tol``
    is the relative residual ``‖A x − θ x‖ ≤ tol · max_i |θ_i|`` (default 1e-9 in float64, 1e-4 in
    float32); v0 may have any shape with the operator's number of entries.

    Returns:
        :class:`TopEig` ``(value, vector, num_matvecs, residual)``; with a RuntimeWarning when
        ``max_matvecs`` ran out first.
    """
    warnings.warn(
        "lanczos_top_eig is deprecated: use gdlens.operators.top_eigs(A, 1, v0=v0, v0_noise=1.0) "
        "(values[0], vectors[0] and, with return_info=True, num_matvecs and residuals)",
        DeprecationWarning,
        stacklevel=2,
    )
    if not A.is_square:
        raise ValueError(f"lanczos_top_eig needs a square operator, got {A.shape_in} -> {A.shape_out}")
    if max_matvecs < 1:
        raise ValueError(f"max_matvecs must be positive, got {max_matvecs}")
    if v0 is not None:
        if v0.numel() != A.size_in:
            raise ValueError(f"v0 must have {A.size_in} entries (the operator's input size), got {v0.numel()}")
        v0 = v0.detach().reshape(A.shape_in) if float(v0.norm()) > 0 else None
    (values, vectors), info = top_eigs(
        A, 1, v0=v0, v0_noise=1.0, tol=tol, max_matvecs=max_matvecs, seed=seed, return_info=True
    )
    return TopEig(float(values[0]), vectors[0], info["num_matvecs"], float(info["residuals"][0]))
