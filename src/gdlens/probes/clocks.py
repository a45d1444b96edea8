"""Training clocks: the time scales on which a run fits its data, settles its representation and
generalises (grokking).

Grokking separates fitting the training data from learning the rule. The "training clocks"
analysis (arXiv 2606.05863) names the time scales: the cross-entropy falls to ε on a
*logarithmic* clock, while the structure of the learned map — under layerwise weight decay, a
Schatten-type energy of the end-to-end map — settles on a much slower, *polynomial* one. In a
two-layer ReLU embedding model the classifier head receives larger effective gradients than the
embedding, so the head fits first and the representation simplifies later.

Clocks (pure functions of recorded series; ``steps`` defaults to 0, 1, 2, …)::

    T_fit(ε)    = min{ t : L_train(t) ≤ ε }                                 fit_clock
    T_rep(ε)    = min{ t : |E(s) − E_∞| ≤ ε |E_∞| for every recorded s ≥ t }  representation_clock
    T_gen(a)    = min{ t : acc_test(t) ≥ a }                                 generalization_clock

E_∞ is the last recorded value unless given. A clock that is never reached is None.

**The fit clock depends on the optimiser.** On the separable 1-D logistic loss
``ℓ(w) = log(1 + e^{−w})`` plain gradient descent has ``ẇ = η σ(−w) ≈ η e^{−w}``, so
``e^{w} ≈ η t`` and ``ℓ ≈ 1/(η t)``: ``T_fit(ε) ≈ 1/(η ε)``, polynomial in 1/ε. Sign descent
(and Adam while its second moment tracks the gradient, which it then approximates) moves w by η
per step, so ``ℓ ≈ e^{−η t}`` and ``T_fit(ε) ≈ log(1/ε)/η``: the logarithmic fit clock is that of
sign-like optimisers; under plain gradient descent fitting is itself polynomial
(tests/probes/test_clocks.py checks both rates).

The phenomenon spans three modules, one idea each:

- this one: the clocks, :func:`clock_summary` (the clocks of a finished run from its recorded
  history) and, last, :class:`ClockProbe` (the clocks of the run so far);
- :mod:`gdlens.probes.energies`: the energies E whose settling is T_rep (l2, Schatten, nuclear
  norm, Fourier sparsity) and :class:`~gdlens.probes.energies.EnergyProbe`;
- :mod:`gdlens.probes.groups`: gradient norms and NTK traces per parameter group (which group
  fits first) and :class:`~gdlens.probes.groups.HeadEmbeddingProbe`.

The names that moved to those two modules are still importable from here, with a
DeprecationWarning naming their home.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdlens.probes.base import ProbeContext, Schedule, as_schedule
from gdlens.probes.plumbing import eval_mode
from gdlens.probes.energies import ENERGIES, model_energy
from gdlens.probes.spec import Metric, Panel
from gdlens.probes.training import task_metrics

__all__ = [
    "fit_clock",
    "representation_clock",
    "generalization_clock",
    "clocks_so_far",
    "clock_observation",
    "clock_summary",
    "ClockProbe",
]


# ---------------------------------------------------------------------------------- clocks
def _series(values: Any, steps: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    v = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    v = v.astype(float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D series, got shape {v.shape}")
    if steps is None:
        s = np.arange(v.shape[0])
    else:
        s = steps.detach().cpu().numpy() if isinstance(steps, Tensor) else np.asarray(steps)
        if s.shape != v.shape:
            raise ValueError(f"steps must have the shape of {name} {v.shape}, got {s.shape}")
        if s.size > 1 and not np.all(np.diff(s) > 0):
            raise ValueError("steps must be strictly increasing")
    return v, s


def _step(s: np.ndarray, i: int) -> int | float:
    value = s[i]
    return int(value) if float(value).is_integer() else float(value)


def fit_clock(losses: Any, eps: float, steps: Any = None) -> int | None:
    """``T_fit(ε)``: the first step at which the training loss is ≤ ε (None if never).

    Args:
        losses: 1-D series of training losses (NaN entries never count as fitted).
        eps: the loss level ε > 0.
        steps: the step of each entry (default 0, 1, 2, …).
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    v, s = _series(losses, steps, "losses")
    hits = np.flatnonzero(v <= eps)
    return _step(s, hits[0]) if hits.size else None


