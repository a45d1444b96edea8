"""Losses in gdlens' convention (docs/design.md, conventions) and the checks of a target against the output.

Every loss here is the whole reduction ``L(y, target) -> scalar``::

    L = (1/B) Σ_b Σ_t ℓ(y_{bt}, target_{bt})          (mean over the batch, sum over time)

with y the readout's output (B, T', O). The flow (error, adjoint, G, step_check) uses the
same L, so the identities between them hold exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["LossFn", "mse_loss", "cross_entropy_loss", "resolve_loss", "check_target"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def mse_loss(y: Tensor, target: Tensor) -> Tensor:
    """``L = (1/B) Σ_{b,t,o} (y_{bto} − y*_{bto})²`` (summed over outputs, no ½).

    y, target: (B, T', O) of one shape."""
    return (y - target).pow(2).sum() / y.shape[0]


def cross_entropy_loss(y: Tensor, target: Tensor) -> Tensor:
    """``L = (1/B) Σ_{b,t} −log softmax(y_{bt})[c_{bt}]``: per-step cross-entropy, summed
    over steps, averaged over the batch.

    y: logits (B, T', O). target: integer classes c (B, T') in 0..O−1, or class
    probabilities p (B, T', O), for which ``ℓ = −Σ_o p_o log softmax(y)_o``."""
    logp = torch.log_softmax(y, dim=-1)
    if target.dtype.is_floating_point:
        nll = -(target * logp).sum()
    else:
        nll = -logp.gather(-1, target.unsqueeze(-1)).sum()
    return nll / y.shape[0]


_NAMED: dict[str, LossFn] = {"mse": mse_loss, "cross_entropy": cross_entropy_loss}


def resolve_loss(loss: str | LossFn) -> tuple[str, LossFn]:
    """``(name, L)`` for ``"mse"``, ``"cross_entropy"`` or a callable ``loss(y, target) -> scalar``
    (whose name is ``"callable"``); ValueError for an unknown name, TypeError for anything else."""
    if isinstance(loss, str):
        if loss not in _NAMED:
            raise ValueError(f"loss must be one of {sorted(_NAMED)} or a callable (y, target) -> scalar, got {loss!r}")
        return loss, _NAMED[loss]
    if callable(loss):
        return "callable", loss
    raise TypeError(f"loss must be a string or a callable (y, target) -> scalar, got {type(loss).__name__}")


def check_target(name: str, y: Tensor, target: Tensor) -> Tensor:
    """Check ``target`` against the model output y (B, T', O) for the loss ``name``; return the
    target in y's dtype where it is real-valued. ValueError naming both shapes on a mismatch.

    - ``"mse"``: target of y's shape.
    - ``"cross_entropy"``: integer classes of shape y.shape[:-1] with values in 0..O−1, or
      probabilities of y's shape.
    - ``"callable"``: not checked (the callable owns its conventions).
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if name == "callable":
        return target
    y_shape, t_shape = tuple(y.shape), tuple(target.shape)
    if name == "mse":
        if t_shape != y_shape:
            raise ValueError(
                f"loss='mse' needs a target shaped like the model output y {y_shape}, got target {t_shape}"
            )
        if not target.dtype.is_floating_point:
            raise ValueError(f"loss='mse' needs a real-valued target, got dtype {target.dtype}")
        return target.to(y.dtype)
    # cross-entropy
    if target.dtype.is_floating_point:
        if t_shape != y_shape:
            raise ValueError(
                f"loss='cross_entropy' with class probabilities needs a target shaped like the logits y {y_shape}, "
                f"got target {t_shape}"
            )
        return target.to(y.dtype)
    if t_shape != y_shape[:-1]:
        raise ValueError(
            f"loss='cross_entropy' needs integer class targets of shape y.shape[:-1] = {y_shape[:-1]} "
            f"(logits y {y_shape}), got target {t_shape}"
        )
    if target.dtype == torch.bool or target.is_complex():
        raise ValueError(f"loss='cross_entropy' needs integer class targets, got dtype {target.dtype}")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= y_shape[-1]):
        raise ValueError(
            f"cross_entropy class targets must lie in 0..{y_shape[-1] - 1} (O = {y_shape[-1]}), "
            f"got values in {int(target.min())}..{int(target.max())}"
        )
    return target.long()
