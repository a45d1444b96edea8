"""The direct error e = ∂L/∂z and the adjoint Pᵀ e = dL/dz (BPTT) against autograd."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import F64, loss_through_unroll, make_case, params, rel

from gdlens.flow import KPFlow

TOL = 1e-10


def _cube_loss(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((y - target).abs() ** 3).sum() / 7.0


def _by_hand(name: str):
    """The loss written out independently of gdlens."""
    if name == "mse":
        return lambda y, t: ((y - t) ** 2).sum() / y.shape[0]
    if name == "cross_entropy":
        ce = torch.nn.functional.cross_entropy
        return lambda y, t: ce(y.flatten(0, -2), t.flatten(), reduction="sum") / y.shape[0]
    return _cube_loss


def _case_and_target(name: str, kind: str, learn_z0: bool):
    case = make_case(kind, learn_z0=learn_z0, T=5)
    if name == "cross_entropy":
        gen = torch.Generator().manual_seed(3)
        target = torch.randint(0, case.model.output_size, case.target.shape[:-1], generator=gen)
    else:
        target = case.target
    return case, target


LOSSES = ["mse", "cross_entropy", "callable"]


@pytest.mark.parametrize("kind", ["rnn-tanh", "rnn-relu"])
@pytest.mark.parametrize("name", LOSSES)
def test_error_is_direct_gradient(name: str, kind: str) -> None:
    case, target = _case_and_target(name, kind, learn_z0=False)
    loss = _cube_loss if name == "callable" else name
    kp = KPFlow(case.model, case.x, target, loss=loss, z0=case.z0)
    theta, phi = params(case.model)
    z = case.model.unroll(theta, case.x, case.z0).detach().requires_grad_(True)
    L = _by_hand(name)(case.model.read(phi, z), target)
    (e,) = torch.autograd.grad(L, z)
    assert kp.error.shape == z.shape and kp.error.dtype == F64
    assert rel(kp.error, e) <= TOL
    assert abs(kp.loss_value - L.item()) <= TOL * abs(L.item())


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
@pytest.mark.parametrize("learn_z0", [False, True], ids=["const_z0", "learn_z0"])
@pytest.mark.parametrize("name", LOSSES)
def test_adjoint_is_bptt_gradient(name: str, learn_z0: bool, fast: bool) -> None:
    case, target = _case_and_target(name, "rnn-tanh", learn_z0)
    loss = _cube_loss if name == "callable" else name
    kp = KPFlow(case.model, case.x, target, loss=loss, z0=case.z0, fast=fast)
    L = loss_through_unroll(case, _by_hand(name), target)
    a = torch.func.grad(L)(torch.zeros(kp.shape, dtype=F64))
    assert rel(kp.adjoint, a) <= TOL
    # the adjoint differs from the direct error except at the last step
    assert rel(kp.adjoint[:, -1], kp.error[:, -1]) <= TOL
    assert rel(kp.adjoint[:, :-1], kp.error[:, :-1]) > 1e-3


@pytest.mark.parametrize("learn_z0", [False, True], ids=["const_z0", "own_z0"])
@pytest.mark.parametrize("kind", ["gru", "lstm", "ode", "stacked-lstm", "resnet-wide"])
def test_adjoint_is_bptt_gradient_other_models(kind: str, learn_z0: bool) -> None:
    case, target = _case_and_target("mse", kind, learn_z0)
    kp = KPFlow(case.model, case.x, target, z0=case.z0)
    a = torch.func.grad(loss_through_unroll(case, _by_hand("mse"), target))(torch.zeros(kp.shape, dtype=F64))
    assert rel(kp.adjoint, a) <= TOL


def test_cross_entropy_with_probabilities() -> None:
    case = make_case("rnn-tanh")
    gen = torch.Generator().manual_seed(4)
    probs = torch.softmax(torch.randn(case.target.shape, generator=gen, dtype=F64), dim=-1)
    kp = KPFlow(case.model, case.x, probs, loss="cross_entropy", z0=case.z0)
    theta, phi = params(case.model)
    z = case.model.unroll(theta, case.x, case.z0).detach().requires_grad_(True)
    y = case.model.read(phi, z)
    L = -(probs * torch.log_softmax(y, -1)).sum() / y.shape[0]
    (e,) = torch.autograd.grad(L, z)
    assert rel(kp.error, e) <= TOL
