"""One linearisation of the recursion per trajectory: the state Jacobians D_t and the factors
of J_θ, which the propagator (:mod:`gdlens.flow.propagator`) and the factored kernel
(:mod:`gdlens.flow.parameter_operator`) run on.

Every linearisation offers ``d(i, Q)`` = D_t Q and ``dT(i, G)`` = D_tᵀ G at the 0-based step
i (t = i + 1), on stacks Q, G of shape (k, B, S) (:class:`StepLinearisation`).

- :class:`AutodiffLinearisation` (any model, the reference): JVPs and VJPs of ``step`` in z.
- :class:`LayeredLinearisation` (gdlens' RNN, GRU, LSTM and every :class:`StackedRNN`, so
  everything ``from_torch`` returns): closed forms composed from one
  :class:`~gdlens.flow.cell_points.LayerPoint` per layer.

Layers compose within a step. With L layers, state z_t = (s¹_t, …, s^L_t), layer ℓ reading
the h-part of layer ℓ−1 at the SAME step (layer 1 reads x_t), a perturbation r^ℓ injected
into each layer's state at step t becomes, after the layers above have read it,

    (M_t r)^1 = r^1,     (M_t r)^ℓ = r^ℓ + In^ℓ_t h((M_t r)^{ℓ−1})            ℓ = 2..L

with In^ℓ_t = ∂s^ℓ_t/∂v^ℓ_t the layer's input Jacobian. Then (block-diagonal over layers)

    D_t = M_t · diag_ℓ(Rec^ℓ_t),      J_θ = M · diag_ℓ(J^ℓ),      K = M diag_ℓ(K^ℓ) Mᵀ

and the transposes run the layers top-down: (M_tᵀ g)^L = g^L, (M_tᵀ g)^ℓ = g^ℓ +
h-embed(In^{ℓ+1 T}_t (M_tᵀ g)^{ℓ+1}). For one layer M = I. A learnable z_0 enters step 1 only:
``(J_{z0} δ)_{b,1} = D_{b,1} δ``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from gdlens.flow.cell_points import LayerPoint, layer_point
from gdlens.models.base import Params

__all__ = ["StepLinearisation", "LayerSpec", "LayeredLinearisation", "AutodiffLinearisation", "previous_states"]

Index = int | slice


class StepLinearisation(Protocol):
    """The state Jacobians D_t = ∂f/∂z_{t-1} along a trajectory of shape (B, T, S)."""

    shape: tuple[int, int, int]
    dtype: torch.dtype
    device: torch.device

    def d(self, i: int, Q: Tensor) -> Tensor:
        """D_{i+1} applied to each row of Q (k, B, S)."""
        ...

    def dT(self, i: int, G: Tensor) -> Tensor:  # noqa: N802
        """D_{i+1}ᵀ applied to each row of G (k, B, S)."""
        ...


def previous_states(model, theta: Params, x: Tensor, hidden: Tensor, z0: Tensor | None) -> Tensor:
    """z*_0..z*_{T-1} (B, T, S), with z*_0 = ``initial_state(θ, x)`` or the constant z0."""
    z0_star = (model.initial_state(theta, x) if z0 is None else z0).detach()
    return torch.cat([z0_star.unsqueeze(1).to(hidden.dtype), hidden[:, :-1].detach()], dim=1)


class AutodiffLinearisation:
    """D_t of any model by automatic differentiation of its ``step`` in z (the reference):
    ``d`` is a forward-mode JVP and ``dT`` a reverse-mode VJP, each batched over the k rows
    with vmap; the VJP linearisations are built once per step and reused.

    Args:
        model: the state-space model.  theta: θ.  x: the model input.
        hidden: z*_1..z*_T (B, T, S), the trajectory the Jacobians are taken at.
    """

    def __init__(self, model, theta: Params, x: Tensor, hidden: Tensor) -> None:
        self.model = model
        self.theta = {n: p.detach() for n, p in theta.items()}
        self.xs = model.step_inputs(x)
        self.hidden = hidden.detach()
        self.shape = tuple(hidden.shape)
        self.dtype, self.device = hidden.dtype, hidden.device
        self._vjp_fns: dict[int, Callable] = {}

    def _cell(self, t: int) -> Callable[[Tensor], Tensor]:
        """z ↦ f(z, x_t; θ) for the 1-based step t."""
        model, theta, x_t = self.model, self.theta, self.xs[t - 1]
        return lambda z: model.step(theta, z, x_t, t)

    def d(self, i: int, Q: Tensor) -> Tensor:
        if i == 0:
            raise ValueError("AutodiffLinearisation.d needs z*_0 for step 1; the propagator never asks for it")
        cell, z_prev = self._cell(i + 1), self.hidden[:, i - 1]
        return torch.func.vmap(lambda v: torch.func.jvp(cell, (z_prev,), (v,))[1])(Q)

    def dT(self, i: int, G: Tensor) -> Tensor:  # noqa: N802
        if i not in self._vjp_fns:
            if i == 0:
                raise ValueError("AutodiffLinearisation.dT needs z*_0 for step 1; the propagator never asks for it")
            self._vjp_fns[i] = torch.func.vjp(self._cell(i + 1), self.hidden[:, i - 1])[1]
        return torch.func.vmap(self._vjp_fns[i])(G)[0]


@dataclass(frozen=True)
class LayerSpec:
    """One recurrent layer with a closed form: its ``cell`` ("rnn", "gru", "lstm"), the θ name of
    each of its parameter roles (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``; a
    role absent from ``names`` does not exist), and σ for an RNN layer."""

    cell: str
    names: dict[str, str]
    nonlinearity: str = "tanh"

    def state_size(self, hidden_size: int) -> int:
        return 2 * hidden_size if self.cell == "lstm" else hidden_size


class LayeredLinearisation:
    """The closed-form linearisation of a stack of RNN/GRU/LSTM layers (module docstring).

    Attributes:
        layers: one :class:`LayerPoint` per layer, bottom first.  specs: their :class:`LayerSpec`.
        slices: each layer's slice of the state.  shape: (B, T, S).
        z0_learnable: z_0 = θ["z0"] (broadcast over the batch) is a function of θ here.
    """

    def __init__(self, layers: Sequence[LayerPoint], specs: Sequence[LayerSpec], z0_learnable: bool) -> None:
        self.layers, self.specs = list(layers), list(specs)
        self.slices, start = [], 0
        for layer in self.layers:
            self.slices.append(slice(start, start + layer.state_size))
            start += layer.state_size
        ref = self.layers[0].prev
        self.shape = (ref.shape[0], ref.shape[1], start)
        self.dtype, self.device = ref.dtype, ref.device
        self.z0_learnable = z0_learnable

    @classmethod
    def from_model(
        cls, model, specs: Sequence[LayerSpec], theta: Params, x: Tensor, hidden: Tensor, z0: Tensor | None
    ) -> LayeredLinearisation:
        """Linearise ``model`` (whose layers ``specs`` describe) along z* = ``hidden``."""
        theta = {n: p.detach() for n, p in theta.items()}
        z_prev = previous_states(model, theta, x, hidden, z0)
        inputs = model.step_inputs(x).transpose(0, 1).to(hidden.dtype)
        layers, start = [], 0
        for spec in specs:
            weights = {role: theta[name] for role, name in spec.names.items()}
            S = spec.state_size(weights["weight_hh"].shape[1])
            layer = layer_point(spec.cell, spec.nonlinearity, inputs, z_prev[..., start : start + S], weights)
            layers.append(layer)
            inputs = hidden[..., start : start + layer.hidden_size].detach()  # what the next layer reads at step t
            start += S
        return cls(layers, specs, z0 is None and "z0" in theta)

    # ------------------------------------------------------------------ state layout
    def split(self, Z: Tensor) -> list[Tensor]:
        """State-shaped (..., S) -> one (..., S_ℓ) view per layer."""
        return [Z] if len(self.layers) == 1 else [Z[..., s] for s in self.slices]

    def join(self, parts: Sequence[Tensor | None], like: Tensor) -> Tensor:
        """Per-layer parts (None = zero) -> (..., S), shaped like ``like``."""
        if len(parts) == 1 and parts[0] is not None:
            return parts[0]
        filled = [
            torch.zeros(*like.shape[:-1], layer.state_size, dtype=like.dtype, device=like.device) if p is None else p
            for p, layer in zip(parts, self.layers)
        ]
        return torch.cat(filled, dim=-1)

    # ------------------------------------------------------------------ within one step
    def within(self, at: Index, R: Sequence[Tensor | None]) -> list[Tensor | None]:
        """M_t: per-layer injections R^ℓ (None = 0) -> per-layer state perturbations."""
        out: list[Tensor | None] = []
        below: Tensor | None = None
        for ell, layer in enumerate(self.layers):
            o = R[ell]
            if below is not None:
                carried = layer.inp(at, self.layers[ell - 1].h_of(below))
                o = carried if o is None else o + carried
            out.append(o)
            below = o
        return out

    def within_T(self, at: Index, G: Sequence[Tensor]) -> list[Tensor]:  # noqa: N802
        """M_tᵀ: per-layer cotangents -> per-layer cotangents of the injections."""
        out: list[Tensor] = [G[-1]] * len(self.layers)
        carry = None
        for ell in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[ell]
            w = G[ell] if carry is None else G[ell] + layer.h_to_state(carry)
            out[ell] = w
            if ell > 0:
                carry = layer.inp_T(at, w)
        return out

    # ------------------------------------------------------------------ D_t = M_t Rec_t
    def d(self, i: int, Q: Tensor) -> Tensor:
        rec = [layer.rec(i, q) for layer, q in zip(self.layers, self.split(Q))]
        return self.join(self.within(i, rec), Q)

    def dT(self, i: int, G: Tensor) -> Tensor:  # noqa: N802
        W = self.within_T(i, self.split(G))
        return self.join([layer.rec_T(i, w) for layer, w in zip(self.layers, W)], G)

    def rec(self, i: int, Q: Tensor) -> Tensor:
        """Rec_t = diag_ℓ(∂s^ℓ_t/∂s^ℓ_{t-1}) on Q (k, B, S): D_t without the within-step M_t."""
        return self.join([layer.rec(i, q) for layer, q in zip(self.layers, self.split(Q))], Q)

    def rec_T(self, i: int, G: Tensor) -> Tensor:  # noqa: N802
        return self.join([layer.rec_T(i, g) for layer, g in zip(self.layers, self.split(G))], G)

    def compose(self, at: Index, R: Tensor) -> Tensor:
        """M_t on a state-shaped R (..., S) of injections."""
        return self.join(self.within(at, self.split(R)), R)

    def compose_T(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        return self.join(self.within_T(at, self.split(G)), G)

    @property
    def is_layered(self) -> bool:
        """More than one layer: M ≠ I."""
        return len(self.layers) > 1

    # ------------------------------------------------------------------ parameters
    def theta_names(self) -> list[str]:
        """Every θ name the closed form knows, layer by layer (``z0`` last, always listed)."""
        return [name for spec in self.specs for name in spec.names.values()] + ["z0"]

    def role_of(self, name: str) -> tuple[int, str]:
        """(layer index, role) of the θ tensor ``name``."""
        for ell, spec in enumerate(self.specs):
            for role, n in spec.names.items():
                if n == name:
                    return ell, role
        raise KeyError(name)
