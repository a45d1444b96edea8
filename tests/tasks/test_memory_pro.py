"""memory_pro: epochs, the anti rotation, the delay's blank stimulus, context and metric."""

from __future__ import annotations

import math

import pytest
import torch

from gdlens.tasks import memory_pro
from gdlens.tasks.memory_pro import VARIANTS, wrap_angle

EPOCHS = dict(T_fix=4, T_stim=5, T_delay=6, T_resp=7)
T = sum(EPOCHS.values())
RESP = slice(15, 22)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixation_is_off_exactly_in_the_response_period(variant):
    data = memory_pro(20, **EPOCHS, variant=variant, seed=1)
    assert data.x.shape == data.target.shape == (20, T, 3)
    response = torch.zeros(T, dtype=torch.bool)
    response[RESP] = True
    assert torch.equal(data.info["response"], response.expand(20, T))
    for fix in (data.x[..., 0], data.target[..., 0]):
        assert torch.equal(fix, (~response).float().expand(20, T))
    # the direction target is zero before the response and a unit vector during it
    assert (data.target[:, ~response, 1:] == 0).all()
    torch.testing.assert_close(data.target[:, RESP, 1:].norm(dim=-1), torch.ones(20, 7))


def test_anti_is_pro_rotated_by_pi():
    for pro_name, anti_name in (("pro", "anti"), ("delay", "delay_anti")):
        pro = memory_pro(32, **EPOCHS, variant=pro_name, seed=7, dtype=torch.float64)
        anti = memory_pro(32, **EPOCHS, variant=anti_name, seed=7, dtype=torch.float64)
        torch.testing.assert_close(anti.info["theta"], pro.info["theta"], rtol=0, atol=0)
        torch.testing.assert_close(anti.x, pro.x, rtol=0, atol=0)  # the same stimulus
        rot = torch.tensor([[-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)  # rotation by π
        torch.testing.assert_close(anti.target[..., 1:], pro.target[..., 1:] @ rot.T, rtol=0, atol=1e-14)
        torch.testing.assert_close(anti.target[..., 0], pro.target[..., 0], rtol=0, atol=0)
        # and the response angle is θ (pro) / θ + π (anti)
        theta = pro.info["theta"]
        ang = torch.atan2(anti.target[:, 20, 2], anti.target[:, 20, 1])
        diff = wrap_angle(ang - (theta + math.pi))
        torch.testing.assert_close(diff, torch.zeros(32, dtype=torch.float64), rtol=0, atol=1e-12)


def test_stimulus_epochs():
    stim = slice(4, 9)
    for variant in ("delay", "delay_anti"):
        data = memory_pro(10, **EPOCHS, variant=variant, seed=3, dtype=torch.float64)
        s = data.x[..., 1:]
        assert (s[:, :4] == 0).all()  # fixation epoch
        assert (s[:, 9:] == 0).all()  # delay and response: zero stimulus
        theta = data.info["theta"]
        expected = torch.stack([theta.cos(), theta.sin()], -1).unsqueeze(1).expand(10, 5, 2)
        torch.testing.assert_close(s[:, stim], expected, rtol=0, atol=0)
    for variant in ("pro", "anti"):
        data = memory_pro(10, **EPOCHS, variant=variant, seed=3, dtype=torch.float64)
        assert (data.x[:, :4, 1:] == 0).all()
        torch.testing.assert_close(data.x[:, 4:, 1:].norm(dim=-1), torch.ones(10, T - 4, dtype=torch.float64))


def test_noise_and_context():
    clean = memory_pro(50, **EPOCHS, seed=2)
    noisy = memory_pro(50, **EPOCHS, noise=0.5, context=True, seed=2)
    assert noisy.x.shape == (50, T, 3 + len(VARIANTS))
    torch.testing.assert_close(noisy.target, clean.target, rtol=0, atol=0)
    assert 0.45 < (noisy.x[..., :3] - clean.x).std().item() < 0.55
    rule = torch.zeros(len(VARIANTS))
    rule[VARIANTS.index("delay")] = 1.0
    assert torch.equal(noisy.x[..., 3:], rule.expand(50, T, len(VARIANTS)))


def test_metric_measures_the_response_angle():
    data = memory_pro(40, **EPOCHS, variant="anti", seed=4, dtype=torch.float64)
    assert data.metric(data.target) == {"loss": 0.0, "angle_error": 0.0, "fixation_accuracy": 1.0, "mse": 0.0}
    delta = 0.3
    c, s = math.cos(delta), math.sin(delta)
    pred = data.target.clone()
    pred[..., 1:] = data.target[..., 1:] @ torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    pred[:, :2, 0] = 0.0  # two fixation steps wrong out of T
    m = data.metric(pred)
    assert m["angle_error"] == pytest.approx(delta)
    assert m["fixation_accuracy"] == pytest.approx(1 - 2 / T)
