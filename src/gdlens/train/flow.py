"""Gradient flow, integrated: explicit Euler steps whose size is set by an Armijo test.

Theories of training dynamics (the condensation phase diagram of arXiv 2007.07497, the KP
decomposition of arXiv 2507.06381, NTK and mean-field limits) are statements about gradient
flow ``dθ/dτ = −∇L(θ)``, not about gradient descent at one fixed learning rate: a rate small
enough for the sharpest configuration of a sweep crawls through the flattest, and one fast
enough for the flattest diverges on the sharpest (or sits at the edge of stability, which the
flow never visits). :class:`GradientFlow` follows the flow's path at whatever speed it allows:

    θ' = θ − η g,  g = ∇L(θ)
    accept when L(θ') ≤ L(θ) − c · η · ‖g‖² + s   (Armijo's sufficient decrease, c = 1/2;
                                                   s = 16·eps·|L|, the loss's rounding error)
    otherwise halve η and try again; after an accepted step, η ← growth · η.

On a quadratic with curvature λ along g the test accepts exactly when η ≤ 2(1 − c)/λ = 1/λ,
so no step overshoots the minimum along the direction that dominates it and the loss never
rises (no edge-of-stability oscillation). As with any line search, a direction much stiffer
than the current gradient's can be re-excited when η grows; it is caught by the test once it
matters, and stays small: on ½(100θ₁² + 10θ₂² + θ₃²) the stiff component stays below 2% of the
slow one, and the slow one is within 15% of the exact flow exp(−τ) at the recorded flow time
τ = Σ η (``tests/train/test_flow.py``). With ``growth=1`` and a small first step the path
converges to the flow at first order in η. The cost is one loss evaluation per attempt (no
extra gradient), plus one at the start of each step unless the caller passes the loss it has; the accepted η settles where about one attempt in four
is rejected (growth 1.2 against halving).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["GradientFlow"]


class GradientFlow(torch.optim.Optimizer):
    """Gradient flow ``dθ/dτ = −∇L`` by Armijo-controlled Euler steps (module docstring).

    Args:
        params: parameters (or parameter groups) to integrate.
        lr: the first step size η₀ (flow time per step); it adapts from there.
        armijo: c in the sufficient-decrease test, in (0, 1); 1/2 caps η at 1/λ on quadratics.
        growth: factor applied to η after an accepted step (≥ 1), so η can track a flattening
            landscape; 1 never grows.
        max_backtracks: halvings before a step is given up (the parameters are then left
            unchanged and ``self.stalled`` counts it).

    ``step(closure, loss=None)`` needs ``closure() -> loss`` evaluated at the current parameters
    without gradients (``gd.train`` passes one, with the loss it just computed); the gradients
    must already be in ``.grad``. State:
    ``self.flow_time`` (τ so far), ``self.lr`` (the current η), ``self.rejected`` (halvings
    so far), ``self.stalled`` (steps given up).
    """

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-2, armijo: float = 0.5, growth: float = 1.2,
        max_backtracks: int = 40,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr (the first step size) must be positive, got {lr}")
        if not 0 < armijo < 1:
            raise ValueError(f"armijo must lie in (0, 1), got {armijo}")
        if not growth >= 1:
            raise ValueError(f"growth must be >= 1, got {growth}")
        super().__init__(params, {"lr": lr})
        self.armijo, self.growth, self.max_backtracks = armijo, growth, max_backtracks
        self.flow_time, self.rejected, self.stalled = 0.0, 0, 0

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    def _set_lr(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = value

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None, loss: float | None = None) -> Tensor | None:  # type: ignore[override]
        """One accepted Euler step (or none, after ``max_backtracks`` halvings). ``loss``: the
        loss at the current parameters when the caller already has it (``gd.train`` does),
        which saves one evaluation of ``closure``."""
        if closure is None:
            raise ValueError("GradientFlow.step needs closure() -> loss at the current parameters (gd.train passes one)")
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return None
        grads = [p.grad.detach().clone() for p in params]
        start = [p.detach().clone() for p in params]
        g2 = float(sum((g.double() ** 2).sum() for g in grads))
        loss0 = float(closure()) if loss is None else float(loss)
        # the loss is only known to its rounding error: below it, "no increase" is all one can ask
        slack = 16 * torch.finfo(params[0].dtype).eps * abs(loss0)
        eta = self.lr
        for _ in range(self.max_backtracks + 1):
            for p, p0, g in zip(params, start, grads):
                p.copy_(p0 - eta * g)
            loss = float(closure())
            if loss <= loss0 - self.armijo * eta * g2 + slack:
                self.flow_time += eta
                self._set_lr(eta * self.growth)
                return torch.tensor(loss)
            eta *= 0.5
            self.rejected += 1
        for p, p0 in zip(params, start):  # no acceptable step: stay put (a stationary point or a kink)
            p.copy_(p0)
        self.stalled += 1
        self._set_lr(eta)
        return torch.tensor(loss0)

    def state_dict(self) -> dict:
        out = super().state_dict()
        out["flow"] = {"flow_time": self.flow_time, "rejected": self.rejected, "stalled": self.stalled}
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        flow = state_dict.pop("flow", {})
        super().load_state_dict(state_dict)
        self.flow_time = float(flow.get("flow_time", 0.0))
        self.rejected, self.stalled = int(flow.get("rejected", 0)), int(flow.get("stalled", 0))
