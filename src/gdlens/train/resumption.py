"""Resuming a stored run: the check that a resumed run is the run that was stored, and
:func:`resume`, which rebuilds task, model, optimizer and probes from the stored config.

A resumed run continues from its newest intact checkpoint (a damaged one is skipped with a
warning naming the file, :meth:`gdlens.store.Run.latest_checkpoint`). It must be trained with
the stored configuration: model class and size, task, optimizer and its settings, steps,
batch size and seed. Only the keys in :data:`MAY_DIFFER` may change on resume (a probe added
on resume records from the resume step on).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gdlens.store import Store, open_store
from gdlens.store.store import canonical_config

__all__ = ["MAY_DIFFER", "config_differences", "check_same_config", "resume"]

MAY_DIFFER = ("probes", "ensemble", "meta")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: value}


def config_differences(stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """``"key (stored X, given Y)"`` for every dotted key whose value differs between two
    configs, compared as canonical JSON (``1e-2`` equals ``0.01``, a tuple equals a list);
    keys under :data:`MAY_DIFFER` are left out."""
    a = _flatten(json.loads(canonical_config(stored)))
    b = _flatten(json.loads(canonical_config(given)))
    out = []
    for key in sorted(set(a) | set(b)):
        if key.split(".", 1)[0] in MAY_DIFFER:
            continue
        if canonical_config({"v": a.get(key)}) != canonical_config({"v": b.get(key)}):
            out.append(f"{key} (stored {a.get(key, 'nothing')!r}, given {b.get(key, 'nothing')!r})")
    return out


def check_same_config(run_id: str, stored: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the keys when ``given`` is not the stored configuration."""
    differences = config_differences(stored, given)
    if differences:
        raise ValueError(
            f"run {run_id} was stored with another configuration, so it is not resumed: {'; '.join(differences)}. "
            f"Resume it with its own settings (gd.resume({run_id!r}, store) rebuilds them), or start a new run"
        )


def resume(run_id: str, store: Store | str, *, progress: bool = True, checkpoint_every: int | None = None):
    """Continue the stored run ``run_id`` (an id or a unique prefix) of ``store``: task, model,
    optimizer and probes are rebuilt from its stored config, the state from its newest intact
    checkpoint, and training goes on to the stored number of steps. Returns the
    :class:`~gdlens.train.TrainResult` of the whole run.

    Raises :class:`~gdlens.store.StoreError` when ``store`` holds no store or the run cannot be
    resumed (running, completed, diverged), ``KeyError`` for an unknown id, and ``ValueError``
    when the stored config does not say how to rebuild the model (a model built in Python:
    resume it with ``gd.train(model, task, ..., store=store, resume=run_id)``).
    """
    from gdlens.config import ConfigError
    from gdlens.config.build import build_model, build_probes, build_task, train_kwargs
    from gdlens.models.protocol import StateSpace
    from gdlens.train.loop import train

    store = store if isinstance(store, Store) else open_store(store, create=False)
    run = store.resumable(run_id)
    config = run.config
    model_config = config.get("model")
    if not isinstance(model_config, Mapping) or "name" not in model_config:
        kind = model_config.get("class") if isinstance(model_config, Mapping) else model_config
        raise ValueError(
            f"run {run.id} was trained on a model built in Python ({kind}): its config does not say how to rebuild "
            f"it. Resume it from Python: gd.train(model, task, ..., store=store, resume={run.id!r})"
        )
    try:
        task = build_task(config)
        model = build_model(config, task)
        probes = build_probes(config.get("probes", "default"), isinstance(model, StateSpace))
        kwargs = train_kwargs(config)
    except ConfigError as err:
        raise ValueError(f"run {run.id}: its stored config cannot be rebuilt: {err}") from err
    return train(model, task, probes=probes, store=store, resume=run.id, name=run.name, sweep=run.sweep,
                 progress=progress, checkpoint_every=checkpoint_every, **kwargs)
