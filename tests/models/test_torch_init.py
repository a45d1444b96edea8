"""``init="torch"`` on RNN, GRU and LSTM: torch's own initialisation, with g scaling weight_hh only."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

from gdlens.models import GRU, LSTM, RNN, build

CASES = [(GRU, nn.GRU, 3), (LSTM, nn.LSTM, 4)]


@pytest.mark.parametrize("ours, ref_cls, gates", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_gated_draws_are_torchs(ours, ref_cls, gates, bias) -> None:
    """After the same seed, every tensor is the torch module's, weight_hh times g."""
    g = 2.5
    torch.manual_seed(11)
    model = ours(3, 7, 2, g=g, bias=bias, init="torch")
    torch.manual_seed(11)
    ref = ref_cls(3, 7, bias=bias, batch_first=True)
    th = model.state_params()
    assert set(th) == ({"weight_ih", "weight_hh", "bias_ih", "bias_hh"} if bias else {"weight_ih", "weight_hh"})
    for name, p in th.items():
        expected = getattr(ref, name + "_l0").detach() * (g if name == "weight_hh" else 1.0)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7)
    assert th["weight_hh"].shape == (gates * 7, 7)


@pytest.mark.parametrize("bias", [True, False])
def test_rnn_draws_are_torchs(bias) -> None:
    """The single bias is nn.RNN's b_ih + b_hh, so the pre-activations are nn.RNN's."""
    torch.manual_seed(5)
    model = RNN(3, 6, 2, g=0.5, bias=bias, init="torch")
    torch.manual_seed(5)
    ref = nn.RNN(3, 6, bias=bias, batch_first=True)
    torch.testing.assert_close(model.weight_ih.detach(), ref.weight_ih_l0.detach(), rtol=0, atol=0)
    torch.testing.assert_close(model.weight_hh.detach(), 0.5 * ref.weight_hh_l0.detach(), rtol=0, atol=1e-7)
    if bias:
        torch.testing.assert_close(model.bias.detach(), (ref.bias_ih_l0 + ref.bias_hh_l0).detach())
        with torch.no_grad():  # same trajectories once the recurrent weights are equal
            ref.weight_hh_l0.mul_(0.5)
            x = torch.randn(4, 5, 3)
            torch.testing.assert_close(model(x)[1], ref(x)[0], rtol=1e-5, atol=1e-6)
    else:
        assert model.bias is None


@pytest.mark.parametrize("make", [lambda g: RNN(2, 200, 1, g=g, init="torch"), lambda g: GRU(2, 200, 1, g=g, init="torch")])
def test_distribution_is_uniform_with_torch_scale(make) -> None:
    """Entries of weight_hh / g and weight_ih are U(−1/√H, 1/√H) (Kolmogorov–Smirnov), so
    the recurrent std is g/√(3H): gdlens' own g/√H at g/√3."""
    H, g = 200, 3.0
    torch.manual_seed(0)
    model = make(g)
    k = 1 / math.sqrt(H)
    for name, scale in (("weight_hh", g), ("weight_ih", 1.0)):
        w = getattr(model, name).detach().flatten().double() / scale
        assert float(w.abs().max()) <= k
        assert stats.kstest(w.numpy(), stats.uniform(loc=-k, scale=2 * k).cdf).pvalue > 1e-3, name
    std = float(model.weight_hh.detach().std())
    assert abs(std - g / math.sqrt(3 * H)) < 0.03 * g / math.sqrt(3 * H)


@pytest.mark.parametrize("cls", [RNN, GRU, LSTM])
def test_g_scales_weight_hh_only(cls) -> None:
    models = []
    for g in (1.0, 3.0):
        torch.manual_seed(2)
        models.append(cls(3, 5, 2, g=g, init="torch"))
    one, three = (dict(m.named_parameters()) for m in models)
    for name in one:
        factor = 3.0 if name == "weight_hh" else 1.0
        torch.testing.assert_close(three[name].detach(), factor * one[name].detach(), rtol=1e-6, atol=0)
    assert any(name.startswith("readout") for name in one)


def test_default_is_gdlens_and_bad_init() -> None:
    model = GRU(3, 5, 2)
    assert model.init == "gdlens" and float(model.bias_ih.detach().abs().sum()) == 0.0
    assert build("gru", input_size=3, hidden=5, output_size=2, g=2.0, init="torch").init == "torch"
    for cls in (RNN, GRU, LSTM):
        with pytest.raises(ValueError, match=r"init must be one of \('gdlens', 'torch'\)"):
            cls(3, 5, 2, init="pytorch")
