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

from torch import nn

from gdlens.models.base import StateSpaceModel

__all__ = [
    "REQUIRED_ATTRIBUTES",
    "check_model",
    "is_time_invariant",
    "rnn_closed_form_applies",
    "gru_closed_form_applies",
    "lstm_closed_form_applies",
    "closed_form_kind",
]

#: what KPFlow reads from a model (see :class:`gdlens.models.StateSpaceModel`)
REQUIRED_ATTRIBUTES = (
    "state_params",
    "readout_params",
    "initial_state",
    "step",
    "step_inputs",
    "readout",
    "unroll",
    "state_size",
)

_TIME_INVARIANT_CLASSES = ("RNN", "GRU", "LSTM", "NeuralODE", "StackedRNN")


def check_model(model: object) -> None:
    """TypeError unless ``model`` follows the state-space protocol: an ``nn.Module`` with every
    attribute of :data:`REQUIRED_ATTRIBUTES`, and an implemented ``step``."""
    missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"KPFlow needs a gdlens StateSpaceModel (gdlens.models.base); {type(model).__name__} is missing "
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


def rnn_closed_form_applies(model: object) -> bool:
    """Whether ``model`` is gdlens' Elman RNN ``z_t = σ(W z_{t-1} + U x_t + b)`` unchanged
    (no override of step, initial_state, step_inputs; parameters among weight_hh, weight_ih,
    bias, z0), so the RNN closed forms of K and P apply."""
    from gdlens.models.rnn import RNN

    if not isinstance(model, RNN):
        return False
    for attr in ("step", "initial_state", "step_inputs"):
        owner = _defining_class(model, attr)
        if owner is None or not issubclass(RNN, owner):
            return False
    names = set(model.state_params())
    return getattr(model, "nonlinearity", None) in ("tanh", "relu", "linear") and names <= {
        "weight_hh",
        "weight_ih",
        "bias",
        "z0",
    } and {"weight_hh", "weight_ih"} <= names


def _unchanged_gated(model: object, cls: type) -> bool:
    """``model`` is an instance of ``cls`` that overrides none of step, initial_state,
    step_inputs, and whose θ is among weight_ih, weight_hh, bias_ih, bias_hh, z0 (with both
    weights present)."""
    if not isinstance(model, cls):
        return False
    for attr in ("step", "initial_state", "step_inputs"):
        owner = _defining_class(model, attr)
        if owner is None or not issubclass(cls, owner):
            return False
    names = set(model.state_params())
    return names <= {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "z0"} and {"weight_ih", "weight_hh"} <= names


def gru_closed_form_applies(model: object) -> bool:
    """Whether ``model`` is gdlens' GRU unchanged (no override of step, initial_state,
    step_inputs; parameters among weight_ih, weight_hh, bias_ih, bias_hh, z0), so the gated
    closed forms of K and P (:mod:`gdlens.flow.gated`) apply."""
    from gdlens.models.gru import GRU

    return _unchanged_gated(model, GRU)


def lstm_closed_form_applies(model: object) -> bool:
    """As :func:`gru_closed_form_applies`, for gdlens' LSTM (state concat(h, c))."""
    from gdlens.models.lstm import LSTM

    return _unchanged_gated(model, LSTM)


def closed_form_kind(model: object) -> str | None:
    """``"rnn"``, ``"gru"`` or ``"lstm"``: which closed forms of K and P apply to ``model``;
    None when only the generic JVP/VJP paths do."""
    if rnn_closed_form_applies(model):
        return "rnn"
    if gru_closed_form_applies(model):
        return "gru"
    if lstm_closed_form_applies(model):
        return "lstm"
    return None
