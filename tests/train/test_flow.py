"""GradientFlow: Armijo-controlled Euler steps follow gradient flow dθ/dτ = −∇L."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gdlens as gd
from gdlens.train.flow import GradientFlow

F64 = torch.float64


def quadratic(lams: torch.Tensor):
    """L(θ) = ½ Σ λ_i θ_i², whose flow is θ_i(τ) = exp(−λ_i τ) θ_i(0)."""
    theta = torch.nn.Parameter(torch.ones(len(lams), dtype=F64))

    def loss() -> torch.Tensor:
        return 0.5 * (lams * theta**2).sum()

    return theta, loss


def run(theta, loss, opt, steps):
    taus, etas, values = [], [], []
    for _ in range(steps):
        opt.zero_grad()
        value = loss()
        value.backward()
        before = opt.flow_time
        with torch.no_grad():
            opt.step(loss)
        etas.append(opt.flow_time - before)
        taus.append(opt.flow_time)
        values.append(float(value.detach()))
    return np.array(taus), np.array(etas), np.array(values)


def test_adaptive_steps_keep_the_loss_falling_and_stay_near_the_flow():
    """Started far above the stable step with growth on: the loss never rises, stiff directions
    the flow has already killed stay negligible, and the slow direction is where the flow puts
    it at the recorded flow time τ."""
    lams = torch.tensor([100.0, 10.0, 1.0], dtype=F64)
    for growth in (1.2, 1.5):
        theta, loss = quadratic(lams)
        opt = GradientFlow([theta], lr=1.0, growth=growth)
        taus, _, values = run(theta, loss, opt, 200)
        assert np.all(np.diff(values) <= 0) and opt.rejected > 0 and opt.stalled == 0
        slow_exact = math.exp(-taus[-1])
        stiff, _, slow = theta.detach().abs().tolist()
        assert stiff < 0.02 * slow
        assert abs(slow - slow_exact) < 0.15 * slow_exact


def test_the_path_follows_the_exact_flow_at_the_recorded_flow_time():
    """With steps capped well below 1/λ (no growth, small first step) the Euler path matches
    exp(−Λτ)θ(0) at τ = Σ η, to first order in η."""
    lams = torch.tensor([3.0, 1.0, 0.3], dtype=F64)
    errors = []
    for lr in (0.02, 0.01):
        theta, loss = quadratic(lams)
        opt = GradientFlow([theta], lr=lr, growth=1.0)
        taus, _, _ = run(theta, loss, opt, int(2.0 / lr))
        exact = torch.exp(-lams * taus[-1])
        errors.append(float((theta.detach() - exact).norm() / exact.norm()))
        assert taus[-1] == pytest.approx(2.0, rel=1e-9)
    assert errors[0] < 0.05 and 1.7 < errors[0] / errors[1] < 2.3  # first order: halving η halves the error


def test_gd_train_with_flow_records_the_flow_time_and_resumes(tmp_path):
    data = gd.tasks.teacher_student(32, input_dim=3, teacher_width=2, seed=0)
    torch.manual_seed(0)
    model = gd.models.MLP(3, 16, 1)
    result = gd.train(model, data, optimizer="flow", lr=0.5, steps=40, store=tmp_path, progress=False,
                      checkpoint_every=20)
    s = result.summary
    assert s["flow/time"] > 0 and s["flow/stalled_steps"] == 0 and math.isfinite(s["flow/final_lr"])
    assert np.all(np.diff(result.losses) <= 1e-6 * result.losses[:-1])  # monotone up to rounding
    assert result.losses[-1] < 0.5 * result.losses[0]
    state = result.run.latest_checkpoint()[1]["optimizer"]
    restored = GradientFlow(model.parameters(), lr=1.0)
    restored.load_state_dict(state)
    assert restored.flow_time == pytest.approx(s["flow/time"]) and restored.lr == pytest.approx(s["flow/final_lr"])


def test_bad_arguments():
    p = [torch.nn.Parameter(torch.zeros(2))]
    for kwargs in ({"lr": 0.0}, {"armijo": 1.0}, {"growth": 0.5}):
        with pytest.raises(ValueError):
            GradientFlow(p, **kwargs)
    with pytest.raises(ValueError, match="closure"):
        GradientFlow(p).step()
    model = gd.models.MLP(3, 4, 1)
    with pytest.raises(ValueError, match="weight_decay"):
        gd.train(model, gd.tasks.teacher_student(8, input_dim=3), optimizer="flow", weight_decay=0.1, steps=1,
                 progress=False)
