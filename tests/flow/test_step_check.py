"""One SGD step moves z by −lr·G e + O(lr²): the relative error is linear in lr."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import make_case, params, rel

from gdlens.flow import KPFlow, StepCheck


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize(("kind", "learn_z0"), [("rnn-tanh", False), ("rnn-tanh", True), ("rnn-relu", True)])
def test_relative_error_halves_with_lr(kind: str, learn_z0: bool, loss: str) -> None:
    case = make_case(kind, learn_z0=learn_z0, T=5)
    target = case.target
    if loss == "cross_entropy":
        target = torch.randint(0, case.model.output_size, target.shape[:-1], generator=torch.Generator().manual_seed(5))
    kp = KPFlow(case.model, case.x, target, loss=loss, z0=case.z0)
    lr = 1e-4
    big, small = kp.step_check(lr), kp.step_check(lr / 2)
    assert isinstance(big, StepCheck) and big.actual.shape == kp.shape
    assert rel(big.predicted, -lr * (kp.G @ kp.error)) <= 1e-12
    assert 0 < big.rel_error < 0.05
    assert 0.4 <= small.rel_error / big.rel_error <= 0.6


@pytest.mark.parametrize("kind", ["gru", "lstm", "ode", "resnet"])
def test_relative_error_halves_with_lr_other_models(kind: str) -> None:
    case = make_case(kind, learn_z0=True)
    kp = KPFlow(case.model, case.x, case.target, z0=case.z0)
    big, small = kp.step_check(1e-4), kp.step_check(5e-5)
    assert 0 < big.rel_error < 0.05
    assert 0.4 <= small.rel_error / big.rel_error <= 0.6


def test_step_check_leaves_model_untouched() -> None:
    case = make_case("rnn-tanh", learn_z0=True)
    before = {n: p.detach().clone() for n, p in case.model.named_parameters()}
    kp = KPFlow(case.model, case.x, case.target)
    kp.step_check(1e-3)
    for n, p in case.model.named_parameters():
        assert torch.equal(p.detach(), before[n]), n
    theta, _ = params(case.model)
    assert torch.equal(case.model.unroll(theta, case.x), kp.hidden)
