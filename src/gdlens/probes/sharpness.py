"""Sharpness: the loss Hessian's top curvature, against the optimizer's stability threshold.

Edge of stability (Cohen, Kaur, Li, Kolter, Talwalkar, arXiv 2103.00065): under full-batch GD
with step η the sharpness ``λ_max(H)`` rises until it reaches ``2/η`` and then hovers there.
For Adam the relevant quantity is the sharpness of the *preconditioned* Hessian, whose linear
stability threshold is ``(2 + 2β₁) / ((1 − β₁) η)`` (Cohen et al., "Adaptive gradient methods at
the edge of stability", arXiv 2207.14484). Loss spikes in Adam appear when the curvature along
the gradient direction of the preconditioned Hessian crosses the threshold (Bai et al.,
"Adaptive preconditioners trigger loss spikes in Adam", arXiv 2506.04805).

Conventions:

- ``loss_fn(params) -> scalar`` where ``params`` is a dict name -> tensor, a list/tuple of
  tensors or one tensor; the functions below call it with a container of the same kind built
  from the flat parameter vector ``θ = concat(p.reshape(-1))`` (dict/list order). It must be
  written with ``torch.func``-friendly ops (e.g. ``torch.func.functional_call(model, p, (x,))``).
- The Hessian ``H = ∇²_θ L`` acts on flat vectors of length n = Σ numel. Hessian–vector products
  are ``jvp(grad L)`` (forward-over-reverse), batched over probe vectors with ``vmap``; or, with
  ``backend="autograd"``, backward passes through a gradient graph built once and kept (each
  product then skips the forward pass: 2–6× cheaper for repeated products in a training loop).
- Values are Python floats (tensors in, numbers out).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gdlens.operators import CallableOperator, Estimate, Eigs, LinearOperator, top_eigs, trace
from gdlens.probes._utils import flat_vector, flatten_params, leaves

__all__ = [
    "hessian_operator",
    "lanczos_top_eig",
    "TopEig",
    "top_hessian_eig",
    "hessian_trace",
    "adam_preconditioner",
    "preconditioned_hessian_operator",
    "preconditioned_sharpness",
    "directional_curvature",
    "stability_threshold",
    "spike_warning",
]

LossFn = Callable[[Any], Tensor]


def _flat_loss(loss_fn: LossFn, params: Any) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    flat0, unflatten = flatten_params(params)
    if not flat0.dtype.is_floating_point:
        raise ValueError(f"params must be floating point, got {flat0.dtype}")

    def f(v: Tensor) -> Tensor:
        return loss_fn(unflatten(v))

    with torch.no_grad():
        value = f(flat0)
    if not isinstance(value, Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss_fn(params) must return a scalar tensor, got {shape}")
    return flat0, f


def _hvp_matmat(f: Callable[[Tensor], Tensor], flat0: Tensor, vectorize: bool) -> Callable[[Tensor], Tensor]:
    grad_f = torch.func.grad(lambda v: f(v).reshape(()))

    def hvp(u: Tensor) -> Tensor:
        return torch.func.jvp(grad_f, (flat0,), (u,))[1]

    if vectorize:
        return torch.func.vmap(hvp)
    return lambda U: torch.stack([hvp(u) for u in U]) if U.shape[0] else U.clone()


HESSIAN_BACKENDS = ("func", "autograd")


def _autograd_hvp(f: Callable[[Tensor], Tensor], flat0: Tensor) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Hessian–vector products by double backward through one retained gradient graph, and the
    gradient (detached)."""
    leaf = flat0.clone().requires_grad_(True)
    with torch.enable_grad():
        value = f(leaf)
        if not isinstance(value, Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"loss_fn(params) must return a scalar tensor, got {shape}")
        (g,) = torch.autograd.grad(value.reshape(()), leaf, create_graph=True, allow_unused=True)
    if g is None:  # the loss does not depend on θ
        return (lambda U: torch.zeros_like(U)), torch.zeros_like(flat0)
    if not g.requires_grad:  # the loss is at most linear in θ: H = 0
        return (lambda U: torch.zeros_like(U)), g.detach()

    def hvp(u: Tensor) -> Tensor:
        (h,) = torch.autograd.grad(g, leaf, u, retain_graph=True, allow_unused=True)
        return torch.zeros_like(u) if h is None else h.detach()

    return (lambda U: torch.stack([hvp(u) for u in U]) if U.shape[0] else U.clone()), g.detach()


