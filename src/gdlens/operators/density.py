"""Spectral density by stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017; Lin, Saad, Yang
arXiv 1308.5467).

For a symmetric A (n × n) with eigenpairs (λ_j, u_j), the spectral measure is
``μ = (1/n) Σ_j δ(λ − λ_j)``. For a probe v with E[vvᵀ] = I/n (a Rademacher vector over √n),
``E[vᵀ f(A) v] = ∫ f dμ``. m steps of Lanczos from v give a tridiagonal T_m with eigenpairs
(θ_i, y_i); Gauss quadrature ``vᵀ f(A) v ≈ ‖v‖² Σ_i (e_1ᵀ y_i)² f(θ_i)`` is exact for polynomials
f of degree ≤ 2m − 1. Averaging over probes gives nodes and weights of a discrete measure
whose moments of order < 2m are unbiased for those of μ; the error of ∫ f dμ is the Monte
Carlo error over probes (reported as a standard error) plus the quadrature error (which
vanishes for smooth f as m grows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gdlens.operators._common import Estimate, apply_flat, check_square, make_generator, rademacher
from gdlens.operators.base import LinearOperator

__all__ = ["spectral_density", "SpectralDensity"]


@dataclass(frozen=True)
class SpectralDensity:
    """The quadrature measure of stochastic Lanczos quadrature.

    Attributes:
        nodes: (p, m) Ritz values per probe.
        weights: (p, m) quadrature weights per probe; each row sums to 1.
        n: dimension of the operator (multiply densities by n for eigenvalue counts).
    """

    nodes: Tensor
    weights: Tensor
    n: int

    def expectation(self, f) -> Estimate:
        """``∫ f dμ = tr f(A) / n`` with its standard error across probes. ``f`` maps a tensor of
        eigenvalues to a tensor of the same shape (e.g. ``torch.log`` for log-det / n)."""
        per_probe = (self.weights * f(self.nodes)).sum(1)
        p = per_probe.shape[0]
        stderr = float(per_probe.std() / math.sqrt(p)) if p > 1 else None
        return Estimate(float(per_probe.mean()), stderr, p * self.nodes.shape[1], "slq")

    def cdf(self, x: float) -> Estimate:
        """Fraction of eigenvalues ≤ x (multiply by n for a count), with its standard error."""
        return self.expectation(lambda t: (t <= x).to(t.dtype))

    def density(self, grid: Tensor, sigma: float | None = None) -> Tensor:
        """Gaussian-smoothed density ``Σ_i w_i N(x; θ_i, σ²)`` on ``grid`` (integrates to 1).
        ``sigma`` defaults to 1% of the spread of the nodes that carry weight (a probe whose
        Lanczos run stopped early pads its nodes with weight-0 zeros, which do not count)."""
        nodes, weights = self.nodes.reshape(-1), self.weights.reshape(-1) / self.nodes.shape[0]
        if sigma is None:
            live = nodes[self.weights.reshape(-1) > 0]
            live = live if live.numel() else nodes
            spread = float(live.max() - live.min())
            sigma = 0.01 * spread if spread > 0 else 1.0
        grid = grid.to(nodes.dtype)
        z = (grid[:, None] - nodes[None, :]) / sigma
        return (weights * torch.exp(-0.5 * z**2)).sum(1) / (sigma * math.sqrt(2 * math.pi))


def spectral_density(
    A: LinearOperator,
    num_probes: int = 10,
    num_steps: int = 30,
    seed: int | torch.Generator = 0,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of a symmetric operator A (``A = Aᵀ``; not checked).

    All probes run Lanczos together (one batched matvec per step), with full
    reorthogonalisation. A probe whose Krylov space becomes invariant stops early; its
    unused nodes get zero weight. Cost: ``num_probes · num_steps`` matvecs.
    """
    check_square(A, "spectral_density")
    n = A.size_in
    if num_probes < 1 or num_steps < 1:
        raise ValueError(f"num_probes and num_steps must be >= 1, got {num_probes} and {num_steps}")
    m = min(num_steps, n)
    gen = make_generator(seed, A.device)
    p = num_probes
    eps = torch.finfo(A.dtype).eps
    with torch.no_grad():
        q = rademacher(p, n, gen, A.dtype, A.device) / math.sqrt(n)
        basis = torch.zeros(p, m, n, dtype=A.dtype, device=A.device)
        alpha = torch.zeros(p, m, dtype=A.dtype, device=A.device)
        beta = torch.zeros(p, m, dtype=A.dtype, device=A.device)
        active = torch.ones(p, dtype=torch.bool, device=A.device)
        scale = torch.zeros(p, dtype=A.dtype, device=A.device)
        for j in range(m):
            basis[:, j] = q
            w = apply_flat(A, q)
            alpha[:, j] = (q * w).sum(1)
            # full reorthogonalisation against the basis so far (twice)
            for _ in range(2):
                w = w - torch.einsum("pj,pjn->pn", torch.einsum("pjn,pn->pj", basis[:, : j + 1], w), basis[:, : j + 1])
            b = w.norm(dim=1)
            scale = torch.maximum(scale, alpha[:, j].abs() + b)
            active = active & (b > 100 * eps * scale.clamp_min(torch.finfo(A.dtype).tiny))
            beta[:, j] = torch.where(active, b, torch.zeros_like(b))
            q = torch.where(active[:, None], w / b.clamp_min(torch.finfo(A.dtype).tiny)[:, None], torch.zeros_like(w))
        T = torch.diag_embed(alpha) + torch.diag_embed(beta[:, :-1], 1) + torch.diag_embed(beta[:, :-1], -1)
        theta, Y = torch.linalg.eigh(T)
        weights = Y[:, 0, :] ** 2
    return SpectralDensity(theta, weights, n)
