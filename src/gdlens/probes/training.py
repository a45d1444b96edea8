"""The everyday probes of a training run: the task's metrics, parameter norms, relative
parameter change, and the participation ratio of the hidden states; :func:`default_probes`.

The quantities are pure functions of other modules: :func:`task_metrics` (here),
:func:`~gdlens.probes.parameters.parameter_norms`, :func:`~gdlens.probes.parameters.relative_change`
and :func:`gdlens.operators.participation_ratio`. None of these probes carries state from one
call to the next (``init`` checks the model and the data and returns None); the relative change
is measured against ``ctx.initial_params``, the parameters the Recorder of the run saw at its
first step (checkpointed with the run), so one probe object serves any number of runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from gdlens.operators import participation_ratio
from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.parameters import parameter_norms, relative_change
from gdlens.probes.plumbing import eval_mode, forward, layer_activations
from gdlens.probes.spec import Metric, Panel

__all__ = [
    "task_metrics",
    "MetricsProbe",
    "ParameterNormProbe",
    "RelativeChangeProbe",
    "HiddenParticipationProbe",
    "default_probes",
]


def task_metrics(model: nn.Module, data: Any) -> dict[str, float]:
    """``data.metric(y)`` (the task's loss, accuracy, ...; ``loss`` is gdlens' L,
    :mod:`gdlens.losses`) of the model's first output y on ``data.x``: one forward pass without
    gradients in eval mode (dropout off), the model's mode restored afterwards."""
    with eval_mode(model), torch.no_grad():
        y, _ = forward(model, data.x)
    return dict(data.metric(y))


def _task_data(ctx: ProbeContext) -> dict[str, Any]:
    """``{"train": batch, "test": eval_data}`` of those given; ValueError when one is not task data."""
    given = {prefix: d for prefix, d in (("train", ctx.batch), ("test", ctx.eval_data)) if d is not None}
    for prefix, d in given.items():
        if not (hasattr(d, "x") and callable(getattr(d, "metric", None))):
            arg = "batch" if prefix == "train" else "eval_data"
            raise ValueError(
                f"MetricsProbe reads task data with x and metric(y) (a gdlens.tasks.TaskData); {arg} is a "
                f"{type(d).__name__}: pass {arg}=TaskData(x=..., target=..., loss=...)"
            )
    return given


