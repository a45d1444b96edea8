"""Many small networks of one architecture trained as one vectorised program.

The members' parameters are stacked along a new leading axis
(:func:`torch.func.stack_module_state`), the loss of every member is computed at once with
:func:`torch.func.vmap` over :func:`torch.func.functional_call` (an MLP, or gdlens' RNN, GRU
and LSTM, whose output is the first of their ``(y, z)``), and one elementwise optimizer (SGD
or Adam/AdamW, written out so that each member may have its own learning rate) updates the
stacks. The gradient of the summed loss with respect to member i's slice is
member i's own gradient, and the optimizers act elementwise, so each member follows the same
trajectory as a separate :func:`gdlens.train` run with the same seed (up to float rounding of
batched vs single matrix products). Each member is recorded into the store as its own run,
with the same probes on the same schedules (the member is materialised as a module when a
probe is due).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from gdlens.config.build import build_model, build_probes, build_task
from gdlens.config.record import recorded_config, run_settings
from gdlens.config.schema import normalize as normalize_config
from gdlens.models.base import StateSpaceModel
from gdlens.store import Store, open_store
from gdlens.store.store import canonical_config
from gdlens.train.lifecycle import RunLifecycle, run_summary

__all__ = ["train_ensemble", "ensemble_groups", "EnsembleResult", "ENSEMBLE_FIELDS", "ENSEMBLE_MODELS"]

# the fields ensemble members may differ in
ENSEMBLE_FIELDS = ("seed", "lr", "model.g")
# the models an ensemble can train
ENSEMBLE_MODELS = ("mlp", "rnn", "gru", "lstm")


def _group_key(config: Mapping[str, Any]) -> str:
    c = copy.deepcopy(dict(config))
    c.pop("seed", None)
    c.pop("lr", None)
    c["model"] = {k: v for k, v in c["model"].items() if k != "g"}
    return canonical_config(c)


def ensemble_groups(configs: Sequence[Mapping[str, Any]], min_size: int = 2) -> tuple[list[list[int]], list[int]]:
    """Groups of configs (indices) of one :data:`ENSEMBLE_MODELS` model that differ only in
    :data:`ENSEMBLE_FIELDS`, and the indices left over (other models, incompatible optimizers,
    groups smaller than ``min_size``)."""
    groups: dict[str, list[int]] = {}
    rest = []
    for i, config in enumerate(configs):
        config = normalize_config(config)
        if config["model"]["name"] not in ENSEMBLE_MODELS or config["optimizer"] not in ("sgd", "adam", "adamw"):
            rest.append(i)
            continue
        groups.setdefault(_group_key(config), []).append(i)
    out = []
    for members in groups.values():
        (out.append(members) if len(members) >= min_size else rest.extend(members))
    return out, sorted(rest)


@dataclass
class EnsembleResult:
    """What :func:`train_ensemble` returns: ``losses`` (E, steps) training loss before each
    update (NaN after divergence), ``run_ids`` (None without a store), each member's
    ``summary`` and ``recorders`` (their ``history``), and the trained ``models``."""

    losses: np.ndarray
    run_ids: list[str | None]
    summaries: list[dict[str, Any]]
    recorders: list[Any]
    models: list[torch.nn.Module] = field(default_factory=list)

    def __iter__(self):  # so that ``for run_id in train_ensemble(...)`` reads naturally
        return iter(self.run_ids)

    def __len__(self) -> int:
        return len(self.run_ids)


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape((-1,) + (1,) * (like.dim() - 1))


def train_ensemble(
    configs: Sequence[Mapping[str, Any]],
    store: Store | str | None = None,
    sweep: str | None = None,
    threads: int | None = None,
) -> EnsembleResult:
    """Train ``configs`` of one :data:`ENSEMBLE_MODELS` model (differing only in seed, ``lr`` and
    ``model.g``; see the module docstring) as one vectorised ensemble, recording each member as
    its own run in ``store``.

    Returns an :class:`EnsembleResult` (iterating over it gives the run ids).
    """
    from gdlens.probes.base import forward
    from gdlens.train.loop import _Batches
    from gdlens.train.recorder import Recorder

    if threads:
        torch.set_num_threads(threads)
    configs = [normalize_config(c) for c in configs]
    if not configs:
        return EnsembleResult(np.zeros((0, 0)), [], [], [])
    keys = {_group_key(c) for c in configs}
    if len(keys) != 1:
        raise ValueError(f"ensemble members may differ only in {ENSEMBLE_FIELDS}")
    c0 = configs[0]
    if c0["model"]["name"] not in ENSEMBLE_MODELS:
        raise ValueError(f"the vectorised ensemble trains {', '.join(ENSEMBLE_MODELS)}; got model "
                         f"{c0['model']['name']!r}")
    kind, steps, wd = c0["optimizer"], int(c0["steps"]), float(c0["weight_decay"])
    betas, eps, momentum = tuple(c0.get("betas") or (0.9, 0.999)), 1e-8, float(c0.get("momentum", 0.0))
    if isinstance(store, str) or (store is not None and not isinstance(store, Store)):
        store = open_store(store)

    task = build_task(c0)
    models = [build_model(c, task) for c in configs]
    E = len(models)
    batches = [_Batches(task, c0["batch_size"], int(c["seed"]), None) for c in configs]
    params, buffers = stack_module_state(models)
    names = list(params)
    lr = torch.tensor([float(c["lr"]) for c in configs], dtype=params[names[0]].dtype)
    loss_kind = batches[0].fixed.loss

    from gdlens.tasks.base import loss_value

    recurrent = isinstance(models[0], StateSpaceModel)
    base = copy.deepcopy(models[0]).to("meta")  # structure only: functional_call supplies the tensors

    def member_loss(p, b, x, target, mask):
        out = functional_call(base, (p, b), (x,))
        pred = out[0] if isinstance(out, tuple) else out  # state-space models return (y, z)
        return loss_value(pred, target, loss_kind, mask)

    recorders, runs = [], []
    for c, model in zip(configs, models):
        probes = build_probes(c["probes"], recurrent=recurrent)
        if probes is None:
            from gdlens.probes.training import default_probes

            probes = default_probes(recurrent)
        run = None
        if store is not None:
            settings = run_settings(
                model, batches[0].config, True, probes, optimizer=kind, lr=c["lr"], steps=steps,
                batch_size=c["batch_size"], weight_decay=wd, betas=c["betas"], momentum=momentum, seed=c["seed"])
            run = store.create_run(recorded_config(settings, c), sweep=sweep)
        runs.append(run)
        recorders.append(Recorder(probes, run, total_steps=steps))

    state: dict[str, dict[str, torch.Tensor]] = {n: {} for n in names}
    losses = np.full((E, steps), np.nan)
    alive = torch.ones(E, dtype=torch.bool)
    lives = [RunLifecycle(run) for run in runs]
    t_start = time.perf_counter()

    def materialise(i: int) -> torch.nn.Module:
        with torch.no_grad():
            for n, p in models[i].named_parameters():
                p.copy_(params[n][i])
        return models[i]

    try:
        for step in range(steps + 1):
            data = [b(step) for b in batches]
            for i in range(E):
                if not alive[i]:
                    continue
                if any(recorders[i].is_due(p, step) for p in recorders[i].probes):
                    lives[i].flush()
                    batch = data[i]
                    recorders[i].step(
                        step, model=materialise(i), batch=batch, eval_data=batches[i].eval_data,
                        loss_fn=lambda m, batch=batch: batch.loss_value(forward(m, batch.x)[0]),
                    )
            if step == steps:
                break
            x = torch.stack([d.x for d in data])
            target = torch.stack([d.target for d in data])
            mask = None if data[0].mask is None else torch.stack([d.mask for d in data])
            in_dims = (0, 0, 0, 0, None if mask is None else 0)
            per_member = vmap(member_loss, in_dims=in_dims)(params, buffers, x, target, mask)
            values = per_member.detach().double().numpy()
            finite = torch.from_numpy(np.isfinite(values))
            for i in np.flatnonzero(alive.numpy() & ~finite.numpy()):
                alive[i] = False
                lives[i].diverge(step, float(values[i]))
            for i in np.flatnonzero(alive.numpy()):
                losses[i, step] = values[i]
                lives[i].loss(step, float(values[i]))
            if not alive.any():
                break
            grads = torch.autograd.grad(per_member.sum(), [params[n] for n in names], allow_unused=True)
            with torch.no_grad():
                for n, g in zip(names, grads):
                    if g is None:
                        continue
                    _update(kind, params[n], g, state[n], _expand(lr, g), _expand(alive, g), wd, betas, eps, momentum)
    except BaseException as err:
        for life in lives:
            life.abort(err)
        raise
    seconds = time.perf_counter() - t_start
    summaries = []
    for i, (rec, life) in enumerate(zip(recorders, lives)):
        diverged = life.diverged
        summary = run_summary(steps, seconds / E, rec, losses[i, -1] if steps else float("nan"),
                              diverged[0] if diverged else None, ensemble_size=E)
        summaries.append(summary)
        model = materialise(i)
        life.finish(summary, {"model": model.state_dict(), "initial_params": rec.initial_params}, steps)
    return EnsembleResult(losses, [r.id if r is not None else None for r in runs], summaries, recorders, models)


def _update(kind, p, g, st, lr, alive, wd, betas, eps, momentum) -> None:
    """One elementwise optimizer step on a stacked parameter, as torch.optim's single-tensor
    SGD / Adam / AdamW do it, with a per-member learning rate; dead members are left alone."""
    old = p.detach().clone()
    if kind == "sgd":
        if wd:
            g = g.add(p, alpha=wd)
        if momentum:
            buf = st.get("momentum")
            buf = g.clone() if buf is None else buf.mul_(momentum).add_(g)
            st["momentum"] = buf
            g = buf
        p.sub_(lr * g)
    else:
        beta1, beta2 = betas
        st["step"] = st.get("step", 0) + 1
        t = st["step"]
        if kind == "adamw":
            p.mul_(1 - lr * wd)
        elif wd:
            g = g.add(p, alpha=wd)
        m = st.setdefault("exp_avg", torch.zeros_like(p))
        v = st.setdefault("exp_avg_sq", torch.zeros_like(p))
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = lr / (1 - beta1**t)
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        p.sub_(step_size * (m / denom))
    p.copy_(torch.where(alive, p, old))
