"""Running sweeps: one config → one run in the store, and ``sweep`` over many configs with a
local process pool, a vectorised ensemble, or Dask distributed.

A config is the schema of :mod:`gdlens.config` (``task``, ``model``, ``optimizer``, ``lr``,
``steps``, ``batch_size``, ``weight_decay``, ``betas``, ``momentum``, ``seed``, ``probes``,
``meta``); every config is normalised (validated, coerced, defaults filled) before anything
trains, so a typo stops the sweep at once. ``seed`` seeds both the model's initialisation
(``torch.manual_seed``) and the batches. A config counts as done when a completed run in the
store has the same identity (:func:`gdlens.config.config_key`): the same normal form, however
either was written, and whether it ran from a sweep, ``gdlens train`` or ``gd.train``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gdlens.config import ConfigError, config_key
from gdlens.config.build import build_model, build_probes, build_task, train_kwargs
from gdlens.config.schema import DEFAULTS, PROBES
from gdlens.config.schema import normalize as normalize_config
from gdlens.store import Store, open_store
from gdlens.sweep.ensemble import ensemble_groups, train_ensemble
from gdlens.sweep.spec import SweepSpec
from gdlens.sweep.structure import save_structure

__all__ = [
    "DEFAULTS", "PROBES", "SweepResult", "normalize_config", "build_model", "build_probes", "run_config",
    "pending", "sweep",
]

BACKENDS = ("local", "dask", "serial")


def _store_path(store: Store | str | os.PathLike) -> str:
    return str(store.path) if isinstance(store, Store) else os.fspath(store)


def stored_key(config: Mapping[str, Any]) -> str | None:
    """The identity of a stored run's config, or None when it is not a schema config (a run of
    a model built in Python, or with annotations of its own)."""
    try:
        return config_key(config)
    except (ConfigError, TypeError):
        return None


def _matching(records: Iterable[Mapping[str, Any]], config: Mapping[str, Any]) -> list[str]:
    key = config_key(config)
    return [r["id"] for r in records if stored_key(r["config"]) == key]


def run_config(config: Mapping[str, Any], store: Store | str, sweep: str | None = None, threads: int | None = None) -> str:
    """Train one config into ``store`` (a path or Store) and return its run id. An
    interrupted run of the same config is resumed from its last checkpoint; a completed one is
    returned without training. ``threads`` sets ``torch.set_num_threads`` (workers use 1)."""
    from gdlens.models.protocol import StateSpace
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
    task = build_task(config)
    model = build_model(config, task)
    probes = build_probes(config["probes"], isinstance(model, StateSpace))
    result = train(model, task, probes=probes, store=store, sweep=sweep, progress=False,
                   resume=interrupted[-1] if interrupted else None, **train_kwargs(config))
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
    """Indices of the configs with no completed run of the same identity in ``store``, and
    each config's completed run id (None where pending)."""
    store.mark_stale()
    done: dict[str, str] = {}
    for r in store.runs(status="completed", as_frame=False):
        key = stored_key(r["config"])
        if key is not None:
            done.setdefault(key, r["id"])
    ids = [done.get(config_key(c)) for c in configs]
    return [i for i, found in enumerate(ids) if found is None], ids


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
    configs = _normalized(configs, sweep_name)
    store = open_store(store) if not isinstance(store, Store) else store
    if isinstance(spec, SweepSpec):
        save_structure(store, spec if spec.name == sweep_name else SweepSpec(**{**spec.to_dict(), "name": sweep_name}))
    todo, run_ids = pending(configs, store)
    result = SweepResult(sweep_name, configs, run_ids, skipped=len(configs) - len(todo), store=store)
    if not todo:
        return result
    path = _store_path(store)
    if ensemble and backend != "dask":
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


def _normalized(configs: Sequence[Mapping[str, Any]], sweep_name: str) -> list[dict[str, Any]]:
    """Every config in normal form, before anything trains; the first invalid one raises
    :class:`ConfigError` naming the sweep, the config's index and the key."""
    out = []
    for i, config in enumerate(configs):
        try:
            out.append(normalize_config(config))
        except ConfigError as err:
            raise ConfigError(f"sweep {sweep_name!r}, config {i}: {err}") from None
    return out


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
