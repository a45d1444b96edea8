"""Closed-form linearisations of one recurrent layer (Elman RNN, GRU, LSTM in torch's gate
conventions) along a stored trajectory.

Every one of these cells reaches its parameters and its two inputs only through *gate
pre-activations* that are affine in a weight::

    a = W_ih v + b_ih + W_hh h + b_hh          v: the layer input x_t,  h: its own h_{t-1}

Linearising the cell at the stored trajectory therefore gives, at each (b, t),

    δs_t = A_t δa_t  +  (the direct path of s_{t-1})

with ``A_t`` a per-unit map from the G·H gate pre-activations to the S state entries, built
from a few (B, T, H) coefficient tensors (no H×H block anywhere). Gates that see different
coefficients form *sites* (the GRU's ``ih`` and ``hh``, whose n-gate coefficients differ by
the reset gate r; one site for the RNN and the LSTM). From ``A`` and its transpose follow:

- the recurrent Jacobian ``rec``: δs_{t-1} ↦ A (W_hh δh_{t-1}) + direct path;
- the input Jacobian ``inp``: δv_t ↦ A_ih (W_ih δv_t) (what a layer above sees of this one);
- the parameter Jacobian of a weight W acting on columns u (x, h or 1):
  δW ↦ A (δW u), so ``J_Wᵀ g = Σ_{b,t} u (Aᵀ g)ᵀ`` (see :mod:`gdlens.flow.parameter_operator`).

Each method takes ``at``: a 0-based step index (then states are (k, B, S)) or ``slice(None)``
for all steps at once (states (k, B, T, S)); the coefficients are indexed ``[:, at]``.

GRU (gate order r, z (= u, update), n), h = s_{t-1}::

    r = σ(W_ir x + b_ir + W_hr h + b_hr)     u = σ(W_iz x + b_iz + W_hz h + b_hz)
    hn = W_hn h + b_hn                       n = tanh(W_in x + b_in + r ⊙ hn)
    s_t = (1 − u) ⊙ n + u ⊙ h

    α_u = (h − n) u (1 − u)      α_r = (1 − u)(1 − n²) hn r (1 − r)
    α_ni = (1 − u)(1 − n²)       α_nh = (1 − u)(1 − n²) r

so the ``ih`` site has coefficients γ = [α_r, α_u, α_ni] and the ``hh`` site β = [α_r, α_u,
α_nh]; ``A w = Σ_gates coef_g ⊙ w_g``, ``Aᵀ v = coef ⊙ [v, v, v]``; direct path u ⊙ δh.

LSTM (gate order i, f, g, o; state s = (h, c), S = 2H)::

    c' = σ(a_f) c + σ(a_i) tanh(a_g)         h' = σ(a_o) tanh(c')

    δc' = c_i δa_i + c_f δa_f + c_g δa_g + f ⊙ δc        δh' = c_o δa_o + h_c δc'
    c_i = tanh(a_g) i (1 − i)    c_f = c f (1 − f)    c_g = i (1 − tanh²(a_g))
    c_o = tanh(c') o (1 − o)     h_c = o (1 − tanh²(c'))

``Aᵀ (v_h, v_c) = [c_i ṽ, c_f ṽ, c_g ṽ, c_o v_h]`` with ṽ = v_c + h_c v_h; the direct path
is (h_c f δc, f δc).

Elman RNN ``s_t = σ(a_t)``: one gate, ``A = diag(σ'(a))`` (σ' = 1 − tanh², 1[a > 0] as
autograd's relu, or 1), no direct path. It is the one-gate case of the same form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

__all__ = ["LayerPoint", "RNNLayerPoint", "GRULayerPoint", "LSTMLayerPoint", "layer_point"]

Index = int | slice

#: the roles a layer's parameters play: role -> (column kind); "in" = the layer's input v_t,
#: "h" = its own h_{t-1}, "1" = a bias
ROLES: dict[str, str] = {"weight_ih": "in", "weight_hh": "h", "bias_ih": "1", "bias_hh": "1"}


def _affine(v: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    out = v @ W.T
    return out if b is None else out + b


@dataclass(frozen=True)
class LayerPoint:
    """What every layer linearisation holds: the trajectory it was taken along and its weights.

    inputs (B, T, I_ℓ): the layer input v_1..v_T;  prev (B, T, S): its own s_0..s_{T-1};
    weight_ih (G·H, I_ℓ), weight_hh (G·H, H).  Subclasses add the coefficient tensors.
    """

    inputs: Tensor
    prev: Tensor
    weight_ih: Tensor
    weight_hh: Tensor

    #: role -> site: which coefficients a parameter's gate pre-activations see
    SITES: ClassVar[dict[str, str]] = {}

    @property
    def hidden_size(self) -> int:
        """H: the width of the h-part of the state (what the next layer and the readout read)."""
        return self.weight_hh.shape[1]

    @property
    def state_size(self) -> int:
        return self.prev.shape[-1]

    @property
    def gate_width(self) -> int:
        """G·H: the width of the gate pre-activations."""
        return self.weight_hh.shape[0]

    def h_of(self, S: Tensor) -> Tensor:
        """The h-part of state-shaped S (..., S) -> (..., H)."""
        return S[..., : self.hidden_size]

    def h_to_state(self, Hv: Tensor) -> Tensor:
        """Embed (..., H) into the state (..., S), zero outside the h-part."""
        pad = self.state_size - self.hidden_size
        return Hv if pad == 0 else torch.cat([Hv, Hv.new_zeros(*Hv.shape[:-1], pad)], dim=-1)

    def columns(self, role: str) -> Tensor:
        """What the parameter of ``role`` multiplies, (B, T, m): the layer input, the layer's own
        h_{t-1}, or a column of ones (a bias)."""
        kind = ROLES[role]
        if kind == "in":
            return self.inputs
        if kind == "h":
            return self.h_of(self.prev)
        return torch.ones_like(self.prev[..., :1])

    # implemented per cell -------------------------------------------------------------
    def lift(self, site: str, at: Index, V: Tensor) -> Tensor:
        """Aᵀ: state cotangents (..., S) -> gate cotangents (..., G·H)."""
        raise NotImplementedError

    def lower(self, site: str, at: Index, W: Tensor) -> Tensor:
        """A: gate perturbations (..., G·H) -> state perturbations (..., S)."""
        raise NotImplementedError

    def direct(self, at: Index, Q: Tensor) -> Tensor | None:
        """The part of ∂s_t/∂s_{t-1} that bypasses the gates (None when there is none)."""
        return None

    def direct_T(self, at: Index, G: Tensor) -> Tensor | None:  # noqa: N802
        return None

    # shared ---------------------------------------------------------------------------
    def rec(self, at: Index, Q: Tensor) -> Tensor:
        """∂s_t/∂s_{t-1} applied to Q (..., S): A_hh (W_hh δh) + the direct path."""
        out = self.lower(self.SITES["weight_hh"], at, self.h_of(Q) @ self.weight_hh.T)
        extra = self.direct(at, Q)
        return out if extra is None else out + extra

    def rec_T(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        """(∂s_t/∂s_{t-1})ᵀ applied to G (..., S)."""
        out = self.h_to_state(self.lift(self.SITES["weight_hh"], at, G) @ self.weight_hh)
        extra = self.direct_T(at, G)
        return out if extra is None else out + extra

    def inp(self, at: Index, Qv: Tensor) -> Tensor:
        """∂s_t/∂v_t applied to Qv (..., I_ℓ): A_ih (W_ih δv)."""
        return self.lower(self.SITES["weight_ih"], at, Qv @ self.weight_ih.T)

    def inp_T(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        """(∂s_t/∂v_t)ᵀ applied to G (..., S) -> (..., I_ℓ)."""
        return self.lift(self.SITES["weight_ih"], at, G) @ self.weight_ih


@dataclass(frozen=True, kw_only=True)
class RNNLayerPoint(LayerPoint):
    """``s_t = σ(a_t)``: s (B, T, H) holds σ'(a_t)."""

    s: Tensor

    SITES: ClassVar[dict[str, str]] = {role: "a" for role in ROLES}

    def lift(self, site: str, at: Index, V: Tensor) -> Tensor:
        return self.s[:, at] * V

    lower = lift


