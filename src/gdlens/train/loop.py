"""``gd.train``: a plain training loop that records probes into the run store.

Step s means "the parameters after s updates": probes scheduled at s see them, and the loop
runs updates 1..steps. The batch of step s is a function of (seed, s) alone, so a resumed run
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gdlens.config.record import recorded_config, run_settings
from gdlens.models.protocol import StateSpace
from gdlens.probes.base import Probe, forward
from gdlens.probes.training import default_probes
from gdlens.store import Run, Store, open_store
from gdlens.tasks import SplitData, Task, TaskData
from gdlens.tasks import get as get_task
from gdlens.train.flow import GradientFlow
from gdlens.train.lifecycle import RunLifecycle, run_summary
from gdlens.train.recorder import Recorder
from gdlens.train.resumption import check_same_config

__all__ = ["train", "TrainResult", "make_optimizer"]

OPTIMIZERS = ("sgd", "adam", "adamw", "flow")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model.  recorder: the :class:`Recorder` (``history`` of every probe).
        run: the store's :class:`~gdlens.store.Run` (None without a store).
        losses: (steps,) training loss before each update.
        summary: final metrics, timings and the recording overhead.
    """

    model: nn.Module
    recorder: Recorder
    run: Run | None
    losses: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> dict[str, list]:
        return self.recorder.history

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a recorded scalar, e.g. ``"metrics/test/accuracy"``."""
        return self.recorder.series(name)

    def metrics(self):
        """Every recorded scalar and the per-step ``train_step/loss`` as one wide pandas
        DataFrame indexed by step: the same table ``Store.metrics(run, wide=True)`` gives for a
        stored run, so ``gd.report.figures`` draw from a result held in memory too."""
        import pandas as pd

        frame = self.recorder.metrics()
        losses = pd.Series(self.losses, index=np.arange(len(self.losses)), name="train_step/loss")
        frame = frame.join(losses, how="outer") if len(frame.columns) else losses.to_frame()
        frame.index.name = "step"
        return frame


def make_optimizer(
    params, optimizer: str | Callable | torch.optim.Optimizer, lr: float, weight_decay: float, betas, momentum: float
) -> torch.optim.Optimizer:
    """An optimizer from a name (``"sgd"``, ``"adam"``, ``"adamw"``, or ``"flow"``: gradient flow
    integrated with Armijo-controlled steps starting at ``lr``, :class:`gdlens.train.flow.GradientFlow`),
    a factory ``params -> Optimizer``, or an instance (returned as is)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer):
        return optimizer(params)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "flow":
        if weight_decay or momentum or betas is not None:
            raise ValueError("optimizer 'flow' integrates gradient flow on the loss alone: no weight_decay, momentum or betas")
        return GradientFlow(params, lr=lr)
    if optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
        kwargs = {"betas": tuple(betas)} if betas is not None else {}
        return cls(params, lr=lr, weight_decay=weight_decay, **kwargs)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, a factory or a torch.optim.Optimizer; got {optimizer!r}")


DEFAULT_TRIALS = 128


def _default_size(task: Task) -> int:
    """The generator's own default size, or DEFAULT_TRIALS when it has none."""
    default = inspect.signature(task.fn).parameters[task.size_arg].default
    return DEFAULT_TRIALS if default is inspect.Parameter.empty else int(default)


