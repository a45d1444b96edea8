"""What every task returns, and the small helpers every generator shares.

A generator is a plain function ``task(..., seed=0, dtype=torch.float32) -> TaskData``
(or ``-> SplitData`` for tasks that are one fixed dataset split into train and test).

Shapes (B trials, T steps, I inputs, O outputs, N samples):

- recurrent tasks: ``x`` (B, T, I) float, ``target`` (B, T, O) float, ``loss="mse"``;
- static tasks (no time axis): ``x`` (N, I), ``target`` (N, O) float for ``"mse"``, or
  ``target`` (N,) long class labels for ``"cross_entropy"`` (``x`` may then be long tokens).

The loss is gdlens' (:mod:`gdlens.losses`; docs/design.md, conventions):
``L = (1/B) Σ_b Σ_t m_bt ℓ(y_bt, target_bt)`` with ``ℓ = ‖y − y*‖²`` (summed over outputs, no ½)
for ``"mse"`` and the per-step cross-entropy for ``"cross_entropy"``; ``m`` is the ``mask`` (all
ones when ``mask`` is None). Without a time axis the Σ_t drops out. Outside the mask the
``target`` is still well defined (usually 0), so code that ignores the mask trains on a valid,
stricter task.

Randomness: each generator draws from its own ``torch.Generator`` seeded by ``seed`` (an int,
or a Generator that is then advanced); torch's global RNG is never touched. Continuous draws
are made in float64 and cast to ``dtype``, so the float32 data of a seed is the rounded float64
data of the same seed.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gdlens.losses import LOSSES, loss_value  # noqa: F401  (the loss L; ``loss_value`` stays importable here)

__all__ = ["TaskData", "SplitData", "Task", "MetricFn"]

MetricFn = Callable[[Tensor, "TaskData"], dict[str, float]]


@dataclass
class TaskData:
    """One batch (or dataset) of a task.

    Attributes:
        x: inputs, (B, T, I) for recurrent tasks, (N, I) otherwise.
        target: (B, T, O) / (N, O) floats for ``loss="mse"``; (N,) or (B, T) long classes for
            ``loss="cross_entropy"``.
        loss: ``"mse"`` or ``"cross_entropy"``.
        mask: optional (B, T) bool, the steps that count in the loss and the metric.
        task_ids: optional (B,) long, which component task each trial comes from (multi_task).
        num_classes: O for ``"cross_entropy"`` targets (None otherwise).
        name: the task's name.
        info: task-specific extras (latent variables, the teacher, epochs, ...), documented
            by each generator. Per-trial entries describe the batch as generated.
        metric_fn: ``metric_fn(pred, data) -> dict`` behind :meth:`metric`. It reads only
            pred, x, target, mask, task_ids and trial-independent ``info``, so the metric stays
            valid on a subset of the trials (:meth:`subset`, minibatches).
    """

    x: Tensor
    target: Tensor
    loss: str = "mse"
    mask: Tensor | None = None
    task_ids: Tensor | None = None
    num_classes: int | None = None
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    metric_fn: MetricFn | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def input_size(self) -> int:
        """The last dimension of x (for token inputs: the number of tokens per sample)."""
        return self.x.shape[-1]

    @property
    def output_size(self) -> int:
        """O: the model output's last dimension (the number of classes for cross-entropy)."""
        if self.loss == "cross_entropy":
            assert self.num_classes is not None
            return self.num_classes
        return self.target.shape[-1]

    def loss_value(self, pred: Tensor) -> Tensor:
        """gdlens' L of the prediction (see the module docstring), with the mask applied."""
        return loss_value(pred, self.target, self.loss, self.mask)

    def metric(self, pred: Tensor) -> dict[str, float]:
        """Task metrics of a prediction shaped like the model output; always includes ``loss``."""
        pred = pred.detach()
        out = {"loss": float(self.loss_value(pred))}
        if self.metric_fn is not None:
            out.update(self.metric_fn(pred, self))
        return out

    def subset(self, idx: Tensor | slice) -> TaskData:
        """The trials ``idx`` (indices, a bool mask or a slice along the first axis); ``info``
        is carried over unchanged."""
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return dataclasses.replace(
            self, x=self.x[idx], target=self.target[idx], mask=pick(self.mask), task_ids=pick(self.task_ids)
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TaskData:
        """A copy with the tensors moved to ``device``; floating tensors cast to ``dtype``."""

        def move(v: Any) -> Any:
            if isinstance(v, TaskData):
                return v.to(device, dtype)
            if isinstance(v, (list, tuple)):
                return type(v)(move(u) for u in v)
            if not isinstance(v, Tensor):
                return v
            return v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else None)

        return dataclasses.replace(
            self,
            x=move(self.x),
            target=move(self.target),
            mask=move(self.mask),
            task_ids=move(self.task_ids),
            info={k: move(v) for k, v in self.info.items()},
        )


