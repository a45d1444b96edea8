"""Neural ODE ``dz/ds = v(z, x)`` integrated by a fixed-step solver between output times."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdlens.models._common import (
    check_nonnegative,
    check_positive,
    fan_in_std,
    get_activation,
    normal,
)
from gdlens.models.base import Params, StateSpaceModel

__all__ = ["NeuralODE"]

METHODS = ("euler", "rk4")


class NeuralODE(StateSpaceModel):
    """Neural ODE with an MLP vector field, solved by fixed-step Euler or classical RK4.

    Vector field (an MLP of ``depth`` hidden layers of ``width`` units on [z, x])::

        a_1 = σ(W_z z + W_x x + b_in)                       (width,)
        a_k = σ(W_hidden[k-2] a_{k-1} + b_hidden[k-2])      k = 2..depth
        v(z, x) = W_out a_depth + b_out                     (H,)

    State: z_t is the solution at output time t, obtained from z_{t-1} by ``substeps`` steps
    of size ``dt`` of the chosen method with x_t held constant over the interval (so output
    times are ``substeps·dt`` apart). Euler: z ← z + dt·v(z, x_t). RK4:
    k1 = v(z), k2 = v(z + dt/2·k1), k3 = v(z + dt/2·k2), k4 = v(z + dt·k3),
    z ← z + dt/6·(k1 + 2k2 + 2k3 + k4). Readout y_t = C z_t + d.

    Shapes: x (B, T, I), z (B, T, H), y (B, T, O).

    Args:
        input_size: I.  hidden_size: H (the ODE's dimension).  output_size: O.
        width: hidden units of the MLP (default H).
        depth: number of hidden layers of the MLP (default 1).
        activation: one of ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"softplus"``, ``"silu"``,
           ``"gelu"``, ``"linear"``.
        method: ``"rk4"`` or ``"euler"``.  dt: solver step.  substeps: solver steps per output step.
        g: scale of the first layer's z-block at initialisation: ``weight_z`` ~ N(0, g²/H).
           Nothing else depends on g: ``weight_x`` ~ N(0, 1/I), ``weight_hidden`` and
           ``weight_out`` ~ N(0, 1/width), biases start at 0.
        learn_z0: make z_0 (H,) a learnable parameter named ``"z0"`` (initialised at zero).

    Parameters (θ): ``weight_z`` (width, H), ``weight_x`` (width, I), ``bias_in`` (width,),
    ``weight_hidden`` (depth−1, width, width) and ``bias_hidden`` (depth−1, width) only when
    depth ≥ 2, ``weight_out`` (H, width), ``bias_out`` (H,), ``z0`` (H,).
    Readout (φ): ``readout.weight`` (O, H), ``readout.bias`` (O,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        width: int | None = None,
        depth: int = 1,
        activation: str = "tanh",
        method: str = "rk4",
        dt: float = 0.1,
        substeps: int = 1,
        g: float = 1.0,
        learn_z0: bool = False,
    ) -> None:
        super().__init__()
        width = hidden_size if width is None else width
        check_positive(hidden_size=hidden_size, output_size=output_size, width=width, depth=depth)
        check_positive(dt=dt, substeps=substeps)
        check_nonnegative(input_size=input_size)
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        self._act = get_activation(activation)
        self.activation, self.method, self.dt, self.substeps = activation, method, float(dt), int(substeps)
        self.input_size, self.state_size, self.output_size = input_size, hidden_size, output_size
        self.width, self.depth = width, depth
        self.weight_z = normal((width, hidden_size), fan_in_std(hidden_size, g))
        self.weight_x = normal((width, input_size), fan_in_std(input_size))
        self.bias_in = nn.Parameter(torch.zeros(width))
        if depth > 1:
            self.weight_hidden = normal((depth - 1, width, width), fan_in_std(width))
            self.bias_hidden = nn.Parameter(torch.zeros(depth - 1, width))
        self.weight_out = normal((hidden_size, width), fan_in_std(width))
        self.bias_out = nn.Parameter(torch.zeros(hidden_size))
        self.z0 = nn.Parameter(torch.zeros(hidden_size)) if learn_z0 else None
        self.readout = nn.Linear(hidden_size, output_size)

    def vector_field(self, theta: Params, z: Tensor, x_t: Tensor) -> Tensor:
        """v(z, x_t): z (B, H), x_t (B, I) -> (B, H)."""
        return self._field(theta, z, F.linear(x_t, theta["weight_x"], theta["bias_in"]))

    def _field(self, theta: Params, z: Tensor, input_drive: Tensor) -> Tensor:
        a = self._act(F.linear(z, theta["weight_z"]) + input_drive)
        for k in range(self.depth - 1):
            a = self._act(F.linear(a, theta["weight_hidden"][k], theta["bias_hidden"][k]))
        return F.linear(a, theta["weight_out"], theta["bias_out"])

    def step(self, theta: Params, z_prev: Tensor, x_t: Tensor, t: int) -> Tensor:
        drive = F.linear(x_t, theta["weight_x"], theta["bias_in"])  # x_t is constant over the interval
        dt, z = self.dt, z_prev
        for _ in range(self.substeps):
            k1 = self._field(theta, z, drive)
            if self.method == "euler":
                z = z + dt * k1
                continue
            k2 = self._field(theta, z + (dt / 2) * k1, drive)
            k3 = self._field(theta, z + (dt / 2) * k2, drive)
            k4 = self._field(theta, z + dt * k3, drive)
            z = z + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        return z
