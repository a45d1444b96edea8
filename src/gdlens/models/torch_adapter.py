"""Convert ``torch.nn`` recurrent modules into gdlens models with identical outputs."""

from __future__ import annotations

import torch
from torch import nn

from gdlens.models.stacked import StackedRNN

__all__ = ["from_torch", "as_state_space"]


def from_torch(module: nn.RNN | nn.GRU | nn.LSTM, readout: nn.Linear | None = None) -> StackedRNN:
    """A :class:`StackedRNN` computing exactly what ``module`` computes.

    The result holds a copy of every parameter of ``module`` under torch's own name and shape
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ...), one to one, so
    gradient descent on the converted model is gradient descent on the torch module (torch's
    two redundant biases stay two parameters). Dtype and device follow ``module``.

    Supported: ``nn.RNN`` (tanh, relu), ``nn.GRU``, ``nn.LSTM``; any ``num_layers``; ``bias``
    True or False; ``batch_first`` True or False; ``dropout`` > 0 only when it has no effect
    (``module`` in eval mode, or one layer). Raises ValueError naming the attribute for
    ``bidirectional=True``, ``proj_size > 0`` and active dropout; TypeError for other modules.

    The returned model is batch-first whatever ``module.batch_first`` is: it takes x (B, T, I)
    and returns y (B, T, O) and z (B, T, state_size). Its state z_t concatenates the layers'
    states, layer 1 first, each (h) for RNN/GRU and (h, c) for LSTM; so for a single-layer
    nn.RNN/nn.GRU, z is torch's output sequence, and for a single-layer nn.LSTM z = concat(h, c).
    Use :meth:`StackedRNN.state_from_torch` to turn torch's (h_0[, c_0]) into ``z0``.

    Args:
        module: the torch module (not modified).
        readout: an ``nn.Linear`` reading the top layer's hidden state (in_features = H); it is
            copied into ``readout.*``. With None, the readout is a learnable ``nn.Linear(H, H)``
            initialised to the identity with zero bias, so y equals torch's output sequence
            exactly (and the model keeps a readout φ that the flow engine can train).
    """
    cell = _cell_of(module)
    _check_supported(module)
    hidden = module.hidden_size
    if readout is not None:
        if not isinstance(readout, nn.Linear):
            raise TypeError(f"readout must be an nn.Linear or None, got {type(readout).__name__}")
        if readout.in_features != hidden:
            raise ValueError(
                f"readout.in_features must equal the module's hidden_size {hidden}, got {readout.in_features}"
            )
    output_size = hidden if readout is None else readout.out_features
    ref = next(module.parameters())
    model = StackedRNN(
        cell,
        module.input_size,
        hidden,
        output_size,
        num_layers=module.num_layers,
        nonlinearity=getattr(module, "nonlinearity", "tanh"),
        bias=module.bias,
    )
    model.to(dtype=ref.dtype, device=ref.device)
    mine = dict(model.named_parameters())
    with torch.no_grad():
        for k in range(module.num_layers):
            names = [f"weight_ih_l{k}", f"weight_hh_l{k}"]
            names += [f"bias_ih_l{k}", f"bias_hh_l{k}"] if module.bias else []
            for name in names:
                mine[name].copy_(getattr(module, name))
        if readout is None:
            mine["readout.weight"].copy_(torch.eye(hidden))
            mine["readout.bias"].zero_()
        else:
            bias_out = readout.bias is not None
            model.readout = nn.Linear(hidden, output_size, bias=bias_out, device=ref.device, dtype=ref.dtype)
            model.readout_params()["readout.weight"].copy_(readout.weight)
            if bias_out:
                model.readout_params()["readout.bias"].copy_(readout.bias)
    return model


def _cell_of(module: nn.Module) -> str:
    if isinstance(module, nn.LSTM):
        return "lstm"
    if isinstance(module, nn.GRU):
        return "gru"
    if isinstance(module, nn.RNN):
        if module.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {module.nonlinearity!r}")
        return "rnn"
    raise TypeError(f"from_torch supports nn.RNN, nn.GRU and nn.LSTM, got {type(module).__name__}")


def _check_supported(module: nn.RNNBase) -> None:
    if module.bidirectional:
        raise ValueError(
            "bidirectional=True is not supported by from_torch (state-space models run forward in time)"
        )
    if getattr(module, "proj_size", 0) > 0:
        raise ValueError(f"proj_size={module.proj_size} is not supported by from_torch (LSTM projections)")
    if module.dropout > 0 and module.training and module.num_layers > 1:
        raise ValueError(
            f"dropout={module.dropout} is active (training mode, num_layers={module.num_layers}) and is not "
            "supported by from_torch; call module.eval() or set dropout=0"
        )


def as_state_space(model: nn.Module, readout: nn.Linear | None = None) -> nn.Module:
    """The model to analyse: a torch ``nn.RNN``/``nn.GRU``/``nn.LSTM`` goes through
    :func:`from_torch` (with ``readout``, an ``nn.Linear`` on its top hidden state); anything
    else is returned as it is (the caller checks it against the state-space protocol).

    Raises:
        ValueError: ``readout`` given for a model that is not a torch recurrent module.
    """
    if isinstance(model, (nn.RNN, nn.GRU, nn.LSTM)):
        return from_torch(model, readout=readout)
    if readout is not None:
        raise ValueError(
            f"readout= is for torch's nn.RNN/nn.GRU/nn.LSTM; {type(model).__name__} must bring its own readout"
        )
    return model