# ------------------------------------------------------------------------------------ probes
@dataclass
class MetricsProbe:
    """The task's own metrics (:func:`task_metrics`) on the training batch (``train/<key>``) and
    on the held-out data (``test/<key>``), from one forward pass each in eval mode. Needs task data
    (a :class:`gdlens.tasks.TaskData`) as the batch or the held-out data (``init`` says so)."""

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=40))
    name: str = "metrics"

    title: ClassVar[str] = "Task metrics"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("*/loss", "loss L", "(1/B) Σ_b Σ_t m_bt ℓ(y_bt, y*_bt): mean over trials of the masked sum over steps"),
        Metric("*/accuracy", "accuracy", "fraction of the counted steps predicted correctly (the task's rule)"),
        Metric("train/*", "task metric on the training batch", "the task's metric, eval mode"),
        Metric("test/*", "task metric on the held-out data", "the task's metric, eval mode"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Loss", ("*/loss",), "loss L = (1/B) Σ_b Σ_t m_bt ℓ(y_bt, y*_bt)", yscale="auto"),
        Panel("Accuracy", ("*/accuracy",), "accuracy (fraction correct)", yscale="linear", ylim=(0, 1)),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def init(self, ctx: ProbeContext) -> None:
        """ValueError unless the batch or the held-out data is task data."""
        if not _task_data(ctx):
            raise ValueError("MetricsProbe has no data: pass batch= (and eval_data=) a gdlens.tasks.TaskData")

    def compute(self, ctx: ProbeContext, state: None = None) -> tuple[dict[str, float], None]:
        out: dict[str, float] = {}
        for prefix, data in _task_data(ctx).items():
            out.update({f"{prefix}/{k}": v for k, v in task_metrics(ctx.model, data).items()})
        return out, state


@dataclass
class ParameterNormProbe:
    """``‖θ_n‖`` per parameter tensor (its name) and ``‖θ‖`` over all of them (``total``):
    :func:`~gdlens.probes.parameters.parameter_norms`."""

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "param_norm"

    title: ClassVar[str] = "Parameter norms"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("total", "norm of all parameters ‖θ‖", "sqrt(Σ_i θ_i²)"),
        Metric("*", "norm of one parameter tensor ‖θ_n‖", "sqrt(Σ_i θ_n,i²)"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Parameter norms", ("*",), "‖θ_n‖ = sqrt(Σ_i θ_n,i²) per tensor; total: ‖θ‖", yscale="auto"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def init(self, ctx: ProbeContext) -> None:
        return None

    def compute(self, ctx: ProbeContext, state: None = None) -> tuple[dict[str, float], None]:
        return parameter_norms(ctx.model.named_parameters()), state


@dataclass
class RelativeChangeProbe:
    """How far the parameters moved from the run's start θ₀ (``ctx.initial_params``):
    :func:`~gdlens.probes.parameters.relative_change`,

    - ``total``: ``‖θ − θ₀‖ / ‖θ₀‖``, the order parameter of the linear (→ 0 with width) and
      condensed regimes (Luo et al. arXiv 2007.07497);
    - ``share/<tensor>``: ``‖θ_n − θ_n(0)‖ / ‖θ₀‖``, defined for tensors that start at zero
      (biases), squares summing to ``total²``;
    - ``own/<tensor>``: ``‖θ_n − θ_n(0)‖ / ‖θ_n(0)‖``, for the tensors that do not start at zero.
    """

    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=30))
    name: str = "rel_change"

    title: ClassVar[str] = "Relative parameter change"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("total", "relative change of θ", "‖θ − θ₀‖ / ‖θ₀‖ (arXiv 2007.07497)"),
        Metric("share/*", "change of one tensor relative to all of θ₀", "‖θ_n − θ_n(0)‖ / ‖θ₀‖; Σ_n share² = total²"),
        Metric("own/*", "relative change of one tensor", "‖θ_n − θ_n(0)‖ / ‖θ_n(0)‖ (tensors with θ_n(0) ≠ 0)"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Relative change of θ", ("total", "share/*"),
              "‖θ_n − θ_n(0)‖ / ‖θ₀‖ per tensor; total: ‖θ − θ₀‖ / ‖θ₀‖", yscale="auto"),
        Panel("Relative change of each tensor", ("own/*",), "‖θ_n − θ_n(0)‖ / ‖θ_n(0)‖", yscale="auto"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def init(self, ctx: ProbeContext) -> None:
        """ValueError when the context has no θ₀ (the Recorder fills ``initial_params``)."""
        if not ctx.initial_params:
            raise ValueError(
                "RelativeChangeProbe measures against the run's first parameters: pass "
                "ProbeContext(initial_params={name: tensor}) (a Recorder fills it at its first step)"
            )

    def compute(self, ctx: ProbeContext, state: None = None) -> tuple[dict[str, float], None]:
        return relative_change(ctx.model.named_parameters(), ctx.initial_params), state


@dataclass
class HiddenParticipationProbe:
    """Participation ratio ``(Σλ)²/Σλ²`` of the hidden states' covariance on the training batch
    (:func:`gdlens.operators.participation_ratio`; nan when they do not vary), with the hidden
    size H as its bound (``hidden_size``).

    The hidden states are :func:`~gdlens.probes.plumbing.layer_activations` of ``layer``: by
    default z of a model whose forward returns ``(y, z)`` (all trials and time steps, B·T rows of
    H), and for a model returning y alone the input of its last ``nn.Linear`` (an MLP's last
    hidden layer, a torch RNN's outputs before the readout); ``layer="<submodule>"`` reads that
    submodule's output. ``init`` fails, naming ``layer=``, when there is nothing to read.
    """

    layer: str | None = None
    schedule: Schedule = field(default_factory=lambda: Schedule(log_points=20))
    name: str = "hidden"

    title: ClassVar[str] = "Hidden-state dimensionality"
    metric_specs: ClassVar[tuple[Metric, ...]] = (
        Metric("participation_ratio", "participation ratio of the hidden states",
               "(Σλ)²/Σλ², λ the eigenvalues of their covariance over trials and time steps"),
        Metric("hidden_size", "hidden size H", "features of the hidden state (the largest possible ratio)"),
    )
    panels: ClassVar[tuple[Panel, ...]] = (
        Panel("Participation ratio of the hidden states", ("participation_ratio",),
              "participation ratio (Σλ)²/Σλ² of the hidden states", ylim=(0, None), bound="hidden_size"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer or "default"}

    def init(self, ctx: ProbeContext) -> None:
        """ValueError naming what to pass when there is no batch or no hidden state to read."""
        if ctx.batch is None or not hasattr(ctx.batch, "x"):
            raise ValueError("HiddenParticipationProbe reads the training batch: pass batch= (a TaskData with x)")
        try:
            layer_activations(ctx.model, ctx.batch.x, self.layer)
        except ValueError as exc:
            raise ValueError(f"HiddenParticipationProbe: {exc} — e.g. HiddenParticipationProbe(layer='rnn')") from exc

    def compute(self, ctx: ProbeContext, state: None = None) -> tuple[dict[str, float], None]:
        acts = layer_activations(ctx.model, ctx.batch.x, self.layer)
        return {"participation_ratio": participation_ratio(acts), "hidden_size": acts.shape[-1]}, state


def default_probes(recurrent: bool) -> list:
    """Metrics, parameter norms and relative change; plus the hidden participation ratio for
    recurrent models."""
    probes: list = [MetricsProbe(), ParameterNormProbe(), RelativeChangeProbe()]
    if recurrent:
        probes.append(HiddenParticipationProbe())
    return probes
