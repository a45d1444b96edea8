"""The ``Probe`` protocol and its schedules.

A probe is a named measurement taken during training on a schedule. What it carries from one
call to the next (a first kernel, warm-start vectors, a fixed grid) is a *state* that the probe
creates and returns but does not keep (optax's ``init``/``update`` split)::

    class Probe(Protocol):
        name: str
        schedule: Schedule
        def init(self, ctx: ProbeContext) -> State
        def compute(self, ctx: ProbeContext, state: State) -> tuple[Mapping[str, Value], State]

The :class:`~gdlens.train.Recorder` owns the states: it calls ``init`` at the probe's first
scheduled step, passes the state to every ``compute`` and keeps what comes back, and saves the
states in checkpoints. One probe object can therefore serve any number of runs, in turn or at
once. A state is ``None`` or tensors, numbers, strings and containers of them (checkpoints are
loaded with ``weights_only=True``).

A probe that carries nothing may define ``compute(ctx) -> Mapping`` alone
(:class:`StatelessProbe`); :func:`init_state` and :func:`compute_values` run either kind.

Scalars are stored as metrics named ``"<probe>/<key>"``; tensors and arrays as arrays of the
same name. A probe may declare what its keys mean and how to draw them (``metric_specs``,
``panels``: :mod:`gdlens.probes.spec`). Each probe's ``compute`` only calls pure functions of the
``gdlens.probes`` modules.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from gdlens.probes.plumbing import forward

__all__ = [
    "Probe",
    "StatelessProbe",
    "ProbeContext",
    "Schedule",
    "as_schedule",
    "forward",
    "is_probe",
    "init_state",
    "compute_values",
    "probe_state",
    "load_probe_state",
]


@dataclass(frozen=True)
class Schedule:
    """When a probe runs: every ``every`` steps, or at ``log_points`` log-spaced steps of the
    run (1, …, total, rounded and de-duplicated), and always at step 0 and at the last step.

    Log spacing suits training dynamics, whose interesting events (fitting, grokking, the
    onset of condensation) spread over decades of steps.
    """

    every: int | None = None
    log_points: int | None = None

    def __post_init__(self) -> None:
        if (self.every is None) == (self.log_points is None):
            raise ValueError("a Schedule needs exactly one of every= and log_points=")
        value = self.every if self.every is not None else self.log_points
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"every/log_points must be a positive int, got {value!r}")

    def steps(self, total_steps: int) -> set[int]:
        """The steps in 0..total_steps at which the probe runs."""
        if self.every is not None:
            chosen = set(range(0, total_steps + 1, self.every))
        else:
            grid = np.logspace(0, math.log10(max(total_steps, 1)), self.log_points)
            chosen = {int(round(s)) for s in grid}
        return {s for s in chosen if 0 <= s <= total_steps} | {0, total_steps}

    def __str__(self) -> str:
        return f"every:{self.every}" if self.every is not None else f"log:{self.log_points}"


def as_schedule(spec: Schedule | int | str) -> Schedule:
    """A Schedule from ``Schedule``, an int (every N steps), ``"every:N"`` or ``"log:N"``."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        return Schedule(every=spec)
    if isinstance(spec, str) and ":" in spec:
        kind, _, value = spec.partition(":")
        if kind in ("every", "log") and value.isdigit():
            return Schedule(every=int(value)) if kind == "every" else Schedule(log_points=int(value))
    raise ValueError(f"schedule must be a Schedule, an int, 'every:N' or 'log:N'; got {spec!r}")


@dataclass
class ProbeContext:
    """What a probe sees at one step.

    Attributes:
        step: the optimisation step (0 = before the first update).
        model: the model being trained (in its current state).
        batch: the training data of this step (a :class:`gdlens.tasks.TaskData`), or None.
        eval_data: held-out data (TaskData) or None.
        optimizer: the torch optimizer, or None.
        initial_params: {name: tensor} snapshot of the parameters at the first recorded step.
        loss_fn: ``loss_fn(model) -> scalar`` on the training batch (for curvature probes).
        extra: anything a user's loop wants to pass on.
    """

    step: int
    model: nn.Module
    batch: Any = None
    eval_data: Any = None
    optimizer: torch.optim.Optimizer | None = None
    initial_params: dict[str, Tensor] = field(default_factory=dict)
    loss_fn: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Probe(Protocol):
    """A named measurement on a schedule whose state lives outside it (module docstring)."""

    name: str
    schedule: Schedule

    def init(self, ctx: ProbeContext) -> Any: ...

    def compute(self, ctx: ProbeContext, state: Any) -> tuple[Mapping[str, Any], Any]: ...


@runtime_checkable
class StatelessProbe(Protocol):
    """A probe that carries nothing between calls: ``compute(ctx) -> values``."""

    name: str
    schedule: Schedule

    def compute(self, ctx: ProbeContext) -> Mapping[str, Any]: ...


def is_probe(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`Probe` or a :class:`StatelessProbe` (a ``name``, a
    ``schedule`` and a ``compute``)."""
    return isinstance(obj, StatelessProbe)


def _stateful(probe: Any) -> bool:
    return callable(getattr(probe, "init", None))


def init_state(probe: Any, ctx: ProbeContext) -> Any:
    """``probe.init(ctx)`` for a :class:`Probe`; None for a :class:`StatelessProbe`."""
    return probe.init(ctx) if _stateful(probe) else None


def compute_values(probe: Any, ctx: ProbeContext, state: Any) -> tuple[Mapping[str, Any], Any]:
    """``(values, new state)`` of one call of either kind of probe."""
    if _stateful(probe):
        out = probe.compute(ctx, state)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Mapping)):
            raise TypeError(
                f"probe {probe.name!r}: compute(ctx, state) must return (values, state), got {type(out).__name__}"
            )
        return out
    values = probe.compute(ctx)
    if not isinstance(values, Mapping):
        raise TypeError(f"probe {probe.name!r}: compute(ctx) must return a mapping, got {type(values).__name__}")
    return values, state


def probe_state(probe: Any) -> dict[str, Any] | None:
    """For a :class:`StatelessProbe` that nevertheless keeps state on itself (a user's probe
    written before the ``init``/``compute(ctx, state)`` split): what it carries from one call to the next, for checkpoints: ``probe.state_dict()``
    when it defines one; for a dataclass probe, its fields declared with ``init=False`` (the
    warm-start vectors, first kernels, fixed grids and observation logs of the built-in
    probes); None for a stateless probe. Values must be tensors, numbers, strings or
    containers of them (checkpoints are loaded with ``weights_only=True``)."""
    if hasattr(probe, "state_dict"):
        return probe.state_dict()
    if dataclasses.is_dataclass(probe):
        state = {f.name: getattr(probe, f.name) for f in dataclasses.fields(probe) if not f.init}
        return state or None
    return None


def load_probe_state(probe: Any, state: Mapping[str, Any]) -> None:
    """Restore what :func:`probe_state` saved."""
    if hasattr(probe, "load_state_dict"):
        probe.load_state_dict(state)
        return
    for key, value in state.items():
        setattr(probe, key, value)
