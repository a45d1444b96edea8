"""The config ``gd.train`` records with a run: what the loop was called with, in the schema's
canonical form, merged with the caller's ``config=``.

``settings`` is what the loop knows (the optimiser settings, the steps, the seed, a description
of the task, of the model (``class``, ``num_params``) and of the probes). The caller's config
adds what the loop cannot know (the model's name and settings, the probes as a spec, ``meta``):

- a schema key is normalised (:func:`gdlens.config.schema.normalize_field`) and must agree
  with the loop's own value: ``config={"lr": 0.1}`` with ``lr=1e-3`` raises rather than record
  a run that did not happen; ``model`` keeps the loop's ``class`` and ``num_params``;
  ``probes`` and ``meta`` are taken as given;
- any other top-level key is the caller's annotation, kept as it is, unless it is a near miss
  of a schema key (``stpes``), which raises with a suggestion.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from gdlens.config.coerce import ConfigError, to_float, to_int
from gdlens.config.schema import ALIASES, FIELDS, normalize_field, normalize_task, unknown_field_error

__all__ = ["run_settings", "recorded_config"]

_AGREE = ("optimizer", "lr", "steps", "batch_size", "weight_decay", "betas", "momentum", "seed")


def run_settings(model: nn.Module, task: Mapping[str, Any], registry_task: bool, probes: Sequence[Any], *,
                 optimizer: str, lr: float,
                 steps: int, batch_size: int | None, weight_decay: float, betas: Sequence[float] | None,
                 momentum: float, seed: int) -> dict[str, Any]:
    """What a training loop knows about its run, as plain data in the schema's types: the
    model's class and parameter count, the task's description, the probes with their
    schedules, and the optimiser and loop settings (numbers coerced, not range-checked). A task
    bound from the registry (``registry_task``) is recorded in normal form; a dataset by name."""
    task = dict(task)
    return {
        "model": {"class": type(model).__name__, "num_params": sum(p.numel() for p in model.parameters())},
        "task": normalize_task(task) if registry_task else task,
        "optimizer": optimizer, "lr": to_float(lr, "lr"), "steps": to_int(steps, "steps"),
        "batch_size": None if batch_size is None else to_int(batch_size, "batch_size"),
        "weight_decay": to_float(weight_decay, "weight_decay"),
        "betas": None if betas is None else [to_float(b, "betas") for b in betas],
        "momentum": to_float(momentum, "momentum"), "seed": to_int(seed, "seed"),
        "probes": [{"name": p.name, "schedule": str(p.schedule)} for p in probes],
    }


def recorded_config(settings: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config to store for a run (see the module docstring)."""
    out = copy.deepcopy(dict(settings))
    if given is None:
        return out
    if not isinstance(given, Mapping):
        raise ConfigError(f"config must be a mapping, got {type(given).__name__}")
    for key, value in given.items():
        if key not in FIELDS:
            if difflib.get_close_matches(str(key), [*FIELDS, *ALIASES], n=1, cutoff=0.75):
                raise unknown_field_error(key)
            out[key] = copy.deepcopy(value)
            continue
        value = normalize_field(key, value)
        if key in _AGREE and key in out and value != out[key]:
            raise ConfigError(f"config[{key!r}] = {value!r} but the run trains with {key}={out[key]!r}")
        if key == "task" and isinstance(out.get("task"), Mapping) and "name" in out["task"] \
                and out["task"].get("name") == value["name"] and len(out["task"]) > 1 and out["task"] != value:
            raise ConfigError(f"config['task'] = {value!r} but the run trains on {out['task']!r}")
        if key == "model":
            recorded = {k: v for k, v in (out.get("model") or {}).items() if k in ("class", "num_params")}
            value = {**value, **recorded}
        out[key] = value
    return out
