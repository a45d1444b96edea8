"""MLP initialisations: std init_scale/√fan_in (biases 0), or Luo et al.'s N(0, init_std²) for all."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.models import MLP


def test_fan_in_scaling_and_zero_biases():
    torch.manual_seed(0)
    model = MLP(400, 300, 200, init_scale=0.5)
    w0, w1 = model.net[0].weight.detach(), model.net[2].weight.detach()
    assert float(w0.std()) == pytest.approx(0.5 / math.sqrt(400), rel=0.02)
    assert float(w1.std()) == pytest.approx(0.5 / math.sqrt(300), rel=0.02)
    assert not model.net[0].bias.any() and not model.net[2].bias.any()


def test_init_std_draws_every_weight_and_bias_alike():
    torch.manual_seed(0)
    model = MLP(400, 300, 200, init_std=0.03)
    for p in (p.detach() for p in model.parameters()):
        assert float(p.std()) == pytest.approx(0.03, rel=0.1) and abs(float(p.mean())) < 0.01
    with pytest.raises(ValueError, match="init_std"):
        MLP(2, 3, 1, init_std=0.0)
