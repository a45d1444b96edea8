"""Go / anti / memory-guided saccade tasks on a ring (Yang et al. 2019, "Task representations
in neural networks trained to perform many cognitive tasks", doi:10.1038/s41593-018-0310-2;
Driscoll et al. 2024, doi:10.1038/s41593-024-01668-6), with the direction coded as
(cos θ, sin θ) instead of a ring of units. The variants carry Driscoll et al.'s names (the
KPFlow paper's Memory-Pro, arXiv 2507.06381, is ``"MemoryPro"``):

    "DelayPro"    Yang's Go       stimulus stays on until the end, answer θ
    "DelayAnti"   Yang's Anti     stimulus stays on until the end, answer θ + π
    "MemoryPro"   Yang's Dly Go   stimulus off in the delay, answer θ (default)
    "MemoryAnti"  Yang's Dly Anti stimulus off in the delay, answer θ + π

The former names still work with a DeprecationWarning (``DEPRECATED_VARIANTS``): "pro" is
DelayPro, "anti" DelayAnti, "delay" MemoryPro and "delay_anti" **MemoryAnti** — not DelayAnti,
which is why they were renamed.

A trial has four epochs of fixed length, in steps::

    fixation [0, T_fix)  stimulus [.., +T_stim)  delay [.., +T_delay)  response [.., +T_resp)

Inputs x (B, T, 3) = [fixation cue, stimulus cos θ, stimulus sin θ] (+ 4 context channels, a
one-hot of the variant in ``VARIANTS`` order, when ``context=True``):

- fixation cue: 1 before the response epoch, 0 during it (the go signal);
- stimulus: (cos θ, sin θ) from the stimulus onset to the end of the trial for DelayPro and
  DelayAnti; only during the stimulus epoch for MemoryPro and MemoryAnti (zero in the delay
  and the response, so the direction must be remembered).

Targets (B, T, 3) = [fixation output, cos φ, sin φ]: fixation output 1 before the response
epoch and 0 during it; (cos φ, sin φ) during the response epoch and 0 before it, with φ = θ
for the Pro variants and φ = θ + π for the Anti ones. Every step counts in
the loss (``mask`` None); ``info["response"]`` (B, T) bool marks the response epoch. θ is
uniform on [0, 2π), ``info["theta"]`` (B,). Gaussian noise of std ``noise`` is added to the
fixation and stimulus inputs (not to the context).

Presets (``preset=``, ``PRESETS``): ``"kpflow"`` is the KPFlow paper's Memory-Pro length,
T = 90 steps as three 30-step periods — stimulus, memory (delay), response — with no
fixation-only epoch (T_fix = 0). Epoch arguments passed explicitly override the preset's.
"""

from __future__ import annotations

import math
import warnings

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

__all__ = ["memory_pro", "memory_pro_metric", "VARIANTS", "DEPRECATED_VARIANTS", "PRESETS", "canonical_variant"]

#: the variants, in the order of the context channels
VARIANTS = ("DelayPro", "DelayAnti", "MemoryPro", "MemoryAnti")

#: former variant names -> the variant they always meant
DEPRECATED_VARIANTS = {"pro": "DelayPro", "anti": "DelayAnti", "delay": "MemoryPro", "delay_anti": "MemoryAnti"}

#: epoch lengths by preset name
PRESETS: dict[str, dict[str, int]] = {"kpflow": {"T_fix": 0, "T_stim": 30, "T_delay": 30, "T_resp": 30}}

_DEFAULT_EPOCHS = {"T_fix": 10, "T_stim": 10, "T_delay": 20, "T_resp": 10}


def canonical_variant(variant: str) -> str:
    """``variant`` if it is one of ``VARIANTS``; a former name mapped to its variant with a
    DeprecationWarning; ValueError otherwise."""
    if variant in DEPRECATED_VARIANTS:
        new = DEPRECATED_VARIANTS[variant]
        warnings.warn(
            f"memory_pro variant {variant!r} is deprecated: it is {new!r} (Driscoll et al.'s name); "
            f"pass variant={new!r}",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    return check_choice("variant", variant, VARIANTS)


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
    T_fix: int | None = None,
    T_stim: int | None = None,
    T_delay: int | None = None,
    T_resp: int | None = None,
    variant: str = "MemoryPro",
    noise: float = 0.0,
    context: bool = False,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
    preset: str | None = None,
) -> TaskData:
    """A batch of one ring task (see the module docstring for epochs, shapes and channels).

    Args:
        batch_size: B ≥ 1.  T_fix, T_delay: steps ≥ 0.  T_stim, T_resp: steps ≥ 1; None takes
            the preset's value, or without a preset 10, 10, 20, 10.
        variant: one of ``VARIANTS`` = ("DelayPro", "DelayAnti", "MemoryPro", "MemoryAnti")
            (the former names "pro", "anti", "delay", "delay_anti" are deprecated).
        noise: input noise std ≥ 0.  context: append the one-hot variant channels.
        seed: int or torch.Generator.  dtype: floating dtype of x and target.
        preset: None or a name of ``PRESETS`` (``"kpflow"``: T = 90 as 30/30/30).
    """
    check_int("batch_size", batch_size, 1)
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be None or one of {tuple(PRESETS)}, got {preset!r}")
    given = {"T_fix": T_fix, "T_stim": T_stim, "T_delay": T_delay, "T_resp": T_resp}
    base = PRESETS[preset] if preset is not None else _DEFAULT_EPOCHS
    T_fix, T_stim, T_delay, T_resp = (base[k] if v is None else v for k, v in given.items())
    check_int("T_fix", T_fix, 0)
    check_int("T_stim", T_stim, 1)
    check_int("T_delay", T_delay, 0)
    check_int("T_resp", T_resp, 1)
    variant = canonical_variant(variant)
    noise = check_nonneg("noise", noise)
    dtype = check_dtype(dtype)
    gen = make_generator(seed)

    T = T_fix + T_stim + T_delay + T_resp
    stim_on, resp_on = T_fix, T_fix + T_stim + T_delay
    stim_off = T if variant.startswith("Delay") else T_fix + T_stim
    step = torch.arange(T)
    response = (step >= resp_on).expand(batch_size, T)
    stimulus = ((step >= stim_on) & (step < stim_off)).to(torch.float64)  # (T,)

    theta = 2 * math.pi * torch.rand(batch_size, generator=gen, dtype=torch.float64)
    phi = theta + math.pi if variant.endswith("Anti") else theta
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