class _Batches:
    """The batch of each step: a fixed dataset (full batch or seeded minibatches) or fresh
    draws from a task generator."""

    def __init__(
        self, task: Any, batch_size: int | None, seed: int, eval_data: TaskData | None,
        device: torch.device | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        self.batch_size, self.seed, self.task = batch_size, seed, None
        self.device, self.dtype = device, dtype
        if isinstance(task, str):
            task = get_task(task)
        if isinstance(task, Task):
            self.config = {"name": task.name, **dict(task.kwargs)}
            if batch_size is not None and task.size_arg is not None:
                self.task = task  # fresh batches each step
                self.fixed = task.generate(batch_size, seed=seed)
                default_eval = task.generate(batch_size, seed=seed + 1_000_003)
            else:
                size = None if task.size_arg is None else _default_size(task)
                generated = task.generate(size, seed=seed)
                self.fixed, default_eval = (
                    (generated.train, generated.test) if isinstance(generated, SplitData)
                    else (generated, task.generate(size, seed=seed + 1_000_003))
                )
        elif isinstance(task, SplitData):
            self.config = {"name": task.name or task.train.name}
            self.fixed, default_eval = task.train, task.test
        elif isinstance(task, TaskData):
            self.config = {"name": task.name}
            self.fixed, default_eval = task, None
        else:
            raise TypeError(f"task must be a name, a gdlens.tasks.Task, TaskData or SplitData; got {type(task).__name__}")
        self.fixed = self._cast(self.fixed)
        self.eval_data = self._cast(eval_data if eval_data is not None else default_eval)
        n = self.fixed.x.shape[0]
        if batch_size is not None and self.task is None and not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be between 1 and the dataset size {n}, got {batch_size}")

    def _cast(self, data: TaskData | None) -> TaskData | None:
        """``data`` on the model's device, its floating tensors in the model's dtype."""
        if data is None or (self.device is None and self.dtype is None):
            return data
        return data.to(self.device, self.dtype)

    def __call__(self, step: int) -> TaskData:
        if self.batch_size is None:
            return self.fixed
        if self.task is not None:
            if not step:
                return self.fixed
            return self._cast(self.task.generate(self.batch_size, seed=self.seed * 1_000_003 + step + 1))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = torch.randperm(self.fixed.x.shape[0], generator=gen)[: self.batch_size]
        return self.fixed.subset(idx.to(self.fixed.x.device))


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the analysis extra
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=True)


