"""What the flow needs to know about a model: does it follow the protocol, is its cell
time-invariant, and does a closed form apply to it.

A cell is *time-invariant* when ``step(θ, z, x, t)`` does not depend on t; then the
immediate map of all steps can be evaluated as one call of ``step`` on the (T·B)-row batch of
pairs (z*_{t-1}, x_t). A model says so with a ``time_invariant`` attribute (True/False);
without one, gdlens' own RNN, GRU, LSTM, NeuralODE and StackedRNN (not subclasses that
override ``step`` or ``step_inputs``) are time-invariant and every other model is treated as
time-dependent (the per-step reference path, always correct).
"""

from __future__ import annotations

import torch
from torch import nn

from gdlens.flow.cell_points import ROLES
from gdlens.flow.linearisation import LayerSpec
from gdlens.models.base import StateSpaceModel

__all__ = [
    "REQUIRED_ATTRIBUTES",
    "check_model",
    "is_time_invariant",
    "rnn_closed_form_applies",
    "gru_closed_form_applies",
    "lstm_closed_form_applies",
    "closed_form_kind",
    "closed_form_layers",
    "diagonal_closed_form_kind",
    "check_finite",
]

#: what KPFlow reads from a model (see :class:`gdlens.models.StateSpaceModel`)
REQUIRED_ATTRIBUTES = (
    "state_params",
    "readout_params",
    "initial_state",
    "step",
    "step_inputs",
    "read",
    "unroll",
    "state_size",
)

_TIME_INVARIANT_CLASSES = ("RNN", "GRU", "LSTM", "NeuralODE", "StackedRNN", "LRU", "SelectiveLRU", "StackedLRU")


def check_model(model: object) -> None:
    """TypeError unless ``model`` follows the state-space protocol: an ``nn.Module`` with every
    attribute of :data:`REQUIRED_ATTRIBUTES`, and an implemented ``step``."""
    missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"KPFlow needs a gdlens state-space model (gdlens.models.StateSpace) or a torch nn.RNN/nn.GRU/nn.LSTM "
            f"(converted by gdlens.models.from_torch); {type(model).__name__} is missing "
            f"attribute(s) {', '.join(repr(m) for m in missing)}"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"KPFlow needs the model to be a torch.nn.Module (its parameters are read and copied), "
            f"got {type(model).__name__}"
        )
    if isinstance(model, StateSpaceModel) and type(model).step is StateSpaceModel.step:
        raise TypeError(f"{type(model).__name__} does not implement 'step' (the cell z_t = f(z_{{t-1}}, x_t; θ))")


def _model_classes(names: tuple[str, ...]) -> list[type]:
    import gdlens.models as models

    return [cls for cls in (getattr(models, n, None) for n in names) if isinstance(cls, type)]


def _defining_class(model: object, attr: str) -> type | None:
    for cls in type(model).__mro__:
        if attr in vars(cls):
            return cls
    return None


def is_time_invariant(model: object) -> bool:
    """Whether ``model.step`` ignores its step index t (see the module docstring)."""
    flag = getattr(model, "time_invariant", None)
    if flag is not None:
        return bool(flag)
    for cls in _model_classes(_TIME_INVARIANT_CLASSES):
        if isinstance(model, cls):
            # the class's own step and step_inputs, not a subclass's override
            step_owner = _defining_class(model, "step")
            inputs_owner = _defining_class(model, "step_inputs")
            return step_owner is not None and issubclass(cls, step_owner) and (
                inputs_owner is None or issubclass(cls, inputs_owner)
            )
    return False


def _unchanged(model: object, cls: type) -> bool:
    """``model`` is an instance of ``cls`` that overrides none of step, initial_state,
    step_inputs (so the closed forms describe what it computes)."""
    if not isinstance(model, cls):
        return False
    for attr in ("step", "initial_state", "step_inputs"):
        owner = _defining_class(model, attr)
        if owner is None or not issubclass(cls, owner):
            return False
    return True


def _layer_names(names: set[str], roles: dict[str, str]) -> dict[str, str] | None:
    """{role: θ name} for the roles whose name is in θ; None unless both weights are."""
    present = {role: name for role, name in roles.items() if name in names}
    return present if {"weight_ih", "weight_hh"} <= set(present) else None


