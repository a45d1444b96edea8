"""Small helpers shared by the probes: input checks and flattening of parameter containers.

Parameters come as a ``dict`` name -> tensor (``dict(model.named_parameters())``), a list or
tuple of tensors, or a single tensor. The probes that differentiate (sharpness, ntk) work on
the flat vector ``θ = concat(p.reshape(-1) for p in params)`` (dict order, list order), and
hand the loss or model a container of the same kind rebuilt from a flat vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["as_tensor", "as_rows", "check_same_rows", "leaves", "flatten_params", "flat_vector"]

Params = Mapping[str, Tensor] | Sequence[Tensor] | Tensor


def as_tensor(x: Any, name: str) -> Tensor:
    """``x`` as a tensor (numpy arrays and nested lists are converted; tensors pass through)."""
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
        raise TypeError(f"{name} must be a tensor (or convertible to one), got {type(x).__name__}") from exc


def as_rows(x: Any, name: str) -> Tensor:
    """A tensor of shape (n, ...) flattened to (n, p); 1-D and 0-D inputs are refused."""
    t = as_tensor(x, name)
    if t.dim() < 2:
        raise ValueError(f"{name} must have shape (n, p) (rows = inputs, columns = features), got {tuple(t.shape)}")
    return t.reshape(t.shape[0], -1)


def check_same_rows(X: Tensor, Y: Tensor, names: tuple[str, str] = ("X", "Y")) -> None:
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of rows (one per input), got "
            f"{names[0]} {tuple(X.shape)} and {names[1]} {tuple(Y.shape)}"
        )


def leaves(params: Any, name: str = "params") -> tuple[list[str], list[Tensor]]:
    """(names, tensors) of a parameter container: a Mapping, an iterable of (name, tensor)
    pairs (``model.named_parameters()``), a sequence of tensors or one tensor."""
    if isinstance(params, Tensor):
        return ["0"], [params]
    if isinstance(params, Mapping):
        names, tensors = list(map(str, params.keys())), list(params.values())
    elif isinstance(params, Iterable):
        items = list(params)
        if items and all(isinstance(it, tuple) and len(it) == 2 and isinstance(it[1], Tensor) for it in items):
            names, tensors = [str(n) for n, _ in items], [t for _, t in items]
        else:
            names, tensors = [str(i) for i in range(len(items))], items
    else:
        raise TypeError(f"{name} must be a dict of tensors, a list of tensors or a tensor, got {type(params).__name__}")
    for n, t in zip(names, tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}[{n!r}] must be a tensor, got {type(t).__name__}")
    if not tensors:
        raise ValueError(f"{name} is empty")
    return names, tensors


def flatten_params(params: Params, name: str = "params") -> tuple[Tensor, Callable[[Tensor], Any]]:
    """``(θ, unflatten)``: the detached flat vector of a parameter container and the function
    that rebuilds a container of the same kind (dict, list, tuple or tensor) from a flat vector
    (views into it, so gradients and vmap flow through)."""
    names, tensors = leaves(params, name)
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1:
        raise ValueError(f"{name} must share one dtype, got {sorted(map(str, dtypes))}")
    shapes = [tuple(t.shape) for t in tensors]
    sizes = [math.prod(s) for s in shapes]
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])

    def unflatten(v: Tensor) -> Any:
        pieces = [p.reshape(s) for p, s in zip(torch.split(v, sizes, dim=-1), shapes)]
        if isinstance(params, Tensor):
            return pieces[0]
        if isinstance(params, Mapping):
            return dict(zip(params.keys(), pieces))
        if isinstance(params, tuple):
            return tuple(pieces)
        return pieces

    return flat, unflatten


def flat_vector(x: Any, like: Params, n: int, name: str) -> Tensor:
    """A direction given flat (n,) or as a container shaped like ``like``, as a flat (n,) tensor."""
    if isinstance(x, Tensor) and x.dim() == 1 and x.numel() == n:
        return x.detach()
    if isinstance(x, Tensor) and not isinstance(like, Tensor):
        raise ValueError(
            f"{name} must be a flat vector of length {n} or shaped like the parameters, got "
            f"{tuple(x.shape)}"
        )
    names, tensors = leaves(x, name)
    like_names, like_tensors = leaves(like)
    if isinstance(x, Mapping) and isinstance(like, Mapping) and names != like_names:
        raise ValueError(f"{name} must have the parameters' names {like_names}, got {names}")
    if [tuple(t.shape) for t in tensors] != [tuple(t.shape) for t in like_tensors]:
        raise ValueError(
            f"{name} must be shaped like the parameters: got shapes {[tuple(t.shape) for t in tensors]}, "
            f"expected {[tuple(t.shape) for t in like_tensors]}"
        )
    return torch.cat([t.detach().reshape(-1) for t in tensors])
