from __future__ import annotations

from typing import Any

import pytest
import torch

from gdlens.models import StackedRNN

F64 = torch.float64
I, H = 3, 4


def make(cell: str = "rnn", **kw: Any) -> StackedRNN:
    """A float64 two-layer StackedRNN with non-zero biases (they start at zero)."""
    torch.manual_seed(0)
    model = StackedRNN(cell, I, H, 2, **kw).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_()
    return model


def x_batch(b: int = 5, t: int = 6) -> torch.Tensor:
    return torch.randn(b, t, I, generator=torch.Generator().manual_seed(3), dtype=F64)


def test_layer_reads_lower_layer_at_same_step() -> None:
    model = make("rnn", nonlinearity="relu")
    th = model.state_params()
    x = x_batch()
    y, z = model(x)
    h1 = h2 = torch.zeros(5, H, dtype=F64)
    for t in range(x.shape[1]):
        h1 = torch.relu(x[:, t] @ th["weight_ih_l0"].T + th["bias_ih_l0"] + h1 @ th["weight_hh_l0"].T + th["bias_hh_l0"])
        h2 = torch.relu(h1 @ th["weight_ih_l1"].T + th["bias_ih_l1"] + h2 @ th["weight_hh_l1"].T + th["bias_hh_l1"])
        torch.testing.assert_close(z[:, t], torch.cat([h1, h2], dim=-1), rtol=1e-12, atol=1e-12)
    phi = model.readout_params()
    torch.testing.assert_close(y, z[..., H:] @ phi["readout.weight"].T + phi["readout.bias"])


def test_lstm_state_layout_and_readout() -> None:
    model = make("lstm", num_layers=3)
    assert model.state_size == 3 * 2 * H
    z = torch.randn(5, 6, model.state_size, generator=torch.Generator().manual_seed(4), dtype=F64)
    phi = model.readout_params()
    top_h = z[..., 4 * H : 5 * H]  # layers (h1, c1, h2, c2, h3, c3)
    torch.testing.assert_close(model.read(phi, z), top_h @ phi["readout.weight"].T + phi["readout.bias"])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_functional(functional_checks, cell: str) -> None:
    functional_checks(make(cell))
    functional_checks(make(cell, bias=False))


def test_float32(float32_check) -> None:
    float32_check(make("lstm"), x_batch())


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_g_scales_recurrent_weights(g_scaling_check, cell: str) -> None:
    g_scaling_check(lambda g: StackedRNN(cell, I, 128, 1, num_layers=2, g=g), "weight_hh_l1", 128**-0.5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_z0(z0_check, cell: str) -> None:
    z0_check(make(cell), x_batch())


def test_learn_z0(learn_z0_check) -> None:
    learn_z0_check(make("lstm", learn_z0=True), x_batch())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"'gru', 'lstm', 'rnn'"):
        StackedRNN("transformer", I, H, 2)
    with pytest.raises(ValueError, match="nonlinearity"):
        StackedRNN("gru", I, H, 2, nonlinearity="relu")
    with pytest.raises(ValueError, match=r"'relu', 'tanh'"):
        StackedRNN("rnn", I, H, 2, nonlinearity="gelu")
    model = make("lstm")
    with pytest.raises(ValueError, match=r"StackedRNN expects x of shape \(B, T, 3\), got \(5, 6\)"):
        model(torch.zeros(5, 6, dtype=F64))
    with pytest.raises(ValueError, match=r"got \(1, 5, 4\)"):
        model.state_from_torch(torch.zeros(1, 5, H, dtype=F64), torch.zeros(1, 5, H, dtype=F64))
    with pytest.raises(ValueError, match="c must"):
        model.state_from_torch(torch.zeros(2, 5, H, dtype=F64))
