"""A sum of sines on a uniform grid, the target of the frequency principle (Xu et al. 2019,
"Frequency principle: Fourier analysis sheds light on deep neural networks", arXiv 1901.06523).

On the domain [lo, hi) of length L, with ``n_points`` = N grid points x_j = lo + j L / N
(j = 0..N−1, the right end excluded so the grid is one period)::

    y(x) = Σ_k A_k sin(2π f_k (x − lo) / L) + noise · N(0, 1)

with integer frequencies f_k (cycles per domain length). On (−π, π) this is Σ_k A_k sin(f_k x)
up to the sign (−1)^{f_k}; on (0, 1) it is Σ_k A_k sin(2π f_k x). The DFT of the noiseless y
over the grid is nonzero exactly at bins f_k (and N − f_k), with magnitude N A_k / 2.

    x       (N, 1)  the grid
    target  (N, 1)  y
    loss    "mse" (L = mean over points of the squared error)

No time axis. ``seed`` only draws the noise (with ``noise=0`` every seed gives the same
data). ``info``: ``frequencies``, ``amplitudes``, ``domain``, ``n_points``, ``clean`` (N, 1)
the noiseless y.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from gdlens.tasks.base import TaskData, check_dtype, check_int, check_nonneg, gaussian, make_generator

__all__ = ["fourier_1d", "fourier_1d_metric"]


def fourier_1d_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``mse`` per point, and for each requested frequency f ``rel_error_f{f}`` =
    |DFT(pred − y)[f]| / |DFT(y)[f]| (y the target): the error the frequency principle
    tracks, which falls first for low f. The DFT needs the whole grid: on a subset of the
    points only ``mse`` is reported."""
    out = {"mse": float((pred - data.target).pow(2).mean())}
    if pred.shape[0] != data.info["n_points"]:
        return out
    y = data.target[:, 0].double()
    err_hat, y_hat = torch.fft.rfft(pred[:, 0].double() - y), torch.fft.rfft(y)
    for f in data.info["frequencies"]:
        out[f"rel_error_f{f}"] = float(err_hat[f].abs() / y_hat[f].abs())
    return out


def fourier_1d(
    frequencies: Sequence[int] = (1, 3, 5),
    amplitudes: Sequence[float] | None = None,
    n_points: int = 256,
    domain: tuple[float, float] = (-math.pi, math.pi),
    noise: float = 0.0,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
) -> TaskData:
    """The sum of sines on the grid (module docstring for the definition).

    Args:
        frequencies: distinct positive ints, each < n_points / 2.
        amplitudes: one nonzero number per frequency (default all 1).
        n_points: N ≥ 1 grid points.  domain: (lo, hi) with lo < hi.
        noise: std ≥ 0 of Gaussian noise on y.  seed: int or torch.Generator (for the noise).
        dtype: floating dtype of x and target.
    """
    check_int("n_points", n_points, 1)
    noise = check_nonneg("noise", noise)
    dtype = check_dtype(dtype)
    if isinstance(frequencies, (str, bytes)) or not isinstance(frequencies, Sequence) or len(frequencies) == 0:
        raise ValueError(f"frequencies must be a non-empty sequence of positive ints, got {frequencies!r}")
    freqs = tuple(frequencies)
    if not all(isinstance(f, int) and not isinstance(f, bool) and 0 < f < n_points / 2 for f in freqs):
        raise ValueError(
            f"frequencies must be positive ints below n_points / 2 = {n_points / 2} (cycles per domain), got {freqs!r}"
        )
    if len(set(freqs)) != len(freqs):
        raise ValueError(f"frequencies must be distinct, got {freqs!r}")
    amps = (1.0,) * len(freqs) if amplitudes is None else tuple(amplitudes)
    numbers = all(isinstance(a, (int, float)) and not isinstance(a, bool) and a != 0 for a in amps)
    if len(amps) != len(freqs) or not numbers:
        raise ValueError(f"amplitudes must be {len(freqs)} nonzero numbers (one per frequency), got {amplitudes!r}")
    if len(domain) != 2 or not float(domain[0]) < float(domain[1]):
        raise ValueError(f"domain must be a pair (lo, hi) with lo < hi, got {domain!r}")
    lo, hi = float(domain[0]), float(domain[1])
    gen = make_generator(seed)

    j = torch.arange(n_points, dtype=torch.float64)
    x = lo + (hi - lo) * j / n_points
    phase = 2 * math.pi * j / n_points  # = 2π (x − lo) / L, computed without the rounding of x
    clean = sum(a * torch.sin(f * phase) for f, a in zip(freqs, amps)).unsqueeze(1)
    y = clean + gaussian((n_points, 1), gen, torch.float64, noise) if noise > 0 else clean
    info = {"frequencies": freqs, "amplitudes": amps, "domain": (lo, hi), "n_points": n_points}
    info["clean"] = clean.to(dtype)
    return TaskData(
        x=x.unsqueeze(1).to(dtype), target=y.to(dtype), loss="mse", name="fourier_1d", info=info,
        metric_fn=fourier_1d_metric,
    )
