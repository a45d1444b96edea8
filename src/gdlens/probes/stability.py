"""Linear stability of an optimizer: Adam's preconditioner, the preconditioned Hessian and its
sharpness, curvature along the update direction, and the thresholds these are compared with.

Near a point θ an optimizer with step η iterates ``δθ ← (I − η D H) δθ`` (D = I for GD, Adam's
diagonal ``D = 1/(√v̂ + ε)``), stable while the top eigenvalue of ``D H`` stays below a threshold
(:func:`stability_threshold`): ``2/η`` for GD (edge of stability, Cohen et al. arXiv 2103.00065),
``(2 + 2β₁)/((1 − β₁)η)`` for Adam (Cohen et al. arXiv 2207.14484). Adam's loss spikes set in
when the curvature of the preconditioned Hessian along the gradient crosses ``2/η`` (Bai et al.
arXiv 2506.04805; :func:`directional_curvature`, :func:`spike_warning`).

Conventions (``loss_fn``, ``params``, flat vectors, backends): :mod:`gdlens.probes.hessian`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gdlens.operators import CallableOperator, Eigs, LinearOperator, top_eigs
from gdlens.probes._utils import flat_vector, flatten_params, leaves
from gdlens.probes.hessian import LossFn, _checked_hessian

__all__ = [
    "adam_preconditioner",
    "preconditioned_hessian_operator",
    "preconditioned_sharpness",
    "directional_curvature",
    "stability_threshold",
    "spike_warning",
]


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
    loss_fn: LossFn,
    params: Any,
    preconditioner: Any,
    vectorize: bool = True,
    backend: str = "func",
    hessian: LinearOperator | None = None,
) -> LinearOperator:
    """The symmetric preconditioned Hessian ``D^{1/2} H D^{1/2}`` on flat vectors.

    ``preconditioner`` is a positive diagonal D, flat ``(n,)`` or shaped like ``params``, or an
    Adam/AdamW optimizer (then ``D = 1/(√v̂ + ε)``, see :func:`adam_preconditioner`). Its
    eigenvalues are those of ``D H`` (see :func:`preconditioned_sharpness`). ``hessian``: H at the
    same point, already built (:func:`~gdlens.probes.hessian.hessian_operator`; ``vectorize`` and
    ``backend`` build it otherwise).
    """
    flat0, _ = flatten_params(params)
    if not flat0.dtype.is_floating_point:
        raise ValueError(f"params must be floating point, got {flat0.dtype}")
    s = _preconditioner(preconditioner, params, flat0).sqrt()
    H = _checked_hessian(hessian, loss_fn, params, vectorize=vectorize, backend=backend)
    return CallableOperator(
        lambda U: s * H.matmat(s * U), (flat0.numel(),), is_symmetric=True, dtype=flat0.dtype, device=flat0.device
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
    backend: str = "func",
    hessian: LinearOperator | None = None,
    v0: Tensor | None = None,
    v0_noise: float = 0.0,
    return_vectors: bool = False,
) -> float | Eigs:
    """Adam's preconditioned sharpness ``λ_max(D H)``, ``D = diag(1/(√v̂ + ε))`` (arXiv 2207.14484).

    Near a point θ, Adam (ignoring momentum) iterates ``δθ ← (I − η D H) δθ``, so it is stable
    while ``λ_max(D H) < 2/η`` (``(2 + 2β₁)/((1 − β₁)η)`` with momentum, see
    :func:`stability_threshold`). ``D H`` is not symmetric, but it is similar to the symmetric
    ``D^{1/2} H D^{1/2} = D^{-1/2} (D H) D^{1/2}``, which has the same (real) eigenvalues; we run
    symmetric Lanczos (:func:`gdlens.operators.top_eigs`) on that matrix, where its convergence
    guarantees hold.

    Args:
        loss_fn, params: as in :func:`~gdlens.probes.hessian.hessian_operator`; ``params`` must be
            the optimizer's own tensors (looked up in its state by identity).
        optimizer: a ``torch.optim.Adam``/``AdamW`` that has taken a step, or a positive flat
            diagonal D ``(n,)`` directly.
        method, tol, seed, block_size, max_matvecs, backend, hessian, v0, v0_noise: as in
            :func:`~gdlens.probes.hessian.top_hessian_eig` (v0 a warm start for the top
            eigenvector of ``D^{1/2} H D^{1/2}``).
        return_vectors: return the :class:`~gdlens.operators.Eigs` (value and its ``(1, n)``
            eigenvector of ``D^{1/2} H D^{1/2}``, for the next warm start) instead of the float.

    Returns:
        ``λ_max(D^{1/2} H D^{1/2})`` as a float (or the Eigs).

    Raises:
        ValueError: if the optimizer is not Adam/AdamW or has no state yet.
    """
    if isinstance(optimizer, torch.optim.Optimizer) and not isinstance(optimizer, torch.optim.Adam):
        raise ValueError(
            f"preconditioned_sharpness needs a torch.optim.Adam or torch.optim.AdamW optimizer, got "
            f"{type(optimizer).__name__}"
        )
    A = preconditioned_hessian_operator(loss_fn, params, optimizer, vectorize, backend, hessian)
    eigs = top_eigs(
        A, 1, which="largest", method=method, tol=tol, seed=seed, block_size=block_size, max_matvecs=max_matvecs,
        v0=v0, v0_noise=v0_noise,
    )
    return eigs if return_vectors else float(eigs.values[0])


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

    ``hessian``: the Hessian at the same point, already built
    (:func:`~gdlens.probes.hessian.hessian_operator`), to apply instead of building one; one
    that carries the gradient it was built from (its ``gradient`` attribute: backends ``"func"``
    and ``"autograd"``) makes the call a single Hessian–vector product.

    Returns:
        λ_dir as a float; ``nan`` when the direction is zero (e.g. g = 0 at a critical point).
    """
    flat0, _ = flatten_params(params)
    if direction is None and hessian is not None and getattr(hessian, "gradient", None) is None:
        hessian = None  # e.g. the "forward" backend: build one that carries the gradient
    H = _checked_hessian(hessian, loss_fn, params)
    D = None if preconditioner is None else _preconditioner(preconditioner, params, flat0)
    if direction is None:
        g = H.gradient.to(device=flat0.device, dtype=flat0.dtype)
        d = g if D is None else D * g
    else:
        d = flat_vector(direction, params, flat0.numel(), "direction").to(device=flat0.device, dtype=flat0.dtype)
    denom = (d * d).sum() if D is None else (d * d / D).sum()
    if float(denom) == 0.0:
        return float("nan")
    Hd = H.matmat(d.unsqueeze(0))[0]
    return float((d * Hd).sum() / denom)


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
