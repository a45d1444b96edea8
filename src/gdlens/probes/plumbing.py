"""Model plumbing shared by the probes: which tensors a probe reads and how it calls the model.

- :func:`forward`: ``(y, z)`` from a model whose forward returns ``y`` or ``(y, z)``.
- :func:`eval_mode`: the model in eval mode for a block (how every probe measures it).
- :func:`trainable_params`: the parameters training moves.
- :func:`functional_loss`, :func:`functional_model`: the loss or the outputs as functions of
  (a subset of) the parameters, through :func:`torch.func.functional_call` (weights tied between
  two modules are swapped together).
- :func:`resolve_layer`, :func:`layer_activations`: the weights and the activations of one layer
  (activations captured by a forward hook).
- :func:`spread_indices`, :func:`probe_data`, :func:`check_data_choice`: which samples and which
  data (training batch or held-out) a probe reads.

No phenomenon lives here; every probe module imports what it needs from this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    "forward",
    "eval_mode",
    "submodule",
    "functional_loss",
    "functional_model",
    "trainable_params",
    "probe_data",
    "check_data_choice",
    "spread_indices",
    "resolve_layer",
    "layer_activations",
]


def forward(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(y, z)`` from a model whose forward returns ``y`` or ``(y, z)`` (gdlens' state-space
    models return the hidden states z (B, T, H) second); ``z`` is None for a model that returns
    ``y`` only."""
    out = model(x)
    if isinstance(out, tuple):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode (dropout off, batch-norm statistics frozen) for the block, its
    own mode restored afterwards even on an error. Probes measure the deterministic model: the
    Hessian, NTK or loss of one random dropout mask is not a property of the parameters (and a
    random op cannot run under ``vmap``)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def submodule(model: nn.Module, name: str) -> nn.Module:
    """The submodule at a dotted path (ValueError naming the model's submodules if none)."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        known = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"the model has no submodule {name!r}; submodules: {known}") from None


class _Apply(nn.Module):
    """``fn(model)`` as the forward of a module whose only child is ``model``, so that
    :func:`torch.func.functional_call` runs it with other tensors in the model's parameter slots."""

    def __init__(self, model: nn.Module, fn: Callable[[nn.Module], Any]) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self) -> Any:
        return self.fn(self.model)


def functional_loss(model: nn.Module, loss_fn: Callable[[nn.Module], Tensor]) -> Callable[[Any], Tensor]:
    """``params -> loss_fn(model with params)`` for ``params`` a dict name -> tensor (a subset of
    the parameters; the others keep their values)."""
    wrapped = _Apply(model, loss_fn)

    def f(params: Mapping[str, Tensor]) -> Tensor:
        return functional_call(wrapped, {f"model.{n}": t for n, t in params.items()}, ())

    return f


