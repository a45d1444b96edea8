"""The state-space model protocol that every gdlens model follows.

A model is a recursion over "time" t = 1..T (real time for recurrent networks, output
times for a neural ODE, depth for a residual stack)::

    z_0 = initial_state(θ, x)                       (B, H)
    z_t = step(θ, z_{t-1}, x_t, t)                  (B, H),  t = 1..T
    y   = read(φ, z)                                z: (B, T, H) -> y: (B, T', O)

θ ("state parameters") are every parameter that ``step`` or ``initial_state`` reads; φ
("readout parameters") the ones ``read`` reads. Both are plain ``dict[str, Tensor]``
keyed by the names of :meth:`torch.nn.Module.named_parameters`, so the functions can be
transformed with :mod:`torch.func` (``jvp``, ``vjp``, ``vmap``, ``jacrev``).

A custom cell: subclass :class:`StateSpaceModel`, register its parameters as usual, list
the readout's parameter-name prefixes in ``readout_prefixes``, and implement
:meth:`StateSpaceModel.step` (and :meth:`StateSpaceModel.read`,
:meth:`StateSpaceModel.initial_state`, :meth:`StateSpaceModel.step_inputs` where the
defaults do not fit). ``step`` must be a pure function of its arguments: no in-place
updates of its inputs, no reading of ``self``'s parameters directly (read them from θ).
:class:`gdlens.models.protocol.StateSpace` lists what the flow engine calls.

The pure readout is ``read``, never ``readout``: that name belongs to the readout submodule
(``model.readout.weight``), which :func:`torch.func.functional_call` must reach. A subclass
written against the old name (a method ``readout(self, phi, z)``) still works: defining the
class emits a ``DeprecationWarning`` and the method is moved to ``read``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

Params = Mapping[str, Tensor]

__all__ = ["StateSpaceModel", "Params"]


class StateSpaceModel(nn.Module):
    """Base class of the recursion ``z_t = f(z_{t-1}, x_t; θ)``, ``y = g(z; φ)``.

    Attributes set by subclasses:
        state_size: H, the width of z_t.
        input_size: I, the width of x_t (0 when steps take no input).
        output_size: O, the width of y_t.
        readout_prefixes: parameter-name prefixes that belong to φ (default ``("readout.",)``);
            every other parameter belongs to θ.

    ``forward(x, z0=None) -> (y, z)`` with x (B, T, I), z (B, T, H) the states z_1..z_T
    (z_0 excluded) and y = read(φ, z). A ``z0`` passed to ``forward`` is a constant that
    overrides :meth:`initial_state`.
    """

    state_size: int
    input_size: int
    output_size: int
    readout_prefixes: tuple[str, ...] = ("readout.",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Deprecation path: a pure readout defined as a method ``readout`` moves to ``read``
        (unless the class defines ``read`` too) and stops hiding the ``readout`` submodule."""
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("readout")
        if legacy is None or isinstance(legacy, nn.Module) or not callable(legacy):
            return
        warnings.warn(
            f"{cls.__qualname__}.readout(phi, z): the pure readout of a StateSpaceModel is now called "
            f"'read'; rename the method to 'read' (the name 'readout' is the readout submodule's)",
            DeprecationWarning,
            stacklevel=2,
        )
        if "read" not in cls.__dict__:
            cls.read = legacy
        delattr(cls, "readout")

    # ------------------------------------------------------------------ parameters
    def _is_readout(self, name: str) -> bool:
        return any(name.startswith(p) for p in self.readout_prefixes)

    def state_params(self) -> dict[str, Tensor]:
        """θ: the parameters read by :meth:`step` and :meth:`initial_state`, by name."""
        return {n: p for n, p in self.named_parameters() if not self._is_readout(n)}

    def readout_params(self) -> dict[str, Tensor]:
        """φ: the parameters read by :meth:`read`, by name."""
        return {n: p for n, p in self.named_parameters() if self._is_readout(n)}

    # ------------------------------------------------------------------ the recursion
    def step_inputs(self, x: Tensor) -> Tensor:
        """Per-step inputs, time-major: x (B, T, I) -> (T, B, I)."""
        self._check_input(x)
        return x.transpose(0, 1)

    def num_steps(self, x: Tensor) -> int:
        """T, the number of steps the recursion takes on input x."""
        return self.step_inputs(x).shape[0]

    def initial_state(self, theta: Params, x: Tensor) -> Tensor:
        """z_0 (B, H): ``theta["z0"]`` broadcast over the batch when the model has a
        learnable initial state, zeros otherwise."""
        batch = x.shape[0]
        if "z0" in theta:
            return theta["z0"].expand(batch, self.state_size)
        ref = next(iter(theta.values()))
        return torch.zeros(batch, self.state_size, dtype=ref.dtype, device=ref.device)

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        """One step z_t = f(z_{t-1}, x_t; θ): z_prev (B, H), x_t (B, I) -> (B, H).
        ``t`` is the 1-based step index (used by models with untied weights)."""
        raise NotImplementedError

    def read(self, phi: Params, z: Tensor) -> Tensor:
        """y = g(z; φ): z (B, T, H) -> (B, T, O); default affine map ``readout.weight/bias``
        (the parameters of the ``readout`` submodule, an ``nn.Linear(H, O)``)."""
        return torch.nn.functional.linear(z, phi["readout.weight"], phi.get("readout.bias"))

    def unroll(self, theta: Params, x: Tensor, z0: Tensor | None = None) -> Tensor:
        """All states z_1..z_T (B, T, H) as a pure function of θ (and a constant z0)."""
        self._check_input(x)  # before initial_state, which may read x
        z = self.initial_state(theta, x) if z0 is None else z0
        if z.shape != (x.shape[0], self.state_size):
            raise ValueError(
                f"z0 has shape {tuple(z.shape)}, expected (B, H) = {(x.shape[0], self.state_size)}"
            )
        states = []
        for t, x_t in enumerate(self.step_inputs(x), start=1):
            z = self.step(theta, z, x_t, t)
            states.append(z)
        return torch.stack(states, dim=1)

    def forward(self, x: Tensor, z0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = self.unroll(self.state_params(), x, z0)
        return self.read(self.readout_params(), z), z

    # ------------------------------------------------------------------ checks
    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects x of shape (B, T, {self.input_size}), got {tuple(x.shape)}"
            )
