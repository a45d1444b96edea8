"""The output-space neural tangent kernel ``Θ = C G Cᵀ + Θ_φ``.

On output-shaped tensors (B, T', O), with y = g(z; φ) the readout:

- ``C = ∂y/∂z`` (the readout Jacobian in the states, (B, T, H) -> (B, T', O)),
- ``G = P K Pᵀ = (dz/dθ)(dz/dθ)ᵀ`` the hidden-state kernel,
- ``Θ_φ = J_φ J_φᵀ``, ``J_φ = ∂y/∂φ`` at fixed z: the readout parameters' own kernel,

so that ``Θ = (dy/dθ)(dy/dθ)ᵀ + (∂y/∂φ)(∂y/∂φ)ᵀ``, the NTK of y over all parameters.
Everything is a JVP or VJP of the readout, batched over the k probes with vmap.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gdlens.models.base import Params
from gdlens.operators import ComposedOperator, LinearOperator, SumOperator

__all__ = ["ReadoutJacobian", "ReadoutKernel", "output_ntk"]


class ReadoutJacobian(LinearOperator):
    """``C = ∂y/∂z`` at z*: (B, T, H) -> (B, T', O) (JVP of the readout in z; Cᵀ by its VJP)."""

    def __init__(self, readout: Callable[[Params, Tensor], Tensor], phi: Params, hidden: Tensor) -> None:
        self.phi = {n: p.detach() for n, p in phi.items()}
        self.hidden = hidden.detach()
        self._g = lambda z: readout(self.phi, z)
        y, self._vjp_fn = torch.func.vjp(self._g, self.hidden)
        super().__init__(tuple(hidden.shape), tuple(y.shape), dtype=hidden.dtype, device=hidden.device)

    def _matmat(self, X: Tensor) -> Tensor:
        g, z = self._g, self.hidden
        return torch.func.vmap(lambda v: torch.func.jvp(g, (z,), (v,))[1])(X)

    def _rmatmat(self, Y: Tensor) -> Tensor:
        return torch.func.vmap(self._vjp_fn)(Y)[0]


class ReadoutKernel(LinearOperator):
    """``Θ_φ = J_φ J_φᵀ`` on (B, T', O), J_φ = ∂y/∂φ at the fixed states z* (VJP then JVP).
    With no readout parameters it is the zero operator."""

    def __init__(self, readout: Callable[[Params, Tensor], Tensor], phi: Params, hidden: Tensor) -> None:
        self.phi = {n: p.detach() for n, p in phi.items()}
        z = hidden.detach()
        self._g = lambda ph: readout(ph, z)
        if self.phi:
            y, self._vjp_fn = torch.func.vjp(self._g, self.phi)
        else:
            y, self._vjp_fn = readout(self.phi, z), None
        super().__init__(tuple(y.shape), dtype=y.dtype, device=y.device, is_symmetric=True)

    def _matmat(self, X: Tensor) -> Tensor:
        if self._vjp_fn is None:
            return torch.zeros_like(X)
        rows = torch.func.vmap(self._vjp_fn)(X)[0]
        g, phi = self._g, self.phi
        return torch.func.vmap(lambda d: torch.func.jvp(g, (phi,), (d,))[1])(rows)

    _rmatmat = _matmat


def output_ntk(C: LinearOperator, G: LinearOperator, readout_kernel: LinearOperator) -> LinearOperator:
    """``Θ = C G Cᵀ + Θ_φ`` (symmetric) from the readout Jacobian C, the hidden kernel G and Θ_φ."""
    return SumOperator([ComposedOperator([C, G, C.T], is_symmetric=True), readout_kernel])
