"""The loss L of gdlens (docs/design.md, conventions): one implementation for the tasks, the
flow (KP identities), the training loop and the probes. Imports torch only, so every layer of
the package may import it.

Shapes: y is the model output ``(B, ..., O)``: batch first, outputs (or class logits) last,
any number of axes between (usually time, ``(B, T, O)``; none for static tasks, ``(N, O)``).
A *step* is one index of ``y.shape[:-1]`` (a trial b and a time t). The loss is::

    L = (1/B) Σ_b Σ_t m_bt ℓ(y_bt, y*_bt)       (mean over the batch, sum over steps)

- ``"mse"``: ``ℓ = Σ_o (y_bto − y*_bto)²`` — summed over outputs, no ½. Target: y's shape.
  Equal to ``F.mse_loss(y, y*, reduction="sum") / B``.
- ``"cross_entropy"``: with integer classes ``c`` of shape ``y.shape[:-1]``,
  ``ℓ = −log softmax(y_bt)[c_bt]``; with class probabilities ``p`` of y's shape,
  ``ℓ = −Σ_o p_bto log softmax(y_bt)_o`` (one-hot p gives the class form). Equal to
  ``F.cross_entropy(y.reshape(-1, O), target, reduction="sum") / B``.
- ``mask``: optional ``m`` of shape ``y.shape[:-1]`` (bool, or real weights); None counts every
  step. The divisor stays B (not the number of unmasked steps), so L is additive over trials
  and its gradient is the same whichever steps the mask removes.

Every identity of the KP decomposition (``e = ∂L/∂z``, ``dz/dτ = −G e``, ``step_check``) is
tested with this L; :func:`loss_value` is what ``TaskData.loss_value`` and ``gd.train`` compute.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "LOSSES",
    "LossFn",
    "loss_value",
    "per_step_loss",
    "mse_loss",
    "cross_entropy_loss",
    "resolve_loss",
    "check_target",
]

LOSSES = ("mse", "cross_entropy")

LossFn = Callable[[Tensor, Tensor], Tensor]


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def _check_shapes(y: Tensor, target: Tensor, loss: str) -> None:
    """ValueError unless ``target`` fits the output y for ``loss`` (shapes and dtype only)."""
    _check_tensor("y", y)
    _check_tensor("target", target)
    if y.dim() < 1:
        raise ValueError("y must have a batch axis: shape (B, ..., O), got a 0-d tensor")
    y_shape, t_shape = tuple(y.shape), tuple(target.shape)
    if loss == "mse":
        if t_shape != y_shape:
            raise ValueError(f"loss='mse' needs a target shaped like the output y {y_shape}, got target {t_shape}")
    elif loss == "cross_entropy":
        if target.dtype.is_floating_point:
            if t_shape != y_shape:
                raise ValueError(
                    f"loss='cross_entropy' with class probabilities needs a target shaped like the logits y "
                    f"{y_shape}, got target {t_shape} (or pass integer classes of shape {y_shape[:-1]})"
                )
        elif target.dtype == torch.bool or target.is_complex():
            raise ValueError(
                f"loss='cross_entropy' needs integer classes or real probabilities, got dtype {target.dtype}"
            )
        elif t_shape != y_shape[:-1]:
            raise ValueError(
                f"loss='cross_entropy' needs integer class targets of shape y.shape[:-1] = {y_shape[:-1]} "
                f"(logits y {y_shape}), got target {t_shape}"
            )
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def per_step_loss(y: Tensor, target: Tensor, loss: str = "mse") -> Tensor:
    """``ℓ(y_bt, y*_bt)`` of every step, shape ``y.shape[:-1]`` (module docstring).

    ValueError when the target's shape does not fit ``loss`` (naming both shapes) or ``loss`` is
    not one of :data:`LOSSES`; TypeError for a non-tensor."""
    _check_shapes(y, target, loss)
    if loss == "mse":
        return (y - target.to(y.dtype)).pow(2).sum(-1)
    logp = torch.log_softmax(y, dim=-1)
    if target.dtype.is_floating_point:
        return -(target.to(y.dtype) * logp).sum(-1)
    return -logp.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)


def loss_value(y: Tensor, target: Tensor, loss: str = "mse", mask: Tensor | None = None) -> Tensor:
    """``L = (1/B) Σ_{b,t} m_bt ℓ(y_bt, y*_bt)``, a 0-d tensor (module docstring).

    Args:
        y: the output ``(B, ..., O)`` (logits for cross-entropy).
        target: y's shape (``"mse"``, or probabilities for ``"cross_entropy"``), or integer
            classes of shape ``y.shape[:-1]`` (``"cross_entropy"``).
        loss: ``"mse"`` or ``"cross_entropy"``.
        mask: None, or ``m`` of shape ``y.shape[:-1]`` (bool or real weights).
    """
    ell = per_step_loss(y, target, loss)
    if mask is not None:
        _check_tensor("mask", mask)
        if tuple(mask.shape) != tuple(ell.shape):
            raise ValueError(
                f"mask must have the steps' shape y.shape[:-1] = {tuple(ell.shape)} (one entry per trial and "
                f"step), got mask {tuple(mask.shape)}"
            )
        ell = ell * mask.to(ell.dtype)
    return ell.sum() / y.shape[0]


def mse_loss(y: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``L = (1/B) Σ_{b,t,o} m_bt (y_bto − y*_bto)²`` (summed over outputs, no ½):
    :func:`loss_value` with ``loss="mse"``. y, target: one shape ``(B, ..., O)``."""
    return loss_value(y, target, "mse", mask)


def cross_entropy_loss(y: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``L = (1/B) Σ_{b,t} m_bt ℓ_bt`` with the per-step cross-entropy ℓ of the logits y
    ``(B, ..., O)`` and integer classes ``(B, ...)`` or probabilities ``(B, ..., O)``:
    :func:`loss_value` with ``loss="cross_entropy"``."""
    return loss_value(y, target, "cross_entropy", mask)


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
    """Check ``target`` against the output y for the loss ``name`` once, before the loss is
    evaluated many times; return it in y's dtype where it is real-valued (integer classes as
    long). ValueError naming both shapes on a mismatch.

    - ``"mse"``: a real target of y's shape.
    - ``"cross_entropy"``: integer classes of shape ``y.shape[:-1]`` with values in 0..O−1, or
      probabilities of y's shape.
    - ``"callable"``: not checked (the callable owns its conventions).
    """
    _check_tensor("target", target)
    if name == "callable":
        return target
    if name == "mse" and not target.dtype.is_floating_point:
        raise ValueError(f"loss='mse' needs a real-valued target, got dtype {target.dtype}")
    _check_shapes(y, target, name)
    if target.dtype.is_floating_point:
        return target.to(y.dtype)
    O = y.shape[-1]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= O):
        raise ValueError(
            f"cross_entropy class targets must lie in 0..{O - 1} (O = {O}), "
            f"got values in {int(target.min())}..{int(target.max())}"
        )
    return target.long()
