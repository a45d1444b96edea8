"""Small helpers shared by the entries: a run of an entry's own loop written to the store,
values per seed reduced to :class:`~gdlens.reproduce.registry.Measured`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gdlens.reproduce.registry import Measured
from gdlens.store import Store

__all__ = ["record_series", "per_seed", "history_keys", "nan_if_none", "finite", "settled_step"]


def record_series(store: Store, name: str, config: Mapping[str, Any],
                  series: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                  summary: Mapping[str, Any] | None = None) -> str:
    """Write a run that an entry computed in its own loop: ``series`` name -> (steps, values);
    returns the run id. (Entries that train through ``gd.train(store=...)`` need not.)"""
    run = store.create_run(dict(config), name=name)
    for key, (steps, values) in series.items():
        run.log_series(key, [int(s) for s in steps], [float(v) for v in values])
    run.finish(dict(summary or {}))
    return run.id


def per_seed(values: Mapping[str, Sequence[float]]) -> dict[str, Measured]:
    """claim name -> values (one per seed) to claim name -> mean ± standard error."""
    return {k: Measured.from_samples(v) for k, v in values.items()}


def history_keys(result: Any, prefix: str) -> list[str]:
    """The scalar keys a TrainResult recorded under ``prefix`` (sorted)."""
    return sorted(k for k in result.recorder.history if k.startswith(prefix))


def nan_if_none(x: Any) -> float:
    return math.nan if x is None else float(x)


def finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def settled_step(steps: Sequence[int], values: Sequence[float], threshold: float, hold: int = 3) -> float:
    """The first recorded step at which ``values`` is ≤ ``threshold`` there and at the next
    ``hold − 1`` recorded steps (NaN when there is none): a lone dip (a transient at the
    start) does not count, and a later excursion (a loss spike) does not undo it."""
    ok = np.asarray(values, dtype=float) <= threshold
    for i in range(len(ok) - hold + 1):
        if ok[i:i + hold].all():
            return float(steps[i])
    return math.nan
