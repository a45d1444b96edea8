"""The immediate map and its parameter Jacobian J_θ.

With the states z*_1..z*_T of the current trajectory held fixed, the immediate map is::

    F(θ)_t = f(z*_{t-1}, x_t; θ),   t = 1..T,      F(θ): (B, T, H)

with z*_0 = initial_state(θ, x) kept as a function of θ (a learnable z_0, a residual stack's
embedding), or a constant z_0 passed by the user. Its Jacobian ``J = ∂F/∂θ`` is the immediate
parameter Jacobian of docs/design.md, conventions; at t = 1 it includes the path through z_0,
``J_1 = ∂f_1/∂θ + ∂f_1/∂z_0 ∂z_0/∂θ``, so that ``P J = dz/dθ`` exactly.

Since every z*_{t-1} is fixed, the T steps are independent: a time-invariant cell evaluates
F in ONE call of ``step`` on the (T·B)-row batch; other cells take one call per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gdlens.models.base import Params

__all__ = ["immediate_map", "ImmediateJacobian"]


def immediate_map(
    model,
    x: Tensor,
    hidden: Tensor,
    z0: Tensor | None = None,
    *,
    time_invariant: bool = False,
) -> Callable[[Params], Tensor]:
    """Return ``F: θ ↦ [f(z*_{t-1}, x_t; θ)]_{t=1..T}`` (B, T, H) (see the module docstring).

    Args:
        model: a state-space model.  x: the model input.
        hidden: z*_1..z*_T (B, T, H), held fixed.
        z0: a constant z_0 (B, H) held fixed; None to use ``model.initial_state(θ, x)``.
        time_invariant: evaluate all steps in one call of ``step`` on (T·B) rows (only
            correct when ``step`` ignores t); otherwise one call per step with its t.
    """
    xs = model.step_inputs(x)
    B, T, H = hidden.shape
    hidden = hidden.detach()
    z0_const = None if z0 is None else z0.detach()

    def initial(th: Params) -> Tensor:
        return model.initial_state(th, x) if z0_const is None else z0_const

    flat = time_invariant and isinstance(xs, Tensor) and tuple(xs.shape[:2]) == (T, B)
    if flat:
        prev_tm = hidden[:, :-1].transpose(0, 1)  # (T-1, B, H): z*_1..z*_{T-1}
        xs_flat = xs.reshape(T * B, *xs.shape[2:])

        def F(th: Params) -> Tensor:
            z_prev = torch.cat([initial(th).unsqueeze(0).expand(1, B, H), prev_tm], dim=0).reshape(T * B, H)
            return model.step(th, z_prev, xs_flat, 1).reshape(T, B, H).transpose(0, 1)

        return F

    def F(th: Params) -> Tensor:
        outs = [model.step(th, initial(th), xs[0], 1)]
        for t in range(2, T + 1):
            outs.append(model.step(th, hidden[:, t - 2], xs[t - 1], t))
        return torch.stack(outs, dim=1)

    return F


class ImmediateJacobian:
    """J = ∂F/∂θ of an immediate map F at θ, applied to stacks in one batched call.

    ``vjp(V)``: V (k, B, T, H) -> {name: (k, *θ[name].shape)}, the rows Jᵀ v.
    ``jvp(dθ, names)``: {name: (k, *θ[name].shape)} -> (k, B, T, H), J restricted to ``names``
    (all of θ by default) applied to dθ.

    The VJP's linearisation is computed once (one evaluation of F) and reused; each ``jvp``
    call evaluates F once more in forward mode, batched over k with :func:`torch.func.vmap`.
    """

    def __init__(self, F: Callable[[Params], Tensor], theta: Params) -> None:
        self.F = F
        self.theta = {n: p.detach() for n, p in theta.items()}
        self._vjp_fn: Callable | None = None
        self.value: Tensor | None = None

    def _linearise(self) -> Callable:
        if self._vjp_fn is None:
            self.value, self._vjp_fn = torch.func.vjp(self.F, self.theta)
        return self._vjp_fn

    def release(self) -> None:
        """Drop the stored linearisation (it is rebuilt on the next ``vjp``)."""
        self._vjp_fn, self.value = None, None

    def vjp(self, V: Tensor) -> dict[str, Tensor]:
        """Jᵀ applied to each of the k rows of V (k, B, T, H)."""
        vjp_fn = self._linearise()
        return torch.func.vmap(vjp_fn)(V)[0]

    def jvp(self, dtheta: dict[str, Tensor], names: Sequence[str] | None = None) -> Tensor:
        """J (restricted to ``names``) applied to each of the k tangents in ``dtheta``."""
        names = list(self.theta) if names is None else list(names)
        base = self.theta
        primal = {n: base[n] for n in names}

        def F_sub(sub: Params) -> Tensor:
            return self.F({**base, **sub})

        def one(tangent: dict[str, Tensor]) -> Tensor:
            return torch.func.jvp(F_sub, (primal,), (tangent,))[1]

        return torch.func.vmap(one)({n: dtheta[n] for n in names})