@dataclass(frozen=True, kw_only=True)
class GRULayerPoint(LayerPoint):
    """u (B, T, H): the update gate; beta, gamma (B, T, 3H): the hh and ih coefficients."""

    u: Tensor
    beta: Tensor
    gamma: Tensor

    SITES: ClassVar[dict[str, str]] = {"weight_ih": "ih", "bias_ih": "ih", "weight_hh": "hh", "bias_hh": "hh"}

    def _coef(self, site: str, at: Index) -> Tensor:
        return (self.gamma if site == "ih" else self.beta)[:, at]

    def lift(self, site: str, at: Index, V: Tensor) -> Tensor:
        H = V.shape[-1]
        return (self._coef(site, at).unflatten(-1, (3, H)) * V.unsqueeze(-2)).flatten(-2)

    def lower(self, site: str, at: Index, W: Tensor) -> Tensor:
        H = W.shape[-1] // 3
        return (self._coef(site, at) * W).unflatten(-1, (3, H)).sum(-2)

    def direct(self, at: Index, Q: Tensor) -> Tensor:
        return self.u[:, at] * Q

    direct_T = direct


@dataclass(frozen=True, kw_only=True)
class LSTMLayerPoint(LayerPoint):
    """c_i, c_f, c_g, c_o, h_c, f (B, T, H): the coefficients of A and the forget gate."""

    c_i: Tensor
    c_f: Tensor
    c_g: Tensor
    c_o: Tensor
    h_c: Tensor
    f: Tensor

    SITES: ClassVar[dict[str, str]] = {role: "gates" for role in ROLES}

    def lift(self, site: str, at: Index, V: Tensor) -> Tensor:
        vh, vc = V.chunk(2, dim=-1)
        vt = vc + self.h_c[:, at] * vh
        return torch.cat([self.c_i[:, at] * vt, self.c_f[:, at] * vt, self.c_g[:, at] * vt, self.c_o[:, at] * vh], -1)

    def lower(self, site: str, at: Index, W: Tensor) -> Tensor:
        return self._lower(at, W, None)

    def _lower(self, at: Index, W: Tensor, extra_c: Tensor | None) -> Tensor:
        w_i, w_f, w_g, w_o = W.chunk(4, dim=-1)
        dc = self.c_i[:, at] * w_i + self.c_f[:, at] * w_f + self.c_g[:, at] * w_g
        if extra_c is not None:
            dc = dc + extra_c
        return torch.cat([self.c_o[:, at] * w_o + self.h_c[:, at] * dc, dc], dim=-1)

    def rec(self, at: Index, Q: Tensor) -> Tensor:
        # the direct path f ⊙ δc enters c' before c' reaches h', so it goes through _lower
        H = self.hidden_size
        return self._lower(at, Q[..., :H] @ self.weight_hh.T, self.f[:, at] * Q[..., H:])

    def rec_T(self, at: Index, G: Tensor) -> Tensor:  # noqa: N802
        H = self.hidden_size
        vt = G[..., H:] + self.h_c[:, at] * G[..., :H]
        return torch.cat([self.lift("gates", at, G) @ self.weight_hh, self.f[:, at] * vt], dim=-1)


