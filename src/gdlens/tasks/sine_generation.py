"""Frequency-cued sine generation (Sussillo & Barak 2013, doi:10.1162/NECO_a_00409):
a constant input tells the network which frequency to produce.

Each trial draws an angular frequency ω (radians per step) uniformly from ``frequencies``::

    x      (B, T, 1)  the constant cue ω / max(frequencies) (in (0, 1]), + noise per step
    target (B, T, 1)  sin(ω t), t = 1..T
    loss   "mse"

``info["omega"]`` (B,) holds each trial's ω. The default grid is 51 frequencies evenly spaced
in [0.1, 0.6] rad/step (periods of about 10 to 63 steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gdlens.tasks.base import TaskData, check_dtype, check_int, check_nonneg, gaussian, make_generator

__all__ = ["sine_generation", "sine_generation_metric"]


def sine_generation_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``mse``: mean squared error per step."""
    return {"mse": float((pred - data.target).pow(2).mean())}


def sine_generation(
    batch_size: int,
    T: int = 100,
    frequencies: Sequence[float] | None = None,
    noise: float = 0.0,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
) -> TaskData:
    """A batch of sine-generation trials (module docstring for shapes).

    Args:
        batch_size: B ≥ 1.  T: steps ≥ 1.
        frequencies: positive angular frequencies (rad/step) to draw from; default 51 values
            evenly spaced in [0.1, 0.6].
        noise: std ≥ 0 of Gaussian noise on the cue.  seed: int or torch.Generator.
        dtype: floating dtype of x and target.
    """
    check_int("batch_size", batch_size, 1)
    check_int("T", T, 1)
    noise = check_nonneg("noise", noise)
    dtype = check_dtype(dtype)
    if frequencies is None:
        omegas = torch.linspace(0.1, 0.6, 51, dtype=torch.float64)
    else:
        if isinstance(frequencies, (str, bytes)) or not isinstance(frequencies, Sequence) or len(frequencies) == 0:
            raise ValueError(f"frequencies must be a non-empty sequence of positive numbers, got {frequencies!r}")
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in frequencies):
            raise ValueError(f"frequencies must be positive numbers (rad/step), got {tuple(frequencies)!r}")
        omegas = torch.tensor([float(w) for w in frequencies], dtype=torch.float64)
    gen = make_generator(seed)

    omega = omegas[torch.randint(len(omegas), (batch_size,), generator=gen)]
    t = torch.arange(1, T + 1, dtype=torch.float64)
    x = (omega / omegas.max()).view(batch_size, 1, 1).expand(batch_size, T, 1)
    if noise > 0:
        x = x + gaussian((batch_size, T, 1), gen, torch.float64, noise)
    target = torch.sin(omega.view(batch_size, 1, 1) * t.view(1, T, 1))
    return TaskData(
        x=x.to(dtype).contiguous(), target=target.to(dtype), loss="mse", name="sine_generation",
        info={"omega": omega.to(dtype)}, metric_fn=sine_generation_metric,
    )