def train(
    model: nn.Module,
    task: Any,
    *,
    optimizer: str | Callable | torch.optim.Optimizer = "adam",
    lr: float = 1e-3,
    steps: int = 1000,
    batch_size: int | None = None,
    weight_decay: float = 0.0,
    betas: Sequence[float] | None = None,
    momentum: float = 0.0,
    probes: Sequence[Probe] | None = None,
    store: Store | str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    eval_data: TaskData | None = None,
    checkpoint_every: int | None = None,
    resume: str | None = None,
    sweep: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``task`` with gdlens' loss (the task's loss and mask; docs/design.md),
    recording ``probes`` on their schedules.

    Args:
        model: any nn.Module whose forward returns y or (y, z).
        task: a task name (``gd.tasks.TASKS``), a :class:`~gdlens.tasks.Task`, a TaskData
            (fixed training set) or a SplitData (train and test). Its batches (and
            ``eval_data``) are moved to the device of the model's parameters and their
            floating tensors cast to the parameters' dtype, so a float64 model trains on
            float64 data.
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"flow"`` (:class:`~gdlens.train.flow.GradientFlow`),
            a factory or an optimizer instance.
        lr, weight_decay, betas, momentum: optimizer settings.
        steps: number of updates.
        batch_size: None for full batch (a task generator then draws one fixed training set
            of its default size, or 128 trials); an int for seeded minibatches of a fixed
            dataset, or fresh draws of that size from a task generator at every step.
        probes: what to record (default: metrics, parameter norms, relative change, and the
            hidden participation ratio for state-space models).
        store: a :class:`~gdlens.store.Store` or a path; None keeps results in memory only.
        name, config, sweep: recorded with the run. The recorded config is the loop's own
            settings in the schema's normal form (:mod:`gdlens.config`) merged with ``config``:
            a schema key there must agree with the arguments (else ``ValueError``), ``model``
            adds its name and settings to the recorded class and size, any other key is kept as
            your annotation unless it is a near miss of a schema key (``stpes``: an error).
        seed: seeds the batches (the model's initialisation is the caller's).
        checkpoint_every: save model and optimizer state every N steps (and at the end);
            default ``max(steps // 10, 1)`` when there is a store.
        resume: id (or unique prefix) of an interrupted or failed run in ``store`` to continue
            from its newest intact checkpoint. Needs ``store``; the configuration must be the
            stored one (a ``ValueError`` names the keys that differ; probes may differ), see
            :func:`gdlens.train.resumption.resume` to rebuild everything from the stored config.
        progress: show a progress bar (step, loss, rate).

    Returns:
        :class:`TrainResult`. A loss that becomes NaN or infinite stops training: the run is
        marked ``diverged`` (``summary["diverged_at"]`` is the step) and keeps everything
        recorded before. A run that raises is marked failed (interrupted on Ctrl-C).
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if resume is not None and store is None:
        raise ValueError(f"resume={resume!r} needs store=: the run to resume and its checkpoints live in a store")
    reference = next((p for p in model.parameters() if p.is_floating_point()), None)
    batches = _Batches(task, batch_size, seed, eval_data, *(
        (reference.device, reference.dtype) if reference is not None else (None, None)))
    probes = list(probes) if probes is not None else default_probes(isinstance(model, StateSpace))
    opt = make_optimizer(model.parameters(), optimizer, lr, weight_decay, betas, momentum)
    if isinstance(store, (str,)) or (store is not None and not isinstance(store, Store)):
        store = open_store(store)
    full_config = recorded_config(run_settings(
        model, batches.config, isinstance(task, (str, Task)), probes,
        optimizer=optimizer if isinstance(optimizer, str) else type(opt).__name__, lr=lr, steps=steps,
        batch_size=batch_size, weight_decay=weight_decay, betas=betas, momentum=momentum, seed=seed,
    ), config)
    run, start = None, 0
    recorder = Recorder(probes, None, total_steps=steps)
    if store is not None:
        if resume is not None:
            stored = store.run(resume)  # a unique prefix resolves to the full id
            check_same_config(stored.id, stored.config, full_config)
            run = store.resume(stored.id)
            ckpt = run.latest_checkpoint()
            if ckpt is not None:
                start, state = ckpt
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                recorder.initial_params = state["initial_params"]
                recorder.load_state(state.get("probes", {}))
                recorder.restore_history(run, start)
        else:
            run = store.create_run(full_config, name=name, sweep=sweep)
        recorder.run = run
        checkpoint_every = checkpoint_every or max(steps // 10, 1)

    losses = np.full(steps, np.nan)
    if run is not None and start:
        old = run.metrics(names=["train_step/loss"], as_frame=False).get("train_step/loss")
        if old is not None:
            keep = old[0] < start
            losses[old[0][keep]] = old[1][keep]
    bar = _progress(steps, start, progress)
    life = RunLifecycle(run)
    t_start = time.perf_counter()

    def state() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "initial_params": recorder.initial_params,
                "probes": recorder.state()}

    try:
        for step in range(start, steps + 1):
            batch = batches(step)

            def loss_fn(m: nn.Module, batch: TaskData = batch) -> torch.Tensor:
                return batch.loss_value(forward(m, batch.x)[0])

            if recorder.step(step, model=model, batch=batch, eval_data=batches.eval_data, optimizer=opt, loss_fn=loss_fn):
                life.flush()  # whatever a probe step records, the losses before it are on disk too
            if step == steps:
                break
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model)
            value = float(loss.detach())
            if not math.isfinite(value):
                life.diverge(step, value)
                break
            loss.backward()
            if isinstance(opt, GradientFlow):  # its step-size test re-evaluates the loss
                with torch.no_grad():
                    opt.step(lambda: loss_fn(model), loss=value)
            else:
                opt.step()
            losses[step] = value
            life.loss(step, value)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            if run is not None and (step + 1) % checkpoint_every == 0:
                life.checkpoint(step + 1, state())
    except BaseException as err:
        life.abort(err)
        raise
    finally:
        if bar is not None:
            bar.close()
    flow = {"flow/time": opt.flow_time, "flow/final_lr": opt.lr, "flow/rejected_steps": opt.rejected,
            "flow/stalled_steps": opt.stalled} if isinstance(opt, GradientFlow) else {}  # how far along the flow
    diverged = life.diverged
    summary = run_summary(steps, time.perf_counter() - t_start, recorder, losses[-1] if steps else float("nan"),
                          diverged[0] if diverged else None, **flow)
    if diverged is not None and bar is not None:
        bar.write(f"stopped: the training loss became {diverged[1]} at step {diverged[0]}")
    life.finish(summary, state() if run is not None and diverged is None else None, steps)
    return TrainResult(model, recorder, run, losses, summary)
