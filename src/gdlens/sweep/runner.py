"""Running sweeps: one config → one run in the store, and ``sweep`` over many configs with a
local process pool, a vectorised ensemble, or Dask distributed.

A config is a nested dict::

    {"task": {"name": "teacher_student", "input_dim": 5},     # gd.tasks.get(name, **rest)
     "model": {"name": "mlp", "hidden": 32, "g": 1.0, ...},   # gd.models.build(name, ...)
     "optimizer": "adam", "lr": 1e-3, "steps": 200, "batch_size": None,
     "weight_decay": 0.0, "seed": 0, "probes": "default"}      # optional: "betas", "momentum"

``seed`` seeds both the model's initialisation (``torch.manual_seed``) and the batches.
``probes`` is ``"default"``, ``"none"``, or a list of names from :data:`PROBES` (each a name
or ``{"name": ..., **kwargs}``). A config counts as done when a completed run in the store
has the same value at every top-level key of the (defaults-filled) config.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import copy
import multiprocessing as mp
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gdlens.store import Store, open_store
from gdlens.store.store import canonical_config
from gdlens.sweep.spec import SweepSpec

__all__ = [
    "DEFAULTS", "PROBES", "SweepResult", "normalize_config", "build_model", "build_probes", "run_config",
    "pending", "sweep",
]

DEFAULTS: dict[str, Any] = {
    "optimizer": "adam", "lr": 1e-3, "steps": 200, "batch_size": None, "weight_decay": 0.0, "seed": 0,
    "probes": "default",
}
BACKENDS = ("local", "dask", "serial")


def _probe_classes() -> dict[str, type]:
    from gdlens.probes import HiddenParticipationProbe, KPProbe, MetricsProbe, ParameterNormProbe, RelativeChangeProbe

    return {
        "metrics": MetricsProbe, "param_norm": ParameterNormProbe, "rel_change": RelativeChangeProbe,
        "hidden": HiddenParticipationProbe, "kp": KPProbe,
    }


PROBES = ("metrics", "param_norm", "rel_change", "hidden", "kp")


def normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with :data:`DEFAULTS` filled in (``task`` and ``model`` are required)."""
    out = copy.deepcopy(dict(config))
    for key in ("task", "model"):
        if not isinstance(out.get(key), Mapping) or "name" not in out[key]:
            raise ValueError(f"a sweep config needs {key!r}: {{'name': ..., ...}}; got {out.get(key)!r}")
    for key, value in DEFAULTS.items():
        out.setdefault(key, value)
    return out


def build_probes(spec: Any, recurrent: bool) -> list | None:
    """Probes from a config's ``probes`` entry (None means the training loop's defaults)."""
    if spec in (None, "default"):
        return None
    if spec == "none":
        return []
    classes = _probe_classes()
    probes = []
    for item in spec:
        kwargs = dict(item) if isinstance(item, Mapping) else {"name": item}
        kind = kwargs.pop("name")
        if kind not in classes:
            raise ValueError(f"unknown probe {kind!r}; choose from {PROBES}")
        probes.append(classes[kind](**kwargs))
    return probes


def build_model(config: Mapping[str, Any], task=None) -> torch.nn.Module:
    """The config's model, initialised under ``torch.manual_seed(config["seed"])`` (its input
    and output sizes read from the task unless given)."""
    from gdlens.models import registry
    from gdlens.tasks import get as get_task

    if task is None:
        task = get_task(**config["task"])
    kw = dict(config["model"])
    name = kw.pop("name")
    input_size = kw.pop("input_size", None) or task.input_size
    output_size = kw.pop("output_size", None) or task.output_size
    hidden = kw.pop("hidden", kw.pop("width", 32))
    g = kw.pop("g", 1.0)
    torch.manual_seed(int(config.get("seed", 0)))
    return registry.build(name, input_size, hidden, output_size, g=g, **kw)


def _store_path(store: Store | str | os.PathLike) -> str:
    return str(store.path) if isinstance(store, Store) else os.fspath(store)


def _matching(records: Iterable[Mapping[str, Any]], config: Mapping[str, Any]) -> list[str]:
    key = canonical_config(config)
    return [r["id"] for r in records if canonical_config({k: r["config"].get(k) for k in config}) == key]