def generalization_clock(test_acc: Any, threshold: float, steps: Any = None) -> int | None:
    """``T_gen(a)``: the first step at which the test accuracy is ≥ ``threshold`` (None if
    never). The first crossing: a later dip does not move it."""
    v, s = _series(test_acc, steps, "test_acc")
    hits = np.flatnonzero(v >= threshold)
    return _step(s, hits[0]) if hits.size else None


def representation_clock(energy: Any, eps: float, steps: Any = None, final: float | None = None) -> int | None:
    """``T_rep(ε)``: the first step after which ``|E − E_final| ≤ ε |E_final|`` holds at every
    later recorded step.

    Args:
        energy: 1-D series of an energy (or any structural quantity) over training.
        eps: relative tolerance ε > 0.
        steps: the step of each entry (default 0, 1, 2, …).
        final: E_final; the last value by default (then the clock is always defined, at worst
            the last step). With a given E_final the clock is None when the last value is not
            within the tolerance; with E_final = 0 the condition is E = 0 exactly.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    v, s = _series(energy, steps, "energy")
    if v.size == 0:
        return None
    target = v[-1] if final is None else float(final)
    ok = np.abs(v - target) <= eps * abs(target)  # NaN -> False
    bad = np.flatnonzero(~ok)
    if bad.size == 0:
        return _step(s, 0)
    return _step(s, bad[-1] + 1) if bad[-1] + 1 < v.size else None


def clocks_so_far(observations: Mapping[str, Sequence[float]], eps: float, threshold: float) -> dict[str, float]:
    """The three clocks of observations ``{"step", "loss", "accuracy", "energy"}`` (equal-length
    series): ``fit`` = T_fit(eps) of the loss, ``generalization`` = T_gen(threshold) of the
    accuracy, ``representation`` = T_rep(eps) of the energy relative to its latest value; ``nan``
    for a clock not reached. Measured against its latest value, the energy is always within ε of
    itself at the latest step, so a T_rep equal to the latest step says nothing (at step 0 it
    would read 0): it is ``nan`` until the energy has stayed settled over at least two records."""
    steps = observations["step"]
    t_rep = representation_clock(observations["energy"], eps, steps)
    if t_rep is not None and len(steps) and t_rep == _step(np.asarray(steps), len(steps) - 1):
        t_rep = None
    clocks = {
        "fit": fit_clock(observations["loss"], eps, steps),
        "generalization": generalization_clock(observations["accuracy"], threshold, steps),
        "representation": t_rep,
    }
    return {k: (math.nan if v is None else float(v)) for k, v in clocks.items()}


def clock_observation(
    model: nn.Module,
    batch: Any = None,
    eval_data: Any = None,
    loss_fn: Callable[[nn.Module], Tensor] | None = None,
    energy: str | Callable[[nn.Module], float] = "l2",
    accuracy: str = "accuracy",
) -> dict[str, float]:
    """What the clocks read at one step, in eval mode and without gradients: ``loss``
    (``loss_fn(model)``, else the task loss of ``batch``; nan without either), ``accuracy`` (the
    metric ``accuracy`` of ``eval_data``, :func:`gdlens.probes.training.task_metrics`; nan
    without) and ``energy`` (:func:`gdlens.probes.energies.model_energy`)."""
    if loss_fn is not None:
        with eval_mode(model), torch.no_grad():
            loss = float(loss_fn(model))
    elif batch is not None:
        loss = float(task_metrics(model, batch)["loss"])
    else:
        loss = math.nan
    acc = math.nan if eval_data is None else float(task_metrics(model, eval_data).get(accuracy, math.nan))
    return {"loss": loss, "accuracy": acc, "energy": model_energy(model, energy)}


# ------------------------------------------------------------------------- run summaries
def _history_series(history: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray] | None:
    entries = history.get(name)
    if entries is None:
        return None
    if isinstance(entries, tuple) and len(entries) == 2:
        return np.asarray(entries[0]), np.asarray(entries[1], dtype=float)
    if not entries:
        return None
    steps, values = zip(*entries)
    return np.asarray(steps), np.asarray(values, dtype=float)


def _drift(series: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    """|E(end) − E(0.9 end)| / |E(end)|: how much the energy still moved over the last tenth of
    the recorded steps (above ε, the representation clock is cut short by the horizon)."""
    if series is None or series[1].size < 2:
        return None
    steps, values = series
    start = steps[0] + 0.9 * (steps[-1] - steps[0])
    i = int(np.searchsorted(steps, start))
    i = min(i, steps.size - 2)
    end = float(values[-1])
    return abs(end - float(values[i])) / abs(end) if end != 0 else None


def _is_scalar_series(entries: Any) -> bool:
    if isinstance(entries, tuple) and len(entries) == 2:
        return np.ndim(entries[1]) == 1
    return bool(entries) and all(np.ndim(v) == 0 for _, v in entries)


def clock_summary(
    source: Any,
    eps: float | Sequence[float] = 0.01,
    threshold: float = 0.95,
    loss: str = "metrics/train/loss",
    accuracy: str = "metrics/test/accuracy",
    energy: str = "energy/l2",
    energies: str | None = "energy/",
) -> dict[str, Any]:
    """The clocks of a finished run, for its summary.

    Args:
        source: a :class:`~gdlens.train.TrainResult` (its per-step training losses give the fit
            clock at full resolution), a Recorder ``history`` (``{name: [(step, value), …]}``), or
            a dict ``{name: (steps, values)}``.
        eps: ε of the fit and representation clocks, or several (the first is the main one).
        threshold: test accuracy of the generalisation clock.
        loss, accuracy, energy: the recorded series to read (``energy`` for the main
            representation clock).
        energies: prefix of further scalar series whose representation clocks are reported as
            ``clocks/representation/<name without prefix>`` (None for none).

    Returns:
        ``{"clocks/fit": T_fit, "clocks/generalization": T_gen, "clocks/representation": T_rep,
        "clocks/rep_over_fit": T_rep / T_fit, "clocks/energy_drift": d, "clocks/eps": ε,
        "clocks/threshold": a, ...}`` with None for a clock never reached (or a series never
        recorded); with several ε, also ``clocks/fit@<ε>`` and ``clocks/representation@<ε>`` for
        each. ``d = |E(end) − E(0.9 end)| / |E(end)|`` is the energy's relative change over the
        last tenth of the run: when it exceeds ε the energy had not settled by the end, and
        ``clocks/representation`` (measured against the last value) is a lower bound cut short by
        the horizon.
    """
    eps_list = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if not eps_list:
        raise ValueError("eps must be a number or a non-empty sequence")
    history = getattr(source, "history", source)
    dense_losses = getattr(source, "losses", None)
    fit_series: tuple[np.ndarray, np.ndarray] | None
    if dense_losses is not None and len(dense_losses):
        fit_series = (np.arange(len(dense_losses)), np.asarray(dense_losses, dtype=float))
    else:
        fit_series = _history_series(history, loss)
    acc_series = _history_series(history, accuracy)
    energy_series = _history_series(history, energy)

    def clocks_at(e: float) -> tuple[int | None, int | None]:
        t_fit = fit_clock(fit_series[1], e, fit_series[0]) if fit_series is not None else None
        t_rep = representation_clock(energy_series[1], e, energy_series[0]) if energy_series is not None else None
        return t_fit, t_rep

    t_fit, t_rep = clocks_at(eps_list[0])
    out: dict[str, Any] = {
        "clocks/fit": t_fit,
        "clocks/generalization": (
            generalization_clock(acc_series[1], threshold, acc_series[0]) if acc_series is not None else None
        ),
        "clocks/representation": t_rep,
        "clocks/rep_over_fit": (t_rep / t_fit if t_fit and t_rep is not None else None),
        "clocks/energy_drift": _drift(energy_series),
        "clocks/eps": eps_list[0],
        "clocks/threshold": threshold,
    }
    if len(eps_list) > 1:
        for e in eps_list:
            f, r = clocks_at(e)
            out[f"clocks/fit@{e:g}"], out[f"clocks/representation@{e:g}"] = f, r
    if energies:
        for name in sorted(history):
            if name.startswith(energies) and name != energy and _is_scalar_series(history[name]):
                series = _history_series(history, name)
                if series is not None:
                    key = name[len(energies):]
                    out[f"clocks/representation/{key}"] = representation_clock(series[1], eps_list[0], series[0])
    return out


# ------------------------------------------------------------------------------------ probe
@dataclass
class ClockProbe:
    """The three clocks of the run so far (:func:`clocks_so_far`): ``fit`` (T_fit(eps) of the
    training loss), ``generalization`` (T_gen(threshold) of the held-out accuracy) and
    ``representation`` (T_rep(eps) of ``energy``, relative to its latest value), ``nan`` while not
    reached. At the last step these are the run's clocks (at this probe's resolution), and the
    training loop puts them into the run summary as ``clocks/fit`` etc.

    Its state is the run's observations at its scheduled steps (:func:`clock_observation`: the
    training loss on the batch, the held-out accuracy, the energy), ``{"observations": {"step":
    [...], "loss": [...], "accuracy": [...], "energy": [...]}}``, kept and checkpointed by the
    Recorder, so one probe serves any number of runs.

    Args:
        eps: ε of the fit and representation clocks.  threshold: accuracy of the generalisation clock.
        energy: ``"l2"``, ``"schatten"`` (models with ``factors()``), ``"nuclear"`` or
            ``"fourier_sparsity"`` (models with ``embedding_matrix()``), or ``model -> float``;
            a named energy the model lacks fails at the first step (``init``).
        accuracy: the metric key of the held-out data to read (``"accuracy"``).
    """

    schedule: Schedule = field(default_factory=lambda: Schedule(every=10))
    name: str = "clocks"
    eps: float = 0.01
    threshold: float = 0.95
    energy: str | Callable[[nn.Module], float] = "l2"
    accuracy: str = "accuracy"

    title = "Training clocks"
    metric_specs = (
        Metric("fit", "fit clock", "T_fit(ε) = first step with training loss ≤ ε", "steps"),
        Metric("generalization", "generalisation clock", "T_gen(a) = first step with held-out accuracy ≥ a",
               "steps"),
        Metric("representation", "representation clock",
               "T_rep(ε) = first step after which |E − E_latest| ≤ ε|E_latest|", "steps"),
    )
    panels = (
        Panel("Training clocks (of the run so far)", ("fit", "generalization", "representation"),
              "step at which the clock is reached [steps]", yscale="auto"),
    )

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if isinstance(self.energy, str) and self.energy not in ENERGIES:
            raise ValueError(f"energy must be one of {sorted(ENERGIES)} or a callable, got {self.energy!r}")

    def settings(self) -> dict[str, Any]:
        return {"eps": self.eps, "threshold": self.threshold,
                "energy": self.energy if isinstance(self.energy, str) else getattr(self.energy, "__name__", "custom")}

    @property
    def observations(self) -> None:
        """Deprecated: the observations are in the Recorder's state
        (``recorder.states[name]["observations"]``)."""
        warnings.warn("ClockProbe.observations is gone: read recorder.states[probe.name]['observations']",
                      DeprecationWarning, stacklevel=2)
        return None

    def init(self, ctx: ProbeContext) -> dict[str, dict[str, list]]:
        try:
            model_energy(ctx.model, self.energy)
        except (AttributeError, TypeError) as exc:
            raise ValueError(
                f"ClockProbe(energy={self.energy!r}) cannot read {type(ctx.model).__name__} ({exc}): pass energy='l2' "
                "or a function model -> float"
            ) from exc
        return {"observations": {"step": [], "loss": [], "accuracy": [], "energy": []}}

    def compute(self, ctx: ProbeContext, state: dict[str, dict]) -> tuple[dict[str, float], dict]:
        seen = {**clock_observation(ctx.model, ctx.batch, ctx.eval_data, ctx.loss_fn, self.energy, self.accuracy),
                "step": int(ctx.step)}
        obs = {key: [*values, seen[key]] for key, values in state["observations"].items()}
        return clocks_so_far(obs, self.eps, self.threshold), {"observations": obs}



# ------------------------------------------------------------------------------------ moved names
_MOVED = {
    **{name: "gdlens.probes.energies" for name in (
        "l2_energy", "schatten_energy", "embedding_nuclear_norm", "fourier_power", "fourier_sparsity", "EnergyProbe")},
    **{name: "gdlens.probes.groups" for name in (
        "resolve_groups", "group_gradient_norms", "group_ntk_traces", "HeadEmbeddingProbe")},
}


def __getattr__(name: str) -> Any:
    """The names that moved to :mod:`gdlens.probes.energies` and :mod:`gdlens.probes.groups`,
    with a DeprecationWarning naming their home."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"gdlens.probes.clocks.{name} moved to {home}.{name}; import it from there", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module(home), name)