def functional_model(model: nn.Module) -> Callable[[Any, Tensor], Tensor]:
    """``(params, x) -> y``, the model's first output with ``params`` in its parameter slots."""

    def f(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(model, dict(params), (x,))
        return out[0] if isinstance(out, tuple) else out

    return f


def trainable_params(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Tensor]:
    """The parameters that training moves: ``requires_grad``, and held by the optimizer if given."""
    held = None
    if optimizer is not None:
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return {n: p for n, p in model.named_parameters() if p.requires_grad and (held is None or id(p) in held)}


def probe_data(ctx: Any, which: str) -> Any:
    """The training batch (``which="train"``) or the held-out data (``"eval"``) of a probe context."""
    return ctx.batch if which == "train" else ctx.eval_data


def spread_indices(total: int, n: int) -> Tensor:
    """``min(n, total)`` indices spread evenly over ``0..total−1`` (first and last included):
    ``round(linspace(0, total − 1, n))``. On a task whose samples are ordered (a grid, sorted
    inputs) they cover the whole range, where the first n samples would not; on shuffled data
    they are as good as any other fixed choice."""
    n = min(n, total)
    if n == total:
        return torch.arange(total)
    return torch.linspace(0, total - 1, n, dtype=torch.float64).round().long()


def check_data_choice(data: str) -> None:
    if data not in ("train", "eval"):
        raise ValueError(f"data must be 'train' (the training batch) or 'eval' (the held-out data), got {data!r}")


def resolve_layer(model: nn.Module, layer: str | None = None) -> tuple[str, str | None]:
    """``(weight name, bias name or None)`` of the layer a condensation measurement reads.

    ``layer`` is a parameter name (``"net.0.weight"``; its bias is the parameter named with
    ``weight`` replaced by ``bias``, e.g. ``weight_ih`` -> ``bias_ih``, when it has one entry per
    row) or a module name (``"net.0"``: its ``weight`` and ``bias``). ``None`` picks the first
    ``nn.Linear`` in module order, and failing that the first parameter with two or more axes;
    for a gdlens state-space model (whose only ``nn.Linear`` is the readout) ``None`` raises and
    asks for ``layer=``.
    """
    named = dict(model.named_parameters())

    def bias_of(weight_name: str) -> str | None:
        prefix, _, leaf = weight_name.rpartition(".")
        if "weight" not in leaf:
            return None
        candidate = (prefix + "." if prefix else "") + leaf.replace("weight", "bias", 1)
        b = named.get(candidate)
        if b is not None and b.dim() == 1 and b.shape[0] == named[weight_name].shape[0]:
            return candidate
        return None

    if layer is None:
        readout = getattr(model, "readout_prefixes", None)
        if readout is not None:  # a state-space model: its only nn.Linear is the readout
            raise ValueError(
                f"{type(model).__name__} is a state-space model: name the layer whose neurons to measure, e.g. "
                f"layer='weight_ih' (input weights; gated cells stack their gates by row), since the first "
                f"nn.Linear would be the readout"
            )
        for mod_name, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                prefix = mod_name + "." if mod_name else ""
                return prefix + "weight", (prefix + "bias" if mod.bias is not None else None)
        for name, p in named.items():
            if p.dim() >= 2:
                return name, bias_of(name)
        raise ValueError("the model has no nn.Linear and no parameter with two or more axes: pass layer=")
    if layer in named:
        if named[layer].dim() < 1:
            raise ValueError(f"parameter {layer!r} is a scalar; a layer's weight has one row per neuron")
        return layer, bias_of(layer)
    mod = submodule(model, layer)
    w = mod._parameters.get("weight")
    if w is None:
        raise ValueError(f"module {layer!r} ({type(mod).__name__}) has no 'weight' parameter")
    b = mod._parameters.get("bias")
    return f"{layer}.weight", (f"{layer}.bias" if b is not None else None)


def layer_activations(model: nn.Module, x: Tensor, layer: str | None = None) -> Tensor:
    """Activations of one layer on inputs x, as rows ``(n, p)`` (detached).

    ``layer``: the name of a submodule, whose output is taken (the first element if it returns a
    tuple), through a forward hook. ``None``: the hidden states z of a model whose forward
    returns ``(y, z)``, and otherwise the input of the last ``nn.Linear`` (the representation the
    readout sees). Activations of shape ``(B, T, H)`` become ``B·T`` rows of H features (one per
    trial and time step); other shapes are flattened per input to ``(n, p)``.

    A hook only sees modules that the forward pass calls: gdlens' state-space models compute
    their readout from the parameters (``F.linear``), so their ``readout`` submodule is never
    called; read their hidden states with ``layer=None`` instead. Raises ValueError when the
    chosen module is not called.
    """
    captured: list[Tensor] = []
    if layer is not None:
        module = submodule(model, layer)

        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            captured.append(out[0] if isinstance(out, tuple) else out)

        handle = module.register_forward_hook(hook)
    else:
        linears = [m for _, m in model.named_modules() if isinstance(m, nn.Linear)]

        def pre_hook(_m: nn.Module, inp: Any) -> None:
            captured.append(inp[0])

        handle = linears[-1].register_forward_pre_hook(pre_hook) if linears else None
    try:
        with torch.no_grad():
            _, z = forward(model, x)
    finally:
        if handle is not None:
            handle.remove()
    if layer is None and z is not None:
        acts = z
    elif captured:
        acts = captured[-1]
    else:
        what = f"module {layer!r} was not called" if layer is not None else "the model has no nn.Linear, no z"
        raise ValueError(f"no activations to read: {what}; pass layer= (the name of a submodule)")
    acts = acts.detach()
    if acts.dim() == 3:
        return acts.reshape(-1, acts.shape[-1])
    return acts.reshape(acts.shape[0], -1)
