"""One-step forecasting of a random low-rank linear dynamical system.

The system (fixed by ``system_seed``, shared by every trial and every batch of that seed)::

    s_{t+1} = A s_t + noise · ξ_t,      A = Q R Qᵀ  (dim × dim, rank ``rank``)

Q (dim, rank) has orthonormal columns (QR of a Gaussian matrix); R is block-diagonal with
2 × 2 blocks ρ·rot(ω_i), ω_i uniform in [0.1, 0.5] rad/step, and a last 1 × 1 block ρ when
``rank`` is odd: damped rotations in a ``rank``-dimensional subspace, spectral radius
ρ = ``radius``. Each trial starts from s_0 ~ N(0, I_dim) (drawn from ``seed``)::

    x      (B, T, dim)  s_0 .. s_{T−1}
    target (B, T, dim)  s_1 .. s_T       (the next state)
    loss   "mse"

``info``: ``A`` (dim, dim), ``Q`` (dim, rank), ``R`` (rank, rank).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gdlens.tasks.base import TaskData, check_dtype, check_int, check_nonneg, gaussian, make_generator

__all__ = ["low_rank_forecast", "low_rank_system", "low_rank_forecast_metric"]


def low_rank_system(dim: int, rank: int, radius: float = 0.98, system_seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """``(A, Q, R)`` in float64 (see the module docstring)."""
    check_int("dim", dim, 1)
    check_int("rank", rank, 1)
    if rank > dim:
        raise ValueError(f"rank must be an int in 1..dim = 1..{dim}, got {rank}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0.0 < radius <= 1.0:
        raise ValueError(f"radius must be a number in (0, 1], got {radius!r}")
    gen = make_generator(system_seed)
    Q, _ = torch.linalg.qr(torch.randn(dim, rank, generator=gen, dtype=torch.float64))
    R = torch.zeros(rank, rank, dtype=torch.float64)
    angles = 0.1 + 0.4 * torch.rand(rank // 2, generator=gen, dtype=torch.float64)
    for i, w in enumerate(angles.tolist()):
        c, s = math.cos(w), math.sin(w)
        R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    if rank % 2:
        R[-1, -1] = 1.0
    R = radius * R
    return Q @ R @ Q.T, Q, R


def low_rank_forecast_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``mse``: mean squared error per entry."""
    return {"mse": float((pred - data.target).pow(2).mean())}


def low_rank_forecast(
    batch_size: int,
    T: int = 50,
    dim: int = 16,
    rank: int = 2,
    radius: float = 0.98,
    noise: float = 0.0,
    system_seed: int = 0,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
) -> TaskData:
    """A batch of trajectories of the low-rank system (module docstring for shapes).

    Args:
        batch_size: B ≥ 1.  T: steps ≥ 1.  dim: state size ≥ 1.  rank: 1..dim.
        radius: spectral radius ρ in (0, 1].  noise: std ≥ 0 of the process noise ξ.
        system_seed: fixes A (keep it when drawing fresh batches with new ``seed``\\ s).
        seed: int or torch.Generator for the initial states and the noise.
        dtype: floating dtype of x and target.
    """
    check_int("batch_size", batch_size, 1)
    check_int("T", T, 1)
    noise = check_nonneg("noise", noise)
    dtype = check_dtype(dtype)
    A, Q, R = low_rank_system(dim, rank, radius, system_seed)
    gen = make_generator(seed)

    s = torch.randn(batch_size, dim, generator=gen, dtype=torch.float64)
    states = [s]
    for _ in range(T):
        s = s @ A.T
        if noise > 0:
            s = s + gaussian((batch_size, dim), gen, torch.float64, noise)
        states.append(s)
    traj = torch.stack(states, dim=1)  # (B, T + 1, dim)
    return TaskData(
        x=traj[:, :-1].to(dtype), target=traj[:, 1:].to(dtype), loss="mse", name="low_rank_forecast",
        info={"A": A.to(dtype), "Q": Q.to(dtype), "R": R.to(dtype)}, metric_fn=low_rank_forecast_metric,
    )