def run_config(config: Mapping[str, Any], store: Store | str, sweep: str | None = None, threads: int | None = None) -> str:
    """Train one config into ``store`` (a path or Store) and return its run id. An
    interrupted run of the same config is resumed from its last checkpoint; a completed one is
    returned without training. ``threads`` sets ``torch.set_num_threads`` (workers use 1)."""
    from gdlens.models.protocol import StateSpace
    from gdlens.tasks import get as get_task
    from gdlens.train import train

    if threads:
        torch.set_num_threads(threads)
    config = normalize_config(config)
    store = open_store(store) if not isinstance(store, Store) else store
    store.mark_stale()
    records = store.runs(as_frame=False)
    done = _matching([r for r in records if r["status"] == "completed"], config)
    if done:
        return done[0]
    interrupted = _matching([r for r in records if r["status"] == "interrupted"], config)
    task = get_task(**config["task"])
    model = build_model(config, task)
    probes = build_probes(config["probes"], isinstance(model, StateSpace))
    result = train(
        model, task, optimizer=config["optimizer"], lr=float(config["lr"]), steps=int(config["steps"]),
        batch_size=config["batch_size"], weight_decay=float(config["weight_decay"]),
        betas=tuple(config["betas"]) if config.get("betas") else None, momentum=float(config.get("momentum") or 0.0),
        probes=probes, store=store,
        config=config, seed=int(config["seed"]), sweep=sweep, progress=False,
        resume=interrupted[-1] if interrupted else None,
    )
    return result.run.id


def _worker(config: Mapping[str, Any], store_path: str, sweep: str | None) -> tuple[str | None, str | None]:
    """(run id, None) or (None, error) — a failing config does not stop the sweep."""
    try:
        return run_config(config, store_path, sweep=sweep, threads=1), None
    except Exception as err:  # noqa: BLE001 - reported in SweepResult.errors
        return None, f"{type(err).__name__}: {err}"


def _init_worker() -> None:
    torch.set_num_threads(1)


@contextlib.contextmanager
def _single_threaded_env():
    """OMP/MKL_NUM_THREADS=1 for child processes started inside the block (unless set)."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for k, v in saved.items():
        if v is None:
            os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


@dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
        name: the sweep id (runs carry it in the store's ``sweep`` column).
        configs: every config of the sweep (defaults filled in).
        run_ids: the run id of each config (None where it failed).
        skipped: how many configs were already complete before this call.
        errors: {config index: error message} of the configs that failed.
        store: the store.
    """

    name: str
    configs: list[dict[str, Any]]
    run_ids: list[str | None]
    skipped: int
    errors: dict[int, str] = field(default_factory=dict)
    store: Store | None = None

    @property
    def ran(self) -> int:
        return len(self.configs) - self.skipped

    def frame(self):
        """The sweep's runs as a DataFrame (``Store.runs(sweep=name)``)."""
        return self.store.runs(sweep=self.name)


def pending(configs: Sequence[Mapping[str, Any]], store: Store) -> tuple[list[int], list[str | None]]:
    """Indices of the configs with no completed run in ``store``, and each config's completed
    run id (None where pending)."""
    store.mark_stale()
    records = store.runs(status="completed", as_frame=False)
    by_keys: dict[frozenset, dict[str, str]] = {}
    todo, ids = [], []
    for i, config in enumerate(configs):
        keys = frozenset(config)
        if keys not in by_keys:
            by_keys[keys] = {}
            for r in records:
                by_keys[keys].setdefault(canonical_config({k: r["config"].get(k) for k in keys}), r["id"])
        found = by_keys[keys].get(canonical_config(config))
        ids.append(found)
        if found is None:
            todo.append(i)
    return todo, ids