def closed_form_layers(model: object) -> list[LayerSpec] | None:
    """The layers of ``model`` when the closed forms of K and P apply to it, else None.

    They apply to gdlens' :class:`~gdlens.models.RNN` (tanh, relu, linear), :class:`GRU`,
    :class:`LSTM` and :class:`StackedRNN` (any number of layers, rnn/gru/lstm cells, with or
    without torch's two biases: everything :func:`~gdlens.models.from_torch` returns), as
    long as the class's own step, initial_state and step_inputs are used and θ holds no
    tensor beyond the cell weights and ``z0``.
    """
    from gdlens.models import GRU, LSTM, RNN, StackedRNN

    names = set(model.state_params()) if hasattr(model, "state_params") else set()
    specs: list[LayerSpec] = []
    if _unchanged(model, RNN):
        if getattr(model, "nonlinearity", None) not in ("tanh", "relu", "linear"):
            return None
        roles = {"weight_ih": "weight_ih", "weight_hh": "weight_hh", "bias_ih": "bias"}
        specs = [LayerSpec("rnn", _layer_names(names, roles) or {}, model.nonlinearity)]
    elif _unchanged(model, GRU) or _unchanged(model, LSTM):
        cell = "gru" if isinstance(model, GRU) else "lstm"
        specs = [LayerSpec(cell, _layer_names(names, {r: r for r in ROLES}) or {})]
    elif _unchanged(model, StackedRNN):
        for k in range(model.num_layers):
            layer = _layer_names(names, {r: f"{r}_l{k}" for r in ROLES}) or {}
            specs.append(LayerSpec(model.cell, layer, model.nonlinearity))
    if not specs or any(not spec.names for spec in specs):
        return None
    covered = {n for spec in specs for n in spec.names.values()} | {"z0"}
    return specs if names <= covered else None


def diagonal_closed_form_kind(model: object) -> str | None:
    """``"lru"`` or ``"selective-lru"`` when ``model`` is gdlens' :class:`~gdlens.models.LRU`
    or :class:`~gdlens.models.SelectiveLRU` unchanged (its own step, initial_state and
    step_inputs; θ among its own parameters and ``z0``), ``"stacked-lru"`` or
    ``"stacked-selective-lru"`` for an unchanged :class:`~gdlens.models.StackedLRU` (θ among
    the parameters its constructor made), so the diagonal closed forms
    (:mod:`gdlens.flow.diagonal`) apply; None otherwise."""
    from gdlens.models.lru import LRU, SelectiveLRU, StackedLRU

    if _unchanged(model, StackedLRU):
        if set(model.state_params()) <= set(model.closed_form_names):
            return "stacked-lru" if model.cell == "lru" else "stacked-selective-lru"
        return None

    known = {
        "lru": {"nu_log", "theta_log", "gamma_log", "B_re", "B_im", "z0"},
        "selective-lru": {"a_log", "W_dt", "b_dt", "B", "z0"},
    }
    for kind, cls in (("lru", LRU), ("selective-lru", SelectiveLRU)):
        if _unchanged(model, cls) and set(model.state_params()) <= known[kind]:
            return kind
    return None


def closed_form_kind(model: object) -> str | None:
    """``"rnn"``, ``"gru"`` or ``"lstm"`` (one layer), ``"stacked-<cell>"``, ``"lru"``,
    ``"selective-lru"``, ``"stacked-lru"`` or ``"stacked-selective-lru"``: which closed forms of K and P apply to ``model``
    (:func:`closed_form_layers`, :func:`diagonal_closed_form_kind`); None when only the
    generic JVP/VJP paths do."""
    specs = closed_form_layers(model)
    if specs is None:
        return diagonal_closed_form_kind(model)
    from gdlens.models import StackedRNN

    return f"stacked-{specs[0].cell}" if isinstance(model, StackedRNN) else specs[0].cell


def rnn_closed_form_applies(model: object) -> bool:
    """Whether the closed forms apply to ``model`` as gdlens' Elman RNN (:func:`closed_form_kind`)."""
    return closed_form_kind(model) == "rnn"


def gru_closed_form_applies(model: object) -> bool:
    """Whether the closed forms apply to ``model`` as gdlens' GRU (:func:`closed_form_kind`)."""
    return closed_form_kind(model) == "gru"


def lstm_closed_form_applies(model: object) -> bool:
    """Whether the closed forms apply to ``model`` as gdlens' LSTM (:func:`closed_form_kind`)."""
    return closed_form_kind(model) == "lstm"


def check_finite(name: str, tensor: torch.Tensor | None) -> None:
    """ValueError naming ``name`` and the first index (row-major) holding NaN or ±inf, with
    the count of bad entries; integer tensors and None pass."""
    if tensor is None or not isinstance(tensor, torch.Tensor) or not tensor.dtype.is_floating_point:
        return
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        first = tuple(int(i) for i in torch.nonzero(bad)[0])
        value = float(tensor[first]) if first else float(tensor)
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf) out of {tensor.numel()}; "
            f"the first is {value} at index {first} of shape {tuple(tensor.shape)}"
        )