def hessian_operator(loss_fn: LossFn, params: Any, vectorize: bool = True, backend: str = "func") -> LinearOperator:
    """The loss Hessian ``H = ∇²_θ L(θ)`` at ``params`` as a symmetric operator on flat vectors.

    ``backend="func"`` (default): ``H u = d/dε ∇L(θ + ε u)|_{ε=0}`` (forward-over-reverse: ``jvp``
    of ``grad``), so a stack of k vectors ``(k, n)`` costs one ``vmap``-batched call (about k
    gradient evaluations of work, nothing of size n² stored).

    ``backend="autograd"``: the gradient ``g = ∇L(θ)`` is built once, with its graph, when the
    operator is made, and ``H u = ∇_θ ⟨g, u⟩`` is one backward pass through that graph per vector
    (no forward pass): cheaper when many products are taken at one θ (Lanczos), at the price of
    keeping the graph (activations of the whole batch) alive as long as the operator. Needs a
    loss that supports double backward. The operator's ``gradient`` attribute holds g (flat,
    detached; None with the ``"func"`` backend), which :func:`directional_curvature` reuses.

    Args:
        loss_fn: ``params -> scalar`` (see the module docstring).
        params: the point θ (dict/list/tensor); it is detached, not modified.
        vectorize: batch with ``vmap`` (default; ``"func"`` backend). ``False`` loops over the
            vectors instead, for losses that use ops without a vmap batching rule.
        backend: ``"func"`` or ``"autograd"``.

    Returns:
        A symmetric :class:`~gdlens.operators.LinearOperator` with ``shape_in = (n,)``.
    """
    if backend not in HESSIAN_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(map(repr, HESSIAN_BACKENDS))}")
    if backend == "autograd":
        flat0, unflatten = flatten_params(params)
        if not flat0.dtype.is_floating_point:
            raise ValueError(f"params must be floating point, got {flat0.dtype}")
        matmat, gradient = _autograd_hvp(lambda v: loss_fn(unflatten(v)), flat0)
    else:
        flat0, f = _flat_loss(loss_fn, params)
        matmat, gradient = _hvp_matmat(f, flat0, vectorize), None
    H = CallableOperator(matmat, (flat0.numel(),), is_symmetric=True, dtype=flat0.dtype, device=flat0.device)
    H.gradient = gradient
    return H


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
) -> Tensor | Eigs:
    """The k extreme eigenvalues of the loss Hessian, by block Lanczos on Hessian–vector products.

    ``λ_1 ≥ … ≥ λ_k`` of ``H = ∇²L(θ)`` (``which="largest"``, the sharpness λ_1 of
    arXiv 2103.00065; ``"magnitude"`` or ``"smallest"`` for negative curvature). Computed with
    :func:`gdlens.operators.top_eigs` on :func:`hessian_operator`; the residual tolerance
    ``tol`` (relative, default 1e-9 in float64) bounds the eigenvalue error by about
    ``(tol·|λ|_max)² / gap``. ``block_size`` (vectors per batched Hessian–vector call; default
    that of ``top_eigs``: on CPU 1 for k = 1 and 2 otherwise, ``max(2k, 8)`` on accelerators) and
    ``max_matvecs`` (a budget) go to ``top_eigs``.

    Returns:
        ``(k,)`` eigenvalues (``float(top_hessian_eig(...))`` for k = 1), or with
        ``return_vectors=True`` an :class:`~gdlens.operators.Eigs` whose vectors are ``(k, n)``
        flat parameter directions.
    """
    H = hessian_operator(loss_fn, params, vectorize)
    eigs = top_eigs(
        H, k, which=which, method=method, tol=tol, seed=seed, block_size=block_size, max_matvecs=max_matvecs
    )
    return eigs if return_vectors else eigs.values