def sweep(
    spec: SweepSpec | Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | os.PathLike,
    store: Store | str | os.PathLike,
    backend: str = "local",
    workers: int = 2,
    address: str | None = None,
    ensemble: bool = False,
    name: str | None = None,
) -> SweepResult:
    """Run every config of ``spec`` not already completed in ``store``.

    Args:
        spec: a :class:`SweepSpec`, a dict (:meth:`SweepSpec.from_dict`), a path to a YAML
            spec, or a plain list of configs.
        store: a Store or a store directory.
        backend: ``"local"`` (a spawn process pool of ``workers`` processes, each with one
            torch thread; ``workers <= 1`` runs in this process), ``"serial"`` (this process),
            or ``"dask"`` (Dask distributed; needs the ``dask`` extra).
        address: the Dask scheduler's address (e.g. ``"tcp://10.0.0.1:8786"``, or a
            dask-jobqueue cluster's ``scheduler_address``); None starts a ``LocalCluster`` of
            ``workers`` single-threaded processes listening on 127.0.0.1.
        ensemble: with the local backends, train groups of MLP configs that differ only in
            seed, init scale ``model.g`` and ``lr`` as one vectorised program
            (:func:`gdlens.sweep.train_ensemble`); other configs run one by one.
        name: the sweep id (default: the spec's name, ``"sweep"`` for a list).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(spec, (str, os.PathLike)):
        spec = SweepSpec.from_yaml(spec)
    elif isinstance(spec, Mapping):
        spec = SweepSpec.from_dict(spec)
    if isinstance(spec, SweepSpec):
        configs, sweep_name = spec.expand(), name or spec.name
    else:
        configs, sweep_name = [dict(c) for c in spec], name or "sweep"
    configs = [normalize_config(c) for c in configs]
    store = open_store(store) if not isinstance(store, Store) else store
    todo, run_ids = pending(configs, store)
    result = SweepResult(sweep_name, configs, run_ids, skipped=len(configs) - len(todo), store=store)
    if not todo:
        return result
    path = _store_path(store)
    if ensemble and backend != "dask":
        from gdlens.sweep.ensemble import ensemble_groups, train_ensemble

        groups, rest = ensemble_groups([configs[i] for i in todo])
        for group in groups:
            ids = train_ensemble([configs[todo[j]] for j in group], store, sweep=sweep_name)
            for j, run_id in zip(group, ids):
                result.run_ids[todo[j]] = run_id
        todo = [todo[j] for j in rest]
    if backend == "dask":
        outcomes = _run_dask([configs[i] for i in todo], path, sweep_name, workers, address)
    elif backend == "serial" or workers <= 1:
        outcomes = [_worker_inline(configs[i], store, sweep_name) for i in todo]
    else:
        outcomes = _run_pool([configs[i] for i in todo], path, sweep_name, workers)
    for i, (run_id, error) in zip(todo, outcomes):
        result.run_ids[i] = run_id
        if error is not None:
            result.errors[i] = error
    return result


def _worker_inline(config, store, sweep_name):
    try:
        return run_config(config, store, sweep=sweep_name), None
    except Exception as err:  # noqa: BLE001
        return None, f"{type(err).__name__}: {err}"


def _run_pool(configs: list[dict], path: str, sweep_name: str, workers: int) -> list[tuple[str | None, str | None]]:
    if not configs:
        return []
    with _single_threaded_env():
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(configs)), mp_context=ctx, initializer=_init_worker) as pool:
            try:
                futures = [pool.submit(_worker, c, path, sweep_name) for c in configs]
                return [f.result() for f in futures]
            except cf.BrokenExecutor as err:
                raise RuntimeError(
                    "a sweep worker process died before finishing. The pool starts its workers with 'spawn', "
                    "which re-imports the calling script: in a script, call gd.sweep(...) under "
                    "`if __name__ == \"__main__\":`. Runs that finished are in the store; a rerun skips them."
                ) from err


def _run_dask(configs: list[dict], path: str, sweep_name: str, workers: int, address: str | None):
    if not configs:
        return []
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - optional extra
        raise ImportError("backend='dask' needs Dask distributed: pip install 'gdlens[dask]'") from err
    with contextlib.ExitStack() as stack:
        if address is None:
            stack.enter_context(_single_threaded_env())
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=40,
                )
            )
            address = cluster.scheduler_address
        client = stack.enter_context(Client(address))
        futures = client.map(_worker, configs, store_path=path, sweep=sweep_name, pure=False)
        return client.gather(futures)
