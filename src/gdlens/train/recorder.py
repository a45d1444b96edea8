"""The Recorder: runs probes on their schedules and writes what they return.

It works inside gdlens' :func:`~gdlens.train.train` and inside a user's own loop::

    recorder = Recorder([MetricsProbe(), KPProbe()], run=store.create_run(cfg), total_steps=1000)
    for step in range(1001):
        recorder.step(step, model=model, batch=data, optimizer=opt)   # before the update
        ...update...

Scalars go to the run's metrics as ``"<probe>/<key>"`` and to :attr:`Recorder.history`;
tensors and arrays go to the run's arrays (and are kept in history as numpy arrays).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from gdlens.probes.base import Probe, ProbeContext, load_probe_state, probe_state

__all__ = ["Recorder"]


class Recorder:
    """Runs ``probes`` at their scheduled steps (see :class:`gdlens.probes.base.Schedule`).

    Args:
        probes: objects following the :class:`~gdlens.probes.base.Probe` protocol.
        run: a :class:`gdlens.store.Run` to write to, or None (history only).
        total_steps: the last step (the horizon). Log-spaced schedules need it: a Recorder
            given a log-scheduled probe (the default probes are) and no ``total_steps`` is a
            ``ValueError`` at construction, never a recorder that silently records nothing.
            Without it, every-N schedules run at every multiple of N. With it, probes run on
            their schedules up to the horizon; a step past the horizon records nothing and
            warns once (``RuntimeWarning``).
    """

    def __init__(self, probes: Sequence[Probe], run=None, total_steps: int | None = None) -> None:
        for p in probes:
            if not isinstance(p, Probe):
                raise TypeError(f"{p!r} does not follow the Probe protocol (name, schedule, compute(ctx))")
        names = [p.name for p in probes]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"probe names must be unique, repeated: {sorted(duplicates)}")
        if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)
                                        or total_steps < 0):
            raise ValueError(f"total_steps must be a non-negative int or None, got {total_steps!r}")
        if total_steps is None:
            log_scheduled = [p.name for p in probes if getattr(p.schedule, "log_points", None) is not None]
            if log_scheduled:
                raise ValueError(
                    f"probes {', '.join(log_scheduled)} run on log-spaced schedules, which need the run's length: "
                    f"pass Recorder(..., total_steps=N), or give them schedule=Schedule(every=N)"
                )
        self.probes = list(probes)
        self.run = run
        self._warned_past_horizon = False
        self.total_steps = total_steps
        self.history: dict[str, list[tuple[int, Any]]] = {}
        self.initial_params: dict[str, torch.Tensor] = {}
        self.seconds: dict[str, float] = {p.name: 0.0 for p in probes}
        self._due = {p.name: (p.schedule.steps(total_steps) if total_steps is not None else None) for p in probes}

    def is_due(self, probe: Probe, step: int) -> bool:
        due = self._due[probe.name]
        if due is None:  # no horizon: only every-N schedules can run
            every = probe.schedule.every
            return every is not None and step % every == 0
        return step in due

    def step(
        self,
        step: int,
        *,
        model: nn.Module,
        batch: Any = None,
        eval_data: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: Any = None,
        force: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """Run the probes due at ``step`` (all of them with ``force=True``); returns
        ``{"<probe>/<key>": value}`` of what was recorded."""
        if self.total_steps is not None and step > self.total_steps and not force and not self._warned_past_horizon:
            self._warned_past_horizon = True
            warnings.warn(
                f"Recorder: step {step} is past total_steps={self.total_steps}; probes record nothing past the horizon "
                f"(pass a larger total_steps, or force=True)", RuntimeWarning, stacklevel=2,
            )
        if not self.initial_params:
            self.initial_params = {n: p.detach().clone() for n, p in model.named_parameters()}
        due = [p for p in self.probes if force or self.is_due(p, step)]
        if not due:
            return {}
        ctx = ProbeContext(step, model, batch, eval_data, optimizer, self.initial_params, loss_fn, extra)
        recorded: dict[str, Any] = {}
        scalars: dict[str, float] = {}
        for probe in due:
            t0 = time.perf_counter()
            values = probe.compute(ctx)
            self.seconds[probe.name] += time.perf_counter() - t0
            for key, value in values.items():
                name = f"{probe.name}/{key}"
                if isinstance(value, (torch.Tensor, np.ndarray)) and np.ndim(value) > 0:
                    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
                    if self.run is not None:
                        self.run.log_array(step, name, array)
                    self.history.setdefault(name, []).append((step, array))
                    recorded[name] = array
                else:
                    v = float(value)
                    scalars[name] = v
                    self.history.setdefault(name, []).append((step, v))
                    recorded[name] = v
        if scalars and self.run is not None:
            self.run.log(step, scalars)
        return recorded

    @property
    def total_seconds(self) -> float:
        """Time spent inside probes so far."""
        return sum(self.seconds.values())

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a recorded scalar ``"<probe>/<key>"``."""
        if name not in self.history:
            raise KeyError(f"nothing recorded under {name!r}; recorded: {sorted(self.history)}")
        steps, values = zip(*self.history[name])
        return np.array(steps), np.array(values, dtype=float)

    def state(self) -> dict[str, Any]:
        """What the probes carry between calls (:func:`gdlens.probes.base.probe_state`), by
        probe name, for a checkpoint."""
        out = {}
        for p in self.probes:
            st = probe_state(p)
            if st is not None:
                out[p.name] = st
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (probes not in it are left as they are)."""
        for p in self.probes:
            if p.name in state:
                load_probe_state(p, state[p.name])

    def restore_history(self, run, before: int) -> None:
        """Refill :attr:`history` with the scalars ``run`` stored at steps before ``before``
        (a resumed run then reports its whole history, not only what it recorded since)."""
        names = {p.name for p in self.probes}
        for name, (steps, values) in run.metrics(as_frame=False).items():
            if name.split("/", 1)[0] not in names:
                continue
            keep = [(int(s), float(v)) for s, v in zip(steps, values) if s < before]
            if keep:
                self.history[name] = keep + [e for e in self.history.get(name, []) if e[0] >= before]

    def metrics(self):
        """The recorded scalars as a wide pandas DataFrame: one column per ``"<probe>/<key>"``,
        indexed by step (NaN where a probe did not run), like ``Store.metrics(run, wide=True)``
        but without a store; arrays are left out. The figures of ``gd.report.figures`` take it."""
        import pandas as pd

        columns = {}
        for name, entries in self.history.items():
            if entries and not isinstance(entries[0][1], np.ndarray):
                steps, values = zip(*entries)
                columns[name] = pd.Series(np.asarray(values, dtype=float), index=np.asarray(steps), name=name)
        frame = pd.DataFrame(columns) if columns else pd.DataFrame()
        frame.index.name = "step"
        return frame.sort_index()

    def last(self, name: str, default: float = math.nan) -> Any:
        """The most recent value of ``name`` (``default`` if never recorded)."""
        entries = self.history.get(name)
        return entries[-1][1] if entries else default
