"""Go / anti / memory-guided saccade tasks on a ring (Yang et al. 2019, "Task representations
in neural networks trained to perform many cognitive tasks", doi:10.1038/s41593-018-0310-2;
Driscoll et al. 2024, doi:10.1038/s41593-024-01668-6), with the direction coded as
(cos θ, sin θ) instead of a ring of units. Variants and their names there:

    "pro"         Yang's Go         / Driscoll's DelayPro    stimulus stays on
    "anti"        Yang's Anti       / Driscoll's DelayAnti   stimulus stays on, answer θ + π
    "delay"       Yang's Dly Go     / Driscoll's MemoryPro   stimulus off in the delay (default)
    "delay_anti"  Yang's Dly Anti   / Driscoll's MemoryAnti  the same, answer θ + π

A trial has four epochs of fixed length, in steps::

    fixation [0, T_fix)  stimulus [.., +T_stim)  delay [.., +T_delay)  response [.., +T_resp)

Inputs x (B, T, 3) = [fixation cue, stimulus cos θ, stimulus sin θ] (+ 4 context channels, a
one-hot of the variant in ``VARIANTS`` order, when ``context=True``):

- fixation cue: 1 before the response epoch, 0 during it (the go signal);
- stimulus: (cos θ, sin θ) from the stimulus onset to the end of the trial for ``"pro"`` and
  ``"anti"``; only during the stimulus epoch for ``"delay"`` and ``"delay_anti"`` (zero in
  the delay and the response, so the direction must be remembered).

Targets (B, T, 3) = [fixation output, cos φ, sin φ]: fixation output 1 before the response
epoch and 0 during it; (cos φ, sin φ) during the response epoch and 0 before it, with φ = θ
for ``"pro"``/``"delay"`` and φ = θ + π for ``"anti"``/``"delay_anti"``. Every step counts in
the loss (``mask`` None); ``info["response"]`` (B, T) bool marks the response epoch. θ is
uniform on [0, 2π), ``info["theta"]`` (B,). Gaussian noise of std ``noise`` is added to the
fixation and stimulus inputs (not to the context).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gdlens.tasks.base import (
    TaskData,
    check_choice,
    check_dtype,
    check_int,
    check_nonneg,
    gaussian,
    make_generator,
    masked_mean,
)

__all__ = ["memory_pro", "memory_pro_metric", "VARIANTS"]

VARIANTS = ("pro", "anti", "delay", "delay_anti")


def wrap_angle(a: Tensor) -> Tensor:
    """Angles mapped to [−π, π)."""
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def memory_pro_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``angle_error``: mean |angle(pred_cos, pred_sin) − φ| (radians, wrapped) over response
    steps (those whose fixation target is 0); ``fixation_accuracy``: fraction of all steps where
    (pred_fixation > 0.5) matches the target fixation; ``mse``: mean squared error per entry."""
    target = data.target
    response = target[..., 0] < 0.5
    phi = torch.atan2(target[..., 2], target[..., 1])
    angle = torch.atan2(pred[..., 2], pred[..., 1])
    err = wrap_angle(angle - phi).abs()
    fix_ok = ((pred[..., 0] > 0.5) == (target[..., 0] > 0.5)).float()
    return {
        "angle_error": masked_mean(err, response),
        "fixation_accuracy": float(fix_ok.mean()),
        "mse": float((pred - target).pow(2).mean()),
    }


def memory_pro(
    batch_size: int,
    T_fix: int = 10,
    T_stim: int = 10,
    T_delay: int = 20,
    T_resp: int = 10,
    variant: str = "delay",
    noise: float = 0.0,
    context: bool = False,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
) -> TaskData:
    """A batch of one ring task (see the module docstring for epochs, shapes and channels).

    Args:
        batch_size: B ≥ 1.  T_fix, T_delay: steps ≥ 0.  T_stim, T_resp: steps ≥ 1.
        variant: one of ``VARIANTS`` = ("pro", "anti", "delay", "delay_anti").
        noise: input noise std ≥ 0.  context: append the one-hot variant channels.
        seed: int or torch.Generator.  dtype: floating dtype of x and target.
    """
    check_int("batch_size", batch_size, 1)
    check_int("T_fix", T_fix, 0)
    check_int("T_stim", T_stim, 1)
    check_int("T_delay", T_delay, 0)
    check_int("T_resp", T_resp, 1)
    check_choice("variant", variant, VARIANTS)
    noise = check_nonneg("noise", noise)
    dtype = check_dtype(dtype)
    gen = make_generator(seed)

    T = T_fix + T_stim + T_delay + T_resp
    stim_on, resp_on = T_fix, T_fix + T_stim + T_delay
    stim_off = T if variant in ("pro", "anti") else T_fix + T_stim
    step = torch.arange(T)
    response = (step >= resp_on).expand(batch_size, T)
    stimulus = ((step >= stim_on) & (step < stim_off)).to(torch.float64)  # (T,)

    theta = 2 * math.pi * torch.rand(batch_size, generator=gen, dtype=torch.float64)
    phi = theta + math.pi if variant in ("anti", "delay_anti") else theta
    direction = torch.stack([theta.cos(), theta.sin()], dim=-1)  # (B, 2)
    answer = torch.stack([phi.cos(), phi.sin()], dim=-1)

    fixation = (~response).to(torch.float64).unsqueeze(-1)  # (B, T, 1)
    x = torch.cat([fixation, stimulus.view(1, T, 1) * direction.unsqueeze(1)], dim=-1)
    if noise > 0:
        x = x + gaussian(tuple(x.shape), gen, torch.float64, noise)
    if context:
        rule = torch.zeros(batch_size, T, len(VARIANTS), dtype=torch.float64)
        rule[..., VARIANTS.index(variant)] = 1.0
        x = torch.cat([x, rule], dim=-1)
    target = torch.cat([fixation, response.unsqueeze(-1).to(torch.float64) * answer.unsqueeze(1)], dim=-1)
    info = {"theta": theta.to(dtype), "response": response.clone(), "variant": variant}
    return TaskData(
        x=x.to(dtype), target=target.to(dtype), loss="mse", name="memory_pro", info=info, metric_fn=memory_pro_metric
    )