def hessian_trace(
    loss_fn: LossFn,
    params: Any,
    method: str = "hutch++",
    num_matvecs: int = 30,
    seed: int | torch.Generator = 0,
    vectorize: bool = True,
) -> Estimate:
    """``tr H = Σ_i λ_i(H)`` of the loss Hessian, estimated from Hessian–vector products.

    Uses :func:`gdlens.operators.trace` (``"hutch++"``, ``"hutchinson"``, ``"xtrace"`` or
    ``"exact"``, the last spending n products). Returns an
    :class:`~gdlens.operators.Estimate` (value, stderr, num_matvecs, method).
    """
    return trace(hessian_operator(loss_fn, params, vectorize), method=method, num_matvecs=num_matvecs, seed=seed)


# ---------------------------------------------------------------------- Adam's preconditioner
def adam_preconditioner(optimizer: torch.optim.Optimizer, params: Any) -> Tensor:
    """Adam's diagonal preconditioner ``D = 1 / (√v̂ + ε)`` as a flat vector ``(n,)``.

    Read from the state of a ``torch.optim.Adam`` or ``AdamW`` (their preconditioners coincide;
    AdamW's decoupled weight decay is not part of it): ``v`` = ``exp_avg_sq`` (or
    ``max_exp_avg_sq`` with ``amsgrad=True``), ``t`` = ``step``, ``β₂, ε`` from the parameter's
    group, and the bias correction ``v̂ = v / (1 − β₂ᵗ)``. The update Adam takes is then
    ``Δθ = −η D ⊙ m̂``.

    Args:
        optimizer: an Adam/AdamW instance that has taken at least one step.
        params: the optimizer's own parameter tensors (dict/list, in the order used by
            ``loss_fn``): each is looked up in the optimizer's state by identity.

    Raises:
        ValueError: for another optimizer, a parameter the optimizer does not hold, or one it has
            no state for yet (no step taken).
    """
    if not isinstance(optimizer, torch.optim.Adam):
        raise ValueError(
            f"the Adam preconditioner needs a torch.optim.Adam or torch.optim.AdamW optimizer, got "
            f"{type(optimizer).__name__}"
        )
    names, tensors = leaves(params)
    parts = []
    for name, p in zip(names, tensors):
        group = next((g for g in optimizer.param_groups if any(q is p for q in g["params"])), None)
        if group is None:
            raise ValueError(
                f"parameter {name!r} (shape {tuple(p.shape)}) is not one of the optimizer's parameters: pass the "
                "optimizer's own tensors, e.g. dict(model.named_parameters())"
            )
        state = optimizer.state.get(p, {})
        key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
        if key not in state or "step" not in state:
            raise ValueError(
                f"the optimizer has no state for parameter {name!r} (shape {tuple(p.shape)}) yet: take at least one "
                "optimizer step before measuring preconditioned sharpness"
            )
        t = float(state["step"])
        if t <= 0:
            raise ValueError(f"the optimizer's step count for parameter {name!r} is {t}; take at least one step first")
        beta2 = float(group["betas"][1])
        eps = float(group["eps"])
        v_hat = state[key].detach().to(p.dtype) / (1.0 - beta2**t)
        parts.append((1.0 / (v_hat.sqrt() + eps)).reshape(-1))
    return torch.cat(parts)


def _preconditioner(preconditioner: Any, params: Any, flat0: Tensor) -> Tensor:
    if isinstance(preconditioner, torch.optim.Optimizer):
        D = adam_preconditioner(preconditioner, params)
    else:
        D = flat_vector(preconditioner, params, flat0.numel(), "preconditioner")
    D = D.to(device=flat0.device, dtype=flat0.dtype)
    if D.shape != flat0.shape:
        raise ValueError(
            f"the preconditioner must have {flat0.numel()} entries (one per parameter), got "
            f"{tuple(D.shape)}"
        )
    if not bool((D > 0).all()):
        raise ValueError("the diagonal preconditioner must be positive")
    return D


