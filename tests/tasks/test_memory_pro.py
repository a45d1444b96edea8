"""memory_pro: epochs, the anti rotation, the memory epoch's blank stimulus, context, metric, the
variant names (and their deprecated former names) and the KPFlow preset."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from gdlens.tasks import get, memory_pro
from gdlens.tasks.memory_pro import DEPRECATED_VARIANTS, PRESETS, VARIANTS, wrap_angle

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
    for pro_name, anti_name in (("DelayPro", "DelayAnti"), ("MemoryPro", "MemoryAnti")):
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
    for variant in ("MemoryPro", "MemoryAnti"):
        data = memory_pro(10, **EPOCHS, variant=variant, seed=3, dtype=torch.float64)
        s = data.x[..., 1:]
        assert (s[:, :4] == 0).all()  # fixation epoch
        assert (s[:, 9:] == 0).all()  # delay and response: zero stimulus
        theta = data.info["theta"]
        expected = torch.stack([theta.cos(), theta.sin()], -1).unsqueeze(1).expand(10, 5, 2)
        torch.testing.assert_close(s[:, stim], expected, rtol=0, atol=0)
    for variant in ("DelayPro", "DelayAnti"):
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
    rule[VARIANTS.index("MemoryPro")] = 1.0  # the default variant
    assert torch.equal(noisy.x[..., 3:], rule.expand(50, T, len(VARIANTS)))


def test_metric_measures_the_response_angle():
    data = memory_pro(40, **EPOCHS, variant="DelayAnti", seed=4, dtype=torch.float64)
    assert data.metric(data.target) == {"loss": 0.0, "angle_error": 0.0, "fixation_accuracy": 1.0, "mse": 0.0}
    delta = 0.3
    c, s = math.cos(delta), math.sin(delta)
    pred = data.target.clone()
    pred[..., 1:] = data.target[..., 1:] @ torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    pred[:, :2, 0] = 0.0  # two fixation steps wrong out of T
    m = data.metric(pred)
    assert m["angle_error"] == pytest.approx(delta)
    assert m["fixation_accuracy"] == pytest.approx(1 - 2 / T)


def test_variant_names_say_what_the_stimulus_does():
    """Delay*: the stimulus stays on to the end; Memory*: it is off from the delay on;
    *Anti: the answer is θ + π. The context channel order is VARIANTS'."""
    assert VARIANTS == ("DelayPro", "DelayAnti", "MemoryPro", "MemoryAnti")
    for variant in VARIANTS:
        data = memory_pro(6, **EPOCHS, variant=variant, context=True, seed=5, dtype=torch.float64)
        stim_in_delay = data.x[:, 9:15, 1:3].norm(dim=-1)
        assert bool((stim_in_delay > 0.99).all()) == variant.startswith("Delay")
        assert bool((stim_in_delay == 0).all()) == variant.startswith("Memory")
        theta = data.info["theta"]
        ang = torch.atan2(data.target[:, 20, 2], data.target[:, 20, 1])
        offset = math.pi if variant.endswith("Anti") else 0.0
        assert float(wrap_angle(ang - theta - offset).abs().max()) < 1e-12
        assert int(data.x[0, 0, 3:].argmax()) == VARIANTS.index(variant) and data.info["variant"] == variant


@pytest.mark.parametrize("old, new", sorted(DEPRECATED_VARIANTS.items()))
def test_former_names_warn_and_keep_their_meaning(old, new):
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated: it is '{new}'"):
        data = memory_pro(8, **EPOCHS, variant=old, context=True, seed=9)
    ref = memory_pro(8, **EPOCHS, variant=new, context=True, seed=9)
    assert torch.equal(data.x, ref.x) and torch.equal(data.target, ref.target)
    assert data.info["variant"] == new
    # "delay_anti" always meant MemoryAnti (stimulus off in the delay), not DelayAnti
    assert DEPRECATED_VARIANTS["delay_anti"] == "MemoryAnti" and DEPRECATED_VARIANTS["delay"] == "MemoryPro"


def test_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        memory_pro(4, variant="MemoryAnti")


def test_kpflow_preset():
    """T = 90 as stimulus 30, memory 30, response 30; explicit epochs override the preset."""
    assert PRESETS["kpflow"] == {"T_fix": 0, "T_stim": 30, "T_delay": 30, "T_resp": 30}
    data = memory_pro(5, preset="kpflow", seed=1, dtype=torch.float64)
    assert data.x.shape == (5, 90, 3)
    stim = data.x[..., 1:].norm(dim=-1)
    assert (stim[:, :30] > 0.99).all() and (stim[:, 30:] == 0).all()
    response = torch.zeros(90, dtype=torch.bool)
    response[60:] = True
    assert torch.equal(data.info["response"][0], response)
    assert memory_pro(5, preset="kpflow", T_resp=10).x.shape[1] == 70
    assert get("memory_pro", preset="kpflow").generate(3, seed=0).x.shape == (3, 90, 3)
    assert memory_pro(2).x.shape[1] == 50  # the defaults without a preset: 10, 10, 20, 10
    with pytest.raises(ValueError, match=r"preset must be None or one of \('kpflow',\)"):
        memory_pro(2, preset="paper")
