"""Shared pieces of the estimators: the result type, random probes, flat application."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from gdlens.operators.base import LinearOperator, basis_chunks

__all__ = ["Estimate", "make_generator", "rademacher", "apply_flat", "rapply_flat", "check_method", "check_square", "warn_not_finite"]


@dataclass(frozen=True)
class Estimate:
    """A scalar estimate with its standard error.

    Attributes:
        value: the estimate.
        stderr: its standard error (0.0 for exact methods; ``None`` where the method gives none).
        num_matvecs: operator applications spent (per operator involved).
        method: the method that produced it.
    """

    value: float
    stderr: float | None
    num_matvecs: int
    method: str

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        err = "n/a" if self.stderr is None else f"{self.stderr:.3g}"
        return f"Estimate({self.value:.6g} ± {err}, method={self.method!r}, matvecs={self.num_matvecs})"


def make_generator(seed: int | torch.Generator, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device``: the one passed, or a new one seeded with ``seed``."""
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def rademacher(k: int, n: int, gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(k, n) independent ±1 entries."""
    bits = torch.randint(0, 2, (k, n), generator=gen, device=device)
    return (2 * bits - 1).to(dtype)


def gaussian(k: int, n: int, gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(k, n) independent standard normal entries."""
    return torch.randn(k, n, generator=gen, device=device, dtype=dtype)


def complement_probes(g: int, Q: Tensor, gen: torch.Generator) -> Tensor:
    """(g, n) probes uniform on the sphere of radius sqrt(n − r) in the orthogonal complement
    of the r orthonormal rows of Q: E[ggᵀ] = I − QᵀQ exactly, and ‖g‖² is constant, so the
    residual trace of a multiple of the identity carries no noise."""
    r, n = Q.shape
    if r >= n:
        return Q.new_zeros(g, n)
    G = gaussian(g, n, gen, Q.dtype, Q.device)
    G = G - (G @ Q.T) @ Q
    return G * (math.sqrt(n - r) / G.norm(dim=1, keepdim=True))


def apply_flat(A: LinearOperator, V: Tensor) -> Tensor:
    """Rows of V (k, n_in) -> rows of A V (k, n_out), in one batched call."""
    k = V.shape[0]
    if k == 0:
        return V.new_zeros(0, A.size_out)
    return A.matmat(V.reshape(k, *A.shape_in)).reshape(k, A.size_out)


def rapply_flat(A: LinearOperator, V: Tensor) -> Tensor:
    """Rows of V (k, n_out) -> rows of Aᵀ V (k, n_in), in one batched call."""
    k = V.shape[0]
    return A.rmatmat(V.reshape(k, *A.shape_out)).reshape(k, A.size_in)


def check_method(method: str, allowed: tuple[str, ...], what: str) -> None:
    if method not in allowed:
        raise ValueError(f"unknown {what} method {method!r}; allowed: {', '.join(map(repr, allowed))}")


def check_square(A: LinearOperator, what: str) -> None:
    if not A.is_square:
        raise ValueError(f"{what} needs a square operator, got shape_in {A.shape_in} and shape_out {A.shape_out}")


def sample_stderr(samples: Tensor) -> float | None:
    """Standard error of the mean of a 1-d tensor of i.i.d. samples (None for fewer than 2)."""
    m = samples.shape[0]
    if m < 2:
        return None
    return float(samples.std(unbiased=True) / math.sqrt(m))


def warn_not_finite(value: float, dtype: torch.dtype, what: str, inputs_finite: bool = True) -> None:
    """RuntimeWarning when an estimate is nan or infinite, naming float64 as the fix for
    operators in lower precision (an unstable RNN's propagator P overflows float32: its
    ‖P Pᵀ‖_F² exceeds 3.4e38 and a participation ratio becomes inf/inf = nan). ``inputs_finite``
    False (a trace or norm it was computed from overflowed) warns even for a finite value (t²/∞ = 0)."""
    if math.isfinite(value) and inputs_finite:
        return
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        fix = (
            f"the operator's {dtype} entries overflow or lose all precision (e.g. the propagator P of an "
            f"unstable RNN); run the analysis in float64 (model.double() and float64 data)"
        )
    else:
        fix = "the operator has non-finite entries, or a norm of zero"
    inputs = "" if inputs_finite else " (computed from non-finite traces or norms)"
    warnings.warn(f"{what} is {value}{inputs}: {fix}", RuntimeWarning, stacklevel=3)
