"""The parameter operator ``K = J_θ J_θᵀ`` and its per-parameter parts ``K_g``.

``K`` acts on hidden-state-shaped tensors (B, T, H) and is symmetric positive semi-definite::

    (K v)_t = Σ_{t'} (∂f_t/∂θ)(∂f_{t'}/∂θ)ᵀ v_{t'}          (sum over the batch included)

For a parameter tensor g, ``K_g = J_g J_gᵀ`` with J_g the columns of J belonging to g; the
K_g of all parameter tensors sum to K.

Two implementations:

- :class:`ParameterKernel` (any model, the reference): one VJP of the immediate map followed
  by one JVP, each over all steps at once and batched over the k probes with vmap.
- :class:`FactoredKernel` (gdlens' RNN, GRU, LSTM and every stack of them): the exact closed
  form on a :class:`~gdlens.flow.linearisation.LayeredLinearisation`. A weight W acting on
  columns u_t (x_t, h*_{t-1} or 1) of a layer with gate map A gives ``J_W δW = A (δW u)``, so

      K_W v = A ( U (Uᵀ (Aᵀ v)) )        U (B·T, m) the stacked columns

  applied per probe as ``w = Aᵀ v`` (B·T, G·H), ``g = Uᵀ w`` (m, G·H) — the rows ``J_Wᵀ v``
  of the stacked [W | b] — and ``A (U g)``: two GEMMs, cost O(k·B·T·G·H·m), never a (B·T)²
  or (B·T·H)² object. Weights of one layer that see the same A (a *site*) share one U. For a
  stack, ``K = M diag_ℓ(K^ℓ) Mᵀ`` with M the within-step composition of the layers. A
  learnable z_0 enters step 1 only: ``(J_{z0} δ)_{b,1} = D_{b,1} δ``, so
  ``J_{z0}ᵀ v = Σ_b D_{b,1}ᵀ v_{b,1}``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cached_property

import torch
from torch import Tensor

from gdlens.flow.factors import flat_parameter_operator
from gdlens.flow.immediate import ImmediateJacobian
from gdlens.flow.cell_points import ROLES
from gdlens.flow.linearisation import LayeredLinearisation
from gdlens.operators import LinearOperator

__all__ = ["ParameterKernel", "FactoredKernel"]


class ParameterKernel(LinearOperator):
    """``K_S = J_S J_Sᵀ`` on (B, T, H), J_S the immediate parameter Jacobian restricted to the
    parameter tensors ``names`` (all of θ when None). Generic: VJP then JVP of the immediate map.

    Args:
        jacobian: the :class:`~gdlens.flow.immediate.ImmediateJacobian` at the trajectory.
        shape: (B, T, H).  names: the parameter names S.
    """

    def __init__(self, jacobian: ImmediateJacobian, shape: Sequence[int], names: Sequence[str] | None = None) -> None:
        self.jacobian = jacobian
        self.names = list(jacobian.theta) if names is None else list(names)
        unknown = [n for n in self.names if n not in jacobian.theta]
        if unknown:
            raise ValueError(f"unknown parameter name(s) {unknown}; θ has {list(jacobian.theta)}")
        ref = next(iter(jacobian.theta.values()))
        super().__init__(tuple(shape), dtype=ref.dtype, device=ref.device, is_symmetric=True)

    def _matmat(self, X: Tensor) -> Tensor:
        rows = self.jacobian.vjp(X)  # Jᵀ x for each probe
        return self.jacobian.jvp(rows, self.names)

    _rmatmat = _matmat

    @cached_property
    def gram_factor(self) -> LinearOperator:  # type: ignore[override]
        """J_S on the flattened parameters S (K_S = J_S J_Sᵀ)."""
        theta = self.jacobian.theta
        names = self.names
        return flat_parameter_operator(
            lambda V: (lambda rows: [rows[n] for n in names])(self.jacobian.vjp(V)),  # one VJP for all names
            lambda pieces: self.jacobian.jvp(dict(zip(names, pieces)), names),
            [tuple(theta[n].shape) for n in names], self.shape_out, self.dtype, self.device,
        )


class FactoredKernel(LinearOperator):
    """Closed form of ``K_S = J_S J_Sᵀ`` on (B, T, S) (see the module docstring).

    Args:
        linearisation: the :class:`~gdlens.flow.linearisation.LayeredLinearisation`.
        names: the θ names S (every parameter of the layers, and ``z0``, when None). ``z0``
            contributes nothing when z_0 is a constant passed by the user.
    """

    #: on CPU, probes are processed in chunks whose (B·T, G·H) intermediates stay within this
    #: many bytes (near-cache-resident: measured 1.5–2× faster than one pass over all k at
    #: B·T = 1600, H = 64 and 256); on other devices all k probes go in one chunk
    CPU_CHUNK_BYTES = 2 * 2**20

    def __init__(self, linearisation: LayeredLinearisation, names: Sequence[str] | None = None) -> None:
        lin = self.linearisation = linearisation
        known = lin.theta_names()
        self.names = known if names is None else list(names)
        unknown = [n for n in self.names if n not in known]
        if unknown:
            raise ValueError(f"{type(self).__name__} knows {known}, got {unknown}")
        B, T, S = lin.shape
        super().__init__((B, T, S), dtype=lin.dtype, device=lin.device, is_symmetric=True)
        # (layer, site) -> [(name, role)], in the order of self.names
        groups: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for name in self.names:
            if name == "z0":
                continue
            ell, role = lin.role_of(name)
            groups.setdefault((ell, lin.layers[ell].SITES[role]), []).append((name, role))
        # (layer, site, U (B·T, m), [(name, width)]) per group of parameters sharing A
        self._blocks = []
        for (ell, site), members in groups.items():
            cols = [lin.layers[ell].columns(role) for _, role in members]
            U = torch.cat(cols, dim=-1).reshape(B * T, -1)
            self._blocks.append((ell, site, U, [(n, c.shape[-1]) for (n, _), c in zip(members, cols)]))
        self._with_z0 = "z0" in self.names and lin.z0_learnable
        self._layered = lin.is_layered
        self._z0_d, self._z0_dT = lin.d, lin.dT  # J_{z0} δ = D_1 δ at t = 1

    def uncomposed(self) -> FactoredKernel:
        """diag_ℓ(K^ℓ_S), K_S without the within-step composition M (the kernel between the
        :class:`~gdlens.flow.propagator.InjectedPropagator` P M and its adjoint in G), sharing
        this kernel's column blocks U; self when there is one layer (M = I). Without M, z0
        injects Rec_1 δ at t = 1 instead of D_1 δ = M_1 Rec_1 δ."""
        lin = self.linearisation
        if not self._layered:
            return self
        other = copy.copy(self)
        other.__dict__.pop("gram_factor", None)  # a cached factor would still compose M
        other._layered = False
        other._z0_d, other._z0_dT = lin.rec, lin.rec_T
        return other

    def _chunk(self, k: int, V: Tensor) -> int:
        if V.device.type != "cpu":
            return k
        B, T = V.shape[1:3]
        width = max(layer.gate_width for layer in self.linearisation.layers)
        return max(1, min(k, self.CPU_CHUNK_BYTES // max(1, B * T * width * V.element_size())))

    def _cotangents(self, V: Tensor) -> list[Tensor]:
        """Mᵀ v split by layer: what each layer's own Jacobian sees."""
        lin = self.linearisation
        parts = lin.split(V)
        return lin.within_T(slice(None), parts) if self._layered else parts

    def _blocks_rows(self, V: Tensor) -> list[Tensor]:
        """g = Uᵀ (Aᵀ (Mᵀ v)) per block, (c, m, G·H) each: the rows J_Wᵀ v of the block's
        stacked [W | b] for each of the c probes of V (c, B, T, S)."""
        c, B, T = V.shape[:3]
        W = self._cotangents(V)
        layers = self.linearisation.layers
        return [U.T @ layers[ell].lift(site, slice(None), W[ell]).reshape(c, B * T, -1) for ell, site, U, _ in self._blocks]

    def _blocks_apply(self, pieces: Sequence[Tensor], like: Tensor) -> Tensor:
        """M (Σ_blocks A (U g)) for the per-block pieces g (c, m, G·H), shaped like ``like``."""
        lin = self.linearisation
        c, B, T = like.shape[:3]
        R: list[Tensor | None] = [None] * len(lin.layers)
        for (ell, site, U, _), g in zip(self._blocks, pieces):
            part = lin.layers[ell].lower(site, slice(None), (U @ g).reshape(c, B, T, -1))
            R[ell] = part if R[ell] is None else R[ell] + part
        if self._layered:
            R = lin.within(slice(None), R)
        if all(r is None for r in R):
            return torch.zeros_like(like)
        return lin.join(R, like)

    def _z0_rows(self, V: Tensor) -> Tensor:
        """J_{z0}ᵀ v = Σ_b D_{b,1}ᵀ v_{b,1}: V (k, B, T, S) -> (k, S)."""
        return self._z0_dT(0, V[:, :, 0]).sum(1)

    def _add_z0(self, out: Tensor, g0: Tensor) -> Tensor:
        """out[:, :, 0] += D_1 g0 for each batch row (J_{z0} g0)."""
        k, B, _, S = out.shape
        out[:, :, 0] += self._z0_d(0, g0.unsqueeze(1).expand(k, B, S))
        return out

    def _blocks_matmat(self, X: Tensor) -> Tensor:
        return self._blocks_apply(self._blocks_rows(X), X)

    def _matmat(self, X: Tensor) -> Tensor:
        k = X.shape[0]
        step = self._chunk(k, X)
        if step >= k:
            out = self._blocks_matmat(X)
        else:
            out = torch.cat([self._blocks_matmat(X[i : i + step]) for i in range(0, k, step)])
        if self._with_z0:
            out = self._add_z0(out, self._z0_rows(X))
        return out

    _rmatmat = _matmat

    def _flat_rows(self, V: Tensor) -> list[Tensor]:
        """Jᵀ v per block ((k, m, G·H) each) and for a learnable z0 ((k, S))."""
        return self._blocks_rows(V) + ([self._z0_rows(V)] if self._with_z0 else [])

    def _flat_apply(self, pieces: Sequence[Tensor]) -> Tensor:
        """J dθ for the pieces laid out as in :meth:`_flat_rows`."""
        k = pieces[0].shape[0]
        like = torch.empty(k, *self.shape_out, dtype=self.dtype, device=self.device)  # shape only
        out = self._blocks_apply(pieces[: len(self._blocks)], like)
        return self._add_z0(out, pieces[-1]) if self._with_z0 else out

    @cached_property
    def gram_factor(self) -> LinearOperator | None:  # type: ignore[override]
        """J_S on the flattened parameters (K_S = J_S J_Sᵀ); None when S selects nothing."""
        layers = self.linearisation.layers
        shapes = [(U.shape[-1], layers[ell].gate_width) for ell, _, U, _ in self._blocks]
        shapes += [(self.shape_out[-1],)] if self._with_z0 else []
        if not shapes:
            return None
        return flat_parameter_operator(self._flat_rows, self._flat_apply, shapes, self.shape_out, self.dtype, self.device)

    def rows(self, V: Tensor) -> dict[str, Tensor]:
        """``J_Sᵀ v`` for each of the k rows of V (k, B, T, S): {name: (k, *θ[name].shape)}
        (the gradient of ⟨v, F(θ)⟩; zeros for ``z0`` with a constant z_0)."""
        out: dict[str, Tensor] = {}
        for (_, _, _, members), g in zip(self._blocks, self._blocks_rows(V)):
            g = g.transpose(1, 2)  # (k, G·H, m)
            start = 0
            for name, width in members:
                piece = g[..., start : start + width]
                is_bias = ROLES[self.linearisation.role_of(name)[1]] == "1"
                out[name] = piece.squeeze(-1) if is_bias else piece
                start += width
        if "z0" in self.names:
            out["z0"] = self._z0_rows(V) if self._with_z0 else V.new_zeros(V.shape[0], V.shape[-1])
        return out