def preconditioned_hessian_operator(
    loss_fn: LossFn, params: Any, preconditioner: Any, vectorize: bool = True
) -> LinearOperator:
    """The symmetric preconditioned Hessian ``D^{1/2} H D^{1/2}`` on flat vectors.

    ``preconditioner`` is a positive diagonal D, flat ``(n,)`` or shaped like ``params``, or an
    Adam/AdamW optimizer (then ``D = 1/(√v̂ + ε)``, see :func:`adam_preconditioner`). Its
    eigenvalues are those of ``D H`` (see :func:`preconditioned_sharpness`).
    """
    flat0, f = _flat_loss(loss_fn, params)
    s = _preconditioner(preconditioner, params, flat0).sqrt()
    hvp = _hvp_matmat(f, flat0, vectorize)
    return CallableOperator(
        lambda U: s * hvp(s * U), (flat0.numel(),), is_symmetric=True, dtype=flat0.dtype, device=flat0.device
    )


def preconditioned_sharpness(
    loss_fn: LossFn,
    params: Any,
    optimizer: Any,
    method: str = "lanczos",
    tol: float | None = None,
    seed: int | torch.Generator = 0,
    vectorize: bool = True,
    block_size: int | None = None,
    max_matvecs: int | None = None,
) -> float:
    """Adam's preconditioned sharpness ``λ_max(D H)``, ``D = diag(1/(√v̂ + ε))`` (arXiv 2207.14484).

    Near a point θ, Adam (ignoring momentum) iterates ``δθ ← (I − η D H) δθ``, so it is stable
    while ``λ_max(D H) < 2/η`` (``(2 + 2β₁)/((1 − β₁)η)`` with momentum, see
    :func:`stability_threshold`). ``D H`` is not symmetric, but it is similar to the symmetric
    ``D^{1/2} H D^{1/2} = D^{-1/2} (D H) D^{1/2}``, which has the same (real) eigenvalues; we run
    symmetric Lanczos (:func:`gdlens.operators.top_eigs`) on that matrix, where its convergence
    guarantees hold.

    Args:
        loss_fn, params: as in :func:`hessian_operator`; ``params`` must be the optimizer's own
            tensors (looked up in its state by identity).
        optimizer: a ``torch.optim.Adam``/``AdamW`` that has taken a step, or a positive flat
            diagonal D ``(n,)`` directly.
        method, tol, seed, block_size, max_matvecs: as in :func:`top_hessian_eig`.

    Returns:
        ``λ_max(D^{1/2} H D^{1/2})`` as a float.

    Raises:
        ValueError: if the optimizer is not Adam/AdamW or has no state yet.
    """
    if isinstance(optimizer, torch.optim.Optimizer) and not isinstance(optimizer, torch.optim.Adam):
        raise ValueError(
            f"preconditioned_sharpness needs a torch.optim.Adam or torch.optim.AdamW optimizer, got "
            f"{type(optimizer).__name__}"
        )
    A = preconditioned_hessian_operator(loss_fn, params, optimizer, vectorize)
    eigs = top_eigs(
        A, 1, which="largest", method=method, tol=tol, seed=seed, block_size=block_size, max_matvecs=max_matvecs
    )
    return float(eigs.values[0])


