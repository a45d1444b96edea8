"""The Recorder: runs probes on their schedules and writes what they return.

It works inside gdlens' :func:`~gdlens.train.train` and inside a user's own loop::

    recorder = Recorder([MetricsProbe(), KPProbe()], run=store.create_run(cfg), total_steps=1000)
    for step in range(1001):
        recorder.step(step, model=model, batch=data, optimizer=opt)   # before the update
        ...update...

Scalars go to the run's metrics as ``"<probe>/<key>"`` and to :attr:`Recorder.history`;
tensors and arrays go to the run's arrays (and are kept in history as numpy arrays).

The Recorder owns the probes' states (:mod:`gdlens.probes.base`): it calls ``probe.init`` at the
probe's first scheduled step, threads the state through ``compute`` and saves it in checkpoints,
so the same probe objects can serve several Recorders. It writes each probe's declaration
(:func:`gdlens.probes.spec.describe`: what its keys mean, how to draw them) into the run's summary
under ``"probes"``, which the report reads. A probe that raises does not lose the other probes'
values at that step: they are recorded first, then a :class:`ProbeError` naming the probe is
raised. Probes see the model in eval mode (dropout off; :func:`gdlens.probes.plumbing.eval_mode`),
its mode restored after each probe.
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

from gdlens.probes.base import (
    Probe,
    ProbeContext,
    compute_values,
    init_state,
    is_probe,
    load_probe_state,
    probe_state,
)
from gdlens.probes.plumbing import eval_mode
from gdlens.probes.spec import describe

__all__ = ["Recorder", "ProbeError"]


class ProbeError(RuntimeError):
    """A probe raised at a step; the other probes' values of that step were recorded first.
    ``probe`` is its name, ``step`` the step, ``__cause__`` the original exception."""

    def __init__(self, probe: str, step: int, error: BaseException) -> None:
        super().__init__(f"probe {probe!r} failed at step {step}: {type(error).__name__}: {error}")
        self.probe = probe
        self.step = step


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
            if not is_probe(p):
                raise TypeError(
                    f"{p!r} does not follow the Probe protocol (name, schedule, init(ctx) and compute(ctx, state), "
                    f"or compute(ctx) alone for a probe without state)"
                )
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
        self.states: dict[str, Any] = {}
        self._initialised: set[str] = set()
        self._described_run: Any = None
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
        failure: ProbeError | None = None
        for probe in due:
            t0 = time.perf_counter()
            try:
                with eval_mode(model):
                    if probe.name not in self._initialised:
                        self.states[probe.name] = init_state(probe, ctx)
                        self._initialised.add(probe.name)
                    values, self.states[probe.name] = compute_values(probe, ctx, self.states[probe.name])
            except Exception as exc:  # the others' values of this step are still recorded
                if failure is None:
                    failure = ProbeError(probe.name, step, exc)
                    failure.__cause__ = exc
                continue
            finally:
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
        self._describe()
        if failure is not None:
            raise failure
        return recorded

    def declarations(self) -> dict[str, dict[str, Any]]:
        """``{probe name: describe(probe)}``: what each probe's keys mean and how to draw them."""
        return {p.name: describe(p) for p in self.probes}

    def _describe(self) -> None:
        """Write :meth:`declarations` into the run's summary once per run."""
        if self.run is None or self._described_run is self.run:
            return
        self.run.update_summary({"probes": self.declarations()})
        self._described_run = self.run

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
        """What the probes carry between calls, by probe name, for a checkpoint: the states
        this Recorder holds, and for a stateless probe that keeps state on itself
        :func:`gdlens.probes.base.probe_state`."""
        out: dict[str, Any] = {}
        for p in self.probes:
            if p.name in self._initialised and callable(getattr(p, "init", None)):
                out[p.name] = {"state": self.states[p.name]}
            else:
                st = probe_state(p)
                if st is not None:
                    out[p.name] = st
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (probes not in it start afresh at their next step). A checkpoint
        written before a probe's state moved to the Recorder (the probe's own fields) becomes its
        state through ``probe.upgrade_state(saved)`` where the probe defines one; otherwise that
        probe starts afresh."""
        for p in self.probes:
            if p.name not in state:
                continue
            if callable(getattr(p, "init", None)):
                saved = state[p.name]
                if isinstance(saved, dict) and set(saved) == {"state"}:
                    self.states[p.name] = saved["state"]
                    self._initialised.add(p.name)
                elif callable(getattr(p, "upgrade_state", None)):  # saved before the init/compute split
                    self.states[p.name] = p.upgrade_state(saved)
                    self._initialised.add(p.name)
            else:
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