@dataclass
class SplitData:
    """A fixed dataset split into ``train`` and ``test`` (same task, disjoint samples)."""

    train: TaskData
    test: TaskData
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> str:
        return self.train.loss

    @property
    def input_size(self) -> int:
        return self.train.input_size

    @property
    def output_size(self) -> int:
        return self.train.output_size

    def metric(self, pred_train: Tensor, pred_test: Tensor) -> dict[str, float]:
        """Both splits' metrics, keys prefixed ``train/`` and ``test/``."""
        out = {f"train/{k}": v for k, v in self.train.metric(pred_train).items()}
        out.update({f"test/{k}": v for k, v in self.test.metric(pred_test).items()})
        return out


@dataclass(frozen=True)
class Task:
    """A generator with its settings bound: what the training loop and the CLI hold.

    ``generate(batch_size, seed)`` calls ``fn(**kwargs, seed=seed, <size_arg>=batch_size)``;
    ``size_arg`` is the generator's size parameter (``"batch_size"``, ``"n_samples"``, ...)
    or None for fixed datasets, which take no size. Built by :func:`gdlens.tasks.get`.
    """

    name: str
    fn: Callable[..., TaskData | SplitData]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    size_arg: str | None = "batch_size"

    def generate(self, batch_size: int | None = None, seed: int | torch.Generator = 0) -> TaskData | SplitData:
        kwargs = dict(self.kwargs)
        if batch_size is not None:
            if self.size_arg is None:
                raise ValueError(f"task {self.name!r} is a fixed dataset; call generate(seed=...) without a batch size")
            kwargs[self.size_arg] = batch_size
        return self.fn(**kwargs, seed=seed)

    def _probe(self) -> TaskData | SplitData:
        """A small sample, from which the sizes and the loss are read (size: the generator's
        default size, or 64)."""
        if self.size_arg is None:
            return self.generate(seed=0)
        default = inspect.signature(self.fn).parameters[self.size_arg].default
        return self.generate(64 if default is inspect.Parameter.empty else default, seed=0)

    @property
    def input_size(self) -> int:
        return self._probe().input_size

    @property
    def output_size(self) -> int:
        return self._probe().output_size

    @property
    def loss(self) -> str:
        return self._probe().loss


# ---------------------------------------------------------------------------- metrics
def masked_mean(values: Tensor, mask: Tensor | None) -> float:
    """Mean of ``values`` over the entries where ``mask`` (broadcast from the left) is True."""
    if mask is None:
        return float(values.float().mean()) if values.numel() else float("nan")
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(values)
    count = int(mask.sum())
    return float(values[mask].double().sum() / count) if count else float("nan")


# ---------------------------------------------------------------------------- argument checks
def make_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU generator: ``seed`` itself if it is one, else a fresh one seeded with it."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or a torch.Generator, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return torch.Generator().manual_seed(seed)


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def check_prob(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0.0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_dtype(dtype: Any) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise ValueError(f"dtype must be a real floating torch dtype (torch.float32 or torch.float64), got {dtype!r}")
    return dtype


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def gaussian(shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype, std: float = 1.0) -> Tensor:
    """``std · N(0, 1)`` drawn in float64 and cast to ``dtype``."""
    return (std * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
