"""KPFlow: the KP decomposition of gradient flow at one point of training (arXiv 2507.06381).

For ``z_t = f(z_{t-1}, x_t; θ)`` (t = 1..T), ``y = g(z; φ)`` and the loss
``L = mean_b Σ_t ℓ(y_t, target_t)``, gradient flow on θ moves the states as::

    dz/dτ = −G e,   G = P K Pᵀ = (dz/dθ)(dz/dθ)ᵀ

with e = ∂L/∂z the direct error, P = (I − D)⁻¹ the propagator, K = J_θ J_θᵀ the parameter
operator, and Pᵀ e = dL/dz the BPTT adjoint. All operators act on (B, T, H) tensors (stacks
(k, B, T, H) in one batched call) and store nothing of size B·T·H².
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from gdlens.flow.immediate import ImmediateJacobian, immediate_map
from gdlens.flow.losses import LossFn, check_target, resolve_loss
from gdlens.flow.ntk import ReadoutJacobian, ReadoutKernel, output_ntk
from gdlens.flow.linearisation import AutodiffLinearisation, LayeredLinearisation
from gdlens.flow.diagonal import DiagonalKernel, diagonal_linearisation
from gdlens.flow.parameter_operator import FactoredKernel, ParameterKernel
from gdlens.flow.propagator import InjectedPropagator, Propagator
from gdlens.flow.structure import check_finite, check_model, closed_form_kind, closed_form_layers, is_time_invariant
from gdlens.models.torch_adapter import as_state_space
from gdlens.models.protocol import StateSpace
from gdlens.operators import ComposedOperator, LinearOperator

__all__ = ["KPFlow", "StepCheck"]


@dataclass(frozen=True)
class StepCheck:
    """One SGD step of size ``lr`` against the flow's prediction.

    actual: z(θ − lr ∇_θL) − z(θ), (B, T, H).  predicted: −lr·G e, (B, T, H).
    rel_error: ‖actual − predicted‖ / ‖predicted‖, which is O(lr) (it halves with lr).
    """

    lr: float
    actual: Tensor
    predicted: Tensor
    rel_error: float


class KPFlow:
    """The KP decomposition of a state-space model at its current parameters.

    Args:
        model: a gdlens state-space model (θ = ``state_params()``, φ = ``readout_params()``;
            all parameters, whatever their ``requires_grad``), or a torch ``nn.RNN``/``nn.GRU``/
            ``nn.LSTM``, converted by :func:`gdlens.models.from_torch` (exactly, with closed
            forms; x is then batch-first (B, T, I) whatever the module's ``batch_first``).
        x: the input the model takes (B, T, I) for recurrent models; see the model.
        target: for ``loss="mse"`` shaped like y (B, T', O); for ``"cross_entropy"`` integer
            classes (B, T') or probabilities (B, T', O); anything a callable loss accepts.
        loss: ``"mse"`` (Σ over outputs, no ½), ``"cross_entropy"`` or a callable
            ``loss(y, target) -> scalar`` that replaces the whole reduction.
        z0: a constant initial state (B, H), held fixed (its learnable counterpart, if any,
            then has a zero Jacobian); None uses ``model.initial_state(θ, x)`` as a function of θ.
        fast: use the closed forms where the model allows (gdlens' RNN, GRU, LSTM and every
            StackedRNN, so everything ``from_torch`` returns; the diagonal recurrences LRU and
            SelectiveLRU: K, the K_groups and P); False forces the generic JVP/VJP paths (the
            reference).
        strict: when the immediate Jacobian J_θ is identically zero (a cell that is not
            differentiable in θ: torch.round, argmax, detach, a constant output, or a fully
            dead ReLU network), raise ValueError (True) or only warn (False).
        readout: for a torch recurrent module, the ``nn.Linear`` that reads its top hidden
            state (None: the identity, so y is the module's output sequence).

    Attributes:
        hidden: z* (B, T, H), detached.  output: y (B, T', O).  loss_value: L (float).
        error: e = ∂L/∂z (B, T, H) with the other states fixed (autograd through the readout).
        adjoint: a = Pᵀ e, the BPTT gradient dL/dz.
        K, K_groups, P, G, ntk: :class:`~gdlens.operators.LinearOperator` (see their docs);
        C: the readout Jacobian ∂y/∂z; readout_kernel: Θ_φ.

    Raises:
        TypeError: a model that does not follow the protocol (names the missing attribute).
        ValueError: shapes of model, x, z0 and target that do not fit (names the shapes); a
            state or output that is not floating point; NaN or inf in x, target, z0, a
            parameter, the states, the output or the loss (names the tensor and the first bad
            index); J_θ ≡ 0 (see ``strict``).
    """

    def __init__(
        self,
        model: StateSpace,
        x: Tensor,
        target: Tensor,
        loss: str | LossFn = "mse",
        z0: Tensor | None = None,
        *,
        fast: bool = True,
        strict: bool = True,
        readout: torch.nn.Linear | None = None,
    ) -> None:
        model = as_state_space(model, readout)
        check_model(model)
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        self.model, self.x, self.z0 = model, x, None if z0 is None else z0.detach()
        self.loss_name, self._loss_fn = resolve_loss(loss)
        self.fast = fast
        # a snapshot: later optimiser steps on the model must not move this point of training
        self.theta = {n: p.detach().clone() for n, p in model.state_params().items()}
        self.phi = {n: p.detach().clone() for n, p in model.readout_params().items()}
        if not self.theta:
            raise ValueError(f"{type(model).__name__} has no state parameters θ: there is no flow to decompose")
        for name, p in {**self.theta, **self.phi}.items():
            if not p.dtype.is_floating_point:
                raise ValueError(f"parameter {name!r} has dtype {p.dtype}; the flow needs floating-point parameters")
        check_finite("x", x)
        check_finite("z0", self.z0)
        for name, p in {**self.theta, **self.phi}.items():
            check_finite(f"parameter {name!r}", p)
        ref = next(iter(self.theta.values()))
        if x.dtype.is_floating_point and x.dtype != ref.dtype:
            raise ValueError(
                f"x has dtype {x.dtype} but the model's parameters have dtype {ref.dtype}; convert one of them"
            )
        if self.z0 is not None and tuple(self.z0.shape) != (x.shape[0], model.state_size):
            raise ValueError(
                f"z0 has shape {tuple(self.z0.shape)}, expected (B, H) = {(x.shape[0], model.state_size)} "
                f"for x of shape {tuple(x.shape)}"
            )
        self.hidden = self._unroll()
        with torch.no_grad():
            self.output = model.read(self.phi, self.hidden)
        if not self.output.dtype.is_floating_point:
            raise ValueError(f"the readout returned dtype {self.output.dtype}; the flow needs a floating-point output")
        self.target = check_target(self.loss_name, self.output, target)
        check_finite("target", self.target)
        check_finite("the states z (the unrolled model)", self.hidden)
        check_finite("the output y", self.output)
        self.error, value = self._error_and_loss()
        check_finite("the loss", value)
        check_finite("the direct error e = dL/dz", self.error)
        self.loss_value = float(value)
        # the layers of the closed forms of K, K_groups and P, or None (generic paths)
        self._closed_form = closed_form_kind(model) if fast else None
        self._layers = closed_form_layers(model) if self._closed_form is not None else None
        self._jacobian = ImmediateJacobian(
            immediate_map(model, x, self.hidden, self.z0, time_invariant=is_time_invariant(model)), self.theta
        )
        self._check_jacobian(strict)
        if self._closed_form is not None:
            self._jacobian.release()  # the closed forms do not need the generic linearisation

    # ------------------------------------------------------------------ the trajectory
    def _unroll(self) -> Tensor:
        model, x = self.model, self.x
        try:
            xs = model.step_inputs(x)
        except ValueError as err:
            raise ValueError(f"x of shape {tuple(x.shape)} does not fit {type(model).__name__}: {err}") from err
        T = xs.shape[0] if isinstance(xs, Tensor) else len(xs)
        if T < 1:
            raise ValueError(f"x of shape {tuple(x.shape)} gives T = 0 steps; the flow needs at least one")
        with torch.no_grad():
            try:
                z_start = model.initial_state(self.theta, x) if self.z0 is None else self.z0
                z_first = model.step(self.theta, z_start, xs[0], 1)
                if isinstance(z_first, Tensor) and not z_first.dtype.is_floating_point:
                    raise ValueError(
                        f"{type(model).__name__}.step returned dtype {z_first.dtype}; the flow needs a floating-point "
                        f"state (a cell returning integers, e.g. from argmax, is not differentiable)"
                    )
                z = model.unroll(self.theta, x, self.z0)
            except RuntimeError as err:
                raise ValueError(
                    f"running {type(model).__name__} (state size {model.state_size}, input size "
                    f"{getattr(model, 'input_size', '?')}) on x of shape {tuple(x.shape)} failed: {err}"
                ) from err
        expected = (x.shape[0], T, model.state_size)
        if not isinstance(z, Tensor) or tuple(z.shape) != expected:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"model.unroll returned states of shape {got}, expected (B, T, H) = {expected}")
        if not z.dtype.is_floating_point:
            raise ValueError(
                f"the states z have dtype {z.dtype}; the flow needs a floating-point state (a cell returning "
                f"integers, e.g. from argmax, is not differentiable)"
            )
        return z.detach()

    def _error_and_loss(self) -> tuple[Tensor, Tensor]:
        model, phi, target, loss_fn = self.model, self.phi, self.target, self._loss_fn

        def L(z: Tensor) -> Tensor:
            value = loss_fn(model.read(phi, z), target)
            if not isinstance(value, Tensor) or value.dim() != 0:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"the loss must return a scalar (0-d tensor), got {shape}")
            return value

        e, value = torch.func.grad_and_value(L)(self.hidden)
        return e.detach(), value.detach()

    def _check_jacobian(self, strict: bool) -> None:
        gen = torch.Generator(device=self.hidden.device).manual_seed(0)
        probe = torch.randn(self.hidden.shape, generator=gen, dtype=self.hidden.dtype, device=self.hidden.device)
        if self._closed_form is not None:
            rows = self.K.rows(probe.unsqueeze(0))  # the closed-form K, built once and kept
        else:
            rows = self._jacobian.vjp(probe.unsqueeze(0))
        if all(bool((r == 0).all()) for r in rows.values()):
            message = (
                f"the immediate parameter Jacobian J_θ of {type(self.model).__name__} is zero for every parameter "
                f"({', '.join(self.theta)}): the cell is not differentiable in θ (torch.round, argmax, detach, an "
                f"output independent of θ) or every unit is dead; K, G and the flow vanish"
            )
            if strict:
                raise ValueError(message + " (pass strict=False to only warn)")
            warnings.warn(message, stacklevel=3)

    @property
    def jacobian(self) -> ImmediateJacobian:
        """J_θ, the immediate parameter Jacobian: ``jacobian.vjp(V)`` gives the rows Jᵀ v as
        {name: (k, *shape)}, ``jacobian.jvp(dθ)`` applies J (generic autodiff path)."""
        return self._jacobian

    @cached_property
    def _linearisation(self) -> LayeredLinearisation | AutodiffLinearisation:
        """The D_t and factors of J_θ along the trajectory: closed forms where they apply."""
        if self._layers is not None:
            return LayeredLinearisation.from_model(self.model, self._layers, self.theta, self.x, self.hidden, self.z0)
        if self._closed_form is not None:  # a diagonal recurrence
            return diagonal_linearisation(self.model, self.theta, self.x, self.hidden, self.z0)
        return AutodiffLinearisation(self.model, self.theta, self.x, self.hidden)

    def _closed_kernel(self, names: list[str]) -> FactoredKernel | DiagonalKernel:
        """The closed-form K restricted to the θ tensors ``names``."""
        lin = self._linearisation
        return FactoredKernel(lin, names) if isinstance(lin, LayeredLinearisation) else DiagonalKernel(lin, names)

    # ------------------------------------------------------------------ operators
    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, T, H)."""
        return tuple(self.hidden.shape)

    @cached_property
    def K(self) -> LinearOperator:  # noqa: N802
        """``K = J_θ J_θᵀ`` on (B, T, H): symmetric PSD."""
        if self._closed_form is not None:
            return self._closed_kernel(list(self.theta))
        return ParameterKernel(self._jacobian, self.shape)

    @cached_property
    def K_groups(self) -> dict[str, LinearOperator]:  # noqa: N802
        """``{name: K_name}``, one per θ tensor, ``K_name = J_name J_nameᵀ``; they sum to K."""
        if self._closed_form is not None:
            return {n: self._closed_kernel([n]) for n in self.theta}
        return {n: ParameterKernel(self._jacobian, self.shape, [n]) for n in self.theta}

    @cached_property
    def P(self) -> LinearOperator:  # noqa: N802
        """``P = (I − D)⁻¹`` on (B, T, H); ``P.T`` its adjoint (the BPTT recursion)."""
        return Propagator(self._linearisation)

    @cached_property
    def G(self) -> LinearOperator:  # noqa: N802
        """``G = P K Pᵀ = (dz/dθ)(dz/dθ)ᵀ`` on (B, T, H): symmetric PSD."""
        P, K = self.P, self.K
        lin = self._linearisation
        if isinstance(lin, LayeredLinearisation) and lin.is_layered:  # G = (P M) diag(K^ℓ) (P M)ᵀ: M folded into P's steps
            P, K = InjectedPropagator(lin), self.K.uncomposed()
        G = ComposedOperator([P, K, P.T], is_symmetric=True)
        J = K.gram_factor
        if J is not None:  # G = (P J)(P J)ᵀ: spectral routines may work in parameter space
            G.gram_factor = P @ J
        return G

    @cached_property
    def C(self) -> LinearOperator:  # noqa: N802
        """The readout Jacobian ``∂y/∂z``: (B, T, H) -> (B, T', O)."""
        return ReadoutJacobian(self.model.read, self.phi, self.hidden)

    @cached_property
    def readout_kernel(self) -> LinearOperator:
        """``Θ_φ = J_φ J_φᵀ`` on (B, T', O), the readout parameters' own kernel."""
        return ReadoutKernel(self.model.read, self.phi, self.hidden)

    @cached_property
    def ntk(self) -> LinearOperator:
        """The output NTK ``Θ = C G Cᵀ + Θ_φ`` on (B, T', O) over all parameters (θ and φ)."""
        return output_ntk(self.C, self.G, self.readout_kernel)

    @cached_property
    def adjoint(self) -> Tensor:
        """``a = Pᵀ e`` (B, T, H): the total derivative dL/dz_t through all later steps (BPTT)."""
        return self.P.T @ self.error

    # ------------------------------------------------------------------ dynamics
    def velocity(self) -> Tensor:
        """``dz/dτ = −G e`` (B, T, H): how gradient flow on θ moves the states."""
        return -(self.G @ self.error)

    def step_check(self, lr: float) -> StepCheck:
        """Take one plain SGD step of size ``lr`` on ALL parameters (θ and φ) of a deep copy of
        the model, with the same loss L, and compare the change of the states with −lr·G e."""
        model = copy.deepcopy(self.model)
        params = [p for _, p in model.named_parameters()]
        snapshot = {**self.theta, **self.phi}
        with torch.no_grad():  # start from this KPFlow's point, even if the model has trained since
            for name, p in model.named_parameters():
                if name in snapshot:
                    p.copy_(snapshot[name])
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            z = model.unroll(model.state_params(), self.x, self.z0)
            value = self._loss_fn(model.read(model.readout_params(), z), self.target)
            grads = torch.autograd.grad(value, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p.sub_(lr * g)
            z_new = model.unroll(model.state_params(), self.x, self.z0)
        actual = (z_new - self.hidden).detach()
        predicted = lr * self.velocity()
        rel = float(torch.linalg.vector_norm(actual - predicted) / torch.linalg.vector_norm(predicted))
        return StepCheck(float(lr), actual, predicted, rel)

    def __repr__(self) -> str:
        B, T, H = self.shape
        return (
            f"KPFlow({type(self.model).__name__}, B={B}, T={T}, H={H}, loss={self.loss_name!r}, "
            f"L={self.loss_value:.6g}, closed_forms={self._closed_form or False!r})"
        )
