"""From a normalised config to the objects of a run: the task, the model (initialised under
``torch.manual_seed(seed)``), the probes, and the keyword arguments of ``gd.train``. The sweep
runner, the vectorised ensemble and the ``gdlens train`` command all build through here, so
one config always means one run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from gdlens.config.schema import _probe_classes, normalize, normalize_probes

__all__ = ["build_task", "build_model", "build_probes", "train_kwargs"]


def build_task(config: Mapping[str, Any]):
    """``gd.tasks.get(**config["task"])``."""
    from gdlens.tasks import get as get_task

    return get_task(**normalize(config)["task"])


def build_model(config: Mapping[str, Any], task=None) -> torch.nn.Module:
    """The config's model, initialised under ``torch.manual_seed(config["seed"])``; its input and
    output sizes are the task's unless ``model.input_size``/``model.output_size`` say otherwise."""
    from gdlens.models import registry

    config = normalize(config)
    task = build_task(config) if task is None else task
    kw = {k: v for k, v in config["model"].items() if k not in ("class", "num_params")}
    name, hidden, g = kw.pop("name"), kw.pop("hidden"), kw.pop("g")
    input_size = kw.pop("input_size") or task.input_size
    output_size = kw.pop("output_size") or task.output_size
    torch.manual_seed(config["seed"])
    return registry.build(name, input_size, hidden, output_size, g=g, **kw)


def build_probes(spec: Any, recurrent: bool) -> list | None:
    """The probes of a config's ``probes`` entry; None for ``"default"`` (the loop's own
    defaults). ``"default"`` inside a list expands to the default set for the model."""
    from gdlens.probes.training import default_probes

    spec = normalize_probes(spec)
    if spec == "default":
        return None
    if spec == "none":
        return []
    classes, probes = _probe_classes(), []
    for entry in spec:
        kwargs = dict(entry) if isinstance(entry, Mapping) else {"name": entry}
        name = kwargs.pop("name")
        probes.extend(default_probes(recurrent) if name == "default" else [classes[name](**kwargs)])
    return probes


def train_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The optimiser and loop settings of ``gd.train`` for a config (everything but the model,
    the task, the probes and the store), with ``config=`` the normalised config itself."""
    c = normalize(config)
    return {
        "optimizer": c["optimizer"], "lr": c["lr"], "steps": c["steps"], "batch_size": c["batch_size"],
        "weight_decay": c["weight_decay"], "betas": tuple(c["betas"]) if c["betas"] is not None else None,
        "momentum": c["momentum"], "seed": c["seed"], "config": c,
    }