def directional_curvature(
    loss_fn: LossFn,
    params: Any,
    direction: Any = None,
    preconditioner: Any = None,
    hessian: LinearOperator | None = None,
) -> float:
    """Curvature of the loss along a direction: a Rayleigh quotient of the (preconditioned) Hessian.

    Without a preconditioner, with g = ∇L(θ) and d = ``direction`` (default d = g):

        λ_dir = dᵀ H d / dᵀ d,

    the gradient-directional curvature; it lies in [λ_min(H), λ_max(H)] and reaches λ_max when
    the gradient aligns with the top eigenvector (Bai et al. arXiv 2506.04805).

    With a positive diagonal preconditioner D (flat, shaped like params, or an Adam/AdamW optimizer
    for ``D = 1/(√v̂ + ε)``), the default direction is the preconditioned step direction
    ``d = D g`` (Adam's update with β₁ = 0; for the momentum direction ``m̂/(√v̂+ε)`` pass it as
    ``direction``) and

        λ_dir = dᵀ H d / dᵀ D⁻¹ d,

    the Rayleigh quotient of the symmetric preconditioned Hessian ``D^{1/2} H D^{1/2}`` at
    ``D^{-1/2} d`` (for d = D g: ``gᵀDHDg / gᵀDg``). It is bounded by
    :func:`preconditioned_sharpness` and compared with the same threshold (:func:`spike_warning`).

    ``hessian``: the Hessian at the same point, already built (:func:`hessian_operator`), to
    apply instead of a new Hessian–vector product; one from the ``"autograd"`` backend also
    supplies the gradient it was built from (its ``gradient`` attribute), so the call then costs
    a single backward pass.

    Returns:
        λ_dir as a float; ``nan`` when the direction is zero (e.g. g = 0 at a critical point).
    """
    if hessian is None or (direction is None and getattr(hessian, "gradient", None) is None):
        flat0, f = _flat_loss(loss_fn, params)
        grad_f = torch.func.grad(lambda v: f(v).reshape(()))
    else:
        flat0, _ = flatten_params(params)
    if hessian is not None and hessian.shape_in != (flat0.numel(),):
        raise ValueError(f"hessian acts on {hessian.shape_in}, the parameters have {flat0.numel()} entries")
    D = None if preconditioner is None else _preconditioner(preconditioner, params, flat0)
    if direction is None:
        g = getattr(hessian, "gradient", None)
        g = grad_f(flat0).detach() if g is None else g.to(device=flat0.device, dtype=flat0.dtype)
        d = g if D is None else D * g
    else:
        d = flat_vector(direction, params, flat0.numel(), "direction").to(device=flat0.device, dtype=flat0.dtype)
    denom = (d * d).sum() if D is None else (d * d / D).sum()
    if float(denom) == 0.0:
        return float("nan")
    if hessian is None:
        Hd = torch.func.jvp(grad_f, (flat0,), (d,))[1]
    else:
        Hd = hessian.matmat(d.unsqueeze(0))[0]
    return float((d * Hd).sum() / denom)


# ---------------------------------------------------------------------- thresholds
def stability_threshold(lr: float, optimizer: str = "sgd", beta1: float = 0.9) -> float:
    """Largest (preconditioned) curvature at which the optimizer is linearly stable on a quadratic.

    - ``"sgd"`` / ``"gd"``: ``2/η`` (arXiv 2103.00065); compare with ``λ_max(H)``.
    - ``"momentum"`` (heavy ball, PyTorch's SGD momentum without dampening, β = ``beta1``):
      ``(2 + 2β)/η``; compare with ``λ_max(H)``.
    - ``"adam"`` / ``"adamw"``: ``(2 + 2β₁)/((1 − β₁)η)`` (38/η at β₁ = 0.9; arXiv 2207.14484),
      compare with ``λ_max(D H)`` (:func:`preconditioned_sharpness`). β₁ = 0 gives ``2/η``.

    All follow from the recursion ``x_{t+1} = x_t − η c λ x_t + β (x_t − x_{t−1})`` on one
    eigendirection (c = 1 for SGD, c = 1 − β for Adam's EMA momentum), stable iff
    ``η c λ < 2 + 2β``.
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if not 0.0 <= beta1 < 1.0:
        raise ValueError(f"beta1 must lie in [0, 1), got {beta1}")
    name = optimizer.lower()
    if name in ("sgd", "gd"):
        return 2.0 / lr
    if name in ("momentum", "heavy_ball"):
        return (2.0 + 2.0 * beta1) / lr
    if name in ("adam", "adamw"):
        return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)
    raise ValueError(f"unknown optimizer {optimizer!r}; allowed: 'sgd', 'gd', 'momentum', 'heavy_ball', 'adam', 'adamw'")


def spike_warning(
    curvature: float | Tensor,
    lr: float,
    optimizer: str = "adam",
    beta1: float = 0.0,
    margin: float = 1.0,
) -> bool:
    """``True`` when a curvature exceeds ``margin ×`` the stability threshold.

    Bai et al. (arXiv 2506.04805) find that an Adam loss spike sets in when the
    gradient-directional curvature of the preconditioned Hessian (:func:`directional_curvature`
    with the Adam preconditioner) exceeds ``2/η``, the threshold their analysis derives without
    momentum — the default here (``optimizer="adam", beta1=0``). Pass ``beta1`` for the
    momentum-corrected threshold of :func:`stability_threshold`, ``optimizer="sgd"`` for the
    edge-of-stability check ``λ_max(H) > 2/η``, or ``margin < 1`` to warn early.
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin}")
    return bool(float(curvature) > margin * stability_threshold(lr, optimizer, beta1))
