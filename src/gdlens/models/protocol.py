"""``StateSpace``: what the KP engine (:class:`gdlens.flow.KPFlow`) needs of a model.

A model is the recursion, over t = 1..T::

    z_0 = initial_state(θ, x)                 (B, H)
    z_t = step(θ, z_{t-1}, x_t, t)            (B, H),   x_t = step_inputs(x)[t-1]
    y   = read(φ, z)                          z (B, T, H) -> y (B, T', O)

with θ = ``state_params()`` and φ = ``readout_params()`` plain ``name -> Tensor`` mappings, so
that every function is pure in its tensor arguments and can be transformed by :mod:`torch.func`.
:class:`gdlens.models.StateSpaceModel` implements it; any ``nn.Module`` with these members
does too (``isinstance(model, StateSpace)`` checks that the names exist, not their signatures).

The pure readout is called ``read``: the name ``readout`` is left to the readout submodule
(``model.readout.weight``), so that :func:`torch.func.functional_call` reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["StateSpace"]


@runtime_checkable
class StateSpace(Protocol):
    """The state-space protocol (module docstring). Shapes: B batch, T steps, H = ``state_size``,
    I input width, O output width, T' output steps (T' = T for sequence models)."""

    state_size: int
    """H, the width of z_t."""

    def state_params(self) -> dict[str, Tensor]:
        """θ, by parameter name: everything ``initial_state`` and ``step`` read."""
        ...

    def readout_params(self) -> dict[str, Tensor]:
        """φ, by parameter name: everything ``read`` reads."""
        ...

    def initial_state(self, theta: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """z_0 (B, H) from θ and the whole input x (B, T, I)."""
        ...

    def step(self, theta: Mapping[str, Tensor], z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        """z_t = f(z_{t-1}, x_t; θ): z_prev (B, H), x_t (B, I) -> (B, H); t is 1-based."""
        ...

    def step_inputs(self, x: Tensor) -> Tensor:
        """The per-step inputs, time-major: x -> (T, B, I) (x is (B, T, I) for sequence models)."""
        ...

    def unroll(self, theta: Mapping[str, Tensor], x: Tensor, z0: Tensor | None = None) -> Tensor:
        """z_1..z_T (B, T, H) as a pure function of θ; a given z0 (B, H) is a constant."""
        ...

    def read(self, phi: Mapping[str, Tensor], z: Tensor) -> Tensor:
        """y = g(z; φ): z (B, T, H) -> (B, T', O), pure in φ and z."""
        ...
