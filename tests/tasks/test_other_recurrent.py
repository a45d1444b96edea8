"""context_integration, sine_generation and low_rank_forecast."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.tasks import context_integration, low_rank_forecast, sine_generation
from gdlens.tasks.low_rank_forecast import low_rank_system


def test_context_integration_layout_and_answer():
    B, Ts, Tr = 300, 30, 6
    data = context_integration(B, T_stim=Ts, T_resp=Tr, noise=0.0, seed=1, dtype=torch.float64)
    coh, ctx = data.info["coherence"], data.info["context"]
    assert data.x.shape == (B, Ts + Tr, 4) and data.target.shape == (B, Ts + Tr, 1)
    # noiseless streams are the coherences in the stimulus epoch, 0 after
    torch.testing.assert_close(data.x[:, :Ts, :2], coh.unsqueeze(1).expand(B, Ts, 2), rtol=0, atol=0)
    assert (data.x[:, Ts:, :2] == 0).all()
    # the context one-hot on every step
    assert torch.equal(data.x[..., 2:], torch.nn.functional.one_hot(ctx, 2).double().unsqueeze(1).expand(B, Ts + Tr, 2))
    # target: sign of the relevant coherence in the response epoch, 0 before; mask = response
    relevant = coh[torch.arange(B), ctx]
    assert (data.target[:, :Ts] == 0).all()
    assert torch.equal(data.target[:, Ts:, 0], relevant.sign().unsqueeze(1).expand(B, Tr))
    assert torch.equal(data.mask, (torch.arange(Ts + Tr) >= Ts).expand(B, Ts + Tr))
    # both contexts, both signs, every coherence level occur; the streams are independent
    assert set(ctx.tolist()) == {0, 1}
    assert set(coh.abs().flatten().tolist()) == {0.05, 0.1, 0.2, 0.4}
    assert (coh[:, 0].sign() != coh[:, 1].sign()).any()


def test_context_integration_noise_and_metric():
    B, Ts = 400, 50
    data = context_integration(B, T_stim=Ts, noise=1.0, seed=2, dtype=torch.float64)
    resid = data.x[:, :Ts, :2] - data.info["coherence"].unsqueeze(1)
    assert 0.97 < resid.std().item() < 1.03
    assert data.metric(data.target)["accuracy"] == 1.0
    # the ideal-observer-like answer "sign of the relevant stream's sample mean" is good but not perfect
    ctx = data.info["context"]
    sample_mean = data.x[torch.arange(B), :Ts, ctx].mean(1)
    pred = torch.zeros_like(data.target)
    pred[:, Ts:, 0] = sample_mean.sign().unsqueeze(1)
    acc = data.metric(pred)["accuracy"]
    assert 0.7 < acc < 1.0
    # the output outside the response epoch does not count
    pred[:, :Ts] = 5.0
    assert data.metric(pred)["accuracy"] == acc


def test_sine_generation():
    freqs = (0.1, 0.25, 0.5)
    data = sine_generation(60, T=40, frequencies=freqs, seed=3, dtype=torch.float64)
    omega = data.info["omega"]
    assert set(omega.tolist()) == set(freqs)
    t = torch.arange(1, 41, dtype=torch.float64)
    torch.testing.assert_close(data.target[..., 0], torch.sin(omega.unsqueeze(1) * t), rtol=0, atol=0)
    # a constant cue per trial, increasing with ω
    cue = data.x[..., 0]
    assert torch.equal(cue, cue[:, :1].expand(60, 40))
    torch.testing.assert_close(cue[:, 0], omega / 0.5, rtol=0, atol=0)
    default = sine_generation(500, T=5, seed=0, dtype=torch.float64).info["omega"]
    assert default.min() >= 0.1 - 1e-12 and default.max() <= 0.6 + 1e-12 and default.unique().numel() > 40


def test_low_rank_system():
    A, Q, R = low_rank_system(12, 3, radius=0.9, system_seed=4)
    assert torch.linalg.matrix_rank(A).item() == 3
    torch.testing.assert_close(Q.T @ Q, torch.eye(3, dtype=torch.float64))
    eig = torch.linalg.eigvals(A).abs()
    assert eig.max().item() == pytest.approx(0.9)
    assert (eig.sort(descending=True).values[3:] < 1e-12).all()
    A2, _, _ = low_rank_system(12, 3, radius=0.9, system_seed=5)
    assert not torch.allclose(A, A2)


def test_low_rank_forecast_targets_are_the_next_state():
    data = low_rank_forecast(20, T=15, dim=6, rank=2, radius=0.95, seed=1, dtype=torch.float64)
    A = data.info["A"]
    assert data.x.shape == data.target.shape == (20, 15, 6)
    torch.testing.assert_close(data.target, data.x @ A.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(data.x[:, 1:], data.target[:, :-1], rtol=0, atol=0)
    # the same system for a new seed; a new system for a new system_seed
    other = low_rank_forecast(20, T=15, dim=6, rank=2, radius=0.95, seed=2, dtype=torch.float64)
    torch.testing.assert_close(other.info["A"], A, rtol=0, atol=0)
    assert not torch.equal(other.x, data.x)
    moved = low_rank_forecast(20, T=15, dim=6, rank=2, radius=0.95, system_seed=1, seed=1, dtype=torch.float64)
    assert not torch.allclose(moved.info["A"], A)
    noisy = low_rank_forecast(200, T=15, dim=6, noise=0.1, seed=1, dtype=torch.float64)
    resid = noisy.target - noisy.x @ noisy.info["A"].T
    assert 0.09 < resid.std().item() < 0.11
    assert data.metric(data.target)["mse"] == 0.0
    assert math.isclose(data.metric(data.x)["mse"], (data.x - data.target).pow(2).mean().item())
