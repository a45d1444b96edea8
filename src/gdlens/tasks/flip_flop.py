"""The K-bit flip-flop (Sussillo & Barak 2013, "Opening the black box", doi:10.1162/NECO_a_00409).

Each of ``bits`` input channels carries occasional ±1 pulses; the matching output must hold
the sign of the most recent pulse on its channel (0 before that channel's first pulse). A
pulse at step t already sets the target at step t.

    x      (B, T, bits)  pulses in {−1, 0, +1} (+ Gaussian noise of std ``noise``)
    target (B, T, bits)  the held sign in {−1, 0, +1}
    loss   "mse"

The random draws (:func:`flip_flop_pulses`) are separate from the target computation
(:func:`flip_flop_targets`), which is vectorised: one cumulative max over the time axis of a
key that encodes the pulse's step and sign finds the last pulse at or before each step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gdlens.tasks.base import (
    TaskData,
    check_dtype,
    check_int,
    check_nonneg,
    check_prob,
    gaussian,
    make_generator,
    masked_mean,
)

__all__ = ["flip_flop", "flip_flop_pulses", "flip_flop_targets", "flip_flop_metric"]


def flip_flop_pulses(
    batch_size: int, T: int, bits: int = 3, pulse_prob: float = 0.05, seed: int | torch.Generator = 0
) -> Tensor:
    """Pulses (B, T, bits) int8 in {−1, 0, +1}: each (trial, step, channel) independently
    is −1 with probability pulse_prob/2, +1 with probability pulse_prob/2, 0 otherwise."""
    check_int("batch_size", batch_size, 1)
    check_int("T", T, 1)
    check_int("bits", bits, 1)
    p = check_prob("pulse_prob", pulse_prob)
    gen = make_generator(seed)
    u = torch.rand(batch_size, T, bits, generator=gen)  # one uniform decides occurrence and sign
    pulse, negative = (u < p).view(torch.int8), (u < 0.5 * p).view(torch.int8)
    return torch.sub(pulse, negative, alpha=2)  # 1 − 2 = −1 below p/2, 1 in [p/2, p), 0 above


def flip_flop_targets(pulses: Tensor) -> Tensor:
    """Held signs (B, T, C) int8 of pulses (B, T, C): ``target[b, t, c]`` is the sign of the
    last nonzero ``pulses[b, s, c]`` with s ≤ t, or 0 when there is none.

    Vectorised as one cumulative max over time of a key that orders pulses by time and carries
    their sign in its two low bits: ``key = 4(s + 1) + 2 + sign`` at a pulse (≡ 1 or 3 mod 4,
    and > 2), ``key = 2`` elsewhere; the running max is the key of the last pulse (or 2), and
    ``(max mod 4) − 2`` is −1, +1 (or 0).
    """
    if pulses.dim() != 3:
        raise ValueError(f"pulses must have shape (B, T, C), got {tuple(pulses.shape)}")
    T = pulses.shape[1]
    key_dtype = torch.int16 if 4 * T + 7 <= torch.iinfo(torch.int16).max else torch.int64
    sign = pulses.sign().to(torch.int8)
    base = (4 * torch.arange(1, T + 1, dtype=key_dtype, device=pulses.device) + 2).view(1, T, 1)
    key = (base + sign).masked_fill_(sign == 0, 2)
    last = key.cummax(dim=1).values
    return last.bitwise_and_(3).to(torch.int8).sub_(2)


def flip_flop_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``accuracy``: fraction of (trial, step, channel) after the channel's first pulse where
    sign(pred) equals the target; ``mse``: mean squared error per entry over all entries."""
    target = data.target
    started = target != 0
    correct = (pred.sign() == target).float()
    return {"accuracy": masked_mean(correct, started), "mse": float((pred - target).pow(2).mean())}


def flip_flop(
    batch_size: int,
    T: int = 90,
    bits: int = 3,
    pulse_prob: float = 0.05,
    noise: float = 0.0,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
) -> TaskData:
    """A batch of K-bit flip-flop trials (see the module docstring for shapes).

    Args:
        batch_size: B ≥ 1.  T: steps ≥ 1.  bits: channels ≥ 1.
        pulse_prob: probability of a pulse per (step, channel), in [0, 1].
        noise: std ≥ 0 of Gaussian noise added to the inputs (the target uses the clean pulses).
        seed: int or torch.Generator.  dtype: floating dtype of x and target.

    ``info["pulses"]`` holds the clean pulses (B, T, bits) int8.
    """
    dtype = check_dtype(dtype)
    noise = check_nonneg("noise", noise)
    gen = make_generator(seed)
    pulses = flip_flop_pulses(batch_size, T, bits, pulse_prob, gen)
    x = pulses.to(dtype)
    if noise > 0:
        x = x + gaussian(tuple(x.shape), gen, dtype, noise)
    target = flip_flop_targets(pulses).to(dtype)
    return TaskData(
        x=x, target=target, loss="mse", name="flip_flop", info={"pulses": pulses}, metric_fn=flip_flop_metric
    )