def layer_point(
    cell: str,
    nonlinearity: str,
    inputs: Tensor,
    prev: Tensor,
    weights: dict[str, Tensor | None],
) -> LayerPoint:
    """The linearisation of one layer of ``cell`` ("rnn", "gru", "lstm") along a trajectory.

    Args:
        nonlinearity: σ of an RNN layer ("tanh", "relu", "linear"); ignored for gru/lstm.
        inputs: v_1..v_T (B, T, I_ℓ).  prev: the layer's own s_0..s_{T-1} (B, T, S).
        weights: {role: tensor or None} for the roles weight_ih, weight_hh, bias_ih, bias_hh.
    """
    W_ih, W_hh = weights["weight_ih"], weights["weight_hh"]
    H = W_hh.shape[1]
    h = prev[..., :H]
    pre_in = _affine(inputs, W_ih, weights.get("bias_ih"))
    pre_h = _affine(h, W_hh, weights.get("bias_hh"))
    base = dict(inputs=inputs, prev=prev, weight_ih=W_ih, weight_hh=W_hh)
    if cell == "rnn":
        a = pre_in + pre_h
        if nonlinearity == "tanh":
            s = 1 - torch.tanh(a) ** 2
        elif nonlinearity == "relu":
            s = (a > 0).to(a.dtype)
        else:
            s = torch.ones_like(a)
        return RNNLayerPoint(**base, s=s)
    if cell == "gru":
        gi_r, gi_u, gi_n = pre_in.chunk(3, dim=-1)
        gh_r, gh_u, hn = pre_h.chunk(3, dim=-1)
        r = torch.sigmoid(gi_r + gh_r)
        u = torch.sigmoid(gi_u + gh_u)
        n = torch.tanh(gi_n + r * hn)
        a_ni = (1 - u) * (1 - n * n)
        a_r = a_ni * hn * r * (1 - r)
        a_u = (h - n) * u * (1 - u)
        beta = torch.cat([a_r, a_u, a_ni * r], dim=-1)
        gamma = torch.cat([a_r, a_u, a_ni], dim=-1)
        return GRULayerPoint(**base, u=u, beta=beta, gamma=gamma)
    if cell == "lstm":
        c = prev[..., H:]
        a_i, a_f, a_g, a_o = (pre_in + pre_h).chunk(4, dim=-1)
        i, f, o, g = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o), torch.tanh(a_g)
        tc = torch.tanh(f * c + i * g)
        return LSTMLayerPoint(
            **base,
            c_i=g * i * (1 - i),
            c_f=c * f * (1 - f),
            c_g=i * (1 - g * g),
            c_o=tc * o * (1 - o),
            h_c=o * (1 - tc * tc),
            f=f,
        )
    raise ValueError(f"cell must be 'rnn', 'gru' or 'lstm', got {cell!r}")
